//! An engine that is a child subreaper (or PID 1) inherits conmon's
//! monitors: the driver reaps each one once it exits, so none stays a
//! zombie. A binary of its own: the subreaper attribute is process-wide.

mod common;

use std::time::{Duration, Instant};

use common::*;
use runtime_api::{CreateOptions, ExecConfig, OciRuntime};
use testkit::audit::parent_of;

/// Zombie children of this process.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let after = stat.rsplit(')').next().unwrap_or("");
            let mut fields = after.split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
            state == Some("Z") && ppid == Some(me)
        })
        .collect()
}

/// Waits until `pid` no longer exists at all (reaped), at most `limit`.
/// Nothing announces another process's reaping: it looks every 20 ms.
async fn gone_entirely(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subreaper_engine_reaps_the_monitors_it_launches() {
    if !need_runc() {
        return;
    }
    conmon_driver::become_subreaper().unwrap();
    assert!(conmon_driver::reaps_orphans());
    let s = setup("runc", &[]);
    let id = unique_id("reaped");
    let b = bundle(&["sleep", "1000"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    let monitor = s.runtime.monitor_pid(&c).unwrap().unwrap();
    assert_eq!(
        parent_of(monitor),
        Some(std::process::id() as i32),
        "the monitor is re-parented to the subreaper"
    );

    // An exec session's monitor too.
    let session = s
        .runtime
        .exec_detached(&c, &ExecConfig::new(["true"]))
        .await
        .unwrap();
    let exec_monitor = s
        .runtime
        .exec_monitor_pid(&c, &session.id)
        .unwrap()
        .unwrap();
    assert_eq!(
        s.runtime
            .exec_wait(&c, &session, Duration::from_secs(30))
            .await
            .unwrap(),
        0
    );
    assert!(
        gone_entirely(exec_monitor, Duration::from_secs(10)).await,
        "the exec's monitor was not reaped: {:?}",
        zombie_children()
    );

    s.runtime.stop(&c, Duration::ZERO, false).await.unwrap();
    s.runtime.delete(&c).await.unwrap();
    assert!(
        gone_entirely(monitor, Duration::from_secs(10)).await,
        "the container's monitor was not reaped: {:?}",
        zombie_children()
    );
    assert_eq!(zombie_children(), Vec::<i32>::new());
    s.assert_nothing_left(&id);
}
