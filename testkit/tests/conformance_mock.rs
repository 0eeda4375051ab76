//! The conformance suite against the in-memory mock: with every feature,
//! and with none (each capability case skipped with its reason, never
//! passed).

use std::sync::Arc;

use runtime_api::FeatureSet;
use testkit::conformance::{run, MockTarget, Options, Outcome};
use testkit::mock::MockRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_with_every_feature_passes_the_whole_suite() {
    let report = run(
        &MockTarget::new(Arc::new(MockRuntime::new())),
        &Options::default(),
    )
    .await;
    println!("{report}");
    report.assert_all_passed();
    let (passed, skipped, _) = report.counts();
    assert!(passed >= 30, "only {passed} cases ran");
    assert_eq!(skipped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_without_optional_features_skips_each_capability_by_name() {
    let mock = MockRuntime::with_features(FeatureSet::empty());
    let report = run(&MockTarget::new(Arc::new(mock)), &Options::default()).await;
    println!("{report}");
    report.assert_all_passed();
    let capability_rows: Vec<_> = report
        .rows
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Passed))
        .collect();
    assert!(capability_rows.len() >= 10, "{report}");
    for row in capability_rows {
        match &row.outcome {
            Outcome::Skipped(reason) => {
                assert!(
                    reason.contains("answers Unsupported"),
                    "{}: {reason}",
                    row.name
                )
            }
            other => panic!("{}: {other:?}", row.name),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mock_that_advertises_a_feature_it_lacks_fails_the_suite() {
    // Pause advertised, but every pause call fails with Unsupported.
    let mock = MockRuntime::new();
    for n in 1..=4 {
        mock.fail_call(testkit::mock::Operation::Pause, n, || {
            runtime_api::RuntimeError::unsupported(runtime_api::Feature::Pause, "pause")
        });
    }
    let options = Options {
        filter: Some("pause".into()),
        ..Options::default()
    };
    let report = run(&MockTarget::new(Arc::new(mock)), &options).await;
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{report}");
    assert!(
        matches!(&failures[0].outcome, Outcome::Failed(m) if m.contains("advertised")),
        "{report}"
    );
}
