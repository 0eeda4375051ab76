//! Attach throughput: the same container output, through the same conmon
//! and k8s-file log, read by several contenders in one run.
//!
//! ```text
//! cargo build --release -p conmon-driver --examples
//! target/release/examples/bench_attach [--mib 256] [--rounds 5] [--quick]
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

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bench_support::{
    describe, example_binary, podman_image, print_throughputs, BoxError, Options, Samples,
};
use conmon_driver::ConmonRuntime;
use nix::sys::socket::{
    connect, recv, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr,
};
use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, ContainerDescription, CreateOptions,
    Framing, OciRuntime,
};
use testkit::BundleBuilder;
use tokio::io::AsyncWrite;

/// CPU time and context switches of a set of threads.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu_ns: u64,
    switches: u64,
}

impl Usage {
    /// The counters of one thread's `/proc` directory.
    fn of_task(dir: &Path) -> Result<Usage, BoxError> {
        let schedstat = std::fs::read_to_string(dir.join("schedstat"))?;
        let cpu_ns = schedstat
            .split_whitespace()
            .next()
            .ok_or("empty schedstat")?
            .parse()?;
        let status = std::fs::read_to_string(dir.join("status"))?;
        let mut switches = 0;
        for line in status.lines() {
            if let Some(rest) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += rest.trim().parse::<u64>()?;
            }
        }
        Ok(Usage { cpu_ns, switches })
    }

    /// The calling thread's.
    fn this_thread() -> Result<Usage, BoxError> {
        Usage::of_task(Path::new("/proc/thread-self"))
    }

    /// The sum over the live threads of process `pid`.
    fn of_process(pid: u32) -> Result<Usage, BoxError> {
        let mut sum = Usage::default();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            // A thread may end between the listing and the read.
            if let Ok(usage) = Usage::of_task(&task?.path()) {
                sum = sum.plus(usage);
            }
        }
        Ok(sum)
    }

    /// CPU time of this process's reaped children (`cutime` + `cstime`,
    /// clock ticks of 10 ms).
    fn reaped_children() -> Result<Usage, BoxError> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let after_name = stat.rsplit_once(')').ok_or("no comm in stat")?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 16 and 17 of stat (cutime, cstime); `fields[0]` is field 3.
        let ticks: u64 = fields.get(13).ok_or("short stat")?.parse::<u64>()?
            + fields.get(14).ok_or("short stat")?.parse::<u64>()?;
        Ok(Usage {
            cpu_ns: ticks * 10_000_000,
            switches: 0,
        })
    }

    fn plus(self, other: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns + other.cpu_ns,
            switches: self.switches + other.switches,
        }
    }

    fn since(self, earlier: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            switches: self.switches.saturating_sub(earlier.switches),
        }
    }
}

/// Per-MiB usage samples of one contender.
struct UsageSamples {
    cpu: Samples,
    switches: Samples,
}

impl UsageSamples {
    fn new(name: &str) -> UsageSamples {
        UsageSamples {
            cpu: Samples::new(name),
            switches: Samples::new(name),
        }
    }

    fn push(&mut self, usage: Usage, mib: u64) {
        let mib = mib.max(1) as f64;
        self.cpu.push_secs(usage.cpu_ns as f64 / 1e9 / mib);
        self.switches.push_secs(usage.switches as f64 / mib);
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

/// A sink that counts what it is given.
struct CountingSink(Arc<AtomicU64>);

impl AsyncWrite for CountingSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn check_bytes(who: &str, got: u64, expected: u64) -> Result<(), BoxError> {
    if got != expected {
        return Err(format!("{who}: received {got} bytes, expected {expected}").into());
    }
    Ok(())
}

/// (a) the floor: create, connect the minimal reader, start, read to the
/// end (into a pipe with `through_pipe`).
async fn run_floor(
    runtime: &ConmonRuntime,
    work: &Path,
    bundle: &Path,
    expected: u64,
    through_pipe: bool,
) -> Result<(Duration, Usage), BoxError> {
    let c = describe(work, bundle, "bench-floor")?;
    runtime.create(&c, CreateOptions::default()).await?;
    let socket = runtime.attach_socket_path(&c);
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
    runtime.start(&c).await?;
    let (got, usage) = tokio::task::spawn_blocking(move || reader.join())
        .await?
        .map_err(|_| "floor reader panicked")??;
    let took = started.elapsed();
    finish(runtime, &c).await?;
    check_bytes("floor", got, expected)?;
    Ok((took, usage))
}

/// Reads with blocking `recv`s into a 16 KiB buffer and writes each payload
/// into a pipe that another thread drains: the floor plus the hop every
/// client that prints the output pays (the demo, podman).
fn read_into_pipe(fd: std::os::fd::OwnedFd) -> Result<(u64, Usage), BoxError> {
    let before = Usage::this_thread()?;
    let (pipe_read, pipe_write) = nix::unistd::pipe()?;
    let drain = std::thread::spawn(move || -> Result<(u64, Usage), BoxError> {
        let before = Usage::this_thread()?;
        let mut pipe = std::fs::File::from(pipe_read);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match pipe.read(&mut buf)? {
                0 => return Ok((total, Usage::this_thread()?.since(before))),
                n => total += n as u64,
            }
        }
    });
    let mut pipe = std::fs::File::from(pipe_write);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if n == 0 {
            break;
        }
        pipe.write_all(&buf[1..n])?;
    }
    drop(pipe);
    let usage = Usage::this_thread()?.since(before);
    let (total, drained) = drain.join().map_err(|_| "pipe drain panicked")??;
    Ok((total, usage.plus(drained)))
}

/// The minimal reader's socket: blocking, connected to `path`.
fn socket_connected(path: &Path) -> Result<std::os::fd::OwnedFd, BoxError> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// Reads with blocking `recv`s into a 16 KiB buffer until the end of the
/// stream; returns the payload bytes (prefix bytes not counted).
fn read_to_end(fd: std::os::fd::OwnedFd) -> Result<(u64, Usage), BoxError> {
    let before = Usage::this_thread()?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if n == 0 {
            return Ok((total, Usage::this_thread()?.since(before)));
        }
        total += n as u64 - 1;
    }
}

/// Waits for the container, deletes it and removes its log (256 MiB of
/// it per round would pile up).
async fn finish(runtime: &ConmonRuntime, c: &ContainerDescription) -> Result<(), BoxError> {
    runtime.wait(c, Duration::from_secs(60)).await?;
    runtime.delete(c).await?;
    if let Some(log) = &c.log().path {
        let _ = std::fs::remove_file(log);
    }
    Ok(())
}

/// (b) the library's attach into a counting sink.
async fn run_library(
    runtime: &Arc<ConmonRuntime>,
    work: &Path,
    bundle: &Path,
    expected: u64,
) -> Result<(Duration, Usage), BoxError> {
    let c = describe(work, bundle, "bench-library")?;
    runtime.create(&c, CreateOptions::default()).await?;
    let counted = Arc::new(AtomicU64::new(0));
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
    runtime.start(&c).await?;
    let outcome = session.await??;
    let took = started.elapsed();
    let usage = Usage::of_process(std::process::id())?.since(before);
    finish(runtime, &c).await?;
    if outcome != AttachOutcome::StreamsEnded {
        return Err(format!("library session ended with {outcome:?}").into());
    }
    check_bytes("library", counted.load(Ordering::Relaxed), expected)?;
    Ok((took, usage))
}

/// Runs `command` with stdout into a pipe read here; returns the wall time
/// of the whole process and the bytes read.
fn run_into_pipe(command: &mut Command) -> Result<(Duration, u64), BoxError> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut out = child.stdout.take().ok_or("no stdout pipe")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let status = child.wait()?;
    let took = started.elapsed();
    if !status.success() {
        return Err(format!("{command:?} exited with {status}").into());
    }
    Ok((took, total))
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
    let id = format!("bench-http-{}", std::process::id());
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
    let run_binary = example_binary(&options, "run");
    let http_binary = example_binary(&options, "http_attach");
    let podman = podman_image(&options);

    let mut contenders = vec![Contender::Floor, Contender::FloorPipe, Contender::Library];
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
                "--only {only}: none of floor, floor-pipe, library, demo, http, podman"
            )
            .into());
        }
    }

    let mut floor = Samples::new("(a) floor: raw attach socket reader");
    let mut floor_pipe = Samples::new("(a) floor reader -> pipe -> reader thread");
    let mut library = Samples::new("(b) library attach -> sink");
    let mut demo_whole = Samples::new("(c) demo run | pipe, whole process");
    let mut demo_net = Samples::new("(c) demo run | pipe, net of `run true`");
    let mut http = Samples::new("(d) http attach -> raw client");
    let mut podman_whole = Samples::new("(e) podman run | pipe, whole process");
    let mut podman_net = Samples::new("(e) podman run | pipe, net of `true`");
    let mut demo_true = Samples::new("demo run -- true");
    let mut podman_true = Samples::new("podman run --rm true");
    let mut floor_use = UsageSamples::new("(a) floor: the reader thread");
    let mut floor_pipe_use = UsageSamples::new("(a) floor -> pipe: reader and drain threads");
    let mut library_use = UsageSamples::new("(b) library: the benchmark's threads");
    let mut demo_use = UsageSamples::new("(c) demo run: whole process, net of `run true`");
    let mut http_use = UsageSamples::new("(d) http: http_attach process + client thread");

    println!(
        "attach throughput: {mib} MiB of container stdout, k8s-file log, {} round(s)",
        options.rounds
    );
    for round in 0..options.rounds {
        let mut order = contenders.clone();
        order.rotate_left(round % contenders.len());
        for contender in order {
            match contender {
                Contender::Floor => {
                    let (took, usage) =
                        run_floor(&runtime, work.path(), bundle.path(), expected, false).await?;
                    floor.push(took);
                    floor_use.push(usage, mib);
                }
                Contender::FloorPipe => {
                    let (took, usage) =
                        run_floor(&runtime, work.path(), bundle.path(), expected, true).await?;
                    floor_pipe.push(took);
                    floor_pipe_use.push(usage, mib);
                }
                Contender::Library => {
                    let (took, usage) =
                        run_library(&runtime, work.path(), bundle.path(), expected).await?;
                    library.push(took);
                    library_use.push(usage, mib);
                }
                Contender::Demo => {
                    let binary = run_binary.as_deref().ok_or("no run binary")?;
                    let before = Usage::reaped_children()?;
                    let (empty, _) = run_into_pipe(Command::new(binary).args(["--", "true"]))?;
                    let between = Usage::reaped_children()?;
                    let (took, got) =
                        run_into_pipe(Command::new(binary).arg("--").args(dd_command(blocks)))?;
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
                            .args(["run", "--rm", "--log-driver", "k8s-file", image])
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
    bench_support::print_durations("fixed costs subtracted above", &[&demo_true, &podman_true]);
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
