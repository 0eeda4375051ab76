//! The `http_attach` example as a Docker client sees it: the example is
//! built and run as a server on a Unix socket, and driven over HTTP/1.1
//! with hyper's client (ping, inspect, attach with an upgrade, start, wait,
//! resize, errors), then stopped with SIGTERM.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use attach::{MuxDecoder, MuxStream};
use common::{need_runc, unique_id};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

/// Limit for one HTTP exchange or stream read.
const LIMIT: Duration = Duration::from_secs(60);

/// Builds the example once per test binary and returns its path.
fn example_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| common::example_binary("http_attach"))
        .clone()
}

/// The example running as a server for one container.
struct Server {
    child: Child,
    /// Kept open: the server may print more.
    _stdout: Lines<BufReader<ChildStdout>>,
    socket: PathBuf,
    id: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server and returns once it listens.
    async fn start(flags: &[&str], command: &[&str]) -> Server {
        let binary = tokio::task::spawn_blocking(example_binary).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let id = unique_id("http").to_string();
        let mut child = Command::new(binary)
            .arg("--socket")
            .arg(&socket)
            .args(["--id", &id])
            .args(flags)
            .arg("--")
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let expected = format!("listening on {}", socket.display());
        let line = timeout(Duration::from_secs(180), stdout.next_line())
            .await
            .expect("the server never said it listens")
            .unwrap();
        assert_eq!(line.as_deref(), Some(expected.as_str()));
        Server {
            child,
            _stdout: stdout,
            socket,
            id,
            _dir: dir,
        }
    }

    /// Stops the server with SIGTERM and checks that it cleaned up.
    async fn terminate(mut self) {
        let pid = Pid::from_raw(self.child.id().unwrap() as i32);
        kill(pid, Signal::SIGTERM).unwrap();
        let status = timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the server did not exit after SIGTERM")
            .unwrap();
        assert!(status.success(), "server exited with {status}");
        assert!(!self.socket.exists(), "the socket file is left");
        let listed = std::process::Command::new("runc")
            .args(["list", "-q"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            !listed.lines().any(|line| line == self.id),
            "runc still lists {}: {listed}",
            self.id
        );
    }

    /// One request on a fresh connection: status, headers, body.
    async fn call(&self, method: Method, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut sender = connect(&self.socket).await;
        let response = timeout(LIMIT, sender.send_request(request(method, path)))
            .await
            .expect("no response")
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = timeout(LIMIT, body.collect())
            .await
            .expect("the body never ended")
            .unwrap()
            .to_bytes();
        (parts.status, parts.headers, body.to_vec())
    }

    async fn call_json(&self, method: Method, path: &str) -> (StatusCode, Value) {
        let (status, headers, body) = self.call(method, path).await;
        assert_eq!(headers[CONTENT_TYPE], "application/json", "{path}");
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {:?}", String::from_utf8_lossy(&body)));
        (status, value)
    }

    async fn inspect(&self) -> Value {
        let (status, json) = self
            .call_json(Method::GET, &format!("/containers/{}/json", self.id))
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// Sends an attach request with `query`, asking for an upgrade.
    async fn attach_request(&self, query: &str) -> hyper::Response<hyper::body::Incoming> {
        let mut sender = connect(&self.socket).await;
        let mut req = request(
            Method::POST,
            &format!("/v1.41/containers/{}/attach?{query}", self.id),
        );
        req.headers_mut()
            .insert(CONNECTION, "Upgrade".parse().unwrap());
        req.headers_mut().insert(UPGRADE, "tcp".parse().unwrap());
        timeout(LIMIT, sender.send_request(req))
            .await
            .expect("no response to attach")
            .unwrap()
    }

    /// Attaches with `query`, returning the 101's headers and the upgraded
    /// connection.
    async fn attach(&self, query: &str) -> (HeaderMap, TokioIo<hyper::upgrade::Upgraded>) {
        let response = self.attach_request(query).await;
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let headers = response.headers().clone();
        let upgraded = timeout(LIMIT, hyper::upgrade::on(response))
            .await
            .expect("the upgrade never completed")
            .unwrap();
        (headers, TokioIo::new(upgraded))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // After a failed assertion: let the server clean up, else force it.
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            for _ in 0..300 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.start_kill();
            let _ = std::process::Command::new("runc")
                .args(["delete", "--force", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn connect(socket: &Path) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = UnixStream::connect(socket).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    sender
}

fn request(method: Method, path: &str) -> Request<Empty<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "docker")
        .body(Empty::new())
        .unwrap()
}

async fn read_to_eof(stream: &mut TokioIo<hyper::upgrade::Upgraded>) -> Vec<u8> {
    let mut bytes = Vec::new();
    timeout(LIMIT, stream.read_to_end(&mut bytes))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the attach stream never ended; so far: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
        .unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_attach_start_wait_and_shutdown() {
    if !need_runc() {
        return;
    }
    let server = Server::start(&[], &["sh", "-c", "echo out; echo err >&2; exit 4"]).await;
    let id = server.id.clone();

    let (status, headers, body) = server.call(Method::GET, "/_ping").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"OK");
    assert_eq!(headers["api-version"], "1.41");
    assert!(headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));

    let json = server.inspect().await;
    assert_eq!(json["Id"], id.as_str());
    assert_eq!(json["Config"]["Tty"], false);
    assert_eq!(json["Config"]["OpenStdin"], false);
    assert_eq!(json["State"]["Running"], false);
    assert_eq!(json["State"]["Status"], "created");
    assert_eq!(json["State"]["ExitCode"], 0);

    // Errors before any upgrade.
    let (status, json) = server
        .call_json(Method::GET, "/v1.41/containers/nope/json")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["message"], "No such container: nope");
    let (status, json) = server.call_json(Method::GET, "/v1.41/images/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    for query in [
        "stream=1&stdout=maybe",
        "stream=1&stdout=0&stderr=0",
        "stream=0&stdout=1",
        "stream=1&stdout=1&detachKeys=ctrl-1",
    ] {
        let response = server.attach_request(query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    // Valid, but without the upgrade headers.
    let (status, json) = server
        .call_json(
            Method::POST,
            &format!("/containers/{id}/attach?stream=1&stdout=1"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        json["message"].as_str().unwrap().contains("Upgrade"),
        "{json}"
    );
    // Any u16 is a size podman forwards (0 included); beyond it is refused.
    let (status, json) = server
        .call_json(
            Method::POST,
            &format!("/containers/{id}/resize?h=70000&w=80"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, json) = server
        .call_json(Method::POST, &format!("/containers/{id}/resize?w=80"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");

    // Attach first, then start over another connection, as `docker start -a`.
    let (headers, mut stream) = server.attach("stream=1&stdout=1&stderr=1").await;
    assert_eq!(
        headers[CONTENT_TYPE],
        "application/vnd.docker.multiplexed-stream"
    );
    let (status, _, _) = server
        .call(Method::POST, &format!("/v1.41/containers/{id}/start"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = server
        .call(Method::POST, &format!("/containers/{id}/start"))
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    let mut decoder = MuxDecoder::new();
    decoder.push(&read_to_eof(&mut stream).await);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(frame) = decoder.next_frame().unwrap() {
        match frame.stream {
            MuxStream::Stdout => stdout.extend(frame.payload),
            MuxStream::Stderr => stderr.extend(frame.payload),
            MuxStream::Stdin => panic!("a stdin frame"),
        }
    }
    decoder.finish().unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "err\n");

    let (status, json) = server
        .call_json(Method::POST, &format!("/v1.41/containers/{id}/wait"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({ "StatusCode": 4 }));

    let json = server.inspect().await;
    assert_eq!(json["State"]["Status"], "exited");
    assert_eq!(json["State"]["Running"], false);
    assert_eq!(json["State"]["ExitCode"], 4);

    let (status, json) = server
        .call_json(Method::POST, &format!("/containers/{id}/resize?h=40&w=120"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    // Nothing left to attach to: refused before any upgrade.
    let response = server.attach_request("stream=1&stdout=1").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json["message"].as_str().unwrap().contains("not running"),
        "{json}"
    );

    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_attach_with_stdin_and_resize() {
    if !need_runc() {
        return;
    }
    let server = Server::start(&["--tty", "--interactive"], &["sh"]).await;
    let id = server.id.clone();

    let json = server.inspect().await;
    assert_eq!(json["Config"]["Tty"], true);
    assert_eq!(json["Config"]["OpenStdin"], true);
    assert_eq!(json["State"]["Status"], "created");
    let (status, json) = server
        .call_json(Method::POST, &format!("/containers/{id}/resize?h=40&w=120"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not running yet: {json}");

    // A wait sent before the start answers at once and completes later.
    let mut waiter = connect(&server.socket).await;
    let waited = timeout(
        LIMIT,
        waiter.send_request(request(
            Method::POST,
            &format!("/v1.41/containers/{id}/wait?condition=next-exit"),
        )),
    )
    .await
    .expect("wait did not answer before the start")
    .unwrap();
    assert_eq!(waited.status(), StatusCode::OK);

    // Attach, start, then detach with the keys (sent URL-encoded, as Go
    // clients do): the server ends the stream, the shell keeps running.
    let (headers, mut stream) = server
        .attach("stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x%2Cq")
        .await;
    assert_eq!(headers[CONTENT_TYPE], "application/vnd.docker.raw-stream");
    let (status, _, _) = server
        .call(Method::POST, &format!("/containers/{id}/start"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    stream.write_all(b"echo one\n\x18q").await.unwrap();
    read_to_eof(&mut stream).await;
    drop(stream);
    assert_eq!(server.inspect().await["State"]["Running"], true);

    // Reattach (the container's stdin stayed open), resize, and end it.
    let (_, mut stream) = server.attach("stream=1&stdin=1&stdout=1").await;
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1.41/containers/{id}/resize?h=40&w=120"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(server.inspect().await["State"]["Running"], true);

    stream.write_all(b"stty size; exit 7\n").await.unwrap();
    stream.flush().await.unwrap();
    let output = String::from_utf8_lossy(&read_to_eof(&mut stream).await).into_owned();
    assert!(output.contains("40 120"), "{output:?}");

    let body = timeout(LIMIT, waited.into_body().collect())
        .await
        .expect("the early wait never completed")
        .unwrap()
        .to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json, serde_json::json!({ "StatusCode": 7 }));
    let (status, json) = server
        .call_json(Method::POST, &format!("/containers/{id}/wait"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["StatusCode"], 7);

    server.terminate().await;
}

/// A client that connects and sends nothing is closed after the header
/// timeout, and connections past the limit wait in the listen queue until
/// a slot frees: idle clients cannot lock others out for long, nor open
/// unbounded connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_extra_clients_wait_for_a_slot() {
    if !need_runc() {
        return;
    }
    let server = Server::start(
        &["--max-connections", "2", "--header-timeout", "1"],
        &["sh", "-c", "exit 0"],
    )
    .await;
    // Two silent clients take both slots.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(UnixStream::connect(&server.socket).await.unwrap());
    }
    // A third one is accepted by the kernel but served only once a slot
    // frees, which the header timeout guarantees.
    let (status, _, body) = server.call(Method::GET, "/_ping").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"OK");
    // The silent clients were closed by the server: their reads end.
    for mut stream in idle {
        let mut buf = Vec::new();
        let read = timeout(LIMIT, stream.read_to_end(&mut buf))
            .await
            .expect("an idle connection stayed open");
        // hyper may answer 408 before closing; either way it ends.
        read.unwrap();
    }
    server.terminate().await;
}
