//! Port reservation: the container's host ports are bound by the driver
//! before conmon starts and the sockets are handed to conmon, which holds
//! them for the container's lifetime. A port already in use is a clear error
//! before anything is spawned.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use runtime_api::RuntimeError;

use crate::{PortProtocol, PortReservation};

/// Binds every port of every reservation; all or nothing.
pub(crate) fn bind_ports(reservations: &[PortReservation]) -> Result<Vec<OwnedFd>, RuntimeError> {
    let mut sockets = Vec::new();
    for reservation in reservations {
        if reservation.range == 0 {
            return Err(RuntimeError::InvalidArgument(format!(
                "port reservation {}:{} has an empty range",
                describe_ip(reservation.host_ip),
                reservation.host_port
            )));
        }
        let last = u32::from(reservation.host_port) + u32::from(reservation.range) - 1;
        if last > u32::from(u16::MAX) {
            return Err(RuntimeError::InvalidArgument(format!(
                "port reservation {}:{} with range {} goes past port 65535",
                describe_ip(reservation.host_ip),
                reservation.host_port,
                reservation.range
            )));
        }
        for port in u32::from(reservation.host_port)..=last {
            let addr = SocketAddr::new(
                reservation
                    .host_ip
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                port as u16,
            );
            sockets.push(bind_one(addr, reservation.protocol)?);
        }
    }
    Ok(sockets)
}

fn bind_one(addr: SocketAddr, protocol: PortProtocol) -> Result<OwnedFd, RuntimeError> {
    let (name, result) = match protocol {
        PortProtocol::Tcp => ("tcp", TcpListener::bind(addr).map(OwnedFd::from)),
        PortProtocol::Udp => ("udp", UdpSocket::bind(addr).map(OwnedFd::from)),
    };
    result.map_err(|e| RuntimeError::io(format!("cannot reserve {name} port {addr}"), e))
}

fn describe_ip(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string())
        .unwrap_or_else(|| "0.0.0.0".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(port: u16, range: u16, protocol: PortProtocol) -> PortReservation {
        PortReservation {
            host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            host_port: port,
            range,
            protocol,
        }
    }

    #[test]
    fn binds_ranges_and_reports_a_taken_port_by_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind_ports(&[reservation(port, 1, PortProtocol::Tcp)]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("tcp port 127.0.0.1:{port}")),
            "{text}"
        );

        let free = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_port = free.local_addr().unwrap().port();
        drop(free);
        let sockets = bind_ports(&[reservation(udp_port, 1, PortProtocol::Udp)]).unwrap();
        assert_eq!(sockets.len(), 1);
        assert!(UdpSocket::bind(("127.0.0.1", udp_port)).is_err());
    }

    #[test]
    fn rejects_empty_and_overflowing_ranges() {
        assert!(bind_ports(&[reservation(80, 0, PortProtocol::Tcp)])
            .unwrap_err()
            .to_string()
            .contains("empty range"));
        assert!(bind_ports(&[reservation(65535, 2, PortProtocol::Tcp)])
            .unwrap_err()
            .to_string()
            .contains("past port 65535"));
    }
}
