//! A server killed with SIGKILL and started again over the same state
//! directory takes its pods and containers back: conmon kept them running,
//! a container that exited while the server was down is reported exited
//! with its exit code, and everything is then stopped and removed cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use cri_server::k8s_cri::v1 as cri;
use cri_server::k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// The `cri-server serve` process, its stderr relayed to the test's.
struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts the binary over `dir`'s state with `handler` options and
    /// waits for the line saying it serves (the socket is bound before that
    /// line is written).
    fn start(dir: &Path, handler: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cri-server"))
            .arg("serve")
            .args(handler)
            .arg("--socket")
            .arg(dir.join("cri.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .args(["--pause-image", IMAGE])
            .args(PAUSE.iter().flat_map(|a| ["--pause-command", a]))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (ready, serving) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[cri-server {}] {line}", std::process::id());
                if line.contains("serving CRI v1") {
                    let _ = ready.send(());
                }
            }
        });
        if serving.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("cri-server serve did not start serving within 60 s");
        }
        Self { child }
    }

    /// SIGKILL, and waits for the process to be gone.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits for a clean exit.
    fn terminate(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "cri-server exited with {status}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn status(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> (cri::ContainerStatus, serde_json::Value) {
    let r = client
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let info = serde_json::from_str(&r.info["info"]).unwrap();
    (r.status.unwrap(), info)
}

/// The conmon monitoring container `id`.
fn conmon_of(id: &str) -> i32 {
    let monitors: Vec<i32> = processes_mentioning(id)
        .into_iter()
        .filter(|(_, cmdline)| cmdline.starts_with("conmon ") || cmdline.contains("/conmon "))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(monitors.len(), 1, "conmon processes of {id}: {monitors:?}");
    monitors[0]
}

/// The runtime binary and global flags the `handler` options name.
fn runtime_of<'a>(handler: &[&'a str]) -> (&'a str, Vec<&'a str>) {
    let runtime = handler[1];
    let flags = handler
        .windows(2)
        .filter(|w| w[0] == "--runtime-flag")
        .filter_map(|w| w[1].strip_prefix(&format!("{runtime}=")))
        .collect();
    (runtime, flags)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_takes_back_its_runc_pods_and_containers() {
    if need_runc() {
        restart_scenario(&["--handler", "runc"]).await;
    }
}

/// runsc's containers are sandboxes of their own (see docs/cri.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_takes_back_its_runsc_pods_and_containers() {
    if need_runsc() {
        restart_scenario(&[
            "--handler",
            "runsc",
            "--runtime-flag",
            "runsc=--network=none",
            "--isolated",
            "runsc",
        ])
        .await;
    }
}

async fn restart_scenario(handler: &[&str]) {
    let dir = tempfile::Builder::new()
        .prefix("cri-restart-")
        .tempdir()
        .unwrap();
    let root = dir.path().to_path_buf();
    import_with_binary(&root, &root.join("state"));
    let cleanup = Cleanup(root.clone());

    let server = ServerProcess::start(&root, handler);
    let mut client = RuntimeServiceClient::new(connect(&root.join("cri.sock")).await);
    let pod_cfg = pod_config("restart", &root.join("logs"));
    let pod = run_pod(&mut client, pod_cfg.clone(), "").await;
    let idle = run_container(
        &mut client,
        &pod,
        &pod_cfg,
        container_config("idle", &["sh", "-c", &idle_script("idling")]),
    )
    .await;
    let waiter = run_container(
        &mut client,
        &pod,
        &pod_cfg,
        container_config(
            "waiter",
            &[
                "sh",
                "-c",
                "trap 'exit 3' TERM; while :; do sleep 0.1; done",
            ],
        ),
    )
    .await;
    let waiter_conmon = conmon_of(&waiter);
    let (_, info) = status(&mut client, &idle).await;
    let idle_pid = info["pid"].as_i64().unwrap();
    drop(client);

    server.kill();
    // The waiter ends while no server runs, told by the runtime itself;
    // its conmon writes the exit file and exits.
    let (runtime, flags) = runtime_of(handler);
    let out = Command::new(runtime)
        .args(&flags)
        .args(["kill", &waiter, "TERM"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        state_probe::wait_for_exit(waiter_conmon, Duration::from_secs(30))
            .await
            .unwrap(),
        "the waiter's conmon did not exit"
    );

    let server = ServerProcess::start(&root, handler);
    let mut client = RuntimeServiceClient::new(connect(&root.join("cri.sock")).await);
    let pods = client
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0].id, pod);
    assert_eq!(pods[0].state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(pods[0].metadata, pod_cfg.metadata);

    let containers = client
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .containers;
    let state_of = |id: &str| containers.iter().find(|c| c.id == id).map(|c| c.state);
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert_eq!(
        state_of(&idle),
        Some(cri::ContainerState::ContainerRunning as i32)
    );
    assert_eq!(
        state_of(&waiter),
        Some(cri::ContainerState::ContainerExited as i32)
    );

    let (exited, _) = status(&mut client, &waiter).await;
    assert_eq!(exited.exit_code, 3, "{exited:?}");
    assert_eq!(exited.reason, "Error");
    assert!(exited.finished_at >= exited.started_at && exited.finished_at > 0);
    let (running, info) = status(&mut client, &idle).await;
    assert_eq!(info["pid"].as_i64(), Some(idle_pid), "{running:?}");
    assert_eq!(
        exec_text(&mut client, &idle, &["echo", "still-driven"]).await,
        "still-driven"
    );

    // The restarted server watches the containers it took back: one
    // ending on its own (told by the runtime's CLI) sends STOPPED.
    let mut events = subscribe_events(&mut client).await;
    let out = Command::new(runtime)
        .args(&flags)
        .args(["kill", &idle, "TERM"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event = next_event(&mut events, Duration::from_secs(30)).await;
    assert_eq!(event.container_id, idle, "{event:?}");
    assert_eq!(
        event.container_event_type,
        cri::ContainerEventType::ContainerStoppedEvent as i32,
        "{event:?}"
    );
    drop(events);

    // The names stay reserved across the restart.
    let again = client
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config("idle", &["true"])),
            sandbox_config: Some(pod_cfg.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

    remove_pod(&mut client, &pod).await;
    let left = client
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(left.is_empty(), "{left:?}");
    drop(client);
    server.terminate();

    for sub in ["state/pods", "state/containers", "run/containers"] {
        let path = root.join(sub);
        let entries: Vec<PathBuf> = std::fs::read_dir(&path)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(entries.is_empty(), "{} keeps {entries:?}", path.display());
    }
    for id in [&pod, &idle, &waiter] {
        let procs = processes_mentioning(id);
        assert!(procs.is_empty(), "processes left for {id}: {procs:?}");
    }
    drop(cleanup);
}

/// Force-deletes what a failed run left (a passing run leaves nothing).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            delete_containers_under(&self.0);
        }
    }
}
