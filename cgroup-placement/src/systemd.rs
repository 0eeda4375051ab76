//! Placing a process into a transient systemd scope over D-Bus.
//!
//! This mirrors podman's `RunUnderSystemdScope`: one
//! `org.freedesktop.systemd1.Manager.StartTransientUnit` call creating
//! `<unit>` in `<slice>` with the process in it, then a wait for the job to
//! finish. The `JobRemoved` subscription is made before the call so the
//! signal cannot be missed, and every step (connecting, subscribing, the
//! call, the wait) is bounded by a caller-set limit.

use std::future::{poll_fn, Future};
use std::time::Duration;

use tokio::time::{timeout_at, Instant};
use zbus::export::futures_core::Stream;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, Value};
use zbus::Connection;

use crate::deadline_after;
use crate::error::PlacementError;

/// The bus name of the systemd manager.
pub const SYSTEMD_BUS_NAME: &str = "org.freedesktop.systemd1";
/// The object path of the systemd manager.
pub const SYSTEMD_OBJECT_PATH: &str = "/org/freedesktop/systemd1";
/// The interface of the systemd manager.
pub const SYSTEMD_MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";
/// The job mode passed to `StartTransientUnit`. podman (libpod
/// `pkg/systemd`, and `utils.RunUnderSystemdScope` before it) uses
/// `"replace"`.
pub const JOB_MODE: &str = "replace";
/// The only `JobRemoved` result that means the scope was started.
pub const JOB_RESULT_DONE: &str = "done";

/// The properties of the scope, in podman's order: `Slice` (s), `PIDs` (au),
/// `Delegate` (b, true), `DefaultDependencies` (b, false). podman sends no
/// `Description`; one is appended here only when `description` is not
/// empty, so an empty description gives exactly podman's call.
pub fn scope_properties(
    slice: &str,
    pid: u32,
    description: &str,
) -> Vec<(&'static str, Value<'static>)> {
    let mut properties = vec![
        ("Slice", Value::from(slice.to_string())),
        ("PIDs", Value::from(vec![pid])),
        ("Delegate", Value::from(true)),
        ("DefaultDependencies", Value::from(false)),
    ];
    if !description.is_empty() {
        properties.push(("Description", Value::from(description.to_string())));
    }
    properties
}

/// Connects to the bus the systemd manager of this engine listens on: the
/// system bus for a root engine, the session (user) bus for a rootless
/// one, as podman does. Bounded by `limit`.
pub async fn connect_bus(rootless: bool, limit: Duration) -> Result<Connection, PlacementError> {
    let (which, builder) = if rootless {
        ("session", zbus::connection::Builder::session())
    } else {
        ("system", zbus::connection::Builder::system())
    };
    let operation = format!("connecting to the {which} bus");
    let builder = builder.map_err(bus_error(&operation))?;
    bounded(deadline_after(limit), limit, &operation, builder.build()).await
}

/// Connects to the bus at `address` (e.g. `unix:path=/tmp/x/bus`), bounded
/// by `limit`. Meant for private buses such as a test's fake systemd.
pub async fn connect_address(address: &str, limit: Duration) -> Result<Connection, PlacementError> {
    let operation = format!("connecting to {address}");
    let builder = zbus::connection::Builder::address(address).map_err(bus_error(&operation))?;
    bounded(deadline_after(limit), limit, &operation, builder.build()).await
}

/// Creates the transient scope `unit` in `slice` holding `pid`, and returns
/// once systemd reports the job finished.
///
/// The `JobRemoved` signal is subscribed to before `StartTransientUnit`
/// (`ssa(sv)a(sa(sv))`, mode [`JOB_MODE`], properties from
/// [`scope_properties`], no auxiliary units) is called; the wait ends at
/// the signal whose job path is the one the call returned. A result other
/// than `done` is [`PlacementError::JobFailed`].
///
/// Like podman, when the call itself is refused (typically because the
/// unit already exists) the pid is attached to the existing unit with
/// `AttachProcessesToUnit(unit, "/", [pid])`; if that fails too, the
/// original error is returned.
///
/// All of it together is bounded by `limit`; running out is
/// [`PlacementError::Timeout`] naming the step.
pub async fn place_in_systemd_scope(
    conn: &Connection,
    unit: &str,
    slice: &str,
    pid: u32,
    description: &str,
    limit: Duration,
) -> Result<(), PlacementError> {
    let deadline = deadline_after(limit);

    let proxy_op = "creating the systemd manager proxy";
    let proxy: zbus::Proxy<'static> = bounded(
        deadline,
        limit,
        proxy_op,
        zbus::proxy::Builder::new(conn)
            .destination(SYSTEMD_BUS_NAME)
            .and_then(|b| b.path(SYSTEMD_OBJECT_PATH))
            .and_then(|b| b.interface(SYSTEMD_MANAGER_INTERFACE))
            .map(|b| b.cache_properties(CacheProperties::No))
            .map_err(bus_error(proxy_op))?
            .build(),
    )
    .await?;

    // Subscribe first: systemd may emit JobRemoved before we have read
    // the reply carrying the job path.
    let subscribe_op = "subscribing to JobRemoved";
    let mut removed = Box::pin(
        bounded(
            deadline,
            limit,
            subscribe_op,
            proxy.receive_signal("JobRemoved"),
        )
        .await?,
    );

    let call_op = format!("StartTransientUnit({unit}, {JOB_MODE})");
    let properties = scope_properties(slice, pid, description);
    let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
    let reply = match timeout_at(
        deadline,
        proxy.call_method("StartTransientUnit", &(unit, JOB_MODE, properties, aux)),
    )
    .await
    {
        Err(_) => return Err(timeout_error(&call_op, limit)),
        Ok(Ok(reply)) => reply,
        Ok(Err(err @ zbus::Error::MethodError(..))) => {
            if attach_to_existing(&proxy, unit, pid, deadline)
                .await
                .is_ok()
            {
                return Ok(());
            }
            return Err(bus_error(&call_op)(err));
        }
        Ok(Err(err)) => return Err(bus_error(&call_op)(err)),
    };
    let job: OwnedObjectPath = reply
        .body()
        .deserialize()
        .map_err(bus_error(&format!("reading the reply of {call_op}")))?;

    let wait_op = format!(
        "waiting for JobRemoved of job {} (unit {unit})",
        job.as_str()
    );
    loop {
        let next = poll_fn(|cx| removed.as_mut().poll_next(cx));
        let message = match timeout_at(deadline, next).await {
            Err(_) => return Err(timeout_error(&wait_op, limit)),
            Ok(None) => {
                return Err(PlacementError::SignalStreamEnded {
                    unit: unit.to_string(),
                    job: job.as_str().to_string(),
                })
            }
            Ok(Some(message)) => message,
        };
        // JobRemoved(u id, o job, s unit, s result). A signal that does not
        // parse is not ours to judge: skip it like any other job's.
        let Ok((_id, removed_job, _unit, result)) =
            message
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        if removed_job != job {
            continue;
        }
        if result == JOB_RESULT_DONE {
            return Ok(());
        }
        return Err(PlacementError::JobFailed {
            unit: unit.to_string(),
            job: job.as_str().to_string(),
            result,
        });
    }
}

/// podman's fallback when the scope cannot be created: move the pid into
/// the existing unit of that name.
async fn attach_to_existing(
    proxy: &zbus::Proxy<'_>,
    unit: &str,
    pid: u32,
    deadline: Instant,
) -> Result<(), ()> {
    let args = (unit, "/", vec![pid]);
    match timeout_at(deadline, proxy.call_method("AttachProcessesToUnit", &args)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(()),
    }
}

/// Awaits `future` until `deadline`, mapping both its error and running
/// out of time into [`PlacementError`]s naming `operation`.
async fn bounded<T, F>(
    deadline: Instant,
    limit: Duration,
    operation: &str,
    future: F,
) -> Result<T, PlacementError>
where
    F: Future<Output = zbus::Result<T>>,
{
    match timeout_at(deadline, future).await {
        Ok(result) => result.map_err(bus_error(operation)),
        Err(_) => Err(timeout_error(operation, limit)),
    }
}

/// Wraps a zbus error with the operation it interrupted.
fn bus_error<E: Into<zbus::Error>>(operation: &str) -> impl FnOnce(E) -> PlacementError {
    let operation = operation.to_string();
    move |source| PlacementError::Bus {
        operation,
        source: Box::new(source.into()),
    }
}

/// The timeout error for `operation`.
fn timeout_error(operation: &str, limit: Duration) -> PlacementError {
    PlacementError::Timeout {
        operation: operation.to_string(),
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_follow_podman_order_and_types() {
        let rendered: Vec<(&str, String)> = scope_properties("machine.slice", 42, "")
            .iter()
            .map(|(name, value)| (*name, value.value_signature().to_string()))
            .collect();
        assert_eq!(
            rendered,
            vec![
                ("Slice", "s".to_string()),
                ("PIDs", "au".to_string()),
                ("Delegate", "b".to_string()),
                ("DefaultDependencies", "b".to_string()),
            ]
        );
        let with_description = scope_properties("machine.slice", 42, "conmon for abc");
        assert_eq!(with_description.len(), 5);
        assert_eq!(with_description[4].0, "Description");
    }
}
