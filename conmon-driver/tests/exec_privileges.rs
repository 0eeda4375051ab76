//! Exec options podman has beyond the command: `privileged` (every
//! capability the host allows), the capability sets of a non-root exec
//! user, `cap_add`/`cap_drop` names, and `preserve_fds`, in real running
//! containers.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use conmon_driver::{CapabilityError, ConmonRuntime};
use runtime_api::{
    AttachOptions, AttachOutcome, AttachStreams, ContainerDescription, CreateOptions, ExecConfig,
    OciRuntime,
};

struct Running {
    runtime: ConmonRuntime,
    c: ContainerDescription,
    _bundle: testkit::Bundle,
    _dir: tempfile::TempDir,
    _cleanup: DeleteOnDrop,
}

async fn running_container(prefix: &str) -> Running {
    let s = setup("runc", &[]);
    let id = unique_id(prefix);
    let b = bundle(&["sleep", "1000"]);
    let c = s.describe(&id, &b).build().unwrap();
    let cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    Running {
        runtime: s.runtime,
        c,
        _bundle: b,
        _dir: s.dir,
        _cleanup: cleanup,
    }
}

impl Running {
    /// Runs `config`, returning its stdout and exit code.
    async fn run(&self, config: ExecConfig) -> (String, i32) {
        let out = Collector::default();
        let handle = self
            .runtime
            .exec(
                &self.c,
                &config,
                AttachStreams {
                    stdin: None,
                    stdout: Some(out.sink()),
                    stderr: None,
                },
                AttachOptions::default(),
            )
            .await
            .unwrap();
        let done = handle.completion.await.unwrap();
        assert_eq!(done.outcome, AttachOutcome::StreamsEnded);
        (
            String::from_utf8(out.bytes()).unwrap(),
            done.exit_code.unwrap(),
        )
    }

    /// The `Cap*` lines of `/proc/self/status` inside an exec.
    async fn capabilities(&self, config: ExecConfig) -> Vec<(String, String)> {
        let mut config = config;
        config.args = ["grep", "^Cap", "/proc/self/status"]
            .map(String::from)
            .to_vec();
        let (out, code) = self.run(config).await;
        assert_eq!(code, 0, "{out}");
        cap_lines(&out)
    }

    async fn finish(self) {
        self.runtime
            .stop(&self.c, Duration::from_secs(0), false)
            .await
            .unwrap();
        self.runtime.delete(&self.c).await.unwrap();
    }
}

fn cap_lines(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap"))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn line<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    &lines.iter().find(|(k, _)| k == key).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_exec_shows_the_full_capability_set() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-priv").await;
    // What this (root) caller holds is what a privileged exec may get.
    let own = cap_lines(&std::fs::read_to_string("/proc/self/status").unwrap());
    let full = line(&own, "CapBnd").to_string();

    let mut config = ExecConfig::new(["true"]);
    config.user = Some("0".into());
    let plain = r.capabilities(config.clone()).await;
    assert_ne!(
        line(&plain, "CapEff"),
        full,
        "the bundle's default set is smaller"
    );

    config.privileged = true;
    let privileged = r.capabilities(config).await;
    for key in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(line(&privileged, key), full, "{key}: {privileged:?}");
    }
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_exec_user_has_an_empty_effective_set() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-nonroot").await;
    let mut config = ExecConfig::new(["true"]);
    config.user = Some("1000:1000".into());
    let lines = r.capabilities(config).await;
    for key in ["CapEff", "CapPrm", "CapAmb"] {
        assert_eq!(line(&lines, key), "0000000000000000", "{key}: {lines:?}");
    }
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_capability_name_is_a_typed_error_naming_it() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-capname").await;
    let mut config = ExecConfig::new(["true"]);
    config.cap_add = vec!["NET_WIZARD".into()];
    let err = r
        .runtime
        .exec(
            &r.c,
            &config,
            AttachStreams {
                stdin: None,
                stdout: Some(Collector::default().sink()),
                stderr: None,
            },
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    match err.driver_error::<CapabilityError>() {
        Some(CapabilityError::Unknown { option, name }) => {
            assert_eq!((*option, name.as_str()), ("cap_add", "NET_WIZARD"));
        }
        other => panic!("expected an unknown capability, got {other:?} from {err}"),
    }
    // cap_add in podman's spelling works.
    let mut config = ExecConfig::new(["true"]);
    config.user = Some("0".into());
    config.cap_add = vec!["sys_ptrace".into()];
    let lines = r.capabilities(config).await;
    let eff = u64::from_str_radix(line(&lines, "CapEff"), 16).unwrap();
    assert_ne!(
        eff & (1 << 19),
        0,
        "CAP_SYS_PTRACE (19) is effective: {lines:?}"
    );
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserved_fds_reach_the_exec_process() {
    if !need_runc() {
        return;
    }
    let r = running_container("exec-fds").await;
    let (read, write) = nix::unistd::pipe().unwrap();
    let mut config = ExecConfig::new(["sh", "-c", "echo through-fd-3 >&3"]);
    config.preserve_fds = 1;
    let handle = r
        .runtime
        .exec_preserving(
            &r.c,
            &config,
            vec![write],
            AttachStreams {
                stdin: None,
                stdout: Some(Collector::default().sink()),
                stderr: None,
            },
            AttachOptions::default(),
        )
        .await
        .unwrap();
    let done = handle.completion.await.unwrap();
    assert_eq!(done.exit_code, Some(0));
    let text = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            std::fs::File::from(read).read_to_string(&mut text).unwrap();
            text
        }),
    )
    .await
    .expect("every writer of the pipe is gone once the session ended")
    .unwrap();
    assert_eq!(text, "through-fd-3\n");

    // A count that does not match the fds handed over is refused.
    config.preserve_fds = 2;
    let (_r, w) = nix::unistd::pipe().unwrap();
    let err = r
        .runtime
        .exec_preserving(
            &r.c,
            &config,
            vec![w],
            AttachStreams {
                stdin: None,
                stdout: Some(Collector::default().sink()),
                stderr: None,
            },
            AttachOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("preserves 2 fds"), "{err}");
    r.finish().await;
}
