//! Shared set-up for the driver's integration tests: a driver over a
//! private tmp dir, busybox bundles, unique ids, and leak checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use conmon_driver::{CgroupsMode, ConmonConfig, ConmonDescriptionExt, ConmonRuntime, LogLevel};
use runtime_api::{ContainerDescription, ContainerDescriptionBuilder, ContainerId, LogDriver};
use testkit::{require, Bundle, BundleBuilder, Need};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// An id unique across concurrently running test binaries.
pub fn unique_id(prefix: &str) -> ContainerId {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    ContainerId::new(format!("{prefix}-{}-{n}", std::process::id())).unwrap()
}

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

/// A driver plus the temp dir holding its tmp dir and the run dirs.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub runtime: ConmonRuntime,
}

pub fn config(runtime: &str, dir: &Path) -> ConmonConfig {
    let mut config = ConmonConfig::new(runtime, dir.join("tmp"));
    config.log_level = LogLevel::Warning;
    // The host's syslog may be absent; conmon's own stderr is enough here.
    config.syslog = false;
    config.timeouts.create = Duration::from_secs(60);
    config
}

pub fn setup(runtime: &str, flags: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(runtime, dir.path());
    config.runtime_flags = flags.iter().map(|f| f.to_string()).collect();
    let runtime = ConmonRuntime::new(config).unwrap();
    Setup { dir, runtime }
}

pub fn setup_with(config: ConmonConfig, dir: tempfile::TempDir) -> Setup {
    let runtime = ConmonRuntime::new(config).unwrap();
    Setup { dir, runtime }
}

impl Setup {
    pub fn run_dir(&self, id: &ContainerId) -> PathBuf {
        self.dir.path().join("run").join(id.as_str())
    }

    pub fn log_path(&self, id: &ContainerId) -> PathBuf {
        self.dir.path().join("logs").join(format!("{id}.log"))
    }

    /// Deletes container `id` from the runtime when dropped, so that a
    /// failing assertion does not leave a container running.
    pub fn cleanup_on_drop(&self, id: &ContainerId) -> DeleteOnDrop {
        DeleteOnDrop {
            runtime: self.runtime.runtime_path().to_path_buf(),
            flags: self.runtime.config().runtime_flags.clone(),
            id: id.to_string(),
        }
    }

    pub fn describe(&self, id: &ContainerId, bundle: &Bundle) -> ContainerDescriptionBuilder {
        std::fs::create_dir_all(self.dir.path().join("logs")).unwrap();
        ContainerDescription::builder(id.clone(), bundle.path(), self.run_dir(id))
            .log(LogDriver::KubernetesFile, self.log_path(id))
            // conmon's own cgroup placement is tested in placement.rs with
            // per-test parents; here it would leave podman's shared
            // `/libpod_parent` behind in every hierarchy.
            .cgroups_mode(CgroupsMode::NoConmon)
    }

    /// Fails the test if anything of container `id` is left: a process
    /// whose command line names it, its exit file, its persist dir.
    pub fn assert_nothing_left(&self, id: &ContainerId) {
        let procs = processes_mentioning(id.as_str());
        assert!(
            procs.is_empty(),
            "processes left behind for {id}: {procs:?}"
        );
        let tmp = self.runtime.config().tmp_dir.clone();
        for leftover in [
            tmp.join("exits").join(id.as_str()),
            tmp.join("persist").join(id.as_str()),
        ] {
            assert!(!leftover.exists(), "{} left behind", leftover.display());
        }
    }
}

/// See [`Setup::cleanup_on_drop`].
pub struct DeleteOnDrop {
    runtime: PathBuf,
    flags: Vec<String>,
    id: String,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        // Unconditionally: a test whose assertion failed on another thread
        // (a spawned task) is not "panicking" on this one. Deleting a
        // container that the test already deleted is a harmless no-op.
        let _ = std::process::Command::new(&self.runtime)
            .args(&self.flags)
            .args(["delete", "--force", &self.id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

pub fn bundle(args: &[&str]) -> Bundle {
    BundleBuilder::new()
        .args(args.iter().copied())
        .build()
        .unwrap()
}

/// Processes (other than this one) whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// Shell text a container runs once it is ready (its traps are set): it
/// drops `/ready` into its root filesystem with an atomic rename.
pub const ANNOUNCE_READY: &str = "echo 0 > /ready.tmp && mv /ready.tmp /ready";

/// Waits (on inotify, through the exit-file watcher, since the marker holds
/// an integer) until the container in `bundle` has announced readiness.
pub async fn await_ready(bundle: &Bundle) {
    let marker = bundle.rootfs().join("ready");
    state_probe::wait_for_exit_file(&marker, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("container never announced readiness: {e}"));
}

/// An `AsyncWrite` that collects everything written, shareable with the
/// test that reads it afterwards.
#[derive(Clone, Default)]
pub struct Collector(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Collector {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
    pub fn sink(&self) -> runtime_api::OutputStream {
        Box::pin(self.clone())
    }
}

impl tokio::io::AsyncWrite for Collector {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// An `AsyncRead` that hands out one chunk per read, then never ends, so
/// a test controls exactly how input is split across reads.
pub struct Chunks(pub std::collections::VecDeque<Vec<u8>>);

impl tokio::io::AsyncRead for Chunks {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.0.pop_front() {
            Some(chunk) => {
                buf.put_slice(&chunk);
                std::task::Poll::Ready(Ok(()))
            }
            None => std::task::Poll::Pending,
        }
    }
}

/// Builds example `name` (`cargo test --test` does not build examples)
/// with the profile this test was built with, and returns its path.
pub fn example_binary(name: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // target/<profile>/deps/<this test> -> the profile this test was built
    // with.
    let exe = std::env::current_exe().unwrap();
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .map(|n| if n == "debug" { "dev" } else { n })
        .unwrap_or("dev")
        .to_string();
    let output = std::process::Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
            "--profile",
            &profile,
            "-p",
            "conmon-driver",
            "--example",
            name,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(output.status.success(), "cargo build failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no {name} executable"))
}
