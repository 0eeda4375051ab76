//! Turning CRI configurations into OCI runtime specs: the pod's infra
//! container and the pod's containers. Pure functions of their inputs
//! (the only file reads are a root filesystem's `/etc/passwd` and
//! `/etc/group` and a host device's node), tested without a runtime.
//!
//! This module builds the specs; the parts they are made of live beside
//! it: `capabilities`, `namespaces` ([`PodNamespaces`], [`Join`]), `user`
//! ([`run_as`]), `mounts` (binds and devices), `resources`
//! ([`linux_resources`]) and `dns` ([`resolv_conf_text`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use oci_spec::runtime::{LinuxDeviceCgroupBuilder, Root, Spec, User};

use crate::error::{spec_error, CriError, Result};
use crate::images::ImageRuntimeConfig;

mod capabilities;
mod dns;
mod mounts;
mod namespaces;
mod resources;
mod user;

use capabilities::{capability_name, capability_sets, to_capabilities};
use mounts::{bind_mount, device_node};

pub use capabilities::{capability_names, DEFAULT_CAPABILITIES};
pub use dns::resolv_conf_text;
pub use namespaces::{Join, PodNamespaces};
pub use resources::linux_resources;
pub use user::{run_as, RunAs};

/// `PATH` when neither the image nor the request sets one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything [`container_spec`] needs besides the CRI request.
#[derive(Debug, Clone)]
pub struct ContainerInputs<'a> {
    /// The request's container configuration.
    pub config: &'a cri::ContainerConfig,
    /// The pod's configuration.
    pub pod: &'a cri::PodSandboxConfig,
    /// The image's runtime configuration.
    pub image: &'a ImageRuntimeConfig,
    /// The container's root filesystem (already unpacked); its passwd and
    /// group files resolve user names.
    pub rootfs: &'a Path,
    /// The namespaces the container joins.
    pub namespaces: PodNamespaces,
    /// The OCI `linux.cgroupsPath`, when one is set.
    pub cgroups_path: Option<String>,
    /// Annotations to add to the spec (the runtime handler's pod markers).
    pub annotations: HashMap<String, String>,
    /// The pod's `resolv.conf` (from its DNS config), bound read-only at
    /// `/etc/resolv.conf` unless the request mounts that path itself.
    pub resolv_conf: Option<std::path::PathBuf>,
}

/// The OCI spec of the pod's infra container: `args` as its process, the
/// pod's hostname and sysctls, new namespaces as `namespaces` says, a
/// read-only root, no capabilities beyond what a sleeping process needs.
pub fn infra_spec(
    pod: &cri::PodSandboxConfig,
    args: Vec<String>,
    namespaces: &PodNamespaces,
    cgroups_path: Option<String>,
    annotations: HashMap<String, String>,
) -> Result<Spec> {
    if args.is_empty() {
        return Err(CriError::InvalidArgument(
            "the pause image has no command and none is configured".into(),
        ));
    }
    let mut spec = base_spec(namespaces, false)?;
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_env(Some(vec![DEFAULT_PATH.to_string()]));
    process.set_cwd(PathBuf::from("/"));
    process.set_no_new_privileges(Some(true));
    process.set_capabilities(Some(capability_sets(&[], &[])?));
    spec.set_process(Some(process));
    if namespaces.uts == Join::New {
        let hostname = if pod.hostname.is_empty() {
            pod.metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default()
        } else {
            pod.hostname.clone()
        };
        validate_hostname(&hostname)?;
        spec.set_hostname(Some(hostname));
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    if let Some(sysctls) = pod.linux.as_ref().map(|l| &l.sysctls) {
        if !sysctls.is_empty() {
            linux.set_sysctl(Some(sysctls.clone()));
        }
    }
    linux.set_cgroups_path(cgroups_path.map(PathBuf::from));
    spec.set_linux(Some(linux));
    let mut all = pod.annotations.clone();
    all.extend(annotations);
    spec.set_annotations(Some(all));
    Ok(spec)
}

fn validate_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(CriError::InvalidArgument(format!(
            "hostname {name:?} must be 1..=64 letters, digits, '-' or '.'"
        )))
    }
}

/// The default spec with `namespaces` and, on the host's network, `/sys`
/// bound read-only from the host, as CRI-O does. A container joining the
/// pod's network namespace mounts a sysfs of its own, which shows that
/// namespace's interfaces (a bind of the host's would show the host's).
fn base_spec(namespaces: &PodNamespaces, privileged: bool) -> Result<Spec> {
    let mut spec = Spec::default();
    // The library's default names a hostname; a container joining the
    // pod's UTS namespace must not set one (it would rename the pod).
    spec.set_hostname(None);
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_namespaces(Some(namespaces.entries()));
    linux.set_resources(None);
    if privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    spec.set_linux(Some(linux));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for mount in &mut mounts {
        let is_sys = mount.destination() == Path::new("/sys");
        let is_cgroup = mount.destination() == Path::new("/sys/fs/cgroup");
        if is_sys && namespaces.network == Join::Host {
            mount.set_typ(Some("bind".into()));
            mount.set_source(Some(PathBuf::from("/sys")));
            mount.set_options(Some(vec![
                "rbind".into(),
                "nosuid".into(),
                "noexec".into(),
                "nodev".into(),
                "ro".into(),
            ]));
        }
        if privileged && (is_sys || is_cgroup) {
            if let Some(options) = mount.options().clone() {
                let options = options
                    .into_iter()
                    .filter(|o| o != "ro")
                    .chain(["rw".to_string()])
                    .collect();
                mount.set_options(Some(options));
            }
        }
    }
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

/// The OCI spec of a container of a pod.
pub fn container_spec(inputs: &ContainerInputs<'_>) -> Result<Spec> {
    let config = inputs.config;
    let security = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .unwrap_or_default();
    let privileged = security.privileged;
    if privileged
        && !inputs
            .pod
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .is_some_and(|s| s.privileged)
    {
        return Err(CriError::InvalidArgument(
            "a privileged container needs a privileged pod sandbox".into(),
        ));
    }
    let mut spec = base_spec(&inputs.namespaces, privileged)?;

    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(security.readonly_rootfs));
    spec.set_root(Some(root));

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(process_args(config, inputs.image)?));
    process.set_env(Some(environment(config, inputs.image)?));
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else {
        inputs
            .image
            .working_dir
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/".into())
    };
    if !cwd.starts_with('/') {
        return Err(CriError::InvalidArgument(format!(
            "working directory {cwd:?} is not absolute"
        )));
    }
    process.set_cwd(PathBuf::from(cwd));
    process.set_terminal(Some(config.tty));
    let run_as = run_as(&security, inputs.image, inputs.rootfs)?;
    let mut user = User::default();
    user.set_uid(run_as.uid);
    user.set_gid(run_as.gid);
    if !run_as.additional_gids.is_empty() {
        user.set_additional_gids(Some(run_as.additional_gids.clone()));
    }
    process.set_user(user);
    process.set_no_new_privileges(Some(security.no_new_privs));
    let caps = security.capabilities.clone().unwrap_or_default();
    let mut sets = if privileged {
        capability_sets(&["ALL".into()], &[])?
    } else {
        capability_sets(&caps.add_capabilities, &caps.drop_capabilities)?
    };
    if !caps.add_ambient_capabilities.is_empty() {
        let ambient: BTreeSet<String> = caps
            .add_ambient_capabilities
            .iter()
            .map(String::as_str)
            .map(capability_name)
            .collect::<Result<_>>()?;
        let ambient = to_capabilities(&ambient)?;
        sets.set_inheritable(Some(ambient.clone()));
        sets.set_ambient(Some(ambient));
    }
    process.set_capabilities(Some(sets));
    if let Some(adj) = config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .map(|r| r.oom_score_adj)
        .filter(|a| *a != 0)
    {
        process.set_oom_score_adj(Some(adj as i32));
    }
    spec.set_process(Some(process));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    if let Some(resolv_conf) = &inputs.resolv_conf {
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/etc/resolv.conf")
                .typ("bind")
                .source(resolv_conf)
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .map_err(spec_error)?,
        );
    }
    for mount in &config.mounts {
        let bind = bind_mount(mount)?;
        mounts.retain(|m| m.destination() != bind.destination());
        mounts.push(bind);
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    if !privileged {
        if !security.masked_paths.is_empty() {
            linux.set_masked_paths(Some(security.masked_paths.clone()));
        }
        if !security.readonly_paths.is_empty() {
            linux.set_readonly_paths(Some(security.readonly_paths.clone()));
        }
    }
    let mut devices = Vec::new();
    let mut allowed = vec![LinuxDeviceCgroupBuilder::default()
        .allow(privileged)
        .access("rwm")
        .build()
        .map_err(spec_error)?];
    for device in &config.devices {
        let (node, rule) = device_node(device)?;
        devices.push(node);
        allowed.push(rule);
    }
    if !devices.is_empty() {
        linux.set_devices(Some(devices));
    }
    let mut resources = config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .map(linux_resources)
        .transpose()?
        .unwrap_or_default();
    resources.set_devices(Some(allowed));
    linux.set_resources(Some(resources));
    linux.set_cgroups_path(inputs.cgroups_path.clone().map(PathBuf::from));
    spec.set_linux(Some(linux));

    let mut annotations = config.annotations.clone();
    annotations.extend(inputs.annotations.clone());
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// The process's argv: the request's command or the image's entrypoint,
/// followed by the request's args or (when the request gives no command)
/// the image's cmd, as Kubernetes defines it.
pub fn process_args(
    config: &cri::ContainerConfig,
    image: &ImageRuntimeConfig,
) -> Result<Vec<String>> {
    let mut args = if config.command.is_empty() {
        image.entrypoint.clone().unwrap_or_default()
    } else {
        config.command.clone()
    };
    if !config.args.is_empty() {
        args.extend(config.args.iter().cloned());
    } else if config.command.is_empty() {
        args.extend(image.cmd.clone().unwrap_or_default());
    }
    if args.is_empty() {
        return Err(CriError::InvalidArgument(
            "no command: the request has neither command nor args, and the image has neither entrypoint nor cmd".into(),
        ));
    }
    Ok(args)
}

/// The image's environment, overridden entry by entry by the request's,
/// with a default `PATH` when neither sets one.
pub fn environment(
    config: &cri::ContainerConfig,
    image: &ImageRuntimeConfig,
) -> Result<Vec<String>> {
    let mut env: Vec<String> = image.env.clone().unwrap_or_default();
    for kv in &config.envs {
        if kv.key.is_empty()
            || kv.key.contains('=')
            || kv.key.contains('\0')
            || kv.value.contains('\0')
        {
            return Err(CriError::InvalidArgument(format!(
                "environment variable {:?} has an invalid name or value",
                kv.key
            )));
        }
        let prefix = format!("{}=", kv.key);
        env.retain(|e| !e.starts_with(&prefix));
        env.push(format!("{}={}", kv.key, kv.value));
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceType;
    use std::fs;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageRuntimeConfig {
        let v = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect());
        ImageRuntimeConfig {
            entrypoint: v(entrypoint),
            cmd: v(cmd),
            env: Some(vec!["PATH=/bin".into(), "A=image".into()]),
            ..ImageRuntimeConfig::default()
        }
    }

    fn config(command: &[&str], args: &[&str]) -> cri::ContainerConfig {
        cri::ContainerConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn dns_config_becomes_resolv_conf_and_white_space_is_refused() {
        let dns = cri::DnsConfig {
            servers: vec!["10.96.0.10".into(), "1.1.1.1".into()],
            searches: vec!["default.svc.cluster.local".into(), "cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf_text(&dns).unwrap(),
            "nameserver 10.96.0.10\nnameserver 1.1.1.1\nsearch default.svc.cluster.local cluster.local\noptions ndots:5\n"
        );
        let bad = cri::DnsConfig {
            servers: vec!["10.0.0.1\nnameserver 6.6.6.6".into()],
            ..Default::default()
        };
        assert!(matches!(
            resolv_conf_text(&bad),
            Err(CriError::InvalidArgument(_))
        ));
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let img = image(&["/entry"], &["cmd"]);
        let cases: [(&[&str], &[&str], &[&str]); 4] = [
            (&[], &[], &["/entry", "cmd"]),
            (&["/bin/sh"], &[], &["/bin/sh"]),
            (&[], &["x"], &["/entry", "x"]),
            (&["/bin/sh"], &["-c", "y"], &["/bin/sh", "-c", "y"]),
        ];
        for (command, args, expected) in cases {
            assert_eq!(
                process_args(&config(command, args), &img).unwrap(),
                expected
            );
        }
        let err = process_args(&config(&[], &[]), &image(&[], &[])).unwrap_err();
        assert!(matches!(err, CriError::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn request_environment_overrides_the_image() {
        let mut c = config(&["x"], &[]);
        c.envs = vec![cri::KeyValue {
            key: "A".into(),
            value: "request".into(),
        }];
        let env = environment(&c, &image(&[], &[])).unwrap();
        assert_eq!(env, ["PATH=/bin", "A=request"]);
        c.envs[0].key = "B=C".into();
        assert!(environment(&c, &image(&[], &[])).is_err());
    }

    #[test]
    fn capabilities_add_drop_and_all() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let caps = capability_names(&s(&["sys_admin"]), &s(&["NET_RAW", "CAP_KILL"])).unwrap();
        assert!(caps.contains("CAP_SYS_ADMIN"));
        assert!(!caps.contains("CAP_NET_RAW") && !caps.contains("CAP_KILL"));
        assert!(caps.contains("CAP_CHOWN"));
        let only = capability_names(&s(&["NET_BIND_SERVICE"]), &s(&["ALL"])).unwrap();
        assert_eq!(
            only.into_iter().collect::<Vec<_>>(),
            ["CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(capability_names(&s(&["ALL"]), &[]).unwrap().len(), 41);
        let err = capability_names(&s(&["FLY"]), &[]).unwrap_err().to_string();
        assert!(err.contains("FLY"), "{err}");
    }

    #[test]
    fn users_resolve_from_the_root_filesystem() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\ntester:x:1234:1234::/home:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            root.path().join("etc/group"),
            "tester:x:1234:\nextra:x:2000:tester\n",
        )
        .unwrap();
        let img = ImageRuntimeConfig::default();
        let mut sc = cri::LinuxContainerSecurityContext {
            run_as_username: "tester".into(),
            ..Default::default()
        };
        let who = run_as(&sc, &img, root.path()).unwrap();
        assert_eq!(
            (who.uid, who.gid, who.additional_gids.clone()),
            (1234, 1234, vec![2000])
        );
        sc.run_as_username.clear();
        sc.run_as_user = Some(cri::Int64Value { value: 77 });
        sc.run_as_group = Some(cri::Int64Value { value: 88 });
        sc.supplemental_groups = vec![5];
        let who = run_as(&sc, &img, root.path()).unwrap();
        assert_eq!((who.uid, who.gid, who.additional_gids), (77, 88, vec![5]));
        sc.run_as_user = None;
        sc.run_as_group = None;
        sc.run_as_username = "ghost".into();
        assert!(run_as(&sc, &img, root.path()).is_err());
        let image_user = ImageRuntimeConfig {
            user: Some("tester:extra".into()),
            ..Default::default()
        };
        let who = run_as(&Default::default(), &image_user, root.path()).unwrap();
        assert_eq!((who.uid, who.gid), (1234, 2000));
    }

    #[test]
    fn containers_join_the_infra_namespaces() {
        let infra = PodNamespaces::for_infra(None);
        assert_eq!(infra.network, Join::New);
        let c = infra.for_container(42, cri::NamespaceMode::Container);
        assert_eq!(c.network, Join::Path("/proc/42/ns/net".into()));
        assert_eq!(c.uts, Join::Path("/proc/42/ns/uts".into()));
        assert_eq!(c.pid, Join::New);
        let host = PodNamespaces::for_infra(Some(&cri::NamespaceOption {
            network: cri::NamespaceMode::Node as i32,
            ..Default::default()
        }));
        assert_eq!(host.network, Join::Host);
        assert_eq!(
            host.for_container(42, cri::NamespaceMode::Pod).pid,
            Join::Path("/proc/42/ns/pid".into())
        );
        let types: Vec<_> = host.entries().iter().map(|n| n.typ()).collect();
        let c = container_spec(&ContainerInputs {
            config: &config(&["sh"], &[]),
            pod: &cri::PodSandboxConfig::default(),
            image: &ImageRuntimeConfig::default(),
            rootfs: Path::new("/nonexistent"),
            namespaces: infra.for_container(42, cri::NamespaceMode::Container),
            cgroups_path: None,
            annotations: HashMap::new(),
            resolv_conf: None,
        })
        .unwrap();
        assert_eq!(
            c.hostname(),
            &None,
            "a joining container must not rename the pod"
        );
        assert!(!types.contains(&LinuxNamespaceType::Network));
        // sysfs of its own in the pod's network namespace (it shows only
        // the pod's interfaces); the host's, bound, on the host's network.
        let sys_type = |spec: &Spec| {
            spec.mounts()
                .iter()
                .flatten()
                .find(|m| m.destination() == Path::new("/sys"))
                .and_then(|m| m.typ().clone())
        };
        assert_eq!(sys_type(&c).as_deref(), Some("sysfs"));
        let on_host = container_spec(&ContainerInputs {
            config: &config(&["sh"], &[]),
            pod: &cri::PodSandboxConfig::default(),
            image: &ImageRuntimeConfig::default(),
            rootfs: Path::new("/nonexistent"),
            namespaces: host.for_container(42, cri::NamespaceMode::Container),
            cgroups_path: None,
            annotations: HashMap::new(),
            resolv_conf: None,
        })
        .unwrap();
        assert_eq!(sys_type(&on_host).as_deref(), Some("bind"));
    }
}
