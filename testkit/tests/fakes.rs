//! Runs every fake program with `std::process::Command` and checks that it
//! behaves exactly as documented.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use testkit::{
    fake_conmon, fake_runtime, recorded_calls, FakeConmonBehaviour, FakeRuntimeBehaviour,
};

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("fake program runs")
}

/// Makes this test process the reaper of orphaned descendants, so that the
/// background child a fake conmon leaves behind can be killed and reaped
/// here instead of lingering as a zombie.
fn adopt_orphans() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| nix::sys::prctl::set_child_subreaper(true).unwrap());
}

/// Kills and reaps the background child of a fake conmon.
fn kill_and_reap(pid: Pid) {
    kill(pid, Signal::SIGKILL).unwrap();
    waitpid(pid, None).unwrap();
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn runtime_records_tricky_argv_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = fake_runtime(dir.path(), "runc", FakeRuntimeBehaviour::Succeed).unwrap();
    let tricky = [
        "--root=/run/it's",
        "create",
        "--bundle",
        "/a dir/with spaces",
        "dq\"inside\"",
        "back\\slash\\\\",
        "",
        "new\nline",
        "trailing\n\n",
        "\nleading",
        "tab\there\rcr",
        "\u{1}\u{1b}[0m\u{1f}",
        "%s %d %%",
        "-n",
        "-e",
        "*",
        "$HOME `x` $(y)",
        "ünïcødé ✓",
        "'",
        "\\",
        "\"",
    ];
    let first = run(&runtime, &tricky);
    assert!(first.status.success(), "{first:?}");
    assert!(first.stdout.is_empty() && first.stderr.is_empty());
    let second = run(&runtime, &["state", "ctr-1"]);
    assert!(second.status.success());
    let third = run(&runtime, &[]);
    assert!(third.status.success());

    let calls = recorded_calls(dir.path()).unwrap();
    assert_eq!(
        calls,
        vec![strings(&tricky), strings(&["state", "ctr-1"]), Vec::new()]
    );
}

#[test]
fn recorded_calls_of_an_unused_directory_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(recorded_calls(dir.path()).unwrap().is_empty());
}

#[test]
fn recorded_calls_reports_a_corrupt_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calls.log"), "[\"ok\"]\nnot json\n").unwrap();
    let err = recorded_calls(dir.path()).unwrap_err();
    assert!(matches!(err, testkit::TestkitError::Json { .. }), "{err}");
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn runtime_script_is_executable_and_replaceable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let first = fake_runtime(dir.path(), "rt", FakeRuntimeBehaviour::Succeed).unwrap();
    let second = fake_runtime(
        dir.path(),
        "rt",
        FakeRuntimeBehaviour::FailSilently { code: 4 },
    )
    .unwrap();
    assert_eq!(first, second);
    assert_eq!(second, dir.path().join("rt"));
    let mode = std::fs::metadata(&second).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert!(std::fs::read(&second).unwrap().starts_with(b"#!/bin/sh\n"));
    assert_eq!(run(&second, &["start", "x"]).status.code(), Some(4));
}

#[test]
fn runtime_fail_prints_message_and_exits_with_code() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = fake_runtime(
        dir.path(),
        "runc",
        FakeRuntimeBehaviour::Fail {
            message: "container \"x\" does not exist: it's gone %s".into(),
            code: 3,
        },
    )
    .unwrap();
    let out = run(&runtime, &["state", "x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "container \"x\" does not exist: it's gone %s\n"
    );
    assert_eq!(
        recorded_calls(dir.path()).unwrap(),
        vec![strings(&["state", "x"])]
    );
}

#[test]
fn runtime_fail_silently_has_empty_output() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = fake_runtime(
        dir.path(),
        "runc",
        FakeRuntimeBehaviour::FailSilently { code: 42 },
    )
    .unwrap();
    let out = run(&runtime, &["kill", "x", "KILL"]);
    assert_eq!(out.status.code(), Some(42));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

fn check_oci_log(log: &Path, expected_msg: &str) {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text:?}");
    let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(value["level"], "error");
    assert_eq!(value["msg"], expected_msg);
    let time = value["time"].as_str().unwrap();
    assert_eq!(time.len(), "2026-01-01T00:00:00Z".len(), "{time}");
    assert!(time.ends_with('Z'));
}

#[test]
fn runtime_oci_log_error_writes_to_the_log_argument() {
    let dir = tempfile::tempdir().unwrap();
    let msg = "runc create failed: unable to start container process: exec: \"nope\": \
               executable file not found in $PATH\nsecond line with 'quotes' and \\";
    let runtime = fake_runtime(
        dir.path(),
        "runc",
        FakeRuntimeBehaviour::OciLogError { msg: msg.into() },
    )
    .unwrap();

    let spaced = dir.path().join("oci log spaced");
    let spaced_arg = spaced.to_str().unwrap();
    let out = run(
        &runtime,
        &[
            "--log-format=json",
            "--log",
            spaced_arg,
            "create",
            "--bundle",
            "/b",
            "id",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    check_oci_log(&spaced, msg);

    let equals = dir.path().join("oci-log=eq");
    let equals_arg = format!("--log={}", equals.display());
    let out = run(
        &runtime,
        &[&equals_arg, "--log-format", "json", "start", "id"],
    );
    assert_eq!(out.status.code(), Some(1));
    check_oci_log(&equals, msg);

    let out = run(&runtime, &["delete", "--force", "id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty());

    assert_eq!(recorded_calls(dir.path()).unwrap().len(), 3);
}

/// Waits, for at most `limit`, until `done` holds.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn runtime_hang_keeps_running_until_killed() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = fake_runtime(dir.path(), "runc", FakeRuntimeBehaviour::Hang).unwrap();
    let mut child = Command::new(&runtime)
        .args(["start", "x"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let recorded = eventually(Duration::from_secs(20), || {
        recorded_calls(dir.path()).is_ok_and(|calls| calls.len() == 1)
    });
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(recorded, "the call was never recorded");
    assert!(still_running, "the hanging runtime exited: {status:?}");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    assert_eq!(
        recorded_calls(dir.path()).unwrap(),
        vec![strings(&["start", "x"])]
    );
}

#[test]
fn conmon_exit_with_prints_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let conmon = fake_conmon(
        dir.path(),
        FakeConmonBehaviour::ExitWith {
            code: 1,
            message: "[conmon:e]: Runtime path /x is not valid: No such file or directory".into(),
        },
    )
    .unwrap();
    assert_eq!(conmon, dir.path().join("conmon"));
    let out = run(&conmon, &["--api-version", "1", "-c", "id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "[conmon:e]: Runtime path /x is not valid: No such file or directory\n"
    );
}

/// Starts a fake conmon the way a driver would, with the sync pipe at fd 3
/// (the write end of the returned child's stdout pipe) and the start pipe at
/// fd 4 (the read end of its stdin pipe), and an empty environment apart
/// from the pipe variables.
fn launch_conmon(conmon: &Path, pidfile_args: &[String]) -> Child {
    adopt_orphans();
    Command::new("/bin/sh")
        .arg("-c")
        .arg("exec 3>&1 4<&0; exec \"$0\" \"$@\"")
        .arg(conmon)
        .args(["--api-version", "1", "-c", "ctr", "-r", "/usr/bin/runc"])
        .args(pidfile_args)
        .env_clear()
        .env("_OCI_SYNCPIPE", "3")
        .env("_OCI_STARTPIPE", "4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Checks the protocol up to the parent's exit and returns the background
/// child's pid: nothing happens before the start byte, then the parent
/// writes the pidfile and exits 0.
fn start_conmon(child: &mut Child, pidfile: &Path) -> Pid {
    assert!(!pidfile.exists(), "pidfile written before the start byte");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before the start byte"
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\0").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?} {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let text = std::fs::read_to_string(pidfile).unwrap();
    assert!(!text.ends_with('\n'), "pidfile has a newline: {text:?}");
    let pid: i32 = text.parse().unwrap();
    Pid::from_raw(pid)
}

/// The background child runs (not a zombie) with the fake conmon's own
/// command line, as conmon's monitor does.
fn is_alive_sleep(pid: Pid) -> bool {
    let running = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    });
    running
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(6).any(|w| w == b"conmon"))
}

fn pidfile_in(dir: &Path) -> PathBuf {
    dir.join("conmon.pid")
}

#[test]
fn conmon_never_reports_leaves_a_silent_child_holding_the_sync_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let conmon = fake_conmon(dir.path(), FakeConmonBehaviour::NeverReports).unwrap();
    let pidfile = pidfile_in(dir.path());
    let mut child = launch_conmon(
        &conmon,
        &["--conmon-pidfile".into(), pidfile.display().to_string()],
    );
    let pid = start_conmon(&mut child, &pidfile);
    let alive = eventually(Duration::from_secs(20), || is_alive_sleep(pid));
    let holds_sync_pipe = std::path::Path::new(&format!("/proc/{pid}/fd/3")).exists();
    kill_and_reap(pid);
    assert!(
        alive,
        "background child {pid} is not running as the fake conmon"
    );
    assert!(holds_sync_pipe, "background child does not hold fd 3");
    let mut written = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut written)
        .unwrap();
    assert!(written.is_empty(), "sync pipe got {written:?}");
}

#[test]
fn conmon_writes_raw_bytes_to_the_sync_pipe() {
    for raw in [
        "garbage{",
        "{\"data\": 12",
        "{\"data\": -1, \"message\": \"it's\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let conmon = fake_conmon(
            dir.path(),
            FakeConmonBehaviour::WritesRaw { raw: raw.into() },
        )
        .unwrap();
        let pidfile = pidfile_in(dir.path());
        let mut child = launch_conmon(
            &conmon,
            &[format!("--conmon-pidfile={}", pidfile.display())],
        );
        let pid = start_conmon(&mut child, &pidfile);
        let mut stdout = child.stdout.take().unwrap();
        let mut head = vec![0u8; raw.len()];
        let read = stdout.read_exact(&mut head);
        // The subshell that wrote the bytes then blocks, still the fake conmon.
        let alive = eventually(Duration::from_secs(20), || is_alive_sleep(pid));
        kill_and_reap(pid);
        read.unwrap();
        assert_eq!(head, raw.as_bytes());
        assert!(
            alive,
            "background child {pid} is not running as the fake conmon"
        );
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "extra bytes {rest:?}");
    }
}

#[test]
fn conmon_without_pipes_exits_zero_and_releases_its_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let conmon = fake_conmon(dir.path(), FakeConmonBehaviour::NeverReports).unwrap();
    let pidfile = pidfile_in(dir.path());
    adopt_orphans();
    // `output` reads stdout and stderr to EOF: it returns only because the
    // background child does not keep them open.
    let out = Command::new(&conmon)
        .args(["--conmon-pidfile", pidfile.to_str().unwrap()])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let pid = Pid::from_raw(std::fs::read_to_string(&pidfile).unwrap().parse().unwrap());
    kill_and_reap(pid);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn conmon_rejects_pipe_fds_above_nine() {
    let dir = tempfile::tempdir().unwrap();
    let conmon = fake_conmon(dir.path(), FakeConmonBehaviour::NeverReports).unwrap();
    let out = Command::new(&conmon)
        .env_clear()
        .env("_OCI_STARTPIPE", "12")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("_OCI_STARTPIPE=12"));
}
