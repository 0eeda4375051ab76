//! A fake systemd manager on a private D-Bus bus.
//!
//! [`FakeSystemd::start`] launches a private `dbus-daemon` (session-style
//! configuration in a temporary directory), connects to it, takes the name
//! `org.freedesktop.systemd1` and serves `/org/freedesktop/systemd1` with
//! the one method of `org.freedesktop.systemd1.Manager` that conmon
//! placement uses: `StartTransientUnit(s name, s mode, a(sv) properties,
//! a(sa(sv)) aux) -> o job`. Every call is recorded ([`FakeSystemd::calls`])
//! and, unless told otherwise, answered with a new job path and the signal
//! `JobRemoved(u id, o job, s unit, s result)` with result `done`.
//!
//! The signal is emitted while the method runs, so it reaches the caller
//! *before* the method reply: a client that subscribes only after the call
//! returns misses it, which is exactly the bug this fake is meant to catch.
//!
//! Faults: [`FakeSystemd::fail_next_call`] makes the next call return a
//! D-Bus error, [`FakeSystemd::suppress_job_removed`] stops the signal (a
//! manager that never finishes the job), [`FakeSystemd::set_job_result`]
//! changes the reported result. The daemon is killed and reaped on drop.
//!
//! ```no_run
//! # async fn example() -> Result<(), testkit::TestkitError> {
//! use std::time::Duration;
//! let systemd = testkit::FakeSystemd::start(Duration::from_secs(5)).await?;
//! println!("fake systemd at {}", systemd.address());
//! // ... drive the code under test against systemd.address() ...
//! assert_eq!(systemd.calls().len(), 1);
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tempfile::TempDir;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::error::TestkitError;
use crate::guard::find_binary;

/// The well-known name the fake takes on its bus.
pub const FAKE_SYSTEMD_NAME: &str = "org.freedesktop.systemd1";
/// The object path the fake manager is served at.
pub const FAKE_SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";

/// One property of a recorded `StartTransientUnit` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedProperty {
    /// The property name, e.g. `"PIDs"`.
    pub name: String,
    /// The D-Bus signature of the value inside the variant, e.g. `"au"`.
    pub signature: String,
    /// The value rendered as text: strings as they are, numbers and
    /// booleans in Rust notation, arrays as `[a, b]`, structures as
    /// `(a, b)`, dictionaries as `{k: v}`.
    pub value: String,
}

/// One `StartTransientUnit` call as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The unit name argument.
    pub unit: String,
    /// The job mode argument (`"replace"`, `"fail"`, …).
    pub mode: String,
    /// The properties, in the order they were sent.
    pub properties: Vec<RecordedProperty>,
    /// The number of auxiliary units sent.
    pub aux_units: usize,
    /// The signature of the whole message body, e.g. `"ssa(sv)a(sa(sv))"`.
    pub body_signature: String,
    /// The job path returned, `None` when the call was made to fail.
    pub job: Option<String>,
}

/// Mutable state shared between the handle and the served object.
#[derive(Debug)]
struct State {
    calls: Vec<RecordedCall>,
    fail_next: Option<String>,
    emit_job_removed: bool,
    job_result: String,
    next_job_id: u32,
}

/// A running fake systemd manager. Dropping it kills the private bus.
#[derive(Debug)]
pub struct FakeSystemd {
    // Field order is drop order: close our connection before the daemon
    // goes away, and remove the directory last.
    server: zbus::Connection,
    daemon: Daemon,
    address: String,
    state: Arc<Mutex<State>>,
    _dir: TempDir,
}

impl FakeSystemd {
    /// Starts a private `dbus-daemon` and the fake manager on it. Starting
    /// the daemon, reading its address and connecting are each bounded by
    /// `limit`; on failure everything started is killed and reaped.
    pub async fn start(limit: Duration) -> Result<FakeSystemd, TestkitError> {
        let binary = find_binary("dbus-daemon").ok_or_else(|| TestkitError::MissingBinary {
            name: "dbus-daemon".to_string(),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("fake-systemd-")
            .tempdir()
            .map_err(TestkitError::io("creating the fake systemd directory"))?;
        let socket = dir.path().join("bus");
        let config = dir.path().join("session.conf");
        fs::write(&config, daemon_config(&socket.display().to_string()))
            .map_err(TestkitError::io(format!("writing {}", config.display())))?;
        let log_path = dir.path().join("dbus-daemon.log");
        let log = File::create(&log_path)
            .map_err(TestkitError::io(format!("creating {}", log_path.display())))?;

        let mut child = Command::new(&binary)
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .arg("--print-address=1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(TestkitError::io(format!("spawning {}", binary.display())))?;
        let stdout = child.stdout.take();
        // From here on the guard kills and reaps the daemon on every exit.
        let daemon = Daemon {
            child,
            log: log_path,
        };
        let Some(stdout) = stdout else {
            return Err(daemon.failure("dbus-daemon stdout was not captured"));
        };

        let reader = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        // If the limit passes, the guard kills the daemon, which closes its
        // stdout and so ends the blocking read.
        let address = match tokio::time::timeout(limit, reader).await {
            Err(_) => {
                return Err(
                    daemon.failure(&format!("dbus-daemon printed no address within {limit:?}"))
                )
            }
            Ok(Err(join)) => return Err(daemon.failure(&format!("address reader failed: {join}"))),
            Ok(Ok(Err(err))) => {
                return Err(daemon.failure(&format!("reading the dbus-daemon address: {err}")))
            }
            Ok(Ok(Ok(line))) => line.trim().to_string(),
        };
        if address.is_empty() {
            return Err(daemon.failure("dbus-daemon exited without printing an address"));
        }

        let state = Arc::new(Mutex::new(State {
            calls: Vec::new(),
            fail_next: None,
            emit_job_removed: true,
            job_result: "done".to_string(),
            next_job_id: 1,
        }));
        let manager = Manager {
            state: Arc::clone(&state),
        };
        let server = match connect_server(&address, manager, limit).await {
            Ok(server) => server,
            Err(message) => return Err(daemon.failure(&message)),
        };
        Ok(FakeSystemd {
            server,
            daemon,
            address,
            state,
            _dir: dir,
        })
    }

    /// The bus address to connect to, e.g. `unix:path=/tmp/…/bus,guid=…`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The pid of the private `dbus-daemon`, for leak checks.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.child.id()
    }

    /// The unique bus name of the fake manager's own connection.
    pub fn unique_name(&self) -> Option<String> {
        self.server.unique_name().map(|name| name.to_string())
    }

    /// Every `StartTransientUnit` call received so far, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.state).calls.clone()
    }

    /// Makes the next `StartTransientUnit` call fail with the D-Bus error
    /// `org.freedesktop.DBus.Error.Failed` carrying `message`. The call is
    /// still recorded (with no job).
    pub fn fail_next_call(&self, message: &str) {
        lock(&self.state).fail_next = Some(message.to_string());
    }

    /// With `true`, calls succeed but no `JobRemoved` signal is ever sent
    /// (a manager whose job never finishes). `false` restores the default.
    pub fn suppress_job_removed(&self, suppress: bool) {
        lock(&self.state).emit_job_removed = !suppress;
    }

    /// The result carried by the following `JobRemoved` signals (default
    /// `"done"`); e.g. `"failed"` for a job systemd could not run.
    pub fn set_job_result(&self, result: &str) {
        lock(&self.state).job_result = result.to_string();
    }
}

/// The served object, in a private module: the interface macro generates
/// public helper items that cannot carry documentation.
mod served {
    use super::*;

    /// The served `org.freedesktop.systemd1.Manager` object.
    pub(super) struct Manager {
        pub(super) state: Arc<Mutex<State>>,
    }

    #[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
    impl Manager {
        /// Records the call, then either fails it or answers with a new job
        /// path after emitting `JobRemoved` for that job.
        async fn start_transient_unit(
            &self,
            #[zbus(header)] header: Header<'_>,
            #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
            name: String,
            mode: String,
            properties: Vec<(String, OwnedValue)>,
            aux: Vec<(String, Vec<(String, OwnedValue)>)>,
        ) -> zbus::fdo::Result<OwnedObjectPath> {
            // The wire form: the body's fields without enclosing parentheses.
            let body_signature = header.signature().to_string_no_parens();
            let properties = properties
                .iter()
                .map(|(name, value)| RecordedProperty {
                    name: name.clone(),
                    signature: value.value_signature().to_string(),
                    value: render(value),
                })
                .collect();
            let (job, emit, result) = {
                let mut state = lock(&self.state);
                let failure = state.fail_next.take();
                let job = if failure.is_none() {
                    let id = state.next_job_id;
                    state.next_job_id += 1;
                    Some((id, format!("{FAKE_SYSTEMD_PATH}/job/{id}")))
                } else {
                    None
                };
                state.calls.push(RecordedCall {
                    unit: name.clone(),
                    mode,
                    properties,
                    aux_units: aux.len(),
                    body_signature,
                    job: job.as_ref().map(|(_, path)| path.clone()),
                });
                if let Some(message) = failure {
                    return Err(zbus::fdo::Error::Failed(message));
                }
                (job, state.emit_job_removed, state.job_result.clone())
            };
            let Some((id, path)) = job else {
                return Err(zbus::fdo::Error::Failed("no job allocated".to_string()));
            };
            let path = OwnedObjectPath::try_from(path)
                .map_err(|err| zbus::fdo::Error::Failed(format!("job path: {err}")))?;
            if emit {
                Self::job_removed(&emitter, id, path.as_ref(), &name, &result).await?;
            }
            Ok(path)
        }

        /// `JobRemoved(u id, o job, s unit, s result)`.
        #[zbus(signal)]
        async fn job_removed(
            emitter: &SignalEmitter<'_>,
            id: u32,
            job: ObjectPath<'_>,
            unit: &str,
            result: &str,
        ) -> zbus::Result<()>;
    }
}

use served::Manager;

/// Connects to `address`, serves the manager and takes the systemd name.
async fn connect_server(
    address: &str,
    manager: Manager,
    limit: Duration,
) -> Result<zbus::Connection, String> {
    let build = async {
        zbus::connection::Builder::address(address)?
            .name(FAKE_SYSTEMD_NAME)?
            .serve_at(FAKE_SYSTEMD_PATH, manager)?
            .build()
            .await
    };
    match tokio::time::timeout(limit, build).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(err)) => Err(format!("serving the fake manager on {address}: {err}")),
        Err(_) => Err(format!(
            "serving the fake manager on {address}: timed out after {limit:?}"
        )),
    }
}

/// The session-style configuration of the private bus: anyone may own any
/// name, send anywhere and eavesdrop.
fn daemon_config(socket: &str) -> String {
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
         <busconfig>\n  <type>session</type>\n  <listen>unix:path={socket}</listen>\n  \
         <policy context=\"default\">\n    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    \
         <allow eavesdrop=\"true\"/>\n    <allow own=\"*\"/>\n  </policy>\n</busconfig>\n"
    )
}

/// Renders a D-Bus value as text (see [`RecordedProperty::value`]).
fn render(value: &Value<'_>) -> String {
    match value {
        Value::U8(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
        Value::I16(v) => v.to_string(),
        Value::U16(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::Str(v) => v.as_str().to_string(),
        Value::ObjectPath(v) => v.as_str().to_string(),
        Value::Signature(v) => v.to_string(),
        Value::Value(inner) => render(inner),
        Value::Array(array) => {
            let items: Vec<String> = array.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Structure(structure) => {
            let fields: Vec<String> = structure.fields().iter().map(render).collect();
            format!("({})", fields.join(", "))
        }
        Value::Dict(dict) => {
            let mut out = String::from("{");
            for (index, (key, value)) in dict.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: {}", render(key), render(value));
            }
            out.push('}');
            out
        }
        other => format!("{other:?}"),
    }
}

/// Locks the shared state, surviving a panicked holder (the data is a
/// plain record and stays consistent).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The private `dbus-daemon`; killed and reaped when dropped.
#[derive(Debug)]
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Kills the daemon (by dropping it) and builds an error carrying
    /// `what` and the daemon's log.
    fn failure(self, what: &str) -> TestkitError {
        let log = self.log.clone();
        drop(self);
        let output = fs::read_to_string(&log).unwrap_or_default();
        TestkitError::Io {
            context: format!("starting the fake systemd bus: {what}; dbus-daemon log: {output:?}"),
            source: io::Error::other(what.to_string()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Already exited is fine; either way reap it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{require, Need};
    use zbus::export::futures_core::Stream;

    const LIMIT: Duration = Duration::from_secs(10);

    fn proxy_builder(
        conn: &zbus::Connection,
    ) -> zbus::Result<zbus::proxy::Builder<'static, zbus::Proxy<'static>>> {
        Ok(zbus::proxy::Builder::new(conn)
            .destination(FAKE_SYSTEMD_NAME)?
            .path(FAKE_SYSTEMD_PATH)?
            .interface("org.freedesktop.systemd1.Manager")?
            .cache_properties(zbus::proxy::CacheProperties::No))
    }

    async fn next_signal(
        stream: &mut std::pin::Pin<Box<zbus::proxy::SignalStream<'static>>>,
    ) -> Option<zbus::Message> {
        let next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
        tokio::time::timeout(LIMIT, next).await.ok().flatten()
    }

    fn process_exists(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    #[tokio::test]
    async fn records_calls_and_emits_job_removed() -> Result<(), Box<dyn std::error::Error>> {
        if !require(&[Need::Binary("dbus-daemon")]) {
            return Ok(());
        }
        let systemd = FakeSystemd::start(LIMIT).await?;
        let daemon_pid = systemd.daemon_pid();
        assert!(process_exists(daemon_pid));
        {
            let conn = zbus::connection::Builder::address(systemd.address())?
                .build()
                .await?;
            let proxy = proxy_builder(&conn)?.build().await?;
            let mut removed = Box::pin(proxy.receive_signal("JobRemoved").await?);

            let properties: Vec<(&str, Value<'_>)> = vec![
                ("Slice", Value::from("machine.slice")),
                ("PIDs", Value::from(vec![4242u32])),
                ("Delegate", Value::from(true)),
            ];
            let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
            let reply = proxy
                .call_method(
                    "StartTransientUnit",
                    &("test.scope", "replace", properties, aux),
                )
                .await?;
            let job: OwnedObjectPath = reply.body().deserialize()?;
            assert_eq!(job.as_str(), "/org/freedesktop/systemd1/job/1");

            let signal = next_signal(&mut removed).await.ok_or("no JobRemoved")?;
            let (id, removed_job, unit, result): (u32, OwnedObjectPath, String, String) =
                signal.body().deserialize()?;
            assert_eq!(
                (id, unit.as_str(), result.as_str()),
                (1, "test.scope", "done")
            );
            assert_eq!(removed_job, job);

            let calls = systemd.calls();
            assert_eq!(calls.len(), 1);
            let call = &calls[0];
            assert_eq!(call.unit, "test.scope");
            assert_eq!(call.mode, "replace");
            assert_eq!(call.body_signature, "ssa(sv)a(sa(sv))");
            assert_eq!(call.aux_units, 0);
            assert_eq!(call.job.as_deref(), Some("/org/freedesktop/systemd1/job/1"));
            let rendered: Vec<(&str, &str, &str)> = call
                .properties
                .iter()
                .map(|p| (p.name.as_str(), p.signature.as_str(), p.value.as_str()))
                .collect();
            assert_eq!(
                rendered,
                vec![
                    ("Slice", "s", "machine.slice"),
                    ("PIDs", "au", "[4242]"),
                    ("Delegate", "b", "true"),
                ]
            );
        }
        drop(systemd);
        assert!(
            !process_exists(daemon_pid),
            "dbus-daemon {daemon_pid} leaked"
        );
        Ok(())
    }

    #[tokio::test]
    async fn failure_mode_returns_a_dbus_error_once() -> Result<(), Box<dyn std::error::Error>> {
        if !require(&[Need::Binary("dbus-daemon")]) {
            return Ok(());
        }
        let systemd = FakeSystemd::start(LIMIT).await?;
        let daemon_pid = systemd.daemon_pid();
        let conn = zbus::connection::Builder::address(systemd.address())?
            .build()
            .await?;
        let proxy = proxy_builder(&conn)?.build().await?;
        let no_props: Vec<(&str, Value<'_>)> = Vec::new();
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();

        systemd.fail_next_call("unit exploded");
        let err = proxy
            .call_method("StartTransientUnit", &("a.scope", "fail", &no_props, &aux))
            .await
            .err()
            .ok_or("failing call succeeded")?;
        match &err {
            zbus::Error::MethodError(name, message, _) => {
                assert_eq!(name.as_str(), "org.freedesktop.DBus.Error.Failed");
                assert_eq!(message.as_deref(), Some("unit exploded"));
            }
            other => panic!("unexpected error {other:?}"),
        }
        // Only the next call fails.
        proxy
            .call_method("StartTransientUnit", &("b.scope", "fail", &no_props, &aux))
            .await?;
        let calls = systemd.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].job, None);
        assert_eq!(
            calls[1].job.as_deref(),
            Some("/org/freedesktop/systemd1/job/1")
        );

        drop(proxy);
        drop(conn);
        drop(systemd);
        assert!(
            !process_exists(daemon_pid),
            "dbus-daemon {daemon_pid} leaked"
        );
        Ok(())
    }

    #[test]
    fn renders_nested_values() {
        let value = Value::from(vec![1u32, 2, 3]);
        assert_eq!(render(&value), "[1, 2, 3]");
        assert_eq!(render(&Value::new(Value::from("x"))), "x");
        assert_eq!(render(&Value::from(false)), "false");
    }
}
