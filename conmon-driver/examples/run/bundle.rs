//! The container's bundle. A `--bundle DIR` is run as it is. Otherwise the
//! demo builds one in its temporary directory, and, like an engine that
//! mounts an overlay over its image store instead of copying an image per
//! container, mounts its `rootfs/` as an overlay over a busybox root
//! filesystem prepared once in a cache directory ([`BusyboxImage`]). It
//! falls back to copying busybox into the bundle, as `BundleBuilder` does by
//! default, when it runs rootless, when `--no-image-cache` says so, or when
//! the cache or the mount fails (no privilege, no overlay support).

use std::path::{Path, PathBuf};

use conmon_driver::ConmonConfig;
use runtime_api::RuntimeError;
use testkit::{Bundle, BundleBuilder, BusyboxImage, RootlessMapping, TestkitError};

use crate::options::Options;

/// Where root keeps the shared busybox root filesystem by default.
pub(crate) const DEFAULT_IMAGE_CACHE: &str = "/var/cache/conmon-demo";

/// Builds the bundle whose process is `options.command` in `work_dir`: an
/// overlay over the shared busybox image when it can, a copy otherwise.
pub(crate) fn build_bundle(options: &Options, work_dir: &Path) -> Result<Bundle, TestkitError> {
    let builder = || {
        BundleBuilder::new()
            .args(options.command.iter().cloned())
            .terminal(options.tty)
            .in_dir(work_dir)
    };
    if is_rootless() {
        tracing::debug!("running rootless: busybox is copied into the bundle");
        // Container root is the caller (and its subordinate ids when the
        // host has them for it).
        return builder()
            .rootless(RootlessMapping::for_current_user())
            .build();
    }
    if options.no_image_cache {
        tracing::debug!("--no-image-cache: busybox is copied into the bundle");
        return builder().build();
    }
    let cache = options
        .image_cache
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAGE_CACHE));
    match BusyboxImage::prepare(&cache) {
        Ok(image) => {
            if image.was_built() {
                tracing::debug!(image = %image.rootfs().display(), "prepared the busybox image");
            }
            match builder().over_image(&image).build() {
                Ok(bundle) => return Ok(bundle),
                Err(e @ TestkitError::Mount { .. }) => {
                    tracing::debug!(error = %e, "no overlay: busybox is copied into the bundle");
                }
                Err(e) => return Err(e),
            }
        }
        // Only a cache the user named is worth a warning; the default
        // one is an optimisation.
        Err(e) if options.image_cache.is_some() => {
            tracing::warn!(error = %e, "no image cache: busybox is copied into the bundle");
        }
        Err(e) => {
            tracing::debug!(error = %e, "no image cache: busybox is copied into the bundle");
        }
    }
    builder().build()
}

/// The shell command that removes a run's kept temporary directory
/// `work_dir`; a bundle's overlay on `mounted_rootfs` is unmounted first, so
/// that `rm` neither fails on the mount point nor descends into it.
pub(crate) fn removal_command(work_dir: &Path, mounted_rootfs: Option<&Path>) -> String {
    match mounted_rootfs {
        Some(rootfs) => format!(
            "umount {} && rm -rf {}",
            rootfs.display(),
            work_dir.display()
        ),
        None => format!("rm -rf {}", work_dir.display()),
    }
}

/// Whether the bundle's `config.json` asks for a terminal.
pub(crate) fn bundle_wants_terminal(bundle: &Path) -> Result<bool, RuntimeError> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| {
        RuntimeError::InvalidArgument(format!(
            "{} is not an OCI bundle: reading {}: {e}",
            bundle.display(),
            path.display()
        ))
    })?;
    let spec: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        RuntimeError::InvalidArgument(format!("{} is not valid JSON: {e}", path.display()))
    })?;
    Ok(spec
        .pointer("/process/terminal")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false))
}

/// Whether the driver runs rootless (it decides from the effective uid).
fn is_rootless() -> bool {
    ConmonConfig::new("runc", "/").rootless_uid.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mounted_overlay_is_unmounted_before_the_removal() {
        let work = Path::new("/tmp/conmon-demo-x");
        assert_eq!(
            removal_command(work, Some(&work.join("b/rootfs"))),
            "umount /tmp/conmon-demo-x/b/rootfs && rm -rf /tmp/conmon-demo-x"
        );
        assert_eq!(removal_command(work, None), "rm -rf /tmp/conmon-demo-x");
    }
}
