//! A create abandoned after conmon forked its monitor but before the
//! pidfile names it: the monitor must not outlive the launch. The fake
//! conmon here forks a "monitor" carrying conmon's `-u` argument, reports
//! its pid to the test through a FIFO, and never writes the pidfile nor
//! exits, so the create future is dropped in exactly that window.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use conmon_driver::ConmonDescriptionExt;
use runtime_api::{CreateOptions, LogDriver, OciRuntime};
use state_probe::PidFd;

/// A conmon stand-in: its monitor blocks on a FIFO it holds open both
/// ways (no child process to leak), its parent likewise.
fn fake_conmon(dir: &std::path::Path, report: &std::path::Path) -> std::path::PathBuf {
    let script = format!(
        r#"#!/bin/sh
prev=; cuuid=
for a in "$@"; do [ "$prev" = "-u" ] && cuuid=$a; prev=$a; done
setsid sh -c 'f=$(mktemp -u); mkfifo "$f"; exec 3<>"$f"; rm "$f"; echo $$ > "$0"; read x <&3' '{report}' -u "$cuuid" &
f=$(mktemp -u); mkfifo "$f"; exec 3<>"$f"; rm "$f"; read x <&3
"#,
        report = report.display()
    );
    let path = dir.join("conmon-forks-then-hangs");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_dropped_before_the_pidfile_leaves_no_monitor() {
    if !testkit::require(&[testkit::Need::Root]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // `state` says "does not exist", so the create's check passes.
    let runtime = testkit::fake_runtime_without_containers(
        dir.path(),
        "fake-rt",
        testkit::FakeRuntimeBehaviour::Succeed,
    )
    .unwrap();
    let report = dir.path().join("monitor-pid");
    nix::unistd::mkfifo(&report, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut config = config(runtime.to_str().unwrap(), dir.path());
    config.conmon_path = Some(fake_conmon(dir.path(), &report));
    let s = setup_with(config, dir);
    let bundle = s.dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    let id = unique_id("abandoned");
    let c = runtime_api::ContainerDescription::builder(id.clone(), &bundle, s.run_dir(&id))
        .log(LogDriver::None, "/dev/null")
        .cgroups_mode(conmon_driver::CgroupsMode::NoConmon)
        .build()
        .unwrap();

    let read_report = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        std::fs::File::open(&report)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text.trim().parse::<i32>().unwrap()
    });
    let monitor = tokio::select! {
        created = s.runtime.create(&c, CreateOptions::default()) => {
            panic!("the fake conmon never reports, yet create ended: {created:?}")
        }
        pid = read_report => pid.unwrap(),
    };
    // The create future is dropped here, with conmon's parent alive and no
    // pidfile written.
    assert!(!c.run_dir().join("conmon.pid").exists());
    let pidfd = PidFd::open(monitor).unwrap().expect("the monitor is alive");
    assert!(
        pidfd.exited(Duration::from_secs(20)).await.unwrap(),
        "the monitor {monitor} outlived the abandoned create"
    );
}
