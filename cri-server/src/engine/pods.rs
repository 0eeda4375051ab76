//! Pod sandboxes: an infra container owning the pod's namespaces.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use k8s_cri::v1 as cri;
use runtime_api::{
    ContainerDescription, ContainerId, ContainerStatus, CreateOptions, LogDriver, RuntimeError,
    Signal,
};

use super::store::{self, StoredPod};
use super::{bounded, labels_match, new_id, now_nanos, remove_tree, Engine, PodRecord};
use crate::config::{PodNamespaceJoin, RuntimeHandler};
use crate::error::{CriError, Result};
use crate::events::hub::EventKind;
use crate::spec::{infra_spec, Join, PodNamespaces};

/// Annotation naming a container's role (`sandbox` or `container`), as
/// containerd sets it; sandboxing runtimes read it.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// Annotation naming a container's pod sandbox id.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The pod's `resolv.conf`, in its directory, when its config has DNS
/// settings.
pub(crate) const RESOLV_CONF: &str = "resolv.conf";

/// The pod markers of a container's spec (`role` is `sandbox` or
/// `container`), for handlers whose containers share the pod's
/// namespaces. An isolated handler's containers get none: runsc reads
/// them as "create this container inside that sandbox".
pub(crate) fn pod_annotations(
    join: PodNamespaceJoin,
    role: &str,
    pod_id: &str,
) -> HashMap<String, String> {
    match join {
        PodNamespaceJoin::Isolated => HashMap::new(),
        _ => HashMap::from([
            (CONTAINER_TYPE.to_string(), role.to_string()),
            (SANDBOX_ID.to_string(), pod_id.to_string()),
        ]),
    }
}

/// The cgroup parent a pod's configuration asks for.
pub(crate) fn cgroup_parent(config: &cri::PodSandboxConfig) -> Option<String> {
    config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.clone())
        .filter(|p| !p.is_empty())
}

/// The key under which a pod's name is reserved (also its infra
/// container's name).
pub(crate) fn pod_name_key(m: &cri::PodSandboxMetadata) -> String {
    format!("k8s_POD_{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

fn validate_pod_config(config: &cri::PodSandboxConfig) -> Result<&cri::PodSandboxMetadata> {
    let meta = config.metadata.as_ref().ok_or_else(|| {
        CriError::InvalidArgument("the pod sandbox config has no metadata".into())
    })?;
    for (field, value) in [
        ("name", &meta.name),
        ("namespace", &meta.namespace),
        ("uid", &meta.uid),
    ] {
        if value.is_empty() {
            return Err(CriError::InvalidArgument(format!(
                "the pod sandbox metadata has an empty {field}"
            )));
        }
        if value.contains('/') || value.contains('\0') {
            return Err(CriError::InvalidArgument(format!(
                "the pod sandbox metadata {field} {value:?} contains '/' or NUL"
            )));
        }
    }
    Ok(meta)
}

impl Engine {
    /// `RunPodSandbox`: reserves the pod's name, unpacks the pause image,
    /// creates and starts the infra container in new namespaces.
    pub async fn run_pod(
        &self,
        config: cri::PodSandboxConfig,
        handler_name: &str,
    ) -> Result<String> {
        let meta = validate_pod_config(&config)?;
        let handler = self.handler(handler_name)?.clone();
        let id = new_id()?;
        let key = pod_name_key(meta);
        self.reserve(&key, &id, "pod sandbox")?;
        let dir = self.config.state_dir.join("pods").join(&id);
        match self.create_pod(&id, &config, &handler, &dir).await {
            Ok(record) => {
                self.records().pods.insert(id.clone(), record);
                self.emit_sandbox(&id, EventKind::ContainerCreatedEvent, None)
                    .await;
                self.emit_sandbox(&id, EventKind::ContainerStartedEvent, None)
                    .await;
                Ok(id)
            }
            Err(e) => {
                if let Err(undo) = remove_tree(&dir) {
                    tracing::warn!(pod = %id, error = %undo, "cleaning up a failed pod");
                }
                let _ = remove_tree(&self.runtime_dir(&id));
                self.release(&key, &id);
                Err(e)
            }
        }
    }

    async fn create_pod(
        &self,
        id: &str,
        config: &cri::PodSandboxConfig,
        handler: &RuntimeHandler,
        dir: &Path,
    ) -> Result<PodRecord> {
        let image = self.images.require(&self.config.pause_image)?;
        let created_at = now_nanos();
        std::fs::create_dir_all(dir)
            .map_err(CriError::io(format!("creating {}", dir.display())))?;
        // Kept before the runtime is asked for anything: a crash from here
        // on leaves a record a restarted server finds.
        store::save(
            dir,
            &StoredPod::new(id, config, &handler.name, created_at, 0, false),
        )?;
        let bundle = dir.join("bundle");
        self.images.unpack(&image, &bundle.join("rootfs"))?;
        // The pod's DNS config becomes the resolv.conf its containers see.
        if let Some(dns) = &config.dns_config {
            let text = crate::spec::resolv_conf_text(dns)?;
            std::fs::write(dir.join(RESOLV_CONF), text).map_err(|source| CriError::Io {
                context: format!("writing the resolv.conf of pod {id}"),
                source,
            })?;
        }
        let args = if self.config.pause_command.is_empty() {
            let mut args = image.config.entrypoint.clone().unwrap_or_default();
            args.extend(image.config.cmd.clone().unwrap_or_default());
            args
        } else {
            self.config.pause_command.clone()
        };
        let security = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref());
        let namespaces =
            PodNamespaces::for_infra(security.and_then(|s| s.namespace_options.as_ref()));
        let annotations = pod_annotations(handler.join, "sandbox", id);
        let cgroups_path = cgroup_parent(config).map(|p| format!("{p}/cri-{id}"));
        let spec = infra_spec(config, args, &namespaces, cgroups_path, annotations)?;
        spec.save(bundle.join("config.json"))
            .map_err(|e| CriError::InvalidArgument(format!("writing the infra spec: {e}")))?;

        let infra = self.infra_description(id, config, handler, dir)?;
        let runtime = handler.runtime.clone();
        let limits = self.config.timeouts;
        let created = bounded(
            format!("creating the infra container of pod {id}"),
            limits.create,
            runtime.create(&infra, CreateOptions::default()),
        )
        .await?;
        let started = async {
            bounded("starting the infra container", limits.call, runtime.start(&infra)).await?;
            let state = bounded("the infra container's state", limits.call, runtime.status(&infra)).await?;
            match (state.status, state.pid.or(created.pid)) {
                (ContainerStatus::Running, Some(pid)) if pid > 0 => Ok(pid),
                (status, _) => Err(CriError::FailedPrecondition(format!(
                    "the infra container of pod {id} is {status} right after its start (is the pause command right?)"
                ))),
            }
        }
        .await;
        let started = match started {
            Ok(pid) => {
                let record = PodRecord {
                    id: id.to_string(),
                    config: config.clone(),
                    handler: handler.name.clone(),
                    created_at,
                    infra: infra.clone(),
                    infra_pid: pid,
                    namespaces,
                    dir: dir.to_path_buf(),
                    stopped: false,
                };
                self.persist_pod(&record).map(|()| record)
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(record) => Ok(record),
            Err(e) => {
                let _ = self.stop_and_delete(&runtime, &infra).await;
                Err(e)
            }
        }
    }

    /// What the runtime knows pod `id`'s infra container by: derived from
    /// the pod's configuration alone, so that a restarted server derives
    /// the same description again.
    pub(crate) fn infra_description(
        &self,
        id: &str,
        config: &cri::PodSandboxConfig,
        handler: &RuntimeHandler,
        dir: &Path,
    ) -> Result<ContainerDescription> {
        let meta = config.metadata.clone().unwrap_or_default();
        let mut builder = ContainerDescription::builder(
            ContainerId::new(id)?,
            dir.join("bundle"),
            self.runtime_dir(id),
        )
        .name(pod_name_key(&meta))
        .log(LogDriver::KubernetesFile, dir.join("infra.log"))
        .stop_signal(Signal::KILL);
        if let Some(parent) = cgroup_parent(config) {
            builder = builder.cgroup_parent(parent);
        }
        if let Some(hook) = &handler.describe {
            builder = hook(builder);
        }
        Ok(builder.build()?)
    }

    /// Stops (at once) and deletes a runtime container; errors are
    /// returned but an unknown container is already gone.
    pub(crate) async fn stop_and_delete(
        &self,
        runtime: &std::sync::Arc<dyn runtime_api::OciRuntime>,
        c: &ContainerDescription,
    ) -> Result<()> {
        let limits = self.config.timeouts;
        match bounded(
            format!("stopping {}", c.id()),
            limits.call + limits.kill_wait,
            runtime.stop(c, Duration::ZERO, false),
        )
        .await
        {
            Ok(()) | Err(CriError::Runtime(RuntimeError::NoSuchContainer { .. })) => {}
            Err(e) => return Err(e),
        }
        bounded(
            format!("deleting {}", c.id()),
            limits.call,
            runtime.delete(c),
        )
        .await?;
        let _ = remove_tree(c.run_dir());
        Ok(())
    }

    /// Writes `pod`'s record.
    pub(crate) fn persist_pod(&self, pod: &PodRecord) -> Result<()> {
        store::save(
            &pod.dir,
            &StoredPod::new(
                &pod.id,
                &pod.config,
                &pod.handler,
                pod.created_at,
                pod.infra_pid,
                pod.stopped,
            ),
        )
    }

    pub(crate) fn pod(&self, id: &str) -> Result<PodRecord> {
        self.records()
            .pods
            .get(id)
            .cloned()
            .ok_or_else(|| CriError::NotFound {
                kind: "pod sandbox",
                id: id.to_string(),
            })
    }

    /// The pod for a container being created: it must exist and not be
    /// stopped, and its infra process must still run (its pid is where the
    /// container's namespaces are found).
    pub(crate) async fn ready_pod(&self, id: &str) -> Result<PodRecord> {
        let pod = self.pod(id)?;
        if pod.stopped {
            return Err(CriError::FailedPrecondition(format!(
                "pod sandbox {id} is stopped"
            )));
        }
        let runtime = self.runtime(&pod.handler)?;
        let state = bounded(
            "the infra container's state",
            self.config.timeouts.call,
            runtime.status(&pod.infra),
        )
        .await?;
        if state.status != ContainerStatus::Running || state.pid != Some(pod.infra_pid) {
            return Err(CriError::FailedPrecondition(format!(
                "the infra container of pod sandbox {id} is {} (pid {:?}, expected {}); the pod is not ready",
                state.status, state.pid, pod.infra_pid
            )));
        }
        Ok(pod)
    }

    /// How a container of `pod` joins its namespaces.
    pub(crate) fn container_namespaces(
        &self,
        pod: &PodRecord,
        pid_mode: cri::NamespaceMode,
    ) -> Result<PodNamespaces> {
        let join = self.handler(&pod.handler)?.join;
        Ok(match join {
            PodNamespaceJoin::Paths => pod.namespaces.for_container(pod.infra_pid, pid_mode),
            PodNamespaceJoin::Isolated => {
                let own = |j: &Join| {
                    if *j == Join::Host {
                        Join::Host
                    } else {
                        Join::New
                    }
                };
                PodNamespaces {
                    network: own(&pod.namespaces.network),
                    ipc: own(&pod.namespaces.ipc),
                    uts: own(&pod.namespaces.uts),
                    pid: match pid_mode {
                        cri::NamespaceMode::Node => Join::Host,
                        _ => Join::New,
                    },
                }
            }
        })
    }

    /// `StopPodSandbox`: kills the pod's containers and its infra
    /// container. A pod already stopped or unknown is success.
    pub async fn stop_pod(&self, id: &str) -> Result<()> {
        let Ok(pod) = self.pod(id) else {
            return Ok(());
        };
        let runtime = self.runtime(&pod.handler)?;
        let limits = self.config.timeouts;
        for c in self.containers_of(id) {
            let crt = self.runtime(&c.handler)?;
            match bounded(
                format!("stopping container {}", c.id),
                limits.call + limits.kill_wait,
                crt.stop(&c.description, Duration::ZERO, false),
            )
            .await
            {
                Ok(()) | Err(CriError::Runtime(RuntimeError::NoSuchContainer { .. })) => {}
                Err(e) => return Err(e),
            }
            self.emit_container_stopped(&c.id, id).await;
        }
        match bounded(
            format!("stopping the infra container of pod {id}"),
            limits.call + limits.kill_wait,
            runtime.stop(&pod.infra, Duration::ZERO, false),
        )
        .await
        {
            Ok(()) | Err(CriError::Runtime(RuntimeError::NoSuchContainer { .. })) => {}
            Err(e) => return Err(e),
        }
        let (first_stop, stopped) = match self.records().pods.get_mut(id) {
            Some(p) => (!std::mem::replace(&mut p.stopped, true), Some(p.clone())),
            None => (false, None),
        };
        if let Some(pod) = &stopped {
            self.persist_pod(pod)?;
        }
        if first_stop {
            self.emit_sandbox(id, EventKind::ContainerStoppedEvent, None)
                .await;
        }
        Ok(())
    }

    /// `RemovePodSandbox`: stops and removes the pod's containers, deletes
    /// the infra container, removes the pod's files and releases its name.
    /// An unknown pod is success.
    pub async fn remove_pod(&self, id: &str) -> Result<()> {
        let Ok(pod) = self.pod(id) else {
            return Ok(());
        };
        for c in self.containers_of(id) {
            self.remove_container(&c.id).await?;
        }
        let runtime = self.runtime(&pod.handler)?;
        self.stop_and_delete(&runtime, &pod.infra).await?;
        if !self.pod(id).is_ok_and(|p| p.stopped) {
            // Removed without StopPodSandbox: it stopped just now.
            self.emit_sandbox(id, EventKind::ContainerStoppedEvent, None)
                .await;
        }
        store::forget(&pod.dir)?;
        remove_tree(&pod.dir)?;
        {
            let mut records = self.records();
            records.pods.remove(id);
            if let Some(meta) = &pod.config.metadata {
                let key = pod_name_key(meta);
                if records.names.get(&key).map(String::as_str) == Some(id) {
                    records.names.remove(&key);
                }
            }
        }
        self.sampler().forget(id);
        self.emit_sandbox(id, EventKind::ContainerDeletedEvent, Some(&pod))
            .await;
        Ok(())
    }

    async fn pod_state(&self, pod: &PodRecord) -> Result<cri::PodSandboxState> {
        if pod.stopped {
            return Ok(cri::PodSandboxState::SandboxNotready);
        }
        let runtime = self.runtime(&pod.handler)?;
        let status = match bounded(
            "the infra container's state",
            self.config.timeouts.call,
            runtime.status(&pod.infra),
        )
        .await
        {
            Ok(state) => state.status,
            Err(CriError::Runtime(RuntimeError::NoSuchContainer { .. })) => ContainerStatus::Exited,
            Err(e) => return Err(e),
        };
        Ok(if status == ContainerStatus::Running {
            cri::PodSandboxState::SandboxReady
        } else {
            cri::PodSandboxState::SandboxNotready
        })
    }

    /// `PodSandboxStatus`.
    pub async fn pod_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::PodSandboxStatusResponse> {
        let pod = self.pod(id)?;
        let state = self.pod_state(&pod).await?;
        let options = pod
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        let status = cri::PodSandboxStatus {
            id: pod.id.clone(),
            metadata: pod.config.metadata.clone(),
            state: state as i32,
            created_at: pod.created_at,
            network: Some(cri::PodSandboxNetworkStatus::default()),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace { options }),
            }),
            labels: pod.config.labels.clone(),
            annotations: pod.config.annotations.clone(),
            runtime_handler: pod.handler.clone(),
        };
        let mut info = HashMap::new();
        if verbose {
            info.insert(
                "info".to_string(),
                serde_json::json!({
                    "pid": pod.infra_pid,
                    "runtimeHandler": pod.handler,
                    "bundle": pod.infra.bundle(),
                    "network": "loopback only (no CNI)",
                    // Recorded as asked; nothing forwards them without CNI.
                    "portMappings": pod.config.port_mappings.iter().map(|p| serde_json::json!({
                        "protocol": p.protocol,
                        "containerPort": p.container_port,
                        "hostPort": p.host_port,
                        "hostIp": p.host_ip,
                    })).collect::<Vec<_>>(),
                    "resolvConf": pod.config.dns_config.is_some().then(|| pod.dir.join(RESOLV_CONF)),
                })
                .to_string(),
            );
        }
        Ok(cri::PodSandboxStatusResponse {
            status: Some(status),
            info,
            containers_statuses: Vec::new(),
            timestamp: now_nanos(),
        })
    }

    /// `ListPodSandbox`, filtered by id, state and labels.
    pub async fn list_pods(
        &self,
        filter: Option<cri::PodSandboxFilter>,
    ) -> Result<Vec<cri::PodSandbox>> {
        let filter = filter.unwrap_or_default();
        let pods = self.pod_records();
        let mut out = Vec::new();
        for pod in pods {
            if !filter.id.is_empty() && pod.id != filter.id {
                continue;
            }
            if !labels_match(&filter.label_selector, &pod.config.labels) {
                continue;
            }
            let state = self.pod_state(&pod).await?;
            if filter
                .state
                .as_ref()
                .is_some_and(|s| s.state != state as i32)
            {
                continue;
            }
            out.push(cri::PodSandbox {
                id: pod.id.clone(),
                metadata: pod.config.metadata.clone(),
                state: state as i32,
                created_at: pod.created_at,
                labels: pod.config.labels.clone(),
                annotations: pod.config.annotations.clone(),
                runtime_handler: pod.handler.clone(),
            });
        }
        Ok(out)
    }
}
