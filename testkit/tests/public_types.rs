//! Compile-time proof that an outside crate can hold a runtime as
//! `Arc<dyn OciRuntime>` and construct every option and result type an
//! implementation or an engine needs, although they are `non_exhaustive`.

use std::sync::Arc;
use std::time::Duration;

use runtime_api::*;

fn _object_safe(runtime: Arc<dyn OciRuntime>) -> Arc<dyn OciRuntime> {
    runtime
}

#[test]
fn outside_crates_construct_every_public_type() {
    let mut state = ContainerState::new(ContainerStatus::Running);
    state.pid = Some(42);
    let mut created = CreatedContainer::new(Some(42));
    created.warnings.push("placement skipped".into());
    let mut session = ExecSession::new(ExecSessionId::new("s1").unwrap(), Some(7));
    session.timeout = Some(Duration::from_secs(3));
    let completion = ExecCompletion::new(AttachOutcome::StreamsEnded, Some(0));
    let handle = ExecHandle::new(session.clone(), Box::pin(async move { Ok(completion) }));
    let mut runtime = ComponentInfo::new("/usr/bin/x", "x 1.0");
    runtime.package = Some("x_1.0".into());
    let mut info = RuntimeInfo::new(runtime);
    info.monitor = Some(ComponentInfo::new("/usr/bin/m", "m 2"));
    let attach = AttachOptions::default()
        .with_framing(Framing::Multiplexed)
        .with_detach_keys("ctrl-a")
        .with_cancel(AttachCancel::new())
        .with_ready(AttachReady::new());
    let streams = AttachStreams::new(None, Some(Box::pin(tokio::io::sink())), None);
    let mut checkpoint = CheckpointOptions::new("/i", "/w");
    checkpoint.leave_running = true;
    let mut restore = RestoreOptions::new("/i");
    restore.file_locks = true;
    let features: FeatureSet = [Feature::Pause, Feature::Exec].into_iter().collect();
    let size = TerminalSize::new(24, 80).unwrap();
    let mut exec = ExecConfig::new(["id"]);
    exec.user = Some("nobody".into());
    let log = LogConfig::new(LogDriver::KubernetesFile)
        .with_path("/l")
        .with_size_max(1 << 20);
    let mut options = CreateOptions::default();
    options.preserved_fds.clear();
    let unsupported = RuntimeError::unsupported(Feature::Checkpoint, "checkpoint");

    assert_eq!(state.pid, Some(42));
    assert_eq!(created.pid, Some(42));
    assert_eq!(handle.session, session);
    assert!(info.monitor.is_some());
    assert_eq!(attach.framing, Framing::Multiplexed);
    assert!(!streams.is_empty());
    assert!(checkpoint.validate().is_ok() && restore.validate().is_ok());
    assert!(features.contains(Feature::Exec));
    assert_eq!((size.rows, size.cols), (24, 80));
    assert!(exec.validate().is_ok());
    assert_eq!(log.size_max, Some(1 << 20));
    assert!(unsupported.is_unsupported());
}
