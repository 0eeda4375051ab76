//! The gRPC services: CRI v1 `RuntimeService` and `ImageService` over one
//! [`Engine`]. Each call checks its request, calls the engine and turns a
//! [`CriError`] into its status code. A call the pod's runtime cannot
//! serve (a feature it does not offer) answers `Unimplemented` saying
//! which.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};

use crate::config::CgroupDriver;
use crate::engine::{now_nanos, Engine};
use crate::error::CriError;
use crate::images::{disk_usage, ImageRecord};

/// The CRI API version this server speaks.
pub const CRI_API_VERSION: &str = "v1";
/// The name reported by `Version`.
pub const RUNTIME_NAME: &str = "cri-server";

/// Both CRI services over one engine.
#[derive(Debug, Clone)]
pub struct CriService {
    engine: Arc<Engine>,
}

impl CriService {
    /// Services over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Reply<T> {
    Ok(Response::new(value))
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("the request has no {what}")))
}

fn non_empty(value: &str, what: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!(
            "the request's {what} is empty"
        )))
    } else {
        Ok(())
    }
}

fn seconds(value: i64, what: &str) -> Result<Duration, Status> {
    u64::try_from(value)
        .map(Duration::from_secs)
        .map_err(|_| Status::invalid_argument(format!("{what} {value} is negative")))
}

#[tonic::async_trait]
impl RuntimeService for CriService {
    async fn version(&self, _: Request<cri::VersionRequest>) -> Reply<cri::VersionResponse> {
        ok(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: CRI_API_VERSION.into(),
        })
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<cri::RunPodSandboxRequest>,
    ) -> Reply<cri::RunPodSandboxResponse> {
        let r = request.into_inner();
        let config = required(r.config, "pod sandbox config")?;
        let id = self.engine.run_pod(config, &r.runtime_handler).await?;
        ok(cri::RunPodSandboxResponse { pod_sandbox_id: id })
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<cri::StopPodSandboxRequest>,
    ) -> Reply<cri::StopPodSandboxResponse> {
        let r = request.into_inner();
        non_empty(&r.pod_sandbox_id, "pod sandbox id")?;
        self.engine.stop_pod(&r.pod_sandbox_id).await?;
        ok(cri::StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<cri::RemovePodSandboxRequest>,
    ) -> Reply<cri::RemovePodSandboxResponse> {
        let r = request.into_inner();
        non_empty(&r.pod_sandbox_id, "pod sandbox id")?;
        self.engine.remove_pod(&r.pod_sandbox_id).await?;
        ok(cri::RemovePodSandboxResponse {})
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<cri::PodSandboxStatusRequest>,
    ) -> Reply<cri::PodSandboxStatusResponse> {
        let r = request.into_inner();
        non_empty(&r.pod_sandbox_id, "pod sandbox id")?;
        ok(self.engine.pod_status(&r.pod_sandbox_id, r.verbose).await?)
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<cri::ListPodSandboxRequest>,
    ) -> Reply<cri::ListPodSandboxResponse> {
        let items = self.engine.list_pods(request.into_inner().filter).await?;
        ok(cri::ListPodSandboxResponse { items })
    }

    async fn create_container(
        &self,
        request: Request<cri::CreateContainerRequest>,
    ) -> Reply<cri::CreateContainerResponse> {
        let r = request.into_inner();
        non_empty(&r.pod_sandbox_id, "pod sandbox id")?;
        let config = required(r.config, "container config")?;
        let id = self
            .engine
            .create_container(&r.pod_sandbox_id, config)
            .await?;
        ok(cri::CreateContainerResponse { container_id: id })
    }

    async fn start_container(
        &self,
        request: Request<cri::StartContainerRequest>,
    ) -> Reply<cri::StartContainerResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        self.engine.start_container(&r.container_id).await?;
        ok(cri::StartContainerResponse {})
    }

    async fn stop_container(
        &self,
        request: Request<cri::StopContainerRequest>,
    ) -> Reply<cri::StopContainerResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        let timeout = seconds(r.timeout, "timeout")?;
        self.engine.stop_container(&r.container_id, timeout).await?;
        ok(cri::StopContainerResponse {})
    }

    async fn remove_container(
        &self,
        request: Request<cri::RemoveContainerRequest>,
    ) -> Reply<cri::RemoveContainerResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        self.engine.remove_container(&r.container_id).await?;
        ok(cri::RemoveContainerResponse {})
    }

    async fn list_containers(
        &self,
        request: Request<cri::ListContainersRequest>,
    ) -> Reply<cri::ListContainersResponse> {
        let containers = self
            .engine
            .list_containers(request.into_inner().filter)
            .await?;
        ok(cri::ListContainersResponse { containers })
    }

    async fn container_status(
        &self,
        request: Request<cri::ContainerStatusRequest>,
    ) -> Reply<cri::ContainerStatusResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        ok(self
            .engine
            .container_status(&r.container_id, r.verbose)
            .await?)
    }

    async fn update_container_resources(
        &self,
        request: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Reply<cri::UpdateContainerResourcesResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        if r.windows.is_some() {
            return Err(Status::invalid_argument(
                "Windows resources are not supported on Linux",
            ));
        }
        self.engine
            .update_resources(&r.container_id, r.linux)
            .await?;
        ok(cri::UpdateContainerResourcesResponse {})
    }

    async fn reopen_container_log(
        &self,
        request: Request<cri::ReopenContainerLogRequest>,
    ) -> Reply<cri::ReopenContainerLogResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        self.engine.reopen_log(&r.container_id).await?;
        ok(cri::ReopenContainerLogResponse {})
    }

    async fn exec_sync(
        &self,
        request: Request<cri::ExecSyncRequest>,
    ) -> Reply<cri::ExecSyncResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        let timeout = seconds(r.timeout, "timeout")?;
        let out = self
            .engine
            .exec_sync(&r.container_id, r.cmd, timeout)
            .await?;
        ok(cri::ExecSyncResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
        })
    }

    async fn exec(&self, request: Request<cri::ExecRequest>) -> Reply<cri::ExecResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        let url = self.engine.exec_url(r).await?;
        ok(cri::ExecResponse { url })
    }

    async fn attach(&self, request: Request<cri::AttachRequest>) -> Reply<cri::AttachResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        let url = self.engine.attach_url(r).await?;
        ok(cri::AttachResponse { url })
    }

    async fn port_forward(
        &self,
        request: Request<cri::PortForwardRequest>,
    ) -> Reply<cri::PortForwardResponse> {
        let r = request.into_inner();
        non_empty(&r.pod_sandbox_id, "pod sandbox id")?;
        let url = self.engine.port_forward_url(r).await?;
        ok(cri::PortForwardResponse { url })
    }

    async fn container_stats(
        &self,
        request: Request<cri::ContainerStatsRequest>,
    ) -> Reply<cri::ContainerStatsResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        let stats = self.engine.container_stats(&r.container_id).await?;
        ok(cri::ContainerStatsResponse { stats: Some(stats) })
    }

    async fn list_container_stats(
        &self,
        request: Request<cri::ListContainerStatsRequest>,
    ) -> Reply<cri::ListContainerStatsResponse> {
        let stats = self
            .engine
            .list_container_stats(request.into_inner().filter)
            .await?;
        ok(cri::ListContainerStatsResponse { stats })
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<cri::PodSandboxStatsRequest>,
    ) -> Reply<cri::PodSandboxStatsResponse> {
        let r = request.into_inner();
        non_empty(&r.pod_sandbox_id, "pod sandbox id")?;
        let stats = self.engine.pod_stats(&r.pod_sandbox_id).await?;
        ok(cri::PodSandboxStatsResponse { stats: Some(stats) })
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Reply<cri::ListPodSandboxStatsResponse> {
        let stats = self
            .engine
            .list_pod_stats(request.into_inner().filter)
            .await?;
        ok(cri::ListPodSandboxStatsResponse { stats })
    }

    async fn update_runtime_config(
        &self,
        request: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Reply<cri::UpdateRuntimeConfigResponse> {
        // The kubelet sends the pod CIDR here; with loopback-only pods
        // there is nothing to configure, so it is accepted and ignored.
        let _ = request.into_inner();
        ok(cri::UpdateRuntimeConfigResponse {})
    }

    async fn status(&self, request: Request<cri::StatusRequest>) -> Reply<cri::StatusResponse> {
        let verbose = request.into_inner().verbose;
        let config = self.engine.config();
        let mut runtime_ready = cri::RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        for handler in &config.handlers {
            let answer =
                tokio::time::timeout(config.timeouts.call, handler.runtime.features()).await;
            let problem = match answer {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {:?}", config.timeouts.call)),
            };
            if let Some(problem) = problem {
                runtime_ready.status = false;
                runtime_ready.reason = "RuntimeNotAnswering".into();
                runtime_ready.message = format!("handler {}: {problem}", handler.name);
            }
        }
        let network_ready = cri::RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NoNetworkPlugin".into(),
            message: "pods get a loopback-only network namespace; CNI is not implemented".into(),
        };
        let mut info = HashMap::new();
        if verbose {
            let handlers: Vec<_> = config
                .handlers
                .iter()
                .map(|h| serde_json::json!({"name": h.name, "runtime": h.runtime.name()}))
                .collect();
            info.insert(
                "config".into(),
                serde_json::json!({
                    "stateDir": config.state_dir,
                    "runDir": config.run_dir,
                    "defaultHandler": config.default_handler,
                    "pauseImage": config.pause_image,
                    "handlers": handlers,
                })
                .to_string(),
            );
        }
        ok(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![runtime_ready, network_ready],
            }),
            info,
            runtime_handlers: config
                .handlers
                .iter()
                .map(|h| cri::RuntimeHandler {
                    name: h.name.clone(),
                    features: Some(cri::RuntimeHandlerFeatures {
                        recursive_read_only_mounts: false,
                        user_namespaces: false,
                    }),
                })
                .collect(),
            features: Some(cri::RuntimeFeatures {
                supplemental_groups_policy: false,
            }),
        })
    }

    async fn checkpoint_container(
        &self,
        request: Request<cri::CheckpointContainerRequest>,
    ) -> Reply<cri::CheckpointContainerResponse> {
        let r = request.into_inner();
        non_empty(&r.container_id, "container id")?;
        let timeout = seconds(r.timeout, "timeout")?;
        self.engine
            .checkpoint_container(&r.container_id, &r.location, timeout)
            .await?;
        ok(cri::CheckpointContainerResponse {})
    }

    type GetContainerEventsStream = Pin<
        Box<
            dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>>
                + Send
                + 'static,
        >,
    >;

    async fn get_container_events(
        &self,
        _: Request<cri::GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        use tokio_stream::StreamExt;
        // A subscriber that lagged gets Aborted and its stream ends.
        let events = self
            .engine
            .subscribe_events()
            .map(|item| item.map_err(|lagged| Status::aborted(lagged.to_string())));
        ok(Box::pin(events))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Reply<cri::ListMetricDescriptorsResponse> {
        ok(cri::ListMetricDescriptorsResponse {
            descriptors: crate::stats::metrics::descriptors(),
        })
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Reply<cri::ListPodSandboxMetricsResponse> {
        let stats = self.engine.list_pod_stats(None).await?;
        ok(cri::ListPodSandboxMetricsResponse {
            pod_metrics: stats
                .iter()
                .map(crate::stats::metrics::pod_metrics)
                .collect(),
        })
    }

    async fn runtime_config(
        &self,
        _: Request<cri::RuntimeConfigRequest>,
    ) -> Reply<cri::RuntimeConfigResponse> {
        let driver = match self.engine.config().cgroup_driver {
            CgroupDriver::Systemd => cri::CgroupDriver::Systemd,
            _ => cri::CgroupDriver::Cgroupfs,
        };
        ok(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: driver as i32,
            }),
        })
    }
}

fn image_message(record: &ImageRecord) -> cri::Image {
    let user = record.config.user.clone().unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default().to_string();
    let (uid, username) = match user.parse::<i64>() {
        Ok(n) => (Some(cri::Int64Value { value: n }), String::new()),
        Err(_) if user.is_empty() => (Some(cri::Int64Value { value: 0 }), String::new()),
        Err(_) => (None, user),
    };
    cri::Image {
        id: record.id.clone(),
        repo_tags: record.names.clone(),
        repo_digests: record.repo_digests(),
        size: record.size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: record.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

fn image_name(spec: Option<cri::ImageSpec>) -> Result<String, Status> {
    let spec = required(spec, "image spec")?;
    non_empty(&spec.image, "image name")?;
    Ok(spec.image)
}

#[tonic::async_trait]
impl ImageService for CriService {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Reply<cri::ListImagesResponse> {
        let wanted = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .filter(|i| !i.is_empty());
        let images = match wanted {
            Some(name) => self
                .engine
                .images()
                .resolve(&name)
                .map_err(CriError::from)?
                .into_iter()
                .collect(),
            None => self.engine.images().list(),
        };
        ok(cri::ListImagesResponse {
            images: images.iter().map(image_message).collect(),
        })
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Reply<cri::ImageStatusResponse> {
        let r = request.into_inner();
        let name = image_name(r.image)?;
        let record = self
            .engine
            .images()
            .resolve(&name)
            .map_err(CriError::from)?;
        let mut info = HashMap::new();
        if r.verbose {
            if let Some(record) = &record {
                info.insert(
                    "info".into(),
                    serde_json::to_string(record).unwrap_or_default(),
                );
            }
        }
        ok(cri::ImageStatusResponse {
            image: record.as_ref().map(image_message),
            info,
        })
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Reply<cri::PullImageResponse> {
        let name = image_name(request.into_inner().image)?;
        let record = self
            .engine
            .images()
            .require(&name)
            .map_err(CriError::from)?;
        ok(cri::PullImageResponse {
            image_ref: record.id,
        })
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Reply<cri::RemoveImageResponse> {
        let name = image_name(request.into_inner().image)?;
        self.engine.images().remove(&name).map_err(CriError::from)?;
        ok(cri::RemoveImageResponse {})
    }

    async fn image_fs_info(
        &self,
        _: Request<cri::ImageFsInfoRequest>,
    ) -> Reply<cri::ImageFsInfoResponse> {
        let usage = |dir: &std::path::Path| -> Result<cri::FilesystemUsage, Status> {
            let (bytes, inodes) = disk_usage(dir).map_err(CriError::from)?;
            Ok(cri::FilesystemUsage {
                timestamp: now_nanos(),
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: dir.display().to_string(),
                }),
                used_bytes: Some(cri::UInt64Value { value: bytes }),
                inodes_used: Some(cri::UInt64Value { value: inodes }),
            })
        };
        let state = &self.engine.config().state_dir;
        ok(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage(self.engine.images().dir())?],
            container_filesystems: vec![usage(&state.join("containers"))?],
        })
    }
}
