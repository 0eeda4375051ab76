//! Runs one command in a busybox container through conmon, like a tiny
//! `podman run --rm [-i] [-t]`, and exits with the container's exit code.
//!
//! ```text
//! cargo run -p conmon-driver --example run -- sh -c 'echo out; echo err >&2; exit 3'
//! cargo run -p conmon-driver --example run -- -it sh
//! echo hello | cargo run -p conmon-driver --example run -- -i cat
//! cargo run -p conmon-driver --example run -- --runtime runsc -- echo hi
//! cargo run -p conmon-driver --example run -- --bundle /path/to/bundle
//! ```
//!
//! What it does, step by step:
//!
//! 1. builds an OCI bundle in a temporary directory whose process is
//!    `CMD ARGS...` (`testkit::BundleBuilder`, with a terminal for `-t`),
//!    unless `--bundle DIR` names an existing bundle, which is then used as
//!    it is (its own process and terminal setting, no `CMD`). As root, its
//!    `rootfs/` is an overlay over a busybox root filesystem prepared once
//!    in an image cache (`testkit::BusyboxImage`, default
//!    `/var/cache/conmon-demo`) with the bundle's own `upper/` and `work/`,
//!    so the container's writes vanish with the bundle and the cache is
//!    never written; rootless, with `--no-image-cache`, or when the cache
//!    or the mount fails, busybox is copied into the bundle instead (see
//!    `bundle.rs`);
//! 2. makes a [`ConmonRuntime`] whose tmp dir (exit files, sockets, persist
//!    dirs) is in that temporary directory, with a `k8s-file` log next to it
//!    (kept for conmon's sake, never printed);
//! 3. creates the container and attaches to it *before* starting it, so no
//!    output is lost: the container's stdout and stderr stream live to the
//!    local stdout and stderr (with a terminal everything is on stdout);
//!    with `-i` the local stdin is forwarded, and its end closes the
//!    container's stdin;
//! 4. with a terminal: when `-i` is given and the local stdin is a terminal,
//!    puts it in raw mode for the session (so keys like Ctrl-C and Ctrl-D
//!    reach the container as bytes, as with `podman run -it`), sizes the
//!    container's terminal like the local one before the start, and forwards
//!    every later size change (SIGWINCH);
//! 5. starts the container, waits for it, deletes it and exits with its code.
//!
//! The detach keys (`--detach-keys`, default `ctrl-p,ctrl-q`) end the session
//! but not the container: the demo then prints how to clean up and exits 0
//! *without* deleting the container, keeping its temporary directory (bundle,
//! log, conmon's files) and the bundle's overlay mount in place: remove them
//! by hand with `runc delete --force ID`, `umount .../rootfs` and
//! `rm -rf DIR` as the message says.
//!
//! The local terminal's settings are saved before raw mode and restored on
//! every way out: the normal end, an error, a detach, SIGINT/SIGTERM/SIGHUP
//! (handled below) and a panic (the guard's `Drop`); the bundle's overlay is
//! unmounted (lazily when still busy) on the same ways out, before the
//! temporary directory goes. The demo never calls `std::process::exit`:
//! `main` returns its status after the guards are gone. Only SIGKILL (or
//! another fatal signal nobody handles) can leave the terminal raw (`stty
//! sane` fixes it) or the overlay mounted (`umount` it, then remove the
//! directory).
//!
//! Errors are printed as `Error: ...` on stderr, and the exit status follows
//! podman: 125 for errors of the engine or runtime (including bad options),
//! 126 when the command cannot be invoked, 127 when it is not found. A
//! container that was created is deleted, also after an error (but not after
//! a detach). SIGINT, SIGTERM or SIGHUP stops the container (SIGKILL after
//! 10 s), deletes it and exits with 130. In raw mode Ctrl-C is not a signal
//! but a byte for the container (podman behaves the same).
//!
//! Options (before `CMD`; `--` ends them):
//!
//! - `-i`, `--interactive`: keep the container's stdin open and forward the
//!   local stdin to it;
//! - `-t`, `--tty`: give the container a terminal (`-it` combines both);
//! - `--detach-keys KEYS`: the detach sequence in podman's grammar (default
//!   `ctrl-p,ctrl-q`; an empty value never detaches); only with `-i`;
//! - `--runtime NAME|PATH`: the OCI runtime (default `runc`); a value with a
//!   `/` is a path to the binary;
//! - `--runtime-flag FLAG`: a global runtime flag, repeatable (for `runsc`
//!   the default is `--network=none`);
//! - `--conmon PATH`: the conmon binary (default: podman's usual places,
//!   then `$PATH`);
//! - `--bundle DIR`: run this bundle instead of building one;
//! - `--image-cache DIR`: where the shared busybox root filesystem is kept
//!   (default `/var/cache/conmon-demo`); it is built there on first use and
//!   rebuilt when the busybox binary changes;
//! - `--no-image-cache`: copy busybox into the bundle instead;
//! - `--id ID`: the container id (default `demo-<pid>`);
//! - `--create-timeout SECS`: the limit for conmon's launch (default 240);
//! - `--phase-times`: print on stderr, as `run: phase NAME NS`, the moment
//!   (`CLOCK_MONOTONIC`, nanoseconds) each step ended: `main` (the process
//!   reached `main`), `async` (logging and the async runtime set up),
//!   `bundle` (temporary directory and bundle written or mounted), `driver` (the
//!   driver made), `created`, `attached`, `started`, `output` (the output
//!   ended), `exited` (the exit code known), `deleted` and `cleaned` (the
//!   overlay unmounted and the temporary directory removed);
//!   `bench_lifecycle` reads them;
//! - `-h`, `--help`: print the usage.
//!
//! Logging goes to stderr, filtered by `RUST_LOG` (default `warn`); conmon
//! gets the matching `--log-level`. It needs root, conmon, the runtime and
//! busybox-static (`bash scripts/install-deps.sh` installs them on Debian).

mod bundle;
mod options;
mod session;
mod terminal;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use conmon_driver::{ConmonConfig, ConmonRuntime, LogLevel};
use runtime_api::{
    ContainerDescription, ContainerId, CreateOptions, LogDriver, OciRuntime, RuntimeError,
};
use testkit::{Bundle, TestkitError};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::bundle::{build_bundle, bundle_wants_terminal, removal_command};
use crate::options::{parse_args, Options, Request, USAGE};
use crate::session::run_created;

/// The exit status for bad options and engine errors, as podman uses.
const USAGE_EXIT: u8 = 125;
/// The exit status after an interruption (128 + SIGINT).
const INTERRUPTED_EXIT: u8 = 130;

/// Everything that can end the demo early.
#[derive(Debug)]
enum DemoError {
    /// From the driver.
    Runtime(RuntimeError),
    /// From building the bundle.
    Bundle(TestkitError),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Runtime(e) => e.fmt(f),
            Self::Bundle(e) => write!(f, "building the bundle: {e}"),
        }
    }
}

impl DemoError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Runtime(e) => e.exit_code(),
            Self::Bundle(_) => 125,
        }
    }
}

impl From<RuntimeError> for DemoError {
    fn from(e: RuntimeError) -> Self {
        Self::Runtime(e)
    }
}

impl From<TestkitError> for DemoError {
    fn from(e: TestkitError) -> Self {
        Self::Bundle(e)
    }
}

/// Whether `--phase-times` asked for the steps' end times.
static PHASE_TIMES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// With `--phase-times`, prints when the step `name` ended.
pub(crate) fn phase(name: &str) {
    if PHASE_TIMES.load(std::sync::atomic::Ordering::Relaxed) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let ns = i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec);
        // One write per line, whole.
        let _ = std::io::stderr().write_all(format!("run: phase {name} {ns}\n").as_bytes());
    }
}

/// How a run ended.
pub(crate) enum Outcome {
    /// The container exited with this code.
    Exited(i32),
    /// A signal asked us to stop; the container was stopped.
    Interrupted,
    /// The detach keys ended the session; the container still runs.
    Detached,
}

fn main() -> ExitCode {
    let request = match parse_args(std::env::args_os().skip(1)) {
        Ok(request) => request,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "run: {message}\n\n{USAGE}");
            return ExitCode::from(USAGE_EXIT);
        }
    };
    let options = match request {
        Request::Help => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Request::Run(options) => *options,
    };
    if options.phase_times {
        PHASE_TIMES.store(true, std::sync::atomic::Ordering::Relaxed);
        phase("main");
    }

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let tokio = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Error: starting the async runtime: {e}");
            return ExitCode::from(USAGE_EXIT);
        }
    };
    phase("async");
    // The temporary directories are dropped (removed) and the terminal is
    // restored inside `run`, before the exit status is returned.
    let result = tokio.block_on(run(options));
    phase("cleaned");
    let code = match result {
        Ok(Outcome::Exited(code)) => u8::try_from(code).unwrap_or(USAGE_EXIT),
        Ok(Outcome::Interrupted) => INTERRUPTED_EXIT,
        Ok(Outcome::Detached) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Error: {e}");
            u8::try_from(e.exit_code()).unwrap_or(USAGE_EXIT)
        }
    };
    // tokio reads stdin with a blocking read on a thread of its own that
    // nothing can interrupt; waiting for it would hang until the next key
    // press. The process ends right after this anyway.
    tokio.shutdown_background();
    ExitCode::from(code)
}

/// Listens for SIGINT, SIGTERM and SIGHUP from now on; the receiver turns
/// true at the first one. Installing the handlers first means an
/// interruption during create or start is acted upon once that step is done,
/// instead of killing the demo and leaking the container (or leaving the
/// terminal raw).
fn interruptions() -> Result<watch::Receiver<bool>, RuntimeError> {
    let io = |e| RuntimeError::io("installing the SIGINT/SIGTERM/SIGHUP handlers", e);
    let mut sigint = signal(SignalKind::interrupt()).map_err(io)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = sigint.recv() => "SIGINT",
            _ = sigterm.recv() => "SIGTERM",
            _ = sighup.recv() => "SIGHUP",
        };
        // "\r\n": the terminal may be in raw mode, which does not turn "\n"
        // into a new line at the left margin.
        let _ = write!(
            std::io::stderr(),
            "run: got {name}; stopping the container\r\n"
        );
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Keeps `bundle` (and its overlay mount) on disk for whoever cleans up by
/// hand; returns the root filesystem to unmount first, if it is mounted.
fn keep_bundle(bundle: Option<Bundle>) -> Option<PathBuf> {
    let bundle = bundle?;
    let mounted = bundle.is_overlay().then(|| bundle.rootfs());
    let _dir = bundle.keep();
    mounted
}

/// An absolute form of `path` (relative to the current directory).
fn absolute(path: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(path)
        .map_err(|e| RuntimeError::io(format!("resolving {}", path.display()), e))
}

/// The driver's settings from the options.
fn make_config(options: &Options, tmp_dir: PathBuf) -> Result<ConmonConfig, RuntimeError> {
    let mut builder = ConmonConfig::builder(options.runtime.as_deref().unwrap_or("runc"), tmp_dir)
        // conmon's own messages go to its stderr, which the driver
        // reports; the host may have no syslog.
        .syslog(false)
        .log_level(LogLevel::from_tracing());
    for flag in &options.runtime_flags {
        builder = builder.runtime_flag(flag.clone());
    }
    if builder.runtime_short_name() == "runsc" && options.runtime_flags.is_empty() {
        // gVisor's default network stack needs a network namespace set up
        // by the engine; the demo has none.
        builder = builder.runtime_flag("--network=none");
    }
    if let Some(conmon) = &options.conmon {
        builder = builder.conmon(absolute(conmon)?);
    }
    if let Some(limit) = options.create_timeout {
        builder = builder.create_timeout(limit);
    }
    Ok(builder.build()?)
}

async fn run(options: Options) -> Result<Outcome, DemoError> {
    let interrupted = interruptions()?;
    let work = tempfile::Builder::new()
        .prefix("conmon-demo-")
        .tempdir()
        .map_err(|e| RuntimeError::io("creating the temporary directory", e))?;
    let work_dir = absolute(work.path())?;

    let mut built_bundle: Option<Bundle> = None;
    let (bundle_dir, terminal) = match &options.bundle {
        Some(dir) => {
            let dir = absolute(dir)?;
            let terminal = bundle_wants_terminal(&dir)?;
            if options.tty && !terminal {
                return Err(RuntimeError::InvalidArgument(format!(
                    "-t needs a terminal, but {} does not set process.terminal; \
                     a --bundle is run as it is",
                    dir.join("config.json").display()
                ))
                .into());
            }
            (dir, terminal)
        }
        None => {
            let bundle = build_bundle(&options, &work_dir)?;
            let dir = bundle.path().to_path_buf();
            built_bundle = Some(bundle);
            (dir, options.tty)
        }
    };
    phase("bundle");

    let runtime = Arc::new(ConmonRuntime::new(make_config(
        &options,
        work_dir.join("tmp"),
    )?)?);
    tracing::info!(
        runtime = %runtime.runtime_path().display(),
        conmon = %runtime.conmon_path().display(),
        "using"
    );
    let id = ContainerId::new(
        options
            .id
            .clone()
            .unwrap_or_else(|| format!("demo-{}", std::process::id())),
    )?;
    let container =
        ContainerDescription::builder(id, &bundle_dir, work_dir.join("run").join("ctr"))
            .log(LogDriver::KubernetesFile, work_dir.join("ctr.log"))
            .terminal(terminal)
            .stdin(options.interactive)
            .build()?;
    phase("driver");

    if *interrupted.borrow() {
        return Ok(Outcome::Interrupted);
    }
    // A failed create cleans up after itself.
    runtime.create(&container, CreateOptions::default()).await?;
    phase("created");
    // The terminal is back in its own mode once this returns.
    let outcome = run_created(&runtime, &container, &options, interrupted).await;
    if let Ok(Outcome::Detached) = outcome {
        // The container runs on and uses its bundle, and conmon its tmp
        // dir: keep everything for whoever cleans up by hand.
        let mounted = keep_bundle(built_bundle);
        let kept = work.keep();
        let mut delete = vec![runtime.runtime_path().display().to_string()];
        delete.extend(runtime.config().runtime_flags.iter().cloned());
        delete.extend([
            "delete".into(),
            "--force".into(),
            container.id().to_string(),
        ]);
        let _ = writeln!(
            std::io::stderr(),
            "\nrun: detached from container {id}; it is still running\n\
             run: clean up with: {delete} && {removal}",
            id = container.id(),
            delete = delete.join(" "),
            removal = removal_command(&kept, mounted.as_deref()),
        );
        return Ok(Outcome::Detached);
    }
    // Whatever else happened, the container goes, and with it conmon.
    let deleted = runtime.delete(&container).await;
    phase("deleted");
    if deleted.is_err() {
        // The container may still use its bundle: keep the files for
        // whoever cleans up by hand.
        let mounted = keep_bundle(built_bundle);
        let kept = work.keep();
        let _ = writeln!(
            std::io::stderr(),
            "run: leaving {} in place; remove it with: {}",
            kept.display(),
            removal_command(&kept, mounted.as_deref())
        );
    } else if let Some(bundle) = built_bundle {
        let rootfs = bundle.rootfs();
        if let Err(e) = bundle.remove() {
            // With the overlay still mounted, removing the directory would
            // descend into it.
            let mounted = matches!(e, TestkitError::Mount { .. }).then_some(rootfs);
            let kept = work.keep();
            let _ = writeln!(
                std::io::stderr(),
                "run: removing the bundle: {e}; leaving {} in place; remove it with: {}",
                kept.display(),
                removal_command(&kept, mounted.as_deref())
            );
        }
    }
    match (outcome, deleted) {
        (Ok(outcome), Ok(())) => Ok(outcome),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), Ok(())) => Err(e.into()),
        (Err(e), Err(delete)) => {
            let _ = writeln!(
                std::io::stderr(),
                "Error: deleting container {}: {delete}",
                container.id()
            );
            Err(e.into())
        }
    }
}
