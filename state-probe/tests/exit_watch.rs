//! Many waits through one `ExitWatcher`: more than the default limit of
//! inotify instances per user, each woken by its own file only, nothing
//! left registered afterwards, and a watcher that outlives the runtime it
//! started on.

use std::sync::Arc;
use std::time::Duration;

use state_probe::{ExitWatcher, ProbeError};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_waits_share_one_inotify_instance() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = Arc::new(ExitWatcher::default());
    let waits: Vec<_> = (0..1000)
        .map(|i| {
            let watcher = Arc::clone(&watcher);
            let path = dir.path().join(format!("c{i}"));
            tokio::spawn(async move { watcher.wait(&path, LIMIT).await.map(|r| (i, r.code)) })
        })
        .collect();
    // Every wait registered before any file is written: none can have
    // been satisfied by a check instead of an event.
    while watcher.waited_files() < 1000 {
        tokio::task::yield_now().await;
    }
    for i in 0..1000 {
        std::fs::write(dir.path().join(format!("c{i}")), format!("{}", i % 256)).unwrap();
    }
    for wait in waits {
        let (i, code) = wait.await.unwrap().unwrap();
        assert_eq!(code, i % 256);
    }
    assert_eq!(watcher.waited_files(), 0, "registrations are removed");
}

#[tokio::test]
async fn a_timed_out_wait_unregisters_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = ExitWatcher::default();
    let err = watcher
        .wait(&dir.path().join("never"), Duration::from_millis(30))
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeError::Timeout { .. }), "{err:?}");
    assert_eq!(watcher.waited_files(), 0);
    let path = dir.path().join("later");
    let (record, ()) = tokio::join!(watcher.wait(&path, LIMIT), async {
        tokio::task::yield_now().await;
        std::fs::write(&path, "3").unwrap();
    });
    assert_eq!(record.unwrap().code, 3);
}

#[test]
fn a_watcher_keeps_working_after_its_first_runtime_ends() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = ExitWatcher::default();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    std::fs::write(dir.path().join("first"), "1").unwrap();
    let first = runtime().block_on(watcher.wait(&dir.path().join("first"), LIMIT));
    assert_eq!(first.unwrap().code, 1);
    // The first runtime, and the reader task on it, are gone.
    let second = runtime().block_on(async {
        let path = dir.path().join("second");
        let (record, ()) = tokio::join!(watcher.wait(&path, LIMIT), async {
            tokio::task::yield_now().await;
            std::fs::write(&path, "2").unwrap();
        });
        record
    });
    assert_eq!(second.unwrap().code, 2);
}

#[tokio::test]
async fn a_removed_directory_ends_the_wait_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("session");
    std::fs::create_dir(&sub).unwrap();
    let watcher = ExitWatcher::default();
    let path = sub.join("exit");
    let (result, ()) = tokio::join!(watcher.wait(&path, LIMIT), async {
        tokio::task::yield_now().await;
        std::fs::remove_dir(&sub).unwrap();
    });
    assert!(matches!(result, Err(ProbeError::Io { .. })), "{result:?}");
}
