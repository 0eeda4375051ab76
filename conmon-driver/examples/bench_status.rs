//! The state of N running containers (default 200): the driver's `status`
//! against `runc state` for each, wall time of all N and how many processes
//! were run for them, with ratios from one run.
//!
//! ```text
//! cargo build --release -p conmon-driver --examples
//! target/release/examples/bench_status [--containers 200] [--rounds 5] [--quick]
//! ```
//!
//! N containers of `sleep` (bundle directories of their own over one root
//! filesystem) are created and started through the driver, all at once,
//! from one multi-threaded tokio runtime. Contenders, alternated within
//! each round (the order rotates from round to round):
//!
//! - `runc state` of each container, one after the other (the baseline);
//! - `runc state` of all N at once;
//! - the driver's `status` of each, one after the other;
//! - the driver's `status` of all N at once;
//! - the driver's `status` of each, one after the other, with the records
//!   of the started init processes set aside: what status costs where it
//!   must ask the runtime (as it did for every running container before
//!   it kept those records).
//!
//! Every answer is checked: running, with the init pid the create
//! reported. Printed: wall time of the N answers (ratio to the baseline's;
//! 0.10 is ten times faster), the runtime processes each contender ran
//! per container (the driver's own count of its runtime commands; one per
//! `runc state`), and the CPU time of the benchmark and all it started
//! over it (counted in a cgroup of its own; the containers' own processes,
//! in their cgroups, are not). The containers are
//! deleted at the end (`delete_force`, which kills them), also when a
//! measurement failed.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bench_support::{
    all_at_once, all_ok, describe, print_durations, print_figures, raise_fd_limit, runc, verdict,
    BoxError, Bundles, Counters, CpuAccount, Marks, Options, Samples,
};
use conmon_driver::{ConmonRuntime, ContainerLayout, RUNNING_THE_RUNTIME};
use runtime_api::{ContainerDescription, ContainerStatus, CreateOptions, OciRuntime};
use state_probe::{parse_state, RuntimeStatus};

/// A running container and the init pid its create reported.
#[derive(Clone)]
struct Running {
    c: Arc<ContainerDescription>,
    pid: i32,
}

/// Creates and starts a container of `bundle`; deletes it when the start
/// failed.
async fn start_one(
    runtime: Arc<ConmonRuntime>,
    work: PathBuf,
    bundle: PathBuf,
    name: String,
) -> Result<Running, BoxError> {
    let c = describe(&work, &bundle, &name)?;
    let created = runtime.create(&c, CreateOptions::default()).await?;
    if let Err(e) = runtime.start(&c).await {
        let _ = runtime.delete_force(&c).await;
        return Err(e.into());
    }
    let pid = created.pid.ok_or("no pid from create")?;
    Ok(Running {
        c: Arc::new(c),
        pid,
    })
}

/// The driver's answer for `r`, checked.
async fn driver_status(runtime: Arc<ConmonRuntime>, r: Running) -> Result<(), BoxError> {
    let state = runtime.status(&r.c).await?;
    if state.status != ContainerStatus::Running || state.pid != Some(r.pid) {
        return Err(format!("{}: {state:?}, expected running as {}", r.c.id(), r.pid).into());
    }
    Ok(())
}

/// runc's answer for `r`, checked.
async fn runc_state(r: Running) -> Result<(), BoxError> {
    let state = parse_state(&runc(&["state", r.c.id().as_str()]).await?)?;
    if state.status != RuntimeStatus::Running || state.pid != r.pid {
        return Err(format!("{}: {state:?}, expected running as {}", r.c.id(), r.pid).into());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    RuncSequential,
    RuncAtOnce,
    DriverSequential,
    DriverAtOnce,
    DriverWithoutRecords,
}

/// One measurement: the wall time, the driver's runtime commands and the
/// machine's counters over it.
async fn measure(
    contender: Contender,
    account: Option<&CpuAccount>,
    runtime: &Arc<ConmonRuntime>,
    marks: &Marks,
    fleet: &[Running],
) -> Result<(f64, usize, Counters), BoxError> {
    let layouts: Vec<ContainerLayout> = fleet
        .iter()
        .map(|r| ContainerLayout::new(runtime.config(), &r.c))
        .collect();
    if contender == Contender::DriverWithoutRecords {
        for layout in &layouts {
            let record = layout.running_record();
            std::fs::rename(&record, record.with_extension("aside"))?;
        }
    }
    marks.take();
    let counters = Counters::now(account)?;
    let began = Instant::now();
    let measured = async {
        match contender {
            Contender::RuncSequential => {
                for r in fleet {
                    runc_state(r.clone()).await?;
                }
            }
            Contender::RuncAtOnce => {
                all_ok("runc state", all_at_once(fleet.to_vec(), runc_state).await)?;
            }
            Contender::DriverSequential | Contender::DriverWithoutRecords => {
                for r in fleet {
                    driver_status(Arc::clone(runtime), r.clone()).await?;
                }
            }
            Contender::DriverAtOnce => {
                all_ok(
                    "status",
                    all_at_once(fleet.to_vec(), |r| driver_status(Arc::clone(runtime), r)).await,
                )?;
            }
        }
        Ok::<_, BoxError>(())
    }
    .await;
    let took = began.elapsed().as_secs_f64();
    let counters = Counters::now(account)?.since(&counters);
    let commands = Marks::count(&marks.take(), RUNNING_THE_RUNTIME);
    if contender == Contender::DriverWithoutRecords {
        for layout in &layouts {
            let record = layout.running_record();
            std::fs::rename(record.with_extension("aside"), &record)?;
        }
    }
    measured?;
    Ok((took, commands, counters))
}

/// The measurements, once the fleet runs.
async fn rounds(
    options: &Options,
    account: Option<&CpuAccount>,
    runtime: &Arc<ConmonRuntime>,
    marks: &Marks,
    fleet: &[Running],
) -> Result<(), BoxError> {
    let count = fleet.len();
    let contenders = [
        (Contender::RuncSequential, "runc state, one after the other"),
        (Contender::RuncAtOnce, "runc state, all at once"),
        (
            Contender::DriverSequential,
            "driver status, one after the other",
        ),
        (Contender::DriverAtOnce, "driver status, all at once"),
        (
            Contender::DriverWithoutRecords,
            "driver status asking the runtime, one after the other",
        ),
    ];
    let mut times: Vec<Samples> = contenders
        .iter()
        .map(|(_, name)| Samples::new(format!("{name} (x{count})")))
        .collect();
    let mut commands: Vec<Samples> = contenders
        .iter()
        .map(|(_, name)| Samples::new(*name))
        .collect();
    let mut cpu: Vec<Samples> = contenders
        .iter()
        .map(|(_, name)| Samples::new(*name))
        .collect();
    for round in 0..options.rounds {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        order.rotate_left(round % contenders.len());
        for i in order {
            let (took, ran, counters) =
                measure(contenders[i].0, account, runtime, marks, fleet).await?;
            times[i].push_secs(took);
            let runtime_processes = match contenders[i].0 {
                Contender::RuncSequential | Contender::RuncAtOnce => count,
                _ => ran,
            };
            commands[i].push_secs(runtime_processes as f64);
            cpu[i].push_secs(counters.tree_cpu * 1e3);
        }
    }
    println!(
        "state of {count} running containers: {} round(s); ratio = median / the baseline's median",
        options.rounds
    );
    print_durations(
        &format!("wall time of {count} answers"),
        &times.iter().collect::<Vec<_>>(),
    );
    let figures = |samples: &[Samples]| -> Vec<(String, f64)> {
        samples
            .iter()
            .map(|s| (s.name.clone(), s.median()))
            .collect()
    };
    for (title, samples, unit) in [
        (
            format!("runtime processes run for the {count} answers (median)"),
            &commands,
            "",
        ),
        (
            format!(
                "CPU time of this process and all it started over the {count} answers (median)"
            ),
            &cpu,
            "ms",
        ),
    ] {
        let rows = figures(samples);
        print_figures(
            &title,
            &rows
                .iter()
                .map(|(name, value)| (name.as_str(), *value, unit))
                .collect::<Vec<_>>(),
        );
    }
    let speed_up = times[0].median() / times[2].median().max(f64::MIN_POSITIVE);
    println!("targets");
    println!(
        "  no runtime process for a running container the driver started: {} ({} run for {count} statuses)",
        verdict(commands[2].max() == 0.0 && commands[3].max() == 0.0),
        commands[2].max().max(commands[3].max())
    );
    println!(
        "  {count} statuses >= 10x faster than {count} runc state calls: {} ({speed_up:.0}x)",
        verdict(speed_up >= 10.0)
    );
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let options = Options::parse(5).map_err(|e| format!("bench_status: {e}"))?;
    let count: usize = options.number("containers", if options.quick { 5 } else { 200 })?;
    raise_fd_limit()?;
    // Before any thread or child: the CPU time of everything started from
    // here on is counted (containers' own processes excepted).
    let account = CpuAccount::new("bench-status")?;
    let marks = Marks::new(&[RUNNING_THE_RUNTIME]);
    marks.install()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let bundles = Bundles::new(count, &["sleep", "100000"])?;
    let runtime = Arc::new(bench_support::runtime(work.path())?);

    let jobs: Vec<_> = bundles
        .paths()
        .iter()
        .enumerate()
        .map(|(i, bundle)| {
            (
                Arc::clone(&runtime),
                work.path().to_path_buf(),
                bundle.clone(),
                format!("status-{i}"),
            )
        })
        .collect();
    let started = tokio.block_on(all_at_once(jobs, |(runtime, work, bundle, name)| {
        start_one(runtime, work, bundle, name)
    }));
    let fleet: Vec<Running> = started
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .cloned()
        .collect();
    let measured = match all_ok("create and start", started) {
        Ok(_) => tokio.block_on(rounds(&options, account.as_ref(), &runtime, &marks, &fleet)),
        Err(e) => Err(e),
    };
    // The containers go whatever happened (a forced delete kills them).
    let deleted = tokio.block_on(all_at_once(fleet, |r| {
        let runtime = Arc::clone(&runtime);
        async move {
            runtime.delete_force(&r.c).await?;
            if let Some(log) = &r.c.log().path {
                let _ = std::fs::remove_file(log);
            }
            Ok(())
        }
    }));
    measured?;
    all_ok("delete", deleted)?;
    Ok(())
}
