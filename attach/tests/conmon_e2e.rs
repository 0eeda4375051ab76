//! The attach client against a real conmon 2.1 + runc: connect to
//! `<bundle>/attach` (`--full-attach`), send stdin, receive stdout and
//! stderr records, see end of stream when the container exits.
//!
//! Needs root, `conmon`, `runc` and a static `busybox`; skipped loudly
//! without them (and failing under `CI`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use attach::{AttachSocket, AttachStream};
use nix::sys::socket::{
    recv, setsockopt, socketpair, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
};
use nix::sys::time::TimeVal;
use testkit::{find_binary, require, BundleBuilder, Need};

const LIMIT: Duration = Duration::from_secs(30);

/// Makes `fd` appear as descriptor `target` (without close-on-exec) in the
/// child `cmd` will start.
#[allow(unsafe_code)]
fn place_fd(cmd: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe `dup2` and `fcntl` on descriptors that are open in
    // the child (`fd` is kept open by the caller until the spawn returns).
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs a command to completion on the blocking pool, bounded by `LIMIT`.
async fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let task = tokio::task::spawn_blocking(move || cmd.output());
    tokio::time::timeout(LIMIT, task)
        .await
        .unwrap_or_else(|_| panic!("{shown} did not finish within {LIMIT:?}"))
        .expect("join")
        .unwrap_or_else(|e| panic!("{shown}: {e}"))
}

/// Deletes the container (and so ends its conmon) however the test ends.
struct ContainerCleanup {
    runc: PathBuf,
    root: PathBuf,
    id: String,
}

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        let _ = Command::new(&self.runc)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits (at most `LIMIT`) for conmon's first sync record and returns it.
async fn read_sync_record(fd: OwnedFd) -> String {
    setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(30, 0)).expect("SO_RCVTIMEO");
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 4096];
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).expect("sync pipe recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .expect("join")
}

fn path_arg(flag: &str, path: &Path) -> [String; 2] {
    [flag.to_owned(), path.display().to_string()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_real_container() {
    if !require(&[
        Need::Root,
        Need::Binary("conmon"),
        Need::Binary("runc"),
        Need::Binary("busybox"),
    ]) {
        return;
    }
    let conmon = find_binary("conmon").expect("conmon");
    let runc = find_binary("runc").expect("runc");

    let work = tempfile::tempdir().expect("tempdir");
    let bundle = BundleBuilder::new()
        .args(["sh", "-c", "read line; echo got:$line; echo oops >&2"])
        .in_dir(work.path())
        .build()
        .expect("bundle");
    let runc_root = work.path().join("runc-root");
    let exits = work.path().join("exits");
    let sockets = work.path().join("sockets");
    for dir in [&runc_root, &exits, &sockets] {
        std::fs::create_dir(dir).expect("mkdir");
    }
    let id = format!("attach-e2e-{}", std::process::id());

    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");

    let mut cmd = Command::new(&conmon);
    cmd.args(["--api-version", "1", "-c", &id, "-u", &id, "-n", &id])
        .args(path_arg("-r", &runc))
        .args(path_arg("-b", bundle.path()))
        .args(path_arg("-p", &bundle.path().join("pidfile")))
        .args(path_arg("--exit-dir", &exits))
        .args(path_arg("--socket-dir-path", &sockets))
        .arg("--full-attach")
        .args(["--runtime-arg", "--root", "--runtime-arg"])
        .arg(&runc_root)
        .arg("-l")
        .arg(format!(
            "k8s-file:{}",
            bundle.path().join("ctr.log").display()
        ))
        .arg("-i")
        .args(path_arg(
            "--conmon-pidfile",
            &bundle.path().join("conmon.pid"),
        ))
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("_OCI_SYNCPIPE", "3")
        .current_dir(bundle.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    place_fd(&mut cmd, theirs.as_raw_fd(), 3);

    let cleanup = ContainerCleanup {
        runc: runc.clone(),
        root: runc_root.clone(),
        id: id.clone(),
    };
    let launched = run(cmd).await;
    drop(theirs);
    assert!(
        launched.status.success(),
        "conmon failed: {}\n{}",
        launched.status,
        String::from_utf8_lossy(&launched.stderr)
    );
    let sync = read_sync_record(ours).await;
    assert!(
        sync.contains("\"data\"") && !sync.contains("-1"),
        "create failed: {sync:?}"
    );

    let socket = AttachSocket::connect(&bundle.path().join("attach"), LIMIT)
        .await
        .expect("connect to conmon's attach socket");

    let mut start = Command::new(&runc);
    start.arg("--root").arg(&runc_root).args(["start", &id]);
    let started = run(start).await;
    assert!(
        started.status.success(),
        "runc start: {}",
        String::from_utf8_lossy(&started.stderr)
    );

    socket.write_all(b"hello\n").await.expect("write stdin");

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let drained = tokio::time::timeout(LIMIT, async {
        while let Some(record) = socket.read_record().await.expect("read record") {
            match record.stream {
                AttachStream::Stdout => stdout.extend(record.data),
                AttachStream::Stderr => stderr.extend(record.data),
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "no end of stream within {LIMIT:?}");
    assert_eq!(String::from_utf8_lossy(&stdout), "got:hello\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "oops\n");

    // conmon closes attach connections when the container's output ends,
    // which can be before it writes the exit file: end of stream on the
    // attach socket is not a "container exited" notification.
    drop(socket);
    drop(cleanup);
}
