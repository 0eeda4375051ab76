//! Kubernetes' channel protocol over WebSocket (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`, and the port-forward variant): which subprotocol a
//! client gets, how a binary message splits into a one-byte channel and its
//! payload, the terminal sizes of the resize channel, v5's close signal,
//! and the `metav1.Status` objects written on the error channel.
//!
//! Every decoder here takes bytes straight from the client: malformed input
//! is a [`FrameError`], never a panic.

use runtime_api::TerminalSize;
use serde::Deserialize;

/// Channel of the process's stdin (client to server).
pub const STDIN: u8 = 0;
/// Channel of the process's stdout.
pub const STDOUT: u8 = 1;
/// Channel of the process's stderr.
pub const STDERR: u8 = 2;
/// Channel of the final status (a JSON `metav1.Status`).
pub const ERROR: u8 = 3;
/// Channel of terminal sizes (client to server, JSON).
pub const RESIZE: u8 = 4;
/// v5's close signal: `[255, channel]` closes that channel's stream.
pub const CLOSE: u8 = 255;

/// `v4.channel.k8s.io`: channels 0-4, a JSON status on channel 3.
pub const V4: &str = "v4.channel.k8s.io";
/// `v5.channel.k8s.io`: v4 plus the close signal on channel 255.
pub const V5: &str = "v5.channel.k8s.io";
/// The port-forward subprotocol name.
pub const PORT_FORWARD: &str = "portforward.k8s.io";

/// The subprotocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v4.channel.k8s.io`.
    V4,
    /// `v5.channel.k8s.io`.
    V5,
    /// Port-forward channels (`portforward.k8s.io`, `v4.channel.k8s.io` or
    /// no subprotocol, as the kubelet accepts).
    PortForward,
}

impl Protocol {
    /// Whether `[255, channel]` messages close a stream.
    pub fn has_close(self) -> bool {
        matches!(self, Self::V5 | Self::PortForward)
    }
}

/// The subprotocol to answer a client offering `offered` (the values of its
/// `Sec-WebSocket-Protocol` headers, comma-separated lists allowed), the
/// first offered one that is served, as the kubelet picks. For exec and
/// attach (`port_forward` false) a protocol must be agreed; for port
/// forwarding no offer at all is accepted too (`Some((None, ..))`).
pub fn negotiate<'a>(
    offered: impl IntoIterator<Item = &'a str>,
    port_forward: bool,
) -> Option<(Option<&'static str>, Protocol)> {
    let mut any = false;
    for name in offered
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if name.is_empty() {
            continue;
        }
        any = true;
        let found = if port_forward {
            [PORT_FORWARD, V4]
                .into_iter()
                .find(|p| *p == name)
                .map(|p| (Some(p), Protocol::PortForward))
        } else {
            match name {
                V5 => Some((Some(V5), Protocol::V5)),
                V4 => Some((Some(V4), Protocol::V4)),
                _ => None,
            }
        };
        if found.is_some() {
            return found;
        }
    }
    (port_forward && !any).then_some((None, Protocol::PortForward))
}

/// A client message that is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A binary message without even the channel byte.
    #[error("an empty message has no channel byte")]
    Empty,
    /// A close signal without the channel it closes.
    #[error("a close signal names no channel")]
    CloseWithoutChannel,
    /// A resize message that is not `{"Width":W,"Height":H}` with sizes
    /// that fit in 16 bits.
    #[error("a resize message is not {{\"Width\":W,\"Height\":H}}: {0}")]
    BadResize(String),
}

/// One decoded client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Bytes for `channel` (stdin, or a port's data channel).
    Data {
        /// The channel byte.
        channel: u8,
        /// The payload (may be empty).
        bytes: &'a [u8],
    },
    /// v5 (and port-forward): the client closed its side of `channel`.
    Close(u8),
}

/// Splits a binary message into its channel and payload; `[255, c]` is a
/// close signal where `protocol` has one.
pub fn decode(message: &[u8], protocol: Protocol) -> Result<Frame<'_>, FrameError> {
    let (&channel, bytes) = message.split_first().ok_or(FrameError::Empty)?;
    if channel == CLOSE && protocol.has_close() {
        let &target = bytes.first().ok_or(FrameError::CloseWithoutChannel)?;
        return Ok(Frame::Close(target));
    }
    Ok(Frame::Data { channel, bytes })
}

/// A message of `bytes` on `channel`.
pub fn encode(channel: u8, bytes: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(bytes.len() + 1);
    message.push(channel);
    message.extend_from_slice(bytes);
    message
}

#[derive(Deserialize)]
struct Size {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// Decodes a resize payload, `{"Width":80,"Height":24}` (kubelet's
/// `remotecommand.TerminalSize`).
pub fn decode_resize(payload: &[u8]) -> Result<TerminalSize, FrameError> {
    let size: Size =
        serde_json::from_slice(payload).map_err(|e| FrameError::BadResize(e.to_string()))?;
    Ok(TerminalSize {
        rows: size.height,
        cols: size.width,
    })
}

/// The status written on the error channel when a command exited 0, or an
/// attach ended.
pub fn status_success() -> Vec<u8> {
    serde_json::json!({"metadata": {}, "status": "Success"})
        .to_string()
        .into_bytes()
}

/// The status of a command that exited with `code` (non-zero): reason
/// `NonZeroExitCode` and the code as the message of an `ExitCode` cause,
/// which is where clients read it from.
pub fn status_exit_code(code: i32) -> Vec<u8> {
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
    .to_string()
    .into_bytes()
}

/// The status of a session that failed before an exit code was known
/// (`InternalError`, code 500).
pub fn status_internal(message: &str) -> Vec<u8> {
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subprotocols_are_picked_in_the_clients_order() {
        assert_eq!(negotiate([V5, V4], false), Some((Some(V5), Protocol::V5)));
        assert_eq!(
            negotiate(["base64.channel.k8s.io, v4.channel.k8s.io"], false),
            Some((Some(V4), Protocol::V4))
        );
        assert_eq!(negotiate(["channel.k8s.io"], false), None);
        assert_eq!(negotiate([], false), None);
        assert_eq!(negotiate([], true), Some((None, Protocol::PortForward)));
        assert_eq!(
            negotiate([PORT_FORWARD], true),
            Some((Some(PORT_FORWARD), Protocol::PortForward))
        );
        assert_eq!(negotiate(["SPDY/3.1"], true), None);
    }

    #[test]
    fn frames_split_into_channel_and_payload() {
        assert_eq!(
            decode(b"\x00hi", Protocol::V4),
            Ok(Frame::Data {
                channel: 0,
                bytes: b"hi"
            })
        );
        assert_eq!(decode(&[255, 0], Protocol::V5), Ok(Frame::Close(0)));
        assert_eq!(
            decode(&[255, 0], Protocol::V4),
            Ok(Frame::Data {
                channel: 255,
                bytes: &[0]
            })
        );
        assert_eq!(decode(&[], Protocol::V5), Err(FrameError::Empty));
        assert_eq!(
            decode(&[255], Protocol::V5),
            Err(FrameError::CloseWithoutChannel)
        );
        assert_eq!(encode(1, b"x"), b"\x01x");
    }

    #[test]
    fn resize_payloads() {
        assert_eq!(
            decode_resize(br#"{"Width":120,"Height":40}"#),
            Ok(TerminalSize {
                rows: 40,
                cols: 120
            })
        );
        for bad in [
            &br#"{"Width":70000,"Height":1}"#[..],
            br#"{"Width":-1,"Height":1}"#,
            br#"{"Width":1}"#,
            b"",
            b"\xff",
        ] {
            assert!(decode_resize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statuses_are_kubelets_shape() {
        let ok: serde_json::Value = serde_json::from_slice(&status_success()).unwrap();
        assert_eq!(ok, serde_json::json!({"metadata": {}, "status": "Success"}));
        let failed: serde_json::Value = serde_json::from_slice(&status_exit_code(7)).unwrap();
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "7");
        let internal: serde_json::Value = serde_json::from_slice(&status_internal("boom")).unwrap();
        assert_eq!(internal["reason"], "InternalError");
    }

    proptest! {
        #[test]
        fn any_message_decodes_or_errs(message in proptest::collection::vec(any::<u8>(), 0..64)) {
            for protocol in [Protocol::V4, Protocol::V5, Protocol::PortForward] {
                if let Ok(Frame::Data { channel, bytes }) = decode(&message, protocol) {
                    prop_assert_eq!(encode(channel, bytes), message.clone());
                }
            }
        }

        #[test]
        fn any_resize_payload_decodes_or_errs(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_resize(&payload);
        }

        #[test]
        fn sizes_round_trip(w in any::<u16>(), h in any::<u16>()) {
            let json = format!(r#"{{"Width":{w},"Height":{h}}}"#);
            prop_assert_eq!(decode_resize(json.as_bytes()), Ok(TerminalSize { rows: h, cols: w }));
        }

        #[test]
        fn json_like_resize_payloads_never_panic(s in r#"\{("(Width|Height)":-?[0-9]{0,8}(\.[0-9])?,?){0,3}\}"#) {
            let _ = decode_resize(s.as_bytes());
        }
    }
}
