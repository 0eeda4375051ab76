//! What only a conmon launch can take or give beyond the trait's
//! `create`: host ports conmon holds for the container's lifetime, named
//! fds for helpers that watch conmon (a network helper's sync pipe), and
//! the stdio of a container whose output passes through conmon, and
//! what the launch produced (conmon's pid, where each named fd sits in
//! conmon, where conmon was placed). Used through
//! [`ConmonRuntime::create_with`](crate::ConmonRuntime::create_with).

use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};

use runtime_api::CreatedContainer;

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

/// The conmon-only inputs of a create.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MonitorOptions {
    /// Host ports to hold for the container's lifetime: the driver binds
    /// them before conmon starts and hands the sockets to conmon, so no
    /// other process can take them while the container lives.
    pub reserved_ports: Vec<PortReservation>,
    /// Named fds handed to conmon (after its pipes and the ports).
    pub extra_fds: Vec<NamedFd>,
    /// The stdio a container with the passthrough log driver reads and
    /// writes; `None` hands it the caller's own stdin, stdout and stderr,
    /// as podman's `--log-driver passthrough` does. Refused with any other
    /// log driver.
    pub passthrough_stdio: Option<PassthroughStdio>,
}

/// Three fds that become conmon's stdin, stdout and stderr, which conmon
/// hands on to the container under the passthrough log driver.
#[derive(Debug)]
pub struct PassthroughStdio {
    /// The container's stdin.
    pub stdin: OwnedFd,
    /// The container's stdout.
    pub stdout: OwnedFd,
    /// The container's stderr.
    pub stderr: OwnedFd,
}

impl PassthroughStdio {
    /// Duplicates of this process's fds 0, 1 and 2.
    ///
    /// # Errors
    ///
    /// The `dup` failure, e.g. when one of them is closed.
    pub fn inherited() -> std::io::Result<Self> {
        use std::os::fd::AsFd;
        Ok(Self {
            stdin: std::io::stdin().as_fd().try_clone_to_owned()?,
            stdout: std::io::stdout().as_fd().try_clone_to_owned()?,
            stderr: std::io::stderr().as_fd().try_clone_to_owned()?,
        })
    }
}

/// What a conmon launch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConmonCreated {
    /// What the trait's `create` returns.
    pub container: CreatedContainer,
    /// conmon's pid.
    pub monitor_pid: i32,
    /// Where each of [`MonitorOptions::extra_fds`] sits in conmon, by name.
    pub extra_fds: Vec<(String, RawFd)>,
    /// Where conmon was placed, in words: `cgroupfs:/libpod_parent/conmon`
    /// or `systemd:libpod-conmon-<id>.scope in machine.slice`. `None` when
    /// conmon stayed in the caller's cgroup (nothing to do, or the move
    /// failed: then the container's warnings say why).
    pub placement: Option<String>,
}
