//! The driver run by an unprivileged user, live: this test (as root)
//! makes sure the user `conmon-rootless` exists, then runs
//! `examples/rootless_check.rs` and the demo as that user with `setpriv`.
//! The scenarios themselves (lifecycle, attach, exec, stop, pause, delete,
//! the conformance suite, a subordinate-range mapping, a helper's sync
//! pipe, runsc) are in the example, which prints one line each.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use testkit::{require, Need};

const USER: &str = "conmon-rootless";

fn need_rootless_host() -> bool {
    require(&[
        Need::Root,
        Need::Binary("runc"),
        Need::Binary("conmon"),
        Need::Binary("busybox"),
        Need::Binary("setpriv"),
        Need::Binary("useradd"),
    ])
}

/// The user's uid and gid, creating the user (with subordinate ids, as
/// Debian's useradd gives them) when it does not exist.
fn ensure_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, USER]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let status = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", USER])
            .status()
            .expect("running useradd");
        // Another test binary may have created it meanwhile.
        assert!(
            status.success() || id("-u").is_some(),
            "useradd {USER} failed"
        );
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// Runs `program args` as the user with a clean environment and no
/// stdin; its output.
fn as_user(program: &Path, args: &[&str]) -> Output {
    as_user_with_stdin(program, args, None)
}

/// Runs `program args` as the user with a clean environment, feeding
/// `stdin` (none: `/dev/null`); its output.
fn as_user_with_stdin(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let (uid, gid) = ensure_user();
    // The binaries live under the build directory: the user must be able
    // to reach them (a fresh clone under /tmp or /work is world-readable).
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--init-groups")
        .args(["--", "env", "-i"])
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("HOME=/home/{USER}"))
        .arg("RUST_BACKTRACE=1")
        .arg(program)
        .args(args)
        .current_dir("/")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running setpriv");
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes).expect("writing the demo's stdin");
    }
    child.wait_with_output().expect("waiting for setpriv")
}

#[test]
fn every_rootless_scenario_passes_as_an_unprivileged_user() {
    if !need_rootless_host() {
        return;
    }
    let check = example_binary("rootless_check");
    let out = as_user(&check, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "rootless scenarios failed: {stdout}");
    for scenario in [
        "identity",
        "lifecycle",
        "attach",
        "exec",
        "stop",
        "kill-all",
        "pause",
        "nothing-left",
        "conformance",
        "subordinate-range",
        "helper-sync-pipe",
        "runsc",
        "all-removed",
    ] {
        assert!(
            stdout.contains(&format!("rootless {scenario}: ok")),
            "scenario {scenario} missing from {stdout}"
        );
    }
    // The runsc probe names its outcome either way.
    assert!(
        stdout.contains("runsc runs rootless here")
            || stdout.contains("runsc does not run rootless on this host"),
        "{stdout}"
    );
}

#[test]
fn the_demo_runs_a_container_as_an_unprivileged_user() {
    if !need_rootless_host() {
        return;
    }
    let demo = example_binary("run");
    let out = as_user(&demo, &["--", "sh", "-c", "id -u; exit 3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout {stdout}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "0\n", "uid inside the container");
}

#[test]
fn the_demo_forwards_stdin_as_an_unprivileged_user() {
    if !need_rootless_host() {
        return;
    }
    let demo = example_binary("run");
    let out = as_user_with_stdin(&demo, &["-i", "cat"], Some(b"through stdin\n"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
}

#[test]
fn the_demo_gives_a_terminal_as_an_unprivileged_user() {
    if !need_rootless_host() {
        return;
    }
    let demo = example_binary("run");
    let out = as_user_with_stdin(
        &demo,
        &[
            "-t",
            "-i",
            "--",
            "sh",
            "-c",
            "test -t 0 && read line && echo \"tty:$line\"; exit 4",
        ],
        Some(b"typed\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "stdout {stdout}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The terminal echoes the typed line and ends lines with CR LF.
    assert!(stdout.contains("tty:typed\r\n"), "{stdout:?}");
}

#[test]
fn the_exec_demo_runs_a_command_in_a_container_as_an_unprivileged_user() {
    if !need_rootless_host() {
        return;
    }
    let exec = example_binary("exec");
    let out = as_user(&exec, &["sh", "-c", "id -u; exit 6"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(6),
        "stdout {stdout}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("0\n"), "uid inside: {stdout:?}");
}
