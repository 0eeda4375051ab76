//! Real cgroupfs placement as root: a `sleep` child is placed into
//! `/cgroup-placement-test-<pid>/conmon` in every mounted hierarchy, checked
//! through each hierarchy's `cgroup.procs`, and everything is removed again.
//! A guard kills the child and removes the directories even on failure.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use cgroup_placement::{place_in_cgroupfs, remove_cgroupfs, PlacementError};
use testkit::{require, Need};

/// Every mounted cgroup hierarchy (v1 controllers and v2), read directly
/// from `/proc/self/mountinfo`, independently of the crate under test.
fn hierarchy_mounts() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fs_type = after.split_whitespace().next()?;
            let mount_point = before.split_whitespace().nth(4)?;
            (fs_type == "cgroup" || fs_type == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// Kills and reaps the child, then removes the test cgroups, on drop.
struct Cleanup {
    child: Option<Child>,
    leaf: String,
    parent: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = remove_cgroupfs(&self.leaf);
        let _ = remove_cgroupfs(&self.parent);
        // Last resort: plain rmdir in every hierarchy, leaf first.
        for mount in hierarchy_mounts() {
            let _ = fs::remove_dir(mount.join(self.leaf.trim_start_matches('/')));
            let _ = fs::remove_dir(mount.join(self.parent.trim_start_matches('/')));
        }
    }
}

#[test]
fn places_a_process_in_every_hierarchy_and_removes_the_cgroup() -> Result<(), PlacementError> {
    if !require(&[Need::Root, Need::Binary("sleep")]) {
        return Ok(());
    }
    let mounts = hierarchy_mounts();
    assert!(!mounts.is_empty(), "no cgroup hierarchy mounted");

    let parent = format!("/cgroup-placement-test-{}", std::process::id());
    let leaf = format!("{parent}/conmon");
    let mut cleanup = Cleanup {
        child: None,
        leaf: leaf.clone(),
        parent: parent.clone(),
    };
    let child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| PlacementError::Io {
            operation: "spawning",
            directory: PathBuf::from("sleep"),
            source,
        })?;
    let pid = child.id();
    cleanup.child = Some(child);

    let handle = place_in_cgroupfs(&leaf, pid)?;
    assert_eq!(handle.path(), leaf);
    assert_eq!(
        handle.directories().len(),
        mounts.len(),
        "{:?}",
        handle.directories()
    );

    for mount in &mounts {
        let procs = mount
            .join(leaf.trim_start_matches('/'))
            .join("cgroup.procs");
        let content = fs::read_to_string(&procs).unwrap_or_default();
        assert!(
            content.lines().any(|line| line.trim() == pid.to_string()),
            "pid {pid} not in {}: {content:?}",
            procs.display()
        );
    }

    // Busy: nothing is removed while the process is inside.
    assert!(!handle.remove_if_empty()?);
    assert!(matches!(
        remove_cgroupfs(&leaf),
        Err(PlacementError::CgroupBusy { .. })
    ));
    for mount in &mounts {
        assert!(mount.join(leaf.trim_start_matches('/')).is_dir());
    }

    if let Some(mut child) = cleanup.child.take() {
        child.kill().map_err(|source| PlacementError::Io {
            operation: "killing",
            directory: PathBuf::from("sleep"),
            source,
        })?;
        let _ = child.wait();
    }

    assert!(handle.remove_if_empty()?);
    for mount in &mounts {
        let dir = mount.join(leaf.trim_start_matches('/'));
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    // Removing again is fine; then the test's parent goes too.
    remove_cgroupfs(&leaf)?;
    remove_cgroupfs(&parent)?;
    for mount in &mounts {
        let dir = mount.join(parent.trim_start_matches('/'));
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    Ok(())
}

#[test]
fn refuses_paths_escaping_the_hierarchy() {
    for bad in ["/", "", "/a/../../etc", "a/./b"] {
        assert!(
            matches!(
                place_in_cgroupfs(bad, 1),
                Err(PlacementError::InvalidPath { .. })
            ),
            "{bad:?} accepted"
        );
    }
}

fn cgroupfs_inputs(parent: &str) -> cgroup_placement::PlacementInputs {
    cgroup_placement::PlacementInputs {
        manager: cgroup_placement::CgroupManager::Cgroupfs,
        no_cgroups: false,
        mode: cgroup_placement::CgroupsMode::Enabled,
        cgroup_parent: Some(parent.to_string()),
        container_id: "abc".to_string(),
        running_as_systemd_service: false,
        rootless: false,
        cgroup_v2: false,
    }
}

#[tokio::test]
async fn place_moves_conmon_into_parent_slash_conmon() -> Result<(), PlacementError> {
    if !require(&[Need::Root, Need::Binary("sleep")]) {
        return Ok(());
    }
    let parent = format!("/cgroup-placement-place-{}", std::process::id());
    let leaf = format!("{parent}/conmon");
    let mut cleanup = Cleanup {
        child: None,
        leaf: leaf.clone(),
        parent: parent.clone(),
    };
    let child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| PlacementError::Io {
            operation: "spawning",
            directory: PathBuf::from("sleep"),
            source,
        })?;
    let pid = child.id();
    cleanup.child = Some(child);

    let outcome = cgroup_placement::place(
        &cgroupfs_inputs(&parent),
        pid,
        None,
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(outcome.warnings, Vec::<String>::new());
    assert_eq!(
        outcome.placed,
        cgroup_placement::Placement::Cgroupfs { path: leaf.clone() }
    );
    for mount in hierarchy_mounts() {
        let procs = mount
            .join(leaf.trim_start_matches('/'))
            .join("cgroup.procs");
        let content = fs::read_to_string(&procs).unwrap_or_default();
        assert!(
            content.lines().any(|l| l.trim() == pid.to_string()),
            "{}",
            procs.display()
        );
    }
    drop(cleanup);
    for mount in hierarchy_mounts() {
        assert!(!mount.join(parent.trim_start_matches('/')).exists());
    }
    Ok(())
}

#[tokio::test]
async fn a_cgroupfs_failure_is_a_warning_and_leaves_no_empty_leaf() -> Result<(), PlacementError> {
    if !require(&[Need::Root]) {
        return Ok(());
    }
    let parent = format!("/cgroup-placement-fail-{}", std::process::id());
    let leaf = format!("{parent}/conmon");
    let cleanup = Cleanup {
        child: None,
        leaf: leaf.clone(),
        parent: parent.clone(),
    };
    // No such process: writing it to cgroup.procs fails (ESRCH).
    let outcome = cgroup_placement::place(
        &cgroupfs_inputs(&parent),
        i32::MAX as u32,
        None,
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(outcome.placed, cgroup_placement::Placement::None);
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert!(
        outcome.warnings[0].starts_with("Failed to add conmon to cgroupfs sandbox cgroup: "),
        "{:?}",
        outcome.warnings
    );
    for mount in hierarchy_mounts() {
        let dir = mount.join(leaf.trim_start_matches('/'));
        assert!(
            !dir.exists(),
            "{} left behind after a failure",
            dir.display()
        );
    }
    drop(cleanup);
    for mount in hierarchy_mounts() {
        assert!(!mount.join(parent.trim_start_matches('/')).exists());
    }
    Ok(())
}
