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
//! 1. builds an OCI bundle in a temporary directory whose root filesystem is
//!    the system's static busybox and whose process is `CMD ARGS...`
//!    (`testkit::BundleBuilder`, with a terminal for `-t`), unless
//!    `--bundle DIR` names an existing bundle, which is then used as it is
//!    (its own process and terminal setting, no `CMD`);
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
//! log, conmon's files) in place: remove both by hand with
//! `runc delete --force ID` and `rm -rf DIR` as the message says.
//!
//! The local terminal's settings are saved before raw mode and restored on
//! every way out: the normal end, an error, a detach, SIGINT/SIGTERM/SIGHUP
//! (handled below) and a panic (the guard's `Drop`). The demo never calls
//! `std::process::exit`: `main` returns its status after the guard is gone.
//! Only SIGKILL (or another fatal signal nobody handles) can leave the
//! terminal raw; `stty sane` fixes it.
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
//! - `--id ID`: the container id (default `demo-<pid>`);
//! - `--create-timeout SECS`: the limit for conmon's launch (default 240);
//! - `--phase-times`: print on stderr, as `run: phase NAME NS`, the moment
//!   (`CLOCK_MONOTONIC`, nanoseconds) each step ended: `main` (the process
//!   reached `main`), `async` (logging and the async runtime set up),
//!   `bundle` (temporary directory and bundle written), `driver` (the
//!   driver made), `created`, `attached`, `started`, `output` (the output
//!   ended), `exited` (the exit code known), `deleted` and `cleaned` (the
//!   temporary directory removed); `bench_lifecycle` reads them;
//! - `-h`, `--help`: print the usage.
//!
//! Logging goes to stderr, filtered by `RUST_LOG` (default `warn`); conmon
//! gets the matching `--log-level`. It needs root, conmon, the runtime and
//! busybox-static (`bash scripts/install-deps.sh` installs them on Debian).

use std::ffi::OsString;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use attach::WriterThread;
use conmon_driver::{ConmonConfig, ConmonRuntime, LogLevel};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, ContainerDescription, ContainerId,
    CreateOptions, Framing, InputStream, LogDriver, OciRuntime, OutputStream, RuntimeError,
    TerminalSize,
};
use testkit::{BundleBuilder, RootlessMapping, TestkitError};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The exit status for bad options and engine errors, as podman uses.
const USAGE_EXIT: u8 = 125;
/// The exit status after an interruption (128 + SIGINT).
const INTERRUPTED_EXIT: u8 = 130;
/// "No limit in practice" for the wait.
const FOREVER: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the stop signal gets before SIGKILL after an interruption.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the attach session may take, after the container was stopped,
/// to hand over the container's last output.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "\
Usage: run [OPTIONS] [--] CMD [ARGS...]
       run [OPTIONS] --bundle DIR

Runs CMD in a busybox container through conmon and exits with its exit code.

Options:
  -i, --interactive           forward stdin to the container (its EOF closes the container's stdin)
  -t, --tty                   give the container a terminal (raw local terminal with -i)
      --detach-keys KEYS      detach sequence (default: ctrl-p,ctrl-q; empty: never);
                              detaching leaves the container running and exits 0
      --runtime NAME|PATH     OCI runtime (default: runc); a value with '/' is a path
      --runtime-flag FLAG     global runtime flag, repeatable (runsc default: --network=none)
      --conmon PATH           conmon binary (default: podman's places, then $PATH)
      --bundle DIR            run this existing OCI bundle as it is (no CMD)
      --id ID                 container id (default: demo-<pid>)
      --create-timeout SECS   limit for conmon's launch (default: 240)
      --phase-times           print when each step ended on stderr (CLOCK_MONOTONIC ns)
  -h, --help                  print this help
      --                      end of options

Environment: RUST_LOG filters the log written to stderr (default: warn).";

/// The parsed command line.
#[derive(Debug, Default)]
struct Options {
    interactive: bool,
    tty: bool,
    detach_keys: Option<String>,
    runtime: Option<String>,
    runtime_flags: Vec<String>,
    conmon: Option<PathBuf>,
    bundle: Option<PathBuf>,
    id: Option<String>,
    create_timeout: Option<Duration>,
    phase_times: bool,
    command: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
enum Request {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name. `Err` is a usage error.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Request, String> {
    let mut args = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("argument {a:?} is not valid UTF-8"))
        })
        .collect::<Result<Vec<String>, String>>()?
        .into_iter();
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(Request::Help);
        }
        if !arg.starts_with('-') || arg == "-" {
            options.command.push(arg);
            break;
        }
        match arg.as_str() {
            "--interactive" => {
                options.interactive = true;
                continue;
            }
            "--tty" => {
                options.tty = true;
                continue;
            }
            "--phase-times" => {
                options.phase_times = true;
                continue;
            }
            _ => {}
        }
        // Short flags, alone or clustered: -i, -t, -it, -ti.
        if let Some(flags) = arg.strip_prefix('-').filter(|f| !f.starts_with('-')) {
            for flag in flags.chars() {
                match flag {
                    'i' => options.interactive = true,
                    't' => options.tty = true,
                    'h' => return Ok(Request::Help),
                    _ => return Err(format!("unknown option {arg:?}")),
                }
            }
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value)),
            None => (arg.clone(), None),
        };
        let known = [
            "--detach-keys",
            "--runtime",
            "--runtime-flag",
            "--conmon",
            "--bundle",
            "--id",
            "--create-timeout",
        ];
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown option {arg:?}"));
        }
        let value = match inline {
            Some(value) => value.to_string(),
            None => args
                .next()
                .ok_or_else(|| format!("option {name} needs a value"))?,
        };
        // An empty detach sequence means "never detach", as in podman.
        if value.is_empty() && name != "--detach-keys" {
            return Err(format!("option {name} needs a non-empty value"));
        }
        match name.as_str() {
            "--detach-keys" => {
                attach::DetachKeys::parse(&value)
                    .map_err(|e| format!("--detach-keys {value:?}: {e}"))?;
                options.detach_keys = Some(value);
            }
            "--runtime" => options.runtime = Some(value),
            "--runtime-flag" => options.runtime_flags.push(value),
            "--conmon" => options.conmon = Some(PathBuf::from(value)),
            "--bundle" => options.bundle = Some(PathBuf::from(value)),
            "--id" => options.id = Some(value),
            "--create-timeout" => {
                let secs: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| {
                        format!(
                            "--create-timeout needs a positive number of seconds, not {value:?}"
                        )
                    })?;
                options.create_timeout = Some(Duration::from_secs_f64(secs));
            }
            _ => unreachable!("checked against the known options"),
        }
    }
    options.command.extend(args);
    match (&options.bundle, options.command.is_empty()) {
        (None, true) => Err("no command given".into()),
        (Some(_), false) => Err(format!(
            "--bundle runs the bundle's own process; do not also give a command ({:?})",
            options.command
        )),
        _ => Ok(Request::Run(options)),
    }
}

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
fn phase(name: &str) {
    if PHASE_TIMES.load(std::sync::atomic::Ordering::Relaxed) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let ns = i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec);
        // One write per line, whole.
        let _ = std::io::stderr().write_all(format!("run: phase {name} {ns}\n").as_bytes());
    }
}

/// How a run ended.
enum Outcome {
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
        Request::Run(options) => options,
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

/// An absolute form of `path` (relative to the current directory).
fn absolute(path: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(path)
        .map_err(|e| RuntimeError::io(format!("resolving {}", path.display()), e))
}

/// Whether the bundle's `config.json` asks for a terminal.
fn bundle_wants_terminal(bundle: &Path) -> Result<bool, RuntimeError> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| {
        RuntimeError::InvalidArgument(format!(
            "{} is not an OCI bundle: reading {}: {e}",
            bundle.display(),
            path.display()
        ))
    })?;
    let spec: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        RuntimeError::InvalidArgument(format!("{} is not valid JSON: {e}", path.display()))
    })?;
    Ok(spec
        .pointer("/process/terminal")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false))
}

/// Whether the driver runs rootless (it decides from the effective uid).
fn is_rootless() -> bool {
    ConmonConfig::new("runc", "/").rootless_uid.is_some()
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

    let mut built_bundle = None;
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
            let mut builder = BundleBuilder::new()
                .args(options.command.iter().cloned())
                .terminal(options.tty)
                .in_dir(&work_dir);
            if is_rootless() {
                // Container root is the caller (and its subordinate ids
                // when the host has them for it).
                builder = builder.rootless(RootlessMapping::for_current_user());
            }
            let bundle = builder.build()?;
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
        std::mem::forget(built_bundle);
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
             run: clean up with: {delete} && rm -rf {dir}",
            id = container.id(),
            delete = delete.join(" "),
            dir = kept.display(),
        );
        return Ok(Outcome::Detached);
    }
    // Whatever else happened, the container goes, and with it conmon.
    let deleted = runtime.delete(&container).await;
    phase("deleted");
    if deleted.is_err() {
        // The container may still use its bundle: keep the files for
        // whoever cleans up by hand.
        std::mem::forget(built_bundle);
        let _ = writeln!(
            std::io::stderr(),
            "run: leaving {} in place",
            work.keep().display()
        );
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

/// Aborts a task when dropped, so that no path leaves one behind.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The local terminal in raw mode; dropping it restores the saved settings.
struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Saves the settings of the terminal on stdin and makes it raw.
    fn enter() -> Result<Self, RuntimeError> {
        let io = |e: nix::Error| RuntimeError::io("putting the terminal in raw mode", e.into());
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).map_err(io)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(io)?;
        Ok(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Err(e) = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved) {
            tracing::warn!(error = %e, "restoring the terminal settings");
        }
    }
}

/// The size of the local terminal: the one on stdin, else the one on
/// stdout; `None` without a terminal or with an unusable size (0x0).
fn local_terminal_size() -> Option<TerminalSize> {
    let size = if std::io::stdin().is_terminal() {
        rustix::termios::tcgetwinsize(std::io::stdin())
    } else if std::io::stdout().is_terminal() {
        rustix::termios::tcgetwinsize(std::io::stdout())
    } else {
        return None;
    };
    let size = size.ok()?;
    TerminalSize::new(size.ws_row, size.ws_col).ok()
}

/// A sink writing to the local stdout or stderr (`fd`) from a thread of its
/// own, in large blocking writes: tokio's `Stdout` would hand every write
/// to the blocking pool and wait for it, a round trip between threads per
/// chunk of output, and a non-blocking descriptor would change the flags
/// of a file description the shell shares.
fn local_output(name: &str, fd: BorrowedFd<'_>) -> Result<OutputStream, RuntimeError> {
    let io = |e| RuntimeError::io(format!("setting up the {name}"), e);
    let file = std::fs::File::from(fd.try_clone_to_owned().map_err(io)?);
    Ok(Box::pin(WriterThread::spawn(name, file).map_err(io)?))
}

/// Resizes the container's terminal to the local one's at each SIGWINCH.
async fn forward_resizes(
    runtime: Arc<ConmonRuntime>,
    container: ContainerDescription,
    mut winch: tokio::signal::unix::Signal,
) {
    while winch.recv().await.is_some() {
        let Some(size) = local_terminal_size() else {
            continue;
        };
        // The container may be gone already; the session's end reports it.
        if let Err(e) = runtime.resize_terminal(&container, size).await {
            tracing::debug!(error = %e, "forwarding a terminal resize");
        }
    }
}

/// Why the attach session task ended without an outcome.
fn session_failed(
    joined: Result<runtime_api::Result<AttachOutcome>, tokio::task::JoinError>,
) -> RuntimeError {
    match joined {
        Ok(Err(e)) => e,
        Ok(Ok(outcome)) => RuntimeError::io(
            "attaching to the container",
            std::io::Error::other(format!("the session ended before connecting ({outcome:?})")),
        ),
        Err(e) => RuntimeError::io("attaching to the container", std::io::Error::other(e)),
    }
}

/// Attaches to the created container, starts it and follows it until it
/// exits, the client detaches or a signal arrives (which stops it).
async fn run_created(
    runtime: &Arc<ConmonRuntime>,
    container: &ContainerDescription,
    options: &Options,
    mut interrupted: watch::Receiver<bool>,
) -> Result<Outcome, RuntimeError> {
    if *interrupted.borrow() {
        return stop(runtime, container).await;
    }
    let stdin: Option<InputStream> = if options.interactive {
        Some(Box::pin(tokio::io::stdin()))
    } else {
        None
    };
    let streams = AttachStreams {
        stdin,
        stdout: Some(local_output("stdout-writer", std::io::stdout().as_fd())?),
        stderr: Some(local_output("stderr-writer", std::io::stderr().as_fd())?),
    };
    let ready = AttachReady::new();
    let mut attach_options = AttachOptions::default()
        .with_framing(Framing::Raw)
        .with_ready(ready.clone());
    attach_options.detach_keys = options.detach_keys.clone();
    let mut session = AbortOnDrop(tokio::spawn({
        let runtime = Arc::clone(runtime);
        let container = container.clone();
        async move { runtime.attach(&container, streams, attach_options).await }
    }));
    // Attach before the start, so that no output is missed.
    tokio::select! {
        () = ready.wait() => {}
        joined = &mut session.0 => return Err(session_failed(joined)),
        _ = interrupted.wait_for(|on| *on) => return stop(runtime, container).await,
    }
    phase("attached");

    // Dropped (restoring the terminal) on every way out of this function.
    let _raw = if container.terminal() && options.interactive && std::io::stdin().is_terminal() {
        Some(RawTerminal::enter()?)
    } else {
        None
    };
    let mut _resizes = None;
    if container.terminal() {
        if let Some(size) = local_terminal_size() {
            // Listen before reading the size, so no change is missed.
            let winch = signal(SignalKind::window_change())
                .map_err(|e| RuntimeError::io("installing the SIGWINCH handler", e))?;
            // Before the start, so the process sees the right size at once.
            runtime.resize_terminal(container, size).await?;
            _resizes = Some(AbortOnDrop(tokio::spawn(forward_resizes(
                Arc::clone(runtime),
                container.clone(),
                winch,
            ))));
        }
    }

    runtime.start(container).await?;
    phase("started");
    let ended = tokio::select! {
        joined = &mut session.0 => joined,
        _ = interrupted.wait_for(|on| *on) => {
            let stopped = stop(runtime, container).await;
            // Let the session hand over the container's last words.
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut session.0).await;
            return stopped;
        }
    };
    match ended {
        Ok(Ok(AttachOutcome::Detached)) => Ok(Outcome::Detached),
        Ok(Ok(AttachOutcome::StreamsEnded | AttachOutcome::Cancelled)) => {
            phase("output");
            // The output is complete; the exit code follows.
            tokio::select! {
                code = runtime.wait(container, FOREVER) => {
                    let code = code?;
                    phase("exited");
                    Ok(Outcome::Exited(code))
                }
                _ = interrupted.wait_for(|on| *on) => stop(runtime, container).await,
            }
        }
        failed => Err(session_failed(failed)),
    }
}

async fn stop(
    runtime: &ConmonRuntime,
    container: &ContainerDescription,
) -> Result<Outcome, RuntimeError> {
    runtime.stop(container, STOP_TIMEOUT, false).await?;
    Ok(Outcome::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Request, String> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn options_stop_at_the_command_or_double_dash() {
        let Ok(Request::Run(o)) = parse(&[
            "--runtime=runsc",
            "--runtime-flag",
            "--debug",
            "--id",
            "x",
            "sh",
            "-c",
            "--id",
        ]) else {
            panic!("parses");
        };
        assert_eq!(o.runtime.as_deref(), Some("runsc"));
        assert_eq!(o.runtime_flags, ["--debug"]);
        assert_eq!(o.id.as_deref(), Some("x"));
        assert_eq!(o.command, ["sh", "-c", "--id"]);
        assert!(!o.interactive && !o.tty);

        let Ok(Request::Run(o)) = parse(&["--", "-weird", "--help"]) else {
            panic!("parses");
        };
        assert_eq!(o.command, ["-weird", "--help"]);
        assert!(!o.phase_times);
        let Ok(Request::Run(o)) = parse(&["--phase-times", "true", "--phase-times"]) else {
            panic!("parses");
        };
        assert!(o.phase_times);
        assert_eq!(o.command, ["true", "--phase-times"]);
        assert!(matches!(parse(&["-h", "x"]), Ok(Request::Help)));
    }

    #[test]
    fn interactive_terminal_and_detach_keys() {
        for args in [
            &["-it", "sh"][..],
            &["-ti", "sh"],
            &["-i", "-t", "sh"],
            &["--interactive", "--tty", "sh"],
        ] {
            let Ok(Request::Run(o)) = parse(args) else {
                panic!("{args:?} parses");
            };
            assert!(o.interactive && o.tty, "{args:?}");
            assert_eq!(o.command, ["sh"]);
            assert_eq!(o.detach_keys, None);
        }
        let Ok(Request::Run(o)) = parse(&["-i", "--detach-keys", "ctrl-a,x", "cat", "-t"]) else {
            panic!("parses");
        };
        assert!(o.interactive && !o.tty);
        assert_eq!(o.detach_keys.as_deref(), Some("ctrl-a,x"));
        assert_eq!(o.command, ["cat", "-t"]);
        let Ok(Request::Run(o)) = parse(&["--detach-keys=", "-i", "cat"]) else {
            panic!("an empty sequence (never detach) parses");
        };
        assert_eq!(o.detach_keys.as_deref(), Some(""));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["--"],
            &["--nope", "x"],
            &["--runtime"],
            &["--create-timeout", "-1", "x"],
            &["--bundle", "/b", "echo"],
            &["-ix", "sh"],
            &["--detach-keys", "ctrl-1", "sh"],
            &["--detach-keys"],
            &["--tty=yes", "sh"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(parse(&["--bundle", "/b"]), Ok(Request::Run(_))));
        assert!(matches!(
            parse(&["-t", "--bundle", "/b"]),
            Ok(Request::Run(_))
        ));
    }
}
