//! Attaching to real containers through conmon's attach socket: framing,
//! large outputs, stdin, terminals and resize, detach keys, long bundle
//! paths, and the error and cancellation paths.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use attach::{MuxDecoder, MuxStream};
use common::*;
use conmon_driver::ConmonRuntime;
use runtime_api::{
    AttachCancel, AttachOptions, AttachOutcome, AttachReady, AttachStreams, ContainerDescription,
    ContainerStatus, CreateOptions, Framing, OciRuntime, RuntimeError, TerminalSize,
};
use testkit::BundleBuilder;

/// Starts an attach session in a task and returns once it is connected.
async fn attach_in_background(
    runtime: &Arc<ConmonRuntime>,
    c: &ContainerDescription,
    streams: AttachStreams,
    mut options: AttachOptions,
) -> tokio::task::JoinHandle<runtime_api::Result<AttachOutcome>> {
    let ready = AttachReady::new();
    options.ready = Some(ready.clone());
    let runtime = Arc::clone(runtime);
    let c = c.clone();
    let task = tokio::spawn(async move { runtime.attach(&c, streams, options).await });
    tokio::time::timeout(Duration::from_secs(30), ready.wait())
        .await
        .expect("attach never connected");
    task
}

fn runtime_of(s: Setup) -> (Arc<ConmonRuntime>, tempfile::TempDir) {
    (Arc::new(s.runtime), s.dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_frames_carry_each_stream() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("mux");
    let b = bundle(&["sh", "-c", "echo out; echo err >&2"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let out = Collector::default();
    let err = Collector::default();
    let session = attach_in_background(
        &runtime,
        &c,
        AttachStreams {
            stdin: None,
            stdout: Some(out.sink()),
            stderr: Some(err.sink()),
        },
        AttachOptions::default().with_framing(Framing::Multiplexed),
    )
    .await;
    runtime.start(&c).await.unwrap();
    assert_eq!(session.await.unwrap().unwrap(), AttachOutcome::StreamsEnded);
    assert_eq!(runtime.wait(&c, Duration::from_secs(30)).await.unwrap(), 0);

    assert!(
        err.bytes().is_empty(),
        "multiplexed output all goes to one sink"
    );
    let mut decoder = MuxDecoder::new();
    decoder.push(&out.bytes());
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(frame) = decoder.next_frame().unwrap() {
        match frame.stream {
            MuxStream::Stdout => stdout.extend(frame.payload),
            MuxStream::Stderr => stderr.extend(frame.payload),
            MuxStream::Stdin => panic!("stdin frame from the container"),
        }
    }
    decoder.finish().unwrap();
    assert_eq!(stdout, b"out\n");
    assert_eq!(stderr, b"err\n");
    runtime.delete(&c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_arrive_byte_exact() {
    if !need_runc() {
        return;
    }
    const SIZE: usize = 64 * 1024 * 1024;
    let s = setup("runc", &[]);
    let id = unique_id("big");
    let b = bundle(&["sh", "-c", "seq 1 10000000 | head -c 67108864"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let out = Collector::default();
    let session = attach_in_background(
        &runtime,
        &c,
        AttachStreams {
            stdout: Some(out.sink()),
            ..AttachStreams::default()
        },
        AttachOptions::default(),
    )
    .await;
    runtime.start(&c).await.unwrap();
    assert_eq!(session.await.unwrap().unwrap(), AttachOutcome::StreamsEnded);
    let mut expected = String::with_capacity(SIZE + 16);
    let mut n = 1u64;
    while expected.len() < SIZE {
        expected.push_str(&n.to_string());
        expected.push('\n');
        n += 1;
    }
    expected.truncate(SIZE);
    let got = out.bytes();
    let first_difference = got
        .iter()
        .zip(expected.as_bytes())
        .position(|(a, b)| a != b);
    assert!(
        got.len() == SIZE && first_difference.is_none(),
        "got {} bytes of {SIZE}; first difference at {first_difference:?}; log holds {} bytes",
        got.len(),
        std::fs::metadata(_dir.path().join("logs").join(format!("{id}.log")))
            .map(|m| m.len())
            .unwrap_or(0)
    );
    assert_eq!(runtime.wait(&c, Duration::from_secs(60)).await.unwrap(), 0);
    runtime.delete(&c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_round_trips_and_its_eof_ends_the_container() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("cat");
    let b = bundle(&["cat"]);
    let c = s.describe(&id, &b).stdin(true).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let input: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let out = Collector::default();
    let session = attach_in_background(
        &runtime,
        &c,
        AttachStreams {
            stdin: Some(Box::pin(std::io::Cursor::new(input.clone()))),
            stdout: Some(out.sink()),
            stderr: None,
        },
        AttachOptions::default().with_detach_keys(""),
    )
    .await;
    runtime.start(&c).await.unwrap();
    assert_eq!(session.await.unwrap().unwrap(), AttachOutcome::StreamsEnded);
    assert_eq!(runtime.wait(&c, Duration::from_secs(60)).await.unwrap(), 0);
    let got = out.bytes();
    assert_eq!(got.len(), input.len());
    assert!(got == input, "8 MiB through cat differ");
    runtime.delete(&c).await.unwrap();
}

async fn terminal_stty_size(parent: Option<std::path::PathBuf>) {
    let s = setup("runc", &[]);
    let id = unique_id("tty");
    let mut builder = BundleBuilder::new()
        .args([
            "sh",
            "-c",
            // conmon applies a resize asynchronously: wait for it to land.
            "read line; until [ \"$(stty size)\" = \"40 120\" ]; do :; done; stty size",
        ])
        .terminal(true);
    if let Some(parent) = parent {
        builder = builder.in_dir(parent);
    }
    let b = builder.build().unwrap();
    assert_eq!(
        b.path().join("attach").as_os_str().len() >= 108,
        b.path().as_os_str().len() > 100
    );
    let c = s
        .describe(&id, &b)
        .terminal(true)
        .stdin(true)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let out = Collector::default();
    let (mut client, container_stdin) = tokio::io::duplex(1024);
    let session = attach_in_background(
        &runtime,
        &c,
        AttachStreams {
            stdin: Some(Box::pin(container_stdin)),
            stdout: Some(out.sink()),
            stderr: None,
        },
        AttachOptions::default(),
    )
    .await;
    runtime.start(&c).await.unwrap();
    runtime
        .resize_terminal(&c, TerminalSize::new(40, 120).unwrap())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut client, b"go\n")
        .await
        .unwrap();
    assert_eq!(session.await.unwrap().unwrap(), AttachOutcome::StreamsEnded);
    let text = String::from_utf8_lossy(&out.bytes()).into_owned();
    assert!(text.contains("40 120"), "{text:?}");
    assert_eq!(runtime.wait(&c, Duration::from_secs(30)).await.unwrap(), 0);
    runtime.delete(&c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_resize_reaches_stty() {
    if !need_runc() {
        return;
    }
    terminal_stty_size(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_and_resize_work_with_a_bundle_path_over_108_bytes() {
    if !need_runc() {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let long = parent.path().join("a".repeat(60)).join("b".repeat(60));
    terminal_stty_size(Some(long)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_keeps_the_container_running_and_a_second_attach_works() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("detach");
    let b = bundle(&["cat"]);
    // Without this, conmon closes cat's stdin when the first client leaves.
    let c = s
        .describe(&id, &b)
        .stdin(true)
        .leave_stdin_open(true)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    runtime.start(&c).await.unwrap();

    // Default keys (ctrl-p, ctrl-q) in one read, after some input.
    let out = Collector::default();
    let outcome = runtime
        .attach(
            &c,
            AttachStreams {
                stdin: Some(Box::pin(Chunks(VecDeque::from(
                    [b"one\n\x10\x11".to_vec()],
                )))),
                stdout: Some(out.sink()),
                stderr: None,
            },
            AttachOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, AttachOutcome::Detached);
    assert_eq!(
        runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );

    // Custom keys split across reads, with a false start forwarded.
    let out = Collector::default();
    let outcome = runtime
        .attach(
            &c,
            AttachStreams {
                stdin: Some(Box::pin(Chunks(VecDeque::from([
                    b"two\n\x01".to_vec(),
                    b"y\n\x01".to_vec(),
                    b"x".to_vec(),
                ])))),
                stdout: Some(out.sink()),
                stderr: None,
            },
            AttachOptions::default().with_detach_keys("ctrl-a,x"),
        )
        .await
        .unwrap();
    assert_eq!(outcome, AttachOutcome::Detached);
    assert_eq!(
        runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );

    // Invalid keys are refused, naming the key.
    let err = runtime
        .attach(
            &c,
            AttachStreams {
                stdout: Some(Collector::default().sink()),
                ..AttachStreams::default()
            },
            AttachOptions::default().with_detach_keys("ctrl-p,ctrl-1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("ctrl-1"), "{err}");

    runtime
        .stop(&c, Duration::from_secs(5), false)
        .await
        .unwrap();
    runtime.delete(&c).await.unwrap();
    // cat echoed what reached it: "one", "two", and the false start "\x01y".
    let (logged, _) =
        conmon_driver::read_k8s_log(&_dir.path().join("logs").join(format!("{id}.log"))).unwrap();
    assert_eq!(logged, b"one\ntwo\n\x01y\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_to_stopped_or_unknown_containers_and_without_streams_fails() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("stopped");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, dir) = runtime_of(s);

    let err = runtime
        .attach(&c, AttachStreams::default(), AttachOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least one"), "{err}");

    let streams = || AttachStreams {
        stdout: Some(Collector::default().sink()),
        ..AttachStreams::default()
    };
    // Unknown: never created.
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        runtime.attach(&c, streams(), AttachOptions::default()),
    )
    .await
    .expect("attach to an unknown container hung")
    .unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::ContainerNotRunning { .. } | RuntimeError::NoSuchContainer { .. }
        ),
        "{err:?}"
    );

    runtime.create(&c, CreateOptions::default()).await.unwrap();
    runtime.start(&c).await.unwrap();
    runtime.wait(&c, Duration::from_secs(30)).await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        runtime.attach(&c, streams(), AttachOptions::default()),
    )
    .await
    .expect("attach to a stopped container hung")
    .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ContainerNotRunning { .. }),
        "{err:?}"
    );
    let err = runtime
        .resize_terminal(&c, TerminalSize::new(10, 10).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ContainerNotRunning { .. }),
        "{err:?}"
    );
    runtime.delete(&c).await.unwrap();
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_returns_promptly_and_leaves_the_container_running() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("cancel");
    let b = bundle(&["sh", "-c", "while :; do echo tick; sleep 1; done"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let cancel = AttachCancel::new();
    let out = Collector::default();
    let session = attach_in_background(
        &runtime,
        &c,
        AttachStreams {
            stdout: Some(out.sink()),
            ..AttachStreams::default()
        },
        AttachOptions::default().with_cancel(cancel.clone()),
    )
    .await;
    runtime.start(&c).await.unwrap();
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), session)
        .await
        .expect("cancel did not end the session promptly")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, AttachOutcome::Cancelled);
    assert_eq!(
        runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );
    runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    runtime.delete(&c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_sessions_detach_and_reattach_like_podman_run_it() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("ttydetach");
    let b = BundleBuilder::new()
        .args(["sh"])
        .terminal(true)
        .build()
        .unwrap();
    let c = s
        .describe(&id, &b)
        .terminal(true)
        .stdin(true)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    runtime.start(&c).await.unwrap();

    let first = Collector::default();
    let outcome = runtime
        .attach(
            &c,
            AttachStreams {
                stdin: Some(Box::pin(Chunks(VecDeque::from([
                    b"echo first-$((40+2))\n".to_vec(),
                    b"\x10".to_vec(),
                    b"\x11".to_vec(),
                ])))),
                stdout: Some(first.sink()),
                stderr: None,
            },
            AttachOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, AttachOutcome::Detached);
    assert_eq!(
        runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );

    let second = Collector::default();
    let outcome = runtime
        .attach(
            &c,
            AttachStreams {
                stdin: Some(Box::pin(Chunks(VecDeque::from([b"exit 3\n".to_vec()])))),
                stdout: Some(second.sink()),
                stderr: None,
            },
            AttachOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, AttachOutcome::StreamsEnded);
    assert_eq!(runtime.wait(&c, Duration::from_secs(30)).await.unwrap(), 3);
    let (logged, _) =
        conmon_driver::read_k8s_log(&_dir.path().join("logs").join(format!("{id}.log"))).unwrap();
    assert!(String::from_utf8_lossy(&logged).contains("first-42"));
    runtime.delete(&c).await.unwrap();
}

/// 256 MiB per stream: a lost or duplicated record anywhere is lost data.
const BIG: u64 = 256 * 1024 * 1024;

/// Length of one line of [`fill_pattern`].
const LINE: u64 = 16;

/// Fills `buf` with the bytes at `offset..` of a stream of 16-byte lines:
/// `tag`, the line's number as 14 hex digits, `\n`. Every line is unique,
/// so a lost, duplicated or reordered piece shows at once.
fn fill_pattern(tag: u8, offset: u64, buf: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = [0u8; LINE as usize];
    let mut at = 0;
    while at < buf.len() {
        let position = offset + at as u64;
        let number = position / LINE;
        line[0] = tag;
        for (i, digit) in line[1..15].iter_mut().enumerate() {
            *digit = HEX[((number >> (4 * (13 - i))) & 0xf) as usize];
        }
        line[15] = b'\n';
        let from = (position % LINE) as usize;
        let n = (line.len() - from).min(buf.len() - at);
        buf[at..at + n].copy_from_slice(&line[from..from + n]);
        at += n;
    }
}

/// Writes `len` bytes of the pattern of `tag` to `path`.
fn write_pattern(path: &std::path::Path, tag: u8, len: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < len {
        let n = chunk.len().min((len - offset) as usize);
        fill_pattern(tag, offset, &mut chunk[..n]);
        file.write_all(&chunk[..n]).unwrap();
        offset += n as u64;
    }
    file.flush().unwrap();
}

/// Compares what a sink receives with the pattern of `tag` as it arrives,
/// so that hundreds of MiB are checked without keeping them.
#[derive(Debug)]
struct PatternCheck {
    tag: u8,
    expected: Vec<u8>,
    /// Bytes compared so far.
    seen: u64,
    /// Offset of the first difference.
    first_difference: Option<u64>,
}

impl PatternCheck {
    fn new(tag: u8) -> PatternCheck {
        PatternCheck {
            tag,
            expected: Vec::new(),
            seen: 0,
            first_difference: None,
        }
    }

    fn check(&mut self, got: &[u8]) {
        self.expected.resize(got.len(), 0);
        fill_pattern(self.tag, self.seen, &mut self.expected);
        if self.first_difference.is_none() && self.expected[..] != *got {
            let at = self.expected.iter().zip(got).position(|(a, b)| a != b);
            self.first_difference = Some(self.seen + at.unwrap_or(0) as u64);
        }
        self.seen += got.len() as u64;
    }

    /// Panics unless exactly `len` bytes arrived, all as expected.
    fn assert_exact(&self, what: &str, len: u64) {
        assert!(
            self.seen == len && self.first_difference.is_none(),
            "{what}: got {} bytes of {len}; first difference at {:?}",
            self.seen,
            self.first_difference
        );
    }
}

/// Where a sink's bytes go: straight to a checker, or through a decoder of
/// multiplexed frames to one checker per stream.
enum Check {
    Plain(PatternCheck),
    Frames {
        decoder: MuxDecoder,
        stdout: PatternCheck,
        stderr: PatternCheck,
    },
}

/// A sink checking what it receives as it arrives. With `vectored`, it
/// takes vectored writes, each only in part (the first slices whole and
/// half of the next).
#[derive(Clone)]
struct Checker(Arc<std::sync::Mutex<Check>>, bool);

impl Checker {
    fn plain(tag: u8) -> Checker {
        Checker(
            Arc::new(std::sync::Mutex::new(Check::Plain(PatternCheck::new(tag)))),
            false,
        )
    }

    fn frames(vectored: bool) -> Checker {
        Checker(
            Arc::new(std::sync::Mutex::new(Check::Frames {
                decoder: MuxDecoder::new(),
                stdout: PatternCheck::new(OUT),
                stderr: PatternCheck::new(ERR),
            })),
            vectored,
        )
    }

    fn sink(&self) -> runtime_api::OutputStream {
        Box::pin(self.clone())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Check) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

impl tokio::io::AsyncWrite for Checker {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.with(|check| match check {
            Check::Plain(text) => text.check(buf),
            Check::Frames {
                decoder,
                stdout,
                stderr,
            } => {
                decoder.push(buf);
                while let Some(frame) = decoder.next_frame().expect("valid frames") {
                    match frame.stream {
                        MuxStream::Stdout => stdout.check(&frame.payload),
                        MuxStream::Stderr => stderr.check(&frame.payload),
                        MuxStream::Stdin => panic!("stdin frame from the container"),
                    }
                }
            }
        });
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut taken: Vec<u8> = Vec::new();
        for (i, buf) in bufs.iter().enumerate() {
            if i == 3 {
                taken.extend_from_slice(&buf[..buf.len() / 2]);
                break;
            }
            taken.extend_from_slice(buf);
        }
        self.poll_write(cx, &taken)
    }
    fn is_write_vectored(&self) -> bool {
        self.1
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn the_pattern_is_the_same_whatever_the_cut() {
    let mut whole = vec![0u8; 100];
    fill_pattern(OUT, 0, &mut whole);
    assert_eq!(&whole[..32], b"o00000000000000\no00000000000001\n");
    let mut text = PatternCheck::new(OUT);
    for piece in [&whole[..5], &whole[5..40], &whole[40..]] {
        text.check(piece);
    }
    text.assert_exact("pieces", 100);
    let mut text = PatternCheck::new(OUT);
    text.check(&whole[..16]);
    text.check(&whole[32..48]);
    assert_eq!(text.first_difference, Some(30));
}

/// Tags of the stdout and stderr patterns.
const OUT: u8 = b'o';
const ERR: u8 = b'e';

/// Runs `script` in a container whose root holds `/out` (the pattern of
/// [`OUT`]) and `/err` (of [`ERR`]), [`BIG`] bytes each, attached with
/// `streams` and `options`; returns once the session and the container
/// ended.
async fn run_big(
    name: &str,
    script: &str,
    terminal: bool,
    streams: AttachStreams,
    options: AttachOptions,
) {
    let s = setup("runc", &[]);
    let id = unique_id(name);
    let b = BundleBuilder::new()
        .args(["sh", "-c", script])
        .terminal(terminal)
        .build()
        .unwrap();
    write_pattern(&b.rootfs().join("out"), OUT, BIG);
    write_pattern(&b.rootfs().join("err"), ERR, BIG);
    let c = s.describe(&id, &b).terminal(terminal).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (runtime, _dir) = runtime_of(s);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let session = attach_in_background(&runtime, &c, streams, options).await;
    runtime.start(&c).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(600), session)
        .await
        .expect("the session ended in time");
    assert_eq!(outcome.unwrap().unwrap(), AttachOutcome::StreamsEnded);
    assert_eq!(runtime.wait(&c, Duration::from_secs(60)).await.unwrap(), 0);
    runtime.delete(&c).await.unwrap();
}

/// Both streams at once from two processes, so that their records
/// interleave on the socket.
const INTERLEAVED: &str = "cat /out & cat /err >&2; wait";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_six_mib_per_stream_interleaved_arrive_byte_exact_raw() {
    if !need_runc() {
        return;
    }
    let out = Checker::plain(OUT);
    let err = Checker::plain(ERR);
    run_big(
        "big-raw",
        INTERLEAVED,
        false,
        AttachStreams {
            stdin: None,
            stdout: Some(out.sink()),
            stderr: Some(err.sink()),
        },
        AttachOptions::default(),
    )
    .await;
    for (what, checker) in [("stdout", &out), ("stderr", &err)] {
        checker.with(|check| match check {
            Check::Plain(text) => text.assert_exact(what, BIG),
            Check::Frames { .. } => unreachable!(),
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_six_mib_per_stream_interleaved_arrive_byte_exact_multiplexed() {
    big_multiplexed(false).await;
}

/// The same through a sink with vectored writes, which gets each batch's
/// frame headers and payloads as slices, and takes them only in part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_six_mib_per_stream_interleaved_arrive_byte_exact_multiplexed_vectored() {
    big_multiplexed(true).await;
}

async fn big_multiplexed(vectored: bool) {
    if !need_runc() {
        return;
    }
    let frames = Checker::frames(vectored);
    let unused = Collector::default();
    run_big(
        if vectored { "big-mux-vec" } else { "big-mux" },
        INTERLEAVED,
        false,
        AttachStreams {
            stdin: None,
            stdout: Some(frames.sink()),
            stderr: Some(unused.sink()),
        },
        AttachOptions::default().with_framing(Framing::Multiplexed),
    )
    .await;
    assert!(unused.bytes().is_empty(), "every frame goes to one sink");
    frames.with(|check| match check {
        Check::Frames {
            decoder,
            stdout,
            stderr,
        } => {
            decoder.finish().expect("no partial frame");
            stdout.assert_exact("stdout frames", BIG);
            stderr.assert_exact("stderr frames", BIG);
        }
        Check::Plain(_) => unreachable!(),
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_six_mib_through_a_terminal_arrive_byte_exact() {
    if !need_runc() {
        return;
    }
    let out = Checker::plain(OUT);
    run_big(
        "big-tty",
        // No output processing: the terminal would turn each "\n" into
        // "\r\n".
        "stty -opost; cat /out",
        true,
        AttachStreams {
            stdin: None,
            stdout: Some(out.sink()),
            stderr: None,
        },
        AttachOptions::default(),
    )
    .await;
    out.with(|check| match check {
        Check::Plain(text) => text.assert_exact("terminal output", BIG),
        Check::Frames { .. } => unreachable!(),
    });
}
