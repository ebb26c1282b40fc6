#!/usr/bin/env python3
"""The restart storm against agent-secrets itself: N agent-init processes,
started at once, fetch one token's bundle from `agent-secrets serve` (plain
http:// on 127.0.0.1, as storm/ does: TLS would measure the handshake, not
the herd) with the service's concurrency capped at K and its queue at Q.

--mode file is the same herd with no service in it: every agent-init opens
the same bundle from a file:// URL (downloaded once beforehand), so the start
times are what N processes and their shells cost on this machine alone. No
service can make the herd start faster than that.

Every agent's command is storm/check.sh, which checks that each expected
secret arrived with its exact value. The gate, the start and the markers are
storm/storm.py's (one loop for both storms). Requests are counted on the
client side (each agent-init logs every failed attempt before it retries, so
an agent's requests are 1 + its "attempt N failed" lines). A handshake the
kernel drops (a full listen backlog) is resent by the client's TCP and never
seen by agent-init, so the kernel's counters for the storm's span are
recorded too (ListenOverflows, TCPSynRetrans: for the whole network
namespace, so other traffic on the machine can add to them). Writes
OUT/result.json in the shape storm/storm.py writes, and prints it.

Usage: service_storm.py --bin AGENT_INIT --service-bin AGENT_SECRETS --out DIR
                        [--mode service|file] [--agents 1000] [--concurrency 8]
                        [--queue N] [--deadline 60] [--label TEXT]
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "storm"))
import storm  # noqa: E402  (storm/storm.py: the gate, the herd, the markers)

PATH = storm.PATH
KERNEL = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, log):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit("service_storm: the server exited: " + open(log).read())
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("service_storm: the server never listened")


def kernel_counters():
    """TcpExt counters of this network namespace (/proc/net/netstat)."""
    lines = open("/proc/net/netstat").read().splitlines()
    out = {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            out = dict(zip(names.split()[1:], (int(v) for v in values.split()[1:])))
    return {k: out.get(k, 0) for k in KERNEL}


def authorization(token):
    """PROTOCOL.md §3 and §4, as an agent sends it."""
    _, tid, key = token.strip().split(".")
    prk = hmac.new(b"lkbt1", base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)), hashlib.sha256).digest()
    auth = base64.urlsafe_b64encode(hmac.new(prk, b"auth\x01", hashlib.sha256).digest()).decode().rstrip("=")
    return "Bearer lkbt1.%s.%s" % (tid, auth)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--service-bin", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["service", "file"], default="service")
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--queue", type=int, default=None)
    p.add_argument("--deadline", type=int, default=60)
    p.add_argument("--label", default="agent-secrets")
    p.add_argument("--client-nice", type=int, default=0,
                   help="run the agents at this nice level (the server's CPU then stays its own)")
    a = p.parse_args()
    binary, service_bin = os.path.abspath(a.bin), os.path.abspath(a.service_bin)

    work = os.path.abspath(a.out)
    subprocess.run(["rm", "-rf", work], check=True)
    for d in ("ready", "markers", "logs"):
        os.makedirs(os.path.join(work, d))
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    key = os.path.join(work, "admin-key")
    with open(key, "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    os.chmod(key, 0o600)
    log = os.path.join(work, "server.log")
    args = [service_bin, "serve", "--listen", "127.0.0.1:%d" % port, "--data", os.path.join(work, "data"),
            "--admin-key-file", key, "--concurrency", str(a.concurrency)]
    if a.queue is not None:
        args += ["--queue", str(a.queue)]
    server = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=open(log, "wb"), env={"PATH": PATH})
    wait_listening(port, server, log)

    # The storm's secrets, as storm/storm.py seals them, created with the CLI.
    expected, cli = [], [service_bin, "create", "--service", url, "--admin-key-file", key]
    for i in range(1, 13):
        name, value = "STORM_%02d" % i, "storm-%d-%s=a b \u00e9" % (i, os.urandom(8).hex())
        expected.append("%s=%s" % (name, value))
        cli += ["--secrets", "%s=%s" % (name, value)]
    for name, value in [("LIVEKIT_URL", "wss://storm.example.livekit.cloud"), ("LIVEKIT_API_KEY", "APIstorm"),
                        ("LIVEKIT_API_SECRET", "storm-secret-" + os.urandom(8).hex())]:
        expected.append("%s=%s" % (name, value))
        cli += ["--secrets", "%s=%s" % (name, value)]
    token = subprocess.run(cli, cwd=work, env={"PATH": PATH}, capture_output=True, timeout=60,
                           check=True).stdout.decode().strip()
    expected_file = os.path.join(work, "expected.env")
    with open(expected_file, "w") as f:
        f.write("\n".join(expected) + "\n")
    token_file = os.path.join(work, "token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)
    source = url + "/v1/bundle"
    if a.mode == "file":
        # The very bundle the service serves, fetched once; then no service.
        bundle = os.path.join(work, "bundle.json")
        req = urllib.request.Request(source, headers={"Authorization": authorization(token)})
        with open(bundle, "wb") as f:
            f.write(urllib.request.urlopen(req, timeout=30).read())
        server.terminate()
        server.wait(timeout=30)
        server = None
        source = "file://" + bundle
    server_lines_before = len(open(log, errors="replace").read().splitlines())

    def agent(i):
        env = {"PATH": PATH, "LIVEKIT_BOOTSTRAP_TOKEN_FILE": token_file, "LIVEKIT_SECRETS_URL": source,
               "AGENT_INIT_TIMEOUT": str(a.deadline)}
        command = [binary, "/bin/sh", storm.CHECK, os.path.join(work, "markers", str(i)), expected_file]
        return storm.GATED_EXEC, command, env

    before = kernel_counters()
    t0, codes = storm.gated_herd(work, a.agents, agent, a.deadline, a.client_nice)
    kernel = {k: v - before[k] for k, v in kernel_counters().items()}
    if server is not None:
        server.terminate()
        server.wait(timeout=30)

    ok, partial, missing, started = storm.markers(work, a.agents, t0)
    per_agent, statuses = [], {}
    failed = re.compile(r"attempt \d+ failed \(([^)]*)\)")
    for i in range(a.agents):
        fails = failed.findall(open(os.path.join(work, "logs", str(i)), errors="replace").read())
        for what in fails:
            statuses[what] = statuses.get(what, 0) + 1
        per_agent.append(1 + len(fails))
    # The server's own view: each fetch's time from its arrival to its answer
    # (the gate's queue included), from its log lines.
    server_lines = open(log, errors="replace").read().splitlines()[server_lines_before:]
    handled = [int(m.group(1)) for m in (re.search(r"GET /v1/bundle .* -> 200 (\d+)ms", l) for l in server_lines) if m]
    result = {
        "mode": a.label,
        "source": a.mode,
        "agents": a.agents,
        "capacity": a.concurrency,
        "queue": a.queue,
        "deadline_s": a.deadline,
        "client_nice": a.client_nice,
        "all_started_s": round(started[-1], 3) if len(started) == a.agents else None,
        "started_p50_s": storm.quantile(started, 0.5, 3),
        "started_p95_s": storm.quantile(started, 0.95, 3),
        "requests": sum(per_agent) if a.mode == "service" else 0,
        "requests_per_agent": round(sum(per_agent) / a.agents, 3) if a.mode == "service" else 0,
        "max_requests_one_agent": max(per_agent) if a.mode == "service" else 0,
        "failed_attempts": statuses,
        "server_log_lines": len(server_lines),
        "server_fetch_ms_p50": statistics.median(handled) if handled else None,
        "server_fetch_ms_max": max(handled) if handled else None,
        "kernel": kernel,
        "exit_codes": {str(c): codes.count(c) for c in sorted(set(codes))},
        "markers_ok": ok,
        "markers_partial": partial,
        "markers_missing": missing,
        "started": [round(x, 4) for x in started],
    }
    with open(os.path.join(work, "result.json"), "w") as f:
        json.dump(result, f)
    print(json.dumps({k: v for k, v in result.items() if k != "started"}))
    sys.exit(0 if ok == a.agents else 1)


if __name__ == "__main__":
    main()
