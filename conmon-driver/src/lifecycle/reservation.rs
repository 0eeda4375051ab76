//! One state-changing call per container id at a time, within one driver.
//!
//! A create checks that the runtime does not know the id, then replaces the
//! id's files and launches conmon; a failed create undoes what it launched.
//! Two creates of one id running together would each see the id free, and
//! the loser's undo would then remove the winner's files and container. So
//! a create holds its id's reservation from before that check until it
//! succeeded or its undo finished, including an undo that runs in the
//! background after the caller dropped the create's future. A second create
//! of the id waits for the first (bounded), then makes the usual check and
//! finds the container, or the id free again after an undo.
//!
//! `start`, `delete`, `pause`, `resume`, `update_resources` and
//! `checkpoint` hold the same reservation, shared with the runtime command
//! they run: that command finishes in a task of its own when the caller
//! gives up, and keeps the id reserved until it ended. A retry after a
//! cancel therefore waits for the first command instead of racing it (two
//! `runc start`s of one container, a `delete` under a `start`), then meets
//! the state the first one left. `kill` takes no reservation: a signal must
//! never wait behind a slow call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use runtime_api::{ContainerId, RuntimeError};
use tokio::sync::OwnedMutexGuard;

/// The ids with a call in progress, each with the lock the calls queue
/// on.
#[derive(Debug, Default)]
pub(crate) struct IdReservations {
    ids: Mutex<HashMap<ContainerId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held reservation of one id; dropping it lets the next create of the
/// id proceed.
#[derive(Debug)]
pub(crate) struct Reservation {
    owner: Arc<IdReservations>,
    id: ContainerId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl IdReservations {
    /// Reserves `id` for `operation`, waiting up to `limit` for a call on it
    /// that is in progress (a create with its undo, a runtime command).
    /// Cancel-safe: a dropped wait leaves nothing held.
    pub(crate) async fn reserve(
        self: &Arc<Self>,
        id: &ContainerId,
        operation: &'static str,
        limit: Duration,
    ) -> Result<Reservation, RuntimeError> {
        let lock = Arc::clone(
            self.ids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id.clone())
                .or_default(),
        );
        // Declared before the wait: dropped after it, so its cleanup sees
        // the wait's clone of the lock gone.
        let mut reservation = Reservation {
            owner: Arc::clone(self),
            id: id.clone(),
            guard: None,
        };
        match tokio::time::timeout(limit, lock.lock_owned()).await {
            Ok(guard) => {
                reservation.guard = Some(guard);
                Ok(reservation)
            }
            Err(_) => Err(RuntimeError::Timeout {
                operation: format!(
                    "{operation} of container {id}: waiting for another call on it to finish"
                ),
                limit,
            }),
        }
    }

    /// How many ids have an entry (held or waited for).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut ids = self
            .owner
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map's own reference left: nobody holds or waits.
        if ids
            .get(&self.id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            ids.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }

    #[tokio::test]
    async fn a_second_reservation_of_one_id_waits_for_the_first() {
        let reservations = Arc::new(IdReservations::default());
        let first = reservations
            .reserve(&id("a"), "create", Duration::from_secs(5))
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let reservations = Arc::clone(&reservations);
            async move {
                reservations
                    .reserve(&id("a"), "create", Duration::from_secs(5))
                    .await
                    .map(drop)
            }
        });
        // Another id is free meanwhile.
        let other = reservations
            .reserve(&id("b"), "create", Duration::from_millis(10))
            .await
            .unwrap();
        drop(other);
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(reservations.len(), 0, "entries are removed once unused");
    }

    #[tokio::test]
    async fn a_wait_past_its_limit_is_a_timeout_naming_the_id() {
        let reservations = Arc::new(IdReservations::default());
        let _held = reservations
            .reserve(&id("busy"), "start", Duration::from_secs(5))
            .await
            .unwrap();
        let err = reservations
            .reserve(&id("busy"), "start", Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Timeout { operation, .. }
                if operation.contains("busy") && operation.starts_with("start")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_dropped_wait_holds_nothing() {
        let reservations = Arc::new(IdReservations::default());
        let held = reservations
            .reserve(&id("c"), "create", Duration::from_secs(5))
            .await
            .unwrap();
        let c = id("c");
        let wait = reservations.reserve(&c, "create", Duration::from_secs(5));
        // Polled once, then dropped while queued.
        assert!(tokio::time::timeout(Duration::from_millis(10), wait)
            .await
            .is_err());
        drop(held);
        assert_eq!(reservations.len(), 0);
        reservations
            .reserve(&id("c"), "create", Duration::from_millis(10))
            .await
            .unwrap();
    }
}
