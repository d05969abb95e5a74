//! The Streamable HTTP gateway: one MCP endpoint in front of several
//! upstream servers (HTTP URLs and supervised stdio children), both
//! protocol eras.
//!
//! * Every request is authenticated (a mesh bearer credential, or a
//!   delegation token with a holder proof over the body); the client's
//!   credential is never forwarded.
//! * With one upstream the gateway is transparent: the client's era,
//!   headers, ids and bodies go through as sent, SSE streams are relayed
//!   event by event, legacy sessions map one to one. With several, tool
//!   and prompt names are namespaced `<upstream>__<name>`, lists are merged
//!   and the gateway answers `initialize` / `server/discover` itself.
//! * Calls are judged by the engine before they leave; lists are filtered
//!   per caller on the way back; every decision is an audit leaf.

use crate::config::GatewayConfig;
use crate::govern::{Governor, Judgement, ListTools, Route, Ticket, denial, refusal_data};
use crate::message::{
    self, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_REQUEST, Kind, METHOD_NOT_FOUND,
    UNAUTHENTICATED, UPSTREAM_UNAVAILABLE, error_response, raw_object, replace_field,
    result_response, to_raw,
};
use crate::sse;
use crate::upstream::{
    Era, HttpUpstream, LEGACY, MODERN, StdioUpstream, UpstreamError, forwardable, hdr, http_client,
    issue_id,
};
use agentmesh_engine::{AuthError, Presented, Principal};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Header carrying the holder proof that goes with a delegation token.
pub use agentmesh_gateway::jsonrpc::PROOF_HEADER;
const SESSION_HEADER: &str = "mcp-session-id";

enum Conn {
    Http(Arc<HttpUpstream>),
    Stdio(Arc<StdioUpstream>),
}

struct Upstream {
    route: Route,
    conn: Conn,
    era: Era,
}

/// A legacy client session (minted by the gateway).
struct Session {
    agent: Arc<str>,
    /// Upstream index → that upstream's session id (HTTP upstreams).
    upstream: HashMap<usize, Option<String>>,
    last_used: AtomicU64,
    /// Requests in flight to HTTP upstreams: the client's id → the
    /// gateway id they were sent under (for `notifications/cancelled`).
    inflight: Mutex<HashMap<String, String>>,
}

/// One entry of [`Session::inflight`], removed when the answer has been
/// relayed (or the relay gave up).
struct InFlight {
    session: Arc<Session>,
    client_id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.session
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.client_id);
    }
}

struct Inner {
    cfg: GatewayConfig,
    governor: Governor,
    upstreams: Vec<Upstream>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Resource URI → upstream index, learnt from `resources/list`.
    resource_owner: Mutex<HashMap<String, usize>>,
    loopback: bool,
}

/// A running gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.inner.cfg.listen)
            .finish()
    }
}

fn now_secs() -> u64 {
    agentmesh_store::unix_now()
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn rpc_error(status: StatusCode, id: Option<&str>, code: i64, message: &str) -> Response {
    json_response(status, error_response(id, code, message, None))
}

/// A fresh session id; `None` when the OS random source fails (a
/// guessable session id would let anyone take the session over).
fn random_session_id() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom_fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn getrandom_fill(b: &mut [u8]) -> Result<(), ()> {
    // ring's system RNG: already a dependency for hashing.
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new().fill(b).map_err(|_| ())
}

fn id_of(m: &message::Message) -> String {
    m.id.as_deref()
        .map(RawValue::get)
        .unwrap_or("null")
        .to_owned()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Gateway {
    /// Connects to (or starts) every upstream and detects its era.
    pub async fn new(cfg: GatewayConfig, governor: Governor) -> Result<Self, UpstreamError> {
        let client = http_client();
        let timeout = Duration::from_secs(cfg.upstream_timeout_secs);
        let start = Duration::from_secs(cfg.upstream_start_secs);
        let mut upstreams = Vec::new();
        for (i, u) in cfg.upstreams.iter().enumerate() {
            let route = Route {
                upstream: u.name.as_str().into(),
                namespaced: cfg.namespaced(i),
                settings: Arc::new(u.settings()),
            };
            let (conn, era) = match (&u.url, &u.stdio) {
                (Some(url), _) => {
                    let uri = url
                        .parse()
                        .map_err(|e| UpstreamError::Protocol(u.name.clone(), format!("{e}")))?;
                    let h = Arc::new(HttpUpstream::new(&u.name, uri, client.clone(), timeout));
                    let era = h.connect(start).await?;
                    (Conn::Http(h), era)
                }
                (None, Some(cmd)) => {
                    let s = StdioUpstream::start(&u.name, cmd.clone(), timeout, start).await?;
                    let era = s
                        .era
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .unwrap_or(Era::Legacy);
                    (Conn::Stdio(s), era)
                }
                (None, None) => {
                    return Err(UpstreamError::Protocol(
                        u.name.clone(),
                        "no url or stdio".into(),
                    ));
                }
            };
            upstreams.push(Upstream { route, conn, era });
        }
        let loopback = cfg.listen.ip().is_loopback();
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                governor,
                upstreams,
                sessions: Mutex::new(HashMap::new()),
                resource_owner: Mutex::new(HashMap::new()),
                loopback,
            }),
        })
    }

    /// The eras detected, by upstream name.
    pub fn eras(&self) -> Vec<(String, Era)> {
        self.inner
            .upstreams
            .iter()
            .map(|u| (u.route.upstream.to_string(), u.era))
            .collect()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with(listener, None, shutdown).await
    }

    /// Serves, with `extra` routes beside the MCP endpoint (the IATP
    /// verifier's `/.well-known/iatp/…`).
    pub async fn serve_with(
        self,
        listener: tokio::net::TcpListener,
        extra: Option<axum::Router>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let path = self.inner.cfg.path.clone();
        let housekeeping = {
            let gw = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                loop {
                    tick.tick().await;
                    if let Err(e) = gw.inner.governor.pins().reload().await {
                        // The pins in memory keep governing meanwhile.
                        eprintln!("agentmesh: could not reload tool pins: {e}");
                    }
                    gw.expire_sessions();
                }
            })
        };
        let header_read = Duration::from_secs(self.inner.cfg.header_read_timeout_secs.max(1));
        let app = axum::Router::new()
            .route(&path, axum::routing::any(handle))
            .route("/metrics", axum::routing::get(metrics))
            .with_state(self.clone());
        let engine = self.inner.governor.engine().clone();
        let app = app.merge(agentmesh_gateway::serve::health_routes(move || {
            engine.readiness()
        }));
        let app = match extra {
            Some(r) => app.merge(r),
            None => app,
        };
        let opts = agentmesh_gateway::ServeOptions {
            header_read_timeout: header_read,
            ..agentmesh_gateway::ServeOptions::default()
        };
        let r = agentmesh_gateway::serve(listener, app, shutdown, opts).await;
        housekeeping.abort();
        r
    }

    fn expire_sessions(&self) {
        let idle = self.inner.cfg.session_idle_secs;
        let now = now_secs();
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| now.saturating_sub(s.last_used.load(Ordering::Relaxed)) < idle);
    }

    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = header(headers, "origin") else {
            return true;
        };
        if self.inner.cfg.allowed_origins.iter().any(|o| o == origin) {
            return true;
        }
        if self.inner.loopback {
            let host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .unwrap_or("");
            let host = host.split(':').next().unwrap_or("");
            return matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        }
        false
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<Principal, AuthError> {
        let Some(auth) = header(headers, "authorization") else {
            // An IATP attestation carried in the request's `_meta`.
            if let Some(att) = meta_attestation(body) {
                return self
                    .inner
                    .governor
                    .engine()
                    .authenticate(Presented::Attestation(&att));
            }
            return match &self.inner.cfg.anonymous_agent {
                Some(agent) => self.inner.governor.engine().local_principal(agent),
                None => Err(AuthError::Missing),
            };
        };
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim();
        let engine = self.inner.governor.engine();
        if token.starts_with("amdt1.") {
            let proof = header(headers, PROOF_HEADER).ok_or(AuthError::Missing)?;
            let digest = ring::digest::digest(&ring::digest::SHA256, body);
            let mut request_digest = [0u8; 32];
            request_digest.copy_from_slice(digest.as_ref());
            engine.authenticate(Presented::Delegation {
                token,
                proof,
                request_digest,
            })
        } else if token.starts_with(agentmesh_iatp::ATTESTATION_PREFIX) {
            engine.authenticate(Presented::Attestation(token))
        } else {
            engine.authenticate(Presented::Credential(token))
        }
    }

    fn session(
        &self,
        headers: &HeaderMap,
        p: &Principal,
    ) -> Result<Option<Arc<Session>>, Response> {
        let Some(id) = header(headers, SESSION_HEADER) else {
            return Ok(None);
        };
        let s = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        match s {
            // A session is bound to the agent that opened it.
            Some(s) if *s.agent == *p.agent.did_text => {
                s.last_used.store(now_secs(), Ordering::Relaxed);
                Ok(Some(s))
            }
            _ => Err(rpc_error(
                StatusCode::NOT_FOUND,
                None,
                INVALID_REQUEST,
                "session not found (it expired or was closed); initialize a new one",
            )),
        }
    }

    fn single(&self) -> bool {
        self.inner.upstreams.len() == 1
    }

    /// `upstream_timeout_secs`.
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.inner.cfg.upstream_timeout_secs)
    }
}

/// The tool list of one upstream, fetched by the gateway itself (for a
/// call to a name it has not seen listed yet).
struct UpstreamTools<'a> {
    gw: &'a Gateway,
    index: usize,
}

impl ListTools for UpstreamTools<'_> {
    fn list_tools(&self) -> futures_util::future::BoxFuture<'_, Result<Vec<Value>, String>> {
        Box::pin(self.gw.fetch_tools(self.index))
    }
}

impl Gateway {
    /// Every page of upstream `index`'s `tools/list`, asked in the
    /// upstream's own era (the gateway's shared session for legacy HTTP).
    async fn fetch_tools(&self, index: usize) -> Result<Vec<Value>, String> {
        let up = &self.inner.upstreams[index];
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _page in 0..50 {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let mut text =
                json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": params})
                    .to_string();
            if up.era == Era::Modern {
                text = with_modern_meta(&text).unwrap_or(text);
            }
            let answer = match &up.conn {
                Conn::Stdio(s) => s.call(&text, "0").await.map_err(|e| e.to_string())?,
                Conn::Http(h) => {
                    let ours = issue_id();
                    let text = replace_field(&text, "id", &raw(&ours))
                        .ok_or("could not build the request")?;
                    let mut headers = HeaderMap::new();
                    headers.insert("mcp-method", hdr("tools/list"));
                    match up.era {
                        Era::Modern => {
                            headers.insert("mcp-protocol-version", hdr(MODERN));
                        }
                        Era::Legacy => {
                            headers.insert("mcp-protocol-version", hdr(LEGACY));
                            if let Some(sid) =
                                h.shared_session(false).await.map_err(|e| e.to_string())?
                            {
                                headers.insert(SESSION_HEADER, hdr(&sid));
                            }
                        }
                    }
                    let (status, _, body) = h
                        .call(headers, text, &ours)
                        .await
                        .map_err(|e| e.to_string())?;
                    body.ok_or_else(|| {
                        format!("tools/list answered HTTP {status} without a result")
                    })?
                }
            };
            cursor = crate::govern::read_tools_page(&answer, &mut tools)?;
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    }
}

/// The body without `params._meta["dev.agentmesh/iatp"]` (re-encoded only
/// when it is there).
fn strip_meta_attestation(body: Bytes) -> Bytes {
    let key = agentmesh_iatp::METADATA_KEY.as_bytes();
    if !body.windows(key.len()).any(|w| w == key) {
        return body;
    }
    // Re-encoding would quietly keep one copy of a repeated key; such a
    // body is left for the parser to refuse.
    if message::no_duplicate_keys(&body).is_err() {
        return body;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let removed = v
        .pointer_mut("/params/_meta")
        .and_then(Value::as_object_mut)
        .and_then(|meta| meta.remove(agentmesh_iatp::METADATA_KEY))
        .is_some();
    if removed {
        Bytes::from(v.to_string())
    } else {
        body
    }
}

/// `params._meta["dev.agentmesh/iatp"].attestation`, when the body carries
/// one (looked for only when the key's bytes occur in the body).
fn meta_attestation(body: &[u8]) -> Option<String> {
    let key = agentmesh_iatp::METADATA_KEY.as_bytes();
    if !body.windows(key.len()).any(|w| w == key) {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/params/_meta")?
        .get(agentmesh_iatp::METADATA_KEY)?
        .get("attestation")?
        .as_str()
        .map(str::to_owned)
}

fn unauthorized(e: &AuthError) -> Response {
    // The gateway core's one table: the same answer as every protocol's.
    let r = agentmesh_gateway::refusal::auth_refusal(e);
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNAUTHORIZED);
    Response::builder()
        .status(status)
        .header("www-authenticate", r.www_authenticate)
        .header("content-type", "application/json")
        .body(Body::from(error_response(
            None,
            UNAUTHENTICATED,
            &e.to_string(),
            Some(json!({"reason": e.code()})),
        )))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn handle(
    State(gw): State<Gateway>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !gw.origin_ok(&headers) {
        return rpc_error(
            StatusCode::FORBIDDEN,
            None,
            INVALID_REQUEST,
            "origin not allowed",
        );
    }
    let limit = gw.inner.cfg.max_body_bytes;
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                INVALID_REQUEST,
                &format!("request body exceeds {limit} bytes"),
            );
        }
    };
    let principal = match gw.authenticate(&headers, &bytes) {
        Ok(p) => p,
        Err(e) => return unauthorized(&e),
    };
    // An IATP attestation in `_meta` is bearer-grade: never forwarded.
    let bytes = strip_meta_attestation(bytes);
    match method {
        Method::POST => post(&gw, &principal, &headers, bytes).await,
        Method::GET => get_stream(&gw, &principal, &headers).await,
        Method::DELETE => delete(&gw, &principal, &headers).await,
        _ => Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("allow", "GET, POST, DELETE")
            .body(Body::empty())
            .unwrap_or_else(|_| Response::new(Body::empty())),
    }
}

/// The name (or URI) a header must mirror for this method.
fn mirrored_name(method: &str, params: Option<&RawValue>) -> Option<String> {
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    let obj = raw_object(params?.get())?;
    serde_json::from_str::<String>(obj.get(field)?.get()).ok()
}

/// Decodes `=?base64?…?=` header values (SEP-2243).
fn header_value(v: &str) -> String {
    use base64::Engine;
    if let Some(inner) = v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
        && let Ok(b) = base64::engine::general_purpose::STANDARD.decode(inner)
        && let Ok(s) = String::from_utf8(b)
    {
        return s;
    }
    v.to_owned()
}

/// Adds the 2026-07-28 `_meta` envelope to a request that lacks it.
fn with_modern_meta(text: &str) -> Option<String> {
    let obj = raw_object(text)?;
    let mut params = match obj.get("params") {
        Some(p) => raw_object(p.get())?,
        None => Default::default(),
    };
    let mut meta: serde_json::Map<String, Value> = match params.get("_meta") {
        Some(m) => serde_json::from_str(m.get()).ok()?,
        None => Default::default(),
    };
    meta.entry("io.modelcontextprotocol/protocolVersion")
        .or_insert_with(|| json!(MODERN));
    meta.entry("io.modelcontextprotocol/clientCapabilities")
        .or_insert_with(|| json!({}));
    params.insert("_meta".into(), to_raw(&Value::Object(meta)));
    let raw = RawValue::from_string(message::encode_raw(&params)).ok()?;
    replace_field(text, "params", &raw)
}

fn meta_version(params: Option<&RawValue>) -> Option<String> {
    let obj = raw_object(params?.get())?;
    let meta: Value = serde_json::from_str(obj.get("_meta")?.get()).ok()?;
    meta.get("io.modelcontextprotocol/protocolVersion")?
        .as_str()
        .map(str::to_owned)
}

async fn post(gw: &Gateway, p: &Principal, headers: &HeaderMap, body: Bytes) -> Response {
    let msg = match message::parse(&body) {
        Ok(m) => m,
        Err(e) if e.duplicate_key => return refuse_duplicate_keys(gw, p, &body, &e),
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, e.id.as_deref(), e.code, &e.message),
    };
    let session = match gw.session(headers, p) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = id_of(&msg);
    let method = msg.method.clone().unwrap_or_default();
    // Header/body agreement (2026-07-28): a mismatch is refused before
    // anything else looks at the request.
    if msg.kind != Kind::Response {
        if let Some(h) = header(headers, "mcp-method")
            && h != method
        {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Some(&id),
                HEADER_MISMATCH,
                "mcp-method header does not match the request body's method",
            );
        }
        if let Some(h) = header(headers, "mcp-name")
            && let Some(n) = mirrored_name(&method, msg.params.as_deref())
            && header_value(h) != n
        {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Some(&id),
                HEADER_MISMATCH,
                "mcp-name header does not match the request body's name",
            );
        }
        if let (Some(h), Some(v)) = (
            header(headers, "mcp-protocol-version"),
            meta_version(msg.params.as_deref()),
        ) && h != v
        {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Some(&id),
                HEADER_MISMATCH,
                "mcp-protocol-version header does not match the request's _meta protocol version",
            );
        }
    }
    match msg.kind {
        Kind::Notification if !message::is_notification_method(&method) => {
            refuse_notification(gw, p, &msg, &method)
        }
        Kind::Notification | Kind::Response => {
            forward_one_way(gw, session.as_deref(), headers, &body, &msg).await
        }
        Kind::Request if method == "initialize" => initialize(gw, p, headers, body, &id).await,
        Kind::Request => request(gw, p, session, headers, body, &msg, &id, &method).await,
    }
}

/// A request method sent without an id: audited as a denial, answered
/// with HTTP 400 and an error without id (the transport allows that for
/// a refused notification), never forwarded.
fn refuse_notification(
    gw: &Gateway,
    p: &Principal,
    msg: &message::Message,
    method: &str,
) -> Response {
    // Attributed to the upstream it names, else to the first one (the
    // audit entry needs one; nothing is sent to any).
    let index = route_for(gw, method, msg.params.as_deref())
        .ok()
        .flatten()
        .unwrap_or(0);
    let route = &gw.inner.upstreams[index].route;
    let v = gw
        .inner
        .governor
        .refuse_notification(p, route, method, msg.params.as_deref());
    eprintln!(
        "agentmesh: refused `{method}` sent without an id by {} (audit index {:?})",
        p.agent.did_text, v.audit_index
    );
    json_response(StatusCode::BAD_REQUEST, denial("null", &v))
}

/// A message that repeats a key: audited as a refusal (attributed to the
/// upstream it names, as serde reads it, else the first), answered 400.
fn refuse_duplicate_keys(
    gw: &Gateway,
    p: &Principal,
    body: &[u8],
    e: &message::Malformed,
) -> Response {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let method = v.get("method").and_then(Value::as_str).unwrap_or_default();
    let params = v.get("params").map(to_raw);
    let index = route_for(gw, method, params.as_deref())
        .ok()
        .flatten()
        .unwrap_or(0);
    let route = &gw.inner.upstreams[index].route;
    let verdict = gw
        .inner
        .governor
        .refuse_duplicate_keys(p, route, body, &e.message);
    json_response(
        StatusCode::BAD_REQUEST,
        error_response(
            e.id.as_deref(),
            e.code,
            &e.message,
            Some(refusal_data(&verdict)),
        ),
    )
}

/// Which upstream serves a request, and the client-visible name involved.
fn route_for(
    gw: &Gateway,
    method: &str,
    params: Option<&RawValue>,
) -> Result<Option<usize>, String> {
    if gw.single() {
        return Ok(Some(0));
    }
    match method {
        "tools/call" | "prompts/get" | "completion/complete" => {
            let name = match method {
                "completion/complete" => params
                    .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                    .and_then(|v| {
                        v.pointer("/ref/name")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    }),
                _ => mirrored_name(method, params),
            };
            let Some(name) = name else {
                return Err(format!("{method} needs a name"));
            };
            gw.inner
                .upstreams
                .iter()
                .position(|u| u.route.inner(&name).is_some())
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "unknown name `{name}` (tools and prompts are named <upstream>__<name>)"
                    )
                })
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            let uri = params
                .and_then(|p| raw_object(p.get()))
                .and_then(|o| {
                    o.get("uri")
                        .and_then(|u| serde_json::from_str::<String>(u.get()).ok())
                })
                .unwrap_or_default();
            gw.inner
                .resource_owner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&uri)
                .copied()
                .map(Some)
                .ok_or_else(|| format!("unknown resource `{uri}` (list resources first)"))
        }
        // Fan-out or answered by the gateway.
        _ => Ok(None),
    }
}

#[allow(clippy::too_many_arguments)]
async fn request(
    gw: &Gateway,
    p: &Principal,
    session: Option<Arc<Session>>,
    headers: &HeaderMap,
    body: Bytes,
    msg: &message::Message,
    id: &str,
    method: &str,
) -> Response {
    let target = match route_for(gw, method, msg.params.as_deref()) {
        Ok(t) => t,
        Err(e) => return rpc_error(StatusCode::OK, Some(id), message::INVALID_PARAMS, &e),
    };
    let Some(index) = target else {
        return federated(gw, p, session.as_deref(), headers, msg, id, method).await;
    };
    let up = &gw.inner.upstreams[index];
    let lister = UpstreamTools { gw, index };
    let judgement = gw
        .inner
        .governor
        .request(p, &up.route, id, method, msg.params.as_deref(), &lister)
        .await;
    let (params, ticket) = match judgement {
        Judgement::Reply(r) => return json_response(StatusCode::OK, r),
        Judgement::Forward { params, ticket } => (params, ticket),
    };
    let text = match &params {
        Some(np) => match replace_field(&String::from_utf8_lossy(&body), "params", np) {
            Some(t) => Bytes::from(t),
            None => {
                return rpc_error(
                    StatusCode::OK,
                    Some(id),
                    INTERNAL_ERROR,
                    "could not rewrite the request",
                );
            }
        },
        None => body,
    };
    let modern_client = meta_version(msg.params.as_deref()).is_some();
    let post_process = ticket.is_some()
        || matches!(method, "tools/list" | "prompts/list")
        || (method == "resources/list" && !gw.single())
        || (modern_client && up.era == Era::Legacy);
    let inner_name = params
        .as_deref()
        .and_then(|np| mirrored_name(method, Some(np)));
    match &up.conn {
        Conn::Stdio(s) => {
            // Era bridge: a modern stdio server shared by the gateway wants
            // the 2026-07-28 envelope on every request.
            let mut text = String::from_utf8_lossy(&text).into_owned();
            if !modern_client && up.era == Era::Modern {
                text = with_modern_meta(&text).unwrap_or(text);
            }
            match s.call(&text, id).await {
                Ok(answer) => {
                    let answer = if post_process {
                        process_response(
                            gw,
                            p,
                            index,
                            method,
                            ticket.as_deref(),
                            answer,
                            modern_client,
                        )
                        .await
                    } else {
                        answer
                    };
                    json_response(
                        StatusCode::OK,
                        String::from_utf8_lossy(&answer).into_owned(),
                    )
                }
                Err(e) => upstream_failed(gw, ticket.as_deref(), id, &e),
            }
        }
        Conn::Http(h) => {
            let mut out = forwardable(headers);
            if let Some(n) = &inner_name
                && out.contains_key("mcp-name")
            {
                out.insert("mcp-name", hdr(n));
            }
            if let Err(r) = session_headers(index, up, h, session.as_deref(), &mut out).await {
                return r;
            }
            // The upstream sees the gateway's id, never the client's: its
            // answer must carry exactly that id to reach the client.
            let ours = issue_id();
            let Some(text) = replace_field(&String::from_utf8_lossy(&text), "id", &raw(&ours))
            else {
                return rpc_error(
                    StatusCode::OK,
                    Some(id),
                    INTERNAL_ERROR,
                    "could not rewrite the request",
                );
            };
            let deadline = tokio::time::Instant::now() + h.timeout();
            let inflight = session.as_ref().map(|s| {
                s.inflight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_owned(), ours.clone());
                InFlight {
                    session: s.clone(),
                    client_id: id.to_owned(),
                }
            });
            let resp = match h.send(Method::POST, out, Bytes::from(text)).await {
                Ok(r) => r,
                Err(e) => return upstream_failed(gw, ticket.as_deref(), id, &e),
            };
            let call = Exchange {
                _inflight: inflight,
                index,
                method: method.to_owned(),
                client_id: id.to_owned(),
                ours,
                deadline,
                post_process,
                modern_client,
            };
            relay(gw, p, ticket, call, resp).await
        }
    }
}

fn upstream_failed(gw: &Gateway, ticket: Option<&Ticket>, id: &str, e: &UpstreamError) -> Response {
    if let Some(t) = ticket {
        gw.inner.governor.record(
            t,
            error_response(Some(id), UPSTREAM_UNAVAILABLE, "", None).as_bytes(),
        );
    }
    json_response(
        StatusCode::OK,
        error_response(Some(id), UPSTREAM_UNAVAILABLE, &e.to_string(), None),
    )
}

/// Session headers for a request to HTTP upstream `index`: the client's
/// session's upstream session, or the gateway's shared session when a
/// session-less (modern) client talks to a legacy-only upstream.
async fn session_headers(
    index: usize,
    up: &Upstream,
    h: &HttpUpstream,
    session: Option<&Session>,
    out: &mut HeaderMap,
) -> Result<(), Response> {
    match session {
        Some(s) => {
            if let Some(Some(sid)) = s.upstream.get(&index) {
                out.insert(SESSION_HEADER, hdr(sid));
            }
        }
        None if up.era == Era::Legacy => match h.shared_session(false).await {
            Ok(Some(sid)) => {
                out.insert(SESSION_HEADER, hdr(&sid));
                out.insert("mcp-protocol-version", hdr(LEGACY));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(json_response(
                    StatusCode::OK,
                    error_response(None, UPSTREAM_UNAVAILABLE, &e.to_string(), None),
                ));
            }
        },
        None => {}
    }
    Ok(())
}

/// Applies governance to an upstream's answer: the call's outcome becomes a
/// trust event; lists are filtered and namespaced.
async fn process_response(
    gw: &Gateway,
    p: &Principal,
    index: usize,
    method: &str,
    ticket: Option<&Ticket>,
    answer: Vec<u8>,
    modern_client: bool,
) -> Vec<u8> {
    if let Some(t) = ticket {
        gw.inner.governor.record(t, &answer);
    }
    let mut text = String::from_utf8_lossy(&answer).into_owned();
    let Some(mut obj) = raw_object(&text) else {
        return answer;
    };
    let up = &gw.inner.upstreams[index];
    // Era bridge: a legacy server's results carry no `resultType`, which
    // 2026-07-28 clients require.
    if modern_client
        && up.era == Era::Legacy
        && let Some(result) = obj.get("result")
        && let Some(mut r) = raw_object(result.get())
        && !r.contains_key("resultType")
    {
        r.insert("resultType".into(), to_raw(&json!("complete")));
        let raw = RawValue::from_string(message::encode_raw(&r)).unwrap_or_default();
        obj.insert("result".into(), raw);
        text = message::encode_raw(&obj);
    }
    let answer = text.clone().into_bytes();
    let Some(result) = obj.get("result") else {
        return answer;
    };
    if method == "resources/list" {
        learn_resources(gw, index, result);
        return answer;
    }
    match gw
        .inner
        .governor
        .filter_result(p, &up.route, method, result)
        .await
    {
        Some(filtered) => replace_field(&text, "result", &filtered)
            .map(String::into_bytes)
            .unwrap_or(answer),
        None => answer,
    }
}

fn learn_resources(gw: &Gateway, index: usize, result: &RawValue) {
    if let Ok(v) = serde_json::from_str::<Value>(result.get())
        && let Some(list) = v.get("resources").and_then(Value::as_array)
    {
        let mut owners = gw
            .inner
            .resource_owner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if owners.len() > 100_000 {
            owners.clear();
        }
        for r in list {
            if let Some(uri) = r.get("uri").and_then(Value::as_str) {
                owners.insert(uri.to_owned(), index);
            }
        }
    }
}

const RELAYED_RESPONSE_HEADERS: &[&str] =
    &["content-type", "cache-control", "mcp-protocol-version"];

/// One request sent to an HTTP upstream under a gateway id.
struct Exchange {
    /// Kept until the answer is relayed (legacy sessions).
    _inflight: Option<InFlight>,
    index: usize,
    method: String,
    /// The client's id (raw JSON), restored on the answer.
    client_id: String,
    /// The id the upstream was given (raw JSON).
    ours: String,
    /// When the answer must have arrived (`upstream_timeout_secs` after
    /// sending), whatever else the upstream sends meanwhile.
    deadline: tokio::time::Instant,
    /// Whether the answer is governed (recorded, filtered, bridged).
    post_process: bool,
    modern_client: bool,
}

/// What one message from an upstream, on a request's stream, is.
enum FromUpstream {
    /// The answer, its id already the client's.
    Answer(Vec<u8>),
    /// A request or notification of the server's: relayed as it is.
    Relay,
    /// An answer under a look-alike of the gateway's id (`"7"` for `7`):
    /// the request fails rather than deliver what a lenient client would
    /// take for its answer.
    LookAlike(String),
    /// Not for this client: an answer to an id the gateway never issued.
    Stray(String),
    /// Not a JSON-RPC message (e.g. the text of an HTTP error).
    Other(String),
}

fn classify(data: &[u8], ours: &str, client_id: &str) -> FromUpstream {
    // A priming event (an SSE `id:` with empty data) carries no message.
    if data.iter().all(u8::is_ascii_whitespace) {
        return FromUpstream::Relay;
    }
    let m = match message::parse(data) {
        Ok(m) => m,
        Err(e) => return FromUpstream::Other(format!("not a JSON-RPC message ({e})")),
    };
    if m.kind != Kind::Response {
        return FromUpstream::Relay;
    }
    let Some(got) = m.id.as_deref() else {
        return FromUpstream::Stray("an answer without id".into());
    };
    if got.get() == ours {
        return match replace_field(&String::from_utf8_lossy(data), "id", &raw(client_id)) {
            Some(t) => FromUpstream::Answer(t.into_bytes()),
            None => FromUpstream::Stray("an answer that is not an object".into()),
        };
    }
    if message::id_key(got).as_deref()
        == RawValue::from_string(ours.to_owned())
            .ok()
            .and_then(|r| message::id_key(&r))
            .as_deref()
    {
        return FromUpstream::LookAlike(format!(
            "the upstream answered under the id {} instead of {ours}; ids must match exactly",
            got.get()
        ));
    }
    FromUpstream::Stray(format!(
        "an answer to id {}, which the gateway never sent",
        got.get()
    ))
}

fn raw(id: &str) -> Box<RawValue> {
    RawValue::from_string(id.to_owned()).unwrap_or_default()
}

/// Sends an upstream's HTTP answer back with the client's id, governed
/// when it must be: JSON whole, SSE event by event as it arrives. Only the
/// answer under exactly the gateway's id reaches the client; the call
/// ends at its deadline even when the upstream keeps the stream alive.
async fn relay(
    gw: &Gateway,
    p: &Principal,
    ticket: Option<Box<Ticket>>,
    mut call: Exchange,
    resp: hyper::Response<hyper::body::Incoming>,
) -> Response {
    let status = resp.status();
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut builder = Response::builder().status(status);
    for name in RELAYED_RESPONSE_HEADERS {
        if let Some(v) = resp.headers().get(*name) {
            builder = builder.header(*name, v.clone());
        }
    }
    if is_sse {
        builder = builder.header("x-accel-buffering", "no");
    }
    let body = resp.into_body();
    let upstream = gw.inner.upstreams[call.index].route.upstream.to_string();
    let failed = |why: String| {
        eprintln!("agentmesh: upstream `{upstream}`: {why}");
        let e = UpstreamError::Protocol(upstream.clone(), why);
        upstream_failed(gw, ticket.as_deref(), &call.client_id, &e)
    };
    if !is_sse {
        let limit = gw.inner.cfg.max_body_bytes.max(message::MAX_MESSAGE_BYTES) * 4;
        let collected = tokio::time::timeout_at(
            call.deadline,
            http_body_util::Limited::new(body, limit).collect(),
        )
        .await;
        let bytes = match collected {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return failed(e.to_string()),
            Err(_) => {
                let e = UpstreamError::Timeout(upstream.clone(), gw.timeout());
                return upstream_failed(gw, ticket.as_deref(), &call.client_id, &e);
            }
        };
        if bytes.is_empty() {
            // E.g. 202 or an HTTP error without body: nothing to map.
            return builder
                .body(Body::empty())
                .unwrap_or_else(|_| Response::new(Body::empty()));
        }
        let answer = match classify(&bytes, &call.ours, &call.client_id) {
            FromUpstream::Answer(a) => a,
            FromUpstream::Relay => bytes.to_vec(),
            // An HTTP error's own body (text, or an error without id).
            FromUpstream::Other(_) if !status.is_success() => bytes.to_vec(),
            FromUpstream::LookAlike(why) | FromUpstream::Stray(why) | FromUpstream::Other(why) => {
                return failed(why);
            }
        };
        let out = if call.post_process && status.is_success() {
            process_response(
                gw,
                p,
                call.index,
                &call.method,
                ticket.as_deref(),
                answer,
                call.modern_client,
            )
            .await
        } else {
            answer
        };
        return builder
            .body(Body::from(out))
            .unwrap_or_else(|_| Response::new(Body::empty()));
    }
    // SSE: parse, relay event by event; rewrite the one that answers.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let gw2 = gw.clone();
    let p2 = p.clone();
    let timeout = gw.timeout();
    // The task owns the in-flight entry until the stream is done (an async
    // block captures only the fields it names).
    let inflight = call._inflight.take();
    tokio::spawn(async move {
        let _inflight = inflight;
        let mut body = body;
        let mut parser = sse::Parser::new(message::MAX_MESSAGE_BYTES);
        let mut ticket = ticket;
        let mut answered = false;
        let ending = 'read: loop {
            let frame = match tokio::time::timeout_at(call.deadline, body.frame()).await {
                Err(_) => {
                    break Some(UpstreamError::Timeout(upstream.clone(), timeout).to_string());
                }
                Ok(None) => break None,
                Ok(Some(Err(e))) => break Some(format!("the stream broke: {e}")),
                Ok(Some(Ok(frame))) => frame,
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let events = match parser.feed(data) {
                Ok(e) => e,
                Err(e) => break Some(format!("the stream is not valid SSE: {e}")),
            };
            for mut ev in events {
                if let Some(d) = &ev.data {
                    match classify(d.as_bytes(), &call.ours, &call.client_id) {
                        FromUpstream::Relay => {}
                        FromUpstream::Answer(a) => {
                            let out = if call.post_process {
                                process_response(
                                    &gw2,
                                    &p2,
                                    call.index,
                                    &call.method,
                                    ticket.take().as_deref(),
                                    a,
                                    call.modern_client,
                                )
                                .await
                            } else {
                                a
                            };
                            ev.data = Some(String::from_utf8_lossy(&out).into_owned());
                            answered = true;
                        }
                        FromUpstream::LookAlike(why) => break 'read Some(why),
                        FromUpstream::Stray(why) | FromUpstream::Other(why) => {
                            eprintln!("agentmesh: upstream `{upstream}`: dropped {why}");
                            continue;
                        }
                    }
                }
                if tx.send(Ok(Bytes::from(ev.encode()))).await.is_err() {
                    // The client went away: dropping the upstream body
                    // closes that stream too (cancellation, 2026-07-28).
                    return;
                }
            }
        };
        if answered {
            return;
        }
        // No answer: the call ends with an error the client can read (and
        // the upstream's stream is dropped, which cancels it).
        let why =
            ending.unwrap_or_else(|| "the upstream ended the stream without answering".into());
        eprintln!("agentmesh: upstream `{upstream}`: {why}");
        if let Some(t) = ticket.take() {
            gw2.inner.governor.record(
                &t,
                error_response(Some(&call.client_id), UPSTREAM_UNAVAILABLE, "", None).as_bytes(),
            );
        }
        let e = error_response(Some(&call.client_id), UPSTREAM_UNAVAILABLE, &why, None);
        let ev = sse::Event {
            data: Some(e),
            ..Default::default()
        };
        if tx.send(Ok(Bytes::from(ev.encode()))).await.is_err() {
            eprintln!("agentmesh: upstream `{upstream}`: {why} (the client had gone)");
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn forward_one_way(
    gw: &Gateway,
    session: Option<&Session>,
    headers: &HeaderMap,
    body: &Bytes,
    msg: &message::Message,
) -> Response {
    let mut status = StatusCode::ACCEPTED;
    // A legacy client cancels by its own id; the upstream knows the
    // request by the gateway's. A cancellation of nothing in flight is
    // accepted and dropped.
    let mapped;
    let body = match session {
        Some(s) if msg.method.as_deref() == Some("notifications/cancelled") => {
            let inflight = s.inflight.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match message::remap_cancelled(&String::from_utf8_lossy(body), |c| {
                inflight.get(c).cloned()
            }) {
                Some(m) => {
                    mapped = Bytes::from(m);
                    &mapped
                }
                None => {
                    return Response::builder()
                        .status(StatusCode::ACCEPTED)
                        .body(Body::empty())
                        .unwrap_or_else(|_| Response::new(Body::empty()));
                }
            }
        }
        _ => body,
    };
    for (i, up) in gw.inner.upstreams.iter().enumerate() {
        match &up.conn {
            Conn::Stdio(s) => {
                if msg.kind == Kind::Notification {
                    s.forward_notification(body).await;
                }
            }
            Conn::Http(h) => {
                // With a session, only upstreams in it; without, a single
                // upstream (a modern notification) or nobody.
                if let Some(s) = session
                    && !s.upstream.contains_key(&i)
                {
                    continue;
                }
                if session.is_none() && !gw.single() {
                    continue;
                }
                let mut out = forwardable(headers);
                if let Err(r) = session_headers(i, up, h, session, &mut out).await {
                    return r;
                }
                match h.send(Method::POST, out, body.clone()).await {
                    Ok(r) if gw.single() => status = r.status(),
                    Ok(_) => {}
                    Err(_) if gw.single() => status = StatusCode::BAD_GATEWAY,
                    Err(_) => {}
                }
            }
        }
    }
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn initialize(
    gw: &Gateway,
    p: &Principal,
    headers: &HeaderMap,
    body: Bytes,
    id: &str,
) -> Response {
    {
        let sessions = gw.inner.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= gw.inner.cfg.max_sessions {
            return rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(id),
                INTERNAL_ERROR,
                "too many sessions",
            );
        }
        // Fair share: one agent cannot take every session.
        let held = sessions
            .values()
            .filter(|s| *s.agent == *p.agent.did_text)
            .count();
        if held >= gw.inner.cfg.max_sessions_per_agent {
            return rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                Some(id),
                INTERNAL_ERROR,
                &format!(
                    "agent `{}` already holds {held} sessions (max_sessions_per_agent); end one (DELETE) or reuse it",
                    p.agent.name
                ),
            );
        }
    }
    let mut upstream_sessions = HashMap::new();
    let mut results: Vec<Value> = Vec::new();
    let mut single_reply: Option<Response> = None;
    for (i, up) in gw.inner.upstreams.iter().enumerate() {
        match &up.conn {
            Conn::Http(h) => {
                let out = forwardable(headers);
                let unavailable = |why: &str| {
                    json_response(
                        StatusCode::OK,
                        error_response(Some(id), UPSTREAM_UNAVAILABLE, why, None),
                    )
                };
                // Under the gateway's id, as every request (see `relay`).
                let ours = issue_id();
                let Some(text) = replace_field(&String::from_utf8_lossy(&body), "id", &raw(&ours))
                else {
                    return unavailable("could not rewrite the request");
                };
                let deadline = tokio::time::Instant::now() + h.timeout();
                let resp = match h.send(Method::POST, out, Bytes::from(text)).await {
                    Ok(r) => r,
                    Err(e) => return unavailable(&e.to_string()),
                };
                let status = resp.status();
                let sid = header(resp.headers(), SESSION_HEADER).map(str::to_owned);
                let ctype = resp.headers().get("content-type").cloned();
                let is_sse = ctype
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream"));
                let collected = tokio::time::timeout_at(
                    deadline,
                    http_body_util::Limited::new(resp.into_body(), message::MAX_MESSAGE_BYTES)
                        .collect(),
                )
                .await;
                let bytes = match collected {
                    Ok(Ok(b)) => b.to_bytes(),
                    Ok(Err(e)) => return unavailable(&e.to_string()),
                    Err(_) => {
                        let e = UpstreamError::Timeout(up.route.upstream.to_string(), gw.timeout());
                        return unavailable(&e.to_string());
                    }
                };
                let bytes = if bytes.is_empty() {
                    bytes
                } else {
                    match answer_body(&bytes, is_sse, &ours, id, status.is_success()) {
                        Ok(b) => Bytes::from(b),
                        Err(why) => {
                            eprintln!("agentmesh: upstream `{}`: {why}", up.route.upstream);
                            return unavailable(&why);
                        }
                    }
                };
                if !status.is_success() {
                    if gw.single() {
                        let mut b = Response::builder().status(status);
                        if let Some(c) = ctype {
                            b = b.header("content-type", c);
                        }
                        return b
                            .body(Body::from(bytes))
                            .unwrap_or_else(|_| Response::new(Body::empty()));
                    }
                    continue;
                }
                upstream_sessions.insert(i, sid);
                if gw.single() {
                    let mut b = Response::builder().status(status);
                    if let Some(c) = ctype {
                        b = b.header("content-type", c);
                    }
                    single_reply = Some(
                        b.body(Body::from(bytes.clone()))
                            .unwrap_or_else(|_| Response::new(Body::empty())),
                    );
                }
                if let Some(v) = result_of(&bytes) {
                    results.push(v);
                }
            }
            Conn::Stdio(s) => {
                let r = s
                    .init_result
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if let Some(r) = r {
                    if gw.single() {
                        single_reply = Some(json_response(
                            StatusCode::OK,
                            result_response(
                                id,
                                &serde_json::from_str(r.get()).unwrap_or(Value::Null),
                            ),
                        ));
                    }
                    if let Ok(v) = serde_json::from_str(r.get()) {
                        results.push(v);
                    }
                }
            }
        }
    }
    let Some(sid) = random_session_id() else {
        eprintln!("agentmesh: the OS random source failed; no session was opened");
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(id),
            INTERNAL_ERROR,
            "no_randomness: the gateway cannot make a session id now",
        );
    };
    gw.inner
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            sid.clone(),
            Arc::new(Session {
                agent: p.agent.did_text.clone(),
                upstream: upstream_sessions,
                last_used: AtomicU64::new(now_secs()),
                inflight: Mutex::new(HashMap::new()),
            }),
        );
    let mut reply = match single_reply {
        Some(r) => r,
        None => {
            let version = results
                .iter()
                .filter_map(|r| r.get("protocolVersion").and_then(Value::as_str))
                .next()
                .unwrap_or(LEGACY)
                .to_owned();
            let result = json!({
                "protocolVersion": version,
                "capabilities": union_capabilities(&results),
                "serverInfo": {"name": "agentmesh-gateway", "version": env!("CARGO_PKG_VERSION")},
                "instructions": federated_instructions(gw),
            });
            json_response(StatusCode::OK, result_response(id, &result))
        }
    };
    reply.headers_mut().insert(SESSION_HEADER, hdr(&sid));
    reply
}

/// A whole answer body (JSON, or SSE read to its end) with the gateway's
/// id `ours` mapped back to the client's; strays dropped.
fn answer_body(
    bytes: &[u8],
    is_sse: bool,
    ours: &str,
    client_id: &str,
    success: bool,
) -> Result<Vec<u8>, String> {
    if !is_sse {
        return match classify(bytes, ours, client_id) {
            FromUpstream::Answer(a) => Ok(a),
            FromUpstream::Relay => Ok(bytes.to_vec()),
            FromUpstream::Other(_) if !success => Ok(bytes.to_vec()),
            FromUpstream::LookAlike(why) | FromUpstream::Stray(why) | FromUpstream::Other(why) => {
                Err(why)
            }
        };
    }
    let mut p = sse::Parser::new(message::MAX_MESSAGE_BYTES);
    let mut out = String::new();
    for mut ev in p.feed(bytes).map_err(|e| e.to_string())? {
        if let Some(d) = &ev.data {
            match classify(d.as_bytes(), ours, client_id) {
                FromUpstream::Answer(a) => ev.data = Some(String::from_utf8_lossy(&a).into_owned()),
                FromUpstream::Relay => {}
                FromUpstream::LookAlike(why) => return Err(why),
                FromUpstream::Stray(why) | FromUpstream::Other(why) => {
                    eprintln!("agentmesh: dropped {why}");
                    continue;
                }
            }
        }
        out.push_str(&ev.encode());
    }
    Ok(out.into_bytes())
}

fn result_of(bytes: &[u8]) -> Option<Value> {
    // The answer may be JSON or an SSE stream carrying it.
    let text = String::from_utf8_lossy(bytes);
    let candidate = if text.trim_start().starts_with('{') {
        text.into_owned()
    } else {
        let mut p = sse::Parser::new(message::MAX_MESSAGE_BYTES);
        p.feed(bytes)
            .ok()?
            .into_iter()
            .filter_map(|e| e.data)
            .find(|d| d.contains("\"result\""))?
    };
    serde_json::from_str::<Value>(&candidate)
        .ok()?
        .get("result")
        .cloned()
}

fn union_capabilities(results: &[Value]) -> Value {
    let mut caps = serde_json::Map::new();
    for r in results {
        if let Some(c) = r.get("capabilities").and_then(Value::as_object) {
            for (k, v) in c {
                if k == "experimental" || k == "extensions" {
                    continue;
                }
                caps.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    Value::Object(caps)
}

fn federated_instructions(gw: &Gateway) -> String {
    let names: Vec<&str> = gw
        .inner
        .upstreams
        .iter()
        .map(|u| u.route.upstream.as_ref())
        .collect();
    format!(
        "AgentMesh gateway federating: {}. Tools and prompts are named <server>__<name>.",
        names.join(", ")
    )
}

/// Requests the gateway answers itself or fans out (several upstreams).
#[allow(clippy::too_many_arguments)]
async fn federated(
    gw: &Gateway,
    p: &Principal,
    session: Option<&Session>,
    headers: &HeaderMap,
    msg: &message::Message,
    id: &str,
    method: &str,
) -> Response {
    let modern = meta_version(msg.params.as_deref()).is_some();
    let done = |mut v: Value| {
        if modern && let Some(o) = v.as_object_mut() {
            o.insert("resultType".into(), json!("complete"));
        }
        json_response(StatusCode::OK, result_response(id, &v))
    };
    match method {
        "ping" => done(json!({})),
        "server/discover" => done(json!({
            "supportedVersions": [MODERN],
            "capabilities": {"tools": {"listChanged": false}, "prompts": {"listChanged": false}, "resources": {"listChanged": false}},
            "ttlMs": 0,
            "cacheScope": "private",
            "instructions": federated_instructions(gw),
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "agentmesh-gateway", "version": env!("CARGO_PKG_VERSION")}},
        })),
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            let field = match method {
                "tools/list" => "tools",
                "prompts/list" => "prompts",
                "resources/list" => "resources",
                _ => "resourceTemplates",
            };
            let mut merged = Vec::new();
            for (i, up) in gw.inner.upstreams.iter().enumerate() {
                let mut cursor: Option<String> = None;
                for _page in 0..50 {
                    let mut params = msg
                        .params
                        .as_deref()
                        .and_then(|r| raw_object(r.get()))
                        .unwrap_or_default();
                    match &cursor {
                        Some(c) => params.insert("cursor".into(), to_raw(&json!(c))),
                        None => params.remove("cursor"),
                    };
                    let text = json!({"jsonrpc": "2.0", "id": 1, "method": method}).to_string();
                    let params_raw =
                        RawValue::from_string(message::encode_raw(&params)).unwrap_or_default();
                    let Some(text) = replace_field(&text, "params", &params_raw) else {
                        break;
                    };
                    let answer = match &up.conn {
                        Conn::Stdio(s) => {
                            let text = if !modern && up.era == Era::Modern {
                                with_modern_meta(&text).unwrap_or(text)
                            } else {
                                text
                            };
                            s.call(&text, "1").await.ok()
                        }
                        Conn::Http(h) => {
                            let mut out = forwardable(headers);
                            out.remove("mcp-name");
                            if session_headers(i, up, h, session, &mut out).await.is_err() {
                                None
                            } else {
                                h.call(out, text, "1").await.ok().and_then(|(_, _, b)| b)
                            }
                        }
                    };
                    let Some(answer) = answer else { break };
                    let answer = process_response(gw, p, i, method, None, answer, modern).await;
                    let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                    let Some(result) = v.get("result") else { break };
                    if let Some(items) = result.get(field).and_then(Value::as_array) {
                        merged.extend(items.iter().cloned());
                    }
                    cursor = result
                        .get("nextCursor")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    if cursor.is_none() {
                        break;
                    }
                }
            }
            let mut result = json!({ field: merged });
            if modern && let Some(o) = result.as_object_mut() {
                o.insert("ttlMs".into(), json!(0));
                o.insert("cacheScope".into(), json!("private"));
            }
            done(result)
        }
        _ => rpc_error(
            StatusCode::OK,
            Some(id),
            METHOD_NOT_FOUND,
            &format!(
                "`{method}` cannot be routed: several servers are federated behind this gateway"
            ),
        ),
    }
}

async fn get_stream(gw: &Gateway, p: &Principal, headers: &HeaderMap) -> Response {
    let not_allowed = || {
        Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("allow", "POST, DELETE")
            .body(Body::empty())
            .unwrap_or_else(|_| Response::new(Body::empty()))
    };
    let session = match gw.session(headers, p) {
        Err(r) => return r,
        // No session: a modern (stateless) client; there is no GET stream.
        Ok(None) => return not_allowed(),
        Ok(Some(s)) => s,
    };
    if !gw.single() {
        return not_allowed();
    }
    let up = &gw.inner.upstreams[0];
    let Conn::Http(h) = &up.conn else {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("allow", "POST, DELETE")
            .body(Body::empty())
            .unwrap_or_else(|_| Response::new(Body::empty()));
    };
    let mut out = forwardable(headers);
    if let Some(Some(sid)) = session.upstream.get(&0) {
        out.insert(SESSION_HEADER, hdr(sid));
    }
    match h.send(Method::GET, out, Bytes::new()).await {
        Ok(resp) => {
            let mut b = Response::builder().status(resp.status());
            for name in RELAYED_RESPONSE_HEADERS {
                if let Some(v) = resp.headers().get(*name) {
                    b = b.header(*name, v.clone());
                }
            }
            if !resp.status().is_success() {
                return b
                    .body(Body::new(resp.into_body()))
                    .unwrap_or_else(|_| Response::new(Body::empty()));
            }
            b.header("x-accel-buffering", "no")
                .body(server_stream(
                    up.route.upstream.to_string(),
                    resp.into_body(),
                ))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Err(e) => rpc_error(
            StatusCode::BAD_GATEWAY,
            None,
            UPSTREAM_UNAVAILABLE,
            &e.to_string(),
        ),
    }
}

/// The server's own stream (GET) relayed event by event: its requests and
/// notifications pass; answers never do. Every request the gateway sends
/// carries a gateway id and is answered on its own POST, so an "answer"
/// here could only be one the gateway cannot check (or a forgery).
fn server_stream(upstream: String, body: hyper::body::Incoming) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut body = body;
        let mut parser = sse::Parser::new(message::MAX_MESSAGE_BYTES);
        while let Some(Ok(frame)) = body.frame().await {
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let Ok(events) = parser.feed(data) else {
                eprintln!(
                    "agentmesh: upstream `{upstream}`: its event stream is not valid SSE; closed"
                );
                return;
            };
            for ev in events {
                if let Some(d) = ev.data.as_ref().filter(|d| !d.trim().is_empty()) {
                    match message::parse(d.as_bytes()) {
                        Ok(m) if m.kind != Kind::Response => {}
                        Ok(_) => {
                            eprintln!(
                                "agentmesh: upstream `{upstream}`: dropped an answer sent on its event stream"
                            );
                            continue;
                        }
                        Err(e) => {
                            eprintln!(
                                "agentmesh: upstream `{upstream}`: dropped an event that is not JSON-RPC ({e})"
                            );
                            continue;
                        }
                    }
                }
                if tx.send(Ok(Bytes::from(ev.encode()))).await.is_err() {
                    return;
                }
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

async fn delete(gw: &Gateway, p: &Principal, headers: &HeaderMap) -> Response {
    let session = match gw.session(headers, p) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "POST")
                .body(Body::empty())
                .unwrap_or_else(|_| Response::new(Body::empty()));
        }
        Err(r) => return r,
    };
    let mut status = StatusCode::OK;
    for (i, up) in gw.inner.upstreams.iter().enumerate() {
        if let (Conn::Http(h), Some(Some(sid))) = (&up.conn, session.upstream.get(&i)) {
            let mut out = forwardable(headers);
            out.insert(SESSION_HEADER, hdr(sid));
            if let Ok(r) = h.send(Method::DELETE, out, Bytes::new()).await
                && gw.single()
            {
                status = r.status();
            }
        }
    }
    if let Some(sid) = header(headers, SESSION_HEADER) {
        gw.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sid);
    }
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Starts listening on the configured address; returns the bound address.
pub async fn bind(cfg: &GatewayConfig) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(cfg.listen).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// `GET /metrics`: the pipeline's Prometheus metrics (decisions by outcome
/// and protocol, decision latency, authentication, trust scores, audit
/// size, registry reloads).
async fn metrics(
    axum::extract::State(gw): axum::extract::State<Gateway>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = gw.inner.governor.engine().metrics_text().into_response();
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attestation_in_meta_is_found_and_never_forwarded() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"x":1,"dev.agentmesh/iatp":{"attestation":"amat1.a.b"}}}}"#;
        assert_eq!(meta_attestation(body).as_deref(), Some("amat1.a.b"));
        let out = strip_meta_attestation(Bytes::from_static(body));
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["params"]["_meta"], json!({"x": 1}));
        assert_eq!(meta_attestation(&out), None);
        // Bodies without it pass byte for byte.
        let plain = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert_eq!(strip_meta_attestation(plain.clone()), plain);
    }
}
