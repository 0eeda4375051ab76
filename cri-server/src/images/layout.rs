//! Reading an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) and copying its blobs with verified digests.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{validate_digest, ImageError, ImageRuntimeConfig, LayerRecord};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The largest manifest, index or config read into memory.
const MAX_JSON: u64 = 4 << 20;

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<ImageRuntimeConfig>,
}

/// An image found in a layout, not yet copied.
#[derive(Debug)]
pub(super) struct FoundImage {
    dir: PathBuf,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<LayerRecord>,
    pub config: ImageRuntimeConfig,
    pub size: u64,
}

impl FoundImage {
    /// Every blob the image needs: manifest, config, layers.
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        [self.manifest_digest.as_str(), self.config_digest.as_str()]
            .into_iter()
            .chain(self.layers.iter().map(|l| l.digest.as_str()))
    }

    /// Where blob `digest` sits in the layout (digest already validated).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_in(&self.dir, digest)
    }
}

fn blob_in(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    dir.join("blobs/sha256").join(hex)
}

fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Reads the layout at `dir` and finds the image tagged `tag` (or its only
/// image), following one level of index for the host's platform.
pub(super) fn read_layout(dir: &Path, tag: Option<&str>) -> Result<FoundImage, ImageError> {
    let bad = |message: String| ImageError::Layout {
        path: dir.display().to_string(),
        message,
    };
    let marker = dir.join("oci-layout");
    let text = fs::read_to_string(&marker)
        .map_err(|e| bad(format!("no readable oci-layout file ({e})")))?;
    if !text.contains("imageLayoutVersion") {
        return Err(bad("oci-layout has no imageLayoutVersion".into()));
    }
    let index: Index = read_json_file(&dir.join("index.json"), dir)?;
    let chosen = match index.manifests.len() {
        0 => return Err(bad("index.json lists no manifests".into())),
        1 => &index.manifests[0],
        _ => index
            .manifests
            .iter()
            .find(|m| tag.is_some() && m.annotations.get(REF_NAME).map(String::as_str) == tag)
            .ok_or_else(|| {
                bad(format!(
                    "index.json lists {} manifests and none is annotated {REF_NAME}={}",
                    index.manifests.len(),
                    tag.unwrap_or("<none>")
                ))
            })?,
    };
    let mut manifest_desc = chosen;
    let nested: Index;
    if manifest_desc.media_type == INDEX || manifest_desc.media_type == DOCKER_LIST {
        nested = read_json_blob(dir, manifest_desc)?;
        manifest_desc = nested
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_architecture())
            })
            .ok_or_else(|| {
                bad(format!(
                    "the image index {} has no manifest for linux/{}",
                    manifest_desc.digest,
                    host_architecture()
                ))
            })?;
    }
    if !manifest_desc.media_type.is_empty()
        && manifest_desc.media_type != MANIFEST
        && manifest_desc.media_type != DOCKER_MANIFEST
    {
        return Err(ImageError::Unsupported(format!(
            "manifest media type {:?}",
            manifest_desc.media_type
        )));
    }
    let manifest: Manifest = read_json_blob(dir, manifest_desc)?;
    let config: ConfigFile = read_json_blob(dir, &manifest.config)?;
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        validate_digest(&layer.digest).map_err(bad)?;
        if layer.media_type.contains("zstd") {
            return Err(ImageError::Unsupported(format!(
                "layer {} has media type {}; only tar and tar+gzip layers are supported",
                layer.digest, layer.media_type
            )));
        }
        layers.push(LayerRecord {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
            size: layer.size,
        });
    }
    let size =
        manifest_desc.size + manifest.config.size + layers.iter().map(|l| l.size).sum::<u64>();
    Ok(FoundImage {
        dir: dir.to_path_buf(),
        manifest_digest: manifest_desc.digest.clone(),
        config_digest: manifest.config.digest.clone(),
        layers,
        config: config.config.unwrap_or_default(),
        size,
    })
}

fn read_json_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    dir: &Path,
) -> Result<T, ImageError> {
    let file = fs::File::open(path).map_err(|e| ImageError::Layout {
        path: dir.display().to_string(),
        message: format!("cannot open {}: {e}", path.display()),
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON)
        .read_to_end(&mut bytes)
        .map_err(ImageError::io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        context: format!("parsing {}", path.display()),
        source,
    })
}

fn read_json_blob<T: serde::de::DeserializeOwned>(
    dir: &Path,
    desc: &Descriptor,
) -> Result<T, ImageError> {
    validate_digest(&desc.digest).map_err(|message| ImageError::Layout {
        path: dir.display().to_string(),
        message,
    })?;
    let path = blob_in(dir, &desc.digest);
    let bytes = fs::read(&path).map_err(|e| ImageError::Layout {
        path: dir.display().to_string(),
        message: format!("blob {} is missing ({e})", desc.digest),
    })?;
    let actual = hex(&Sha256::digest(&bytes));
    if format!("sha256:{actual}") != desc.digest {
        return Err(ImageError::DigestMismatch {
            digest: desc.digest.clone(),
            actual,
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        context: format!("parsing blob {}", desc.digest),
        source,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `src` to `dst` (through a temporary file and a rename), hashing
/// on the way; a digest mismatch leaves nothing at `dst`. An existing
/// `dst` is kept (blobs are content-addressed).
pub(super) fn copy_verified(src: &Path, dst: &Path, digest: &str) -> Result<(), ImageError> {
    if dst.exists() {
        return Ok(());
    }
    let mut input =
        fs::File::open(src).map_err(ImageError::io(format!("opening blob {}", src.display())))?;
    let tmp = dst.with_extension("partial");
    let mut output =
        fs::File::create(&tmp).map_err(ImageError::io(format!("creating {}", tmp.display())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let result = (|| loop {
        let n = input
            .read(&mut buffer)
            .map_err(ImageError::io(format!("reading blob {}", src.display())))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
        output
            .write_all(&buffer[..n])
            .map_err(ImageError::io(format!("writing {}", tmp.display())))?;
    })();
    let actual = hex(&hasher.finalize());
    let verified = result.and_then(|()| {
        if format!("sha256:{actual}") == digest {
            Ok(())
        } else {
            Err(ImageError::DigestMismatch {
                digest: digest.to_string(),
                actual,
            })
        }
    });
    if let Err(e) = verified {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dst).map_err(ImageError::io(format!("renaming {}", tmp.display())))
}
