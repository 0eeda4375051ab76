//! Containers of a pod: create (image unpacked into a root filesystem of
//! its own, OCI spec from the CRI config), start, stop, remove, status,
//! list, exec sync and resource updates.

use crate::engine::pods::RESOLV_CONF;
use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_cri::v1 as cri;
use runtime_api::{
    AttachOptions, AttachStreams, ContainerDescription, ContainerId, ContainerStatus,
    CreateOptions, ExecConfig, Feature, LogDriver, RuntimeError, Signal,
};

use super::pods::{cgroup_parent, pod_annotations};
use super::store::{self, StoredContainer};
use super::{
    bounded, labels_match, nanos, new_id, now_nanos, remove_tree, ContainerRecord, Engine,
};
use crate::config::RuntimeHandler;
use crate::error::{CriError, Result};
use crate::events::hub::EventKind;
use crate::spec::{container_spec, linux_resources, ContainerInputs};

/// What an `ExecSync` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output (up to the configured limit).
    pub stdout: Vec<u8>,
    /// Standard error (up to the configured limit).
    pub stderr: Vec<u8>,
    /// The exit code.
    pub exit_code: i32,
}

/// The key under which a container's name is reserved.
fn container_name_key(c: &cri::ContainerMetadata, pod: &cri::PodSandboxMetadata) -> String {
    format!(
        "k8s_{}_{}_{}_{}_{}",
        c.name, pod.name, pod.namespace, pod.uid, c.attempt
    )
}

/// A relative path without `..`, for the log path under the pod's log
/// directory.
fn relative_log_path(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(CriError::InvalidArgument(format!(
            "log path {path:?} must be relative to the pod's log directory, without '..'"
        )))
    }
}

impl Engine {
    /// The containers of pod `pod_id`.
    pub(crate) fn containers_of(&self, pod_id: &str) -> Vec<ContainerRecord> {
        self.records()
            .containers
            .values()
            .filter(|c| c.pod_id == pod_id)
            .cloned()
            .collect()
    }

    pub(crate) fn container(&self, id: &str) -> Result<ContainerRecord> {
        self.records()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| CriError::NotFound {
                kind: "container",
                id: id.to_string(),
            })
    }

    /// Container `id`, which must exist and run (exec, attach, log reopen,
    /// checkpoint).
    pub(crate) async fn running_container(&self, id: &str) -> Result<ContainerRecord> {
        let c = self.container(id)?;
        let runtime = self.runtime(&c.handler)?;
        let state = bounded(
            format!("the state of container {id}"),
            self.config.timeouts.call,
            runtime.status(&c.description),
        )
        .await?;
        if state.status != ContainerStatus::Running {
            return Err(CriError::FailedPrecondition(format!(
                "container {id} is {}, not running",
                state.status
            )));
        }
        Ok(c)
    }

    /// Refuses (Unimplemented) a call of `feature` on a handler whose
    /// runtime does not offer it.
    pub(crate) async fn require_feature(&self, handler: &str, feature: Feature) -> Result<()> {
        let runtime = self.runtime(handler)?;
        let features = bounded(
            "runtime features",
            self.config.timeouts.call,
            runtime.features(),
        )
        .await?;
        if features.contains(feature) {
            Ok(())
        } else {
            Err(CriError::Unimplemented(format!(
                "the runtime of handler {handler:?} does not offer {feature}"
            )))
        }
    }

    /// `CreateContainer`.
    pub async fn create_container(
        &self,
        pod_id: &str,
        config: cri::ContainerConfig,
    ) -> Result<String> {
        let meta = config.metadata.clone().ok_or_else(|| {
            CriError::InvalidArgument("the container config has no metadata".into())
        })?;
        if meta.name.is_empty() || meta.name.contains('/') || meta.name.contains('\0') {
            return Err(CriError::InvalidArgument(format!(
                "container name {:?} is empty or contains '/' or NUL",
                meta.name
            )));
        }
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                CriError::InvalidArgument("the container config names no image".into())
            })?;
        let pod = self.ready_pod(pod_id).await?;
        let pod_meta = pod.config.metadata.clone().unwrap_or_default();
        let image = self.images.require(&image_name)?;
        let id = new_id()?;
        let key = container_name_key(&meta, &pod_meta);
        self.reserve(&key, &id, "container")?;
        let dir = self.config.state_dir.join("containers").join(&id);
        match self.create_in_pod(&id, &pod, &config, &image, &dir).await {
            Ok(record) => {
                self.records().containers.insert(id.clone(), record);
                self.emit_container(&id, pod_id, EventKind::ContainerCreatedEvent)
                    .await;
                Ok(id)
            }
            Err(e) => {
                if let Err(undo) = remove_tree(&dir) {
                    tracing::warn!(container = %id, error = %undo, "cleaning up a failed create");
                }
                let _ = remove_tree(&self.runtime_dir(&id));
                self.release(&key, &id);
                Err(e)
            }
        }
    }

    async fn create_in_pod(
        &self,
        id: &str,
        pod: &super::PodRecord,
        config: &cri::ContainerConfig,
        image: &crate::images::ImageRecord,
        dir: &Path,
    ) -> Result<ContainerRecord> {
        let handler = self.handler(&pod.handler)?.clone();
        let log_path = if pod.config.log_directory.is_empty() || config.log_path.is_empty() {
            dir.join("container.log")
        } else {
            Path::new(&pod.config.log_directory).join(relative_log_path(&config.log_path)?)
        };
        if let Some(parent) = log_path.parent() {
            fs::create_dir_all(parent)
                .map_err(CriError::io(format!("creating {}", parent.display())))?;
        }
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        self.images.unpack(image, &rootfs)?;
        let pid_mode = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .map(|o| cri::NamespaceMode::try_from(o.pid).unwrap_or(cri::NamespaceMode::Container))
            .unwrap_or(cri::NamespaceMode::Container);
        let namespaces = self.container_namespaces(pod, pid_mode)?;
        let cgroup_parent = cgroup_parent(&pod.config);
        let inputs = ContainerInputs {
            config,
            pod: &pod.config,
            image: &image.config,
            rootfs: &rootfs,
            namespaces,
            cgroups_path: cgroup_parent.as_ref().map(|p| format!("{p}/cri-{id}")),
            annotations: pod_annotations(handler.join, "container", &pod.id),
            resolv_conf: Some(pod.dir.join(RESOLV_CONF)).filter(|p| p.is_file()),
        };
        let spec = container_spec(&inputs)?;
        spec.save(bundle.join("config.json"))
            .map_err(|e| CriError::InvalidArgument(format!("writing the container spec: {e}")))?;

        let description =
            self.container_description(id, pod, config, image, &log_path, &handler, dir)?;
        let created_at = now_nanos();
        store::save(
            dir,
            &StoredContainer::new(
                id,
                &pod.id,
                config,
                image,
                created_at,
                &log_path,
                &handler.name,
            ),
        )?;
        bounded(
            format!("creating container {id}"),
            self.config.timeouts.create,
            handler
                .runtime
                .create(&description, CreateOptions::default()),
        )
        .await?;
        Ok(ContainerRecord {
            id: id.to_string(),
            pod_id: pod.id.clone(),
            config: config.clone(),
            image: image.clone(),
            created_at,
            description,
            log_path,
            dir: dir.to_path_buf(),
            handler: handler.name.clone(),
        })
    }

    /// What the runtime knows container `id` by: derived from its
    /// configuration, image and pod alone, so that a restarted server
    /// derives the same description again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn container_description(
        &self,
        id: &str,
        pod: &super::PodRecord,
        config: &cri::ContainerConfig,
        image: &crate::images::ImageRecord,
        log_path: &Path,
        handler: &RuntimeHandler,
        dir: &Path,
    ) -> Result<ContainerDescription> {
        let meta = config.metadata.clone().unwrap_or_default();
        let pod_meta = pod.config.metadata.clone().unwrap_or_default();
        let stop_signal = match image.config.stop_signal.as_deref() {
            Some(s) if !s.is_empty() => s.parse::<Signal>()?,
            _ => Signal::TERM,
        };
        let privileged = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .is_some_and(|s| s.privileged);
        let mut builder = ContainerDescription::builder(
            ContainerId::new(id)?,
            dir.join("bundle"),
            self.runtime_dir(id),
        )
        .name(container_name_key(&meta, &pod_meta))
        .log(LogDriver::KubernetesFile, log_path)
        .terminal(config.tty)
        .stdin(config.stdin)
        .leave_stdin_open(config.stdin && !config.stdin_once)
        .stop_signal(stop_signal)
        .privileged(privileged);
        if let Some(parent) = cgroup_parent(&pod.config) {
            builder = builder.cgroup_parent(parent);
        }
        if let Some(hook) = &handler.describe {
            builder = hook(builder);
        }
        Ok(builder.build()?)
    }

    /// `StartContainer`. Its STARTED event is sent here, and the exit
    /// watcher ([`Engine::watch_exit`]) that sends STOPPED when the
    /// process ends on its own is armed here too, so that every caller of
    /// the engine gets the events the gRPC service gets.
    pub async fn start_container(self: &Arc<Self>, id: &str) -> Result<()> {
        let c = self.container(id)?;
        let runtime = self.runtime(&c.handler)?;
        let state = bounded(
            "container state",
            self.config.timeouts.call,
            runtime.status(&c.description),
        )
        .await?;
        if state.status != ContainerStatus::Created {
            return Err(CriError::FailedPrecondition(format!(
                "container {id} is {}; only a created container can be started",
                state.status
            )));
        }
        bounded(
            format!("starting container {id}"),
            self.config.timeouts.call,
            runtime.start(&c.description),
        )
        .await?;
        self.events().started(id);
        self.emit_container(id, &c.pod_id, EventKind::ContainerStartedEvent)
            .await;
        self.watch_exit(id);
        Ok(())
    }

    /// `StopContainer`: the stop signal, up to `timeout`, then SIGKILL.
    /// A container already exited is success.
    pub async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        let c = self.container(id)?;
        let runtime = self.runtime(&c.handler)?;
        let limits = self.config.timeouts;
        match bounded(
            format!("stopping container {id}"),
            timeout + limits.kill_wait + limits.call,
            runtime.stop(&c.description, timeout, false),
        )
        .await
        {
            Ok(()) | Err(CriError::Runtime(RuntimeError::NoSuchContainer { .. })) => {
                self.emit_container_stopped(id, &c.pod_id).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `RemoveContainer`: stops a running container at once, deletes it,
    /// removes its bundle and releases its name; the log file stays (it is
    /// the kubelet's). An unknown container is success.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let Ok(c) = self.container(id) else {
            return Ok(());
        };
        let runtime = self.runtime(&c.handler)?;
        self.stop_and_delete(&runtime, &c.description).await?;
        self.events().unwatch(id);
        self.emit_container_stopped(id, &c.pod_id).await;
        store::forget(&c.dir)?;
        remove_tree(&c.dir)?;
        {
            let mut records = self.records();
            records.containers.remove(id);
            let name = c.description.name().to_string();
            if records.names.get(&name).map(String::as_str) == Some(id) {
                records.names.remove(&name);
            }
        }
        self.sampler().forget(id);
        self.emit_container(id, &c.pod_id, EventKind::ContainerDeletedEvent)
            .await;
        Ok(())
    }

    async fn cri_state(
        &self,
        c: &ContainerRecord,
    ) -> Result<(cri::ContainerState, Option<runtime_api::ContainerState>)> {
        let runtime = self.runtime(&c.handler)?;
        match bounded(
            "container state",
            self.config.timeouts.call,
            runtime.status(&c.description),
        )
        .await
        {
            Ok(state) => {
                let phase = match state.status {
                    ContainerStatus::Created => cri::ContainerState::ContainerCreated,
                    ContainerStatus::Running | ContainerStatus::Paused => {
                        cri::ContainerState::ContainerRunning
                    }
                    ContainerStatus::Stopped | ContainerStatus::Exited => {
                        cri::ContainerState::ContainerExited
                    }
                };
                Ok((phase, Some(state)))
            }
            Err(CriError::Runtime(RuntimeError::NoSuchContainer { .. })) => {
                Ok((cri::ContainerState::ContainerUnknown, None))
            }
            Err(e) => Err(e),
        }
    }

    /// `ContainerStatus`.
    pub async fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::ContainerStatusResponse> {
        let c = self.container(id)?;
        let (phase, state) = self.cri_state(&c).await?;
        let (reason, message) = match &state {
            Some(s) if phase == cri::ContainerState::ContainerExited => {
                let reason = if s.oom_killed {
                    "OOMKilled"
                } else if s.exit_code == Some(0) {
                    "Completed"
                } else {
                    "Error"
                };
                (reason.to_string(), String::new())
            }
            None => (
                "Unknown".to_string(),
                "the runtime no longer knows the container".to_string(),
            ),
            _ => (String::new(), String::new()),
        };
        let image_spec = c.config.image.clone().unwrap_or_default();
        let status = cri::ContainerStatus {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            state: phase as i32,
            created_at: c.created_at,
            started_at: nanos(state.as_ref().and_then(|s| s.started_at)),
            finished_at: nanos(state.as_ref().and_then(|s| s.finished_at)),
            exit_code: state.as_ref().and_then(|s| s.exit_code).unwrap_or(0),
            image: Some(image_spec),
            image_ref: c.image.id.clone(),
            reason,
            message,
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            mounts: c.config.mounts.clone(),
            log_path: c.log_path.display().to_string(),
            resources: None,
            image_id: c.image.id.clone(),
            user: None,
        };
        let mut info = HashMap::new();
        if verbose {
            info.insert(
                "info".to_string(),
                serde_json::json!({
                    "pid": state.as_ref().and_then(|s| s.pid),
                    "sandboxID": c.pod_id,
                    "runtimeHandler": c.handler,
                    "bundle": c.description.bundle(),
                })
                .to_string(),
            );
        }
        Ok(cri::ContainerStatusResponse {
            status: Some(status),
            info,
        })
    }

    /// `ListContainers`, filtered by id, pod, state and labels.
    pub async fn list_containers(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>> {
        let filter = filter.unwrap_or_default();
        let all = self.container_records();
        let mut out = Vec::new();
        for c in all {
            if (!filter.id.is_empty() && c.id != filter.id)
                || (!filter.pod_sandbox_id.is_empty() && c.pod_id != filter.pod_sandbox_id)
                || !labels_match(&filter.label_selector, &c.config.labels)
            {
                continue;
            }
            let (phase, _) = self.cri_state(&c).await?;
            if filter
                .state
                .as_ref()
                .is_some_and(|s| s.state != phase as i32)
            {
                continue;
            }
            out.push(cri::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.pod_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: c.image.id.clone(),
                state: phase as i32,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
                image_id: c.image.id.clone(),
            });
        }
        Ok(out)
    }

    /// `ExecSync`: runs `cmd` in the container through the runtime's exec
    /// feature, collecting its output. A `timeout` (zero for none) is the
    /// exec's own: the runtime kills the process past it and ends the
    /// session with `RuntimeError::ExecTimedOut`, answered
    /// `DeadlineExceeded`, which the kubelet reads as a failed probe (as
    /// containerd answers).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        if cmd.is_empty() {
            return Err(CriError::InvalidArgument(
                "exec sync needs a command".into(),
            ));
        }
        let c = self.container(id)?;
        self.require_feature(&c.handler, Feature::Exec).await?;
        let runtime = self.runtime(&c.handler)?;
        let limits = self.config.timeouts;
        let mut config = ExecConfig::new(cmd);
        if !timeout.is_zero() {
            config.timeout = Some(timeout);
        }
        let limit = self.config.exec_sync_output_limit;
        let stdout = CappedSink::new(limit);
        let stderr = CappedSink::new(limit);
        let streams = AttachStreams::new(None, Some(stdout.sink()), Some(stderr.sink()));
        let handle = bounded(
            format!("starting exec in container {id}"),
            limits.call,
            runtime.exec(&c.description, &config, streams, AttachOptions::default()),
        )
        .await?;
        let session = handle.session.clone();
        // The exec's own timeout is the runtime's to enforce; this bound
        // holds the server's call to it even if the runtime fails to.
        let overall = if timeout.is_zero() {
            limits.exec_sync_max
        } else {
            timeout + limits.kill_wait
        };
        let completion = match tokio::time::timeout(overall, handle.completion).await {
            // ExecTimedOut included: its code is DeadlineExceeded.
            Ok(result) => result?,
            Err(_) => {
                let _ = bounded(
                    "stopping a timed-out exec",
                    limits.call,
                    runtime.exec_stop(&c.description, &session, Duration::ZERO),
                )
                .await;
                return Err(CriError::DeadlineExceeded(format!(
                    "exec in container {id} did not finish within {overall:?}"
                )));
            }
        };
        let exit_code = match completion.exit_code {
            Some(code) => code,
            None => {
                bounded(
                    "waiting for the exec's exit code",
                    limits.call,
                    runtime.exec_wait(&c.description, &session, limits.call),
                )
                .await?
            }
        };
        Ok(ExecOutput {
            stdout: stdout.bytes(),
            stderr: stderr.bytes(),
            exit_code,
        })
    }

    /// `ReopenContainerLog`: the kubelet renamed the log away (rotation);
    /// the monitor reopens it so that later output goes to a new file. A
    /// container that is not running is refused (FailedPrecondition), as
    /// CRI-O refuses it.
    pub async fn reopen_log(&self, id: &str) -> Result<()> {
        let c = self.container(id)?;
        self.require_feature(&c.handler, Feature::ReopenLog).await?;
        let c = self.running_container(id).await?;
        let runtime = self.runtime(&c.handler)?;
        bounded(
            format!("reopening the log of container {id}"),
            self.config.timeouts.call,
            runtime.reopen_log(&c.description),
        )
        .await
    }

    /// `UpdateContainerResources` through the runtime's
    /// `update-resources` feature.
    pub async fn update_resources(
        &self,
        id: &str,
        resources: Option<cri::LinuxContainerResources>,
    ) -> Result<()> {
        let c = self.container(id)?;
        let Some(resources) = resources else {
            return Err(CriError::InvalidArgument("no linux resources given".into()));
        };
        let runtime = self.runtime(&c.handler)?;
        let oci = linux_resources(&resources)?;
        bounded(
            format!("updating the resources of container {id}"),
            self.config.timeouts.call,
            runtime.update_resources(&c.description, &oci),
        )
        .await
    }
}

/// An output sink keeping the first `limit` bytes and dropping the rest
/// (still accepting them, so the process never blocks on a full pipe).
#[derive(Clone)]
struct CappedSink {
    buffer: Arc<Mutex<Vec<u8>>>,
    limit: usize,
}

impl CappedSink {
    fn new(limit: usize) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(Vec::new())),
            limit,
        }
    }

    fn sink(&self) -> runtime_api::OutputStream {
        Box::pin(self.clone())
    }

    fn bytes(&self) -> Vec<u8> {
        self.buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl tokio::io::AsyncWrite for CappedSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.limit.saturating_sub(buffer.len());
        buffer.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn exec_output_is_capped_without_blocking_the_writer() {
        let sink = CappedSink::new(4);
        let mut writer = sink.sink();
        writer.write_all(b"abcdefgh").await.unwrap();
        writer.write_all(b"ij").await.unwrap();
        assert_eq!(sink.bytes(), b"abcd");
    }

    #[test]
    fn log_paths_stay_under_the_pod_log_directory() {
        assert_eq!(
            relative_log_path("c/0.log").unwrap(),
            PathBuf::from("c/0.log")
        );
        for bad in ["", "/abs.log", "../up.log", "a/../../b"] {
            assert!(relative_log_path(bad).is_err(), "{bad}");
        }
    }
}
