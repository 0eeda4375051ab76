//! The fault matrix: one table of the ways a monitor, a runtime, the host or
//! the caller can fail around a container. Each row runs alone, must end
//! within its stated bound with the typed error (or the success) it names,
//! and is then audited: no process of the row left (by command line, by
//! cgroup, or as a descendant of this test), no fd of this process leaked,
//! no mount, cgroup, runtime container or driver file left behind.
//!
//! The rows run one after the other in this single test, so that the fd
//! table and the process list can be compared before and after each. The
//! table is printed at the end, and every failed row is named.
//! docs/reliability.md lists the rows with their bounds.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::*;
use conmon_driver::{ConmonConfig, ConmonDescriptionExt, ConmonRuntime, LaunchError, LaunchStage};
use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, ContainerDescription,
    ContainerStatus, CreateOptions, ExecConfig, OciRuntime, RuntimeError, Signal,
};
use testkit::audit::{parent_of, Audit, FdSnapshot};
use testkit::{
    fake_conmon, fake_runtime_without_containers, fake_script, shell_quote, FakeConmonBehaviour,
    FakeRuntimeBehaviour,
};

/// What a row reports: what happened (success) or why it failed.
type RowResult = Result<String, String>;
type RowFuture<'a> = Pin<Box<dyn Future<Output = RowResult> + 'a>>;

struct Row {
    name: &'static str,
    bound: Duration,
    run: for<'a> fn(&'a Cx) -> RowFuture<'a>,
}

macro_rules! row {
    ($name:expr, $bound_ms:expr, $f:ident) => {
        Row {
            name: $name,
            bound: Duration::from_millis($bound_ms),
            run: |cx| Box::pin($f(cx)),
        }
    };
}

/// Fails the row with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A short limit for the runtime calls rows expect to hang.
const HANG_LIMIT: Duration = Duration::from_millis(1500);

/// One row's context: a tag that names everything the row makes (ids,
/// directories, scripts), so that the audit finds what is left.
struct Cx {
    tag: String,
    dirs: std::sync::Mutex<Vec<tempfile::TempDir>>,
    ids: AtomicUsize,
}

impl Cx {
    fn new(index: usize) -> Cx {
        Cx {
            tag: format!("fm{index:02}x{}", std::process::id()),
            dirs: std::sync::Mutex::new(Vec::new()),
            ids: AtomicUsize::new(0),
        }
    }

    fn id(&self) -> runtime_api::ContainerId {
        let n = self.ids.fetch_add(1, Ordering::SeqCst);
        runtime_api::ContainerId::new(format!("{}-{n}", self.tag)).unwrap()
    }

    /// A fresh directory whose path carries the tag.
    fn dir(&self) -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", self.tag))
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        self.dirs.lock().unwrap().push(dir);
        path
    }

    /// A driver configuration for `runtime` with its tmp dir in a fresh
    /// directory of the row.
    fn config(&self, runtime: &str) -> (ConmonConfig, PathBuf) {
        let dir = self.dir();
        let config = config(runtime, &dir);
        (config, dir)
    }

    fn driver(&self, config: ConmonConfig, dir: &Path) -> Driver {
        Driver {
            runtime: Arc::new(ConmonRuntime::new(config).unwrap()),
            dir: dir.to_path_buf(),
        }
    }

    fn runc(&self) -> Driver {
        let (config, dir) = self.config("runc");
        self.driver(config, &dir)
    }

    /// A driver over real runc behind a wrapper that hangs (blocking in
    /// the shell, its command line kept) on the subcommand named in the
    /// file `<dir>/hang`, when that file exists.
    fn hanging_runc(&self) -> (Driver, PathBuf) {
        let (mut config, dir) = self.config("hangrt");
        let runc = testkit::find_binary("runc").unwrap();
        let hang = dir.join("hang");
        let body = format!(
            "hang_on=$(cat {hang} 2>/dev/null)\n\
             if [ -n \"$hang_on\" ]; then\n\
             \tfor arg in \"$@\"; do\n\
             \t\tif [ \"$arg\" = \"$hang_on\" ]; then\n\
             \t\t\tblock={dir}/block-$$ && mkfifo \"$block\" && read -r _ < \"$block\"\n\
             \t\tfi\n\
             \tdone\n\
             fi\n\
             exec {runc} \"$@\"\n",
            hang = quote(&hang),
            dir = quote(&dir),
            runc = quote(&runc),
        );
        config.runtime_paths = vec![fake_script(&dir, "hangrt", &body).unwrap()];
        (self.driver(config, &dir), hang)
    }

    /// Makes a driver from `config` and creates a container running
    /// `true`, which must fail; returns the error.
    async fn create_true_expecting_failure(
        &self,
        config: ConmonConfig,
        dir: &Path,
    ) -> Result<RuntimeError, String> {
        let d = self.driver(config, dir);
        let (c, _b) = self.describe(&d, &["true"]);
        failed_create(&d, &c).await
    }

    fn describe(&self, driver: &Driver, args: &[&str]) -> (ContainerDescription, testkit::Bundle) {
        let id = self.id();
        let b = bundle(args);
        std::fs::create_dir_all(driver.dir.join("logs")).unwrap();
        let c = ContainerDescription::builder(
            id.clone(),
            b.path(),
            driver.dir.join("run").join(id.as_str()),
        )
        .log(
            runtime_api::LogDriver::KubernetesFile,
            driver.dir.join("logs").join(format!("{id}.log")),
        )
        .cgroups_mode(conmon_driver::CgroupsMode::NoConmon)
        .build()
        .unwrap();
        (c, b)
    }
}

fn quote(path: &Path) -> String {
    String::from_utf8(shell_quote(path.as_os_str().as_encoded_bytes())).unwrap()
}

struct Driver {
    runtime: Arc<ConmonRuntime>,
    dir: PathBuf,
}

impl Driver {
    async fn running(&self, c: &ContainerDescription) -> Result<(), String> {
        self.runtime
            .create(c, CreateOptions::default())
            .await
            .map_err(|e| format!("create: {e}"))?;
        self.runtime
            .start(c)
            .await
            .map_err(|e| format!("start: {e}"))
    }

    /// Stops and deletes `c`, which must work.
    async fn remove(&self, c: &ContainerDescription) -> Result<(), String> {
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

/// The error of a create that must fail.
async fn failed_create(d: &Driver, c: &ContainerDescription) -> Result<RuntimeError, String> {
    match d.runtime.create(c, CreateOptions::default()).await {
        Ok(_) => Err("create succeeded".into()),
        Err(err) => Ok(err),
    }
}

fn attach_options(ready: AttachReady) -> AttachOptions {
    let mut options = AttachOptions::default();
    options.ready = Some(ready);
    options
}

fn describe_err(err: &RuntimeError) -> String {
    if err.driver_error::<conmon_driver::MonitorGone>().is_some() {
        return "MonitorGone".into();
    }
    match err.driver_error::<LaunchError>() {
        Some(launch) => format!("LaunchError at {:?}", launch.stage),
        None => format!("{err:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

fn launch_stage(err: &RuntimeError) -> Option<LaunchStage> {
    err.driver_error::<LaunchError>().map(|e| e.stage)
}

fn is_timeout(err: &RuntimeError) -> bool {
    matches!(err, RuntimeError::Timeout { .. })
}

// ---------------------------------------------------------------------
// Rows: the monitor misbehaves.
// ---------------------------------------------------------------------

async fn conmon_fake(cx: &Cx, behaviour: FakeConmonBehaviour) -> RowResult {
    let (mut config, dir) = cx.config("runc");
    config.conmon_path = Some(fake_conmon(&dir, behaviour).unwrap());
    config.timeouts.create = HANG_LIMIT;
    let err = cx.create_true_expecting_failure(config, &dir).await?;
    let text = err.to_string();
    ensure!(
        text.len() <= 16 * 1024,
        "the error is {} bytes long",
        text.len()
    );
    Ok(describe_err(&err))
}

async fn conmon_writes_garbage(cx: &Cx) -> RowResult {
    conmon_fake(
        cx,
        FakeConmonBehaviour::WritesRaw {
            raw: "garbage{\"da".into(),
        },
    )
    .await
}

async fn conmon_writes_half_a_record(cx: &Cx) -> RowResult {
    conmon_fake(
        cx,
        FakeConmonBehaviour::WritesRaw {
            raw: "{\"data\": 42".into(),
        },
    )
    .await
}

async fn conmon_writes_an_oversized_record(cx: &Cx) -> RowResult {
    let raw = format!("{{\"data\": 1, \"message\": \"{}\"", "y".repeat(100_000));
    conmon_fake(cx, FakeConmonBehaviour::WritesRaw { raw }).await
}

async fn conmon_reports_a_negative_pid_with_a_huge_message(cx: &Cx) -> RowResult {
    let raw = format!("{{\"data\": -1, \"message\": \"{}\"}}", "z".repeat(60_000));
    let outcome = conmon_fake(cx, FakeConmonBehaviour::WritesRaw { raw }).await?;
    Ok(outcome)
}

async fn conmon_exits_0_silently(cx: &Cx) -> RowResult {
    conmon_fake(
        cx,
        FakeConmonBehaviour::ExitWith {
            code: 0,
            message: String::new(),
        },
    )
    .await
}

async fn conmon_crashes(cx: &Cx) -> RowResult {
    conmon_fake(cx, FakeConmonBehaviour::Crashes).await
}

async fn conmon_hangs(cx: &Cx) -> RowResult {
    let (mut config, dir) = cx.config("runc");
    config.conmon_path = Some(fake_conmon(&dir, FakeConmonBehaviour::NeverReports).unwrap());
    config.timeouts.create = HANG_LIMIT;
    let err = cx.create_true_expecting_failure(config, &dir).await?;
    ensure!(is_timeout(&err), "expected a Timeout, got {err:?}");
    Ok(describe_err(&err))
}

async fn conmon_prints_then_hangs(cx: &Cx) -> RowResult {
    let (mut config, dir) = cx.config("runc");
    config.conmon_path = Some(
        fake_script(
            &dir,
            "conmon",
            "echo '[conmon:w]: cannot reach the runtime, retrying' >&2\nexec sleep 100000\n",
        )
        .unwrap(),
    );
    config.timeouts.create = HANG_LIMIT;
    let err = cx.create_true_expecting_failure(config, &dir).await?;
    ensure!(is_timeout(&err), "expected a Timeout, got {err:?}");
    ensure!(
        err.to_string().contains("cannot reach the runtime"),
        "the timeout does not quote conmon: {err}"
    );
    Ok("Timeout quoting conmon's stderr".into())
}

async fn pidfile_junk(cx: &Cx, pidfile: String) -> RowResult {
    let (mut config, dir) = cx.config("runc");
    config.conmon_path = Some(
        fake_conmon(
            &dir,
            FakeConmonBehaviour::WritesRawWithPidfile {
                raw: "{\"data\": -1, \"message\": \"refused\"}".into(),
                pidfile,
            },
        )
        .unwrap(),
    );
    config.timeouts.create = HANG_LIMIT;
    let err = cx.create_true_expecting_failure(config, &dir).await?;
    Ok(describe_err(&err))
}

async fn conmon_pidfile_holds_junk(cx: &Cx) -> RowResult {
    pidfile_junk(cx, "12ab\n".into()).await
}

async fn conmon_pidfile_names_another_process(cx: &Cx) -> RowResult {
    // A process of this test that is not a monitor: it must survive.
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = bystander.id();
    let outcome = pidfile_junk(cx, pid.to_string()).await;
    let alive = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    let outcome = outcome?;
    ensure!(alive, "the process named in the pidfile was killed");
    Ok(outcome)
}

async fn conmon_killed_mid_create(cx: &Cx) -> RowResult {
    let (d, hang) = cx.hanging_runc();
    std::fs::write(&hang, "create").unwrap();
    let (c, _b) = cx.describe(&d, &["true"]);
    let runtime = Arc::clone(&d.runtime);
    let c2 = c.clone();
    let create = tokio::spawn(async move { runtime.create(&c2, CreateOptions::default()).await });
    // The runtime blocks in `create` under conmon's monitor, its parent.
    let runtime_pid = wait_for_process(
        &[c.id().as_str(), "hangrt", "create"],
        Duration::from_secs(20),
    )
    .await;
    let monitor = runtime_pid.as_ref().ok().and_then(|pid| parent_of(*pid));
    let killed = match monitor {
        Some(monitor) => nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(monitor),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| format!("killing conmon: {e}")),
        None => Err(format!("no monitor found: {runtime_pid:?}")),
    };
    let started = Instant::now();
    let err = create.await.unwrap().err().ok_or("create succeeded")?;
    killed?;
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "create took {:?} to notice its monitor's death",
        started.elapsed()
    );
    Ok(describe_err(&err))
}

async fn conmon_killed_mid_wait(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let (c, _b) = cx.describe(&d, &["sleep", "1000"]);
    d.running(&c).await?;
    let runtime = Arc::clone(&d.runtime);
    let c2 = c.clone();
    let wait = tokio::spawn(async move { runtime.wait(&c2, Duration::from_secs(60)).await });
    let conmon = d
        .runtime
        .monitor_pid(&c)
        .map_err(|e| format!("monitor pid: {e}"))?
        .ok_or("no monitor pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(conmon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| format!("killing conmon: {e}"))?;
    let waited = tokio::time::timeout(Duration::from_secs(15), wait).await;
    // The container itself outlives its monitor; removing it must work.
    d.remove(&c).await?;
    match waited {
        Ok(joined) => match joined.unwrap() {
            Err(err) if err.driver_error::<conmon_driver::MonitorGone>().is_some() => {
                Ok(format!("wait: {}", describe_err(&err)))
            }
            other => Err(format!("wait answered {other:?}")),
        },
        Err(_) => Err("wait did not end when conmon died".into()),
    }
}

// ---------------------------------------------------------------------
// Rows: the runtime misbehaves.
// ---------------------------------------------------------------------

async fn runtime_missing(cx: &Cx) -> RowResult {
    let (mut config, _dir) = cx.config("no-such-runtime-fm");
    config.runtime_paths = vec![];
    let err = ConmonRuntime::new(config)
        .err()
        .ok_or("a driver was made")?;
    ensure!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
    ensure!(err.to_string().contains("no-such-runtime-fm"), "{err}");
    Ok(describe_err(&err))
}

async fn runtime_not_executable(cx: &Cx) -> RowResult {
    let (mut config, dir) = cx.config("plainfile");
    let path = dir.join("plainfile");
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
    config.runtime_paths = vec![path];
    let err = ConmonRuntime::new(config)
        .err()
        .ok_or("a driver was made")?;
    ensure!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
    Ok(describe_err(&err))
}

async fn runtime_removed_after_start_up(cx: &Cx) -> RowResult {
    let (mut config, dir) = cx.config("vanishing");
    let path = fake_script(&dir, "vanishing", "exit 0").unwrap();
    config.runtime_paths = vec![path.clone()];
    let d = cx.driver(config, &dir);
    std::fs::remove_file(&path).unwrap();
    let (c, _b) = cx.describe(&d, &["true"]);
    let err = failed_create(&d, &c).await?;
    Ok(describe_err(&err))
}

async fn runtime_fails_silently_on_create(cx: &Cx) -> RowResult {
    let (mut config, dir) = cx.config("silent");
    config.runtime_paths = vec![fake_runtime_without_containers(
        &dir,
        "silent",
        FakeRuntimeBehaviour::FailSilently { code: 1 },
    )
    .unwrap()];
    let err = cx.create_true_expecting_failure(config, &dir).await?;
    ensure!(
        launch_stage(&err) == Some(LaunchStage::SyncRecord),
        "expected a sync-record LaunchError, got {err:?}"
    );
    Ok(describe_err(&err))
}

/// A runtime whose `--log` file is replaced by `replacement` (shell text
/// run with `$log` set) before it fails.
async fn oci_log_replaced(cx: &Cx, replacement: &str) -> RowResult {
    let (mut config, dir) = cx.config("logtamper");
    let body = format!(
        "for arg in \"$@\"; do [ \"$arg\" = state ] && {{ echo 'container does not exist' >&2; exit 1; }}; done\n\
         log=''\nprev=''\n\
         for arg in \"$@\"; do\n\
         \tcase \"$prev\" in --log|-log) log=$arg ;; esac\n\
         \tcase \"$arg\" in --log=*) log=${{arg#*=}} ;; esac\n\
         \tprev=$arg\n\
         done\n\
         [ -n \"$log\" ] && rm -f \"$log\" && {replacement}\n\
         exit 1\n"
    );
    config.runtime_paths = vec![fake_script(&dir, "logtamper", &body).unwrap()];
    config.runtimes_with_json_errors.push("logtamper".into());
    let err = cx.create_true_expecting_failure(config, &dir).await?;
    Ok(describe_err(&err))
}

async fn oci_log_is_a_fifo(cx: &Cx) -> RowResult {
    oci_log_replaced(cx, "mkfifo \"$log\"").await
}

async fn oci_log_links_to_dev_zero(cx: &Cx) -> RowResult {
    oci_log_replaced(cx, "ln -s /dev/zero \"$log\"").await
}

async fn runtime_hangs_on_create(cx: &Cx) -> RowResult {
    let (mut d, hang) = cx.hanging_runc();
    let mut config = d.runtime.config().clone();
    config.timeouts.create = HANG_LIMIT;
    d = cx.driver(config, &d.dir);
    std::fs::write(&hang, "create").unwrap();
    let (c, _b) = cx.describe(&d, &["true"]);
    let err = failed_create(&d, &c).await?;
    ensure!(is_timeout(&err), "expected a Timeout, got {err:?}");
    Ok(describe_err(&err))
}

async fn runtime_hangs_on_state_before_create(cx: &Cx) -> RowResult {
    let (mut d, hang) = cx.hanging_runc();
    let mut config = d.runtime.config().clone();
    config.timeouts.state = HANG_LIMIT;
    d = cx.driver(config, &d.dir);
    std::fs::write(&hang, "state").unwrap();
    let (c, _b) = cx.describe(&d, &["true"]);
    // Only an id with something on disk is checked with the runtime first:
    // a stale persist dir, as a crashed engine leaves.
    let layout = conmon_driver::ContainerLayout::new(d.runtime.config(), &c);
    std::fs::create_dir_all(&layout.persist_dir).map_err(|e| e.to_string())?;
    let err = failed_create(&d, &c).await?;
    ensure!(is_timeout(&err), "expected a Timeout, got {err:?}");
    // Refused before anything was touched: the stale dir is still there.
    std::fs::remove_dir(&layout.persist_dir).map_err(|e| format!("the stale dir: {e}"))?;
    Ok(describe_err(&err))
}

/// A container (running, or only created when `state` is to hang) whose
/// runtime then hangs on `subcommand`.
async fn hanging_after_start(
    cx: &Cx,
    subcommand: &str,
) -> Result<(Driver, PathBuf, ContainerDescription, testkit::Bundle), String> {
    let (d, hang) = cx.hanging_runc();
    let mut config = d.runtime.config().clone();
    config.timeouts.state = HANG_LIMIT;
    config.timeouts.start = HANG_LIMIT;
    config.timeouts.signal = HANG_LIMIT;
    config.timeouts.delete = HANG_LIMIT;
    let d = cx.driver(config, &d.dir);
    let (c, b) = cx.describe(&d, &["sleep", "1000"]);
    d.runtime
        .create(&c, CreateOptions::default())
        .await
        .map_err(|e| format!("create: {e}"))?;
    // A created container's status asks the runtime (a started one whose
    // init process runs is answered from the driver's own records).
    if subcommand != "start" && subcommand != "state" {
        d.runtime
            .start(&c)
            .await
            .map_err(|e| format!("start: {e}"))?;
    }
    std::fs::write(&hang, subcommand).unwrap();
    Ok((d, hang, c, b))
}

async fn finish_hanging(
    d: &Driver,
    hang: &Path,
    c: &ContainerDescription,
    err: RuntimeError,
) -> RowResult {
    std::fs::remove_file(hang).unwrap();
    ensure!(is_timeout(&err), "expected a Timeout, got {err:?}");
    d.remove(c).await?;
    Ok(format!("{} then removed", describe_err(&err)))
}

async fn runtime_hangs_on_start(cx: &Cx) -> RowResult {
    let (d, hang, c, _b) = hanging_after_start(cx, "start").await?;
    let err = d.runtime.start(&c).await.err().ok_or("start succeeded")?;
    finish_hanging(&d, &hang, &c, err).await
}

async fn runtime_hangs_on_state(cx: &Cx) -> RowResult {
    let (d, hang, c, _b) = hanging_after_start(cx, "state").await?;
    let err = d.runtime.status(&c).await.err().ok_or("status succeeded")?;
    finish_hanging(&d, &hang, &c, err).await
}

async fn runtime_hangs_on_kill(cx: &Cx) -> RowResult {
    let (d, hang, c, _b) = hanging_after_start(cx, "kill").await?;
    let err = d
        .runtime
        .kill(&c, Signal::TERM, false)
        .await
        .err()
        .ok_or("kill succeeded")?;
    finish_hanging(&d, &hang, &c, err).await
}

async fn runtime_hangs_on_delete(cx: &Cx) -> RowResult {
    let (d, hang, c, _b) = hanging_after_start(cx, "delete").await?;
    d.runtime
        .stop(&c, Duration::ZERO, false)
        .await
        .map_err(|e| format!("stop: {e}"))?;
    let err = d.runtime.delete(&c).await.err().ok_or("delete succeeded")?;
    finish_hanging(&d, &hang, &c, err).await
}

async fn runtime_prints_junk_state(cx: &Cx) -> RowResult {
    let (mut config, dir) = cx.config("junkstate");
    let body = "for arg in \"$@\"; do [ \"$arg\" = state ] && { echo '{\"id\": 7, not json'; exit 0; }; done\nexit 0\n";
    config.runtime_paths = vec![fake_script(&dir, "junkstate", body).unwrap()];
    let err = cx.create_true_expecting_failure(config, &dir).await?;
    Ok(describe_err(&err))
}

// ---------------------------------------------------------------------
// Rows: the host misbehaves.
// ---------------------------------------------------------------------

/// Creates and runs `echo` with the run dir under `parent`, attaching to
/// it; returns what the container printed.
async fn run_under(cx: &Cx, d: &Driver, parent: &Path) -> Result<Vec<u8>, RuntimeError> {
    let id = cx.id();
    let b = bundle(&["echo", "through"]);
    std::fs::create_dir_all(d.dir.join("logs")).unwrap();
    let c = ContainerDescription::builder(id.clone(), b.path(), parent.join(id.as_str()))
        .log(
            runtime_api::LogDriver::KubernetesFile,
            d.dir.join("logs").join(format!("{id}.log")),
        )
        .cgroups_mode(conmon_driver::CgroupsMode::NoConmon)
        .build()
        .unwrap();
    d.runtime.create(&c, CreateOptions::default()).await?;
    let out = Collector::default();
    let ready = AttachReady::new();
    let runtime = Arc::clone(&d.runtime);
    let (c2, sink) = (c.clone(), out.sink());
    let session = tokio::spawn(async move {
        runtime
            .attach(
                &c2,
                AttachStreams {
                    stdout: Some(sink),
                    ..AttachStreams::default()
                },
                attach_options(ready),
            )
            .await
    });
    let started = d.runtime.start(&c).await;
    let attached = session.await.unwrap();
    let code = d.runtime.wait(&c, Duration::from_secs(30)).await;
    d.runtime.delete(&c).await?;
    started?;
    attached?;
    code?;
    Ok(out.bytes())
}

async fn run_dir_path_at_the_socket_limit(cx: &Cx) -> RowResult {
    let d = cx.runc();
    // <parent>/<id>/attach at exactly 107 bytes (sun_path holds 108 with
    // its NUL).
    let base = cx.dir();
    let id_len = cx.tag.len() + 2;
    let fill = 107 - base.as_os_str().len() - 1 - id_len - "/attach".len() - 1;
    let parent = base.join("p".repeat(fill));
    std::fs::create_dir_all(&parent).unwrap();
    let out = run_under(cx, &d, &parent)
        .await
        .map_err(|e| format!("{e:?}"))?;
    ensure!(out == b"through\n", "output {out:?}");
    Ok("attached, output whole".into())
}

async fn run_dir_path_past_the_socket_limit(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let parent = cx.dir().join("q".repeat(120)).join("r".repeat(120));
    std::fs::create_dir_all(&parent).unwrap();
    let out = run_under(cx, &d, &parent)
        .await
        .map_err(|e| format!("{e:?}"))?;
    ensure!(out == b"through\n", "output {out:?}");
    Ok("attached, output whole".into())
}

/// Mounts a tmpfs on a fresh directory of the row; the row unmounts it.
fn mount_tmpfs(cx: &Cx, options: &str) -> PathBuf {
    let target = cx.dir().join("mnt");
    std::fs::create_dir_all(&target).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "fmtmpfs"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    target
}

fn unmount(target: &Path) {
    let status = std::process::Command::new("umount")
        .arg(target)
        .status()
        .unwrap();
    assert!(status.success(), "umount {}", target.display());
}

async fn run_dir_on_a_full_tmpfs(cx: &Cx) -> RowResult {
    let target = mount_tmpfs(cx, "size=64k");
    // Fill it up.
    let _ = std::fs::write(target.join("filler"), vec![0u8; 128 * 1024]);
    let d = cx.runc();
    let result = run_under(cx, &d, &target).await;
    let _ = std::fs::remove_file(target.join("filler"));
    let leftover: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    unmount(&target);
    let err = result.err().ok_or("the container ran on a full run dir")?;
    ensure!(leftover.is_empty(), "left in the run dir: {leftover:?}");
    Ok(describe_err(&err))
}

async fn run_dir_read_only(cx: &Cx) -> RowResult {
    let target = mount_tmpfs(cx, "ro,size=1m");
    let d = cx.runc();
    let result = run_under(cx, &d, &target).await;
    unmount(&target);
    let err = result
        .err()
        .ok_or("the container ran on a read-only run dir")?;
    Ok(describe_err(&err))
}

async fn exit_file_holds_garbage(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let (c, _b) = cx.describe(&d, &["sh", "-c", "exit 4"]);
    d.running(&c).await?;
    let code = d
        .runtime
        .wait(&c, Duration::from_secs(30))
        .await
        .map_err(|e| format!("wait: {e}"))?;
    ensure!(code == 4, "exit code {code}");
    let exit_file = d.runtime.exit_file_path(&c);
    std::fs::write(&exit_file, "not a number").unwrap();
    let err = d
        .runtime
        .wait(&c, Duration::from_secs(5))
        .await
        .err()
        .ok_or("wait accepted garbage")?;
    d.runtime
        .delete(&c)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    Ok(describe_err(&err))
}

// ---------------------------------------------------------------------
// Rows: the container and the callers.
// ---------------------------------------------------------------------

async fn container_killed_mid_attach(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let (c, _b) = cx.describe(&d, &["sh", "-c", "echo up; exec sleep 1000"]);
    d.runtime
        .create(&c, CreateOptions::default())
        .await
        .map_err(|e| format!("create: {e}"))?;
    let out = Collector::default();
    let ready = AttachReady::new();
    let runtime = Arc::clone(&d.runtime);
    let (c2, sink) = (c.clone(), out.sink());
    let session = tokio::spawn(async move {
        runtime
            .attach(
                &c2,
                AttachStreams {
                    stdout: Some(sink),
                    ..AttachStreams::default()
                },
                attach_options(ready),
            )
            .await
    });
    d.runtime
        .start(&c)
        .await
        .map_err(|e| format!("start: {e}"))?;
    d.runtime
        .kill(&c, Signal::KILL, false)
        .await
        .map_err(|e| format!("kill: {e}"))?;
    let outcome = session.await.unwrap().map_err(|e| format!("attach: {e}"))?;
    let code = d
        .runtime
        .wait(&c, Duration::from_secs(30))
        .await
        .map_err(|e| format!("wait: {e}"))?;
    d.runtime
        .delete(&c)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    ensure!(
        outcome == AttachOutcome::StreamsEnded,
        "attach ended {outcome:?}"
    );
    ensure!(code == 137, "exit code {code}");
    Ok("attach ended, exit 137".into())
}

/// Polls `fut` `polls` times (each poll after a wake-up, or a yield) and
/// drops it if it has not finished by then. `Some` is its output.
async fn poll_then_drop<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut done = None;
    for _ in 0..polls {
        let step = std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        if let Some(v) = step {
            done = Some(v);
            break;
        }
        // Give the work the future started (children, reactor) a moment
        // to make progress before the next poll.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    done
}

const MAX_POLLS: usize = 400;

async fn create_dropped_at_each_poll(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let mut polls = 1;
    loop {
        let (c, _b) = cx.describe(&d, &["sh", "-c", "exit 9"]);
        let finished = poll_then_drop(d.runtime.create(&c, CreateOptions::default()), polls)
            .await
            .map(|r| r.map(|_| ()));
        let was_finished = finished.is_some();
        // Whatever was dropped, a retry of the same id gets a working
        // container (after the cancelled call's undo, which the retry
        // waits for).
        if !was_finished {
            d.runtime
                .create(&c, CreateOptions::default())
                .await
                .map_err(|e| format!("retry after a drop at poll {polls}: {e}"))?;
        } else {
            finished.unwrap().map_err(|e| format!("create: {e}"))?;
        }
        d.runtime
            .start(&c)
            .await
            .map_err(|e| format!("start: {e}"))?;
        let code = d
            .runtime
            .wait(&c, Duration::from_secs(30))
            .await
            .map_err(|e| format!("wait: {e}"))?;
        d.runtime
            .delete(&c)
            .await
            .map_err(|e| format!("delete: {e}"))?;
        ensure!(code == 9, "exit code {code} after a drop at poll {polls}");
        if was_finished {
            return Ok(format!("dropped at polls 1..{}", polls - 1));
        }
        polls += 1;
        ensure!(
            polls < MAX_POLLS,
            "create never finished within {MAX_POLLS} polls"
        );
    }
}

async fn exec_dropped_at_each_poll(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let (c, _b) = cx.describe(&d, &["sleep", "1000"]);
    d.running(&c).await?;
    let mut polls = 1;
    let result = loop {
        let out = Collector::default();
        let config = ExecConfig::new(["echo", "x"]);
        let exec = d.runtime.exec(
            &c,
            &config,
            AttachStreams {
                stdout: Some(out.sink()),
                ..AttachStreams::default()
            },
            AttachOptions::default(),
        );
        let finished = poll_then_drop(exec, polls).await;
        let done = match finished {
            Some(handle) => {
                let handle = handle.map_err(|e| format!("exec: {e}"))?;
                let completion = handle
                    .completion
                    .await
                    .map_err(|e| format!("completion: {e}"))?;
                ensure!(completion.exit_code == Some(0), "{completion:?}");
                true
            }
            None => false,
        };
        // The container still takes execs.
        let out = Collector::default();
        let handle = d
            .runtime
            .exec(
                &c,
                &ExecConfig::new(["echo", "after"]),
                AttachStreams {
                    stdout: Some(out.sink()),
                    ..AttachStreams::default()
                },
                AttachOptions::default(),
            )
            .await
            .map_err(|e| format!("exec after a drop at poll {polls}: {e}"))?;
        handle
            .completion
            .await
            .map_err(|e| format!("completion: {e}"))?;
        ensure!(out.bytes() == b"after\n", "output {:?}", out.bytes());
        if done {
            break Ok(format!("dropped at polls 1..{}", polls - 1));
        }
        polls += 1;
        if polls >= MAX_POLLS {
            break Err(format!("exec never finished within {MAX_POLLS} polls"));
        }
    };
    d.remove(&c).await?;
    let sessions: Vec<_> = std::fs::read_dir(c.bundle())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("exec-"))
        .map(|e| {
            let inside: Vec<_> = walkdir(&e.path());
            (e.file_name(), inside)
        })
        .collect();
    ensure!(sessions.is_empty(), "exec session dirs left: {sessions:?}");
    result
}

async fn attach_dropped_at_each_poll(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let (c, _b) = cx.describe(&d, &["sh", "-c", "while :; do echo tick; sleep 0.01; done"]);
    d.running(&c).await?;
    // An attach never finishes on its own here: drop it after 1..=20 polls.
    for polls in 1..=20 {
        let out = Collector::default();
        let attach = d.runtime.attach(
            &c,
            AttachStreams {
                stdout: Some(out.sink()),
                ..AttachStreams::default()
            },
            AttachOptions::default(),
        );
        ensure!(
            poll_then_drop(attach, polls).await.is_none(),
            "attach ended by itself"
        );
    }
    // A new attach still gets output.
    let seen = testkit::Collector::default();
    let sink = seen.sink();
    let ready = AttachReady::new();
    let runtime = Arc::clone(&d.runtime);
    let c2 = c.clone();
    let session = tokio::spawn(async move {
        runtime
            .attach(
                &c2,
                AttachStreams {
                    stdout: Some(sink),
                    ..AttachStreams::default()
                },
                attach_options(ready),
            )
            .await
    });
    let got = seen.wait_for("tick\n", Duration::from_secs(10)).await;
    d.remove(&c).await?;
    session.await.unwrap().map_err(|e| format!("attach: {e}"))?;
    got.map_err(|e| format!("no output through the new attach: {e}"))?;
    Ok("20 drops, then a working attach".into())
}

async fn two_creates_of_one_id_race(cx: &Cx) -> RowResult {
    let d = cx.runc();
    for round in 0..100 {
        let (c, _b) = cx.describe(&d, &["sh", "-c", "exit 3"]);
        let (first, second) = tokio::join!(
            d.runtime.create(&c, CreateOptions::default()),
            d.runtime.create(&c, CreateOptions::default())
        );
        let lost = match (first, second) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            other => return Err(format!("round {round}: expected one winner, got {other:?}")),
        };
        ensure!(
            matches!(lost, RuntimeError::AlreadyExists { .. }),
            "round {round}: the loser got {lost:?}"
        );
        let status = d
            .runtime
            .status(&c)
            .await
            .map_err(|e| format!("status: {e}"))?;
        ensure!(
            status.status == ContainerStatus::Created,
            "round {round}: {status:?}"
        );
        d.runtime
            .start(&c)
            .await
            .map_err(|e| format!("start: {e}"))?;
        let code = d
            .runtime
            .wait(&c, Duration::from_secs(30))
            .await
            .map_err(|e| format!("wait: {e}"))?;
        ensure!(code == 3, "round {round}: exit code {code}");
        d.runtime
            .delete(&c)
            .await
            .map_err(|e| format!("delete: {e}"))?;
    }
    Ok("100 rounds: one winner each, its container works".into())
}

async fn a_thousand_concurrent_waits(cx: &Cx) -> RowResult {
    let d = cx.runc();
    let mut containers = Vec::new();
    for _ in 0..4 {
        let (c, b) = cx.describe(&d, &["sleep", "1000"]);
        d.running(&c).await?;
        containers.push((c, b));
    }
    let mut waits = Vec::new();
    for (c, _) in &containers {
        for _ in 0..250 {
            let (runtime, c) = (Arc::clone(&d.runtime), c.clone());
            waits.push(tokio::spawn(async move {
                runtime.wait(&c, Duration::from_secs(60)).await
            }));
        }
    }
    for (c, _) in &containers {
        d.runtime
            .kill(c, Signal::KILL, false)
            .await
            .map_err(|e| format!("kill: {e}"))?;
    }
    let mut codes = BTreeSet::new();
    for wait in waits {
        codes.insert(wait.await.unwrap().map_err(|e| format!("wait: {e}"))?);
    }
    for (c, _) in &containers {
        d.runtime
            .delete(c)
            .await
            .map_err(|e| format!("delete: {e}"))?;
    }
    ensure!(codes == BTreeSet::from([137]), "codes {codes:?}");
    Ok("1000 waits, all 137".into())
}

// ---------------------------------------------------------------------
// The harness.
// ---------------------------------------------------------------------

/// Waits until a process whose command line holds every one of `words`
/// exists, and returns its pid.
async fn wait_for_process(words: &[&str], limit: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + limit;
    loop {
        let found = processes_mentioning(words[0])
            .into_iter()
            .find(|(_, cmdline)| words.iter().all(|w| cmdline.contains(w)));
        if let Some((pid, _)) = found {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(format!("no process with {words:?} within {limit:?}"));
        }
        // No event announces an unrelated process: look again shortly.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn walkdir(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            found.push(e.path().display().to_string());
            found.extend(walkdir(&e.path()));
        }
    }
    found
}

/// The directories of the row that must be empty afterwards: exit files,
/// persist dirs, run dirs.
fn driver_dirs(cx: &Cx) -> Vec<PathBuf> {
    cx.dirs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|d| ["tmp/exits", "tmp/persist", "run"].map(|sub| d.path().join(sub)))
        .collect()
}

fn rows() -> Vec<Row> {
    vec![
        row!(
            "conmon writes garbage to the sync pipe",
            5_000,
            conmon_writes_garbage
        ),
        row!(
            "conmon writes half a record",
            5_000,
            conmon_writes_half_a_record
        ),
        row!(
            "conmon writes an oversized record",
            5_000,
            conmon_writes_an_oversized_record
        ),
        row!(
            "conmon reports a negative pid with a 60 KB message",
            5_000,
            conmon_reports_a_negative_pid_with_a_huge_message
        ),
        row!("conmon exits 0 silently", 5_000, conmon_exits_0_silently),
        row!("conmon crashes (SIGSEGV)", 5_000, conmon_crashes),
        row!("conmon hangs without a sync record", 6_000, conmon_hangs),
        row!(
            "conmon prints a warning, then hangs",
            6_000,
            conmon_prints_then_hangs
        ),
        row!(
            "conmon's pidfile holds junk",
            5_000,
            conmon_pidfile_holds_junk
        ),
        row!(
            "conmon's pidfile names another process",
            5_000,
            conmon_pidfile_names_another_process
        ),
        row!("conmon killed mid-create", 25_000, conmon_killed_mid_create),
        row!("conmon killed mid-wait", 25_000, conmon_killed_mid_wait),
        row!("runtime missing", 1_000, runtime_missing),
        row!("runtime not executable", 1_000, runtime_not_executable),
        row!(
            "runtime removed after start-up",
            5_000,
            runtime_removed_after_start_up
        ),
        row!(
            "runtime exits 1 with empty stderr on create",
            10_000,
            runtime_fails_silently_on_create
        ),
        row!(
            "runtime's OCI log replaced by a FIFO",
            10_000,
            oci_log_is_a_fifo
        ),
        row!(
            "runtime's OCI log a symlink to /dev/zero",
            10_000,
            oci_log_links_to_dev_zero
        ),
        row!(
            "runtime prints junk for state",
            5_000,
            runtime_prints_junk_state
        ),
        row!("runtime hangs on create", 10_000, runtime_hangs_on_create),
        row!(
            "runtime hangs on state before create",
            6_000,
            runtime_hangs_on_state_before_create
        ),
        row!("runtime hangs on start", 20_000, runtime_hangs_on_start),
        row!(
            "runtime hangs on state (created container)",
            20_000,
            runtime_hangs_on_state
        ),
        row!("runtime hangs on kill", 20_000, runtime_hangs_on_kill),
        row!("runtime hangs on delete", 20_000, runtime_hangs_on_delete),
        row!(
            "run dir path at the socket-path limit",
            20_000,
            run_dir_path_at_the_socket_limit
        ),
        row!(
            "run dir path past the socket-path limit",
            20_000,
            run_dir_path_past_the_socket_limit
        ),
        row!("run dir on a full tmpfs", 20_000, run_dir_on_a_full_tmpfs),
        row!("run dir read-only", 20_000, run_dir_read_only),
        row!("exit file holds garbage", 20_000, exit_file_holds_garbage),
        row!(
            "container SIGKILLed mid-attach",
            20_000,
            container_killed_mid_attach
        ),
        row!(
            "create future dropped at each poll",
            240_000,
            create_dropped_at_each_poll
        ),
        row!(
            "exec future dropped at each poll",
            240_000,
            exec_dropped_at_each_poll
        ),
        row!(
            "attach future dropped at each poll",
            60_000,
            attach_dropped_at_each_poll
        ),
        row!(
            "two creates of one id race, 100 rounds",
            180_000,
            two_creates_of_one_id_race
        ),
        row!(
            "1,000 concurrent waits",
            60_000,
            a_thousand_concurrent_waits
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    if !need_runc() {
        return;
    }
    // Warm up what opens lazily and stays (tokio's signal pipe, blocking
    // pool, pidfd reactor) with one full lifecycle.
    {
        let warm = Cx::new(99);
        let d = warm.runc();
        let (c, _b) = warm.describe(&d, &["true"]);
        d.running(&c).await.unwrap();
        d.runtime.wait(&c, Duration::from_secs(30)).await.unwrap();
        d.runtime.delete(&c).await.unwrap();
    }
    let only = std::env::var("FAULT_MATRIX_ROWS").ok();
    let mut table = Vec::new();
    let mut failed = Vec::new();
    for (index, row) in rows().into_iter().enumerate() {
        if let Some(only) = &only {
            if !only.split(',').any(|w| row.name.contains(w.trim())) {
                continue;
            }
        }
        let fds_before = FdSnapshot::take();
        let cx = Cx::new(index);
        let started = Instant::now();
        let result = tokio::time::timeout(row.bound, (row.run)(&cx)).await;
        let took = started.elapsed();
        let outcome = match result {
            Ok(Ok(what)) => Ok(what),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!("still running after its bound of {:?}", row.bound)),
        };
        let audit = Audit::new(cx.tag.clone(), &fds_before)
            .runtime("runc")
            .dirs(driver_dirs(&cx));
        let left = audit.settled(Duration::from_secs(5)).await;
        let verdict = match (&outcome, left.is_empty()) {
            (Ok(_), true) => "ok",
            (Ok(_), false) => "LEAK",
            (Err(_), _) => "FAIL",
        };
        let what = match &outcome {
            Ok(what) => what.clone(),
            Err(why) => why.clone(),
        };
        eprintln!(
            "| {:<52} | {:>7} | {:>7} | {:<4} | {}{}",
            row.name,
            format!("{:.1}s", row.bound.as_secs_f64()),
            format!("{:.2}s", took.as_secs_f64()),
            verdict,
            what.chars().take(200).collect::<String>(),
            if left.is_empty() {
                String::new()
            } else {
                format!(" | left: {left:?}")
            }
        );
        table.push((row.name, verdict));
        if verdict != "ok" {
            failed.push(format!("{}: {what} {left:?}", row.name));
            audit.scrub().await;
        }
    }
    assert!(
        table.len() >= 30 || only.is_some(),
        "the matrix has {} rows",
        table.len()
    );
    assert!(failed.is_empty(), "rows failed:\n{}", failed.join("\n"));
}
