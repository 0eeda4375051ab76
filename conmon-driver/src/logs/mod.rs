//! The container's log: reading conmon's `k8s-file` format, reading and
//! following it as `podman logs` does, and rendering podman's log tag
//! templates.

pub(crate) mod follow;
pub(crate) mod k8s_file;
pub(crate) mod tag;
