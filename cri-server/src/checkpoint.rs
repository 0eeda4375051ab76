//! `CheckpointContainer` through the runtime's checkpoint feature (CRIU),
//! the container left running, as the kubelet's forensic checkpoint asks.
//! The request's `location` is either an existing directory, which
//! receives the checkpoint as files (`checkpoint/` with CRIU's images and
//! `spec.dump`, the container's OCI spec), or the path of a new archive
//! file (the kubelet's `.../checkpoint-<pod>-<container>-<time>.tar`),
//! which receives the same files as an uncompressed tar. The request's
//! `timeout` (seconds; zero for the server's create limit) bounds the
//! runtime's checkpoint. A runtime whose checkpoint fails because CRIU
//! cannot run on the host answers [`CriError::CheckpointUnavailable`]
//! (`FailedPrecondition`), and the container keeps running.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_api::{CheckpointOptions, Feature, RuntimeError};

use crate::engine::{bounded, remove_tree, Engine};
use crate::error::{CriError, Result};

/// Where a checkpoint goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Export {
    /// Files under an existing directory.
    Directory(PathBuf),
    /// A new tar archive.
    Archive(PathBuf),
}

fn export_target(location: &str) -> Result<Export> {
    let path = Path::new(location);
    if location.is_empty() || !path.is_absolute() {
        return Err(CriError::InvalidArgument(format!(
            "checkpoint location {location:?} must be an absolute path (a directory or a new archive file)"
        )));
    }
    if path.is_dir() {
        return Ok(Export::Directory(path.to_path_buf()));
    }
    if fs::symlink_metadata(path).is_ok() {
        return Err(CriError::InvalidArgument(format!(
            "checkpoint location {location:?} already exists and is not a directory"
        )));
    }
    match path.parent() {
        Some(parent) if parent.is_dir() => Ok(Export::Archive(path.to_path_buf())),
        _ => Err(CriError::InvalidArgument(format!(
            "the directory of checkpoint location {location:?} does not exist"
        ))),
    }
}

/// A runtime failure that names CRIU is the host's inability to
/// checkpoint, not the container's fault.
fn classify(id: &str, error: CriError) -> CriError {
    match error {
        CriError::Runtime(RuntimeError::RuntimeFailed {
            ref command,
            ref stderr,
            ..
        }) if stderr.to_ascii_lowercase().contains("criu") => CriError::CheckpointUnavailable {
            id: id.to_string(),
            detail: format!("`{command}`: {}", stderr.trim()),
        },
        other => other,
    }
}

/// Writes the tree `root` into a new tar archive at `archive` (through a
/// temporary file beside it, renamed at the end).
fn write_archive(root: &Path, archive: &Path) -> std::io::Result<()> {
    let partial = archive.with_extension("partial");
    let result = (|| {
        let file = fs::File::create_new(&partial)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        tar.follow_symlinks(false);
        tar.append_dir_all(".", root)?;
        tar.into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        fs::rename(&partial, archive)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

impl Engine {
    /// `CheckpointContainer`: checkpoints running container `id` and leaves
    /// it running. `location` is an existing directory (the checkpoint's
    /// files go under it: `checkpoint/` and `spec.dump`) or the absolute
    /// path of a new tar archive holding the same files; `timeout` (zero
    /// for the create limit) bounds the runtime's checkpoint. CRIU unable
    /// to run on the host is [`CriError::CheckpointUnavailable`].
    pub async fn checkpoint_container(
        &self,
        id: &str,
        location: &str,
        timeout: Duration,
    ) -> Result<()> {
        let c = self.container(id)?;
        let target = export_target(location)?;
        self.require_feature(&c.handler, Feature::Checkpoint)
            .await?;
        let c = self.running_container(id).await?;
        let runtime = self.runtime(&c.handler)?;
        let limits = self.config().timeouts;
        let root = match &target {
            Export::Directory(dir) => dir.clone(),
            Export::Archive(_) => c.dir.join("checkpoint-export"),
        };
        let images = root.join("checkpoint");
        if images.exists() {
            return Err(CriError::FailedPrecondition(format!(
                "{} already holds a checkpoint",
                images.display()
            )));
        }
        let work = c.dir.join("checkpoint-work");
        let cleanup = || {
            let _ = remove_tree(&work);
            let _ = remove_tree(&images);
            if matches!(target, Export::Archive(_)) {
                let _ = remove_tree(&root);
            }
        };
        let prepared = [&images, &work].into_iter().try_for_each(|dir| {
            fs::create_dir_all(dir).map_err(CriError::io(format!("creating {}", dir.display())))
        });
        if let Err(e) = prepared {
            cleanup();
            return Err(e);
        }
        let mut options = CheckpointOptions::new(&images, &work);
        options.leave_running = true;
        let limit = if timeout.is_zero() {
            limits.create
        } else {
            timeout
        };
        let checkpointed = bounded(
            format!("checkpointing container {id}"),
            limit,
            runtime.checkpoint(&c.description, &options),
        )
        .await;
        if let Err(e) = checkpointed {
            cleanup();
            return Err(classify(id, e));
        }
        let exported = match fs::copy(
            c.description.bundle().join("config.json"),
            root.join("spec.dump"),
        ) {
            Err(e) => Err(CriError::io(
                "saving the container's spec with the checkpoint",
            )(e)),
            Ok(_) => match &target {
                Export::Directory(_) => Ok(()),
                Export::Archive(archive) => {
                    let (from, to) = (root.clone(), archive.clone());
                    let writing = tokio::task::spawn_blocking(move || write_archive(&from, &to));
                    match tokio::time::timeout(limit, writing).await {
                        Ok(Ok(written)) => {
                            written.map_err(CriError::io(format!("writing {}", archive.display())))
                        }
                        Ok(Err(e)) => Err(CriError::io(format!("writing {}", archive.display()))(
                            std::io::Error::other(e.to_string()),
                        )),
                        Err(_) => Err(CriError::DeadlineExceeded(format!(
                            "writing {} did not finish within {limit:?}",
                            archive.display()
                        ))),
                    }
                }
            },
        };
        let _ = remove_tree(&work);
        if matches!(target, Export::Archive(_)) || exported.is_err() {
            cleanup();
        }
        exported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display().to_string();
        assert_eq!(
            export_target(&dir).unwrap(),
            Export::Directory(tmp.path().into())
        );
        let archive = tmp.path().join("c.tar");
        assert_eq!(
            export_target(archive.to_str().unwrap()).unwrap(),
            Export::Archive(archive.clone())
        );
        fs::write(&archive, "").unwrap();
        for bad in [
            "",
            "relative.tar",
            "/nonexistent-dir/c.tar",
            archive.to_str().unwrap(),
        ] {
            assert!(
                matches!(export_target(bad), Err(CriError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn criu_failures_are_classified() {
        let criu = CriError::Runtime(RuntimeError::RuntimeFailed {
            command: "runc checkpoint c".into(),
            status: Some(1),
            stderr: "CRIU version check failed: exec: \"criu\": executable file not found".into(),
        });
        let classified = classify("c", criu);
        assert!(
            matches!(classified, CriError::CheckpointUnavailable { .. }),
            "{classified:?}"
        );
        assert_eq!(classified.code(), tonic::Code::FailedPrecondition);
        let other = CriError::Runtime(RuntimeError::RuntimeFailed {
            command: "runc checkpoint c".into(),
            status: Some(1),
            stderr: "container is paused".into(),
        });
        assert_eq!(classify("c", other).code(), tonic::Code::Internal);
    }
}
