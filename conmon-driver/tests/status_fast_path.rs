//! Status answers from conmon's exit file and the driver's record of the
//! started init process without running the runtime, and asks the runtime
//! in every case those cannot settle: not started through the driver,
//! paused through the driver, the init process gone or replaced by a
//! later process with the same pid, an unreadable record.
//!
//! The runtime is a recording fake whose `state` says "does not exist", so
//! every call shows in its log, and an answer that came from it is the one
//! podman gives a forgotten container (exited, code -1). The container's
//! init process is a `sleep` child of the test.

use std::process::{Child, Command, Stdio};

use conmon_driver::{ConmonConfig, ConmonRuntime, ContainerLayout};
use runtime_api::{ContainerDescription, ContainerId, ContainerStatus, LogDriver, OciRuntime};
use state_probe::ProcessIdentity;
use testkit::{
    fake_conmon, fake_runtime_without_containers, recorded_calls, FakeConmonBehaviour,
    FakeRuntimeBehaviour,
};

struct Setup {
    dir: tempfile::TempDir,
    runtime: ConmonRuntime,
    container: ContainerDescription,
    layout: ContainerLayout,
}

/// A driver over the recording fake and a container it "created": its run
/// and persist directories exist, as after `create`.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let runtime =
        fake_runtime_without_containers(dir.path(), "fake-rt", FakeRuntimeBehaviour::Succeed)
            .unwrap();
    // Never started: no test here creates a container.
    let conmon = fake_conmon(dir.path(), FakeConmonBehaviour::NeverReports).unwrap();
    let config = ConmonConfig::builder(runtime.to_str().unwrap(), dir.path().join("tmp"))
        .conmon(conmon)
        .build()
        .unwrap();
    let runtime = ConmonRuntime::new(config).unwrap();
    let run = dir.path().join("run");
    let container = ContainerDescription::builder(
        ContainerId::new("c1").unwrap(),
        dir.path().join("bundle"),
        &run,
    )
    .log(LogDriver::None, "/dev/null")
    .build()
    .unwrap();
    let layout = ContainerLayout::new(runtime.config(), &container);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&layout.persist_dir).unwrap();
    Setup {
        dir,
        runtime,
        container,
        layout,
    }
}

impl Setup {
    /// How many times the runtime was asked for `state`.
    fn state_calls(&self) -> usize {
        recorded_calls(self.dir.path())
            .unwrap()
            .iter()
            .filter(|argv| argv.iter().any(|a| a == "state"))
            .count()
    }

    /// A `sleep` standing for the container's init process, its pid in the
    /// runtime's pidfile as `runc create` leaves it.
    fn init_process(&self) -> Sleeper {
        let sleeper = Sleeper::spawn();
        std::fs::write(&self.layout.container_pidfile, sleeper.pid().to_string()).unwrap();
        sleeper
    }

    /// Status, and whether the runtime was asked for it.
    async fn status(&self) -> (runtime_api::ContainerState, bool) {
        let before = self.state_calls();
        let state = self.runtime.status(&self.container).await.unwrap();
        (state, self.state_calls() > before)
    }
}

/// A child process killed and reaped on drop.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    fn end(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.end();
    }
}

/// The answer the fake runtime gives: a container it does not know, which
/// the driver created, is exited with code -1.
fn is_the_runtimes_answer(state: &runtime_api::ContainerState) -> bool {
    state.status == ContainerStatus::Exited && state.exit_code == Some(-1)
}

#[tokio::test]
async fn a_started_container_whose_init_runs_is_running_without_the_runtime() {
    let s = setup();
    let init = s.init_process();

    // Created, not started: the init process lives, but only the runtime
    // can tell created from running.
    let (state, asked) = s.status().await;
    assert!(asked && is_the_runtimes_answer(&state), "{state:?}");

    s.runtime.start(&s.container).await.unwrap();
    assert!(s.layout.running_record().is_file());
    for _ in 0..100 {
        let (state, asked) = s.status().await;
        assert!(!asked, "the runtime was run for a running container");
        assert_eq!(state.status, ContainerStatus::Running);
        assert_eq!(state.pid, Some(init.pid()));
        assert!(state.started_at.is_some());
        assert_eq!(state.exit_code, None);
    }
}

#[tokio::test]
async fn an_exit_file_answers_without_the_runtime_and_before_the_record() {
    let s = setup();
    let _init = s.init_process();
    s.runtime.start(&s.container).await.unwrap();
    std::fs::create_dir_all(&s.layout.exit_dir).unwrap();
    std::fs::write(&s.layout.exit_file, "3").unwrap();
    let (state, asked) = s.status().await;
    assert!(!asked);
    assert_eq!(
        (state.status, state.exit_code),
        (ContainerStatus::Exited, Some(3))
    );
}

#[tokio::test]
async fn a_pause_through_the_driver_sends_status_to_the_runtime_until_resumed() {
    let s = setup();
    let _init = s.init_process();
    s.runtime.start(&s.container).await.unwrap();
    assert_eq!(s.status().await.0.status, ContainerStatus::Running);

    s.runtime.pause(&s.container).await.unwrap();
    assert!(s.layout.paused_marker().exists());
    let (state, asked) = s.status().await;
    assert!(asked && is_the_runtimes_answer(&state), "{state:?}");

    s.runtime.resume(&s.container).await.unwrap();
    assert!(!s.layout.paused_marker().exists());
    let (state, asked) = s.status().await;
    assert!(!asked);
    assert_eq!(state.status, ContainerStatus::Running);
}

#[tokio::test]
async fn a_failed_pause_leaves_status_to_the_runtime() {
    let s = setup();
    let _init = s.init_process();
    s.runtime.start(&s.container).await.unwrap();
    // The runtime now fails every command: the pause may or may not have
    // frozen the container, so only the runtime can say.
    testkit::fake_runtime(
        s.dir.path(),
        "fake-rt",
        FakeRuntimeBehaviour::Fail {
            message: "pause failed half-way".into(),
            code: 1,
        },
    )
    .unwrap();
    assert!(s.runtime.pause(&s.container).await.is_err());
    let before = s.state_calls();
    let _ = s.runtime.status(&s.container).await;
    assert_eq!(s.state_calls(), before + 1);
}

#[tokio::test]
async fn an_init_process_that_is_gone_or_replaced_is_not_taken_for_running() {
    let s = setup();
    let mut init = s.init_process();
    s.runtime.start(&s.container).await.unwrap();
    assert_eq!(s.status().await.0.status, ContainerStatus::Running);

    // Exited and reaped, no exit file yet: the runtime decides.
    init.end();
    let (state, asked) = s.status().await;
    assert!(asked && is_the_runtimes_answer(&state), "{state:?}");

    // The recorded pid now belongs to another process (the record's start
    // time is not that process's): the runtime decides.
    let other = Sleeper::spawn();
    let now = ProcessIdentity::of(other.pid()).unwrap().unwrap();
    let earlier = ProcessIdentity {
        start_time: now.start_time.saturating_sub(1),
        ..now
    };
    std::fs::write(s.layout.running_record(), earlier.to_string()).unwrap();
    let (state, asked) = s.status().await;
    assert!(asked && is_the_runtimes_answer(&state), "{state:?}");

    // The true identity of a live process answers at once.
    std::fs::write(s.layout.running_record(), now.to_string()).unwrap();
    let (state, asked) = s.status().await;
    assert!(!asked);
    assert_eq!(
        (state.status, state.pid),
        (ContainerStatus::Running, Some(other.pid()))
    );

    // A record that is not one: the runtime decides.
    for junk in ["", "garbage", "0 1", &other.pid().to_string()] {
        std::fs::write(s.layout.running_record(), junk).unwrap();
        let (state, asked) = s.status().await;
        assert!(
            asked && is_the_runtimes_answer(&state),
            "{junk:?}: {state:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_start_leaves_no_record() {
    let s = setup();
    let _init = s.init_process();
    testkit::fake_runtime(
        s.dir.path(),
        "fake-rt",
        FakeRuntimeBehaviour::Fail {
            message: "start refused".into(),
            code: 1,
        },
    )
    .unwrap();
    assert!(s.runtime.start(&s.container).await.is_err());
    assert!(!s.layout.running_record().exists());
    assert!(!s.layout.started_marker.exists());
}
