//! Runs one command in a busybox container through conmon, like a tiny
//! `podman run --rm`, and exits with the container's exit code.
//!
//! ```text
//! cargo run -p conmon-driver --example run -- sh -c 'echo out; echo err >&2; exit 3'
//! cargo run -p conmon-driver --example run -- --runtime runsc -- echo hi
//! cargo run -p conmon-driver --example run -- --bundle /path/to/bundle
//! ```
//!
//! What it does, step by step:
//!
//! 1. builds an OCI bundle in a temporary directory whose root filesystem is
//!    the system's static busybox and whose process is `CMD ARGS...`
//!    (`testkit::BundleBuilder`), unless `--bundle DIR` names an existing
//!    bundle, which is then used as it is (its own process, no `CMD`);
//! 2. makes a [`ConmonRuntime`] whose tmp dir (exit files, sockets, persist
//!    dirs) is in that temporary directory, with a `k8s-file` log next to it;
//! 3. creates, starts and waits for the container, then deletes it;
//! 4. prints what the container wrote on stdout to stdout and what it wrote
//!    on stderr to stderr (read from the log after the delete, when conmon has
//!    exited and the log is complete), and exits with the container's code.
//!
//! Errors are printed as `Error: ...` on stderr, and the exit status follows
//! podman: 125 for errors of the engine or runtime (including bad options),
//! 126 when the command cannot be invoked, 127 when it is not found. A
//! container that was created is always deleted, also after an error.
//! SIGINT or SIGTERM (Ctrl-C) stops the container (SIGKILL after 10 s),
//! deletes it and exits with 130.
//!
//! Options (before `CMD`; `--` ends them):
//!
//! - `--runtime NAME|PATH`: the OCI runtime (default `runc`); a value with a
//!   `/` is a path to the binary;
//! - `--runtime-flag FLAG`: a global runtime flag, repeatable (for `runsc`
//!   the default is `--network=none`);
//! - `--conmon PATH`: the conmon binary (default: podman's usual places,
//!   then `$PATH`);
//! - `--bundle DIR`: run this bundle instead of building one;
//! - `--id ID`: the container id (default `demo-<pid>`);
//! - `--create-timeout SECS`: the limit for conmon's launch (default 240);
//! - `-h`, `--help`: print the usage.
//!
//! Logging goes to stderr, filtered by `RUST_LOG` (default `warn`); conmon
//! gets the matching `--log-level`. It needs root, conmon, the runtime and
//! busybox-static (`bash scripts/install-deps.sh` installs them on Debian).

use std::ffi::OsString;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use conmon_driver::{read_k8s_log, ConmonConfig, ConmonRuntime, LogLevel};
use runtime_api::{
    ContainerDescription, ContainerId, CreateOptions, LogDriver, OciRuntime, RuntimeError,
};
use testkit::{BundleBuilder, TestkitError};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The exit status for bad options and engine errors, as podman uses.
const USAGE_EXIT: u8 = 125;
/// The exit status after an interruption (128 + SIGINT).
const INTERRUPTED_EXIT: u8 = 130;
/// "No limit in practice" for the wait.
const FOREVER: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the stop signal gets before SIGKILL after an interruption.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
Usage: run [OPTIONS] [--] CMD [ARGS...]
       run [OPTIONS] --bundle DIR

Runs CMD in a busybox container through conmon and exits with its exit code.

Options:
      --runtime NAME|PATH     OCI runtime (default: runc); a value with '/' is a path
      --runtime-flag FLAG     global runtime flag, repeatable (runsc default: --network=none)
      --conmon PATH           conmon binary (default: podman's places, then $PATH)
      --bundle DIR            run this existing OCI bundle as it is (no CMD)
      --id ID                 container id (default: demo-<pid>)
      --create-timeout SECS   limit for conmon's launch (default: 240)
  -h, --help                  print this help
      --                      end of options

Environment: RUST_LOG filters the log written to stderr (default: warn).";

/// The parsed command line.
#[derive(Debug, Default)]
struct Options {
    runtime: Option<String>,
    runtime_flags: Vec<String>,
    conmon: Option<PathBuf>,
    bundle: Option<PathBuf>,
    id: Option<String>,
    create_timeout: Option<Duration>,
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
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_string(), Some(value)),
            _ => (arg.clone(), None),
        };
        let known = [
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
        if value.is_empty() {
            return Err(format!("option {name} needs a non-empty value"));
        }
        match name.as_str() {
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

/// How a run ended.
enum Outcome {
    /// The container exited with this code.
    Exited(i32),
    /// A signal asked us to stop; the container was stopped.
    Interrupted,
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

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Error: starting the async runtime: {e}");
            return ExitCode::from(USAGE_EXIT);
        }
    };
    // The temporary directories are dropped (removed) inside `run`, before
    // the exit status is returned.
    let code = match tokio.block_on(run(options)) {
        Ok(Outcome::Exited(code)) => u8::try_from(code).unwrap_or(USAGE_EXIT),
        Ok(Outcome::Interrupted) => INTERRUPTED_EXIT,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Error: {e}");
            u8::try_from(e.exit_code()).unwrap_or(USAGE_EXIT)
        }
    };
    ExitCode::from(code)
}

/// Listens for SIGINT and SIGTERM from now on; the receiver turns true at
/// the first one. Installing the handlers first means an interruption during
/// create or start is acted upon once that step is done, instead of killing
/// the demo and leaking the container.
fn interruptions() -> Result<watch::Receiver<bool>, RuntimeError> {
    let io = |e| RuntimeError::io("installing the SIGINT/SIGTERM handlers", e);
    let mut sigint = signal(SignalKind::interrupt()).map_err(io)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = sigint.recv() => "SIGINT",
            _ = sigterm.recv() => "SIGTERM",
        };
        let _ = writeln!(std::io::stderr(), "run: got {name}; stopping the container");
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

/// The driver's settings from the options.
fn make_config(options: &Options, tmp_dir: PathBuf) -> Result<ConmonConfig, RuntimeError> {
    let runtime = options.runtime.as_deref().unwrap_or("runc");
    let mut config = if runtime.contains('/') {
        let path = absolute(Path::new(runtime))?;
        // The driver would fall back to `$PATH` for a missing path; a demo
        // asked for a specific binary should say it is not there instead.
        if !path.is_file() {
            return Err(RuntimeError::InvalidArgument(format!(
                "OCI runtime {} is not a file",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut config = ConmonConfig::new(name, tmp_dir);
        config.runtime_paths = vec![path];
        config
    } else {
        ConmonConfig::new(runtime, tmp_dir)
    };
    config.runtime_flags = options.runtime_flags.clone();
    if config.runtime_name == "runsc" && config.runtime_flags.is_empty() {
        // gVisor's default network stack needs a network namespace set up
        // by the engine; the demo has none.
        config.runtime_flags.push("--network=none".into());
    }
    if let Some(conmon) = &options.conmon {
        config.conmon_path = Some(absolute(conmon)?);
    }
    if let Some(limit) = options.create_timeout {
        config.timeouts.create = limit;
    }
    // conmon's own messages go to its stderr, which the driver reports; the
    // host may have no syslog.
    config.syslog = false;
    config.log_level = LogLevel::from_tracing();
    Ok(config)
}

async fn run(options: Options) -> Result<Outcome, DemoError> {
    let interrupted = interruptions()?;
    let work = tempfile::Builder::new()
        .prefix("conmon-demo-")
        .tempdir()
        .map_err(|e| RuntimeError::io("creating the temporary directory", e))?;
    let work_dir = absolute(work.path())?;

    let mut built_bundle = None;
    let bundle_dir = match &options.bundle {
        Some(dir) => absolute(dir)?,
        None => {
            let bundle = BundleBuilder::new()
                .args(options.command.iter().cloned())
                .in_dir(&work_dir)
                .build()?;
            let dir = bundle.path().to_path_buf();
            built_bundle = Some(bundle);
            dir
        }
    };
    let terminal = bundle_wants_terminal(&bundle_dir)?;

    let runtime = ConmonRuntime::new(make_config(&options, work_dir.join("tmp"))?)?;
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
    let log_path = work_dir.join("ctr.log");
    let container =
        ContainerDescription::builder(id, &bundle_dir, work_dir.join("run").join("ctr"))
            .log(LogDriver::KubernetesFile, &log_path)
            .terminal(terminal)
            .build()?;

    if *interrupted.borrow() {
        return Ok(Outcome::Interrupted);
    }
    // A failed create cleans up after itself.
    runtime.create(&container, CreateOptions::default()).await?;
    let outcome = run_created(&runtime, &container, interrupted).await;
    // Whatever happened, the container goes, and with it conmon.
    let deleted = runtime.delete(&container).await;
    // Print what the container wrote, also after an error or interruption.
    let logged = read_k8s_log(&log_path).map(|(stdout, stderr)| {
        let _ = std::io::stdout().write_all(&stdout);
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().write_all(&stderr);
    });
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
        (Ok(outcome), Ok(())) => {
            logged?;
            Ok(outcome)
        }
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

/// Starts the created container and waits for it, stopping it when a
/// signal arrives.
async fn run_created(
    runtime: &ConmonRuntime,
    container: &ContainerDescription,
    mut interrupted: watch::Receiver<bool>,
) -> Result<Outcome, RuntimeError> {
    if *interrupted.borrow() {
        return stop(runtime, container).await;
    }
    runtime.start(container).await?;
    tokio::select! {
        code = runtime.wait(container, FOREVER) => Ok(Outcome::Exited(code?)),
        _ = interrupted.wait_for(|on| *on) => stop(runtime, container).await,
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

        let Ok(Request::Run(o)) = parse(&["--", "-weird", "--help"]) else {
            panic!("parses");
        };
        assert_eq!(o.command, ["-weird", "--help"]);
        assert!(matches!(parse(&["-h", "x"]), Ok(Request::Help)));
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
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(parse(&["--bundle", "/b"]), Ok(Request::Run(_))));
    }
}
