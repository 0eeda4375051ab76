//! The per-container settings only the conmon driver understands, carried
//! on a [`ContainerDescription`] as an extension: where conmon writes its
//! pid, the command it runs after the container exits, podman's cgroups
//! mode, who notifies systemd, and the podman directories a user-namespaced
//! container must reach. [`ConmonDescriptionExt`] adds their setters to the
//! description builder; [`ConmonDescription`] reads them back with podman's
//! defaults.
//!
//! ```
//! use conmon_driver::{ConmonDescription, ConmonDescriptionExt, SdNotifyMode};
//! use runtime_api::{ContainerDescription, ContainerId, LogDriver};
//!
//! let c = ContainerDescription::builder(ContainerId::new("web")?, "/b/web", "/run/web")
//!     .log(LogDriver::KubernetesFile, "/var/log/web.log")
//!     .sd_notify(SdNotifyMode::Ignore)
//!     .build()?;
//! assert_eq!(c.sd_notify(), SdNotifyMode::Ignore);
//! assert_eq!(c.conmon_pidfile(), std::path::Path::new("/run/web/conmon.pid"));
//! # Ok::<(), runtime_api::RuntimeError>(())
//! ```

use std::path::PathBuf;
use std::time::Duration;

use runtime_api::{ContainerDescription, ContainerDescriptionBuilder};

/// Whether and how the container is placed in cgroups (podman's
/// `--cgroups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupsMode {
    /// Container and conmon get cgroups.
    #[default]
    Enabled,
    /// No cgroups for the container (runtime must support it).
    Disabled,
    /// The container gets cgroups, conmon does not.
    NoConmon,
    /// The container goes into a sub-cgroup of the caller's cgroup.
    Split,
}

/// Who tells systemd that the container is ready (podman's `--sdnotify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SdNotifyMode {
    /// The driver sends `MAINPID` and `READY=1` once conmon is up.
    #[default]
    Conmon,
    /// The container sends `READY=1` itself through the socket conmon proxies.
    Container,
    /// Nobody sends anything; conmon gets no `NOTIFY_SOCKET`.
    Ignore,
}

/// A command conmon runs after the container exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long conmon waits before running it.
    pub delay: Option<Duration>,
}

/// The conmon driver's per-container settings (a description extension).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConmonOptions {
    /// Where conmon writes its pid; `<run dir>/conmon.pid` when `None`.
    pub conmon_pidfile: Option<PathBuf>,
    /// The command conmon runs after the container exits.
    pub exit_command: Option<ExitCommand>,
    /// podman's cgroups mode.
    pub cgroups_mode: CgroupsMode,
    /// Ask the runtime to create no cgroups at all.
    pub no_cgroups: bool,
    /// Who notifies systemd.
    pub sd_notify: SdNotifyMode,
    /// The engine's static directory for this container (podman's
    /// `StaticDir`), made reachable for a user-namespaced container.
    pub static_dir: Option<PathBuf>,
    /// Where the container's root filesystem is mounted (podman's
    /// `Mountpoint`), made reachable for a user-namespaced container.
    pub mount_point: Option<PathBuf>,
    /// The engine's volume directory (podman's `VolumePath`), made
    /// reachable for a user-namespaced container.
    pub volume_path: Option<PathBuf>,
    /// The name of the image the container was created from, for the log
    /// tag's `{{.ImageName}}`.
    pub image_name: Option<String>,
    /// The image's ID, for the log tag's `{{.Image}}` (`{{.ImageID}}`).
    pub image_id: Option<String>,
    /// The ID of the container's pod, for the log tag's `{{.Pod}}`.
    pub pod_id: Option<String>,
}

/// Setters of [`ConmonOptions`] on the description builder.
pub trait ConmonDescriptionExt: Sized {
    /// Where conmon writes its pid (default `<run dir>/conmon.pid`).
    fn conmon_pidfile(self, path: impl Into<PathBuf>) -> Self;
    /// The command conmon runs when the container exits.
    fn exit_command(self, command: ExitCommand) -> Self;
    /// podman's cgroups mode.
    fn cgroups_mode(self, mode: CgroupsMode) -> Self;
    /// Ask the runtime to create no cgroups.
    fn no_cgroups(self, on: bool) -> Self;
    /// Who notifies systemd.
    fn sd_notify(self, mode: SdNotifyMode) -> Self;
    /// podman's static directory for the container.
    fn static_dir(self, dir: impl Into<PathBuf>) -> Self;
    /// Where the container's root filesystem is mounted.
    fn mount_point(self, dir: impl Into<PathBuf>) -> Self;
    /// podman's volume directory.
    fn volume_path(self, dir: impl Into<PathBuf>) -> Self;
    /// The image the container was created from: its name and its ID (log
    /// tag fields).
    fn image(self, name: impl Into<String>, id: impl Into<String>) -> Self;
    /// The container's pod (a log tag field).
    fn pod(self, id: impl Into<String>) -> Self;
}

impl ConmonDescriptionExt for ContainerDescriptionBuilder {
    fn conmon_pidfile(mut self, path: impl Into<PathBuf>) -> Self {
        options_mut(&mut self).conmon_pidfile = Some(path.into());
        self
    }
    fn exit_command(mut self, command: ExitCommand) -> Self {
        options_mut(&mut self).exit_command = Some(command);
        self
    }
    fn cgroups_mode(mut self, mode: CgroupsMode) -> Self {
        options_mut(&mut self).cgroups_mode = mode;
        self
    }
    fn no_cgroups(mut self, on: bool) -> Self {
        options_mut(&mut self).no_cgroups = on;
        self
    }
    fn sd_notify(mut self, mode: SdNotifyMode) -> Self {
        options_mut(&mut self).sd_notify = mode;
        self
    }
    fn static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        options_mut(&mut self).static_dir = Some(dir.into());
        self
    }
    fn mount_point(mut self, dir: impl Into<PathBuf>) -> Self {
        options_mut(&mut self).mount_point = Some(dir.into());
        self
    }
    fn volume_path(mut self, dir: impl Into<PathBuf>) -> Self {
        options_mut(&mut self).volume_path = Some(dir.into());
        self
    }
    fn image(mut self, name: impl Into<String>, id: impl Into<String>) -> Self {
        let options = options_mut(&mut self);
        options.image_name = Some(name.into());
        options.image_id = Some(id.into());
        self
    }
    fn pod(mut self, id: impl Into<String>) -> Self {
        options_mut(&mut self).pod_id = Some(id.into());
        self
    }
}

fn options_mut(builder: &mut ContainerDescriptionBuilder) -> &mut ConmonOptions {
    builder.extensions_mut().get_or_default::<ConmonOptions>()
}

const DEFAULTS: ConmonOptions = ConmonOptions {
    conmon_pidfile: None,
    exit_command: None,
    cgroups_mode: CgroupsMode::Enabled,
    no_cgroups: false,
    sd_notify: SdNotifyMode::Conmon,
    static_dir: None,
    mount_point: None,
    volume_path: None,
    image_name: None,
    image_id: None,
    pod_id: None,
};

/// The conmon settings of a description, with podman's defaults where the
/// caller set none.
pub trait ConmonDescription {
    /// The whole extension.
    fn conmon_options(&self) -> &ConmonOptions;
    /// Where conmon writes its pid.
    fn conmon_pidfile(&self) -> PathBuf;
    /// The command conmon runs after the container exits.
    fn exit_command(&self) -> Option<&ExitCommand> {
        self.conmon_options().exit_command.as_ref()
    }
    /// podman's cgroups mode.
    fn cgroups_mode(&self) -> CgroupsMode {
        self.conmon_options().cgroups_mode
    }
    /// Whether the runtime creates no cgroups.
    fn no_cgroups(&self) -> bool {
        self.conmon_options().no_cgroups
    }
    /// Who notifies systemd.
    fn sd_notify(&self) -> SdNotifyMode {
        self.conmon_options().sd_notify
    }
    /// podman's static directory.
    fn static_dir(&self) -> Option<&std::path::Path> {
        self.conmon_options().static_dir.as_deref()
    }
    /// Where the root filesystem is mounted.
    fn mount_point(&self) -> Option<&std::path::Path> {
        self.conmon_options().mount_point.as_deref()
    }
    /// podman's volume directory.
    fn volume_path(&self) -> Option<&std::path::Path> {
        self.conmon_options().volume_path.as_deref()
    }
}

impl ConmonDescription for ContainerDescription {
    fn conmon_options(&self) -> &ConmonOptions {
        self.extensions()
            .get::<ConmonOptions>()
            .unwrap_or(&DEFAULTS)
    }

    fn conmon_pidfile(&self) -> PathBuf {
        self.conmon_options()
            .conmon_pidfile
            .clone()
            .unwrap_or_else(|| crate::layout::default_conmon_pidfile(self))
    }
}

/// Validates the extension: an absolute pidfile, a non-empty exit command
/// program, and a log tag that renders as a template
/// ([`LogTagError`](crate::LogTagError) as the driver error otherwise).
pub(crate) fn validate(c: &ContainerDescription) -> Result<(), runtime_api::RuntimeError> {
    use runtime_api::LogDriver;
    if !matches!(
        c.log().driver,
        LogDriver::KubernetesFile
            | LogDriver::JsonFile
            | LogDriver::Journald
            | LogDriver::None
            | LogDriver::Passthrough
    ) {
        return Err(runtime_api::RuntimeError::InvalidArgument(format!(
            "log driver {:?} is not one conmon knows",
            c.log().driver
        )));
    }
    let options = c.conmon_options();
    if let Some(pidfile) = &options.conmon_pidfile {
        if !pidfile.is_absolute() {
            return Err(runtime_api::RuntimeError::InvalidArgument(format!(
                "conmon pidfile {pidfile:?} must be absolute"
            )));
        }
    }
    if let Some(cmd) = &options.exit_command {
        if cmd.program.as_os_str().is_empty() {
            return Err(runtime_api::RuntimeError::InvalidArgument(
                "the exit command has an empty program".into(),
            ));
        }
    }
    crate::logs::tag::rendered_log_tag(c).map_err(|e| {
        runtime_api::RuntimeError::driver(format!("the log tag of container {}", c.id()), e)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_api::{ContainerId, LogDriver};

    fn builder() -> ContainerDescriptionBuilder {
        ContainerDescription::builder(ContainerId::new("c1").unwrap(), "/b", "/r")
            .log(LogDriver::None, "/dev/null")
    }

    #[test]
    fn defaults_follow_podman() {
        let c = builder().build().unwrap();
        assert_eq!(c.conmon_pidfile(), PathBuf::from("/r/conmon.pid"));
        assert_eq!(c.sd_notify(), SdNotifyMode::Conmon);
        assert_eq!(c.cgroups_mode(), CgroupsMode::Enabled);
        assert!(!c.no_cgroups());
        assert_eq!(c.exit_command(), None);
        assert_eq!(
            (c.static_dir(), c.mount_point(), c.volume_path()),
            (None, None, None)
        );
        validate(&c).unwrap();
    }

    #[test]
    fn setters_land_in_the_extension_and_are_validated() {
        let c = builder()
            .conmon_pidfile("/p/conmon.pid")
            .cgroups_mode(CgroupsMode::Split)
            .no_cgroups(true)
            .static_dir("/s")
            .build()
            .unwrap();
        assert_eq!(c.conmon_pidfile(), PathBuf::from("/p/conmon.pid"));
        assert_eq!(c.cgroups_mode(), CgroupsMode::Split);
        assert!(c.no_cgroups());
        assert_eq!(c.static_dir(), Some(std::path::Path::new("/s")));

        let relative = builder().conmon_pidfile("p").build().unwrap();
        assert!(validate(&relative)
            .unwrap_err()
            .to_string()
            .contains("pidfile"));
        let empty = builder()
            .exit_command(ExitCommand {
                program: PathBuf::new(),
                args: vec![],
                delay: None,
            })
            .build()
            .unwrap();
        assert!(validate(&empty)
            .unwrap_err()
            .to_string()
            .contains("exit command"));
    }

    #[test]
    fn a_log_tag_naming_an_unknown_field_is_a_typed_error_naming_it() {
        let c = builder()
            .log_config(runtime_api::LogConfig::new(LogDriver::Journald).with_tag("{{.Labels}}"))
            .build()
            .unwrap();
        let err = validate(&c).unwrap_err();
        match err.driver_error::<crate::LogTagError>() {
            Some(crate::LogTagError::UnknownField { field, .. }) => assert_eq!(field, ".Labels"),
            other => panic!("expected an unknown-field error, got {other:?} from {err}"),
        }
        assert!(err.to_string().contains(".Labels"), "{err}");
    }
}
