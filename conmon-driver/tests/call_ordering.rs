//! Calls on one container that meet after a caller gave up: the runtime
//! command of an abandoned `start` goes on in the background, and a retried
//! `start` or a `delete` of the same container waits for it instead of
//! racing it, then answers from the state it left. Real conmon and runc,
//! behind a wrapper that holds the first `start` at a gate the test opens.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use runtime_api::{ContainerStatus, CreateOptions, OciRuntime, RuntimeError};

/// A runtime that logs each start, delete, pause and resume it runs
/// (`begin`, `end`), and holds the first start until `gate` is written.
fn gated_runtime(dir: &Path, runc: &Path) -> std::path::PathBuf {
    for fifo in ["began", "gate"] {
        nix::unistd::mkfifo(
            &dir.join(fifo),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
    }
    let d = dir.display();
    let script = format!(
        r#"#!/bin/sh
sub=
for a in "$@"; do case "$a" in start|delete|pause|resume) sub=$a; break;; esac; done
[ -n "$sub" ] && echo "begin $sub" >> {d}/calls
if [ "$sub" = start ] && mkdir {d}/gated 2>/dev/null; then
    echo begun > {d}/began
    read line < {d}/gate
fi
{runc} "$@"
rc=$?
[ -n "$sub" ] && echo "end $sub" >> {d}/calls
exit $rc
"#,
        runc = runc.display()
    );
    let path = dir.join("gated-runc");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Blocks (off the runtime, bounded) until the FIFO `path` is read or
/// written by the other side.
async fn fifo(path: &Path, write: bool) {
    let path = path.to_path_buf();
    let task = tokio::task::spawn_blocking(move || {
        if write {
            std::fs::write(&path, b"go\n").unwrap();
        } else {
            std::fs::read_to_string(&path).unwrap();
        }
    });
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the other end of the FIFO never came")
        .unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Second {
    Start,
    Delete,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_after_an_abandoned_start_wait_for_its_command() {
    if !need_runc() {
        return;
    }
    for second in [Second::Start, Second::Delete] {
        let s = setup("runc", &[]);
        let control = s.dir.path().join("control");
        std::fs::create_dir(&control).unwrap();
        let mut config = s.runtime.config().clone();
        config.runtime_paths = vec![gated_runtime(&control, s.runtime.runtime_path())];
        let runtime = std::sync::Arc::new(conmon_driver::ConmonRuntime::new(config).unwrap());

        let id = unique_id("order");
        let _cleanup = s.cleanup_on_drop(&id);
        let b = bundle(&["sleep", "60"]);
        let c = s.describe(&id, &b).build().unwrap();
        runtime.create(&c, CreateOptions::default()).await.unwrap();

        let first = tokio::spawn({
            let (runtime, c) = (runtime.clone(), c.clone());
            async move { runtime.start(&c).await }
        });
        fifo(&control.join("began"), false).await;
        // The caller gives up while the runtime's start is held.
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());

        let mut retry = tokio::spawn({
            let (runtime, c) = (runtime.clone(), c.clone());
            async move {
                match second {
                    Second::Start => runtime.start(&c).await,
                    Second::Delete => runtime.delete(&c).await,
                }
            }
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut retry)
                .await
                .is_err(),
            "{second:?} finished while the abandoned start still ran"
        );
        fifo(&control.join("gate"), true).await;
        let answer = tokio::time::timeout(Duration::from_secs(60), retry)
            .await
            .expect("the retry ends once the first start ended")
            .unwrap();
        match second {
            Second::Start => assert!(
                matches!(&answer, Err(RuntimeError::InvalidArgument(m)) if m.contains("started already")),
                "{answer:?}"
            ),
            Second::Delete => assert!(
                matches!(&answer, Err(RuntimeError::ContainerRunning { .. })),
                "{answer:?}"
            ),
        }
        assert_eq!(
            runtime.status(&c).await.unwrap().status,
            ContainerStatus::Running,
            "{second:?}"
        );

        // No two runtime commands of the container overlapped.
        let calls = std::fs::read_to_string(control.join("calls")).unwrap();
        let mut open: Option<&str> = None;
        for line in calls.lines() {
            match (line.split_once(' '), open) {
                (Some(("begin", sub)), None) => open = Some(sub),
                (Some(("end", sub)), Some(o)) if o == sub => open = None,
                _ => panic!("{second:?}: runtime calls overlap:\n{calls}"),
            }
        }
        assert_eq!(open, None, "{calls}");

        runtime
            .stop(&c, Duration::from_secs(1), false)
            .await
            .unwrap();
        runtime.delete(&c).await.unwrap();
        s.assert_nothing_left(&id);
    }
}
