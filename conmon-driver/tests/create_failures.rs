//! Every way a create can fail gives a typed error and leaves nothing
//! behind: no process, no exit file, no persist dir, no run dir the launch
//! made. Real conmon and runc where the failure is real; fake runtimes and a
//! fake conmon where it has to be provoked.

mod common;

use std::time::{Duration, Instant};

use common::*;
use conmon_driver::{ConmonRuntime, LaunchError, LaunchStage, MonitorOptions};
use runtime_api::{ContainerId, CreateOptions, OciRuntime, RuntimeError};
use testkit::{
    fake_conmon, fake_runtime, fake_runtime_without_containers, FakeConmonBehaviour,
    FakeRuntimeBehaviour,
};

#[test]
fn a_missing_runtime_is_an_invalid_argument_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("no-such-runtime-xyz", dir.path());
    // A directory among the candidates is skipped, not taken.
    config.runtime_paths = vec![dir.path().to_path_buf()];
    let err = ConmonRuntime::new(config).unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("no-such-runtime-xyz"), "{err}");
    assert_eq!(err.exit_code(), 125);
}

#[test]
fn an_unknown_cgroup_manager_is_rejected() {
    let err = "cgroupv3"
        .parse::<conmon_driver::CgroupManager>()
        .unwrap_err();
    assert!(err.to_string().contains("cgroupv3"), "{err}");
}

#[test]
fn invalid_ids_never_reach_the_driver() {
    for bad in ["../x", "a/b", "", &"a".repeat(129), "nul\0", "has space"] {
        let err = ContainerId::new(bad).unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidArgument(_)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_executable_is_command_not_found_127() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("noexec");
    let b = bundle(&["/no/such/program"]);
    let c = s.describe(&id, &b).build().unwrap();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::OciCommandNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 127);
    assert!(err.to_string().contains("/no/such/program"), "{err}");
    s.assert_nothing_left(&id);
    assert!(
        !s.run_dir(&id).exists(),
        "the run dir the launch made is left"
    );
    assert!(runc_lists(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_executable_program_is_permission_denied_126() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("noperm");
    let b = bundle(&["/etc/passwd"]);
    let c = s.describe(&id, &b).build().unwrap();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::OciPermissionDenied { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 126);
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_failing_with_empty_stderr_is_the_eof_path() {
    if !need_runc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_runtime_without_containers(
        dir.path(),
        "silent-rt",
        FakeRuntimeBehaviour::FailSilently { code: 1 },
    )
    .unwrap();
    let mut config = config("silent-rt", dir.path());
    config.runtime_paths = vec![fake];
    let s = setup_with(config, dir);
    let id = unique_id("silent");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    match err.driver_error::<LaunchError>() {
        Some(LaunchError { stage, message, .. }) => {
            assert_eq!(*stage, LaunchStage::SyncRecord);
            assert!(
                message.contains("without writing a status record"),
                "{message}"
            );
        }
        None => panic!("expected a LaunchError, got {err:?}"),
    }
    s.assert_nothing_left(&id);
    // On the way out the launch asked the runtime whether its create made
    // the container; told it does not exist, it deleted nothing (a delete
    // by id could only hit someone else's container).
    let calls = testkit::recorded_calls(s.dir.path()).unwrap();
    let create = calls
        .iter()
        .position(|c| c.first().map(String::as_str) == Some("create"))
        .unwrap_or_else(|| panic!("no create in {calls:?}"));
    assert_eq!(calls.last().unwrap(), &["state", id.as_str()], "{calls:?}");
    assert!(create < calls.len() - 1, "{calls:?}");
    assert!(
        !calls
            .iter()
            .any(|c| c.first().map(String::as_str) == Some("delete")),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_error_log_line_is_classified() {
    if !need_runc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_runtime_without_containers(
        dir.path(),
        "logging-rt",
        FakeRuntimeBehaviour::OciLogError {
            msg: "exec /bin/app: permission denied".into(),
        },
    )
    .unwrap();
    let mut config = config("logging-rt", dir.path());
    config.runtime_paths = vec![fake];
    config.runtimes_with_json_errors.push("logging-rt".into());
    let s = setup_with(config, dir);
    let id = unique_id("logged");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::OciPermissionDenied { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("exec /bin/app: permission denied"),
        "{err}"
    );
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conmon_rejecting_its_arguments_reports_its_stderr() {
    if !need_runc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conmon = fake_conmon(
        dir.path(),
        FakeConmonBehaviour::ExitWith {
            code: 1,
            message: "[conmon:e]: Runtime path /x is not valid".into(),
        },
    )
    .unwrap();
    let mut config = config("runc", dir.path());
    config.conmon_path = Some(conmon);
    let s = setup_with(config, dir);
    let id = unique_id("badconmon");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    match err.driver_error::<LaunchError>() {
        Some(LaunchError {
            stage,
            message,
            stderr,
            ..
        }) => {
            assert_eq!(*stage, LaunchStage::ParentExit);
            assert!(message.contains("status 1"), "{message}");
            assert!(stderr.contains("Runtime path /x is not valid"), "{stderr}");
        }
        None => panic!("expected a LaunchError, got {err:?}"),
    }
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_before_anything_is_spawned() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("badinput");
    let b = bundle(&["true"]);
    let mismatch = s.describe(&id, &b).preserved_fds(2).build().unwrap();
    let err = s
        .runtime
        .create(&mismatch, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("preserves 2 fds but 0"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let no_config =
        runtime_api::ContainerDescription::builder(id.clone(), empty.path(), s.run_dir(&id))
            .log(runtime_api::LogDriver::None, "")
            .build()
            .unwrap();
    let err = s
        .runtime
        .create(&no_config, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no config.json"), "{err}");
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_an_unknown_container_are_typed_errors() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("ghost");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    assert!(matches!(
        s.runtime.status(&c).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
    assert!(matches!(
        s.runtime.stop(&c, Duration::from_secs(1), false).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
    let started = Instant::now();
    assert!(matches!(
        s.runtime.wait(&c, Duration::from_secs(30)).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "wait on nothing hung"
    );
    assert!(matches!(
        s.runtime.start(&c).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
    assert!(matches!(
        s.runtime.kill(&c, runtime_api::Signal::KILL, false).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
    assert!(matches!(
        s.runtime.pause(&c).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
    assert!(!s.runtime.monitor_alive(&c).await.unwrap());
    // Delete is idempotent.
    s.runtime.delete(&c).await.unwrap();
}

fn runc_lists(id: &ContainerId) -> Vec<String> {
    let out = std::process::Command::new("runc")
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l == id.as_str())
        .map(str::to_string)
        .collect()
}

#[test]
fn new_creates_the_tmp_dirs_with_mode_0750() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_runtime(dir.path(), "any-rt", FakeRuntimeBehaviour::Succeed).unwrap();
    let mut config = config("any-rt", dir.path());
    config.runtime_paths = vec![fake.clone()];
    let runtime = ConmonRuntime::new(config).unwrap();
    assert_eq!(runtime.runtime_path(), fake);
    for sub in ["exits", "socket", "persist"] {
        let mode = std::fs::metadata(dir.path().join("tmp").join(sub))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o750, "{sub}");
    }
    let mut relative = config_relative();
    relative.runtime_paths = vec![fake];
    assert!(ConmonRuntime::new(relative)
        .unwrap_err()
        .to_string()
        .contains("absolute"));
}

fn config_relative() -> conmon_driver::ConmonConfig {
    conmon_driver::ConmonConfig::new("any-rt", "relative/tmp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_existing_id_is_refused_and_the_container_survives() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("twice");
    let b = bundle(&["sleep", "60"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let first = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::AlreadyExists { .. }), "{err:?}");
    let state = s.runtime.status(&c).await.unwrap();
    assert_eq!(state.status, runtime_api::ContainerStatus::Running);
    assert_eq!(s.runtime.monitor_pid(&c).unwrap(), Some(first.monitor_pid));
    assert!(s.runtime.monitor_alive(&c).await.unwrap());
    s.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_the_bundle_does_not_declare_is_refused_before_conmon_starts() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = fake_runtime(dir.path(), "fake-rt", FakeRuntimeBehaviour::Succeed).unwrap();
    // A conmon that would fail on its own if it were ever started.
    let conmon = fake_conmon(
        dir.path(),
        FakeConmonBehaviour::ExitWith {
            code: 1,
            message: "conmon must not run".into(),
        },
    )
    .unwrap();
    let mut config = config(runtime.to_str().unwrap(), dir.path());
    config.conmon_path = Some(conmon);
    let s = setup_with(config, dir);
    let bundle = s.dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    for (asked, declared) in [(true, false), (false, true)] {
        std::fs::write(
            bundle.join("config.json"),
            format!(r#"{{"process":{{"terminal":{declared},"args":["sh"],"cwd":"/"}}}}"#),
        )
        .unwrap();
        let id = unique_id("tty-mismatch");
        let c = runtime_api::ContainerDescription::builder(id.clone(), &bundle, s.run_dir(&id))
            .log(runtime_api::LogDriver::None, "/dev/null")
            .terminal(asked)
            .build()
            .unwrap();
        let err = s
            .runtime
            .create(&c, CreateOptions::default())
            .await
            .unwrap_err();
        let mismatch = err
            .driver_error::<conmon_driver::TerminalMismatch>()
            .unwrap_or_else(|| panic!("expected a terminal mismatch, got {err:?}"));
        assert_eq!((mismatch.requested, mismatch.bundle), (asked, declared));
        assert!(!err.to_string().contains("conmon must not run"), "{err}");
        assert!(!s.run_dir(&id).exists());
    }
}

/// With nothing of an id on disk, create runs no `state` before the
/// runtime's `create`; once the id's files exist (here: a created
/// container), a second create asks first and is refused without a launch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_id_with_files_on_disk_is_checked_with_the_runtime_first() {
    if !need_runc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    std::fs::create_dir_all(&calls).unwrap();
    let wrapper =
        testkit::recording_runtime(&calls, "runc", &testkit::find_binary("runc").unwrap()).unwrap();
    let s = setup_with(config(wrapper.to_str().unwrap(), dir.path()), dir);
    let id = unique_id("fresh");
    let b = bundle(&["sleep", "60"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let subcommands = || -> Vec<String> {
        testkit::recorded_calls(&calls)
            .unwrap()
            .into_iter()
            .filter_map(|argv| argv.into_iter().find(|a| a == "state" || a == "create"))
            .collect()
    };

    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(subcommands(), ["create"], "a fresh id is not probed");

    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        subcommands(),
        ["create", "state"],
        "an id with files is probed, and the probe's answer is final"
    );
    let state = s.runtime.status(&c).await.unwrap();
    assert_eq!(state.status, runtime_api::ContainerStatus::Created);
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

/// An id that another engine's container holds in the runtime, with
/// nothing of it in this driver's directories: the runtime's own create
/// refuses it, the launch is undone without touching that container, and
/// the error says the id exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_another_engine_holds_is_refused_and_its_container_survives() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("foreign");
    let theirs = bundle(&["sleep", "60"]);
    let _cleanup = s.cleanup_on_drop(&id);
    // The container's init process inherits runc's stdio: a pipe would
    // never reach its end while the container lives.
    let errors = s.dir.path().join("runc-create.err");
    let made = std::process::Command::new("runc")
        .args(["create", "--bundle"])
        .arg(theirs.path())
        .arg(id.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .status()
        .unwrap();
    assert!(
        made.success(),
        "runc create: {}",
        std::fs::read_to_string(&errors).unwrap_or_default()
    );

    let ours = bundle(&["true"]);
    let c = s.describe(&id, &ours).build().unwrap();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::AlreadyExists { .. }), "{err:?}");

    let state = std::process::Command::new("runc")
        .args(["state", id.as_str()])
        .output()
        .unwrap();
    assert!(state.status.success(), "their container is gone");
    let state = state_probe::parse_state(&state.stdout).unwrap();
    assert_eq!(state.status, state_probe::RuntimeStatus::Created);
    assert_eq!(
        std::fs::canonicalize(state.bundle.unwrap()).unwrap(),
        std::fs::canonicalize(theirs.path()).unwrap()
    );
    s.assert_nothing_left(&id);
    assert!(
        !s.run_dir(&id).exists(),
        "the run dir the launch made is left"
    );
    for name in ["attach", "ctl", "winsz"] {
        assert!(
            !ours.path().join(name).exists(),
            "conmon's {name} is left in the bundle"
        );
    }
}
