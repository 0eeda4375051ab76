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
//!
//! Printed: containers per second (ratio to `runc run`'s); the driver's
//! peak resident memory during the round (the peak is reset before it),
//! its descriptors before the round, at the most during it (sampled every
//! 10 ms) and after it; and where the time goes: the phases' medians and
//! maxima across the containers of a round, the processes the driver ran
//! per container (runtime commands, conmon launches), CPU time per
//! container (the driver process itself, the children it reaped, and the
//! whole machine, whose busy time and process creations include other
//! users' work) for both contenders.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::{
    all_at_once, all_ok, describe, open_fds, peak_rss_kib, print_durations, print_figures,
    print_rates, raise_fd_limit, reset_peak_rss, rss_kib, runc, verdict, BoxError, Bundles,
    Counters, Marks, Options, Samples,
};
use conmon_driver::{ConmonRuntime, RUNNING_THE_RUNTIME};
use runtime_api::{CreateOptions, OciRuntime};

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
    marks: &Marks,
    work: &std::path::Path,
    bundles: &Bundles,
    round: usize,
) -> Result<DriverRound, BoxError> {
    let fds_before = open_fds()?;
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
    let counters = Counters::now()?;
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
    let counters = Counters::now()?.since(&counters);
    let peak_rss_kib = peak_rss_kib()?;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let fds_peak = sampler.await?;
    let marked = marks.take();
    let phases = all_ok("driver lifecycles", results)?;
    Ok(DriverRound {
        took,
        phases,
        peak_rss_kib,
        fds_before,
        fds_peak,
        fds_after: open_fds()?,
        counters,
        runtime_commands: Marks::count(&marked, RUNNING_THE_RUNTIME),
        conmon_launches: Marks::count(&marked, SPAWNING),
    })
}

/// N `runc run` at once; the wall time and the counters. Containers of
/// runs that failed are deleted before the error is returned.
async fn runc_round(bundles: &Bundles, round: usize) -> Result<(Duration, Counters), BoxError> {
    let ids: Vec<String> = (0..bundles.paths().len())
        .map(|i| format!("scale-r{round}-{i}-{}", std::process::id()))
        .collect();
    let jobs: Vec<(String, PathBuf)> = ids
        .iter()
        .cloned()
        .zip(bundles.paths().iter().cloned())
        .collect();
    let counters = Counters::now()?;
    let began = Instant::now();
    let results = all_at_once(jobs, |(id, bundle)| async move {
        let bundle = bundle
            .to_str()
            .ok_or("bundle path is not UTF-8")?
            .to_string();
        runc(&["run", "--bundle", &bundle, &id]).await.map(drop)
    })
    .await;
    let took = began.elapsed();
    let counters = Counters::now()?.since(&counters);
    if results.iter().any(Result::is_err) {
        for (id, result) in ids.iter().zip(&results) {
            if result.is_err() {
                let _ = runc(&["delete", "--force", id]).await;
            }
        }
    }
    all_ok("runc run", results)?;
    Ok((took, counters))
}

fn main() -> Result<(), BoxError> {
    let options = Options::parse(3).map_err(|e| format!("bench_scale: {e}"))?;
    let count: usize = options.number("containers", if options.quick { 5 } else { 200 })?;
    let fd_limit = raise_fd_limit()?;
    let marks = Marks::new(&[RUNNING_THE_RUNTIME, SPAWNING]);
    marks.install()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let bundles = Bundles::new(count, &["true"])?;
    let runtime = Arc::new(bench_support::runtime(work.path())?);

    // One lifecycle first: what the driver sets up once (its inotify
    // instance, the reader task) is not counted as growth.
    let warm_up = bundles.paths().first().ok_or("no bundle")?.clone();
    tokio.block_on(lifecycle(
        Arc::clone(&runtime),
        work.path().to_path_buf(),
        warm_up,
        "scale-warm-up".into(),
    ))?;
    let rss_idle_kib = rss_kib()?;

    let mut driver = Samples::new(format!("driver create+start+wait+delete, {count} at once"));
    let mut runc_run = Samples::new(format!("runc run, {count} at once"));
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
    let mut per_container = [
        Samples::new("driver: runtime commands run by the driver"),
        Samples::new("driver: conmon launches"),
        Samples::new("driver: CPU ms of the driver process"),
        Samples::new("driver: CPU ms of the driver's reaped children"),
        Samples::new("driver: CPU ms of the machine"),
        Samples::new("driver: processes and threads created on the machine"),
        Samples::new("runc run: CPU ms of the machine"),
        Samples::new("runc run: processes and threads created on the machine"),
        Samples::new("runc run: CPU ms of its reaped processes"),
    ];
    let n = count as f64;
    for round in 0..options.rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for by_driver in order {
            if by_driver {
                let r =
                    tokio.block_on(driver_round(&runtime, &marks, work.path(), &bundles, round))?;
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
                per_container[0].push_secs(r.runtime_commands as f64 / n);
                per_container[1].push_secs(r.conmon_launches as f64 / n);
                per_container[2].push_secs(r.counters.own_cpu * 1e3 / n);
                per_container[3].push_secs(r.counters.children_cpu * 1e3 / n);
                per_container[4].push_secs(r.counters.machine_cpu * 1e3 / n);
                per_container[5].push_secs(r.counters.forks as f64 / n);
            } else {
                let (took, counters) = tokio.block_on(runc_round(&bundles, round))?;
                runc_run.push(took);
                per_container[6].push_secs(counters.machine_cpu * 1e3 / n);
                per_container[7].push_secs(counters.forks as f64 / n);
                per_container[8].push_secs(counters.children_cpu * 1e3 / n);
            }
        }
    }

    println!(
        "{count} container lifecycles of `true` at once: {} round(s); ratio = rate / runc run's rate",
        options.rounds
    );
    print_rates("throughput", count, "containers", &[&runc_run, &driver]);
    let mut rows = vec![&driver];
    rows.extend(phase_medians.iter());
    rows.extend(phase_maxima.iter());
    print_durations(
        "where the driver's time goes (ratio to the whole round)",
        &rows,
    );
    print_figures(
        "per container (medians over the rounds; machine figures include other users' work)",
        &per_container
            .iter()
            .map(|s| (s.name.as_str(), s.median(), ""))
            .collect::<Vec<_>>(),
    );
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
