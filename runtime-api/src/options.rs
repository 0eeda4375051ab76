//! Inputs and outputs of `create` that are not part of the container's
//! description: fds handed over for this launch only, restore settings, and
//! what the launch produced.

use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

/// Restoring a container from a checkpoint instead of creating it fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// The checkpoint image directory (`--restore`).
    pub image_path: PathBuf,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Restore file locks.
    pub file_locks: bool,
}

/// Per-launch inputs of `create`.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Restore from a checkpoint instead of creating.
    pub restore: Option<RestoreOptions>,
    /// The fds passed through to the container, placed at 3, 4, ... in
    /// order. Their count must equal the description's `preserved_fds`.
    pub preserved_fds: Vec<OwnedFd>,
    /// Socket-activation fds (`LISTEN_FDS`), placed at 3, 4, ... like
    /// preserved fds (the two cannot be combined).
    pub listen_fds: Vec<OwnedFd>,
    /// Host ports to hold for the container's lifetime: the driver binds
    /// them before conmon starts and hands the sockets to conmon, so no
    /// other process can take them while the container lives.
    pub reserved_ports: Vec<PortReservation>,
    /// Named fds handed to conmon (after its pipes) for helpers that watch
    /// conmon's lifetime, such as a network helper's sync pipe.
    pub extra_fds: Vec<NamedFd>,
}

/// The transport of a reserved port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// TCP (the socket listens).
    Tcp,
    /// UDP.
    Udp,
}

/// A range of host ports to reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortReservation {
    /// The host address; `None` means every address (`0.0.0.0`).
    pub host_ip: Option<IpAddr>,
    /// The first host port.
    pub host_port: u16,
    /// How many consecutive ports, at least 1.
    pub range: u16,
    /// TCP or UDP.
    pub protocol: PortProtocol,
}

/// An fd handed to conmon under a name the caller chooses.
#[derive(Debug)]
pub struct NamedFd {
    /// What the fd is for (reported back with its number in conmon).
    pub name: String,
    /// The fd.
    pub fd: OwnedFd,
}

/// What `create` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedContainer {
    /// The container's init pid.
    pub pid: i32,
    /// conmon's pid.
    pub monitor_pid: i32,
    /// Where each of [`CreateOptions::extra_fds`] sits in conmon, by name.
    pub extra_fds: Vec<(String, RawFd)>,
    /// Problems that did not stop the container (a cgroup placement or a
    /// notification that failed), as an engine would log them.
    pub warnings: Vec<String>,
    /// Where conmon was placed, in words: `cgroupfs:/libpod_parent/conmon`
    /// or `systemd:libpod-conmon-<id>.scope in machine.slice`. `None` when
    /// conmon stayed in the caller's cgroup (nothing to do, or the move
    /// failed: then [`CreatedContainer::warnings`] says why).
    pub placement: Option<String>,
}
