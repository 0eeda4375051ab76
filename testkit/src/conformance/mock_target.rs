//! [`MockTarget`]: the suite's workloads as scripted programs of a
//! [`MockRuntime`], so that the whole suite runs without root or binaries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use runtime_api::{ContainerDescription, ContainerId, ExecConfig, LogDriver, OciRuntime};

use super::target::{ContainerSpec, Prepared, Target, Workload};
use crate::mock::{write_bundle, MockProcess, MockRuntime, SignalReaction};

/// A [`MockRuntime`] under test: each workload becomes a program
/// registered on it, and each container a minimal bundle in a temporary
/// directory.
pub struct MockTarget {
    mock: Arc<MockRuntime>,
    programs: AtomicU64,
}

impl MockTarget {
    /// Tests `mock`; its program table gets one program per workload.
    pub fn new(mock: Arc<MockRuntime>) -> Self {
        Self {
            mock,
            programs: AtomicU64::new(0),
        }
    }

    /// The script of `workload`.
    pub fn script(workload: &Workload) -> MockProcess {
        match workload {
            Workload::Exit(code) => MockProcess::new().exit_code(*code),
            Workload::Print {
                stdout,
                stderr,
                code,
            } => MockProcess::new()
                .stdout(stdout.as_bytes())
                .stderr(stderr.as_bytes())
                .exit_code(*code),
            Workload::UntilSignalled => MockProcess::new()
                .until_signalled()
                .on_term(SignalReaction::Exit(143)),
            Workload::IgnoreTerm => MockProcess::new()
                .until_signalled()
                .on_term(SignalReaction::Ignore),
            Workload::Cat => MockProcess::new().echo_stdin(),
            Workload::ReportSize { .. } => MockProcess::new().until_signalled().report_resize(),
        }
    }

    /// Registers `workload` under a fresh name: parallel cases never
    /// share (and so never replace) each other's programs.
    fn program(&self, workload: &Workload) -> String {
        let n = self.programs.fetch_add(1, Ordering::Relaxed);
        let name = format!("workload-{n}");
        self.mock
            .define_program(name.clone(), Self::script(workload));
        name
    }
}

#[async_trait]
impl Target for MockTarget {
    fn runtime(&self) -> Arc<dyn OciRuntime> {
        self.mock.clone()
    }

    fn reopened(&self) -> Option<Arc<dyn OciRuntime>> {
        Some(Arc::new(self.mock.reopen()))
    }

    async fn prepare(&self, id: ContainerId, spec: &ContainerSpec) -> Result<Prepared, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let program = self.program(&spec.workload);
        write_bundle(dir.path(), &[&program], spec.terminal).map_err(|e| e.to_string())?;
        let description = ContainerDescription::builder(id, dir.path(), dir.path().join("run"))
            .terminal(spec.terminal)
            .stdin(spec.stdin)
            .log(LogDriver::None, "/dev/null")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Prepared::new(description, Box::new(dir)))
    }

    fn exec_config(&self, workload: &Workload) -> ExecConfig {
        let mut config = ExecConfig::new([self.program(workload)]);
        config.stdin = matches!(workload, Workload::Cat);
        config.terminal = matches!(workload, Workload::ReportSize { .. });
        config
    }
}
