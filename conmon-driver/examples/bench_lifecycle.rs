//! A whole container lifecycle of `true` (create, start, exit, delete)
//! through the driver, against the floor of the same work done by hand,
//! `runc run`, the demo `run` as a whole process and `podman run --rm`, in
//! one run; medians, ratios and a per-phase breakdown.
//!
//! ```text
//! cargo build --release -p conmon-driver --examples
//! target/release/examples/bench_lifecycle [--rounds 20] [--quick]
//!     [--run-binary PATH] [--podman off] [--podman-image localhost/busybox]
//! ```
//!
//! Contenders, alternated within each round (the order rotates from round
//! to round so that drift hits all alike):
//!
//! - `floor`: a minimal conmon launch written here: two socketpairs, conmon
//!   with the driver's arguments and environment (fds placed with
//!   `sync_pipe::FdPlan`), the start byte, conmon's parent reaped, the sync
//!   record read, `runc start`, the exit file awaited with inotify, `runc
//!   delete` and conmon's monitor awaited with a pidfd. Phases: `spawn`
//!   (spawn, start byte, parent reaped), `sync` (the record with the pid),
//!   `start`, `exit` (start returned -> exit file), `delete`.
//! - `driver`: `create`, `start`, `wait`, `delete` of the same bundle.
//!   `create` is split with the driver's own debug events: `prepare` (up to
//!   "spawning conmon"), `spawn` (to "conmon spawned") and `sync` (to the
//!   end of create: placement, start byte, parent reaped, runtime create,
//!   record, pidfile).
//! - `runc run`: `runc run --bundle B ID` (no monitor at all).
//! - `demo run -- true`: the `run` example as a process (its own bundle,
//!   runtime, lifecycle and clean-up), run with `--phase-times`: its phases
//!   are `process start` (spawn to `main`), `async setup` (logging and the
//!   async runtime), `bundle` (temporary directory, bundle written),
//!   `driver made`, `create`, `attach`, `start`, `exit noticed` (the output
//!   ended and the exit code read), `delete`, `clean-up` (the temporary
//!   directory removed) and `process exit` (to the parent's `wait`).
//! - `podman run --rm IMAGE true` when podman works (else skipped).
//!
//! Ratios are each median over the floor's median.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench_support::{
    describe, example_binary, podman_image, print_durations, BoxError, Marks, Options, Samples,
};
use conmon_driver::ConmonRuntime;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use runtime_api::{CreateOptions, OciRuntime};
use sync_pipe::{seqpacket_pair, FdPlan, StartSignal};
use testkit::BundleBuilder;

/// The debug events of the launch sequence used as phase boundaries.
const SPAWNING: &str = "spawning conmon";
const SPAWNED: &str = "conmon spawned";

/// Per-phase samples of one contender.
struct Phases {
    total: Samples,
    phases: Vec<Samples>,
}

impl Phases {
    fn new(name: &str, phases: &[&str]) -> Phases {
        Phases {
            total: Samples::new(name),
            phases: phases
                .iter()
                .map(|p| Samples::new(format!("{name}: {p}")))
                .collect(),
        }
    }

    /// Records the phases ending at each of `marks` after `start`.
    fn push(&mut self, start: Instant, marks: &[Instant]) {
        let mut from = start;
        for (samples, &to) in self.phases.iter_mut().zip(marks) {
            samples.push(to.saturating_duration_since(from));
            from = to;
        }
        self.total.push(from - start);
    }
}

/// The floor: the driver's launch done by hand, blocking.
fn floor(work: &Path, bundle: &Path, round: usize) -> Result<[Instant; 6], BoxError> {
    let id = format!("bench-floor-{}-{round}", std::process::id());
    let dir = work.join("floor").join(&id);
    let exits = work.join("floor-exits");
    // conmon writes `persist/exit` before the exit file: the directory
    // must exist.
    std::fs::create_dir_all(dir.join("persist"))?;
    std::fs::create_dir_all(&exits)?;
    std::fs::create_dir_all(work.join("floor-sockets"))?;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        &exits,
        AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
    )?;
    let exit_file = exits.join(&id);
    let conmon_pidfile = dir.join("conmon.pid");

    let began = Instant::now();
    let (sync_parent, sync_child) = seqpacket_pair()?;
    let (start_parent, start_child) = seqpacket_pair()?;
    let mut fds = FdPlan::new();
    fds.place(sync_child.as_raw_fd(), 3)?;
    fds.place(start_child.as_raw_fd(), 4)?;
    fds.seal_unplaced();
    let mut command = Command::new("conmon");
    command
        .args([
            "--api-version",
            "1",
            "-c",
            &id,
            "-u",
            &id,
            "-r",
            "/usr/sbin/runc",
            "-b",
        ])
        .arg(bundle)
        .arg("-p")
        .arg(dir.join("pidfile"))
        .args(["-n", &id, "--exit-dir"])
        .arg(&exits)
        .args(["--full-attach", "--socket-dir-path"])
        .arg(work.join("floor-sockets"))
        .arg("--persist-dir")
        .arg(dir.join("persist"))
        .arg("-l")
        .arg(format!("k8s-file:{}", dir.join("ctr.log").display()))
        .args(["--log-level", "warning", "--conmon-pidfile"])
        .arg(&conmon_pidfile)
        .env_clear()
        .env("_OCI_SYNCPIPE", "3")
        .env("_OCI_STARTPIPE", "4")
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    fds.install_std(&mut command);
    let mut conmon = command.spawn()?;
    drop((sync_child, start_child));
    StartSignal::new(start_parent).send()?;
    let status = conmon.wait()?;
    if !status.success() {
        return Err(format!("conmon exited with {status}").into());
    }
    let spawned = Instant::now();

    let mut record = [0u8; 4096];
    let n = File::from(sync_parent).read(&mut record)?;
    let record = String::from_utf8_lossy(&record[..n]);
    if !record.contains("\"data\"") || record.contains('-') {
        return Err(format!("sync record {record:?}").into());
    }
    let synced = Instant::now();

    runc(&["start", &id])?;
    let started = Instant::now();

    // Watched before the start: an exit between the check and the read
    // still leaves an event to read.
    while !exit_file.exists() {
        inotify.read_events()?;
    }
    let exited = Instant::now();

    let monitor: i32 = std::fs::read_to_string(&conmon_pidfile)?.trim().parse()?;
    let monitor = rustix::process::Pid::from_raw(monitor).ok_or("conmon pid 0")?;
    // The monitor may be gone already: then there is nothing to wait for.
    let pidfd = rustix::process::pidfd_open(monitor, rustix::process::PidfdFlags::empty()).ok();
    runc(&["delete", &id])?;
    if let Some(pidfd) = pidfd {
        let mut polled = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        poll(&mut polled, PollTimeout::from(60_000u16))?;
    }
    let deleted = Instant::now();
    let _ = std::fs::remove_file(&exit_file);
    let _ = std::fs::remove_dir_all(&dir);
    // conmon makes its control and resize FIFOs in the bundle, which every
    // contender shares: left there, they would tell the driver that an id
    // may still have files of its own.
    for fifo in ["ctl", "winsz", "attach"] {
        let _ = std::fs::remove_file(bundle.join(fifo));
    }
    Ok([began, spawned, synced, started, exited, deleted])
}

fn runc(args: &[&str]) -> Result<(), BoxError> {
    let status = Command::new("runc")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("runc {args:?} exited with {status}").into());
    }
    Ok(())
}

/// The driver's lifecycle; returns its start and the phase ends.
async fn driver(
    runtime: &ConmonRuntime,
    marks: &Marks,
    work: &Path,
    bundle: &Path,
    round: usize,
) -> Result<(Instant, [Instant; 6]), BoxError> {
    let c = describe(work, bundle, &format!("bench-driver-{round}"))?;
    marks.take();
    let began = Instant::now();
    runtime.create(&c, CreateOptions::default()).await?;
    let created = Instant::now();
    runtime.start(&c).await?;
    let started = Instant::now();
    let code = runtime.wait(&c, Duration::from_secs(60)).await?;
    let exited = Instant::now();
    runtime.delete(&c).await?;
    let deleted = Instant::now();
    if code != 0 {
        return Err(format!("container exited with {code}").into());
    }
    let taken = marks.take();
    let spawning = Marks::at(&taken, SPAWNING).ok_or("no \"spawning conmon\" event")?;
    let spawned = Marks::at(&taken, SPAWNED).ok_or("no \"conmon spawned\" event")?;
    if let Some(log) = &c.log().path {
        let _ = std::fs::remove_file(log);
    }
    Ok((
        began,
        [spawning, spawned, created, started, exited, deleted],
    ))
}

/// The demo's `--phase-times` marks, in order, with the phase each one ends.
const DEMO_MARKS: [(&str, &str); 11] = [
    ("main", "process start (spawn -> main)"),
    ("async", "async setup (logging, tokio)"),
    ("bundle", "bundle (temporary dir, rootfs, config.json)"),
    ("driver", "driver made"),
    ("created", "create"),
    ("attached", "attach"),
    ("started", "start"),
    ("exited", "exit noticed (output ended, exit code)"),
    ("deleted", "delete"),
    ("cleaned", "clean-up (temporary dir removed)"),
    ("exit", "process exit (-> parent's wait)"),
];

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of the demo's marks.
fn monotonic_ns() -> i128 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec)
}

/// Runs the demo with `--phase-times`; its whole time and the length of
/// each of [`DEMO_MARKS`]' phases.
fn demo_run(binary: &Path) -> Result<(Duration, Vec<Duration>), BoxError> {
    let began = monotonic_ns();
    let output = Command::new(binary)
        .args(["--phase-times", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let ended = monotonic_ns();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut marks = std::collections::HashMap::new();
    for line in stderr.lines() {
        match line
            .strip_prefix("run: phase ")
            .and_then(|rest| rest.split_once(' '))
        {
            Some((name, ns)) => {
                marks.insert(name.to_string(), ns.parse::<i128>()?);
            }
            None => eprintln!("{line}"),
        }
    }
    if !output.status.success() {
        return Err(format!("demo run -- true exited with {}", output.status).into());
    }
    marks.insert("exit".into(), ended);
    let to_duration = |ns: i128| Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(0));
    let mut from = began;
    let mut phases = Vec::with_capacity(DEMO_MARKS.len());
    for (mark, _) in DEMO_MARKS {
        let at = *marks
            .get(mark)
            .ok_or_else(|| format!("the demo printed no {mark:?} phase: {stderr}"))?;
        phases.push(to_duration(at - from));
        from = at;
    }
    Ok((to_duration(ended - began), phases))
}

/// Runs a command to its end; its wall time.
fn timed(command: &mut Command) -> Result<Duration, BoxError> {
    let began = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    let took = began.elapsed();
    if !status.success() {
        return Err(format!("{command:?} exited with {status}").into());
    }
    Ok(took)
}

#[derive(Clone, Copy)]
enum Contender {
    Floor,
    Driver,
    RuncRun,
    Demo,
    Podman,
}

fn main() -> Result<(), BoxError> {
    let options = Options::parse(20).map_err(|e| format!("bench_lifecycle: {e}"))?;
    let marks = Marks::new(&[SPAWNING, SPAWNED]);
    marks.install()?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let bundle = BundleBuilder::new().args(["true"]).build()?;
    let runtime = bench_support::runtime(work.path())?;
    let run_binary = example_binary(&options, "run");
    let podman = podman_image(&options);

    let mut contenders = vec![Contender::Floor, Contender::Driver, Contender::RuncRun];
    if run_binary.is_some() {
        contenders.push(Contender::Demo);
    }
    if podman.is_some() {
        contenders.push(Contender::Podman);
    }
    let mut floor_phases = Phases::new(
        "floor (minimal conmon launch)",
        &["spawn", "sync", "start", "exit", "delete"],
    );
    let mut driver_phases = Phases::new(
        "driver create+start+wait+delete",
        &["prepare", "spawn", "sync", "start", "exit", "delete"],
    );
    let mut runc_run = Samples::new("runc run");
    let demo_names: Vec<&str> = DEMO_MARKS.iter().map(|(_, phase)| *phase).collect();
    let mut demo_phases = Phases::new("demo run -- true", &demo_names);
    let mut demo = Samples::new("demo run -- true (whole process)");
    let mut podman_run = Samples::new("podman run --rm true");

    for round in 0..options.rounds {
        let mut order = contenders.clone();
        order.rotate_left(round % contenders.len());
        for contender in order {
            match contender {
                Contender::Floor => {
                    let [began, rest @ ..] = floor(work.path(), bundle.path(), round)?;
                    floor_phases.push(began, &rest);
                }
                Contender::Driver => {
                    let (began, ends) = tokio.block_on(driver(
                        &runtime,
                        &marks,
                        work.path(),
                        bundle.path(),
                        round,
                    ))?;
                    driver_phases.push(began, &ends);
                }
                Contender::RuncRun => {
                    let id = format!("bench-runc-{}-{round}", std::process::id());
                    runc_run.push(timed(
                        Command::new("runc")
                            .args(["run", "--bundle"])
                            .arg(bundle.path())
                            .arg(&id),
                    )?);
                }
                Contender::Demo => {
                    let binary = run_binary.as_deref().ok_or("no run binary")?;
                    let (took, phases) = demo_run(binary)?;
                    demo.push(took);
                    for (samples, took) in demo_phases.phases.iter_mut().zip(phases) {
                        samples.push(took);
                    }
                }
                Contender::Podman => {
                    let image = podman.as_deref().ok_or("no podman image")?;
                    podman_run.push(timed(Command::new("podman").args([
                        "run",
                        "--rm",
                        "--log-driver",
                        "k8s-file",
                        image,
                        "true",
                    ]))?);
                }
            }
        }
    }

    println!(
        "lifecycle of `true`: {} round(s); ratio = median / floor's median",
        options.rounds
    );
    print_durations(
        "whole lifecycle",
        &[
            &floor_phases.total,
            &driver_phases.total,
            &runc_run,
            &demo,
            &podman_run,
        ],
    );
    let mut rows = vec![&floor_phases.total];
    rows.extend(floor_phases.phases.iter());
    print_durations("floor phases (ratio to the floor's whole lifecycle)", &rows);
    let mut rows = vec![&floor_phases.total];
    rows.extend(driver_phases.phases.iter());
    print_durations(
        "driver phases (ratio to the floor's whole lifecycle)",
        &rows,
    );
    if !demo.is_empty() {
        let mut rows = vec![&floor_phases.total, &demo];
        rows.extend(demo_phases.phases.iter());
        print_durations(
            "demo run -- true phases (ratio to the floor's whole lifecycle)",
            &rows,
        );
    }
    Ok(())
}
