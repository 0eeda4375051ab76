//! Soak: many containers live through create, attach, start, exec, stop
//! and delete at once, while callers give up on calls at random moments
//! (a dropped future, as a cancelled request or a timed-out client does).
//! At the end everything the run made is audited: processes, fds, mounts,
//! cgroups, runtime containers, driver files. The audit is printed, and
//! the exit status is 1 when anything failed or was left.
//!
//! ```text
//! cargo run --release -p conmon-driver --example soak -- --containers 500 --parallel 16
//! ```
//!
//! Options: `--containers N` (default 100), `--parallel N` (default 8),
//! `--runtime NAME` (default runc), `--seed N` (default: the clock),
//! `--cancel-percent N`: how often a step is given up on (default 25).
//! Needs root, conmon, the runtime and a static busybox.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conmon_driver::{CgroupsMode, ConmonConfig, ConmonDescriptionExt, ConmonRuntime, LogLevel};
use runtime_api::{
    AttachOptions, AttachReady, AttachStreams, ContainerDescription, ContainerId, ContainerStatus,
    CreateOptions, ExecConfig, LogDriver, OciRuntime, RuntimeError,
};
use testkit::audit::{Audit, FdSnapshot};
use testkit::BundleBuilder;

struct Options {
    containers: usize,
    parallel: usize,
    runtime: String,
    seed: u64,
    cancel_percent: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        containers: 100,
        parallel: 8,
        runtime: "runc".into(),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        cancel_percent: 25,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{flag}: {text:?} is not a number"))
        };
        match flag.as_str() {
            "--containers" => options.containers = number(value()?)? as usize,
            "--parallel" => options.parallel = (number(value()?)? as usize).max(1),
            "--runtime" => options.runtime = value()?,
            "--seed" => options.seed = number(value()?)?,
            "--cancel-percent" => options.cancel_percent = number(value()?)?.min(100),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(options)
}

/// A small deterministic generator (xorshift64*), seeded per container so
/// that a seed replays the same plan.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Steps of a container's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Create,
    Attach,
    Start,
    Exec,
    Stop,
    Delete,
}

/// What happened in one life, for the summary.
#[derive(Default)]
struct Life {
    done: Vec<Step>,
    cancelled: Vec<Step>,
}

/// Runs `step`, or gives up on it after a random delay of up to 40 ms
/// when the plan says so. `None`: given up on (the future was dropped).
async fn maybe_cancelled<F: Future>(
    rng: &mut Rng,
    cancel_percent: u64,
    life: &mut Life,
    which: Step,
    step: F,
) -> Option<F::Output> {
    if rng.percent(cancel_percent) {
        let after = Duration::from_micros(rng.below(40_000));
        match tokio::time::timeout(after, step).await {
            Ok(out) => {
                life.done.push(which);
                Some(out)
            }
            Err(_) => {
                life.cancelled.push(which);
                None
            }
        }
    } else {
        let out = step.await;
        life.done.push(which);
        Some(out)
    }
}

fn step_error(step: &str, e: RuntimeError) -> String {
    format!("{step}: {e}")
}

struct World {
    runtime: Arc<ConmonRuntime>,
    base: PathBuf,
    tag: String,
    cancel_percent: u64,
}

impl World {
    fn describe(&self, id: &ContainerId, bundle: &Path) -> ContainerDescription {
        ContainerDescription::builder(id.clone(), bundle, self.base.join("run").join(id.as_str()))
            .log(
                LogDriver::KubernetesFile,
                self.base.join("logs").join(format!("{id}.log")),
            )
            .cgroups_mode(CgroupsMode::NoConmon)
            .build()
            .expect("a valid description")
    }
}

/// One container's life. Errors are what must not happen: a step failing
/// when nothing was cancelled, or a retry after a cancellation failing.
async fn life(world: Arc<World>, index: usize, seed: u64) -> Result<Life, String> {
    let mut rng = Rng::new(seed);
    let mut life = Life::default();
    let cancel = world.cancel_percent;
    let id = ContainerId::new(format!("{}-{index}", world.tag)).map_err(|e| e.to_string())?;
    let bundle = BundleBuilder::new()
        .in_dir(world.base.join("bundles"))
        .args(["sh", "-c", "echo hello; exec sleep 1000"])
        .build()
        .map_err(|e| format!("bundle: {e}"))?;
    let c = world.describe(&id, bundle.path());
    let rt = &world.runtime;

    // Create; after a cancelled create the retry waits for its undo and
    // makes the container, or finds the one the cancelled call made.
    let created = maybe_cancelled(
        &mut rng,
        cancel,
        &mut life,
        Step::Create,
        rt.create(&c, CreateOptions::default()),
    )
    .await;
    match created {
        Some(result) => {
            result.map_err(|e| step_error("create", e))?;
        }
        None => match rt.create(&c, CreateOptions::default()).await {
            Ok(_) | Err(RuntimeError::AlreadyExists { .. }) => {}
            Err(e) => return Err(step_error("create after a cancelled create", e)),
        },
    }

    // Attach (in the background), perhaps given up on at a random moment.
    let attach = if rng.percent(50) {
        let ready = AttachReady::new();
        let mut options = AttachOptions::default();
        options.ready = Some(ready.clone());
        let runtime = Arc::clone(rt);
        let c = c.clone();
        let give_up = rng
            .percent(cancel)
            .then(|| Duration::from_micros(rng.below(200_000)));
        match give_up {
            Some(_) => life.cancelled.push(Step::Attach),
            None => life.done.push(Step::Attach),
        }
        let session = tokio::spawn(async move {
            let streams = AttachStreams {
                stdout: Some(Box::pin(tokio::io::sink())),
                stderr: Some(Box::pin(tokio::io::sink())),
                ..AttachStreams::default()
            };
            let attach = runtime.attach(&c, streams, options);
            match give_up {
                // Given up on: the dropped session must leave nothing.
                Some(after) => match tokio::time::timeout(after, attach).await {
                    Ok(result) => result.map(|_| ()),
                    Err(_) => Ok(()),
                },
                None => attach.await.map(|_| ()),
            }
        });
        // A session given up on may never connect: only a kept one is
        // awaited before the start, so that it sees the container's output.
        if give_up.is_none() {
            let _ = tokio::time::timeout(Duration::from_secs(10), ready.wait()).await;
        }
        Some(session)
    } else {
        None
    };

    // Start; a cancelled start may or may not have started the container.
    if maybe_cancelled(&mut rng, cancel, &mut life, Step::Start, rt.start(&c))
        .await
        .transpose()
        .map_err(|e| step_error("start", e))?
        .is_none()
    {
        let status = rt
            .status(&c)
            .await
            .map_err(|e| step_error("status after a cancelled start", e))?;
        if status.status == ContainerStatus::Created {
            // The cancelled start may still be finishing (it runs to its
            // end): the retry may then find the container started.
            if let Err(e) = rt.start(&c).await {
                let now = rt
                    .status(&c)
                    .await
                    .map_err(|e| step_error("status after a second start", e))?;
                if now.status != ContainerStatus::Running {
                    return Err(step_error("start after a cancelled start", e));
                }
            }
        }
    }

    // Exec, perhaps given up on.
    if rng.percent(50) {
        let config = ExecConfig::new(["echo", "exec"]);
        let exec = async {
            let handle = rt
                .exec(
                    &c,
                    &config,
                    AttachStreams {
                        stdout: Some(Box::pin(tokio::io::sink())),
                        ..AttachStreams::default()
                    },
                    AttachOptions::default(),
                )
                .await?;
            handle.completion.await
        };
        if let Some(result) = maybe_cancelled(&mut rng, cancel, &mut life, Step::Exec, exec).await {
            let done = result.map_err(|e| step_error("exec", e))?;
            if done.exit_code != Some(0) {
                return Err(format!("exec ended {done:?}"));
            }
        }
    }

    // Stop, retried once after a cancellation.
    let stop = rt.stop(&c, Duration::from_secs(1), false);
    if maybe_cancelled(&mut rng, cancel, &mut life, Step::Stop, stop)
        .await
        .transpose()
        .map_err(|e| step_error("stop", e))?
        .is_none()
    {
        rt.stop(&c, Duration::from_secs(1), false)
            .await
            .map_err(|e| step_error("stop after a cancelled stop", e))?;
    }

    if let Some(session) = attach {
        match tokio::time::timeout(Duration::from_secs(30), session).await {
            Ok(Ok(Ok(_))) => {}
            // The container may have stopped before the attach connected.
            Ok(Ok(Err(RuntimeError::ContainerNotRunning { .. }))) => {}
            Ok(Ok(Err(e))) => return Err(step_error("attach", e)),
            Ok(Err(e)) => return Err(format!("attach task: {e}")),
            Err(_) => return Err("attach did not end after the container stopped".into()),
        }
    }

    // Delete; after a cancelled delete, the retry deletes or finds it gone.
    match maybe_cancelled(&mut rng, cancel, &mut life, Step::Delete, rt.delete(&c)).await {
        Some(result) => result.map_err(|e| step_error("delete", e))?,
        None => match rt.delete(&c).await {
            Ok(()) | Err(RuntimeError::NoSuchContainer { .. }) => {}
            Err(e) => return Err(step_error("delete after a cancelled delete", e)),
        },
    }
    drop(bundle);
    Ok(life)
}

fn can_run(runtime: &str) -> Result<(), String> {
    if !testkit::is_root() {
        return Err("the soak needs root".into());
    }
    for binary in [runtime, "conmon", "busybox"] {
        if testkit::find_binary(binary).is_none() {
            return Err(format!("{binary} is not installed"));
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = can_run(&options.runtime) {
        eprintln!("soak: cannot run: {e}");
        return ExitCode::from(2);
    }
    let tag = format!("soak{}", std::process::id());
    let base = match tempfile::Builder::new()
        .prefix(&format!("{tag}-"))
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("soak: temporary directory: {e}");
            return ExitCode::from(2);
        }
    };
    for sub in ["run", "logs", "bundles"] {
        if let Err(e) = std::fs::create_dir_all(base.path().join(sub)) {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    }
    let mut config = ConmonConfig::new(&options.runtime, base.path().join("tmp"));
    config.syslog = false;
    config.log_level = LogLevel::Warning;
    let runtime = match ConmonRuntime::new(config) {
        Ok(runtime) => Arc::new(runtime),
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let world = Arc::new(World {
        runtime,
        base: base.path().to_path_buf(),
        tag: tag.clone(),
        cancel_percent: options.cancel_percent,
    });
    println!(
        "soak: {} containers, {} at a time, runtime {}, seed {}, {}% of steps given up on",
        options.containers, options.parallel, options.runtime, options.seed, options.cancel_percent
    );

    // One life first: what opens lazily and stays (tokio's signal pipe,
    // the blocking pool, the exit watcher) is then in the baseline.
    if let Err(e) = life(Arc::clone(&world), usize::MAX, options.seed).await {
        eprintln!("soak: the warm-up life failed: {e}");
    }
    let fds_before = FdSnapshot::take();

    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(options.parallel));
    let mut lives = Vec::new();
    for index in 0..options.containers {
        let world = Arc::clone(&world);
        let slots = Arc::clone(&slots);
        let seed = options.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        lives.push(tokio::spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            life(world, index, seed).await
        }));
    }
    let mut failures = Vec::new();
    let mut done: BTreeMap<Step, usize> = BTreeMap::new();
    let mut cancelled: BTreeMap<Step, usize> = BTreeMap::new();
    for (index, handle) in lives.into_iter().enumerate() {
        match handle.await {
            Ok(Ok(life)) => {
                for step in life.done {
                    *done.entry(step).or_default() += 1;
                }
                for step in life.cancelled {
                    *cancelled.entry(step).or_default() += 1;
                }
            }
            Ok(Err(e)) => failures.push(format!("container {index}: {e}")),
            Err(e) => failures.push(format!("container {index}: task failed: {e}")),
        }
    }
    let took = started.elapsed();
    println!(
        "soak: {} lives in {:.1}s ({:.1} containers/s)",
        options.containers,
        took.as_secs_f64(),
        options.containers as f64 / took.as_secs_f64()
    );
    println!("soak: steps completed {done:?}");
    println!("soak: steps given up on {cancelled:?}");

    // The driver goes first: what it holds for its whole life (the exit
    // watchers' inotify instances) is closed with it, and anything still
    // open after that is a leak.
    drop(world);
    let audit = Audit::new(tag.clone(), &fds_before)
        .runtime(options.runtime.clone())
        .dirs([
            base.path().join("tmp/exits"),
            base.path().join("tmp/persist"),
            base.path().join("run"),
        ]);
    let left = audit.settled(Duration::from_secs(10)).await;
    println!(
        "soak: audit: {} fds open (baseline {}), {} kinds of leftovers",
        FdSnapshot::take().len(),
        fds_before.len(),
        left.len()
    );
    for line in &left {
        println!("soak: left: {line}");
    }
    for failure in &failures {
        println!("soak: failed: {failure}");
    }
    if left.is_empty() && failures.is_empty() {
        println!("soak: audit: clean");
        ExitCode::SUCCESS
    } else {
        audit.scrub().await;
        println!(
            "soak: {} failures, {} kinds of leftovers",
            failures.len(),
            left.len()
        );
        ExitCode::FAILURE
    }
}
