#!/usr/bin/env bash
# agent-init's benchmark suite: what it costs a container, side by side with
# tini and dumb-init. One command, as root on Debian:
#
#   bash bench/run.sh
#
# Installs what it needs, builds the release binary, measures start-up,
# scale, size and the in-process hot paths, and writes docs/BENCHMARKS.md
# and docs/benchmarks.svg. Raw results stay in bench/out/ (not committed).
#
# Knobs (environment): CARGO_TARGET_DIR (default ./target), BENCH_RUNS
# (start-up runs per variant, default 1500), BENCH_WARMUP (default 100),
# BENCH_SCALE_RUNS (default 30), BENCH_RSS_RUNS (default 9),
# BENCH_SKIP_CRITERION=1 and BENCH_SKIP_BLOAT=1 to skip the slow builds
# (their previous results in bench/out/ are reused if present).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=${BENCH_RUNS:-1500}
WARMUP=${BENCH_WARMUP:-100}
SCALE_RUNS=${BENCH_SCALE_RUNS:-30}
RSS_RUNS=${BENCH_RSS_RUNS:-9}
SCALE_SIZES=(1 10 100 500 1000)
VALUE_BYTES=16384

say() { printf 'bench: %s\n' "$*" >&2; }

# --- What the suite needs --------------------------------------------------
. scripts/lib.sh
apt_need hyperfine:hyperfine tini:tini tini-static:tini dumb-init:dumb-init catatonit:catatonit \
  /usr/bin/time:time gcc:gcc openssl:openssl python3:python3-minimal file:file size:binutils
if [ "${BENCH_SKIP_BLOAT:-0}" != 1 ] && ! cargo bloat --version >/dev/null 2>&1; then
  say "installing cargo-bloat"
  cargo install --locked cargo-bloat
fi

rm -rf "$OUT/run" && mkdir -p "$OUT/run" "$OUT/fixtures" "$OUT/tls" "$ROOT/docs"
RUN=$OUT/run

# --- The machine, before anything runs ------------------------------------
{
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores=$(nproc)"
  echo "kernel=$(uname -sr)"
  echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "rustc=$(rustc --version)"
  echo "hyperfine=$(hyperfine --version)"
  echo "tini=$(tini --version 2>&1 | head -1)"
  echo "dumb-init=$(dumb-init --version 2>&1 | head -1)"
  echo "catatonit=$(catatonit --version 2>&1 | head -1)"
  echo "time=$(dpkg-query -W -f='GNU time ${Version}' time 2>/dev/null || echo unknown)"
  echo "gcc=$(gcc --version | head -1)"
  echo "openssl=$(openssl version)"
  echo "python=$(python3 --version 2>&1)"
  echo "cargo-bloat=cargo-bloat $(cargo bloat --version 2>/dev/null | sed "s/^cargo-bloat //" || echo "not installed")"
} > "$RUN/machine.txt"

# --- Build -----------------------------------------------------------------
say "building the release binary (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release --bin agent-init --example bench-fixtures
REL=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
AI=$REL/agent-init
FX=$REL/examples/bench-fixtures
file -b "$AI" > "$RUN/binary-file.txt"
CF=(-static -nostdlib -O2 -fno-stack-protector -fno-asynchronous-unwind-tables -fno-builtin -Wl,--build-id=none -s)
gcc "${CF[@]}" -o "$OUT/noop" bench/noop.c
gcc "${CF[@]}" -o "$OUT/launch" bench/launch.c
NOOP=$OUT/noop
LAUNCH=$OUT/launch

# --- Fixtures --------------------------------------------------------------
say "writing fixtures"
FIX=$OUT/fixtures
"$FX" dotenv 20 64 "$FIX/bench.env"
"$FX" bundle 20 64 "$FIX/bundle-20.json" > "$FIX/bundle-20.token"
for n in "${SCALE_SIZES[@]}"; do
  "$FX" bundle "$n" "$VALUE_BYTES" "$FIX/scale-$n.json" > "$FIX/scale-$n.token"
done

# A CA and a loopback server certificate (ECDSA P-256), made fresh each run.
TLS=$OUT/tls
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
  -subj "/CN=agent-init bench CA" -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -subj "/CN=127.0.0.1" -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$TLS/ext.cnf"
openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
  -days 2 -extfile "$TLS/ext.cnf" -out "$TLS/server.pem" 2>/dev/null

rm -rf "$RUN/port" "$OUT/www" && mkdir -p "$OUT/www/v1/agents/bench"
cp "$FIX/bundle-20.json" "$OUT/www/v1/agents/bench/bundle"
bash bench/serve.sh "$OUT/www" "$TLS/server.pem" "$TLS/server.key" "$RUN/port" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$RUN/port" ] && break; sleep 0.1; done
[ -s "$RUN/port" ] || { say "the HTTPS server did not start"; exit 1; }
PORT=$(cat "$RUN/port")

# --- The variants ----------------------------------------------------------
# Every variant runs through `launch`, which sets its exact environment and
# execs it: one fixed, tiny cost that every row pays, the baseline included.
BASE_ENV=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/root)
TOK20=$(cat "$FIX/bundle-20.token")
FILE_ENV=("${BASE_ENV[@]}" "LIVEKIT_BOOTSTRAP_TOKEN=$TOK20" "LIVEKIT_SECRETS_URL=file://$FIX/bundle-20.json")
HTTPS_ENV=("${BASE_ENV[@]}" "LIVEKIT_BOOTSTRAP_TOKEN=$TOK20"
           "LIVEKIT_SECRETS_URL=https://127.0.0.1:$PORT/v1/agents/bench/bundle" "AGENT_INIT_CA_FILE=$TLS/ca.pem")

names=(); cmds=()
add() { names+=("$1"); shift; cmds+=("$*"); }
add "direct"                       "$LAUNCH" "${BASE_ENV[@]}" -- "$NOOP"
add "tini -s"                      "$LAUNCH" "${BASE_ENV[@]}" -- /usr/bin/tini -s -- "$NOOP"
add "tini-static -s"               "$LAUNCH" "${BASE_ENV[@]}" -- /usr/bin/tini-static -s -- "$NOOP"
add "dumb-init"                    "$LAUNCH" "${BASE_ENV[@]}" -- /usr/bin/dumb-init "$NOOP"
add "agent-init local .env (20)"   "$LAUNCH" "${BASE_ENV[@]}" -- "$AI" --secrets-file "$FIX/bench.env" "$NOOP"
add "agent-init file:// (20)"      "$LAUNCH" "${FILE_ENV[@]}" -- "$AI" "$NOOP"
add "agent-init https:// (20)"     "$LAUNCH" "${HTTPS_ENV[@]}" -- "$AI" "$NOOP"
add "agent-init --supervise (20)"  "$LAUNCH" "${FILE_ENV[@]}" -- "$AI" --supervise "$NOOP"

# Each variant once, for its exit status and stderr: a failing one is left
# out of the timing and the report says why.
say "probing the variants"
: > "$RUN/probe.tsv"
hf_args=()
for i in "${!names[@]}"; do
  set +e
  ${cmds[$i]} > /dev/null 2> "$RUN/probe-$i.err"
  rc=$?
  set -e
  printf '%s\t%s\t%s\n' "${names[$i]}" "$rc" "$(head -c 300 "$RUN/probe-$i.err" | tr '\n\t' '  ')" >> "$RUN/probe.tsv"
  if [ "$rc" = 0 ]; then
    hf_args+=(-n "${names[$i]}" "${cmds[$i]}")
  else
    say "left out: ${names[$i]} exited $rc: $(head -1 "$RUN/probe-$i.err")"
  fi
done

say "start-up: $(( ${#hf_args[@]} / 3 )) variants, $RUNS runs each after $WARMUP warm-up runs"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic \
  --export-json "$RUN/startup.json" "${hf_args[@]}" > "$RUN/startup.txt"

# Peak RSS of each start-up variant (the exec'd no-op adds nothing: its own
# RSS is one page, and the kernel keeps the larger peak across execve).
say "peak RSS of the start-up variants ($RSS_RUNS runs each)"
: > "$RUN/rss-startup.tsv"
for i in "${!names[@]}"; do
  for _ in $(seq "$RSS_RUNS"); do
    /usr/bin/time -f '%M %x' -o "$RUN/time.out" ${cmds[$i]} > /dev/null 2>&1 || true
    printf '%s\t%s\n' "${names[$i]}" "$(tail -1 "$RUN/time.out")" >> "$RUN/rss-startup.tsv"
  done
done

# --- Scale: --check with 1 to 1,000 secrets of 16 KiB ----------------------
say "scale: --check with ${SCALE_SIZES[*]} secrets of $VALUE_BYTES bytes"
: > "$RUN/scale.tsv"
hf_scale=()
for n in "${SCALE_SIZES[@]}"; do
  env_n=("${BASE_ENV[@]}" "LIVEKIT_BOOTSTRAP_TOKEN=$(cat "$FIX/scale-$n.token")"
         "LIVEKIT_SECRETS_URL=file://$FIX/scale-$n.json" AGENT_INIT_MAX_BUNDLE=67108864)
  cmd="$LAUNCH ${env_n[*]} -- $AI --check"
  set +e
  $cmd > /dev/null 2> "$RUN/scale-$n.err"
  rc=$?
  set -e
  printf '%s\t%s\t%s\t%s\n' "$n" "$(stat -c %s "$FIX/scale-$n.json")" "$rc" \
    "$(tail -1 "$RUN/scale-$n.err" | head -c 300 | tr '\t' ' ')" >> "$RUN/scale.tsv"
  hf_scale+=(-n "$n" "$cmd")
  for _ in $(seq "$RSS_RUNS"); do
    /usr/bin/time -f '%M %x' -o "$RUN/time.out" $cmd > /dev/null 2>&1 || true
    printf '%s\t%s\n' "$n" "$(tail -1 "$RUN/time.out")" >> "$RUN/rss-scale.tsv"
  done
done
# --ignore-failure: past ~6 MiB of environment --check refuses with 65 (the
# kernel's ARG_MAX), after doing all the work being measured.
hyperfine -N -i --warmup 3 --runs "$SCALE_RUNS" --style basic \
  --export-json "$RUN/scale.json" "${hf_scale[@]}" > "$RUN/scale.txt"

kill "$SERVER" 2>/dev/null || true
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/machine.txt"

# --- Size ------------------------------------------------------------------
say "size"
{
  for f in "$AI" /usr/bin/tini-static /usr/bin/catatonit /usr/bin/tini /usr/bin/dumb-init; do
    printf '%s\t%s\t%s\n' "$f" "$(stat -c %s "$f")" "$(file -b "$f" | tr ',' '\n' | grep -v -e BuildID -e 'for GNU' -e '^ *stripped' -e 'version 1' | paste -sd, | sed 's/,/, /g; s/  */ /g')"
  done
} > "$RUN/size.tsv"
if [ "${BENCH_SKIP_BLOAT:-0}" != 1 ]; then
  # Its own target dir: cargo bloat needs symbols, and sharing one dir would
  # flip the release profile's strip setting and rebuild everything twice.
  say "cargo bloat (a second, unstripped build)"
  CARGO_TARGET_DIR=$CARGO_TARGET_DIR/bloat cargo bloat --release --bin agent-init \
    --target x86_64-unknown-linux-gnu --crates -n 25 > "$OUT/bloat-crates.txt"
  CARGO_TARGET_DIR=$CARGO_TARGET_DIR/bloat cargo bloat --release --bin agent-init \
    --target x86_64-unknown-linux-gnu -n 25 > "$OUT/bloat-functions.txt"
fi
size -A "$AI" > "$RUN/sections.txt"

# --- In-process: criterion -------------------------------------------------
if [ "${BENCH_SKIP_CRITERION:-0}" != 1 ]; then
  say "criterion (cargo bench --bench hot_paths)"
  rm -rf "$CARGO_TARGET_DIR/criterion"
  cargo bench --bench hot_paths 2>&1 | tee "$OUT/criterion.txt" >&2
  python3 bench/report.py collect-criterion "$CARGO_TARGET_DIR/criterion" "$OUT/criterion.json"
fi

# --- Report ----------------------------------------------------------------
python3 bench/report.py report "$OUT" "$ROOT/docs/BENCHMARKS.md" "$ROOT/docs/benchmarks.svg"
say "wrote docs/BENCHMARKS.md and docs/benchmarks.svg"
