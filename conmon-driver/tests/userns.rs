//! A user-namespaced busybox container with real conmon and runc: its
//! directories are made reachable for its root, and conmon starts in a
//! mount namespace of its own without the host's `/sys/kernel` mounts,
//! while the driver's own mount namespace stays as it was.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::*;
use conmon_driver::{read_k8s_log, ConmonDescriptionExt, MonitorOptions};
use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};
use runtime_api::{CreateOptions, OciRuntime};
use testkit::{Bundle, BundleBuilder};

const HOST_BASE: u32 = 100_000;
const SIZE: u32 = 65_536;

/// Adds a user namespace mapping container 0..65536 to host 100000...
fn with_userns(spec: &mut Spec) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(namespaces));
    let map = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(HOST_BASE)
        .size(SIZE)
        .build()
        .unwrap();
    linux.set_uid_mappings(Some(vec![map]));
    linux.set_gid_mappings(Some(vec![map]));
    spec.set_linux(Some(linux));
}

/// Hands every file of `dir` (symlinks themselves included) to the
/// container's root.
fn chown_tree(dir: &Path) {
    std::os::unix::fs::lchown(dir, Some(HOST_BASE), Some(HOST_BASE)).unwrap();
    if std::fs::symlink_metadata(dir).unwrap().is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

fn userns_bundle(script: &str) -> Bundle {
    let b = BundleBuilder::new()
        .args(["sh", "-c", script])
        .customize(with_userns)
        .build()
        .unwrap();
    chown_tree(&b.rootfs());
    // As engines keep their storage: closed to others, so only
    // make_accessible lets the container's root through.
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    b
}

/// Mount points under /sys/kernel listed in a mountinfo text.
fn sys_kernel_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| *p == "/sys/kernel" || p.starts_with("/sys/kernel/"))
        .map(str::to_string)
        .collect()
}

fn mountinfo_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap()
}

fn mnt_ns_of(pid: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap()
}

/// The mount table without per-mount ids, which never change for a given
/// mount but keep the comparison readable.
fn own_mounts() -> String {
    mountinfo_of("self")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userns_container_runs_without_sys_kernel_mounts_and_host_keeps_them() {
    if !need_runc() {
        return;
    }
    run_userns_container().await;
}

/// Set in the re-executed test process that runs in its own mount
/// namespace with mounts under /sys/kernel.
const INNER: &str = "CONMON_DRIVER_TEST_SYS_KERNEL_INNER";

/// Many hosts (and CI VMs) mount nothing under /sys/kernel. This test
/// re-executes itself in a private mount namespace (`unshare -m`, so the
/// real host is never touched), mounts tmpfs on /sys/kernel/debug, on a
/// directory inside it and on /sys/kernel/security there, and runs the
/// same container: conmon must see none of them, the test process all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_kernel_mounts_of_the_driver_are_hidden_from_conmon_only() {
    if !need_runc() || !testkit::require(&[testkit::Need::Binary("unshare")]) {
        return;
    }
    if std::env::var_os(INNER).is_none() {
        let name = "sys_kernel_mounts_of_the_driver_are_hidden_from_conmon_only";
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(INNER, "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "inner test failed: {text}");
        assert!(
            text.contains("1 passed") && text.contains("inner: 3 mounts under /sys/kernel hidden"),
            "inner test did not run: {text}"
        );
        return;
    }
    // Inside the private namespace of this process only.
    let mount_tmpfs = |target: &str| {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "test-sys-kernel", target])
            .status()
            .unwrap();
        assert!(status.success(), "mounting {target}");
    };
    mount_tmpfs("/sys/kernel/debug");
    std::fs::create_dir("/sys/kernel/debug/inner").unwrap();
    mount_tmpfs("/sys/kernel/debug/inner");
    mount_tmpfs("/sys/kernel/security");
    assert_eq!(sys_kernel_mounts(&own_mounts()).len(), 3);
    run_userns_container().await;
    eprintln!("inner: 3 mounts under /sys/kernel hidden from conmon, kept here");
}

async fn run_userns_container() {
    let mounts_before = own_mounts();
    let ns_before = mnt_ns_of("self");
    let host_sys_kernel = sys_kernel_mounts(&mounts_before);
    if host_sys_kernel.is_empty() {
        eprintln!(
            "note: this host has no mount under /sys/kernel; the test can only show \
             that the container and conmon see none and that the driver's mounts are unchanged"
        );
    }

    let s = setup("runc", &[]);
    let id = unique_id("userns");
    let b = userns_bundle(
        "cat /proc/self/uid_map; echo kernel-mounts=$(grep -c ' /sys/kernel' /proc/self/mountinfo)",
    );
    let rootfs = b.rootfs();
    // The bundle directory is 0700 and root's; the container's root needs
    // to pass through it to reach its rootfs, like podman's mount point.
    let c = s.describe(&id, &b).mount_point(&rootfs).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();

    // conmon lives in a mount namespace of its own, without /sys/kernel
    // mounts; the driver's namespace is the one it had.
    let monitor = created.monitor_pid.to_string();
    assert_ne!(
        mnt_ns_of(&monitor),
        ns_before,
        "conmon shares our mount namespace"
    );
    assert_eq!(mnt_ns_of("self"), ns_before);
    let conmon_mounts = mountinfo_of(&monitor);
    assert_eq!(sys_kernel_mounts(&conmon_mounts), Vec::<String>::new());
    assert_eq!(sys_kernel_mounts(&own_mounts()), host_sys_kernel);
    // /sys is a slave in conmon's namespace when it was shared here (a
    // private /sys, as on some CI VMs, stays private).
    let sys_line = |text: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/sys"))
            .map(str::to_string)
    };
    if let (Some(ours), Some(theirs)) = (sys_line(&mounts_before), sys_line(&conmon_mounts)) {
        if ours.contains(" shared:") {
            assert!(theirs.contains(" master:"), "{theirs}");
            assert!(!theirs.contains(" shared:"), "{theirs}");
        }
    }

    // Reachable for the container's root: --x for others all the way up.
    for dir in [
        c.run_dir().to_path_buf(),
        s.runtime.config().tmp_dir.clone(),
        rootfs.clone(),
        b.path().to_path_buf(),
    ] {
        let mut d = Some(dir.as_path());
        while let Some(p) = d {
            let meta = std::fs::metadata(p).unwrap();
            if !(meta.uid() == HOST_BASE && meta.gid() == HOST_BASE) {
                assert_eq!(
                    meta.permissions().mode() & 0o111,
                    0o111,
                    "{} lacks --x",
                    p.display()
                );
            }
            d = p.parent();
        }
    }

    s.runtime.start(&c).await.unwrap();
    assert_eq!(
        s.runtime.wait(&c, Duration::from_secs(30)).await.unwrap(),
        0
    );
    s.runtime.delete(&c).await.unwrap();
    let (stdout, stderr) = read_k8s_log(&s.log_path(&id)).unwrap();
    let out = String::from_utf8_lossy(&stdout);
    assert!(
        out.split_whitespace().collect::<Vec<_>>()[..3] == ["0", "100000", "65536"],
        "uid_map: {out} / {}",
        String::from_utf8_lossy(&stderr)
    );
    assert!(out.contains("kernel-mounts=0"), "{out}");

    // The host's mounts, /sys/kernel ones included, are exactly as before.
    assert_eq!(own_mounts(), mounts_before);
    s.assert_nothing_left(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_or_unmapped_containers_keep_the_drivers_mount_namespace() {
    if !need_runc() {
        return;
    }
    let ns = mnt_ns_of("self");
    let mounts_before = own_mounts();
    let s = setup("runc", &[]);

    // Privileged user-namespaced container: directories are made
    // reachable, but conmon shares our namespace (podman's rule).
    let id = unique_id("userns-priv");
    let b = userns_bundle("true");
    let c = s
        .describe(&id, &b)
        .mount_point(b.rootfs())
        .privileged(true)
        .build()
        .unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    assert_eq!(mnt_ns_of(&created.monitor_pid.to_string()), ns);
    let bundle_mode = std::fs::metadata(b.path()).unwrap().permissions().mode();
    assert_eq!(bundle_mode & 0o777, 0o711);
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);

    // No user namespace: nothing changes at all.
    let id = unique_id("no-userns");
    let b = bundle(&["true"]);
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let c = s.describe(&id, &b).mount_point(b.rootfs()).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    let created = s
        .runtime
        .create_with(&c, CreateOptions::default(), MonitorOptions::default())
        .await
        .unwrap();
    assert_eq!(mnt_ns_of(&created.monitor_pid.to_string()), ns);
    let bundle_mode = std::fs::metadata(b.path()).unwrap().permissions().mode();
    assert_eq!(bundle_mode & 0o777, 0o700, "bundle dir was changed");
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);

    assert_eq!(own_mounts(), mounts_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_sessions_conmon_gets_the_same_user_namespace_preparation() {
    if !need_runc() {
        return;
    }
    let ns_before = mnt_ns_of("self");
    let s = setup("runc", &[]);
    let id = unique_id("userns-exec");
    let b = userns_bundle("trap 'exit 0' TERM; while :; do sleep 0.1; done");
    let rootfs = b.rootfs();
    let c = s.describe(&id, &b).mount_point(&rootfs).build().unwrap();
    let _cleanup = s.cleanup_on_drop(&id);
    s.runtime
        .create(&c, CreateOptions::default())
        .await
        .unwrap();
    s.runtime.start(&c).await.unwrap();
    let session = s
        .runtime
        .exec_detached(&c, &runtime_api::ExecConfig::new(["sleep", "30"]))
        .await
        .unwrap();
    let monitor = s
        .runtime
        .exec_monitor_pid(&c, &session.id)
        .unwrap()
        .expect("the exec's conmon wrote its pid")
        .to_string();
    // Like the container's conmon: a mount namespace of its own, without
    // the host's /sys/kernel mounts.
    assert_ne!(
        mnt_ns_of(&monitor),
        ns_before,
        "exec conmon shares our mount namespace"
    );
    assert_eq!(
        sys_kernel_mounts(&mountinfo_of(&monitor)),
        Vec::<String>::new()
    );
    assert_eq!(mnt_ns_of("self"), ns_before);
    s.runtime
        .exec_stop(&c, &session, Duration::ZERO)
        .await
        .unwrap();
    let _ = s
        .runtime
        .exec_wait(&c, &session, Duration::from_secs(30))
        .await;
    s.runtime
        .stop(&c, Duration::from_secs(5), false)
        .await
        .unwrap();
    s.runtime.delete(&c).await.unwrap();
    s.assert_nothing_left(&id);
}
