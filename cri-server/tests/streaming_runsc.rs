//! The streaming server with runsc (gVisor, `--network=none`, isolated
//! handler): exec over WebSocket runs inside the sandbox (stdin round
//! trip, exit code on the error channel), and port-forward is refused
//! with the reason (the sandbox's loopback is in its own network stack).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use cri_server::k8s_cri::v1 as cri;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tonic::Code;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const LIMIT: Duration = Duration::from_secs(60);

async fn open(url: &str) -> Client {
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let (ws, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake timed out")
        .unwrap();
    ws
}

async fn send(ws: &mut Client, channel: u8, bytes: &[u8]) {
    let mut message = vec![channel];
    message.extend_from_slice(bytes);
    ws.send(Message::Binary(message.into())).await.unwrap();
}

async fn collect(ws: &mut Client) -> HashMap<u8, Vec<u8>> {
    let mut channels: HashMap<u8, Vec<u8>> = HashMap::new();
    let read = async {
        while let Some(message) = ws.next().await {
            match message.unwrap() {
                Message::Binary(bytes) if !bytes.is_empty() => {
                    channels.entry(bytes[0]).or_default().extend(&bytes[1..]);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("the session did not end");
    channels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_with_runsc() {
    if !need_runsc() {
        return;
    }
    let mut s = TestServer::start_runsc().await;
    let log_dir = s.log_dir("gvisor-streams");
    let pod_config = pod_config("gvisor-streams", &log_dir);
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runsc").await;
    let script = idle_script("ready");
    let app = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("app", &["sh", "-c", &script]),
    )
    .await;

    let url = s
        .runtime
        .exec(cri::ExecRequest {
            container_id: app.clone(),
            cmd: ["sh", "-c", "cat; exit 5"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            stdin: true,
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut ws = open(&url).await;
    send(&mut ws, 0, b"inside gvisor\n").await;
    send(&mut ws, 255, &[0]).await;
    let got = collect(&mut ws).await;
    assert_eq!(
        got.get(&1).map(Vec::as_slice),
        Some(&b"inside gvisor\n"[..])
    );
    let status: serde_json::Value = serde_json::from_slice(&got[&3]).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["message"], "5", "{status}");

    let err = s
        .runtime
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("network stack"), "{err:?}");

    remove_pod(&mut s.runtime, &pod).await;
    s.assert_nothing_left(&[&pod, &app]);
    s.finish().await;
}
