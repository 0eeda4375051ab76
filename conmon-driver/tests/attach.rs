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
