//! Runs the demo (`examples/run/`) as `run -t -i sh` on a pseudo-terminal,
//! the way a user at a terminal runs `podman run -it`: the shell's prompt
//! and output come back live, the container's terminal has the local size
//! and follows its changes (the kernel's SIGWINCH to the terminal's
//! foreground process group), the detach keys leave the container running
//! and the demo exits 0, `exit 5` makes the demo exit 5, and the local
//! terminal's settings are as they were before.
//!
//! The demo is started with `$CARGO run`, so the first run may wait for the
//! build lock and build it: the first step gets minutes, the later ones
//! seconds. Every wait is for an event (output, or the process's end) with a
//! deadline; nothing sleeps.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{need_runc, unique_id};
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{tcgetattr, Termios};
use nix::unistd::Pid;
use rustix::pty::{grantpt, ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};

/// Waiting for the build lock, building the demo, creating the container.
const FIRST_PROMPT: Duration = Duration::from_secs(300);
/// Any later step.
const STEP: Duration = Duration::from_secs(30);

/// A pseudo-terminal: the master for the test, the slave for the demo.
struct Pty {
    master: File,
    slave: OwnedFd,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn open_pty(rows: u16, cols: u16) -> Pty {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = openpt(flags).expect("opening a pseudo-terminal");
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave = ioctl_tiocgptpeer(&master, flags).expect("opening the pty's slave");
    tcsetwinsize(&master, winsize(rows, cols)).unwrap();
    Pty {
        master: File::from(master),
        slave,
    }
}

/// Makes the child a session leader whose controlling terminal is its
/// stdin (the pty's slave), as a login shell's children have: then the
/// kernel sends it SIGWINCH when the terminal's size changes.
#[allow(unsafe_code)]
fn with_controlling_terminal(command: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the forked child before exec and makes
    // only two system calls (setsid, ioctl TIOCSCTTY on fd 0, which std has
    // already set to the slave), both async-signal-safe; it allocates
    // nothing and takes no locks.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        })
    }
}

/// What the demo does, as the test sees it.
enum Event {
    /// It wrote this to the terminal.
    Output(Vec<u8>),
    /// It exited.
    Exited(ExitStatus),
}

/// The demo running on a pty, its output and exit as a stream of events.
/// Dropped during a panic, it stops the demo (which deletes its container)
/// and force-deletes the container.
struct Demo {
    id: String,
    pid: Pid,
    input: File,
    events: mpsc::Receiver<Event>,
    /// Output not yet consumed by `expect`.
    pending: Vec<u8>,
    /// All output, for failure messages.
    transcript: Vec<u8>,
    /// How the demo ended, once it did.
    status: Option<ExitStatus>,
}

impl Demo {
    fn start(pty: &Pty, id: &str, args: &[&str]) -> Demo {
        let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .args(["run", "-q", "-p", "conmon-driver", "--example", "run", "--"])
            .args(["--id", id])
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env_remove("RUST_LOG")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio());
        let mut child = with_controlling_terminal(&mut command)
            .spawn()
            .expect("starting cargo run");
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());

        let (events_tx, events) = mpsc::channel();
        let exited = events_tx.clone();
        std::thread::spawn(move || {
            let status = child.wait().expect("waiting for the demo");
            let _ = exited.send(Event::Exited(status));
        });
        let mut reader = pty.master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once nothing holds the slave any more.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if events_tx.send(Event::Output(buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        Demo {
            id: id.to_string(),
            pid,
            input: pty.master.try_clone().unwrap(),
            events,
            pending: Vec::new(),
            transcript: Vec::new(),
            status: None,
        }
    }

    /// The next event within `deadline`, recording output; `None` when the
    /// deadline passed.
    fn next_event(&mut self, deadline: Instant) -> Option<Event> {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = self.events.recv_timeout(left).ok()?;
        match &event {
            Event::Output(chunk) => {
                self.pending.extend_from_slice(chunk);
                self.transcript.extend_from_slice(chunk);
            }
            Event::Exited(status) => self.status = Some(*status),
        }
        Some(event)
    }

    /// Fails the test with `what` and everything the demo showed.
    fn fail(&mut self, what: String) -> ! {
        if self.status.is_some() {
            // Its last words may still be on their way from the pty.
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.next_event(deadline).is_some() {}
        }
        panic!(
            "{what} (demo status: {:?}); the terminal showed:\n{}",
            self.status,
            self.transcript()
        );
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }

    /// Waits until the output contains `needle`, consumes it and what came
    /// before, and returns what came before.
    fn expect(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self
                .pending
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                let before: Vec<u8> = self.pending.drain(..at + needle.len()).collect();
                return String::from_utf8_lossy(&before[..at]).into_owned();
            }
            match self.next_event(deadline) {
                // The demo's last words may still be on their way from the
                // pty: keep reading until the output ends too.
                Some(Event::Output(_)) | Some(Event::Exited(_)) => {}
                None if self.status.is_some() => {
                    self.fail(format!("the demo exited before {needle:?}"))
                }
                None => self.fail(format!("no {needle:?} within {limit:?}")),
            }
        }
    }

    /// Waits for busybox's prompt (`/ # `).
    fn prompt(&mut self, limit: Duration) {
        self.expect("# ", limit);
    }

    fn send(&mut self, bytes: &[u8]) {
        self.input.write_all(bytes).unwrap();
    }

    /// Types `line` and Enter into the container's shell.
    fn command(&mut self, line: &str) {
        self.send(format!("{line}\r").as_bytes());
    }

    /// Waits until the container's terminal is `rows`x`cols` (a resize
    /// travels through a signal, the demo and conmon, so the shell polls for
    /// it), then checks what `stty size` prints.
    fn assert_size(&mut self, rows: u16, cols: u16) {
        let marker = format!("size-ok-{}", u32::from(rows) + u32::from(cols));
        // The echoed command line shows the sum's terms, not the marker.
        self.command(&format!(
            "until [ \"$(stty size)\" = \"{rows} {cols}\" ]; do :; done; echo size-ok-$(({rows}+{cols}))"
        ));
        self.expect(&format!("\n{marker}\r"), STEP);
        self.prompt(STEP);
        self.command("stty size");
        self.expect(&format!("\n{rows} {cols}\r"), STEP);
        self.prompt(STEP);
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.status {
                return status;
            }
            if self.next_event(deadline).is_none() {
                self.fail(format!("the demo did not exit within {limit:?}"));
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // The demo stops and deletes its container on SIGTERM; whatever
        // it leaves, the runtime removes.
        if self.status.is_none() && kill(self.pid, Signal::SIGTERM).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.status.is_none() && self.next_event(deadline).is_some() {}
            if self.status.is_none() {
                let _ = kill(self.pid, Signal::SIGKILL);
            }
        }
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn termios(pty: &Pty) -> Termios {
    tcgetattr(&pty.slave).unwrap()
}

fn runc(args: &[&str]) -> std::process::Output {
    Command::new("runc")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running runc")
}

#[test]
fn sized_resized_and_detached_like_podman_run_it() {
    if !need_runc() {
        return;
    }
    let pty = open_pty(30, 100);
    let id = unique_id("demo-it").to_string();
    let mut demo = Demo::start(&pty, &id, &["-t", "-i", "sh"]);
    demo.prompt(FIRST_PROMPT);

    // The container's terminal has the local size (the demo sets it right
    // after attaching, before the start).
    demo.assert_size(30, 100);

    // The kernel tells the terminal's foreground process group (the demo)
    // about the new size; the demo passes it on.
    tcsetwinsize(&pty.master, winsize(40, 120)).unwrap();
    demo.assert_size(40, 120);

    demo.command("echo $((6*7))");
    demo.expect("\n42\r", STEP);
    demo.prompt(STEP);

    // ctrl-p, ctrl-q: the default detach keys.
    demo.send(b"\x10\x11");
    demo.expect(&format!("detached from container {id}"), STEP);
    demo.expect("clean up with: ", STEP);
    let clean_up = demo.expect("\r\n", STEP);
    let status = demo.wait(STEP);
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}; the terminal showed:\n{}",
        demo.transcript()
    );

    let state = runc(&["state", &id]);
    let state = String::from_utf8_lossy(&state.stdout);
    assert!(
        state.contains("\"status\": \"running\""),
        "after the detach: {state}"
    );
    let deleted = runc(&["delete", "--force", &id]);
    assert!(deleted.status.success(), "{deleted:?}");
    // `... && [umount ROOTFS && ]rm -rf DIR`: the bundle's overlay, when it
    // has one, stays mounted with the kept directory.
    let step = |prefix: &str| {
        clean_up
            .split(" && ")
            .find_map(|step| step.strip_prefix(prefix))
            .map(|path| std::path::Path::new(path.trim()))
    };
    let kept = step("rm -rf ").expect("the clean-up removes the directory");
    assert!(
        kept.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("conmon-demo-")),
        "{kept:?}"
    );
    if let Some(rootfs) = step("umount ") {
        assert!(rootfs.starts_with(kept), "{clean_up:?}");
        let unmounted = Command::new("umount").arg(rootfs).output().unwrap();
        assert!(unmounted.status.success(), "{unmounted:?}");
    }
    std::fs::remove_dir_all(kept).unwrap();
}

#[test]
fn exit_code_passes_through_and_the_terminal_is_restored() {
    if !need_runc() {
        return;
    }
    let pty = open_pty(24, 80);
    let before = termios(&pty);
    let id = unique_id("demo-exit").to_string();
    let mut demo = Demo::start(&pty, &id, &["-t", "-i", "sh"]);
    demo.prompt(FIRST_PROMPT);
    assert_ne!(termios(&pty), before, "the session runs in raw mode");

    demo.command("exit 5");
    let status = demo.wait(STEP);
    assert_eq!(
        status.code(),
        Some(5),
        "{status:?} (signal {:?}); the terminal showed:\n{}",
        status.signal(),
        demo.transcript()
    );
    assert_eq!(termios(&pty), before, "the demo restores the terminal");
    let state = runc(&["state", &id]);
    assert!(!state.status.success(), "container {id} is left behind");
}
