//! Placing chosen file descriptors at chosen numbers in a child process,
//! between `fork` and `exec`.
//!
//! conmon finds its sync and start pipes (and any preserved fds) at fixed
//! numbers. An [`FdPlan`] records `(source, target)` pairs in the parent and
//! applies them in the child with nothing but `fcntl`, `dup2` and `close`, so
//! it is safe to run after `fork` in a multi-threaded program. Every fd that
//! is not placed keeps its close-on-exec flag and does not reach the child.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::SyncPipeError;

/// Puts chosen fds at chosen numbers in a child between fork and exec.
///
/// The plan stores raw fd numbers only; it neither owns nor closes the
/// sources. Build it before spawning, then hand it to the command with
/// [`FdPlan::install_std`] or [`FdPlan::install_tokio`] (or call
/// [`FdPlan::apply_in_child`] from your own `pre_exec` hook).
///
/// Limitation shared by every `pre_exec` hook: the standard library reports
/// a failed `exec` to the parent through a close-on-exec pipe whose number
/// is not known to the hook. If a target number happens to be that pipe's
/// number in the child, that pipe is replaced: an `exec` failure then looks
/// like a successful spawn of a child that exits at once, and the error
/// report is written into the placed fd. A successful `exec` is unaffected.
pub struct FdPlan {
    /// `(source, target)` pairs in insertion order.
    pairs: Vec<(RawFd, RawFd)>,
    /// One slot per pair for the temporary copy made in the child. Atomics
    /// give interior mutability through `&self` while keeping the plan
    /// `Sync`, as `pre_exec` requires; after `fork` the child writes to its
    /// own copy of this memory only.
    scratch: Vec<AtomicI32>,
    /// Whether every fd from 3 up that is not placed is made close-on-exec
    /// in the child, including fds the parent left inheritable.
    seal_unplaced: bool,
}

impl FdPlan {
    /// An empty plan.
    pub fn new() -> Self {
        FdPlan {
            pairs: Vec::new(),
            scratch: Vec::new(),
            seal_unplaced: false,
        }
    }

    /// Asks for `source` (an fd of this process) to appear at number
    /// `target` in the child.
    ///
    /// The caller keeps `source` open until the child is spawned. `source`
    /// and `target` may be equal, and sources may be other pairs' targets
    /// (e.g. `place(4, 3)` and `place(3, 4)` swap two fds).
    ///
    /// # Errors
    ///
    /// [`SyncPipeError::InvalidFd`] when either number is negative,
    /// [`SyncPipeError::StdioSource`] when `source` is 0, 1 or 2 (the
    /// child's own streams by the time placements run),
    /// [`SyncPipeError::DuplicateTarget`] when `target` is already used.
    pub fn place(&mut self, source: RawFd, target: RawFd) -> Result<&mut Self, SyncPipeError> {
        if source < 0 {
            return Err(SyncPipeError::InvalidFd { fd: source });
        }
        if source <= 2 {
            return Err(SyncPipeError::StdioSource { fd: source });
        }
        if target < 0 {
            return Err(SyncPipeError::InvalidFd { fd: target });
        }
        if self.pairs.iter().any(|&(_, t)| t == target) {
            return Err(SyncPipeError::DuplicateTarget { target });
        }
        self.pairs.push((source, target));
        self.scratch.push(AtomicI32::new(-1));
        Ok(self)
    }

    /// Makes every fd numbered 3 or above that the plan does not place
    /// close-on-exec in the child, so that only the placed fds (and stdio)
    /// survive exec, even when the parent holds fds without `FD_CLOEXEC`
    /// (a pipe made by a library that forgot the flag, say).
    ///
    /// Uses `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`; on kernels without it,
    /// sets the flag on each number below the `RLIMIT_NOFILE` soft limit.
    pub fn seal_unplaced(&mut self) -> &mut Self {
        self.seal_unplaced = true;
        self
    }

    /// The target numbers, in the order they were placed.
    pub fn targets(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.pairs.iter().map(|&(_, target)| target)
    }

    /// The `(source, target)` pairs, in the order they were placed.
    pub fn placements(&self) -> impl Iterator<Item = (RawFd, RawFd)> + '_ {
        self.pairs.iter().copied()
    }

    /// How many fds the plan places.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the plan places nothing.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Applies the plan in the current process. Async-signal-safe (no
    /// allocation, no locks): meant to be called inside
    /// `std::os::unix::process::CommandExt::pre_exec` or tokio's
    /// `Command::pre_exec`.
    ///
    /// Correct when sources and targets overlap: first every source is
    /// duplicated with `F_DUPFD_CLOEXEC` to a number above every source and
    /// target, then each copy is `dup2`ed to its target (which clears
    /// `FD_CLOEXEC` there), then the temporary copies are closed.
    ///
    /// # Errors
    ///
    /// The raw `errno` of the first failing call: `EBADF` for a source that
    /// is not open, `EINVAL`/`EMFILE` when the numbers exceed
    /// `RLIMIT_NOFILE`.
    pub fn apply_in_child(&self) -> io::Result<()> {
        if self.seal_unplaced {
            // Before placing: dup2 clears the flag on each target afterwards.
            mark_cloexec_from(3)?;
        }
        let Some(highest) = self.pairs.iter().map(|&(s, t)| s.max(t)).max() else {
            return Ok(());
        };
        let Some(above) = highest.checked_add(1) else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        let mut made = 0;
        let result = self.copy_and_place(above, &mut made);
        for slot in &self.scratch[..made] {
            // A failure to close a temporary copy is harmless: it is
            // close-on-exec and vanishes at exec.
            close_fd(slot.load(Ordering::Relaxed));
        }
        result
    }

    /// The two passes of [`FdPlan::apply_in_child`]; `made` counts the
    /// temporary copies that exist so the caller can close them.
    fn copy_and_place(&self, above: RawFd, made: &mut usize) -> io::Result<()> {
        for (&(source, _), slot) in self.pairs.iter().zip(&self.scratch) {
            let copy = dup_cloexec_at_least(source, above);
            if copy < 0 {
                return Err(io::Error::last_os_error());
            }
            slot.store(copy, Ordering::Relaxed);
            *made += 1;
        }
        for (&(_, target), slot) in self.pairs.iter().zip(&self.scratch) {
            let copy = slot.load(Ordering::Relaxed);
            loop {
                if dup2_fd(copy, target) >= 0 {
                    break;
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Makes `cmd` apply a copy of this plan in the child before exec.
    #[allow(unsafe_code)]
    pub fn install_std(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let plan = self.clone();
        // SAFETY: the hook runs in the child between fork and exec, where
        // only async-signal-safe work is allowed. `apply_in_child` reads
        // slices built before fork, stores to atomics in the child's own
        // copy of memory, and calls only fcntl, dup2 and close; it neither
        // allocates nor takes locks.
        unsafe {
            cmd.pre_exec(move || plan.apply_in_child());
        }
    }

    /// Makes `cmd` apply a copy of this plan in the child before exec.
    #[allow(unsafe_code)]
    pub fn install_tokio(&self, cmd: &mut tokio::process::Command) {
        let plan = self.clone();
        // SAFETY: as for `install_std`: the hook is allocation- and
        // lock-free and uses only async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || plan.apply_in_child());
        }
    }
}

impl Default for FdPlan {
    fn default() -> Self {
        FdPlan::new()
    }
}

impl Clone for FdPlan {
    fn clone(&self) -> Self {
        FdPlan {
            pairs: self.pairs.clone(),
            scratch: self.pairs.iter().map(|_| AtomicI32::new(-1)).collect(),
            seal_unplaced: self.seal_unplaced,
        }
    }
}

impl std::fmt::Debug for FdPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdPlan")
            .field("placements", &self.pairs)
            .finish()
    }
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a close-on-exec copy of `fd` at the
/// lowest free number `>= min`, or -1 with `errno` set.
#[allow(unsafe_code)]
fn dup_cloexec_at_least(fd: RawFd, min: RawFd) -> RawFd {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and touches no memory
    // of ours; a bad fd or number yields -1 and errno, nothing worse.
    unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) }
}

/// `dup2(old, new)`: makes `new` refer to `old`'s file without
/// `FD_CLOEXEC`, or -1 with `errno` set.
#[allow(unsafe_code)]
fn dup2_fd(old: RawFd, new: RawFd) -> RawFd {
    // SAFETY: dup2 only operates on the fd table. Replacing whatever is at
    // `new` is the purpose of the plan, and only happens in the child.
    unsafe { libc::dup2(old, new) }
}

/// Sets `FD_CLOEXEC` on every fd numbered `first` or above.
fn mark_cloexec_from(first: RawFd) -> io::Result<()> {
    if close_range_cloexec(first) == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // ENOSYS/EINVAL: kernels before 5.11 (or without the CLOEXEC flag);
    // EPERM: a seccomp filter that refuses syscalls it does not know.
    if !matches!(
        err.raw_os_error(),
        Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EPERM)
    ) {
        return Err(err);
    }
    // Flag each possible number. EBADF marks a number
    // with nothing open, which is the common case and not an error.
    for fd in first..open_file_limit() {
        set_cloexec(fd);
    }
    Ok(())
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: 0, or -1 with errno.
#[allow(unsafe_code)]
fn close_range_cloexec(first: RawFd) -> libc::c_long {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes plain integers and only changes fd flags
    // in this (child) process's table.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    }
}

/// The `RLIMIT_NOFILE` soft limit, capped so the fallback loop stays short.
#[allow(unsafe_code)]
fn open_file_limit() -> RawFd {
    const CAP: libc::rlim_t = 1 << 16;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        limit.rlim_cur.min(CAP) as RawFd
    } else {
        1024
    }
}

/// `fcntl(fd, F_SETFD, FD_CLOEXEC)`, ignoring the result.
#[allow(unsafe_code)]
fn set_cloexec(fd: RawFd) {
    // SAFETY: F_SETFD takes an int and only changes this fd's flags.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// `close(fd)`, ignoring the result.
#[allow(unsafe_code)]
fn close_fd(fd: RawFd) {
    // SAFETY: `fd` is a temporary copy this plan created in the child; no
    // other owner refers to that number.
    unsafe {
        libc::close(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_negative_numbers() {
        let mut plan = FdPlan::new();
        assert!(matches!(
            plan.place(-1, 3),
            Err(SyncPipeError::InvalidFd { fd: -1 })
        ));
        assert!(matches!(
            plan.place(3, -2),
            Err(SyncPipeError::InvalidFd { fd: -2 })
        ));
        assert!(plan.is_empty());
    }

    #[test]
    fn rejects_duplicate_targets() {
        let mut plan = FdPlan::new();
        plan.place(7, 3).and_then(|p| p.place(8, 4)).ok();
        assert!(matches!(
            plan.place(9, 3),
            Err(SyncPipeError::DuplicateTarget { target: 3 })
        ));
        assert_eq!(plan.targets().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(plan.placements().collect::<Vec<_>>(), vec![(7, 3), (8, 4)]);
        assert_eq!(plan.len(), 2);
    }

    #[test]
    fn same_source_twice_is_allowed() {
        let mut plan = FdPlan::new();
        assert!(plan.place(7, 3).is_ok());
        assert!(plan.place(7, 4).is_ok());
        let clone = plan.clone();
        assert_eq!(clone.placements().collect::<Vec<_>>(), vec![(7, 3), (7, 4)]);
        assert_eq!(
            format!("{clone:?}"),
            "FdPlan { placements: [(7, 3), (7, 4)] }"
        );
    }

    #[test]
    fn empty_plan_applies_trivially() {
        assert!(FdPlan::default().apply_in_child().is_ok());
    }
}
