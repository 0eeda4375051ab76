//! How long `stop` takes to return once the container's process died, for
//! a container that exits on SIGTERM and for one that ignores it (stop
//! timeout 1 s, then SIGKILL), against a hand-written stop in the same run.
//!
//! ```text
//! cargo build --release -p conmon-driver --examples
//! target/release/examples/bench_stop [--rounds 10] [--quick]
//! ```
//!
//! Each measurement starts a fresh container (its init pid known from
//! `create`) and opens a pidfd on that pid; a thread blocked in `poll` on
//! it stamps the moment the process died. Contenders, alternated within
//! each round:
//!
//! - `floor`: `runc kill ID TERM`, a `poll` on a pidfd of the process
//!   (for at most the timeout), then `runc kill ID KILL` and a `poll` again
//!   when it still lives;
//! - `driver`: `ConmonRuntime::stop(container, timeout, false)`.
//!
//! Printed: the time from the process's death to the contender's return
//! (ratio to the floor's), and the whole stop (ratio to the floor's).

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench_support::{describe, print_durations, BoxError, Options, Samples};
use conmon_driver::ConmonRuntime;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runtime_api::{ContainerDescription, CreateOptions, OciRuntime};
use testkit::BundleBuilder;

/// A pidfd on `pid`.
fn pidfd(pid: i32) -> Result<OwnedFd, BoxError> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or("pid 0")?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Waits until the process of `fd` died or `limit` passed; whether it died.
fn died_within(fd: &OwnedFd, limit: Option<Duration>) -> Result<bool, BoxError> {
    let timeout = match limit {
        Some(limit) => PollTimeout::try_from(limit).map_err(|e| format!("{e:?}"))?,
        None => PollTimeout::NONE,
    };
    let mut polled = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    Ok(poll(&mut polled, timeout)? > 0)
}

/// A thread that stamps the death of `pid`.
fn death_watch(pid: i32) -> Result<std::thread::JoinHandle<Result<Instant, String>>, BoxError> {
    let fd = pidfd(pid)?;
    Ok(std::thread::spawn(move || {
        died_within(&fd, None).map_err(|e| e.to_string())?;
        Ok(Instant::now())
    }))
}

/// `runc kill ID SIGNAL`; its exit status does not matter (the process
/// may have died in between).
fn runc_kill(id: &str, signal: &str) -> Result<(), BoxError> {
    Command::new("runc")
        .args(["kill", id, signal])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(())
}

/// Creates and starts a container of `bundle`; its init pid.
async fn running(
    runtime: &ConmonRuntime,
    work: &Path,
    bundle: &Path,
    name: &str,
) -> Result<(ContainerDescription, i32), BoxError> {
    let c = describe(work, bundle, name)?;
    let created = runtime.create(&c, CreateOptions::default()).await?;
    let pid = created.pid.ok_or("no pid from create")?;
    runtime.start(&c).await?;
    Ok((c, pid))
}

/// One stop; returns (death -> return, whole stop).
async fn measure(
    runtime: &ConmonRuntime,
    work: &Path,
    bundle: &Path,
    name: &str,
    timeout: Duration,
    by_hand: bool,
) -> Result<(Duration, Duration), BoxError> {
    let (c, pid) = running(runtime, work, bundle, name).await?;
    let watch = death_watch(pid)?;
    let began = Instant::now();
    if by_hand {
        let fd = pidfd(pid)?;
        runc_kill(c.id().as_str(), "TERM")?;
        if !died_within(&fd, Some(timeout))? {
            runc_kill(c.id().as_str(), "KILL")?;
            died_within(&fd, None)?;
        }
    } else {
        runtime.stop(&c, timeout, false).await?;
    }
    let returned = Instant::now();
    let died = tokio::task::spawn_blocking(move || watch.join())
        .await?
        .map_err(|_| "death watch panicked")??;
    runtime.wait(&c, Duration::from_secs(30)).await?;
    runtime.delete(&c).await?;
    if let Some(log) = &c.log().path {
        let _ = std::fs::remove_file(log);
    }
    Ok((returned.saturating_duration_since(died), returned - began))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let options = Options::parse(10).map_err(|e| format!("bench_stop: {e}"))?;
    let work = tempfile::tempdir()?;
    let runtime = bench_support::runtime(work.path())?;
    let responsive = BundleBuilder::new()
        .args(["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"])
        .build()?;
    let ignoring = BundleBuilder::new()
        .args(["sh", "-c", "trap '' TERM; sleep 1000 & wait"])
        .build()?;
    let cases = [
        (
            "TERM-responsive, timeout 10 s",
            &responsive,
            Duration::from_secs(10),
        ),
        (
            "TERM-ignoring, timeout 1 s",
            &ignoring,
            Duration::from_secs(1),
        ),
    ];
    let mut results: Vec<[Samples; 4]> = cases
        .iter()
        .map(|(case, _, _)| {
            [
                Samples::new(format!("floor: death -> return ({case})")),
                Samples::new(format!("driver: death -> return ({case})")),
                Samples::new(format!("floor: whole stop ({case})")),
                Samples::new(format!("driver: whole stop ({case})")),
            ]
        })
        .collect();
    for round in 0..options.rounds {
        for (i, (_, bundle, timeout)) in cases.iter().enumerate() {
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for by_hand in order {
                let name = format!("bench-stop-{i}-{round}-{}", u8::from(by_hand));
                let (after_death, whole) = measure(
                    &runtime,
                    work.path(),
                    bundle.path(),
                    &name,
                    *timeout,
                    by_hand,
                )
                .await?;
                let slot = usize::from(!by_hand);
                results[i][slot].push(after_death);
                results[i][slot + 2].push(whole);
            }
        }
    }
    println!(
        "stop: {} round(s); ratio = median / the floor's median",
        options.rounds
    );
    for ((case, _, _), samples) in cases.iter().zip(&results) {
        print_durations(
            &format!("{case}: from the process's death to the return"),
            &[&samples[0], &samples[1]],
        );
        print_durations(
            &format!("{case}: the whole stop"),
            &[&samples[2], &samples[3]],
        );
    }
    Ok(())
}
