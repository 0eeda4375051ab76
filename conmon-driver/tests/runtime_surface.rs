//! The rest of the runtime surface: checkpoint and restore command lines
//! (through a recording fake runtime, restore driven by the real conmon),
//! resource updates applied by runc, sd-notify, port reservation, extra fds
//! and the fds conmon ends up holding, and runtime information.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;
use conmon_driver::{
    ConmonDescription, ConmonDescriptionExt, MonitorOptions, NamedFd, PortProtocol,
    PortReservation, SdNotifyMode,
};
use runtime_api::{
    CheckpointOptions, CreateOptions, LinuxResources, OciRuntime, RestoreOptions, RuntimeError,
};
use testkit::{fake_runtime_without_containers, recorded_calls, FakeRuntimeBehaviour};

fn recording_runtime(flags: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    // `state` says "does not exist", as for a fresh id, so creates pass
    // their check; every other subcommand succeeds silently.
    let fake =
        fake_runtime_without_containers(dir.path(), "recorder", FakeRuntimeBehaviour::Succeed)
            .unwrap();
    let mut config = config("recorder", dir.path());
    config.runtime_paths = vec![fake];
    config.runtime_flags = flags.iter().map(|f| f.to_string()).collect();
    setup_with(config, dir)
}

#[tokio::test]
async fn checkpoint_command_lines_for_each_option_combination() {
    let s = recording_runtime(&["--root", "/state"]);
    let id = unique_id("cp");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let base = || CheckpointOptions::new("/cp/img", "/cp/work");
    let cases: Vec<(CheckpointOptions, Vec<&str>)> = vec![
        (base(), vec![]),
        (
            {
                let mut o = base();
                o.leave_running = true;
                o
            },
            vec!["--leave-running"],
        ),
        (
            {
                let mut o = base();
                o.tcp_established = true;
                o
            },
            vec!["--tcp-established"],
        ),
        (
            {
                let mut o = base();
                o.file_locks = true;
                o
            },
            vec!["--file-locks"],
        ),
        (
            {
                let mut o = base();
                o.pre_dump = true;
                o
            },
            vec!["--pre-dump"],
        ),
        (
            {
                let mut o = base();
                o.parent = Some("pre".into());
                o
            },
            vec!["--parent-path", "../pre"],
        ),
        (
            // A pre-dump has no parent.
            {
                let mut o = base();
                o.pre_dump = true;
                o.parent = Some("pre".into());
                o
            },
            vec!["--pre-dump"],
        ),
        (
            {
                let mut o = base();
                o.leave_running = true;
                o.tcp_established = true;
                o.file_locks = true;
                o.parent = Some("pre".into());
                o
            },
            vec![
                "--leave-running",
                "--tcp-established",
                "--file-locks",
                "--parent-path",
                "../pre",
            ],
        ),
    ];
    for (options, _) in &cases {
        s.runtime.checkpoint(&c, options).await.unwrap();
    }
    let calls = checkpoint_calls(&s);
    assert_eq!(calls.len(), cases.len());
    for ((_, flags), call) in cases.iter().zip(&calls) {
        let mut expected = vec![
            "--root",
            "/state",
            "checkpoint",
            "--image-path",
            "/cp/img",
            "--work-path",
            "/cp/work",
        ];
        expected.extend(flags);
        expected.push(id.as_str());
        assert_eq!(call, &expected);
    }

    for bad in [CheckpointOptions::new("relative", "/w"), {
        let mut o = base();
        o.parent = Some("../x".into());
        o
    }] {
        let err = s.runtime.checkpoint(&c, &bad).await.unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
    }
    assert_eq!(checkpoint_calls(&s).len(), cases.len());
}

/// The recorded calls but the driver's one-time `checkpoint --help` probe
/// of whether the runtime can checkpoint at all.
fn checkpoint_calls(s: &Setup) -> Vec<Vec<String>> {
    recorded_calls(s.dir.path())
        .unwrap()
        .into_iter()
        .filter(|call| !call.iter().any(|a| a == "--help"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_command_lines_through_the_real_conmon() {
    if !require_conmon() {
        return;
    }
    for (tcp, locks, extra) in [
        (false, false, vec![]),
        (true, false, vec!["--tcp-established"]),
        (false, true, vec!["--file-locks"]),
        (true, true, vec!["--tcp-established", "--file-locks"]),
    ] {
        let s = recording_runtime(&["--root", "/state"]);
        let id = unique_id("restore");
        let b = bundle(&["true"]);
        let c = s.describe(&id, &b).build().unwrap();
        let mut restore = RestoreOptions::new("/cp/img");
        restore.tcp_established = tcp;
        restore.file_locks = locks;
        // The fake runtime writes no pidfile, so conmon reports a failure
        // after running it; what matters is the command line it ran.
        let _ = s
            .runtime
            .restore(&c, &restore, CreateOptions::default())
            .await;
        let calls = recorded_calls(s.dir.path()).unwrap();
        let restore = calls
            .iter()
            .find(|call| call.iter().any(|a| a == "restore"))
            .unwrap_or_else(|| panic!("no restore call in {calls:?}"));
        let bundle = b.path().display().to_string();
        let pidfile = s.run_dir(&id).join("pidfile").display().to_string();
        let mut expected: Vec<String> = [
            "--root",
            "/state",
            "restore",
            "--bundle",
            &bundle,
            "--pid-file",
            &pidfile,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let tail_start = restore
            .iter()
            .position(|a| a == "--detach")
            .unwrap_or_else(|| panic!("restore without --detach: {restore:?}"));
        assert_eq!(restore[..expected.len()], expected[..], "{restore:?}");
        expected.extend(
            [
                "--detach",
                "--image-path",
                "/cp/img",
                "--work-path",
                &bundle,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        expected.extend(extra.iter().map(|s| s.to_string()));
        expected.push(id.to_string());
        assert_eq!(restore[tail_start..], expected[7..], "{restore:?}");
        s.assert_nothing_left(&id);
    }
}

fn require_conmon() -> bool {
    testkit::require(&[
        testkit::Need::Binary("conmon"),
        testkit::Need::Binary("busybox"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runc_applies_a_pids_limit_to_a_running_container() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("update");
    let b = bundle(&["sleep", "60"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();

    let resources: LinuxResources = serde_json::from_str(r#"{"pids": {"limit": 42}}"#).unwrap();
    s.runtime.update_resources(&c, &resources).await.unwrap();
    assert_eq!(pids_max(created.container.pid.unwrap()), "42");
    // The resources file was removed.
    let leftovers: Vec<_> = std::fs::read_dir(&s.runtime.config().tmp_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("resources-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    s.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

/// `pids.max` of the pids cgroup `pid` belongs to (v1 or v2).
fn pids_max(pid: i32) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let base = if controllers.split(',').any(|c| c == "pids") {
            format!("/sys/fs/cgroup/pids{path}")
        } else if controllers.is_empty()
            && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        {
            format!("/sys/fs/cgroup{path}")
        } else {
            continue;
        };
        return std::fs::read_to_string(format!("{base}/pids.max"))
            .unwrap()
            .trim()
            .to_string();
    }
    panic!("no pids cgroup in {cgroups}");
}

fn notify_setup() -> (Setup, UnixDatagram, tempfile::TempDir) {
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("notify");
    let receiver = UnixDatagram::bind(&path).unwrap();
    receiver.set_nonblocking(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("runc", dir.path());
    cfg.notify_socket = Some(path);
    (setup_with(cfg, dir), receiver, sock_dir)
}

fn environ_of(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_sends_mainpid_and_ready_in_conmon_mode() {
    if !need_runc() {
        return;
    }
    let (s, receiver, _sock) = notify_setup();
    let id = unique_id("notify");
    let b = bundle(&["sleep", "60"]);
    let c = s
        .describe(&id, &b)
        .sd_notify(SdNotifyMode::Conmon)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    assert!(
        created.container.warnings.is_empty(),
        "{:?}",
        created.container.warnings
    );
    let pidfile_pid: i32 = std::fs::read_to_string(c.conmon_pidfile())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pidfile_pid, created.monitor_pid);
    let mut buf = [0u8; 256];
    // As podman: nothing until the container has started.
    assert_eq!(
        receiver.recv(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    s.runtime.start(&c).await.unwrap();
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        format!("MAINPID={pidfile_pid}\nREADY=1")
    );
    assert!(!environ_of(pidfile_pid)
        .iter()
        .any(|v| v.starts_with("NOTIFY_SOCKET=")));
    // Still running: removed as podman's `rm -f` does.
    s.runtime.delete_force(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_ignore_mode_sends_nothing_and_hides_the_socket() {
    if !need_runc() {
        return;
    }
    let (s, receiver, _sock) = notify_setup();
    let id = unique_id("ignore");
    let b = bundle(&["sleep", "60"]);
    let c = s
        .describe(&id, &b)
        .sd_notify(SdNotifyMode::Ignore)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    // The send would happen inside start: nothing queued after it means
    // nothing sent.
    s.runtime.start(&c).await.unwrap();
    let mut buf = [0u8; 64];
    let err = receiver.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(!environ_of(created.monitor_pid)
        .iter()
        .any(|v| v.starts_with("NOTIFY_SOCKET=")));
    // Still running: removed as podman's `rm -f` does.
    s.runtime.delete_force(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_ports_are_held_while_the_container_lives() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let udp_probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp_probe.local_addr().unwrap().port();
    drop(udp_probe);
    let reservations = vec![
        PortReservation {
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_port: port,
            range: 1,
            protocol: PortProtocol::Tcp,
        },
        PortReservation {
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_port: udp_port,
            range: 1,
            protocol: PortProtocol::Udp,
        },
    ];

    let id = unique_id("ports");
    let b = bundle(&["sleep", "60"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (marker, marker_target) = inheritable_marker(&s);
    let (extra_read, extra_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let extra_identity = fd_identity(std::process::id() as i32, extra_write.as_raw_fd());
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), {
            let mut monitor = MonitorOptions::default();
            monitor.reserved_ports = reservations.clone();
            monitor.extra_fds = vec![NamedFd {
                name: "net-sync".into(),
                fd: extra_write,
            }];
            monitor
        })
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();

    let err = TcpListener::bind(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let err = UdpSocket::bind(("127.0.0.1", udp_port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    // conmon holds stdio, its own files, the two port sockets and the named
    // fd at the number reported, and nothing of this process's.
    let conmon_fds = fds_of(created.monitor_pid);
    // What the driver handed over, at the numbers it chose: stdio on
    // /dev/null, the sync pipe (3), the start pipe (4, which conmon points
    // at /dev/null once read), the two port sockets, the named fd.
    let handed: Vec<&(i32, String)> = conmon_fds.iter().filter(|(fd, _)| *fd <= 7).collect();
    let kinds: Vec<(i32, &str)> = handed
        .iter()
        .map(|(fd, t)| (*fd, t.split(':').next().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, "/dev/null"),
            (1, "/dev/null"),
            (2, "/dev/null"),
            (3, "socket"),
            (4, "/dev/null"),
            (5, "socket"),
            (6, "socket"),
            (7, "pipe"),
        ],
        "{conmon_fds:?}"
    );
    let targets: BTreeSet<&String> = conmon_fds.iter().map(|(_, t)| t).collect();
    assert!(
        !targets.contains(&marker_target),
        "driver fd leaked into conmon: {conmon_fds:?}"
    );
    assert_eq!(created.extra_fds.len(), 1);
    let (name, number) = &created.extra_fds[0];
    assert_eq!(name, "net-sync");
    assert_eq!(
        *number, 7,
        "pipes at 3 and 4, ports at 5 and 6, then the named fd"
    );
    assert!(
        conmon_fds.contains(&(*number, extra_identity.clone())),
        "named fd not at {number} in conmon: {conmon_fds:?}"
    );
    let sockets = conmon_fds
        .iter()
        .filter(|(_, t)| t.starts_with("socket:"))
        .count();
    assert!(sockets >= 2, "{conmon_fds:?}");
    for (fd, target) in &conmon_fds {
        assert!(
            target == "/dev/null"
                || target.starts_with("socket:")
                || target.starts_with("pipe:")
                || target.starts_with("anon_inode:")
                || target.starts_with(&b.path().display().to_string())
                || target.starts_with(&s.dir.path().display().to_string())
                || target.starts_with("/dev/pts")
                || target.starts_with("/proc")
                // conmon watches the container's OOM events (cgroup v1).
                || target.starts_with("/sys/fs/cgroup/"),
            "unexpected fd {fd} -> {target} in conmon"
        );
    }
    drop(marker);

    s.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    s.runtime.delete(&c).await.unwrap();
    // conmon is gone, so is the named fd's last writer and the ports.
    assert_eq!(
        nix::unistd::read(extra_read.as_raw_fd(), &mut [0u8; 1]).unwrap(),
        0
    );
    TcpListener::bind(("127.0.0.1", port)).unwrap();
    UdpSocket::bind(("127.0.0.1", udp_port)).unwrap();
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_fails_create_before_anything_starts() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let id = unique_id("taken");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let err = s
        .runtime
        .create_with(&c, CreateOptions::default(), {
            let mut monitor = MonitorOptions::default();
            monitor.reserved_ports = vec![PortReservation {
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_port: port,
                range: 1,
                protocol: PortProtocol::Tcp,
            }];
            monitor
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("cannot reserve tcp port 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!s.run_dir(&id).exists());
    assert!(processes_mentioning(id.as_str()).is_empty());
    s.assert_nothing_left(&id);
    assert!(matches!(
        s.runtime.status(&c).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_reports_versions_and_packages_of_runc_runsc_and_conmon() {
    if !need_runc() || !need_runsc() {
        return;
    }
    for (name, flags) in [("runc", vec![]), ("runsc", vec!["--network=none"])] {
        let s = setup(name, &flags);
        let info = s.runtime.info().await.unwrap();
        assert!(!info.runtime.version.is_empty(), "{info:?}");
        let package = info.runtime.package.clone().unwrap_or_default();
        assert!(package.starts_with(&format!("{name}_")), "{info:?}");
        let monitor = info.monitor.clone().unwrap();
        assert!(monitor.version.starts_with("conmon version"), "{monitor:?}");
        assert!(monitor.package.unwrap_or_default().starts_with("conmon_"));
        assert!(s.runtime.runtime_traits().json_errors);
        // The host's bounding set, as this process holds it.
        assert_eq!(
            info.capabilities,
            conmon_driver::host_bounding_set().unwrap()
        );
        assert!(
            info.capabilities.iter().any(|c| c == "CAP_SYS_ADMIN"),
            "{info:?}"
        );
    }
}

/// An fd of this process without close-on-exec on a file named after the
/// test, and what `/proc/<pid>/fd` shows for it.
fn inheritable_marker(s: &Setup) -> (std::fs::File, String) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = s.dir.path().join("driver-marker");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(0)
        .open(&path)
        .unwrap();
    nix::fcntl::fcntl(
        file.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    (file, path.display().to_string())
}

fn fd_identity(pid: i32, fd: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .unwrap()
        .display()
        .to_string()
}

fn fds_of(pid: i32) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            Some((fd, std::fs::read_link(e.path()).ok()?.display().to_string()))
        })
        .collect();
    fds.sort();
    fds
}
