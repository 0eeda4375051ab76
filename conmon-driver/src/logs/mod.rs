//! The container's log: reading conmon's `k8s-file` format, and rendering
//! podman's log tag templates.

pub(crate) mod k8s_file;
pub(crate) mod tag;
