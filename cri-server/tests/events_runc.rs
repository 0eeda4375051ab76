//! `GetContainerEvents` with conmon and runc: one subscription sees a
//! pod's and its containers' lifecycle in order — sandbox created and
//! started, a container created, started, stopped when its own command
//! ends (the exit watcher), deleted; a stopped container's STOPPED event
//! sent once; the sandbox stopped and deleted — and no exit watcher is
//! left afterwards.

mod common;

use std::time::Duration;

use common::*;
use cri_server::k8s_cri::v1 as cri;

use cri::ContainerEventType as Kind;

const LIMIT: Duration = Duration::from_secs(60);

async fn expect_event(
    events: &mut tonic::Streaming<cri::ContainerEventResponse>,
    kind: Kind,
    id: &str,
) -> cri::ContainerEventResponse {
    let event = next_event(events, LIMIT).await;
    assert_eq!(
        (event.container_event_type, event.container_id.as_str()),
        (kind as i32, id),
        "{event:?}"
    );
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_arrive_in_order() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start_runc().await;
    let mut events = subscribe_events(&mut s.runtime).await;
    let pod_config = pod_config("events", &s.log_dir("events"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runc").await;
    let created = expect_event(&mut events, Kind::ContainerCreatedEvent, &pod).await;
    let status = created.pod_sandbox_status.expect("the pod's status");
    assert_eq!(status.id, pod);
    expect_event(&mut events, Kind::ContainerStartedEvent, &pod).await;

    // A container whose command ends on its own.
    let short = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("short", &["sh", "-c", "exit 3"]),
    )
    .await;
    let created = expect_event(&mut events, Kind::ContainerCreatedEvent, &short).await;
    assert_eq!(
        created.pod_sandbox_status.unwrap().state,
        cri::PodSandboxState::SandboxReady as i32
    );
    assert_eq!(created.containers_statuses.len(), 1);
    assert_eq!(created.containers_statuses[0].id, short);
    expect_event(&mut events, Kind::ContainerStartedEvent, &short).await;
    let stopped = expect_event(&mut events, Kind::ContainerStoppedEvent, &short).await;
    let own = stopped
        .containers_statuses
        .iter()
        .find(|c| c.id == short)
        .expect("the container's status");
    assert_eq!(own.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(own.exit_code, 3);
    assert_eq!(s.engine.exit_watchers(), 0, "the watcher ended at the exit");
    s.runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: short.clone(),
        })
        .await
        .unwrap();
    let deleted = expect_event(&mut events, Kind::ContainerDeletedEvent, &short).await;
    assert!(deleted.containers_statuses.is_empty());

    // A container stopped by the server: one STOPPED, then DELETED.
    let long = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("long", &["sh", "-c", &idle_script("hi")]),
    )
    .await;
    expect_event(&mut events, Kind::ContainerCreatedEvent, &long).await;
    expect_event(&mut events, Kind::ContainerStartedEvent, &long).await;
    assert_eq!(s.engine.exit_watchers(), 1);
    s.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: long.clone(),
            timeout: 10,
        })
        .await
        .unwrap();
    expect_event(&mut events, Kind::ContainerStoppedEvent, &long).await;
    s.runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: long.clone(),
        })
        .await
        .unwrap();
    expect_event(&mut events, Kind::ContainerDeletedEvent, &long).await;

    // A running container removed with its pod: stopped, deleted, then
    // the sandbox.
    let last = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("last", &["sh", "-c", &idle_script("hi")]),
    )
    .await;
    expect_event(&mut events, Kind::ContainerCreatedEvent, &last).await;
    expect_event(&mut events, Kind::ContainerStartedEvent, &last).await;
    remove_pod(&mut s.runtime, &pod).await;
    expect_event(&mut events, Kind::ContainerStoppedEvent, &last).await;
    let stopped = expect_event(&mut events, Kind::ContainerStoppedEvent, &pod).await;
    assert_eq!(
        stopped.pod_sandbox_status.unwrap().state,
        cri::PodSandboxState::SandboxNotready as i32
    );
    expect_event(&mut events, Kind::ContainerDeletedEvent, &last).await;
    let deleted = expect_event(&mut events, Kind::ContainerDeletedEvent, &pod).await;
    assert_eq!(deleted.pod_sandbox_status.unwrap().id, pod);
    assert_eq!(
        s.engine.exit_watchers(),
        0,
        "no watcher outlives its container"
    );

    // A pod removed without StopPodSandbox still reports its stop.
    let other_config = common::pod_config("events2", &s.log_dir("events2"));
    let other = run_pod(&mut s.runtime, other_config, "runc").await;
    expect_event(&mut events, Kind::ContainerCreatedEvent, &other).await;
    expect_event(&mut events, Kind::ContainerStartedEvent, &other).await;
    s.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: other.clone(),
        })
        .await
        .unwrap();
    expect_event(&mut events, Kind::ContainerStoppedEvent, &other).await;
    expect_event(&mut events, Kind::ContainerDeletedEvent, &other).await;

    // Nothing more arrived: the next event would be a duplicate.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), events.message())
            .await
            .is_err(),
        "an unexpected event"
    );
    assert_eq!(s.engine.event_subscribers(), 1);
    drop(events);
    // The server drops the subscription when the client's stream goes.
    let engine = s.engine.clone();
    poll_until("the subscription to be dropped", LIMIT, || {
        let engine = engine.clone();
        async move { (engine.event_subscribers() == 0).then_some(()) }
    })
    .await;
    s.assert_nothing_left(&[&pod, &other, &short, &long, &last]);
    s.finish().await;
}

/// An engine used without the gRPC service: a container started through
/// `Engine::start_container` is watched as well, and its own exit is a
/// STOPPED event on the engine's own subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_started_through_the_engine_is_watched() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start_runc().await;
    let pod_config = pod_config("engine-start", &s.log_dir("engine-start"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runc").await;
    let id = s
        .runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config("ends", &["sh", "-c", "exit 4"])),
            sandbox_config: Some(pod_config.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    let mut events = s.engine.subscribe_events();
    s.engine.start_container(&id).await.unwrap();
    let stopped = tokio::time::timeout(LIMIT, async {
        loop {
            let event = tokio_stream::StreamExt::next(&mut events)
                .await
                .expect("the subscription lasts")
                .expect("no event is lost");
            if event.container_id == id
                && event.container_event_type == Kind::ContainerStoppedEvent as i32
            {
                return event;
            }
        }
    })
    .await
    .expect("STOPPED within the limit");
    let own = stopped
        .containers_statuses
        .iter()
        .find(|c| c.id == id)
        .expect("the container's status");
    assert_eq!(own.exit_code, 4);
    assert_eq!(s.engine.exit_watchers(), 0, "the watcher ended at the exit");
    remove_pod(&mut s.runtime, &pod).await;
}
