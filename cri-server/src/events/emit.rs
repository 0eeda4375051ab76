//! The engine's side of the events: building an event with the pod's
//! and containers' statuses, sending it, and the exit watchers that send
//! STOPPED for a container whose process ends on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use runtime_api::{ContainerStatus, RuntimeError};
use tokio_stream::wrappers::BroadcastStream;

use super::hub::{lock, EventKind, EventStream};
use crate::engine::{now_nanos, Engine, PodRecord};

/// How long one `wait` of an exit watcher lasts before it is re-armed.
const WAIT_SLICE: Duration = Duration::from_secs(3600);

impl Engine {
    /// A new subscription to the lifecycle events from now on.
    pub fn subscribe_events(&self) -> EventStream {
        EventStream {
            inner: BroadcastStream::new(self.events().sender.subscribe()),
            ended: false,
        }
    }

    /// How many exit watchers run (one per started container not yet
    /// exited or removed).
    pub fn exit_watchers(&self) -> usize {
        lock(&self.events().watchers).len()
    }

    /// How many subscriptions are open (a client that went away is
    /// dropped with its stream).
    pub fn event_subscribers(&self) -> usize {
        self.events().sender.receiver_count()
    }

    /// The statuses of `pod_id`'s containers, for an event.
    async fn pod_container_statuses(&self, pod_id: &str) -> Vec<cri::ContainerStatus> {
        let mut out = Vec::new();
        for c in self.containers_of(pod_id) {
            if let Ok(r) = self.container_status(&c.id, false).await {
                out.extend(r.status);
            }
        }
        out
    }

    async fn build_event(
        &self,
        container_id: &str,
        pod_id: &str,
        kind: EventKind,
        pod_fallback: Option<&PodRecord>,
    ) -> cri::ContainerEventResponse {
        let pod_status = match self.pod_status(pod_id, false).await {
            Ok(r) => r.status,
            Err(_) => pod_fallback.map(gone_pod_status),
        };
        cri::ContainerEventResponse {
            container_id: container_id.to_string(),
            container_event_type: kind as i32,
            created_at: now_nanos(),
            pod_sandbox_status: pod_status,
            containers_statuses: self.pod_container_statuses(pod_id).await,
        }
    }

    /// Sends a container event (nothing is built while nobody listens).
    pub(crate) async fn emit_container(&self, id: &str, pod_id: &str, kind: EventKind) {
        if self.events().listening() {
            let event = self.build_event(id, pod_id, kind, None).await;
            let _ = self.events().sender.send(event);
        }
    }

    /// Sends a sandbox event; `removed` is the record of a pod already
    /// removed, whose status is then built from it.
    pub(crate) async fn emit_sandbox(
        &self,
        pod_id: &str,
        kind: EventKind,
        removed: Option<&PodRecord>,
    ) {
        if self.events().listening() {
            let event = self.build_event(pod_id, pod_id, kind, removed).await;
            let _ = self.events().sender.send(event);
        }
    }

    /// Sends container `id`'s STOPPED event unless it was sent since the
    /// container started.
    pub(crate) async fn emit_container_stopped(&self, id: &str, pod_id: &str) {
        let event = if self.events().listening() {
            Some(
                self.build_event(id, pod_id, EventKind::ContainerStoppedEvent, None)
                    .await,
            )
        } else {
            None
        };
        // Taking the mark and sending happen without an await between, so
        // an aborted watcher either sent its event or left the mark.
        if lock(&self.events().running).remove(id) {
            if let Some(event) = event {
                let _ = self.events().sender.send(event);
            }
        }
    }

    /// Watches started container `id` for its exit, to send STOPPED when
    /// its process ends on its own. The task ends at the exit, when the
    /// container is removed, or when the engine is dropped.
    pub fn watch_exit(self: &Arc<Self>, id: &str) {
        let Ok(c) = self.container(id) else {
            return;
        };
        let Ok(runtime) = self.runtime(&c.handler) else {
            return;
        };
        let engine = Arc::downgrade(self);
        let id = id.to_string();
        // Held while spawning, so the task cannot finish (and forget
        // itself) before it is listed.
        let mut watchers = lock(&self.events().watchers);
        if watchers.contains_key(&id) {
            return;
        }
        let key = id.clone();
        let task = tokio::spawn(async move {
            let exited = loop {
                let began = Instant::now();
                let waited = tokio::time::timeout(
                    WAIT_SLICE + Duration::from_secs(60),
                    runtime.wait(&c.description, WAIT_SLICE),
                )
                .await;
                match waited {
                    Ok(Ok(_)) => break true,
                    // A long wait ran out: wait again.
                    Ok(Err(RuntimeError::Timeout { .. })) | Err(_)
                        if began.elapsed() >= WAIT_SLICE / 2 => {}
                    Ok(Err(e)) => {
                        tracing::debug!(container = %id, error = %e, "exit watcher ends without an exit");
                        break false;
                    }
                    Err(_) => break false,
                }
            };
            if let Some(engine) = engine.upgrade() {
                lock(&engine.events().watchers).remove(&id);
                if exited {
                    engine.emit_container_stopped(&id, &c.pod_id).await;
                }
            }
        });
        watchers.insert(key, task.abort_handle());
    }

    /// Arms the exit watcher of every container taken back from an
    /// earlier server's records ([`Engine::recovery`]) that still runs:
    /// it sends STOPPED when it ends, as if this server had started it.
    /// (One that ended while no server ran reads exited; one never
    /// started is watched from its start.) [`serve`](crate::serve())
    /// calls it before it accepts a call, so that no exit goes unseen; a
    /// container ending between its state and its watcher is seen by the
    /// watcher's first wait.
    pub async fn watch_recovered(self: &Arc<Self>) {
        for id in &self.recovery().containers {
            let Ok(c) = self.container(id) else {
                continue;
            };
            let Ok(runtime) = self.runtime(&c.handler) else {
                continue;
            };
            let state =
                tokio::time::timeout(self.config().timeouts.call, runtime.status(&c.description))
                    .await;
            match state {
                Ok(Ok(state))
                    if matches!(
                        state.status,
                        ContainerStatus::Running | ContainerStatus::Paused
                    ) =>
                {
                    self.events().started(id);
                    self.watch_exit(id);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(container = %id, error = %e, "no exit watcher for a container taken back")
                }
                Err(_) => {
                    tracing::warn!(container = %id, "no exit watcher for a container taken back: its state did not come")
                }
            }
        }
    }
}

/// The status of a pod already removed, from its record.
fn gone_pod_status(pod: &PodRecord) -> cri::PodSandboxStatus {
    cri::PodSandboxStatus {
        id: pod.id.clone(),
        metadata: pod.config.metadata.clone(),
        state: cri::PodSandboxState::SandboxNotready as i32,
        created_at: pod.created_at,
        labels: pod.config.labels.clone(),
        annotations: pod.config.annotations.clone(),
        runtime_handler: pod.handler.clone(),
        ..Default::default()
    }
}
