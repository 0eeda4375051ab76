//! The container lifecycle end to end against real conmon and runc.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use conmon_driver::{read_k8s_log, MonitorOptions};
use runtime_api::{ContainerStatus, CreateOptions, Feature, OciRuntime, RuntimeError, Signal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_to_exit_code_with_both_streams_logged() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("exit3");
    let b = bundle(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);

    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    assert!(created.container.pid.unwrap() > 0 && created.monitor_pid > 0);
    let state = s.runtime.status(&c).await.unwrap();
    assert_eq!(state.status, ContainerStatus::Created);
    assert_eq!(state.pid, created.container.pid);
    assert_eq!(
        s.runtime.monitor_pid(&c).unwrap(),
        Some(created.monitor_pid)
    );
    assert!(s.runtime.monitor_alive(&c).await.unwrap());

    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        3
    );
    let state = s.runtime.status(&c).await.unwrap();
    assert_eq!(state.status, ContainerStatus::Exited);
    assert_eq!(state.exit_code, Some(3));
    assert!(state.finished_at.is_some() && state.started_at.is_some());
    assert!(state.finished_at >= state.started_at);
    assert!(!state.oom_killed);

    s.runtime.delete(&c).await.unwrap();
    let (stdout, stderr) = read_k8s_log(&s.log_path(&id)).unwrap();
    assert_eq!(stdout, b"out\n");
    assert_eq!(stderr, b"err\n");
    assert!(matches!(
        s.runtime.status(&c).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stop_escalates_to_sigkill() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("sleeper");
    // `sleep` as pid 1 has no SIGTERM handler, so the kernel ignores SIGTERM.
    let b = bundle(&["sleep", "60"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );

    s.runtime.pause(&c).await.unwrap();
    assert_eq!(
        s.runtime.status(&c).await.unwrap().status,
        ContainerStatus::Paused
    );
    s.runtime.resume(&c).await.unwrap();
    assert_eq!(
        s.runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );

    let started = Instant::now();
    s.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL came before the timeout: {took:?}"
    );
    let state = s.runtime.status(&c).await.unwrap();
    assert_eq!(state.status, ContainerStatus::Exited);
    assert_eq!(state.exit_code, Some(137));

    // Stopping again is a success: the container is already gone.
    s.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_quickly_when_the_process_honours_sigterm() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("polite");
    let script = format!("trap 'exit 0' TERM; {ANNOUNCE_READY}; while :; do sleep 1 & wait; done");
    let b = bundle(&["sh", "-c", &script]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    await_ready(&b).await;
    assert_eq!(
        s.runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );

    let started = Instant::now();
    s.runtime
        .stop(&c, Duration::from_secs(10), false)
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("stop with a SIGTERM-honouring process took {took:?}");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_eq!(s.runtime.status(&c).await.unwrap().exit_code, Some(0));
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_delivers_a_signal_and_the_exit_code_reflects_it() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("killme");
    let script = format!("trap 'exit 42' USR1; {ANNOUNCE_READY}; while :; do sleep 1 & wait; done");
    let b = bundle(&["sh", "-c", &script]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    await_ready(&b).await;
    s.runtime
        .kill(&c, "USR1".parse::<Signal>().unwrap(), false)
        .await
        .unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        42
    );
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preserved_fd_reaches_the_container() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("preserve");
    let b = bundle(&["sh", "-c", "cat <&3"]);
    let c = s.describe(&id, &b).preserved_fds(1).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let options = CreateOptions::with_preserved_fds(vec![read_end]);
    s.runtime.create(&c, options).await.unwrap();
    s.runtime.start(&c).await.unwrap();
    let mut writer = std::fs::File::from(write_end);
    writer.write_all(b"through fd 3\n").unwrap();
    drop(writer);
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        0
    );
    s.runtime.delete(&c).await.unwrap();
    let (stdout, _) = read_k8s_log(&s.log_path(&id)).unwrap();
    assert_eq!(stdout, b"through fd 3\n");
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_through_an_arc_dyn_oci_runtime() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("dyn");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    assert!(s.runtime.runtime_path().ends_with("runc"));
    let traits = s.runtime.runtime_traits();
    assert!(traits.json_errors && !traits.kvm);
    assert_eq!(s.runtime.attach_socket_path(&c), b.path().join("attach"));
    assert!(s
        .runtime
        .exit_file_path(&c)
        .ends_with(format!("exits/{id}")));
    let runtime: Arc<dyn OciRuntime> = Arc::new(s.runtime);
    assert_eq!(runtime.name(), "runc");
    let features = runtime.features().await.unwrap();
    for feature in [
        Feature::Pause,
        Feature::Attach,
        Feature::Exec,
        Feature::Info,
    ] {
        assert!(
            features.contains(feature),
            "{feature} missing from {features}"
        );
    }
    let info = runtime.info().await.unwrap();
    assert!(info.runtime.version.contains("runc version"), "{info:?}");
    assert!(info.monitor.unwrap().version.starts_with("conmon version"));

    let task = {
        let runtime = Arc::clone(&runtime);
        let c = c.clone();
        tokio::spawn(async move {
            runtime.create(&c, CreateOptions::default()).await?;
            runtime.start(&c).await?;
            let code = runtime.wait(&c, Duration::from_secs(30)).await?;
            runtime.delete(&c).await?;
            Ok::<i32, RuntimeError>(code)
        })
    };
    assert_eq!(task.await.unwrap().unwrap(), 0);
}

/// `Duration::MAX` as a timeout means "no deadline", never an overflow
/// panic: in the configuration (the launch's deadline) and in calls (wait,
/// stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_timeouts_mean_no_deadline_not_a_panic() {
    if !need_runc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("runc", dir.path());
    config.timeouts.create = Duration::MAX;
    config.timeouts.placement = Duration::MAX;
    let s = setup_with(config, dir);
    let id = unique_id("forever");
    let b = bundle(&[
        "sh",
        "-c",
        "trap 'exit 9' TERM; while :; do sleep 0.05; done",
    ]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    s.runtime.stop(&c, Duration::MAX, false).await.unwrap();
    assert_eq!(s.runtime.wait(&c, Duration::MAX).await.unwrap(), 9);
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}
