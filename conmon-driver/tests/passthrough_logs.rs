//! The passthrough log driver: the container's stdio is what conmon was
//! given (podman hands conmon its own stdio), so its output reaches the
//! caller's stdout and stderr without any log file or attach socket.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use conmon_driver::{MonitorOptions, PassthroughStdio};
use runtime_api::{CreateOptions, LogConfig, LogDriver, OciRuntime};

fn pipe() -> (std::fs::File, std::os::fd::OwnedFd) {
    let (read, write) = nix::unistd::pipe().unwrap();
    (std::fs::File::from(read), write)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_output_reaches_the_callers_stdio() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("passthrough");
    let _cleanup = s.cleanup_on_drop(&id);
    let b = bundle(&["sh", "-c", "echo out-line; echo err-line >&2"]);
    let c = s
        .describe(&id, &b)
        .log_config(LogConfig::new(LogDriver::Passthrough))
        .build()
        .unwrap();
    let (mut out, out_w) = pipe();
    let (mut err, err_w) = pipe();
    let mut monitor = MonitorOptions::default();
    monitor.passthrough_stdio = Some(PassthroughStdio {
        stdin: std::fs::File::open("/dev/null").unwrap().into(),
        stdout: out_w,
        stderr: err_w,
    });
    s.runtime
        .create_with(&c, CreateOptions::default(), monitor)
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        0
    );
    s.runtime.delete(&c).await.unwrap();
    // Every writer is gone now (the container exited, conmon left): both
    // pipes end.
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    let mut stderr = String::new();
    err.read_to_string(&mut stderr).unwrap();
    assert_eq!(stdout, "out-line\n");
    assert!(stderr.contains("err-line\n"), "{stderr:?}");
    s.assert_nothing_left(&id);
}

#[tokio::test]
async fn passthrough_stdio_with_another_log_driver_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = testkit::fake_runtime(
        dir.path(),
        "fake-rt",
        testkit::FakeRuntimeBehaviour::Succeed,
    )
    .unwrap();
    let mut config = config(runtime.to_str().unwrap(), dir.path());
    config.conmon_path =
        Some(testkit::fake_conmon(dir.path(), testkit::FakeConmonBehaviour::NeverReports).unwrap());
    let s = setup_with(config, dir);
    let bundle = s.dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    let id = unique_id("not-passthrough");
    let c = runtime_api::ContainerDescription::builder(id.clone(), &bundle, s.run_dir(&id))
        .log(LogDriver::None, "/dev/null")
        .build()
        .unwrap();
    let (_out, out_w) = pipe();
    let (_err, err_w) = pipe();
    let mut monitor = MonitorOptions::default();
    monitor.passthrough_stdio = Some(PassthroughStdio {
        stdin: std::fs::File::open("/dev/null").unwrap().into(),
        stdout: out_w,
        stderr: err_w,
    });
    let err = s
        .runtime
        .create_with(&c, CreateOptions::default(), monitor)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("passthrough"), "{err}");
}
