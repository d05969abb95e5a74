//! W3C DID documents (`Multikey`) and JSON Web Keys (OKP / Ed25519).

use crate::keys::{KeyPair, PublicKey};
use crate::{Did, SpiffeId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// A DID document for a `did:mesh` / `did:key` identifier, derived from the
/// key alone (no resolver, no network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DidDocument {
    #[serde(rename = "@context")]
    pub context: Vec<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_known_as: Vec<String>,
    pub verification_method: Vec<VerificationMethod>,
    pub authentication: Vec<String>,
    pub assertion_method: Vec<String>,
    pub capability_delegation: Vec<String>,
    pub capability_invocation: Vec<String>,
}

/// One `Multikey` verification method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMethod {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub controller: String,
    pub public_key_multibase: String,
}

impl DidDocument {
    /// The document of `did`. `also_known_as` lists the other spelling of the
    /// DID and, when given, the agent's SPIFFE ID.
    pub fn for_did(did: &Did, spiffe: Option<&SpiffeId>) -> Self {
        let id = did.to_string();
        let multibase = did.method_specific_id();
        let vm_id = format!("{id}#{multibase}");
        let other = match did.method() {
            crate::DidMethod::Mesh => did.to_did_key(),
            crate::DidMethod::Key => did.to_mesh(),
        };
        let mut also_known_as = vec![other.to_string()];
        if let Some(s) = spiffe {
            also_known_as.push(s.to_string());
        }
        Self {
            context: vec![
                "https://www.w3.org/ns/did/v1".to_owned(),
                "https://w3id.org/security/multikey/v1".to_owned(),
            ],
            id: id.clone(),
            also_known_as,
            verification_method: vec![VerificationMethod {
                id: vm_id.clone(),
                kind: "Multikey".to_owned(),
                controller: id,
                public_key_multibase: multibase,
            }],
            authentication: vec![vm_id.clone()],
            assertion_method: vec![vm_id.clone()],
            capability_delegation: vec![vm_id.clone()],
            capability_invocation: vec![vm_id],
        }
    }
}

/// Why a JWK was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("JWK is not valid JSON: {0}")]
    Json(String),
    #[error("JWK is {0} bytes; the limit is 4096")]
    TooLarge(usize),
    #[error("JWK key type `{0}` is not supported: only OKP with crv Ed25519")]
    UnsupportedKeyType(String),
    #[error("JWK curve `{0}` is not supported: only Ed25519")]
    UnsupportedCurve(String),
    #[error("JWK member `{0}` is missing")]
    Missing(&'static str),
    #[error("JWK member `{0}` is not base64url without padding")]
    BadBase64(&'static str),
    #[error("JWK member `{member}` must decode to 32 bytes, got {len}")]
    BadLength { member: &'static str, len: usize },
    #[error("JWK public key is invalid: {0}")]
    InvalidKey(String),
    #[error("JWK private key `d` does not match its public key `x`")]
    KeyMismatch,
}

/// An OKP/Ed25519 JSON Web Key (RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl Jwk {
    /// The public JWK of `key`; `kid` is the verification method id.
    pub fn public(key: &PublicKey) -> Self {
        let did = key.did();
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            d: None,
            kid: Some(format!("{did}#{}", did.method_specific_id())),
            use_: Some("sig".to_owned()),
            alg: Some("EdDSA".to_owned()),
        }
    }

    /// The private JWK (with `d`). Only for moving a key between holders.
    pub fn private(key: &KeyPair) -> Self {
        let mut jwk = Self::public(key.public());
        jwk.d = Some(URL_SAFE_NO_PAD.encode(&key.seed()[..]));
        jwk
    }

    /// Parses and validates a JWK from JSON text.
    pub fn from_json(text: &str) -> Result<Self, JwkError> {
        if text.len() > 4096 {
            return Err(JwkError::TooLarge(text.len()));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| JwkError::Json(e.to_string()))?;
        let get = |k: &'static str| value.get(k).and_then(|v| v.as_str());
        let kty = get("kty").ok_or(JwkError::Missing("kty"))?;
        if kty != "OKP" {
            return Err(JwkError::UnsupportedKeyType(kty.to_owned()));
        }
        let crv = get("crv").ok_or(JwkError::Missing("crv"))?;
        if crv != "Ed25519" {
            return Err(JwkError::UnsupportedCurve(crv.to_owned()));
        }
        let jwk: Jwk = serde_json::from_value(value).map_err(|e| JwkError::Json(e.to_string()))?;
        jwk.public_key()?;
        jwk.key_pair()?;
        Ok(jwk)
    }

    /// The public key in `x`.
    pub fn public_key(&self) -> Result<PublicKey, JwkError> {
        let x = decode32(&self.x, "x")?;
        PublicKey::from_bytes(&x).map_err(|e| JwkError::InvalidKey(e.to_string()))
    }

    /// The key pair when `d` is present, checked against `x`.
    pub fn key_pair(&self) -> Result<Option<KeyPair>, JwkError> {
        let Some(d) = &self.d else { return Ok(None) };
        let seed = zeroize::Zeroizing::new(decode32(d, "d")?);
        let kp = KeyPair::from_seed(&seed);
        if kp.public().as_bytes() != &decode32(&self.x, "x")? {
            return Err(JwkError::KeyMismatch);
        }
        Ok(Some(kp))
    }
}

fn decode32(s: &str, member: &'static str) -> Result<[u8; 32], JwkError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwkError::BadBase64(member))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| JwkError::BadLength {
            member,
            len: bytes.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 Appendix A.1/A.2 test key.
    const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn rfc8037_key_round_trips() {
        let text =
            format!(r#"{{"kty":"OKP","crv":"Ed25519","d":"{RFC8037_D}","x":"{RFC8037_X}"}}"#);
        let jwk = Jwk::from_json(&text).expect("RFC 8037 key");
        let kp = jwk.key_pair().expect("valid").expect("has d");
        assert_eq!(Jwk::public(kp.public()).x, RFC8037_X);
        assert_eq!(Jwk::private(&kp).d.as_deref(), Some(RFC8037_D));
        let public = Jwk::public(kp.public());
        assert!(public.d.is_none());
        let back = Jwk::from_json(&serde_json::to_string(&public).expect("json")).expect("parse");
        assert_eq!(back.public_key().expect("key"), *kp.public());
    }

    #[test]
    fn rejects_wrong_key_types_and_bad_members() {
        let ec = r#"{"kty":"EC","crv":"P-256","x":"a","y":"b"}"#;
        assert_eq!(
            Jwk::from_json(ec),
            Err(JwkError::UnsupportedKeyType("EC".into()))
        );
        let x448 = r#"{"kty":"OKP","crv":"X25519","x":"abc"}"#;
        assert_eq!(
            Jwk::from_json(x448),
            Err(JwkError::UnsupportedCurve("X25519".into()))
        );
        assert_eq!(
            Jwk::from_json(r#"{"crv":"Ed25519"}"#),
            Err(JwkError::Missing("kty"))
        );
        let short = r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#;
        assert!(matches!(
            Jwk::from_json(short),
            Err(JwkError::BadLength {
                member: "x",
                len: 3
            })
        ));
        let padded = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}="}}"#);
        assert_eq!(Jwk::from_json(&padded), Err(JwkError::BadBase64("x")));
        let other_d = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","d":"{}"}}"#,
            URL_SAFE_NO_PAD.encode([5u8; 32])
        );
        assert_eq!(Jwk::from_json(&other_d), Err(JwkError::KeyMismatch));
        assert!(matches!(Jwk::from_json("{"), Err(JwkError::Json(_))));
        assert!(matches!(
            Jwk::from_json(&" ".repeat(5000)),
            Err(JwkError::TooLarge(5000))
        ));
    }

    #[test]
    fn did_document_uses_multikey() {
        let kp = KeyPair::from_seed(&[3u8; 32]);
        let spiffe = SpiffeId::for_agent("example.org", "planner").expect("spiffe");
        let doc = DidDocument::for_did(&kp.did(), Some(&spiffe));
        let json = serde_json::to_value(&doc).expect("json");
        let vm = &json["verificationMethod"][0];
        assert_eq!(vm["type"], "Multikey");
        assert_eq!(vm["publicKeyMultibase"], kp.did().method_specific_id());
        assert_eq!(json["id"], kp.did().to_string());
        assert_eq!(json["alsoKnownAs"][1], "spiffe://example.org/agent/planner");
        assert!(
            json["alsoKnownAs"][0]
                .as_str()
                .expect("str")
                .starts_with("did:key:z6Mk")
        );
        assert_eq!(json["authentication"][0], vm["id"]);
    }
}
