//! The control plane as its clients see it: a small HTTP client, the
//! [`RemoteRegistry`] a gateway enforces with (a cached snapshot of the
//! control plane's registry, kept while the control plane is unreachable),
//! the event follower that reloads it within a second of a change, and the
//! audit shipper.

use agentmesh_delegation::AgentStatus;
use agentmesh_identity::{Did, PublicKey};
use agentmesh_store::{
    AgentRecord, ApprovalRecord, ApprovalStatus, Registry, RevokedCredential, RevokedLink,
    SponsorRecord, StoreError, ToolPin,
};
use agentmesh_trust::AgentTrust;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a control-plane call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("control plane {0} is unreachable: {1}")]
    Unreachable(String, String),
    #[error("control plane answered {status}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("control plane sent an unreadable answer: {0}")]
    Decode(String),
    #[error("`{0}` is not an http:// URL")]
    BadUrl(String),
}

impl From<ClientError> for StoreError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api {
                status: 404,
                message,
                ..
            } => StoreError::NotFound {
                what: "record",
                key: message,
            },
            ClientError::Api {
                status: 409,
                message,
                ..
            } => StoreError::Conflict(message),
            e => StoreError::Conflict(e.to_string()),
        }
    }
}

/// An HTTP client for one control plane.
#[derive(Clone, Debug)]
pub struct ControlPlane {
    base: String,
    token: Option<Arc<str>>,
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl ControlPlane {
    /// `url` like `http://127.0.0.1:7400`; `token` the admin token (needed
    /// by everything but the public and proof-of-possession routes).
    pub fn new(url: &str, token: Option<&str>) -> Result<Self, ClientError> {
        let base = url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") || base.parse::<hyper::Uri>().is_err() {
            return Err(ClientError::BadUrl(url.to_owned()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Ok(Self {
            base,
            token: token.map(Arc::from),
            http: Client::builder(TokioExecutor::new()).build(connector),
            timeout: Duration::from_secs(10),
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends a request; returns the status and body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        bearer: Option<&str>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = bearer.or(self.token.as_deref()) {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::BadUrl(e.to_string()))?;
        let fut = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| ClientError::Unreachable(self.base.clone(), e.to_string()))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Unreachable(self.base.clone(), e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Unreachable(self.base.clone(), "timed out".into()))?
    }

    /// Sends JSON (or nothing), expects JSON back; API errors become
    /// [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.call_as(method, path, body, None).await
    }

    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<Value, ClientError> {
        let (status, bytes) = self
            .send(
                method,
                path,
                body.map(|b| b.to_string().into_bytes()),
                bearer,
            )
            .await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("{path}: {e}")))?;
        if status.is_success() {
            Ok(v)
        } else {
            Err(ClientError::Api {
                status: status.as_u16(),
                code: v["error"]["code"].as_str().unwrap_or("").to_owned(),
                message: v["error"]["message"].as_str().unwrap_or("").to_owned(),
            })
        }
    }

    /// The key credentials are signed with.
    pub async fn authority(&self) -> Result<(String, PublicKey), ClientError> {
        let v = self.call(Method::GET, "/v1/authority", None).await?;
        let mesh = v["mesh"].as_str().unwrap_or_default().to_owned();
        let key = Did::parse(&mesh)
            .ok()
            .and_then(|d| d.public_key().ok())
            .ok_or_else(|| ClientError::Decode("`mesh` is not a DID".into()))?;
        Ok((mesh, key))
    }

    /// `POST /v1/gateways/vouch`: asks the control plane, as the gateway
    /// whose credential this client holds (`credential_id`), to vouch for
    /// `key`, proving possession of it. Returns the voucher text and when
    /// it expires.
    pub async fn vouch(
        &self,
        key: &agentmesh_identity::KeyPair,
        credential_id: &str,
    ) -> Result<(String, u64), ClientError> {
        use base64::Engine as _;
        let did = key.did().to_string();
        let at = agentmesh_store::unix_now();
        let message = crate::gateway_credential::vouch_request_message(credential_id, &did, at);
        let proof = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(
            crate::gateway_credential::VOUCH_REQUEST_DOMAIN,
            message.as_bytes(),
        ));
        let v = self
            .call(
                Method::POST,
                "/v1/gateways/vouch",
                Some(&serde_json::json!({"did": did, "at": at, "proof": proof})),
            )
            .await?;
        match (v["voucher"].as_str(), v["expires_at"].as_u64()) {
            (Some(t), Some(exp)) => Ok((t.to_owned(), exp)),
            _ => Err(ClientError::Decode(
                "the control plane's voucher answer has no `voucher`/`expires_at`".into(),
            )),
        }
    }
}

/// `GET /v1/snapshot`, as the gateway keeps it.
#[derive(Debug, Deserialize)]
pub struct RemoteSnapshot {
    pub seq: i64,
    pub sponsors: Vec<SponsorRecord>,
    pub agents: Vec<AgentRecord>,
    pub revoked_links: Vec<RevokedLink>,
    pub revoked_credentials: Vec<RevokedCredential>,
    pub trust: HashMap<String, AgentTrust>,
}

/// The registry of a control plane, read through a cached snapshot. When
/// the control plane cannot be reached, the last snapshot keeps serving
/// (the gateway goes on enforcing what it knew: revoked stays revoked,
/// unknown stays unknown); without any snapshot, every read fails.
#[derive(Debug)]
pub struct RemoteRegistry {
    cp: ControlPlane,
    cache: Mutex<Option<(Instant, Arc<RemoteSnapshot>)>>,
    max_age: Duration,
    reachable: std::sync::atomic::AtomicBool,
}

fn unsupported(what: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{what} is done on the control plane (its API or `agentmesh` against its home), not through a gateway"
    ))
}

impl RemoteRegistry {
    pub fn new(cp: ControlPlane) -> Self {
        Self {
            cp,
            cache: Mutex::new(None),
            max_age: Duration::from_millis(200),
            reachable: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn control_plane(&self) -> &ControlPlane {
        &self.cp
    }

    /// True when the last fetch reached the control plane.
    pub fn reachable(&self) -> bool {
        self.reachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets the snapshot's age, so the next read fetches.
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock()
            && let Some((at, _)) = c.as_mut()
        {
            *at = Instant::now() - Duration::from_secs(3600);
        }
    }

    /// The snapshot: fresh if younger than 200 ms, fetched otherwise, the
    /// stale one if the fetch fails.
    pub async fn snapshot(&self) -> Result<Arc<RemoteSnapshot>, StoreError> {
        let cached = self.cache.lock().ok().and_then(|c| c.clone());
        if let Some((at, s)) = &cached
            && at.elapsed() < self.max_age
        {
            return Ok(s.clone());
        }
        match self.cp.call(Method::GET, "/v1/snapshot", None).await {
            Ok(v) => {
                let snap: RemoteSnapshot = serde_json::from_value(v)
                    .map_err(|e| StoreError::Corrupt(format!("control-plane snapshot: {e}")))?;
                let snap = Arc::new(snap);
                if let Ok(mut c) = self.cache.lock() {
                    *c = Some((Instant::now(), snap.clone()));
                }
                self.reachable
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(snap)
            }
            Err(e) => {
                self.reachable
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                match cached {
                    Some((_, s)) => Ok(s),
                    None => Err(e.into()),
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Registry for RemoteRegistry {
    async fn insert_sponsor(&self, _: &SponsorRecord) -> Result<(), StoreError> {
        Err(unsupported("creating sponsors"))
    }
    async fn sponsor_by_email(&self, email: &str) -> Result<Option<SponsorRecord>, StoreError> {
        Ok(self
            .snapshot()
            .await?
            .sponsors
            .iter()
            .find(|s| s.email == email)
            .cloned())
    }
    async fn sponsor_by_did(&self, did: &Did) -> Result<Option<SponsorRecord>, StoreError> {
        Ok(self
            .snapshot()
            .await?
            .sponsors
            .iter()
            .find(|s| s.did.key_bytes() == did.key_bytes())
            .cloned())
    }
    async fn list_sponsors(&self) -> Result<Vec<SponsorRecord>, StoreError> {
        Ok(self.snapshot().await?.sponsors.clone())
    }
    async fn insert_agent(&self, _: &AgentRecord) -> Result<(), StoreError> {
        Err(unsupported("registering agents"))
    }
    async fn agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>, StoreError> {
        Ok(self
            .snapshot()
            .await?
            .agents
            .iter()
            .find(|a| a.name == name)
            .cloned())
    }
    async fn agent_by_did(&self, did: &Did) -> Result<Option<AgentRecord>, StoreError> {
        Ok(self
            .snapshot()
            .await?
            .agents
            .iter()
            .find(|a| a.did.key_bytes() == did.key_bytes())
            .cloned())
    }
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        Ok(self.snapshot().await?.agents.clone())
    }
    async fn revoke_agent(
        &self,
        did: &Did,
        reason: &str,
        _now: u64,
    ) -> Result<Vec<String>, StoreError> {
        let v = self
            .cp
            .call(
                Method::POST,
                &format!("/v1/agents/{}/revoke", did.to_mesh()),
                Some(&json!({"reason": reason})),
            )
            .await?;
        self.invalidate();
        Ok(serde_json::from_value(v["revoked"].clone()).unwrap_or_default())
    }
    async fn set_agent_status(
        &self,
        did: &Did,
        status: AgentStatus,
        reason: Option<&str>,
        _now: u64,
    ) -> Result<(), StoreError> {
        let verb = match status {
            AgentStatus::Suspended => "suspend",
            AgentStatus::Active => "reactivate",
            AgentStatus::Revoked => return Err(unsupported("revoking through set_agent_status")),
        };
        self.cp
            .call(
                Method::POST,
                &format!("/v1/agents/{}/{verb}", did.to_mesh()),
                Some(&json!({"reason": reason})),
            )
            .await?;
        self.invalidate();
        Ok(())
    }
    async fn trust_states(&self) -> Result<Vec<(String, AgentTrust)>, StoreError> {
        Ok(self
            .snapshot()
            .await?
            .trust
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    async fn save_trust_state(&self, agent: &str, state: &AgentTrust) -> Result<(), StoreError> {
        let body = serde_json::to_value(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.cp
            .call(Method::PUT, &format!("/v1/trust/{agent}"), Some(&body))
            .await?;
        Ok(())
    }
    async fn revoke_link(&self, _: &RevokedLink) -> Result<(), StoreError> {
        Err(unsupported("revoking delegations"))
    }
    async fn revoked_links(&self) -> Result<Vec<RevokedLink>, StoreError> {
        Ok(self.snapshot().await?.revoked_links.clone())
    }
    async fn insert_approval(&self, a: &ApprovalRecord) -> Result<(), StoreError> {
        let body = serde_json::to_value(a).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.cp
            .call(Method::POST, "/v1/approvals", Some(&body))
            .await?;
        Ok(())
    }
    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        match self
            .cp
            .call(Method::GET, &format!("/v1/approvals/{id}"), None)
            .await
        {
            Ok(v) => Ok(Some(
                serde_json::from_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            )),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn list_approvals(&self, all: bool) -> Result<Vec<ApprovalRecord>, StoreError> {
        let v = self
            .cp
            .call(Method::GET, &format!("/v1/approvals?all={all}"), None)
            .await?;
        serde_json::from_value(v["approvals"].clone())
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
    async fn set_approval_state(
        &self,
        id: &str,
        from: ApprovalStatus,
        to: ApprovalStatus,
        by: Option<&str>,
        reason: Option<&str>,
        _now: u64,
    ) -> Result<ApprovalRecord, StoreError> {
        let v = self
            .cp
            .call(
                Method::POST,
                &format!("/v1/approvals/{id}/state"),
                Some(&json!({"from": from, "to": to, "by": by, "reason": reason})),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
    async fn enqueue_audit(&self, _: &[u8], _: u64) -> Result<i64, StoreError> {
        Err(unsupported("queueing audit entries"))
    }
    /// A gateway holds its own log and ships it; the control plane's
    /// outbox is drained by the control plane.
    async fn queued_audit(&self, _: u32) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        Ok(Vec::new())
    }
    async fn dequeue_audit(&self, _: &[i64]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn revoke_credential(&self, r: &RevokedCredential) -> Result<(), StoreError> {
        self.cp
            .call(
                Method::POST,
                "/v1/credentials/revoke",
                Some(&json!({"id": r.id, "reason": r.reason})),
            )
            .await?;
        self.invalidate();
        Ok(())
    }
    async fn revoked_credentials(&self, now: u64) -> Result<Vec<RevokedCredential>, StoreError> {
        Ok(self
            .snapshot()
            .await?
            .revoked_credentials
            .iter()
            .filter(|r| r.expires_at > now)
            .cloned()
            .collect())
    }
    async fn tool_pins(&self) -> Result<Vec<ToolPin>, StoreError> {
        Err(unsupported("tool pins (kept in the gateway's own home)"))
    }
    async fn save_tool_pin(&self, _: &ToolPin) -> Result<(), StoreError> {
        Err(unsupported("tool pins (kept in the gateway's own home)"))
    }
}

/// What the event follower saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// Connected (or reconnected): reload everything.
    Connected,
    /// One change, by kind (`revocation`, `policy`, …).
    Change(String),
    /// The stream broke; the gateway keeps its cached state.
    Disconnected,
}

/// Follows `GET /v1/events` until the returned handle is dropped or
/// aborted, reconnecting every 500 ms while the control plane is down.
pub fn follow_events<F, Fut>(cp: ControlPlane, mut on_event: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut(FeedEvent) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            let req = Request::builder()
                .method(Method::GET)
                .uri(format!("{}/v1/events", cp.base))
                .header("accept", "text/event-stream")
                .header(
                    "authorization",
                    format!("Bearer {}", cp.token.as_deref().unwrap_or_default()),
                )
                .body(Full::new(Bytes::new()));
            let resp = match req {
                Ok(req) => tokio::time::timeout(Duration::from_secs(3), cp.http.request(req)).await,
                Err(_) => return,
            };
            if let Ok(Ok(resp)) = resp
                && resp.status().is_success()
            {
                on_event(FeedEvent::Connected).await;
                let mut body = resp.into_body();
                let mut reader = FeedReader::default();
                // A keepalive arrives every 10 s; silence for 25 s means
                // the connection is dead even if TCP has not noticed.
                while let Ok(Some(Ok(frame))) =
                    tokio::time::timeout(Duration::from_secs(25), body.frame()).await
                {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    match reader.feed(&data) {
                        Ok(kinds) => {
                            for kind in kinds {
                                on_event(FeedEvent::Change(kind)).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the control plane's event stream is unreadable; reconnecting");
                            break;
                        }
                    }
                }
                on_event(FeedEvent::Disconnected).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// Reads the change feed (`GET /v1/events`) with the shared SSE parser
/// (so CRLF- and CR-framed events read as LF ones do): bytes in, the kinds
/// of the changes they completed out. Public for the fuzz target
/// (`fuzz/fuzz_targets/sse_stream.rs`); [`follow_events`] is its caller.
#[derive(Debug)]
pub struct FeedReader {
    parser: agentmesh_gateway::sse::Parser,
}

/// The largest feed event read (they are small JSON objects).
const MAX_FEED_EVENT: usize = 1 << 20;

impl Default for FeedReader {
    fn default() -> Self {
        FeedReader {
            parser: agentmesh_gateway::sse::Parser::new(MAX_FEED_EVENT),
        }
    }
}

impl FeedReader {
    /// Adds received bytes; returns the kinds of the changes completed.
    /// An error (an oversized or non-UTF-8 stream) ends the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, agentmesh_gateway::sse::SseError> {
        Ok(self
            .parser
            .feed(bytes)?
            .iter()
            .filter_map(change_kind)
            .collect())
    }
}

/// The kind of a `change` (or `resync`) event; `None` for comments and
/// `hello`.
fn change_kind(event: &agentmesh_gateway::sse::Event) -> Option<String> {
    match event.event.as_deref().unwrap_or("message") {
        "change" => {
            let v: Value = serde_json::from_str(event.data.as_deref()?).ok()?;
            Some(v["kind"].as_str().unwrap_or("unknown").to_owned())
        }
        "resync" => Some("resync".into()),
        _ => None,
    }
}

/// Ships a gateway's audit entries to the control plane, from the index
/// recorded in a cursor file. Entries stay in the gateway's own log either
/// way; shipping only copies. At least once: a batch whose answer is lost
/// is shipped again (each copy names its source index in
/// `detail.shipped_from`).
#[derive(Debug, Clone)]
pub struct AuditShipper {
    cp: ControlPlane,
    log: Arc<agentmesh_audit::AuditLog>,
    cursor: std::path::PathBuf,
    source: String,
    /// The next index to ship; one shipment at a time.
    next: Arc<tokio::sync::Mutex<u64>>,
}

/// Entries per `POST /v1/audit/ingest`.
const SHIP_BATCH: u64 = 256;

impl AuditShipper {
    /// Starts from the cursor file (index 0 when there is none).
    pub fn new(
        cp: ControlPlane,
        log: Arc<agentmesh_audit::AuditLog>,
        cursor: std::path::PathBuf,
        source: String,
    ) -> Self {
        let next = match std::fs::read_to_string(&cursor) {
            Ok(s) => s.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(cursor = %cursor.display(), "audit shipping cursor unreadable; shipping from the start (the control plane may get copies twice)");
                0
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::warn!(cursor = %cursor.display(), error = %e, "audit shipping cursor unreadable; shipping from the start");
                0
            }
        };
        Self {
            cp,
            log,
            cursor,
            source,
            next: Arc::new(tokio::sync::Mutex::new(next)),
        }
    }

    /// Ships everything appended so far; returns how many entries went.
    /// Reading the log and writing the cursor run off the async runtime.
    pub async fn ship_pending(&self) -> Result<u64, ClientError> {
        use base64::Engine;
        let mut next = self.next.lock().await;
        let mut shipped = 0;
        loop {
            let size = self.log.size();
            if *next >= size {
                return Ok(shipped);
            }
            let (from, end) = (*next, (*next + SHIP_BATCH).min(size));
            let log = self.log.clone();
            let entries = tokio::task::spawn_blocking(move || {
                (from..end)
                    .map(|i| {
                        log.entry(i).map(|e| {
                            json!([
                                i,
                                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&e.bytes)
                            ])
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| ClientError::Decode(format!("reading the audit log: {e}")))?
            .map_err(|e| ClientError::Decode(format!("reading audit entry: {e}")))?;
            let n = entries.len() as u64;
            let body = json!({"source": self.source, "entries": entries});
            self.cp
                .call(Method::POST, "/v1/audit/ingest", Some(&body))
                .await?;
            *next += n;
            shipped += n;
            let (cursor, value) = (self.cursor.clone(), next.to_string());
            let written = tokio::task::spawn_blocking(move || std::fs::write(&cursor, value)).await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::warn!(cursor = %self.cursor.display(), "could not save the audit shipping cursor; after a restart some entries are shipped again");
            }
        }
    }

    /// Ships every `every` until aborted; failures are logged and retried.
    pub fn run(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match self.ship_pending().await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("audit shipping to the control plane resumed");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "could not ship audit entries to the control plane; retrying every {every:?} (they stay in this gateway's log)");
                    }
                    Err(e) => tracing::debug!(error = %e, "audit shipping still failing"),
                }
            }
        })
    }
}
