#!/usr/bin/env python3
"""A fleet-restart storm: N agents start at the same instant against a
secrets service that serves at most K requests at once.

Modes (the client side; the server is storm/server.py in every mode):
  backoff     N agent-init processes; the server turns the excess away with
              503 and no Retry-After, so agent-init's own exponential backoff
              with full jitter spaces the retries.
  retry-after N agent-init processes; the server turns the excess away with
              429 and `Retry-After: 1`, which agent-init honours as asked.
  fixed       N shell loops that retry with curl every INTERVAL seconds
              (what an entrypoint script with `until curl ...; do sleep 1;
              done` does), then run agent-init on the downloaded bundle via
              file://; the server answers 503 without Retry-After, as in
              `backoff`. Starting a curl process per attempt on two cores
              spreads the herd a little by itself.
  fixed-async The same fixed-interval policy without that spread: N
              coroutines in this process, each one HTTP client that retries
              exactly INTERVAL after a refusal, then runs agent-init on the
              downloaded bundle via file://. Server as in `backoff`.

Every agent's command is storm/check.sh, which checks that each expected
secret arrived with its exact value and writes a marker. The result (times,
requests per agent, the server's request rate over time, exit codes, marker
verdicts) is written to OUT/<mode>/result.json and summarised on stdout.

Loopback only; every wait is bounded; the server stops itself.

Usage: storm.py --bin PATH --mode MODE --out DIR [--agents 200] [--capacity 8]
                [--service 0.1] [--deadline 60] [--interval 1]
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = "/usr/local/bin:/usr/bin:/bin"
CHECK = os.path.join(HERE, "check.sh")

# Held until the gate opens, then becomes agent-init (exec: no extra process).
GATED_EXEC = 'echo > "$READY/$$"; read _ < "$GATE"; exec "$@"'
# The fixed-interval client: curl until a 200, INTERVAL apart, inside the
# same deadline; then agent-init opens the downloaded bundle from a file.
GATED_FIXED = r"""echo > "$READY/$$"; read _ < "$GATE"
end=$(( $(date +%s) + DEADLINE ))
until curl -fs --max-time "$DEADLINE" -o "$BUNDLE" -H "Authorization: $AUTH" "$URL"; do
  [ "$(date +%s)" -lt "$end" ] || exit 69
  sleep "$INTERVAL"
done
LIVEKIT_SECRETS_URL="file://$BUNDLE" exec "$@"
"""


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def authorization(token):
    """PROTOCOL.md §3 and §4: Bearer lkbt1.ID.b64u(HKDF(KEY, "auth"))."""
    _, tid, key = token.strip().split(".")
    prk = hmac.new(b"lkbt1", b64u_decode(key), hashlib.sha256).digest()
    auth_key = hmac.new(prk, b"auth\x01", hashlib.sha256).digest()
    return "Bearer lkbt1.%s.%s" % (tid, base64.urlsafe_b64encode(auth_key).decode().rstrip("="))


def seal(binary, work, n_secrets=12):
    """Seals N secrets (values with '=', spaces and non-ASCII) and the three
    LiveKit values with `agent-init seal`; returns (token, expected lines)."""
    expected = []
    args = [binary, "seal"]
    for i in range(1, n_secrets + 1):
        name = "STORM_%02d" % i
        value = "storm-%d-%s=a b \u00e9" % (i, secrets.token_hex(8))
        expected.append("%s=%s" % (name, value))
        args += ["--secrets", "%s=%s" % (name, value)]
    livekit = [
        ("LIVEKIT_URL", "wss://storm.example.livekit.cloud"),
        ("LIVEKIT_API_KEY", "APIstorm"),
        ("LIVEKIT_API_SECRET", "storm-secret-" + secrets.token_hex(8)),
    ]
    for name, value in livekit:
        expected.append("%s=%s" % (name, value))
        args += ["--secrets", "%s=%s" % (name, value)]
    empty = os.path.join(work, "seal-cwd")
    os.makedirs(empty, exist_ok=True)
    bundle = os.path.join(work, "bundle.json")
    out = subprocess.run(
        args + ["--out", bundle], cwd=empty, env={"PATH": PATH}, capture_output=True, timeout=30, check=True
    )
    with open(os.path.join(work, "expected.env"), "w") as f:
        f.write("\n".join(expected) + "\n")
    return out.stdout.decode().strip(), bundle


async def fixed_async(a, work, port, token, auth, expected):
    """The fixed-interval client as coroutines: returns (t0, exit codes)."""
    binary = os.path.abspath(a.bin)

    async def agent(i):
        end = time.time() + a.deadline
        while True:
            status, body = 0, b""
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(("GET /v1/agents/%d HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                         "Connection: close\r\n\r\n" % (i, auth)).encode())
                await w.drain()
                raw = await asyncio.wait_for(r.read(), a.deadline)
                w.close()
                head, _, body = raw.partition(b"\r\n\r\n")
                status = int(head.split(b" ")[1])
            except (OSError, ValueError, IndexError, asyncio.TimeoutError):
                pass
            if status == 200:
                break
            if time.time() + a.interval >= end:
                return 69
            await asyncio.sleep(a.interval)
        path = os.path.join(work, "bundles", str(i))
        with open(path, "wb") as f:
            f.write(body)
        env = {"PATH": PATH, "LIVEKIT_BOOTSTRAP_TOKEN": token, "LIVEKIT_SECRETS_URL": "file://" + path}
        with open(os.path.join(work, "logs", str(i)), "wb") as log:
            p = await asyncio.create_subprocess_exec(
                binary, "/bin/sh", CHECK, os.path.join(work, "markers", str(i)), expected,
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            return await p.wait()

    t0 = time.time()
    return t0, await asyncio.gather(*(agent(i) for i in range(a.agents)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--mode", required=True, choices=["backoff", "retry-after", "fixed", "fixed-async"])
    p.add_argument("--out", required=True)
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--capacity", type=int, default=8)
    p.add_argument("--service", type=float, default=0.1)
    p.add_argument("--deadline", type=int, default=60)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--client-nice", type=int, default=0, help="the agents' nice level (process modes)")
    a = p.parse_args()

    work = os.path.join(os.path.abspath(a.out), a.mode)
    subprocess.run(["rm", "-rf", work], check=True)
    for d in ("ready", "markers", "logs", "bundles"):
        os.makedirs(os.path.join(work, d))
    token, bundle = seal(os.path.abspath(a.bin), work)
    auth = authorization(token)

    port_file = os.path.join(work, "port")
    server_log = os.path.join(work, "server.json")
    server_args = [
        sys.executable, os.path.join(HERE, "server.py"), port_file, bundle, auth, server_log,
        "--capacity", str(a.capacity), "--service", str(a.service),
        "--lifetime", str(a.deadline + 60),
    ]
    if a.mode == "retry-after":
        server_args += ["--status", "429", "--retry-after", "1"]
    server = subprocess.Popen(server_args)
    for _ in range(100):
        if os.path.exists(port_file):
            break
        time.sleep(0.05)
    port = int(open(port_file).read())

    if a.mode == "fixed-async":
        t0, codes = asyncio.run(fixed_async(a, work, port, token, auth, os.path.join(work, "expected.env")))
        codes = list(codes)
    else:
        t0, codes = run_processes(a, work, port, token, auth)
    finish(a, work, server, server_log, t0, codes)


def run_processes(a, work, port, token, auth):
    """Starts N gated agent-init processes against storm/server.py, opens the
    gate, waits: returns (t0, exit codes)."""
    expected = os.path.join(work, "expected.env")

    def agent(i):
        url = "http://127.0.0.1:%d/v1/agents/%d" % (port, i)
        env = {"PATH": PATH, "LIVEKIT_BOOTSTRAP_TOKEN": token, "AGENT_INIT_TIMEOUT": str(a.deadline)}
        command = [os.path.abspath(a.bin), "/bin/sh", CHECK, os.path.join(work, "markers", str(i)), expected]
        if a.mode == "fixed":
            env.update({"URL": url, "AUTH": auth, "BUNDLE": os.path.join(work, "bundles", str(i)),
                        "DEADLINE": str(a.deadline), "INTERVAL": str(a.interval)})
            return GATED_FIXED, command, env
        env["LIVEKIT_SECRETS_URL"] = url
        return GATED_EXEC, command, env

    return gated_herd(work, a.agents, agent, a.deadline, a.client_nice)


def gated_herd(work, agents, agent, deadline, nice=0):
    """The storm's start: AGENTS shells, each held at a FIFO gate after
    writing WORK/ready/PID, then released at one instant (EOF for every
    reader) to run its command. `agent(i)` gives agent i's (wrapper script,
    command argv, environment); the wrapper reads $GATE and $READY, which
    are added here. Each agent's stdout and stderr go to WORK/logs/i. Waits
    for every agent, DEADLINE + 30 s at most (then kills the rest); returns
    (t0, exit codes), t0 the instant the gate opened. NICE lowers the
    agents' CPU priority (the clients then do not take the server's CPU, as
    on separate machines). Shared by this storm and bench/service_storm.py."""
    gate = os.path.join(work, "gate")
    os.mkfifo(gate)
    ready = os.path.join(work, "ready")
    procs = []
    for i in range(agents):
        wrapper, command, env = agent(i)
        env = dict(env, GATE=gate, READY=ready)
        log = open(os.path.join(work, "logs", str(i)), "wb")
        procs.append(subprocess.Popen(["/bin/sh", "-c", wrapper, "sh"] + command, env=env,
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      preexec_fn=(lambda: os.nice(nice)) if nice else None))
        log.close()
    limit = time.time() + 120
    while len(os.listdir(ready)) < agents:
        if time.time() > limit:
            for pr in procs:
                pr.kill()
            sys.exit("storm: the agents did not all get ready")
        time.sleep(0.05)
    time.sleep(0.3)  # each has written its ready file; let it block on the gate
    w = os.open(gate, os.O_WRONLY)
    time.sleep(0.2)
    t0 = time.time()
    os.close(w)  # EOF for every reader at once: the fleet restarts

    codes = []
    hard_stop = t0 + deadline + 30
    for pr in procs:
        try:
            codes.append(pr.wait(timeout=max(0.1, hard_stop - time.time())))
        except subprocess.TimeoutExpired:
            pr.kill()
            codes.append(pr.wait())
    return t0, codes


def markers(work, agents, t0):
    """storm/check.sh's verdicts: (ok, partial, missing, sorted start times
    of the agents that got every secret, in seconds after t0)."""
    ok = partial = missing = 0
    started = []
    for i in range(agents):
        m = os.path.join(work, "markers", str(i))
        if not os.path.exists(m):
            missing += 1
        elif open(m).read().startswith("ok "):
            ok += 1
            started.append(os.stat(m).st_mtime_ns / 1e9 - t0)
        else:
            partial += 1
    started.sort()
    return ok, partial, missing, started


def quantile(started, f, digits=2):
    """The start time below which a fraction F of the started agents lie."""
    return round(started[min(len(started) - 1, int(f * len(started)))], digits) if started else None


def finish(a, work, server, server_log, t0, codes):
    """Stops the server, reads its log and the markers, writes result.json."""
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    events = json.load(open(server_log))["events"]

    ok, partial, missing, started = markers(work, a.agents, t0)
    per_agent = {}
    for t, status, _, path in events:
        per_agent[path] = per_agent.get(path, 0) + 1
    bin_s = 0.1
    end = max([t - t0 for t, *_ in events] + started + [0.0])
    bins = [[0, 0] for _ in range(int(end / bin_s) + 2)]
    for t, status, *_ in events:
        k = max(0, int((t - t0) / bin_s))
        bins[k][0] += 1
        bins[k][1] += status == 200
    window = int(round(1 / bin_s))
    peak_1s = max(sum(b[0] for b in bins[i:i + window]) for i in range(len(bins)))
    q = lambda f: quantile(started, f)
    result = {
        "mode": a.mode,
        "agents": a.agents,
        "capacity": a.capacity,
        "service_s": a.service,
        "deadline_s": a.deadline,
        "client_nice": a.client_nice,
        "all_started_s": round(started[-1], 2) if len(started) == a.agents else None,
        "started_p50_s": q(0.5),
        "started_p95_s": q(0.95),
        "requests": len(events),
        "requests_per_agent": round(len(events) / a.agents, 2),
        "max_requests_one_agent": max(per_agent.values()) if per_agent else 0,
        "ok_responses": sum(1 for e in events if e[1] == 200),
        "peak_rate_100ms_per_s": max(b[0] for b in bins) / bin_s,
        "peak_rate_1s_per_s": peak_1s,
        "exit_codes": {str(c): codes.count(c) for c in sorted(set(codes))},
        "gave_up_69": codes.count(69),
        "markers_ok": ok,
        "markers_partial": partial,
        "markers_missing": missing,
        "bin_s": bin_s,
        "rate": [[round(i * bin_s, 1), b[0] / bin_s, b[1] / bin_s] for i, b in enumerate(bins)],
        "started": [round(x, 4) for x in started],
    }
    with open(os.path.join(work, "result.json"), "w") as f:
        json.dump(result, f)
    print(json.dumps({k: v for k, v in result.items() if k not in ("rate", "started")}))
    # Every agent must have started, with every secret, within the deadline.
    good = ok == a.agents and result["all_started_s"] is not None and result["all_started_s"] < a.deadline
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
