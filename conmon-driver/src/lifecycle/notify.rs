//! sd-notify: telling systemd which process is the container's main process
//! (conmon) and, in conmon mode, that the container is ready. One datagram
//! to the caller's `NOTIFY_SOCKET`, which may be a path or an abstract name
//! (`@name`).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

use crate::SdNotifyMode;

/// The datagram for `mode` once conmon runs as `monitor_pid`; `None` when
/// nothing is to be sent.
pub(crate) fn message(mode: SdNotifyMode, monitor_pid: i32) -> Option<String> {
    match mode {
        SdNotifyMode::Conmon => Some(format!("MAINPID={monitor_pid}\nREADY=1")),
        SdNotifyMode::Container => Some(format!("MAINPID={monitor_pid}")),
        SdNotifyMode::Ignore => None,
    }
}

/// Sends `message` to the notify socket, waiting at most `limit`.
pub(crate) fn send(socket: &Path, message: &str, limit: Duration) -> io::Result<()> {
    let bytes = socket.as_os_str().as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let sender = UnixDatagram::unbound()?;
    sender.set_write_timeout(Some(limit.max(Duration::from_millis(1))))?;
    sender.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_per_mode() {
        assert_eq!(
            message(SdNotifyMode::Conmon, 42).as_deref(),
            Some("MAINPID=42\nREADY=1")
        );
        assert_eq!(
            message(SdNotifyMode::Container, 42).as_deref(),
            Some("MAINPID=42")
        );
        assert_eq!(message(SdNotifyMode::Ignore, 42), None);
    }

    #[test]
    fn sends_to_paths_and_abstract_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(&path, "MAINPID=1", Duration::from_secs(1)).unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MAINPID=1");

        let name = format!("conmon-driver-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_receiver = UnixDatagram::bind_addr(&addr).unwrap();
        send(
            Path::new(&format!("@{name}")),
            "READY=1",
            Duration::from_secs(1),
        )
        .unwrap();
        let n = abstract_receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        assert!(send(&dir.path().join("absent"), "x", Duration::from_secs(1)).is_err());
    }
}
