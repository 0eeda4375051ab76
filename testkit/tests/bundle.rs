//! Builds busybox bundles, checks their layout and spec, and runs them with
//! real runtimes when the machine allows it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use testkit::{find_binary, is_root, require, BundleBuilder, Need};

#[test]
fn bundle_has_busybox_rootfs_and_etc_files() {
    let bundle = BundleBuilder::new().hostname("boxy").build().unwrap();
    let rootfs = bundle.rootfs();
    assert_eq!(rootfs, bundle.path().join("rootfs"));
    assert_eq!(bundle.config_path(), bundle.path().join("config.json"));
    assert!(bundle.config_path().is_file());

    let busybox = rootfs.join("bin/busybox");
    let meta = std::fs::symlink_metadata(&busybox).unwrap();
    assert!(meta.file_type().is_file(), "bin/busybox must be a copy");
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);

    for host in ["/bin/busybox", "/usr/bin/busybox"] {
        if let Ok(host) = std::fs::metadata(host) {
            assert!(
                (host.dev(), host.ino()) != (meta.dev(), meta.ino()),
                "bin/busybox must be a copy, not the host's file"
            );
        }
    }
    for link in ["usr/bin/env", "bin/sh", "bin/ls", "usr/bin/id"] {
        let applet = std::fs::symlink_metadata(rootfs.join(link)).unwrap();
        assert!(applet.file_type().is_file(), "{link} is a hard link");
        assert_eq!(
            (applet.dev(), applet.ino()),
            (meta.dev(), meta.ino()),
            "{link} is the bundle's busybox"
        );
    }

    for dir in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "root",
        "var",
        "run",
        "home/tester",
    ] {
        assert!(rootfs.join(dir).is_dir(), "{dir}");
    }
    let tmp_mode = std::fs::metadata(rootfs.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    if is_root() {
        let home = std::fs::metadata(rootfs.join("home/tester")).unwrap();
        assert_eq!((home.uid(), home.gid()), (1234, 1234));
    }

    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l == "root:x:0:0:root:/root:/bin/sh"));
    assert!(passwd
        .lines()
        .any(|l| l == "nobody:x:65534:65534:nobody:/nonexistent:/bin/false"));
    assert!(passwd
        .lines()
        .any(|l| l == "tester:x:1234:1234:tester:/home/tester:/bin/sh"));
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    for line in [
        "root:x:0:",
        "nobody:x:65534:",
        "tester:x:1234:",
        "extra:x:2000:tester",
    ] {
        assert!(group.lines().any(|l| l == line), "{line}");
    }
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap(),
        "boxy\n"
    );
}

#[test]
fn spec_is_runc_default_with_our_process() {
    let bundle = BundleBuilder::new()
        .args(["sh", "-c", "echo hi"])
        .env(["FOO=bar"])
        .user(1234, 1234)
        .build()
        .unwrap();
    let spec = bundle.spec().unwrap();
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("rootfs"));
    assert_eq!(root.readonly(), Some(false));
    let process = spec.process().as_ref().unwrap();
    assert_eq!(
        process.args().as_deref().unwrap(),
        ["sh", "-c", "echo hi"].map(String::from)
    );
    assert_eq!(
        process.env().as_deref().unwrap(),
        [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "FOO=bar"
        ]
        .map(String::from)
    );
    assert_eq!(process.terminal(), Some(false));
    assert_eq!((process.user().uid(), process.user().gid()), (1234, 1234));
    assert_eq!(spec.hostname().as_deref(), Some("testkit"));

    let mounts: Vec<PathBuf> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().clone())
        .collect();
    for dest in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(
            mounts.contains(&PathBuf::from(dest)),
            "{dest} in {mounts:?}"
        );
    }
    let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    let types: Vec<String> = namespaces
        .iter()
        .map(|ns| format!("{:?}", ns.typ()).to_lowercase())
        .collect();
    for kind in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(types.contains(&kind.to_string()), "{kind} in {types:?}");
    }
    let raw = std::fs::read_to_string(bundle.config_path()).unwrap();
    assert!(raw.contains("RLIMIT_NOFILE"), "{raw}");
}

#[test]
fn customize_edits_the_written_spec() {
    let bundle = BundleBuilder::new()
        .customize(|spec| {
            spec.set_hostname(Some("custom".into()));
        })
        .build()
        .unwrap();
    assert_eq!(bundle.spec().unwrap().hostname().as_deref(), Some("custom"));
}

#[test]
fn long_parent_paths_work_and_drop_removes_the_bundle() {
    let parent = tempfile::tempdir().unwrap();
    let deep = parent
        .path()
        .join("a".repeat(60))
        .join("b".repeat(60))
        .join("not-yet-created");
    let bundle = BundleBuilder::new().in_dir(&deep).build().unwrap();
    let path = bundle.path().to_path_buf();
    assert!(path.starts_with(&deep));
    assert!(path.as_os_str().len() > 108, "{}", path.display());
    assert!(bundle.config_path().is_file());
    assert!(bundle.rootfs().join("bin/busybox").is_file());
    drop(bundle);
    assert!(!path.exists(), "bundle directory survived its drop");
    assert!(deep.is_dir(), "the parent directory is left alone");
}

/// Returns a container id unique to this process and call.
fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "testkit-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes a container when dropped, whatever the test's outcome.
struct ForceDelete {
    runtime: PathBuf,
    global_args: Vec<&'static str>,
    id: String,
}

impl Drop for ForceDelete {
    fn drop(&mut self) {
        let _ = Command::new(&self.runtime)
            .args(&self.global_args)
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs the bundle in the foreground with `runtime run` and returns stdout.
fn run_container(runtime: &str, global_args: &[&'static str], bundle: &Path) -> String {
    let runtime = find_binary(runtime).unwrap();
    let id = unique_id("run");
    let _cleanup = ForceDelete {
        runtime: runtime.clone(),
        global_args: global_args.to_vec(),
        id: id.clone(),
    };
    let out = Command::new(&runtime)
        .args(global_args)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} run failed: {:?}\nstderr: {}",
        runtime.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn runc_runs_the_bundle() {
    if !require(&[Need::Root, Need::Binary("runc")]) {
        return;
    }
    let bundle = BundleBuilder::new()
        .args(["sh", "-c", "echo hello; id -u"])
        .build()
        .unwrap();
    assert_eq!(run_container("runc", &[], bundle.path()), "hello\n0\n");
}

#[test]
fn runc_runs_the_bundle_as_tester() {
    if !require(&[Need::Root, Need::Binary("runc")]) {
        return;
    }
    let bundle = BundleBuilder::new()
        .args([
            "sh",
            "-c",
            "id -u; id -g; id -un; cat /etc/hostname; hostname; touch /tmp/x && echo tmp-ok",
        ])
        .user(1234, 1234)
        .hostname("tk-host")
        .build()
        .unwrap();
    assert_eq!(
        run_container("runc", &[], bundle.path()),
        "1234\n1234\ntester\ntk-host\ntk-host\ntmp-ok\n"
    );
}

#[test]
fn runsc_runs_the_bundle() {
    if !require(&[Need::Root, Need::Binary("runsc")]) {
        return;
    }
    let bundle = BundleBuilder::new()
        .args(["sh", "-c", "echo hello; id -u"])
        .build()
        .unwrap();
    assert_eq!(
        run_container("runsc", &["--network=none"], bundle.path()),
        "hello\n0\n"
    );
}
