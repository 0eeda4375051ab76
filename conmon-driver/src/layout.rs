//! Where everything of a container and of an exec session lives: every
//! path the driver or conmon reads or writes is computed here, from the
//! configuration and the container's description alone, so that a driver
//! restarted after a crash finds them again and a layout change is made in
//! one place.
//!
//! ```text
//! <tmp>/exits/<id>                 exit file (conmon --exit-dir)
//! <tmp>/persist/<id>/              conmon --persist-dir: exit, oom
//! <tmp>/persist/<id>/started       start time marker (mtime)
//! <tmp>/persist/<id>/running       the init process started (pid and
//!                                  start time), written once start succeeded
//! <tmp>/persist/<id>/paused        present from a pause until its resume
//! <tmp>/socket/                    conmon --socket-dir-path
//! <run dir>/pidfile                the runtime's pid file (-p)
//! <run dir>/oci-log                the runtime's JSON error log
//! <run dir>/conmon.pid             conmon's pid (default)
//! <bundle>/config.json, attach, ctl, winsz
//! <bundle>/exec-<session>/         an exec session's directory:
//!     exec_pid, conmon.pid, oci-log, process.json, attach, ctl,
//!     exit/<id> (conmon names it after -c), persist/
//! ```

use std::path::{Path, PathBuf};

use runtime_api::{ContainerDescription, ExecSessionId};

use crate::config::ConmonConfig;
use crate::ConmonDescription;

/// Where conmon writes its pid unless the caller chose a file:
/// `<run dir>/conmon.pid`.
pub(crate) fn default_conmon_pidfile(c: &ContainerDescription) -> PathBuf {
    c.run_dir().join("conmon.pid")
}

/// The name of an exec session's process spec file.
pub const PROCESS_SPEC_FILE: &str = "process.json";

impl ConmonConfig {
    /// Where conmon writes exit files.
    pub fn exits_dir(&self) -> PathBuf {
        self.tmp_dir.join("exits")
    }

    /// Where conmon's attach socket links go.
    pub fn socket_dir(&self) -> PathBuf {
        self.tmp_dir.join("socket")
    }

    /// Where conmon keeps per-container exit and OOM files.
    pub fn persist_root(&self) -> PathBuf {
        self.tmp_dir.join("persist")
    }
}

/// The paths of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLayout {
    /// The container id, which names the exit file and the persist dir.
    pub id: String,
    /// The bundle.
    pub bundle: PathBuf,
    /// The bundle's `config.json`.
    pub config_json: PathBuf,
    /// The directory conmon writes the exit file into.
    pub exit_dir: PathBuf,
    /// The exit file: decimal exit code, no newline.
    pub exit_file: PathBuf,
    /// conmon's persist directory (`exit`, `oom`).
    pub persist_dir: PathBuf,
    /// Touched just before `RUNTIME start`; its mtime is the start time.
    pub started_marker: PathBuf,
    /// The caller's run directory (the driver creates it if missing, and
    /// removes it at delete only once it is empty).
    pub run_dir: PathBuf,
    /// The runtime's JSON error log.
    pub oci_log: PathBuf,
    /// Where the runtime writes the container's pid.
    pub container_pidfile: PathBuf,
    /// Where conmon writes its own pid.
    pub conmon_pidfile: PathBuf,
    /// conmon's attach socket (`--full-attach`).
    pub attach_socket: PathBuf,
    /// conmon's control FIFO (resize, log reopen).
    pub ctl: PathBuf,
    /// conmon's window-size FIFO.
    pub winsz: PathBuf,
    /// conmon's cgroup, `<parent>/conmon`, when conmon is placed with
    /// cgroupfs.
    pub conmon_cgroup: Option<String>,
    /// Whether the driver chose conmon's cgroup parent itself (the caller
    /// named none), so an empty parent is the driver's to remove.
    pub default_parent: bool,
}

impl ContainerLayout {
    /// The layout of container `c` under `config`.
    pub fn new(config: &ConmonConfig, c: &ContainerDescription) -> Self {
        let id = c.id().as_str();
        let persist_dir = config.persist_root().join(id);
        let exit_dir = config.exits_dir();
        Self {
            id: id.to_string(),
            bundle: c.bundle().to_path_buf(),
            config_json: c.bundle().join("config.json"),
            exit_file: exit_dir.join(id),
            exit_dir,
            started_marker: persist_dir.join("started"),
            persist_dir,
            run_dir: c.run_dir().to_path_buf(),
            oci_log: c.run_dir().join("oci-log"),
            container_pidfile: c.run_dir().join("pidfile"),
            conmon_pidfile: c.conmon_pidfile(),
            attach_socket: c.bundle().join("attach"),
            ctl: c.bundle().join("ctl"),
            winsz: c.bundle().join("winsz"),
            conmon_cgroup: crate::launch::placement::conmon_cgroupfs_path(config, c),
            default_parent: c.cgroup_parent().is_none(),
        }
    }

    /// The files of the container the driver or conmon make outside the
    /// persist dir: the exit file, the run dir's files, conmon's socket and
    /// FIFOs in the bundle. Delete removes them; create looks for them.
    pub fn own_files(&self) -> [&Path; 7] {
        [
            &self.exit_file,
            &self.oci_log,
            &self.container_pidfile,
            &self.conmon_pidfile,
            &self.attach_socket,
            &self.ctl,
            &self.winsz,
        ]
    }

    /// Whether anything a create would remove or replace is on disk: one of
    /// [`own_files`](Self::own_files) or the persist dir. A path that
    /// cannot be checked counts as present.
    pub fn any_file_present(&self) -> bool {
        self.own_files()
            .into_iter()
            .chain([self.persist_dir.as_path()])
            .any(|path| match std::fs::symlink_metadata(path) {
                Ok(_) => true,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            })
    }

    /// Written once `RUNTIME start` succeeded: the container's init process
    /// as `PID START_TIME` (a [`state_probe::ProcessIdentity`]), which lets
    /// status tell "still running" without the runtime.
    pub fn running_record(&self) -> PathBuf {
        self.persist_dir.join("running")
    }

    /// Present from the moment the driver asks the runtime to pause the
    /// container until a resume succeeded: while it exists, status asks the
    /// runtime.
    pub fn paused_marker(&self) -> PathBuf {
        self.persist_dir.join("paused")
    }

    /// The layout of exec session `session` of this container.
    pub fn session(&self, session: &ExecSessionId) -> SessionLayout {
        let dir = self.bundle.join(format!("exec-{session}"));
        let exit_dir = dir.join("exit");
        SessionLayout {
            // conmon names exit files after the container (`-c`), which is
            // why every session has an exit directory of its own.
            exit_file: exit_dir.join(&self.id),
            exit_dir,
            persist_dir: dir.join("persist"),
            pidfile: dir.join("exec_pid"),
            sandbox_pidfile: dir.join("exec_sandbox_pid"),
            conmon_pidfile: dir.join("conmon.pid"),
            oci_log: dir.join("oci-log"),
            process_spec: dir.join(PROCESS_SPEC_FILE),
            attach_socket: dir.join("attach"),
            ctl: dir.join("ctl"),
            dir,
        }
    }
}

/// The paths of one exec session, all inside its directory in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLayout {
    /// The session's directory: conmon's bundle and working directory.
    pub dir: PathBuf,
    /// conmon's exit directory for the session.
    pub exit_dir: PathBuf,
    /// The session's exit file.
    pub exit_file: PathBuf,
    /// conmon's persist directory for the session.
    pub persist_dir: PathBuf,
    /// Where the runtime writes the exec process's pid.
    pub pidfile: PathBuf,
    /// Where a runtime that runs the process in a sandbox of its own
    /// writes the process's pid there (runsc's `--internal-pid-file`).
    pub sandbox_pidfile: PathBuf,
    /// Where the session's conmon writes its pid.
    pub conmon_pidfile: PathBuf,
    /// The runtime's error log for the session.
    pub oci_log: PathBuf,
    /// The OCI process spec conmon hands to `RUNTIME exec`.
    pub process_spec: PathBuf,
    /// The session's attach socket.
    pub attach_socket: PathBuf,
    /// The session's control FIFO.
    pub ctl: PathBuf,
}

impl SessionLayout {
    /// Whether `path` lies inside the session's directory.
    pub fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConmonDescriptionExt;
    use runtime_api::{ContainerId, LogDriver};

    #[test]
    fn every_path_of_a_sample_container_and_session() {
        let config = ConmonConfig::new("runc", "/t");
        let c = ContainerDescription::builder(ContainerId::new("c1").unwrap(), "/b", "/r")
            .log(LogDriver::None, "/dev/null")
            .build()
            .unwrap();
        let layout = ContainerLayout::new(&config, &c);
        let p = PathBuf::from;
        let table = [
            (&layout.bundle, p("/b")),
            (&layout.config_json, p("/b/config.json")),
            (&layout.exit_dir, p("/t/exits")),
            (&layout.exit_file, p("/t/exits/c1")),
            (&layout.persist_dir, p("/t/persist/c1")),
            (&layout.started_marker, p("/t/persist/c1/started")),
            (&layout.running_record(), p("/t/persist/c1/running")),
            (&layout.paused_marker(), p("/t/persist/c1/paused")),
            (&layout.oci_log, p("/r/oci-log")),
            (&layout.container_pidfile, p("/r/pidfile")),
            (&layout.conmon_pidfile, p("/r/conmon.pid")),
            (&layout.attach_socket, p("/b/attach")),
            (&layout.ctl, p("/b/ctl")),
        ];
        for (got, want) in table {
            assert_eq!(got, &want);
        }
        let s = layout.session(&ExecSessionId::new("e1").unwrap());
        let table = [
            (&s.dir, p("/b/exec-e1")),
            (&s.exit_dir, p("/b/exec-e1/exit")),
            (&s.exit_file, p("/b/exec-e1/exit/c1")),
            (&s.persist_dir, p("/b/exec-e1/persist")),
            (&s.pidfile, p("/b/exec-e1/exec_pid")),
            (&s.sandbox_pidfile, p("/b/exec-e1/exec_sandbox_pid")),
            (&s.conmon_pidfile, p("/b/exec-e1/conmon.pid")),
            (&s.oci_log, p("/b/exec-e1/oci-log")),
            (&s.process_spec, p("/b/exec-e1/process.json")),
            (&s.attach_socket, p("/b/exec-e1/attach")),
            (&s.ctl, p("/b/exec-e1/ctl")),
        ];
        for (got, want) in table {
            assert_eq!(got, &want);
        }
        assert!(s.contains(&s.process_spec));
        assert_eq!(
            (
                config.exits_dir(),
                config.socket_dir(),
                config.persist_root()
            ),
            (p("/t/exits"), p("/t/socket"), p("/t/persist"))
        );
    }

    #[test]
    fn a_chosen_conmon_pidfile_is_kept() {
        let config = ConmonConfig::new("runc", "/t");
        let c = ContainerDescription::builder(ContainerId::new("c1").unwrap(), "/b", "/r")
            .log(LogDriver::None, "/dev/null")
            .conmon_pidfile("/elsewhere/conmon.pid")
            .build()
            .unwrap();
        assert_eq!(
            ContainerLayout::new(&config, &c).conmon_pidfile,
            PathBuf::from("/elsewhere/conmon.pid")
        );
    }
}
