#!/usr/bin/env bash
# The fleet-restart storm, in one command: builds agent-init (release), runs
# 200 agents at once against a loopback secrets server that serves 8 requests
# at a time, once per client strategy, checks that every agent started with
# every secret, and writes docs/storm.svg and storm/out/results.md.
# Usage: bash storm/run.sh [AGENTS] [CAPACITY]      (loopback only; ~3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
agents=${1:-200}
capacity=${2:-8}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/agent-init
out=storm/out
mkdir -p "$out"
# 200 agents and their shells need file descriptors and processes.
ulimit -n 4096 2>/dev/null || true
status=0
for mode in backoff retry-after fixed fixed-async; do
  echo "== $mode" >&2
  python3 storm/storm.py --bin "$bin" --mode "$mode" --out "$out" \
    --agents "$agents" --capacity "$capacity" --service 0.1 --deadline 60 || status=1
done
python3 storm/plot.py "$out" docs/storm.svg | tee "$out/results.md"
[ "$status" -eq 0 ] || echo "storm: some agent did not start with every secret within the deadline" >&2
exit "$status"
