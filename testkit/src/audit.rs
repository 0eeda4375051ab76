//! Looking for what a piece of work left behind: processes, fds, mounts,
//! cgroups, runtime containers and files.
//!
//! Everything the work makes carries a tag (in container ids, directory
//! names, script paths), and the audit looks for the tag: in processes'
//! command lines and cgroups, in mount points, in cgroup directory names,
//! in the runtime's container list. Processes that descend from this one
//! count too, tagged or not, and fds are compared with a snapshot taken
//! before the work.
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! use std::time::Duration;
//! use testkit::audit::{Audit, FdSnapshot};
//!
//! let before = FdSnapshot::take();
//! // ... run containers whose ids and directories contain "soak42" ...
//! let audit = Audit::new("soak42", &before).runtime("runc").dirs(["/tmp/soak42-run"]);
//! let left = audit.settled(Duration::from_secs(5)).await;
//! assert!(left.is_empty(), "left behind: {left:#?}");
//! # }
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The fds this process has open, each as `"N -> target"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdSnapshot(BTreeSet<String>);

impl FdSnapshot {
    /// The fds open now.
    pub fn take() -> Self {
        let fds = std::fs::read_dir("/proc/self/fd")
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let target = std::fs::read_link(e.path()).ok()?;
                        Some(format!(
                            "{} -> {}",
                            e.file_name().to_string_lossy(),
                            target.display()
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        FdSnapshot(fds)
    }

    /// How many fds the snapshot holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the snapshot holds no fd.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fds open now that were not open in `self`.
    pub fn opened_since(&self) -> Vec<String> {
        FdSnapshot::take().0.difference(&self.0).cloned().collect()
    }
}

/// One audit: what to look for, and where.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    tag: String,
    fds_before: &'a FdSnapshot,
    runtimes: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl<'a> Audit<'a> {
    /// An audit of what carries `tag`, and of the fds opened since
    /// `fds_before`.
    pub fn new(tag: impl Into<String>, fds_before: &'a FdSnapshot) -> Self {
        Audit {
            tag: tag.into(),
            fds_before,
            runtimes: Vec::new(),
            dirs: Vec::new(),
        }
    }

    /// Also lists the containers of this OCI runtime binary (`runc`,
    /// `runsc`...) whose ids carry the tag.
    pub fn runtime(mut self, binary: impl Into<String>) -> Self {
        self.runtimes.push(binary.into());
        self
    }

    /// Directories that must be empty afterwards (missing ones count as
    /// empty).
    pub fn dirs<I, P>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.dirs.extend(dirs.into_iter().map(Into::into));
        self
    }

    /// Everything left now, one line per kind; empty when clean.
    pub async fn left(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut report = |kind: &str, found: Vec<String>| {
            if !found.is_empty() {
                problems.push(format!("{kind}: {found:?}"));
            }
        };
        report("fds", self.fds_before.opened_since());
        report("processes", processes_of(&self.tag));
        report("mounts", mounts_of(&self.tag));
        report(
            "cgroups",
            cgroups_of(&self.tag)
                .into_iter()
                .map(|p| p.display().to_string())
                .collect(),
        );
        for runtime in &self.runtimes {
            report(
                &format!("{runtime} containers"),
                runtime_containers_of(runtime, &self.tag).await,
            );
        }
        report(
            "files",
            self.dirs
                .iter()
                .flat_map(|d| entries_of(d))
                .map(|p| p.display().to_string())
                .collect(),
        );
        problems
    }

    /// Audits until clean or `limit` passes. A process killed by the work
    /// may take a moment to be reaped and a dropped task to close its fds;
    /// nothing announces either, so the audit looks again every 20 ms.
    pub async fn settled(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let problems = self.left().await;
            if problems.is_empty() || Instant::now() > deadline {
                return problems;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes what is left (runtime containers, tagged processes,
    /// mounts), so that the next piece of work is audited on its own.
    pub async fn scrub(&self) {
        for runtime in &self.runtimes {
            for id in runtime_containers_of(runtime, &self.tag).await {
                let _ = tokio::time::timeout(
                    Duration::from_secs(20),
                    tokio::process::Command::new(runtime)
                        .args(["delete", "--force", &id])
                        .status(),
                )
                .await;
            }
        }
        for line in processes_of(&self.tag) {
            if let Some(pid) = line.split(' ').next().and_then(|p| p.parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for line in mounts_of(&self.tag) {
            if let Some(target) = line.split(' ').nth(4) {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(target)
                    .status();
            }
        }
    }
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut current = parent_of(pid);
    for _ in 0..64 {
        match current {
            Some(p) if p == ancestor => return true,
            Some(p) if p > 1 => current = parent_of(p),
            _ => return false,
        }
    }
    false
}

/// Live processes (other than this one) whose command line or cgroup
/// carries `tag`, or that descend from this process, as `"PID CMDLINE"`.
/// Zombies and kernel threads are not counted.
pub fn processes_of(tag: &str) -> Vec<String> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let ppid: i32 = fields.next()?.parse().ok()?;
            // Zombies are gone but for their status; kernel threads are
            // children of kthreadd (pid 2).
            if state == "Z" || pid == 2 || ppid == 2 {
                return None;
            }
            // A process in the middle of execve may show an empty command
            // line for a moment: its name stands in.
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = if raw.is_empty() {
                format!("[{comm}]")
            } else {
                String::from_utf8_lossy(&raw).replace('\0', " ")
            };
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            (cmdline.contains(tag) || cgroup.contains(tag) || descends_from(pid, me))
                .then(|| format!("{pid} {cmdline}"))
        })
        .collect()
}

/// Cgroup directories (up to five levels under `/sys/fs/cgroup`) whose
/// names carry `tag`.
pub fn cgroups_of(tag: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, tag: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name().to_string_lossy().contains(tag) {
                found.push(path);
            } else if depth > 0 {
                walk(&path, tag, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), tag, 4, &mut found);
    found
}

/// Lines of this process's mount table that carry `tag`.
pub fn mounts_of(tag: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(tag))
        .map(str::to_string)
        .collect()
}

/// Ids of `runtime`'s containers (`RUNTIME list -q`, within 20 s) that
/// carry `tag`; a listing that fails is reported as one entry saying so.
pub async fn runtime_containers_of(runtime: &str, tag: &str) -> Vec<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(runtime)
            .args(["list", "-q"])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match output {
        Ok(Ok(out)) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(tag))
            .map(str::to_string)
            .collect(),
        other => vec![format!("`{runtime} list -q` failed: {other:?}")],
    }
}

/// The entries of `dir` (none when it does not exist).
fn entries_of(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Other tests of this binary run alongside: the checks look for
    /// this test's own leftovers only.
    #[tokio::test]
    async fn a_child_a_new_fd_and_a_file_are_found() {
        let before = FdSnapshot::take();
        let dir = tempfile::Builder::new()
            .prefix("auditprobe")
            .tempdir()
            .unwrap();
        let audit = Audit::new("auditprobe-never-used", &before).dirs([dir.path()]);
        assert!(
            !audit.left().await.iter().any(|l| l.starts_with("files")),
            "an empty directory counts as clean"
        );

        let file = std::fs::File::open("/proc/self/mountinfo").unwrap();
        std::fs::write(dir.path().join("left"), "x").unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = child.id();
        let left = audit.left().await;
        child.kill().unwrap();
        child.wait().unwrap();
        drop(file);
        let line = |kind: &str| {
            left.iter()
                .find(|l| l.starts_with(kind))
                .cloned()
                .unwrap_or_default()
        };
        assert!(line("fds").contains("mountinfo"), "{left:?}");
        assert!(
            // By pid only: the child may not have become `sleep` yet.
            line("processes").contains(&format!("\"{pid} ")),
            "{left:?}"
        );
        assert!(line("files").contains("left"), "{left:?}");
    }
}
