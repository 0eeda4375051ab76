//! Many whole lifecycles at once: N containers of `true` (default 200),
//! each created, started, awaited and deleted by the driver, all at the
//! same time from one tokio runtime, against N `runc run` started at once;
//! containers per second with ratios from one run, the driver's peak
//! resident memory and open descriptors, and where the time goes.
//!
//! ```text
//! cargo build --release -p conmon-driver --examples
//! target/release/examples/bench_scale [--containers 200] [--rounds 3] [--quick]
//! ```
//!
//! Every container has a bundle directory of its own (conmon puts its
//! attach socket and ctl FIFO there) over one shared root filesystem.
//! Contenders, alternated within each round (the order rotates from round
//! to round):
//!
//! - `driver`: one multi-threaded tokio runtime (a worker per CPU) runs N
//!   tasks, each `create`, `start`, `wait`, `delete` of its container.
//! - `runc run`: N `runc run --bundle B ID` processes started at once from
//!   the same runtime, each awaited (bounded).
//! - `by hand`: the driver's runtime calls without the driver or conmon, N
//!   at once: `runc create --pid-file`, `runc start`, a pidfd wait for the
//!   init process, `runc delete`. The floor of any engine that creates and
//!   starts in two runtime calls, as podman and this driver do.
//!
//! Printed: containers per second (ratio to `runc run`'s); the driver's
//! peak resident memory during the round (the peak is reset before it),
//! its descriptors before the round, at the most during it (sampled every
//! 10 ms) and after it (naming any new one), counted from a warm-up that
//! made what the driver makes once; and where the time goes: the phases' medians and
//! maxima across the containers of a round, the processes the driver ran
//! per container (runtime commands, conmon launches), and CPU time per
//! container on the engine side for every contender: this process and all
//! it started, counted in a cgroup of its own (a container's own processes,
//! which runc moves to the container's cgroup, are not), split for the
//! driver into its own process, the runtime commands it ran and reaped,
//! and the rest (conmon, and the `runc create` conmon runs); with the
//! machine's busy cores over each contender (other users' work included).
//! On saturated cores, throughput follows CPU time per container.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::{
    all_at_once, all_ok, describe, fd_targets, open_fds, peak_rss_kib, print_durations,
    print_figures, print_rates, raise_fd_limit, reset_peak_rss, rss_kib, runc, verdict, BoxError,
    Bundles, Counters, CpuAccount, Marks, Options, Samples, RUNC_LIMIT,
};
use conmon_driver::{ConmonRuntime, RUNNING_THE_RUNTIME};
use runtime_api::{CreateOptions, OciRuntime, RuntimeError, Signal};
use state_probe::PidFd;

/// The driver's debug event of each conmon launch.
const SPAWNING: &str = "spawning conmon";

/// How long one container may take to exit once started.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// One container's phases: create, start, wait, delete.
type Phases = [Duration; 4];

/// One lifecycle through the driver; whatever failed after the create,
/// the container is deleted.
async fn lifecycle(
    runtime: Arc<ConmonRuntime>,
    work: PathBuf,
    bundle: PathBuf,
    name: String,
) -> Result<Phases, BoxError> {
    let c = describe(&work, &bundle, &name)?;
    let began = Instant::now();
    runtime.create(&c, CreateOptions::default()).await?;
    let created = Instant::now();
    let ran = async {
        runtime.start(&c).await?;
        let started = Instant::now();
        let code = runtime.wait(&c, WAIT_LIMIT).await?;
        if code != 0 {
            return Err(format!("container {} exited with {code}", c.id()).into());
        }
        Ok::<_, BoxError>((started, Instant::now()))
    }
    .await;
    let deleted = runtime.delete(&c).await;
    if let Some(log) = &c.log().path {
        let _ = std::fs::remove_file(log);
    }
    let (started, exited) = ran?;
    deleted?;
    let done = Instant::now();
    Ok([
        created - began,
        started - created,
        exited - started,
        done - exited,
    ])
}

/// Sets up what the driver makes once, with one container that runs until
/// killed.
async fn warm_up(runtime: Arc<ConmonRuntime>, work: &std::path::Path) -> Result<(), BoxError> {
    let bundle = Bundles::new(1, &["sleep", "100000"])?;
    let c = describe(work, &bundle.paths()[0], "scale-warm-up")?;
    runtime.create(&c, CreateOptions::default()).await?;
    let awaited = async {
        runtime.start(&c).await?;
        match runtime.wait(&c, Duration::from_millis(10)).await {
            Err(RuntimeError::Timeout { .. }) => {}
            other => return Err(format!("the warm-up container did not run: {other:?}").into()),
        }
        runtime.kill(&c, Signal::KILL, false).await?;
        runtime.wait(&c, WAIT_LIMIT).await?;
        Ok::<_, BoxError>(())
    }
    .await;
    let deleted = runtime.delete_force(&c).await;
    if let Some(log) = &c.log().path {
        let _ = std::fs::remove_file(log);
    }
    awaited?;
    Ok(deleted?)
}

/// The machine's busy cores over a measurement (others' work included).
fn load(counters: &Counters, took: Duration) -> f64 {
    counters.machine_cpu / took.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Per-container figures, one sample per round.
struct PerContainer {
    runtime_commands: Samples,
    conmon_launches: Samples,
    driver_tree: Samples,
    driver_own: Samples,
    driver_children: Samples,
    driver_rest: Samples,
    driver_load: Samples,
    runc_run: Samples,
    runc_run_load: Samples,
    by_hand: Samples,
    by_hand_load: Samples,
}

impl Default for PerContainer {
    fn default() -> Self {
        PerContainer {
            runtime_commands: Samples::new("driver: runtime commands it ran"),
            conmon_launches: Samples::new("driver: conmon launches"),
            driver_tree: Samples::new("driver: CPU ms, engine side"),
            driver_own: Samples::new("driver:   of which the driver process"),
            driver_children: Samples::new("driver:   of which the runtime commands it ran"),
            driver_rest: Samples::new("driver:   of which conmon and the runc create it runs"),
            driver_load: Samples::new("driver: busy cores of the machine"),
            runc_run: Samples::new("runc run: CPU ms, engine side"),
            runc_run_load: Samples::new("runc run: busy cores of the machine"),
            by_hand: Samples::new("by hand: CPU ms, engine side"),
            by_hand_load: Samples::new("by hand: busy cores of the machine"),
        }
    }
}

impl PerContainer {
    fn driver(&mut self, r: &DriverRound, n: f64) {
        let c = &r.counters;
        self.runtime_commands
            .push_secs(r.runtime_commands as f64 / n);
        self.conmon_launches.push_secs(r.conmon_launches as f64 / n);
        self.driver_tree.push_secs(c.tree_cpu * 1e3 / n);
        self.driver_own.push_secs(c.own_cpu * 1e3 / n);
        self.driver_children.push_secs(c.children_cpu * 1e3 / n);
        self.driver_rest
            .push_secs((c.tree_cpu - c.own_cpu - c.children_cpu) * 1e3 / n);
        self.driver_load.push_secs(load(c, r.took));
    }

    fn print(&self) {
        let rows: Vec<(&str, f64, &str)> = [
            (&self.runtime_commands, ""),
            (&self.conmon_launches, ""),
            (&self.driver_tree, "ms"),
            (&self.driver_own, "ms"),
            (&self.driver_children, "ms"),
            (&self.driver_rest, "ms"),
            (&self.runc_run, "ms"),
            (&self.by_hand, "ms"),
            (&self.driver_load, ""),
            (&self.runc_run_load, ""),
            (&self.by_hand_load, ""),
        ]
        .into_iter()
        .map(|(s, unit)| (s.name.as_str(), s.median(), unit))
        .collect();
        print_figures(
            "per container (medians over the rounds; CPU of the engine side: this process and \
             all it started, not the containers' own processes; busy cores include other users' work)",
            &rows,
        );
    }
}

/// What one driver round measured.
struct DriverRound {
    took: Duration,
    phases: Vec<Phases>,
    peak_rss_kib: u64,
    fds_before: usize,
    fds_peak: usize,
    fds_after: usize,
    counters: Counters,
    runtime_commands: usize,
    conmon_launches: usize,
}

async fn driver_round(
    runtime: &Arc<ConmonRuntime>,
    account: Option<&CpuAccount>,
    marks: &Marks,
    work: &std::path::Path,
    bundles: &Bundles,
    round: usize,
) -> Result<DriverRound, BoxError> {
    let fds_before = open_fds()?;
    let targets_before = fd_targets()?;
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                peak = peak.max(open_fds().unwrap_or(0));
            }
            peak
        })
    };
    marks.take();
    reset_peak_rss()?;
    let counters = Counters::now(account)?;
    let began = Instant::now();
    let jobs: Vec<_> = bundles
        .paths()
        .iter()
        .enumerate()
        .map(|(i, bundle)| {
            (
                Arc::clone(runtime),
                work.to_path_buf(),
                bundle.clone(),
                format!("scale-d{round}-{i}"),
            )
        })
        .collect();
    let results = all_at_once(jobs, |(runtime, work, bundle, name)| {
        lifecycle(runtime, work, bundle, name)
    })
    .await;
    let took = began.elapsed();
    let counters = Counters::now(account)?.since(&counters);
    let peak_rss_kib = peak_rss_kib()?;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let fds_peak = sampler.await?;
    let marked = marks.take();
    let phases = all_ok("driver lifecycles", results)?;
    let fds_after = open_fds()?;
    if fds_after > fds_before {
        for (fd, target) in fd_targets()? {
            if targets_before.get(&fd) != Some(&target) {
                println!("round {round}: fd {fd} ({target}) is new after the round");
            }
        }
    }
    Ok(DriverRound {
        took,
        phases,
        peak_rss_kib,
        fds_before,
        fds_peak,
        fds_after,
        counters,
        runtime_commands: Marks::count(&marked, RUNNING_THE_RUNTIME),
        conmon_launches: Marks::count(&marked, SPAWNING),
    })
}

/// `runc ARGS` with stdin, stdout and stderr on /dev/null (a container
/// created this way inherits them), bounded by [`RUNC_LIMIT`].
async fn runc_detached(args: &[&str]) -> Result<(), BoxError> {
    let mut child = tokio::process::Command::new("runc")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let status = tokio::time::timeout(RUNC_LIMIT, child.wait())
        .await
        .map_err(|_| format!("runc {args:?} took longer than {RUNC_LIMIT:?}"))??;
    if !status.success() {
        return Err(format!("runc {args:?}: {status}").into());
    }
    Ok(())
}

/// One lifecycle through runc's CLI alone: create, start, the init
/// process's exit on a pidfd, delete.
async fn by_hand(work: PathBuf, id: String, bundle: PathBuf) -> Result<(), BoxError> {
    let bundle = bundle
        .to_str()
        .ok_or("bundle path is not UTF-8")?
        .to_string();
    let pidfile = work.join(format!("{id}.pid"));
    let pidfile_arg = pidfile
        .to_str()
        .ok_or("work path is not UTF-8")?
        .to_string();
    runc_detached(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        &pidfile_arg,
        &id,
    ])
    .await?;
    let pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
    let init = PidFd::open(pid)?;
    runc(&["start", &id]).await?;
    if let Some(init) = init {
        if !init.exited(WAIT_LIMIT).await? {
            return Err(format!("container {id} did not exit within {WAIT_LIMIT:?}").into());
        }
    }
    runc(&["delete", &id]).await?;
    std::fs::remove_file(&pidfile)?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Driver,
    RuncRun,
    ByHand,
}

/// N lifecycles at once through runc alone (`runc run`, or by hand); the
/// wall time and the counters. Containers of lifecycles that failed are
/// deleted before the error is returned.
async fn runc_round(
    contender: Contender,
    account: Option<&CpuAccount>,
    work: &std::path::Path,
    bundles: &Bundles,
    round: usize,
) -> Result<(Duration, Counters), BoxError> {
    let tag = if contender == Contender::RuncRun {
        "r"
    } else {
        "h"
    };
    let ids: Vec<String> = (0..bundles.paths().len())
        .map(|i| format!("scale-{tag}{round}-{i}-{}", std::process::id()))
        .collect();
    let jobs: Vec<(String, PathBuf)> = ids
        .iter()
        .cloned()
        .zip(bundles.paths().iter().cloned())
        .collect();
    let counters = Counters::now(account)?;
    let began = Instant::now();
    let results = all_at_once(jobs, |(id, bundle)| {
        let work = work.to_path_buf();
        async move {
            if contender == Contender::RuncRun {
                let bundle = bundle
                    .to_str()
                    .ok_or("bundle path is not UTF-8")?
                    .to_string();
                runc(&["run", "--bundle", &bundle, &id]).await.map(drop)
            } else {
                by_hand(work, id, bundle).await
            }
        }
    })
    .await;
    let took = began.elapsed();
    let counters = Counters::now(account)?.since(&counters);
    if results.iter().any(Result::is_err) {
        for (id, result) in ids.iter().zip(&results) {
            if result.is_err() {
                let _ = runc(&["delete", "--force", id]).await;
            }
        }
    }
    all_ok(
        if contender == Contender::RuncRun {
            "runc run"
        } else {
            "by hand"
        },
        results,
    )?;
    Ok((took, counters))
}

fn main() -> Result<(), BoxError> {
    let options = Options::parse(3).map_err(|e| format!("bench_scale: {e}"))?;
    let count: usize = options.number("containers", if options.quick { 5 } else { 200 })?;
    let fd_limit = raise_fd_limit()?;
    // Before any thread or child: every process started from here on is
    // counted, until runc moves a container's own processes out.
    let account = CpuAccount::new("bench-scale")?;
    let marks = Marks::new(&[RUNNING_THE_RUNTIME, SPAWNING]);
    marks.install()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let bundles = Bundles::new(count, &["true"])?;
    let runtime = Arc::new(bench_support::runtime(work.path())?);

    // What the driver sets up once is made before any count: the exit
    // watcher's inotify instance comes with the first wait that has to wait
    // (a container of `true` may be gone before its wait begins), so a
    // running container is awaited briefly, then killed, awaited and
    // deleted.
    tokio.block_on(warm_up(Arc::clone(&runtime), work.path()))?;
    let rss_idle_kib = rss_kib()?;

    let mut driver = Samples::new(format!("driver create+start+wait+delete, {count} at once"));
    let mut runc_run = Samples::new(format!("runc run, {count} at once"));
    let mut hand = Samples::new(format!(
        "by hand: runc create+start+delete, {count} at once"
    ));
    let phase_names = ["create", "start", "wait", "delete"];
    let mut phase_medians: Vec<Samples> = phase_names
        .iter()
        .map(|p| Samples::new(format!("driver {p}: median over the containers")))
        .collect();
    let mut phase_maxima: Vec<Samples> = phase_names
        .iter()
        .map(|p| Samples::new(format!("driver {p}: slowest container")))
        .collect();
    let mut peak_rss = Samples::new("peak RSS");
    let mut fds = (
        Samples::new("before"),
        Samples::new("peak"),
        Samples::new("after"),
    );
    let mut fd_growth = 0i64;
    let mut per_container = PerContainer::default();
    let n = count as f64;
    for round in 0..options.rounds {
        let mut order = [Contender::RuncRun, Contender::Driver, Contender::ByHand];
        let turn = round % order.len();
        order.rotate_left(turn);
        for contender in order {
            if contender == Contender::Driver {
                let r = tokio.block_on(driver_round(
                    &runtime,
                    account.as_ref(),
                    &marks,
                    work.path(),
                    &bundles,
                    round,
                ))?;
                driver.push(r.took);
                for (i, samples) in phase_medians.iter_mut().enumerate() {
                    let mut of_phase = Samples::new("");
                    for phases in &r.phases {
                        of_phase.push(phases[i]);
                    }
                    samples.push_secs(of_phase.median());
                    phase_maxima[i].push_secs(of_phase.max());
                }
                peak_rss.push_secs(r.peak_rss_kib as f64);
                fds.0.push_secs(r.fds_before as f64);
                fds.1.push_secs(r.fds_peak as f64);
                fds.2.push_secs(r.fds_after as f64);
                fd_growth = fd_growth.max(r.fds_after as i64 - r.fds_before as i64);
                per_container.driver(&r, n);
            } else {
                let (took, counters) = tokio.block_on(runc_round(
                    contender,
                    account.as_ref(),
                    work.path(),
                    &bundles,
                    round,
                ))?;
                if contender == Contender::RuncRun {
                    runc_run.push(took);
                    per_container
                        .runc_run
                        .push_secs(counters.tree_cpu * 1e3 / n);
                    per_container.runc_run_load.push_secs(load(&counters, took));
                } else {
                    hand.push(took);
                    per_container.by_hand.push_secs(counters.tree_cpu * 1e3 / n);
                    per_container.by_hand_load.push_secs(load(&counters, took));
                }
            }
        }
    }

    println!(
        "{count} container lifecycles of `true` at once: {} round(s); ratio = rate / runc run's rate",
        options.rounds
    );
    print_rates(
        "throughput",
        count,
        "containers",
        &[&runc_run, &driver, &hand],
    );
    let mut rows = vec![&driver];
    rows.extend(phase_medians.iter());
    rows.extend(phase_maxima.iter());
    print_durations(
        "where the driver's time goes (ratio to the whole round)",
        &rows,
    );
    per_container.print();
    print_figures(
        "the driver process",
        &[
            (
                "RSS when idle, after one lifecycle",
                rss_idle_kib as f64 / 1024.0,
                "MiB",
            ),
            (
                "peak RSS during a round (median)",
                peak_rss.median() / 1024.0,
                "MiB",
            ),
            (
                "peak RSS during a round (max)",
                peak_rss.max() / 1024.0,
                "MiB",
            ),
            ("open fds before a round (median)", fds.0.median(), ""),
            ("open fds at the most during a round (max)", fds.1.max(), ""),
            ("open fds after a round (median)", fds.2.median(), ""),
            (
                "largest growth of open fds over a round",
                fd_growth as f64,
                "",
            ),
            ("file limit", fd_limit as f64, ""),
        ],
    );
    let rate_ratio = runc_run.median() / driver.median().max(f64::MIN_POSITIVE);
    println!(
        "  engine CPU per container, runc run's / the driver's: {:.2}; by hand's / the driver's: {:.2} \
         (on saturated cores, the rate ratios these allow)",
        per_container.runc_run.median() / per_container.driver_tree.median(),
        per_container.by_hand.median() / per_container.driver_tree.median(),
    );
    println!("targets");
    println!(
        "  containers/s >= 0.8x runc run's: {} ({rate_ratio:.2}x)",
        verdict(rate_ratio >= 0.8)
    );
    println!(
        "  driver RSS <= 40 MB: {} (peak {:.1} MB)",
        verdict(peak_rss.max() * 1024.0 <= 40e6),
        peak_rss.max() * 1024.0 / 1e6
    );
    println!(
        "  no fd growth: {} (largest growth {fd_growth})",
        verdict(fd_growth <= 0)
    );
    Ok(())
}
