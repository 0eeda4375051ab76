//! Attach throughput: the same container output, through the same conmon
//! and log driver, read by several contenders in one run.
//!
//! ```text
//! cargo build --release -p conmon-driver --examples
//! target/release/examples/bench_attach [--mib 256] [--rounds 5] [--quick]
//!     [--log k8s-file|none|passthrough] [--only floor,library,...]
//!     [--run-binary PATH] [--http-attach-binary PATH]
//!     [--podman off] [--podman-image localhost/busybox]
//! ```
//!
//! The container runs `dd if=/dev/zero bs=65536 count=N` (N * 64 KiB =
//! `--mib` MiB on its stdout). Contenders, alternated within each round
//! (the order rotates from round to round so that drift hits all alike):
//!
//! - `floor`: a minimal reader written here: a blocking `SOCK_SEQPACKET`
//!   socket connected to `<bundle>/attach`, `recv` into a 16 KiB buffer
//!   until end of stream. Timed from `start` to the end of the stream.
//! - `floor -> pipe`: the same reader writing each payload into a pipe
//!   that a second thread drains: the floor of every client that prints
//!   the output (the demo, podman), which pays that extra hop.
//! - `library`: `ConmonRuntime::attach` with raw framing into a sink that
//!   only counts. Timed from `start` to the session's end.
//! - `demo run | pipe`: the `run` example as a whole process, its stdout a
//!   pipe read here. Reported twice: the whole process, and net of the
//!   median of `run -- true` of the same round (bundle, create, delete).
//! - `http attach`: the `http_attach` example serving the container, read
//!   by a raw HTTP/1.1 client that decodes the multiplexed frames. Timed
//!   from the `start` request to the end of the attach stream.
//! - `podman run | pipe` (only when `podman run --rm IMAGE true` works):
//!   whole process, and net of `podman run --rm IMAGE true`.
//!
//! Every contender checks that it received exactly the expected number of
//! bytes. Printed: median seconds, MB/s and the ratio of each contender's
//! throughput to the floor's; then, per MiB moved, the CPU time and the
//! context switches of the reading side (from `/proc`: `schedstat` and
//! `status` of each thread): the floor's reader thread (and its pipe
//! drain), the benchmark's threads for the library, the `http_attach`
//! process plus the client thread for HTTP, and for the demo its CPU time
//! as a reaped child (`cutime` + `cstime`, whole process, net of `run --
//! true`; no switch count).
//!
//! `--log` picks conmon's log driver (default `k8s-file`), named in the
//! title. With `none` the contenders above run as they are, but for the
//! demo and `http_attach`, which always log to a k8s-file and are skipped;
//! podman gets `--log-driver none`. With `passthrough` there is no attach
//! socket: conmon hands the stdio it was given to the container. Then the
//! floor is the container without any monitor: `runc create` with its
//! stdout a pipe read here, timed from `runc start` (`runc run` would add
//! the creation to the time, which no other contender counts); `library`
//! is the driver's create with passthrough stdio whose stdout is a pipe
//! read here, timed from `start`; podman runs with `--log-driver
//! passthrough`. Both are timed to the last expected byte and then read
//! to the end of the pipe, whose count is checked; the CPU table shows the
//! pipe's reading thread. Container ids start with `bio-`.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::raw_socket::{read_into_pipe, read_to_end, socket_connected};
use bench_support::streams::{
    check_bytes, count_to_end, discard, finish, run_into_pipe, Count, CountingSink, Watchdog,
    WAIT_LIMIT,
};
use bench_support::usage::{Usage, UsageSamples};
use bench_support::{
    describe_with, example_binary, podman_image, print_throughputs, BoxError, Options, Samples,
};
use conmon_driver::{ConmonRuntime, MonitorOptions, PassthroughStdio};
use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, CreateOptions, Framing, LogDriver,
    OciRuntime,
};
use testkit::BundleBuilder;

/// conmon's log driver for the run (`--log`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum LogMode {
    KubernetesFile,
    None,
    Passthrough,
}

impl LogMode {
    fn parse(options: &Options) -> Result<LogMode, BoxError> {
        match options.value("log").unwrap_or("k8s-file") {
            "k8s-file" => Ok(LogMode::KubernetesFile),
            "none" => Ok(LogMode::None),
            "passthrough" => Ok(LogMode::Passthrough),
            other => Err(format!("--log {other}: none of k8s-file, none, passthrough").into()),
        }
    }

    fn driver(self) -> LogDriver {
        match self {
            LogMode::KubernetesFile => LogDriver::KubernetesFile,
            LogMode::None => LogDriver::None,
            LogMode::Passthrough => LogDriver::Passthrough,
        }
    }

    /// The name conmon and podman's `--log-driver` know it by.
    fn name(self) -> &'static str {
        match self {
            LogMode::KubernetesFile => "k8s-file",
            LogMode::None => "none",
            LogMode::Passthrough => "passthrough",
        }
    }
}

/// The container command writing `blocks` * 64 KiB to stdout.
fn dd_command(blocks: u64) -> Vec<String> {
    vec![
        "dd".into(),
        "if=/dev/zero".into(),
        "bs=65536".into(),
        format!("count={blocks}"),
        // dd's statistics would go to stderr; keep stdout the only stream.
        "status=none".into(),
    ]
}

/// (a) the floor: create, connect the minimal reader, start, read to the
/// end (into a pipe with `through_pipe`).
async fn run_floor(
    runtime: &ConmonRuntime,
    work: &Path,
    bundle: &Path,
    expected: u64,
    through_pipe: bool,
    log: LogDriver,
) -> Result<(Duration, Usage), BoxError> {
    let c = describe_with(work, bundle, "bio-floor", log, false)?;
    runtime.create(&c, CreateOptions::default()).await?;
    let result = floor_session(runtime, &c, expected, through_pipe).await;
    if result.is_err() {
        discard(runtime, &c).await;
    }
    result
}

async fn floor_session(
    runtime: &ConmonRuntime,
    c: &runtime_api::ContainerDescription,
    expected: u64,
    through_pipe: bool,
) -> Result<(Duration, Usage), BoxError> {
    let socket = runtime.attach_socket_path(c);
    let (connected_tx, connected_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        // Connect before the start (no output is replayed), then read.
        let fd = socket_connected(&socket);
        let _ = connected_tx.send(());
        let fd = fd?;
        if through_pipe {
            read_into_pipe(fd)
        } else {
            read_to_end(fd)
        }
    });
    connected_rx.recv()?;
    let started = Instant::now();
    runtime.start(c).await?;
    let (got, usage) = tokio::task::spawn_blocking(move || reader.join())
        .await?
        .map_err(|_| "floor reader panicked")??;
    let took = started.elapsed();
    finish(runtime, c).await?;
    check_bytes("floor", got, expected)?;
    Ok((took, usage))
}

/// (b) the library's attach into a counting sink.
async fn run_library(
    runtime: &Arc<ConmonRuntime>,
    work: &Path,
    bundle: &Path,
    expected: u64,
    log: LogDriver,
) -> Result<(Duration, Usage), BoxError> {
    let c = describe_with(work, bundle, "bio-library", log, false)?;
    runtime.create(&c, CreateOptions::default()).await?;
    let result = library_session(runtime, &c, expected).await;
    if result.is_err() {
        discard(runtime, &c).await;
    }
    result
}

async fn library_session(
    runtime: &Arc<ConmonRuntime>,
    c: &runtime_api::ContainerDescription,
    expected: u64,
) -> Result<(Duration, Usage), BoxError> {
    let counted = Arc::new(Count::default());
    let ready = AttachReady::new();
    let session = tokio::spawn({
        let runtime = Arc::clone(runtime);
        let c = c.clone();
        let streams = AttachStreams {
            stdin: None,
            stdout: Some(Box::pin(CountingSink(Arc::clone(&counted)))),
            stderr: Some(Box::pin(CountingSink(Arc::clone(&counted)))),
        };
        let options = AttachOptions::default()
            .with_framing(Framing::Raw)
            .with_ready(ready.clone());
        async move { runtime.attach(&c, streams, options).await }
    });
    ready.wait().await;
    let before = Usage::of_process(std::process::id())?;
    let started = Instant::now();
    runtime.start(c).await?;
    let outcome = tokio::time::timeout(WAIT_LIMIT, session)
        .await
        .map_err(|_| format!("library session still open after {WAIT_LIMIT:?}"))???;
    let took = started.elapsed();
    let usage = Usage::of_process(std::process::id())?.since(before);
    finish(runtime, c).await?;
    if outcome != AttachOutcome::StreamsEnded {
        return Err(format!("library session ended with {outcome:?}").into());
    }
    check_bytes("library", counted.bytes(), expected)?;
    Ok((took, usage))
}

/// (a) with `--log passthrough`: the container without a monitor. `runc
/// create` hands the container its stdio (a pipe read here); timed from
/// `runc start` to the last expected byte.
async fn run_runc_floor(bundle: &Path, expected: u64) -> Result<(Duration, Usage), BoxError> {
    let id = format!("bio-runc-floor-{}", std::process::id());
    let (pipe_read, pipe_write) = nix::unistd::pipe()?;
    let mut create = Command::new("runc")
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(pipe_write))
        .stderr(Stdio::inherit())
        .spawn()?;
    let watchdog = Watchdog::new(&create, WAIT_LIMIT)?;
    let status = create.wait();
    let created = match (watchdog.check("runc create"), status) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(e.into()),
        (Ok(()), Ok(status)) if !status.success() => {
            Err(format!("runc create {id} exited with {status}").into())
        }
        (Ok(()), Ok(_)) => Ok(()),
    };
    if let Err(e) = created {
        // A create cut short may leave the container behind.
        let _ = bench_support::runc(&["delete", "--force", &id]).await;
        return Err(e);
    }
    // runc create gave its own copy of the write end away: the pipe ends
    // when the container has exited.
    drop(create);
    let reader =
        tokio::task::spawn_blocking(move || count_to_end(std::fs::File::from(pipe_read), expected));
    let started = Instant::now();
    let result = async {
        bench_support::runc(&["start", &id]).await?;
        let (got, reached, usage) = tokio::time::timeout(WAIT_LIMIT, reader)
            .await
            .map_err(|_| format!("runc floor: output still open after {WAIT_LIMIT:?}"))???;
        check_bytes("runc floor", got, expected)?;
        let reached = reached.ok_or("runc floor: no output")?;
        Ok::<_, BoxError>((reached - started, usage))
    }
    .await;
    let deleted = bench_support::runc(&["delete", "--force", &id]).await;
    let took = result?;
    deleted?;
    Ok(took)
}

/// (b) with `--log passthrough`: the driver's create with passthrough
/// stdio, the container's stdout a pipe read here; timed from `start` to
/// the last expected byte.
async fn run_library_passthrough(
    runtime: &ConmonRuntime,
    work: &Path,
    bundle: &Path,
    expected: u64,
) -> Result<(Duration, Usage), BoxError> {
    let c = describe_with(work, bundle, "bio-library", LogDriver::Passthrough, false)?;
    let (pipe_read, pipe_write) = nix::unistd::pipe()?;
    let mut monitor = MonitorOptions::default();
    monitor.passthrough_stdio = Some(PassthroughStdio {
        stdin: std::fs::File::open("/dev/null")?.into(),
        stdout: pipe_write,
        stderr: std::io::stderr().as_fd().try_clone_to_owned()?,
    });
    runtime
        .create_with(&c, CreateOptions::default(), monitor)
        .await?;
    let reader =
        tokio::task::spawn_blocking(move || count_to_end(std::fs::File::from(pipe_read), expected));
    let started = Instant::now();
    let result = async {
        runtime.start(&c).await?;
        // conmon holds the write end until it exits: delete first, so that
        // the pipe ends.
        finish(runtime, &c).await?;
        let (got, reached, usage) = tokio::time::timeout(WAIT_LIMIT, reader)
            .await
            .map_err(|_| format!("library: output still open after {WAIT_LIMIT:?}"))???;
        check_bytes("library passthrough", got, expected)?;
        let reached = reached.ok_or("library passthrough: no output")?;
        Ok::<_, BoxError>((reached - started, usage))
    }
    .await;
    if result.is_err() {
        discard(runtime, &c).await;
    }
    result
}

/// (d) the HTTP attach example: spawn, attach with a raw client, start,
/// read the frames to the end.
fn run_http(
    binary: &Path,
    work: &Path,
    blocks: u64,
    expected: u64,
) -> Result<(Duration, Usage), BoxError> {
    let socket = work.join("docker.sock");
    let id = format!("bio-http-{}", std::process::id());
    let mut server = Command::new(binary)
        .arg("--socket")
        .arg(&socket)
        .args(["--id", &id, "--"])
        .args(dd_command(blocks))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let result = http_session(&mut server, &socket, &id, expected);
    // SIGTERM: the server stops and deletes the container, then exits.
    if let Ok(pid) = i32::try_from(server.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let status = server.wait()?;
    let took = result?;
    if !status.success() {
        return Err(format!("http_attach exited with {status}").into());
    }
    Ok(took)
}

fn http_session(
    server: &mut Child,
    socket: &Path,
    id: &str,
    expected: u64,
) -> Result<(Duration, Usage), BoxError> {
    let mut lines = BufReader::new(server.stdout.take().ok_or("no stdout pipe")?).lines();
    match lines.next() {
        Some(Ok(line)) if line.starts_with("listening on ") => {}
        other => return Err(format!("http_attach did not listen: {other:?}").into()),
    }
    let mut attach = UnixStream::connect(socket)?;
    write!(
        attach,
        "POST /v1.41/containers/{id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n\
         Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )?;
    let mut reader = BufReader::with_capacity(256 * 1024, attach);
    let head = read_head(&mut reader)?;
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("attach answered {head:?}").into());
    }
    let mut start = UnixStream::connect(socket)?;
    let before = Usage::of_process(server.id())?.plus(Usage::this_thread()?);
    let started = Instant::now();
    write!(
        start,
        "POST /v1.41/containers/{id}/start HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut start_reader = BufReader::new(start);
    let head = read_head(&mut start_reader)?;
    if !head.starts_with("HTTP/1.1 204") {
        return Err(format!("start answered {head:?}").into());
    }
    let mut total = 0u64;
    let mut header = [0u8; 8];
    let mut payload = vec![0u8; 64 * 1024];
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let (stream, len) = attach::parse_header(&header)?;
        if stream != attach::MuxStream::Stdout {
            return Err(format!("unexpected {stream:?} frame").into());
        }
        let mut left = len as usize;
        while left > 0 {
            let n = left.min(payload.len());
            reader.read_exact(&mut payload[..n])?;
            left -= n;
        }
        total += u64::from(len);
    }
    let took = started.elapsed();
    let usage = Usage::of_process(server.id())?
        .plus(Usage::this_thread()?)
        .since(before);
    check_bytes("http attach", total, expected)?;
    Ok((took, usage))
}

/// Reads an HTTP response head (up to the empty line).
fn read_head(reader: &mut impl BufRead) -> Result<String, BoxError> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(format!("connection closed in the response head: {head:?}").into());
        }
        if line == "\r\n" {
            return Ok(head);
        }
        head.push_str(&line);
    }
}

#[derive(Clone, Copy, Debug)]
enum Contender {
    Floor,
    FloorPipe,
    Library,
    Demo,
    Http,
    Podman,
}

impl Contender {
    /// The contender's name for `--only`.
    fn key(self) -> &'static str {
        match self {
            Contender::Floor => "floor",
            Contender::FloorPipe => "floor-pipe",
            Contender::Library => "library",
            Contender::Demo => "demo",
            Contender::Http => "http",
            Contender::Podman => "podman",
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = Options::parse(5).map_err(|e| format!("bench_attach: {e}"))?;
    let mib: u64 = options.number("mib", if options.quick { 1 } else { 256 })?;
    let blocks = mib * 16;
    let expected = blocks * 65536;
    let work = tempfile::tempdir()?;
    let runtime = Arc::new(bench_support::runtime(work.path())?);
    let bundle = BundleBuilder::new().args(dd_command(blocks)).build()?;
    let log = LogMode::parse(&options)?;
    let passthrough = log == LogMode::Passthrough;
    let (run_binary, http_binary) = if log == LogMode::KubernetesFile {
        (
            example_binary(&options, "run"),
            example_binary(&options, "http_attach"),
        )
    } else {
        println!(
            "skipped: demo and http (the run and http_attach examples always log to a k8s-file)"
        );
        (None, None)
    };
    let podman = podman_image(&options);

    let mut contenders = vec![Contender::Floor, Contender::FloorPipe, Contender::Library];
    if passthrough {
        println!("skipped: floor-pipe (no attach socket with the passthrough log driver)");
        contenders.retain(|c| !matches!(c, Contender::FloorPipe));
    }
    if run_binary.is_some() {
        contenders.push(Contender::Demo);
    }
    if http_binary.is_some() {
        contenders.push(Contender::Http);
    }
    if podman.is_some() {
        contenders.push(Contender::Podman);
    }
    if let Some(only) = options.value("only") {
        let wanted: Vec<&str> = only.split(',').collect();
        contenders.retain(|c| wanted.contains(&c.key()));
        if contenders.is_empty() {
            return Err(format!(
                "--only {only}: none of floor, floor-pipe, library, demo, http, podman \
                 (as far as --log {} allows)",
                log.name()
            )
            .into());
        }
    }

    let mut floor = Samples::new(if passthrough {
        "(a) floor: runc create+start | pipe, no monitor"
    } else {
        "(a) floor: raw attach socket reader"
    });
    let mut floor_pipe = Samples::new("(a) floor reader -> pipe -> reader thread");
    let mut library = Samples::new(if passthrough {
        "(b) library create, passthrough stdio | pipe"
    } else {
        "(b) library attach -> sink"
    });
    let mut demo_whole = Samples::new("(c) demo run | pipe, whole process");
    let mut demo_net = Samples::new("(c) demo run | pipe, net of `run true`");
    let mut http = Samples::new("(d) http attach -> raw client");
    let mut podman_whole = Samples::new("(e) podman run | pipe, whole process");
    let mut podman_net = Samples::new("(e) podman run | pipe, net of `true`");
    let mut demo_true = Samples::new("demo run -- true");
    let mut podman_true = Samples::new("podman run --rm true");
    let mut floor_use = UsageSamples::new(if passthrough {
        "(a) floor: the pipe's reader thread"
    } else {
        "(a) floor: the reader thread"
    });
    let mut floor_pipe_use = UsageSamples::new("(a) floor -> pipe: reader and drain threads");
    let mut library_use = UsageSamples::new(if passthrough {
        "(b) library: the pipe's reader thread"
    } else {
        "(b) library: the benchmark's threads"
    });
    let mut demo_use = UsageSamples::new("(c) demo run: whole process, net of `run true`");
    let mut http_use = UsageSamples::new("(d) http: http_attach process + client thread");

    println!(
        "attach throughput: {mib} MiB of container stdout, log driver {}{}, {} round(s)",
        log.name(),
        if passthrough {
            " (no attach socket: the container writes into a pipe read here)"
        } else {
            ""
        },
        options.rounds
    );
    for round in 0..options.rounds {
        let mut order = contenders.clone();
        order.rotate_left(round % contenders.len());
        for contender in order {
            match contender {
                Contender::Floor => {
                    let (took, usage) = if passthrough {
                        run_runc_floor(bundle.path(), expected).await?
                    } else {
                        let path = bundle.path();
                        run_floor(&runtime, work.path(), path, expected, false, log.driver())
                            .await?
                    };
                    floor.push(took);
                    floor_use.push(usage, mib);
                }
                Contender::FloorPipe => {
                    let (took, usage) = run_floor(
                        &runtime,
                        work.path(),
                        bundle.path(),
                        expected,
                        true,
                        log.driver(),
                    )
                    .await?;
                    floor_pipe.push(took);
                    floor_pipe_use.push(usage, mib);
                }
                Contender::Library => {
                    let (took, usage) = if passthrough {
                        run_library_passthrough(&runtime, work.path(), bundle.path(), expected)
                            .await?
                    } else {
                        let path = bundle.path();
                        run_library(&runtime, work.path(), path, expected, log.driver()).await?
                    };
                    library.push(took);
                    library_use.push(usage, mib);
                }
                Contender::Demo => {
                    let binary = run_binary.as_deref().ok_or("no run binary")?;
                    let before = Usage::reaped_children()?;
                    let id = format!("bio-demo-{}", std::process::id());
                    let demo = || {
                        let mut command = Command::new(binary);
                        command.args(["--id", &id, "--"]);
                        command
                    };
                    let (empty, _) = run_into_pipe(demo().arg("true"))?;
                    let between = Usage::reaped_children()?;
                    let (took, got) = run_into_pipe(demo().args(dd_command(blocks)))?;
                    let after = Usage::reaped_children()?;
                    check_bytes("demo run", got, expected)?;
                    demo_true.push(empty);
                    demo_whole.push(took);
                    demo_net.push(took.saturating_sub(empty));
                    demo_use.push(after.since(between).since(between.since(before)), mib);
                }
                Contender::Http => {
                    let binary = http_binary.as_deref().ok_or("no http_attach binary")?;
                    let (took, usage) = run_http(binary, work.path(), blocks, expected)?;
                    http.push(took);
                    http_use.push(usage, mib);
                }
                Contender::Podman => {
                    let image = podman.as_deref().ok_or("no podman image")?;
                    let podman_run = |args: Vec<String>| {
                        let mut command = Command::new("podman");
                        command
                            .args(["run", "--rm", "--log-driver", log.name(), image])
                            .args(args);
                        run_into_pipe(&mut command)
                    };
                    let (empty, _) = podman_run(vec!["true".into()])?;
                    let (took, got) = podman_run(dd_command(blocks))?;
                    check_bytes("podman run", got, expected)?;
                    podman_true.push(empty);
                    podman_whole.push(took);
                    podman_net.push(took.saturating_sub(empty));
                }
            }
        }
    }
    print_throughputs(
        "throughput (ratio = contender's MB/s / floor's MB/s)",
        expected,
        &[
            &floor,
            &floor_pipe,
            &library,
            &demo_net,
            &demo_whole,
            &http,
            &podman_net,
            &podman_whole,
        ],
    );
    bench_support::print_fixed_costs(&[&demo_true, &podman_true]);
    println!("reading side, per MiB moved (medians; conmon and dd not included)");
    println!("  {:<60} {:>10} {:>10}", "contender", "CPU ms", "switches");
    for usage in [
        &floor_use,
        &floor_pipe_use,
        &library_use,
        &demo_use,
        &http_use,
    ] {
        if usage.cpu.is_empty() {
            continue;
        }
        let switches = if std::ptr::eq(usage, &demo_use) {
            "-".to_string()
        } else {
            format!("{:.0}", usage.switches.median())
        };
        println!(
            "  {:<60} {:>10.2} {:>10}",
            usage.cpu.name,
            usage.cpu.median() * 1e3,
            switches
        );
    }
    Ok(())
}
