//! The label is written by the child, between fork and exec, never by the
//! parent; a host without SELinux gets no label at all.

use std::path::Path;
use std::process::Command;

use selinux_launch::{exec_label_for, selinux_enabled_at, ExecLabel, LaunchPolicy, SecurityLabel};

fn label(s: &str) -> SecurityLabel {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_label_is_written_in_the_child_only() {
    let target = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let exec = ExecLabel::with_path(
        label("system_u:system_r:container_runtime_t:s0"),
        target.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(target.path()), "", "constructing writes nothing");

    let mut cmd = Command::new("/bin/true");
    exec.install_std(&mut cmd);
    assert_eq!(
        read(target.path()),
        "",
        "installing the hook writes nothing in the parent"
    );

    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("spawn /bin/true: {e}"));
    assert!(status.success(), "{status}");
    assert_eq!(
        read(target.path()),
        "system_u:system_r:container_runtime_t:s0"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_tokio_hook_writes_in_the_child_too() {
    let target = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let exec =
        ExecLabel::with_path(label("u:r:t:s0"), target.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = tokio::process::Command::new("/bin/true");
    exec.install_tokio(&mut cmd);
    assert_eq!(read(target.path()), "");
    let status = cmd
        .status()
        .await
        .unwrap_or_else(|e| panic!("spawn /bin/true: {e}"));
    assert!(status.success(), "{status}");
    assert_eq!(read(target.path()), "u:r:t:s0");
}

#[test]
fn a_failed_write_in_the_child_fails_the_spawn() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("no-such-dir").join("exec");
    let exec = ExecLabel::with_path(label("u:r:t:s0"), &missing).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new("/bin/true");
    exec.install_std(&mut cmd);
    let err = cmd.spawn().map(|mut c| c.wait()).err();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound),
        "the child's open(2) error comes back from spawn"
    );
    assert!(!missing.exists());
}

#[test]
fn a_host_without_selinuxfs_gets_no_label() {
    let mountinfo = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
";
    let engine = label("unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023");
    let enabled = selinux_enabled_at(mountinfo);
    assert!(!enabled);
    assert_eq!(
        exec_label_for(LaunchPolicy::FollowHost, enabled, Some(&engine)),
        None
    );

    // Nothing is installed, so the child leaves the would-be target alone.
    let target = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new("/bin/true");
    if let Some(wanted) = exec_label_for(LaunchPolicy::FollowHost, enabled, Some(&engine)) {
        ExecLabel::with_path(wanted, target.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .install_std(&mut cmd);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    assert_eq!(read(target.path()), "");
}

#[test]
fn from_host_matches_the_pure_decision() {
    // On this host, whatever it is, `from_host` agrees with the pieces.
    let got = ExecLabel::from_host(LaunchPolicy::FollowHost);
    let enabled = selinux_launch::selinux_enabled();
    if !enabled {
        assert!(matches!(got, Ok(None)), "{got:?}");
    }
    assert!(matches!(ExecLabel::from_host(LaunchPolicy::Off), Ok(None)));
}
