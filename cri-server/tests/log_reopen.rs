//! `ReopenContainerLog`, as the kubelet rotates a container's log: the CRI
//! log is renamed away, the call makes conmon open a new file at the path,
//! and later output lands there while the renamed file keeps the earlier.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use cri_server::k8s_cri::v1 as cri;

/// Waits (bounded) until the file at `path` holds `needle`: the line is
/// written by conmon, and no event tells this process when.
async fn file_gets(path: &Path, needle: &str) -> String {
    let what = format!("{} to hold {needle:?}", path.display());
    poll_until(&what, Duration::from_secs(20), || async {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.contains(needle).then_some(text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_container_log_moves_later_output_to_a_new_file() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start_runc().await;
    let log_dir = s.log_dir("rotate");
    let pod_cfg = pod_config("rotate", &log_dir);
    let pod = run_pod(&mut s.runtime, pod_cfg.clone(), "").await;
    // Each USR1 prints one numbered line.
    let script = "n=0; trap 'n=$((n+1)); echo line-$n' USR1; echo started; \
                  while :; do sleep 0.1; done";
    let c = run_container(
        &mut s.runtime,
        &pod,
        &pod_cfg,
        container_config("app", &["sh", "-c", script]),
    )
    .await;
    let log = log_dir.join("app/0.log");
    file_gets(&log, "started").await;
    exec_text(&mut s.runtime, &c, &["kill", "-USR1", "1"]).await;
    file_gets(&log, "line-1").await;

    let rotated = log_dir.join("app/0.log.20261204-000000");
    std::fs::rename(&log, &rotated).unwrap();
    s.runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: c.clone(),
        })
        .await
        .unwrap();
    exec_text(&mut s.runtime, &c, &["kill", "-USR1", "1"]).await;
    let new = file_gets(&log, "line-2").await;
    assert!(!new.contains("line-1") && !new.contains("started"), "{new}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("line-1") && !old.contains("line-2"), "{old}");
    // CRI log lines in the new file too.
    assert!(new.lines().all(|l| l.contains(" stdout F ")), "{new}");

    // Not running: refused. Unknown: not found.
    s.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: c.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    let err = s
        .runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: c.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let err = s
        .runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: "no-such-container".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    remove_pod(&mut s.runtime, &pod).await;
    s.assert_nothing_left(&[&pod, &c]);
    s.finish().await;
}
