//! The REST API. Admin routes need `Authorization: Bearer <admin token>`;
//! agent routes a credential (`amcr1.…`); registration and credential
//! requests are authenticated by proof of possession (see [`crate::pop`]).
//! Bodies are JSON (policy: YAML text), at most 1 MiB; anything malformed
//! is a 400 with a message, never a 5xx.

use crate::State;
use crate::error::{ApiError, ApiResult};
use crate::pop::{self, CredentialRequest, RegistrationRequest};
use agentmesh_audit::{Draft, Event, hex};
use agentmesh_capability::Capability;
use agentmesh_delegation::AgentStatus;
use agentmesh_engine::credential;
use agentmesh_identity::{Did, validate_agent_name, validate_email};
use agentmesh_store::{
    AgentRecord, ApprovalRecord, ApprovalStatus, KeyKind, NewAgent, NewDelegation, PolicyDocument,
    Registration, RegistrationStatus, RevokedCredential, unix_now,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1 << 20;
/// Largest body of `POST /v1/agents/bulk` (10 000 agents).
pub const MAX_BULK_BODY: usize = 8 << 20;

pub fn router(state: State) -> Router {
    Router::new()
        .route("/", get(crate::dashboard::page))
        .route("/dashboard", get(crate::dashboard::page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/authority", get(authority))
        .route("/v1/registrations/challenge", post(registration_challenge))
        .route("/v1/registrations", post(register).get(list_registrations))
        .route("/v1/registrations/{id}", get(get_registration))
        .route("/v1/registrations/{id}/approve", post(approve_registration))
        .route("/v1/registrations/{id}/reject", post(reject_registration))
        .route("/v1/credentials/challenge", post(credential_challenge))
        .route("/v1/credentials", post(issue_credential))
        .route("/v1/credentials/revoke", post(revoke_credential))
        .route("/v1/me", get(me))
        .route("/v1/sponsors", get(list_sponsors).post(create_sponsor))
        .route("/v1/agents", get(list_agents).post(create_agent))
        // 10 000 agents do not fit in the default 1 MiB.
        .route(
            "/v1/agents/bulk",
            post(bulk_agents).layer(axum::extract::DefaultBodyLimit::max(MAX_BULK_BODY)),
        )
        .route("/v1/agents/{id}", get(get_agent))
        .route("/v1/agents/{id}/revoke", post(revoke_agent))
        .route("/v1/agents/{id}/suspend", post(suspend_agent))
        .route("/v1/agents/{id}/reactivate", post(reactivate_agent))
        .route("/v1/delegations", post(delegate))
        .route("/v1/delegations/revoke", post(revoke_delegation))
        .route("/v1/delegations/verify", post(verify_delegation))
        .route("/v1/policy", get(get_policy).put(put_policy))
        .route("/v1/trust", get(list_trust))
        .route("/v1/trust/{agent}", get(get_trust).put(put_trust))
        .route("/v1/trust/{agent}/history", get(trust_history))
        .route("/v1/approvals", get(list_approvals).post(insert_approval))
        .route("/v1/approvals/{id}", get(get_approval))
        .route("/v1/approvals/{id}/approve", post(approve_approval))
        .route("/v1/approvals/{id}/deny", post(deny_approval))
        .route("/v1/approvals/{id}/state", post(approval_state))
        .route("/v1/audit", get(audit_entries))
        .route(
            "/v1/audit/checkpoint",
            get(audit_checkpoint).post(sign_checkpoint),
        )
        .route("/v1/audit/ingest", post(audit_ingest))
        .route("/v1/audit/{index}", get(audit_entry))
        .route("/v1/audit/{index}/proof", get(audit_proof))
        .route("/v1/compliance/report", get(compliance_report))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/gateways", post(issue_gateway_credential))
        .route("/v1/gateways/vouch", post(vouch_gateway))
        .route("/v1/events", get(events))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_host,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see docs/openapi.json)")
}

/// Refuses requests whose `Host` is not one this control plane answers to
/// (DNS rebinding: a page on another origin resolving its name to this
/// address must not reach the dashboard or the unauthenticated routes).
async fn check_host(
    axum::extract::State(state): axum::extract::State<State>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host else {
        return ApiError::bad_request("no_host", "the request has no Host header").into_response();
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    if !state
        .cfg
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
    {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            format!(
                "this control plane does not answer to `{name}`; start it with `--allowed-host {name}` if that is its name"
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Counts every request by its route pattern, and turns axum's own
/// rejections (wrong method, body too large) into JSON errors.
async fn observe(
    axum::extract::State(state): axum::extract::State<State>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    state
        .metrics
        .requests
        .get_or_create(&crate::metrics::RequestLabels {
            route,
            method,
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .request_duration
        .observe(started.elapsed().as_secs_f64());
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json && status == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::new(
            status,
            "method_not_allowed",
            "this route does not take that method",
        )
        .into_response();
    }
    if !is_json && status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            "too_large",
            format!("bodies are limited to {MAX_BODY} bytes"),
        )
        .into_response();
    }
    resp
}

fn ok(status: StatusCode, v: Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "body_required",
            "a JSON body is required",
        ));
    }
    // Every body is an object: serde would also read a struct from an
    // array (`[null, null]`), which the schema does not allow.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "malformed_body",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_body",
            format!("the body is not a valid request: {e}"),
        )
    })
}

/// A body that may be empty (all fields optional).
fn optional_body<T: DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    json_body(body)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Requires the admin token, or a gateway credential (see
/// [`crate::gateway_credential`]) for the routes a gateway needs. Returns
/// the gateway's name, when a gateway called.
async fn admin_or_gateway(state: &State, headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(t) = bearer(headers) else {
        return admin(state, headers).map(|()| None);
    };
    if !t.starts_with(crate::gateway_credential::GATEWAY_PREFIX) {
        return admin(state, headers).map(|()| None);
    }
    gateway_claims(state, t).await.map(|c| Some(c.name))
}

/// Requires a gateway credential (the admin token is not a gateway).
async fn gateway_caller(
    state: &State,
    headers: &HeaderMap,
) -> ApiResult<crate::gateway_credential::GatewayClaims> {
    match bearer(headers) {
        Some(t) if t.starts_with(crate::gateway_credential::GATEWAY_PREFIX) => {
            gateway_claims(state, t).await
        }
        Some(t) if state.is_admin(t) => Err(ApiError::forbidden(
            "gateway_only",
            "this route is for gateways: present a gateway credential (amgw1.…), not the admin token",
        )),
        _ => Err(ApiError::unauthorized(
            "this route needs `Authorization: Bearer <gateway credential>` (amgw1.…)",
        )),
    }
}

/// A gateway credential's claims, checked: signature, time, revocation.
async fn gateway_claims(
    state: &State,
    t: &str,
) -> ApiResult<crate::gateway_credential::GatewayClaims> {
    let now = unix_now();
    let claims = crate::gateway_credential::verify(t, state.mesh_key.public(), now)
        .map_err(|e| ApiError::unauthorized(e.to_string()).with_code(e.code()))?;
    if state.sql_revoked_credential(&claims.id, now).await? {
        return Err(ApiError::unauthorized(format!(
            "gateway credential `{}` was revoked",
            claims.id
        ))
        .with_code("credential_revoked"));
    }
    Ok(claims)
}

/// Requires the admin token.
fn admin(state: &State, headers: &HeaderMap) -> ApiResult<()> {
    match bearer(headers) {
        None => Err(ApiError::unauthorized(
            "this route needs `Authorization: Bearer <admin token>` (the token is in the mesh home's admin.token)",
        )),
        Some(t) if state.is_admin(t) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("the admin token is not valid")),
    }
}

/// Requires an agent credential; returns the agent.
async fn agent_caller(state: &State, headers: &HeaderMap) -> ApiResult<(AgentRecord, String)> {
    let text = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("this route needs `Authorization: Bearer <credential>`")
    })?;
    let now = unix_now();
    let checked = state
        .credentials
        .verify(text, state.mesh_key.public(), credential::ANY_AUDIENCE, now)
        .or_else(|e| match e {
            // A credential for a specific gateway is still the agent's.
            credential::CredentialError::WrongAudience { .. } => {
                credential::decode(text, state.mesh_key.public()).and_then(|c| {
                    credential::check(&c, &c.aud, now)?;
                    Ok(std::sync::Arc::new(credential::Checked {
                        subject: Did::parse(&c.sub)
                            .map_err(|_| credential::CredentialError::Malformed("sub"))?,
                        claims: c,
                    }))
                })
            }
            e => Err(e),
        })
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let revoked = state
        .sql_revoked_credential(&checked.claims.id, now)
        .await?;
    if revoked {
        return Err(ApiError::unauthorized("this credential was revoked"));
    }
    let agent = state
        .mesh
        .registry()
        .agent_by_did(&checked.subject)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the credential's agent is not registered"))?;
    if agent.status != AgentStatus::Active {
        return Err(ApiError::forbidden(
            "agent_inactive",
            format!("agent `{}` is {:?}", agent.name, agent.status),
        ));
    }
    Ok((agent, checked.claims.id.clone()))
}

impl crate::AppState {
    async fn sql_revoked_credential(&self, id: &str, now: u64) -> ApiResult<bool> {
        use agentmesh_store::Registry;
        Ok(self
            .sql
            .revoked_credentials(now)
            .await?
            .iter()
            .any(|r| r.id == id))
    }
}

async fn audit(
    state: &State,
    event: Event,
    agent: Option<&str>,
    sponsor: &str,
    detail: Value,
) -> ApiResult<Option<u64>> {
    let recorded = state
        .mesh
        .record(Draft {
            event: event.into(),
            agent: agent.unwrap_or_default().to_owned(),
            sponsor: sponsor.to_owned(),
            action: event.into(),
            decision: "allow".to_owned(),
            detail,
            ..Draft::default()
        })
        .await?;
    Ok(recorded.index())
}

fn parse_caps(list: &[String]) -> ApiResult<Vec<Capability>> {
    list.iter()
        .map(|c| {
            Capability::parse(c)
                .map_err(|e| ApiError::bad_request("bad_capability", format!("`{c}`: {e}")))
        })
        .collect()
}

fn parse_did(s: &str) -> ApiResult<Did> {
    Did::parse(s).map_err(|e| ApiError::bad_request("bad_did", format!("`{s}`: {e}")))
}

// ---------------------------------------------------------------- public

async fn healthz(axum::extract::State(state): axum::extract::State<State>) -> Response {
    let db = state.sql.last_change().await;
    let status = if db.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    ok(
        status,
        json!({
            "status": if db.is_ok() { "ok" } else { "database unreachable" },
            "replica": state.cfg.replica,
            "backend": format!("{:?}", state.sql.backend()).to_lowercase(),
            "feed_seq": state.feed.last(),
            "audit_holder": state.mesh.audit_opened(),
            "mesh": state.mesh_did,
        }),
    )
}

async fn metrics(axum::extract::State(state): axum::extract::State<State>) -> Response {
    // Counting agents scans the table: at most every 15 s, when scraped,
    // never in the background (with 10⁶ agents a scan costs real CPU).
    if state.metrics.agents_due(std::time::Duration::from_secs(15))
        && let Ok(counts) = state.sql.count_agents_by_status().await
    {
        for (status, n) in counts {
            state.metrics.set_agents(&status, n);
        }
    }
    let mut r = state.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn authority(axum::extract::State(state): axum::extract::State<State>) -> Response {
    let home = state.mesh.home();
    let vkey = agentmesh_audit::note::NoteSigner::new(&home.audit_origin(), state.mesh_key.clone())
        .map(|s| s.verifier().to_vkey())
        .unwrap_or_default();
    ok(
        StatusCode::OK,
        json!({
            "mesh": state.mesh_did,
            "public_key": hex(state.mesh_key.public().as_bytes()),
            "trust_domain": home.config().trust_domain,
            "audit_origin": home.audit_origin(),
            "audit_vkey": vkey,
            "credential_ttl_secs": state.cfg.credential_ttl.as_secs(),
        }),
    )
}

async fn new_challenge(state: &State, purpose: &str) -> ApiResult<Response> {
    let nonce = pop::nonce();
    if nonce.len() != 32 {
        return Err(ApiError::internal("no randomness available"));
    }
    let expires_at = unix_now() + pop::CHALLENGE_TTL_SECS;
    state
        .sql
        .insert_challenge(&nonce, purpose, expires_at)
        .await?;
    Ok(ok(
        StatusCode::CREATED,
        pop::challenge_json(&nonce, expires_at, &state.mesh_did),
    ))
}

async fn registration_challenge(
    axum::extract::State(state): axum::extract::State<State>,
) -> ApiResult<Response> {
    new_challenge(&state, "register").await
}

async fn credential_challenge(
    axum::extract::State(state): axum::extract::State<State>,
) -> ApiResult<Response> {
    new_challenge(&state, "credential").await
}

fn registration_json(r: &Registration) -> Value {
    json!(r)
}

/// At most this much of an unauthenticated caller's text goes into an audit
/// leaf (longer values are recorded by length and SHA-256).
const MAX_AUDITED_CLAIM: usize = 128;

fn bounded(text: &str) -> Value {
    if text.len() <= MAX_AUDITED_CLAIM {
        Value::from(text)
    } else {
        json!({"bytes": text.len(), "sha256": hex(&crate::sha256(text.as_bytes()))})
    }
}

/// Records a rejected unauthenticated request from `peer`: the first few
/// per peer and minute one by one (with bounded fields), the rest counted
/// and summarised (see `agentmesh_engine::source`).
async fn audit_rejection(
    state: &State,
    peer: std::net::IpAddr,
    sponsor: &str,
    detail: Value,
) -> ApiResult<()> {
    let now_ms = unix_now().saturating_mul(1000);
    let seen = state.rejections.failure(&peer.to_string(), now_ms);
    if let Some((source, window_start_ms, count)) = seen.summary {
        rejection_summary(state, source, window_start_ms, count).await?;
    }
    if seen.record {
        let mut detail = detail;
        detail["source"] = Value::from(peer.to_string());
        audit(state, Event::RegistrationRejected, None, sponsor, detail).await?;
    }
    if let Some(failures) = seen.anomaly {
        audit(
            state,
            Event::RegistrationSourceAnomaly,
            None,
            "",
            json!({"source": peer.to_string(), "failures": failures,
                   "window_secs": agentmesh_engine::source::WINDOW_MS / 1000}),
        )
        .await?;
    }
    Ok(())
}

async fn rejection_summary(
    state: &State,
    source: String,
    window_start_ms: u64,
    count: u32,
) -> ApiResult<()> {
    audit(
        state,
        Event::RegistrationRejectedSummary,
        None,
        "",
        json!({"source": source, "rejections": count, "window_start_ms": window_start_ms,
               "window_secs": agentmesh_engine::source::WINDOW_MS / 1000}),
    )
    .await?;
    Ok(())
}

/// Writes the summaries of windows that are over (called periodically).
pub(crate) async fn summarise_rejections(state: &State) {
    for (source, start, count) in state.rejections.sweep(unix_now().saturating_mul(1000)) {
        if let Err(e) = rejection_summary(state, source, start, count).await {
            tracing::error!(error = %e.message, "could not audit a summary of rejected registrations");
        }
    }
}

async fn register(
    axum::extract::State(state): axum::extract::State<State>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: RegistrationRequest = json_body(&body)?;
    validate_agent_name(&req.name).map_err(|e| ApiError::bad_request("bad_name", e.to_string()))?;
    let sponsor = validate_email(&req.sponsor)
        .map_err(|e| ApiError::bad_request("bad_sponsor", e.to_string()))?;
    if req.capabilities.is_empty() {
        return Err(ApiError::bad_request(
            "bad_capability",
            "an agent needs at least one capability",
        ));
    }
    let capabilities = parse_caps(&req.capabilities)?;
    let now = unix_now();
    let did = match pop::check(
        pop::REGISTER_DOMAIN,
        &req.did,
        &req.message(&state.mesh_did),
        &req.signature,
        req.timestamp,
        now,
    ) {
        Ok(d) => d,
        Err(e) => {
            state.metrics.registration(e.code());
            audit_rejection(
                &state,
                peer.ip(),
                &sponsor,
                json!({"name": req.name, "did": bounded(&req.did), "reason": e.code(),
                       "message": bounded(&e.to_string())}),
            )
            .await?;
            return Err(ApiError::unauthorized(e.to_string()).with_code(e.code()));
        }
    };
    if !state
        .sql
        .consume_challenge(&req.nonce, "register", now)
        .await?
    {
        state.metrics.registration(pop::PopError::Nonce.code());
        return Err(ApiError::unauthorized(pop::PopError::Nonce.to_string()).with_code("pop_nonce"));
    }
    let s = state
        .mesh
        .registry()
        .sponsor_by_email(&sponsor)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no sponsor `{sponsor}`")))?;
    if !s.active {
        return Err(ApiError::forbidden(
            "sponsor_inactive",
            format!("sponsor `{sponsor}` is deactivated"),
        ));
    }
    let reg = Registration {
        id: format!("reg_{}", pop::nonce()),
        name: req.name.clone(),
        sponsor: sponsor.clone(),
        agent_did: did.to_mesh(),
        capabilities,
        parent: req.parent.clone(),
        expires_at: req.expires_at,
        state: RegistrationStatus::Pending,
        created_at: now,
        decided_at: None,
        decided_by: None,
        reason: None,
    };
    state.sql.insert_registration(&reg).await?;
    state.metrics.registration("requested");
    audit(
        &state,
        Event::RegistrationRequested,
        Some(&reg.agent_did.to_string()),
        &sponsor,
        json!({"registration": reg.id, "name": reg.name, "capabilities": reg.capabilities}),
    )
    .await?;
    Ok(ok(StatusCode::ACCEPTED, registration_json(&reg)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    all: Option<bool>,
    /// Compliance report: one framework only.
    #[serde(default)]
    framework: Option<String>,
    /// Compliance report: the window, seconds back from now.
    #[serde(default)]
    since_secs: Option<u64>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    format: Option<String>,
}

fn query(
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<ListQuery> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

async fn list_registrations(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let q = query(q)?;
    let list = state.sql.list_registrations(q.all.unwrap_or(false)).await?;
    Ok(ok(StatusCode::OK, json!({"registrations": list})))
}

async fn get_registration(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let r = state
        .sql
        .registration(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no registration `{id}`")))?;
    Ok(ok(StatusCode::OK, registration_json(&r)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveRegistration {
    /// base64url signature by the sponsor's key over the approval message.
    #[serde(default)]
    sponsor_signature: Option<String>,
}

async fn approve_registration(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: ApproveRegistration = optional_body(&body)?;
    let reg = state
        .sql
        .registration(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no registration `{id}`")))?;
    if reg.state != RegistrationStatus::Pending {
        return Err(ApiError::conflict(format!(
            "registration `{id}` is already {}",
            reg.state.as_str()
        )));
    }
    let sponsor = state
        .mesh
        .registry()
        .sponsor_by_email(&reg.sponsor)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no sponsor `{}`", reg.sponsor)))?;
    let cap_names: Vec<String> = reg.capabilities.iter().map(|c| c.to_string()).collect();
    let message = pop::approval_message(
        &state.mesh_did,
        &reg.id,
        &reg.agent_did,
        &reg.name,
        &cap_names,
    );
    let (signature, via) = match req.sponsor_signature {
        Some(sig) => {
            pop::check(
                pop::APPROVAL_DOMAIN,
                &sponsor.did.to_string(),
                &message,
                &sig,
                unix_now(),
                unix_now(),
            )
            .map_err(|e| {
                ApiError::forbidden(
                    "sponsor_signature",
                    format!(
                        "the approval is not signed by sponsor {}: {e}",
                        sponsor.email
                    ),
                )
            })?;
            (sig, "sponsor_signature")
        }
        None => match state.mesh.home().read_key(KeyKind::Sponsor(&sponsor.email)) {
            Ok(key) => (pop::sign_approval(&key, &message), "sponsor_key_in_home"),
            Err(_) => {
                return Err(ApiError::forbidden(
                    "sponsor_signature_required",
                    format!(
                        "sponsor {}'s key is not held by the control plane: send `sponsor_signature` (agentmesh registrations approve signs it)",
                        sponsor.email
                    ),
                ));
            }
        },
    };
    let public = reg
        .agent_did
        .public_key()
        .map_err(|e| ApiError::internal(format!("stored registration DID: {e}")))?;
    let record = state
        .mesh
        .import_agent(
            NewAgent {
                name: reg.name.clone(),
                sponsor: reg.sponsor.clone(),
                capabilities: reg.capabilities.clone(),
                parent: reg.parent.clone(),
                expires_at: reg.expires_at,
            },
            public,
            unix_now(),
        )
        .await?;
    let decided = state
        .sql
        .decide_registration(
            &id,
            RegistrationStatus::Approved,
            &sponsor.email,
            None,
            unix_now(),
        )
        .await?;
    state.metrics.registration("approved");
    audit(
        &state,
        Event::RegistrationApproved,
        Some(&record.did.to_string()),
        &sponsor.email,
        json!({"registration": id, "via": via, "approval_signature": signature}),
    )
    .await?;
    Ok(ok(
        StatusCode::OK,
        json!({"registration": decided, "agent": record}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

async fn reject_registration(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: ReasonBody = optional_body(&body)?;
    let by = req.by.unwrap_or_else(|| "admin".into());
    let r = state
        .sql
        .decide_registration(
            &id,
            RegistrationStatus::Rejected,
            &by,
            req.reason.as_deref(),
            unix_now(),
        )
        .await?;
    state.metrics.registration("rejected");
    audit(
        &state,
        Event::RegistrationRejected,
        Some(&r.agent_did.to_string()),
        &r.sponsor,
        json!({"registration": id, "by": by, "reason": req.reason}),
    )
    .await?;
    Ok(ok(StatusCode::OK, json!(r)))
}

async fn issue_credential(
    axum::extract::State(state): axum::extract::State<State>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CredentialRequest = json_body(&body)?;
    let now = unix_now();
    let fail = |code: &'static str| {
        state
            .metrics
            .credential_failures
            .get_or_create(&crate::metrics::ResultLabels {
                result: code.into(),
            })
            .inc()
    };
    let did = match pop::check(
        pop::CREDENTIAL_REQUEST_DOMAIN,
        &req.did,
        &req.message(&state.mesh_did),
        &req.signature,
        req.timestamp,
        now,
    ) {
        Ok(d) => d,
        Err(e) => {
            fail(e.code());
            return Err(ApiError::unauthorized(e.to_string()).with_code(e.code()));
        }
    };
    // Per agent, across replicas; counted only once the agent proved its
    // key, so nobody can use up another agent's allowance.
    let (count, period) = state.cfg.credential_rate;
    let now_ns = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    )
    .unwrap_or(u64::MAX);
    let key = format!("credential:{}", did.to_mesh());
    let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
    if let Err(retry_ns) = state
        .sql
        .acquire_rate(&key, count, period_ns, now_ns)
        .await?
    {
        fail("rate_limited");
        let secs = retry_ns.div_ceil(1_000_000_000);
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "at most {count} credential requests per {} s for this agent; retry in {secs} s",
                period.as_secs()
            ),
        )
        .into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&secs.to_string()).unwrap_or(HeaderValue::from_static("1")),
        );
        return Ok(r);
    }
    if !state
        .sql
        .consume_challenge(&req.nonce, "credential", now)
        .await?
    {
        fail("pop_nonce");
        return Err(ApiError::unauthorized(pop::PopError::Nonce.to_string()).with_code("pop_nonce"));
    }
    let agent = state
        .mesh
        .registry()
        .agent_by_did(&did)
        .await?
        .ok_or_else(|| {
            fail("unknown_agent");
            ApiError::forbidden(
                "unknown_agent",
                format!(
                    "{} is not a registered agent (is its registration approved?)",
                    req.did
                ),
            )
        })?;
    if agent.status != AgentStatus::Active {
        fail("agent_inactive");
        return Err(ApiError::forbidden(
            "agent_inactive",
            format!(
                "agent `{}` is {:?}; only active agents get credentials",
                agent.name, agent.status
            ),
        ));
    }
    let max = state.cfg.max_credential_ttl.as_secs();
    let ttl = req
        .ttl_secs
        .unwrap_or(state.cfg.credential_ttl.as_secs())
        .clamp(1, max);
    let audience = req
        .audience
        .clone()
        .unwrap_or_else(|| credential::ANY_AUDIENCE.into());
    if audience.is_empty() || audience.len() > 256 {
        return Err(ApiError::bad_request(
            "bad_audience",
            "`audience` must be 1–256 characters",
        ));
    }
    let (text, claims) = credential::issue(&state.mesh_key, &agent.did, &audience, ttl, now);
    state.metrics.credentials_issued.inc();
    audit(
        &state,
        Event::CredentialIssued,
        Some(&agent.did.to_string()),
        &agent.sponsor,
        json!({"credential_id": claims.id, "audience": claims.aud, "expires_at": claims.exp}),
    )
    .await?;
    Ok(ok(
        StatusCode::CREATED,
        json!({"credential": text, "id": claims.id, "agent": agent.name, "expires_at": claims.exp, "refresh_after": claims.iat + ttl * 2 / 3}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeCredential {
    #[serde(default)]
    credential: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke_credential(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: RevokeCredential = json_body(&body)?;
    let now = unix_now();
    let (id, agent, expires_at) = match (&req.credential, &req.id) {
        (Some(text), _) if text.starts_with(crate::gateway_credential::GATEWAY_PREFIX) => {
            let c = crate::gateway_credential::verify(text, state.mesh_key.public(), now)
                .map_err(|e| ApiError::bad_request("bad_credential", e.to_string()))?;
            (c.id, format!("gateway:{}", c.name), c.exp)
        }
        (Some(text), _) => {
            let c = credential::decode(text, state.mesh_key.public())
                .map_err(|e| ApiError::bad_request("bad_credential", e.to_string()))?;
            (c.id, c.sub, c.exp)
        }
        // A gateway credential lives longer than an agent's: its revocation
        // must be kept as long as it could be presented.
        (None, Some(id)) if id.starts_with("gw_") && id.len() <= 64 => {
            (id.clone(), String::new(), now + MAX_GATEWAY_TTL_SECS)
        }
        (None, Some(id)) if !id.is_empty() && id.len() <= 64 => (
            id.clone(),
            String::new(),
            now + state.cfg.max_credential_ttl.as_secs(),
        ),
        _ => {
            return Err(ApiError::bad_request(
                "missing_field",
                "give `credential` (the text) or `id`",
            ));
        }
    };
    let reason = req
        .reason
        .unwrap_or_else(|| "revoked by an administrator".into());
    let rec = RevokedCredential {
        id: id.clone(),
        agent: agent.clone(),
        reason: reason.clone(),
        revoked_at: now,
        expires_at,
    };
    use agentmesh_store::Registry;
    state.sql.revoke_credential(&rec).await?;
    state.metrics.revocation("credential");
    audit(
        &state,
        Event::CredentialRevoked,
        (!agent.is_empty()).then_some(agent.as_str()),
        "",
        json!({"credential_id": id, "reason": reason}),
    )
    .await?;
    Ok(ok(StatusCode::OK, json!(rec)))
}

async fn me(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (agent, credential_id) = agent_caller(&state, &headers).await?;
    let trust = trust_of(&state, &agent.did.to_mesh().to_string()).await?;
    Ok(ok(
        StatusCode::OK,
        json!({"agent": agent, "credential_id": credential_id, "trust": trust}),
    ))
}

// ---------------------------------------------------------------- admin

async fn list_sponsors(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let list = state.mesh.registry().list_sponsors().await?;
    Ok(ok(StatusCode::OK, json!({"sponsors": list})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSponsor {
    email: String,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    /// The sponsor's own key (`did:key:`/`did:mesh:`), when it keeps the
    /// private key in its own home; without it the control plane makes one
    /// and holds it.
    #[serde(default)]
    did: Option<String>,
}

async fn create_sponsor(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: NewSponsor = json_body(&body)?;
    let caps = req.capabilities.as_deref().map(parse_caps).transpose()?;
    let s = match &req.did {
        Some(d) => {
            state
                .mesh
                .register_sponsor(&req.email, parse_did(d)?, caps, unix_now())
                .await?
        }
        None => {
            state
                .mesh
                .create_sponsor(&req.email, caps, unix_now())
                .await?
        }
    };
    Ok(ok(StatusCode::CREATED, json!(s)))
}

async fn list_agents(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = state.sql.agents_page(q.after.as_deref(), limit).await?;
    let next = (page.len() as u32 == limit).then(|| page.last().map(|a| a.name.clone()));
    Ok(ok(
        StatusCode::OK,
        json!({"agents": page, "next_after": next.flatten()}),
    ))
}

async fn get_agent(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let (a, t) = state
        .sql
        .agent_with_trust(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent `{id}`")))?;
    let trust = t
        .map(|t| json!(t.score(unix_now() * 1000, &state.trust_cfg)))
        .unwrap_or(Value::Null);
    Ok(ok(StatusCode::OK, json!({"agent": a, "trust": trust})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgentBody {
    name: String,
    sponsor: String,
    capabilities: Vec<String>,
    /// The agent's public key as a DID (its private key stays with it).
    did: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    expires_at: Option<u64>,
}

async fn create_agent(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: NewAgentBody = json_body(&body)?;
    let did = parse_did(&req.did)?;
    let public = did
        .public_key()
        .map_err(|e| ApiError::bad_request("bad_did", e.to_string()))?;
    let a = state
        .mesh
        .import_agent(
            NewAgent {
                name: req.name,
                sponsor: req.sponsor,
                capabilities: parse_caps(&req.capabilities)?,
                parent: req.parent,
                expires_at: req.expires_at,
            },
            public,
            unix_now(),
        )
        .await?;
    Ok(ok(StatusCode::CREATED, json!(a)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkAgents {
    sponsor: String,
    agents: Vec<BulkAgent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkAgent {
    name: String,
    did: String,
    capabilities: Vec<String>,
}

/// The bulk path: many agents of one sponsor in one transaction, signed
/// by the sponsor's key held in the home; one audit entry for the batch
/// (with every agent's DID and attestation signature digest).
async fn bulk_agents(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: BulkAgents = json_body(&body)?;
    if req.agents.is_empty() || req.agents.len() > 10_000 {
        return Err(ApiError::bad_request(
            "bad_batch",
            "a batch holds 1–10000 agents",
        ));
    }
    let records = crate::api_bulk::build(
        &state,
        &req.sponsor,
        req.agents
            .iter()
            .map(|a| (a.name.as_str(), a.did.as_str(), a.capabilities.as_slice())),
    )
    .await?;
    state.sql.insert_agents(&records).await?;
    // One leaf per batch: it commits to every agent of the batch (name, DID
    // and the sponsor's attestation signature, one line each), which anyone
    // can recompute from the registry.
    let digest = {
        let mut all = String::with_capacity(records.len() * 160);
        for r in &records {
            all.push_str(&format!(
                "{} {} {}\n",
                r.name,
                r.did.to_mesh(),
                r.sponsorship.signature
            ));
        }
        hex(&crate::sha256(all.as_bytes()))
    };
    let index = audit(
        &state,
        Event::AgentBulkImported,
        None,
        &req.sponsor,
        json!({
            "count": records.len(),
            "first": records.first().map(|r| &r.name),
            "last": records.last().map(|r| &r.name),
            "agents_sha256": digest,
        }),
    )
    .await?;
    Ok(ok(
        StatusCode::CREATED,
        json!({"created": records.len(), "audit_index": index}),
    ))
}

async fn revoke_agent(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: ReasonBody = optional_body(&body)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "revoked by an administrator".into());
    let names = state.mesh.revoke_agent(&id, &reason, unix_now()).await?;
    state.metrics.revocation("agent");
    Ok(ok(StatusCode::OK, json!({"revoked": names})))
}

async fn set_status(
    state: &State,
    headers: &HeaderMap,
    id: &str,
    body: &Bytes,
    status: AgentStatus,
) -> ApiResult<Response> {
    // A gateway may suspend (an agent whose trust breached the floor);
    // only a human, with the admin token, reactivates.
    if status == AgentStatus::Suspended {
        admin_or_gateway(state, headers).await?;
    } else {
        admin(state, headers)?;
    }
    let req: ReasonBody = optional_body(body)?;
    let a = state
        .mesh
        .set_status(id, status, req.reason.as_deref(), unix_now())
        .await
        .map_err(|e| match e {
            agentmesh_store::MeshError::Invalid(m) => ApiError::conflict(m),
            e => e.into(),
        })?;
    Ok(ok(StatusCode::OK, json!(a)))
}

async fn suspend_agent(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    set_status(&state, &headers, &id, &body, AgentStatus::Suspended).await
}

async fn reactivate_agent(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    set_status(&state, &headers, &id, &body, AgentStatus::Active).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegateBody {
    from: String,
    to: String,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    max_depth: Option<u8>,
    #[serde(default)]
    parent_token: Option<String>,
}

async fn delegate(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: DelegateBody = json_body(&body)?;
    let ttl = req
        .ttl_secs
        .unwrap_or(state.mesh.home().config().defaults.delegation_ttl_secs);
    if ttl == 0 || ttl > 366 * 86_400 {
        return Err(ApiError::bad_request(
            "bad_ttl",
            "`ttl_secs` must be 1 s to 366 days",
        ));
    }
    let token = state
        .mesh
        .delegate(
            NewDelegation {
                from: req.from,
                to: req.to,
                capabilities: req.capabilities.as_deref().map(parse_caps).transpose()?,
                ttl_secs: ttl,
                max_depth: req.max_depth,
                parent_token: req.parent_token,
            },
            unix_now(),
        )
        .await?;
    Ok(ok(
        StatusCode::CREATED,
        json!({
            "token": token.as_str(),
            "links": token.links().iter().map(|l| hex(&l.hash)).collect::<Vec<_>>(),
            "capabilities": token.capabilities().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeDelegation {
    /// A token or a link hash.
    token: String,
    #[serde(default)]
    link: Option<usize>,
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke_delegation(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: RevokeDelegation = json_body(&body)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "revoked by an administrator".into());
    let r = state
        .mesh
        .revoke_delegation(&req.token, req.link, &reason, unix_now())
        .await?;
    state.metrics.revocation("delegation");
    Ok(ok(StatusCode::OK, json!(r)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyDelegation {
    token: String,
}

/// Verifies a delegation token against the registry now: every signature,
/// narrowing, depth, expiry, revocation. 200 with the chain, or 422 with
/// the reason code.
async fn verify_delegation(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: VerifyDelegation = json_body(&body)?;
    match state.mesh.verify(&req.token, unix_now()).await {
        Ok(chain) => Ok(ok(
            StatusCode::OK,
            json!({
                "valid": true,
                "holder": chain.holder_name,
                "holder_did": chain.holder,
                "sponsor": chain.sponsor_email,
                "depth": chain.depth(),
                "capabilities": chain.capabilities.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "expires_at": chain.expires_at,
            }),
        )),
        Err(agentmesh_store::MeshError::SelfCheck(e)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "delegation_invalid",
            format!("{} ({})", e, e.code()),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn get_policy(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let d = state
        .sql
        .policy_document("default")
        .await?
        .ok_or_else(|| ApiError::not_found("no policy has been published (PUT /v1/policy)"))?;
    Ok(ok(StatusCode::OK, json!(d)))
}

async fn put_policy(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("malformed_body", "the policy is not UTF-8"))?;
    let set = agentmesh_policy::PolicySet::from_yaml(text, "policy")
        .map_err(|e| ApiError::bad_request("invalid_policy", e.to_string()))?;
    let doc = PolicyDocument {
        name: "default".into(),
        yaml: text.to_owned(),
        sha256: hex(&crate::sha256(text.as_bytes())),
        updated_at: unix_now(),
        updated_by: "admin".into(),
    };
    state.sql.save_policy_document(&doc).await?;
    audit(
        &state,
        Event::PolicyPublished,
        None,
        "",
        json!({"sha256": doc.sha256, "version": &*set.version, "bytes": text.len()}),
    )
    .await?;
    Ok(ok(
        StatusCode::OK,
        json!({"sha256": doc.sha256, "version": &*set.version}),
    ))
}

async fn trust_of(state: &State, did: &str) -> ApiResult<Value> {
    let cfg = &state.trust_cfg;
    let now_ms = unix_now() * 1000;
    Ok(match state.sql.trust_state(did).await? {
        Some(t) => json!(t.score(now_ms, cfg)),
        None => Value::Null,
    })
}

async fn list_trust(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let cfg = &state.trust_cfg;
    let now_ms = unix_now() * 1000;
    let states = state.mesh.registry().trust_states().await?;
    let list: Vec<Value> = states
        .iter()
        .map(|(agent, t)| json!({"agent": agent, "score": t.score(now_ms, cfg), "state": t}))
        .collect();
    // What an agent without trust events scores here (this control
    // plane's trust configuration), so a client lists those too.
    let prior = agentmesh_trust::AgentTrust::default().score(now_ms, cfg);
    Ok(ok(StatusCode::OK, json!({"trust": list, "prior": prior})))
}

async fn get_trust(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(agent): Path<String>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let a = state.mesh.agent(&agent).await?;
    let did = a.did.to_mesh().to_string();
    let t = trust_of(&state, &did).await?;
    Ok(ok(
        StatusCode::OK,
        json!({"agent": did, "name": a.name, "score": t}),
    ))
}

/// The agent's trust score over time, from the audit log: every applied
/// trust event of the agent (its own `trust.event` entries and those that
/// decisions and results carry, read as `trust recompute` reads them), with
/// the score before and after and what moved it, oldest first, from the
/// newest 20000 entries.
async fn trust_history(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(agent): Path<String>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let a = state.mesh.agent(&agent).await?;
    let did = a.did.to_mesh().to_string();
    let log = audit_log(&state)?;
    let size = log.size();
    let mut points = Vec::new();
    for i in size.saturating_sub(20_000)..size {
        let e = log
            .entry(i)
            .map_err(|e| ApiError::unavailable(format!("audit: {e}")))?;
        if let Some((event, Some(before), Some(after))) =
            agentmesh_store::trust_event_of(&e.entry.draft)
            && event.agent == did
        {
            points.push(json!({"index": i, "time": e.entry.time, "score": after, "before": before,
                "label": event.kind.label(), "event": e.entry.draft.event, "decision": e.entry.draft.decision}));
        }
    }
    Ok(ok(
        StatusCode::OK,
        json!({"agent": did, "name": a.name, "points": points}),
    ))
}

async fn put_trust(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(agent): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let t: agentmesh_trust::AgentTrust = json_body(&body)?;
    let did = parse_did(&agent)?;
    state
        .mesh
        .registry()
        .save_trust_state(&did.to_mesh().to_string(), &t)
        .await?;
    Ok(ok(StatusCode::OK, json!({"saved": true})))
}

async fn list_approvals(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let q = query(q)?;
    let list = state
        .mesh
        .registry()
        .list_approvals(q.all.unwrap_or(false))
        .await?;
    Ok(ok(StatusCode::OK, json!({"approvals": list})))
}

async fn get_approval(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let a = state
        .mesh
        .registry()
        .approval(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval `{id}`")))?;
    Ok(ok(StatusCode::OK, json!(a)))
}

async fn insert_approval(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let a: ApprovalRecord = json_body(&body)?;
    if a.id.is_empty() || a.id.len() > 128 {
        return Err(ApiError::bad_request(
            "bad_id",
            "`id` must be 1–128 characters",
        ));
    }
    state.mesh.registry().insert_approval(&a).await?;
    Ok(ok(StatusCode::CREATED, json!({"id": a.id})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// Who decides (required: there is no default approver).
    by: String,
    #[serde(default)]
    reason: Option<String>,
    /// The decider's signature (`agentmesh_policy::DecisionStatement`) and
    /// its time; without them the control plane signs with `by`'s key only
    /// if it holds it (a sponsor created here), and records that it did.
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    signature: Option<String>,
}

async fn decide_approval(
    state: &State,
    headers: &HeaderMap,
    id: &str,
    body: &Bytes,
    approve: bool,
) -> ApiResult<Response> {
    admin(state, headers)?;
    let req: DecisionBody = json_body(body)?;
    let now = unix_now();
    let reg = state.mesh.registry();
    let a = reg
        .approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval `{id}`")))?;
    if a.state != ApprovalStatus::Pending {
        return Err(ApiError::conflict(format!(
            "approval `{id}` is already {}",
            a.state.as_str()
        )));
    }
    if a.expires_at <= now {
        return Err(ApiError::conflict(format!(
            "approval `{id}` expired; the held call was denied"
        )));
    }
    let by = req.by.trim().to_lowercase();
    if by.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            "say who decides with `by` (there is no default approver)",
        ));
    }
    if !a.approvers.is_empty() && !a.approvers.iter().any(|x| x.eq_ignore_ascii_case(&by)) {
        return Err(ApiError::forbidden(
            "not_an_approver",
            format!(
                "`{by}` may not decide `{id}`; its approvers are: {}",
                a.approvers.join(", ")
            ),
        ));
    }
    let to = if approve {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Denied
    };
    let sponsor = reg
        .sponsor_by_email(&by)
        .await?
        .filter(|s| s.active)
        .ok_or_else(|| {
            ApiError::forbidden(
                "not_a_sponsor",
                format!(
                    "`{by}` is not an active sponsor: only a sponsor's key can sign a decision"
                ),
            )
        })?;
    let statement = agentmesh_policy::DecisionStatement {
        approval: id,
        decision: to.as_str(),
        by: &by,
        caller: &a.caller,
        action: &a.action,
        arguments_sha256: &a.arguments_sha256,
        policy_version: &a.policy_version,
        at: req.at.unwrap_or(now),
    };
    let (proof, signed_here) = match (&req.signature, req.at) {
        (Some(sig), Some(at)) => {
            let proof = json!({"at": at, "signature": sig}).to_string();
            let key = sponsor
                .did
                .public_key()
                .map_err(|e| ApiError::bad_request("bad_key", e.to_string()))?;
            statement
                .clone()
                .verify(&proof, &key)
                .map_err(|e| ApiError::forbidden("bad_signature", e).with_code("bad_signature"))?;
            (proof, false)
        }
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "missing_field",
                "a signature needs the `at` it signed",
            ));
        }
        (None, _) => match state
            .mesh
            .home()
            .read_key(agentmesh_store::KeyKind::Sponsor(&by))
        {
            Ok(key) => (statement.sign(&key), true),
            Err(_) => {
                return Err(ApiError::forbidden(
                    "signature_required",
                    format!(
                        "`{by}` keeps its key in its own home: sign the decision there (`agentmesh approvals approve {id} --by {by} --control-plane …`)"
                    ),
                ));
            }
        },
    };
    let r = reg
        .decide_approval(
            id,
            ApprovalStatus::Pending,
            to,
            Some(&by),
            req.reason.as_deref(),
            Some(&proof),
            now,
        )
        .await?;
    audit(
        state,
        Event::ApprovalDecided,
        Some(&a.caller),
        &by,
        json!({"approval": id, "state": to.as_str(), "by": by, "action": a.action, "reason": req.reason,
               "signed_with": if signed_here { "the key the control plane holds for this sponsor" } else { "the sponsor's own key" }}),
    )
    .await?;
    Ok(ok(StatusCode::OK, json!(r)))
}

async fn approve_approval(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    decide_approval(&state, &headers, &id, &body, true).await
}

async fn deny_approval(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    decide_approval(&state, &headers, &id, &body, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalTransition {
    from: ApprovalStatus,
    to: ApprovalStatus,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// The gateway's side of an approval (consume it, expire it).
async fn approval_state(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let req: ApprovalTransition = json_body(&body)?;
    // A gateway consumes or expires an approval; deciding one takes a
    // signed decision (`/approve`, `/deny`).
    if !matches!(
        (req.from, req.to),
        (ApprovalStatus::Approved, ApprovalStatus::Used)
            | (ApprovalStatus::Pending, ApprovalStatus::Expired)
    ) {
        return Err(ApiError::forbidden(
            "not_a_gateway_transition",
            "this route only marks an approval used or expired; decide one with /approve or /deny",
        ));
    }
    let r = state
        .mesh
        .registry()
        .set_approval_state(
            &id,
            req.from,
            req.to,
            req.by.as_deref(),
            req.reason.as_deref(),
            unix_now(),
        )
        .await?;
    Ok(ok(StatusCode::OK, json!(r)))
}

fn audit_log(state: &State) -> ApiResult<std::sync::Arc<agentmesh_audit::AuditLog>> {
    Ok(state.mesh.audit_reader()?)
}

async fn audit_entries(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let q = query(q)?;
    let log = audit_log(&state)?;
    let size = log.size();
    let limit = u64::from(q.limit.unwrap_or(50).clamp(1, 1000));
    // Default: the newest entries.
    let from = q.from.unwrap_or(size.saturating_sub(limit)).min(size);
    let to = (from + limit).min(size);
    let mut entries = Vec::new();
    for i in from..to {
        let e = log
            .entry(i)
            .map_err(|e| ApiError::unavailable(format!("audit: {e}")))?;
        entries
            .push(json!({"index": i, "leaf_hash": hex(&e.leaf_hash), "entry": e.entry.to_json()}));
    }
    Ok(ok(
        StatusCode::OK,
        json!({"size": size, "entries": entries}),
    ))
}

async fn audit_entry(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(index): Path<String>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad_request("bad_index", "the index is a non-negative integer"))?;
    let log = audit_log(&state)?;
    if index >= log.size() {
        return Err(ApiError::not_found(format!(
            "the log has {} entries",
            log.size()
        )));
    }
    let e = log
        .entry(index)
        .map_err(|e| ApiError::unavailable(format!("audit: {e}")))?;
    Ok(ok(
        StatusCode::OK,
        json!({"index": index, "leaf_hash": hex(&e.leaf_hash), "entry": e.entry.to_json(), "bytes": String::from_utf8_lossy(&e.bytes)}),
    ))
}

/// An inclusion proof against the latest signed checkpoint (signing a new
/// one first when the entry is not covered yet).
async fn audit_proof(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    Path(index): Path<String>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad_request("bad_index", "the index is a non-negative integer"))?;
    let log = audit_log(&state)?;
    if index >= log.size() {
        return Err(ApiError::not_found(format!(
            "the log has {} entries",
            log.size()
        )));
    }
    let mut note = log
        .latest_checkpoint()
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let covered = note
        .as_deref()
        .and_then(|n| agentmesh_audit::note::parse_unverified(n).ok())
        .is_some_and(|c| c.size > index);
    if !covered {
        note =
            Some(state.mesh.checkpoint().map_err(|e| {
                ApiError::unavailable(format!("cannot sign a checkpoint here: {e}"))
            })?);
    }
    let note = note.unwrap_or_default();
    let cp = agentmesh_audit::note::parse_unverified(&note)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let e = log
        .entry(index)
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let path = log
        .inclusion_proof(index, cp.size)
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(ok(
        StatusCode::OK,
        json!({
            "index": index,
            "size": cp.size,
            "entry": String::from_utf8_lossy(&e.bytes),
            "leaf_hash": hex(&e.leaf_hash),
            "proof": path.iter().map(|h| hex(h)).collect::<Vec<_>>(),
            "root": hex(&cp.root),
            "checkpoint": note,
        }),
    ))
}

async fn audit_checkpoint(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let log = audit_log(&state)?;
    let note = log
        .latest_checkpoint()
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("no checkpoint has been signed yet"))?;
    Ok(ok(StatusCode::OK, json!({"checkpoint": note})))
}

async fn sign_checkpoint(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let note = state
        .mesh
        .checkpoint()
        .map_err(|e| ApiError::unavailable(format!("cannot sign a checkpoint here: {e}")))?;
    Ok(ok(StatusCode::OK, json!({"checkpoint": note})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ingest {
    /// Who shipped them (a gateway's audience).
    source: String,
    /// Entries as the source's log stored them, base64url, with their
    /// index there.
    entries: Vec<(u64, String)>,
}

/// Leaves shipped by a gateway: appended (or queued) here with their origin.
async fn audit_ingest(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    use base64::Engine;
    // The gateway's name comes from its credential, not from what it says.
    let gateway = admin_or_gateway(&state, &headers).await?;
    let req: Ingest = json_body(&body)?;
    if req.source.is_empty() || req.source.len() > 256 {
        return Err(ApiError::bad_request(
            "bad_source",
            "`source` must be 1–256 characters",
        ));
    }
    let mut drafts = Vec::with_capacity(req.entries.len());
    for (index, b64) in &req.entries {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| {
                ApiError::bad_request("bad_entry", format!("entry {index} is not base64url"))
            })?;
        let entry = agentmesh_audit::Entry::from_bytes(&bytes)
            .map_err(|e| ApiError::bad_request("bad_entry", format!("entry {index}: {e}")))?;
        let mut draft = entry.draft;
        // A gateway ships entries its own engine applied (with the score
        // before and after). One that carries a trust event nobody applied
        // would be applied here, on the gateway's word: refused.
        if draft.trust_before.is_none()
            && draft.trust_after.is_none()
            && agentmesh_store::trust_event_of(&draft).is_some()
        {
            return Err(ApiError::bad_request(
                "unapplied_trust_event",
                format!(
                    "entry {index} carries a trust event without the score before and after it; only applied trust events are accepted"
                ),
            ));
        }
        let mut origin = json!({"source": req.source, "index": index, "time": entry.time});
        if let Some(g) = &gateway {
            origin["gateway"] = json!(g);
        }
        match &mut draft.detail {
            Value::Object(m) => {
                m.insert("shipped_from".into(), origin);
            }
            other => {
                *other = json!({"value": other.clone(), "shipped_from": origin});
            }
        }
        drafts.push(draft);
    }
    let mut last = None;
    for d in drafts {
        last = state.mesh.record(d).await?.index().or(last);
    }
    Ok(ok(
        StatusCode::OK,
        json!({"accepted": req.entries.len(), "last_index": last}),
    ))
}

async fn compliance_report(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let q = query(q)?;
    let log = audit_log(&state)?;
    let report = crate::api_bulk::compliance(
        &log,
        q.format.as_deref(),
        q.framework.as_deref(),
        q.since_secs,
    )?;
    Ok(report)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayBody {
    name: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

/// Default and longest lifetime of a gateway credential.
const GATEWAY_TTL_SECS: u64 = 30 * 86_400;
const MAX_GATEWAY_TTL_SECS: u64 = 365 * 86_400;

/// Issues a gateway credential (admin only): what an attached gateway
/// presents instead of the admin token.
async fn issue_gateway_credential(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let req: GatewayBody = json_body(&body)?;
    validate_agent_name(&req.name).map_err(|e| {
        ApiError::bad_request(
            "bad_name",
            format!(
                "gateway name: {}",
                e.to_string().replace("agent", "gateway")
            ),
        )
    })?;
    let ttl = req.ttl_secs.unwrap_or(GATEWAY_TTL_SECS);
    if ttl == 0 || ttl > MAX_GATEWAY_TTL_SECS {
        return Err(ApiError::bad_request(
            "bad_ttl",
            format!("ttl_secs must be 1–{MAX_GATEWAY_TTL_SECS}"),
        ));
    }
    let (text, claims) =
        crate::gateway_credential::issue(&state.mesh_key, &req.name, ttl, unix_now());
    audit(
        &state,
        Event::GatewayCredentialIssued,
        None,
        "",
        json!({"id": claims.id, "name": claims.name, "expires_at": claims.exp}),
    )
    .await?;
    Ok(ok(
        StatusCode::CREATED,
        json!({"credential": text, "id": claims.id, "name": claims.name, "expires_at": claims.exp}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VouchBody {
    /// The DID of the key the gateway signs IATP challenges with.
    did: String,
    /// Unix seconds when the gateway signed.
    at: u64,
    /// base64url Ed25519 by that key over `vouch_request_message`.
    proof: String,
}

/// A voucher for a gateway's IATP key (gateway credential only): proof of
/// possession of the key, then the mesh key vouches "this key is gateway
/// `<name>`", so provers registered here admit the gateway in a handshake
/// although no registry lists its key (docs/wire/iatp.md).
async fn vouch_gateway(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    use crate::gateway_credential as gc;
    let claims = gateway_caller(&state, &headers).await?;
    let req: VouchBody = json_body(&body)?;
    let did = Did::parse(&req.did)
        .map_err(|e| ApiError::bad_request("bad_did", format!("`did`: {e}")))?;
    let key = did
        .public_key()
        .map_err(|_| ApiError::bad_request("bad_did", "`did` must name an Ed25519 key"))?;
    let now = unix_now();
    if req.at.abs_diff(now) > gc::VOUCH_SKEW_SECS {
        return Err(ApiError::bad_request(
            "stale_proof",
            format!(
                "`at` is {} s from the control plane's clock (at most {} s allowed)",
                req.at.abs_diff(now),
                gc::VOUCH_SKEW_SECS
            ),
        ));
    }
    use base64::Engine as _;
    let proof = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&req.proof)
        .map_err(|_| ApiError::bad_request("bad_proof", "`proof` is not base64url"))?;
    key.verify(
        gc::VOUCH_REQUEST_DOMAIN,
        gc::vouch_request_message(&claims.id, &req.did, req.at).as_bytes(),
        &proof,
    )
    .map_err(|_| {
        ApiError::unauthorized("`proof` is not a signature by the key `did` names")
            .with_code("bad_proof")
    })?;
    let (text, voucher) = gc::vouch(&state.mesh_key, &claims, &req.did, now);
    audit(
        &state,
        Event::GatewayVouched,
        None,
        "",
        json!({"name": claims.name, "credential": claims.id, "key": req.did, "expires_at": voucher.exp}),
    )
    .await?;
    Ok(ok(
        StatusCode::OK,
        json!({"voucher": text, "name": voucher.name, "key": voucher.key, "expires_at": voucher.exp}),
    ))
}

/// Everything a gateway needs to enforce: sponsors, agents, revoked links
/// and credentials, trust state and the change sequence it reflects.
async fn snapshot(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let seq = state.sql.last_change().await?;
    let reg = state.mesh.registry();
    let now = unix_now();
    let body = json!({
        "seq": seq,
        "mesh": state.mesh_did,
        "sponsors": reg.list_sponsors().await?,
        "agents": reg.list_agents().await?,
        "revoked_links": reg.revoked_links().await?,
        "revoked_credentials": reg.revoked_credentials(now).await?,
        "trust": reg.trust_states().await?.into_iter().collect::<HashMap<_, _>>(),
    });
    Ok(ok(StatusCode::OK, body))
}

/// Server-sent events: `change` for every entry of the change feed, a
/// comment every 10 s to keep the connection (and the gateway's
/// liveness check) alive.
async fn events(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    admin_or_gateway(&state, &headers).await?;
    let mut rx = state.feed.subscribe();
    let hello = format!(
        "event: hello\ndata: {}\n\n",
        json!({"seq": state.feed.last(), "replica": state.cfg.replica})
    );
    let metrics_state = state.clone();
    metrics_state.metrics.event_subscribers.inc();
    let guard = SubscriberGuard(metrics_state);
    let stream = async_stream(hello, move |tx| async move {
        let _guard = guard;
        let mut keepalive = tokio::time::interval(std::time::Duration::from_secs(10));
        keepalive.tick().await;
        loop {
            let chunk = tokio::select! {
                c = rx.recv() => match c {
                    Ok(c) => format!("id: {}\nevent: change\ndata: {}\n\n", c.seq, json!(c)),
                    // Fell behind: tell the gateway to reload everything.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => "event: resync\ndata: {}\n\n".to_owned(),
                    Err(_) => return,
                },
                _ = keepalive.tick() => ": keepalive\n\n".to_owned(),
            };
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

struct SubscriberGuard(State);
impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.metrics.event_subscribers.dec();
    }
}

/// A body stream fed by a task: `first`, then whatever `producer` sends.
fn async_stream<F, Fut>(
    first: String,
    producer: F,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let _ = tx.try_send(Bytes::from(first));
    tokio::spawn(producer(tx));
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
}
