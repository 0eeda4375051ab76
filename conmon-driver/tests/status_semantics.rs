//! Status and monitor liveness where the runtime and conmon disagree with
//! the driver's records, decided as podman decides them: a container the
//! driver created that the runtime no longer knows is exited (code -1
//! unless the exit file says otherwise, finished now); a conmon pid of 0
//! is a monitor that does not run.

use std::time::SystemTime;

use conmon_driver::{ConmonConfig, ConmonDescriptionExt, ConmonRuntime, ContainerLayout};
use runtime_api::{ContainerDescription, ContainerId, ContainerStatus, LogDriver, OciRuntime};
use testkit::{fake_conmon, fake_runtime, FakeConmonBehaviour, FakeRuntimeBehaviour};

struct Setup {
    _dir: tempfile::TempDir,
    runtime: ConmonRuntime,
    container: ContainerDescription,
    layout: ContainerLayout,
}

/// A driver whose runtime answers every `state` with "does not exist".
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let runtime = fake_runtime(
        dir.path(),
        "fake-rt",
        FakeRuntimeBehaviour::Fail {
            message: "container \"c1\" does not exist".into(),
            code: 1,
        },
    )
    .unwrap();
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
    .conmon_pidfile(run.join("conmon.pid"))
    .build()
    .unwrap();
    let layout = ContainerLayout::new(runtime.config(), &container);
    std::fs::create_dir_all(&run).unwrap();
    Setup {
        _dir: dir,
        runtime,
        container,
        layout,
    }
}

#[tokio::test]
async fn a_created_container_the_runtime_forgot_is_exited_with_code_minus_one_finished_now() {
    let s = setup();
    // Never created: no such container.
    assert!(matches!(
        s.runtime.status(&s.container).await,
        Err(runtime_api::RuntimeError::NoSuchContainer { .. })
    ));

    // Created by this driver (its persist directory exists), then gone
    // from the runtime without an exit file.
    std::fs::create_dir_all(&s.layout.persist_dir).unwrap();
    let before = SystemTime::now();
    let state = s.runtime.status(&s.container).await.unwrap();
    assert_eq!(state.status, ContainerStatus::Exited);
    assert_eq!(state.exit_code, Some(-1));
    let finished = state.finished_at.expect("a finish time");
    assert!(finished >= before && finished <= SystemTime::now());

    // The exit file wins when conmon wrote one.
    std::fs::create_dir_all(s.layout.exit_file.parent().unwrap()).unwrap();
    std::fs::write(&s.layout.exit_file, "3").unwrap();
    let state = s.runtime.status(&s.container).await.unwrap();
    assert_eq!(
        (state.status, state.exit_code),
        (ContainerStatus::Exited, Some(3))
    );
}

#[tokio::test]
async fn a_conmon_pid_of_zero_is_a_monitor_that_does_not_run() {
    let s = setup();
    let pidfile = s.container.run_dir().join("conmon.pid");
    assert!(!s.runtime.monitor_alive(&s.container).await.unwrap());
    std::fs::write(&pidfile, "0").unwrap();
    assert!(!s.runtime.monitor_alive(&s.container).await.unwrap());
    // A live process that is not this container's conmon does not count.
    std::fs::write(&pidfile, std::process::id().to_string()).unwrap();
    assert!(!s.runtime.monitor_alive(&s.container).await.unwrap());
}
