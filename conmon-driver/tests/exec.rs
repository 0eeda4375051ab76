//! Exec sessions in real running containers through a second conmon:
//! output and exit codes, users and groups, typed errors, terminals and
//! resize, stdin, stopping, concurrency, and cleanup.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use conmon_driver::ConmonRuntime;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, CreateOptions, ExecConfig,
    OciRuntime, RuntimeError, TerminalSize,
};

/// A running `sleep` container; dropped containers are deleted by the
/// cleanup guard.
struct Running {
    runtime: Arc<ConmonRuntime>,
    c: ContainerDescription,
    _bundle: testkit::Bundle,
    _dir: tempfile::TempDir,
    _cleanup: DeleteOnDrop,
}

async fn running_container(prefix: &str) -> Running {
    running_in("runc", &[], prefix).await
}

/// A running `sleep` container of `runtime` with global `flags`.
async fn running_in(runtime: &str, flags: &[&str], prefix: &str) -> Running {
    let s = setup(runtime, flags);
    let id = unique_id(prefix);
    let b = bundle(&["sleep", "1000"]);
    let c = s.describe(&id, &b).build().unwrap();
    let cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    Running {
        runtime: Arc::new(s.runtime),
        c,
        _bundle: b,
        _dir: s.dir,
        _cleanup: cleanup,
    }
}

impl Running {
    /// Runs `args`, returning (stdout, stderr, exit code).
    async fn run(&self, config: ExecConfig) -> (Vec<u8>, Vec<u8>, i32) {
        let out = Collector::default();
        let err = Collector::default();
        let handle = self
            .runtime
            .exec(
                &self.c,
                &config,
                AttachStreams {
                    stdin: None,
                    stdout: Some(out.sink()),
                    stderr: Some(err.sink()),
                },
                AttachOptions::default(),
            )
            .await
            .unwrap();
        assert!(handle.session.pid.unwrap() > 0);
        let done = handle.completion.await.unwrap();
        assert_eq!(done.outcome, AttachOutcome::StreamsEnded);
        (out.bytes(), err.bytes(), done.exit_code.unwrap())
    }

    async fn finish(self) {
        self.runtime
            .stop(&self.c, Duration::from_secs(0), false)
            .await
            .unwrap();
        self.runtime.delete(&self.c).await.unwrap();
        assert_eq!(exec_dirs(&self.c), Vec::<String>::new());
    }
}

/// Whether `pid` has exited (a zombie nobody reaped counts as exited).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

/// Session directories left in the bundle.
fn exec_dirs(c: &ContainerDescription) -> Vec<String> {
    std::fs::read_dir(c.bundle())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("exec-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_exit_codes() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-out").await;
    let (out, err, code) = r.run(ExecConfig::new(["echo", "hi"])).await;
    assert_eq!(
        (out.as_slice(), err.as_slice(), code),
        (&b"hi\n"[..], &b""[..], 0)
    );
    let (_, _, code) = r
        .run(ExecConfig::new(["sh", "-c", "echo oops >&2; exit 5"]))
        .await;
    assert_eq!(code, 5);
    assert_eq!(
        exec_dirs(&r.c),
        Vec::<String>::new(),
        "session dirs left after exit"
    );
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_groups_and_the_container_default() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-user").await;
    let ids = |user: Option<&str>| {
        let mut config = ExecConfig::new(["sh", "-c", "id -u; id -g; id -G"]);
        config.user = user.map(str::to_string);
        config
    };
    let (out, _, _) = r.run(ids(Some("nobody"))).await;
    assert_eq!(String::from_utf8(out).unwrap(), "65534\n65534\n65534\n");
    let (out, _, _) = r.run(ids(Some("1234:1234"))).await;
    assert_eq!(String::from_utf8(out).unwrap(), "1234\n1234\n1234\n");
    let (out, _, _) = r.run(ids(Some("tester"))).await;
    assert_eq!(String::from_utf8(out).unwrap(), "1234\n1234\n1234 2000\n");
    let (out, _, _) = r.run(ids(None)).await;
    assert_eq!(String::from_utf8(out).unwrap(), "0\n0\n0\n");
    let (out, _, _) = r
        .run({
            let mut c = ExecConfig::new(["sh", "-c", "echo $HOME $EXTRA; pwd"]);
            c.user = Some("tester".into());
            c.env.push("EXTRA=yes".into());
            c.cwd = Some("/tmp".into());
            c
        })
        .await;
    // The container's own HOME=/root wins over the passwd entry, as in
    // podman (the passwd rule is covered by exec_spec's unit tests).
    assert_eq!(String::from_utf8(out).unwrap(), "/root yes\n/tmp\n");

    let mut unknown = ExecConfig::new(["id"]);
    unknown.user = Some("nosuchuser".into());
    let err = r
        .runtime
        .exec(
            &r.c,
            &unknown,
            AttachStreams {
                stdout: Some(Collector::default().sink()),
                ..AttachStreams::default()
            },
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nosuchuser"), "{err}");
    assert_eq!(exec_dirs(&r.c), Vec::<String>::new());
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_non_executable_programs_are_127_and_126() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-err").await;
    let streams = || AttachStreams {
        stdout: Some(Collector::default().sink()),
        ..AttachStreams::default()
    };
    let err = r
        .runtime
        .exec(
            &r.c,
            &ExecConfig::new(["/no/such/thing"]),
            streams(),
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::OciCommandNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 127);
    let err = r
        .runtime
        .exec(
            &r.c,
            &ExecConfig::new(["/etc/passwd"]),
            streams(),
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::OciPermissionDenied { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 126);
    assert_eq!(
        exec_dirs(&r.c),
        Vec::<String>::new(),
        "failed sessions left files"
    );
    let err = r
        .runtime
        .exec(
            &r.c,
            &ExecConfig::new(["true"]),
            AttachStreams::default(),
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_exec_with_resize() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-tty").await;
    // conmon applies a resize from its control FIFO asynchronously, so the
    // process waits until the size it reports has arrived.
    let mut config = ExecConfig::new([
        "sh",
        "-c",
        "read line; until [ \"$(stty size)\" = \"33 77\" ]; do :; done; stty size",
    ]);
    config.terminal = true;
    config.stdin = true;
    let out = Collector::default();
    let (mut client, stdin) = tokio::io::duplex(1024);
    let handle = r
        .runtime
        .exec(
            &r.c,
            &config,
            AttachStreams {
                stdin: Some(Box::pin(stdin)),
                stdout: Some(out.sink()),
                stderr: None,
            },
            AttachOptions::default(),
        )
        .await
        .unwrap();
    r.runtime
        .exec_resize_terminal(&r.c, &handle.session, TerminalSize::new(33, 77).unwrap())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut client, b"go\n")
        .await
        .unwrap();
    let done = handle.completion.await.unwrap();
    assert_eq!(done.exit_code, Some(0));
    let text = String::from_utf8_lossy(&out.bytes()).into_owned();
    assert!(text.contains("33 77"), "{text:?}");
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_round_trips_one_mib() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-cat").await;
    let mut config = ExecConfig::new(["cat"]);
    config.stdin = true;
    let input: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let out = Collector::default();
    let handle = r
        .runtime
        .exec(
            &r.c,
            &config,
            AttachStreams {
                stdin: Some(Box::pin(std::io::Cursor::new(input.clone()))),
                stdout: Some(out.sink()),
                stderr: None,
            },
            AttachOptions::default().with_detach_keys(""),
        )
        .await
        .unwrap();
    let done = handle.completion.await.unwrap();
    assert_eq!(done.exit_code, Some(0));
    assert!(out.bytes() == input, "1 MiB through cat differ");
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stop_ends_a_long_process_within_the_timeout() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-stop").await;
    let session = r
        .runtime
        .exec_detached(&r.c, &ExecConfig::new(["sleep", "1000"]))
        .await
        .unwrap();
    let monitor_pid = r
        .runtime
        .exec_monitor_pid(&r.c, &session.id)
        .unwrap()
        .expect("the session's conmon wrote its pid");
    assert!(r.runtime.exec_alive(&r.c, &session).await.unwrap());
    assert!(r
        .runtime
        .exec_attach_socket_path(&r.c, &session.id)
        .starts_with(r.c.bundle()));
    let started = std::time::Instant::now();
    r.runtime
        .exec_stop(&r.c, &session, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2) + Duration::from_secs(5));
    assert!(!r.runtime.exec_alive(&r.c, &session).await.unwrap());
    // sleep dies of SIGTERM: 128 + 15.
    assert_eq!(
        r.runtime
            .exec_wait(&r.c, &session, Duration::from_secs(10))
            .await
            .unwrap(),
        143
    );
    assert!(gone(monitor_pid), "the session's conmon lingers");
    assert_eq!(exec_dirs(&r.c), Vec::<String>::new());
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_execs_get_their_own_output_and_code() {
    if !need_runc() {
        return;
    }
    let r = Arc::new(running_container("exec-many").await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let r = Arc::clone(&r);
        tasks.push(tokio::spawn(async move {
            let script = format!("echo session-{i}; exit {i}");
            let (out, _, code) = r.run(ExecConfig::new(["sh", "-c", script.as_str()])).await;
            (i, out, code)
        }));
    }
    for task in tasks {
        let (i, out, code) = task.await.unwrap();
        assert_eq!(out, format!("session-{i}\n").into_bytes());
        assert_eq!(code, i);
    }
    let r = Arc::into_inner(r).unwrap();
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_stopped_container_is_refused_and_leaves_nothing() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("exec-dead");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let streams = || AttachStreams {
        stdout: Some(Collector::default().sink()),
        ..AttachStreams::default()
    };
    let err = s
        .runtime
        .exec(
            &c,
            &ExecConfig::new(["true"]),
            streams(),
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::NoSuchContainer { .. }),
        "{err:?}"
    );
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap();
    let err = s
        .runtime
        .exec(
            &c,
            &ExecConfig::new(["true"]),
            streams(),
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ContainerNotRunning { .. }),
        "{err:?}"
    );
    let err = s
        .runtime
        .exec_detached(&c, &ExecConfig::new(["true"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ContainerNotRunning { .. }),
        "{err:?}"
    );
    assert_eq!(exec_dirs(&c), Vec::<String>::new());
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

/// What critest looks for after a timed-out exec: no `sleep 4321` left in
/// the container (the bracket keeps the shell's own command line from
/// matching).
const FIND_SLEEPER: [&str; 3] = ["sh", "-c", "ps | grep '[s]leep 4321' || true"];

/// An exec past its own timeout ends as `ExecTimedOut`, its process gone
/// on the host and inside the container.
async fn timed_out_exec_is_killed_where_it_runs(runtime: &str, flags: &[&str]) {
    let r = running_in(runtime, flags, "exec-timeout").await;
    let mut config = ExecConfig::new(["sleep", "4321"]);
    config.timeout = Some(Duration::from_secs(1));
    let handle = r
        .runtime
        .exec(
            &r.c,
            &config,
            AttachStreams {
                stdout: Some(Collector::default().sink()),
                ..AttachStreams::default()
            },
            AttachOptions::default(),
        )
        .await
        .unwrap();
    let pid = handle.session.pid.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), handle.completion)
        .await
        .expect("the exec's timeout did not end it")
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ExecTimedOut { limit, .. } if limit == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(gone(pid), "the timed-out process still runs");
    let (left, _, _) = r.run(ExecConfig::new(FIND_SLEEPER)).await;
    assert_eq!(String::from_utf8_lossy(&left), "", "left in the container");
    assert_eq!(exec_dirs(&r.c), Vec::<String>::new());
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_exec_is_killed_and_reported_with_runc() {
    if !need_runc() {
        return;
    }
    timed_out_exec_is_killed_where_it_runs("runc", &[]).await;
}

/// runsc runs the process in its sandbox behind a host-side `runsc exec`
/// that is in conmon's process group (conmon's own `-T` killed conmon
/// there, and the process lived on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_exec_is_killed_and_reported_with_runsc() {
    if !need_runsc() {
        return;
    }
    timed_out_exec_is_killed_where_it_runs("runsc", &["--network=none"]).await;
}

/// exec_stop's SIGTERM reaches a process inside runsc's sandbox (the
/// host-side `runsc exec` does not pass signals on without a terminal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stop_reaches_a_process_in_runscs_sandbox() {
    if !need_runsc() {
        return;
    }
    let r = running_in("runsc", &["--network=none"], "exec-stop-sandbox").await;
    let session = r
        .runtime
        .exec_detached(&r.c, &ExecConfig::new(["sleep", "4321"]))
        .await
        .unwrap();
    assert!(r.runtime.exec_alive(&r.c, &session).await.unwrap());
    let grace = Duration::from_secs(20);
    let began = std::time::Instant::now();
    r.runtime.exec_stop(&r.c, &session, grace).await.unwrap();
    assert!(began.elapsed() < grace, "SIGTERM did not reach the process");
    let (left, _, _) = r.run(ExecConfig::new(FIND_SLEEPER)).await;
    assert_eq!(String::from_utf8_lossy(&left), "", "left in the container");
    r.runtime
        .exec_wait(&r.c, &session, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(exec_dirs(&r.c), Vec::<String>::new());
    r.finish().await;
}

/// Two waits on one exec session: the second, with a short limit, times
/// out within it instead of queueing behind the first's long wait; the
/// first then gets the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_exec_wait_is_bounded_by_its_own_limit() {
    if !need_runc() {
        return;
    }
    let r = running_container("twowaits").await;
    let session = r
        .runtime
        .exec_detached(&r.c, &ExecConfig::new(["sleep", "1000"]))
        .await
        .unwrap();
    let first = tokio::spawn({
        let (runtime, c, session) = (Arc::clone(&r.runtime), r.c.clone(), session.clone());
        async move {
            runtime
                .exec_wait(&c, &session, Duration::from_secs(120))
                .await
        }
    });
    // The first wait holds the session's status reader until the process
    // ends; the second must answer within its own limit.
    tokio::task::yield_now().await;
    let second = tokio::time::timeout(
        Duration::from_secs(60),
        r.runtime
            .exec_wait(&r.c, &session, Duration::from_millis(300)),
    )
    .await
    .expect("the second wait was not bounded by its limit");
    assert!(
        matches!(second, Err(RuntimeError::Timeout { .. })),
        "{second:?}"
    );
    r.runtime
        .exec_stop(&r.c, &session, Duration::ZERO)
        .await
        .unwrap();
    let code = first.await.unwrap().unwrap();
    assert_eq!(code, 137);
}

/// Open inotify instances of this process.
fn inotify_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("inotify"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_on_another_drivers_sessions_share_one_inotify_instance() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-shared-watch").await;
    // The sessions end once the test creates /go in the container.
    let mut sessions = Vec::new();
    for _ in 0..12 {
        sessions.push(
            r.runtime
                .exec_detached(
                    &r.c,
                    &ExecConfig::new([
                        "sh",
                        "-c",
                        "while [ ! -e /go ]; do sleep 0.02; done; exit 7",
                    ]),
                )
                .await
                .unwrap(),
        );
    }
    // A second driver over the same directories (an engine restarted)
    // knows the sessions by their exit files only.
    let other = Arc::new(ConmonRuntime::new(r.runtime.config().clone()).unwrap());
    let before = inotify_fds();
    let waits: Vec<_> = sessions
        .iter()
        .map(|session| {
            let (other, c, session) = (Arc::clone(&other), r.c.clone(), session.clone());
            tokio::spawn(
                async move { other.exec_wait(&c, &session, Duration::from_secs(60)).await },
            )
        })
        .collect();
    while other.waited_exit_files() < sessions.len() {
        tokio::task::yield_now().await;
    }
    let during = inotify_fds();
    std::fs::write(r._bundle.rootfs().join("go"), "").unwrap();
    for wait in waits {
        assert_eq!(wait.await.unwrap().unwrap(), 7);
    }
    assert!(
        during <= before + 1,
        "{} inotify instances for {} waits (before: {before})",
        during,
        sessions.len()
    );
    assert_eq!(other.waited_exit_files(), 0);
    r.finish().await;
}
