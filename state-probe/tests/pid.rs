//! Tests of process liveness, pidfds and waiting for exits.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use state_probe::{alive, wait_for_exit, PidFd};

fn spawn_sleep() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep")
}

fn pid_of(child: &std::process::Child) -> i32 {
    i32::try_from(child.id()).expect("pid fits i32")
}

#[test]
fn alive_on_self_and_on_a_reaped_child() {
    assert!(alive(i32::try_from(std::process::id()).expect("pid")));
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = pid_of(&child);
    child.wait().expect("reap");
    assert!(!alive(pid));
    assert!(!alive(0));
    assert!(!alive(-1));
    assert!(!alive(i32::MAX));
}

#[test]
fn a_zombie_is_still_alive() {
    let mut child = spawn_sleep();
    let pid = pid_of(&child);
    child.kill().expect("kill");
    let fd = PidFd::open(pid).expect("open").expect("zombie has a pidfd");
    drop(fd);
    assert!(alive(pid), "an unreaped child still has a pid");
    child.wait().expect("reap");
    assert!(!alive(pid));
}

#[tokio::test]
async fn wait_for_exit_returns_when_the_process_is_killed() {
    let mut child = tokio::process::Command::new("sleep")
        .arg("1000")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sleep");
    let pid = i32::try_from(child.id().expect("running")).expect("pid");
    let started = Instant::now();
    // join! polls the waiter first, so its pidfd is open before the kill.
    let (exited, killed) = tokio::join!(wait_for_exit(pid, Duration::from_secs(5)), child.kill());
    killed.expect("kill");
    assert!(exited.expect("wait"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn wait_for_exit_gives_up_after_the_limit() {
    let mut child = spawn_sleep();
    let started = Instant::now();
    let exited = wait_for_exit(pid_of(&child), Duration::from_millis(100)).await;
    let took = started.elapsed();
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(!exited.expect("wait"));
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn wait_for_exit_on_a_missing_pid_is_immediate() {
    assert!(wait_for_exit(i32::MAX, Duration::from_secs(5))
        .await
        .expect("wait"));
    assert!(wait_for_exit(0, Duration::from_secs(5))
        .await
        .expect("wait"));
    assert!(wait_for_exit(-5, Duration::from_secs(5))
        .await
        .expect("wait"));
}

#[tokio::test]
async fn a_zombie_counts_as_exited() {
    let mut child = spawn_sleep();
    let pid = pid_of(&child);
    child.kill().expect("kill");
    // Not reaped yet.
    assert!(wait_for_exit(pid, Duration::from_secs(5))
        .await
        .expect("wait"));
    child.wait().expect("reap");
}

#[tokio::test]
async fn pidfd_send_signal_kills_a_child() {
    let mut child = spawn_sleep();
    let pid = pid_of(&child);
    let fd = PidFd::open(pid).expect("open").expect("child exists");
    assert_eq!(fd.pid(), pid);
    assert!(!fd.exited(Duration::from_millis(20)).await.expect("wait"));
    fd.send_signal(libc::SIGKILL).expect("signal");
    assert!(fd.exited(Duration::from_secs(5)).await.expect("wait"));
    let status = child.wait().expect("reap");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // The process is gone: signalling it again is not an error, and the
    // pidfd stays readable.
    fd.send_signal(libc::SIGKILL).expect("ESRCH is fine");
    assert!(fd.exited(Duration::from_secs(5)).await.expect("wait"));
}

#[tokio::test]
async fn concurrent_waits_on_one_pidfd() {
    let mut child = spawn_sleep();
    let fd = PidFd::open(pid_of(&child))
        .expect("open")
        .expect("child exists");
    let limit = Duration::from_secs(5);
    let (a, b, ()) = tokio::join!(fd.exited(limit), fd.exited(limit), async {
        fd.send_signal(libc::SIGTERM).expect("signal");
    });
    assert!(a.expect("first wait"));
    assert!(b.expect("second wait"));
    child.wait().expect("reap");
}

#[test]
fn pidfd_of_a_missing_process_is_none() {
    assert!(PidFd::open(i32::MAX).expect("open").is_none());
    assert!(PidFd::open(0).expect("open").is_none());
}

#[test]
fn an_invalid_signal_is_an_error() {
    let mut child = spawn_sleep();
    let fd = PidFd::open(pid_of(&child))
        .expect("open")
        .expect("child exists");
    let err = fd.send_signal(1000).expect_err("no signal 1000");
    assert!(err.to_string().contains("sending signal 1000"), "{err}");
    child.kill().expect("kill");
    child.wait().expect("reap");
}
