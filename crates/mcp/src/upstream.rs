//! Connections to upstream MCP servers.
//!
//! * [`HttpUpstream`]: Streamable HTTP. Requests are sent as built by the
//!   gateway (never with the client's credential); answers come back as a
//!   streaming body, JSON or SSE, exactly as the server sent them.
//! * [`StdioUpstream`]: a supervised child process shared by every client:
//!   one session, requests multiplexed with gateway-assigned ids that are
//!   mapped back, restarted (and re-initialised) when it exits.

use crate::message::{self, Kind, replace_field};
use crate::stdio::{Line, ServerCommand, spawn};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{HeaderMap, Method, Request, Response, Uri};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The modern protocol revision this gateway speaks.
pub const MODERN: &str = "2026-07-28";
/// The legacy revision the gateway asks for when it opens its own sessions.
pub const LEGACY: &str = "2025-11-25";

/// Which protocol era an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Answers `server/discover` (2026-07-28; usually also legacy).
    Modern,
    /// Only the `initialize` handshake.
    Legacy,
}

/// Why an upstream could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream `{0}` is unreachable: {1}")]
    Unreachable(String, String),
    #[error("upstream `{0}` did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("upstream `{0}`: {1}")]
    Protocol(String, String),
}

pub use agentmesh_gateway::http::{HttpClient, http_client};

/// A Streamable HTTP upstream.
#[derive(Debug)]
pub struct HttpUpstream {
    pub name: String,
    pub uri: Uri,
    client: HttpClient,
    timeout: Duration,
    /// The gateway's own legacy session with this upstream, for modern
    /// clients (which have no session) when the upstream is legacy-only.
    shared_session: tokio::sync::Mutex<Option<String>>,
}

/// Headers a client may send that are forwarded to an HTTP upstream. The
/// credential (`Authorization`), cookies and hop-by-hop headers never are.
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "traceparent",
    "tracestate",
    "baggage",
];

/// Copies the forwardable headers (and every `Mcp-Param-*`).
pub fn forwardable(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in from {
        let name = k.as_str();
        if FORWARDED_REQUEST_HEADERS.contains(&name) || name.starts_with("mcp-param-") {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

impl HttpUpstream {
    pub fn new(name: &str, uri: Uri, client: HttpClient, timeout: Duration) -> Self {
        Self {
            name: name.into(),
            uri,
            client,
            timeout,
            shared_session: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends one request; the body of the answer streams.
    pub async fn send(
        &self,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<hyper::body::Incoming>, UpstreamError> {
        let mut req = Request::builder().method(method).uri(self.uri.clone());
        if let Some(h) = req.headers_mut() {
            *h = headers;
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Protocol(self.name.clone(), e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(self.name.clone(), self.timeout)),
            Ok(Err(e)) => Err(UpstreamError::Unreachable(
                self.name.clone(),
                format!("{}: {}", self.uri, error_chain(&e)),
            )),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// The longest a request to this upstream may take, answer included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Detects the era, waiting up to `patience` for an upstream that is
    /// not listening yet (started at the same time as the gateway): the
    /// connection is retried with a growing pause, and the wait is logged.
    pub async fn connect(&self, patience: Duration) -> Result<Era, UpstreamError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = Duration::from_millis(100);
        let mut logged = false;
        loop {
            match self.detect_era().await {
                Err(UpstreamError::Unreachable(name, why))
                    if tokio::time::Instant::now() + pause < deadline =>
                {
                    if !logged {
                        eprintln!(
                            "agentmesh: waiting for upstream `{name}` ({why}); retrying for up to {} s",
                            patience.as_secs()
                        );
                        logged = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(UpstreamError::Unreachable(name, why)) if logged => {
                    return Err(UpstreamError::Unreachable(
                        name,
                        format!("{why} (gave up after {} s)", patience.as_secs()),
                    ));
                }
                other => return other,
            }
        }
    }

    /// POSTs a message and reads the whole answer: the JSON-RPC response
    /// to `id` (from JSON or from an SSE stream). For the gateway's own
    /// requests (discovery, its shared session, list fan-out).
    pub async fn call(
        &self,
        mut headers: HeaderMap,
        body: String,
        id: &str,
    ) -> Result<(hyper::StatusCode, HeaderMap, Option<Vec<u8>>), UpstreamError> {
        use http_body_util::BodyExt;
        headers.insert(
            hyper::header::ACCEPT,
            hyper::header::HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        let resp = self.send(Method::POST, headers, Bytes::from(body)).await?;
        let status = resp.status();
        let head = resp.headers().clone();
        let is_sse = head
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut body = resp.into_body();
        if !is_sse {
            let bytes = tokio::time::timeout(self.timeout, body.collect())
                .await
                .map_err(|_| UpstreamError::Timeout(self.name.clone(), self.timeout))?
                .map_err(|e| UpstreamError::Unreachable(self.name.clone(), error_chain(&e)))?
                .to_bytes();
            if bytes.is_empty() {
                return Ok((status, head, None));
            }
            // Only the answer to this request, under exactly its id.
            return match message::parse(&bytes) {
                Ok(m)
                    if m.kind == Kind::Response
                        && m.id.as_deref().map(RawValue::get) == Some(id) =>
                {
                    Ok((status, head, Some(bytes.to_vec())))
                }
                // An HTTP error without a JSON-RPC answer (e.g. 404).
                _ if !status.is_success() => Ok((status, head, None)),
                Ok(m) => Err(UpstreamError::Protocol(
                    self.name.clone(),
                    format!(
                        "answered with id {} to request {id}",
                        m.id.as_deref().map(RawValue::get).unwrap_or("(none)")
                    ),
                )),
                Err(e) => Err(UpstreamError::Protocol(self.name.clone(), e.to_string())),
            };
        }
        let mut parser = crate::sse::Parser::new(crate::message::MAX_MESSAGE_BYTES);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| UpstreamError::Timeout(self.name.clone(), self.timeout))?;
            let Some(frame) = frame else {
                return Ok((status, head, None));
            };
            let frame = frame
                .map_err(|e| UpstreamError::Unreachable(self.name.clone(), error_chain(&e)))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let events = parser
                .feed(data)
                .map_err(|e| UpstreamError::Protocol(self.name.clone(), e.to_string()))?;
            for ev in events {
                let Some(d) = ev.data else { continue };
                if let Ok(m) = message::parse(d.as_bytes())
                    && m.kind == Kind::Response
                    && m.id.as_deref().map(RawValue::get) == Some(id)
                {
                    return Ok((status, head, Some(d.into_bytes())));
                }
            }
        }
    }

    /// Probes the era: a `server/discover` that gets a discover result
    /// means modern; anything else legacy.
    pub async fn detect_era(&self) -> Result<Era, UpstreamError> {
        let body = discover_request("\"agentmesh-probe\"");
        let mut h = HeaderMap::new();
        h.insert("mcp-protocol-version", hdr(MODERN));
        h.insert("mcp-method", hdr("server/discover"));
        let (_, _, body) = self.call(h, body, "\"agentmesh-probe\"").await?;
        let modern = body
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v.pointer("/result/supportedVersions").is_some());
        Ok(if modern { Era::Modern } else { Era::Legacy })
    }

    /// The gateway's own session with a legacy upstream, opened on first
    /// use (and again when the upstream forgot it).
    pub async fn shared_session(&self, reset: bool) -> Result<Option<String>, UpstreamError> {
        let mut s = self.shared_session.lock().await;
        if reset {
            *s = None;
        }
        if let Some(id) = s.as_ref() {
            return Ok(Some(id.clone()));
        }
        let init = initialize_request("\"agentmesh-init\"", &Value::Object(Default::default()));
        let (status, head, _) = self
            .call(HeaderMap::new(), init, "\"agentmesh-init\"")
            .await?;
        if !status.is_success() {
            return Err(UpstreamError::Protocol(
                self.name.clone(),
                format!("initialize answered {status}"),
            ));
        }
        let session = head
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut h = HeaderMap::new();
        if let Some(id) = &session {
            h.insert("mcp-session-id", hdr(id));
        }
        h.insert("mcp-protocol-version", hdr(LEGACY));
        h.insert(hyper::header::CONTENT_TYPE, hdr("application/json"));
        h.insert(
            hyper::header::ACCEPT,
            hdr("application/json, text/event-stream"),
        );
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let _ = self
            .send(Method::POST, h, Bytes::from_static(note.as_bytes()))
            .await?;
        *s = session.clone();
        Ok(session)
    }
}

/// An error with its causes (`client error (Connect): tcp connect error:
/// Connection refused`): the top level alone rarely says what went wrong.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Ids the gateway gives the requests it sends to HTTP upstreams (stdio
/// upstreams number their own). Answers are matched to these exactly, so
/// an upstream cannot answer a client's request under a look-alike id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh gateway request id (a JSON number, as raw text).
pub fn issue_id() -> String {
    NEXT_ID.fetch_add(1, Ordering::Relaxed).to_string()
}

pub fn hdr(v: &str) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_str(v)
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("invalid"))
}

/// A `server/discover` request with the modern `_meta`.
pub fn discover_request(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"server/discover","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"agentmesh-gateway","version":"{}"}}}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// An `initialize` request for the gateway's own sessions.
pub fn initialize_request(id: &str, capabilities: &Value) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{LEGACY}","capabilities":{capabilities},"clientInfo":{{"name":"agentmesh-gateway","version":"{}"}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// A request waiting for the server's answer (or for why there is none).
type Waiter = oneshot::Sender<Result<Vec<u8>, String>>;

/// One run of a stdio server: its input, and the requests it has not
/// answered yet.
#[derive(Debug)]
struct Link {
    tx: mpsc::Sender<Vec<u8>>,
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    map: HashMap<u64, Waiter>,
    /// Set once the server's output closed: why it is gone. Checked under
    /// the same lock as `map`, so no request waits on a server that has
    /// already exited.
    gone: Option<String>,
}

/// A stdio server shared by every client of the gateway.
#[derive(Debug)]
pub struct StdioUpstream {
    pub name: String,
    /// The command line, for messages.
    command: String,
    link: Mutex<Option<Arc<Link>>>,
    next: AtomicU64,
    timeout: Duration,
    /// How long the server gets to answer its handshake.
    start_timeout: Duration,
    /// The server's answer to the gateway's `initialize`, for legacy
    /// clients (the raw `result`).
    pub init_result: Mutex<Option<Box<RawValue>>>,
    pub era: Mutex<Option<Era>>,
}

impl StdioUpstream {
    /// Starts the server and its supervisor; waits until it is ready
    /// (era detected, legacy servers initialised), at most
    /// `start_timeout`: a server that exits or never answers is an error
    /// naming its command, not a gateway that hangs.
    pub async fn start(
        name: &str,
        cmd: ServerCommand,
        timeout: Duration,
        start_timeout: Duration,
    ) -> Result<Arc<Self>, UpstreamError> {
        let up = Arc::new(Self {
            name: name.into(),
            command: cmd.display(),
            link: Mutex::new(None),
            next: AtomicU64::new(1),
            timeout,
            start_timeout,
            init_result: Mutex::new(None),
            era: Mutex::new(None),
        });
        up.launch(&cmd)?;
        up.handshake().await?;
        let weak = Arc::downgrade(&up);
        tokio::spawn(async move {
            // Supervisor: relaunch when the child's output closes.
            let mut backoff = Duration::from_millis(250);
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Some(up) = weak.upgrade() else { return };
                let gone = up.current().map(|l| l.gone());
                let why = match gone {
                    Some(None) => {
                        backoff = Duration::from_millis(250);
                        continue;
                    }
                    Some(Some(why)) => why,
                    None => "is not running".to_owned(),
                };
                eprintln!(
                    "agentmesh: upstream `{}` (`{}`) {why}; restarting in {backoff:?}",
                    up.name, up.command
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                let restarted = match up.launch(&cmd) {
                    Ok(()) => up.handshake().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = restarted {
                    eprintln!("agentmesh: restarting failed: {e}");
                }
            }
        });
        Ok(up)
    }

    fn current(&self) -> Option<Arc<Link>> {
        self.link.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn launch(&self, cmd: &ServerCommand) -> Result<(), UpstreamError> {
        let (mut server, mut out) = spawn(cmd, &self.name).map_err(|e| {
            UpstreamError::Unreachable(
                self.name.clone(),
                format!("cannot start `{}`: {e}", self.command),
            )
        })?;
        let Some(tx) = server.sender() else {
            return Err(UpstreamError::Unreachable(
                self.name.clone(),
                format!("`{}` has no stdin", self.command),
            ));
        };
        let link = Arc::new(Link {
            tx: tx.clone(),
            waiting: Mutex::new(Waiting::default()),
        });
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link.clone());
        let name = self.name.clone();
        tokio::spawn(async move {
            while let Some(line) = out.recv().await {
                let Line::Text(bytes) = line else { continue };
                let m = match message::parse(&bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("[{name}] dropped output that is not a JSON-RPC message: {e}");
                        continue;
                    }
                };
                match m.kind {
                    Kind::Response => {
                        let raw = m.id.as_deref().map(RawValue::get).unwrap_or("null");
                        link.answer(&name, raw, bytes);
                    }
                    Kind::Request => {
                        // Server-to-client requests (sampling, roots, …) have
                        // no single client to go to on a shared upstream.
                        let id = m.id.as_deref().map(RawValue::get).unwrap_or("null");
                        let e = message::error_response(
                            Some(id),
                            message::METHOD_NOT_FOUND,
                            "this server is shared behind an AgentMesh gateway; server-to-client requests are not relayed",
                            None,
                        );
                        if tx.send(e.into_bytes()).await.is_err() {
                            break;
                        }
                    }
                    Kind::Notification => {}
                }
            }
            // Output closed: say why to whoever waits, and mark the child
            // gone so the supervisor restarts it.
            drop(tx);
            let why = match tokio::time::timeout(Duration::from_secs(2), server.wait()).await {
                Ok(Ok(status)) => format!("exited ({status})"),
                Ok(Err(e)) => format!("exited ({e})"),
                Err(_) => "closed its output".to_owned(),
            };
            link.close(why);
        });
        Ok(())
    }

    async fn handshake(&self) -> Result<(), UpstreamError> {
        let deadline = tokio::time::Instant::now() + self.start_timeout;
        let failed = |what: &str, e: UpstreamError| {
            let why = match e {
                UpstreamError::Timeout(..) => format!(
                    "did not answer `{what}` within {} s",
                    self.start_timeout.as_secs()
                ),
                UpstreamError::Unreachable(_, m) | UpstreamError::Protocol(_, m) => {
                    m.strip_prefix("the server ").unwrap_or(&m).to_owned()
                }
            };
            UpstreamError::Protocol(
                self.name.clone(),
                format!("`{}` {why} (start-up)", self.command),
            )
        };
        // Some legacy servers never answer a method they do not know: the
        // probe gets part of the time, `initialize` the rest. A slow server
        // (start-up under load) may answer the probe late: its answer is
        // still awaited below, because a dual-era server that saw the probe
        // serves the modern era and refuses `initialize`.
        let probe =
            tokio::time::Instant::now() + (self.start_timeout / 2).min(Duration::from_secs(10));
        let (probe_id, probe_link, mut probe_rx) = self
            .send_call(&discover_request("0"))
            .await
            .map_err(|e| failed("server/discover", e))?;
        let is_modern = |b: &[u8]| {
            serde_json::from_slice::<Value>(b)
                .ok()
                .is_some_and(|v| v.pointer("/result/supportedVersions").is_some())
        };
        let (mut modern, late) = match self
            .wait_call(&probe_link, probe_id, &mut probe_rx, probe, false)
            .await
        {
            Ok(b) => (is_modern(&b), false),
            // Gone: asking again would not help.
            Err(e @ UpstreamError::Unreachable(..)) => {
                return Err(failed("server/discover", e));
            }
            Err(UpstreamError::Timeout(..)) => (false, true),
            Err(_) => (false, false),
        };
        // Legacy clients of the gateway need an initialised session either
        // way; dual-era servers accept both.
        let init = self
            .raw_call(
                &initialize_request("0", &Value::Object(Default::default())),
                deadline,
            )
            .await;
        let result = match &init {
            Ok(bytes) => message::raw_object(&String::from_utf8_lossy(bytes))
                .and_then(|o| o.get("result").cloned()),
            Err(_) => None,
        };
        if late {
            // The probe's answer, if it came after all.
            if let Ok(b) = self
                .wait_call(&probe_link, probe_id, &mut probe_rx, deadline, true)
                .await
            {
                modern = is_modern(&b);
            }
        } else {
            probe_link.forget(probe_id);
        }
        if let Some(result) = result {
            *self.init_result.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            self.notify(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec())
                .await;
        } else if !modern {
            return Err(match init {
                Err(e) => failed("initialize", e),
                Ok(_) => UpstreamError::Protocol(
                    self.name.clone(),
                    format!(
                        "`{}` answered neither server/discover nor initialize (start-up)",
                        self.command
                    ),
                ),
            });
        }
        *self.era.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(if modern { Era::Modern } else { Era::Legacy });
        Ok(())
    }

    async fn notify(&self, msg: Vec<u8>) {
        if let Some(link) = self.current()
            && link.tx.send(msg).await.is_err()
        {
            eprintln!(
                "agentmesh: upstream `{}`: a notification was not delivered (the server is gone)",
                self.name
            );
        }
    }

    /// Sends a message under a gateway id; the answer arrives on the
    /// receiver (see [`Upstream::wait_call`]).
    async fn send_call(
        &self,
        text: &str,
    ) -> Result<(u64, Arc<Link>, oneshot::Receiver<Result<Vec<u8>, String>>), UpstreamError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let raw = RawValue::from_string(id.to_string()).unwrap_or_default();
        let msg = replace_field(text, "id", &raw)
            .ok_or_else(|| UpstreamError::Protocol(self.name.clone(), "not an object".into()))?;
        let unreachable = |why: String| UpstreamError::Unreachable(self.name.clone(), why);
        let Some(link) = self.current() else {
            return Err(unreachable("the server is not running".into()));
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut w = link.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(why) = &w.gone {
                return Err(unreachable(format!("the server {why}")));
            }
            w.map.insert(id, tx);
        }
        if link.tx.send(msg.into_bytes()).await.is_err() {
            link.forget(id);
            return Err(unreachable("the server is not running".into()));
        }
        Ok((id, link, rx))
    }

    /// Waits for the answer to [`Upstream::send_call`] until `deadline`; on
    /// a timeout the request is forgotten only when `forget` is set (a
    /// caller may wait for the same answer again).
    async fn wait_call(
        &self,
        link: &Link,
        id: u64,
        rx: &mut oneshot::Receiver<Result<Vec<u8>, String>>,
        deadline: tokio::time::Instant,
        forget: bool,
    ) -> Result<Vec<u8>, UpstreamError> {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(bytes))) => Ok(bytes),
            Ok(Ok(Err(why))) => Err(UpstreamError::Protocol(
                self.name.clone(),
                format!("the server {why}"),
            )),
            Ok(Err(_)) => Err(UpstreamError::Unreachable(
                self.name.clone(),
                "the server exited before answering".into(),
            )),
            Err(_) => {
                if forget {
                    link.forget(id);
                }
                Err(UpstreamError::Timeout(
                    self.name.clone(),
                    deadline.saturating_duration_since(tokio::time::Instant::now()),
                ))
            }
        }
    }

    /// Sends a message whose id is replaced by a gateway id; returns the
    /// server's response with that id (not yet mapped back).
    async fn raw_call(
        &self,
        text: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let raw = RawValue::from_string(id.to_string()).unwrap_or_default();
        let msg = replace_field(text, "id", &raw)
            .ok_or_else(|| UpstreamError::Protocol(self.name.clone(), "not an object".into()))?;
        let unreachable = |why: String| UpstreamError::Unreachable(self.name.clone(), why);
        let Some(link) = self.current() else {
            return Err(unreachable("the server is not running".into()));
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut w = link.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(why) = &w.gone {
                return Err(unreachable(format!("the server {why}")));
            }
            w.map.insert(id, tx);
        }
        if link.tx.send(msg.into_bytes()).await.is_err() {
            link.forget(id);
            return Err(unreachable("the server is not running".into()));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(bytes))) => Ok(bytes),
            Ok(Ok(Err(why))) => Err(UpstreamError::Protocol(
                self.name.clone(),
                format!("the server {why}"),
            )),
            Ok(Err(_)) => Err(unreachable("the server exited before answering".into())),
            Err(_) => {
                link.forget(id);
                Err(UpstreamError::Timeout(
                    self.name.clone(),
                    deadline.saturating_duration_since(tokio::time::Instant::now()),
                ))
            }
        }
    }

    /// Forwards a client request (`text`, whose id is `client_id`); returns
    /// the response with the client's id restored.
    pub async fn call(&self, text: &str, client_id: &str) -> Result<Vec<u8>, UpstreamError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let answer = self.raw_call(text, deadline).await.map_err(|e| match e {
            UpstreamError::Timeout(n, _) => UpstreamError::Timeout(n, self.timeout),
            other => other,
        })?;
        let raw = RawValue::from_string(client_id.to_owned()).unwrap_or_default();
        replace_field(&String::from_utf8_lossy(&answer), "id", &raw)
            .map(String::into_bytes)
            .ok_or_else(|| UpstreamError::Protocol(self.name.clone(), "bad response".into()))
    }

    /// Forwards a client notification (cancellations of shared requests
    /// cannot be mapped and are dropped).
    pub async fn forward_notification(&self, text: &[u8]) {
        if let Ok(m) = message::parse(text)
            && m.method.as_deref() != Some("notifications/cancelled")
            && m.method.as_deref() != Some("notifications/initialized")
        {
            self.notify(text.to_vec()).await;
        }
    }
}

impl Link {
    fn gone(&self) -> Option<String> {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .gone
            .clone()
    }

    fn forget(&self, id: u64) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .remove(&id);
    }

    /// Delivers an answer to the request whose gateway id is exactly `raw`
    /// (a number, as issued). An answer under any other id is dropped; one
    /// under a look-alike of a waiting id (`"7"` for `7`) fails that
    /// request rather than deliver what another parser might read as its
    /// answer.
    fn answer(&self, name: &str, raw: &str, bytes: Vec<u8>) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(id) = raw.parse::<u64>()
            && id.to_string() == raw
            && let Some(waiter) = w.map.remove(&id)
        {
            // The requester may have given up (timeout); nothing to do.
            let _ = waiter.send(Ok(bytes));
            return;
        }
        let look_alike = RawValue::from_string(raw.to_owned())
            .ok()
            .and_then(|r| message::id_key(&r))
            .and_then(|k| k.parse::<u64>().ok());
        if let Some(id) = look_alike
            && let Some(waiter) = w.map.remove(&id)
        {
            eprintln!(
                "[{name}] answered request {id} under the id {raw}; refused (ids must match exactly)"
            );
            let _ = waiter.send(Err(format!(
                "answered under the id {raw}, not {id} (refused)"
            )));
            return;
        }
        eprintln!("[{name}] dropped an answer to a request the gateway never sent (id {raw})");
    }

    fn close(&self, why: String) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for (_, waiter) in w.map.drain() {
            // The requester may have given up already.
            let _ = waiter.send(Err(why.clone()));
        }
        w.gone = Some(why);
    }
}
