//! A token that does not open the bundle: agent-init's exit code, the agent
//! never started, only agent-init spoke, and nothing secret in the logs.

use super::*;

/// Runs the Python image with `token` in place of the bundle's and asserts
/// the refusal: exit `code`, the agent never started, stdout empty and
/// every stderr line agent-init's, nothing forbidden printed.
fn assert_refused(name: &str, token: &str, code: i32) {
    let images = images();
    let mut h = sealed(name);
    h.set("LIVEKIT_BOOTSTRAP_TOKEN", token);
    if let Ok(other) = Token::parse(token) {
        h.forbidden.add_token(&other);
    }
    let o = run(&flags(&h), &images.python, &[]);
    h.assert_failed(&o, code);
    assert!(
        o.stdout.is_empty(),
        "only agent-init spoke: {}",
        output_text(&o)
    );
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn a_bundle_sealed_for_another_token_exits_65_and_never_starts_the_agent() {
    let other = Token::generate().unwrap();
    assert_refused("wrong-token", other.encode().expose(), 65);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn a_malformed_token_exits_78_and_never_starts_the_agent() {
    assert_refused("malformed-token", "lkbt1.not-a-token", 78);
}
