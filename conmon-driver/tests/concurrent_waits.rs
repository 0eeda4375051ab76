//! A thousand concurrent waits on running containers: the driver shares
//! one inotify instance among them (a user gets 128 by default), and each
//! wait gets its container's exit code. Real conmon and runc.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use runtime_api::{CreateOptions, OciRuntime, Signal};

const CONTAINERS: usize = 4;
const WAITS_PER_CONTAINER: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_waits_all_get_their_exit_code() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let b = bundle(&[
        "sh",
        "-c",
        "trap 'exit 21' TERM; while :; do sleep 0.05; done",
    ]);
    let mut containers = Vec::new();
    let mut cleanups = Vec::new();
    for _ in 0..CONTAINERS {
        let id = unique_id("waits");
        cleanups.push(s.cleanup_on_drop(&id));
        let c = s.describe(&id, &b).build().unwrap();
        s.runtime
            .create(&c, CreateOptions::default())
            .await
            .unwrap();
        s.runtime.start(&c).await.unwrap();
        containers.push(c);
    }
    let runtime = Arc::new(s.runtime);
    let mut waits = Vec::new();
    for c in &containers {
        for _ in 0..WAITS_PER_CONTAINER {
            let (runtime, c) = (Arc::clone(&runtime), c.clone());
            waits.push(tokio::spawn(async move {
                runtime.wait(&c, Duration::from_secs(120)).await
            }));
        }
    }
    for c in &containers {
        // The trap may not be installed the instant start returned: SIGTERM
        // is repeated by stop's escalation if needed.
        runtime.kill(c, Signal::TERM, false).await.unwrap();
    }
    for c in &containers {
        runtime
            .stop(c, Duration::from_secs(5), false)
            .await
            .unwrap();
    }
    let mut codes = Vec::new();
    for wait in waits {
        codes.push(wait.await.unwrap().unwrap());
    }
    assert_eq!(codes.len(), CONTAINERS * WAITS_PER_CONTAINER);
    // Each container ended once: all waits on it saw the same code, from
    // the trap (21) or, if the TERM came before the trap, the signal.
    for chunk in codes.chunks(WAITS_PER_CONTAINER) {
        assert!(chunk.iter().all(|code| *code == chunk[0]), "{chunk:?}");
        assert!([21, 143, 137].contains(&chunk[0]), "{}", chunk[0]);
    }
    for c in &containers {
        runtime.delete(c).await.unwrap();
    }
}
