//! The scripted processes a [`MockRuntime`](super::MockRuntime) runs: what
//! they print, how long they live, how they answer signals, whether they
//! echo their stdin or report terminal resizes. A running process is a
//! tokio task reached through channels, so tests never sleep to
//! synchronise with it.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// What a scripted process does on SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermReaction {
    /// Dies of the signal: exit code 143.
    Die,
    /// Exits through a handler with this code.
    Exit(i32),
    /// Ignores it (only SIGKILL ends it).
    Ignore,
}

/// A scripted process, registered under a program name with
/// [`MockRuntime::define_program`](super::MockRuntime::define_program).
///
/// ```
/// use std::time::Duration;
/// use testkit::mock::{MockProcess, TermReaction};
/// let server = MockProcess::new()
///     .stdout("listening\n")
///     .until_signalled()
///     .on_term(TermReaction::Exit(0));
/// let job = MockProcess::new().stdout("done\n").exit_code(3).runs_for(Duration::from_millis(5));
/// # let _ = (server, job);
/// ```
#[derive(Debug, Clone)]
pub struct MockProcess {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) exit_code: i32,
    pub(crate) runs_for: Option<Duration>,
    pub(crate) on_term: TermReaction,
    pub(crate) echo_stdin: bool,
    pub(crate) report_resize: bool,
}

impl Default for MockProcess {
    fn default() -> Self {
        Self::new()
    }
}

impl MockProcess {
    /// A process that prints nothing and exits 0 at once.
    pub fn new() -> Self {
        Self {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_code: 0,
            runs_for: Some(Duration::ZERO),
            on_term: TermReaction::Die,
            echo_stdin: false,
            report_resize: false,
        }
    }

    /// Writes `bytes` to stdout when it starts.
    pub fn stdout(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdout = bytes.into();
        self
    }

    /// Writes `bytes` to stderr when it starts.
    pub fn stderr(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stderr = bytes.into();
        self
    }

    /// The code it exits with on its own.
    pub fn exit_code(mut self, code: i32) -> Self {
        self.exit_code = code;
        self
    }

    /// Exits on its own after `duration`.
    pub fn runs_for(mut self, duration: Duration) -> Self {
        self.runs_for = Some(duration);
        self
    }

    /// Runs until a signal ends it.
    pub fn until_signalled(mut self) -> Self {
        self.runs_for = None;
        self
    }

    /// How it answers SIGTERM.
    pub fn on_term(mut self, reaction: TermReaction) -> Self {
        self.on_term = reaction;
        self
    }

    /// Copies its stdin to stdout and exits 0 at stdin's end (`cat`).
    pub fn echo_stdin(mut self) -> Self {
        self.echo_stdin = true;
        self.runs_for = None;
        self
    }

    /// Prints `"ROWS COLS\n"` after each terminal resize.
    pub fn report_resize(mut self) -> Self {
        self.report_resize = true;
        self
    }
}

/// One chunk of a process's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The process exited: no more output.
    End,
}

/// Input to a process's stdin; `None` is its end.
pub(crate) type Input = Option<Vec<u8>>;

/// The handles of one scripted process, running or about to run.
#[derive(Debug, Clone)]
pub(crate) struct ProcessHandle {
    pub(crate) signals: mpsc::UnboundedSender<i32>,
    pub(crate) stdin: mpsc::UnboundedSender<Input>,
    pub(crate) resizes: mpsc::UnboundedSender<(u16, u16)>,
    pub(crate) output: broadcast::Sender<Output>,
    pub(crate) exit: watch::Receiver<Option<i32>>,
}

impl ProcessHandle {
    /// The exit code, once it exited.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        *self.exit.borrow()
    }

    /// Waits up to `limit` for the exit; `None` when it still runs.
    pub(crate) async fn wait(&self, limit: Duration) -> Option<i32> {
        let mut exit = self.exit.clone();
        let waited = tokio::time::timeout(limit, exit.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(code)) => *code,
            _ => self.exit_code(),
        }
    }
}

/// Prepares `script` as a process that runs once `go` fires (dropping
/// `go` unfired means it never runs).
pub(crate) fn prepare(script: MockProcess) -> (ProcessHandle, oneshot::Sender<()>) {
    let (signal_tx, signal_rx) = mpsc::unbounded_channel();
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (resize_tx, resize_rx) = mpsc::unbounded_channel();
    let (output, _) = broadcast::channel(4096);
    let (exit_tx, exit_rx) = watch::channel(None);
    let (go_tx, go_rx) = oneshot::channel();
    let handle = ProcessHandle {
        signals: signal_tx,
        stdin: stdin_tx,
        resizes: resize_tx,
        output: output.clone(),
        exit: exit_rx,
    };
    tokio::spawn(async move {
        if go_rx.await.is_err() {
            return;
        }
        let code = run(script, signal_rx, stdin_rx, resize_rx, &output).await;
        let _ = output.send(Output::End);
        exit_tx.send_replace(Some(code));
    });
    (handle, go_tx)
}

async fn run(
    script: MockProcess,
    mut signals: mpsc::UnboundedReceiver<i32>,
    mut stdin: mpsc::UnboundedReceiver<Input>,
    mut resizes: mpsc::UnboundedReceiver<(u16, u16)>,
    output: &broadcast::Sender<Output>,
) -> i32 {
    if !script.stdout.is_empty() {
        let _ = output.send(Output::Stdout(script.stdout.clone()));
    }
    if !script.stderr.is_empty() {
        let _ = output.send(Output::Stderr(script.stderr.clone()));
    }
    let timer = async {
        match script.runs_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(timer);
    let stdin_open = script.echo_stdin;
    loop {
        tokio::select! {
            () = &mut timer => return script.exit_code,
            Some(signal) = signals.recv() => match (signal, script.on_term) {
                (9, _) => return 137,
                (15, TermReaction::Ignore) => {}
                (15, TermReaction::Exit(code)) => return code,
                (n, _) => return 128 + n,
            },
            input = stdin.recv(), if stdin_open => match input {
                Some(Some(bytes)) => {
                    let _ = output.send(Output::Stdout(bytes));
                }
                _ => return 0,
            },
            Some((rows, cols)) = resizes.recv() => {
                if script.report_resize {
                    let _ = output.send(Output::Stdout(format!("{rows} {cols}\n").into_bytes()));
                }
            }
        }
    }
}
