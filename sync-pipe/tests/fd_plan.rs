//! Real fd placement in spawned children: overlapping swaps, rotations,
//! same-number placements, fixed conmon numbers, and close-on-exec of
//! everything not placed.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Command, Output};

use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use sync_pipe::{seqpacket_pair, FdPlan, PipeNumbers};

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    pipe2(OFlag::O_CLOEXEC).expect("pipe2")
}

/// What `/proc/self/fd/<fd>` points at in this process, e.g. `pipe:[1234]`.
fn identity(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .expect("readlink")
        .to_string_lossy()
        .into_owned()
}

/// Everything written into a pipe, once every write end is closed.
fn drain(read_end: OwnedFd) -> String {
    let mut text = String::new();
    File::from(read_end)
        .read_to_string(&mut text)
        .expect("read pipe");
    text
}

fn run_sh(plan: &FdPlan, script: &str) -> Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    plan.install_std(&mut cmd);
    let out = cmd.output().expect("spawn /bin/sh");
    assert!(
        out.status.success(),
        "child failed: {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A shell command writing `word` to the child's fd `fd`. `/proc/self/fd`
/// works for any number, where `>&N` is limited to one digit in dash.
fn write_to(fd: RawFd, word: &str) -> String {
    format!("echo {word} >/proc/self/fd/{fd}")
}

#[test]
fn fixed_numbers_three_and_four() {
    let (ra, wa) = pipe();
    let (rb, wb) = pipe();
    let mut plan = FdPlan::new();
    plan.place(wa.as_raw_fd(), 3)
        .unwrap()
        .place(wb.as_raw_fd(), 4)
        .unwrap();
    run_sh(&plan, "echo x >&3; echo y >&4");
    drop((wa, wb));
    assert_eq!(drain(ra), "x\n");
    assert_eq!(drain(rb), "y\n");
}

#[test]
fn swapped_sources_and_targets() {
    let (ra, wa) = pipe();
    let (rb, wb) = pipe();
    let (a, b) = (wa.as_raw_fd(), wb.as_raw_fd());
    let mut plan = FdPlan::new();
    plan.place(a, b).unwrap().place(b, a).unwrap();
    // In the child, number b is pipe A and number a is pipe B.
    run_sh(
        &plan,
        &format!("{}; {}", write_to(b, "to-b"), write_to(a, "to-a")),
    );
    drop((wa, wb));
    assert_eq!(drain(ra), "to-b\n");
    assert_eq!(drain(rb), "to-a\n");
}

#[test]
fn rotated_sources_and_targets() {
    let (ra, wa) = pipe();
    let (rb, wb) = pipe();
    let (rc, wc) = pipe();
    let (a, b, c) = (wa.as_raw_fd(), wb.as_raw_fd(), wc.as_raw_fd());
    let mut plan = FdPlan::new();
    plan.place(a, b)
        .unwrap()
        .place(b, c)
        .unwrap()
        .place(c, a)
        .unwrap();
    run_sh(
        &plan,
        &format!(
            "{}; {}; {}",
            write_to(a, "at-a"),
            write_to(b, "at-b"),
            write_to(c, "at-c")
        ),
    );
    drop((wa, wb, wc));
    assert_eq!(drain(ra), "at-b\n");
    assert_eq!(drain(rb), "at-c\n");
    assert_eq!(drain(rc), "at-a\n");
}

#[test]
fn same_number_clears_close_on_exec() {
    let (r, w) = pipe();
    let n = w.as_raw_fd();
    let mut plan = FdPlan::new();
    plan.place(n, n).unwrap();
    run_sh(&plan, &write_to(n, "kept"));
    drop(w);
    assert_eq!(drain(r), "kept\n");
}

#[test]
fn one_source_at_two_targets() {
    let (r, w) = pipe();
    let mut plan = FdPlan::new();
    plan.place(w.as_raw_fd(), 3)
        .unwrap()
        .place(w.as_raw_fd(), 4)
        .unwrap();
    run_sh(&plan, "echo one >&3; echo two >&4");
    drop(w);
    assert_eq!(drain(r), "one\ntwo\n");
}

#[test]
fn unplaced_close_on_exec_fds_do_not_reach_the_child() {
    let (_ra, wa) = pipe();
    let (_rb, wb) = pipe();
    let (hidden_r, hidden_w) = pipe();
    let mut plan = FdPlan::new();
    plan.place(wa.as_raw_fd(), 3)
        .unwrap()
        .place(wb.as_raw_fd(), 4)
        .unwrap();
    let out = run_sh(
        &plan,
        r#"for f in /proc/$$/fd/*; do echo "${f##*/} $(readlink "$f")"; done"#,
    );
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines.contains(&format!("3 {}", identity(wa.as_raw_fd())).as_str()),
        "{listing}"
    );
    assert!(
        lines.contains(&format!("4 {}", identity(wb.as_raw_fd())).as_str()),
        "{listing}"
    );
    for hidden in [&hidden_r, &hidden_w] {
        let id = identity(hidden.as_raw_fd());
        assert!(
            !lines.iter().any(|l| l.ends_with(&format!(" {id}"))),
            "{id} leaked into the child:\n{listing}"
        );
    }
    // Each placed pipe appears at its target only: the source numbers,
    // being close-on-exec, did not carry extra copies into the child.
    for (source, target) in [(&wa, 3), (&wb, 4)] {
        let id = identity(source.as_raw_fd());
        let at: Vec<&str> = lines
            .iter()
            .filter(|l| l.ends_with(&format!(" {id}")))
            .copied()
            .collect();
        assert_eq!(at, vec![format!("{target} {id}")], "{listing}");
    }
}

#[test]
fn sealed_plans_keep_inheritable_fds_out_of_the_child() {
    let (_ra, wa) = pipe();
    // No O_CLOEXEC: without sealing this pipe would reach every child.
    let (open_r, open_w) = nix::unistd::pipe().expect("pipe");
    let mut plan = FdPlan::new();
    plan.place(wa.as_raw_fd(), 3).unwrap();
    let list = r#"for f in /proc/$$/fd/*; do echo "${f##*/} $(readlink "$f")"; done"#;
    let leaked = String::from_utf8_lossy(&run_sh(&plan, list).stdout).into_owned();
    let open_id = identity(open_w.as_raw_fd());
    assert!(
        leaked.contains(&open_id),
        "control: inheritable fd should leak:\n{leaked}"
    );

    plan.seal_unplaced();
    let sealed = String::from_utf8_lossy(&run_sh(&plan, list).stdout).into_owned();
    for fd in [&open_r, &open_w] {
        let id = identity(fd.as_raw_fd());
        assert!(!sealed.contains(&id), "{id} leaked:\n{sealed}");
    }
    assert!(
        sealed.contains(&format!("3 {}", identity(wa.as_raw_fd()))),
        "{sealed}"
    );
}

#[test]
fn conmon_numbers_with_socketpairs() {
    let (sync_parent, sync_child) = seqpacket_pair().unwrap();
    let (start_parent, start_child) = seqpacket_pair().unwrap();
    let numbers = PipeNumbers::new(0, false);
    let mut plan = FdPlan::new();
    plan.place(sync_child.as_raw_fd(), numbers.sync)
        .unwrap()
        .place(start_child.as_raw_fd(), numbers.start)
        .unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"readlink /proc/$$/fd/$_OCI_SYNCPIPE; readlink /proc/$$/fd/$_OCI_STARTPIPE"#)
        .envs(numbers.env());
    plan.install_std(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let expected = format!(
        "{}\n{}\n",
        identity(sync_child.as_raw_fd()),
        identity(start_child.as_raw_fd())
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    drop((sync_parent, start_parent));
}

#[test]
fn bad_source_fails_the_spawn_with_ebadf() {
    let mut plan = FdPlan::new();
    plan.place(1_000_000, 3).unwrap();
    let mut cmd = Command::new("/bin/true");
    plan.install_std(&mut cmd);
    let err = cmd.spawn().expect_err("spawn must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

#[tokio::test]
async fn tokio_command() {
    let (r, w) = pipe();
    let mut plan = FdPlan::new();
    plan.place(w.as_raw_fd(), 3).unwrap();
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c").arg("echo tokio >&3");
    plan.install_tokio(&mut cmd);
    let status = cmd.status().await.unwrap();
    assert!(status.success());
    drop(w);
    assert_eq!(drain(r), "tokio\n");
}

#[test]
fn standard_streams_and_negative_numbers_are_refused_as_sources() {
    let mut plan = FdPlan::new();
    for fd in 0..=2 {
        let err = plan.place(fd, 3 + fd).unwrap_err();
        assert!(
            matches!(err, sync_pipe::SyncPipeError::StdioSource { fd: f } if f == fd),
            "{err:?}"
        );
        assert!(err.to_string().contains("standard stream"), "{err}");
    }
    assert!(matches!(
        plan.place(-1, 3),
        Err(sync_pipe::SyncPipeError::InvalidFd { fd: -1 })
    ));
    assert!(plan.is_empty());
}
