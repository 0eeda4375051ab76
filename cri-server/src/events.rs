//! `GetContainerEvents`: the lifecycle events of containers and pod
//! sandboxes (CREATED, STARTED, STOPPED, DELETED), each with the pod's
//! status and the statuses of the pod's containers, as the CRI message
//! carries them. A sandbox's events name the pod sandbox id as their
//! container id (the infra container's id is the pod's).
//!
//! Events come from the engine's operations and, for a container whose
//! process ends on its own, from one task per started container awaiting
//! `OciRuntime::wait` (re-armed after each long wait; aborted when the
//! container is removed or the engine dropped). They go out on a
//! `tokio::sync::broadcast` channel: a subscriber that falls more than
//! [`EVENT_BUFFER`] events behind receives [`EventsLagged`] and its
//! stream ends, so it resubscribes and lists instead of hanging or
//! silently missing events. No task is kept per subscriber; building an
//! event's statuses is skipped while nobody subscribes.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use runtime_api::{ContainerStatus, RuntimeError};
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::Stream;

use crate::engine::{now_nanos, Engine, PodRecord};

/// Events kept for a slow subscriber before it is told it lagged.
pub const EVENT_BUFFER: usize = 1024;

/// How long one `wait` of an exit watcher lasts before it is re-armed.
const WAIT_SLICE: Duration = Duration::from_secs(3600);

/// A subscriber fell behind and missed events; its stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event subscriber fell {0} events behind and missed them; subscribe again and list the containers to catch up")]
pub struct EventsLagged(pub u64);

/// The lifecycle event kinds.
pub use cri::ContainerEventType as EventKind;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The broadcast channel, the exit watchers and which started containers
/// have not had their STOPPED event yet.
#[derive(Debug)]
pub(crate) struct EventHub {
    sender: broadcast::Sender<cri::ContainerEventResponse>,
    watchers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    running: Mutex<HashSet<String>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(EVENT_BUFFER).0,
            watchers: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
        }
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        for (_, watcher) in lock(&self.watchers).drain() {
            watcher.abort();
        }
    }
}

impl EventHub {
    fn listening(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Marks `id` started: its next stop is reported once.
    pub(crate) fn started(&self, id: &str) {
        lock(&self.running).insert(id.to_string());
    }

    /// Aborts `id`'s exit watcher, if any.
    pub(crate) fn unwatch(&self, id: &str) {
        if let Some(watcher) = lock(&self.watchers).remove(id) {
            watcher.abort();
        }
    }
}

/// The stream of events one subscriber receives.
pub struct EventStream {
    inner: BroadcastStream<cri::ContainerEventResponse>,
    ended: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = Result<cri::ContainerEventResponse, EventsLagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                self.ended = true;
                Poll::Ready(Some(Err(EventsLagged(n))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

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
        let Ok(c) = self.container_record(id) else {
            return;
        };
        let Ok(runtime) = self.runtime_of(&c.handler) else {
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
            let Ok(c) = self.container_record(id) else {
                continue;
            };
            let Ok(runtime) = self.runtime_of(&c.handler) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn event(id: &str) -> cri::ContainerEventResponse {
        cri::ContainerEventResponse {
            container_id: id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_and_its_stream_ends() {
        let (sender, receiver) = broadcast::channel(2);
        let mut stream = EventStream {
            inner: BroadcastStream::new(receiver),
            ended: false,
        };
        for id in ["a", "b", "c", "d"] {
            sender.send(event(id)).unwrap();
        }
        assert_eq!(stream.next().await, Some(Err(EventsLagged(2))));
        assert_eq!(stream.next().await, None, "no hang after the lag");
    }

    #[tokio::test]
    async fn a_subscriber_in_time_sees_every_event_then_the_end() {
        let (sender, receiver) = broadcast::channel(8);
        let mut stream = EventStream {
            inner: BroadcastStream::new(receiver),
            ended: false,
        };
        sender.send(event("a")).unwrap();
        sender.send(event("b")).unwrap();
        drop(sender);
        let ids: Vec<String> = (&mut stream)
            .map(|e| e.unwrap().container_id)
            .collect()
            .await;
        assert_eq!(ids, ["a", "b"]);
    }
}
