//! Bearer credentials issued by the mesh authority.
//!
//! A credential says "the mesh vouches that the bearer is agent `sub`, for
//! audience `aud`, until `exp`". It is a bearer token: whoever holds it can
//! use it until it expires or the agent is suspended or revoked (the agent's
//! status is checked on every call). For proof of possession, present a
//! delegation token with a holder proof instead.
//!
//! Text form: `amcr1.` ‖ base64url(payload) ‖ `.` ‖ base64url(signature),
//! where the payload is the canonical JSON of [`Claims`] and the signature
//! is Ed25519 by the mesh authority key over
//! `"agentmesh/credential/v1" ‖ 0x00 ‖ payload` (see docs/wire/credential.md).

use agentmesh_identity::{Did, KeyPair, PublicKey, to_canonical_json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub const CREDENTIAL_DOMAIN: &str = "agentmesh/credential/v1";
pub const CREDENTIAL_PREFIX: &str = "amcr1.";
/// Longer texts are rejected before any decoding.
pub const MAX_CREDENTIAL_LEN: usize = 2048;
/// Clock skew tolerated on `iat`.
pub const SKEW_SECS: u64 = 30;
/// Audience that any gateway of the mesh accepts.
pub const ANY_AUDIENCE: &str = "*";

/// What a credential asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Format version: 1.
    pub v: u8,
    /// Random identifier (hex), for audit and revocation lists.
    pub id: String,
    /// The agent's DID (`did:mesh:…`).
    pub sub: String,
    /// The gateway audience it is for, or `*`.
    pub aud: String,
    /// Issued at / expires at, unix seconds.
    pub iat: u64,
    pub exp: u64,
}

/// Why a credential is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("credential is malformed: {0}")]
    Malformed(&'static str),
    #[error("credential is not signed by this mesh's authority key")]
    BadSignature,
    #[error("credential expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("credential is dated {iat}, in the future (now {now}); check the clocks")]
    NotYetValid { iat: u64, now: u64 },
    #[error("credential is for audience `{aud}`, not `{expected}`")]
    WrongAudience { aud: String, expected: String },
}

impl CredentialError {
    /// A stable code for audit and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CredentialError::Malformed(_) => "credential_malformed",
            CredentialError::BadSignature => "credential_bad_signature",
            CredentialError::Expired { .. } => "credential_expired",
            CredentialError::NotYetValid { .. } => "credential_not_yet_valid",
            CredentialError::WrongAudience { .. } => "credential_wrong_audience",
        }
    }
}

fn random_id() -> String {
    let mut b = [0u8; 12];
    // An id collision only weakens revocation-by-id, never authentication;
    // the time and subject still differ.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Issues a credential for agent `sub`, signed by the mesh authority key.
pub fn issue(
    mesh_key: &KeyPair,
    sub: &Did,
    aud: &str,
    ttl_secs: u64,
    now: u64,
) -> (String, Claims) {
    let claims = Claims {
        v: 1,
        id: random_id(),
        sub: sub.to_mesh().to_string(),
        aud: aud.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl_secs),
    };
    (encode(mesh_key, &claims), claims)
}

/// Encodes and signs `claims` (for tests and tools that need exact claims).
pub fn encode(mesh_key: &KeyPair, claims: &Claims) -> String {
    sign_claims(CREDENTIAL_PREFIX, CREDENTIAL_DOMAIN, mesh_key, claims)
}

/// `prefix` ‖ base64url(canonical JSON of `claims`) ‖ `.` ‖
/// base64url(Ed25519 by `key` over `domain` ‖ 0x00 ‖ payload): the shape of
/// every mesh-signed bearer (agent credentials, gateway credentials).
pub fn sign_claims<T: Serialize>(prefix: &str, domain: &str, key: &KeyPair, claims: &T) -> String {
    let value = serde_json::to_value(claims).unwrap_or(serde_json::Value::Null);
    let payload = to_canonical_json(&value);
    let sig = key.sign(domain, payload.as_bytes());
    format!(
        "{prefix}{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// The claims of a [`sign_claims`] text, after checking its length, its
/// signature under `domain` and that the signed bytes are the canonical form
/// of the claims (one bearer, exactly one text: no malleability through
/// re-encoding). Version, time and audience are the caller's to check.
pub fn open_claims<T: Serialize + serde::de::DeserializeOwned>(
    text: &str,
    prefix: &'static str,
    domain: &str,
    public: &PublicKey,
) -> Result<T, CredentialError> {
    if text.len() > MAX_CREDENTIAL_LEN {
        return Err(CredentialError::Malformed("longer than 2048 bytes"));
    }
    let body = text.strip_prefix(prefix).ok_or(CredentialError::Malformed(
        "does not start with the expected prefix",
    ))?;
    let (payload_b64, sig_b64) = body
        .split_once('.')
        .ok_or(CredentialError::Malformed("expected payload.signature"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| CredentialError::Malformed("payload is not base64url"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| CredentialError::Malformed("signature is not base64url"))?;
    if sig.len() != 64 {
        return Err(CredentialError::Malformed("signature is not 64 bytes"));
    }
    public
        .verify(domain, &payload, &sig)
        .map_err(|_| CredentialError::BadSignature)?;
    let claims: T = serde_json::from_slice(&payload)
        .map_err(|_| CredentialError::Malformed("payload is not the claims object"))?;
    let value = serde_json::to_value(&claims).unwrap_or(serde_json::Value::Null);
    if to_canonical_json(&value).as_bytes() != payload.as_slice() {
        return Err(CredentialError::Malformed("payload is not canonical JSON"));
    }
    Ok(claims)
}

/// Checks the signature and the format; not the time or audience.
pub fn decode(text: &str, mesh_public: &PublicKey) -> Result<Claims, CredentialError> {
    if !text.starts_with(CREDENTIAL_PREFIX) {
        return Err(CredentialError::Malformed("does not start with `amcr1.`"));
    }
    let claims: Claims = open_claims(text, CREDENTIAL_PREFIX, CREDENTIAL_DOMAIN, mesh_public)?;
    if claims.v != 1 {
        return Err(CredentialError::Malformed("unsupported version"));
    }
    Did::parse(&claims.sub).map_err(|_| CredentialError::Malformed("`sub` is not a DID"))?;
    Ok(claims)
}

/// Checks time and audience of decoded claims.
pub fn check(claims: &Claims, audience: &str, now: u64) -> Result<(), CredentialError> {
    if now >= claims.exp {
        return Err(CredentialError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.iat > now.saturating_add(SKEW_SECS) {
        return Err(CredentialError::NotYetValid {
            iat: claims.iat,
            now,
        });
    }
    if claims.aud != ANY_AUDIENCE && claims.aud != audience {
        return Err(CredentialError::WrongAudience {
            aud: claims.aud.clone(),
            expected: audience.to_owned(),
        });
    }
    Ok(())
}

/// Decodes, then checks time and audience.
pub fn verify(
    text: &str,
    mesh_public: &PublicKey,
    audience: &str,
    now: u64,
) -> Result<Claims, CredentialError> {
    let claims = decode(text, mesh_public)?;
    check(&claims, audience, now)?;
    Ok(claims)
}

/// A credential whose signature was checked, with its subject parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub claims: Claims,
    pub subject: Did,
}

/// Credentials whose signature was already checked, keyed by their text.
/// A hit still checks time and audience.
#[derive(Debug)]
pub struct CredentialCache {
    capacity: usize,
    entries: RwLock<HashMap<Box<str>, Arc<Checked>, foldhash::fast::RandomState>>,
}

impl CredentialCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::default()),
        }
    }

    pub fn verify(
        &self,
        text: &str,
        mesh_public: &PublicKey,
        audience: &str,
        now: u64,
    ) -> Result<Arc<Checked>, CredentialError> {
        let hit = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(text)
            .cloned();
        let checked = match hit {
            Some(c) => c,
            None => {
                let claims = decode(text, mesh_public)?;
                let subject = Did::parse(&claims.sub)
                    .map_err(|_| CredentialError::Malformed("`sub` is not a DID"))?;
                let c = Arc::new(Checked { claims, subject });
                let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
                if map.len() >= self.capacity {
                    // Expired credentials go first; if that frees nothing,
                    // start over (a miss costs one signature check).
                    map.retain(|_, v| v.claims.exp > now);
                    if map.len() >= self.capacity {
                        map.clear();
                    }
                }
                map.insert(text.into(), c.clone());
                c
            }
        };
        check(&checked.claims, audience, now)?;
        Ok(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyPair {
        KeyPair::from_seed(&[7; 32])
    }

    #[test]
    fn issued_credentials_verify_and_every_change_is_caught() {
        let k = key();
        let agent = KeyPair::from_seed(&[8; 32]).did();
        let (text, claims) = issue(&k, &agent, "gw", 3600, 1_000);
        assert_eq!(
            verify(&text, k.public(), "gw", 1_001).expect("valid"),
            claims
        );
        assert!(matches!(
            verify(&text, k.public(), "gw", 4_600),
            Err(CredentialError::Expired { .. })
        ));
        assert!(matches!(
            verify(&text, k.public(), "other", 1_001),
            Err(CredentialError::WrongAudience { .. })
        ));
        let other = KeyPair::from_seed(&[9; 32]);
        assert_eq!(
            verify(&text, other.public(), "gw", 1_001),
            Err(CredentialError::BadSignature)
        );
        // Flip every character of the text: never accepted.
        for i in CREDENTIAL_PREFIX.len()..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).expect("ascii");
            if t == text {
                continue;
            }
            assert!(verify(&t, k.public(), "gw", 1_001).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn hostile_texts_are_rejected_without_panicking() {
        let k = key();
        for t in [
            "",
            "amcr1.",
            "amcr1..",
            "amcr1.AAAA",
            "amcr1.AAAA.AAAA",
            "amcr1.!!!.???",
            "Bearer amcr1.x.y",
            &"a".repeat(10_000),
        ] {
            assert!(verify(t, k.public(), "gw", 1).is_err(), "{t:.40}");
        }
        // Valid signature over non-canonical JSON is still refused.
        let payload = br#"{"v":1, "id":"x","sub":"did:mesh:z","aud":"*","iat":0,"exp":9}"#;
        let sig = k.sign(CREDENTIAL_DOMAIN, payload);
        let t = format!(
            "{CREDENTIAL_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        );
        assert!(matches!(
            verify(&t, k.public(), "gw", 1),
            Err(CredentialError::Malformed(_))
        ));
    }

    #[test]
    fn the_cache_still_checks_time_and_audience() {
        let k = key();
        let agent = KeyPair::from_seed(&[8; 32]).did();
        let (text, _) = issue(&k, &agent, "*", 10, 100);
        let cache = CredentialCache::new(2);
        assert_eq!(
            cache
                .verify(&text, k.public(), "gw", 101)
                .expect("ok")
                .subject,
            agent
        );
        assert!(cache.verify(&text, k.public(), "gw", 105).is_ok());
        assert!(matches!(
            cache.verify(&text, k.public(), "gw", 110),
            Err(CredentialError::Expired { .. })
        ));
    }
}
