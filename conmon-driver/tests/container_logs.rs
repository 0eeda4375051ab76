//! Following a real container's `k8s-file` log: lines written after the
//! follower started arrive, conmon's rotation at a small `--log-size-max`
//! loses none of them, and the follower ends once the container exited.
//! Each line is written through the container's stdin only after the
//! previous one was seen, so the test needs no timing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use conmon_driver::LogOptions;
use runtime_api::{
    AttachOptions, AttachReady, AttachStreams, CreateOptions, LogConfig, LogDriver, OciRuntime,
};
use tokio::io::AsyncWriteExt;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sees_new_lines_across_rotations_and_ends_after_exit() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("follow");
    let b = bundle(&["cat"]);
    let log_path = s.log_path(&id);
    let c = s
        .describe(&id, &b)
        .stdin(true)
        .log_config(
            LogConfig::new(LogDriver::KubernetesFile)
                .with_path(&log_path)
                .with_size_max(300),
        )
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let runtime = Arc::new(s.runtime);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let (mut input, attach) = start_with_stdin(&runtime, &c).await;

    let mut follower = runtime.logs(&c, LogOptions::default().follow()).unwrap();
    for i in 0..40 {
        let text = format!("line-{i:03}");
        input
            .write_all(format!("{text}\n").as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(LIMIT, follower.next_line())
            .await
            .expect("the line reaches the follower")
            .unwrap()
            .expect("the follower goes on while the container runs");
        assert_eq!(line.text, text);
    }
    // 40 records of ~50 bytes went through a 300-byte log: it rotated.
    let kept = std::fs::read_to_string(&log_path).unwrap();
    assert!(kept.lines().count() < 40, "no rotation happened: {kept}");

    drop(input);
    let end = tokio::time::timeout(LIMIT, follower.next_line())
        .await
        .expect("the follower ends after the container exits")
        .unwrap();
    assert_eq!(end, None);
    let _ = attach.await;
    assert_eq!(runtime.wait(&c, LIMIT).await.unwrap(), 0);
    runtime.delete(&c).await.unwrap();
}

/// Log rotation by the engine (CRI's `ReopenContainerLog`): the log is
/// renamed away, `reopen_log` makes conmon open a new file at the path,
/// and later output goes there while the renamed file keeps the earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_log_after_a_rename_writes_a_new_file() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("reopen");
    let b = bundle(&["cat"]);
    let log_path = s.log_path(&id);
    let c = s
        .describe(&id, &b)
        .stdin(true)
        .log_config(LogConfig::new(LogDriver::KubernetesFile).with_path(&log_path))
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let runtime = Arc::new(s.runtime);
    runtime.create(&c, CreateOptions::default()).await.unwrap();
    let (mut input, attach) = start_with_stdin(&runtime, &c).await;
    let mut follower = runtime.logs(&c, LogOptions::default().follow()).unwrap();
    say(&mut input, &mut follower, "before-rotation").await;
    let rotated = log_path.with_extension("1");
    std::fs::rename(&log_path, &rotated).unwrap();
    runtime.reopen_log(&c).await.unwrap();
    say(&mut input, &mut follower, "after-rotation").await;

    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        old.contains("before-rotation") && !old.contains("after-rotation"),
        "{old}"
    );
    assert!(
        new.contains("after-rotation") && !new.contains("before-rotation"),
        "{new}"
    );

    drop(input);
    let _ = attach.await;
    assert_eq!(runtime.wait(&c, LIMIT).await.unwrap(), 0);
    let gone = runtime.reopen_log(&c).await.unwrap_err();
    assert!(
        matches!(gone, runtime_api::RuntimeError::ContainerNotRunning { .. }),
        "{gone:?}"
    );
    runtime.delete(&c).await.unwrap();
}

/// Writes `text` as a line to the container's stdin and waits for the
/// follower to read it back from the log.
async fn say(
    input: &mut tokio::io::DuplexStream,
    follower: &mut conmon_driver::LogReader,
    text: &str,
) {
    input
        .write_all(format!("{text}\n").as_bytes())
        .await
        .unwrap();
    let line = tokio::time::timeout(LIMIT, follower.next_line())
        .await
        .expect("the line reaches the follower")
        .unwrap()
        .expect("the follower goes on while the container runs");
    assert_eq!(line.text, text);
}

/// Attaches a pipe to created container `c`'s stdin, then starts it;
/// returns the pipe's writing end and the attach task.
async fn start_with_stdin(
    runtime: &Arc<conmon_driver::ConmonRuntime>,
    c: &runtime_api::ContainerDescription,
) -> (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<runtime_api::Result<runtime_api::AttachOutcome>>,
) {
    let (input, container_stdin) = tokio::io::duplex(1024);
    let ready = AttachReady::new();
    let attach = {
        let runtime = Arc::clone(runtime);
        let c = c.clone();
        let options = AttachOptions::default()
            .with_detach_keys("")
            .with_ready(ready.clone());
        tokio::spawn(async move {
            let streams = AttachStreams {
                stdin: Some(Box::pin(container_stdin)),
                stdout: None,
                stderr: None,
            };
            runtime.attach(&c, streams, options).await
        })
    };
    tokio::time::timeout(LIMIT, ready.wait())
        .await
        .expect("attach connected");
    runtime.start(c).await.unwrap();
    (input, attach)
}
