//! A container's bind mounts and device nodes, from the CRI request,
//! checked before they reach the spec.

use std::fs;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, Mount,
};

use crate::error::{spec_error, CriError, Result};

pub(crate) fn bind_mount(mount: &cri::Mount) -> Result<Mount> {
    if !mount.container_path.starts_with('/') {
        return Err(CriError::InvalidArgument(format!(
            "mount container path {:?} is not absolute",
            mount.container_path
        )));
    }
    if mount.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        return Err(CriError::Unimplemented(
            "image volume mounts are not implemented".into(),
        ));
    }
    if !mount.host_path.starts_with('/') {
        return Err(CriError::InvalidArgument(format!(
            "mount host path {:?} is not absolute",
            mount.host_path
        )));
    }
    if fs::symlink_metadata(&mount.host_path).is_err() {
        return Err(CriError::InvalidArgument(format!(
            "mount host path {:?} does not exist",
            mount.host_path
        )));
    }
    let propagation = match cri::MountPropagation::try_from(mount.propagation) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(cri::MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    };
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(&mount.container_path));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(PathBuf::from(&mount.host_path)));
    m.set_options(Some(vec![
        "rbind".into(),
        propagation.into(),
        if mount.readonly { "ro" } else { "rw" }.into(),
    ]));
    Ok(m)
}

pub(crate) fn device_node(
    device: &cri::Device,
) -> Result<(LinuxDevice, oci_spec::runtime::LinuxDeviceCgroup)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = fs::metadata(&device.host_path)
        .map_err(|e| CriError::InvalidArgument(format!("device {:?}: {e}", device.host_path)))?;
    let typ = if meta.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(CriError::InvalidArgument(format!(
            "{:?} is not a device node",
            device.host_path
        )));
    };
    let rdev = meta.rdev();
    let major = (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as i64;
    let minor = ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as i64;
    let path = if device.container_path.is_empty() {
        device.host_path.clone()
    } else {
        device.container_path.clone()
    };
    let node = LinuxDeviceBuilder::default()
        .path(PathBuf::from(path))
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(meta.mode() & 0o777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()
        .map_err(spec_error)?;
    let access = if device.permissions.is_empty() {
        "rwm".to_string()
    } else {
        device.permissions.clone()
    };
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(access)
        .build()
        .map_err(spec_error)?;
    Ok((node, rule))
}
