//! Where conmon goes, end to end with real conmon and runc: a cgroupfs
//! cgroup in every hierarchy of this host, a systemd scope through a fake
//! systemd manager on a private bus, and the SELinux exec label written
//! by conmon's child only.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use conmon_driver::{
    CgroupManager, CgroupsMode, ConmonDescription, ConmonDescriptionExt, MonitorOptions,
    SelinuxHost, SelinuxPolicy,
};
use runtime_api::{CreateOptions, OciRuntime};
use testkit::{require, FakeSystemd, Need};
use tracing::instrument::WithSubscriber;

static PARENTS: AtomicU32 = AtomicU32::new(0);

/// Every cgroup hierarchy mounted here: v1 controllers (one mount point
/// each, co-mounted ones once) and the unified one if mounted.
fn hierarchies() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            let point = before.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(point))
        })
        .collect()
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_else(|e| panic!("reading {}/cgroup.procs: {e}", dir.display()))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn conmon_pid(c: &runtime_api::ContainerDescription) -> i32 {
    std::fs::read_to_string(c.conmon_pidfile())
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Removes `<hierarchy>/<parent>` of a test when dropped, even when an
/// assertion failed, so no cgroup directory leaks.
struct ParentCgroup(String);

impl Drop for ParentCgroup {
    fn drop(&mut self) {
        for h in hierarchies() {
            let parent = h.join(self.0.trim_start_matches('/'));
            let _ = std::fs::remove_dir(parent.join("conmon"));
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroupfs_places_conmon_in_every_hierarchy_and_delete_removes_it() {
    if !need_runc() {
        return;
    }
    let hierarchies = hierarchies();
    assert!(!hierarchies.is_empty(), "no cgroup hierarchy mounted");
    let parent = format!(
        "/conmon-driver-test-{}-{}",
        std::process::id(),
        PARENTS.fetch_add(1, Ordering::SeqCst)
    );
    let _parent_guard = ParentCgroup(parent.clone());
    let s = setup("runc", &[]);
    let id = unique_id("cgfs");
    let b = bundle(&["sh", "-c", "exit 0"]);
    let c = s
        .describe(&id, &b)
        .cgroups_mode(CgroupsMode::Enabled)
        .cgroup_parent(&parent)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);

    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    assert_eq!(created.container.warnings, Vec::<String>::new());
    assert_eq!(
        created.placement.as_deref(),
        Some(format!("cgroupfs:{parent}/conmon").as_str())
    );
    let monitor = conmon_pid(&c);
    assert_eq!(monitor, created.monitor_pid);
    for h in &hierarchies {
        let dir = h.join(parent.trim_start_matches('/')).join("conmon");
        assert!(
            procs(&dir).contains(&monitor),
            "conmon {monitor} not in {}/cgroup.procs",
            dir.display()
        );
    }
    eprintln!(
        "conmon {monitor} found in {} hierarchies: {hierarchies:?}",
        hierarchies.len()
    );

    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        0
    );
    s.runtime.delete(&c).await.unwrap();

    for h in &hierarchies {
        let parent_dir = h.join(parent.trim_start_matches('/'));
        let conmon_dir = parent_dir.join("conmon");
        assert!(!conmon_dir.exists(), "{} left behind", conmon_dir.display());
        // The parent was created on the way to `<parent>/conmon`; runc
        // keeps its own cgroup elsewhere. It must be empty now, and the
        // test removes it.
        if parent_dir.exists() {
            assert!(
                procs(&parent_dir).is_empty(),
                "{} busy",
                parent_dir.display()
            );
            std::fs::remove_dir(&parent_dir)
                .unwrap_or_else(|e| panic!("{} not empty: {e}", parent_dir.display()));
        }
    }
    s.assert_nothing_left(&id);
}

fn need_systemd_fake() -> bool {
    need_runc() && require(&[Need::Binary("dbus-daemon")])
}

/// A driver using the systemd manager against `fake`.
///
/// conmon's `-s` makes conmon pass `--systemd-cgroup` to runc, and runc then
/// asks the host's systemd (on the system bus) for the container's own
/// cgroup. Where no systemd runs, as on CI machines, runc fails; so runc is
/// reached through a wrapper that drops that flag, which keeps the
/// container's cgroup on cgroupfs while conmon's placement goes to the fake.
fn systemd_setup(fake: &FakeSystemd, placement_limit: Duration) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let runc = testkit::find_binary("runc").unwrap();
    let wrapper = dir.path().join("runc-no-systemd");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             for a in \"$@\"; do shift; [ \"$a\" = --systemd-cgroup ] || set -- \"$@\" \"$a\"; done\n\
             exec {} \"$@\"\n",
            runc.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = config("runc", dir.path());
    config.runtime_paths = vec![wrapper];
    config.cgroup_manager = CgroupManager::Systemd;
    config.systemd_bus_address = Some(fake.address().to_string());
    config.invocation_id_set = false;
    config.timeouts.placement = placement_limit;
    setup_with(config, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_scope_is_requested_exactly_and_the_job_is_awaited() {
    if !need_systemd_fake() {
        return;
    }
    let fake = FakeSystemd::start(Duration::from_secs(10)).await.unwrap();
    let s = systemd_setup(&fake, Duration::from_secs(10));
    let id = unique_id("scope");
    let b = bundle(&["sh", "-c", "exit 0"]);
    let c = s
        .describe(&id, &b)
        .cgroups_mode(CgroupsMode::Enabled)
        .cgroup_parent("machine.slice")
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);

    // The driver's debug log names the pid it spawned.
    let log = LogCapture::default();
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .with_subscriber(log.subscriber())
        .await
        .unwrap();
    assert_eq!(created.container.warnings, Vec::<String>::new());
    let unit = format!("libpod-conmon-{id}.scope");
    assert_eq!(
        created.placement.as_deref(),
        Some(format!("systemd:{unit} in machine.slice").as_str())
    );
    // The pid placed is the conmon process the driver spawned, before the
    // start byte (podman's `cmd.Process.Pid`), not the monitor conmon forks
    // after the start byte (whose pid is in the pidfile): the monitor is
    // born in the scope.
    let spawned = log.spawned_pid();
    assert_ne!(spawned, created.monitor_pid);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.unit, unit);
    assert_eq!(call.mode, "replace");
    assert_eq!(call.body_signature, "ssa(sv)a(sa(sv))");
    assert_eq!(call.aux_units, 0);
    assert!(call.job.is_some());
    let properties: Vec<(&str, &str, &str)> = call
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.signature.as_str(), p.value.as_str()))
        .collect();
    let pids = format!("[{spawned}]");
    assert_eq!(
        properties,
        vec![
            ("Slice", "s", "machine.slice"),
            ("PIDs", "au", pids.as_str()),
            ("Delegate", "b", "true"),
            ("DefaultDependencies", "b", "false"),
        ]
    );

    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        0
    );
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);

    // A manager that never finishes the job: create waits for JobRemoved
    // up to the placement limit, then goes on with a warning.
    fake.suppress_job_removed(true);
    let limit = Duration::from_secs(2);
    let s = systemd_setup(&fake, limit);
    let id = unique_id("scope-nojob");
    let c = s
        .describe(&id, &b)
        .cgroups_mode(CgroupsMode::Enabled)
        .cgroup_parent("machine.slice")
        .build()
        .unwrap();
    let _cleanup2 = s.cleanup_on_drop(&id);
    let began = Instant::now();
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    let took = began.elapsed();
    assert!(
        took >= limit,
        "create returned after {took:?}, before the job"
    );
    assert_eq!(created.placement, None);
    assert_eq!(
        created.container.warnings.len(),
        1,
        "{:?}",
        created.container.warnings
    );
    assert!(
        created.container.warnings[0].contains("JobRemoved")
            && created.container.warnings[0].contains("timed out"),
        "{:?}",
        created.container.warnings
    );
    assert_eq!(fake.calls().len(), 2);
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}

/// The driver's tracing output, collected for one future.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish()
    }

    /// The `conmon_pid` of the driver's "conmon spawned" line.
    fn spawned_pid(&self) -> i32 {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains("conmon spawned"))
            .unwrap_or_else(|| panic!("no spawn line in {text}"));
        let value = line.split("conmon_pid=").nth(1).unwrap();
        value.split_whitespace().next().unwrap().parse().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_systemd_manager_gives_a_warning_and_the_container_runs() {
    if !need_systemd_fake() {
        return;
    }
    let fake = FakeSystemd::start(Duration::from_secs(10)).await.unwrap();
    let daemon = fake.daemon_pid();
    let s = systemd_setup(&fake, Duration::from_secs(10));
    let id = unique_id("scope-fail");
    let b = bundle(&["sh", "-c", "exit 7"]);
    let c = s
        .describe(&id, &b)
        .cgroups_mode(CgroupsMode::Enabled)
        .cgroup_parent("machine.slice/machine-libpod_pod_x.slice")
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);

    fake.fail_next_call("manager exploded");
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    assert_eq!(created.placement, None);
    assert_eq!(
        created.container.warnings.len(),
        1,
        "{:?}",
        created.container.warnings
    );
    assert!(
        created.container.warnings[0].contains("manager exploded")
            && created.container.warnings[0].contains("systemd sandbox cgroup"),
        "{:?}",
        created.container.warnings
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].job, None);
    assert_eq!(calls[0].properties[0].value, "machine-libpod_pod_x.slice");

    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        7
    );
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
    drop(fake);
    assert!(
        !Path::new(&format!("/proc/{daemon}")).exists(),
        "dbus-daemon leaked"
    );
}

/// The exec attr files of every thread of this process, as read now.
fn own_exec_attrs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path().join("attr/exec");
        let read = match std::fs::read(&path) {
            Ok(bytes) => format!("{bytes:?}"),
            Err(e) => format!("error {:?}", e.raw_os_error()),
        };
        out.push((task.file_name().to_string_lossy().into_owned(), read));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selinux_label_is_written_by_conmons_child_only() {
    if !need_runc() {
        return;
    }
    // The attr path resolves through the writer's own working directory:
    // conmon's child runs in the bundle, the driver does not.
    let attr_name = "selinux-exec-attr";
    let attr_path = PathBuf::from("/proc/self/cwd").join(attr_name);
    let driver_side = std::env::current_dir().unwrap().join(attr_name);
    assert!(!driver_side.exists());
    let cases = [
        (
            SelinuxPolicy::FollowHost,
            true,
            Some("system_u:system_r:container_runtime_t:s0:c1,c2"),
            "system_u:system_r:container_runtime_t:s0",
        ),
        // Already at s0: no label is needed, nothing is written.
        (
            SelinuxPolicy::FollowHost,
            true,
            Some("system_u:system_r:container_runtime_t:s0"),
            "",
        ),
        // A host without SELinux: nothing is written.
        (
            SelinuxPolicy::FollowHost,
            false,
            Some("system_u:system_r:container_runtime_t:s0:c1,c2"),
            "",
        ),
        // Policy off: nothing is written.
        (
            SelinuxPolicy::Off,
            true,
            Some("system_u:system_r:container_runtime_t:s0:c1,c2"),
            "",
        ),
    ];
    for (policy, enabled, current, expected) in cases {
        let before = own_exec_attrs();
        let dir = tempfile::tempdir().unwrap();
        let mut config = config("runc", dir.path());
        config.selinux = policy;
        config.selinux_host = Some(SelinuxHost {
            enabled,
            current_label: current.map(str::to_string),
            exec_attr_path: attr_path.clone(),
        });
        let s = setup_with(config, dir);
        let id = unique_id("selinux");
        let b = bundle(&["true"]);
        let child_side = b.path().join(attr_name);
        std::fs::write(&child_side, b"").unwrap();
        let c = s.describe(&id, &b).build().unwrap();
        let _cleanup = s.cleanup_on_drop(&id);
        s.runtime
            .create_with(&c, CreateOptions::default(), MonitorOptions::default())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&child_side).unwrap(),
            expected,
            "{policy:?} enabled={enabled} current={current:?}"
        );
        assert!(!driver_side.exists(), "the driver wrote a label");
        // Threads may come and go; those present before and after are
        // unchanged.
        let after = own_exec_attrs();
        for (tid, value) in &after {
            if let Some((_, old)) = before.iter().find(|(t, _)| t == tid) {
                assert_eq!(old, value, "thread {tid}'s exec attr changed");
            }
        }
        s.runtime.delete(&c).await.unwrap();
        s.assert_nothing_left(&id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_parent_is_used_and_removed_once_empty() {
    if !need_runc() {
        return;
    }
    let s = setup("runc", &[]);
    let id = unique_id("cgdefault");
    let b = bundle(&["true"]);
    let c = s
        .describe(&id, &b)
        .cgroups_mode(CgroupsMode::Enabled)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    assert_eq!(
        created.placement.as_deref(),
        Some("cgroupfs:/libpod_parent/conmon")
    );
    s.runtime.start(&c).await.unwrap();
    s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap();
    s.runtime.delete(&c).await.unwrap();
    // Other tests of this binary use parents of their own, so nothing else
    // holds the default parent now.
    for h in hierarchies() {
        let parent = h.join("libpod_parent");
        assert!(!parent.exists(), "{} left behind", parent.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_sessions_conmon_gets_the_same_launch_label_as_the_containers() {
    if !need_runc() {
        return;
    }
    // One attr file for both launches: the container's conmon writes it at
    // create; emptied, it must be written again by the exec's conmon.
    let attrs = tempfile::tempdir().unwrap();
    let attr = attrs.path().join("exec-attr");
    std::fs::write(&attr, b"").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("runc", dir.path());
    config.selinux = SelinuxPolicy::FollowHost;
    config.selinux_host = Some(SelinuxHost {
        enabled: true,
        current_label: Some("system_u:system_r:container_runtime_t:s0:c1,c2".into()),
        exec_attr_path: attr.clone(),
    });
    let s = setup_with(config, dir);
    let id = unique_id("exec-label");
    let b = bundle(&["sleep", "60"]);
    let c = s.describe(&id, &b).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&attr).unwrap(),
        "system_u:system_r:container_runtime_t:s0"
    );
    std::fs::write(&attr, b"").unwrap();
    s.runtime.start(&c).await.unwrap();
    let session = s
        .runtime
        .exec_detached(&c, &runtime_api::ExecConfig::new(["true"]))
        .await
        .unwrap();
    assert_eq!(
        s.runtime
            .exec_wait(&c, &session, Duration::from_secs(30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        std::fs::read_to_string(&attr).unwrap(),
        "system_u:system_r:container_runtime_t:s0",
        "the exec session's conmon was launched without the label"
    );
    s.runtime.stop(&c, Duration::ZERO, false).await.unwrap();
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}
