//! Giving conmon its label in the child only.
//!
//! podman sets the label with `SetExecLabel` in its own (locked) thread,
//! starts conmon, then clears it again. This crate never changes the calling
//! process: [`ExecLabel`] writes the label to the *child's*
//! `/proc/thread-self/attr/exec` between fork and exec, so the kernel
//! applies it at conmon's `execve` and nothing in the engine is touched.
//!
//! [`exec_label_for`] decides, from plain data, whether a label is needed.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::context::{conmon_label, SecurityLabel};
use crate::error::SelinuxError;
use crate::host::{current_label, selinux_enabled};

/// The file through which a thread asks for a context at its next `execve`.
pub const EXEC_ATTR_PATH: &str = "/proc/thread-self/attr/exec";

const EXEC_ATTR_CPATH: &CStr = c"/proc/thread-self/attr/exec";

/// Whether conmon's label follows the host's SELinux state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LaunchPolicy {
    /// Do what podman does: on an SELinux host, launch conmon with the
    /// engine's context at level `s0` (see [`conmon_label`]).
    #[default]
    FollowHost,
    /// Never set a label; conmon inherits the engine's context.
    Off,
}

/// The exec label conmon needs, if any; a pure decision.
///
/// `None` when the policy is [`LaunchPolicy::Off`], when SELinux is not
/// `enabled`, when there is no `current` label, and when
/// [`conmon_label`] would not change the current label (level already `s0`
/// or absent): podman writes no exec label in that last case either, so
/// conmon inherits the engine's context and no `setexec` permission is
/// needed.
pub fn exec_label_for(
    policy: LaunchPolicy,
    enabled: bool,
    current: Option<&SecurityLabel>,
) -> Option<SecurityLabel> {
    if policy == LaunchPolicy::Off || !enabled {
        return None;
    }
    let current = current?;
    let wanted = conmon_label(current);
    (wanted != *current).then_some(wanted)
}

/// A label to be written to a child's exec-attr file between fork and exec.
///
/// Everything the child needs (the NUL-terminated path, the label bytes) is
/// prepared at construction, so [`ExecLabel::apply_in_child`] allocates
/// nothing and calls only `open`, `write` and `close`.
///
/// ```no_run
/// use selinux_launch::{ExecLabel, LaunchPolicy};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut cmd = std::process::Command::new("/usr/bin/conmon");
/// if let Some(label) = ExecLabel::from_host(LaunchPolicy::FollowHost)? {
///     label.install_std(&mut cmd);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ExecLabel {
    label: SecurityLabel,
    path: PathBuf,
    prepared: Arc<Prepared>,
}

/// The bytes used in the child, shared with every installed hook.
#[derive(Debug)]
struct Prepared {
    path: CString,
    label: Box<[u8]>,
}

impl ExecLabel {
    /// Writes `label` to [`EXEC_ATTR_PATH`] in the child.
    pub fn new(label: SecurityLabel) -> Self {
        let bytes = label.to_string().into_bytes().into_boxed_slice();
        ExecLabel {
            label,
            path: PathBuf::from(EXEC_ATTR_PATH),
            prepared: Arc::new(Prepared {
                path: EXEC_ATTR_CPATH.to_owned(),
                label: bytes,
            }),
        }
    }

    /// Writes `label` to `path` in the child instead (for tests, or kernels
    /// without `/proc/thread-self`, where `/proc/self/attr/exec` serves in a
    /// single-threaded child).
    ///
    /// # Errors
    ///
    /// [`SelinuxError::NulInPath`] when `path` holds a NUL byte.
    pub fn with_path(label: SecurityLabel, path: impl Into<PathBuf>) -> Result<Self, SelinuxError> {
        let path = path.into();
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| SelinuxError::NulInPath { path: path.clone() })?;
        let bytes = label.to_string().into_bytes().into_boxed_slice();
        Ok(ExecLabel {
            label,
            path,
            prepared: Arc::new(Prepared {
                path: cpath,
                label: bytes,
            }),
        })
    }

    /// What podman would do on this host: reads the host state with
    /// [`selinux_enabled`] and [`current_label`], then decides with
    /// [`exec_label_for`]. `Ok(None)` means nothing is to be installed.
    ///
    /// # Errors
    ///
    /// As for [`current_label`], when SELinux is enabled and the current
    /// label cannot be read or parsed.
    pub fn from_host(policy: LaunchPolicy) -> Result<Option<Self>, SelinuxError> {
        if policy == LaunchPolicy::Off || !selinux_enabled() {
            return Ok(None);
        }
        let current = current_label()?;
        Ok(exec_label_for(policy, true, current.as_ref()).map(ExecLabel::new))
    }

    /// The label that will be written.
    pub fn label(&self) -> &SecurityLabel {
        &self.label
    }

    /// The file it will be written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the label to the exec-attr file of the calling thread. Meant
    /// for a child between fork and exec: async-signal-safe (no allocation,
    /// no locks; only `open`, `write` and `close`).
    ///
    /// # Errors
    ///
    /// The `errno` of the failing call, e.g. `EACCES` when policy forbids
    /// the transition, `EINVAL` for a context the policy does not know.
    pub fn apply_in_child(&self) -> io::Result<()> {
        self.prepared.apply()
    }

    /// Makes `cmd` write the label in the child before exec.
    #[allow(unsafe_code)]
    pub fn install_std(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let prepared = Arc::clone(&self.prepared);
        // SAFETY: the hook runs in the child between fork and exec, where
        // only async-signal-safe work is allowed. `Prepared::apply` reads a
        // path and bytes built before fork and calls only open, write and
        // close; it neither allocates nor takes locks (the Arc is only
        // dereferenced, never cloned or dropped, in the child).
        unsafe {
            cmd.pre_exec(move || prepared.apply());
        }
    }

    /// Makes `cmd` write the label in the child before exec.
    #[allow(unsafe_code)]
    pub fn install_tokio(&self, cmd: &mut tokio::process::Command) {
        let prepared = Arc::clone(&self.prepared);
        // SAFETY: as for `install_std`: the hook is allocation- and
        // lock-free and uses only async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || prepared.apply());
        }
    }
}

impl Prepared {
    fn apply(&self) -> io::Result<()> {
        let fd = open_write_only(&self.path);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = write_all(fd, &self.label);
        let closed = close_fd(fd);
        written?;
        if closed < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Writes every byte of `bytes` to `fd`, retrying on `EINTR` and short
/// writes. The kernel takes the whole context in one `write`; the loop is
/// for regular files used in tests.
fn write_all(fd: libc::c_int, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = write_fd(fd, bytes);
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        bytes = bytes.get(n.unsigned_abs()..).unwrap_or_default();
    }
    Ok(())
}

/// `open(path, O_WRONLY | O_CLOEXEC)`: an fd, or -1 with `errno` set.
#[allow(unsafe_code)]
fn open_write_only(path: &CStr) -> libc::c_int {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the
    // call; open reads it and touches no other memory of ours.
    unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) }
}

/// `write(fd, bytes)`: the count written, or -1 with `errno` set.
#[allow(unsafe_code)]
fn write_fd(fd: libc::c_int, bytes: &[u8]) -> libc::ssize_t {
    // SAFETY: the pointer and length come from one live slice; write only
    // reads that many bytes from it.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
}

/// `close(fd)`: 0, or -1 with `errno` set.
#[allow(unsafe_code)]
fn close_fd(fd: libc::c_int) -> libc::c_int {
    // SAFETY: `fd` was opened by `open_write_only` in this function's
    // caller and is closed exactly once.
    unsafe { libc::close(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> SecurityLabel {
        SecurityLabel::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn exec_label_table() {
        let mcs = label("system_u:system_r:container_runtime_t:s0:c1,c2");
        let range = label("unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023");
        let s0 = label("system_u:system_r:container_runtime_t:s0");
        let no_level = label("system_u:system_r:container_runtime_t");
        let table: [(LaunchPolicy, bool, Option<&SecurityLabel>, Option<&str>); 9] = [
            (
                LaunchPolicy::FollowHost,
                true,
                Some(&mcs),
                Some("system_u:system_r:container_runtime_t:s0"),
            ),
            (
                LaunchPolicy::FollowHost,
                true,
                Some(&range),
                Some("unconfined_u:unconfined_r:unconfined_t:s0"),
            ),
            (LaunchPolicy::FollowHost, true, Some(&s0), None),
            (LaunchPolicy::FollowHost, true, Some(&no_level), None),
            (LaunchPolicy::FollowHost, true, None, None),
            (LaunchPolicy::FollowHost, false, Some(&mcs), None),
            (LaunchPolicy::Off, true, Some(&mcs), None),
            (LaunchPolicy::Off, false, Some(&range), None),
            (LaunchPolicy::Off, true, None, None),
        ];
        for (policy, enabled, current, expected) in table {
            let got = exec_label_for(policy, enabled, current);
            assert_eq!(
                got.map(|l| l.to_string()).as_deref(),
                expected,
                "{policy:?} enabled={enabled} current={current:?}"
            );
        }
    }

    #[test]
    fn default_path_is_thread_self_exec() {
        let exec = ExecLabel::new(label("u:r:t:s0"));
        assert_eq!(exec.path(), Path::new(EXEC_ATTR_PATH));
        assert_eq!(exec.prepared.path.as_bytes(), EXEC_ATTR_PATH.as_bytes());
        assert_eq!(&*exec.prepared.label, b"u:r:t:s0");
    }

    #[test]
    fn a_path_with_nul_is_refused() {
        let err = ExecLabel::with_path(label("u:r:t"), "/tmp/a\0b");
        assert!(matches!(err, Err(SelinuxError::NulInPath { .. })));
    }
}
