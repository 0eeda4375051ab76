//! Serves one busybox container over the subset of the Docker Engine API
//! that standard Docker clients need to attach to it, on a Unix socket.
//!
//! ```text
//! cargo run -p conmon-driver --example http_attach -- \
//!     --socket /tmp/attach.sock --id demo -- sh -c 'echo out; echo err >&2; exit 4'
//! cargo run -p conmon-driver --example http_attach -- \
//!     --socket /tmp/attach.sock --id demo --tty --interactive -- sh
//! ```
//!
//! On start it builds an OCI bundle in a temporary directory whose root
//! filesystem is the system's static busybox and whose process is
//! `CMD ARGS...` (`testkit::BundleBuilder`), creates the container through
//! [`ConmonRuntime`] (not started yet), then prints `listening on PATH` on
//! stdout and serves HTTP/1.1 on the socket until SIGINT or SIGTERM, which
//! stop the container (SIGKILL after 10 s), delete it, remove the socket and
//! exit with 0.
//!
//! # With a real Docker client
//!
//! ```text
//! # the container is created, not started: start it attached
//! DOCKER_HOST=unix:///tmp/attach.sock docker start -a demo        # add -i with --interactive
//! # or, once it runs (e.g. started with curl), attach to it
//! DOCKER_HOST=unix:///tmp/attach.sock docker attach demo
//! # anything speaking HTTP over the socket works too
//! curl --unix-socket /tmp/attach.sock http://d/v1.41/containers/demo/json
//! ```
//!
//! With `--tty --interactive`, `docker start -ai demo` gives an interactive
//! shell whose terminal follows the client's window size; the detach keys
//! (default `ctrl-p,ctrl-q`, or `--detach-keys`) leave it running, and
//! `docker attach demo` reattaches (the container's stdin stays open when
//! a client leaves).
//!
//! # Endpoints
//!
//! Every path may carry an API version prefix (`/v1.41/...`, any `/vX.Y`),
//! which is ignored. `{id}` is the container id given with `--id`; any other
//! id gets 404 `{"message": "No such container: X"}`, an unknown route 404
//! `{"message": "page not found"}`. Every response carries `Api-Version`.
//!
//! - `GET|HEAD /_ping`: 200 `OK`.
//! - `GET /containers/{id}/json`: `Id`, `Name`, `Created`, `Path`, `Args`,
//!   `Config` (`Tty`, `OpenStdin`, `StdinOnce`, `Cmd`, `Image`), `State`
//!   (`Status`: created|running|paused|exited, `Running`, `Paused`, `Pid`,
//!   `ExitCode`, 0 while unknown, `OOMKilled`, `StartedAt`, `FinishedAt`)
//!   and `HostConfig.AutoRemove`.
//! - `POST /containers/{id}/start`: 204, or 304 once it was started (a
//!   container cannot be started again after it exited).
//! - `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&detachKeys=&logs=`
//!   with `Connection: Upgrade` and `Upgrade: tcp`: 101, then the connection
//!   carries the session: Docker's multiplexed frames
//!   (`application/vnd.docker.multiplexed-stream`) without a terminal, raw
//!   bytes (`application/vnd.docker.raw-stream`) with one; what the client
//!   sends is the container's stdin when `stdin` is set and the container
//!   was created with `--interactive`. The server connects to the
//!   container's attach socket *before* it answers 101, so a client that
//!   starts the container after the answer misses no output. The flags are
//!   Go booleans (`1`, `true`, `0`, `false`...; empty is false); when none
//!   of `stdin`, `stdout`, `stderr` is given all three are on, otherwise a
//!   missing one is off, as Docker clients expect. Bad values, all three
//!   off, `stream=0` (logs are not replayed; `logs` itself is accepted and
//!   ignored), invalid detach keys or a missing upgrade get 400 before any
//!   upgrade; a container that exited gets 409. Errors after the upgrade
//!   are written in-band as podman does: `Error: <message>\n`, in a stderr
//!   frame without a terminal. When the session ends (output closed, the
//!   client detached or the server is stopping) the connection's write side
//!   is shut down.
//! - `POST /containers/{id}/resize?h=&w=`: 200; 400 for a missing or invalid
//!   size, 409 when the container is not running.
//! - `POST /containers/{id}/wait?condition=`: 200 at once (the headers are
//!   flushed, as Docker does, so a client can wait before it starts the
//!   container), then `{"StatusCode": N}` once the container has exited,
//!   whatever the condition (`not-running`, `next-exit` or `removed`).
//!
//! Options (before `CMD`; `--` ends them):
//!
//! - `--socket PATH`: where to listen (required); a stale socket there is
//!   replaced, one that a server still answers on is an error;
//! - `-t`, `--tty`: give the container a terminal;
//! - `-i`, `--interactive`: keep the container's stdin open for attach;
//! - `--runtime NAME|PATH`: the OCI runtime (default `runc`);
//! - `--id ID`: the container id (default `http-attach-<pid>`);
//! - `-h`, `--help`: print the usage.
//!
//! Logging goes to stderr, filtered by `RUST_LOG` (default `warn`). It needs
//! root, conmon, the runtime and busybox-static.

mod api;
mod docker;
mod http;
mod streams;

use api::*;
use docker::*;
use http::*;
use streams::*;

use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use attach::{encode_header, DetachKeys, MuxStream};
use conmon_driver::{ConmonConfig, ConmonRuntime, LogLevel};
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use runtime_api::{
    AttachCancel, AttachOptions, AttachReady, AttachStreams, ContainerDescription, ContainerId,
    ContainerStatus, CreateOptions, Framing, InputStream, LogDriver, OciRuntime, OutputStream,
    RuntimeError, TerminalSize,
};
use serde_json::json;
use testkit::BundleBuilder;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn};

/// The API version this server speaks.
const API_VERSION: &str = "1.41";
/// The exit status for bad options and errors, as podman uses.
const ERROR_EXIT: u8 = 125;
/// "No limit in practice" for waits.
const FOREVER: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the stop signal gets before SIGKILL at shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once unless `--max-connections` says otherwise.
const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send a request's headers unless
/// `--header-timeout` says otherwise.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
Usage: http_attach --socket PATH [OPTIONS] [--] CMD [ARGS...]

Creates CMD in a busybox container and serves the Docker Engine API subset
needed to attach to it (ping, inspect, start, attach, resize, wait) on PATH.

Options:
      --socket PATH         Unix socket to listen on (required)
  -t, --tty                 give the container a terminal
  -i, --interactive         keep the container's stdin open for attach
      --runtime NAME|PATH   OCI runtime (default: runc); a value with '/' is a path
      --id ID               container id (default: http-attach-<pid>)
      --max-connections N   connections served at once (default: 64); more
                            wait in the listen queue
      --header-timeout SECS a connection that has not sent a request's
                            headers within SECS is closed (default: 10)
  -h, --help                print this help
      --                    end of options

Then, e.g.: DOCKER_HOST=unix://PATH docker start -a ID";

// ---------------------------------------------------------------------------
// Options

/// The parsed command line.
#[derive(Debug, Default)]
struct Options {
    socket: Option<PathBuf>,
    tty: bool,
    interactive: bool,
    runtime: Option<String>,
    id: Option<String>,
    max_connections: Option<usize>,
    header_timeout: Option<Duration>,
    command: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
enum Invocation {
    Serve(Options),
    Help,
}

/// Parses the arguments after the program name. `Err` is a usage error.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, String> {
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
        match arg.as_str() {
            "--" => break,
            "-h" | "--help" => return Ok(Invocation::Help),
            "-t" | "--tty" => options.tty = true,
            "-i" | "--interactive" => options.interactive = true,
            "-it" | "-ti" => {
                options.tty = true;
                options.interactive = true;
            }
            _ if !arg.starts_with('-') || arg == "-" => {
                options.command.push(arg);
                break;
            }
            _ => {
                let (name, inline) = match arg.split_once('=') {
                    Some((name, value)) if name.starts_with("--") => (name, Some(value)),
                    _ => (arg.as_str(), None),
                };
                if ![
                    "--socket",
                    "--runtime",
                    "--id",
                    "--max-connections",
                    "--header-timeout",
                ]
                .contains(&name)
                {
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
                let positive = |value: &str| {
                    value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("option {name} needs a positive number, got {value:?}")
                    })
                };
                match name {
                    "--socket" => options.socket = Some(PathBuf::from(value)),
                    "--runtime" => options.runtime = Some(value),
                    "--max-connections" => {
                        options.max_connections = Some(positive(&value)? as usize)
                    }
                    "--header-timeout" => {
                        options.header_timeout = Some(Duration::from_secs(positive(&value)?))
                    }
                    _ => options.id = Some(value),
                }
            }
        }
    }
    options.command.extend(args);
    if options.socket.is_none() {
        return Err("--socket PATH is required".into());
    }
    if options.command.is_empty() {
        return Err("no command given".into());
    }
    Ok(Invocation::Serve(options))
}

// ---------------------------------------------------------------------------
// Errors and main

/// What ends the server with a failure.
#[derive(Debug)]
enum ServeError {
    /// From the driver.
    Runtime(RuntimeError),
    /// Anything else, already worded.
    Other(String),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Runtime(e) => e.fmt(f),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl From<RuntimeError> for ServeError {
    fn from(e: RuntimeError) -> Self {
        Self::Runtime(e)
    }
}

impl ServeError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Runtime(e) => u8::try_from(e.exit_code()).unwrap_or(ERROR_EXIT),
            Self::Other(_) => ERROR_EXIT,
        }
    }
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(Invocation::Serve(options)) => options,
        Ok(Invocation::Help) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "http_attach: {message}\n\n{USAGE}");
            return ExitCode::from(ERROR_EXIT);
        }
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
            return ExitCode::from(ERROR_EXIT);
        }
    };
    let result = tokio.block_on(run(options));
    // Connection tasks still open (a client attached to nothing, a wait
    // that lost its container) must not hold the exit up.
    tokio.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "Error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Listens for SIGINT and SIGTERM from now on; the receiver turns true at
/// the first one.
fn interruptions() -> Result<watch::Receiver<bool>, ServeError> {
    let io = |e| RuntimeError::io("installing the SIGINT/SIGTERM handlers", e);
    let mut sigint = signal(SignalKind::interrupt()).map_err(io)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = sigint.recv() => "SIGINT",
            _ = sigterm.recv() => "SIGTERM",
        };
        let _ = writeln!(std::io::stderr(), "http_attach: got {name}; shutting down");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// An absolute form of `path` (relative to the current directory).
fn absolute(path: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(path)
        .map_err(|e| RuntimeError::io(format!("resolving {}", path.display()), e))
}

/// The driver's settings.
fn make_config(runtime: Option<&str>, tmp_dir: PathBuf) -> Result<ConmonConfig, RuntimeError> {
    let mut builder = ConmonConfig::builder(runtime.unwrap_or("runc"), tmp_dir)
        // conmon's own messages go to its stderr, which the driver
        // reports; the host may have no syslog.
        .syslog(false)
        .log_level(LogLevel::from_tracing());
    if builder.runtime_short_name() == "runsc" {
        // gVisor's default network stack needs a network namespace set up
        // by an engine; there is none here.
        builder = builder.runtime_flag("--network=none");
    }
    Ok(builder.build()?)
}

/// Binds `path`, replacing a stale socket (one nobody answers on).
fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServeError::Other(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::Other(format!(
                "{} is in use by another server",
                path.display()
            )));
        }
        std::fs::remove_file(path)
            .map_err(|e| RuntimeError::io(format!("removing stale {}", path.display()), e))?;
    }
    UnixListener::bind(path)
        .map_err(|e| RuntimeError::io(format!("listening on {}", path.display()), e).into())
}

async fn run(options: Options) -> Result<(), ServeError> {
    let mut interrupted = interruptions()?;
    let max_connections = options.max_connections.unwrap_or(MAX_CONNECTIONS);
    let header_timeout = options.header_timeout.unwrap_or(HEADER_TIMEOUT);
    let socket = options.socket.clone().expect("checked by parse_args");
    let work = tempfile::Builder::new()
        .prefix("conmon-http-attach-")
        .tempdir()
        .map_err(|e| RuntimeError::io("creating the temporary directory", e))?;
    let work_dir = absolute(work.path())?;
    let bundle = BundleBuilder::new()
        .args(options.command.iter().cloned())
        .terminal(options.tty)
        .in_dir(&work_dir)
        .build()
        .map_err(|e| ServeError::Other(format!("building the bundle: {e}")))?;

    let runtime = ConmonRuntime::new(make_config(
        options.runtime.as_deref(),
        work_dir.join("tmp"),
    )?)?;
    let id = ContainerId::new(
        options
            .id
            .clone()
            .unwrap_or_else(|| format!("http-attach-{}", std::process::id())),
    )?;
    let container = ContainerDescription::builder(id, bundle.path(), work_dir.join("run"))
        .log(LogDriver::KubernetesFile, work_dir.join("ctr.log"))
        .terminal(options.tty)
        .stdin(options.interactive)
        // Clients come and go (detach, reattach): the first one to leave
        // must not close the container's stdin.
        .leave_stdin_open(options.interactive)
        .build()?;

    let listener = bind(&socket)?;
    let created = runtime.create(&container, CreateOptions::default()).await;
    if let Err(e) = created {
        let _ = std::fs::remove_file(&socket);
        return Err(e.into());
    }
    let server = Arc::new(Server {
        runtime,
        container,
        command: options.command,
        created_at: SystemTime::now(),
        start_lock: tokio::sync::Mutex::new(()),
        shutdown: interrupted.clone(),
    });

    if !*interrupted.borrow() {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on {}", socket.display());
        let _ = stdout.flush();
    }
    // A bounded number of connections at once: the next accept waits for
    // a slot, and further clients wait in the listen queue.
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = interrupted.wait_for(|on| *on) => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let server = Arc::clone(&server);
                    tokio::spawn(async move {
                        serve_connection(server, stream, header_timeout).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of fds and the like: let a moment pass instead of
                    // spinning on the same error.
                    warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = interrupted.wait_for(|on| *on) => break,
        }
    }

    // No new clients; attach sessions see the same signal and end.
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    let stopped = server
        .runtime
        .stop(&server.container, STOP_TIMEOUT, false)
        .await;
    let deleted = server.runtime.delete(&server.container).await;
    if let Err(e) = &deleted {
        // The container may still use its bundle: keep the files for
        // whoever cleans up by hand.
        std::mem::forget(bundle);
        let _ = writeln!(
            std::io::stderr(),
            "http_attach: deleting {}: {e}; leaving {} in place",
            server.container.id(),
            work.keep().display()
        );
    }
    stopped?;
    deleted?;
    Ok(())
}
