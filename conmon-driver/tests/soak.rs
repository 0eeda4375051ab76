//! The short soak: the `soak` example with 50 containers, a quarter of
//! their steps given up on at random moments, must end with every life
//! completed and a clean audit (no process, fd, mount, cgroup, runtime
//! container or driver file left). The seed is printed for a replay.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn fifty_containers_with_random_cancellation_leave_nothing() {
    if !need_runc() {
        return;
    }
    let soak = tokio::task::spawn_blocking(|| example_binary("soak"))
        .await
        .unwrap();
    let child = tokio::process::Command::new(soak)
        .args([
            "--containers",
            "50",
            "--parallel",
            "8",
            "--cancel-percent",
            "25",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
        .await
        .expect("the soak ran past 600 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success(),
        "the soak failed ({}):\n{stdout}",
        output.status
    );
    assert!(stdout.contains("soak: audit: clean"), "{stdout}");
}
