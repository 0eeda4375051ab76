//! Who a container runs as: the security context's uid, user name and
//! groups, else the image's `User`, resolved in the root filesystem's
//! `/etc/passwd` and `/etc/group`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use k8s_cri::v1 as cri;

use crate::error::{CriError, Result};
use crate::images::ImageRuntimeConfig;

/// The process identity a container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
}

/// Who the container runs as: the security context's uid, user name and
/// gid, else the image's `User`, else root; names and the primary group
/// come from the root filesystem's `/etc/passwd`, supplementary groups
/// from its `/etc/group` plus the context's `supplemental_groups`.
pub fn run_as(
    security: &cri::LinuxContainerSecurityContext,
    image: &ImageRuntimeConfig,
    rootfs: &Path,
) -> Result<RunAs> {
    let passwd = read_etc(rootfs, "passwd")?;
    let group = read_etc(rootfs, "group")?;
    let (user_part, group_part): (String, Option<String>) = if let Some(uid) = &security.run_as_user
    {
        (uid.value.to_string(), None)
    } else if !security.run_as_username.is_empty() {
        (security.run_as_username.clone(), None)
    } else {
        match image.user.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => match u.split_once(':') {
                Some((u, g)) => (u.to_string(), Some(g.to_string())),
                None => (u.to_string(), None),
            },
            None => ("0".to_string(), None),
        }
    };
    let entry = passwd.iter().find(|fields| {
        fields.first().map(String::as_str) == Some(user_part.as_str())
            || fields.get(2).map(String::as_str) == Some(user_part.as_str())
    });
    let uid: u32 = match user_part.parse::<i64>() {
        Ok(n) => u32::try_from(n)
            .map_err(|_| CriError::InvalidArgument(format!("uid {n} is out of range")))?,
        Err(_) => entry.and_then(|f| f.get(2)?.parse().ok()).ok_or_else(|| {
            CriError::InvalidArgument(format!(
                "user {user_part:?} is not in the image's /etc/passwd"
            ))
        })?,
    };
    let name = entry.and_then(|f| f.first().cloned());
    let mut gid: u32 = entry.and_then(|f| f.get(3)?.parse().ok()).unwrap_or(0);
    if let Some(g) = &group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .iter()
                .find(|f| f.first() == Some(g))
                .and_then(|f| f.get(2)?.parse().ok())
                .ok_or_else(|| {
                    CriError::InvalidArgument(format!(
                        "group {g:?} is not in the image's /etc/group"
                    ))
                })?,
        };
    }
    if let Some(g) = &security.run_as_group {
        gid = u32::try_from(g.value)
            .map_err(|_| CriError::InvalidArgument(format!("gid {} is out of range", g.value)))?;
    }
    let mut additional: BTreeSet<u32> = BTreeSet::new();
    if let Some(name) = &name {
        for fields in &group {
            let members = fields.get(3).map(String::as_str).unwrap_or("");
            if members.split(',').any(|m| m == name) {
                if let Some(g) = fields.get(2).and_then(|g| g.parse().ok()) {
                    additional.insert(g);
                }
            }
        }
    }
    for g in &security.supplemental_groups {
        additional.insert(u32::try_from(*g).map_err(|_| {
            CriError::InvalidArgument(format!("supplemental group {g} is out of range"))
        })?);
    }
    additional.remove(&gid);
    Ok(RunAs {
        uid,
        gid,
        additional_gids: additional.into_iter().collect(),
    })
}

/// The colon-separated lines of `rootfs/etc/<name>`; none when the file
/// is absent. A symbolic link there is not followed (it could point out of
/// the root filesystem).
pub(crate) fn read_etc(rootfs: &Path, name: &str) -> Result<Vec<Vec<String>>> {
    let path = rootfs.join("etc").join(name);
    match fs::symlink_metadata(&path) {
        Err(_) => return Ok(Vec::new()),
        Ok(meta) if !meta.is_file() => return Ok(Vec::new()),
        Ok(_) => {}
    }
    let text =
        fs::read_to_string(&path).map_err(CriError::io(format!("reading {}", path.display())))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}
