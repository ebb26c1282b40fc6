//! PROTOCOL.md §4: transient answers are retried, `Retry-After` is honoured
//! (judged from the server's own request times), and a retry past the
//! deadline is not attempted.

use super::*;

/// Serves `first`, then the ordinary bundle; asserts the run succeeded
/// with the ordinary environment after exactly two requests, and returns
/// its output and the gap between the requests. The server timestamps each
/// request before answering it, so the gap holds the client's whole wait.
fn retried_once_after(name: &str, first: Reply) -> (Output, Duration) {
    let (ca, server) = serve(vec![first, Reply::ok(good_bundle())]);
    let f = fixture(name, &server.url(), &ca);
    let out = run_ordinary(&f);
    let r = server.requests();
    assert_eq!(r.len(), 2);
    (out, r[1].at - r[0].at)
}

#[test]
fn retry_after_seconds_on_503_is_honoured_before_the_200() {
    let (out, gap) = retried_once_after(
        "retry-after-503",
        Reply::status(503).header("Retry-After", "1"),
    );
    // At least the second asked for (the first jitter window alone is at
    // most 250 ms).
    assert!(gap >= Duration::from_millis(1000), "waited only {gap:?}");
    let what = "one line per retry names the attempt and the status";
    assert_a_line_has(&out, "attempt 1", "503", what);
}

#[test]
fn retry_after_http_date_is_honoured() {
    let (_, gap) = retried_once_after(
        "retry-after-date",
        Reply::status(503).retry_after_date_in(Duration::from_secs(3)),
    );
    // A date 3 s ahead, truncated to whole seconds, asks for more than 2 s.
    assert!(gap >= Duration::from_millis(1500), "waited only {gap:?}");
}

#[test]
fn retry_after_beyond_the_deadline_gives_up_at_once_with_69() {
    let (ca, server) = serve(vec![Reply::status(503).header("Retry-After", "3600")]);
    let mut f = fixture("retry-after-too-long", &server.url(), &ca);
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert_eq!(request_count(&server), 1, "no attempt it cannot finish");
}

#[test]
fn status_429_then_200_succeeds_after_one_retry() {
    let (ca, server) = serve(vec![Reply::status(429), Reply::ok(good_bundle())]);
    let f = fixture("429", &server.url(), &ca);
    run_ordinary(&f);
    assert_eq!(request_count(&server), 2);
}

#[test]
fn each_transient_status_is_retried_until_the_200() {
    for status in [408, 425, 500, 502, 504] {
        let (ca, server) = serve(vec![Reply::status(status), Reply::ok(good_bundle())]);
        let f = fixture(&format!("transient-{status}"), &server.url(), &ca);
        run_ordinary(&f);
        assert_eq!(request_count(&server), 2, "HTTP {status}");
    }
}

#[test]
fn connection_closed_without_an_answer_is_retried() {
    let (ca, server) = serve(vec![
        Reply::close_without_answer(),
        Reply::ok(good_bundle()),
    ]);
    let f = fixture("closed-unanswered", &server.url(), &ca);
    run_ordinary(&f);
    assert_eq!(request_count(&server), 2);
}

#[test]
fn truncated_body_is_retried_and_a_full_one_then_succeeds() {
    let sealed = good_bundle();
    let half = sealed.len() / 2;
    let (ca, server) = serve(vec![
        Reply::ok(sealed.clone()).truncated_to(half),
        Reply::ok(sealed),
    ]);
    let f = fixture("truncated-once", &server.url(), &ca);
    run_ordinary(&f);
    assert_eq!(request_count(&server), 2);
}
