//! systemd scope placement against testkit's fake systemd manager on a
//! private bus: the exact call, waiting for `JobRemoved`, failures becoming
//! warnings, and a job that never finishes timing out within the limit.

use std::time::{Duration, Instant};

use cgroup_placement::{
    connect_address, place, place_in_systemd_scope, CgroupManager, CgroupsMode, Placement,
    PlacementError, PlacementInputs,
};
use testkit::{require, FakeSystemd, Need, RecordedProperty};

const LIMIT: Duration = Duration::from_secs(10);

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn have_dbus() -> bool {
    require(&[Need::Binary("dbus-daemon")])
}

fn property(name: &str, signature: &str, value: &str) -> RecordedProperty {
    RecordedProperty {
        name: name.to_string(),
        signature: signature.to_string(),
        value: value.to_string(),
    }
}

fn systemd_inputs(id: &str) -> PlacementInputs {
    PlacementInputs {
        manager: CgroupManager::Systemd,
        no_cgroups: false,
        mode: CgroupsMode::Enabled,
        cgroup_parent: Some("machine.slice/machine-libpod_pod_p1.slice".to_string()),
        container_id: id.to_string(),
        running_as_systemd_service: false,
        rootless: false,
        cgroup_v2: false,
    }
}

#[tokio::test]
async fn sends_podmans_exact_call_and_waits_for_job_removed() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;

    place_in_systemd_scope(
        &conn,
        "libpod-conmon-abc.scope",
        "machine.slice",
        4242,
        "",
        LIMIT,
    )
    .await?;

    let calls = systemd.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.unit, "libpod-conmon-abc.scope");
    assert_eq!(call.mode, "replace");
    assert_eq!(call.body_signature, "ssa(sv)a(sa(sv))");
    assert_eq!(call.aux_units, 0);
    assert_eq!(
        call.properties,
        vec![
            property("Slice", "s", "machine.slice"),
            property("PIDs", "au", "[4242]"),
            property("Delegate", "b", "true"),
            property("DefaultDependencies", "b", "false"),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_description_is_appended_after_podmans_properties() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;

    place_in_systemd_scope(&conn, "x.scope", "user.slice", 7, "conmon of x", LIMIT).await?;

    let names: Vec<String> = systemd.calls()[0]
        .properties
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "Slice",
            "PIDs",
            "Delegate",
            "DefaultDependencies",
            "Description"
        ]
    );
    assert_eq!(
        systemd.calls()[0].properties[4],
        property("Description", "s", "conmon of x")
    );
    Ok(())
}

#[tokio::test]
async fn place_uses_the_decided_unit_and_slice() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;

    let outcome = place(&systemd_inputs("c0ffee"), 99, Some(&conn), LIMIT).await;

    assert_eq!(outcome.warnings, Vec::<String>::new());
    assert_eq!(
        outcome.placed,
        Placement::SystemdScope {
            unit: "libpod-conmon-c0ffee.scope".to_string(),
            slice: "machine-libpod_pod_p1.slice".to_string(),
        }
    );
    let calls = systemd.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].unit, "libpod-conmon-c0ffee.scope");
    assert_eq!(
        calls[0].properties[0],
        property("Slice", "s", "machine-libpod_pod_p1.slice")
    );
    assert_eq!(calls[0].properties[1], property("PIDs", "au", "[99]"));
    Ok(())
}

#[tokio::test]
async fn returns_only_after_job_removed() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;

    // Without the signal the call is answered but the job never finishes:
    // place_in_systemd_scope must not return Ok.
    systemd.suppress_job_removed(true);
    let limit = Duration::from_millis(500);
    let started = Instant::now();
    let err = place_in_systemd_scope(&conn, "a.scope", "machine.slice", 1, "", limit)
        .await
        .err()
        .ok_or("returned before JobRemoved")?;
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, PlacementError::Timeout { operation, limit: l }
            if operation.contains("JobRemoved") && *l == limit),
        "{err}"
    );
    assert!(elapsed >= limit, "gave up early after {elapsed:?}");
    assert!(
        elapsed < limit + Duration::from_secs(3),
        "overran the limit: {elapsed:?}"
    );
    assert_eq!(systemd.calls().len(), 1, "the call itself was made");

    // With the signal back, the same connection succeeds.
    systemd.suppress_job_removed(false);
    place_in_systemd_scope(&conn, "b.scope", "machine.slice", 1, "", LIMIT).await?;
    Ok(())
}

#[tokio::test]
async fn a_job_result_other_than_done_is_an_error_naming_it() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;
    systemd.set_job_result("dependency");

    let err = place_in_systemd_scope(&conn, "d.scope", "machine.slice", 1, "", LIMIT)
        .await
        .err()
        .ok_or("a failed job was accepted")?;
    match &err {
        PlacementError::JobFailed { unit, job, result } => {
            assert_eq!(unit, "d.scope");
            assert_eq!(job, "/org/freedesktop/systemd1/job/1");
            assert_eq!(result, "dependency");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("dependency"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_failing_manager_becomes_a_warning() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;
    systemd.fail_next_call("Unit libpod-conmon-bad.scope already exists.");

    let started = Instant::now();
    let outcome = place(&systemd_inputs("bad"), 5, Some(&conn), LIMIT).await;

    assert!(started.elapsed() < LIMIT, "hung on a failing manager");
    assert_eq!(outcome.placed, Placement::None);
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    let warning = &outcome.warnings[0];
    assert!(
        warning.starts_with("Failed to add conmon to systemd sandbox cgroup: "),
        "{warning}"
    );
    assert!(warning.contains("already exists"), "{warning}");
    assert!(
        warning.contains("StartTransientUnit(libpod-conmon-bad.scope"),
        "{warning}"
    );
    Ok(())
}

#[tokio::test]
async fn a_silent_manager_becomes_a_timeout_warning_within_the_limit() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;
    systemd.suppress_job_removed(true);

    let limit = Duration::from_millis(300);
    let started = Instant::now();
    let outcome = place(&systemd_inputs("slow"), 5, Some(&conn), limit).await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < limit + Duration::from_secs(3),
        "overran the limit: {elapsed:?}"
    );
    assert_eq!(outcome.placed, Placement::None);
    assert_eq!(outcome.warnings.len(), 1);
    assert!(
        outcome.warnings[0].contains("timed out"),
        "{:?}",
        outcome.warnings
    );
    Ok(())
}

#[tokio::test]
async fn no_placement_means_no_bus_traffic() -> TestResult {
    if !have_dbus() {
        return Ok(());
    }
    let systemd = FakeSystemd::start(LIMIT).await?;
    let conn = connect_address(systemd.address(), LIMIT).await?;
    for inputs in [
        PlacementInputs {
            running_as_systemd_service: true,
            ..systemd_inputs("svc")
        },
        PlacementInputs {
            mode: CgroupsMode::Split,
            ..systemd_inputs("split")
        },
        PlacementInputs {
            no_cgroups: true,
            ..systemd_inputs("none")
        },
    ] {
        let outcome = place(&inputs, 5, Some(&conn), LIMIT).await;
        assert_eq!(outcome.placed, Placement::None);
        assert!(outcome.warnings.is_empty());
    }
    assert!(systemd.calls().is_empty());
    Ok(())
}

#[tokio::test]
async fn connecting_to_a_dead_bus_fails_within_the_limit() {
    let dir = std::env::temp_dir().join(format!("no-bus-{}", std::process::id()));
    let address = format!("unix:path={}/bus", dir.display());
    let result = connect_address(&address, Duration::from_secs(2)).await;
    assert!(
        matches!(
            result,
            Err(PlacementError::Bus { .. }) | Err(PlacementError::Timeout { .. })
        ),
        "{result:?}"
    );
}
