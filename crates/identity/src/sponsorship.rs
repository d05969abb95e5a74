//! A human sponsor's signed attestation that they answer for an agent.
//!
//! The signature is Ed25519 by the sponsor's key over
//! `"agentmesh/sponsorship/v1" ‖ 0x00 ‖ canonical JSON`, where the canonical
//! JSON is the attestation without `signature`, keys in lexicographic order,
//! no whitespace, integers as plain decimals (RFC 8785 for these value types).
//! `docs/wire/identity.md` has the layout and a test vector.

use crate::keys::KeyPair;
use crate::{Did, SpiffeId};
use agentmesh_capability::Capability;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Signing domain of sponsorship attestations.
pub const SPONSORSHIP_DOMAIN: &str = "agentmesh/sponsorship/v1";

/// Why a sponsorship attestation does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SponsorshipError {
    #[error("sponsorship signature is not base64url")]
    BadEncoding,
    #[error("sponsorship signature does not verify against the sponsor's key {0}")]
    BadSignature(Did),
    #[error("sponsor DID does not hold a valid key: {0}")]
    BadSponsorKey(String),
    #[error("sponsorship expired at {0} (unix seconds)")]
    Expired(u64),
}

/// The attestation, as stored with the agent record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sponsorship {
    pub agent_did: Did,
    pub agent_name: String,
    pub spiffe_id: SpiffeId,
    pub sponsor: String,
    pub sponsor_did: Did,
    pub capabilities: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_did: Option<Did>,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; `None` means it does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// base64url (no padding) Ed25519 signature by `sponsor_did`.
    #[serde(default)]
    pub signature: String,
}

impl Sponsorship {
    /// The exact bytes that are signed (without the domain prefix).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Keys in lexicographic order; each string through serde_json so
        // escaping is standard. Written by hand so no serde feature (such as
        // preserve_order) can change the order.
        let s = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        let caps = self
            .capabilities
            .iter()
            .map(|c| s(c.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let mut out = String::with_capacity(512);
        out.push_str(&format!(
            "{{\"agent_did\":{}",
            s(&self.agent_did.to_string())
        ));
        out.push_str(&format!(",\"agent_name\":{}", s(&self.agent_name)));
        out.push_str(&format!(",\"capabilities\":[{caps}]"));
        if let Some(exp) = self.expires_at {
            out.push_str(&format!(",\"expires_at\":{exp}"));
        }
        out.push_str(&format!(",\"issued_at\":{}", self.issued_at));
        if let Some(p) = &self.parent_did {
            out.push_str(&format!(",\"parent_did\":{}", s(&p.to_string())));
        }
        out.push_str(&format!(",\"spiffe_id\":{}", s(self.spiffe_id.as_str())));
        out.push_str(&format!(",\"sponsor\":{}", s(&self.sponsor)));
        out.push_str(&format!(
            ",\"sponsor_did\":{}}}",
            s(&self.sponsor_did.to_string())
        ));
        out.into_bytes()
    }

    /// Signs the attestation with the sponsor's key (sets `sponsor_did` and
    /// `signature`).
    pub fn sign(mut self, sponsor_key: &KeyPair) -> Self {
        self.sponsor_did = sponsor_key.did();
        let sig = sponsor_key.sign(SPONSORSHIP_DOMAIN, &self.canonical_bytes());
        self.signature = URL_SAFE_NO_PAD.encode(sig);
        self
    }

    /// Checks the signature against `sponsor_did`, and expiry at `now`.
    pub fn verify(&self, now: u64) -> Result<(), SponsorshipError> {
        let sig = URL_SAFE_NO_PAD
            .decode(&self.signature)
            .map_err(|_| SponsorshipError::BadEncoding)?;
        let key = self
            .sponsor_did
            .public_key()
            .map_err(|e| SponsorshipError::BadSponsorKey(e.to_string()))?;
        key.verify(SPONSORSHIP_DOMAIN, &self.canonical_bytes(), &sig)
            .map_err(|_| SponsorshipError::BadSignature(self.sponsor_did))?;
        match self.expires_at {
            Some(exp) if now >= exp => Err(SponsorshipError::Expired(exp)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sponsor: &KeyPair) -> Sponsorship {
        let agent = KeyPair::from_seed(&[2u8; 32]);
        Sponsorship {
            agent_did: agent.did(),
            agent_name: "data-analyst-agent".into(),
            spiffe_id: SpiffeId::for_agent("example.org", "data-analyst-agent").expect("id"),
            sponsor: "alice@company.com".into(),
            sponsor_did: sponsor.did(),
            capabilities: agentmesh_capability::parse_list("read:customer-data,write:reports")
                .expect("caps"),
            parent_did: None,
            issued_at: 1_790_000_000,
            expires_at: Some(1_800_000_000),
            signature: String::new(),
        }
        .sign(sponsor)
    }

    #[test]
    fn signs_and_verifies() {
        let sponsor = KeyPair::from_seed(&[1u8; 32]);
        let att = sample(&sponsor);
        att.verify(1_790_000_001).expect("valid");
        assert_eq!(
            att.verify(1_800_000_000),
            Err(SponsorshipError::Expired(1_800_000_000))
        );
        let text = String::from_utf8(att.canonical_bytes()).expect("utf8");
        assert!(text.starts_with("{\"agent_did\":\"did:mesh:z6Mk"), "{text}");
        assert!(!text.contains("signature"));
        let back: Sponsorship =
            serde_json::from_str(&serde_json::to_string(&att).expect("json")).expect("parse");
        back.verify(1_790_000_001).expect("round trip verifies");
    }

    #[test]
    fn every_field_is_covered_by_the_signature() {
        let sponsor = KeyPair::from_seed(&[1u8; 32]);
        let att = sample(&sponsor);
        let now = 1_790_000_001;
        let mut changed = Vec::new();
        let mut a = att.clone();
        a.agent_name.push('x');
        changed.push(a);
        let mut a = att.clone();
        a.capabilities
            .push(Capability::parse("delete:*").expect("cap"));
        changed.push(a);
        let mut a = att.clone();
        a.expires_at = None;
        changed.push(a);
        let mut a = att.clone();
        a.issued_at += 1;
        changed.push(a);
        let mut a = att.clone();
        a.parent_did = Some(KeyPair::from_seed(&[9u8; 32]).did());
        changed.push(a);
        let mut a = att.clone();
        a.sponsor = "mallory@company.com".into();
        changed.push(a);
        let mut a = att.clone();
        a.agent_did = KeyPair::from_seed(&[8u8; 32]).did();
        changed.push(a);
        let mut a = att.clone();
        a.spiffe_id = SpiffeId::for_agent("example.org", "other").expect("id");
        changed.push(a);
        let mut a = att.clone();
        a.sponsor_did = KeyPair::from_seed(&[7u8; 32]).did();
        changed.push(a);
        for a in changed {
            assert!(
                a.verify(now).is_err(),
                "tampered attestation verified: {a:?}"
            );
        }
    }
}
