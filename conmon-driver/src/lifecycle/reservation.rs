//! One create per container id at a time, within one driver.
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use runtime_api::{ContainerId, RuntimeError};
use tokio::sync::OwnedMutexGuard;

/// The ids whose create is in progress, each with the lock its creates
/// queue on.
#[derive(Debug, Default)]
pub(crate) struct CreateReservations {
    ids: Mutex<HashMap<ContainerId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held reservation of one id; dropping it lets the next create of the
/// id proceed.
#[derive(Debug)]
pub(crate) struct Reservation {
    owner: Arc<CreateReservations>,
    id: ContainerId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl CreateReservations {
    /// Reserves `id`, waiting up to `limit` for a create of it that is in
    /// progress (its launch and any undo). Cancel-safe: a dropped wait
    /// leaves nothing held.
    pub(crate) async fn reserve(
        self: &Arc<Self>,
        id: &ContainerId,
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
                operation: format!("waiting for another create of container {id} to finish"),
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
        let reservations = Arc::new(CreateReservations::default());
        let first = reservations
            .reserve(&id("a"), Duration::from_secs(5))
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let reservations = Arc::clone(&reservations);
            async move {
                reservations
                    .reserve(&id("a"), Duration::from_secs(5))
                    .await
                    .map(drop)
            }
        });
        // Another id is free meanwhile.
        let other = reservations
            .reserve(&id("b"), Duration::from_millis(10))
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
        let reservations = Arc::new(CreateReservations::default());
        let _held = reservations
            .reserve(&id("busy"), Duration::from_secs(5))
            .await
            .unwrap();
        let err = reservations
            .reserve(&id("busy"), Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Timeout { operation, .. } if operation.contains("busy")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_dropped_wait_holds_nothing() {
        let reservations = Arc::new(CreateReservations::default());
        let held = reservations
            .reserve(&id("c"), Duration::from_secs(5))
            .await
            .unwrap();
        let c = id("c");
        let wait = reservations.reserve(&c, Duration::from_secs(5));
        // Polled once, then dropped while queued.
        assert!(tokio::time::timeout(Duration::from_millis(10), wait)
            .await
            .is_err());
        drop(held);
        assert_eq!(reservations.len(), 0);
        reservations
            .reserve(&id("c"), Duration::from_millis(10))
            .await
            .unwrap();
    }
}
