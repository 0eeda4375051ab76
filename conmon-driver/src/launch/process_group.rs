//! Killing a process group and waiting for its members on pidfds. conmon
//! runs in a process group of its own; until its first process is reaped,
//! the group id is pinned and every process still in it (conmon's parent
//! and anything forked before the monitor's `setsid`) can be found through
//! `/proc`, killed, and awaited.

use std::time::Duration;

use state_probe::PidFd;

/// The pids whose process group is `pgid`.
pub(crate) fn members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_group_of(*pid) == Some(pgid))
        .collect()
}

/// Field 5 of `/proc/PID/stat`, read after the command name's closing
/// parenthesis (the name itself may hold spaces and parentheses).
fn process_group_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// Whether the pinned process leads a process group of its own (its pid
/// is its group's id): killing that group reaches what it started and
/// nothing else.
pub(crate) fn leads_own_group(process: &PidFd) -> bool {
    process_group_of(process.pid()) == Some(process.pid())
}

/// SIGKILLs every member of `pgid` and waits, on pidfds, for each to die.
/// Returns the pids that were still alive after `limit`.
pub(crate) async fn kill_group(pgid: i32, limit: Duration) -> Vec<i32> {
    let mut survivors = Vec::new();
    // A pid found by the scan may exit and be reused before its pidfd is
    // open: the group is checked again once the pidfd pins the process.
    let pidfds: Vec<PidFd> = members(pgid)
        .into_iter()
        .filter_map(|pid| PidFd::open(pid).ok().flatten())
        .filter(|pidfd| process_group_of(pidfd.pid()) == Some(pgid))
        .collect();
    for pidfd in &pidfds {
        let _ = pidfd.send_signal(libc::SIGKILL);
    }
    for pidfd in &pidfds {
        if !matches!(pidfd.exited(limit).await, Ok(true)) {
            survivors.push(pidfd.pid());
        }
    }
    survivors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_group_of_this_process() {
        let me = std::process::id() as i32;
        let expected = nix::unistd::getpgrp().as_raw();
        assert_eq!(process_group_of(me), Some(expected));
        assert!(members(expected).contains(&me));
    }
}
