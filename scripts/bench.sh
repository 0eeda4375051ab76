#!/usr/bin/env bash
# Builds the benchmark examples in release mode and runs them one after the
# other, printing their tables (medians and ratios from one run each).
#
#   bash scripts/bench.sh [--quick]
#
# Needs root, conmon, runc and busybox (scripts/install-deps.sh). podman is
# compared when `podman run --rm localhost/busybox true` works; see
# docs/benchmarks.md for the configuration used on the development machine.
# Extra arguments (e.g. --quick, --rounds N, --podman off) go to every
# benchmark.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo build --release -p conmon-driver --examples
examples=target/release/examples
for bench in bench_attach bench_lifecycle bench_stop bench_scale bench_status; do
    echo "== $bench"
    "$examples/$bench" "$@"
    echo
done
