//! [`MockTarget`]: the suite's workloads as scripted processes of a
//! [`MockRuntime`], so the whole suite runs without root or binaries.

use std::sync::Arc;

use async_trait::async_trait;
use runtime_api::{ContainerDescription, ContainerId, ExecConfig, LogDriver, OciRuntime};

use super::target::{ContainerSpec, Prepared, Target, Workload};
use crate::mock::{write_bundle, MockProcess, MockRuntime, TermReaction};

/// A [`MockRuntime`] under test.
pub struct MockTarget {
    mock: Arc<MockRuntime>,
}

impl MockTarget {
    /// Tests `mock`; its program table gets one program per workload.
    pub fn new(mock: Arc<MockRuntime>) -> Self {
        Self { mock }
    }

    fn program(&self, workload: &Workload) -> String {
        let (name, process) = match workload {
            Workload::Exit(code) => (format!("exit-{code}"), MockProcess::new().exit_code(*code)),
            Workload::Print {
                stdout,
                stderr,
                code,
            } => (
                format!("print-{}", self.mock.calls().len()),
                MockProcess::new()
                    .stdout(stdout.as_bytes())
                    .stderr(stderr.as_bytes())
                    .exit_code(*code),
            ),
            Workload::UntilSignalled => (
                "until-signalled".into(),
                MockProcess::new()
                    .until_signalled()
                    .on_term(TermReaction::Exit(143)),
            ),
            Workload::IgnoreTerm => (
                "ignore-term".into(),
                MockProcess::new()
                    .until_signalled()
                    .on_term(TermReaction::Ignore),
            ),
            Workload::Cat => ("cat".into(), MockProcess::new().echo_stdin()),
            Workload::ReportSize { .. } => (
                "report-size".into(),
                MockProcess::new().until_signalled().report_resize(),
            ),
        };
        self.mock.define_program(name.clone(), process);
        name
    }
}

#[async_trait]
impl Target for MockTarget {
    fn runtime(&self) -> Arc<dyn OciRuntime> {
        self.mock.clone()
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
        Ok(Prepared {
            description,
            guard: Box::new(dir),
        })
    }

    fn exec_config(&self, workload: &Workload) -> ExecConfig {
        let mut config = ExecConfig::new([self.program(workload)]);
        config.stdin = matches!(workload, Workload::Cat);
        config
    }
}
