//! The mock's lifecycle in one table: which phase a container moves to on
//! each event, and which events it refuses in which phase. Every
//! [`MockRuntime`](super::MockRuntime) method goes through [`next`], so the
//! refusals it answers are exactly the typed errors of the trait's
//! contract table, and a change of behaviour is a change of this table.

use runtime_api::{ContainerId, ContainerStatus, RuntimeError};

/// Where a container is in its life, as the mock tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Created, its process not started.
    Created,
    /// Its process runs.
    Running,
    /// Frozen.
    Paused,
    /// Its process exited; the code is known.
    Exited,
    /// Deleted: the mock forgets it.
    Gone,
}

impl Phase {
    /// The status `status` reports.
    pub(crate) fn status(self) -> ContainerStatus {
        match self {
            Phase::Created => ContainerStatus::Created,
            Phase::Running => ContainerStatus::Running,
            Phase::Paused => ContainerStatus::Paused,
            // Gone never reaches status: the container is removed first.
            Phase::Exited | Phase::Gone => ContainerStatus::Exited,
        }
    }
}

/// Something that happens to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// `start`.
    Start,
    /// `kill` (or `stop`) sends a signal.
    Signal,
    /// The process exited on its own or of a signal.
    Exit,
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `delete`.
    Delete,
    /// `exec` or `exec_detached` starts a process inside.
    Exec,
    /// `checkpoint`.
    Checkpoint,
    /// `attach`, `resize_terminal` or `reopen_log`: reaching the
    /// container's streams.
    Streams,
    /// `update_resources`.
    Update,
}

/// Why an event is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// [`RuntimeError::ContainerNotRunning`].
    NotRunning,
    /// [`RuntimeError::ContainerRunning`].
    Running,
    /// [`RuntimeError::InvalidArgument`] with this reason (what runc says
    /// for requests that make no sense in the phase).
    Invalid(&'static str),
}

impl Refusal {
    /// The typed error for container `id`.
    pub(crate) fn into_error(self, id: &ContainerId) -> RuntimeError {
        let id = id.to_string();
        match self {
            Refusal::NotRunning => RuntimeError::ContainerNotRunning { id },
            Refusal::Running => RuntimeError::ContainerRunning { id },
            Refusal::Invalid(reason) => {
                RuntimeError::InvalidArgument(format!("container {id} {reason}"))
            }
        }
    }
}

/// The phase after `event` in phase `from`, or why it is refused.
///
/// A signal to a created container kills it before its program ran (as
/// with runc, whose init waits for `start` and dies of the signal): it
/// exits without output. A signal to a paused container is delivered at
/// once; the mock does not hold signals back until `resume`.
pub(crate) fn next(from: Phase, event: Event) -> Result<Phase, Refusal> {
    use Event::*;
    use Phase::*;
    match (from, event) {
        (Gone, _) => Err(Refusal::Invalid("was deleted")),

        (Created, Start) => Ok(Running),
        (Running | Paused, Start) => Err(Refusal::Invalid("was started already")),
        (Exited, Start) => Err(Refusal::NotRunning),

        (Created, Signal) => Ok(Exited),
        (Running | Paused, Signal) => Ok(from),
        (Exited, Signal) => Err(Refusal::NotRunning),

        (Created | Running | Paused | Exited, Exit) => Ok(Exited),

        (Running, Pause) => Ok(Paused),
        (Paused, Pause) => Err(Refusal::Invalid("is paused already")),
        (Created | Exited, Pause) => Err(Refusal::NotRunning),

        (Paused, Resume) => Ok(Running),
        (Running, Resume) => Err(Refusal::Invalid("is not paused")),
        (Created | Exited, Resume) => Err(Refusal::NotRunning),

        (Created | Exited, Delete) => Ok(Gone),
        (Running | Paused, Delete) => Err(Refusal::Running),

        (Running, Exec | Checkpoint) => Ok(Running),
        (Created | Paused | Exited, Exec | Checkpoint) => Err(Refusal::NotRunning),

        (Created | Running | Paused, Streams | Update) => Ok(from),
        (Exited, Streams | Update) => Err(Refusal::NotRunning),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_table_holds() {
        use Event::*;
        use Phase::*;
        let ok = |from, event, to| assert_eq!(next(from, event), Ok(to), "{from:?} {event:?}");
        let refused =
            |from, event, why| assert_eq!(next(from, event), Err(why), "{from:?} {event:?}");
        ok(Created, Start, Running);
        ok(Running, Pause, Paused);
        ok(Paused, Resume, Running);
        ok(Running, Exit, Exited);
        ok(Paused, Exit, Exited);
        ok(Created, Signal, Exited);
        ok(Created, Delete, Gone);
        ok(Exited, Delete, Gone);
        for event in [Signal, Exec, Pause, Resume, Start, Streams, Update] {
            refused(Exited, event, Refusal::NotRunning);
        }
        for phase in [Running, Paused] {
            refused(phase, Delete, Refusal::Running);
        }
        refused(Created, Exec, Refusal::NotRunning);
    }
}
