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
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
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

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .build(connector)
}

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
            Ok(Err(e)) => Err(UpstreamError::Unreachable(self.name.clone(), e.to_string())),
            Ok(Ok(r)) => Ok(r),
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
                .map_err(|e| UpstreamError::Unreachable(self.name.clone(), e.to_string()))?
                .to_bytes();
            return Ok((status, head, (!bytes.is_empty()).then(|| bytes.to_vec())));
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
            let frame =
                frame.map_err(|e| UpstreamError::Unreachable(self.name.clone(), e.to_string()))?;
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

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// A stdio server shared by every client of the gateway.
#[derive(Debug)]
pub struct StdioUpstream {
    pub name: String,
    to_child: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    waiters: Waiters,
    next: AtomicU64,
    timeout: Duration,
    /// The server's answer to the gateway's `initialize`, for legacy
    /// clients (the raw `result`).
    pub init_result: Mutex<Option<Box<RawValue>>>,
    pub era: Mutex<Option<Era>>,
}

impl StdioUpstream {
    /// Starts the server and its supervisor; waits until it is ready
    /// (era detected, legacy servers initialised).
    pub async fn start(
        name: &str,
        cmd: ServerCommand,
        timeout: Duration,
    ) -> Result<Arc<Self>, UpstreamError> {
        let up = Arc::new(Self {
            name: name.into(),
            to_child: Mutex::new(None),
            waiters: Arc::new(Mutex::new(HashMap::new())),
            next: AtomicU64::new(1),
            timeout,
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
                let alive = up
                    .to_child
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .is_some_and(|t| !t.is_closed());
                if alive {
                    backoff = Duration::from_millis(250);
                    continue;
                }
                eprintln!(
                    "agentmesh: upstream `{}` exited; restarting in {backoff:?}",
                    up.name
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                if up.launch(&cmd).is_ok() {
                    let _ = up.handshake().await;
                }
            }
        });
        Ok(up)
    }

    fn launch(&self, cmd: &ServerCommand) -> Result<(), UpstreamError> {
        let (mut server, mut out) = spawn(cmd, &self.name)
            .map_err(|e| UpstreamError::Unreachable(self.name.clone(), e.to_string()))?;
        let Some(tx) = server.sender() else {
            return Err(UpstreamError::Unreachable(
                self.name.clone(),
                "no stdin".into(),
            ));
        };
        *self.to_child.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
        let waiters = self.waiters.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            while let Some(line) = out.recv().await {
                let Line::Text(bytes) = line else { continue };
                let Ok(m) = message::parse(&bytes) else {
                    eprintln!("[{name}] dropped non-JSON-RPC output");
                    continue;
                };
                match m.kind {
                    Kind::Response => {
                        let id =
                            m.id.as_deref()
                                .and_then(|i| serde_json::from_str::<u64>(i.get()).ok());
                        if let Some(id) = id {
                            let w = waiters
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&id);
                            if let Some(w) = w {
                                let _ = w.send(bytes);
                            }
                        }
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
                        let _ = tx.send(e.into_bytes()).await;
                    }
                    Kind::Notification => {}
                }
            }
            // Output closed: fail whoever is still waiting, mark the child
            // gone so the supervisor restarts it.
            waiters.lock().unwrap_or_else(|p| p.into_inner()).clear();
            drop(tx);
            let _ = server.wait().await;
        });
        Ok(())
    }

    async fn handshake(&self) -> Result<(), UpstreamError> {
        let discover = self.raw_call(&discover_request("0")).await;
        let modern = discover
            .as_ref()
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .is_some_and(|v| v.pointer("/result/supportedVersions").is_some());
        // Legacy clients of the gateway need an initialised session either
        // way; dual-era servers accept both.
        let init = self
            .raw_call(&initialize_request("0", &Value::Object(Default::default())))
            .await;
        if let Ok(bytes) = &init
            && let Some(obj) = message::raw_object(&String::from_utf8_lossy(bytes))
            && let Some(result) = obj.get("result")
        {
            *self.init_result.lock().unwrap_or_else(|p| p.into_inner()) = Some(result.clone());
            self.notify(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec())
                .await;
        } else if !modern {
            return Err(UpstreamError::Protocol(
                self.name.clone(),
                "answered neither server/discover nor initialize".into(),
            ));
        }
        *self.era.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(if modern { Era::Modern } else { Era::Legacy });
        Ok(())
    }

    async fn notify(&self, msg: Vec<u8>) {
        let tx = self
            .to_child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(tx) = tx {
            let _ = tx.send(msg).await;
        }
    }

    /// Sends a message whose id is replaced by a gateway id; returns the
    /// server's response with that id (not yet mapped back).
    async fn raw_call(&self, text: &str) -> Result<Vec<u8>, UpstreamError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let raw = RawValue::from_string(id.to_string()).unwrap_or_default();
        let msg = replace_field(text, "id", &raw)
            .ok_or_else(|| UpstreamError::Protocol(self.name.clone(), "not an object".into()))?;
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let sender = self
            .to_child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sent = match sender {
            Some(s) => s.send(msg.into_bytes()).await.is_ok(),
            None => false,
        };
        if !sent {
            self.waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(UpstreamError::Unreachable(
                self.name.clone(),
                "the server is not running".into(),
            ));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) => Err(UpstreamError::Unreachable(
                self.name.clone(),
                "the server exited before answering".into(),
            )),
            Err(_) => {
                self.waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                Err(UpstreamError::Timeout(self.name.clone(), self.timeout))
            }
        }
    }

    /// Forwards a client request (`text`, whose id is `client_id`); returns
    /// the response with the client's id restored.
    pub async fn call(&self, text: &str, client_id: &str) -> Result<Vec<u8>, UpstreamError> {
        let answer = self.raw_call(text).await?;
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
