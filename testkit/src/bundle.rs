//! OCI bundles whose root filesystem is the system's static busybox.
//!
//! [`BundleBuilder`] creates a temporary directory holding `config.json` and
//! `rootfs/`. The root filesystem contains a copy of the static busybox at
//! `bin/busybox`, a hard link to it for every applet, the usual top-level
//! directories, and `/etc/passwd`, `/etc/group` and `/etc/hostname` with a
//! `root`, a `nobody` and an unprivileged `tester` (uid and gid 1234, also a
//! member of the supplementary group `extra`, gid 2000).
//!
//! The spec starts from [`Spec::default`] (runc's default spec: namespaces,
//! standard mounts, masked paths, capabilities) and then sets the process,
//! root, hostname and a modest `RLIMIT_NOFILE`. The directory is removed when
//! the [`Bundle`] is dropped.
//!
//! With [`BundleBuilder::over_image`] the root filesystem is not copied: it
//! is an overlay over a shared [`BusyboxImage`], mounted on `rootfs/` with
//! the bundle's own `upper/` and `work/` directories, and unmounted before
//! the directory is removed.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, Root, Spec, User};
use tempfile::TempDir;

use crate::error::TestkitError;
use crate::image::{BusyboxImage, OverlayMount};
use crate::rootfs::{create_dir, find_busybox, populate_rootfs, set_mode, write_file};
pub use crate::rootfs::{DEFAULT_HOSTNAME, TESTER_ID};

/// `PATH` given to the container process by default.
pub const DEFAULT_PATH_ENV: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// Gid of the supplementary group `extra`, of which `tester` is a member.
pub const EXTRA_GID: u32 = 2000;

/// Soft and hard `RLIMIT_NOFILE` set in every bundle's spec.
pub const NOFILE_LIMIT: u64 = 1024;

/// A function that edits the generated spec before it is written.
type Customizer = Box<dyn FnOnce(&mut Spec)>;

/// Builds an OCI bundle whose rootfs is the system's static busybox.
///
/// Defaults: args `["sh"]`; env `PATH=/usr/sbin:/usr/bin:/sbin:/bin` and
/// `HOME=/root` (plus `TERM=xterm` when a terminal is requested); cwd `/`;
/// no terminal; user `0:0`; hostname `testkit`; created in
/// [`std::env::temp_dir`].
pub struct BundleBuilder {
    args: Vec<String>,
    env: Vec<String>,
    terminal: bool,
    uid: u32,
    gid: u32,
    hostname: String,
    parent: Option<PathBuf>,
    rootless: Option<RootlessMapping>,
    image: Option<BusyboxImage>,
    customize: Option<Customizer>,
}

/// How a rootless bundle maps the container's ids to the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootlessMapping {
    /// Container root is the caller's uid and gid; nothing else is mapped.
    /// Needs no helper: an unprivileged process may write this mapping.
    SingleId {
        /// The caller's uid.
        uid: u32,
        /// The caller's gid.
        gid: u32,
    },
    /// Container root is the caller; container ids 1.. are the caller's
    /// subordinate range from `/etc/subuid` and `/etc/subgid`. The runtime
    /// writes it through the setuid `newuidmap`/`newgidmap`.
    SubordinateRange {
        /// The caller's uid.
        uid: u32,
        /// The caller's gid.
        gid: u32,
        /// First subordinate uid and how many.
        subuids: (u32, u32),
        /// First subordinate gid and how many.
        subgids: (u32, u32),
    },
}

impl RootlessMapping {
    /// The mapping for the calling user: a subordinate range when
    /// `/etc/subuid` and `/etc/subgid` name the user and `newuidmap` and
    /// `newgidmap` are installed, a single id otherwise.
    pub fn for_current_user() -> Self {
        let (uid, gid) = current_ids();
        let name = user_name(uid);
        let helpers = ["newuidmap", "newgidmap"]
            .iter()
            .all(|b| crate::find_binary(b).is_some());
        let range = |file: &str, id: u32| -> Option<(u32, u32)> {
            let text = fs::read_to_string(file).ok()?;
            text.lines().find_map(|line| {
                let mut parts = line.split(':');
                let who = parts.next()?;
                if Some(who) != name.as_deref() && who != id.to_string() {
                    return None;
                }
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
            })
        };
        match (
            helpers,
            range("/etc/subuid", uid),
            range("/etc/subgid", gid),
        ) {
            (true, Some(subuids), Some(subgids)) => Self::SubordinateRange {
                uid,
                gid,
                subuids,
                subgids,
            },
            _ => Self::SingleId { uid, gid },
        }
    }

    /// The caller's uid and gid, which container root maps to.
    pub fn ids(&self) -> (u32, u32) {
        match self {
            Self::SingleId { uid, gid } | Self::SubordinateRange { uid, gid, .. } => (*uid, *gid),
        }
    }
}

/// The calling process's real uid and gid.
fn current_ids() -> (u32, u32) {
    (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
}

/// The name of user `uid` in the host's `/etc/passwd`.
fn user_name(uid: u32) -> Option<String> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        let name = parts.next()?;
        let _password = parts.next()?;
        (parts.next()? == uid.to_string()).then(|| name.to_string())
    })
}

/// Turns a root spec into what `runc spec --rootless` makes of it: a user
/// namespace with `mapping`, no network namespace (an unprivileged user
/// cannot configure one without a helper), `/sys` bind-mounted instead of
/// a new sysfs, no `gid=` on devpts, and no cgroup resources or path.
pub fn make_rootless(spec: &mut Spec, mapping: &RootlessMapping) -> Result<(), TestkitError> {
    use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType};
    let map = |container: u32, host: u32, size: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(container)
            .host_id(host)
            .size(size)
            .build()
    };
    let (uid_maps, gid_maps) = match mapping {
        RootlessMapping::SingleId { uid, gid } => (vec![map(0, *uid, 1)?], vec![map(0, *gid, 1)?]),
        RootlessMapping::SubordinateRange {
            uid,
            gid,
            subuids,
            subgids,
        } => (
            vec![map(0, *uid, 1)?, map(1, subuids.0, subuids.1)?],
            vec![map(0, *gid, 1)?, map(1, subgids.0, subgids.1)?],
        ),
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|ns| {
            !matches!(
                ns.typ(),
                LinuxNamespaceType::Network | LinuxNamespaceType::User
            )
        })
        .collect();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()?,
    );
    linux.set_namespaces(Some(namespaces));
    linux.set_uid_mappings(Some(uid_maps));
    linux.set_gid_mappings(Some(gid_maps));
    linux.set_resources(None);
    linux.set_cgroups_path(None);
    spec.set_linux(Some(linux));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for mount in &mut mounts {
        if mount.typ().as_deref() == Some("sysfs") {
            mount.set_typ(Some("none".into()));
            mount.set_source(Some(PathBuf::from("/sys")));
            mount.set_options(Some(
                ["rbind", "nosuid", "noexec", "nodev", "ro"]
                    .iter()
                    .map(|o| o.to_string())
                    .collect(),
            ));
        }
        if let Some(options) = mount.options().clone() {
            mount.set_options(Some(
                options
                    .into_iter()
                    .filter(|o| !o.starts_with("gid="))
                    .collect(),
            ));
        }
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

impl fmt::Debug for BundleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleBuilder")
            .field("args", &self.args)
            .field("env", &self.env)
            .field("terminal", &self.terminal)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("hostname", &self.hostname)
            .field("parent", &self.parent)
            .field("rootless", &self.rootless)
            .field("image", &self.image)
            .field("customize", &self.customize.is_some())
            .finish()
    }
}

impl Default for BundleBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BundleBuilder {
    /// Starts a builder with the defaults described on [`BundleBuilder`].
    pub fn new() -> Self {
        Self {
            args: vec!["sh".to_string()],
            env: Vec::new(),
            terminal: false,
            uid: 0,
            gid: 0,
            hostname: DEFAULT_HOSTNAME.to_string(),
            parent: None,
            rootless: None,
            image: None,
            customize: None,
        }
    }

    /// A bundle an unprivileged user can run: see [`make_rootless`].
    pub fn rootless(mut self, mapping: RootlessMapping) -> Self {
        self.rootless = Some(mapping);
        self
    }

    /// Makes the root filesystem an overlay over `image` instead of a copy:
    /// `rootfs/` is mounted with the bundle's `upper/` and `work/`, so the
    /// container's writes stay in the bundle. Mounting needs root (or a
    /// user namespace that owns the mount namespace) and overlay support.
    pub fn over_image(mut self, image: &BusyboxImage) -> Self {
        self.image = Some(image.clone());
        self
    }

    /// Sets the container process's argv (replacing the default `["sh"]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Appends `KEY=value` entries to the default environment.
    pub fn env<I, S>(mut self, env: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.env.extend(env.into_iter().map(Into::into));
        self
    }

    /// Requests a terminal for the container process (adds `TERM=xterm`).
    pub fn terminal(mut self, on: bool) -> Self {
        self.terminal = on;
        self
    }

    /// Sets the uid and gid the container process runs as.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets the container's hostname (spec and `/etc/hostname`).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.to_string();
        self
    }

    /// Parent directory in which the bundle's temporary directory is created
    /// (default: [`std::env::temp_dir`]). It is created if missing. Lets
    /// tests make very long bundle paths.
    pub fn in_dir(mut self, parent: impl Into<PathBuf>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// Edits the generated spec just before it is written to `config.json`.
    /// Calling this again replaces the previous function.
    pub fn customize(mut self, f: impl FnOnce(&mut Spec) + 'static) -> Self {
        self.customize = Some(Box::new(f));
        self
    }

    /// The process environment: the defaults followed by the added entries.
    fn full_env(&self) -> Vec<String> {
        let mut env = vec![DEFAULT_PATH_ENV.to_string(), "HOME=/root".to_string()];
        if self.terminal {
            env.push("TERM=xterm".to_string());
        }
        env.extend(self.env.iter().cloned());
        env
    }

    /// Generates the spec this builder describes, without writing anything
    /// and without running the customizing function.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Spec`] when a spec element cannot be built.
    pub fn generate_spec(&self) -> Result<Spec, TestkitError> {
        let mut spec = Spec::default();

        let mut root = Root::default();
        root.set_path(PathBuf::from("rootfs"));
        root.set_readonly(Some(false));
        spec.set_root(Some(root));

        let mut user = User::default();
        user.set_uid(self.uid);
        user.set_gid(self.gid);

        let nofile = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(NOFILE_LIMIT)
            .hard(NOFILE_LIMIT)
            .build()?;

        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(self.args.clone()));
        process.set_env(Some(self.full_env()));
        process.set_cwd(PathBuf::from("/"));
        process.set_terminal(Some(self.terminal));
        process.set_user(user);
        process.set_rlimits(Some(vec![nofile]));
        spec.set_process(Some(process));

        spec.set_hostname(Some(self.hostname.clone()));
        Ok(spec)
    }

    /// Creates the bundle directory, its root filesystem and `config.json`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::MissingBinary`] when no static busybox is installed,
    /// [`TestkitError::Io`] when a file cannot be created,
    /// [`TestkitError::Mount`] when the overlay over the image cannot be
    /// mounted, and [`TestkitError::Spec`] when `config.json` cannot be
    /// written.
    pub fn build(mut self) -> Result<Bundle, TestkitError> {
        let parent = self.parent.clone().unwrap_or_else(std::env::temp_dir);
        fs::create_dir_all(&parent).map_err(TestkitError::io(format!(
            "creating bundle parent directory {}",
            parent.display()
        )))?;
        let dir = tempfile::Builder::new()
            .prefix("testkit-bundle-")
            .tempdir_in(&parent)
            .map_err(TestkitError::io(format!(
                "creating bundle directory in {}",
                parent.display()
            )))?;
        let mut bundle = Bundle { overlay: None, dir };

        match &self.image {
            Some(image) => {
                let upper = bundle.path().join("upper");
                let work = bundle.path().join("work");
                let rootfs = bundle.rootfs();
                for dir in [&upper, &work, &rootfs] {
                    create_dir(dir)?;
                }
                // The overlay's root takes its mode from the upper layer's.
                set_mode(&upper, 0o755)?;
                bundle.overlay = Some(OverlayMount::mount(image.rootfs(), &upper, &work, &rootfs)?);
                if self.hostname != DEFAULT_HOSTNAME {
                    write_file(
                        &rootfs.join("etc/hostname"),
                        &format!("{}\n", self.hostname),
                    )?;
                }
            }
            None => populate_rootfs(&bundle.rootfs(), &find_busybox()?, &self.hostname)?,
        }

        let mut spec = self.generate_spec()?;
        if let Some(mapping) = &self.rootless {
            make_rootless(&mut spec, mapping)?;
        }
        if let Some(customize) = self.customize.take() {
            customize(&mut spec);
        }
        spec.save(bundle.config_path())?;
        Ok(bundle)
    }
}

/// An OCI bundle in a temporary directory, removed when dropped (after its
/// overlay, if any, is unmounted).
#[derive(Debug)]
pub struct Bundle {
    // Declared first so that it is dropped, unmounting `rootfs/`, before
    // the directory is removed.
    overlay: Option<OverlayMount>,
    dir: TempDir,
}

impl Bundle {
    /// The bundle directory (contains `config.json` and `rootfs/`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The root filesystem directory, `<bundle>/rootfs`.
    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    /// The spec file, `<bundle>/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    /// Whether `rootfs/` is an overlay over a [`BusyboxImage`] (which must
    /// be unmounted before the directory can go).
    pub fn is_overlay(&self) -> bool {
        self.overlay.is_some()
    }

    /// Unmounts the overlay, if any, and removes the directory, reporting
    /// what dropping the bundle would silently ignore.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Mount`] when the overlay cannot be unmounted (the
    /// directory is then left in place), [`TestkitError::Io`] when the
    /// directory cannot be removed.
    pub fn remove(mut self) -> Result<(), TestkitError> {
        if let Some(overlay) = &mut self.overlay {
            if let Err(e) = overlay.unmount() {
                // Removing the tree would descend into the mounted overlay.
                overlay.keep();
                let _kept = self.dir.keep();
                return Err(e);
            }
        }
        let path = self.dir.path().to_path_buf();
        self.dir
            .close()
            .map_err(TestkitError::io(format!("removing {}", path.display())))
    }

    /// Keeps the bundle, its overlay mounted, for whoever cleans up by hand
    /// (`umount` the [`Bundle::rootfs`] when [`Bundle::is_overlay`], then
    /// remove the directory); returns the directory.
    pub fn keep(mut self) -> PathBuf {
        if let Some(overlay) = &mut self.overlay {
            overlay.keep();
        }
        let Self { overlay, dir } = self;
        drop(overlay);
        dir.keep()
    }

    /// Reads `config.json` back.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Spec`] when the file is missing or not a valid spec.
    pub fn spec(&self) -> Result<Spec, TestkitError> {
        Ok(Spec::load(self.config_path())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_spec_has_requested_process_and_defaults() {
        let spec = BundleBuilder::new()
            .args(["sh", "-c", "true"])
            .env(["A=1"])
            .terminal(true)
            .user(1234, 2000)
            .hostname("box")
            .generate_spec()
            .expect("spec is generated");
        let process = spec.process().as_ref().expect("process is set");
        assert_eq!(
            process.args().as_deref(),
            Some(&["sh".to_string(), "-c".into(), "true".into()][..])
        );
        assert_eq!(
            process.env().as_deref(),
            Some(
                &[
                    DEFAULT_PATH_ENV.to_string(),
                    "HOME=/root".into(),
                    "TERM=xterm".into(),
                    "A=1".into()
                ][..]
            )
        );
        assert_eq!(process.cwd(), Path::new("/"));
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(process.user().uid(), 1234);
        assert_eq!(process.user().gid(), 2000);
        let rlimits = process.rlimits().as_ref().expect("rlimits are set");
        assert_eq!(rlimits.len(), 1);
        assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((rlimits[0].soft(), rlimits[0].hard()), (1024, 1024));
        assert_eq!(spec.hostname().as_deref(), Some("box"));
        let root = spec.root().as_ref().expect("root is set");
        assert_eq!(root.path(), Path::new("rootfs"));
        assert_eq!(root.readonly(), Some(false));
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .expect("default namespaces are kept");
        assert!(namespaces.len() >= 5);
    }

    #[test]
    fn default_environment_has_no_term_without_terminal() {
        let builder = BundleBuilder::new();
        assert_eq!(
            builder.full_env(),
            vec![DEFAULT_PATH_ENV.to_string(), "HOME=/root".into()]
        );
    }
}
