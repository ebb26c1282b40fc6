//! The binary is static: no loader, no libraries, and names resolved (from
//! /etc/hosts or through DNS) in an empty chroot.

use super::*;

/// Reads ELF64 little-endian program headers: (p_type, p_offset, p_filesz).
fn program_headers(elf: &[u8]) -> Vec<(u32, u64, u64)> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "ELF64");
    assert_eq!(elf[5], 1, "little-endian");
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    (0..phnum)
        .map(|i| {
            let h = phoff + i * phentsize;
            (u32_at(h), u64_at(h + 8), u64_at(h + 32))
        })
        .collect()
}

#[test]
fn binary_is_static_pie_with_no_interpreter_and_no_needed_libraries() {
    const ET_DYN: u16 = 3;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let elf = std::fs::read(support::bin()).unwrap();
    assert_eq!(
        u16::from_le_bytes([elf[16], elf[17]]),
        ET_DYN,
        "position-independent"
    );
    let headers = program_headers(&elf);
    assert!(
        headers.iter().all(|(t, _, _)| *t != PT_INTERP),
        "no program interpreter (dynamic loader)"
    );
    for (_, off, size) in headers.iter().filter(|(t, _, _)| *t == PT_DYNAMIC) {
        let dynamic = &elf[*off as usize..(*off + *size) as usize];
        for entry in dynamic.chunks_exact(16) {
            let tag = u64::from_le_bytes(entry[..8].try_into().unwrap());
            assert_ne!(tag, DT_NEEDED, "no shared library needed");
            if tag == 0 {
                break;
            }
        }
    }
}

/// Runs `agent-init --check` chrooted into a root that holds only the
/// binary, the test CA and one file under `/etc`, against a server whose
/// certificate names `host`; asserts the bundle was fetched with the right
/// credential and opened, and nothing secret was printed.
fn check_in_empty_chroot(name: &str, host: &str, etc_file: &str, contents: &str) {
    let ca = Ca::new("agent-init test CA");
    let server = Server::start(
        &ca.issue(&[host], Validity::Good),
        vec![Reply::ok(good_bundle())],
    );
    let mut f = fixture(name, &server.url_for_host(host), &ca);
    f.set("AGENT_INIT_CA_FILE", "/ca.pem");
    let etc = format!("etc/{etc_file}");
    let out = check_chrooted(
        &f,
        &[(&etc, contents.as_bytes()), ("ca.pem", ca.pem().as_bytes())],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("check passed"), "{err}");
    f.forbidden.assert_not_printed(&out);
    assert_eq!(
        server.requests()[0].header("Authorization"),
        bundle::vector_authorization()
    );
}

/// `agent-init --check` with `f`'s environment, chrooted into a fresh root
/// that holds only the binary and `files` (paths in the root): no libc, no
/// loader, no nsswitch.conf.
fn check_chrooted(f: &Harness, files: &[(&str, &[u8])]) -> Output {
    let root = f.dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(support::bin(), root.join("agent-init")).unwrap();
    for (path, content) in files {
        std::fs::write(root.join(path), content).unwrap();
    }
    let args: Vec<OsString> = vec![root.into(), "/agent-init".into(), "--check".into()];
    f.command(system_tool("chroot"), &args)
        .output()
        .expect("chroot runs")
}

#[test]
#[ignore = "needs root: chroot"]
fn static_binary_resolves_from_etc_hosts_and_fetches_in_an_empty_chroot() {
    support::needs_root("chroot");
    check_in_empty_chroot(
        "chroot",
        "secrets.test",
        "hosts",
        "127.0.0.1 secrets.test\n",
    );
}

/// Held by each test that binds 127.0.0.1:53, so they take turns.
static PORT_53: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A DNS responder on 127.0.0.1:53 (root), holding [`PORT_53`] while it runs.
struct Dns {
    _port_53: std::sync::MutexGuard<'static, ()>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Dns {
    /// Answers A queries for `name` with `answer`.
    fn start(name: &'static str, answer: [u8; 4]) -> Dns {
        support::needs_root("chroot and port 53");
        let port_53 = PORT_53
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (thread, answered) = dns_responder(name, answer, stop.clone());
        Dns {
            _port_53: port_53,
            stop,
            thread,
            answered,
        }
    }

    /// Stops it; how many A queries for the name it answered.
    fn stop(self) -> usize {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.answered.load(Ordering::Relaxed)
    }
}

/// A DNS responder on 127.0.0.1:53 that answers A queries for `name` with
/// `answer` (and other queries with no answer), counting the A queries it
/// answered. It stops when `stop` is set. Hold [`PORT_53`] while it runs.
fn dns_responder(
    name: &'static str,
    answer: [u8; 4],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let sock =
        std::net::UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 (root, port free)");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            if q.len() < 17 {
                continue;
            }
            // The question: labels from byte 12, then QTYPE and QCLASS.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < q.len() && q[i] != 0 {
                let len = q[i] as usize;
                labels.push(
                    String::from_utf8_lossy(&q[i + 1..(i + 1 + len).min(q.len())]).into_owned(),
                );
                i += 1 + len;
            }
            let qend = i + 5;
            if qend > q.len() {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let hit = labels.join(".").eq_ignore_ascii_case(name) && qtype == 1;
            let mut r = Vec::with_capacity(qend + 16);
            r.extend_from_slice(&q[..2]); // ID
            r.extend_from_slice(&[0x81, 0x80]); // response, recursion desired and available, NOERROR
            r.extend_from_slice(&[0, 1, 0, u8::from(hit), 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..qend]);
            if hit {
                // Name pointer to the question, A, IN, TTL 60, 4 bytes: `answer`.
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&answer);
                count.fetch_add(1, Ordering::Relaxed);
            }
            let _ = sock.send_to(&r, from);
        }
    });
    (handle, answered)
}

#[test]
#[ignore = "needs root: chroot and port 53"]
fn static_binary_resolves_through_dns_in_an_empty_chroot() {
    let dns = Dns::start("secrets-dns.test", [127, 0, 0, 1]);
    // No /etc/hosts: the name can only come from the DNS responder.
    check_in_empty_chroot(
        "chroot-dns",
        "secrets-dns.test",
        "resolv.conf",
        "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n",
    );
    assert!(
        dns.stop() >= 1,
        "the name was resolved through the DNS responder"
    );
}

#[test]
#[ignore = "needs root: chroot and port 53"]
fn plain_http_to_localhost_dot_that_dns_answers_elsewhere_exits_78_sending_nothing() {
    // `localhost.` (trailing dot) matches no /etc/hosts line and goes to DNS.
    // The answer, 0.0.0.0, is not a loopback address, yet Linux delivers a
    // connect to it on this host: were the address not checked, the token
    // would reach this server in clear text.
    let server = Server::start_plain(vec![Reply::ok(good_bundle())]);
    let dns = Dns::start("localhost", [0, 0, 0, 0]);
    let ca = Ca::new("agent-init test CA");
    let mut f = fixture(
        "http-localhost-dot",
        &server.url_for_host("localhost."),
        &ca,
    );
    f.unset("AGENT_INIT_CA_FILE")
        .set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let resolv = b"nameserver 127.0.0.1\noptions timeout:2 attempts:2\n";
    let out = check_chrooted(&f, &[("etc/resolv.conf", resolv)]);
    let answered = dns.stop();
    f.assert_failed(&out, 78);
    let err = stderr(&out);
    assert!(err.contains("not loopback"), "{err}");
    assert!(
        answered >= 1,
        "the name was resolved through the DNS responder"
    );
    assert_eq!(server.connections(), 0, "nothing was sent");
}
