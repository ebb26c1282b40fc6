#!/usr/bin/env bash
# Before/after for one change: two agent-init binaries side by side, in one
# hyperfine invocation per scenario, on the fixtures of the last
# `bash bench/run.sh` (bench/out/).
#
#   bash bench/compare.sh OLD_BINARY NEW_BINARY
#
# Prints a Markdown table: start-up (file://, 20 secrets, exec), HTTPS
# (20 secrets, exec) and --check with 1,000 × 16 KiB (wall time and peak
# RSS), median [min … max] for each binary.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$PWD/bench/out
FIX=$OUT/fixtures
OLD=$(realpath "$1")
NEW=$(realpath "$2")
RUNS=${BENCH_RUNS:-1000}
[ -x "$OUT/launch" ] && [ -s "$FIX/bundle-20.token" ] || { echo "run bash bench/run.sh first" >&2; exit 1; }
T=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$T/www" && cp "$FIX/bundle-20.json" "$T/www/bundle"
bash bench/serve.sh "$T/www" "$OUT/tls/server.pem" "$OUT/tls/server.key" "$T/port" &
SERVER=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
BASE="PATH=/usr/local/bin:/usr/bin:/bin HOME=/root"
FILE20="$BASE LIVEKIT_BOOTSTRAP_TOKEN=$(cat "$FIX/bundle-20.token") LIVEKIT_SECRETS_URL=file://$FIX/bundle-20.json"
HTTPS20="$BASE LIVEKIT_BOOTSTRAP_TOKEN=$(cat "$FIX/bundle-20.token") LIVEKIT_SECRETS_URL=https://127.0.0.1:$(cat "$T/port")/bundle AGENT_INIT_CA_FILE=$OUT/tls/ca.pem"
BIG="$BASE LIVEKIT_BOOTSTRAP_TOKEN=$(cat "$FIX/scale-1000.token") LIVEKIT_SECRETS_URL=file://$FIX/scale-1000.json AGENT_INIT_MAX_BUNDLE=67108864"

row() { # name json
  python3 - "$1" "$2" <<'EOF'
import json, statistics, sys
name, path = sys.argv[1:]
res = json.load(open(path))["results"]
cells = []
for r in res:
    t = sorted(x * 1000 for x in r["times"])
    cells.append(f"{statistics.median(t):.2f} [{t[0]:.2f} … {t[-1]:.2f}]")
print(f"| {name} (ms) | " + " | ".join(cells) + f" | {statistics.median(res[1]['times']) / statistics.median(res[0]['times']):.2f} |")
EOF
}
rss() { # name env args
  local name=$1 env=$2; shift 2
  local cells=() meds=()
  for bin in "$OLD" "$NEW"; do
    : > "$T/rss"
    for _ in $(seq 9); do
      /usr/bin/time -f '%M' -o "$T/t" "$OUT/launch" $env -- "$bin" "$@" >/dev/null 2>&1 || true
      tail -1 "$T/t" >> "$T/rss"
    done
    read -r med lo hi < <(sort -n "$T/rss" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1], a[NR]}')
    cells+=("$(awk -v m="$med" -v l="$lo" -v h="$hi" 'BEGIN {printf "%.2f [%.2f … %.2f]", m/1024, l/1024, h/1024}')")
    meds+=("$med")
  done
  echo "| $name (MiB) | ${cells[0]} | ${cells[1]} | $(awk -v a="${meds[0]}" -v b="${meds[1]}" 'BEGIN {printf "%.2f", b/a}') |"
}

echo "| scenario | before: median [min … max] | after | after/before |"
echo "| --- | ---: | ---: | ---: |"
echo "| binary size (bytes) | $(stat -c %s "$OLD") | $(stat -c %s "$NEW") | $(awk -v a="$(stat -c %s "$OLD")" -v b="$(stat -c %s "$NEW")" 'BEGIN {printf "%.3f", b/a}') |"
hyperfine -N -w 50 -r "$RUNS" --style none --export-json "$T/a.json" \
  "$OUT/launch $FILE20 -- $OLD $OUT/noop" "$OUT/launch $FILE20 -- $NEW $OUT/noop" >/dev/null 2>&1
row "file://, 20 secrets, exec" "$T/a.json"
hyperfine -N -w 20 -r "$(( RUNS / 2 ))" --style none --export-json "$T/b.json" \
  "$OUT/launch $HTTPS20 -- $OLD $OUT/noop" "$OUT/launch $HTTPS20 -- $NEW $OUT/noop" >/dev/null 2>&1
row "https://, 20 secrets, exec" "$T/b.json"
hyperfine -N -i -w 3 -r 30 --style none --export-json "$T/c.json" \
  "$OUT/launch $BIG -- $OLD --check" "$OUT/launch $BIG -- $NEW --check" >/dev/null 2>&1
row "--check, 1,000 × 16 KiB" "$T/c.json"
rss "peak RSS, file://, 20 secrets" "$FILE20" --check
rss "peak RSS, --check, 1,000 × 16 KiB" "$BIG" --check
