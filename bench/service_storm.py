#!/usr/bin/env python3
"""The restart storm against agent-secrets itself: N agent-init processes,
started at once, fetch one token's bundle from `agent-secrets serve` (plain
http:// on 127.0.0.1, as storm/ does: TLS would measure the handshake, not
the herd) with the service's concurrency capped at K and its queue at Q.

Every agent's command is storm/check.sh, which checks that each expected
secret arrived with its exact value. Requests are counted on the client side
(each agent-init logs every failed attempt before it retries, so an agent's
requests are 1 + its "attempt N failed" lines) and, where the server logs
them, on the server side. Writes OUT/result.json in the shape storm/storm.py
writes, and prints it.

Usage: service_storm.py --bin AGENT_INIT --service-bin AGENT_SECRETS --out DIR
                        [--agents 1000] [--concurrency 8] [--queue N] [--deadline 60]
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STORM = os.path.join(HERE, "..", "storm")
PATH = "/usr/local/bin:/usr/bin:/bin"
# Held until the gate opens, then becomes agent-init (exec: no extra process).
GATED_EXEC = 'echo > "$READY/$$"; read _ < "$GATE"; exec "$@"'


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--service-bin", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--queue", type=int, default=None)
    p.add_argument("--deadline", type=int, default=60)
    p.add_argument("--label", default="agent-secrets")
    a = p.parse_args()

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
    args = [a.service_bin, "serve", "--listen", "127.0.0.1:%d" % port, "--data", os.path.join(work, "data"),
            "--admin-key-file", key, "--concurrency", str(a.concurrency)]
    if a.queue is not None:
        args += ["--queue", str(a.queue)]
    server = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=open(log, "wb"), env={"PATH": PATH})
    wait_listening(port, server, log)

    # The storm's secrets, as storm/storm.py seals them, created with the CLI.
    expected, cli = [], [a.service_bin, "create", "--service", url, "--admin-key-file", key]
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
    server_lines_before = len(open(log, errors="replace").read().splitlines())

    gate = os.path.join(work, "gate")
    os.mkfifo(gate)
    ready = os.path.join(work, "ready")
    procs = []
    for i in range(a.agents):
        env = {"PATH": PATH, "GATE": gate, "READY": ready, "LIVEKIT_BOOTSTRAP_TOKEN_FILE": token_file,
               "LIVEKIT_SECRETS_URL": url + "/v1/bundle", "AGENT_INIT_TIMEOUT": str(a.deadline)}
        command = [a.bin, "/bin/sh", os.path.join(STORM, "check.sh"), os.path.join(work, "markers", str(i)),
                   expected_file]
        out = open(os.path.join(work, "logs", str(i)), "wb")
        procs.append(subprocess.Popen(["/bin/sh", "-c", GATED_EXEC, "sh"] + command, env=env,
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out))
        out.close()
    limit = time.time() + 120
    while len(os.listdir(ready)) < a.agents:
        if time.time() > limit:
            sys.exit("service_storm: the agents did not all get ready")
        time.sleep(0.05)
    time.sleep(0.3)
    w = os.open(gate, os.O_WRONLY)
    time.sleep(0.2)
    t0 = time.time()
    os.close(w)  # EOF for every reader at once: the fleet restarts
    codes = []
    hard_stop = t0 + a.deadline + 30
    for pr in procs:
        try:
            codes.append(pr.wait(timeout=max(0.1, hard_stop - time.time())))
        except subprocess.TimeoutExpired:
            pr.kill()
            codes.append(pr.wait())
    server.terminate()
    server.wait(timeout=30)

    ok = partial = missing = 0
    started, per_agent, statuses = [], [], {}
    failed = re.compile(r"attempt \d+ failed \(([^)]*)\)")
    for i in range(a.agents):
        m = os.path.join(work, "markers", str(i))
        text = open(os.path.join(work, "logs", str(i)), errors="replace").read()
        fails = failed.findall(text)
        for what in fails:
            statuses[what] = statuses.get(what, 0) + 1
        per_agent.append(1 + len(fails))
        if not os.path.exists(m):
            missing += 1
        elif open(m).read().startswith("ok "):
            ok += 1
            started.append(os.stat(m).st_mtime_ns / 1e9 - t0)
        else:
            partial += 1
    started.sort()
    server_lines = open(log, errors="replace").read().splitlines()[server_lines_before:]
    q = lambda f: round(started[min(len(started) - 1, int(f * len(started)))], 3) if started else None
    result = {
        "mode": a.label,
        "agents": a.agents,
        "capacity": a.concurrency,
        "queue": a.queue,
        "deadline_s": a.deadline,
        "all_started_s": round(started[-1], 3) if len(started) == a.agents else None,
        "started_p50_s": q(0.5),
        "started_p95_s": q(0.95),
        "requests": sum(per_agent),
        "requests_per_agent": round(sum(per_agent) / a.agents, 3),
        "max_requests_one_agent": max(per_agent),
        "failed_attempts": statuses,
        "server_log_lines": len(server_lines),
        "exit_codes": {str(c): codes.count(c) for c in sorted(set(codes))},
        "markers_ok": ok,
        "markers_partial": partial,
        "markers_missing": missing,
    }
    with open(os.path.join(work, "result.json"), "w") as f:
        json.dump(result, f)
    print(json.dumps(result))
    sys.exit(0 if ok == a.agents else 1)


if __name__ == "__main__":
    main()
