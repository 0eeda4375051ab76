//! The driver run by an unprivileged user, live: this test (as root)
//! makes sure the user `conmon-rootless` exists, then runs
//! `examples/rootless_check.rs` and the demo as that user with `setpriv`.
//! The scenarios themselves (lifecycle, attach, exec, stop, pause, delete,
//! the conformance suite, a subordinate-range mapping, a helper's sync
//! pipe, runsc) are in the example, which prints one line each.

mod common;

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

/// Runs `program args` as the user with a clean environment; its output.
fn as_user(program: &Path, args: &[&str]) -> Output {
    let (uid, gid) = ensure_user();
    // The binaries live under the build directory: the user must be able
    // to reach them (a fresh clone under /tmp or /work is world-readable).
    Command::new("setpriv")
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
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv")
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
        "pause",
        "nothing-left",
        "conformance",
        "subordinate-range",
        "helper-sync-pipe",
        "runsc",
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
