//! Status against real runtimes (runc, runsc): every answer equals what
//! `RUNTIME state` says at that moment, and the driver runs the runtime
//! only where its own records cannot settle the answer. The driver's
//! runtime is a recording wrapper around the real one, so each `state` it
//! asks for is counted; the test's own calls go to the runtime directly.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use runtime_api::{ContainerDescription, ContainerStatus, CreateOptions, OciRuntime, Signal};
use state_probe::{parse_state, run_bounded, RuntimeStatus};
use testkit::{find_binary, recorded_calls, recording_runtime};

/// How long one direct runtime call may take.
const RUNTIME_LIMIT: Duration = Duration::from_secs(30);

struct Counted {
    s: Setup,
    calls: PathBuf,
    real: PathBuf,
    flags: Vec<String>,
}

impl Counted {
    /// How many `state` calls the driver made so far.
    fn state_calls(&self) -> usize {
        recorded_calls(&self.calls)
            .unwrap()
            .iter()
            .filter(|argv| argv.iter().any(|a| a == "state"))
            .count()
    }

    /// Runs the runtime itself (not through the wrapper) with its global
    /// flags and `args`.
    async fn direct(&self, args: &[&str]) -> Vec<u8> {
        let mut cmd = tokio::process::Command::new(&self.real);
        cmd.args(&self.flags).args(args);
        let out = run_bounded(cmd, RUNTIME_LIMIT).await.unwrap();
        assert!(out.success(), "{args:?}: {}", out.stderr_text());
        out.stdout
    }

    /// The driver's status, whether it ran `state` for it, and what the
    /// runtime itself says right after.
    async fn compare(
        &self,
        c: &ContainerDescription,
    ) -> (runtime_api::ContainerState, bool, state_probe::RuntimeState) {
        let before = self.state_calls();
        let state = self.s.runtime.status(c).await.unwrap();
        let asked = self.state_calls() > before;
        let runc = parse_state(&self.direct(&["state", c.id().as_str()]).await).unwrap();
        (state, asked, runc)
    }
}

fn expected(status: RuntimeStatus) -> ContainerStatus {
    match status {
        RuntimeStatus::Created => ContainerStatus::Created,
        RuntimeStatus::Running => ContainerStatus::Running,
        RuntimeStatus::Paused => ContainerStatus::Paused,
        RuntimeStatus::Stopped => ContainerStatus::Exited,
    }
}

fn counted_setup(name: &str, flags: &[&str]) -> Counted {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("wrapper");
    std::fs::create_dir_all(&calls).unwrap();
    let real = find_binary(name).unwrap();
    // Named as the real one, so that the driver treats it as such (runc's
    // JSON error logs, for one).
    let wrapper = recording_runtime(&calls, name, &real).unwrap();
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let mut config = config(wrapper.to_str().unwrap(), dir.path());
    config.runtime_flags.clone_from(&flags);
    Counted {
        s: setup_with(config, dir),
        calls,
        real,
        flags,
    }
}

fn assert_same(
    what: &str,
    state: &runtime_api::ContainerState,
    runc: &state_probe::RuntimeState,
    status: ContainerStatus,
) {
    assert_eq!(state.status, status, "{what}: {state:?}");
    assert_eq!(expected(runc.status), status, "{what}: runc says {runc:?}");
    if status != ContainerStatus::Exited {
        assert_eq!(state.pid, Some(runc.pid), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_matches_runc_and_runs_it_only_where_needed() {
    if !need_runc() {
        return;
    }
    compare_through_a_lifecycle(counted_setup("runc", &[]), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_matches_runsc_and_runs_it_only_where_needed() {
    if !need_runsc() {
        return;
    }
    // runsc pauses inside its sandbox, not through the cgroup freezer: a
    // pause with its own CLI is the case status.rs documents as missed.
    compare_through_a_lifecycle(counted_setup("runsc", &["--network=none"]), false).await;
}

/// Creates, starts, pauses and resumes (through the driver, and with the
/// runtime's own CLI where `pause_behind` says so), kills and deletes a
/// container, comparing every status with the runtime's.
async fn compare_through_a_lifecycle(t: Counted, pause_behind: bool) {
    let id = unique_id("status");
    let b = bundle(&["sleep", "1000"]);
    let c = t.s.describe(&id, &b).build().unwrap();
    let _cleanup = t.s.cleanup_on_drop(&id);
    let rt = &t.s.runtime;

    rt.create(&c, CreateOptions::default()).await.unwrap();
    let (state, asked, runc) = t.compare(&c).await;
    assert_same("created", &state, &runc, ContainerStatus::Created);
    assert!(
        asked,
        "created and running look alike from outside the runtime"
    );

    rt.start(&c).await.unwrap();
    let (state, asked, runc) = t.compare(&c).await;
    assert_same("started", &state, &runc, ContainerStatus::Running);
    assert!(!asked, "runc state was run for a running container");

    rt.pause(&c).await.unwrap();
    let (state, asked, runc) = t.compare(&c).await;
    assert_same(
        "paused by the driver",
        &state,
        &runc,
        ContainerStatus::Paused,
    );
    assert!(asked);
    rt.resume(&c).await.unwrap();
    let (state, asked, runc) = t.compare(&c).await;
    assert_same(
        "resumed by the driver",
        &state,
        &runc,
        ContainerStatus::Running,
    );
    assert!(!asked);

    if pause_behind {
        // Paused behind the driver's back: its cgroup is frozen, which
        // sends status to the runtime.
        t.direct(&["pause", id.as_str()]).await;
        let (state, asked, runc) = t.compare(&c).await;
        assert_same("paused behind", &state, &runc, ContainerStatus::Paused);
        assert!(asked);
        t.direct(&["resume", id.as_str()]).await;
        let (state, asked, runc) = t.compare(&c).await;
        assert_same("resumed behind", &state, &runc, ContainerStatus::Running);
        assert!(!asked);
    }

    rt.kill(&c, Signal::KILL, false).await.unwrap();
    assert_eq!(rt.wait(&c, Duration::from_secs(30)).await.unwrap(), 137);
    let (state, asked, runc) = t.compare(&c).await;
    assert_same("killed", &state, &runc, ContainerStatus::Exited);
    assert_eq!(state.exit_code, Some(137));
    assert!(!asked, "the exit file answers");

    rt.delete(&c).await.unwrap();
    t.s.assert_nothing_left(&id);
}
