//! Launching conmon: its command line and environment as pure data, the
//! process itself (spawn, stderr capture, reaping, killing), where it is
//! placed (cgroups), what it is prepared with (user namespaces, SELinux
//! label, reserved ports), and the sequence that ties them together for
//! both a container's create and an exec session.

pub(crate) mod argv;
pub(crate) mod env;
pub(crate) mod error;
pub(crate) mod label;
pub(crate) mod options;
pub(crate) mod placement;
pub(crate) mod ports;
pub(crate) mod process;
pub(crate) mod process_group;
pub(crate) mod sequence;
pub(crate) mod terminal;
pub(crate) mod userns;
