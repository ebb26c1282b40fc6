//! Reading `/proc` (proc(5)): process state, children, signal masks, the
//! environment and command line, and every readable byte of a process's
//! memory, with a one-pass search for secret needles in it.
//!
//! Standard library only: agent-init's suites and the service's
//! (`service/tests/support`, through `#[path]`) share this one file.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::FileExt;

/// Fields of /proc/PID/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub tpgid: i32,
    pub starttime: u64,
}

/// `pid`'s /proc/PID/stat, or `None` once it is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields follow the last ')'.
    let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    Some(Stat {
        state: f[0].chars().next()?,
        ppid: f[1].parse().ok()?,
        pgrp: f[2].parse().ok()?,
        tpgid: f[5].parse().ok()?,
        starttime: f[19].parse().ok()?,
    })
}

/// The name the kernel shows for `pid` (at most 15 bytes), empty once it is gone.
pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Children of single-threaded `pid`, zombies included.
pub fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Every process below `pid`.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = children(pid);
    while let Some(p) = todo.pop() {
        todo.extend(children(p));
        out.push(p);
    }
    out
}

/// Whether the process `pid` started at `starttime` still runs (not a zombie).
pub fn alive(pid: i32, starttime: u64) -> bool {
    stat(pid).is_some_and(|s| s.starttime == starttime && !matches!(s.state, 'Z' | 'X'))
}

/// `rt_sigtimedwait`'s system call number.
#[cfg(target_arch = "x86_64")]
const SYS_RT_SIGTIMEDWAIT: u32 = 128;
#[cfg(target_arch = "aarch64")]
const SYS_RT_SIGTIMEDWAIT: u32 = 137;

/// Whether `pid` sits in `sigtimedwait` (agent-init's loop, idle).
pub fn in_signal_wait(pid: i32) -> bool {
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    if wchan.contains("sigtimedwait") {
        return true;
    }
    let syscall = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    syscall.split_whitespace().next() == Some(&SYS_RT_SIGTIMEDWAIT.to_string())
}

/// /proc/PID/status as text (panics if it cannot be read).
pub fn status(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"))
}

/// One field of a /proc/PID/status text, trimmed.
pub fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
        .trim()
        .to_string()
}

/// A signal mask field (`SigBlk`, `SigIgn`, ...) of a status text.
pub fn sigmask(status: &str, field: &str) -> u64 {
    u64::from_str_radix(&status_field(status, field), 16).unwrap()
}

/// The mask with the bits of signal numbers `sigs` set.
pub fn bits(sigs: &[i32]) -> u64 {
    sigs.iter().fold(0, |m, s| m | 1 << (s - 1))
}

/// /proc/PID/environ, raw (panics if it cannot be read).
pub fn environ(pid: i32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/environ: {e}"))
}

/// /proc/PID/cmdline, raw (panics if it cannot be read).
pub fn cmdline(pid: i32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/cmdline: {e}"))
}

/// Every readable region of `pid`'s memory, as (name, start, bytes). Needs
/// the right to trace `pid`: its parent for a dumpable child, root
/// (`CAP_SYS_PTRACE`) for a non-dumpable one.
pub fn read_memory(pid: i32) -> Vec<(String, u64, Vec<u8>)> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = fs::File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("cannot open /proc/{pid}/mem: {e}"));
    let mut out = Vec::new();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f.get(5).copied().unwrap_or("[anon]").to_string();
        if !f[1].starts_with('r') {
            continue;
        }
        let (start, end) = f[0].split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buf = vec![0u8; (end - start) as usize];
        match mem.read_exact_at(&mut buf, start) {
            Ok(()) => out.push((name, start, buf)),
            // The kernel's own pages have nothing of ours and do not read.
            Err(_) if name.starts_with("[vvar") || name == "[vsyscall]" => {}
            Err(e) => panic!("cannot read {line} of pid {pid}: {e}"),
        }
    }
    out
}

/// A labelled byte string to search for.
pub fn needle(label: &str, bytes: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (label.to_string(), bytes.as_ref().to_vec())
}

/// Calls `hit(k, i)` for every position `i` of `haystack` where needle `k`
/// starts. One pass whatever the number of needles: a table of the
/// needles' first two bytes picks the positions worth comparing, and the
/// loop over every byte indexes plain slices only, which even an
/// unoptimized test build compiles to a load and a compare.
fn scan(haystack: &[u8], needles: &[(String, Vec<u8>)], mut hit: impl FnMut(usize, usize)) {
    let mut first = vec![Vec::new(); 1 << 16];
    for (k, (label, n)) in needles.iter().enumerate() {
        assert!(n.len() >= 8, "{label}: needle too short to be distinctive");
        first[usize::from(u16::from_le_bytes([n[0], n[1]]))].push(k);
    }
    let any: Vec<bool> = first.iter().map(|c| !c.is_empty()).collect();
    let any: &[bool] = &any;
    let mut i = 0;
    while i + 1 < haystack.len() {
        let pair = haystack[i] as usize | (haystack[i + 1] as usize) << 8;
        if any[pair] {
            for &k in &first[pair] {
                if haystack[i..].starts_with(&needles[k].1) {
                    hit(k, i);
                }
            }
        }
        i += 1;
    }
}

/// Which of `needles` (label, at least 8 bytes) occur in `haystack`: their labels.
pub fn occurrences(haystack: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut seen = vec![false; needles.len()];
    scan(haystack, needles, |k, _| seen[k] = true);
    needles
        .iter()
        .zip(seen)
        .filter(|(_, s)| *s)
        .map(|((l, _), _)| l.clone())
        .collect()
}

/// Where each of `needles` occurs in `memory` (from [`read_memory`]), as
/// "LABEL in REGION at ADDRESS", every occurrence.
pub fn find(memory: &[(String, u64, Vec<u8>)], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut hits = Vec::new();
    for (name, start, bytes) in memory {
        scan(bytes, needles, |k, i| {
            hits.push(format!(
                "{} in {name} at {:#x}",
                needles[k].0,
                start + i as u64
            ))
        });
    }
    hits
}
