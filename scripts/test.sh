#!/usr/bin/env bash
# Installs what the test suite needs (idempotent), then runs it.
# Usage: bash scripts/test.sh   (as root on Debian; CI runs this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
apt_need podman:podman runc:runc debootstrap:debootstrap tini:tini dumb-init:dumb-init \
  catatonit:catatonit hyperfine:hyperfine /usr/bin/time:time unshare:util-linux prlimit:util-linux \
  mount:mount script:bsdutils strace:strace

# python-dotenv is the reference for the dotenv differential test.
python3 -c 'import importlib.metadata as m; assert m.version("python-dotenv") == "1.2.2"' 2>/dev/null \
  || python3 -m pip install -q 'python-dotenv==1.2.2'

# The example agents, which tests/agents/ runs for real (and pnpm, which
# tests/containers/ also copies into its Debian base image).
command -v node >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
[ "$(pnpm --version 2>/dev/null)" = 10.34.9 ] || npm install -g --silent pnpm@10.34.9
(
  cd examples/python-agent
  [ -x .venv/bin/python ] || python3 -m venv .venv
  want=$(cat requirements.txt constraints.txt | sha256sum)
  if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q -r requirements.txt
    echo "$want" > .venv/.installed
  fi
)
(
  cd examples/node-agent
  pnpm install --frozen-lockfile --prefer-offline --silent
  pnpm --silent build
)

# PostgreSQL for the agent-secrets suites (service/tests): Debian's package,
# and a throwaway cluster for this run on a loopback port, stopped on exit.
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 \
  || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
eval "$(bash scripts/postgres-test.sh start)"
trap 'bash scripts/postgres-test.sh stop "$AGENT_SECRETS_TEST_POSTGRES_DIR"' EXIT

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# bench/report.py (which writes docs/BENCHMARKS.md) over a small sample.
python3 -m unittest discover -s bench -p 'test_*.py'
# Plain `cargo test` is the quick loop for a non-root developer: the tests
# that need root, podman, PostgreSQL, python-dotenv or the LiveKit
# frameworks are #[ignore = "needs ..."]. Here, with all of those installed
# above, every one of them runs.
cargo test --workspace -- --include-ignored

# Test what ships: the promises about memory, signals, environment and
# output hold for the release binary the Dockerfiles and the README install,
# so the suites that check them run again against it (tests/support::bin
# takes the binary from AGENT_INIT_BIN).
cargo build --release -p agent-init --bin agent-init
release=target/x86_64-unknown-linux-gnu/release/agent-init
size=$(stat -c %s "$release")
[ "$size" -le 2621440 ] || { echo "scripts/test.sh: $release is $size bytes, over 2.5 MiB" >&2; exit 1; }
AGENT_INIT_BIN=$release cargo test -p agent-init --test supervise --test production \
  --test hardening --test local --test fault_matrix --test files --test watch --test seal_update -- --include-ignored
# File secrets as shipped: the images (FROM scratch too) with the release
# binary under --read-only and UID 10001, and the real LiveKit workers' job
# processes reading the credentials file.
AGENT_INIT_BIN=$release cargo test -p agent-init --test containers --test agents -- --include-ignored \
  file_secret memory_file_system scratch_image_read_only credentials python_agent_under_supervise
# The CLI's end-to-end suite, with the agent-init that ships fetching.
AGENT_INIT_BIN=$release cargo test -p agent-secrets --test cli_end_to_end -- --include-ignored

# The same for agent-secrets: the service binary as shipped (the `service`
# profile) keeps its promises (no secret in memory, database or log; kill -9
# safety; TLS; slow clients), so those suites run again against it
# (service/tests/support::bin takes it from AGENT_SECRETS_BIN).
cargo build --profile service -p agent-secrets --bin agent-secrets
AGENT_SECRETS_BIN=target/x86_64-unknown-linux-gnu/service/agent-secrets \
  cargo test -p agent-secrets --test hardening --test durability --test api -- --include-ignored
