//! The server's records on disk, so that a restarted server finds the pods
//! and containers it manages (conmon keeps them running meanwhile). Each
//! pod and container directory under the state directory holds one
//! `record.json`, replaced crash-safely on every change
//! ([`replace_file`]); removing the directory removes the record.
//!
//! A record holds what cannot be derived again: the kubelet's
//! configuration, the image, the handler, times, the infra pid and the
//! stopped flag. Runtime descriptions are derived again from these on
//! load, with the handler's description hook, exactly as at creation.
//!
//! A record is written before the runtime is asked to create anything, so
//! a crash at any point leaves either a directory without a record (no
//! runtime container can exist yet; the directory is removed on load) or
//! a record whose runtime container may be missing (it then reads as
//! unknown or not ready, and the kubelet removes it).

use std::fs;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use serde::{Deserialize, Serialize};

use crate::durable::{replace_file, PARTIAL_SUFFIX};
use crate::error::{CriError, Result};
use crate::images::ImageRecord;

/// The record's file name in a pod's or container's directory.
pub(crate) const RECORD_FILE: &str = "record.json";

/// The layout version written; a record of another version is skipped.
const RECORD_VERSION: u32 = 1;

/// What is kept of a pod sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredPod {
    pub version: u32,
    pub id: String,
    #[serde(with = "protobuf")]
    pub config: cri::PodSandboxConfig,
    pub handler: String,
    pub created_at: i64,
    /// Zero until the infra container runs.
    pub infra_pid: i32,
    pub stopped: bool,
}

/// What is kept of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredContainer {
    pub version: u32,
    pub id: String,
    pub pod_id: String,
    #[serde(with = "protobuf")]
    pub config: cri::ContainerConfig,
    pub image: ImageRecord,
    pub created_at: i64,
    pub log_path: PathBuf,
    pub handler: String,
}

impl StoredPod {
    pub fn new(
        id: &str,
        config: &cri::PodSandboxConfig,
        handler: &str,
        created_at: i64,
        infra_pid: i32,
        stopped: bool,
    ) -> Self {
        Self {
            version: RECORD_VERSION,
            id: id.to_string(),
            config: config.clone(),
            handler: handler.to_string(),
            created_at,
            infra_pid,
            stopped,
        }
    }
}

impl StoredContainer {
    pub fn new(
        id: &str,
        pod_id: &str,
        config: &cri::ContainerConfig,
        image: &ImageRecord,
        created_at: i64,
        log_path: &Path,
        handler: &str,
    ) -> Self {
        Self {
            version: RECORD_VERSION,
            id: id.to_string(),
            pod_id: pod_id.to_string(),
            config: config.clone(),
            image: image.clone(),
            created_at,
            log_path: log_path.to_path_buf(),
            handler: handler.to_string(),
        }
    }
}

/// The kubelet's configurations are kept in their protobuf encoding (as
/// hex): unlike their JSON form, it reads records written before a CRI
/// version added fields, and records written after.
mod protobuf {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<M: prost::Message, S: Serializer>(
        message: &M,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let hex: String = message
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        serializer.serialize_str(&hex)
    }

    pub fn deserialize<'de, M: prost::Message + Default, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<M, D::Error> {
        let hex = String::deserialize(deserializer)?;
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(D::Error::custom("the configuration is not hex digits"));
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_default())
            .collect();
        M::decode(bytes.as_slice()).map_err(D::Error::custom)
    }
}

/// Writes `record` as `dir/record.json`, crash-safely.
pub(crate) fn save<T: Serialize>(dir: &Path, record: &T) -> Result<()> {
    let path = dir.join(RECORD_FILE);
    let bytes = serde_json::to_vec(record).map_err(|e| {
        CriError::io(format!("encoding {}", path.display()))(std::io::Error::other(e))
    })?;
    replace_file(&path, &bytes).map_err(CriError::io(format!("writing {}", path.display())))
}

/// Removes `dir/record.json` (first, so that a crash while the rest of
/// `dir` is removed leaves a directory the next load removes whole).
pub(crate) fn forget(dir: &Path) -> Result<()> {
    let path = dir.join(RECORD_FILE);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CriError::io(format!("removing {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// What loading one kind of record found.
#[derive(Debug)]
pub(crate) struct Loaded<T> {
    /// Records read whole.
    pub records: Vec<T>,
    /// Directories without a record: creations a crash interrupted before
    /// the runtime was asked for anything. They are removed.
    pub removed: Vec<PathBuf>,
    /// Records that could not be read; kept on disk for the operator.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Reads every `<parent>/<id>/record.json`, removing directories that have
/// none (interrupted creations) and naming the unreadable ones.
pub(crate) fn load<T: for<'de> Deserialize<'de>>(
    parent: &Path,
    id_of: impl Fn(&T) -> &str,
    version_of: impl Fn(&T) -> u32,
) -> Result<Loaded<T>> {
    let mut loaded = Loaded {
        records: Vec::new(),
        removed: Vec::new(),
        unreadable: Vec::new(),
    };
    let entries =
        fs::read_dir(parent).map_err(CriError::io(format!("listing {}", parent.display())))?;
    for entry in entries {
        let entry = entry.map_err(CriError::io(format!("listing {}", parent.display())))?;
        let dir = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = dir.join(RECORD_FILE);
        let _ = fs::remove_file(dir.join(format!("{RECORD_FILE}{PARTIAL_SUFFIX}")));
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                super::remove_tree(&dir)?;
                loaded.removed.push(dir);
                continue;
            }
            Err(e) => {
                loaded.unreadable.push((path, e.to_string()));
                continue;
            }
        };
        match serde_json::from_slice::<T>(&bytes) {
            Ok(record) if version_of(&record) != RECORD_VERSION => loaded.unreadable.push((
                path,
                format!(
                    "record version {} (this server reads {RECORD_VERSION})",
                    version_of(&record)
                ),
            )),
            Ok(record) if entry.file_name().to_str() != Some(id_of(&record)) => loaded
                .unreadable
                .push((path, format!("the record names id {:?}", id_of(&record)))),
            Ok(record) => loaded.records.push(record),
            Err(e) => loaded.unreadable.push((path, e.to_string())),
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_pods(dir: &Path) -> Loaded<StoredPod> {
        load(dir, |p: &StoredPod| &p.id, |p| p.version).unwrap()
    }

    #[test]
    fn records_round_trip_and_interrupted_creations_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            hostname: "web-0".into(),
            ..Default::default()
        };
        let pod_dir = dir.path().join("p1");
        fs::create_dir(&pod_dir).unwrap();
        save(
            &pod_dir,
            &StoredPod::new("p1", &config, "runc", 7, 42, false),
        )
        .unwrap();
        let bare = dir.path().join("p2");
        fs::create_dir_all(bare.join("bundle/rootfs")).unwrap();

        let loaded = load_pods(dir.path());
        assert_eq!(loaded.records.len(), 1);
        let pod = &loaded.records[0];
        assert_eq!(
            (pod.id.as_str(), pod.infra_pid, pod.created_at),
            ("p1", 42, 7)
        );
        assert_eq!(pod.config, config);
        assert_eq!(loaded.removed, vec![bare.clone()]);
        assert!(!bare.exists());
        assert!(loaded.unreadable.is_empty());
    }

    #[test]
    fn unreadable_records_are_named_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], &str); 4] = [
            (
                "badhex",
                br#"{"version":1,"id":"badhex","config":"0g","handler":"runc","created_at":0,"infra_pid":0,"stopped":false}"#,
                "not hex",
            ),
            ("torn", b"{\"version\":1,\"id\":\"to", "EOF"),
            (
                "other",
                br#"{"version":1,"id":"elsewhere","config":"","handler":"runc","created_at":0,"infra_pid":0,"stopped":false}"#,
                "names id",
            ),
            (
                "future",
                br#"{"version":9,"id":"future","config":"","handler":"runc","created_at":0,"infra_pid":0,"stopped":false}"#,
                "version 9",
            ),
        ];
        for (id, bytes, _) in &cases {
            fs::create_dir(dir.path().join(id)).unwrap();
            fs::write(dir.path().join(id).join(RECORD_FILE), bytes).unwrap();
        }
        let loaded = load_pods(dir.path());
        assert!(loaded.records.is_empty());
        assert_eq!(loaded.unreadable.len(), cases.len());
        for (id, _, why) in &cases {
            let (path, reason) = loaded
                .unreadable
                .iter()
                .find(|(p, _)| p.starts_with(dir.path().join(id)))
                .unwrap();
            assert!(reason.contains(why), "{id}: {reason}");
            assert!(path.exists());
        }
    }
}
