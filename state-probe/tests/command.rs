//! Tests of `run_bounded` against real child processes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use state_probe::{run_bounded, ProbeError, OUTPUT_CAP};
use tokio::process::Command;

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    cmd
}

#[tokio::test]
async fn captures_both_streams_and_the_exit_status() {
    let out = run_bounded(
        sh("echo out; echo err >&2; exit 3"),
        Duration::from_secs(10),
    )
    .await
    .expect("sh runs");
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.stderr_text(), "err");
    assert_eq!(out.status.code(), Some(3));
    assert!(!out.success());
}

#[tokio::test]
async fn a_megabyte_on_each_stream_does_not_deadlock() {
    // stderr is filled first: a reader that drained stdout to its end first
    // would leave the child blocked on a full stderr pipe.
    let script = "head -c 1048576 /dev/zero >&2; head -c 1048576 /dev/zero";
    let out = run_bounded(sh(script), Duration::from_secs(30))
        .await
        .expect("no deadlock");
    assert!(out.success());
    assert_eq!(out.stdout.len(), 1 << 20);
    assert_eq!(out.stderr.len(), 1 << 20);
}

#[tokio::test]
async fn output_past_the_cap_is_discarded_and_the_child_finishes() {
    let script = format!("head -c {} /dev/zero", OUTPUT_CAP + (1 << 20));
    let out = run_bounded(sh(&script), Duration::from_secs(60))
        .await
        .expect("child finishes");
    assert!(out.success(), "child was not blocked: {:?}", out.status);
    assert_eq!(out.stdout.len(), OUTPUT_CAP);
}

#[tokio::test]
async fn stdin_is_dev_null_and_pipes_override_the_callers_settings() {
    let mut cmd = sh("cat; echo done; echo warn >&2");
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::null());
    let out = run_bounded(cmd, Duration::from_secs(10))
        .await
        .expect("cat sees EOF at once");
    assert_eq!(out.stdout, b"done\n");
    assert_eq!(out.stderr, b"warn\n");
}

#[tokio::test]
async fn timeout_kills_and_reaps_the_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let mut cmd = sh(r#"echo $$ > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep 1000"#);
    cmd.arg("sh").arg(&pid_file);

    let limit = Duration::from_millis(200);
    let started = Instant::now();
    let err = run_bounded(cmd, limit)
        .await
        .expect_err("sleep 1000 times out");
    let took = started.elapsed();

    match &err {
        ProbeError::Timeout { command, limit: l } => {
            assert_eq!(*l, limit);
            assert!(command.starts_with("sh -c "), "{command}");
            assert!(command.contains("exec sleep 1000"), "{command}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(5), "took {took:?}");

    let pid =
        std::fs::read_to_string(&pid_file).expect("the child wrote its pid well within 200 ms");
    let pid: i32 = pid.trim().parse().expect("a pid");
    // Killed and reaped: not even a zombie is left.
    assert!(
        !Path::new(&format!("/proc/{pid}/stat")).exists(),
        "process {pid} still exists"
    );
    assert!(!state_probe::alive(pid));
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let mut cmd = Command::new("/nonexistent/program-xyz");
    cmd.arg("state");
    match run_bounded(cmd, Duration::from_secs(5)).await {
        Err(ProbeError::Spawn { command, source }) => {
            assert_eq!(command, "/nonexistent/program-xyz state");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Spawn, got {other:?}"),
    }
}

#[tokio::test]
async fn a_grandchild_holding_the_pipes_does_not_turn_an_exit_into_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("daemon.pid");
    // The daemon inherits stdout and stderr and outlives the command.
    let script = format!("echo started; sleep 60 & echo $! > {}", pidfile.display());
    let out = run_bounded(sh(&script), Duration::from_secs(20))
        .await
        .expect("the command exited: its result, not a timeout");
    assert!(out.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    let daemon: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}
