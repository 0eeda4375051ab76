//! The mock's fault injection and call log.

use std::time::{Duration, Instant};

use runtime_api::{
    ContainerDescription, ContainerId, CreateOptions, LogDriver, OciRuntime, RuntimeError,
};
use testkit::mock::{write_bundle, Call, MockProcess, MockRuntime, Operation};

fn container(dir: &std::path::Path, id: &str) -> ContainerDescription {
    ContainerDescription::builder(ContainerId::new(id).unwrap(), dir, dir.join("run"))
        .log(LogDriver::None, "/dev/null")
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_nth_call_fails_or_waits_and_every_call_is_logged() {
    let mock = MockRuntime::new();
    mock.define_program("job", MockProcess::new().exit_code(9));
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), &["job"], false).unwrap();
    let c = container(dir.path(), "f1");

    mock.fail_call(Operation::Start, 1, || {
        RuntimeError::InvalidArgument("injected".into())
    });
    mock.delay_call(Operation::Wait, 1, Duration::from_millis(50));
    mock.create(&c, CreateOptions::default()).await.unwrap();
    let err = mock.start(&c).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    mock.start(&c).await.unwrap();
    let started = Instant::now();
    assert_eq!(mock.wait(&c, Duration::from_secs(5)).await.unwrap(), 9);
    assert!(started.elapsed() >= Duration::from_millis(50));
    mock.delete(&c).await.unwrap();

    let calls = mock.calls();
    let ops: Vec<Operation> = calls.iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        [
            Operation::Create,
            Operation::Start,
            Operation::Start,
            Operation::Wait,
            Operation::Delete
        ]
    );
    assert!(calls
        .iter()
        .all(|Call { container, .. }| container.as_deref() == Some("f1")));
}

#[tokio::test]
async fn an_unknown_program_is_command_not_found_like_runc() {
    let mock = MockRuntime::new();
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), &["nosuch"], false).unwrap();
    let c = container(dir.path(), "f2");
    let err = mock.create(&c, CreateOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::OciCommandNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 127);
}
