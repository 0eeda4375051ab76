//! Whether a process is still the one that was seen earlier, and whether
//! the cgroup it lives in is frozen: what a driver needs to say "still
//! running" without asking the runtime.
//!
//! A pid alone does not name a process for long: once it exits, the kernel
//! may hand the number to another one. A [`ProcessIdentity`] adds the
//! process's start time (field 22 of `/proc/<pid>/stat`, clock ticks after
//! boot), which a later process with the same pid cannot share unless the
//! pid space wrapped around within one tick. It is the check runc itself
//! makes before it calls a container's init process alive.
//!
//! A frozen cgroup is how runc and crun pause a container (the v1
//! `freezer.state` or the v2 `cgroup.freeze`). [`CgroupFreezers`] finds the
//! freezer hierarchies once, from `/proc/self/mountinfo`, and tells for a
//! pid whether its cgroup is thawed, frozen, or cannot be told.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::ProbeError;

/// A process: its pid and its start time, which together name it even
/// after the pid was reused.
///
/// Its text form, used to keep it in a file, is `PID START_TIME`:
///
/// ```
/// use state_probe::ProcessIdentity;
/// let me = ProcessIdentity::of(std::process::id() as i32)?.expect("this process runs");
/// assert!(me.is_live()?);
/// let kept: ProcessIdentity = me.to_string().parse()?;
/// assert_eq!(kept, me);
/// // The same pid with another start time is another process.
/// let other = ProcessIdentity { start_time: me.start_time + 1, ..me };
/// assert!(!other.is_live()?);
/// # Ok::<(), state_probe::ProbeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessIdentity {
    /// The pid.
    pub pid: i32,
    /// When the process started, in clock ticks after boot
    /// (`/proc/<pid>/stat`, field 22).
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The identity of process `pid` as it is now: `Ok(None)` when no such
    /// process exists, it is a zombie (it exited and waits to be reaped),
    /// or `pid <= 0` (which names no single process).
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when `/proc/<pid>/stat` exists but cannot be read
    /// or parsed.
    pub fn of(pid: i32) -> Result<Option<ProcessIdentity>, ProbeError> {
        Ok(read_stat(pid)?
            .filter(|stat| stat.running())
            .map(|stat| ProcessIdentity {
                pid,
                start_time: stat.start_time,
            }))
    }

    /// Whether the process still runs: its pid exists, belongs to a
    /// process with the same start time, and that process is not a zombie.
    /// A process stopped by a signal (`SIGSTOP`) still runs.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Io`] when `/proc/<pid>/stat` exists but cannot be read
    /// or parsed.
    pub fn is_live(&self) -> Result<bool, ProbeError> {
        Ok(read_stat(self.pid)?
            .is_some_and(|stat| stat.running() && stat.start_time == self.start_time))
    }
}

impl fmt::Display for ProcessIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pid, self.start_time)
    }
}

impl std::str::FromStr for ProcessIdentity {
    type Err = ProbeError;

    /// Parses `PID START_TIME` (surrounding whitespace tolerated); the pid
    /// must be positive.
    fn from_str(text: &str) -> Result<Self, ProbeError> {
        let invalid = || {
            ProbeError::io(
                "parsing a process identity",
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "not `PID START_TIME`: {:?}",
                        text.chars().take(64).collect::<String>()
                    ),
                ),
            )
        };
        let mut words = text.split_whitespace();
        let (Some(pid), Some(start_time), None) = (words.next(), words.next(), words.next()) else {
            return Err(invalid());
        };
        let pid = pid
            .parse::<i32>()
            .ok()
            .filter(|pid| *pid > 0)
            .ok_or_else(invalid)?;
        let start_time = start_time.parse::<u64>().map_err(|_| invalid())?;
        Ok(ProcessIdentity { pid, start_time })
    }
}

/// The fields of `/proc/<pid>/stat` used here.
struct Stat {
    /// The state letter (field 3): `R`, `S`, `D`, `T`, `Z`, `X`...
    state: char,
    /// Field 22.
    start_time: u64,
}

impl Stat {
    /// Neither a zombie nor dead.
    fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` when there is no such process.
fn read_stat(pid: i32) -> Result<Option<Stat>, ProbeError> {
    if pid <= 0 {
        return Ok(None);
    }
    let path = format!("/proc/{pid}/stat");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // ESRCH: the process went away while the file was read.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            return Ok(None)
        }
        Err(e) => return Err(ProbeError::io(format!("reading {path}"), e)),
    };
    parse_stat(&text).map(Some).ok_or_else(|| {
        ProbeError::io(
            format!("parsing {path}"),
            io::Error::new(io::ErrorKind::InvalidData, "unexpected format"),
        )
    })
}

/// Parses the text of a `/proc/<pid>/stat` file.
fn parse_stat(text: &str) -> Option<Stat> {
    // The command name in parentheses may hold anything, spaces and
    // parentheses included: the fields resume after the last ')'.
    let end = text.rfind(')')?;
    let mut fields = text[end + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4 to 21 lie between the state (3) and the start time (22).
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// Whether a cgroup is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    /// Not frozen, in every freezer hierarchy of the host; this includes a
    /// process in a root cgroup, which cannot be frozen.
    Thawed,
    /// Frozen, or being frozen, in at least one freezer hierarchy.
    Frozen,
    /// Cannot be told: the process or its cgroup's files are gone or
    /// unreadable, or its cgroup lies outside the mounted hierarchies.
    Unknown,
}

/// The freezer hierarchies of the host: the v1 `freezer` controller's
/// mount and the v2 hierarchy's, whichever are mounted (a hybrid host has
/// both).
///
/// ```no_run
/// use state_probe::{CgroupFreezers, FreezerState};
/// let freezers = CgroupFreezers::discover();
/// let state = freezers.state_of(std::process::id() as i32);
/// assert_ne!(state, FreezerState::Frozen, "a frozen process cannot ask");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupFreezers {
    /// Where the v1 `freezer` controller is mounted.
    pub v1: Option<PathBuf>,
    /// Where the v2 (unified) hierarchy is mounted.
    pub v2: Option<PathBuf>,
}

impl CgroupFreezers {
    /// The hierarchies listed in `/proc/self/mountinfo`; none when it cannot
    /// be read.
    pub fn discover() -> CgroupFreezers {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| CgroupFreezers::from_mountinfo(&text))
            .unwrap_or_default()
    }

    /// The hierarchies listed in `mountinfo` (the text of a
    /// `/proc/<pid>/mountinfo` file). A mount of a subtree of a hierarchy
    /// (its root is not `/`) is not used: paths in `/proc/<pid>/cgroup`
    /// would not map onto it.
    ///
    /// ```
    /// let mountinfo = "\
    /// 30 25 0:26 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n\
    /// 31 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    /// let freezers = state_probe::CgroupFreezers::from_mountinfo(mountinfo);
    /// assert_eq!(freezers.v1.as_deref(), Some(std::path::Path::new("/sys/fs/cgroup/freezer")));
    /// assert_eq!(freezers.v2.as_deref(), Some(std::path::Path::new("/sys/fs/cgroup/unified")));
    /// ```
    pub fn from_mountinfo(mountinfo: &str) -> CgroupFreezers {
        let mut freezers = CgroupFreezers::default();
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let mut mount = before.split_whitespace().skip(3);
            let (Some(root), Some(point)) = (mount.next(), mount.next()) else {
                continue;
            };
            if root != "/" {
                continue;
            }
            let mut fs = after.split_whitespace();
            let (Some(fstype), _source, options) = (fs.next(), fs.next(), fs.next()) else {
                continue;
            };
            let point = PathBuf::from(unescape_mountinfo(point));
            match fstype {
                "cgroup" if options.is_some_and(|o| o.split(',').any(|o| o == "freezer")) => {
                    freezers.v1.get_or_insert(point);
                }
                "cgroup2" => {
                    freezers.v2.get_or_insert(point);
                }
                _ => {}
            }
        }
        freezers
    }

    /// Whether the cgroup of process `pid` is frozen, read from
    /// `/proc/<pid>/cgroup` and the freezer files of each hierarchy this
    /// host mounts. Reads a few small files; never fails, since
    /// [`FreezerState::Unknown`] says that the answer must come from
    /// elsewhere.
    pub fn state_of(&self, pid: i32) -> FreezerState {
        if pid <= 0 {
            return FreezerState::Unknown;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            Ok(cgroups) => self.state_in(&cgroups),
            Err(_) => FreezerState::Unknown,
        }
    }

    /// [`state_of`](Self::state_of) for a process whose
    /// `/proc/<pid>/cgroup` reads `cgroups`.
    pub fn state_in(&self, cgroups: &str) -> FreezerState {
        let mut frozen = false;
        let mut seen = false;
        for line in cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_hierarchy), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (root, file, thawed): (&Path, &str, &str) = match (controllers, &self.v1, &self.v2)
            {
                ("", _, Some(v2)) => (v2, "cgroup.freeze", "0"),
                (list, Some(v1), _) if list.split(',').any(|c| c == "freezer") => {
                    (v1, "freezer.state", "THAWED")
                }
                _ => continue,
            };
            seen = true;
            match read_freezer_file(root, path, file) {
                // A root cgroup has no freezer file and cannot be frozen.
                Some(None) => {}
                Some(Some(state)) if state == thawed => {}
                Some(Some(_)) => frozen = true,
                None => return FreezerState::Unknown,
            }
        }
        match (seen, frozen) {
            (_, true) => FreezerState::Frozen,
            (true, false) => FreezerState::Thawed,
            // No freezer hierarchy holds the process: nothing can freeze
            // it through a cgroup.
            (false, false) if self.v1.is_none() && self.v2.is_none() => FreezerState::Thawed,
            (false, false) => FreezerState::Unknown,
        }
    }
}

/// The trimmed content of `<root>/<path>/<file>`: `Some(None)` for the
/// root cgroup (`path` is `/`), `None` when it cannot be read (including a
/// cgroup that was removed, which `/proc` shows as `PATH (deleted)`).
fn read_freezer_file(root: &Path, path: &str, file: &str) -> Option<Option<String>> {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return Some(None);
    }
    if !path.starts_with('/') || relative.split('/').any(|part| part == "..") {
        return None;
    }
    std::fs::read_to_string(root.join(relative).join(file))
        .ok()
        .map(|text| Some(text.trim().to_string()))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_the_last_parenthesis() {
        let line = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let stat = parse_stat(line).expect("parses");
        assert_eq!((stat.state, stat.start_time), ('S', 987654));
        assert!(stat.running());
        let zombie = line.replace(") S ", ") Z ");
        assert!(!parse_stat(&zombie).expect("parses").running());
        assert!(parse_stat("4242 (x) S 1 2").is_none());
        assert!(parse_stat("no parenthesis").is_none());
    }

    #[test]
    fn a_child_is_live_until_it_exits_and_a_zombie_is_not() -> Result<(), Box<dyn std::error::Error>>
    {
        let mut child = std::process::Command::new("sleep").arg("1000").spawn()?;
        let pid = i32::try_from(child.id())?;
        let identity = ProcessIdentity::of(pid)?.ok_or("the child runs")?;
        assert!(identity.is_live()?);
        child.kill()?;
        // Not reaped until wait: a zombie, which no longer runs. Its
        // pidfd tells when the kernel made it one.
        assert!(crate::pid::PidFd::open(pid)?.is_some());
        let exited = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(crate::pid::wait_for_exit(
                pid,
                std::time::Duration::from_secs(10),
            ))?;
        assert!(exited);
        assert!(!identity.is_live()?);
        assert_eq!(ProcessIdentity::of(pid)?, None);
        child.wait()?;
        assert!(!identity.is_live()?);
        assert_eq!(ProcessIdentity::of(0)?, None);
        Ok(())
    }

    #[test]
    fn identities_parse_back_and_junk_does_not() {
        let identity: ProcessIdentity = " 42 123456\n".parse().expect("parses");
        assert_eq!(
            identity,
            ProcessIdentity {
                pid: 42,
                start_time: 123456
            }
        );
        for junk in ["", "42", "42 x", "0 1", "-1 1", "42 1 extra", "x 1"] {
            assert!(junk.parse::<ProcessIdentity>().is_err(), "{junk:?}");
        }
    }

    fn hierarchy(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        for (path, content) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("dirs");
            std::fs::write(path, content).expect("write");
        }
        root
    }

    #[test]
    fn v1_freezer_states() {
        let v1 = hierarchy(&[
            ("thawed/freezer.state", "THAWED\n"),
            ("frozen/freezer.state", "FROZEN\n"),
            ("freezing/freezer.state", "FREEZING\n"),
        ]);
        let freezers = CgroupFreezers {
            v1: Some(v1.path().to_path_buf()),
            v2: None,
        };
        let of = |path: &str| freezers.state_in(&format!("6:freezer:{path}\n0::/\n"));
        assert_eq!(of("/thawed"), FreezerState::Thawed);
        assert_eq!(of("/frozen"), FreezerState::Frozen);
        assert_eq!(of("/freezing"), FreezerState::Frozen);
        assert_eq!(of("/"), FreezerState::Thawed);
        assert_eq!(of("/removed"), FreezerState::Unknown);
        assert_eq!(of("/thawed (deleted)"), FreezerState::Unknown);
        assert_eq!(of("/../frozen"), FreezerState::Unknown);
        // A process outside the freezer hierarchy cannot be told.
        assert_eq!(freezers.state_in("4:memory:/x\n"), FreezerState::Unknown);
    }

    #[test]
    fn v2_and_hybrid_freezer_states() {
        let v2 = hierarchy(&[("a/cgroup.freeze", "0\n"), ("b/cgroup.freeze", "1\n")]);
        let v1 = hierarchy(&[("a/freezer.state", "THAWED\n")]);
        let pure = CgroupFreezers {
            v1: None,
            v2: Some(v2.path().to_path_buf()),
        };
        assert_eq!(pure.state_in("0::/a\n"), FreezerState::Thawed);
        assert_eq!(pure.state_in("0::/b\n"), FreezerState::Frozen);
        assert_eq!(pure.state_in("0::/\n"), FreezerState::Thawed);
        let hybrid = CgroupFreezers {
            v1: Some(v1.path().to_path_buf()),
            v2: Some(v2.path().to_path_buf()),
        };
        assert_eq!(
            hybrid.state_in("6:freezer:/a\n0::/a\n"),
            FreezerState::Thawed
        );
        // Frozen through either hierarchy is frozen.
        assert_eq!(
            hybrid.state_in("6:freezer:/a\n0::/b\n"),
            FreezerState::Frozen
        );
        // No freezer mounted at all: nothing can freeze the process.
        assert_eq!(
            CgroupFreezers::default().state_in("0::/a\n"),
            FreezerState::Thawed
        );
    }

    #[test]
    fn mountinfo_subtrees_and_other_filesystems_are_skipped() {
        let freezers = CgroupFreezers::from_mountinfo(
            "22 1 0:20 / /proc rw - proc proc rw\n\
             30 25 0:26 /sub /mnt/freezer rw - cgroup cgroup rw,freezer\n\
             31 25 0:26 / /sys/fs/cgroup/free\\040zer rw shared:9 - cgroup cgroup rw,freezer\n\
             32 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        assert_eq!(
            freezers,
            CgroupFreezers {
                v1: Some(PathBuf::from("/sys/fs/cgroup/free zer")),
                v2: None
            }
        );
    }

    #[test]
    fn this_hosts_freezers_see_this_process_thawed() {
        let state = CgroupFreezers::discover().state_of(std::process::id() as i32);
        assert_ne!(state, FreezerState::Frozen);
        assert_eq!(
            CgroupFreezers::discover().state_of(0),
            FreezerState::Unknown
        );
    }
}
