//! The same lifecycle through runsc (gVisor), a second real runtime, with
//! the global flag `--network=none` on every direct call and as a
//! `--runtime-arg` to conmon.

mod common;

use std::time::Duration;

use common::*;
use conmon_driver::read_k8s_log;
use runtime_api::{ContainerStatus, CreateOptions, OciRuntime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsc_runs_pauses_resumes_stops_and_exits() {
    if !need_runsc() {
        return;
    }
    let s = setup("runsc", &["--network=none"]);
    let id = unique_id("gvisor");
    let b = bundle(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(
        s.runtime.status(&c).await.unwrap().status,
        ContainerStatus::Created
    );
    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(60)).await.unwrap(),
        3
    );
    s.runtime.delete(&c).await.unwrap();
    let (stdout, stderr) = read_k8s_log(&s.log_path(&id)).unwrap();
    assert_eq!(
        (stdout.as_slice(), stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    s.assert_nothing_left(&id);

    let id = unique_id("gvisor-sleep");
    let script = format!("trap '' TERM; {ANNOUNCE_READY}; exec sleep 60");
    let b = bundle(&["sh", "-c", &script]);
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
    s.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    let state = s.runtime.status(&c).await.unwrap();
    assert_eq!(state.status, ContainerStatus::Exited);
    assert_eq!(state.exit_code, Some(137));
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);

    let info = s.runtime.info().await.unwrap();
    assert!(!info.runtime.version.is_empty());
}
