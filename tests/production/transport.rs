//! Which way the fetch goes: plain HTTP only to loopback (a name that only
//! looks like loopback is refused), and the proxy variables: CONNECT through
//! an HTTPS proxy, no proxy for loopback, HTTP_PROXY never for https, the
//! order of precedence, and a proxy that does not parse.

use super::*;

/// A proxy, and a server with a certificate for `secrets.test`, a name only
/// the proxy resolves (so a fetch that reaches the server went through it).
fn proxy_and_server() -> (Proxy, Ca, Server) {
    let ca = Ca::new("agent-init test CA");
    let server = Server::start(
        &ca.issue(&["secrets.test"], Validity::Good),
        vec![Reply::ok(good_bundle())],
    );
    (Proxy::start(), ca, server)
}

#[test]
fn fetch_through_an_https_proxy_uses_connect() {
    // The client must leave the name to the proxy.
    let (proxy, ca, server) = proxy_and_server();
    let mut f = fixture("proxy", &server.url_for_host("secrets.test"), &ca);
    f.set("HTTPS_PROXY", proxy.url());
    let out = f.run();
    let env = f.assert_succeeded(&out);
    // HTTPS_PROXY is the agent's too: it is inherited, not stripped.
    assert_environment(
        &env,
        &expected_environment(&[("HTTPS_PROXY", &proxy.url())]),
    );
    assert_eq!(
        proxy.connects(),
        [format!("secrets.test:{}", server.port())],
        "the fetch went through one CONNECT tunnel to the server"
    );
    assert_eq!(
        server.requests()[0].header("Authorization"),
        bundle::vector_authorization()
    );
}

#[test]
fn loopback_secrets_url_never_goes_through_a_proxy() {
    // A proxy's loopback is not this container's, and plain http:// is
    // allowed only because the request never leaves the host.
    let proxy = Proxy::start();
    let plain = Server::start_plain(vec![Reply::ok(good_bundle())]);
    let (ca, tls) = serve(vec![Reply::ok(good_bundle())]);
    for url in [plain.url(), plain.url_for_host("localhost"), tls.url()] {
        let mut f = fixture("loopback-no-proxy", &url, &ca);
        for var in ["ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"] {
            f.set(var, proxy.url());
        }
        let out = f.run();
        f.assert_succeeded(&out);
    }
    assert_eq!(proxy.connects(), Vec::<String>::new());
    assert_eq!(request_count(&plain), 2);
    assert_eq!(request_count(&tls), 1);
}

#[test]
fn plain_http_to_a_loopback_host_is_accepted() {
    for host in ["127.0.0.1", "localhost"] {
        let server = Server::start_plain(vec![Reply::ok(good_bundle())]);
        let ca = Ca::new("agent-init test CA");
        let f = fixture("http-loopback", &server.url_for_host(host), &ca);
        run_ordinary(&f);
        assert_eq!(
            server.requests()[0].header("Authorization"),
            bundle::vector_authorization(),
            "{host}"
        );
    }
}

#[test]
#[ignore = "needs root: unshare --mount --net"]
fn plain_http_to_localhost_that_etc_hosts_maps_elsewhere_exits_78_sending_nothing() {
    support::needs_root("unshare --mount --net");
    let ca = Ca::new("agent-init test CA");
    let mut f = fixture(
        "http-localhost-remapped",
        "http://localhost:8080/v1/secrets",
        &ca,
    );
    // 192.0.2.0/24 is TEST-NET-1, and the run has a network namespace of its
    // own with no route anywhere: were a connect tried, nothing would leave.
    let hosts = f.dir.join("hosts");
    std::fs::write(&hosts, "192.0.2.10 localhost\n").unwrap();
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let hosts = hosts.display().to_string();
    let bind_hosts = "mount --bind \"$0\" /etc/hosts && exec \"$@\"";
    let out = f
        .under(
            "unshare",
            &[
                "--mount",
                "--net",
                "--propagation",
                "private",
                "sh",
                "-c",
                bind_hosts,
                &hosts,
            ],
        )
        .output()
        .expect("unshare runs");
    f.assert_failed(&out, 78);
    let err = stderr(&out);
    assert!(err.contains("LIVEKIT_SECRETS_URL"), "{err}");
    assert!(err.contains("not loopback"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
}

#[test]
fn https_url_never_uses_http_proxy() {
    // Through the proxy the fetch would succeed; direct, the name does not
    // resolve.
    let (proxy, ca, server) = proxy_and_server();
    let mut f = fixture(
        "http-proxy-ignored",
        &server.url_for_host("secrets.test"),
        &ca,
    );
    f.set("HTTP_PROXY", proxy.url())
        .set("http_proxy", proxy.url())
        .set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert_eq!(proxy.connects(), Vec::<String>::new());
    assert_eq!(request_count(&server), 0);
}

#[test]
fn https_proxy_wins_over_all_proxy_and_lower_case_over_upper() {
    let (proxy, ca, server) = proxy_and_server();
    let dead = format!("http://127.0.0.1:{}", closed_port());
    for (good, others) in [
        ("HTTPS_PROXY", ["ALL_PROXY", "all_proxy"]),
        ("https_proxy", ["HTTPS_PROXY", "ALL_PROXY"]),
        ("all_proxy", ["ALL_PROXY", "HTTP_PROXY"]),
    ] {
        let mut f = fixture("proxy-order", &server.url_for_host("secrets.test"), &ca);
        f.set(good, proxy.url());
        for var in others {
            f.set(var, &dead);
        }
        let out = f.run();
        let env = f.assert_succeeded(&out);
        assert!(
            env.contains(&format!("{good}={}", proxy.url()).into_bytes()),
            "{good} is passed on"
        );
    }
    assert_eq!(
        proxy.connects().len(),
        3,
        "each fetch went through {:?}",
        proxy.connects()
    );
    assert_eq!(request_count(&server), 3);
}

#[test]
fn proxy_variable_that_does_not_parse_exits_78_naming_it_and_not_its_value() {
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
        let ca = Ca::new("agent-init test CA");
        let mut f = fixture("proxy-bad", "https://secrets.invalid/v1/secrets", &ca);
        f.set(var, "http://[bad-proxy-71e2")
            .set("AGENT_INIT_TIMEOUT", IMPATIENT)
            .forbid(&["bad-proxy-71e2"]);
        let out = f.run();
        f.assert_failed(&out, 78);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{var} is not a valid proxy URL")),
            "{err}"
        );
    }
}
