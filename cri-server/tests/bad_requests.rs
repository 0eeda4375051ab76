//! Malformed requests and unknown ids answer gRPC status codes with
//! messages, never a panic; idempotent calls succeed on unknown ids. No
//! container ever runs, so
//! the runtime is `testkit`'s in-memory mock and no root is needed.

mod common;

use std::sync::Arc;

use common::*;
use cri_server::k8s_cri::v1 as cri;
use cri_server::{PodNamespaceJoin, RuntimeHandler};
use testkit::mock::MockRuntime;
use tonic::Code;

fn expect(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needle: &str) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(needle),
                "{needle:?} not in {:?}",
                status.message()
            );
        }
        Ok(v) => panic!("expected {code:?}, got {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_answer_grpc_codes_with_messages() {
    let mut s = TestServer::start(
        |_| {
            vec![RuntimeHandler::new("mock", Arc::new(MockRuntime::new()))
                .with_join(PodNamespaceJoin::Paths)]
        },
        |_| {},
    )
    .await;
    let rt = &mut s.runtime;

    // Unknown ids.
    expect(
        rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: "nope".into(),
            verbose: false,
        })
        .await,
        Code::NotFound,
        "pod sandbox \"nope\" not found",
    );
    expect(
        rt.container_status(cri::ContainerStatusRequest {
            container_id: "nope".into(),
            verbose: false,
        })
        .await,
        Code::NotFound,
        "container \"nope\" not found",
    );
    expect(
        rt.start_container(cri::StartContainerRequest {
            container_id: "nope".into(),
        })
        .await,
        Code::NotFound,
        "nope",
    );
    expect(
        rt.stop_container(cri::StopContainerRequest {
            container_id: "nope".into(),
            timeout: 1,
        })
        .await,
        Code::NotFound,
        "nope",
    );
    expect(
        rt.exec_sync(cri::ExecSyncRequest {
            container_id: "nope".into(),
            cmd: vec!["true".into()],
            timeout: 1,
        })
        .await,
        Code::NotFound,
        "nope",
    );
    expect(
        rt.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: "nope".into(),
            config: Some(container_config("c", &["true"])),
            sandbox_config: None,
        })
        .await,
        Code::NotFound,
        "pod sandbox",
    );
    // Removing and stopping what is not there is success (idempotent).
    rt.remove_container(cri::RemoveContainerRequest {
        container_id: "nope".into(),
    })
    .await
    .unwrap();
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: "nope".into(),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: "nope".into(),
    })
    .await
    .unwrap();

    // Malformed requests.
    expect(
        rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: None,
            runtime_handler: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "pod sandbox config",
    );
    let mut nameless = pod_config("x", &s.dir.path().join("logs"));
    nameless.metadata.as_mut().unwrap().name.clear();
    expect(
        rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(nameless),
            runtime_handler: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "empty name",
    );
    let config = pod_config("x", &s.dir.path().join("logs"));
    expect(
        rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: "kata".into(),
        })
        .await,
        Code::InvalidArgument,
        "runtime handler \"kata\" is not configured",
    );
    // No pause image in the store: the pod cannot start, and says why.
    expect(
        rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await,
        Code::NotFound,
        "not in the local store",
    );
    // ... and its name was released.
    expect(
        rt.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await,
        Code::NotFound,
        "not in the local store",
    );
    expect(
        rt.start_container(cri::StartContainerRequest {
            container_id: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "empty",
    );
    expect(
        rt.stop_container(cri::StopContainerRequest {
            container_id: "x".into(),
            timeout: -1,
        })
        .await,
        Code::InvalidArgument,
        "negative",
    );

    // Images.
    let im = &mut s.images;
    expect(
        im.pull_image(cri::PullImageRequest::default()).await,
        Code::InvalidArgument,
        "image spec",
    );
    expect(
        im.pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: "Not/Valid".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "lower-case",
    );
    let status = im
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(status.image.is_none());
    im.remove_image(cri::RemoveImageRequest {
        image: Some(cri::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();

    // Streaming calls without their id.
    let rt = &mut s.runtime;
    expect(
        rt.exec(cri::ExecRequest::default()).await,
        Code::InvalidArgument,
        "container id is empty",
    );
    expect(
        rt.attach(cri::AttachRequest::default()).await,
        Code::InvalidArgument,
        "container id is empty",
    );
    expect(
        rt.port_forward(cri::PortForwardRequest::default()).await,
        Code::InvalidArgument,
        "pod sandbox id is empty",
    );

    // Not implemented yet, said so.
    expect(
        rt.reopen_container_log(cri::ReopenContainerLogRequest::default())
            .await,
        Code::InvalidArgument,
        "container id is empty",
    );
    expect(
        rt.reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: "nope".into(),
        })
        .await,
        Code::NotFound,
        "nope",
    );
    // Stats, checkpoint and events of unknown or missing ids.
    expect(
        rt.container_stats(cri::ContainerStatsRequest::default())
            .await,
        Code::InvalidArgument,
        "container id",
    );
    expect(
        rt.container_stats(cri::ContainerStatsRequest {
            container_id: "nope".into(),
        })
        .await,
        Code::NotFound,
        "nope",
    );
    expect(
        rt.pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: "nope".into(),
        })
        .await,
        Code::NotFound,
        "nope",
    );
    expect(
        rt.checkpoint_container(cri::CheckpointContainerRequest {
            container_id: "nope".into(),
            location: "/tmp/nope.tar".into(),
            timeout: 0,
        })
        .await,
        Code::NotFound,
        "nope",
    );
    let listed = rt
        .list_container_stats(cri::ListContainerStatsRequest::default())
        .await
        .unwrap();
    assert!(listed.into_inner().stats.is_empty());
    s.finish().await;
}
