//! The exec sessions the driver launched and whose exit status nobody has
//! read yet: each keeps the sync pipe conmon reports the status on, and a
//! pidfd on its process taken while it was known to run. The registry
//! owns this state, so that launching, waiting, stopping and probing share
//! it without knowing about each other, and an entry leaves once its
//! status was read. It also holds the inotify watcher the sessions' exit
//! files are waited on through (one instance for all waits).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use runtime_api::{ContainerId, ExecSessionId};
use state_probe::PidFd;
use sync_pipe::SyncReader;

/// What the driver holds of a running exec session.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// The sync pipe: conmon 2.1 reports an exec's exit status there (and
    /// in exit files only when it can write them). Behind an async mutex so
    /// that a wait dropped half-way leaves it for the next one.
    pub(crate) sync: tokio::sync::Mutex<SyncReader>,
    /// The exec'd process, pinned while it was known to be alive, so that
    /// stop and liveness never reach a recycled pid. Where the runtime
    /// runs the process in a sandbox of its own, this is the host-side
    /// process standing for it (runsc's `exec`, which ends with it).
    pub(crate) process: Option<PidFd>,
    /// The process inside the runtime's sandbox, when the runtime runs it
    /// there (runsc): signals for it go through `RUNTIME kill --pid`.
    pub(crate) sandbox: Option<SandboxProcess>,
    /// Set when the session's own timeout ran out and the driver killed
    /// the process: its end is then a timeout, not an exit code.
    pub(crate) timed_out: AtomicBool,
}

impl SessionState {
    /// A session reporting on `sync`, whose process is `process` (and
    /// `sandbox` inside the runtime's sandbox).
    pub(crate) fn new(
        sync: SyncReader,
        process: Option<PidFd>,
        sandbox: Option<SandboxProcess>,
    ) -> Self {
        Self {
            sync: tokio::sync::Mutex::new(sync),
            process,
            sandbox,
            timed_out: AtomicBool::new(false),
        }
    }
}

/// An exec'd process as the runtime's sandbox knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxProcess {
    /// The container the process runs in.
    pub(crate) container: ContainerId,
    /// Its pid inside the sandbox (runsc's `--internal-pid-file`).
    pub(crate) pid: i32,
}

/// Sessions whose exit status nobody has read yet, by session id.
#[derive(Debug, Default)]
pub(crate) struct ExecRegistry {
    sessions: Mutex<HashMap<ExecSessionId, Arc<SessionState>>>,
    exit_watcher: state_probe::ExitWatcher,
}

impl ExecRegistry {
    /// Records a session that was just launched; returns its shared state.
    pub(crate) fn insert(&self, id: ExecSessionId, state: SessionState) -> Arc<SessionState> {
        let state = Arc::new(state);
        self.lock().insert(id, Arc::clone(&state));
        state
    }

    /// The state of a session whose status was not read yet.
    pub(crate) fn get(&self, id: &ExecSessionId) -> Option<Arc<SessionState>> {
        self.lock().get(id).cloned()
    }

    /// Forgets a session once its status is known.
    pub(crate) fn remove(&self, id: &ExecSessionId) {
        self.lock().remove(id);
    }

    /// The watcher every wait on a session's exit file shares.
    pub(crate) fn exit_watcher(&self) -> &state_probe::ExitWatcher {
        &self.exit_watcher
    }

    /// How many sessions wait for their status to be read.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ExecSessionId, Arc<SessionState>>> {
        // Every critical section is one insert, lookup or removal: a panic
        // elsewhere cannot leave the map half-changed.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_come_and_go_by_id() {
        let registry = ExecRegistry::default();
        let (parent, _child) = sync_pipe::seqpacket_pair().unwrap();
        let id = ExecSessionId::new("s1").unwrap();
        let sync = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { SyncReader::new(parent).unwrap() });
        registry.insert(id.clone(), SessionState::new(sync, None, None));
        assert_eq!(registry.len(), 1);
        assert!(registry.get(&id).is_some());
        registry.remove(&id);
        assert!(registry.get(&id).is_none());
        assert_eq!(registry.len(), 0);
    }
}
