//! The mock's fault injection and call log: the n-th call of an operation
//! fails or is delayed, every call (refused ones included) is logged in
//! order with its container.

use std::time::{Duration, Instant};

use runtime_api::{
    ContainerDescription, ContainerId, CreateOptions, Feature, FeatureSet, LogDriver, OciRuntime,
    RuntimeError,
};
use testkit::mock::{write_bundle, MockProcess, MockRuntime, Operation};

/// The injected delay: long enough to measure, short enough not to slow
/// the test.
const DELAY: Duration = Duration::from_millis(50);

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
    mock.delay_call(Operation::Wait, 1, DELAY);
    mock.create(&c, CreateOptions::default()).await.unwrap();
    let err = mock.start(&c).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    // The injected failure happened before anything: still created.
    assert_eq!(
        mock.status(&c).await.unwrap().status,
        runtime_api::ContainerStatus::Created
    );
    mock.start(&c).await.unwrap();
    let started = Instant::now();
    assert_eq!(mock.wait(&c, Duration::from_secs(5)).await.unwrap(), 9);
    assert!(started.elapsed() >= DELAY);
    // The code again, from the second wait.
    assert_eq!(mock.wait(&c, Duration::from_secs(5)).await.unwrap(), 9);
    mock.delete(&c).await.unwrap();

    let calls = mock.calls();
    let ops: Vec<Operation> = calls.iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        [
            Operation::Create,
            Operation::Start,
            Operation::Status,
            Operation::Start,
            Operation::Wait,
            Operation::Wait,
            Operation::Delete
        ]
    );
    assert!(calls
        .iter()
        .all(|call| call.container.as_ref().map(ContainerId::as_str) == Some("f1")));
}

#[tokio::test]
async fn calls_refused_as_unsupported_are_logged_too() {
    let mock = MockRuntime::with_features(FeatureSet::empty().with(Feature::Info));
    let dir = tempfile::tempdir().unwrap();
    let c = container(dir.path(), "f3");
    let err = mock.pause(&c).await.unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Unsupported {
                feature: Feature::Pause,
                operation: "pause"
            }
        ),
        "{err:?}"
    );
    mock.info().await.unwrap();
    let calls = mock.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].operation, Operation::Pause);
    assert_eq!(calls[0].container, Some(c.id().clone()));
    assert_eq!(calls[1].operation, Operation::Info);
    assert_eq!(calls[1].container, None);
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
    assert!(matches!(
        mock.status(&c).await,
        Err(RuntimeError::NoSuchContainer { .. })
    ));
}
