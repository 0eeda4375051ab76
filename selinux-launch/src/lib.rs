//! SELinux contexts and the label `conmon` is launched with.
//!
//! podman starts conmon with its own SELinux context, except that a context
//! with an MLS/MCS level other than `s0` is lowered to level `s0`, so the
//! container's processes can talk to the FIFOs conmon passes them. This
//! crate provides each piece on its own:
//!
//! - [`SecurityLabel`]: parsing and printing `user:role:type[:level]`;
//! - [`conmon_label`]: podman's `s0` rule;
//! - [`selinux_enabled_at`], [`current_label_at`] and their `/proc`-reading
//!   companions [`selinux_enabled`], [`current_label`]: the host's state;
//! - [`exec_label_for`]: the pure decision whether a label is needed;
//! - [`ExecLabel`]: writing the label in the child, between fork and exec,
//!   so the engine's own context never changes.
//!
//! # Example
//!
//! ```
//! use selinux_launch::{exec_label_for, selinux_enabled_at, ExecLabel, LaunchPolicy, SecurityLabel};
//!
//! let mountinfo = "30 23 0:27 / /sys/fs/selinux rw,relatime shared:8 - selinuxfs selinuxfs rw\n";
//! let engine: SecurityLabel = "system_u:system_r:container_runtime_t:s0:c1,c2".parse()?;
//!
//! let enabled = selinux_enabled_at(mountinfo);
//! let mut cmd = std::process::Command::new("/usr/bin/conmon");
//! if let Some(wanted) = exec_label_for(LaunchPolicy::FollowHost, enabled, Some(&engine)) {
//!     assert_eq!(wanted.to_string(), "system_u:system_r:container_runtime_t:s0");
//!     ExecLabel::new(wanted).install_std(&mut cmd); // applied in the child only
//! }
//! # Ok::<(), selinux_launch::SelinuxError>(())
//! ```

mod apply;
mod context;
mod error;
mod host;

pub use apply::{exec_label_for, ExecLabel, LaunchPolicy, EXEC_ATTR_PATH};
pub use context::{conmon_label, SecurityLabel, CONMON_LEVEL};
pub use error::SelinuxError;
pub use host::{
    current_label, current_label_at, selinux_enabled, selinux_enabled_at, CURRENT_ATTR_PATH,
    MOUNTINFO_PATH,
};
