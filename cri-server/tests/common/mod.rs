//! Shared set-up for the CRI tests: an OCI image layout built from the
//! host's static busybox, a server on a private Unix socket over the conmon
//! driver (or any runtime), the generated CRI clients connected to it, and
//! leak checks.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cri::image_service_client::ImageServiceClient;
use cri::runtime_service_client::RuntimeServiceClient;
use cri_server::k8s_cri::v1 as cri;
use cri_server::{bind, serve, Engine, PodNamespaceJoin, RuntimeHandler, ServerConfig};
use hyper_util::rt::TokioIo;
use runtime_api::OciRuntime;
use sha2::{Digest, Sha256};
use testkit::{require, Need};
use tonic::transport::{Channel, Endpoint, Uri};

/// The name the tests import the busybox image under.
pub const IMAGE: &str = "busybox:1.36";
/// Its normalized form.
pub const IMAGE_FULL: &str = "docker.io/library/busybox:1.36";
/// The pause command the tests' infra containers run.
pub const PAUSE: [&str; 2] = ["sleep", "2147483647"];

pub fn need_runc() -> bool {
    require(&[
        Need::Root,
        Need::Binary("runc"),
        Need::Binary("conmon"),
        Need::Binary("busybox"),
    ])
}

pub fn need_runsc() -> bool {
    require(&[
        Need::Root,
        Need::Binary("runsc"),
        Need::Binary("conmon"),
        Need::Binary("busybox"),
    ])
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let hex = sha256_hex(bytes);
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
tester:x:1234:1234:tester:/home/tester:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\ntester:x:1234:\nextra:x:2000:tester\n";

/// Writes an OCI image layout at `dir` holding one image tagged `1.36`:
/// one gzip layer with the host's static busybox, an applet symlink for
/// every applet, `/etc/passwd` and `/etc/group` (root, nobody, tester
/// 1234 in `extra` 2000), and a config with `Cmd ["sh"]`.
pub fn busybox_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("busybox-layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let busybox = fs::read("/bin/busybox").expect("static busybox at /bin/busybox");
    let applets = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets = String::from_utf8(applets.stdout).unwrap();

    let mut tar = tar::Builder::new(Vec::new());
    let dir_entry = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        tar.append_data(&mut h, path, &[][..]).unwrap();
    };
    for d in [
        "bin", "etc", "dev", "proc", "sys", "root", "home", "var", "run",
    ] {
        dir_entry(&mut tar, d, 0o755);
    }
    dir_entry(&mut tar, "tmp", 0o1777);
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(1234);
    h.set_gid(1234);
    h.set_size(0);
    tar.append_data(&mut h, "home/tester", &[][..]).unwrap();
    let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data).unwrap();
    };
    file(&mut tar, "bin/busybox", 0o755, &busybox);
    file(&mut tar, "etc/passwd", 0o644, PASSWD.as_bytes());
    file(&mut tar, "etc/group", 0o644, GROUP.as_bytes());
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let plain = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(&plain));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let layer = gz.finish().unwrap();
    let (layer_digest, layer_size) = write_blob(&layout, &layer);

    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let (config_digest, config_size) = write_blob(&layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = write_blob(&layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "1.36"},
        }],
    });
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

/// A conmon-driven runtime for `runtime` (`runc`, `runsc`) with global
/// `flags`, its files under `dir`.
pub fn conmon_runtime(runtime: &str, flags: &[&str], dir: &Path) -> Arc<dyn OciRuntime> {
    let mut config =
        conmon_driver::ConmonConfig::new(runtime, dir.join(format!("conmon-{runtime}")));
    config.log_level = conmon_driver::LogLevel::Warning;
    config.syslog = false;
    config.timeouts.create = Duration::from_secs(60);
    config.runtime_flags = flags.iter().map(|f| f.to_string()).collect();
    Arc::new(conmon_driver::ConmonRuntime::new(config).unwrap())
}

/// A handler over `runtime` whose containers leave conmon in the test's
/// cgroup (per-container conmon cgroups are the driver's own tests').
pub fn handler(name: &str, runtime: Arc<dyn OciRuntime>, join: PodNamespaceJoin) -> RuntimeHandler {
    use conmon_driver::{CgroupsMode, ConmonDescriptionExt};
    RuntimeHandler::new(name, runtime)
        .with_join(join)
        .with_description_hook(Arc::new(|b| b.cgroups_mode(CgroupsMode::NoConmon)))
}

/// A server on a private socket, its directories, and clients.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub engine: Arc<Engine>,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<cri_server::Result<()>>>,
}

impl TestServer {
    /// Starts a server whose handlers come from `handlers` (given the
    /// test's directory); `prepare` runs on the state directory before the
    /// engine opens it (to import images with the binary).
    pub async fn start(
        handlers: impl FnOnce(&Path) -> Vec<RuntimeHandler>,
        prepare: impl FnOnce(&Path),
    ) -> Self {
        Self::start_with(handlers, prepare, |_| {}).await
    }

    /// A server with one `runc` handler joining pods by path, the busybox
    /// image imported.
    pub async fn start_runc() -> Self {
        let s = Self::start(
            |dir| {
                vec![handler(
                    "runc",
                    conmon_runtime("runc", &[], dir),
                    PodNamespaceJoin::Paths,
                )]
            },
            |_| {},
        )
        .await;
        s.import_busybox();
        s
    }

    /// A server with one `runsc` handler (`--network=none`) whose
    /// containers are sandboxes of their own, the busybox image imported.
    pub async fn start_runsc() -> Self {
        let s = Self::start(
            |dir| {
                vec![handler(
                    "runsc",
                    conmon_runtime("runsc", &["--network=none"], dir),
                    PodNamespaceJoin::Isolated,
                )]
            },
            |_| {},
        )
        .await;
        s.import_busybox();
        s
    }

    /// Stops serving and waits for the server to finish.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("server did not shut down")
                .unwrap()
                .unwrap();
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_dir(&self, pod: &str) -> PathBuf {
        self.dir.path().join("logs").join(pod)
    }

    /// Imports the busybox layout through the library call.
    pub fn import_busybox(&self) {
        let layout = busybox_layout(self.dir.path());
        self.engine.images().import_layout(&layout, IMAGE).unwrap();
    }

    /// Fails the test if anything of the server's pods and containers is
    /// left: bundle or run directories, or a process naming an id.
    pub fn assert_nothing_left(&self, ids: &[&str]) {
        for sub in ["state/pods", "state/containers", "run"] {
            let path = self.dir.path().join(sub);
            let left: Vec<_> = fs::read_dir(&path)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "{} keeps {left:?}", path.display());
        }
        for id in ids {
            let procs = processes_mentioning(id);
            assert!(procs.is_empty(), "processes left for {id}: {procs:?}");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            // Not finished: the test failed half-way. Its containers must
            // not outlive it (other runs count leftovers).
            delete_containers_under(self.dir.path());
        }
    }
}

/// Force-deletes every runc and runsc container whose bundle lies under
/// `dir`, each call bounded by coreutils' `timeout`.
pub fn delete_containers_under(dir: &Path) {
    let run = |args: &[&str]| {
        std::process::Command::new("timeout")
            .arg("30")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
    };
    for (runtime, flags) in [("runc", &[][..]), ("runsc", &["--network=none"][..])] {
        if !testkit::Need::Binary(runtime).is_met() {
            continue;
        }
        let mut list = vec![runtime];
        list.extend_from_slice(flags);
        list.extend(["list", "--format", "json"]);
        let Some(out) = run(&list) else { continue };
        let listed: Vec<serde_json::Value> = serde_json::from_slice::<Option<Vec<_>>>(&out.stdout)
            .ok()
            .flatten()
            .unwrap_or_default();
        for c in listed {
            let (Some(id), Some(bundle)) = (c["id"].as_str(), c["bundle"].as_str()) else {
                continue;
            };
            if Path::new(bundle).starts_with(dir) {
                let mut delete = vec![runtime];
                delete.extend_from_slice(flags);
                delete.extend(["delete", "--force", id]);
                eprintln!("deleting {runtime} container {id} left by the failed test");
                let _ = run(&delete);
            }
        }
    }
}

/// Imports the busybox layout built under `dir` into the state directory
/// `state` with the `cri-server import` subcommand, as an operator would.
pub fn import_with_binary(dir: &Path, state: &Path) {
    let layout = busybox_layout(dir);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cri-server"))
        .args(["import", "--state-dir"])
        .arg(state)
        .arg(&layout)
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(IMAGE_FULL));
}

/// A channel to the CRI socket at `path`.
pub async fn connect(path: &Path) -> Channel {
    let path = path.to_path_buf();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap()
}

/// Processes (other than this one) whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// A pod config named `name` (unique uid), logging under `log_dir`.
pub fn pod_config(name: &str, log_dir: &Path) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: log_dir.display().to_string(),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        annotations: HashMap::from([("note".to_string(), "test".to_string())]),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

/// A container config named `name` running `command` in the busybox image.
pub fn container_config(name: &str, command: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("container".to_string(), name.to_string())]),
        ..Default::default()
    }
}

/// A shell script for a long-running container: it prints `greeting`,
/// exits 0 on SIGTERM, and otherwise idles in short sleeps (the trap runs
/// between commands).
pub fn idle_script(greeting: &str) -> String {
    format!("echo {greeting}; echo to-stderr >&2; trap 'exit 0' TERM; while :; do sleep 0.1; done")
}

/// Runs `cmd` in container `id` through ExecSync.
pub async fn exec(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<cri::ExecSyncResponse, tonic::Status> {
    client
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        })
        .await
        .map(|r| r.into_inner())
}

/// critest's "runtime should support execSync with timeout": `sleep 4321`
/// with a 1 s timeout answers DeadlineExceeded (what the kubelet reads as a
/// timed-out probe) well before it would end, and no `sleep 4321` is left
/// in the container afterwards.
pub async fn assert_exec_sync_timeout(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    let began = std::time::Instant::now();
    let err = exec(client, id, &["sleep", "4321"], 1).await.unwrap_err();
    let took = began.elapsed();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(20),
        "{took:?}"
    );
    // The bracket keeps the shell's own command line from matching.
    let left = exec_text(
        client,
        id,
        &["sh", "-c", "ps | grep '[s]leep 4321' || true"],
    )
    .await;
    assert_eq!(left, "", "the timed-out process is left in the container");
}

/// The stdout of a successful exec as text, trimmed.
pub async fn exec_text(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[&str],
) -> String {
    let out = exec(client, id, cmd, 30).await.unwrap();
    assert_eq!(
        out.exit_code,
        0,
        "{cmd:?}: stdout {:?} stderr {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs a pod and returns its id.
pub async fn run_pod(
    client: &mut RuntimeServiceClient<Channel>,
    config: cri::PodSandboxConfig,
    handler: &str,
) -> String {
    client
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: handler.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id
}

/// Creates and starts a container; returns its id.
pub async fn run_container(
    client: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    pod_config: &cri::PodSandboxConfig,
    config: cri::ContainerConfig,
) -> String {
    let id = client
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    client
        .start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    id
}

/// Stops and removes pod `id`.
pub async fn remove_pod(client: &mut RuntimeServiceClient<Channel>, id: &str) {
    client
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .unwrap();
    client
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .unwrap();
}

// ----- stats, events and checkpoint helpers -----

/// Subscribes to the server's container events.
pub async fn subscribe_events(
    client: &mut RuntimeServiceClient<Channel>,
) -> tonic::Streaming<cri::ContainerEventResponse> {
    client
        .get_container_events(cri::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// The next event of `events`, failing the test past `limit`.
pub async fn next_event(
    events: &mut tonic::Streaming<cri::ContainerEventResponse>,
    limit: Duration,
) -> cri::ContainerEventResponse {
    tokio::time::timeout(limit, events.message())
        .await
        .unwrap_or_else(|_| panic!("no event within {limit:?}"))
        .unwrap()
        .expect("the event stream ended")
}

/// Calls `probe` until it returns `Some`, at most until `limit`, with a
/// short pause between calls (a bounded poll on the probed call itself).
pub async fn poll_until<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl TestServer {
    /// [`TestServer::start`] with `configure` applied to the server's
    /// configuration before the engine opens.
    pub async fn start_with(
        handlers: impl FnOnce(&Path) -> Vec<RuntimeHandler>,
        prepare: impl FnOnce(&Path),
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cri-test-")
            .tempdir()
            .unwrap();
        let state = dir.path().join("state");
        prepare(&state);
        let mut handlers = handlers(dir.path());
        let first = handlers.remove(0);
        let mut config = ServerConfig::new(&state, dir.path().join("run"), first);
        config.handlers.extend(handlers);
        config.pause_image = IMAGE.into();
        config.pause_command = PAUSE.iter().map(|s| s.to_string()).collect();
        configure(&mut config);
        let engine = Arc::new(Engine::new(config).unwrap());
        let socket = dir.path().join("cri.sock");
        let listener = bind(&socket).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(engine.clone(), listener, async {
            let _ = stopped.await;
        }));
        let channel = connect(&socket).await;
        Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            dir,
            socket,
            engine,
            stop: Some(stop),
            task: Some(task),
        }
    }
}
