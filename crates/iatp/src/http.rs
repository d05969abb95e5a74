//! The handshake over HTTP: the verifier's routes and the prover's client.
//!
//! ```text
//! POST /.well-known/iatp/challenge   {"prover": did?}      → Challenge
//! POST /.well-known/iatp/response    Response              → {"attestation": "amat1.…", …}
//! GET  /.well-known/iatp                                   → what this verifier speaks
//! GET  /.well-known/agent-manifest                         → IATP manifest (from the registry)
//! ```
//! Errors are `{"error": {"code", "message"}}` with the status of
//! [`HandshakeError::status`].

use crate::verifier::{Channel, Directory, PeerFacts, Verifier, check_verifier};
use crate::wire::{
    Attestation, Challenge, HandshakeError, MAX_MESSAGE_LEN, PROFILE, Response, origin_channel,
};
use agentmesh_identity::{Did, KeyPair};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response as HttpResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const CHALLENGE_PATH: &str = "/.well-known/iatp/challenge";
pub const RESPONSE_PATH: &str = "/.well-known/iatp/response";
pub const INFO_PATH: &str = "/.well-known/iatp";
pub const MANIFEST_PATH: &str = "/.well-known/agent-manifest";

/// What happened in one handshake, for the serving side's audit.
#[derive(Debug, Clone)]
pub enum Outcome {
    Attested {
        prover: Did,
        facts: PeerFacts,
        attestation_id: String,
        exp: u64,
    },
    Refused {
        /// The claimed prover, when the response named one.
        prover: Option<String>,
        error: HandshakeError,
    },
}

/// Called after every answered response.
pub type OnOutcome = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// The verifying service behind the routes.
pub struct Service {
    pub verifier: Verifier,
    pub directory: Arc<dyn Directory>,
    /// Origins this verifier accepts as the channel (its listen address and
    /// public URLs, `http://host:port`).
    pub origins: Vec<String>,
    /// The manifest served at `/.well-known/agent-manifest`, if any.
    pub manifest: Option<Value>,
    pub on_outcome: Option<OnOutcome>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("verifier", &self.verifier)
            .field("origins", &self.origins)
            .finish()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| HttpResponse::new(Body::empty()))
}

/// The error body every route answers with.
pub fn error_response(e: &HandshakeError) -> HttpResponse {
    json_response(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED),
        &json!({"error": {"code": e.code(), "message": e.to_string()}}),
    )
}

/// The routes, to merge into a gateway's router or serve alone.
pub fn router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route(CHALLENGE_PATH, axum::routing::post(challenge))
        .route(RESPONSE_PATH, axum::routing::post(response))
        .route(INFO_PATH, axum::routing::get(info))
        .route(MANIFEST_PATH, axum::routing::get(manifest))
        .with_state(service)
}

async fn read_body(body: Body) -> Result<Bytes, HandshakeError> {
    http_body_util::Limited::new(body, MAX_MESSAGE_LEN)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| HandshakeError::Malformed(format!("body larger than {MAX_MESSAGE_LEN} bytes")))
}

async fn challenge(State(s): State<Arc<Service>>, body: Body) -> HttpResponse {
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let prover = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return error_response(&HandshakeError::Malformed(format!("body: {e}"))),
        };
        if !v.is_object() {
            return error_response(&HandshakeError::Malformed(
                "the body must be a JSON object (or empty)".into(),
            ));
        }
        match v.get("prover") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => match Did::parse(p) {
                Ok(d) => Some(d),
                Err(e) => {
                    return error_response(&HandshakeError::Malformed(format!("`prover`: {e}")));
                }
            },
            Some(_) => {
                return error_response(&HandshakeError::Malformed(
                    "`prover` must be a DID string".into(),
                ));
            }
        }
    };
    match s.verifier.challenge(prover.as_ref(), now_secs()) {
        Ok(c) => json_response(StatusCode::OK, &json!(c)),
        Err(e) => error_response(&e),
    }
}

async fn response(State(s): State<Arc<Service>>, body: Body) -> HttpResponse {
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let r: Response = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return error_response(&HandshakeError::Malformed(format!("response: {e}")));
        }
    };
    let result = s
        .verifier
        .verify(&r, Channel::Origins(&s.origins), &*s.directory, now_secs());
    match result {
        Ok(v) => {
            if let Some(f) = &s.on_outcome {
                f(&Outcome::Attested {
                    prover: v.prover,
                    facts: v.facts.clone(),
                    attestation_id: v.attestation.id.clone(),
                    exp: v.attestation.exp,
                });
            }
            json_response(
                StatusCode::OK,
                &json!({
                    "attestation": v.text,
                    "prover": v.prover.to_string(),
                    "name": v.facts.name,
                    "trust": v.facts.trust,
                    "tier": v.facts.tier,
                    "capabilities": v.facts.capabilities,
                    "expires_at": v.attestation.exp,
                }),
            )
        }
        Err(e) => {
            if let Some(f) = &s.on_outcome {
                f(&Outcome::Refused {
                    prover: Some(r.prover.clone()),
                    error: e.clone(),
                });
            }
            error_response(&e)
        }
    }
}

async fn info(State(s): State<Arc<Service>>) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &json!({
            "profile": PROFILE,
            "verifier": s.verifier.did().to_string(),
            "challenge": CHALLENGE_PATH,
            "response": RESPONSE_PATH,
            "min_trust": s.verifier.config().min_trust,
            "attestation_ttl_secs": s.verifier.config().attestation_ttl_secs,
            "channels": ["origin", "request"],
        }),
    )
}

async fn manifest(State(s): State<Arc<Service>>) -> HttpResponse {
    match &s.manifest {
        Some(m) => json_response(StatusCode::OK, m),
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": "no_manifest", "message": "this endpoint serves no agent manifest"}}),
        ),
    }
}

/// Why a handshake attempt (prover side) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not an http:// URL")]
    BadUrl(String),
    #[error("{0} is unreachable: {1}")]
    Unreachable(String, String),
    /// The peer refused, with its reason code.
    #[error("the peer refused the handshake: {code}: {message}")]
    Refused { code: String, message: String },
    /// This side refused the peer (its challenge or its registry facts).
    #[error("the peer failed our checks: {0}")]
    Peer(HandshakeError),
    #[error("the peer's answer is unreadable: {0}")]
    Decode(String),
}

impl ClientError {
    /// The reason code (ours or the peer's).
    pub fn code(&self) -> String {
        match self {
            ClientError::Refused { code, .. } => code.clone(),
            ClientError::Peer(e) => e.code().to_owned(),
            ClientError::BadUrl(_) => "bad_url".into(),
            ClientError::Unreachable(..) => "unreachable".into(),
            ClientError::Decode(_) => "decode".into(),
        }
    }
}

/// The prover's HTTP client.
#[derive(Clone, Debug)]
pub struct HandshakeClient {
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Default for HandshakeClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A completed handshake, as the prover saw it.
#[derive(Debug, Clone)]
pub struct Completed {
    pub verifier: Did,
    /// The verifier, as *our* registry has it.
    pub verifier_facts: PeerFacts,
    pub challenge: Challenge,
    pub response: Response,
    /// `amat1.…`
    pub attestation: String,
    pub attested: Attestation,
}

impl HandshakeClient {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            timeout: Duration::from_secs(10),
        }
    }

    /// POSTs JSON; returns the status and parsed body.
    pub async fn post(&self, url: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        let req = hyper::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| ClientError::BadUrl(url.to_owned()))?;
        let fut = self.http.request(req);
        let resp = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Unreachable(url.to_owned(), "timed out".into()))?
            .map_err(|e| ClientError::Unreachable(url.to_owned(), e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?
            .to_bytes();
        let v = serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok((status, v))
    }

    /// Asks `base` (`http://host:port`) for a challenge for `prover`.
    pub async fn challenge(&self, base: &str, prover: &Did) -> Result<Challenge, ClientError> {
        let base = check_base(base)?;
        let (status, v) = self
            .post(
                &format!("{base}{CHALLENGE_PATH}"),
                &json!({"prover": prover.to_string()}),
            )
            .await?;
        if status != 200 {
            return Err(refused(&v));
        }
        serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends a response; returns the attestation text.
    pub async fn respond(&self, base: &str, r: &Response) -> Result<String, ClientError> {
        let base = check_base(base)?;
        let (status, v) = self
            .post(&format!("{base}{RESPONSE_PATH}"), &json!(r))
            .await?;
        if status != 200 {
            return Err(refused(&v));
        }
        v["attestation"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Decode("no `attestation` in the answer".into()))
    }

    /// The whole handshake as `prover` with the verifier at `base`: the
    /// peer's challenge must be signed by a peer our registry admits
    /// (`expected`, when given); our response is bound to `base`'s origin.
    pub async fn handshake(
        &self,
        base: &str,
        prover: &KeyPair,
        expected: Option<&Did>,
        dir: &dyn Directory,
        min_trust: f64,
    ) -> Result<Completed, ClientError> {
        let base = check_base(base)?.to_owned();
        let challenge = self.challenge(&base, &prover.did()).await?;
        if challenge
            .prover
            .as_deref()
            .is_some_and(|p| Did::parse(p).ok() != Some(prover.did()))
        {
            return Err(ClientError::Peer(HandshakeError::Mismatch(
                "the challenge names another prover",
            )));
        }
        let (verifier, verifier_facts) =
            check_verifier(&challenge, expected, dir, min_trust, now_secs())
                .map_err(ClientError::Peer)?;
        let response = Response::answer(&challenge, prover, &origin_channel(&base))
            .map_err(ClientError::Peer)?;
        let attestation = self.respond(&base, &response).await?;
        let (attested, issuer) = Attestation::decode(&attestation).map_err(ClientError::Peer)?;
        if issuer != verifier || attested.sub != prover.did().to_string() {
            return Err(ClientError::Peer(HandshakeError::Mismatch(
                "the attestation is not the verifier's, about us",
            )));
        }
        // It must conclude *this* handshake.
        let transcript = crate::wire::b64(&agentmesh_identity::sha256(
            response.transcript().as_bytes(),
        ));
        if attested.id != challenge.id || attested.transcript != transcript {
            return Err(ClientError::Peer(HandshakeError::Mismatch(
                "the attestation concludes another handshake",
            )));
        }
        Ok(Completed {
            verifier,
            verifier_facts,
            challenge,
            response,
            attestation,
            attested,
        })
    }
}

fn check_base(base: &str) -> Result<&str, ClientError> {
    let b = base.trim_end_matches('/');
    if !b.starts_with("http://") || b.parse::<hyper::Uri>().is_err() {
        return Err(ClientError::BadUrl(base.to_owned()));
    }
    Ok(b)
}

fn refused(v: &Value) -> ClientError {
    ClientError::Refused {
        code: v["error"]["code"].as_str().unwrap_or("unknown").to_owned(),
        message: v["error"]["message"].as_str().unwrap_or("").to_owned(),
    }
}
