//! Building the process spec of an exec session.
//!
//! conmon runs `RUNTIME exec --process <file>` for an exec session; the file
//! is a complete OCI `process` object. As podman's `prepareProcessExec`,
//! it starts from the container's own process and changes only what the
//! exec asks for:
//!
//! - `args` from the exec; `terminal` is the exec's (never inherited);
//! - `env`: the container's, then the exec's entries appended, then
//!   `HOME=<home of the exec user>` when no entry sets `HOME`;
//! - `cwd`: the exec's, else the container's;
//! - `user`: resolved against the container's `/etc/passwd` and
//!   `/etc/group` ([`resolve_exec_user`]); the additional gids always hold
//!   the primary gid, sorted and without duplicates; the container's umask
//!   is kept;
//! - capabilities: a privileged exec's bounding set is everything the
//!   kernel knows and the caller holds; the inheritable set is emptied; a
//!   root exec user gets the bounding set as effective and permitted set;
//!   an exec as the container's own user (no user given) gets the
//!   container's effective set as effective, inheritable, permitted and
//!   ambient set; another non-root user gets empty sets unless privileged;
//!   then `cap_add` and `cap_drop` apply.
//!
//! Kept from the container unchanged: the bounding set (unless privileged or
//! changed by `cap_add`/`cap_drop`), the SELinux label, the AppArmor profile, rlimits,
//! `noNewPrivileges`, the OOM score, the console size.

use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capabilities, LinuxCapabilities, Process, Spec, User};
use runtime_api::{ExecConfig, RuntimeError};

use crate::exec::capabilities::{normalized_options, privileged_capabilities, to_spec_set};
use crate::exec::user::resolve_exec_user;

/// Builds the OCI process of an exec session in `container` (its runtime
/// spec) whose root filesystem is at `rootfs` (where `/etc/passwd` and
/// `/etc/group` are read). See the module documentation for the rules.
///
/// Errors: `config` fails [`ExecConfig::validate`], the spec has no
/// `process`, or the user or group cannot be resolved (all
/// [`RuntimeError::InvalidArgument`]), or a passwd/group file cannot be read
/// ([`RuntimeError::Io`]).
///
/// This is the process for a runtime run by root; see
/// [`build_exec_process_as`] for a rootless caller.
pub fn build_exec_process(
    container: &Spec,
    rootfs: &Path,
    config: &ExecConfig,
) -> Result<Process, RuntimeError> {
    build_exec_process_as(container, rootfs, config, ExecCaller::Root)
}

/// Who runs the runtime for an exec: it decides whether supplementary
/// groups can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecCaller {
    /// The runtime runs as root.
    Root,
    /// The runtime runs as an unprivileged user. runc then refuses every
    /// supplementary group ("cannot set any additional groups in a
    /// rootless container"), whatever the user namespace maps; crun would
    /// accept them with subordinate ids, but one process that works with
    /// both asks for none.
    Rootless,
}

/// [`build_exec_process`] for a runtime run by `caller`.
///
/// ```
/// # use conmon_driver::{build_exec_process_as, ExecCaller};
/// # use runtime_api::ExecConfig;
/// let spec = oci_spec::runtime::Spec::default();
/// let rootfs = tempfile::tempdir().unwrap();
/// let process =
///     build_exec_process_as(&spec, rootfs.path(), &ExecConfig::new(["id"]), ExecCaller::Rootless)
///         .unwrap();
/// assert!(process.user().additional_gids().is_none());
/// ```
pub fn build_exec_process_as(
    container: &Spec,
    rootfs: &Path,
    config: &ExecConfig,
    caller: ExecCaller,
) -> Result<Process, RuntimeError> {
    config.validate()?;
    let mut process = container.process().clone().ok_or_else(|| {
        RuntimeError::InvalidArgument(
            "the container's runtime spec has no process to base an exec on".into(),
        )
    })?;

    let container_user = process.user().clone();
    let exec_user = resolve_exec_user(
        rootfs,
        config.user.as_deref(),
        (
            container_user.uid(),
            container_user.gid(),
            container_user.additional_gids().clone().unwrap_or_default(),
        ),
    )?;

    process.set_args(Some(config.args.clone()));
    process.set_terminal(Some(config.terminal));

    let mut env = process.env().clone().unwrap_or_default();
    env.extend(config.env.iter().cloned());
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", exec_user.home));
    }
    process.set_env(Some(env));

    if let Some(cwd) = &config.cwd {
        process.set_cwd(PathBuf::from(cwd));
    }

    let mut gids = Vec::with_capacity(exec_user.additional_gids.len() + 1);
    gids.push(exec_user.gid);
    gids.extend(&exec_user.additional_gids);
    gids.sort_unstable();
    gids.dedup();
    let mut user = User::default();
    user.set_uid(exec_user.uid);
    user.set_gid(exec_user.gid);
    // A user namespace that maps one gid (rootless without subordinate
    // ids) has setgroups denied, and runc refuses supplementary groups to
    // any rootless caller: none is asked for then.
    let groups_allowed = caller == ExecCaller::Root && !single_gid_mapped(container);
    user.set_additional_gids(groups_allowed.then_some(gids));
    user.set_umask(container_user.umask());
    process.set_user(user);

    set_capabilities(&mut process, config, exec_user.uid)?;

    Ok(process)
}

/// The exec's capability sets, as podman's `setProcessCapabilitiesExec`
/// computes them, plus the exec's own additions and removals:
///
/// - privileged: the bounding set becomes every capability the kernel knows
///   that the caller holds ([`privileged_capabilities`]);
/// - the inheritable set is emptied;
/// - a root exec user gets the bounding set as effective and permitted set;
///   an exec as the container's own user gets the container's effective
///   set as effective, inheritable, permitted and ambient set; any other
///   user gets empty effective, permitted and ambient sets unless
///   privileged (the kernel would clear them at `execve` anyway);
/// - `cap_add` joins the bounding, effective and permitted sets, then
///   `cap_drop` leaves every set.
fn set_capabilities(
    process: &mut Process,
    config: &ExecConfig,
    uid: u32,
) -> Result<(), RuntimeError> {
    let capability_error = |e| RuntimeError::driver("computing the exec's capabilities", e);
    let (add, drop) =
        normalized_options(&config.cap_add, &config.cap_drop).map_err(capability_error)?;
    let mut caps = match process.capabilities().clone() {
        Some(caps) => caps,
        None if config.privileged || !add.is_empty() => LinuxCapabilities::default(),
        None => return Ok(()),
    };
    if config.privileged {
        let all = privileged_capabilities().map_err(capability_error)?;
        caps.set_bounding(Some(to_spec_set(&all)));
    }
    caps.set_inheritable(Some(Capabilities::new()));
    if uid == 0 {
        caps.set_effective(caps.bounding().clone());
        caps.set_permitted(caps.bounding().clone());
    } else if config.user.is_none() {
        let effective = caps.effective().clone();
        caps.set_inheritable(effective.clone());
        caps.set_permitted(effective.clone());
        caps.set_ambient(effective);
    } else if !config.privileged {
        caps.set_effective(Some(Capabilities::new()));
        caps.set_permitted(Some(Capabilities::new()));
        caps.set_ambient(Some(Capabilities::new()));
    }
    let added = to_spec_set(&add);
    let dropped = to_spec_set(&drop);
    let with_added = |set: &Option<Capabilities>| -> Option<Capabilities> {
        let mut set = set.clone().unwrap_or_default();
        set.extend(added.iter().copied());
        Some(set)
    };
    if !added.is_empty() {
        caps.set_bounding(with_added(caps.bounding()));
        caps.set_effective(with_added(caps.effective()));
        caps.set_permitted(with_added(caps.permitted()));
    }
    if !dropped.is_empty() {
        let without = |set: &Option<Capabilities>| {
            set.as_ref()
                .map(|set| set.difference(&dropped).copied().collect::<Capabilities>())
        };
        caps.set_bounding(without(caps.bounding()));
        caps.set_effective(without(caps.effective()));
        caps.set_permitted(without(caps.permitted()));
        caps.set_inheritable(without(caps.inheritable()));
        caps.set_ambient(without(caps.ambient()));
    }
    process.set_capabilities(Some(caps));
    Ok(())
}

/// Whether the container's user namespace maps exactly one gid (a
/// rootless container without subordinate ids).
fn single_gid_mapped(spec: &oci_spec::runtime::Spec) -> bool {
    let Some(linux) = spec.linux() else {
        return false;
    };
    match linux.gid_mappings() {
        Some(maps) if !maps.is_empty() => {
            maps.iter().map(|m| u64::from(m.size())).sum::<u64>() == 1
        }
        _ => false,
    }
}

/// Writes `process` as JSON to `path` (a session's
/// [`SessionLayout::process_spec`](crate::SessionLayout)), created new (an
/// existing file is an error) with mode 0600. A partly written file is
/// removed on failure.
pub fn write_process_spec(path: &Path, process: &Process) -> Result<(), RuntimeError> {
    let context = || format!("writing the exec process spec {}", path.display());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| RuntimeError::io(context(), e))?;
    let mut writer = BufWriter::new(file);
    let written = serde_json::to_writer(&mut writer, process)
        .map_err(std::io::Error::from)
        .and_then(|()| writer.flush());
    if let Err(e) = written {
        drop(writer);
        let _ = std::fs::remove_file(path);
        return Err(RuntimeError::io(context(), e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        Capability, LinuxCapabilities, ProcessBuilder, SpecBuilder, UserBuilder,
    };
    use std::collections::HashSet;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
             tester:x:1234:1234::/home/tester:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nnobody:x:65534:\ntester:x:1234:\nextra:x:2000:tester\nother:x:3000:root,tester\n",
        )
        .unwrap();
        dir
    }

    fn caps(list: &[Capability]) -> Capabilities {
        list.iter().copied().collect::<HashSet<_>>()
    }

    fn container_caps() -> LinuxCapabilities {
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(caps(&[Capability::Chown, Capability::Kill])));
        c.set_effective(Some(caps(&[Capability::Kill])));
        c.set_permitted(Some(caps(&[Capability::Kill])));
        c.set_inheritable(Some(caps(&[Capability::Kill])));
        c.set_ambient(None);
        c
    }

    fn container_spec(env: &[&str], uid: u32, terminal: bool) -> Spec {
        let process = ProcessBuilder::default()
            .terminal(terminal)
            .args(vec!["/bin/sh".to_string()])
            .env(env.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .cwd("/srv")
            .user(
                UserBuilder::default()
                    .uid(uid)
                    .gid(uid)
                    .additional_gids(vec![uid, 44u32])
                    .umask(0o027u32)
                    .build()
                    .unwrap(),
            )
            .capabilities(container_caps())
            .selinux_label("system_u:system_r:container_t:s0:c1,c2")
            .apparmor_profile("containers-default")
            .no_new_privileges(true)
            .build()
            .unwrap();
        SpecBuilder::default().process(process).build().unwrap()
    }

    const PATH: &str = "PATH=/usr/bin:/bin";

    #[test]
    fn exec_spec_args_env_cwd_terminal_and_home() {
        let root = rootfs();
        let spec = container_spec(&[PATH, "TERM=xterm"], 1234, true);
        let mut config = ExecConfig::new(["ls", "-l"]);
        config.env = vec!["A=1".into(), "TERM=dumb".into()];
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        assert_eq!(
            p.args().as_deref(),
            Some(&["ls".to_string(), "-l".into()][..])
        );
        assert_eq!(
            p.env().as_deref().unwrap(),
            [PATH, "TERM=xterm", "A=1", "TERM=dumb", "HOME=/home/tester"]
        );
        assert_eq!(p.cwd(), Path::new("/srv"));
        // Never inherited from the container's terminal: false unless asked.
        assert_eq!(p.terminal(), Some(false));

        config.terminal = true;
        config.cwd = Some("/tmp".into());
        config.user = Some("nobody".into());
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(
            p.env().as_ref().unwrap().last().unwrap(),
            "HOME=/nonexistent"
        );
        // Kept from the container.
        assert_eq!(
            p.selinux_label().as_deref(),
            Some("system_u:system_r:container_t:s0:c1,c2")
        );
        assert_eq!(p.apparmor_profile().as_deref(), Some("containers-default"));
        assert_eq!(p.no_new_privileges(), Some(true));
    }

    #[test]
    fn exec_spec_home_set_by_env_is_kept() {
        let root = rootfs();
        let from_container = container_spec(&[PATH, "HOME=/data"], 0, false);
        let p = build_exec_process(&from_container, root.path(), &ExecConfig::new(["id"])).unwrap();
        assert_eq!(p.env().as_deref().unwrap(), [PATH, "HOME=/data"]);

        let mut config = ExecConfig::new(["id"]);
        config.env = vec!["HOME=/elsewhere".into()];
        config.user = Some("tester".into());
        let spec = container_spec(&[PATH], 0, false);
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        assert_eq!(p.env().as_deref().unwrap(), [PATH, "HOME=/elsewhere"]);

        // A numeric uid without a passwd entry gets HOME=/.
        config.env.clear();
        config.user = Some("4321".into());
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        assert_eq!(p.env().as_deref().unwrap(), [PATH, "HOME=/"]);
    }

    #[test]
    fn exec_spec_user_and_groups() {
        let root = rootfs();
        let spec = container_spec(&[PATH], 1234, false);

        // No user: the container's user and groups, plus the primary gid.
        let p = build_exec_process(&spec, root.path(), &ExecConfig::new(["id"])).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (1234, 1234));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[44, 1234][..]));
        assert_eq!(p.user().umask(), Some(0o027));

        let mut config = ExecConfig::new(["id"]);
        for (user, uid, gid, gids) in [
            ("tester", 1234, 1234, vec![1234, 2000, 3000]),
            ("tester:extra", 1234, 2000, vec![2000]),
            ("1000:1000", 1000, 1000, vec![1000]),
            ("root", 0, 0, vec![0, 3000]),
        ] {
            config.user = Some(user.into());
            let p = build_exec_process(&spec, root.path(), &config).unwrap();
            assert_eq!((p.user().uid(), p.user().gid()), (uid, gid), "{user}");
            assert_eq!(
                p.user().additional_gids().as_deref(),
                Some(&gids[..]),
                "{user}"
            );
            assert_eq!(p.user().umask(), Some(0o027), "{user}");
        }

        config.user = Some("nope".into());
        let err = build_exec_process(&spec, root.path(), &config).unwrap_err();
        assert!(
            err.to_string().contains("unable to find user nope"),
            "{err}"
        );
    }

    #[test]
    fn exec_spec_capabilities_follow_podman() {
        let root = rootfs();
        let all = caps(&[Capability::Chown, Capability::Kill]);
        let kill = caps(&[Capability::Kill]);

        // Root: effective = permitted = bounding, inheritable emptied.
        let spec = container_spec(&[PATH], 1234, false);
        let mut config = ExecConfig::new(["id"]);
        config.user = Some("0".into());
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        let c = p.capabilities().as_ref().unwrap();
        assert_eq!(c.bounding().as_ref(), Some(&all));
        assert_eq!(c.effective().as_ref(), Some(&all));
        assert_eq!(c.permitted().as_ref(), Some(&all));
        assert_eq!(c.inheritable().as_ref(), Some(&Capabilities::new()));

        // The container's own (non-root) user: its effective set everywhere.
        let p = build_exec_process(&spec, root.path(), &ExecConfig::new(["id"])).unwrap();
        let c = p.capabilities().as_ref().unwrap();
        assert_eq!(c.bounding().as_ref(), Some(&all));
        for set in [c.effective(), c.permitted(), c.inheritable(), c.ambient()] {
            assert_eq!(set.as_ref(), Some(&kill));
        }

        // Another non-root user: effective, permitted, inheritable and
        // ambient sets cleared (the kernel would clear them at execve).
        config.user = Some("nobody".into());
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        let c = p.capabilities().as_ref().unwrap();
        for set in [c.effective(), c.permitted(), c.inheritable(), c.ambient()] {
            assert_eq!(set.as_ref(), Some(&Capabilities::new()));
        }
        assert_eq!(c.bounding().as_ref(), Some(&all));
    }

    #[test]
    fn privileged_exec_gets_every_capability_the_host_allows_and_options_apply() {
        let root = rootfs();
        let spec = container_spec(&[PATH], 1234, false);
        let host: Capabilities = crate::exec::capabilities::to_spec_set(
            &crate::exec::capabilities::privileged_capabilities().unwrap(),
        );
        let mut config = ExecConfig::new(["id"]);
        config.user = Some("0".into());
        config.privileged = true;
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        let c = p.capabilities().as_ref().unwrap();
        for set in [c.bounding(), c.effective(), c.permitted()] {
            assert_eq!(set.as_ref(), Some(&host));
        }

        // A privileged non-root user keeps the container's sets.
        config.user = Some("nobody".into());
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        let c = p.capabilities().as_ref().unwrap();
        assert_eq!(c.effective().as_ref(), Some(&caps(&[Capability::Kill])));

        // cap_add and cap_drop, in any spelling.
        let mut config = ExecConfig::new(["id"]);
        config.user = Some("0".into());
        config.cap_add = vec!["net_admin".into()];
        config.cap_drop = vec!["CAP_CHOWN".into()];
        let p = build_exec_process(&spec, root.path(), &config).unwrap();
        let c = p.capabilities().as_ref().unwrap();
        let expected = caps(&[Capability::Kill, Capability::NetAdmin]);
        for set in [c.bounding(), c.effective(), c.permitted()] {
            assert_eq!(set.as_ref(), Some(&expected));
        }

        config.cap_add = vec!["NET_WIZARD".into()];
        let err = build_exec_process(&spec, root.path(), &config).unwrap_err();
        assert_eq!(
            err.driver_error::<crate::CapabilityError>(),
            Some(&crate::CapabilityError::Unknown {
                option: "cap_add",
                name: "NET_WIZARD".into()
            })
        );
    }

    #[test]
    fn exec_spec_errors() {
        let root = rootfs();
        let no_process = SpecBuilder::default().build().unwrap();
        let mut no_process = no_process;
        no_process.set_process(None);
        let err =
            build_exec_process(&no_process, root.path(), &ExecConfig::new(["id"])).unwrap_err();
        assert!(
            matches!(&err, RuntimeError::InvalidArgument(m) if m.contains("no process")),
            "{err}"
        );

        let spec = container_spec(&[PATH], 0, false);
        let err = build_exec_process(&spec, root.path(), &ExecConfig::new(Vec::<String>::new()))
            .unwrap_err();
        assert!(err.to_string().contains("args are empty"), "{err}");
    }

    #[test]
    fn exec_spec_written_file_is_private_and_parses_back() {
        let root = rootfs();
        let spec = container_spec(&[PATH], 1234, false);
        let mut config = ExecConfig::new(["echo", "hi"]);
        config.user = Some("tester".into());
        let process = build_exec_process(&spec, root.path(), &config).unwrap();

        let session = tempfile::tempdir().unwrap();
        let path = session.path().join(crate::PROCESS_SPEC_FILE);
        write_process_spec(&path, &process).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["args"], serde_json::json!(["echo", "hi"]));
        assert_eq!(json["user"]["uid"], 1234);
        assert_eq!(
            json["user"]["additionalGids"],
            serde_json::json!([1234, 2000, 3000])
        );
        let back: Process = serde_json::from_value(json).unwrap();
        assert_eq!(back, process);

        // Never overwrites.
        let err = write_process_spec(&path, &process).unwrap_err();
        assert!(matches!(err, RuntimeError::Io { .. }), "{err}");
        let missing = session
            .path()
            .join("missing")
            .join(crate::PROCESS_SPEC_FILE);
        let err = write_process_spec(&missing, &process).unwrap_err();
        assert!(err.to_string().contains("missing/process.json"), "{err}");
    }

    #[test]
    fn a_rootless_caller_asks_for_no_supplementary_groups() {
        let root = rootfs();
        let spec = container_spec(&[PATH], 0, false);
        let config = ExecConfig::new(["id"]);
        let as_root = build_exec_process_as(&spec, root.path(), &config, ExecCaller::Root).unwrap();
        assert!(as_root.user().additional_gids().is_some());
        let rootless =
            build_exec_process_as(&spec, root.path(), &config, ExecCaller::Rootless).unwrap();
        assert_eq!(rootless.user().additional_gids(), &None);
        assert_eq!(rootless.user().uid(), as_root.user().uid());
    }

    #[test]
    fn a_single_mapped_gid_gets_no_supplementary_groups() {
        use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder};
        let root = rootfs();
        let map = |size: u32| {
            LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(1000u32)
                .size(size)
                .build()
                .unwrap()
        };
        let config = ExecConfig::new(["id"]);
        for (size, expect_groups) in [(1, false), (65536, true)] {
            let mut spec = container_spec(&[PATH], 0, false);
            spec.set_linux(Some(
                LinuxBuilder::default()
                    .gid_mappings(vec![map(size)])
                    .build()
                    .unwrap(),
            ));
            let process = build_exec_process(&spec, root.path(), &config).unwrap();
            assert_eq!(
                process.user().additional_gids().is_some(),
                expect_groups,
                "gid mapping of size {size}"
            );
        }
        // No user namespace at all: groups as for root.
        let process =
            build_exec_process(&container_spec(&[PATH], 0, false), root.path(), &config).unwrap();
        assert!(process.user().additional_gids().is_some());
    }
}
