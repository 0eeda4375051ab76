//! Creates that meet: a retry right after a cancelled create, and a
//! runtime whose `state` fails before a create. None of them may harm
//! another caller's container. Real conmon and runc. (Two creates of one
//! id racing, 100 rounds, is a row of the fault matrix.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use runtime_api::{ContainerStatus, CreateOptions, OciRuntime, RuntimeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_cancelled_create_gets_a_working_container() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let runtime = &s.runtime;
    let b = bundle(&["sh", "-c", "exit 4"]);
    // Cancellation points spread over the launch: before conmon runs,
    // while the runtime creates, around the sync record.
    for (round, after) in [0u64, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120]
        .into_iter()
        .enumerate()
    {
        let id = unique_id("retry");
        let _cleanup = s.cleanup_on_drop(&id);
        let c = s.describe(&id, &b).build().unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(after),
            runtime.create(&c, CreateOptions::default()),
        )
        .await;
        if let Ok(done) = cancelled {
            // Finished before the cancellation point: clean up and go on.
            done.unwrap();
            runtime.delete(&c).await.unwrap();
            continue;
        }
        // The retry waits for the abandoned create's undo, then creates.
        runtime
            .create(&c, CreateOptions::default())
            .await
            .unwrap_or_else(|e| panic!("round {round} (cancelled after {after} ms): {e:?}"));
        runtime.start(&c).await.unwrap();
        assert_eq!(
            runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
            4,
            "round {round}"
        );
        runtime.delete(&c).await.unwrap();
        s.assert_nothing_left(&id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_state_probe_refuses_the_create_and_the_container_survives() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("noanswer");
    let _cleanup = s.cleanup_on_drop(&id);
    let b = bundle(&["sleep", "60"]);
    let c = s.describe(&id, &b).build().unwrap();
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();

    // A second driver on the same files whose runtime cannot answer
    // `state` but does everything else as runc.
    let wrapper = s.dir.path().join("runc-without-state");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = state ] && {{ echo 'state is broken' >&2; exit 1; }}; done\nexec {} \"$@\"\n",
            s.runtime.runtime_path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = s.runtime.config().clone();
    config.runtime_paths = vec![wrapper];
    let blind = conmon_driver::ConmonRuntime::new(config).unwrap();

    let err = blind
        .create(&c, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::RuntimeFailed { stderr, .. } if stderr.contains("state is broken")),
        "{err:?}"
    );
    // Nothing of the running container was touched.
    assert_eq!(
        s.runtime.status(&c).await.unwrap().status,
        ContainerStatus::Running
    );
    assert!(s.runtime.monitor_alive(&c).await.unwrap());
    let layout = conmon_driver::ContainerLayout::new(s.runtime.config(), &c);
    assert!(layout.persist_dir.is_dir());
    assert!(layout.container_pidfile.is_file());
    s.runtime
        .stop(&c, Duration::from_secs(1), false)
        .await
        .unwrap();
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}
