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
use hyper_util::rt::TokioIo;
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
                if !["--socket", "--runtime", "--id"].contains(&name) {
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
                match name {
                    "--socket" => options.socket = Some(PathBuf::from(value)),
                    "--runtime" => options.runtime = Some(value),
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
    let runtime = runtime.unwrap_or("runc");
    let mut config = if runtime.contains('/') {
        let path = absolute(Path::new(runtime))?;
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
    if config.runtime_name == "runsc" {
        // gVisor's default network stack needs a network namespace set up
        // by an engine; there is none here.
        config.runtime_flags.push("--network=none".into());
    }
    // conmon's own messages go to its stderr, which the driver reports; the
    // host may have no syslog.
    config.syslog = false;
    config.log_level = LogLevel::from_tracing();
    Ok(config)
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
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(Arc::clone(&server), stream));
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

// ---------------------------------------------------------------------------
// HTTP plumbing

/// A response body: all at once, or one chunk that comes later (after the
/// headers were sent).
enum Body {
    Full(Option<Bytes>),
    Later(oneshot::Receiver<Bytes>),
    Done,
}

impl Body {
    fn empty() -> Self {
        Self::Full(None)
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut *self {
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Later(rx) => {
                let data = ready!(Pin::new(rx).poll(cx));
                *self = Self::Done;
                Poll::Ready(data.ok().map(|d| Ok(Frame::data(d))))
            }
            Self::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None) | Self::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            Self::Full(None) | Self::Done => SizeHint::with_exact(0),
            Self::Later(_) => SizeHint::default(),
        }
    }
}

fn respond(status: StatusCode, content_type: Option<&'static str>, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    respond(
        status,
        Some("application/json"),
        Body::Full(Some(Bytes::from(text))),
    )
}

fn error_response(status: StatusCode, message: impl fmt::Display) -> Response<Body> {
    json_response(status, &json!({ "message": message.to_string() }))
}

fn empty_response(status: StatusCode) -> Response<Body> {
    respond(status, None, Body::empty())
}

/// The HTTP status for a driver error.
fn runtime_error_response(e: &RuntimeError) -> Response<Body> {
    let status = match e {
        RuntimeError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        RuntimeError::NoSuchContainer { .. } => StatusCode::NOT_FOUND,
        RuntimeError::ContainerNotRunning { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, e)
}

/// `%XX` decoding, and `+` as a space in query strings.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's query parameters, decoded, in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.unwrap_or("")
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key, true), percent_decode(value, true))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` as a Go boolean, `default` when absent; empty is false.
    fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True" | "on") => Ok(true),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(format!(
                "invalid value {other:?} for query parameter {key}: expected a boolean"
            )),
        }
    }

    /// `key` as a terminal dimension.
    fn dimension(&self, key: &str) -> Result<u16, String> {
        let value = self
            .get(key)
            .ok_or_else(|| format!("query parameter {key} is required"))?;
        value.parse().map_err(|_| {
            format!("invalid value {value:?} for query parameter {key}: expected a number of cells")
        })
    }
}

/// `path` without an API version prefix (`/v1.41/...`).
fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let version = &rest[..end];
        if version.starts_with(|c: char| c.is_ascii_digit())
            && version.chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            return &rest[end..];
        }
    }
    path
}

async fn serve_connection(server: Arc<Server>, stream: UnixStream) {
    let service = service_fn(move |request| {
        let server = Arc::clone(&server);
        async move {
            let mut response = server.handle(request).await;
            response
                .headers_mut()
                .insert("api-version", HeaderValue::from_static(API_VERSION));
            Ok::<_, Infallible>(response)
        }
    });
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        debug!(error = %e, "connection ended");
    }
}

// ---------------------------------------------------------------------------
// The upgraded connection as attach streams

type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// A value that arrives once the connection is upgraded: the session is
/// set up (and connected to conmon) before the 101 is sent.
enum Pending<T> {
    Waiting(oneshot::Receiver<T>),
    Ready(T),
    Gone,
}

impl<T> Pending<T> {
    fn poll_get(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<&mut T>> {
        if let Self::Waiting(rx) = self {
            *self = match ready!(Pin::new(rx).poll(cx)) {
                Ok(value) => Self::Ready(value),
                Err(_) => Self::Gone,
            };
        }
        match self {
            Self::Ready(value) => Poll::Ready(Ok(value)),
            _ => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client's connection was not upgraded",
            ))),
        }
    }
}

/// The client's side as the container's stdin.
struct ClientReader(Pending<ReadHalf<Upgraded>>);

impl AsyncRead for ClientReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let reader = ready!(self.0.poll_get(cx))?;
        Pin::new(reader).poll_read(cx, buf)
    }
}

/// The client's side as the output sink(s), shared so that the session's
/// end can still write an error and shut the connection down.
#[derive(Clone)]
struct ClientWriter(Arc<Mutex<Pending<WriteHalf<Upgraded>>>>);

impl ClientWriter {
    fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut WriteHalf<Upgraded>>, &mut Context<'_>) -> Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let writer = ready!(pending.poll_get(cx))?;
        op(Pin::new(writer), cx)
    }

    fn sink(&self) -> OutputStream {
        Box::pin(self.clone())
    }
}

impl AsyncWrite for ClientWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_with(cx, |w, cx| w.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_with(cx, |w, cx| w.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_with(cx, |w, cx| w.poll_shutdown(cx))
    }
}

// ---------------------------------------------------------------------------
// The API

/// The one container and what serving it needs.
struct Server {
    runtime: ConmonRuntime,
    container: ContainerDescription,
    command: Vec<String>,
    created_at: SystemTime,
    /// Serializes starts, so that two clients cannot both start it.
    start_lock: tokio::sync::Mutex<()>,
    /// Turns true when the server shuts down.
    shutdown: watch::Receiver<bool>,
}

/// The container endpoints.
enum Action {
    Inspect,
    Start,
    Attach,
    Resize,
    Wait,
}

impl Server {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let path = strip_version(request.uri().path()).to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = request.method().clone();
        debug!(%method, uri = %request.uri(), "request");
        let (id, action) = match (&method, segments.as_slice()) {
            (&Method::GET | &Method::HEAD, ["_ping"]) => return ping(),
            (_, ["containers", id, action]) => {
                let action = match (&method, *action) {
                    (&Method::GET, "json") => Action::Inspect,
                    (&Method::POST, "start") => Action::Start,
                    (&Method::POST, "attach") => Action::Attach,
                    (&Method::POST, "resize") => Action::Resize,
                    (&Method::POST, "wait") => Action::Wait,
                    _ => return error_response(StatusCode::NOT_FOUND, "page not found"),
                };
                (percent_decode(id, false), action)
            }
            _ => return error_response(StatusCode::NOT_FOUND, "page not found"),
        };
        if id != self.container.id().as_str() {
            return error_response(StatusCode::NOT_FOUND, format!("No such container: {id}"));
        }
        let query = Query::parse(request.uri().query());
        match action {
            Action::Inspect => self.inspect().await,
            Action::Start => self.start().await,
            Action::Attach => self.attach(request, &query).await,
            Action::Resize => self.resize(&query).await,
            Action::Wait => self.wait(&query),
        }
    }

    async fn inspect(&self) -> Response<Body> {
        let state = match self.runtime.status(&self.container).await {
            Ok(state) => state,
            Err(e) => return runtime_error_response(&e),
        };
        let status = match state.status {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped | ContainerStatus::Exited => "exited",
        };
        let c = &self.container;
        json_response(
            StatusCode::OK,
            &json!({
                "Id": c.id().as_str(),
                "Name": format!("/{}", c.name()),
                "Created": rfc3339(Some(self.created_at)),
                "Path": self.command[0],
                "Args": self.command[1..],
                "Image": "busybox",
                "Config": {
                    "Tty": c.terminal(),
                    "OpenStdin": c.stdin(),
                    "StdinOnce": c.stdin() && !c.leave_stdin_open(),
                    "Cmd": self.command,
                    "Image": "busybox",
                },
                "State": {
                    "Status": status,
                    "Running": matches!(
                        state.status,
                        ContainerStatus::Running | ContainerStatus::Paused
                    ),
                    "Paused": state.status == ContainerStatus::Paused,
                    "Restarting": false,
                    "OOMKilled": state.oom_killed,
                    "Dead": false,
                    "Pid": state.pid.unwrap_or(0),
                    "ExitCode": state.exit_code.unwrap_or(0),
                    "Error": "",
                    "StartedAt": rfc3339(state.started_at),
                    "FinishedAt": rfc3339(state.finished_at),
                },
                "HostConfig": { "AutoRemove": false },
            }),
        )
    }

    async fn start(&self) -> Response<Body> {
        let _one_at_a_time = self.start_lock.lock().await;
        match self.runtime.status(&self.container).await {
            Ok(state) if state.status != ContainerStatus::Created => {
                return empty_response(StatusCode::NOT_MODIFIED)
            }
            Ok(_) => {}
            Err(e) => return runtime_error_response(&e),
        }
        match self.runtime.start(&self.container).await {
            Ok(()) => empty_response(StatusCode::NO_CONTENT),
            Err(e) => runtime_error_response(&e),
        }
    }

    async fn resize(&self, query: &Query) -> Response<Body> {
        let size = match (query.dimension("h"), query.dimension("w")) {
            (Ok(rows), Ok(cols)) => TerminalSize::new(rows, cols),
            (Err(e), _) | (_, Err(e)) => return error_response(StatusCode::BAD_REQUEST, e),
        };
        let size = match size {
            Ok(size) => size,
            Err(e) => return runtime_error_response(&e),
        };
        match self.runtime.status(&self.container).await {
            Ok(state) if state.status != ContainerStatus::Running => {
                return error_response(
                    StatusCode::CONFLICT,
                    format!("Container {} is not running", self.container.id()),
                )
            }
            Ok(_) => {}
            Err(e) => return runtime_error_response(&e),
        }
        match self.runtime.resize_terminal(&self.container, size).await {
            Ok(()) => empty_response(StatusCode::OK),
            Err(e) => runtime_error_response(&e),
        }
    }

    /// Sends the headers now and the status once the container exited, so
    /// a client can wait before it starts the container.
    fn wait(self: &Arc<Self>, query: &Query) -> Response<Body> {
        match query.get("condition") {
            None | Some("" | "not-running" | "next-exit" | "removed") => {}
            Some(other) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "invalid condition {other:?}: expected not-running, next-exit or removed"
                    ),
                )
            }
        }
        let (mut tx, rx) = oneshot::channel();
        let server = Arc::clone(self);
        tokio::spawn(async move {
            let waited = tokio::select! {
                waited = server.runtime.wait(&server.container, FOREVER) => waited,
                // The client went away: stop waiting for it.
                () = tx.closed() => return,
            };
            let body = match waited {
                Ok(code) => json!({ "StatusCode": code }),
                Err(e) => json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } }),
            };
            let _ = tx.send(Bytes::from(format!("{body}\n")));
        });
        respond(StatusCode::OK, Some("application/json"), Body::Later(rx))
    }

    async fn attach(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        query: &Query,
    ) -> Response<Body> {
        let settings = match AttachSettings::from_request(&request, query) {
            Ok(settings) => settings,
            Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
        };
        let tty = self.container.terminal();
        // Docker drops stdin for a container created without it.
        let stdin = settings.stdin && self.container.stdin();
        if !stdin && !settings.stdout && !settings.stderr {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!(
                    "container {} has no stdin (it was created without --interactive): attach stdout or stderr",
                    self.container.id()
                ),
            );
        }
        let on_upgrade = hyper::upgrade::on(&mut request);

        let (read_tx, read_rx) = oneshot::channel();
        let (write_tx, write_rx) = oneshot::channel();
        let writer = ClientWriter(Arc::new(Mutex::new(Pending::Waiting(write_rx))));
        let streams = AttachStreams {
            stdin: stdin
                .then(|| -> InputStream { Box::pin(ClientReader(Pending::Waiting(read_rx))) }),
            stdout: settings.stdout.then(|| writer.sink()),
            stderr: settings.stderr.then(|| writer.sink()),
        };
        let ready = AttachReady::new();
        let cancel = AttachCancel::new();
        let mut options = AttachOptions::default()
            .with_framing(if tty {
                Framing::Raw
            } else {
                Framing::Multiplexed
            })
            .with_cancel(cancel.clone())
            .with_ready(ready.clone());
        options.detach_keys = settings.detach_keys;
        let mut session = {
            let server = Arc::clone(&self);
            tokio::spawn(async move {
                server
                    .runtime
                    .attach(&server.container, streams, options)
                    .await
            })
        };
        // Answer only once connected to conmon: a client starts the
        // container right after the answer, and must see all its output.
        tokio::select! {
            biased;
            () = ready.wait() => {}
            ended = &mut session => {
                // It ended without connecting: it failed.
                return match ended {
                    Ok(Err(e)) => runtime_error_response(&e),
                    Ok(Ok(outcome)) => error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("attach ended ({outcome:?}) before it connected"),
                    ),
                    Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e),
                };
            }
        }

        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = read_tx.send(reader);
                    let _ = write_tx.send(writer);
                }
                Err(e) => {
                    debug!(error = %e, "attach upgrade failed");
                    cancel.cancel();
                }
            }
            let ended = tokio::select! {
                ended = &mut session => ended,
                () = async { let _ = shutdown.wait_for(|on| *on).await; } => {
                    cancel.cancel();
                    session.await
                }
            };
            let error = match ended {
                Ok(Ok(outcome)) => {
                    debug!(?outcome, "attach session ended");
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            finish_session(writer, error, tty).await;
        });

        let mut response = empty_response(StatusCode::SWITCHING_PROTOCOLS);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(if tty {
                "application/vnd.docker.raw-stream"
            } else {
                "application/vnd.docker.multiplexed-stream"
            }),
        );
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, settings.protocol);
        response
    }
}

/// Writes a session's error in-band, as podman does (`Error: ...`, in a
/// stderr frame without a terminal), and shuts the connection's write side
/// down.
async fn finish_session(mut writer: ClientWriter, error: Option<String>, tty: bool) {
    if let Some(message) = error {
        debug!(%message, "attach session failed");
        let text = format!("Error: {message}\n");
        let mut bytes = Vec::with_capacity(text.len() + 8);
        if !tty {
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&encode_header(MuxStream::Stderr, len));
        }
        bytes.extend_from_slice(text.as_bytes());
        let _ = writer.write_all(&bytes).await;
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

/// What an attach request asks for, validated before any upgrade.
struct AttachSettings {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    detach_keys: Option<String>,
    /// The `Upgrade` protocol, echoed in the 101.
    protocol: HeaderValue,
}

impl AttachSettings {
    fn from_request(request: &Request<Incoming>, query: &Query) -> Result<Self, String> {
        let stream = query.bool("stream", true)?;
        let logs = query.bool("logs", false)?;
        if !stream {
            return Err(if logs {
                "stream=0 is not supported: this server does not replay logs".into()
            } else {
                "at least one of logs or stream must be set".into()
            });
        }
        // None given: all three (podman); otherwise a missing one is off,
        // since Docker clients send only the streams they want.
        let any = ["stdin", "stdout", "stderr"]
            .iter()
            .any(|key| query.get(key).is_some());
        let (stdin, stdout, stderr) = (
            query.bool("stdin", !any)?,
            query.bool("stdout", !any)?,
            query.bool("stderr", !any)?,
        );
        if !stdin && !stdout && !stderr {
            return Err("at least one of stdin, stdout, stderr must be true".into());
        }
        let detach_keys = query.get("detachKeys").map(str::to_string);
        if let Some(spec) = &detach_keys {
            DetachKeys::parse(spec).map_err(|e| e.to_string())?;
        }
        let headers = request.headers();
        let upgrading = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        let protocol = match headers.get(UPGRADE) {
            Some(protocol) if upgrading && !protocol.is_empty() => protocol.clone(),
            _ => {
                return Err(
                    "attach needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)"
                        .into(),
                )
            }
        };
        Ok(Self {
            stdin,
            stdout,
            stderr,
            detach_keys,
            protocol,
        })
    }
}

fn ping() -> Response<Body> {
    let mut response = respond(
        StatusCode::OK,
        Some("text/plain"),
        Body::Full(Some(Bytes::from_static(b"OK"))),
    );
    let headers = response.headers_mut();
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    headers.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert("pragma", HeaderValue::from_static("no-cache"));
    response
}

/// A time as Docker writes it (UTC, RFC 3339 with nanoseconds); Go's zero
/// time when unknown.
fn rfc3339(time: Option<SystemTime>) -> String {
    let Some(since) = time.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) else {
        return "0001-01-01T00:00:00Z".into();
    };
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
