//! The streaming server with conmon and runc: `Exec`, `Attach` and
//! `PortForward` URLs opened as WebSockets (v4 and v5 channel protocols),
//! stdin round trips, output channels, exit codes on the error channel,
//! terminal resizes, port forwarding into the pod's loopback, and the
//! requests and tokens that must be refused.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use cri_server::k8s_cri::v1 as cri;
use cri_server::PodNamespaceJoin;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tonic::Code;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const V4: &str = "v4.channel.k8s.io";
const V5: &str = "v5.channel.k8s.io";
const LIMIT: Duration = Duration::from_secs(60);

/// Opens `url` offering `protocol`; the handshake's HTTP status on refusal.
async fn open(url: &str, protocol: &str) -> Result<Client, u16> {
    // The CRI URL is http://; the same URL as a WebSocket is ws://.
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    match tokio::time::timeout(LIMIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake timed out")
    {
        Ok((ws, response)) => {
            assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
            Ok(ws)
        }
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("connecting to {url}: {e}"),
    }
}

async fn send(ws: &mut Client, channel: u8, bytes: &[u8]) {
    let mut message = vec![channel];
    message.extend_from_slice(bytes);
    ws.send(Message::Binary(message.into())).await.unwrap();
}

/// Every channel's bytes until the server closes the socket.
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

/// Reads channel `channel` until its bytes contain `needle`.
async fn read_until(ws: &mut Client, channel: u8, needle: &str) -> String {
    let mut seen = Vec::new();
    let read = async {
        while let Some(message) = ws.next().await {
            if let Message::Binary(bytes) = message.unwrap() {
                if bytes.first() == Some(&channel) {
                    seen.extend(&bytes[1..]);
                    if String::from_utf8_lossy(&seen).contains(needle) {
                        return;
                    }
                }
            }
        }
        panic!(
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {}", String::from_utf8_lossy(&seen)));
    String::from_utf8_lossy(&seen).into_owned()
}

fn status(channels: &HashMap<u8, Vec<u8>>) -> serde_json::Value {
    serde_json::from_slice(channels.get(&3).expect("no status on channel 3")).unwrap()
}

fn text(channels: &HashMap<u8, Vec<u8>>, channel: u8) -> String {
    String::from_utf8_lossy(channels.get(&channel).map_or(&[][..], |v| v)).into_owned()
}

fn exec_request(id: &str, cmd: &[&str]) -> cri::ExecRequest {
    cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        stdout: true,
        ..Default::default()
    }
}

async fn exec_url(s: &mut TestServer, request: cri::ExecRequest) -> String {
    s.runtime.exec(request).await.unwrap().into_inner().url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_with_runc() {
    if !need_runc() {
        return;
    }
    let ttl = Duration::from_secs(2);
    let mut s = TestServer::start_with(
        |dir| {
            vec![handler(
                "runc",
                conmon_runtime("runc", &[], dir),
                PodNamespaceJoin::Paths,
            )]
        },
        |_| {},
        |config| {
            config.streaming.token_ttl = ttl;
            config.streaming.exec_grace = Duration::from_secs(1);
        },
    )
    .await;
    s.import_busybox();
    let address = s.engine.streaming_address().expect("streaming server runs");
    assert!(address.ip().is_loopback(), "{address}");
    let log_dir = s.log_dir("streams");
    let pod_config = pod_config("streams", &log_dir);
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runc").await;
    let script = idle_script("ready");
    let app = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("app", &["sh", "-c", &script]),
    )
    .await;
    let mut cat_config = container_config("cat", &["cat"]);
    cat_config.stdin = true;
    let cat = run_container(&mut s.runtime, &pod, &pod_config, cat_config).await;
    let mut tty_config = container_config("tty", &["sh"]);
    tty_config.stdin = true;
    tty_config.tty = true;
    let tty = run_container(&mut s.runtime, &pod, &pod_config, tty_config).await;
    let web = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config(
            "web",
            &["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc"],
        ),
    )
    .await;

    // Exec: stdin round trip through cat, closed by v5's close signal.
    let url = exec_url(
        &mut s,
        cri::ExecRequest {
            stdin: true,
            ..exec_request(&app, &["cat"])
        },
    )
    .await;
    assert!(url.starts_with(&format!("http://{address}/exec/")), "{url}");
    let mut ws = open(&url, V5).await.unwrap();
    // Messages the server does not understand are dropped, the session
    // goes on: empty, text, a bad resize, unknown channels, a bare close.
    ws.send(Message::Binary(Vec::new().into())).await.unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    send(&mut ws, 4, b"{\"Width\":-1}").await;
    send(&mut ws, 4, &[0xff; 16]).await;
    send(&mut ws, 9, b"nowhere").await;
    send(&mut ws, 255, &[]).await;
    send(&mut ws, 255, &[7]).await;
    send(&mut ws, 0, b"hello through cat\n").await;
    send(&mut ws, 255, &[0]).await;
    let got = collect(&mut ws).await;
    assert_eq!(text(&got, 1), "hello through cat\n");
    assert_eq!(
        status(&got),
        serde_json::json!({"metadata": {}, "status": "Success"})
    );
    // The token worked once.
    assert_eq!(open(&url, V5).await.unwrap_err(), 404);

    // Exec: stdout and stderr on their channels, a non-zero exit code.
    let url = exec_url(
        &mut s,
        cri::ExecRequest {
            stderr: true,
            ..exec_request(&app, &["sh", "-c", "echo out; echo err >&2; exit 3"])
        },
    )
    .await;
    let got = collect(&mut open(&url, V4).await.unwrap()).await;
    assert_eq!(text(&got, 1), "out\n");
    assert_eq!(text(&got, 2), "err\n");
    let st = status(&got);
    assert_eq!(st["status"], "Failure", "{st}");
    assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
    assert_eq!(st["details"]["causes"][0]["reason"], "ExitCode", "{st}");
    assert_eq!(st["details"]["causes"][0]["message"], "3", "{st}");

    // Exec with a terminal: a resize shows in `stty size`. The resize and
    // stdin travel different ways to the process, so the shell is asked
    // again until the new size has arrived.
    let url = exec_url(
        &mut s,
        cri::ExecRequest {
            stdin: true,
            tty: true,
            ..exec_request(&app, &["sh"])
        },
    )
    .await;
    let mut ws = open(&url, V5).await.unwrap();
    send(&mut ws, 4, br#"{"Width":123,"Height":45}"#).await;
    let mut seen = String::new();
    for _ in 0..50 {
        // The terminal echoes the line: the marker is computed so that
        // only the command's output matches.
        send(&mut ws, 0, b"stty size; echo size-$((40+2))\n").await;
        seen = read_until(&mut ws, 1, "size-42\r\n").await;
        if seen.contains("45 123") {
            break;
        }
    }
    assert!(seen.contains("45 123"), "{seen}");
    send(&mut ws, 0, b"exit 0\n").await;
    let got = collect(&mut ws).await;
    assert_eq!(status(&got)["status"], "Success");

    // A client leaving mid-exec: the process is stopped after the grace.
    let url = exec_url(&mut s, exec_request(&app, &["sleep", "4242"])).await;
    let ws = open(&url, V5).await.unwrap();
    drop(ws);
    // No event crosses from the server's session to the test: ask the
    // container (each ExecSync a round trip) until the process is gone.
    let client = s.runtime.clone();
    poll_until(
        "the orphaned exec to be stopped",
        Duration::from_secs(30),
        || {
            let (mut client, app) = (client.clone(), app.clone());
            async move {
                let left = exec_text(
                    &mut client,
                    &app,
                    &["sh", "-c", "ps | grep '[s]leep 4242' || true"],
                )
                .await;
                left.is_empty().then_some(())
            }
        },
    )
    .await;

    // Attach to cat: a round trip, then the client leaves and the
    // container runs on.
    let url = s
        .runtime
        .attach(cri::AttachRequest {
            container_id: cat.clone(),
            stdin: true,
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut ws = open(&url, V5).await.unwrap();
    send(&mut ws, 0, b"ping through attach\n").await;
    read_until(&mut ws, 1, "ping through attach\n").await;
    ws.close(None).await.unwrap();
    let state = s
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: cat.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .state;
    assert_eq!(state, cri::ContainerState::ContainerRunning as i32);

    // Attach to a shell on a terminal: a resize shows in `stty size`
    // (asked again until it has arrived, as with exec).
    let url = s
        .runtime
        .attach(cri::AttachRequest {
            container_id: tty.clone(),
            stdin: true,
            stdout: true,
            tty: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut ws = open(&url, V4).await.unwrap();
    send(&mut ws, 4, br#"{"Width":99,"Height":33}"#).await;
    let mut seen = String::new();
    for _ in 0..50 {
        send(&mut ws, 0, b"stty size; echo attach-$((40+2))\n").await;
        seen = read_until(&mut ws, 1, "attach-42\r\n").await;
        if seen.contains("33 99") {
            break;
        }
    }
    assert!(seen.contains("33 99"), "{seen}");
    ws.close(None).await.unwrap();

    // Port forward to httpd on the pod's loopback, once it listens
    // (port 8080 is 1F90 in /proc/net/tcp, state 0A is LISTEN).
    exec_text(
        &mut s.runtime,
        &app,
        &[
            "sh",
            "-c",
            "until grep -q ':1F90 00000000:0000 0A' /proc/net/tcp; do sleep 0.05; done",
        ],
    )
    .await;
    let url = s
        .runtime
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut ws = open(&url, "portforward.k8s.io").await.unwrap();
    send(&mut ws, 0, b"GET /passwd HTTP/1.0\r\n\r\n").await;
    let got = collect(&mut ws).await;
    let data = got.get(&0).expect("no data");
    assert_eq!(&data[..2], &8080u16.to_le_bytes());
    let body = String::from_utf8_lossy(&data[2..]);
    assert!(
        body.starts_with("HTTP/1.") && body.contains("tester:x:1234"),
        "{body}"
    );
    assert_eq!(
        got.get(&1).map(Vec::as_slice),
        Some(&8080u16.to_le_bytes()[..])
    );

    // A port nobody listens on: the error channel says so.
    let url = s
        .runtime
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8081],
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let got = collect(&mut open(&url, "v4.channel.k8s.io").await.unwrap()).await;
    let error = text(&got, 1);
    assert!(
        error.contains("8081") && error.contains("refused"),
        "{error}"
    );

    // Refused requests: nothing reaches the runtime.
    let bad: Vec<(cri::ExecRequest, Code)> = vec![
        (exec_request("no-such-container", &["true"]), Code::NotFound),
        (exec_request(&app, &[]), Code::InvalidArgument),
        (
            cri::ExecRequest {
                tty: true,
                stderr: true,
                ..exec_request(&app, &["true"])
            },
            Code::InvalidArgument,
        ),
        (
            cri::ExecRequest {
                stdout: false,
                ..exec_request(&app, &["true"])
            },
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in bad {
        let err = s.runtime.exec(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{request:?}: {err:?}");
    }
    let err = s
        .runtime
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: "no-such-pod".into(),
            port: vec![80],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let unknown = format!("http://{address}/exec/{}", "0".repeat(64));
    assert_eq!(open(&unknown, V5).await.unwrap_err(), 404);
    let url = exec_url(&mut s, exec_request(&app, &["true"])).await;
    assert_eq!(open(&url, "SPDY/3.1").await.unwrap_err(), 400);
    assert_eq!(plain_get_status(&url).await, 400);
    // Neither refusal used the token up; its expiry does.
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    assert_eq!(open(&url, V5).await.unwrap_err(), 410);
    assert_eq!(open(&url, V5).await.unwrap_err(), 404);

    // A stopped container takes no exec or attach.
    s.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: app.clone(),
            timeout: 10,
        })
        .await
        .unwrap();
    let err = s
        .runtime
        .exec(exec_request(&app, &["true"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = s
        .runtime
        .attach(cri::AttachRequest {
            container_id: app.clone(),
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    remove_pod(&mut s.runtime, &pod).await;
    let state = s.state_dir();
    assert!(state.exists());
    s.assert_nothing_left(&[&pod, &app, &cat, &tty, &web]);
    s.finish().await;
}

/// The HTTP status of a plain GET (no upgrade) of `url`.
async fn plain_get_status(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
