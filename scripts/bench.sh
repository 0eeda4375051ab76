#!/usr/bin/env bash
# Builds the benchmark examples in release mode, makes podman ready for the
# side-by-side figures, runs the benchmarks one after the other (bench_attach
# once per log driver: k8s-file, none, passthrough) and
# writes their output into docs/benchmarks.md.
#
#   bash scripts/bench.sh [--quick] [--rounds N] [--podman off] [--no-docs]
#
# Needs root, conmon, runc and busybox (scripts/install-deps.sh). Unless
# `--podman off` is given, podman is installed from Debian's packages when
# missing, run with scripts/podman-bench.conf (through CONTAINERS_CONF: the
# system's containers.conf is neither read nor changed), and given a
# `localhost/busybox` image imported from the static busybox when it has
# none. Every argument but `--no-docs` goes to every benchmark. The output
# replaces the block between the "bench.sh output" markers of
# docs/benchmarks.md, unless `--quick` or `--no-docs` is given.
set -euo pipefail

cd "$(dirname "$0")/.."

args=()
podman=on
write_docs=yes
previous=""
for arg in "$@"; do
    case "$arg" in
        --no-docs) write_docs=no; continue ;;
        --quick) write_docs=no ;;
    esac
    if [[ "$previous" == "--podman" && "$arg" == "off" ]]; then
        podman=off
    fi
    args+=("$arg")
    previous="$arg"
done

prepare_podman() {
    if ! command -v podman >/dev/null; then
        echo "== installing podman"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
    fi
    export CONTAINERS_CONF="$PWD/scripts/podman-bench.conf"
    if podman image exists localhost/busybox; then
        return
    fi
    echo "== importing localhost/busybox"
    local busybox rootfs
    busybox=$(command -v busybox.static || command -v busybox)
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc"
    cp "$busybox" "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
        [[ "$applet" == busybox ]] || ln "$rootfs/bin/busybox" "$rootfs/bin/$applet"
    done
    tar -C "$rootfs" -cf "$rootfs.tar" .
    podman import --quiet "$rootfs.tar" localhost/busybox >/dev/null
    rm -rf "$rootfs" "$rootfs.tar"
}

if [[ "$podman" == on ]]; then
    prepare_podman
fi

cargo build --release -p conmon-driver --examples
examples=target/release/examples
output=$(mktemp)
trap 'rm -f "$output"' EXIT
{
    echo "bash scripts/bench.sh ${args[*]}"
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
        "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
    echo
} >"$output"
# bench_attach runs once per log driver; each line is a benchmark and its
# own arguments.
runs=(
    "bench_attach"
    "bench_attach --log none"
    "bench_attach --log passthrough"
    "bench_interactive"
    "bench_lifecycle"
    "bench_stop"
    "bench_scale"
    "bench_status"
)
for run in "${runs[@]}"; do
    read -r -a words <<<"$run"
    echo "== $run" | tee -a "$output"
    "$examples/${words[0]}" "${words[@]:1}" "${args[@]}" | tee -a "$output"
    echo | tee -a "$output"
done

if [[ "$write_docs" == yes ]]; then
    docs=docs/benchmarks.md
    python3 - "$docs" "$output" <<'PY'
import sys
docs, output = sys.argv[1], sys.argv[2]
begin, end = "<!-- bench.sh output begins -->", "<!-- bench.sh output ends -->"
text = open(docs).read()
if begin not in text or end not in text:
    sys.exit(f"{docs} has no '{begin}' ... '{end}' block to write into")
run = open(output).read().rstrip("\n")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(docs, "w").write(f"{head}{begin}\n\n```text\n{run}\n```\n\n{end}{tail}")
PY
    echo "wrote the output into $docs"
fi
