//! A runtime that implements only the required core (here in a few lines,
//! by delegating to the mock's lifecycle) gets every optional call
//! answered `Unsupported` naming its feature by the trait's default
//! bodies, and passes the suite's core cases while every capability case
//! is skipped with its reason.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use runtime_api::*;
use testkit::conformance::{run, ContainerSpec, Options, Outcome, Prepared, Target, Workload};
use testkit::mock::MockRuntime;

/// The whole implementation: the six required calls and a name.
struct CoreOnly(Arc<MockRuntime>);

#[async_trait]
impl OciRuntime for CoreOnly {
    fn name(&self) -> &str {
        "core-only"
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
}

/// The mock's target, with the runtime under test swapped in.
struct CoreOnlyTarget {
    runtime: Arc<CoreOnly>,
    programs: testkit::conformance::MockTarget,
}

#[async_trait]
impl Target for CoreOnlyTarget {
    fn runtime(&self) -> Arc<dyn OciRuntime> {
        self.runtime.clone()
    }
    fn reopened(&self) -> Option<Arc<dyn OciRuntime>> {
        Some(Arc::new(CoreOnly(Arc::new(self.runtime.0.reopen()))))
    }
    async fn prepare(
        &self,
        id: ContainerId,
        spec: &ContainerSpec,
    ) -> std::result::Result<Prepared, String> {
        self.programs.prepare(id, spec).await
    }
    fn exec_config(&self, workload: &Workload) -> ExecConfig {
        self.programs.exec_config(workload)
    }
}

#[tokio::test]
async fn every_optional_call_answers_unsupported_naming_its_feature() {
    let runtime = CoreOnly(Arc::new(MockRuntime::new()));
    assert!(runtime.features().await.unwrap().is_empty());
    let c = ContainerDescription::builder(ContainerId::new("x").unwrap(), "/b", "/r")
        .log(LogDriver::None, "/dev/null")
        .build()
        .unwrap();
    let session = ExecSession::new(ExecSessionId::new("s").unwrap(), None);
    let size = TerminalSize::new(24, 80).unwrap();
    let streams = || AttachStreams::new(None, Some(Box::pin(tokio::io::sink())), None);
    let exec = ExecConfig::new(["true"]);
    let answers: Vec<(Feature, Result<()>)> = vec![
        (Feature::Pause, runtime.pause(&c).await),
        (Feature::Pause, runtime.resume(&c).await),
        (
            Feature::Attach,
            runtime
                .attach(&c, streams(), AttachOptions::default())
                .await
                .map(drop),
        ),
        (
            Feature::ResizeTerminal,
            runtime.resize_terminal(&c, size).await,
        ),
        (
            Feature::Exec,
            runtime
                .exec(&c, &exec, streams(), AttachOptions::default())
                .await
                .map(drop),
        ),
        (
            Feature::Exec,
            runtime.exec_detached(&c, &exec).await.map(drop),
        ),
        (
            Feature::Exec,
            runtime
                .exec_wait(&c, &session, Duration::ZERO)
                .await
                .map(drop),
        ),
        (
            Feature::Exec,
            runtime.exec_stop(&c, &session, Duration::ZERO).await,
        ),
        (
            Feature::Exec,
            runtime.exec_alive(&c, &session).await.map(drop),
        ),
        (
            Feature::ExecResizeTerminal,
            runtime.exec_resize_terminal(&c, &session, size).await,
        ),
        (
            Feature::Checkpoint,
            runtime
                .checkpoint(&c, &CheckpointOptions::new("/i", "/w"))
                .await
                .map(drop),
        ),
        (
            Feature::Restore,
            runtime
                .restore(&c, &RestoreOptions::new("/i"), CreateOptions::default())
                .await
                .map(drop),
        ),
        (
            Feature::UpdateResources,
            runtime
                .update_resources(&c, &LinuxResources::default())
                .await,
        ),
        (Feature::Info, runtime.info().await.map(drop)),
        (Feature::ReopenLog, runtime.reopen_log(&c).await),
    ];
    assert_eq!(answers.len(), 15);
    let covered: FeatureSet = answers.iter().map(|(feature, _)| *feature).collect();
    assert_eq!(
        covered,
        FeatureSet::all(),
        "a feature's calls are not probed"
    );
    for (feature, answer) in answers {
        match answer {
            Err(RuntimeError::Unsupported { feature: f, .. }) => assert_eq!(f, feature),
            other => panic!("{feature}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_only_runtime_passes_the_core_and_skips_every_feature() {
    // The target registers its programs on the same mock the core-only
    // runtime delegates to.
    let mock = Arc::new(MockRuntime::new());
    let target = CoreOnlyTarget {
        runtime: Arc::new(CoreOnly(Arc::clone(&mock))),
        programs: testkit::conformance::MockTarget::new(mock),
    };
    let report = run(&target, &Options::default()).await;
    println!("{report}");
    report.assert_all_passed();
    for row in &report.rows {
        match (row.feature, &row.outcome) {
            (None, Outcome::Passed) => {}
            (Some(feature), Outcome::Skipped(reason)) => assert!(
                reason.contains(&format!("does not offer {feature}")),
                "{}: {reason}",
                row.name
            ),
            (feature, outcome) => panic!("{} ({feature:?}): {outcome:?}", row.name),
        }
    }
    let (passed, skipped, _) = report.counts();
    assert!(passed >= 25 && skipped >= 15, "{report}");

    let core = run(&target, &Options::default().core_only()).await;
    core.assert_all_passed();
    assert_eq!(core.counts(), (passed, 0, 0), "{core}");
}
