//! The mock's model beyond what the conformance suite checks: output
//! before an attach is dropped, detach keys, stdin left open, scripted
//! signal reactions, signals to created containers, exec timeouts and
//! execs dying with their container, and the bundle/description checks.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use runtime_api::{
    AttachCancel, AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, ContainerId,
    ContainerStatus, CreateOptions, ExecConfig, LogDriver, OciRuntime, OutputStream, RuntimeError,
    Signal,
};
use testkit::mock::{write_bundle, MockProcess, MockRuntime, Operation, SignalReaction};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(10);

/// A sink whose content can be awaited.
#[derive(Clone)]
struct Sink(Arc<watch::Sender<Vec<u8>>>);

impl Sink {
    fn new() -> Self {
        Self(Arc::new(watch::channel(Vec::new()).0))
    }
    fn stream(&self) -> OutputStream {
        Box::pin(self.clone())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
    async fn wait_for(&self, text: &str) {
        let mut rx = self.0.subscribe();
        let found = rx.wait_for(|b| String::from_utf8_lossy(b).contains(text));
        tokio::time::timeout(LIMIT, found)
            .await
            .unwrap_or_else(|_| panic!("{text:?} never came; got {:?}", self.text()))
            .unwrap();
    }
}

impl tokio::io::AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.send_modify(|b| b.extend_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Fixture {
    mock: Arc<MockRuntime>,
    _dir: tempfile::TempDir,
}

/// A mock with `program` defined as `process`, and a container running
/// it, configured by `configure`.
fn fixture(
    id: &str,
    process: MockProcess,
    configure: impl FnOnce(
        runtime_api::ContainerDescriptionBuilder,
    ) -> runtime_api::ContainerDescriptionBuilder,
) -> (Fixture, ContainerDescription) {
    let mock = Arc::new(MockRuntime::new());
    mock.define_program("program", process);
    let dir = tempfile::tempdir().unwrap();
    let builder = ContainerDescription::builder(
        ContainerId::new(id).unwrap(),
        dir.path(),
        dir.path().join("run"),
    )
    .log(LogDriver::None, "/dev/null");
    let c = configure(builder).build().unwrap();
    write_bundle(dir.path(), &["program"], c.terminal()).unwrap();
    (Fixture { mock, _dir: dir }, c)
}

/// Attaches in a task; returns once connected.
async fn attach(
    mock: &Arc<MockRuntime>,
    c: &ContainerDescription,
    streams: AttachStreams,
    options: AttachOptions,
) -> tokio::task::JoinHandle<runtime_api::Result<AttachOutcome>> {
    let ready = runtime_api::AttachReady::new();
    let options = options.with_ready(ready.clone());
    let (mock, c) = (Arc::clone(mock), c.clone());
    let session = tokio::spawn(async move { mock.attach(&c, streams, options).await });
    tokio::time::timeout(LIMIT, ready.wait()).await.unwrap();
    session
}

async fn outcome(
    session: tokio::task::JoinHandle<runtime_api::Result<AttachOutcome>>,
) -> runtime_api::Result<AttachOutcome> {
    tokio::time::timeout(LIMIT, session).await.unwrap().unwrap()
}

#[tokio::test]
async fn output_written_before_an_attach_is_not_seen_by_it() {
    let (f, c) = fixture("early", MockProcess::new().echo_stdin(), |b| b.stdin(true));
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    let (mut writer, reader) = tokio::io::duplex(64);
    let first = Sink::new();
    let streams = AttachStreams::new(Some(Box::pin(reader)), Some(first.stream()), None);
    let first_session = attach(&f.mock, &c, streams, AttachOptions::default()).await;
    f.mock.start(&c).await.unwrap();
    writer.write_all(b"one\n").await.unwrap();
    first.wait_for("one\n").await;

    let second = Sink::new();
    let streams = AttachStreams::new(None, Some(second.stream()), None);
    let second_session = attach(&f.mock, &c, streams, AttachOptions::default()).await;
    writer.write_all(b"two\n").await.unwrap();
    drop(writer);
    assert_eq!(
        outcome(second_session).await.unwrap(),
        AttachOutcome::StreamsEnded
    );
    assert_eq!(
        outcome(first_session).await.unwrap(),
        AttachOutcome::StreamsEnded
    );
    assert_eq!(first.text(), "one\ntwo\n");
    assert_eq!(second.text(), "two\n");
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 0);
}

#[tokio::test]
async fn detach_keys_follow_podman_and_held_back_bytes_reach_the_process() {
    let (f, c) = fixture("keys", MockProcess::new().echo_stdin(), |b| {
        b.stdin(true).leave_stdin_open(true)
    });
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();

    // Custom keys; a lone ctrl-a that turns out not to start them is
    // forwarded with what follows.
    let out = Sink::new();
    let (mut writer, reader) = tokio::io::duplex(64);
    let streams = AttachStreams::new(Some(Box::pin(reader)), Some(out.stream()), None);
    let options = AttachOptions::default().with_detach_keys("ctrl-a,d");
    let session = attach(&f.mock, &c, streams, options).await;
    writer.write_all(b"x\x01y\n").await.unwrap();
    out.wait_for("x\x01y\n").await;
    writer.write_all(b"\x01d").await.unwrap();
    assert_eq!(outcome(session).await.unwrap(), AttachOutcome::Detached);
    // stdin is left open: the container still runs.
    assert_eq!(
        f.mock.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );

    // An empty specification never detaches: ctrl-p ctrl-q are input.
    let out = Sink::new();
    let (mut writer, reader) = tokio::io::duplex(64);
    let cancel = AttachCancel::new();
    let streams = AttachStreams::new(Some(Box::pin(reader)), Some(out.stream()), None);
    let options = AttachOptions::default()
        .with_detach_keys("")
        .with_cancel(cancel.clone());
    let session = attach(&f.mock, &c, streams, options).await;
    writer.write_all(b"\x10\x11!").await.unwrap();
    out.wait_for("\x10\x11!").await;
    cancel.cancel();
    assert_eq!(outcome(session).await.unwrap(), AttachOutcome::Cancelled);

    let streams = AttachStreams::new(None, Some(Sink::new().stream()), None);
    let bad = AttachOptions::default().with_detach_keys("ctrl-1");
    assert!(matches!(
        f.mock.attach(&c, streams, bad).await,
        Err(RuntimeError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn without_leave_stdin_open_a_detach_closes_the_containers_stdin() {
    let (f, c) = fixture("closes", MockProcess::new().echo_stdin(), |b| b.stdin(true));
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();
    let (mut writer, reader) = tokio::io::duplex(64);
    let streams = AttachStreams::new(Some(Box::pin(reader)), Some(Sink::new().stream()), None);
    let session = attach(&f.mock, &c, streams, AttachOptions::default()).await;
    writer.write_all(&[0x10, 0x11]).await.unwrap();
    assert_eq!(outcome(session).await.unwrap(), AttachOutcome::Detached);
    // cat saw the end of its input.
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 0);
}

#[tokio::test]
async fn a_container_without_stdin_gives_cat_an_empty_input() {
    let (f, c) = fixture("nostdin", MockProcess::new().echo_stdin(), |b| b);
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 0);
}

#[tokio::test]
async fn scripted_signal_reactions_decide_the_exit_code() {
    let process = MockProcess::new()
        .until_signalled()
        .on_signal(2, SignalReaction::Ignore)
        .on_signal(1, SignalReaction::Exit(7))
        .on_signal(9, SignalReaction::Ignore);
    let (f, c) = fixture("signals", process.clone(), |b| b);
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();
    f.mock.kill(&c, Signal::INT, false).await.unwrap();
    f.mock
        .kill(&c, "HUP".parse().unwrap(), false)
        .await
        .unwrap();
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 7);

    // SIGKILL cannot be caught; an unscripted signal kills with 128 + n.
    f.mock.define_program("program", process);
    f.mock.delete(&c).await.unwrap();
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();
    f.mock.kill(&c, Signal::KILL, false).await.unwrap();
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 137);
    f.mock.delete(&c).await.unwrap();
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();
    f.mock
        .kill(&c, "USR1".parse().unwrap(), false)
        .await
        .unwrap();
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 138);
}

#[tokio::test]
async fn a_signal_kills_a_created_container_before_its_program_runs() {
    let (f, c) = fixture(
        "created",
        MockProcess::new().stdout("never\n").until_signalled(),
        |b| b,
    );
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    let out = Sink::new();
    let streams = AttachStreams::new(None, Some(out.stream()), None);
    let session = attach(&f.mock, &c, streams, AttachOptions::default()).await;
    f.mock.kill(&c, Signal::TERM, false).await.unwrap();
    assert_eq!(outcome(session).await.unwrap(), AttachOutcome::StreamsEnded);
    assert_eq!(out.text(), "");
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 143);
    let state = f.mock.status(&c).await.unwrap();
    assert_eq!(
        (state.status, state.exit_code),
        (ContainerStatus::Exited, Some(143))
    );
    assert!(matches!(
        f.mock.start(&c).await,
        Err(RuntimeError::ContainerNotRunning { .. })
    ));
}

#[tokio::test]
async fn execs_die_of_their_timeout_and_with_their_container() {
    let (f, c) = fixture("execs", MockProcess::new().until_signalled(), |b| b);
    f.mock
        .define_program("sleeper", MockProcess::new().until_signalled());
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();

    let mut timed = ExecConfig::new(["sleeper"]);
    timed.timeout = Some(Duration::from_millis(20));
    let session = f.mock.exec_detached(&c, &timed).await.unwrap();
    let err = f.mock.exec_wait(&c, &session, LIMIT).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::ExecTimedOut { limit, .. } if limit == Duration::from_millis(20)),
        "{err:?}"
    );
    // The session is over and forgotten.
    assert!(matches!(
        f.mock.exec_alive(&c, &session).await,
        Err(RuntimeError::InvalidArgument(_))
    ));

    assert!(matches!(
        f.mock.exec_detached(&c, &ExecConfig::new(["nosuch"])).await,
        Err(RuntimeError::OciCommandNotFound { .. })
    ));
    let session = f
        .mock
        .exec_detached(&c, &ExecConfig::new(["sleeper"]))
        .await
        .unwrap();
    assert!(f.mock.exec_alive(&c, &session).await.unwrap());
    f.mock.kill(&c, Signal::KILL, false).await.unwrap();
    assert_eq!(f.mock.exec_wait(&c, &session, LIMIT).await.unwrap(), 137);
    // exec_wait forgot the session.
    assert!(matches!(
        f.mock.exec_alive(&c, &session).await,
        Err(RuntimeError::InvalidArgument(_))
    ));
    assert!(matches!(
        f.mock.exec_detached(&c, &ExecConfig::new(["nosuch"])).await,
        Err(RuntimeError::ContainerNotRunning { .. })
    ));
}

#[tokio::test]
async fn a_bundle_disagreeing_with_the_description_is_refused() {
    let (f, c) = fixture("mismatch", MockProcess::new(), |b| b);
    write_bundle(c.bundle(), &["program"], true).unwrap();
    assert!(matches!(
        f.mock.create(&c, CreateOptions::default()).await,
        Err(RuntimeError::InvalidArgument(m)) if m.contains("terminal")
    ));
}

#[tokio::test]
async fn stop_is_one_logged_call_that_escalates_to_kill() {
    let process = MockProcess::new()
        .until_signalled()
        .on_term(SignalReaction::Ignore);
    let (f, c) = fixture("stop", process, |b| b);
    f.mock.create(&c, CreateOptions::default()).await.unwrap();
    f.mock.start(&c).await.unwrap();
    f.mock
        .stop(&c, Duration::from_millis(20), false)
        .await
        .unwrap();
    assert_eq!(f.mock.wait(&c, LIMIT).await.unwrap(), 137);
    let ops: Vec<Operation> = f.mock.calls().iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        [
            Operation::Create,
            Operation::Start,
            Operation::Stop,
            Operation::Wait
        ]
    );
}
