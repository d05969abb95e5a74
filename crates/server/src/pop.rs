//! Proof of possession: what an agent signs to register and to obtain a
//! credential, and what a sponsor signs to approve a registration.
//!
//! Every message is the canonical JSON (sorted keys, no spaces) of the
//! request's fields without `signature`, plus `mesh` (the control plane's
//! mesh DID, so a signature for one mesh is useless at another), signed
//! with Ed25519 under a domain string: `domain ‖ 0x00 ‖ message` (the
//! identity crate's domain separation). Nonces come from the server, are
//! single use and expire after [`CHALLENGE_TTL_SECS`]; `timestamp` must be
//! within [`MAX_SKEW_SECS`] of the server's clock. See docs/wire/registration.md.

use agentmesh_identity::{Did, KeyPair, to_canonical_json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const REGISTER_DOMAIN: &str = "agentmesh/register/v1";
pub const CREDENTIAL_REQUEST_DOMAIN: &str = "agentmesh/credential-request/v1";
pub const APPROVAL_DOMAIN: &str = "agentmesh/registration-approval/v1";
/// How long a server nonce stays usable.
pub const CHALLENGE_TTL_SECS: u64 = 120;
/// Tolerated clock difference on `timestamp`.
pub const MAX_SKEW_SECS: u64 = 60;

/// `POST /v1/registrations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    pub name: String,
    pub sponsor: String,
    pub capabilities: Vec<String>,
    /// The agent's key as a DID (`did:key:…` or `did:mesh:…`).
    pub did: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    pub nonce: String,
    pub timestamp: u64,
    /// base64url Ed25519 signature by the agent's key.
    pub signature: String,
}

impl RegistrationRequest {
    /// The signed message.
    pub fn message(&self, mesh: &str) -> String {
        to_canonical_json(&json!({
            "mesh": mesh,
            "name": self.name,
            "sponsor": self.sponsor,
            "capabilities": self.capabilities,
            "did": self.did,
            "parent": self.parent,
            "expires_at": self.expires_at,
            "nonce": self.nonce,
            "timestamp": self.timestamp,
        }))
    }

    /// Fills in `signature` with `key`.
    pub fn sign(mut self, key: &KeyPair, mesh: &str) -> Self {
        let sig = key.sign(REGISTER_DOMAIN, self.message(mesh).as_bytes());
        self.signature = URL_SAFE_NO_PAD.encode(sig);
        self
    }
}

/// `POST /v1/credentials`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    pub did: String,
    /// Gateway audience, default `*` (any gateway of the mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Lifetime wanted; default and maximum come from the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    pub nonce: String,
    pub timestamp: u64,
    pub signature: String,
}

impl CredentialRequest {
    pub fn message(&self, mesh: &str) -> String {
        to_canonical_json(&json!({
            "mesh": mesh,
            "did": self.did,
            "audience": self.audience,
            "ttl_secs": self.ttl_secs,
            "nonce": self.nonce,
            "timestamp": self.timestamp,
        }))
    }

    pub fn sign(mut self, key: &KeyPair, mesh: &str) -> Self {
        let sig = key.sign(CREDENTIAL_REQUEST_DOMAIN, self.message(mesh).as_bytes());
        self.signature = URL_SAFE_NO_PAD.encode(sig);
        self
    }
}

/// What a sponsor signs to approve registration `id`.
pub fn approval_message(
    mesh: &str,
    id: &str,
    did: &Did,
    name: &str,
    capabilities: &[String],
) -> String {
    to_canonical_json(&json!({
        "mesh": mesh,
        "registration": id,
        "did": did.to_mesh().to_string(),
        "name": name,
        "capabilities": capabilities,
    }))
}

/// Signs an approval with the sponsor's key (base64url).
pub fn sign_approval(key: &KeyPair, message: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.sign(APPROVAL_DOMAIN, message.as_bytes()))
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    #[error("`did` is not a DID: {0}")]
    BadDid(String),
    #[error("`signature` is not base64url of 64 bytes")]
    SignatureEncoding,
    #[error("the signature does not verify with the key of {0} (wrong key or altered request)")]
    KeyMismatch(String),
    #[error(
        "`timestamp` {timestamp} is more than {MAX_SKEW_SECS} s from the server's clock ({now})"
    )]
    Stale { timestamp: u64, now: u64 },
    #[error("the nonce is unknown, expired or already used: ask for a new challenge")]
    Nonce,
}

impl PopError {
    pub fn code(&self) -> &'static str {
        match self {
            PopError::BadDid(_) => "pop_bad_did",
            PopError::SignatureEncoding => "pop_signature_encoding",
            PopError::KeyMismatch(_) => "pop_key_mismatch",
            PopError::Stale { .. } => "pop_stale",
            PopError::Nonce => "pop_nonce",
        }
    }
}

/// Checks `signature` over `message` by the key of `did`, and the time.
pub fn check(
    domain: &str,
    did: &str,
    message: &str,
    signature: &str,
    timestamp: u64,
    now: u64,
) -> Result<Did, PopError> {
    if timestamp.abs_diff(now) > MAX_SKEW_SECS {
        return Err(PopError::Stale { timestamp, now });
    }
    let parsed = Did::parse(did).map_err(|e| PopError::BadDid(e.to_string()))?;
    let key = parsed
        .public_key()
        .map_err(|e| PopError::BadDid(e.to_string()))?;
    let sig = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| PopError::SignatureEncoding)?;
    if sig.len() != 64 {
        return Err(PopError::SignatureEncoding);
    }
    key.verify(domain, message.as_bytes(), &sig)
        .map_err(|_| PopError::KeyMismatch(did.to_owned()))?;
    Ok(parsed)
}

/// A fresh random nonce (128 bits, hex).
pub fn nonce() -> String {
    let mut b = [0u8; 16];
    // getrandom failing means no OS randomness: fail closed with an
    // all-zero nonce would be replayable, so the caller checks the length.
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The JSON a `challenge` endpoint answers.
pub fn challenge_json(nonce: &str, expires_at: u64, mesh: &str) -> Value {
    json!({"nonce": nonce, "expires_at": expires_at, "mesh": mesh})
}
