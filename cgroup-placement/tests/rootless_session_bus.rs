//! A rootless engine on cgroup v2 with the systemd manager: conmon's scope
//! is asked of the user's own systemd on the session bus, in `user.slice`,
//! never of the system manager. The session bus here is a private one
//! served by testkit's fake systemd; the system bus points nowhere, so a
//! call reaching it would fail.
//!
//! One test in its own binary: it sets the bus addresses in the process
//! environment, where zbus looks for them.

use std::time::Duration;

use cgroup_placement::{decide, place, CgroupManager, CgroupsMode, Placement, PlacementInputs};
use testkit::{require, FakeSystemd, Need, RecordedProperty};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_rootless_engine_asks_its_session_systemd_for_a_scope_in_user_slice(
) -> Result<(), Box<dyn std::error::Error>> {
    if !require(&[Need::Binary("dbus-daemon")]) {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", systemd.address());
    std::env::set_var(
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/nonexistent/system_bus_socket",
    );
    let inputs = PlacementInputs {
        manager: CgroupManager::Systemd,
        no_cgroups: false,
        mode: CgroupsMode::Enabled,
        cgroup_parent: None,
        container_id: "r00tless".to_string(),
        running_as_systemd_service: false,
        rootless: true,
        cgroup_v2: true,
    };
    let expected = Placement::SystemdScope {
        unit: "libpod-conmon-r00tless.scope".to_string(),
        slice: "user.slice".to_string(),
    };
    assert_eq!(decide(&inputs), expected);

    let outcome = place(&inputs, 4242, None, LIMIT).await;

    assert_eq!(outcome.warnings, Vec::<String>::new());
    assert_eq!(outcome.placed, expected);
    let calls = systemd.calls();
    assert_eq!(calls.len(), 1, "one StartTransientUnit on the session bus");
    assert_eq!(calls[0].unit, "libpod-conmon-r00tless.scope");
    assert_eq!(
        calls[0].properties[0],
        RecordedProperty {
            name: "Slice".to_string(),
            signature: "s".to_string(),
            value: "user.slice".to_string(),
        }
    );
    assert_eq!(calls[0].properties[1].value, "[4242]");
    Ok(())
}
