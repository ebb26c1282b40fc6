//! Resource limits during the fetch: no file descriptor left (70 at once),
//! and a body over the cap refused having read little of it (counted with
//! strace).

use super::*;

#[test]
fn running_out_of_file_descriptors_during_the_fetch_exits_70_at_once() {
    let server = Server::start_plain(vec![Reply::ok(good_bundle())]);
    let ca = Ca::new("agent-init test CA");
    let mut f = fixture("emfile", &server.url(), &ca);
    f.unset("AGENT_INIT_CA_FILE");
    // Standard input, output and error take the three descriptors allowed:
    // the socket cannot be made. Waiting would not help, so no retry.
    let out = f
        .under("prlimit", &["--nofile=3"])
        .output()
        .expect("prlimit runs");
    f.assert_failed(&out, 70);
    let err = stderr(&out);
    assert!(err.contains("Too many open files"), "{err}");
    assert!(!err.contains("retrying"), "not retried: {err}");
    assert_eq!(server.connections(), 0);
}

/// Runs agent-init under strace and returns how many bytes it received
/// from sockets in all (std reads a socket with recv(2), which is
/// recvfrom(2)), with its output.
fn run_counting_received(f: &Harness) -> (u64, Output) {
    let log = f.dir.join("strace.log");
    let log_arg = log.display().to_string();
    let out = f
        .under(
            "strace",
            &[
                "-f",
                "-qq",
                "-e",
                "trace=recvfrom,recvmsg",
                "-e",
                "signal=none",
                "-o",
                &log_arg,
            ],
        )
        .output()
        .expect("strace runs");
    let trace = std::fs::read_to_string(&log).expect("strace wrote its log");
    let received = trace
        .lines()
        .filter_map(|l| {
            l.rsplit_once(") = ")?
                .1
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    (received, out)
}

#[test]
fn body_over_the_cap_is_refused_having_read_little_of_it() {
    // 1 MiB of body against a cap of 2 KiB, sent at once, over plain HTTP
    // (so what agent-init reads is the body itself). With a Content-Length,
    // the header alone refuses; without one, reading stops at the cap. Either
    // way no more than ureq's input buffer (16 KiB) is read ahead.
    let big = "p".repeat(1 << 20);
    for (what, reply) in [
        ("Content-Length", Reply::ok(big.clone())),
        ("chunked", Reply::ok(big.clone()).chunked()),
        ("no length", Reply::ok(big.clone()).without_length()),
    ] {
        let server = Server::start_plain(vec![reply]);
        let ca = Ca::new("agent-init test CA");
        let mut f = fixture("over-cap-reads", &server.url(), &ca);
        f.unset("AGENT_INIT_CA_FILE")
            .set("AGENT_INIT_MAX_BUNDLE", "2048");
        let (read, out) = run_counting_received(&f);
        f.assert_failed(&out, 65);
        assert!(read <= 16 << 10, "{what}: agent-init received {read} bytes");
    }
}
