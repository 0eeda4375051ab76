//! The local image store: images imported from OCI image layout
//! directories under a name, resolved by name, id or digest, and unpacked
//! into a container's root filesystem. There is no registry client: an
//! image reaches the store only through [`ImageStore::import_layout`].
//!
//! On disk, under the store's directory:
//!
//! ```text
//! blobs/sha256/<hex>      every manifest, config and layer blob, verified
//! images/<config hex>.json one record per image (names, manifest, layers)
//! ```

mod layout;
mod reference;
mod unpack;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tonic::Code;

pub use reference::{validate_digest, Reference, DEFAULT_DOMAIN};
pub use unpack::{apply_layer, apply_tar};

/// What can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The name is not an image reference.
    #[error("invalid image reference: {0}")]
    InvalidReference(String),

    /// The image is not in the store, and nothing could fetch it.
    #[error("image {reference:?} is not in the local store, and no registry client is configured (add it with `cri-server import`)")]
    NotInStore {
        /// The reference asked for.
        reference: String,
    },

    /// The image layout directory is not usable.
    #[error("OCI image layout {path}: {message}")]
    Layout {
        /// The directory.
        path: String,
        /// What is wrong with it.
        message: String,
    },

    /// A blob's content does not match its digest.
    #[error("blob {digest} has digest sha256:{actual}; refusing it")]
    DigestMismatch {
        /// The digest it should have.
        digest: String,
        /// The digest of its bytes.
        actual: String,
    },

    /// A layer cannot be applied.
    #[error("layer {layer}: {message}")]
    Layer {
        /// The layer's blob or digest.
        layer: String,
        /// What went wrong.
        message: String,
    },

    /// A format the store does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A record or manifest is not valid JSON of the expected shape.
    #[error("{context}: {source}")]
    Json {
        /// What was parsed.
        context: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },

    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// A closure wrapping an I/O error with `context`, for `map_err`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// The gRPC code this error is answered with.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidReference(_) | Self::Layout { .. } => Code::InvalidArgument,
            Self::NotInStore { .. } => Code::NotFound,
            Self::Unsupported(_) => Code::Unimplemented,
            Self::DigestMismatch { .. } => Code::DataLoss,
            Self::Layer { .. } | Self::Json { .. } | Self::Io { .. } => Code::Internal,
        }
    }
}

/// The parts of an image's configuration a container starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRuntimeConfig {
    /// `User`: `uid[:gid]` or a name.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `Env`: `NAME=value` entries.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `Entrypoint`.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// `StopSignal`.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The blob's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id: its config's digest (`sha256:...`), as containerd and
    /// CRI-O report it.
    pub id: String,
    /// Normalized `repository:tag` names pointing at it.
    pub names: Vec<String>,
    /// The manifest's digest (what `repository@digest` names).
    pub manifest_digest: String,
    /// The manifest, config and layer sizes together.
    pub size: u64,
    /// The layers, lowest first.
    pub layers: Vec<LayerRecord>,
    /// What containers start from.
    pub config: ImageRuntimeConfig,
}

impl ImageRecord {
    /// `repository@manifest-digest` for every repository the image is
    /// named in.
    pub fn repo_digests(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .names
            .iter()
            .filter_map(|n| Reference::parse(n).ok())
            .map(|r| format!("{}@{}", r.repository, self.manifest_digest))
            .collect();
        out.dedup();
        out
    }
}

/// The store: records in memory, blobs and records on disk.
#[derive(Debug)]
pub struct ImageStore {
    dir: PathBuf,
    images: Mutex<HashMap<String, ImageRecord>>,
}

impl ImageStore {
    /// Opens (creating when needed) the store in `dir` and loads its records.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let dir = dir.into();
        for sub in ["blobs/sha256", "images"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path)
                .map_err(ImageError::io(format!("creating {}", path.display())))?;
        }
        let mut images = HashMap::new();
        let records = dir.join("images");
        let entries = fs::read_dir(&records)
            .map_err(ImageError::io(format!("listing {}", records.display())))?;
        for entry in entries {
            let path = entry
                .map_err(ImageError::io(format!("listing {}", records.display())))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text =
                fs::read(&path).map_err(ImageError::io(format!("reading {}", path.display())))?;
            let record: ImageRecord =
                serde_json::from_slice(&text).map_err(|source| ImageError::Json {
                    context: format!("parsing image record {}", path.display()),
                    source,
                })?;
            images.insert(record.id.clone(), record);
        }
        Ok(Self {
            dir,
            images: Mutex::new(images),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the blob with `digest`.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = validate_digest(digest).map_err(ImageError::InvalidReference)?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ImageRecord>> {
        // A panic while holding the lock leaves the map consistent (every
        // change is one insert or remove), so a poisoned lock is usable.
        self.images.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Imports the image in the OCI image layout at `layout` under `name`
    /// (normalized, `:latest` when untagged). Blobs are verified against
    /// their digests. When the layout's index lists several manifests, the
    /// one whose `org.opencontainers.image.ref.name` annotation is the
    /// name's tag is taken. Importing the same image under a second name
    /// adds the name; a name held by another image moves to this one.
    pub fn import_layout(&self, layout: &Path, name: &str) -> Result<ImageRecord, ImageError> {
        let reference = Reference::parse(name).map_err(ImageError::InvalidReference)?;
        let Some(tagged) = reference.tagged() else {
            return Err(ImageError::InvalidReference(format!(
                "{name:?}: an imported image needs a tag, not only a digest"
            )));
        };
        let found = layout::read_layout(layout, reference.tag.as_deref())?;
        for blob in found.blobs() {
            layout::copy_verified(&found.blob_path(blob), &self.blob_path(blob)?, blob)?;
        }
        let mut images = self.lock();
        for other in images.values_mut() {
            if other.id != found.config_digest && other.names.contains(&tagged) {
                other.names.retain(|n| n != &tagged);
                self.save(other)?;
            }
        }
        let record = images
            .entry(found.config_digest.clone())
            .or_insert_with(|| ImageRecord {
                id: found.config_digest.clone(),
                names: Vec::new(),
                manifest_digest: found.manifest_digest.clone(),
                size: found.size,
                layers: found.layers.clone(),
                config: found.config.clone(),
            });
        if !record.names.contains(&tagged) {
            record.names.push(tagged);
        }
        let record = record.clone();
        self.save(&record)?;
        Ok(record)
    }

    fn save(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let hex = validate_digest(&record.id).map_err(ImageError::InvalidReference)?;
        let path = self.dir.join("images").join(format!("{hex}.json"));
        let text = serde_json::to_vec_pretty(record).map_err(|source| ImageError::Json {
            context: format!("encoding image record {}", record.id),
            source,
        })?;
        crate::durable::replace_file(&path, &text)
            .map_err(ImageError::io(format!("writing {}", path.display())))
    }

    /// Finds an image by id (`sha256:<hex>` or the bare hex), by name
    /// (normalized) or by `repository@manifest-digest`. `Ok(None)` when the
    /// store has no such image.
    pub fn resolve(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let images = self.lock();
        let as_id = if name.starts_with("sha256:") {
            name.to_string()
        } else {
            format!("sha256:{name}")
        };
        if let Some(record) = images.get(&as_id) {
            return Ok(Some(record.clone()));
        }
        let reference = Reference::parse(name).map_err(ImageError::InvalidReference)?;
        let found = images.values().find(|image| match &reference.digest {
            Some(digest) => {
                image.manifest_digest == *digest
                    && image.names.iter().any(|n| {
                        Reference::parse(n).is_ok_and(|r| r.repository == reference.repository)
                    })
            }
            None => reference
                .tagged()
                .is_some_and(|tagged| image.names.contains(&tagged)),
        });
        Ok(found.cloned())
    }

    /// [`resolve`](Self::resolve), with an absent image as
    /// [`ImageError::NotInStore`].
    pub fn require(&self, name: &str) -> Result<ImageRecord, ImageError> {
        self.resolve(name)?.ok_or_else(|| ImageError::NotInStore {
            reference: name.to_string(),
        })
    }

    /// Every image, sorted by id.
    pub fn list(&self) -> Vec<ImageRecord> {
        let mut all: Vec<ImageRecord> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Removes the image `name` resolves to, with its blobs that no other
    /// image uses. Returns whether there was one. Containers already
    /// created keep their own copy of the root filesystem.
    pub fn remove(&self, name: &str) -> Result<bool, ImageError> {
        let Some(record) = self.resolve(name)? else {
            return Ok(false);
        };
        let mut images = self.lock();
        images.remove(&record.id);
        let hex = validate_digest(&record.id).map_err(ImageError::InvalidReference)?;
        let path = self.dir.join("images").join(format!("{hex}.json"));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ImageError::io(format!("removing {}", path.display()))(e))
            }
            _ => {}
        }
        let in_use: std::collections::HashSet<&str> = images
            .values()
            .flat_map(|i| {
                i.layers
                    .iter()
                    .map(|l| l.digest.as_str())
                    .chain([i.id.as_str(), i.manifest_digest.as_str()])
            })
            .collect();
        let own = record
            .layers
            .iter()
            .map(|l| l.digest.as_str())
            .chain([record.id.as_str(), record.manifest_digest.as_str()]);
        for digest in own {
            if !in_use.contains(digest) {
                let blob = self.blob_path(digest)?;
                match fs::remove_file(&blob) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ImageError::io(format!("removing {}", blob.display()))(e))
                    }
                    _ => {}
                }
            }
        }
        Ok(true)
    }

    /// Unpacks `image`'s layers, lowest first, into `root` (created when
    /// missing).
    pub fn unpack(&self, image: &ImageRecord, root: &Path) -> Result<(), ImageError> {
        fs::create_dir_all(root).map_err(ImageError::io(format!("creating {}", root.display())))?;
        for layer in &image.layers {
            apply_layer(&self.blob_path(&layer.digest)?, root)?;
        }
        Ok(())
    }

    /// Bytes and inodes used under the store's directory.
    pub fn usage(&self) -> Result<(u64, u64), ImageError> {
        disk_usage(&self.dir)
    }
}

/// Bytes (allocated blocks) and inodes used under `dir`, symlinks not
/// followed.
pub fn disk_usage(dir: &Path) -> Result<(u64, u64), ImageError> {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0u64;
    let mut inodes = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.map_err(ImageError::io(format!("inspecting {}", path.display())))?,
        };
        bytes += meta.blocks() * 512;
        inodes += 1;
        if meta.is_dir() {
            let entries = fs::read_dir(&path)
                .map_err(ImageError::io(format!("listing {}", path.display())))?;
            for entry in entries {
                pending.push(
                    entry
                        .map_err(ImageError::io(format!("listing {}", path.display())))?
                        .path(),
                );
            }
        }
    }
    Ok((bytes, inodes))
}
