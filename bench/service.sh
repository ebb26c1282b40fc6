#!/usr/bin/env bash
# The secrets service's benchmarks, in one command (never run by the tests):
#  1. Fetch throughput: agent-init-like clients (service/examples/fetch-load.rs:
#     a new client per fetch, so a full TLS handshake each time, the bundle
#     opened with the token) against `agent-secrets serve` and, side by side in
#     the same run, against nginx serving the same bundle as a static file over
#     TLS with the same certificate. ROUNDS alternating rounds; medians.
#  2. The restart storm: AGENTS agent-init processes started at once against
#     one agent-secrets with its concurrency capped (bench/service_storm.py),
#     with the default queue and with a short one; then the same storm against
#     storm/server.py shedding with a fixed Retry-After at the same capacity;
#     and the herd alone (the same processes opening a file:// bundle, no
#     service), the floor this machine sets. STORM_ROUNDS rounds; medians.
# Writes the "Secrets service" section of docs/BENCHMARKS.md and docs/service.svg.
# Usage: bash bench/service.sh [ROUNDS] [SECONDS] [AGENTS]   (loopback only; as root for apt)
#   env: THREADS (4), CONCURRENCY (8), STORM_ROUNDS (3), CLIENT_NICE (10)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}
agents=${3:-1000}
threads=${THREADS:-4}
concurrency=${CONCURRENCY:-8}
storm_rounds=${STORM_ROUNDS:-3}
nice=${CLIENT_NICE:-10}
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p agent-init --bin agent-init
# The server's own profile: built for speed (Cargo.toml, [profile.service]).
cargo build --profile service --quiet -p agent-secrets --bin agent-secrets --example fetch-load
rel=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu
init=$(realpath "$rel/release/agent-init") svc=$(realpath "$rel/service/agent-secrets")
load=$(realpath "$rel/service/examples/fetch-load")
out=$(realpath -m bench/out/service)
rm -rf "$out"
mkdir -p "$out"
ulimit -n 8192 2>/dev/null || true
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/service.sh: nothing listens on port $1" >&2
  exit 1
}

# One CA and one ECDSA P-256 server certificate, for both servers.
tls=$out/tls
mkdir -p "$tls"
openssl ecparam -name prime256v1 -genkey -noout -out "$tls/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$tls/ca-key.pem" -subj /CN=bench-ca -days 2 -out "$tls/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$tls/key.pem" 2>/dev/null
openssl req -new -key "$tls/key.pem" -subj /CN=127.0.0.1 -out "$tls/csr.pem" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$tls/ext"
openssl x509 -req -in "$tls/csr.pem" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial \
  -days 2 -extfile "$tls/ext" -out "$tls/cert.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$tls/key.pem" -out "$tls/key8.pem"

# agent-secrets over TLS, and a token with the storm's 15 secrets.
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/admin-key"
chmod 600 "$out/admin-key"
sp=$(port)
"$svc" serve --listen "127.0.0.1:$sp" --data "$out/data" --tls-cert "$tls/cert.pem" --tls-key "$tls/key8.pem" \
  --admin-key-file "$out/admin-key" 2> "$out/serve.log" &
pids+=($!)
wait_port "$sp"
inputs=()
for i in $(seq 1 12); do inputs+=(--secrets "STORM_$i=value-$i-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"); done
inputs+=(--secrets LIVEKIT_URL=wss://bench.example.livekit.cloud --secrets LIVEKIT_API_KEY=APIbench --secrets LIVEKIT_API_SECRET=bench-secret)
"$svc" create --service "https://127.0.0.1:$sp" --admin-key-file "$out/admin-key" --ca-file "$tls/ca.pem" \
  "${inputs[@]}" > "$out/token"

# nginx serving the very bundle agent-secrets serves, as a static file.
LIVEKIT_BOOTSTRAP_TOKEN_FILE=$out/token python3 - "$sp" "$tls/ca.pem" "$out/bundle.json" <<'EOF'
import base64, hashlib, hmac, os, ssl, sys, urllib.request
port, ca, dest = sys.argv[1:]
_, tid, key = open(os.environ["LIVEKIT_BOOTSTRAP_TOKEN_FILE"]).read().strip().split(".")
prk = hmac.new(b"lkbt1", base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)), hashlib.sha256).digest()
auth = base64.urlsafe_b64encode(hmac.new(prk, b"auth\x01", hashlib.sha256).digest()).decode().rstrip("=")
req = urllib.request.Request("https://127.0.0.1:%s/v1/bundle" % port, headers={"Authorization": "Bearer lkbt1.%s.%s" % (tid, auth)})
open(dest, "wb").write(urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)).read())
EOF
np=$(port)
mkdir -p "$out/nginx/logs"
cat > "$out/nginx/nginx.conf" <<EOF
worker_processes $(nproc);
pid $out/nginx/nginx.pid;
error_log $out/nginx/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $out/nginx/body;
  proxy_temp_path $out/nginx/proxy;
  fastcgi_temp_path $out/nginx/fastcgi;
  uwsgi_temp_path $out/nginx/uwsgi;
  scgi_temp_path $out/nginx/scgi;
  server {
    listen 127.0.0.1:$np ssl;
    ssl_certificate $tls/cert.pem;
    ssl_certificate_key $tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /v1/bundle { alias $out/bundle.json; default_type application/json; }
  }
}
EOF
"$nginx" -p "$out/nginx" -c "$out/nginx/nginx.conf" -g 'daemon off;' 2> "$out/nginx/stderr" &
pids+=($!)
wait_port "$np"

echo "== fetch throughput: $rounds rounds of ${seconds}s, $threads client threads" >&2
: > "$out/fetch.jsonl"
for r in $(seq "$rounds"); do
  for target in agent-secrets nginx; do
    p=$sp; [ "$target" = nginx ] && p=$np
    line=$("$load" --url "https://127.0.0.1:$p/v1/bundle" --token-file "$out/token" --ca-file "$tls/ca.pem" \
      --threads "$threads" --seconds "$seconds" --warmup 1)
    echo "{\"round\":$r,\"target\":\"$target\",\"result\":$line}" | tee -a "$out/fetch.jsonl" >&2
  done
done
cleanup
pids=()

echo "== one fetch, alone (the storm's floor)" >&2
sp=$(port)
"$svc" serve --listen "127.0.0.1:$sp" --data "$out/data" --admin-key-file "$out/admin-key" 2>> "$out/serve.log" &
pids+=($!)
wait_port "$sp"
# No TLS here, as in the storm: a single client, a new connection per fetch.
python3 - "$init" "$sp" "$out/token" "$load" "$tls/ca.pem" > "$out/one-fetch.json" <<'EOF'
import json, os, statistics, subprocess, sys, time
init, port, token = sys.argv[1:4]
env = {"PATH": "/usr/bin:/bin", "LIVEKIT_BOOTSTRAP_TOKEN_FILE": token,
       "LIVEKIT_SECRETS_URL": "http://127.0.0.1:%s/v1/bundle" % port}
runs = []
for _ in range(60):
    t = time.perf_counter()
    subprocess.run([init, "--check"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs.append(time.perf_counter() - t)
load, ca = sys.argv[4:6]
fetch = json.loads(subprocess.run([load, "--url", "http://127.0.0.1:%s/v1/bundle" % port, "--token-file", token,
                                   "--ca-file", ca, "--threads", "1", "--seconds", "3"],
                                  check=True, capture_output=True).stdout)
print(json.dumps({"agent_init_check_median_s": statistics.median(runs[10:]), "fetch_p50_ms": fetch["p50_ms"]}))
EOF
cat "$out/one-fetch.json" >&2
cleanup
pids=()

# The agents run at nice $nice, the servers at 0: on separate machines a
# fleet's processes do not take the service's CPU, and on these 2 shared
# cores they would (1000 runnable processes starve any server of its share).
# The herd alone (file://, no service, the same nice) is measured in every
# round: no service can make 1000 processes start faster than that.
echo "== restart storm: $agents agents, concurrency $concurrency, $storm_rounds rounds" >&2
one=$(python3 -c "import json; print(json.load(open('$out/one-fetch.json'))['agent_init_check_median_s'])")
for r in $(seq "$storm_rounds"); do
  python3 bench/service_storm.py --mode file --bin "$init" --service-bin "$svc" --out "$out/storm-herd/$r" \
    --agents "$agents" --client-nice "$nice" --label "the herd alone (file://, no service)" || true
  python3 bench/service_storm.py --bin "$init" --service-bin "$svc" --out "$out/storm-default/$r" \
    --agents "$agents" --concurrency "$concurrency" --client-nice "$nice" --label "agent-secrets (default queue)" || true
  python3 bench/service_storm.py --bin "$init" --service-bin "$svc" --out "$out/storm-short/$r" \
    --agents "$agents" --concurrency "$concurrency" --queue 64 --client-nice "$nice" --label "agent-secrets (queue 64)" || true
  python3 storm/storm.py --bin "$init" --mode retry-after --out "$out/storm-shed/$r" --agents "$agents" \
    --capacity "$concurrency" --service "$one" --deadline 60 --client-nice "$nice" || true
done

python3 bench/service_report.py "$out" docs/BENCHMARKS.md docs/service.svg
