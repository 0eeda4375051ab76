//! `CheckpointContainer`: the request's path to `OciRuntime::checkpoint`
//! (options, export as an archive or into a directory, the container left
//! running) over `testkit`'s mock, the runc argv recorded by `testkit`'s
//! recording runtime, and with real runc on a host where CRIU cannot
//! checkpoint: `FailedPrecondition` naming CRIU, the container still
//! running, nothing left of the attempt.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use cri_server::k8s_cri::v1 as cri;
use cri_server::{PodNamespaceJoin, RuntimeHandler};
use runtime_api::{
    CheckpointOptions, ContainerDescription, ContainerState, ContainerStatus, CreateOptions,
    CreatedContainer, FeatureSet, OciRuntime, Result, Signal,
};
use testkit::mock::{MockProcess, MockRuntime};
use tonic::Code;

/// The mock with a pid for running containers (the server needs the
/// infra pid; the test's own is harmless, the mock ignores namespaces),
/// and the checkpoint options it was given.
struct PidMock {
    mock: MockRuntime,
    checkpoints: Mutex<Vec<CheckpointOptions>>,
}

#[async_trait::async_trait]
impl OciRuntime for PidMock {
    fn name(&self) -> &str {
        "pid-mock"
    }
    async fn create(&self, c: &ContainerDescription, o: CreateOptions) -> Result<CreatedContainer> {
        self.mock.create(c, o).await
    }
    async fn start(&self, c: &ContainerDescription) -> Result<()> {
        self.mock.start(c).await
    }
    async fn status(&self, c: &ContainerDescription) -> Result<ContainerState> {
        let mut state = self.mock.status(c).await?;
        if state.status == ContainerStatus::Running {
            state.pid = Some(std::process::id() as i32);
        }
        Ok(state)
    }
    async fn kill(&self, c: &ContainerDescription, signal: Signal, all: bool) -> Result<()> {
        self.mock.kill(c, signal, all).await
    }
    async fn wait(&self, c: &ContainerDescription, limit: Duration) -> Result<i32> {
        self.mock.wait(c, limit).await
    }
    async fn delete(&self, c: &ContainerDescription) -> Result<()> {
        self.mock.delete(c).await
    }
    async fn features(&self) -> Result<FeatureSet> {
        self.mock.features().await
    }
    async fn checkpoint(
        &self,
        c: &ContainerDescription,
        options: &CheckpointOptions,
    ) -> Result<Duration> {
        self.checkpoints.lock().unwrap().push(options.clone());
        self.mock.checkpoint(c, options).await
    }
}

async fn checkpoint(
    s: &mut TestServer,
    id: &str,
    location: &Path,
) -> std::result::Result<(), tonic::Status> {
    s.runtime
        .checkpoint_container(cri::CheckpointContainerRequest {
            container_id: id.into(),
            location: location.display().to_string(),
            timeout: 60,
        })
        .await
        .map(drop)
}

async fn state_of(s: &mut TestServer, id: &str) -> i32 {
    s.runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_reaches_the_runtime_and_exports() {
    let runtime = Arc::new(PidMock {
        mock: MockRuntime::new(),
        checkpoints: Mutex::new(Vec::new()),
    });
    runtime
        .mock
        .define_program("sleep", MockProcess::new().until_signalled());
    runtime
        .mock
        .define_program("sh", MockProcess::new().until_signalled());
    let handler_runtime: Arc<dyn OciRuntime> = runtime.clone();
    let mut s = TestServer::start(
        move |_| {
            vec![RuntimeHandler::new("mock", handler_runtime).with_join(PodNamespaceJoin::Paths)]
        },
        |_| {},
    )
    .await;
    s.import_busybox();
    let pod_config = pod_config("ckpt", &s.log_dir("ckpt"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "mock").await;
    let id = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("c", &["sh"]),
    )
    .await;
    let out = tempfile::tempdir().unwrap();

    // An archive, as the kubelet asks.
    let archive = out.path().join("checkpoint-ckpt_default-c-2026.tar");
    checkpoint(&mut s, &id, &archive).await.unwrap();
    let options = runtime.checkpoints.lock().unwrap().clone();
    assert_eq!(options.len(), 1);
    assert!(options[0].leave_running, "{options:?}");
    assert!(options[0].image_path.ends_with("checkpoint"));
    assert!(options[0].image_path.is_absolute());
    let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n.ends_with("spec.dump")), "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.trim_end_matches('/').ends_with("checkpoint")),
        "{names:?}"
    );
    // The temporary export is gone, the container runs on.
    assert!(!options[0].image_path.exists());
    assert!(!options[0].work_path.exists());
    assert_eq!(
        state_of(&mut s, &id).await,
        cri::ContainerState::ContainerRunning as i32
    );

    // A directory receives the files.
    let dir = out.path().join("into");
    std::fs::create_dir(&dir).unwrap();
    checkpoint(&mut s, &id, &dir).await.unwrap();
    assert!(dir.join("checkpoint").is_dir());
    assert!(dir.join("spec.dump").is_file());
    assert_eq!(
        runtime.checkpoints.lock().unwrap()[1].image_path,
        dir.join("checkpoint")
    );
    // Twice into the same directory is refused before the runtime runs.
    let err = checkpoint(&mut s, &id, &dir).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // An existing file, a relative path, an unknown container.
    let err = checkpoint(&mut s, &id, &archive).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = checkpoint(&mut s, &id, Path::new("relative.tar"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = checkpoint(&mut s, "nope", &archive).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(runtime.checkpoints.lock().unwrap().len(), 2);

    remove_pod(&mut s.runtime, &pod).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_criu_fails_cleanly_and_the_container_runs_on() {
    if !need_runc() {
        return;
    }
    let recorder = tempfile::tempdir().unwrap();
    let runc = testkit::find_binary("runc").expect("runc");
    let wrapper = testkit::recording_runtime(recorder.path(), "runc", &runc).unwrap();
    let wrapper_path = wrapper.display().to_string();
    let mut s = TestServer::start(
        move |dir| {
            vec![handler(
                "runc",
                conmon_runtime(&wrapper_path, &[], dir),
                PodNamespaceJoin::Paths,
            )]
        },
        |_| {},
    )
    .await;
    s.import_busybox();
    let pod_config = pod_config("criu", &s.log_dir("criu"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runc").await;
    let id = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("c", &["sh", "-c", &idle_script("hi")]),
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("c.tar");
    let criu = testkit::find_binary("criu").is_some();
    let result = checkpoint(&mut s, &id, &archive).await;
    if criu {
        eprintln!("criu is installed here: the checkpoint may succeed");
        if result.is_ok() {
            assert!(archive.is_file());
        }
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message()
                .contains("cannot be checkpointed on this host"),
            "{err:?}"
        );
        assert!(err.message().to_lowercase().contains("criu"), "{err:?}");
        assert!(!archive.exists());
        eprintln!("refused as expected: {}", err.message());
    }
    // The exact runtime call.
    let calls = testkit::recorded_calls(recorder.path()).unwrap();
    let call = calls
        .iter()
        .find(|argv| argv.iter().any(|a| a == "checkpoint") && !argv.iter().any(|a| a == "--help"))
        .unwrap_or_else(|| panic!("no checkpoint call in {calls:?}"));
    assert!(call.iter().any(|a| a == "--leave-running"), "{call:?}");
    assert!(call.iter().any(|a| a == "--image-path"), "{call:?}");
    assert_eq!(call.last().unwrap(), &id, "{call:?}");
    // Still running, and answering.
    assert_eq!(
        state_of(&mut s, &id).await,
        cri::ContainerState::ContainerRunning as i32
    );
    assert_eq!(
        exec_text(&mut s.runtime, &id, &["echo", "alive"]).await,
        "alive"
    );
    let left: Vec<_> = std::fs::read_dir(s.state_dir().join("containers").join(&id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint"))
        .collect();
    assert!(left.is_empty(), "left of the attempt: {left:?}");

    remove_pod(&mut s.runtime, &pod).await;
    s.assert_nothing_left(&[&pod, &id]);
    s.finish().await;
}
