//! Running without root, as podman does: where the runtime directory is
//! (`XDG_RUNTIME_DIR`, else `/run/user/UID`, else a private directory under
//! the temp dir, with a warning), and what a rootless configuration sets:
//! the caller's uid for conmon, `XDG_RUNTIME_DIR` on every runtime and
//! conmon call, and the runtime's state root inside that directory.
//!
//! The choice is a pure function of [`RuntimeDirFacts`], which
//! [`RuntimeDirFacts::read`] gathers from the host, so every row of the
//! rule is tested without changing the environment.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a rootless runtime directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeDirSource {
    /// `XDG_RUNTIME_DIR`, owned by the user.
    XdgRuntimeDir,
    /// `/run/user/UID`, owned by the user with mode 0700.
    RunUser,
    /// A private directory under the temp dir (created 0700 by the driver).
    Fallback,
}

/// The chosen runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    /// The directory.
    pub path: PathBuf,
    /// Which rule chose it.
    pub source: RuntimeDirSource,
    /// Why a better choice was passed over, for the engine's log.
    pub warning: Option<String>,
}

/// What the choice depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDirFacts {
    /// The caller's uid.
    pub uid: u32,
    /// `XDG_RUNTIME_DIR`, if set and not empty.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// Owner of the `XDG_RUNTIME_DIR` directory, if it exists.
    pub xdg_owner: Option<u32>,
    /// Owner and permission bits of `/run/user/UID`, if it is a directory.
    pub run_user: Option<(u32, u32)>,
    /// The temp dir (`TMPDIR` or `/tmp`).
    pub tmp_dir: PathBuf,
}

impl RuntimeDirFacts {
    /// Reads the facts for `uid` from the host and the environment.
    pub fn read(uid: u32) -> Self {
        let xdg_runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let owner = |p: &Path| std::fs::metadata(p).ok().filter(|m| m.is_dir());
        Self {
            uid,
            xdg_owner: xdg_runtime_dir.as_deref().and_then(owner).map(|m| m.uid()),
            xdg_runtime_dir,
            run_user: owner(&run_user_dir(uid)).map(|m| (m.uid(), m.mode() & 0o777)),
            tmp_dir: std::env::temp_dir(),
        }
    }
}

/// `/run/user/UID`.
pub fn run_user_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/run/user/{uid}"))
}

/// podman's choice of a rootless runtime directory.
///
/// ```
/// use std::path::PathBuf;
/// use conmon_driver::{choose_runtime_dir, RuntimeDirFacts, RuntimeDirSource};
/// let facts = RuntimeDirFacts {
///     uid: 1000,
///     xdg_runtime_dir: None,
///     xdg_owner: None,
///     run_user: Some((1000, 0o700)),
///     tmp_dir: PathBuf::from("/tmp"),
/// };
/// let dir = choose_runtime_dir(&facts);
/// assert_eq!(dir.path, PathBuf::from("/run/user/1000"));
/// assert_eq!(dir.source, RuntimeDirSource::RunUser);
/// ```
pub fn choose_runtime_dir(facts: &RuntimeDirFacts) -> RuntimeDir {
    let mut passed_over = None;
    if let Some(xdg) = &facts.xdg_runtime_dir {
        match facts.xdg_owner {
            Some(owner) if owner == facts.uid && xdg.is_absolute() => {
                return RuntimeDir {
                    path: xdg.clone(),
                    source: RuntimeDirSource::XdgRuntimeDir,
                    warning: None,
                }
            }
            Some(owner) => {
                passed_over = Some(format!(
                    "XDG_RUNTIME_DIR {} is owned by uid {owner}, not {}",
                    xdg.display(),
                    facts.uid
                ))
            }
            None => {
                passed_over = Some(format!(
                    "XDG_RUNTIME_DIR {} is not a directory",
                    xdg.display()
                ))
            }
        }
    }
    if let Some((owner, mode)) = facts.run_user {
        if owner == facts.uid && mode == 0o700 {
            return RuntimeDir {
                path: run_user_dir(facts.uid),
                source: RuntimeDirSource::RunUser,
                warning: passed_over,
            };
        }
    }
    let path = facts
        .tmp_dir
        .join(format!("conmon-driver-run-{}", facts.uid));
    let why = passed_over.unwrap_or_else(|| {
        format!(
            "XDG_RUNTIME_DIR is unset and {} is missing or not the user's",
            run_user_dir(facts.uid).display()
        )
    });
    RuntimeDir {
        warning: Some(format!(
            "{why}; using {} as the runtime directory (it does not survive a reboot \
             cleanly and may be shared with the temp dir's cleaners)",
            path.display()
        )),
        path,
        source: RuntimeDirSource::Fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(xdg: Option<(&str, Option<u32>)>, run_user: Option<(u32, u32)>) -> RuntimeDirFacts {
        RuntimeDirFacts {
            uid: 1000,
            xdg_runtime_dir: xdg.map(|(p, _)| PathBuf::from(p)),
            xdg_owner: xdg.and_then(|(_, o)| o),
            run_user,
            tmp_dir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn the_runtime_dir_follows_podmans_order() {
        use RuntimeDirSource::*;
        let cases = [
            // XDG set and the user's: used.
            (
                facts(Some(("/x", Some(1000))), None),
                "/x",
                XdgRuntimeDir,
                false,
            ),
            // XDG set and the user's wins over /run/user.
            (
                facts(Some(("/x", Some(1000))), Some((1000, 0o700))),
                "/x",
                XdgRuntimeDir,
                false,
            ),
            // XDG unset: /run/user/UID when it is the user's, 0700.
            (
                facts(None, Some((1000, 0o700))),
                "/run/user/1000",
                RunUser,
                false,
            ),
            // XDG not owned: passed over with a warning.
            (
                facts(Some(("/x", Some(0))), Some((1000, 0o700))),
                "/run/user/1000",
                RunUser,
                true,
            ),
            // XDG missing: passed over with a warning.
            (
                facts(Some(("/x", None)), Some((1000, 0o700))),
                "/run/user/1000",
                RunUser,
                true,
            ),
            // /run/user/UID someone else's, or too open: the fallback.
            (
                facts(None, Some((0, 0o700))),
                "/tmp/conmon-driver-run-1000",
                Fallback,
                true,
            ),
            (
                facts(None, Some((1000, 0o755))),
                "/tmp/conmon-driver-run-1000",
                Fallback,
                true,
            ),
            // Nothing at all: the fallback.
            (
                facts(None, None),
                "/tmp/conmon-driver-run-1000",
                Fallback,
                true,
            ),
        ];
        for (facts, path, source, warned) in cases {
            let dir = choose_runtime_dir(&facts);
            assert_eq!(dir.path, PathBuf::from(path), "{facts:?}");
            assert_eq!(dir.source, source, "{facts:?}");
            assert_eq!(dir.warning.is_some(), warned, "{facts:?}: {dir:?}");
        }
    }
}
