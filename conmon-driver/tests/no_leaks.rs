//! Launches that hang or garble, run one after the other in a binary of
//! their own so that this process's fd table and the host's process list
//! can be compared before and after without other tests interfering.

mod common;

use std::time::{Duration, Instant};

use common::*;
use conmon_driver::{LaunchError, LaunchStage};
use runtime_api::{CreateOptions, OciRuntime, RuntimeError};
use testkit::audit::FdSnapshot;
use testkit::{fake_conmon, FakeConmonBehaviour};

/// A dropped driver aborts its exit watcher's reader task; on this
/// single-threaded runtime the task (and its inotify fd) is dropped once
/// the scheduler runs it, which yielding lets happen.
async fn settle_dropped_tasks() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn failed_and_successful_launches_leak_no_fd_process_or_directory() {
    if !need_runc() {
        return;
    }
    // Warm up lazily opened fds (tokio's signal pipe, the pidfd epoll...)
    // with one full lifecycle before taking the baseline.
    let s = setup("runc", &[]);
    let id = unique_id("warmup");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap();
    s.runtime.delete(&c).await.unwrap();
    drop(s);
    settle_dropped_tasks().await;
    let fds_before = FdSnapshot::take();

    // 1. conmon that never writes its sync record: a timeout within the
    //    short limit, and conmon's child is killed.
    let dir = tempfile::tempdir().unwrap();
    let conmon = fake_conmon(dir.path(), FakeConmonBehaviour::NeverReports).unwrap();
    let mut cfg = config("runc", dir.path());
    cfg.conmon_path = Some(conmon);
    cfg.timeouts.create = Duration::from_millis(700);
    let s = setup_with(cfg, dir);
    let id = unique_id("silentconmon");
    let b = bundle(&["true"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let started = Instant::now();
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, RuntimeError::Timeout { limit, .. } if limit == Duration::from_millis(700)),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(10), "timeout took {took:?}");
    s.assert_nothing_left(&id);
    assert!(!s.run_dir(&id).exists());
    drop(s);

    // 2. conmon that writes garbage: the bytes are quoted in the error.
    let dir = tempfile::tempdir().unwrap();
    let conmon = fake_conmon(
        dir.path(),
        FakeConmonBehaviour::WritesRaw {
            raw: "garbage{\"da".into(),
        },
    )
    .unwrap();
    let mut cfg = config("runc", dir.path());
    cfg.conmon_path = Some(conmon);
    let s = setup_with(cfg, dir);
    let id = unique_id("garbled");
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    match &err {
        err if err.driver_error::<LaunchError>().is_some() => {
            let LaunchError { stage, message, .. } = err.driver_error::<LaunchError>().unwrap();
            assert_eq!(*stage, LaunchStage::SyncRecord);
            assert!(message.contains("garbage{"), "{message}");
        }
        other => panic!("expected a LaunchError, got {other:?}"),
    }
    s.assert_nothing_left(&id);
    drop(s);

    // 3. A real failing create (missing executable).
    let s = setup("runc", &[]);
    let id = unique_id("leakcheck");
    let missing = bundle(&["/missing"]);
    let c = s.describe(&id, &missing).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let err = s
        .runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 127);
    s.assert_nothing_left(&id);
    drop(s);

    // 4. A full successful lifecycle.
    let s = setup("runc", &[]);
    let id = unique_id("leakcheck-ok");
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        0
    );
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
    drop(s);
    settle_dropped_tasks().await;

    assert_eq!(
        fds_before.opened_since(),
        Vec::<String>::new(),
        "fds leaked by the launches"
    );
}
