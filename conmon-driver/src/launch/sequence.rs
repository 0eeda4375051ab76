//! The one launch sequence of conmon, for a container's create and for an
//! exec session alike, in podman's order:
//!
//! 1. socketpairs for the sync and start pipes (and the attach pipe of an
//!    exec session), placed with the handed fds at their numbers; every
//!    other fd is sealed;
//! 2. the user-namespace preparation and the SELinux exec label, decided
//!    before the fork so that the child runs only prepared hooks;
//! 3. the spawn (own process group, explicit env, stderr captured);
//! 4. conmon's placement in its cgroup, while it waits for the start byte;
//! 5. the start byte, the reap of conmon's parent, and the status records.
//!
//! What differs between a create and an exec is data ([`LaunchPlan`]) and
//! the records read afterwards; the undo of what the caller made (the
//! container in the runtime, the session's process) stays with the caller,
//! which gets [`ConmonLaunch::kill_all`] for conmon's part.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_api::{ContainerDescription, RuntimeError};
use sync_pipe::{seqpacket_pair, FdPlan, PipeNumbers, StartSignal, SyncPipeError, SyncReader};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::files::read_pidfile;
use crate::launch::label::exec_label;
use crate::launch::placement::Placed;
use crate::launch::process::ConmonProcess;
use crate::runtime::ConmonRuntime;
use crate::{LaunchError, LaunchStage};

/// What one launch needs, as plain data.
pub(crate) struct LaunchPlan<'a> {
    /// conmon's arguments.
    pub(crate) argv: Vec<OsString>,
    /// conmon's whole environment.
    pub(crate) env: Vec<(String, String)>,
    /// conmon's working directory.
    pub(crate) cwd: &'a Path,
    /// The pipes' fd numbers in conmon (and whether there is an attach
    /// pipe).
    pub(crate) pipes: PipeNumbers,
    /// fds passed through to the container, placed at 3, 4, ...
    pub(crate) pass_fds: Vec<OwnedFd>,
    /// fds placed after the pipes, in order (reserved ports, named fds).
    pub(crate) trailing_fds: Vec<OwnedFd>,
    /// Where conmon writes its pid.
    pub(crate) monitor_pidfile: PathBuf,
    /// conmon's `-u` value, which identifies its monitor.
    pub(crate) cuuid: &'a str,
    /// The runtime's error log of this launch.
    pub(crate) oci_log: PathBuf,
    /// The runtime command conmon runs, for error messages.
    pub(crate) runtime_command: String,
    /// The deadline of the whole launch.
    pub(crate) limit: Duration,
    /// conmon's stdio under the passthrough log driver (else /dev/null
    /// and a captured stderr).
    pub(crate) passthrough: Option<crate::PassthroughStdio>,
}

/// A launch abandoned after its start byte, owned by its background undo.
pub(crate) struct AbandonedLaunch {
    conmon: ConmonProcess,
    sync: Option<SyncReader>,
    deadline: Instant,
    kill_wait: Duration,
}

impl AbandonedLaunch {
    /// Lets the runtime's create run to its end (conmon reports on the
    /// sync pipe, or closes it, within the launch's deadline), then kills
    /// conmon and its monitor. Killing the monitor earlier would kill the
    /// runtime's create half-way (conmon gives it a parent-death signal),
    /// which can leave the runtime with state of the id that neither
    /// `state` nor `delete` can see and that refuses the next create.
    pub(crate) async fn end(mut self) {
        self.read_next_record().await;
        self.kill_all().await;
    }

    /// Waits, within the launch's deadline, for conmon's next sync record
    /// (or for conmon closing the pipe); returns the record's data.
    pub(crate) async fn read_next_record(&mut self) -> Option<i32> {
        let sync = self.sync.as_mut()?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        match sync.read_record(remaining).await {
            Ok(record) => i32::try_from(record.data).ok(),
            Err(e) => {
                debug!(error = %e, "an abandoned launch's sync record");
                None
            }
        }
    }

    /// Kills conmon and its monitor.
    pub(crate) async fn kill_all(mut self) {
        self.conmon.kill_all(self.kill_wait).await;
    }
}

/// A conmon that has been spawned and placed, waiting for its start byte.
pub(crate) struct ConmonLaunch<'a> {
    rt: &'a ConmonRuntime,
    c: &'a ContainerDescription,
    conmon: ConmonProcess,
    sync: Option<SyncReader>,
    start: Option<StartSignal>,
    attach: Option<SyncReader>,
    oci_log: PathBuf,
    runtime_command: String,
    deadline: Instant,
    limit: Duration,
    /// Where conmon was placed, and what went wrong doing it.
    pub(crate) placed: Placed,
}

impl<'a> ConmonLaunch<'a> {
    /// Steps 1 to 4: prepares, spawns and places conmon.
    pub(crate) async fn spawn(
        rt: &'a ConmonRuntime,
        c: &'a ContainerDescription,
        plan: LaunchPlan<'_>,
    ) -> Result<ConmonLaunch<'a>, RuntimeError> {
        let deadline = state_probe::deadline_after(plan.limit);
        let pipe_error = |e: SyncPipeError| {
            LaunchError::new(LaunchStage::Spawn, e.to_string(), String::new())
                .into_runtime_error(plan.cuuid)
        };
        let (sync_parent, sync_child) = seqpacket_pair().map_err(pipe_error)?;
        let (start_parent, start_child) = seqpacket_pair().map_err(pipe_error)?;
        let attach_pair = match plan.pipes.attach {
            Some(_) => Some(seqpacket_pair().map_err(pipe_error)?),
            None => None,
        };

        let mut fds = FdPlan::new();
        for (i, fd) in plan.pass_fds.iter().enumerate() {
            fds.place(fd.as_raw_fd(), 3 + i as i32)
                .map_err(pipe_error)?;
        }
        fds.place(sync_child.as_raw_fd(), plan.pipes.sync)
            .map_err(pipe_error)?;
        fds.place(start_child.as_raw_fd(), plan.pipes.start)
            .map_err(pipe_error)?;
        let mut next = plan.pipes.start + 1;
        if let (Some(number), Some((_, child))) = (plan.pipes.attach, &attach_pair) {
            fds.place(child.as_raw_fd(), number).map_err(pipe_error)?;
            next = number + 1;
        }
        for fd in &plan.trailing_fds {
            fds.place(fd.as_raw_fd(), next).map_err(pipe_error)?;
            next += 1;
        }
        // Only the placed fds may reach conmon, whatever the caller's
        // process left inheritable.
        fds.seal_unplaced();

        // Decided before the fork: the child may only run prepared,
        // allocation-free hooks.
        let userns = crate::launch::userns::prepare(&rt.config, c)?;
        let label = exec_label(&rt.config)?;

        let mut cmd = tokio::process::Command::new(&rt.conmon_path);
        cmd.args(&plan.argv)
            .env_clear()
            .envs(plan.env)
            .current_dir(plan.cwd);
        // Hooks run in this order in the child: fds, mount namespace, label.
        fds.install_tokio(&mut cmd);
        if let Some(ns) = &userns.mount_ns {
            ns.install_tokio(&mut cmd);
        }
        if let Some(label) = &label {
            debug!(container = %c.id(), label = %label.label(), "conmon's exec label");
            label.install_tokio(&mut cmd);
        }
        debug!(container = %c.id(), cuuid = plan.cuuid, argv = ?plan.argv, "spawning conmon");
        let conmon = ConmonProcess::spawn(
            cmd,
            &rt.conmon_path,
            plan.monitor_pidfile,
            plan.cuuid,
            plan.passthrough,
        )?;
        let pid = conmon.pid();
        debug!(container = %c.id(), conmon_pid = pid, "conmon spawned");
        // conmon holds its own copies now; ours must close so that its exit
        // shows as EOF on the pipes.
        let attach_parent = attach_pair.map(|(parent, child)| {
            drop(child);
            parent
        });
        drop((sync_child, start_child, plan.pass_fds, plan.trailing_fds));

        let mut launch = ConmonLaunch {
            rt,
            c,
            conmon,
            sync: None,
            start: Some(StartSignal::new(start_parent)),
            attach: None,
            oci_log: plan.oci_log,
            runtime_command: plan.runtime_command,
            deadline,
            limit: plan.limit,
            placed: Placed::default(),
        };
        launch.sync = Some(SyncReader::new(sync_parent).map_err(pipe_error)?);
        if let Some(parent) = attach_parent {
            launch.attach = Some(SyncReader::new(parent).map_err(pipe_error)?);
        }
        // podman's moveConmonToCgroupAndSignal: conmon waits for the start
        // byte before it forks its monitor, so the monitor and the runtime
        // are born in conmon's new cgroup.
        launch.placed = crate::launch::placement::place_conmon(&rt.config, c, pid).await;
        for warning in &launch.placed.warnings {
            warn!(container = %c.id(), cuuid = plan.cuuid, "{warning}");
        }
        Ok(launch)
    }

    /// Sends a start byte and reaps conmon's parent, which exits 0 once it
    /// forked its monitor (a non-zero exit: conmon rejected its arguments,
    /// its stderr says why). With `last`, the start pipe is closed after
    /// the byte.
    pub(crate) async fn release(&mut self, last: bool) -> Result<(), RuntimeError> {
        let sent = match (last, self.start.as_ref()) {
            (true, _) => self.start.take().map_or(Ok(()), |start| start.send()),
            (false, Some(start)) => start.send_byte(),
            (false, None) => Ok(()),
        };
        match sent {
            Ok(()) => {}
            // conmon already exited: its exit status and stderr say why.
            Err(SyncPipeError::PeerGone) => debug!("conmon closed its start pipe early"),
            Err(e) => return Err(self.failed(LaunchStage::StartSignal, e.to_string())),
        }
        Ok(())
    }

    /// Reaps conmon's parent within the launch's deadline.
    pub(crate) async fn reap_parent(&mut self) -> Result<(), RuntimeError> {
        let Some(status) = self.conmon.wait_parent(self.deadline).await? else {
            return Err(self.timed_out("conmon's launch"));
        };
        if status.success() {
            return Ok(());
        }
        let message = match status.code() {
            Some(code) => format!("conmon exited with status {code}"),
            None => format!("conmon was killed ({status})"),
        };
        Err(self.failed(LaunchStage::ParentExit, message))
    }

    /// Reads the next record of the sync pipe (or, with `attach_pipe`, of
    /// the attach pipe) and returns its value: a pid, or `0` for the
    /// attach handshake. A failure record, EOF or garbage is classified
    /// from the runtime's error log first, then conmon's message.
    pub(crate) async fn read_record(
        &mut self,
        what: &str,
        attach_pipe: bool,
    ) -> Result<i32, RuntimeError> {
        let remaining = self.remaining();
        let reader = if attach_pipe {
            self.attach.as_mut()
        } else {
            self.sync.as_mut()
        };
        let Some(reader) = reader else {
            return Err(self.failed(LaunchStage::SyncRecord, format!("no pipe for {what}")));
        };
        let record = match reader.read_record(remaining).await {
            Ok(record) => record,
            Err(SyncPipeError::Timeout { .. }) => return Err(self.timed_out(what)),
            Err(SyncPipeError::Eof) => {
                return Err(self.runtime_failure(
                    None,
                    "conmon closed its pipe without writing a status record \
                     (the runtime failed without an error message)",
                ))
            }
            Err(e) => return Err(self.failed(LaunchStage::SyncRecord, e.to_string())),
        };
        if record.is_failure() {
            return Err(self.runtime_failure(
                record.message.as_deref(),
                &format!("conmon reported failure {} without a message", record.data),
            ));
        }
        i32::try_from(record.data).map_err(|_| {
            self.failed(
                LaunchStage::SyncRecord,
                format!(
                    "conmon reported an impossible value {} for {what}",
                    record.data
                ),
            )
        })
    }

    /// The monitor's pid from its pidfile.
    pub(crate) fn monitor_pid(&self) -> Result<i32, RuntimeError> {
        let pidfile = self.conmon.monitor_pidfile();
        read_pidfile(pidfile)?.ok_or_else(|| {
            self.failed(
                LaunchStage::Pidfile,
                format!("conmon wrote no pidfile at {}", pidfile.display()),
            )
        })
    }

    /// What is left of the launch's deadline.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The launch succeeded: conmon and its monitor now live on their own,
    /// and the sync pipe passes to the caller.
    pub(crate) fn finish(mut self) -> Option<SyncReader> {
        self.conmon.disarm();
        if self.rt.reaps_orphans {
            // The monitor is (or will be, once re-parented) our child.
            if let Ok(Some(pid)) = read_pidfile(self.conmon.monitor_pidfile()) {
                crate::reaper::reap_when_exited(pid);
            }
        }
        self.sync.take()
    }

    /// The launch's future was dropped after the start byte: what it still
    /// owns, so that its undo can finish in the background.
    pub(crate) fn abandon(mut self) -> AbandonedLaunch {
        AbandonedLaunch {
            sync: self.sync.take(),
            deadline: self.deadline,
            kill_wait: self.rt.config.timeouts.kill_wait,
            conmon: self.conmon,
        }
    }

    /// Kills conmon and its monitor (the caller undoes the rest).
    pub(crate) async fn kill_all(&mut self) {
        self.conmon
            .kill_all(self.rt.config.timeouts.kill_wait)
            .await;
    }

    /// A failure of the launch at `stage`, with conmon's stderr.
    pub(crate) fn failed(&self, stage: LaunchStage, message: String) -> RuntimeError {
        self.conmon.monitor_failed(stage, message)
    }

    /// The launch's deadline passed while waiting for `what`; the error
    /// quotes what conmon printed so far, which usually says why.
    fn timed_out(&self, what: &str) -> RuntimeError {
        let printed = self.conmon.stderr_text();
        let operation = if printed.is_empty() {
            format!("{what} for container {}", self.c.id())
        } else {
            format!(
                "{what} for container {} (conmon printed: {printed})",
                self.c.id()
            )
        };
        RuntimeError::Timeout {
            operation,
            limit: self.limit,
        }
    }

    /// The runtime failed under conmon: its error log first (as podman
    /// prefers it), then conmon's message, classified into permission
    /// denied (126), not found (127) or a launch failure.
    fn runtime_failure(&self, conmon_message: Option<&str>, fallback: &str) -> RuntimeError {
        self.conmon.runtime_failure(
            &self.rt.short_name,
            self.runtime_command.clone(),
            &self.oci_log,
            conmon_message,
            fallback,
        )
    }
}
