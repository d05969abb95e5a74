//! The A2A gateway: one listener in front of one or more A2A agents.
//!
//! * Cards: each upstream's card is fetched at start (and every minute),
//!   its signature checked against configured keys, its interface URLs
//!   rewritten to the gateway and re-signed (EdDSA, key at
//!   `/.well-known/jwks.json`); served with `ETag` / `If-None-Match`.
//! * Both versions (1.0 PascalCase with `A2A-Version: 1.0`; 0.3 slash
//!   methods without it) and both bindings (JSON-RPC at the agent's base,
//!   HTTP+JSON under `<base>/rest`) are forwarded as sent: ids, headers
//!   (`A2A-Version`, `A2A-Extensions`, trace context) and bodies untouched;
//!   the caller's credential is never forwarded.
//! * Every operation goes through the engine: messages are judged on the
//!   agent, the skill, the parts and the caller (and its trust); task
//!   operations are routed to the upstream that created the task and only
//!   for the caller that created it (anyone else gets `TaskNotFound`).
//! * Streams (`SendStreamingMessage` / `message/stream`, `SubscribeToTask`)
//!   are relayed event by event, never buffered.
//! * With one agent it is served at `/`; with several, at `/<name>/`.
//! * An agent configured without `url` is answered by the
//!   [`AgentBackend`] registered for it ([`Builder::backend`]), and other
//!   crates may add routes ([`Builder::routes`]): the A2A⇄MCP bridge
//!   (`agentmesh-bridge`) uses both, through the small API marked
//!   "for extensions" below.

use crate::backend::{AgentBackend, AgentView, Judged, SendError};
use crate::card::{self, CardKey, Endpoints};
use crate::config::{A2aConfig, AgentConfig, CardSignatures};
use crate::protocol::{
    self, EXTENDED_CARD_NOT_CONFIGURED, Op, TASK_NOT_FOUND, VERSION_NOT_SUPPORTED, Version,
    error_info, rest_error,
};
use agentmesh_capability::Capability;
use agentmesh_engine::{AuthError, Call, Engine, Presented, Principal, Verdict};
use agentmesh_gateway::http::{HttpClient, http_client};
use agentmesh_gateway::refusal::{UpstreamFailure, upstream_refusal};
use agentmesh_gateway::sse;
use agentmesh_iatp::http::Service as IatpService;
use agentmesh_identity::KeyPair;
use agentmesh_policy::schema::DataAttrs;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// JSON-RPC codes of the gateway's own answers (outside the reserved
/// range, as the MCP gateway's).
pub const UNAUTHENTICATED: i64 = agentmesh_gateway::jsonrpc::UNAUTHENTICATED;
pub const POLICY_DENIED: i64 = agentmesh_gateway::jsonrpc::POLICY_DENIED;
pub const APPROVAL_REFUSED: i64 = agentmesh_gateway::jsonrpc::APPROVAL_REFUSED;
pub const UPSTREAM_UNAVAILABLE: i64 = agentmesh_gateway::jsonrpc::UPSTREAM_UNAVAILABLE;
pub const RATE_LIMITED: i64 = agentmesh_gateway::jsonrpc::RATE_LIMITED;
/// `ErrorInfo.domain` of the gateway's own errors.
pub const DOMAIN: &str = "agentmesh.dev";
/// Request headers passed to the upstream.
const FORWARDED: &[&str] = &[
    "content-type",
    "accept",
    "a2a-version",
    "a2a-extensions",
    "x-a2a-extensions",
    "traceparent",
    "tracestate",
    "x-agent-trace-id",
];
/// Response headers passed back to the client.
const RELAYED: &[&str] = &[
    "content-type",
    "cache-control",
    "a2a-version",
    "a2a-extensions",
    "x-a2a-extensions",
];
/// Largest upstream answer read whole (streams are not read whole).
const MAX_ANSWER: usize = 32 << 20;
/// Tasks remembered at most (oldest forgotten first when full).
const MAX_TASKS: usize = 1 << 20;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("agent `{agent}`: {message}")]
    Agent { agent: String, message: String },
}

pub(crate) struct Served {
    pub(crate) text: Arc<str>,
    etag: String,
    pub(crate) endpoints: Endpoints,
    /// The key id that verified the upstream's card, when signed.
    upstream_kid: Option<String>,
    /// The upstream's card carried signatures.
    upstream_signed: bool,
}

pub(crate) struct Agent {
    pub(crate) name: Arc<str>,
    cfg: AgentConfig,
    keys: Vec<CardKey>,
    /// `""` with one agent, `/<name>` with several.
    pub(crate) prefix: String,
    pub(crate) served: RwLock<Arc<Served>>,
    /// For an agent whose skills come from elsewhere (`mcp:`): what
    /// answers it instead of an upstream.
    backend: Option<Arc<dyn AgentBackend>>,
}

/// Contexts live in the task table under this prefix (task ids never
/// start with it: they are looked up with it never added).
const CONTEXT_KEY: &str = "\u{0}context:";

struct TaskEntry {
    agent: usize,
    owner: Arc<str>,
    capability: Capability,
    seen: u64,
}

pub(crate) struct Inner {
    cfg: A2aConfig,
    pub(crate) engine: Engine,
    pub(crate) http: HttpClient,
    pub(crate) timeout: Duration,
    pub(crate) agents: Vec<Agent>,
    tasks: Mutex<HashMap<String, TaskEntry>>,
    card_key: KeyPair,
    kid: String,
    base: String,
    iatp: Option<Arc<IatpService>>,
    /// Routes extensions added ([`Builder::routes`]).
    routes: axum::Router<Gateway>,
}

/// A running A2A gateway.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("A2aGateway")
            .field("listen", &self.inner.cfg.listen)
            .finish()
    }
}

pub(crate) fn now_secs() -> u64 {
    agentmesh_store::unix_now()
}

/// The HTTP binding a request came in on (answers are rendered in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    JsonRpc,
    Rest,
}

/// One refusal, rendered per binding.
#[derive(Debug)]
pub struct Failure {
    http: u16,
    rpc: i64,
    message: String,
    reason: String,
    metadata: Value,
    www_authenticate: Option<String>,
}

impl Failure {
    /// A refusal: HTTP status (REST), JSON-RPC code, `ErrorInfo.reason`
    /// and the message.
    pub fn new(http: u16, rpc: i64, reason: &str, message: impl Into<String>) -> Self {
        Failure {
            http,
            rpc,
            message: message.into(),
            reason: reason.to_owned(),
            metadata: json!({}),
            www_authenticate: None,
        }
    }

    pub fn rpc_code(&self) -> i64 {
        self.rpc
    }

    pub fn message_text(&self) -> String {
        self.message.clone()
    }

    /// The answer in `binding` (`id`: the JSON-RPC request's).
    pub fn render(self, binding: Binding, id: &Value) -> Response {
        let details = vec![error_info(&self.reason, DOMAIN, self.metadata)];
        let (status, body) = match binding {
            Binding::JsonRpc => (
                // JSON-RPC errors travel in a 200, except authentication
                // (401/403) and an oversized body (413), which HTTP
                // clients and proxies must see.
                if (matches!(self.http, 401 | 403) && self.rpc == UNAUTHENTICATED)
                    || self.http == 413
                {
                    self.http
                } else {
                    200
                },
                json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": self.rpc, "message": self.message, "data": details}}),
            ),
            Binding::Rest => (self.http, rest_error(self.http, &self.message, details)),
        };
        let mut b = Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
            .header(
                "content-type",
                match binding {
                    Binding::JsonRpc => "application/json",
                    Binding::Rest => "application/a2a+json",
                },
            );
        if let Some(w) = self.www_authenticate {
            b = b.header("www-authenticate", w);
        }
        b.body(Body::from(body.to_string()))
            .unwrap_or_else(|_| Response::new(Body::empty()))
    }
}

/// Invalid params (HTTP 400).
pub fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(
        400,
        agentmesh_gateway::jsonrpc::INVALID_PARAMS,
        "INVALID_PARAMS",
        message,
    )
}

fn task_not_found(task: &str) -> Failure {
    Failure::new(
        404,
        TASK_NOT_FOUND,
        "TASK_NOT_FOUND",
        format!("task `{task}` not found"),
    )
}

/// A refused decision (policy, approval, rate limit), with its audit index.
pub fn denial(v: &Verdict) -> Failure {
    let d = &v.decision;
    let refusal = agentmesh_gateway::refusal::decision_refusal(d);
    let (http, rpc) = (refusal.status, refusal.code);
    let mut meta = json!({
        "reason": d.reason.code(),
        "decision": d.outcome.as_str(),
        "audit_index": v.audit_index.map(|i| i.to_string()),
        "policy_version": d.policy_version.to_string(),
    });
    if let (Some(p), Some(r)) = (&d.policy, &d.rule) {
        meta["rule"] = Value::from(format!("{p}/{r}"));
    }
    if let Some(s) = d.retry_after_secs {
        meta["retry_after_secs"] = Value::from(s.to_string());
    }
    if let Some(a) = &d.approval {
        meta["approval"] = Value::from(a.id.clone());
    }
    Failure {
        http,
        rpc,
        message: format!("denied by AgentMesh: {}", d.message),
        reason: d.reason.code().to_ascii_uppercase(),
        metadata: meta,
        www_authenticate: None,
    }
}

/// A failed authentication (the gateway core's one answer to it).
pub fn unauthorized(e: &AuthError) -> Failure {
    // The gateway core's one table: the same answer as every protocol's.
    let r = agentmesh_gateway::refusal::auth_refusal(e);
    let mut f = Failure::new(r.status, r.code, "UNAUTHENTICATED", e.to_string());
    f.metadata = json!({"reason": r.reason});
    f.www_authenticate = Some(r.www_authenticate);
    f
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn json_response(status: StatusCode, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Every webhook URL a request configures.
fn webhook_urls(op: Op, params: &Value) -> Vec<String> {
    fn walk(v: &Value, inside: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    // Every spelling an upstream's lenient parser might
                    // accept: camelCase, snake_case, kebab-case, any case.
                    let key: String = k
                        .chars()
                        .filter(|c| *c != '_' && *c != '-')
                        .flat_map(char::to_lowercase)
                        .collect();
                    let push = inside || key.contains("pushnotification");
                    if push && key == "url" {
                        if let Some(s) = x.as_str() {
                            out.push(s.to_owned());
                        }
                    } else {
                        walk(x, push, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, inside, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match op {
        Op::PushSet => walk(params, true, &mut out),
        Op::Send | Op::Stream => walk(
            params.get("configuration").unwrap_or(&Value::Null),
            false,
            &mut out,
        ),
        _ => {}
    }
    out
}

/// A gateway being built: [`Gateway::builder`], then what extensions add,
/// then [`Builder::build`].
pub struct Builder {
    cfg: A2aConfig,
    engine: Engine,
    card_key: KeyPair,
    iatp: Option<Arc<IatpService>>,
    http: HttpClient,
    backends: Vec<(String, Arc<dyn AgentBackend>)>,
    routes: axum::Router<Gateway>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("A2aGatewayBuilder")
            .field("listen", &self.cfg.listen)
            .field(
                "backends",
                &self.backends.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Builder {
    /// The configuration the gateway is built from.
    pub fn config(&self) -> &A2aConfig {
        &self.cfg
    }

    /// The gateway's upstream HTTP client (one connection pool for
    /// everything the gateway calls).
    pub fn http_client(&self) -> &HttpClient {
        &self.http
    }

    /// The upstream timeout the configuration sets.
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.upstream_timeout_secs.max(1))
    }

    /// Answers the configured agent `name` (one without `url`) with
    /// `backend`. [`Builder::build`] refuses a backend for an agent the
    /// configuration does not list, for one with an upstream `url`, and a
    /// second backend for the same agent.
    pub fn backend(mut self, name: &str, backend: Arc<dyn AgentBackend>) -> Self {
        self.backends.push((name.to_owned(), backend));
        self
    }

    /// Serves `routes` on the gateway's listener too, with the gateway as
    /// state. They must not claim a path the gateway serves itself
    /// (`/metrics`, `/.well-known/jwks.json`, `/.well-known/iatp/…`,
    /// `/healthz`, `/readyz`): axum refuses overlapping routes by
    /// panicking when the gateway starts serving. Anything else they do
    /// not claim still reaches the agents.
    pub fn routes(mut self, routes: axum::Router<Gateway>) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Fetches and checks every upstream's card (and builds every
    /// backend's), then builds the gateway.
    pub async fn build(self) -> Result<Gateway, StartError> {
        let Builder {
            cfg,
            engine,
            card_key,
            iatp,
            http,
            mut backends,
            routes,
        } = self;
        for (name, _) in &backends {
            let fail = |message: &str| StartError::Agent {
                agent: name.clone(),
                message: message.to_owned(),
            };
            match cfg.agents.iter().find(|a| a.name == *name) {
                None => {
                    return Err(fail(
                        "a backend is registered for an agent the configuration does not list",
                    ));
                }
                Some(a) if a.url.is_some() => {
                    return Err(fail(
                        "a backend is registered for an agent with an upstream `url`",
                    ));
                }
                Some(_) => {}
            }
            if backends.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(fail("two backends are registered for this agent"));
            }
        }
        let base = cfg.public_base();
        let kid = format!("{}#card", card_key.did());
        let single = cfg.agents.len() == 1;
        let mut agents = Vec::new();
        for a in &cfg.agents {
            let fail = |message: String| StartError::Agent {
                agent: a.name.clone(),
                message,
            };
            let mut keys = Vec::new();
            for path in &a.card_keys {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("card key {}: {e}", path.display())))?;
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| fail(format!("card key {}: {e}", path.display())))?;
                let list = match v.get("keys").and_then(Value::as_array) {
                    Some(l) => l.clone(),
                    None => vec![v],
                };
                for k in &list {
                    keys.push(
                        CardKey::from_jwk(k)
                            .map_err(|e| fail(format!("card key {}: {e}", path.display())))?,
                    );
                }
            }
            let backend = backends
                .iter()
                .position(|(n, _)| *n == a.name)
                .map(|i| backends.swap_remove(i).1);
            // Fail closed: an agent with no upstream is served by its
            // backend or not at all.
            if backend.is_none()
                && let Some(url) = &a.mcp
            {
                return Err(fail(format!(
                    "`mcp: {url}` needs the A2A⇄MCP bridge (agentmesh-bridge), which this gateway was built without"
                )));
            }
            agents.push(Agent {
                backend,
                name: a.name.as_str().into(),
                cfg: a.clone(),
                keys,
                prefix: if single {
                    String::new()
                } else {
                    format!("/{}", a.name)
                },
                served: RwLock::new(Arc::new(Served {
                    text: "".into(),
                    etag: String::new(),
                    endpoints: Endpoints::default(),
                    upstream_kid: None,
                    upstream_signed: false,
                })),
            });
        }
        let gw = Gateway {
            inner: Arc::new(Inner {
                timeout: Duration::from_secs(cfg.upstream_timeout_secs.max(1)),
                cfg,
                engine,
                http,
                agents,
                tasks: Mutex::new(HashMap::new()),
                card_key,
                kid,
                base,
                iatp,
                routes,
            }),
        };
        for i in 0..gw.inner.agents.len() {
            gw.refresh_card(i)
                .await
                .map_err(|message| StartError::Agent {
                    agent: gw.inner.agents[i].name.to_string(),
                    message,
                })?;
        }
        Ok(gw)
    }
}

impl Gateway {
    /// Starts building a gateway. `card_key` signs served cards (and IATP
    /// attestations, when `iatp` is given). A configuration whose agents
    /// all have an upstream `url` needs nothing more than
    /// [`Builder::build`].
    pub fn builder(
        cfg: A2aConfig,
        engine: Engine,
        card_key: KeyPair,
        iatp: Option<Arc<IatpService>>,
    ) -> Builder {
        Builder {
            cfg,
            engine,
            card_key,
            iatp,
            http: http_client(),
            backends: Vec::new(),
            routes: axum::Router::new(),
        }
    }

    /// What each upstream's card said, for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        self.inner
            .agents
            .iter()
            .map(|a| {
                let s = a.served.read().unwrap_or_else(|p| p.into_inner()).clone();
                format!(
                    "agent `{}` at {}{}/ (JSON-RPC → {}; REST → {}; upstream card {})",
                    a.name,
                    self.inner.base,
                    a.prefix,
                    s.endpoints.jsonrpc.as_deref().unwrap_or("none"),
                    s.endpoints.rest.as_deref().unwrap_or("none"),
                    match (&s.upstream_kid, s.upstream_signed, &a.backend) {
                        (_, _, Some(b)) => b.describe(),
                        (Some(k), _, None) => format!("signature verified (kid {k})"),
                        (None, true, None) => "signed, NOT verified: configure card_keys".into(),
                        (None, false, None) => "unsigned".into(),
                    }
                )
            })
            .collect()
    }

    /// The gateway's card-signing key id and JWKS.
    pub fn jwks(&self) -> Value {
        card::jwks(self.inner.card_key.public(), &self.inner.kid)
    }

    /// For extensions: the engine every decision goes through (to judge
    /// another protocol's leg of a call, and record results).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// For extensions: agent number `index`, as [`Gateway::govern`]
    /// takes and returns it.
    pub fn agent(&self, index: usize) -> Option<AgentView> {
        let a = self.inner.agents.get(index)?;
        Some(AgentView {
            index,
            name: a.name.clone(),
            card: a
                .served
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .text
                .clone(),
            backend: a.backend.is_some(),
        })
    }

    /// For extensions: every fronted agent, in configuration order.
    pub fn agents(&self) -> Vec<AgentView> {
        (0..self.inner.agents.len())
            .filter_map(|i| self.agent(i))
            .collect()
    }

    /// For extensions: sends a JSON-RPC `request` (A2A 1.0) to `agent`'s
    /// upstream with the gateway's client and timeout, and remembers the
    /// tasks its answer names as `p`'s under `capability` (as for a
    /// forwarded call). Only for an operation [`Gateway::govern`] allowed
    /// `p`. Returns the answer as JSON, whatever it says; no result is
    /// recorded (the caller records it).
    pub async fn send_message(
        &self,
        p: &Principal,
        agent: usize,
        capability: &Capability,
        request: &Value,
    ) -> Result<Value, SendError> {
        let Some(a) = self.inner.agents.get(agent) else {
            return Err(SendError::NoJsonRpc);
        };
        let url = a
            .served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .endpoints
            .jsonrpc
            .clone();
        let Some(url) = url else {
            return Err(SendError::NoJsonRpc);
        };
        let req = hyper::Request::post(&url)
            .header("content-type", "application/json")
            .header("a2a-version", "1.0")
            .body(Full::new(Bytes::from(request.to_string())));
        let answer = match req {
            Ok(r) => {
                match tokio::time::timeout(self.inner.timeout, self.inner.http.request(r)).await {
                    Ok(Ok(resp)) => http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
                        .collect()
                        .await
                        .ok()
                        .and_then(|c| serde_json::from_slice::<Value>(&c.to_bytes()).ok()),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        let answer = answer.ok_or_else(|| SendError::Unreachable(a.name.clone()))?;
        if let Some(r) = answer.get("result") {
            let mut ids = Vec::new();
            protocol::task_ids(r, &mut ids);
            self.learn(agent, p, capability, &ids);
        }
        Ok(answer)
    }

    async fn fetch(&self, url: &str) -> Result<(u16, Bytes), String> {
        let req = hyper::Request::get(url)
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.inner.http.request(req))
            .await
            .map_err(|_| format!("{url}: no answer within 10 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        Ok((status, body))
    }

    /// Reads the upstream's card, checks its signature, rewrites and
    /// re-signs it.
    async fn refresh_card(&self, i: usize) -> Result<(), String> {
        let agent = &self.inner.agents[i];
        let mine = format!("{}{}", self.inner.base, agent.prefix);
        if let Some(b) = &agent.backend {
            let card = b.card(&agent.name, &mine).await?;
            self.publish(agent, card, Endpoints::default(), None, false);
            return Ok(());
        }
        let base = agent.cfg.url.as_deref().unwrap_or("").trim_end_matches('/');
        let mut found = None;
        for path in ["/.well-known/agent-card.json", "/.well-known/agent.json"] {
            if let Ok((200, body)) = self.fetch(&format!("{base}{path}")).await {
                found = Some(body);
                break;
            }
        }
        let body = found.ok_or_else(|| {
            format!("no agent card at {base}/.well-known/agent-card.json (is the agent running?)")
        })?;
        let upstream: Value =
            serde_json::from_slice(&body).map_err(|e| format!("agent card is not JSON: {e}"))?;
        let signed = upstream
            .get("signatures")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        // Without configured keys there is nothing to verify against (the
        // start-up log says so); with keys, a signature must verify.
        let verified = if agent.keys.is_empty() {
            None
        } else {
            card::verify_card(&upstream, &agent.keys).map_err(|e| e.to_string())?
        };
        if verified.is_none() && agent.cfg.card_signatures == CardSignatures::Require {
            return Err(card::CardError::Unsigned.to_string());
        }
        // Callers' messages go only to the configured upstream's origin,
        // whatever hosts its card names.
        let named = card::endpoints(&upstream);
        let endpoints = card::Endpoints {
            jsonrpc: named.jsonrpc.as_deref().and_then(|u| card::rebase(u, base)),
            rest: named.rest.as_deref().and_then(|u| card::rebase(u, base)),
        };
        if endpoints != named {
            tracing::warn!(
                agent = %agent.name,
                configured = %base,
                card = ?named,
                "the agent card names interfaces outside the configured upstream's origin: they are served from the configured origin"
            );
        }
        if endpoints.jsonrpc.is_none() && endpoints.rest.is_none() {
            return Err(card::CardError::NoInterface.to_string());
        }
        let served = card::rewrite(
            &upstream,
            &format!("{mine}/"),
            endpoints
                .rest
                .as_ref()
                .map(|_| format!("{mine}/rest"))
                .as_deref(),
        )
        .map_err(|e| e.to_string())?;
        self.publish(agent, served, endpoints, verified, signed);
        Ok(())
    }

    /// Signs a card with the gateway's key (its JWKS named as `jku`).
    pub(crate) fn sign(&self, card: &mut Value) {
        card::sign_card(
            card,
            &self.inner.card_key,
            &self.inner.kid,
            Some(&format!("{}/.well-known/jwks.json", self.inner.base)),
        );
    }

    /// Signs `card` and makes it the one served for `agent`.
    fn publish(
        &self,
        agent: &Agent,
        mut card: Value,
        endpoints: Endpoints,
        upstream_kid: Option<String>,
        upstream_signed: bool,
    ) {
        self.sign(&mut card);
        let text = card.to_string();
        let etag = card::etag(&text);
        *agent.served.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Served {
            text: text.into(),
            etag,
            endpoints,
            upstream_kid,
            upstream_signed,
        });
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let housekeeping = {
            let gw = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    for i in 0..gw.inner.agents.len() {
                        if let Err(e) = gw.refresh_card(i).await {
                            eprintln!(
                                "agentmesh: agent `{}`: card refresh failed, keeping the last one: {e}",
                                gw.inner.agents[i].name
                            );
                        }
                    }
                    gw.forget_tasks(now_secs());
                }
            })
        };
        let mut app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .route("/.well-known/jwks.json", axum::routing::get(jwks))
            .merge(self.inner.routes.clone())
            .fallback(handle)
            .with_state(self.clone());
        if let Some(s) = &self.inner.iatp {
            app = app.merge(agentmesh_iatp::http::router(s.clone()));
        }
        let engine = self.inner.engine.clone();
        app = app.merge(agentmesh_gateway::serve::health_routes(move || {
            engine.readiness()
        }));
        let r = agentmesh_gateway::serve(
            listener,
            app,
            shutdown,
            agentmesh_gateway::ServeOptions::default(),
        )
        .await;
        housekeeping.abort();
        r
    }

    fn forget_tasks(&self, now: u64) {
        let ttl = self.inner.cfg.task_ttl_secs;
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| now.saturating_sub(t.seen) < ttl);
    }

    /// Which agent a path addresses, and the path below the agent.
    fn locate<'a>(&self, path: &'a str) -> Option<(usize, &'a str)> {
        if self.inner.agents.len() == 1 {
            return Some((0, path));
        }
        let rest = path.strip_prefix('/')?;
        let (first, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let i = self.inner.agents.iter().position(|a| &*a.name == first)?;
        Some((i, tail))
    }

    /// For extensions: authenticates a request as the gateway's own
    /// routes do (a bearer credential, delegation token with holder proof
    /// or attestation; else the IATP extension in `message`'s metadata;
    /// else the configured anonymous agent). `body` is what a holder proof
    /// signs. The flag: authenticated through the IATP extension.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        message: Option<&Value>,
    ) -> Result<(Principal, bool), AuthError> {
        let engine = &self.inner.engine;
        if let Some(auth) = header(headers, "authorization") {
            let token = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
                .ok_or(AuthError::Missing)?
                .trim();
            let p = if token.starts_with("amdt1.") {
                let proof = header(headers, agentmesh_gateway::jsonrpc::PROOF_HEADER)
                    .ok_or(AuthError::Missing)?;
                let d = ring::digest::digest(&ring::digest::SHA256, body);
                let mut request_digest = [0u8; 32];
                request_digest.copy_from_slice(d.as_ref());
                engine.authenticate(Presented::Delegation {
                    token,
                    proof,
                    request_digest,
                })?
            } else if token.starts_with(agentmesh_iatp::ATTESTATION_PREFIX) {
                engine.authenticate(Presented::Attestation(token))?
            } else {
                engine.authenticate(Presented::Credential(token))?
            };
            return Ok((p, false));
        }
        // The IATP extension: an attestation, or a response to one of this
        // gateway's challenges bound to the message's parts, in the
        // message metadata.
        if let Some(m) = message
            && let Some(carried) = m
                .pointer("/metadata")
                .and_then(|md| md.get(agentmesh_iatp::METADATA_KEY))
        {
            if let Some(text) = carried.get("attestation").and_then(Value::as_str) {
                return Ok((engine.authenticate(Presented::Attestation(text))?, true));
            }
            if let Some(r) = carried.get("response") {
                let service = self.inner.iatp.as_ref().ok_or_else(|| {
                    AuthError::Attestation(agentmesh_iatp::HandshakeError::Malformed(
                        "this gateway runs no IATP verifier".into(),
                    ))
                })?;
                let r: agentmesh_iatp::Response =
                    serde_json::from_value(r.clone()).map_err(|e| {
                        AuthError::Attestation(agentmesh_iatp::HandshakeError::Malformed(
                            e.to_string(),
                        ))
                    })?;
                let parts = protocol::parts_of(m);
                let v = service
                    .verifier
                    .verify(
                        &r,
                        agentmesh_iatp::Channel::Request(&parts),
                        &*service.directory,
                        now_secs(),
                    )
                    .map_err(AuthError::Attestation)?;
                return Ok((engine.authenticate(Presented::Attestation(&v.text))?, true));
            }
        }
        match &self.inner.cfg.anonymous_agent {
            Some(a) => Ok((engine.local_principal(a)?, false)),
            None => Err(AuthError::Missing),
        }
    }

    /// Judges one operation on `agent` (held for approval when the policy
    /// says so); returns the agent that serves it (a task's), the
    /// allowed verdict and the capability it was judged under. For
    /// extensions too: `note` goes into the decision's audit entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn govern(
        &self,
        p: &Principal,
        agent: usize,
        op: Op,
        params: &Value,
        task: Option<&str>,
        size: usize,
        note: Option<Value>,
    ) -> Result<(usize, Verdict, Capability), Failure> {
        let mut target = agent;
        let mut capability = None;
        let mut arguments = json!({"agent": &*self.inner.agents[agent].name});
        if op.on_task() {
            let task = task.ok_or_else(|| invalid(format!("{} needs a task id", op.name())))?;
            let (a, cap) = self.owned_task(p, task)?;
            target = a;
            capability = Some(cap);
            arguments = json!({"agent": &*self.inner.agents[a].name, "task_id": task});
        }
        let mut skill = None;
        if matches!(op, Op::Send | Op::Stream) {
            let message = protocol::message_of(params)
                .ok_or_else(|| invalid(format!("{} needs params.message", op.name())))?;
            if let Some(t) = message
                .get("taskId")
                .or_else(|| message.get("task_id"))
                .and_then(Value::as_str)
            {
                // Continuing a task: only its owner, at its upstream.
                let (a, _) = self.owned_task(p, t)?;
                target = a;
            }
            let (s, args) = protocol::message_arguments(&self.inner.agents[target].name, message)
                .map_err(invalid)?;
            // A context is its first caller's, like a task: another
            // caller cannot add messages to it (reported as unknown).
            if let Some(c) = message
                .get("contextId")
                .or_else(|| message.get("context_id"))
                .and_then(Value::as_str)
            {
                self.claim_context(p, target, c)?;
            }
            skill = s;
            arguments = args;
        }
        for url in webhook_urls(op, params) {
            crate::outbound::check_webhook(&url, &self.inner.cfg.push_notifications)
                .await
                .map_err(invalid)?;
        }
        let name = &self.inner.agents[target].name;
        let capability = match capability {
            Some(c) => c,
            None => {
                let text = match &skill {
                    Some(s) => format!("message:{name}:{s}"),
                    None => format!("message:{name}"),
                };
                Capability::parse(&text).map_err(|e| invalid(format!("skill id: {e}")))?
            }
        };
        let agent_cfg = &self.inner.agents[target].cfg;
        let mut data: DataAttrs = agent_cfg.data.clone().unwrap_or_default();
        data.size_bytes = Some(i64::try_from(size).unwrap_or(i64::MAX));
        let call = Call {
            protocol: "a2a",
            method: op.name().into(),
            kind: op.kind(),
            target: match &skill {
                Some(s) => format!("{name}/{s}"),
                None => name.to_string(),
            },
            // A2A's documented `action.tool` (`<agent>[/<skill>]`);
            // `action.server` is the agent.
            tool: match &skill {
                Some(s) => format!("{name}/{s}"),
                None => name.to_string(),
            },
            capability: capability.clone(),
            arguments: Some(arguments),
            data,
            upstream: Some(name.clone()),
            trace_id: None,
            note,
        };
        let engine = &self.inner.engine;
        let mut verdict = engine.decide(p, &call);
        if verdict.held().is_some() {
            verdict = engine.await_approval(p, &call, verdict).await;
        }
        if !verdict.allowed() {
            return Err(denial(&verdict));
        }
        Ok((target, verdict, capability))
    }

    fn owned_task(&self, p: &Principal, task: &str) -> Result<(usize, Capability), Failure> {
        let tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        match tasks.get(task) {
            // Someone else's task is reported exactly like a missing one.
            Some(t) if *t.owner == *p.agent.did_text => Ok((t.agent, t.capability.clone())),
            _ => Err(task_not_found(task)),
        }
    }

    pub(crate) fn learn(
        &self,
        agent: usize,
        p: &Principal,
        capability: &Capability,
        ids: &[String],
    ) {
        if ids.is_empty() {
            return;
        }
        let now = now_secs();
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.len() + ids.len() > MAX_TASKS {
            let ttl = self.inner.cfg.task_ttl_secs / 2;
            tasks.retain(|_, t| now.saturating_sub(t.seen) < ttl);
        }
        for id in ids {
            // A task keeps its first owner.
            tasks
                .entry(id.clone())
                .or_insert_with(|| TaskEntry {
                    agent,
                    owner: p.agent.did_text.clone(),
                    capability: capability.clone(),
                    seen: now,
                })
                .seen = now;
        }
    }

    /// Binds a context id to `p` on first use; refuses another caller's.
    fn claim_context(&self, p: &Principal, agent: usize, id: &str) -> Result<(), Failure> {
        let key = format!("{CONTEXT_KEY}{id}");
        let now = now_secs();
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tasks.get_mut(&key) {
            if *t.owner != *p.agent.did_text || t.agent != agent {
                return Err(invalid(format!("context `{id}` not found")));
            }
            t.seen = now;
            return Ok(());
        }
        if tasks.len() >= MAX_TASKS {
            let ttl = self.inner.cfg.task_ttl_secs / 2;
            tasks.retain(|_, t| now.saturating_sub(t.seen) < ttl);
        }
        tasks.insert(
            key,
            TaskEntry {
                agent,
                owner: p.agent.did_text.clone(),
                capability: Capability::any(),
                seen: now,
            },
        );
        Ok(())
    }

    /// Context ids an upstream answered with belong to the caller it
    /// answered (first owner kept).
    pub(crate) fn learn_contexts(&self, agent: usize, p: &Principal, ids: &[String]) {
        for id in ids {
            // Someone else's context in an answer to `p` is left alone
            // (never reassigned); the error is for requests.
            let _ = self.claim_context(p, agent, id);
        }
    }

    fn task_visible(&self, p: &Principal, id: &str) -> bool {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|t| *t.owner == *p.agent.did_text)
    }
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    json_response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        gw.inner.engine.metrics_text(),
    )
}

async fn jwks(State(gw): State<Gateway>) -> Response {
    json_response(
        StatusCode::OK,
        "application/jwk-set+json",
        gw.jwks().to_string(),
    )
}

fn serve_card(gw: &Gateway, agent: usize, headers: &HeaderMap) -> Response {
    let s = gw.inner.agents[agent]
        .served
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if header(headers, "if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == s.etag)) {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", &s.etag)
            .body(Body::empty())
            .unwrap_or_else(|_| Response::new(Body::empty()));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("cache-control", "max-age=60")
        .header("etag", &s.etag)
        .body(Body::from(s.text.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn handle(
    State(gw): State<Gateway>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().to_owned();
    let Some((agent, rest)) = gw.locate(&path) else {
        return json_response(
            StatusCode::NOT_FOUND,
            "application/json",
            rest_error(404, &format!("no A2A agent is served at `{path}`"), vec![]).to_string(),
        );
    };
    let rest = rest.to_owned();
    if rest == "/.well-known/agent-card.json" || rest == "/.well-known/agent.json" {
        return if method == Method::GET {
            serve_card(&gw, agent, &headers)
        } else {
            Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "GET")
                .body(Body::empty())
                .unwrap_or_else(|_| Response::new(Body::empty()))
        };
    }
    let binding = if rest == "/" || rest.is_empty() {
        if method != Method::POST {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "POST")
                .body(Body::empty())
                .unwrap_or_else(|_| Response::new(Body::empty()));
        }
        Binding::JsonRpc
    } else if rest == "/rest" || rest.starts_with("/rest/") {
        Binding::Rest
    } else {
        return json_response(
            StatusCode::NOT_FOUND,
            "application/json",
            rest_error(404, &format!("nothing is served at `{path}`"), vec![]).to_string(),
        );
    };
    let limit = gw.inner.cfg.max_body_bytes;
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Failure::new(
                413,
                agentmesh_gateway::jsonrpc::INVALID_REQUEST,
                "PAYLOAD_TOO_LARGE",
                format!("request body exceeds {limit} bytes"),
            )
            .render(binding, &Value::Null);
        }
    };
    let version_query = query_param(&uri, "A2A-Version").map(str::to_owned);
    let version = header(&headers, "a2a-version")
        .map(str::to_owned)
        .or_else(|| version_query.clone());
    let inc = Incoming {
        agent,
        binding,
        http_method: method,
        rest_path: rest.strip_prefix("/rest").unwrap_or("").to_owned(),
        query: uri.query().map(str::to_owned),
        version,
        version_query,
        headers,
        bytes,
    };
    match binding {
        Binding::JsonRpc => jsonrpc(&gw, &inc).await,
        Binding::Rest => rest_call(&gw, &inc).await,
    }
}

/// One request as it arrived, before it is understood.
struct Incoming {
    agent: usize,
    binding: Binding,
    http_method: Method,
    /// Below the agent's REST base (`/message:send`), for REST.
    rest_path: String,
    query: Option<String>,
    /// `A2A-Version`, from the header or else the query parameter.
    version: Option<String>,
    /// The query-parameter form, when used.
    version_query: Option<String>,
    headers: HeaderMap,
    bytes: Bytes,
}

async fn jsonrpc(gw: &Gateway, inc: &Incoming) -> Response {
    let b = Binding::JsonRpc;
    let version = inc.version.as_deref();
    let mut msg: Value = match serde_json::from_slice(&inc.bytes) {
        Ok(v) => v,
        Err(e) => {
            return Failure::new(
                400,
                agentmesh_gateway::jsonrpc::PARSE_ERROR,
                "PARSE_ERROR",
                format!("not JSON: {e}"),
            )
            .render(b, &Value::Null);
        }
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let id_ok = matches!(id, Value::String(_) | Value::Number(_));
    let (Some(method), true, true) = (
        msg.get("method").and_then(Value::as_str),
        msg.get("jsonrpc").and_then(Value::as_str) == Some("2.0"),
        id_ok,
    ) else {
        return Failure::new(
            400,
            agentmesh_gateway::jsonrpc::INVALID_REQUEST,
            "INVALID_REQUEST",
            "not a JSON-RPC 2.0 request with a string or number id and a method",
        )
        .render(b, &id);
    };
    if Version::from_param(version).is_none() {
        return Failure::new(
            400,
            VERSION_NOT_SUPPORTED,
            "VERSION_NOT_SUPPORTED",
            format!(
                "A2A version `{}` is not supported (1.0 and 0.3 are)",
                version.unwrap_or("")
            ),
        )
        .render(b, &id);
    }
    let Some(op) = Op::from_method(method) else {
        return Failure::new(
            404,
            agentmesh_gateway::jsonrpc::METHOD_NOT_FOUND,
            "METHOD_NOT_FOUND",
            format!("method `{method}` is not an A2A operation this gateway fronts"),
        )
        .render(b, &id);
    };
    // Taken, not cloned: the body's bytes are what is forwarded.
    let params = msg
        .get_mut("params")
        .map(Value::take)
        .unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return invalid("params must be an object").render(b, &id);
    }
    let (p, via_extension) =
        match gw.authenticate(&inc.headers, &inc.bytes, protocol::message_of(&params)) {
            Ok(x) => x,
            Err(e) => return unauthorized(&e).render(b, &id),
        };
    let task = op.task_id(&params);
    dispatch(
        gw,
        &p,
        inc,
        op,
        &params,
        task.as_deref(),
        &id,
        via_extension,
    )
    .await
}

async fn rest_call(gw: &Gateway, inc: &Incoming) -> Response {
    let b = Binding::Rest;
    let version = inc.version.as_deref();
    let (method, sub, bytes) = (&inc.http_method, inc.rest_path.as_str(), &inc.bytes);
    if Version::from_param(version).is_none() {
        return Failure::new(
            400,
            VERSION_NOT_SUPPORTED,
            "VERSION_NOT_SUPPORTED",
            format!(
                "A2A version `{}` is not supported (1.0 and 0.3 are)",
                version.unwrap_or("")
            ),
        )
        .render(b, &Value::Null);
    }
    let Some((op, task)) = protocol::rest_op(method, sub) else {
        return Failure::new(
            404,
            agentmesh_gateway::jsonrpc::METHOD_NOT_FOUND,
            "NOT_FOUND",
            format!("{method} {sub} is not an A2A REST operation this gateway fronts"),
        )
        .render(b, &Value::Null);
    };
    let params: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(bytes) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return invalid("the body must be a JSON object").render(b, &Value::Null),
            Err(e) => return invalid(format!("the body is not JSON: {e}")).render(b, &Value::Null),
        }
    };
    let (p, via_extension) =
        match gw.authenticate(&inc.headers, bytes, protocol::message_of(&params)) {
            Ok(x) => x,
            Err(e) => return unauthorized(&e).render(b, &Value::Null),
        };
    dispatch(
        gw,
        &p,
        inc,
        op,
        &params,
        task.as_deref(),
        &Value::Null,
        via_extension,
    )
    .await
}

/// The body to forward: as received, except that IATP credentials in the
/// message metadata are removed. An attestation is bearer-grade for five
/// minutes: the agent behind the gateway must not get one to replay.
fn forwarded_body(inc: &Incoming) -> Bytes {
    let key = agentmesh_iatp::METADATA_KEY.as_bytes();
    if !inc.bytes.windows(key.len()).any(|w| w == key) {
        return inc.bytes.clone();
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&inc.bytes) else {
        return inc.bytes.clone();
    };
    let params = match inc.binding {
        Binding::JsonRpc => v.get_mut("params"),
        Binding::Rest => Some(&mut v),
    };
    if let Some(params) = params {
        for k in ["message", "request"] {
            if let Some(md) = params
                .get_mut(k)
                .and_then(|m| m.get_mut("metadata"))
                .and_then(Value::as_object_mut)
            {
                md.remove(agentmesh_iatp::METADATA_KEY);
            }
        }
    }
    Bytes::from(v.to_string())
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    gw: &Gateway,
    p: &Principal,
    inc: &Incoming,
    op: Op,
    params: &Value,
    task: Option<&str>,
    id: &Value,
    via_extension: bool,
) -> Response {
    let b = inc.binding;
    let (target, verdict, capability) = match gw
        .govern(p, inc.agent, op, params, task, inc.bytes.len(), None)
        .await
    {
        Ok(x) => x,
        Err(f) => return f.render(b, id),
    };
    if let Some(backend) = gw.inner.agents[target].backend.clone() {
        let version = Version::from_param(inc.version.as_deref()).unwrap_or(Version::V0_3);
        let call = Judged {
            principal: p,
            agent: target,
            op,
            binding: b,
            version,
            params,
            verdict,
            id,
        };
        return backend.answer(gw, call).await;
    }
    let served = gw.inner.agents[target]
        .served
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let url = match b {
        Binding::JsonRpc => served.endpoints.jsonrpc.clone(),
        Binding::Rest => served.endpoints.rest.as_ref().map(|r| match &inc.query {
            Some(q) => format!("{r}{}?{q}", inc.rest_path),
            None => format!("{r}{}", inc.rest_path),
        }),
    };
    let Some(url) = url else {
        let f = if op == Op::ExtendedCard {
            Failure::new(
                400,
                EXTENDED_CARD_NOT_CONFIGURED,
                "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
                "no extended card",
            )
        } else {
            Failure::new(
                400,
                protocol::UNSUPPORTED_OPERATION,
                "UNSUPPORTED_OPERATION",
                "the agent does not offer this binding",
            )
        };
        return f.render(b, id);
    };
    let mut req = hyper::Request::builder()
        .method(inc.http_method.clone())
        .uri(&url);
    let headers = &inc.headers;
    for name in FORWARDED {
        if let Some(v) = headers.get(*name) {
            req = req.header(*name, v.clone());
        }
    }
    if headers.get("a2a-version").is_none()
        && let Some(v) = &inc.version_query
        && let Ok(v) = HeaderValue::from_str(v)
    {
        // The `?A2A-Version=` form, as the header upstreams read.
        req = req.header("a2a-version", v);
    }
    let req = match req.body(Full::new(forwarded_body(inc))) {
        Ok(r) => r,
        Err(e) => return invalid(format!("cannot forward: {e}")).render(b, id),
    };
    let engine = &gw.inner.engine;
    let resp = match tokio::time::timeout(gw.inner.timeout, gw.inner.http.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            engine.record_result(p, &verdict, false, json!({"upstream_error": e.to_string()}));
            let r = upstream_refusal(UpstreamFailure::Unavailable);
            let mut f = Failure::new(
                r.status,
                r.code,
                &r.reason.to_ascii_uppercase(),
                format!("agent `{}` is unreachable", gw.inner.agents[target].name),
            );
            f.metadata = json!({"audit_index": verdict.audit_index.map(|i| i.to_string())});
            return f.render(b, id);
        }
        Err(_) => {
            engine.record_result(p, &verdict, false, json!({"upstream_error": "timeout"}));
            let r = upstream_refusal(UpstreamFailure::Timeout);
            return Failure::new(
                r.status,
                r.code,
                &r.reason.to_ascii_uppercase(),
                format!(
                    "agent `{}` did not answer within {:?}",
                    gw.inner.agents[target].name, gw.inner.timeout
                ),
            )
            .render(b, id);
        }
    };
    relay(
        gw,
        p,
        target,
        op,
        b,
        verdict,
        capability,
        resp,
        via_extension,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn relay(
    gw: &Gateway,
    p: &Principal,
    agent: usize,
    op: Op,
    b: Binding,
    verdict: Verdict,
    capability: Capability,
    resp: hyper::Response<hyper::body::Incoming>,
    via_extension: bool,
) -> Response {
    let status = resp.status();
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut builder = Response::builder().status(status);
    for name in RELAYED {
        if let Some(v) = resp.headers().get(*name) {
            builder = builder.header(*name, v.clone());
        }
    }
    if via_extension {
        builder = builder.header(
            "a2a-extensions",
            HeaderValue::from_static(agentmesh_iatp::A2A_EXTENSION),
        );
    }
    let body = resp.into_body();
    if is_sse {
        builder = builder.header("x-accel-buffering", "no");
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let gw2 = gw.clone();
        let p2 = p.clone();
        tokio::spawn(async move {
            let mut body = body;
            let mut parser = sse::Parser::new(MAX_ANSWER);
            let (mut events, mut failed) = (0u64, !status.is_success());
            let mut gone = false;
            'read: while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    failed = true;
                    break;
                };
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                let Ok(parsed) = parser.feed(data) else {
                    failed = true;
                    break;
                };
                for ev in parsed {
                    if let Some(d) = &ev.data
                        && let Ok(v) = serde_json::from_str::<Value>(d)
                    {
                        events += 1;
                        let result = match b {
                            Binding::JsonRpc => v.get("result").cloned(),
                            Binding::Rest => Some(v.clone()),
                        };
                        if v.get("error").is_some() {
                            failed = true;
                        }
                        if let Some(r) = result {
                            let mut ids = Vec::new();
                            protocol::task_ids(&r, &mut ids);
                            gw2.learn(agent, &p2, &capability, &ids);
                            ids.clear();
                            protocol::context_ids(&r, &mut ids);
                            gw2.learn_contexts(agent, &p2, &ids);
                        }
                    }
                    if tx.send(Ok(Bytes::from(ev.encode()))).await.is_err() {
                        // The client went away: dropping the upstream body
                        // closes the upstream stream too.
                        gone = true;
                        break 'read;
                    }
                }
            }
            gw2.inner.engine.record_result(
                &p2,
                &verdict,
                !failed,
                json!({"stream_events": events, "client_disconnected": gone, "op": op.name()}),
            );
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        return builder
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| Response::new(Body::empty()));
    }
    let bytes = match http_body_util::Limited::new(body, MAX_ANSWER)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            gw.inner.engine.record_result(
                p,
                &verdict,
                false,
                json!({"upstream_error": e.to_string()}),
            );
            return Failure::new(
                502,
                UPSTREAM_UNAVAILABLE,
                "INVALID_AGENT_RESPONSE",
                format!(
                    "agent `{}` sent an unreadable answer",
                    gw.inner.agents[agent].name
                ),
            )
            .render(b, &Value::Null);
        }
    };
    let mut out = bytes.clone();
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut ok = status.is_success();
    if let Some(mut v) = parsed {
        if v.get("error").is_some() && b == Binding::JsonRpc {
            ok = false;
        }
        let result_ptr = match b {
            Binding::JsonRpc => "/result",
            Binding::Rest => "",
        };
        if ok {
            if let Some(r) = v.pointer(result_ptr) {
                let mut ids = Vec::new();
                protocol::task_ids(r, &mut ids);
                gw.learn(agent, p, &capability, &ids);
                ids.clear();
                protocol::context_ids(r, &mut ids);
                gw.learn_contexts(agent, p, &ids);
            }
            if op == Op::ListTasks
                && let Some(Value::Array(list)) = v.pointer_mut(&format!("{result_ptr}/tasks"))
            {
                // Only the caller's own tasks.
                list.retain(|t| t["id"].as_str().is_some_and(|id| gw.task_visible(p, id)));
                out = Bytes::from(v.to_string());
            }
            if op == Op::ExtendedCard
                && let Some(card) = v.pointer(result_ptr).cloned()
            {
                let base = format!("{}{}", gw.inner.base, gw.inner.agents[agent].prefix);
                match card::rewrite(&card, &format!("{base}/"), Some(&format!("{base}/rest"))) {
                    Ok(mut c) => {
                        gw.sign(&mut c);
                        if let Some(slot) = v.pointer_mut(result_ptr) {
                            *slot = c;
                        }
                        out = Bytes::from(v.to_string());
                    }
                    // Never pass on a card that points past the gateway.
                    Err(e) => {
                        gw.inner.engine.record_result(
                            p,
                            &verdict,
                            false,
                            json!({"upstream_error": e.to_string()}),
                        );
                        return Failure::new(
                            502,
                            protocol::INVALID_AGENT_RESPONSE,
                            "INVALID_AGENT_RESPONSE",
                            format!("the agent's extended card is unusable: {e}"),
                        )
                        .render(b, &Value::Null);
                    }
                }
            }
        }
    }
    gw.inner.engine.record_result(
        p,
        &verdict,
        ok,
        json!({"status": status.as_u16(), "bytes": bytes.len(), "op": op.name()}),
    );
    builder
        .body(Body::from(out))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Binds the configured address.
pub async fn bind(cfg: &A2aConfig) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_found_in_both_shapes() {
        let v1 = json!({"message": {}, "configuration": {"taskPushNotificationConfig": {"url": "https://a/"}}});
        let v03 = json!({"message": {}, "configuration": {"pushNotificationConfig": {"url": "https://b/"}}});
        let set = json!({"taskId": "t", "pushNotificationConfig": {"url": "https://c/"}});
        assert_eq!(webhook_urls(Op::Send, &v1), ["https://a/"]);
        assert_eq!(webhook_urls(Op::Stream, &v03), ["https://b/"]);
        assert_eq!(webhook_urls(Op::PushSet, &set), ["https://c/"]);
        assert!(
            webhook_urls(
                Op::Send,
                &json!({"message": {"parts": [{"url": "https://x/"}]}})
            )
            .is_empty()
        );
        // Aliases a lenient upstream parser might accept are found too.
        let snake = json!({"message": {}, "configuration": {"push_notification_config": {"URL": "https://d/"}}});
        let kebab = json!({"task-id": "t", "push-notification-config": {"url": "https://e/"}});
        assert_eq!(webhook_urls(Op::Send, &snake), ["https://d/"]);
        assert_eq!(webhook_urls(Op::PushSet, &kebab), ["https://e/"]);
    }
}
