//! The conformance suite against the in-memory mock: with every feature it
//! passes every case; with no optional feature every capability case is
//! skipped with its reason (none passes silently) and the core still
//! passes; and the suite catches a runtime whose features() disagrees with
//! what it does, in both directions.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use runtime_api::{
    ContainerDescription, ContainerState, CreateOptions, CreatedContainer, Feature, FeatureSet,
    OciRuntime, Result, RuntimeError, Signal,
};
use testkit::conformance::{cases, run, MockTarget, Options, Outcome, Report};
use testkit::mock::{MockRuntime, Operation};

async fn run_mock(mock: MockRuntime, options: &Options) -> Report {
    let report = run(&MockTarget::new(Arc::new(mock)), options).await;
    println!("{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_with_every_feature_passes_every_case() {
    let report = run_mock(MockRuntime::new(), &Options::default()).await;
    report.assert_all_passed();
    let (passed, skipped, failed) = report.counts();
    assert_eq!((passed, skipped, failed), (cases().len(), 0, 0));
    assert!(passed >= 30, "only {passed} cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_without_optional_features_skips_each_capability_case_with_its_reason() {
    let report = run_mock(
        MockRuntime::with_features(FeatureSet::empty()),
        &Options::default(),
    )
    .await;
    report.assert_all_passed();
    let mut skipped = 0;
    for row in &report.rows {
        match (row.feature, &row.outcome) {
            (None, Outcome::Passed) => {}
            (Some(feature), Outcome::Skipped(reason)) => {
                skipped += 1;
                assert_eq!(
                    reason,
                    &format!("runtime does not offer {feature}; it answers Unsupported"),
                    "{}",
                    row.name
                );
            }
            (feature, outcome) => panic!("{} ({feature:?}): {outcome:?}", row.name),
        }
    }
    assert!(skipped >= 15, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advertised_feature_answering_unsupported_fails_its_cases() {
    let mock = MockRuntime::new();
    for n in 1..=8 {
        mock.fail_call(Operation::Pause, n, || {
            RuntimeError::unsupported(Feature::Pause, "pause")
        });
    }
    let report = run_mock(mock, &Options::default().with_filter("pause")).await;
    let failures = report.failures();
    assert_eq!(failures.len(), 2, "{report}");
    for row in failures {
        assert!(
            matches!(&row.outcome, Outcome::Failed(m) if m.contains("although the runtime advertises pause")),
            "{report}"
        );
    }
}

/// The mock with every feature, claiming to offer none: its pause works
/// although features() leaves it out.
struct HidesPause(MockRuntime);

#[async_trait]
impl OciRuntime for HidesPause {
    fn name(&self) -> &str {
        "hides-pause"
    }
    async fn create(&self, c: &ContainerDescription, o: CreateOptions) -> Result<CreatedContainer> {
        self.0.create(c, o).await
    }
    async fn start(&self, c: &ContainerDescription) -> Result<()> {
        self.0.start(c).await
    }
    async fn status(&self, c: &ContainerDescription) -> Result<ContainerState> {
        self.0.status(c).await
    }
    async fn kill(&self, c: &ContainerDescription, signal: Signal, all: bool) -> Result<()> {
        self.0.kill(c, signal, all).await
    }
    async fn wait(&self, c: &ContainerDescription, timeout: Duration) -> Result<i32> {
        self.0.wait(c, timeout).await
    }
    async fn delete(&self, c: &ContainerDescription) -> Result<()> {
        self.0.delete(c).await
    }
    async fn pause(&self, c: &ContainerDescription) -> Result<()> {
        self.0.pause(c).await
    }
}

#[tokio::test]
async fn an_unadvertised_feature_answering_anything_but_unsupported_fails() {
    let target = testkit::conformance::MockTarget::new(Arc::new(MockRuntime::new()));
    // Any target works for the probe: it never creates a container.
    struct Hiding(testkit::conformance::MockTarget, Arc<HidesPause>);
    #[async_trait]
    impl testkit::conformance::Target for Hiding {
        fn runtime(&self) -> Arc<dyn OciRuntime> {
            self.1.clone()
        }
        async fn prepare(
            &self,
            id: runtime_api::ContainerId,
            spec: &testkit::conformance::ContainerSpec,
        ) -> std::result::Result<testkit::conformance::Prepared, String> {
            self.0.prepare(id, spec).await
        }
        fn exec_config(&self, w: &testkit::conformance::Workload) -> runtime_api::ExecConfig {
            self.0.exec_config(w)
        }
    }
    let hiding = Hiding(target, Arc::new(HidesPause(MockRuntime::new())));
    let report = run(&hiding, &Options::default().with_filter("pause")).await;
    println!("{report}");
    assert_eq!(report.failures().len(), 2, "{report}");
    for row in report.failures() {
        assert!(
            matches!(&row.outcome, Outcome::Failed(m) if m.contains("pause is not advertised, but pause answered")),
            "{report}"
        );
    }
    let consistency = run(&hiding, &Options::default().with_filter("features()")).await;
    assert_eq!(consistency.failures().len(), 1, "{consistency}");
}

#[tokio::test]
async fn listing_runs_nothing_and_names_every_selected_case() {
    let mock = Arc::new(MockRuntime::new());
    let target = MockTarget::new(Arc::clone(&mock));
    let listed = run(&target, &Options::default().list_only()).await;
    assert_eq!(listed.rows.len(), cases().len());
    assert!(listed
        .rows
        .iter()
        .all(|r| r.outcome == Outcome::Skipped("listed, not run".into())));
    assert!(mock.calls().is_empty(), "{:?}", mock.calls());

    let core = run(&target, &Options::default().core_only().list_only()).await;
    assert!(core.rows.iter().all(|r| r.feature.is_none()));
    assert_eq!(
        core.rows.len(),
        cases().iter().filter(|c| c.feature.is_none()).count()
    );
    let text = core.to_string();
    assert!(text.contains(" 1/"), "{text}");
    assert!(
        text.ends_with(&format!(
            "conformance: {} cases, 0 passed, {} skipped, 0 failed",
            core.rows.len(),
            core.rows.len()
        )),
        "{text}"
    );
}

/// A target that cannot reopen its runtime: the cases needing a reopened
/// runtime are skipped, saying so; the mock's own target reopens.
struct NoReopen(MockTarget);

#[async_trait]
impl testkit::conformance::Target for NoReopen {
    fn runtime(&self) -> Arc<dyn OciRuntime> {
        self.0.runtime()
    }

    async fn prepare(
        &self,
        id: runtime_api::ContainerId,
        spec: &testkit::conformance::ContainerSpec,
    ) -> std::result::Result<testkit::conformance::Prepared, String> {
        self.0.prepare(id, spec).await
    }

    fn exec_config(&self, workload: &testkit::conformance::Workload) -> runtime_api::ExecConfig {
        self.0.exec_config(workload)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_cases_are_skipped_for_a_target_that_cannot_reopen() {
    let options = Options::default().with_filter("reopened");
    let plain = NoReopen(MockTarget::new(Arc::new(MockRuntime::new())));
    let report = run(&plain, &options).await;
    assert!(!report.rows.is_empty(), "no case needs a reopened runtime");
    for row in &report.rows {
        match &row.outcome {
            Outcome::Skipped(reason) => assert!(reason.contains("cannot reopen"), "{reason}"),
            other => panic!("{}: {other:?}", row.name),
        }
    }
    let reopening = MockTarget::new(Arc::new(MockRuntime::new()));
    let report = run(&reopening, &options).await;
    report.assert_all_passed();
    assert_eq!(report.counts(), (report.rows.len(), 0, 0), "{report}");
}
