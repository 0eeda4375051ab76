//! The conformance suite of `testkit` against the conmon driver, live with
//! runc and with runsc (gVisor, `--network=none`). crun cannot run
//! containers on this host's hybrid cgroup layout; it is probed in
//! `runtime_surface.rs` instead.

mod common;

use std::sync::Arc;

use common::*;
use conmon_driver::{CgroupsMode, ConmonDescriptionExt};
use runtime_api::OciRuntime;
use testkit::conformance::{run, BusyboxTarget, Options};

async fn conformance(runtime: &str, flags: &[&str]) {
    let s = setup(runtime, flags);
    let config = s.runtime.config().clone();
    let runtime: Arc<dyn OciRuntime> = Arc::new(s.runtime);
    // conmon's own placement is tested in placement.rs; here it would
    // leave podman's shared parent cgroup behind.
    let target = BusyboxTarget::new(runtime)
        .customize(|b| b.cgroups_mode(CgroupsMode::NoConmon))
        // A new driver over the same directories, as after an engine's
        // restart.
        .reopen_with(move || Arc::new(conmon_driver::ConmonRuntime::new(config.clone()).unwrap()));
    let report = run(&target, &Options::default()).await;
    println!("{report}");
    report.assert_all_passed();
    let (passed, _, _) = report.counts();
    assert!(passed >= 30, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conmon_with_runc_passes_the_conformance_suite() {
    if !need_runc() {
        return;
    }
    conformance("runc", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conmon_with_runsc_passes_the_conformance_suite() {
    if !need_runsc() {
        return;
    }
    conformance("runsc", &["--network=none"]).await;
}
