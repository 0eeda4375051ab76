//! Attach input: stdin throughput and the round trip of a small
//! interactive write, through the same conmon and k8s-file log, by
//! several contenders in one run.
//!
//! ```text
//! cargo build --release -p conmon-driver --examples
//! target/release/examples/bench_interactive [--mib 64] [--writes 200]
//!     [--rounds 5] [--quick] [--only floor,library,demo,podman]
//!     [--run-binary PATH] [--podman off] [--podman-image localhost/busybox]
//! ```
//!
//! The container runs busybox `cat` with its stdin kept open, created by
//! the driver and attached before its start. Two measurements, each over
//! the rounds, the contenders alternated within a round (the order
//! rotates from round to round so that drift hits all alike); `--quick`
//! moves 1 MiB and makes 10 writes in one round.
//!
//! Stdin throughput: `--mib` MiB of a fixed pattern written to the
//! container's stdin and echoed back by `cat`, timed from the first write
//! to the last echoed byte; every contender checks the exact count.
//!
//! - `floor`: a minimal client written here: a blocking `SOCK_SEQPACKET`
//!   socket connected to `<bundle>/attach`; one thread `send`s records of
//!   at most 8 KiB (conmon reads input in chunks of that size) and then
//!   shuts down its write side, which closes the container's stdin; the
//!   other `recv`s the echoed records and counts their payload.
//! - `library`: `ConmonRuntime::attach` whose stdin is a reader of the
//!   pattern, held back until the container started, and whose stdout is
//!   a sink that counts.
//! - `demo run -i | pipe`: the `run` example as a whole process (`run -i
//!   cat`), its stdin and stdout pipes to this benchmark; reported whole
//!   and net of `run -- true` of the same round.
//! - `podman run -i | pipe` (only when `podman run --rm IMAGE true`
//!   works): `podman run -i --rm IMAGE cat` the same way, net of `podman
//!   run --rm IMAGE true`.
//!
//! Interactive latency: one 8-byte line written to stdin and the wait for
//! its echo, `--writes` times in one container per contender and round
//! (after one write not counted, which absorbs the start): the floor's
//! socket (`send`, then blocking `recv`s), the library (stdin from a
//! `tokio::io::duplex` this benchmark writes into, stdout a sink that
//! wakes the benchmark), the demo and podman through their pipes.
//!
//! Printed: for throughput, median seconds, MB/s and the ratio to the
//! floor's MB/s; for latency, each contender's median and 90th percentile
//! round trip in microseconds, the difference of its median to the
//! floor's in milliseconds and the ratio of the medians, and whether the
//! library is within 1 ms of the floor. Container ids start with `bio-`.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bench_support::raw_socket::{
    close_input, recv_record, send_chunked, socket_connected, INPUT_CHUNK,
};
use bench_support::streams::{
    check_bytes, count_to_end, discard, finish, Count, CountingSink, Watchdog, WAIT_LIMIT,
};
use bench_support::{
    describe_with, example_binary, podman_image, print_throughputs, BoxError, Options, Samples,
};
use conmon_driver::ConmonRuntime;
use runtime_api::{
    AttachOptions, AttachOutcome, AttachReady, AttachStreams, ContainerDescription, CreateOptions,
    Framing, InputStream, LogDriver, OciRuntime,
};
use testkit::BundleBuilder;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;

/// The interactive write: one short line, echoed back whole by `cat`.
const LINE: &[u8; 8] = b"ping 42\n";

/// The library's latency target: its median round trip at most this much
/// above the floor's.
const LATENCY_TARGET: Duration = Duration::from_millis(1);

/// The input pattern: printable lines, so that nothing in it reads as a
/// detach key or a terminal control.
fn pattern(len: usize) -> Vec<u8> {
    b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.,;\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Creates a `cat` container of `bundle` with stdin, runs `measure` on it
/// and ends it; a failed measurement kills and deletes it.
async fn with_cat<T, F, Fut>(
    runtime: &Arc<ConmonRuntime>,
    work: &Path,
    bundle: &Path,
    name: &str,
    measure: F,
) -> Result<T, BoxError>
where
    F: FnOnce(ContainerDescription) -> Fut,
    Fut: Future<Output = Result<T, BoxError>>,
{
    let c = describe_with(work, bundle, name, LogDriver::KubernetesFile, true)?;
    runtime.create(&c, CreateOptions::default()).await?;
    let result = match measure(c.clone()).await {
        Ok(value) => finish(runtime, &c).await.map(|()| value),
        Err(e) => Err(e),
    };
    if result.is_err() {
        discard(runtime, &c).await;
    }
    result
}

/// The floor's socket, connected before the start (nothing is replayed).
async fn floor_socket(
    runtime: &ConmonRuntime,
    c: &ContainerDescription,
) -> Result<OwnedFd, BoxError> {
    let path = runtime.attach_socket_path(c);
    let fd = tokio::task::spawn_blocking(move || socket_connected(&path)).await??;
    runtime.start(c).await?;
    Ok(fd)
}

/// The floor's throughput: one thread sends `total` bytes and ends the
/// input, this one counts the echo to the end of the stream.
fn floor_echo(fd: OwnedFd, total: u64) -> Result<Duration, BoxError> {
    let input = pattern(INPUT_CHUNK);
    std::thread::scope(|scope| {
        let started = Instant::now();
        let writer = scope.spawn(|| -> Result<(), BoxError> {
            let mut left = total;
            while left > 0 {
                let n = left.min(INPUT_CHUNK as u64) as usize;
                send_chunked(&fd, &input[..n])?;
                left -= n as u64;
            }
            close_input(&fd)
        });
        let mut buf = vec![0u8; 16 * 1024];
        let mut echoed = 0u64;
        let mut last_byte = None;
        let read = loop {
            match recv_record(&fd, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => echoed += n as u64 - 1,
                Err(e) => break Err(e),
            }
            if last_byte.is_none() && echoed >= total {
                last_byte = Some(Instant::now());
            }
        };
        writer.join().map_err(|_| "floor writer panicked")??;
        read?;
        check_bytes("floor", echoed, total)?;
        Ok(last_byte.ok_or("floor: nothing echoed")? - started)
    })
}

/// The floor's round trips: `writes` times one line sent and its echo
/// received, after one not counted.
fn floor_round_trips(fd: OwnedFd, writes: usize) -> Result<Vec<Duration>, BoxError> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut round_trips = Vec::with_capacity(writes);
    for write in 0..=writes {
        let sent = Instant::now();
        send_chunked(&fd, LINE)?;
        let mut echoed = 0;
        while echoed < LINE.len() {
            match recv_record(&fd, &mut buf)? {
                0 => return Err("floor: the stream ended before the echo".into()),
                n => echoed += n - 1,
            }
        }
        if write > 0 {
            round_trips.push(sent.elapsed());
        }
    }
    close_input(&fd)?;
    if recv_record(&fd, &mut buf)? != 0 {
        return Err("floor: more output than the echoed lines".into());
    }
    Ok(round_trips)
}

/// The library's stdin for throughput: `left` bytes of the pattern, held
/// back until `gate` opens (the container started), so that the time runs
/// from the first byte conmon can take.
struct GatedPattern {
    gate: Option<oneshot::Receiver<()>>,
    left: u64,
    pattern: Vec<u8>,
}

impl AsyncRead for GatedPattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(gate) = self.gate.as_mut() {
            if Pin::new(gate).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.gate = None;
        }
        let n = (buf.remaining() as u64)
            .min(self.left)
            .min(self.pattern.len() as u64) as usize;
        buf.put_slice(&self.pattern[..n]);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Attaches `stdin` and a counting stdout to `c` in a task; returns once
/// the session is connected.
async fn attach_counting(
    runtime: &Arc<ConmonRuntime>,
    c: &ContainerDescription,
    stdin: InputStream,
    count: &Arc<Count>,
) -> tokio::task::JoinHandle<runtime_api::Result<AttachOutcome>> {
    let ready = AttachReady::new();
    let session = tokio::spawn({
        let runtime = Arc::clone(runtime);
        let c = c.clone();
        let streams = AttachStreams {
            stdin: Some(stdin),
            stdout: Some(Box::pin(CountingSink(Arc::clone(count)))),
            stderr: None,
        };
        let options = AttachOptions::default()
            .with_framing(Framing::Raw)
            .with_detach_keys("")
            .with_ready(ready.clone());
        async move { runtime.attach(&c, streams, options).await }
    });
    ready.wait().await;
    session
}

/// Waits (bounded) for the library's session to end with its streams.
async fn session_ended(
    session: tokio::task::JoinHandle<runtime_api::Result<AttachOutcome>>,
) -> Result<(), BoxError> {
    let outcome = tokio::time::timeout(WAIT_LIMIT, session)
        .await
        .map_err(|_| format!("library session still open after {WAIT_LIMIT:?}"))???;
    if outcome != AttachOutcome::StreamsEnded {
        return Err(format!("library session ended with {outcome:?}").into());
    }
    Ok(())
}

async fn library_echo(
    runtime: &Arc<ConmonRuntime>,
    c: ContainerDescription,
    total: u64,
) -> Result<Duration, BoxError> {
    let count = Count::with_target(total);
    let (open, gate) = oneshot::channel();
    let stdin = GatedPattern {
        gate: Some(gate),
        left: total,
        pattern: pattern(64 * 1024),
    };
    let session = attach_counting(runtime, &c, Box::pin(stdin), &count).await;
    runtime.start(&c).await?;
    let started = Instant::now();
    let _ = open.send(());
    session_ended(session).await?;
    check_bytes("library", count.bytes(), total)?;
    Ok(count.reached().ok_or("library: nothing echoed")? - started)
}

async fn library_round_trips(
    runtime: &Arc<ConmonRuntime>,
    c: ContainerDescription,
    writes: usize,
) -> Result<Vec<Duration>, BoxError> {
    let count = Arc::new(Count::default());
    let (mut input, container_stdin) = tokio::io::duplex(64 * 1024);
    let session = attach_counting(runtime, &c, Box::pin(container_stdin), &count).await;
    runtime.start(&c).await?;
    let mut round_trips = Vec::with_capacity(writes);
    for write in 0..=writes {
        let sent = Instant::now();
        input.write_all(LINE).await?;
        count
            .wait_for((write as u64 + 1) * LINE.len() as u64, WAIT_LIMIT)
            .await
            .map_err(|e| format!("library: echo of write {write}: {e}"))?;
        if write > 0 {
            round_trips.push(sent.elapsed());
        }
    }
    // The end of the input closes the container's stdin: cat exits.
    drop(input);
    session_ended(session).await?;
    check_bytes(
        "library",
        count.bytes(),
        (writes as u64 + 1) * LINE.len() as u64,
    )?;
    Ok(round_trips)
}

/// Runs `command` (an interactive `cat`) with its stdin and stdout pipes
/// to this process, bounded by [`WAIT_LIMIT`]: `talk` writes into the
/// first and reads the second; the end of input ends the process. The
/// whole process's wall time and what `talk` returned.
fn talk_to<T>(
    command: &mut Command,
    talk: impl FnOnce(&mut ChildStdin, &mut ChildStdout) -> Result<T, BoxError>,
) -> Result<(Duration, T), BoxError> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let watchdog = Watchdog::new(&child, WAIT_LIMIT)?;
    let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let talked = talk(&mut stdin, &mut stdout);
    drop(stdin);
    let rest = count_to_end(stdout, 0);
    let status = child.wait()?;
    let took = started.elapsed();
    watchdog.check(&format!("{command:?}"))?;
    let value = talked?;
    let (extra, _, _) = rest?;
    if extra != 0 {
        return Err(format!("{command:?}: {extra} bytes more than the echo").into());
    }
    if !status.success() {
        return Err(format!("{command:?} exited with {status}").into());
    }
    Ok((took, value))
}

/// Writes `total` bytes of the pattern from a second thread and counts
/// the echo to the end.
fn pipe_echo(stdin: &mut ChildStdin, stdout: &mut ChildStdout, total: u64) -> Result<(), BoxError> {
    let input = pattern(64 * 1024);
    let echoed = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            let mut left = total;
            while left > 0 {
                let n = left.min(input.len() as u64) as usize;
                stdin.write_all(&input[..n])?;
                left -= n as u64;
            }
            Ok(())
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut echoed = 0u64;
        while echoed < total {
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => echoed += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BoxError::from(e)),
            }
        }
        writer.join().map_err(|_| "pipe writer panicked")??;
        Ok(echoed)
    })?;
    check_bytes("pipe echo", echoed, total)
}

/// `writes` round trips of one line through the pipes, after one not
/// counted.
fn pipe_round_trips(
    stdin: &mut ChildStdin,
    stdout: &mut ChildStdout,
    writes: usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut echo = [0u8; LINE.len()];
    let mut round_trips = Vec::with_capacity(writes);
    for write in 0..=writes {
        let sent = Instant::now();
        stdin.write_all(LINE)?;
        stdin.flush()?;
        stdout.read_exact(&mut echo)?;
        if echo != *LINE {
            return Err(format!("echo {echo:?} differs from the line written").into());
        }
        if write > 0 {
            round_trips.push(sent.elapsed());
        }
    }
    Ok(round_trips)
}

#[derive(Clone, Copy, Debug)]
enum Contender {
    Floor,
    Library,
    Demo,
    Podman,
}

impl Contender {
    /// The contender's name for `--only`.
    fn key(self) -> &'static str {
        match self {
            Contender::Floor => "floor",
            Contender::Library => "library",
            Contender::Demo => "demo",
            Contender::Podman => "podman",
        }
    }
}

/// The commands of the demo and podman contenders.
struct Commands {
    run_binary: Option<std::path::PathBuf>,
    podman_image: Option<String>,
    demo_id: String,
}

impl Commands {
    fn demo(&self, args: &[&str]) -> Result<Command, BoxError> {
        let mut command = Command::new(self.run_binary.as_deref().ok_or("no run binary")?);
        command.args(["--id", &self.demo_id]).args(args);
        Ok(command)
    }

    fn podman(&self, args: &[&str]) -> Result<Command, BoxError> {
        let image = self.podman_image.as_deref().ok_or("no podman image")?;
        let mut command = Command::new("podman");
        command
            .args(["run", "--rm", "--log-driver", "k8s-file"])
            .args(args.iter().take_while(|a| a.starts_with('-')))
            .arg(image)
            .args(args.iter().skip_while(|a| a.starts_with('-')));
        Ok(command)
    }
}

/// Prints round trips: each contender's median and 90th percentile in
/// microseconds, its median's distance to the floor's (the first row) in
/// milliseconds, and the ratio of the medians.
fn print_latencies(title: &str, rows: &[&Samples]) {
    println!("{title}");
    let Some(floor) = rows.first().map(|s| s.median()) else {
        return;
    };
    println!(
        "  {:<60} {:>10} {:>10} {:>14} {:>8}",
        "contender", "median µs", "p90 µs", "- floor ms", "ratio"
    );
    for row in rows.iter().filter(|row| !row.is_empty()) {
        println!(
            "  {:<60} {:>10.1} {:>10.1} {:>14.3} {:>8.2}",
            row.name,
            row.median() * 1e6,
            row.percentile(0.9) * 1e6,
            (row.median() - floor) * 1e3,
            if floor > 0.0 {
                row.median() / floor
            } else {
                0.0
            }
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = Options::parse(5).map_err(|e| format!("bench_interactive: {e}"))?;
    let mib: u64 = options.number("mib", if options.quick { 1 } else { 64 })?;
    let writes: usize = options.number("writes", if options.quick { 10 } else { 200 })?;
    if writes == 0 {
        return Err("--writes must be at least 1".into());
    }
    let total = mib * 1024 * 1024;
    let work = tempfile::tempdir()?;
    let runtime = Arc::new(bench_support::runtime(work.path())?);
    let bundle = BundleBuilder::new().args(["cat"]).build()?;
    let commands = Commands {
        run_binary: example_binary(&options, "run"),
        podman_image: podman_image(&options),
        demo_id: format!("bio-demo-{}", std::process::id()),
    };

    let mut contenders = vec![Contender::Floor, Contender::Library];
    if commands.run_binary.is_some() {
        contenders.push(Contender::Demo);
    }
    if commands.podman_image.is_some() {
        contenders.push(Contender::Podman);
    }
    if let Some(only) = options.value("only") {
        let wanted: Vec<&str> = only.split(',').collect();
        contenders.retain(|c| wanted.contains(&c.key()));
        if contenders.is_empty() {
            return Err(format!("--only {only}: none of floor, library, demo, podman").into());
        }
    }

    let mut floor = Samples::new("(a) floor: raw attach socket, send + recv threads");
    let mut library = Samples::new("(b) library attach, pattern reader -> sink");
    let mut demo_whole = Samples::new("(c) demo run -i cat, pipes, whole process");
    let mut demo_net = Samples::new("(c) demo run -i cat, pipes, net of `run true`");
    let mut podman_whole = Samples::new("(d) podman run -i cat, pipes, whole process");
    let mut podman_net = Samples::new("(d) podman run -i cat, pipes, net of `true`");
    let mut demo_true = Samples::new("demo run -- true");
    let mut podman_true = Samples::new("podman run --rm true");
    println!(
        "stdin throughput: {mib} MiB written to `cat` and echoed, log driver k8s-file, \
         {} round(s)",
        options.rounds
    );
    for round in 0..options.rounds {
        let mut order = contenders.clone();
        order.rotate_left(round % contenders.len());
        for contender in order {
            match contender {
                Contender::Floor => {
                    let took = with_cat(&runtime, work.path(), bundle.path(), "bio-floor", {
                        let runtime = Arc::clone(&runtime);
                        move |c| async move {
                            let fd = floor_socket(&runtime, &c).await?;
                            tokio::task::spawn_blocking(move || floor_echo(fd, total)).await?
                        }
                    })
                    .await?;
                    floor.push(took);
                }
                Contender::Library => {
                    let took = with_cat(&runtime, work.path(), bundle.path(), "bio-library", {
                        let runtime = Arc::clone(&runtime);
                        move |c| async move { library_echo(&runtime, c, total).await }
                    })
                    .await?;
                    library.push(took);
                }
                Contender::Demo => {
                    let (empty, ()) = talk_to(&mut commands.demo(&["--", "true"])?, |_, _| Ok(()))?;
                    let (took, ()) = talk_to(&mut commands.demo(&["-i", "--", "cat"])?, |i, o| {
                        pipe_echo(i, o, total)
                    })?;
                    demo_true.push(empty);
                    demo_whole.push(took);
                    demo_net.push(took.saturating_sub(empty));
                }
                Contender::Podman => {
                    let (empty, ()) = talk_to(&mut commands.podman(&["true"])?, |_, _| Ok(()))?;
                    let (took, ()) = talk_to(&mut commands.podman(&["-i", "cat"])?, |i, o| {
                        pipe_echo(i, o, total)
                    })?;
                    podman_true.push(empty);
                    podman_whole.push(took);
                    podman_net.push(took.saturating_sub(empty));
                }
            }
        }
    }
    print_throughputs(
        "stdin throughput (ratio = contender's MB/s / floor's MB/s)",
        total,
        &[
            &floor,
            &library,
            &demo_net,
            &demo_whole,
            &podman_net,
            &podman_whole,
        ],
    );
    bench_support::print_fixed_costs(&[&demo_true, &podman_true]);

    let mut floor = Samples::new("(a) floor: raw attach socket, send then recv");
    let mut library = Samples::new("(b) library attach, duplex stdin -> waking sink");
    let mut demo = Samples::new("(c) demo run -i cat, pipes");
    let mut podman = Samples::new("(d) podman run -i cat, pipes");
    println!(
        "interactive latency: {writes} writes of {} bytes per container, echoed by `cat`, \
         {} round(s)",
        LINE.len(),
        options.rounds
    );
    for round in 0..options.rounds {
        let mut order = contenders.clone();
        order.rotate_left(round % contenders.len());
        for contender in order {
            let (samples, round_trips) = match contender {
                Contender::Floor => (
                    &mut floor,
                    with_cat(&runtime, work.path(), bundle.path(), "bio-floor", {
                        let runtime = Arc::clone(&runtime);
                        move |c| async move {
                            let fd = floor_socket(&runtime, &c).await?;
                            tokio::task::spawn_blocking(move || floor_round_trips(fd, writes))
                                .await?
                        }
                    })
                    .await?,
                ),
                Contender::Library => (
                    &mut library,
                    with_cat(&runtime, work.path(), bundle.path(), "bio-library", {
                        let runtime = Arc::clone(&runtime);
                        move |c| async move { library_round_trips(&runtime, c, writes).await }
                    })
                    .await?,
                ),
                Contender::Demo => (
                    &mut demo,
                    talk_to(&mut commands.demo(&["-i", "--", "cat"])?, |i, o| {
                        pipe_round_trips(i, o, writes)
                    })?
                    .1,
                ),
                Contender::Podman => (
                    &mut podman,
                    talk_to(&mut commands.podman(&["-i", "cat"])?, |i, o| {
                        pipe_round_trips(i, o, writes)
                    })?
                    .1,
                ),
            };
            for round_trip in round_trips {
                samples.push(round_trip);
            }
        }
    }
    print_latencies(
        "write -> echo round trip (ratio = contender's median / floor's median)",
        &[&floor, &library, &demo, &podman],
    );
    if !floor.is_empty() && !library.is_empty() {
        let above = Duration::from_secs_f64((library.median() - floor.median()).max(0.0));
        println!(
            "target: library's median within {} ms of the floor's: {} ({:.3} ms above)",
            LATENCY_TARGET.as_millis(),
            bench_support::verdict(above <= LATENCY_TARGET),
            above.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
