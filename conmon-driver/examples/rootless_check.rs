//! The driver as an unprivileged user sees it: every scenario of rootless
//! operation, run for real against conmon and runc, one line each, and an
//! exit status of 1 when any failed. `tests/rootless.rs` runs it as a
//! non-root user (root cannot show what rootless does); run it yourself as
//! any user:
//!
//! ```text
//! cargo run -p conmon-driver --example rootless_check
//! ```
//!
//! Scenarios: the configuration a rootless caller gets, lifecycle and exit
//! code (uid 0 inside), attach (output and stdin), exec, stop escalating to
//! SIGKILL, pause answering `Unsupported` where cgroups cannot be used,
//! nothing left after delete, the conformance suite, a subordinate-range
//! user namespace, a helper's sync pipe held by conmon and seen closing by a
//! real reader process, and whether runsc runs rootless here.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conmon_driver::{ConmonConfig, ConmonRuntime, LogLevel, MonitorOptions, NamedFd};
use runtime_api::{
    AttachOptions, AttachStreams, ContainerDescription, ContainerId, CreateOptions, ExecConfig,
    LogDriver, OciRuntime, RuntimeError, Signal,
};
use testkit::conformance::{run, BusyboxTarget, Options};
use testkit::{BundleBuilder, RootlessMapping};

type Scenario<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + 'a>>;

struct Env {
    work: tempfile::TempDir,
    runtime: Arc<ConmonRuntime>,
    mapping: RootlessMapping,
    counter: Mutex<u32>,
}

impl Env {
    fn id(&self, what: &str) -> ContainerId {
        let mut n = self.counter.lock().unwrap();
        *n += 1;
        ContainerId::new(format!("rl-{what}-{}-{n}", std::process::id())).unwrap()
    }

    /// A rootless busybox container running `script`, created.
    async fn container(
        &self,
        what: &str,
        script: &str,
        mapping: &RootlessMapping,
        stdin: bool,
    ) -> Result<(ContainerDescription, testkit::Bundle), String> {
        let bundle = BundleBuilder::new()
            .in_dir(self.work.path())
            .args(["sh", "-c", script])
            .rootless(mapping.clone())
            .build()
            .map_err(|e| e.to_string())?;
        let id = self.id(what);
        let c = ContainerDescription::builder(
            id.clone(),
            bundle.path(),
            self.work.path().join(id.as_str()),
        )
        .log(
            LogDriver::KubernetesFile,
            self.work.path().join(format!("{id}.log")),
        )
        .stdin(stdin)
        .build()
        .map_err(|e| e.to_string())?;
        self.runtime
            .create(&c, CreateOptions::default())
            .await
            .map_err(|e| format!("create: {e}"))?;
        Ok((c, bundle))
    }

    /// Starts `c`, waits for its exit code and deletes it.
    async fn run_to_exit(&self, c: &ContainerDescription) -> Result<i32, String> {
        self.runtime
            .start(c)
            .await
            .map_err(|e| format!("start: {e}"))?;
        let code = self
            .runtime
            .wait(c, Duration::from_secs(30))
            .await
            .map_err(|e| format!("wait: {e}"))?;
        self.runtime
            .delete(c)
            .await
            .map_err(|e| format!("delete: {e}"))?;
        Ok(code)
    }

    async fn finish(&self, c: &ContainerDescription) -> Result<(), String> {
        self.runtime
            .stop(c, Duration::ZERO, false)
            .await
            .map_err(|e| format!("stop: {e}"))?;
        self.runtime
            .delete(c)
            .await
            .map_err(|e| format!("delete: {e}"))
    }
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<u8>>>);

impl tokio::io::AsyncWrite for Collector {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// What `c` wrote to stdout, from its k8s-file log.
fn stdout_of(c: &ContainerDescription) -> Result<Vec<u8>, String> {
    let log = c.log().path.clone().unwrap_or_default();
    conmon_driver::read_k8s_log(&log)
        .map(|(stdout, _)| stdout)
        .map_err(|e| format!("log: {e}"))
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

async fn identity(env: &Env) -> Result<String, String> {
    let config = env.runtime.config();
    let uid = config
        .rootless_uid
        .ok_or("the configuration is not rootless")?;
    let dir = config
        .runtime_dir
        .as_ref()
        .ok_or("no runtime directory was chosen")?;
    check(
        config.xdg_runtime_dir.as_deref() == Some(dir.path.as_path()),
        || "XDG_RUNTIME_DIR is not the chosen runtime directory".into(),
    )?;
    check(
        config
            .runtime_flags
            .iter()
            .any(|f| f.starts_with("--root=")),
        || "the runtime's state root was not put inside the runtime directory".into(),
    )?;
    Ok(format!(
        "uid {uid}, runtime dir {} ({:?}), flags {:?}",
        dir.path.display(),
        dir.source,
        config.runtime_flags
    ))
}

async fn lifecycle(env: &Env) -> Result<String, String> {
    let (c, _b) = env
        .container("life", "id -u; exit 3", &env.mapping, false)
        .await?;
    let code = env.run_to_exit(&c).await?;
    let stdout = stdout_of(&c)?;
    check(code == 3 && stdout == b"0\n", || {
        format!("exit {code}, output {:?}", String::from_utf8_lossy(&stdout))
    })?;
    Ok("uid 0 inside, exit code 3".into())
}

async fn attach(env: &Env) -> Result<String, String> {
    let (c, _b) = env
        .container("attach", "exec cat", &env.mapping, true)
        .await?;
    let out = Collector::default();
    let ready = runtime_api::AttachReady::new();
    let runtime = Arc::clone(&env.runtime);
    let container = c.clone();
    let streams = AttachStreams::new(
        Some(Box::pin(std::io::Cursor::new(b"through stdin\n".to_vec()))),
        Some(Box::pin(out.clone())),
        None,
    );
    let options = AttachOptions::default().with_ready(ready.clone());
    let session = tokio::spawn(async move { runtime.attach(&container, streams, options).await });
    tokio::time::timeout(Duration::from_secs(30), ready.wait())
        .await
        .map_err(|_| "attach never connected".to_string())?;
    env.runtime
        .start(&c)
        .await
        .map_err(|e| format!("start: {e}"))?;
    let outcome = tokio::time::timeout(Duration::from_secs(30), session)
        .await
        .map_err(|_| "attach did not end".to_string())?
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("attach: {e}"))?;
    let code = env
        .runtime
        .wait(&c, Duration::from_secs(30))
        .await
        .map_err(|e| format!("wait: {e}"))?;
    env.runtime
        .delete(&c)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    let got = out.0.lock().unwrap().clone();
    check(got == b"through stdin\n" && code == 0, || {
        format!(
            "{outcome:?}, exit {code}, output {:?}",
            String::from_utf8_lossy(&got)
        )
    })?;
    Ok("stdin echoed, its end ended the container with 0".into())
}

async fn exec(env: &Env) -> Result<String, String> {
    let (c, _b) = env
        .container(
            "exec",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
            &env.mapping,
            false,
        )
        .await?;
    env.runtime
        .start(&c)
        .await
        .map_err(|e| format!("start: {e}"))?;
    let out = Collector::default();
    let handle = env
        .runtime
        .exec(
            &c,
            &ExecConfig::new(["sh", "-c", "id -u; exit 5"]),
            AttachStreams::new(None, Some(Box::pin(out.clone())), None),
            AttachOptions::default(),
        )
        .await
        .map_err(|e| format!("exec: {e}"))?;
    let done = tokio::time::timeout(Duration::from_secs(30), handle.completion)
        .await
        .map_err(|_| "exec did not finish".to_string())?
        .map_err(|e| format!("exec: {e}"))?;
    env.finish(&c).await?;
    let got = out.0.lock().unwrap().clone();
    check(done.exit_code == Some(5) && got == b"0\n", || {
        format!("{done:?}, output {:?}", String::from_utf8_lossy(&got))
    })?;
    Ok("exec printed uid 0 and exited 5".into())
}

async fn stop(env: &Env) -> Result<String, String> {
    let (c, _b) = env
        .container(
            "stop",
            "trap '' TERM; while :; do sleep 0.1; done",
            &env.mapping,
            false,
        )
        .await?;
    env.runtime
        .start(&c)
        .await
        .map_err(|e| format!("start: {e}"))?;
    let started = std::time::Instant::now();
    env.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .map_err(|e| format!("stop: {e}"))?;
    let took = started.elapsed();
    let code = env
        .runtime
        .wait(&c, Duration::from_secs(10))
        .await
        .map_err(|e| format!("wait: {e}"))?;
    env.runtime
        .delete(&c)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    check(code == 137 && took < Duration::from_secs(11), || {
        format!("exit {code} after {took:?}")
    })?;
    Ok(format!(
        "SIGTERM ignored, SIGKILL after the timeout: 137 in {took:?}"
    ))
}

/// `kill --all` needs the container's cgroup; without one (rootless on
/// cgroup v1) the driver signals the init process instead.
async fn kill_all(env: &Env) -> Result<String, String> {
    let (c, _b) = env
        .container("kill-all", "sleep 1000 & wait", &env.mapping, false)
        .await?;
    env.runtime
        .start(&c)
        .await
        .map_err(|e| format!("start: {e}"))?;
    env.runtime
        .kill(&c, Signal::KILL, true)
        .await
        .map_err(|e| format!("kill --all: {e}"))?;
    let code = env
        .runtime
        .wait(&c, Duration::from_secs(10))
        .await
        .map_err(|e| format!("wait: {e}"))?;
    env.runtime
        .delete(&c)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    check(code == 137, || format!("exit {code}"))?;
    Ok("kill of every process ended the container with 137".into())
}

async fn pause(env: &Env) -> Result<String, String> {
    let (c, _b) = env
        .container(
            "pause",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
            &env.mapping,
            false,
        )
        .await?;
    env.runtime
        .start(&c)
        .await
        .map_err(|e| format!("start: {e}"))?;
    let answer = env.runtime.pause(&c).await;
    let usable = env.runtime.config().cgroups_usable();
    let result = match (usable, &answer) {
        (false, Err(RuntimeError::Unsupported { .. })) => {
            Ok("no delegated cgroups (cgroup v1): pause answers Unsupported".to_string())
        }
        (true, Ok(())) => {
            env.runtime
                .resume(&c)
                .await
                .map_err(|e| format!("resume: {e}"))?;
            Ok("paused and resumed".into())
        }
        _ => Err(format!(
            "cgroups usable: {usable}, pause answered {answer:?}"
        )),
    };
    env.finish(&c).await?;
    result
}

async fn nothing_left(env: &Env) -> Result<String, String> {
    let (c, _b) = env.container("left", "exit 0", &env.mapping, false).await?;
    env.run_to_exit(&c).await?;
    let config = env.runtime.config();
    let runtime_dir = &config.runtime_dir.as_ref().ok_or("no runtime dir")?.path;
    let leftovers: Vec<String> = [
        runtime_dir.join("runc").join(c.id().as_str()),
        config.exits_dir().join(c.id().as_str()),
        config.persist_root().join(c.id().as_str()),
        c.run_dir().join("conmon.pid"),
    ]
    .iter()
    .filter(|p| p.exists())
    .map(|p| p.display().to_string())
    .collect();
    check(leftovers.is_empty(), || {
        format!("left behind: {leftovers:?}")
    })?;
    Ok("no runtime state, exit file, persist dir or pidfile left".into())
}

/// Runs last: every scenario (the conformance suite included) must have
/// removed what it made, so the runtime's state root, the exit files and
/// the persist dirs are all empty.
async fn all_removed(env: &Env) -> Result<String, String> {
    let config = env.runtime.config();
    let runtime_dir = &config.runtime_dir.as_ref().ok_or("no runtime dir")?.path;
    let mut leftovers = Vec::new();
    for dir in [
        runtime_dir.join("runc"),
        runtime_dir.join("runsc"),
        config.exits_dir(),
        config.persist_root(),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        leftovers.extend(entries.flatten().map(|e| e.path().display().to_string()));
    }
    check(leftovers.is_empty(), || {
        format!("left behind: {leftovers:?}")
    })?;
    Ok("the runtime's state roots, exit files and persist dirs are empty".into())
}

async fn conformance(env: &Env) -> Result<String, String> {
    let config = env.runtime.config().clone();
    let target = BusyboxTarget::new(env.runtime.clone())
        .rootless(env.mapping.clone())
        .reopen_with(move || {
            Arc::new(ConmonRuntime::new(config.clone()).expect("the same configuration again"))
        });
    let report = run(&target, &Options::default()).await;
    println!("{report}");
    let (passed, skipped, failed) = report.counts();
    check(failed == 0, || format!("{failed} case(s) failed"))?;
    Ok(format!(
        "{passed} passed, {skipped} skipped (features this host denies rootless)"
    ))
}

async fn subordinate_range(env: &Env) -> Result<String, String> {
    let RootlessMapping::SubordinateRange { subuids, .. } = RootlessMapping::for_current_user()
    else {
        return Err(
            "no subordinate range: /etc/subuid has no entry or newuidmap is missing".into(),
        );
    };
    let mapping = RootlessMapping::for_current_user();
    let (c, _b) = env
        .container("range", "cat /proc/self/uid_map; exit 0", &mapping, false)
        .await?;
    env.run_to_exit(&c).await?;
    let stdout = stdout_of(&c)?;
    let text = String::from_utf8_lossy(&stdout);
    check(
        text.lines().count() == 2 && text.contains(&subuids.0.to_string()),
        || format!("uid_map {text:?}"),
    )?;
    Ok(format!("uid_map maps 1.. to {}..", subuids.0))
}

async fn helper_sync_pipe(env: &Env) -> Result<String, String> {
    // A network helper (rootlessport, slirp4netns) learns that conmon is
    // gone when its end of a pipe that conmon holds reads EOF.
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let mut reader = std::process::Command::new("sh")
        .args(["-c", "cat >/dev/null; echo conmon-gone"])
        .stdin(read_end)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let bundle = BundleBuilder::new()
        .in_dir(env.work.path())
        .args([
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ])
        .rootless(env.mapping.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let id = env.id("helper");
    let c =
        ContainerDescription::builder(id.clone(), bundle.path(), env.work.path().join(id.as_str()))
            .log(LogDriver::None, "/dev/null")
            .build()
            .map_err(|e| e.to_string())?;
    let mut monitor = MonitorOptions::default();
    monitor.extra_fds.push(NamedFd {
        name: "rootlessport-sync".into(),
        fd: write_end,
    });
    let created = env
        .runtime
        .create_with(&c, CreateOptions::default(), monitor)
        .await
        .map_err(|e| format!("create: {e}"))?;
    // Our copy is gone with the options: only conmon holds the pipe now.
    env.runtime
        .start(&c)
        .await
        .map_err(|e| format!("start: {e}"))?;
    let still_open = reader.try_wait().map_err(|e| e.to_string())?.is_none();
    env.finish(&c).await?;
    let output = tokio::task::spawn_blocking(move || reader.wait_with_output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    check(still_open && output.stdout == b"conmon-gone\n", || {
        format!(
            "open while conmon lived: {still_open}; reader said {:?}",
            output.stdout
        )
    })?;
    Ok(format!(
        "conmon held the helper's pipe at fd {:?}; the reader saw EOF once conmon left",
        created.extra_fds
    ))
}

async fn runsc(env: &Env) -> Result<String, String> {
    let config = ConmonConfig::builder("runsc", env.work.path().join("runsc-tmp"))
        .runtime_flag("--rootless")
        .runtime_flag("--network=none")
        .syslog(false)
        .log_level(LogLevel::Warning)
        .build()
        .map_err(|e| e.to_string())?;
    let runtime = ConmonRuntime::new(config).map_err(|e| e.to_string())?;
    let bundle = BundleBuilder::new()
        .in_dir(env.work.path())
        .args(["true"])
        .rootless(env.mapping.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let id = env.id("runsc");
    let c =
        ContainerDescription::builder(id.clone(), bundle.path(), env.work.path().join(id.as_str()))
            .log(LogDriver::None, "/dev/null")
            .build()
            .map_err(|e| e.to_string())?;
    match runtime.create(&c, CreateOptions::default()).await {
        Ok(_) => {
            runtime.start(&c).await.map_err(|e| format!("start: {e}"))?;
            let code = runtime
                .wait(&c, Duration::from_secs(60))
                .await
                .map_err(|e| format!("wait: {e}"))?;
            runtime
                .delete(&c)
                .await
                .map_err(|e| format!("delete: {e}"))?;
            check(code == 0, || format!("exit {code}"))?;
            Ok("runsc runs rootless here".into())
        }
        Err(e) => {
            // The probe's answer: a typed error, and nothing left behind.
            let gone = matches!(
                runtime.status(&c).await,
                Err(RuntimeError::NoSuchContainer { .. })
            );
            check(gone, || {
                format!("a failed runsc create left the container: {e}")
            })?;
            Ok(format!("runsc does not run rootless on this host: {e}"))
        }
    }
}

fn main() -> ExitCode {
    // The driver's warnings (fallbacks it took) go to stderr, which the
    // rootless test prints.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    tokio.block_on(async_main())
}

async fn async_main() -> ExitCode {
    if conmon_driver::ConmonConfig::new("runc", "/")
        .rootless_uid
        .is_none()
    {
        eprintln!("rootless_check: run this as a non-root user");
        return ExitCode::from(2);
    }
    let work = tempfile::tempdir().expect("a temp dir");
    let config = match ConmonConfig::builder("runc", work.path().join("tmp"))
        .syslog(false)
        .log_level(LogLevel::Warning)
        .build()
    {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rootless_check: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match ConmonRuntime::new(config) {
        Ok(runtime) => Arc::new(runtime),
        Err(e) => {
            eprintln!("rootless_check: {e}");
            return ExitCode::from(1);
        }
    };
    let (uid, gid) = RootlessMapping::for_current_user().ids();
    let env = Env {
        work,
        runtime,
        mapping: RootlessMapping::SingleId { uid, gid },
        counter: Mutex::new(0),
    };
    let scenarios: Vec<(&str, Scenario<'_>)> = vec![
        ("identity", Box::pin(identity(&env))),
        ("lifecycle", Box::pin(lifecycle(&env))),
        ("attach", Box::pin(attach(&env))),
        ("exec", Box::pin(exec(&env))),
        ("stop", Box::pin(stop(&env))),
        ("kill-all", Box::pin(kill_all(&env))),
        ("pause", Box::pin(pause(&env))),
        ("nothing-left", Box::pin(nothing_left(&env))),
        ("conformance", Box::pin(conformance(&env))),
        ("subordinate-range", Box::pin(subordinate_range(&env))),
        ("helper-sync-pipe", Box::pin(helper_sync_pipe(&env))),
        ("runsc", Box::pin(runsc(&env))),
        ("all-removed", Box::pin(all_removed(&env))),
    ];
    let mut failed = 0;
    for (name, scenario) in scenarios {
        match tokio::time::timeout(Duration::from_secs(300), scenario).await {
            Ok(Ok(what)) => println!("rootless {name}: ok: {what}"),
            Ok(Err(why)) => {
                failed += 1;
                println!("rootless {name}: FAILED: {why}");
            }
            Err(_) => {
                failed += 1;
                println!("rootless {name}: FAILED: did not finish within 300 s");
            }
        }
    }
    let leftover_dir = Path::new(env.work.path());
    println!(
        "rootless: {failed} failed (work dir {})",
        leftover_dir.display()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
