//! Each benchmark example run end to end with tiny sizes (`--quick`,
//! podman off), so that none of them rots: it must finish, print its
//! tables with ratios and move the expected bytes. No timing is asserted;
//! the counts the benchmarks check (runtime processes for a status, open
//! descriptors after a round) are.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::{example_binary, need_runc};

/// The examples the benchmarks run, built once per test binary.
fn helpers() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| (example_binary("run"), example_binary("http_attach")))
}

/// Runs benchmark `name` in its quick mode with `extra` arguments; returns
/// its stdout.
fn run_quick(name: &str, extra: &[&str]) -> String {
    let (run, http_attach) = helpers();
    let binary = example_binary(name);
    let output = Command::new(&binary)
        .args(["--quick", "--podman", "off", "--run-binary"])
        .arg(run)
        .arg("--http-attach-binary")
        .arg(http_attach)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ratio"),
        "{name} printed no ratios:\n{stdout}"
    );
    let compares_podman = !matches!(name, "bench_stop" | "bench_scale" | "bench_status");
    assert!(
        stdout.contains("skipped: podman (--podman off)") || !compares_podman,
        "{name} did not skip podman as asked:\n{stdout}"
    );
    stdout
}

/// The table row of `contender`, or a panic showing the output.
fn row<'a>(stdout: &'a str, contender: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.trim_start().starts_with(contender))
        .unwrap_or_else(|| panic!("no row {contender:?} in:\n{stdout}"))
}

#[test]
fn bench_attach_runs_every_contender() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_attach", &[]);
    for contender in [
        "(a) floor: raw attach socket reader",
        "(a) floor reader -> pipe",
        "(b) library attach -> sink",
        "(c) demo run | pipe, whole process",
        "(d) http attach -> raw client",
    ] {
        let line = row(&stdout, contender);
        assert!(!line.contains("n/a"), "{line}");
    }
}

#[test]
fn bench_attach_with_log_driver_none_runs_the_socket_contenders() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_attach", &["--log", "none"]);
    assert!(stdout.contains("log driver none"), "{stdout}");
    assert!(stdout.contains("skipped: demo and http"), "{stdout}");
    for contender in [
        "(a) floor: raw attach socket reader",
        "(a) floor reader -> pipe",
        "(b) library attach -> sink",
    ] {
        let line = row(&stdout, contender);
        assert!(!line.contains("n/a"), "{line}");
    }
}

#[test]
fn bench_attach_with_passthrough_reads_the_containers_pipe() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_attach", &["--log", "passthrough"]);
    assert!(stdout.contains("log driver passthrough"), "{stdout}");
    for contender in [
        "(a) floor: runc create+start | pipe, no monitor",
        "(b) library create, passthrough stdio | pipe",
    ] {
        let line = row(&stdout, contender);
        assert!(!line.contains("n/a"), "{line}");
    }
}

#[test]
fn bench_interactive_measures_throughput_and_latency() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_interactive", &[]);
    for contender in [
        "(a) floor: raw attach socket, send + recv threads",
        "(b) library attach, pattern reader -> sink",
        "(c) demo run -i cat, pipes, whole process",
        "(a) floor: raw attach socket, send then recv",
        "(b) library attach, duplex stdin -> waking sink",
        "(c) demo run -i cat, pipes",
        "target: library's median within 1 ms of the floor's",
    ] {
        row(&stdout, contender);
    }
}

#[test]
fn bench_lifecycle_runs_every_contender_with_phases() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_lifecycle", &[]);
    for contender in [
        "floor (minimal conmon launch)",
        "floor (minimal conmon launch): sync",
        "driver create+start+wait+delete",
        "driver create+start+wait+delete: spawn",
        "driver create+start+wait+delete: delete",
        "runc run",
        "demo run -- true",
    ] {
        row(&stdout, contender);
    }
}

#[test]
fn bench_stop_measures_both_containers() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_stop", &[]);
    for contender in [
        "floor: death -> return (TERM-responsive",
        "driver: death -> return (TERM-responsive",
        "driver: whole stop (TERM-ignoring, timeout 1 s)",
    ] {
        row(&stdout, contender);
    }
}

#[test]
fn bench_scale_runs_both_contenders_and_leaks_no_fd() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_scale", &[]);
    for contender in [
        "runc run, 5 at once",
        "driver create+start+wait+delete, 5 at once",
        "by hand: runc create+start+delete, 5 at once",
        "driver create: median over the containers",
        "driver delete: slowest container",
        "driver: runtime commands it ran",
        "driver: CPU ms, engine side",
        "runc run: CPU ms, engine side",
        "by hand: CPU ms, engine side",
        "peak RSS during a round (max)",
    ] {
        row(&stdout, contender);
    }
    let growth = row(&stdout, "no fd growth:");
    assert!(growth.contains(": met"), "{growth}");
}

#[test]
fn bench_status_answers_running_containers_without_the_runtime() {
    if !need_runc() {
        return;
    }
    let stdout = run_quick("bench_status", &[]);
    for contender in [
        "runc state, one after the other (x5)",
        "runc state, all at once (x5)",
        "driver status, one after the other (x5)",
        "driver status, all at once (x5)",
        "driver status asking the runtime, one after the other (x5)",
    ] {
        row(&stdout, contender);
    }
    let spawned = row(&stdout, "no runtime process for a running container");
    assert!(spawned.contains(": met (0 run"), "{spawned}");
}
