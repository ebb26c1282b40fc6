# The project's tasks, in one place. Each target calls the script that does
# the work; the scripts' header comments say what they need and produce.
#
#   make test-quick   cargo test: the fast loop, no root, podman or frameworks
#                     (the tests that need them are #[ignore]d with the reason)
#   make test         everything CI runs (bash .ci/run): installs what the
#                     suites need, fmt, clippy, every test including the
#                     ignored ones, and the release binary's rerun; as root
#   make bench        the whole-process benchmark suite (bench/run.sh), which
#                     writes docs/BENCHMARKS.md and docs/benchmarks.svg; as root
#   make compare OLD=path/to/agent-init NEW=path/to/agent-init
#                     before/after for one change (bench/compare.sh)
#   make storm        the fleet-restart storm (storm/run.sh, docs/storm.svg)
#   make fuzz [SECONDS=600] [TARGETS="token dotenv"]
#                     the fuzz targets one after another (fuzz/run.sh;
#                     nightly and cargo-fuzz)
.PHONY: help test test-quick bench compare storm fuzz
SECONDS ?= 600
TARGETS ?=

help:
	@sed -n '1,16p' Makefile | sed 's/^# \{0,1\}//'

test-quick:
	cargo test --workspace

test:
	bash scripts/test.sh

bench:
	bash bench/run.sh

compare:
	@test -n "$(OLD)" && test -n "$(NEW)" || { echo "usage: make compare OLD=binary NEW=binary" >&2; exit 2; }
	bash bench/compare.sh "$(OLD)" "$(NEW)"

storm:
	bash storm/run.sh

fuzz:
	bash fuzz/run.sh $(SECONDS) $(TARGETS)
