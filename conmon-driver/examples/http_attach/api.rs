//! The Docker Engine API subset: routes (ping, inspect, start, attach,
//! resize, wait) and the containers they act on through the driver.

use super::*;

// ---------------------------------------------------------------------------
// The API

/// The one container and what serving it needs.
pub(crate) struct Server {
    pub(crate) runtime: ConmonRuntime,
    pub(crate) container: ContainerDescription,
    pub(crate) command: Vec<String>,
    pub(crate) created_at: SystemTime,
    /// Serializes starts, so that two clients cannot both start it.
    pub(crate) start_lock: tokio::sync::Mutex<()>,
    /// Turns true when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The container endpoints.
pub(crate) enum Action {
    Inspect,
    Start,
    Attach,
    Resize,
    Wait,
}

impl Server {
    pub(crate) async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let path = strip_version(request.uri().path()).to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = request.method().clone();
        debug!(%method, uri = %request.uri(), "request");
        let (id, action) = match (&method, segments.as_slice()) {
            (&Method::GET | &Method::HEAD, ["_ping"]) => return ping(),
            (_, ["containers", id, action]) => {
                let action = match (&method, *action) {
                    (&Method::GET, "json") => Action::Inspect,
                    (&Method::POST, "start") => Action::Start,
                    (&Method::POST, "attach") => Action::Attach,
                    (&Method::POST, "resize") => Action::Resize,
                    (&Method::POST, "wait") => Action::Wait,
                    _ => return error_response(StatusCode::NOT_FOUND, "page not found"),
                };
                (percent_decode(id, false), action)
            }
            _ => return error_response(StatusCode::NOT_FOUND, "page not found"),
        };
        if id != self.container.id().as_str() {
            return error_response(StatusCode::NOT_FOUND, format!("No such container: {id}"));
        }
        let query = Query::parse(request.uri().query());
        match action {
            Action::Inspect => self.inspect().await,
            Action::Start => self.start().await,
            Action::Attach => self.attach(request, &query).await,
            Action::Resize => self.resize(&query).await,
            Action::Wait => self.wait(&query),
        }
    }

    pub(crate) async fn inspect(&self) -> Response<Body> {
        let state = match self.runtime.status(&self.container).await {
            Ok(state) => state,
            Err(e) => return runtime_error_response(&e),
        };
        let status = match state.status {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped | ContainerStatus::Exited => "exited",
        };
        let c = &self.container;
        json_response(
            StatusCode::OK,
            &json!({
                "Id": c.id().as_str(),
                "Name": format!("/{}", c.name()),
                "Created": rfc3339(Some(self.created_at)),
                "Path": self.command[0],
                "Args": self.command[1..],
                "Image": "busybox",
                "Config": {
                    "Tty": c.terminal(),
                    "OpenStdin": c.stdin(),
                    "StdinOnce": c.stdin() && !c.leave_stdin_open(),
                    "Cmd": self.command,
                    "Image": "busybox",
                },
                "State": {
                    "Status": status,
                    "Running": matches!(
                        state.status,
                        ContainerStatus::Running | ContainerStatus::Paused
                    ),
                    "Paused": state.status == ContainerStatus::Paused,
                    "Restarting": false,
                    "OOMKilled": state.oom_killed,
                    "Dead": false,
                    "Pid": state.pid.unwrap_or(0),
                    "ExitCode": state.exit_code.unwrap_or(0),
                    "Error": "",
                    "StartedAt": rfc3339(state.started_at),
                    "FinishedAt": rfc3339(state.finished_at),
                },
                "HostConfig": { "AutoRemove": false },
            }),
        )
    }

    pub(crate) async fn start(&self) -> Response<Body> {
        let _one_at_a_time = self.start_lock.lock().await;
        match self.runtime.status(&self.container).await {
            Ok(state) if state.status != ContainerStatus::Created => {
                return empty_response(StatusCode::NOT_MODIFIED)
            }
            Ok(_) => {}
            Err(e) => return runtime_error_response(&e),
        }
        match self.runtime.start(&self.container).await {
            Ok(()) => empty_response(StatusCode::NO_CONTENT),
            Err(e) => runtime_error_response(&e),
        }
    }

    pub(crate) async fn resize(&self, query: &Query) -> Response<Body> {
        let size = match (query.dimension("h"), query.dimension("w")) {
            (Ok(rows), Ok(cols)) => TerminalSize::new(rows, cols),
            (Err(e), _) | (_, Err(e)) => return error_response(StatusCode::BAD_REQUEST, e),
        };
        let size = match size {
            Ok(size) => size,
            Err(e) => return runtime_error_response(&e),
        };
        match self.runtime.status(&self.container).await {
            Ok(state) if state.status != ContainerStatus::Running => {
                return error_response(
                    StatusCode::CONFLICT,
                    format!("Container {} is not running", self.container.id()),
                )
            }
            Ok(_) => {}
            Err(e) => return runtime_error_response(&e),
        }
        match self.runtime.resize_terminal(&self.container, size).await {
            Ok(()) => empty_response(StatusCode::OK),
            Err(e) => runtime_error_response(&e),
        }
    }

    /// Sends the headers now and the status once the container exited, so
    /// a client can wait before it starts the container.
    pub(crate) fn wait(self: &Arc<Self>, query: &Query) -> Response<Body> {
        match query.get("condition") {
            None | Some("" | "not-running" | "next-exit" | "removed") => {}
            Some(other) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "invalid condition {other:?}: expected not-running, next-exit or removed"
                    ),
                )
            }
        }
        let (mut tx, rx) = oneshot::channel();
        let server = Arc::clone(self);
        tokio::spawn(async move {
            let waited = tokio::select! {
                waited = server.runtime.wait(&server.container, FOREVER) => waited,
                // The client went away: stop waiting for it.
                () = tx.closed() => return,
            };
            let body = match waited {
                Ok(code) => json!({ "StatusCode": code }),
                Err(e) => json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } }),
            };
            let _ = tx.send(Bytes::from(format!("{body}\n")));
        });
        respond(StatusCode::OK, Some("application/json"), Body::Later(rx))
    }

    pub(crate) async fn attach(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        query: &Query,
    ) -> Response<Body> {
        let settings = match AttachSettings::from_request(&request, query) {
            Ok(settings) => settings,
            Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
        };
        let tty = self.container.terminal();
        // Docker drops stdin for a container created without it.
        let stdin = settings.stdin && self.container.stdin();
        if !stdin && !settings.stdout && !settings.stderr {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!(
                    "container {} has no stdin (it was created without --interactive): attach stdout or stderr",
                    self.container.id()
                ),
            );
        }
        let on_upgrade = hyper::upgrade::on(&mut request);

        let (read_tx, read_rx) = oneshot::channel();
        let (write_tx, write_rx) = oneshot::channel();
        let writer = ClientWriter(Arc::new(Mutex::new(Pending::Waiting(write_rx))));
        let streams = AttachStreams {
            stdin: stdin
                .then(|| -> InputStream { Box::pin(ClientReader(Pending::Waiting(read_rx))) }),
            stdout: settings.stdout.then(|| writer.sink()),
            stderr: settings.stderr.then(|| writer.sink()),
        };
        let ready = AttachReady::new();
        let cancel = AttachCancel::new();
        let mut options = AttachOptions::default()
            .with_framing(if tty {
                Framing::Raw
            } else {
                Framing::Multiplexed
            })
            .with_cancel(cancel.clone())
            .with_ready(ready.clone());
        options.detach_keys = settings.detach_keys;
        let mut session = {
            let server = Arc::clone(&self);
            tokio::spawn(async move {
                server
                    .runtime
                    .attach(&server.container, streams, options)
                    .await
            })
        };
        // Answer only once connected to conmon: a client starts the
        // container right after the answer, and must see all its output.
        tokio::select! {
            biased;
            () = ready.wait() => {}
            ended = &mut session => {
                // It ended without connecting: it failed.
                return match ended {
                    Ok(Err(e)) => runtime_error_response(&e),
                    Ok(Ok(outcome)) => error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("attach ended ({outcome:?}) before it connected"),
                    ),
                    Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e),
                };
            }
        }

        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = read_tx.send(reader);
                    let _ = write_tx.send(writer);
                }
                Err(e) => {
                    debug!(error = %e, "attach upgrade failed");
                    cancel.cancel();
                }
            }
            let ended = tokio::select! {
                ended = &mut session => ended,
                () = async { let _ = shutdown.wait_for(|on| *on).await; } => {
                    cancel.cancel();
                    session.await
                }
            };
            let error = match ended {
                Ok(Ok(outcome)) => {
                    debug!(?outcome, "attach session ended");
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            finish_session(writer, error, tty).await;
        });

        let mut response = empty_response(StatusCode::SWITCHING_PROTOCOLS);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(if tty {
                "application/vnd.docker.raw-stream"
            } else {
                "application/vnd.docker.multiplexed-stream"
            }),
        );
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, settings.protocol);
        response
    }
}

/// Writes a session's error in-band, as podman does (`Error: ...`, in a
/// stderr frame without a terminal), and shuts the connection's write side
/// down.
pub(crate) async fn finish_session(mut writer: ClientWriter, error: Option<String>, tty: bool) {
    if let Some(message) = error {
        debug!(%message, "attach session failed");
        let text = format!("Error: {message}\n");
        let mut bytes = Vec::with_capacity(text.len() + 8);
        if !tty {
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&encode_header(MuxStream::Stderr, len));
        }
        bytes.extend_from_slice(text.as_bytes());
        let _ = writer.write_all(&bytes).await;
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

/// What an attach request asks for, validated before any upgrade.
pub(crate) struct AttachSettings {
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) detach_keys: Option<String>,
    /// The `Upgrade` protocol, echoed in the 101.
    pub(crate) protocol: HeaderValue,
}

impl AttachSettings {
    pub(crate) fn from_request(request: &Request<Incoming>, query: &Query) -> Result<Self, String> {
        let stream = query.bool("stream", true)?;
        let logs = query.bool("logs", false)?;
        if !stream {
            return Err(if logs {
                "stream=0 is not supported: this server does not replay logs".into()
            } else {
                "at least one of logs or stream must be set".into()
            });
        }
        // None given: all three (podman); otherwise a missing one is off,
        // since Docker clients send only the streams they want.
        let any = ["stdin", "stdout", "stderr"]
            .iter()
            .any(|key| query.get(key).is_some());
        let (stdin, stdout, stderr) = (
            query.bool("stdin", !any)?,
            query.bool("stdout", !any)?,
            query.bool("stderr", !any)?,
        );
        if !stdin && !stdout && !stderr {
            return Err("at least one of stdin, stdout, stderr must be true".into());
        }
        let detach_keys = query.get("detachKeys").map(str::to_string);
        if let Some(spec) = &detach_keys {
            DetachKeys::parse(spec).map_err(|e| e.to_string())?;
        }
        let headers = request.headers();
        let upgrading = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        let protocol = match headers.get(UPGRADE) {
            Some(protocol) if upgrading && !protocol.is_empty() => protocol.clone(),
            _ => {
                return Err(
                    "attach needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)"
                        .into(),
                )
            }
        };
        Ok(Self {
            stdin,
            stdout,
            stderr,
            detach_keys,
            protocol,
        })
    }
}
