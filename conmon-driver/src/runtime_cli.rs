//! Direct calls of the runtime's CLI (`state`, `start`, `kill`, `delete`,
//! `pause`, `resume`, probes): one small argv builder per subcommand, and one
//! runner that applies the global flags, an explicit environment, stdin on
//! /dev/null, captured stdout and stderr, and the operation's timeout.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_api::{CheckpointOptions, ContainerId, RuntimeError, Signal};
use state_probe::{run_bounded, CapturedOutput, StateProbe};
use tracing::debug;

use crate::errors::from_probe;

/// The message of the debug event logged, with the command line as the
/// field `command`, each time the driver runs the runtime's CLI: a
/// subscriber counts the runtime processes the driver spawned with it.
pub const RUNNING_THE_RUNTIME: &str = "running the runtime";

/// A runtime subcommand and its arguments (global flags excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand<'a> {
    /// `state ID`
    State(&'a ContainerId),
    /// `start ID`
    Start(&'a ContainerId),
    /// `kill [--all] ID SIGNAL`
    Kill {
        /// The container.
        id: &'a ContainerId,
        /// The signal.
        signal: Signal,
        /// Every process of the container.
        all: bool,
    },
    /// `kill --pid PID ID SIGNAL`: one process of the container, named by
    /// its pid inside the runtime's sandbox (runsc's `kill --pid`; the
    /// pid an exec's `--internal-pid-file` reported)
    KillProcess {
        /// The container.
        id: &'a ContainerId,
        /// The process's pid inside the sandbox.
        pid: i32,
        /// The signal.
        signal: Signal,
    },
    /// `delete --force ID`
    DeleteForce(&'a ContainerId),
    /// `pause ID`
    Pause(&'a ContainerId),
    /// `resume ID`
    Resume(&'a ContainerId),
    /// `checkpoint --image-path P --work-path W [--leave-running]
    /// [--tcp-established] [--file-locks] [--pre-dump] [--parent-path
    /// ../DIR] ID`
    Checkpoint {
        /// The container.
        id: &'a ContainerId,
        /// The options.
        options: &'a CheckpointOptions,
    },
    /// `update --resources FILE ID`
    Update {
        /// The container.
        id: &'a ContainerId,
        /// The JSON file holding the `LinuxResources`.
        resources: &'a Path,
    },
    /// `checkpoint --help` (the checkpoint support probe)
    CheckpointHelp,
    /// `update --help` (the resource update support probe: runsc has no
    /// `update` subcommand)
    UpdateHelp,
    /// `exec --help` (whether `exec` takes `--tty`: runsc's does not, so
    /// conmon's terminal exec cannot work there; whether it takes
    /// `--internal-pid-file`: runsc's does, its exec'd processes living
    /// in its sandbox)
    ExecHelp,
    /// `--version`
    Version,
}

impl Subcommand<'_> {
    /// The subcommand's arguments.
    ///
    /// ```
    /// use conmon_driver::Subcommand;
    /// use runtime_api::{ContainerId, Signal};
    /// let id = ContainerId::new("c1")?;
    /// let kill = Subcommand::Kill { id: &id, signal: Signal::KILL, all: true };
    /// assert_eq!(kill.args(), ["kill", "--all", "c1", "9"]);
    /// # Ok::<(), runtime_api::RuntimeError>(())
    /// ```
    pub fn args(&self) -> Vec<String> {
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match *self {
            Self::State(id) => v(&["state", id.as_str()]),
            Self::Start(id) => v(&["start", id.as_str()]),
            Self::Kill { id, signal, all } => {
                let signal = signal.to_string();
                if all {
                    v(&["kill", "--all", id.as_str(), &signal])
                } else {
                    v(&["kill", id.as_str(), &signal])
                }
            }
            Self::KillProcess { id, pid, signal } => v(&[
                "kill",
                "--pid",
                &pid.to_string(),
                id.as_str(),
                &signal.to_string(),
            ]),
            Self::DeleteForce(id) => v(&["delete", "--force", id.as_str()]),
            Self::Pause(id) => v(&["pause", id.as_str()]),
            Self::Resume(id) => v(&["resume", id.as_str()]),
            Self::Checkpoint { id, options } => {
                let mut args = vec!["checkpoint".to_string(), "--image-path".to_string()];
                args.push(options.image_path.display().to_string());
                args.push("--work-path".into());
                args.push(options.work_path.display().to_string());
                for (on, flag) in [
                    (options.leave_running, "--leave-running"),
                    (options.tcp_established, "--tcp-established"),
                    (options.file_locks, "--file-locks"),
                    (options.pre_dump, "--pre-dump"),
                ] {
                    if on {
                        args.push(flag.into());
                    }
                }
                if let (false, Some(parent)) = (options.pre_dump, &options.parent) {
                    args.push("--parent-path".into());
                    args.push(format!("../{parent}"));
                }
                args.push(id.to_string());
                args
            }
            Self::Update { id, resources } => vec![
                "update".into(),
                "--resources".into(),
                resources.display().to_string(),
                id.to_string(),
            ],
            Self::CheckpointHelp => v(&["checkpoint", "--help"]),
            Self::UpdateHelp => v(&["update", "--help"]),
            Self::ExecHelp => v(&["exec", "--help"]),
            Self::Version => v(&["--version"]),
        }
    }

    fn takes_global_flags(&self) -> bool {
        !matches!(self, Self::Version)
    }
}

/// Runs a runtime binary with the driver's global flags and environment.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeCli {
    pub(crate) path: PathBuf,
    pub(crate) flags: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
}

impl RuntimeCli {
    /// The full argv after the program: global flags, then the subcommand.
    pub(crate) fn argv(&self, sub: Subcommand<'_>) -> Vec<OsString> {
        let flags = if sub.takes_global_flags() {
            self.flags.as_slice()
        } else {
            &[]
        };
        flags
            .iter()
            .map(OsString::from)
            .chain(sub.args().into_iter().map(OsString::from))
            .collect()
    }

    pub(crate) fn command(&self, sub: Subcommand<'_>) -> tokio::process::Command {
        command_with_env(&self.path, self.argv(sub), &self.env)
    }

    /// Runs `sub`; a non-zero exit becomes `RuntimeFailed` carrying the
    /// command line, the status and stderr.
    pub(crate) async fn run(
        &self,
        sub: Subcommand<'_>,
        limit: Duration,
    ) -> Result<CapturedOutput, RuntimeError> {
        self.run_holding(sub, limit, ()).await
    }

    /// [`run`](Self::run), with `held` (a reservation of the container's
    /// id) kept until the command ended, also when the caller gave up
    /// before.
    pub(crate) async fn run_holding<H: Send + 'static>(
        &self,
        sub: Subcommand<'_>,
        limit: Duration,
        held: H,
    ) -> Result<CapturedOutput, RuntimeError> {
        let cmd = self.command(sub);
        let rendered = state_probe::render_command(&cmd);
        debug!(command = %rendered, "{RUNNING_THE_RUNTIME}");
        // The command runs in a task of its own, so that a caller giving
        // up does not kill it half-way: a `runc start` killed after it
        // opened the exec FIFO starts the container yet leaves the FIFO,
        // and runc then calls the running container "created" and blocks
        // every later start. The command still ends within `limit`.
        let out = tokio::spawn(async move {
            let out = run_bounded(cmd, limit).await;
            drop(held);
            out
        })
        .await
        .map_err(|e| RuntimeError::io(rendered.clone(), std::io::Error::other(e.to_string())))?
        .map_err(|e| from_probe(&rendered, e))?;
        if out.success() {
            return Ok(out);
        }
        // Not classified into 126/127: podman keeps that for the
        // runtime's create and exec errors, where a missing file means a
        // missing executable rather than, say, a missing container.
        Err(RuntimeError::RuntimeFailed {
            command: rendered,
            status: out.status.code(),
            stderr: out.stderr_text(),
        })
    }

    /// Runs `sub` and returns what it printed, whatever its exit status
    /// (a help text: runsc exits non-zero after printing one). Only a
    /// failure to run it, or its timeout, is an error.
    pub(crate) async fn output(
        &self,
        sub: Subcommand<'_>,
        limit: Duration,
    ) -> Result<CapturedOutput, RuntimeError> {
        let cmd = self.command(sub);
        let rendered = state_probe::render_command(&cmd);
        run_bounded(cmd, limit)
            .await
            .map_err(|e| from_probe(&rendered, e))
    }

    /// `state ID`, with "does not exist" meaning gone.
    pub(crate) async fn state(
        &self,
        id: &ContainerId,
        limit: Duration,
    ) -> Result<StateProbe, RuntimeError> {
        let cmd = self.command(Subcommand::State(id));
        let rendered = state_probe::render_command(&cmd);
        debug!(command = %rendered, "{RUNNING_THE_RUNTIME}");
        state_probe::probe_state(cmd, id.as_str(), limit)
            .await
            .map_err(|e| from_probe(&rendered, e))
    }
}

/// A command with exactly `env` as its environment.
pub(crate) fn command_with_env(
    program: &Path,
    args: Vec<OsString>,
    env: &[(String, String)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env_clear().envs(env.iter().cloned());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subcommand_has_an_exact_argv_with_global_flags_first() {
        let id = ContainerId::new("c1").unwrap();
        let cli = RuntimeCli {
            path: "/usr/bin/runsc".into(),
            flags: vec!["--network=none".into(), "--root=/r".into()],
            env: vec![],
        };
        let cases: Vec<(Subcommand, &[&str])> = vec![
            (
                Subcommand::State(&id),
                &["--network=none", "--root=/r", "state", "c1"],
            ),
            (
                Subcommand::Start(&id),
                &["--network=none", "--root=/r", "start", "c1"],
            ),
            (
                Subcommand::Kill {
                    id: &id,
                    signal: Signal::TERM,
                    all: false,
                },
                &["--network=none", "--root=/r", "kill", "c1", "15"],
            ),
            (
                Subcommand::KillProcess {
                    id: &id,
                    pid: 7,
                    signal: Signal::KILL,
                },
                &[
                    "--network=none",
                    "--root=/r",
                    "kill",
                    "--pid",
                    "7",
                    "c1",
                    "9",
                ],
            ),
            (
                Subcommand::DeleteForce(&id),
                &["--network=none", "--root=/r", "delete", "--force", "c1"],
            ),
            (
                Subcommand::Pause(&id),
                &["--network=none", "--root=/r", "pause", "c1"],
            ),
            (
                Subcommand::Resume(&id),
                &["--network=none", "--root=/r", "resume", "c1"],
            ),
            (
                Subcommand::CheckpointHelp,
                &["--network=none", "--root=/r", "checkpoint", "--help"],
            ),
            (
                Subcommand::UpdateHelp,
                &["--network=none", "--root=/r", "update", "--help"],
            ),
            (
                Subcommand::ExecHelp,
                &["--network=none", "--root=/r", "exec", "--help"],
            ),
            (Subcommand::Version, &["--version"]),
        ];
        for (sub, expected) in cases {
            let got: Vec<String> = cli
                .argv(sub)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect();
            assert_eq!(got, expected, "{sub:?}");
        }
    }
}
