//! Finding the server's pods and containers again after a restart. The
//! records kept by [`store`](super::store) are read back, runtime
//! descriptions are derived from them as at creation, and names are
//! reserved again. Nothing is asked of the runtime here: live state and
//! exit codes (of containers that exited while the server was down) come
//! from the runtime at each call, as for any container, since conmon kept
//! the containers running and wrote their exit files meanwhile.

use std::path::PathBuf;

use super::pods::pod_name_key;
use super::store::{self, StoredContainer, StoredPod};
use super::{ContainerRecord, Engine, PodRecord};
use crate::error::Result;
use crate::spec::PodNamespaces;

/// What a server found of its previous life when it opened its state
/// directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Pods found again, by id.
    pub pods: Vec<String>,
    /// Containers found again, by id.
    pub containers: Vec<String>,
    /// Directories of creations a crash interrupted before the runtime was
    /// asked for anything; they were removed.
    pub removed: Vec<PathBuf>,
    /// Records that were not taken back, each with the reason (unreadable,
    /// of an unknown handler or pod); their files are left for the
    /// operator.
    pub skipped: Vec<(PathBuf, String)>,
}

impl Engine {
    /// Reads the records under the state directory into memory.
    pub(super) fn recover(&self) -> Result<Recovery> {
        let mut report = Recovery::default();
        let pods_dir = self.config.state_dir.join("pods");
        let pods = store::load(&pods_dir, |p: &StoredPod| &p.id, |p| p.version)?;
        report.removed.extend(pods.removed);
        report.skipped.extend(pods.unreadable);
        for stored in pods.records {
            let dir = pods_dir.join(&stored.id);
            match self.pod_from(stored, dir.clone()) {
                Ok(pod) => {
                    let key = pod
                        .config
                        .metadata
                        .as_ref()
                        .map(pod_name_key)
                        .unwrap_or_default();
                    let mut records = self.records();
                    records.names.insert(key, pod.id.clone());
                    report.pods.push(pod.id.clone());
                    records.pods.insert(pod.id.clone(), pod);
                }
                Err(e) => report.skipped.push((dir, e.to_string())),
            }
        }

        let containers_dir = self.config.state_dir.join("containers");
        let containers = store::load(&containers_dir, |c: &StoredContainer| &c.id, |c| c.version)?;
        report.removed.extend(containers.removed);
        report.skipped.extend(containers.unreadable);
        for stored in containers.records {
            let dir = containers_dir.join(&stored.id);
            match self.container_from(stored, dir.clone()) {
                Ok(container) => {
                    let mut records = self.records();
                    records.names.insert(
                        container.description.name().to_string(),
                        container.id.clone(),
                    );
                    report.containers.push(container.id.clone());
                    records.containers.insert(container.id.clone(), container);
                }
                Err(e) => report.skipped.push((dir, e.to_string())),
            }
        }
        report.pods.sort();
        report.containers.sort();
        for (path, why) in &report.skipped {
            tracing::warn!(path = %path.display(), reason = %why, "a record was not taken back");
        }
        Ok(report)
    }

    fn pod_from(&self, stored: StoredPod, dir: PathBuf) -> Result<PodRecord> {
        let handler = self.handler(&stored.handler)?.clone();
        let infra = self.infra_description(&stored.id, &stored.config, &handler, &dir)?;
        let options = stored
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref());
        Ok(PodRecord {
            namespaces: PodNamespaces::for_infra(options),
            id: stored.id,
            handler: stored.handler,
            created_at: stored.created_at,
            infra,
            infra_pid: stored.infra_pid,
            dir,
            // A pod whose infra container never ran (the server stopped
            // while creating it) is not ready: the kubelet stops and
            // removes it.
            stopped: stored.stopped || stored.infra_pid <= 0,
            config: stored.config,
        })
    }

    fn container_from(&self, stored: StoredContainer, dir: PathBuf) -> Result<ContainerRecord> {
        let pod = self.pod(&stored.pod_id)?;
        let handler = self.handler(&stored.handler)?.clone();
        let description = self.container_description(
            &stored.id,
            &pod,
            &stored.config,
            &stored.image,
            &stored.log_path,
            &handler,
            &dir,
        )?;
        Ok(ContainerRecord {
            id: stored.id,
            pod_id: stored.pod_id,
            config: stored.config,
            image: stored.image,
            created_at: stored.created_at,
            description,
            log_path: stored.log_path,
            dir,
            handler: stored.handler,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;
    use std::sync::Arc;

    use k8s_cri::v1 as cri;

    use super::super::store::{save, StoredContainer, StoredPod, RECORD_FILE};
    use crate::config::{RuntimeHandler, ServerConfig};
    use crate::error::CriError;
    use crate::images::ImageRecord;
    use crate::Engine;

    fn pod_config(name: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    fn container_config(name: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            labels: HashMap::from([("app".to_string(), name.to_string())]),
            ..Default::default()
        }
    }

    fn image() -> ImageRecord {
        ImageRecord {
            id: format!("sha256:{}", "a".repeat(64)),
            names: vec!["docker.io/library/busybox:1.36".into()],
            manifest_digest: format!("sha256:{}", "b".repeat(64)),
            size: 1,
            layers: Vec::new(),
            config: Default::default(),
        }
    }

    /// Records as a crash at each step of a pod's and a container's
    /// creation leaves them, plus records the server cannot take back.
    #[tokio::test]
    async fn records_left_by_a_crash_are_taken_back_or_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let pods = state.join("pods");
        let containers = state.join("containers");
        let record = |parent: &std::path::Path, id: &str| {
            let d = parent.join(id);
            fs::create_dir_all(&d).unwrap();
            d
        };
        // Crashed after the record, before the infra container ran.
        save(
            &record(&pods, "p-starting"),
            &StoredPod::new("p-starting", &pod_config("web"), "mock", 5, 0, false),
        )
        .unwrap();
        // Crashed before the record: nothing of the runtime exists yet.
        fs::create_dir_all(record(&pods, "p-unrecorded").join("bundle/rootfs")).unwrap();
        // A handler this server no longer has.
        save(
            &record(&pods, "p-gone-handler"),
            &StoredPod::new("p-gone-handler", &pod_config("db"), "gone", 6, 77, false),
        )
        .unwrap();
        save(
            &record(&containers, "c-in-pod"),
            &StoredContainer::new(
                "c-in-pod",
                "p-starting",
                &container_config("app"),
                &image(),
                8,
                &dir.path().join("app.log"),
                "mock",
            ),
        )
        .unwrap();
        save(
            &record(&containers, "c-orphan"),
            &StoredContainer::new(
                "c-orphan",
                "p-missing",
                &container_config("lost"),
                &image(),
                9,
                &dir.path().join("lost.log"),
                "mock",
            ),
        )
        .unwrap();

        let runtime = Arc::new(testkit::mock::MockRuntime::new());
        let config = ServerConfig::new(
            &state,
            dir.path().join("run"),
            RuntimeHandler::new("mock", runtime.clone()),
        );
        let engine = Engine::new(config).unwrap();
        let found = engine.recovery();
        assert_eq!(found.pods, vec!["p-starting".to_string()]);
        assert_eq!(found.containers, vec!["c-in-pod".to_string()]);
        assert_eq!(found.removed, vec![pods.join("p-unrecorded")]);
        assert!(!pods.join("p-unrecorded").exists());
        let mut skipped: Vec<_> = found.skipped.iter().map(|(p, _)| p.clone()).collect();
        skipped.sort();
        assert_eq!(
            skipped,
            vec![containers.join("c-orphan"), pods.join("p-gone-handler")],
            "{:?}",
            found.skipped
        );
        assert!(pods.join("p-gone-handler").join(RECORD_FILE).exists());

        // Taken back: described as at creation, names reserved, not ready.
        let pod = engine.pod("p-starting").unwrap();
        assert!(pod.stopped);
        assert_eq!(pod.infra.name(), "k8s_POD_web_default_uid-web_0");
        assert_eq!(pod.created_at, 5);
        let status = engine.pod_status("p-starting", false).await.unwrap();
        assert_eq!(
            status.status.unwrap().state,
            cri::PodSandboxState::SandboxNotready as i32
        );
        let err = engine.reserve("k8s_POD_web_default_uid-web_0", "other", "pod sandbox");
        assert!(matches!(err, Err(CriError::NameReserved { .. })), "{err:?}");
        let listed = engine
            .list_containers(Some(cri::ContainerFilter {
                label_selector: HashMap::from([("app".to_string(), "app".to_string())]),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].created_at, 8);
        // The runtime never created it: unknown, and removable.
        assert_eq!(
            listed[0].state,
            cri::ContainerState::ContainerUnknown as i32
        );
        engine.remove_pod("p-starting").await.unwrap();
        assert!(!pods.join("p-starting").exists());
        assert!(!containers.join("c-in-pod").exists());
        assert!(engine.pod("p-starting").is_err());
    }
}
