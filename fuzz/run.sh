#!/usr/bin/env bash
# Runs fuzz targets one after another, niced, each for SECONDS (default 600),
# growing fuzz/corpus/<target> from fuzz/seeds/<target>, and keeps each
# libFuzzer log in fuzz/logs/<target>.log (its last lines give the execs,
# cov: and ft: figures recorded in docs/HARDENING.md).
# Usage: bash fuzz/run.sh [SECONDS] [TARGET...]     (needs nightly + cargo-fuzz)
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(token bundle_open secrets_parse sealed_plaintext merge retry_after dotenv config_parse service_request)
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  dict=()
  case $t in
    bundle_open|secrets_parse|sealed_plaintext|service_request) dict=(-dict=dict/json.dict) ;;
    dotenv) dict=(-dict=dict/dotenv.dict) ;;
    config_parse) dict=(-dict=dict/args.dict) ;;
  esac
  echo "== $t: ${secs}s" >&2
  nice -n 10 cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    "${dict[@]}" > "logs/$t.log" 2>&1
  echo "== $t: exit $?" >&2
  tail -n 25 "logs/$t.log" | grep -E "^#|stat::|Done|ERROR|panicked|SUMMARY" >&2
done
