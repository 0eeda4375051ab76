//! The server's records and the operations behind the CRI calls, on top of
//! the handlers' `Arc<dyn OciRuntime>`. The runtime keeps no list of
//! containers, so the engine does: pods (with their infra container) and
//! containers, in memory, with the names the kubelet reserves.

mod containers;
mod pods;
mod recovery;
mod store;

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_cri::v1 as cri;
use runtime_api::{ContainerDescription, OciRuntime};

use crate::config::{RuntimeHandler, ServerConfig};
use crate::error::{CriError, Result};
pub(crate) use crate::ids::new_id;
use crate::images::{ImageRecord, ImageStore};
use crate::spec::PodNamespaces;
use crate::streaming::state::Streams;

pub use containers::ExecOutput;
pub use recovery::Recovery;

/// A pod sandbox the server created.
#[derive(Debug, Clone)]
pub struct PodRecord {
    /// The sandbox id.
    pub id: String,
    /// The kubelet's configuration.
    pub config: cri::PodSandboxConfig,
    /// The runtime handler's name.
    pub handler: String,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
    /// The infra container.
    pub infra: ContainerDescription,
    /// The infra container's init pid, whose namespaces containers join.
    pub infra_pid: i32,
    /// The namespaces the infra container owns.
    pub namespaces: PodNamespaces,
    /// `<state>/pods/<id>`.
    pub dir: PathBuf,
    /// Whether `StopPodSandbox` ran.
    pub stopped: bool,
}

/// A container the server created.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    /// The container id.
    pub id: String,
    /// Its pod sandbox.
    pub pod_id: String,
    /// The kubelet's configuration.
    pub config: cri::ContainerConfig,
    /// The image it was created from.
    pub image: ImageRecord,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
    /// What the runtime knows it by.
    pub description: ContainerDescription,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// `<state>/containers/<id>`.
    pub dir: PathBuf,
    /// The runtime handler's name (the pod's).
    pub handler: String,
}

#[derive(Debug, Default)]
struct Records {
    pods: HashMap<String, PodRecord>,
    containers: HashMap<String, ContainerRecord>,
    /// Reserved names (pod and container metadata keys) and their holder.
    names: HashMap<String, String>,
}

/// The server's state and operations; the gRPC services call into it.
pub struct Engine {
    config: ServerConfig,
    images: ImageStore,
    records: Mutex<Records>,
    recovery: Recovery,
    events: crate::events::hub::EventHub,
    sampler: crate::stats::Sampler,
    streams: Streams,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("state_dir", &self.config.state_dir)
            .field("handlers", &self.config.handlers)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Validates `config`, creates the directories, opens the image store
    /// and takes back the pods and containers recorded under the state
    /// directory by an earlier server ([`recovery`](Self::recovery) says
    /// what was found).
    pub fn new(config: ServerConfig) -> Result<Self> {
        config.validate()?;
        for dir in [
            config.state_dir.join("pods"),
            config.state_dir.join("containers"),
            config.run_dir.clone(),
        ] {
            fs::create_dir_all(&dir)
                .map_err(CriError::io(format!("creating {}", dir.display())))?;
        }
        let images = ImageStore::open(config.state_dir.join("images"))?;
        let mut engine = Self {
            streams: Streams::new(&config.streaming),
            config,
            images,
            records: Mutex::new(Records::default()),
            recovery: Recovery::default(),
            events: crate::events::hub::EventHub::default(),
            sampler: crate::stats::Sampler::default(),
        };
        engine.recovery = engine.recover()?;
        Ok(engine)
    }

    /// What [`new`](Self::new) found of an earlier server's pods and
    /// containers.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The lifecycle event channel and exit watchers.
    pub(crate) fn events(&self) -> &crate::events::hub::EventHub {
        &self.events
    }

    /// The previous CPU samples, for nanocores.
    pub(crate) fn sampler(&self) -> &crate::stats::Sampler {
        &self.sampler
    }

    /// Every container's record, oldest first.
    pub(crate) fn container_records(&self) -> Vec<ContainerRecord> {
        let mut all: Vec<ContainerRecord> = self.records().containers.values().cloned().collect();
        all.sort_by_key(|c| c.created_at);
        all
    }

    /// Every pod's record, oldest first.
    pub(crate) fn pod_records(&self) -> Vec<PodRecord> {
        let mut all: Vec<PodRecord> = self.records().pods.values().cloned().collect();
        all.sort_by_key(|p| p.created_at);
        all
    }

    /// The streaming sessions and their one-time tokens.
    pub(crate) fn streams(&self) -> &Streams {
        &self.streams
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // Every change under the lock is a single insert or remove, so a
        // panic elsewhere cannot leave the maps half-changed.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn handler(&self, name: &str) -> Result<&RuntimeHandler> {
        let name = if name.is_empty() {
            self.config.default_handler.as_str()
        } else {
            name
        };
        self.config
            .handlers
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .config
                    .handlers
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect();
                CriError::InvalidArgument(format!(
                    "runtime handler {name:?} is not configured (configured: {})",
                    known.join(", ")
                ))
            })
    }

    pub(crate) fn runtime(&self, handler: &str) -> Result<Arc<dyn OciRuntime>> {
        Ok(self.handler(handler)?.runtime.clone())
    }

    /// Reserves `name` for `id`; a name held by another id is refused.
    fn reserve(&self, name: &str, id: &str, kind: &'static str) -> Result<()> {
        let mut records = self.records();
        if let Some(holder) = records.names.get(name) {
            return Err(CriError::NameReserved {
                name: name.to_string(),
                kind,
                id: holder.clone(),
            });
        }
        records.names.insert(name.to_string(), id.to_string());
        Ok(())
    }

    fn release(&self, name: &str, id: &str) {
        let mut records = self.records();
        if records.names.get(name).map(String::as_str) == Some(id) {
            records.names.remove(name);
        }
    }

    fn runtime_dir(&self, id: &str) -> PathBuf {
        self.config.run_dir.join(id)
    }
}

/// Runs `call` for at most `limit`; past it, a `DeadlineExceeded` naming
/// `what`.
pub(crate) async fn bounded<T>(
    what: impl Into<String>,
    limit: Duration,
    call: impl Future<Output = Result<T, runtime_api::RuntimeError>>,
) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(CriError::from),
        Err(_) => Err(CriError::DeadlineExceeded(format!(
            "{} did not finish within {limit:?}",
            what.into()
        ))),
    }
}

/// Nanoseconds since the epoch of `time` (0 for none).
pub(crate) fn nanos(time: Option<SystemTime>) -> i64 {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Nanoseconds since the epoch, now.
pub(crate) fn now_nanos() -> i64 {
    nanos(Some(SystemTime::now()))
}

/// Whether every pair of `selector` is among `labels`.
pub(crate) fn labels_match(
    selector: &HashMap<String, String>,
    labels: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Removes `dir` and everything under it; an absent directory is fine.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CriError::io(format!("removing {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}
