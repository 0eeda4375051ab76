//! Checking a [`ConmonConfig`] once, before the driver uses it: the runtime
//! and conmon must be found, paths must be absolute, the settings must not
//! contradict each other, and no limit may be zero. Nothing is created or
//! changed on the host here; the programs are only looked up.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{CgroupManager, ConmonConfig};
use crate::resolve::{resolve_program, CONMON_CANDIDATES};

/// What is wrong with a [`ConmonConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A program the driver runs cannot be found.
    #[error("{message}")]
    ProgramNotFound {
        /// `OCI runtime` or `conmon`.
        what: &'static str,
        /// The name or path asked for.
        name: String,
        /// Where it was looked for.
        message: String,
    },
    /// A path that must be absolute is not.
    #[error("{what} {path:?} must be an absolute path")]
    RelativePath {
        /// Which setting.
        what: &'static str,
        /// Its value.
        path: PathBuf,
    },
    /// A systemd bus was named while conmon is placed with cgroupfs.
    #[error(
        "a systemd bus address ({address}) is set but the cgroup manager is cgroupfs; \
         use the systemd cgroup manager or leave the bus address unset"
    )]
    BusWithoutSystemd {
        /// The address given.
        address: String,
    },
    /// A timeout is zero: the operation could never succeed.
    #[error("the {name} timeout is zero")]
    ZeroTimeout {
        /// Which timeout.
        name: &'static str,
    },
    /// A runtime flag is empty or holds a NUL byte.
    #[error("runtime flag {flag:?} is empty or holds a NUL byte")]
    BadRuntimeFlag {
        /// The flag.
        flag: String,
    },
    /// `log_size_max` below -1.
    #[error("log size max {0} is invalid: use -1 for no limit or a size in bytes")]
    BadLogSizeMax(i64),
    /// An environment entry for conmon with an empty name, or a NUL byte.
    #[error("conmon environment entry {name:?} is invalid")]
    BadEnvironment {
        /// The variable's name.
        name: String,
    },
}

impl From<ConfigError> for runtime_api::RuntimeError {
    /// A configuration the driver cannot use is an invalid argument of
    /// whoever built it; the message names the setting.
    fn from(e: ConfigError) -> Self {
        runtime_api::RuntimeError::InvalidArgument(e.to_string())
    }
}

/// The programs a valid configuration resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) runtime: PathBuf,
    pub(crate) conmon: PathBuf,
    /// The `PATH` conmon and the runtime see.
    pub(crate) path_var: Option<OsString>,
}

impl ConmonConfig {
    /// Checks the configuration without touching the host beyond looking
    /// the programs up; see [`ConfigError`] for what is refused.
    ///
    /// ```
    /// use conmon_driver::{ConfigError, ConmonConfig};
    /// let config = ConmonConfig::new("runc", "relative/tmp");
    /// assert!(matches!(config.validate(), Err(ConfigError::RelativePath { .. }) | Err(ConfigError::ProgramNotFound { .. })));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.resolve().map(drop)
    }

    pub(crate) fn resolve(&self) -> Result<Resolved, ConfigError> {
        let absolute = |what: &'static str, path: &PathBuf| {
            if path.is_absolute() {
                Ok(())
            } else {
                Err(ConfigError::RelativePath {
                    what,
                    path: path.clone(),
                })
            }
        };
        absolute("tmp dir", &self.tmp_dir)?;
        for path in &self.runtime_paths {
            absolute("runtime path", path)?;
        }
        if let Some(path) = &self.conmon_path {
            absolute("conmon path", path)?;
        }
        if let Some(dir) = &self.xdg_runtime_dir {
            absolute("XDG_RUNTIME_DIR", dir)?;
        }
        if let Some(home) = &self.home {
            absolute("HOME", home)?;
        }
        if let Some(socket) = &self.notify_socket {
            absolute("notify socket", socket)?;
        }
        if let Some(address) = &self.systemd_bus_address {
            if self.cgroup_manager == CgroupManager::Cgroupfs {
                return Err(ConfigError::BusWithoutSystemd {
                    address: address.clone(),
                });
            }
        }
        if let Some(flag) = self
            .runtime_flags
            .iter()
            .find(|f| f.is_empty() || f.contains('\0'))
        {
            return Err(ConfigError::BadRuntimeFlag { flag: flag.clone() });
        }
        if self.log_size_max < -1 {
            return Err(ConfigError::BadLogSizeMax(self.log_size_max));
        }
        if let Some((name, _)) = self
            .conmon_env
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
        {
            return Err(ConfigError::BadEnvironment { name: name.clone() });
        }
        for (name, limit) in self.timeouts.named() {
            if limit == Duration::ZERO {
                return Err(ConfigError::ZeroTimeout { name });
            }
        }

        let path_var = self
            .conmon_env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| OsString::from(v))
            .or_else(|| std::env::var_os("PATH"));
        // The programs are looked up as podman looks them up: on the
        // caller's own PATH (`exec.LookPath`), not on the PATH conmon is
        // given, and handed to conmon as absolute paths.
        let caller_path = std::env::var_os("PATH");
        fn not_found<'a>(
            what: &'static str,
            name: &'a str,
        ) -> impl FnOnce(runtime_api::RuntimeError) -> ConfigError + 'a {
            move |e| ConfigError::ProgramNotFound {
                what,
                name: name.to_string(),
                message: match e {
                    runtime_api::RuntimeError::InvalidArgument(m) => m,
                    other => other.to_string(),
                },
            }
        }
        let runtime = resolve_program(
            "OCI runtime",
            &self.runtime_name,
            &self.runtime_paths,
            caller_path.as_deref(),
        )
        .and_then(made_absolute)
        .map_err(not_found("OCI runtime", &self.runtime_name))?;
        let conmon = match &self.conmon_path {
            Some(path) => resolve_program(
                "conmon",
                &path.to_string_lossy(),
                std::slice::from_ref(path),
                None,
            )
            .map_err(not_found("conmon", &path.to_string_lossy()))?,
            None => {
                let candidates: Vec<PathBuf> =
                    CONMON_CANDIDATES.iter().map(PathBuf::from).collect();
                resolve_program("conmon", "conmon", &candidates, caller_path.as_deref())
                    .and_then(made_absolute)
                    .map_err(not_found("conmon", "conmon"))?
            }
        };
        Ok(Resolved {
            runtime,
            conmon,
            path_var,
        })
    }
}

/// `path` made absolute against the caller's working directory (a `$PATH`
/// entry or a runtime name may be relative; conmon runs in the bundle).
fn made_absolute(path: PathBuf) -> Result<PathBuf, runtime_api::RuntimeError> {
    std::path::absolute(&path).map_err(|e| {
        runtime_api::RuntimeError::io(format!("making {} absolute", path.display()), e)
    })
}
