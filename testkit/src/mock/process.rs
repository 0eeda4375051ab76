//! The scripted processes a [`MockRuntime`](super::MockRuntime) runs: what
//! they print, how long they live, how they answer signals, whether they
//! echo their stdin or report terminal resizes. A started process is a
//! tokio task reached only through channels, and everything about it that
//! a caller waits for (its output, its exit) is a channel too, so nothing
//! in the mock or its tests sleeps to synchronise with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};

/// What a scripted process does when a signal reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalReaction {
    /// Dies of the signal: exit code 128 + its number.
    Die,
    /// Exits through a handler with this code (a shell's `trap 'exit N'`).
    Exit(i32),
    /// Ignores it.
    Ignore,
}

/// A scripted process, registered under a program name with
/// [`MockRuntime::define_program`](super::MockRuntime::define_program).
///
/// By default it prints nothing and exits 0 at once. SIGKILL always kills
/// it (137); every other signal kills it (128 + n) unless
/// [`on_signal`](MockProcess::on_signal) says otherwise.
///
/// ```
/// use std::time::Duration;
/// use testkit::mock::{MockProcess, SignalReaction};
/// let server = MockProcess::new()
///     .stdout("listening\n")
///     .until_signalled()
///     .on_term(SignalReaction::Exit(0))
///     .on_signal(1, SignalReaction::Ignore);
/// let job = MockProcess::new().stdout("done\n").exit_code(3).runs_for(Duration::from_millis(5));
/// # let _ = (server, job);
/// ```
#[derive(Debug, Clone)]
pub struct MockProcess {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: i32,
    runs_for: Option<Duration>,
    reactions: HashMap<i32, SignalReaction>,
    echo_stdin: bool,
    report_resize: bool,
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
            reactions: HashMap::new(),
            echo_stdin: false,
            report_resize: false,
        }
    }

    /// Writes `bytes` to stdout when it starts.
    pub fn stdout(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdout = bytes.into();
        self
    }

    /// Writes `bytes` to stderr when it starts (after its stdout).
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

    /// How it answers signal number `signal`. SIGKILL (9) cannot be
    /// caught: a reaction for it is ignored.
    pub fn on_signal(mut self, signal: i32, reaction: SignalReaction) -> Self {
        self.reactions.insert(signal, reaction);
        self
    }

    /// How it answers SIGTERM (15).
    pub fn on_term(self, reaction: SignalReaction) -> Self {
        self.on_signal(15, reaction)
    }

    /// Copies its stdin to stdout and exits 0 at stdin's end (`cat`). A
    /// process given no stdin (the container or exec was not asked to keep
    /// stdin open) sees its end at once.
    pub fn echo_stdin(mut self) -> Self {
        self.echo_stdin = true;
        self.runs_for = None;
        self
    }

    /// Prints `"ROWS COLS\n"` on its terminal after each resize.
    pub fn report_resize(mut self) -> Self {
        self.report_resize = true;
        self
    }

    fn reaction(&self, signal: i32) -> SignalReaction {
        match signal {
            9 => SignalReaction::Die,
            n => self
                .reactions
                .get(&n)
                .copied()
                .unwrap_or(SignalReaction::Die),
        }
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

/// The receiving ends a process task takes when it starts.
struct Receivers {
    signals: mpsc::UnboundedReceiver<i32>,
    stdin: mpsc::UnboundedReceiver<Input>,
    resizes: mpsc::UnboundedReceiver<(u16, u16)>,
}

/// One scripted process, created and then started (or killed before it
/// ever started).
#[derive(Debug)]
pub(crate) struct Process {
    script: MockProcess,
    has_stdin: bool,
    signals: mpsc::UnboundedSender<i32>,
    stdin: mpsc::UnboundedSender<Input>,
    resizes: mpsc::UnboundedSender<(u16, u16)>,
    output: broadcast::Sender<Output>,
    exit: watch::Sender<Option<i32>>,
    not_started: Mutex<Option<Receivers>>,
    /// Killed because its exec session's timeout ran out.
    timed_out: AtomicBool,
}

impl std::fmt::Debug for Receivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receivers")
    }
}

/// Output chunks kept for a slow attach client before it lags.
const OUTPUT_BACKLOG: usize = 4096;

impl Process {
    /// A process that will run `script` once started; `has_stdin` says
    /// whether its stdin is kept open for attach.
    pub(crate) fn new(script: MockProcess, has_stdin: bool) -> Arc<Self> {
        let (signals, signals_rx) = mpsc::unbounded_channel();
        let (stdin, stdin_rx) = mpsc::unbounded_channel();
        let (resizes, resizes_rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            script,
            has_stdin,
            signals,
            stdin,
            resizes,
            output: broadcast::channel(OUTPUT_BACKLOG).0,
            exit: watch::channel(None).0,
            not_started: Mutex::new(Some(Receivers {
                signals: signals_rx,
                stdin: stdin_rx,
                resizes: resizes_rx,
            })),
            timed_out: AtomicBool::new(false),
        })
    }

    fn take_receivers(&self) -> Option<Receivers> {
        self.not_started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Starts the process task (once; later calls do nothing).
    pub(crate) fn start(self: &Arc<Self>) {
        let Some(receivers) = self.take_receivers() else {
            return;
        };
        let process = Arc::clone(self);
        tokio::spawn(async move {
            let code = process.run(receivers).await;
            process.finish(code);
        });
    }

    /// Ends a process that never started with `code`; a started process
    /// is signalled instead.
    pub(crate) fn kill_unstarted(&self, code: i32) {
        if self.take_receivers().is_some() {
            self.finish(code);
        }
    }

    /// Records the exit (the first one wins) and ends the output.
    fn finish(&self, code: i32) {
        let first = self.exit.send_if_modified(|exit| {
            if exit.is_none() {
                *exit = Some(code);
                true
            } else {
                false
            }
        });
        if first {
            // After the exit code, so that whoever sees the end of the
            // output also finds the code.
            let _ = self.output.send(Output::End);
        }
    }

    /// Kills a process that still runs because its exec session's timeout
    /// ran out; its end then reads as that timeout.
    pub(crate) fn kill_for_timeout(&self) {
        if self.exit_code().is_none() {
            // Recorded before the kill: whoever sees the exit sees why.
            self.timed_out.store(true, Ordering::SeqCst);
            self.signal(9);
        }
    }

    /// Whether [`kill_for_timeout`](Self::kill_for_timeout) ended it.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }

    pub(crate) fn signal(&self, signal: i32) {
        let _ = self.signals.send(signal);
    }

    pub(crate) fn input(&self, input: Input) {
        let _ = self.stdin.send(input);
    }

    pub(crate) fn resize(&self, rows: u16, cols: u16) {
        let _ = self.resizes.send((rows, cols));
    }

    /// Output from now on; what was written before is not seen (as with
    /// conmon, output nobody is attached to only reaches the log).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Output> {
        self.output.subscribe()
    }

    /// The exit code, once it exited.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        *self.exit.borrow()
    }

    /// Completes with the exit code once the process exits.
    pub(crate) async fn exited(&self) -> i32 {
        let mut exit = self.exit.subscribe();
        let code = match exit.wait_for(Option::is_some).await {
            Ok(code) => *code,
            // The sender lives in `self`, so it outlives this borrow.
            Err(_) => None,
        };
        code.unwrap_or_default()
    }

    /// Waits up to `limit` for the exit; `None` when it still runs.
    pub(crate) async fn wait(&self, limit: Duration) -> Option<i32> {
        tokio::time::timeout(limit, self.exited()).await.ok()
    }

    async fn run(&self, receivers: Receivers) -> i32 {
        let Receivers {
            mut signals,
            mut stdin,
            mut resizes,
        } = receivers;
        let script = &self.script;
        if !script.stdout.is_empty() {
            let _ = self.output.send(Output::Stdout(script.stdout.clone()));
        }
        if !script.stderr.is_empty() {
            let _ = self.output.send(Output::Stderr(script.stderr.clone()));
        }
        if script.echo_stdin && !self.has_stdin {
            return 0;
        }
        let timer = async {
            match script.runs_for {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(timer);
        loop {
            tokio::select! {
                () = &mut timer => return script.exit_code,
                Some(signal) = signals.recv() => match script.reaction(signal) {
                    SignalReaction::Die => return 128 + signal,
                    SignalReaction::Exit(code) => return code,
                    SignalReaction::Ignore => {}
                },
                input = stdin.recv(), if script.echo_stdin => match input {
                    Some(Some(bytes)) => {
                        let _ = self.output.send(Output::Stdout(bytes));
                    }
                    _ => return 0,
                },
                Some((rows, cols)) = resizes.recv() => {
                    if script.report_resize {
                        let line = format!("{rows} {cols}\n").into_bytes();
                        let _ = self.output.send(Output::Stdout(line));
                    }
                }
            }
        }
    }
}
