//! The images' HEALTHCHECK (`agent-init health`) under `podman healthcheck
//! run`: healthy while something answers on 8081, unhealthy against the
//! probe, which listens nowhere, and the agent runs on unharmed.

use super::*;

impl Container {
    /// `podman healthcheck run`: the image's HEALTHCHECK, run inside the
    /// container as the runtime runs it; (exit code, what podman printed).
    fn healthcheck(&self) -> (i32, String) {
        let out = podman()
            .args(["healthcheck", "run", &self.name])
            .output()
            .expect("podman healthcheck run");
        (out.status.code().unwrap_or(-1), output_text(&out))
    }
}

/// A worker's health server stand-in, for each image's runtime: 200 on
/// `GET /` at 127.0.0.1:8081, as a LiveKit worker's (the probe agents have
/// none, and a real worker needs a LiveKit server the container can reach).
const PY_HEALTH_SERVER: &str = "import http.server as h\nclass H(h.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'OK')\nh.HTTPServer(('127.0.0.1', 8081), H).serve_forever()\n";
const NODE_HEALTH_SERVER: &str =
    "require('http').createServer((q, r) => r.end('OK')).listen(8081, '127.0.0.1')";

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn the_images_healthcheck_runs_agent_init_health_healthy_with_a_worker_on_8081_unhealthy_without() {
    let images = images();
    for (lang, server) in [
        (Lang::Python, ["python", "-c", PY_HEALTH_SERVER]),
        (Lang::Node, ["node", "-e", NODE_HEALTH_SERVER]),
    ] {
        let image = lang.image(images);
        let out = check(
            podman().args([
                "image",
                "inspect",
                "--format",
                "{{json .Config.Healthcheck}}",
                image,
            ]),
            "podman image inspect",
        );
        let hc = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            hc.contains("/usr/local/bin/agent-init") && hc.contains("health"),
            "{image}: the HEALTHCHECK is agent-init health: {hc}"
        );
        // Something answers 200 on 8081: healthy, exit 0.
        let h = sealed(&format!("health-{}", lang.name()));
        let c = Container::start_with_healthcheck("health-ready", &flags(&h), image, &server);
        let last = std::cell::RefCell::new((0, String::new()));
        let healthy = support::wait_for(
            PATIENCE,
            Duration::from_millis(500),
            || {
                let (code, text) = c.healthcheck();
                *last.borrow_mut() = (code, text.clone());
                (code == 0).then_some(text)
            },
            || {
                format!(
                    "{image}: never healthy {:?}; logs:\n{}",
                    last.borrow(),
                    c.logs()
                )
            },
        );
        assert!(!healthy.contains("unhealthy"), "{image}: {healthy}");
        let out = check(
            podman().args(["inspect", "--format", "{{.State.Health.Status}}", &c.name]),
            "podman inspect",
        );
        let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(status, "healthy", "{image}: the runtime's record");
        // The probe agent runs but listens nowhere: unhealthy, exit 1.
        let c = Container::start_with_healthcheck("health-none", &flags(&h), image, &[]);
        wait_started(&h, &c);
        let (code, text) = c.healthcheck();
        assert_eq!(code, 1, "{image}: {text}");
        assert!(text.contains("unhealthy"), "{image}: {text}");
        assert_eq!(
            c.stop(60),
            PROBE_EXIT,
            "{image}: the agent ran on, unharmed"
        );
    }
}
