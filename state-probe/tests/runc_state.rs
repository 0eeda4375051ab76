//! `probe_state` against the real runc binary (needs root).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use state_probe::{probe_state, StateProbe};
use tokio::process::Command;

/// Finds `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| Path::new(candidate).is_file())
}

/// Returns runc's path when this test can run. Without root or runc it
/// fails under CI and is skipped loudly otherwise.
fn runc_or_skip(test: &str) -> Option<PathBuf> {
    let why = if !nix::unistd::geteuid().is_root() {
        "not running as root"
    } else {
        match which("runc") {
            Some(runc) => return Some(runc),
            None => "runc is not on PATH",
        }
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}, and CI is set: this test must run in CI");
    }
    // Written to the stderr handle itself: libtest captures eprintln! of
    // passing tests, and a skip must not go unseen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
    None
}

#[tokio::test]
async fn runc_state_of_an_unknown_container_is_gone() {
    let Some(runc) = runc_or_skip("runc_state_of_an_unknown_container_is_gone") else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(runc);
    cmd.arg("--root")
        .arg(root.path())
        .args(["state", "no-such-container-xyz"]);
    let probe = probe_state(cmd, "no-such-container-xyz", Duration::from_secs(30))
        .await
        .expect("runc answers");
    assert_eq!(probe, StateProbe::Gone);
}
