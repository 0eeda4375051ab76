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

mod emit;
pub(crate) mod hub;

pub use hub::{EventKind, EventStream, EventsLagged, EVENT_BUFFER};
