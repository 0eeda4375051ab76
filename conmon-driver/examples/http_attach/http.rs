//! HTTP plumbing: the response body type, JSON and error responses, query
//! strings, and the connection loop that hands requests to the API.

use super::*;

// ---------------------------------------------------------------------------
// HTTP plumbing

/// A response body: all at once, or one chunk that comes later (after the
/// headers were sent).
pub(crate) enum Body {
    Full(Option<Bytes>),
    Later(oneshot::Receiver<Bytes>),
    Done,
}

impl Body {
    pub(crate) fn empty() -> Self {
        Self::Full(None)
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut *self {
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Later(rx) => {
                let data = ready!(Pin::new(rx).poll(cx));
                *self = Self::Done;
                Poll::Ready(data.ok().map(|d| Ok(Frame::data(d))))
            }
            Self::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None) | Self::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            Self::Full(None) | Self::Done => SizeHint::with_exact(0),
            Self::Later(_) => SizeHint::default(),
        }
    }
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    respond(
        status,
        Some("application/json"),
        Body::Full(Some(Bytes::from(text))),
    )
}

pub(crate) fn error_response(status: StatusCode, message: impl fmt::Display) -> Response<Body> {
    json_response(status, &json!({ "message": message.to_string() }))
}

pub(crate) fn empty_response(status: StatusCode) -> Response<Body> {
    respond(status, None, Body::empty())
}

/// The HTTP status for a driver error.
pub(crate) fn runtime_error_response(e: &RuntimeError) -> Response<Body> {
    let status = match e {
        RuntimeError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        RuntimeError::NoSuchContainer { .. } => StatusCode::NOT_FOUND,
        RuntimeError::ContainerNotRunning { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, e)
}

/// `%XX` decoding, and `+` as a space in query strings.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's query parameters, decoded, in order.
pub(crate) struct Query(pub(crate) Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.unwrap_or("")
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key, true), percent_decode(value, true))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` as a Go boolean, `default` when absent; empty is false.
    pub(crate) fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True" | "on") => Ok(true),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(format!(
                "invalid value {other:?} for query parameter {key}: expected a boolean"
            )),
        }
    }

    /// `key` as a terminal dimension.
    pub(crate) fn dimension(&self, key: &str) -> Result<u16, String> {
        let value = self
            .get(key)
            .ok_or_else(|| format!("query parameter {key} is required"))?;
        value.parse().map_err(|_| {
            format!("invalid value {value:?} for query parameter {key}: expected a number of cells")
        })
    }
}

/// `path` without an API version prefix (`/v1.41/...`).
pub(crate) fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let version = &rest[..end];
        if version.starts_with(|c: char| c.is_ascii_digit())
            && version.chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            return &rest[end..];
        }
    }
    path
}

/// Serves one client connection; one that sends no complete request head
/// within `header_timeout` is closed.
pub(crate) async fn serve_connection(
    server: Arc<Server>,
    stream: UnixStream,
    header_timeout: Duration,
) {
    let service = service_fn(move |request| {
        let server = Arc::clone(&server);
        async move {
            let mut response = server.handle(request).await;
            response
                .headers_mut()
                .insert("api-version", HeaderValue::from_static(API_VERSION));
            Ok::<_, Infallible>(response)
        }
    });
    if let Err(e) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        debug!(error = %e, "connection ended");
    }
}
