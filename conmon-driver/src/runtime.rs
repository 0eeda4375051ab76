//! [`ConmonRuntime`]: the configured driver. Construction resolves the
//! runtime and conmon binaries and creates the tmp directories; the
//! [`OciRuntime`](runtime_api::OciRuntime) implementation lives in
//! `lifecycle.rs` and the launch in `create.rs`.

use std::path::{Path, PathBuf};

use runtime_api::RuntimeError;
use tokio::sync::OnceCell;

use crate::config::ConmonConfig;
use crate::files::create_dir_with_mode;
use crate::resolve::{resolve_program, CONMON_CANDIDATES};
use crate::runtime_cli::RuntimeCli;

/// An OCI runtime driven through conmon.
///
/// ```no_run
/// use conmon_driver::{ConmonConfig, ConmonRuntime};
/// let mut config = ConmonConfig::new("runsc", "/run/my-engine");
/// config.runtime_flags.push("--network=none".into());
/// let runtime = ConmonRuntime::new(config)?;
/// println!("using {}", runtime.runtime_path().display());
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
#[derive(Debug)]
pub struct ConmonRuntime {
    pub(crate) config: ConmonConfig,
    pub(crate) runtime_path: PathBuf,
    pub(crate) conmon_path: PathBuf,
    pub(crate) cli: RuntimeCli,
    pub(crate) checkpoint_support: OnceCell<bool>,
    pub(crate) pending_exits: crate::exec_session::PendingExits,
}

impl ConmonRuntime {
    /// Resolves the runtime (candidate paths, then `$PATH`; non-regular files
    /// are skipped) and conmon, and creates `exits/`, `socket/` and
    /// `persist/` under the tmp dir with mode 0750.
    pub fn new(config: ConmonConfig) -> Result<Self, RuntimeError> {
        let path_var = config
            .conmon_env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| std::ffi::OsString::from(v))
            .or_else(|| std::env::var_os("PATH"));
        let runtime_path = resolve_program(
            "OCI runtime",
            &config.runtime_name,
            &config.runtime_paths,
            path_var.as_deref(),
        )?;
        let conmon_path = match &config.conmon_path {
            Some(path) => resolve_program(
                "conmon",
                &path.to_string_lossy(),
                std::slice::from_ref(path),
                None,
            )?,
            None => {
                let candidates: Vec<PathBuf> =
                    CONMON_CANDIDATES.iter().map(PathBuf::from).collect();
                resolve_program("conmon", "conmon", &candidates, path_var.as_deref())?
            }
        };
        if !config.tmp_dir.is_absolute() {
            return Err(RuntimeError::InvalidArgument(format!(
                "tmp dir {:?} must be absolute",
                config.tmp_dir
            )));
        }
        for dir in [
            config.exits_dir(),
            config.socket_dir(),
            config.persist_root(),
        ] {
            create_dir_with_mode(&dir, 0o750)?;
        }
        let mut env = Vec::new();
        if let Some(dir) = &config.xdg_runtime_dir {
            env.push(("XDG_RUNTIME_DIR".to_string(), dir.display().to_string()));
        }
        if let Some(path) = &path_var {
            env.push(("PATH".to_string(), path.to_string_lossy().into_owned()));
        }
        let cli = RuntimeCli {
            path: runtime_path.clone(),
            flags: config.runtime_flags.clone(),
            env,
        };
        Ok(Self {
            config,
            runtime_path,
            conmon_path,
            cli,
            checkpoint_support: OnceCell::new(),
            pending_exits: Default::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ConmonConfig {
        &self.config
    }

    /// The resolved runtime binary.
    pub fn runtime_path(&self) -> &Path {
        &self.runtime_path
    }

    /// The resolved conmon binary.
    pub fn conmon_path(&self) -> &Path {
        &self.conmon_path
    }

    fn base_name(&self) -> String {
        Path::new(&self.config.runtime_name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub(crate) fn listed_in(&self, list: &[String]) -> bool {
        let base = self.base_name();
        list.contains(&base)
    }
}
