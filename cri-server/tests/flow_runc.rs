//! The crictl-style flow through the generated CRI client over the Unix
//! socket, with conmon and runc: version, status, import and pull, a pod,
//! a container's whole life, exec sync, CRI logs, and nothing left behind.

mod common;

use common::*;
use cri_server::k8s_cri::v1 as cri;
use cri_server::PodNamespaceJoin;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crictl_style_flow_with_runc() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start(
        |dir| {
            vec![handler(
                "runc",
                conmon_runtime("runc", &[], dir),
                PodNamespaceJoin::Paths,
            )]
        },
        |state| import_with_binary(state.parent().unwrap(), state),
    )
    .await;

    // Version, status, runtime config.
    let version = s
        .runtime
        .version(cri::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_api_version, "v1");
    assert_eq!(version.runtime_name, "cri-server");
    let status = s
        .runtime
        .status(cri::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conditions = status.status.unwrap().conditions;
    let ready = conditions
        .iter()
        .find(|c| c.r#type == "RuntimeReady")
        .unwrap();
    assert!(ready.status, "{ready:?}");
    let network = conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert!(
        !network.status && network.message.contains("loopback"),
        "{network:?}"
    );
    assert_eq!(status.runtime_handlers[0].name, "runc");
    let config = s
        .runtime
        .runtime_config(cri::RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config.linux.unwrap().cgroup_driver,
        cri::CgroupDriver::Cgroupfs as i32
    );

    // Images: pull resolves from the store; list, status, fs info.
    let image_ref = s
        .images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let listed = s
        .images
        .list_images(cri::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.images.len(), 1);
    assert_eq!(listed.images[0].id, image_ref);
    assert_eq!(listed.images[0].repo_tags, [IMAGE_FULL]);
    assert!(listed.images[0].repo_digests[0].starts_with("docker.io/library/busybox@sha256:"));
    let by_id = s
        .images
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image_ref.clone(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(by_id.image.unwrap().size > 500_000);
    let fs_info = s
        .images
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(fs_info.image_filesystems[0].used_bytes.unwrap().value > 500_000);

    // A pod.
    let log_dir = s.log_dir("web");
    let pod_config = pod_config("web", &log_dir);
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "").await;
    let pod_status = s
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(pod_status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(pod_status.runtime_handler, "runc");
    assert_eq!(pod_status.labels["app"], "web");
    assert_eq!(pod_status.annotations["note"], "test");

    // A container: create, start, list, status.
    let script = idle_script("hello");
    let ctr = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("app", &["sh", "-c", &script]),
    )
    .await;
    let listed = s
        .runtime
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                label_selector: [("container".to_string(), "app".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ctr);
    assert_eq!(listed[0].image_ref, image_ref);
    let none = s
        .runtime
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                label_selector: [("container".to_string(), "other".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(none.is_empty());
    let st = container_status(&mut s, &ctr).await;
    assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32);
    assert!(st.started_at > 0 && st.created_at > 0 && st.started_at >= st.created_at);
    assert_eq!(st.log_path, log_dir.join("app/0.log").display().to_string());

    // Exec sync: output, exit code, timeout.
    let out = exec(
        &mut s.runtime,
        &ctr,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );
    assert_exec_sync_timeout(&mut s.runtime, &ctr).await;
    assert_eq!(
        exec_text(&mut s.runtime, &ctr, &["echo", "still-there"]).await,
        "still-there"
    );

    // Stop: the TERM trap exits 0, so the reason is Completed.
    s.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: ctr.clone(),
            timeout: 10,
        })
        .await
        .unwrap();
    let st = container_status(&mut s, &ctr).await;
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
    assert!(st.finished_at >= st.started_at);
    // Stopping again is fine.
    s.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: ctr.clone(),
            timeout: 0,
        })
        .await
        .unwrap();

    // The log is in the CRI format at the requested path.
    let log = std::fs::read_to_string(log_dir.join("app/0.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for (line, stream, text) in [
        (lines[0], "stdout", "hello"),
        (lines[1], "stderr", "to-stderr"),
    ] {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(parts.len(), 4, "{line}");
        assert!(
            parts[0].contains('T') && parts[0].len() >= 20,
            "timestamp in {line}"
        );
        assert_eq!(&parts[1..], [stream, "F", text], "{line}");
    }

    // Remove the container, then the pod.
    s.runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: ctr.clone(),
        })
        .await
        .unwrap();
    let err = s
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: ctr.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    let stopped = s
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                state: Some(cri::PodSandboxStateValue {
                    state: cri::PodSandboxState::SandboxNotready as i32,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(stopped.len(), 1);
    remove_pod(&mut s.runtime, &pod).await;
    let pods = s
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(pods.items.is_empty());

    // Remove the image; its status is then empty.
    s.images
        .remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let gone = s
        .images
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.image.is_none());

    s.assert_nothing_left(&[&pod, &ctr]);
    s.finish().await;
}

async fn container_status(s: &mut TestServer, id: &str) -> cri::ContainerStatus {
    s.runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
}
