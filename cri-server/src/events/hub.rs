//! The events' plumbing, apart from the engine: the broadcast channel,
//! the exit watchers' handles, which started containers still owe their
//! STOPPED event, and the stream one subscriber reads (ended after a
//! lag rather than silently skipping).

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use k8s_cri::v1 as cri;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::Stream;

/// Events kept for a slow subscriber before it is told it lagged.
pub const EVENT_BUFFER: usize = 1024;

/// A subscriber fell behind and missed events; its stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event subscriber fell {0} events behind and missed them; subscribe again and list the containers to catch up")]
pub struct EventsLagged(pub u64);

/// The lifecycle event kinds.
pub use cri::ContainerEventType as EventKind;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The broadcast channel, the exit watchers and which started containers
/// have not had their STOPPED event yet.
#[derive(Debug)]
pub(crate) struct EventHub {
    pub(super) sender: broadcast::Sender<cri::ContainerEventResponse>,
    pub(super) watchers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    pub(super) running: Mutex<HashSet<String>>,
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
    pub(super) fn listening(&self) -> bool {
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
    pub(super) inner: BroadcastStream<cri::ContainerEventResponse>,
    pub(super) ended: bool,
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
