//! Turning CRI configurations into OCI runtime specs: the pod's infra
//! container and the pod's containers. Pure functions of their inputs
//! (the only file reads are a root filesystem's `/etc/passwd` and
//! `/etc/group` and a host device's node), tested without a runtime.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxCpuBuilder, LinuxDevice, LinuxDeviceBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceType, LinuxResources, Mount, Root, Spec, User,
};

use crate::error::{CriError, Result};
use crate::images::ImageRuntimeConfig;

/// `PATH` when neither the image nor the request sets one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities a container gets unless its security context says
/// otherwise (containerd's and Docker's default set).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability `ALL` stands for.
const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// How a container gets one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// A new namespace of its own.
    New,
    /// The host's (no namespace entry).
    Host,
    /// The namespace at this path (`/proc/<infra pid>/ns/net`).
    Path(PathBuf),
}

/// The pod-level namespaces a container is placed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    /// Network.
    pub network: Join,
    /// IPC.
    pub ipc: Join,
    /// UTS (hostname).
    pub uts: Join,
    /// PID.
    pub pid: Join,
}

impl PodNamespaces {
    /// The namespaces the infra container of a pod with `options` creates.
    pub fn for_infra(options: Option<&cri::NamespaceOption>) -> Self {
        let mode = |m: i32| cri::NamespaceMode::try_from(m).unwrap_or(cri::NamespaceMode::Pod);
        let host_or_new = |m: i32| match mode(m) {
            cri::NamespaceMode::Node => Join::Host,
            _ => Join::New,
        };
        let o = options.cloned().unwrap_or_default();
        Self {
            network: host_or_new(o.network),
            ipc: host_or_new(o.ipc),
            // A pod on the host's network uses the host's hostname, as the
            // kubelet expects.
            uts: host_or_new(o.network),
            pid: host_or_new(o.pid),
        }
    }

    /// The namespaces a container of this pod (whose infra process is
    /// `infra_pid`) joins, its own pid mode being `pid_mode`.
    pub fn for_container(&self, infra_pid: i32, pid_mode: cri::NamespaceMode) -> Self {
        let join = |own: &Join, kind: &str| match own {
            Join::Host => Join::Host,
            _ => Join::Path(PathBuf::from(format!("/proc/{infra_pid}/ns/{kind}"))),
        };
        Self {
            network: join(&self.network, "net"),
            ipc: join(&self.ipc, "ipc"),
            uts: join(&self.uts, "uts"),
            pid: match pid_mode {
                cri::NamespaceMode::Node => Join::Host,
                cri::NamespaceMode::Pod => join(&self.pid, "pid"),
                _ => Join::New,
            },
        }
    }

    fn entries(&self) -> Vec<LinuxNamespace> {
        let mut out = Vec::new();
        for (join, typ) in [
            (&self.pid, LinuxNamespaceType::Pid),
            (&self.network, LinuxNamespaceType::Network),
            (&self.ipc, LinuxNamespaceType::Ipc),
            (&self.uts, LinuxNamespaceType::Uts),
        ] {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            match join {
                Join::Host => continue,
                Join::New => {}
                Join::Path(path) => {
                    ns.set_path(Some(path.clone()));
                }
            }
            out.push(ns);
        }
        for typ in [LinuxNamespaceType::Mount, LinuxNamespaceType::Cgroup] {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            out.push(ns);
        }
        out
    }
}

/// The process identity a container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
}

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

/// The text of a `resolv.conf` for the pod's DNS config: one `nameserver`
/// line per server, then `search` and `options` lines, as the kubelet's
/// other runtimes write it. An entry holding white space or a line break
/// is refused (it would change the file's meaning).
pub fn resolv_conf_text(dns: &cri::DnsConfig) -> Result<String> {
    let check = |what: &str, value: &str| {
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            Err(CriError::InvalidArgument(format!(
                "DNS {what} {value:?} is empty or holds white space"
            )))
        } else {
            Ok(())
        }
    };
    let mut text = String::new();
    for server in &dns.servers {
        check("server", server)?;
        text.push_str(&format!("nameserver {server}\n"));
    }
    for search in &dns.searches {
        check("search domain", search)?;
    }
    for option in &dns.options {
        check("option", option)?;
    }
    if !dns.searches.is_empty() {
        text.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Ok(text)
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

/// Parses capability names as the kubelet sends them (`NET_RAW`,
/// `CAP_NET_RAW`, any case) into their `CAP_` form.
fn capability_name(name: &str) -> Result<String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(CriError::InvalidArgument(format!(
            "unknown capability {name:?}"
        )))
    }
}

/// The capability set after the request's additions and drops: `ALL` in
/// `add` starts from every capability, `ALL` in `drop` from none, then the
/// named additions and drops apply.
pub fn capability_names(add: &[String], drop: &[String]) -> Result<BTreeSet<String>> {
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut set: BTreeSet<String> = if add.iter().any(is_all) {
        ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    if drop.iter().any(is_all) {
        set.clear();
    }
    for name in add.iter().filter(|c| !is_all(c)) {
        set.insert(capability_name(name)?);
    }
    for name in drop.iter().filter(|c| !is_all(c)) {
        set.remove(&capability_name(name)?);
    }
    Ok(set)
}

fn to_capabilities(names: &BTreeSet<String>) -> Result<Capabilities> {
    names
        .iter()
        .map(|name| {
            serde_json::from_value::<Capability>(serde_json::Value::String(name.clone())).map_err(
                |_| {
                    CriError::InvalidArgument(format!(
                        "capability {name} is not known to the OCI spec library"
                    ))
                },
            )
        })
        .collect()
}

fn capability_sets(add: &[String], drop: &[String]) -> Result<LinuxCapabilities> {
    let names = capability_names(add, drop)?;
    let set = to_capabilities(&names)?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    Ok(caps)
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

fn spec_error(e: oci_spec::OciSpecError) -> CriError {
    CriError::InvalidArgument(format!("building the OCI spec: {e}"))
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

fn bind_mount(mount: &cri::Mount) -> Result<Mount> {
    if !mount.container_path.starts_with('/') {
        return Err(CriError::InvalidArgument(format!(
            "mount container path {:?} is not absolute",
            mount.container_path
        )));
    }
    if mount.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        return Err(CriError::Unimplemented(
            "image volume mounts are not implemented".into(),
        ));
    }
    if !mount.host_path.starts_with('/') {
        return Err(CriError::InvalidArgument(format!(
            "mount host path {:?} is not absolute",
            mount.host_path
        )));
    }
    if fs::symlink_metadata(&mount.host_path).is_err() {
        return Err(CriError::InvalidArgument(format!(
            "mount host path {:?} does not exist",
            mount.host_path
        )));
    }
    let propagation = match cri::MountPropagation::try_from(mount.propagation) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(cri::MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    };
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(&mount.container_path));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(PathBuf::from(&mount.host_path)));
    m.set_options(Some(vec![
        "rbind".into(),
        propagation.into(),
        if mount.readonly { "ro" } else { "rw" }.into(),
    ]));
    Ok(m)
}

fn device_node(
    device: &cri::Device,
) -> Result<(LinuxDevice, oci_spec::runtime::LinuxDeviceCgroup)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = fs::metadata(&device.host_path)
        .map_err(|e| CriError::InvalidArgument(format!("device {:?}: {e}", device.host_path)))?;
    let typ = if meta.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(CriError::InvalidArgument(format!(
            "{:?} is not a device node",
            device.host_path
        )));
    };
    let rdev = meta.rdev();
    let major = (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as i64;
    let minor = ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as i64;
    let path = if device.container_path.is_empty() {
        device.host_path.clone()
    } else {
        device.container_path.clone()
    };
    let node = LinuxDeviceBuilder::default()
        .path(PathBuf::from(path))
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(meta.mode() & 0o777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()
        .map_err(spec_error)?;
    let access = if device.permissions.is_empty() {
        "rwm".to_string()
    } else {
        device.permissions.clone()
    };
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(access)
        .build()
        .map_err(spec_error)?;
    Ok((node, rule))
}

/// The OCI resources of a CRI resource request (CPU, memory, cpusets,
/// unified cgroup v2 entries; zero means unset).
pub fn linux_resources(r: &cri::LinuxContainerResources) -> Result<LinuxResources> {
    let mut resources = LinuxResources::default();
    let mut cpu = LinuxCpuBuilder::default();
    if r.cpu_shares > 0 {
        cpu = cpu.shares(r.cpu_shares as u64);
    }
    if r.cpu_quota != 0 {
        cpu = cpu.quota(r.cpu_quota);
    }
    if r.cpu_period > 0 {
        cpu = cpu.period(r.cpu_period as u64);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(r.cpuset_cpus.clone());
    }
    if !r.cpuset_mems.is_empty() {
        cpu = cpu.mems(r.cpuset_mems.clone());
    }
    resources.set_cpu(Some(cpu.build().map_err(spec_error)?));
    let mut memory = LinuxMemoryBuilder::default();
    if r.memory_limit_in_bytes > 0 {
        memory = memory.limit(r.memory_limit_in_bytes);
    }
    if r.memory_swap_limit_in_bytes > 0 {
        memory = memory.swap(r.memory_swap_limit_in_bytes);
    }
    resources.set_memory(Some(memory.build().map_err(spec_error)?));
    if !r.unified.is_empty() {
        resources.set_unified(Some(r.unified.clone()));
    }
    if !r.hugepage_limits.is_empty() {
        return Err(CriError::Unimplemented(
            "hugepage limits are not implemented".into(),
        ));
    }
    Ok(resources)
}

/// Who the container runs as: the security context's uid, user name and
/// gid, else the image's `User`, else root; names and the primary group
/// come from the root filesystem's `/etc/passwd`, supplementary groups
/// from its `/etc/group` plus the context's `supplemental_groups`.
pub fn run_as(
    security: &cri::LinuxContainerSecurityContext,
    image: &ImageRuntimeConfig,
    rootfs: &Path,
) -> Result<RunAs> {
    let passwd = read_etc(rootfs, "passwd")?;
    let group = read_etc(rootfs, "group")?;
    let (user_part, group_part): (String, Option<String>) = if let Some(uid) = &security.run_as_user
    {
        (uid.value.to_string(), None)
    } else if !security.run_as_username.is_empty() {
        (security.run_as_username.clone(), None)
    } else {
        match image.user.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => match u.split_once(':') {
                Some((u, g)) => (u.to_string(), Some(g.to_string())),
                None => (u.to_string(), None),
            },
            None => ("0".to_string(), None),
        }
    };
    let entry = passwd.iter().find(|fields| {
        fields.first().map(String::as_str) == Some(user_part.as_str())
            || fields.get(2).map(String::as_str) == Some(user_part.as_str())
    });
    let uid: u32 = match user_part.parse::<i64>() {
        Ok(n) => u32::try_from(n)
            .map_err(|_| CriError::InvalidArgument(format!("uid {n} is out of range")))?,
        Err(_) => entry.and_then(|f| f.get(2)?.parse().ok()).ok_or_else(|| {
            CriError::InvalidArgument(format!(
                "user {user_part:?} is not in the image's /etc/passwd"
            ))
        })?,
    };
    let name = entry.and_then(|f| f.first().cloned());
    let mut gid: u32 = entry.and_then(|f| f.get(3)?.parse().ok()).unwrap_or(0);
    if let Some(g) = &group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .iter()
                .find(|f| f.first() == Some(g))
                .and_then(|f| f.get(2)?.parse().ok())
                .ok_or_else(|| {
                    CriError::InvalidArgument(format!(
                        "group {g:?} is not in the image's /etc/group"
                    ))
                })?,
        };
    }
    if let Some(g) = &security.run_as_group {
        gid = u32::try_from(g.value)
            .map_err(|_| CriError::InvalidArgument(format!("gid {} is out of range", g.value)))?;
    }
    let mut additional: BTreeSet<u32> = BTreeSet::new();
    if let Some(name) = &name {
        for fields in &group {
            let members = fields.get(3).map(String::as_str).unwrap_or("");
            if members.split(',').any(|m| m == name) {
                if let Some(g) = fields.get(2).and_then(|g| g.parse().ok()) {
                    additional.insert(g);
                }
            }
        }
    }
    for g in &security.supplemental_groups {
        additional.insert(u32::try_from(*g).map_err(|_| {
            CriError::InvalidArgument(format!("supplemental group {g} is out of range"))
        })?);
    }
    additional.remove(&gid);
    Ok(RunAs {
        uid,
        gid,
        additional_gids: additional.into_iter().collect(),
    })
}

/// The colon-separated lines of `rootfs/etc/<name>`; none when the file
/// is absent. A symbolic link there is not followed (it could point out of
/// the root filesystem).
fn read_etc(rootfs: &Path, name: &str) -> Result<Vec<Vec<String>>> {
    let path = rootfs.join("etc").join(name);
    match fs::symlink_metadata(&path) {
        Err(_) => return Ok(Vec::new()),
        Ok(meta) if !meta.is_file() => return Ok(Vec::new()),
        Ok(_) => {}
    }
    let text =
        fs::read_to_string(&path).map_err(CriError::io(format!("reading {}", path.display())))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
