//! The single-container flow through runsc (gVisor) with `--network=none`.
//! runsc's sandboxes cannot join each other's namespaces by path, so the
//! handler runs isolated (see docs/cri.md); the pod's infra container and
//! the container are sandboxes of their own.

mod common;

use common::*;
use cri_server::k8s_cri::v1 as cri;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_container_flow_with_runsc() {
    if !need_runsc() {
        return;
    }
    let mut s = TestServer::start_runsc().await;
    let log_dir = s.log_dir("gvisor");
    let pod_config = pod_config("gvisor", &log_dir);
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runsc").await;
    let script = idle_script("from-gvisor");
    let c = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("app", &["sh", "-c", &script]),
    )
    .await;

    let out = exec(
        &mut s.runtime,
        &c,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        30,
    )
    .await
    .unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );
    // As with runc: the process is killed inside gVisor's sandbox too.
    assert_exec_sync_timeout(&mut s.runtime, &c).await;
    // gVisor's own kernel answers.
    let kernel = exec_text(&mut s.runtime, &c, &["dmesg"]).await;
    assert!(kernel.to_lowercase().contains("gvisor"), "{kernel}");

    s.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: c.clone(),
            timeout: 10,
        })
        .await
        .unwrap();
    let st = s
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: c.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(st.reason, "Completed");
    let log = std::fs::read_to_string(log_dir.join("app/0.log")).unwrap();
    assert!(
        log.lines()
            .next()
            .unwrap()
            .ends_with(" stdout F from-gvisor"),
        "{log}"
    );

    remove_pod(&mut s.runtime, &pod).await;
    s.assert_nothing_left(&[&pod, &c]);
    s.finish().await;
}
