//! IATP agent manifests (`GET /.well-known/agent-manifest`), read leniently
//! in both shapes seen in the wild, and served for IATP sidecars.
//!
//! * The spec shape (IATP-001): `identity.{agent_id, verification_key,
//!   owner}`, `trust_level`, `scopes`, `capabilities`, `reversibility`
//!   object, `privacy`, `protocol_version`.
//! * The shape the `inter-agent-trust-protocol` 0.5.0 sidecar emits:
//!   top-level `agent_id`, `agent_version`, `capabilities.reversibility`
//!   as a string, `privacy_contract.{retention, human_review}`.
//!
//! A manifest is the peer's *own* claim: it is mapped to attributes for
//! display, audit and policy, and IATP's 0–10 score is computed as IATP
//! does, but AgentMesh's trust in a peer comes from its registry only.

use serde::Serialize;
use serde_json::{Value, json};

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;

/// IATP's trust levels (lower-cased; anything else reads as `unknown`).
pub const TRUST_LEVELS: &[&str] = &[
    "verified_partner",
    "trusted",
    "standard",
    "unknown",
    "untrusted",
];

/// What a manifest says, normalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestFacts {
    /// `spec` or `sidecar-0.5`.
    pub shape: &'static str,
    pub agent_id: String,
    pub version: Option<String>,
    pub owner: Option<String>,
    /// `ed25519:<base64>` when given.
    pub verification_key: Option<String>,
    pub trust_level: String,
    pub scopes: Vec<String>,
    /// `full`, `partial` or `none`.
    pub reversibility: String,
    /// `ephemeral`, `temporary`, `permanent`, `forever` or `unknown`.
    pub retention: String,
    pub human_in_loop: bool,
    pub training_consent: bool,
    pub protocol_version: Option<String>,
    /// Fields not understood (kept for display, never acted on).
    pub unknown_fields: Vec<String>,
}

/// Why a manifest could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is larger than {MAX_MANIFEST_LEN} bytes")]
    TooLarge,
    #[error("manifest is not a JSON object: {0}")]
    NotJson(String),
    #[error("manifest names no agent (neither `identity.agent_id` nor `agent_id`)")]
    NoAgent,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() && s.len() <= 1024 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        _ => false,
    }
}

fn one_of(v: Option<String>, allowed: &[&str], otherwise: &str) -> String {
    v.map(|s| s.to_ascii_lowercase())
        .filter(|s| allowed.contains(&s.as_str()))
        .unwrap_or_else(|| otherwise.to_owned())
}

const KNOWN: &[&str] = &[
    "$schema",
    "identity",
    "agent_id",
    "agent_version",
    "trust_level",
    "scopes",
    "capabilities",
    "reversibility",
    "privacy",
    "privacy_contract",
    "protocol_version",
];

/// Reads a manifest in either shape. Missing or odd fields take the most
/// conservative value (unknown trust, no reversibility, unknown retention).
pub fn parse(bytes: &[u8]) -> Result<ManifestFacts, ManifestError> {
    if bytes.len() > MAX_MANIFEST_LEN {
        return Err(ManifestError::TooLarge);
    }
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ManifestError::NotJson("not an object".into()))?;
    let identity = obj.get("identity").and_then(Value::as_object);
    let spec = identity.is_some();
    let agent_id = identity
        .and_then(|i| text(i.get("agent_id")))
        .or_else(|| text(obj.get("agent_id")))
        .ok_or(ManifestError::NoAgent)?;
    let caps = obj.get("capabilities").and_then(Value::as_object);
    let reversibility = one_of(
        obj.get("reversibility")
            .and_then(|r| text(r.get("level")).or_else(|| text(Some(r))))
            .or_else(|| caps.and_then(|c| text(c.get("reversibility")))),
        &["full", "partial", "none"],
        "none",
    );
    let privacy = obj
        .get("privacy")
        .or_else(|| obj.get("privacy_contract"))
        .and_then(Value::as_object);
    let retention = one_of(
        privacy.and_then(|p| text(p.get("retention_policy")).or_else(|| text(p.get("retention")))),
        &["ephemeral", "temporary", "permanent", "forever"],
        "unknown",
    );
    let scopes = obj
        .get("scopes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| text(Some(s))).take(256).collect())
        .unwrap_or_default();
    Ok(ManifestFacts {
        shape: if spec { "spec" } else { "sidecar-0.5" },
        agent_id,
        version: text(obj.get("agent_version")),
        owner: identity.and_then(|i| text(i.get("owner"))),
        verification_key: identity.and_then(|i| text(i.get("verification_key"))),
        trust_level: one_of(text(obj.get("trust_level")), TRUST_LEVELS, "unknown"),
        scopes,
        reversibility,
        retention,
        human_in_loop: privacy
            .map(|p| flag(p.get("human_in_loop")) || flag(p.get("human_review")))
            .unwrap_or(false),
        training_consent: privacy
            .map(|p| flag(p.get("training_consent")))
            .unwrap_or(false),
        protocol_version: text(obj.get("protocol_version")),
        unknown_fields: obj
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .take(64)
            .cloned()
            .collect(),
    })
}

impl ManifestFacts {
    /// IATP's own 0–10 score for this manifest (as the sidecar computes
    /// it): a base by trust level, +2 reversible, +1 ephemeral retention,
    /// −1 permanent, −2 human in the loop, −1 training consent; clamped.
    pub fn iatp_score(&self) -> i32 {
        let base = match self.trust_level.as_str() {
            "verified_partner" => 10,
            "trusted" => 7,
            "standard" => 5,
            "unknown" => 2,
            _ => 0,
        };
        let mut s = base;
        if self.reversibility != "none" {
            s += 2;
        }
        match self.retention.as_str() {
            "ephemeral" => s += 1,
            "permanent" | "forever" => s -= 1,
            _ => {}
        }
        if self.human_in_loop {
            s -= 2;
        }
        if self.training_consent {
            s -= 1;
        }
        s.clamp(0, 10)
    }

    /// The manifest as trust attributes (self-reported: for audit,
    /// display and policy conditions, never for the trust score).
    pub fn attributes(&self) -> Value {
        json!({
            "iatp.agent_id": self.agent_id,
            "iatp.shape": self.shape,
            "iatp.trust_level": self.trust_level,
            "iatp.score": self.iatp_score(),
            "iatp.reversibility": self.reversibility,
            "iatp.retention": self.retention,
            "iatp.human_in_loop": self.human_in_loop,
            "iatp.training_consent": self.training_consent,
            "iatp.scopes": self.scopes,
            "iatp.self_reported": true,
        })
    }
}

/// What AgentMesh serves at `/.well-known/agent-manifest` for an agent: the
/// spec shape, filled from the registry (its tier mapped to an IATP trust
/// level), plus the sidecar's top-level `agent_id` so readers of either
/// shape find the agent.
pub fn serve(
    name: &str,
    did: &str,
    public_key_b64: &str,
    sponsor: &str,
    tier: &str,
    capabilities: &[String],
) -> Value {
    let trust_level = match tier {
        "verified_partner" => "verified_partner",
        "trusted" => "trusted",
        "standard" => "standard",
        "untrusted" => "untrusted",
        _ => "unknown",
    };
    json!({
        "$schema": "http://inter-agent-trust.org/v1/schema",
        "identity": {
            "agent_id": name,
            "did": did,
            "verification_key": format!("ed25519:{public_key_b64}"),
            "owner": sponsor,
        },
        "agent_id": name,
        "trust_level": trust_level,
        "scopes": capabilities,
        "capabilities": {"idempotency": false},
        "reversibility": {"level": "none"},
        "privacy": {"retention_policy": "ephemeral", "human_in_loop": false, "training_consent": false},
        "protocol_version": "1.0",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_read_and_score_as_iatp_does() {
        let spec = br#"{"$schema":"http://inter-agent-trust.org/v1/schema",
 "identity":{"agent_id":"booking-agent-v2.1.0","verification_key":"ed25519:AAAA","owner":"Expedia Group"},
 "trust_level":"verified_partner","scopes":["repo:read"],
 "capabilities":{"idempotency":true,"concurrency_limit":10},
 "reversibility":{"level":"partial","undo_window_seconds":3600},
 "privacy":{"retention_policy":"ephemeral","human_in_loop":false,"training_consent":false},
 "protocol_version":"1.0"}"#;
        let f = parse(spec).expect("spec shape");
        assert_eq!(f.shape, "spec");
        assert_eq!(f.agent_id, "booking-agent-v2.1.0");
        assert_eq!(f.reversibility, "partial");
        assert_eq!(f.iatp_score(), 10);
        let sidecar =
            br#"{"agent_id":"secure-bank-agent","agent_version":"0.2.0","trust_level":"standard",
 "capabilities":{"idempotency":true,"reversibility":"full","undo_window":"24h"},
 "privacy_contract":{"retention":"permanent","storage_location":null,"human_review":true},
 "scopes":[]}"#;
        let f = parse(sidecar).expect("sidecar shape");
        assert_eq!(f.shape, "sidecar-0.5");
        assert_eq!(
            (f.reversibility.as_str(), f.retention.as_str()),
            ("full", "permanent")
        );
        assert!(f.human_in_loop);
        assert_eq!(f.iatp_score(), 5 + 2 - 1 - 2);
    }

    #[test]
    fn odd_values_read_conservatively_and_garbage_is_refused() {
        let f = parse(br#"{"agent_id":"x","trust_level":"ROOT","reversibility":7,"extra":1}"#)
            .expect("lenient");
        assert_eq!(f.trust_level, "unknown");
        assert_eq!(f.reversibility, "none");
        assert_eq!(f.unknown_fields, vec!["extra".to_owned()]);
        assert_eq!(
            parse(b"[]").expect_err("must fail"),
            ManifestError::NotJson("not an object".into())
        );
        assert_eq!(parse(b"{}").expect_err("must fail"), ManifestError::NoAgent);
        assert!(parse(b"{").is_err());
        assert_eq!(
            parse(&vec![b' '; MAX_MANIFEST_LEN + 1]).expect_err("must fail"),
            ManifestError::TooLarge
        );
    }

    #[test]
    fn what_we_serve_reads_back() {
        let m = serve(
            "alpha",
            "did:mesh:z6Mk",
            "AAAA",
            "a@b.c",
            "trusted",
            &["read:x".into()],
        );
        let f = parse(m.to_string().as_bytes()).expect("ours");
        assert_eq!(
            (f.agent_id.as_str(), f.trust_level.as_str()),
            ("alpha", "trusted")
        );
        assert!(f.unknown_fields.is_empty());
    }
}
