//! Gateway vouchers: how a verifier that is not in the prover's registry
//! (a gateway attached to a control plane, holding its own key) proves it
//! is one of the mesh's gateways.
//!
//! The control plane signs, with the mesh key, "the key behind DID `key` is
//! gateway `name` of this mesh until `exp`"; the gateway carries that text
//! in every challenge it signs (`voucher`). A prover whose registry does
//! not know the verifier's DID admits it when the voucher is signed by a
//! mesh authority it trusts and names exactly the key that signed the
//! challenge. A voucher is not a credential: it grants nothing at the
//! control plane (another prefix and signing domain than the gateway's
//! `amgw1.` credential), so showing it to any prover gives nothing away.
//!
//! Text form (docs/wire/iatp.md): `amgv1.` ‖ base64url(canonical JSON of
//! [`Voucher`]) ‖ `.` ‖ base64url(Ed25519 by the mesh key over
//! `"agentmesh/iatp/gateway-voucher/v1"` ‖ 0x00 ‖ payload).

use crate::wire::{HandshakeError, SKEW_SECS, b64, malformed, parse_did, unb64};
use agentmesh_identity::{Did, KeyPair, PublicKey, to_canonical_json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const VOUCHER_PREFIX: &str = "amgv1.";
pub const VOUCHER_DOMAIN: &str = "agentmesh/iatp/gateway-voucher/v1";
/// Longer voucher texts are rejected before any decoding.
pub const MAX_VOUCHER_LEN: usize = 2048;

/// What the mesh authority asserts about a gateway's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voucher {
    /// Format version: 1.
    pub v: u8,
    /// The gateway's name (the one its gateway credential names).
    pub name: String,
    /// The DID whose key the gateway signs challenges and attestations with.
    pub key: String,
    /// The gateway credential it was vouched on (for audit and revocation).
    pub credential: String,
    pub iat: u64,
    pub exp: u64,
}

impl Voucher {
    /// Signs and encodes as `amgv1.…`.
    pub fn encode(&self, authority: &KeyPair) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let payload = to_canonical_json(&value);
        let sig = authority.sign(VOUCHER_DOMAIN, payload.as_bytes());
        format!("{VOUCHER_PREFIX}{}.{}", b64(payload.as_bytes()), b64(&sig))
    }

    /// Checks format, signature by one of `authorities`, time, and that it
    /// vouches for `key`; returns the voucher and the authority that
    /// signed it.
    pub fn open(
        text: &str,
        authorities: &[PublicKey],
        key: &Did,
        now: u64,
    ) -> Result<(Self, PublicKey), HandshakeError> {
        if text.len() > MAX_VOUCHER_LEN {
            return Err(malformed(format!(
                "voucher longer than {MAX_VOUCHER_LEN} bytes"
            )));
        }
        let body = text
            .strip_prefix(VOUCHER_PREFIX)
            .ok_or_else(|| malformed("voucher does not start with `amgv1.`"))?;
        let (p64, s64) = body
            .split_once('.')
            .ok_or_else(|| malformed("voucher: expected payload.signature"))?;
        let payload = unb64(p64, "voucher payload")?;
        let sig = unb64(s64, "voucher signature")?;
        let voucher: Voucher = serde_json::from_slice(&payload)
            .map_err(|e| malformed(format!("voucher payload: {e}")))?;
        if voucher.v != 1 {
            return Err(malformed("voucher version is not 1"));
        }
        let value = serde_json::to_value(&voucher).unwrap_or(Value::Null);
        if to_canonical_json(&value).as_bytes() != payload.as_slice() {
            return Err(malformed("voucher payload is not canonical JSON"));
        }
        let authority = authorities
            .iter()
            .find(|a| a.verify(VOUCHER_DOMAIN, &payload, &sig).is_ok())
            .copied()
            .ok_or_else(|| {
                HandshakeError::UntrustedIssuer(
                    "of the voucher (no mesh authority this side trusts signed it)".into(),
                )
            })?;
        // The voucher must be about the key that signed the challenge.
        let named = parse_did(&voucher.key, "voucher key")?;
        if named.key_bytes() != key.key_bytes() {
            return Err(HandshakeError::Mismatch(
                "the voucher vouches for another key than the verifier's",
            ));
        }
        if now >= voucher.exp {
            return Err(HandshakeError::Expired {
                expires_at: voucher.exp,
                now,
            });
        }
        if voucher.iat > now.saturating_add(SKEW_SECS) {
            return Err(HandshakeError::NotYetValid {
                at: voucher.iat,
                now,
            });
        }
        Ok((voucher, authority))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> KeyPair {
        KeyPair::from_seed(&[n; 32])
    }

    fn voucher(gw: &KeyPair) -> Voucher {
        Voucher {
            v: 1,
            name: "edge".into(),
            key: gw.did().to_string(),
            credential: "gw_abc".into(),
            iat: 1_000,
            exp: 2_000,
        }
    }

    #[test]
    fn a_voucher_opens_only_for_its_key_its_authority_and_its_time() {
        let (mesh, gw, other) = (key(1), key(2), key(3));
        let text = voucher(&gw).encode(&mesh);
        let (v, by) = Voucher::open(&text, &[*other.public(), *mesh.public()], &gw.did(), 1_500)
            .expect("opens");
        assert_eq!(v.name, "edge");
        assert_eq!(by, *mesh.public());
        // Another authority, another key, too late, too early, altered.
        assert!(matches!(
            Voucher::open(&text, &[*other.public()], &gw.did(), 1_500),
            Err(HandshakeError::UntrustedIssuer(_))
        ));
        assert!(matches!(
            Voucher::open(&text, &[*mesh.public()], &other.did(), 1_500),
            Err(HandshakeError::Mismatch(_))
        ));
        assert!(matches!(
            Voucher::open(&text, &[*mesh.public()], &gw.did(), 2_000),
            Err(HandshakeError::Expired { .. })
        ));
        assert!(matches!(
            Voucher::open(&text, &[*mesh.public()], &gw.did(), 900),
            Err(HandshakeError::NotYetValid { .. })
        ));
        let mut forged = voucher(&gw);
        forged.name = "core".into();
        let (_, sig) = text.rsplit_once('.').expect("sig");
        let payload = to_canonical_json(&serde_json::to_value(&forged).expect("json"));
        let spliced = format!("{VOUCHER_PREFIX}{}.{sig}", b64(payload.as_bytes()));
        assert!(Voucher::open(&spliced, &[*mesh.public()], &gw.did(), 1_500).is_err());
        // Nothing from the gateway credential's format opens as a voucher.
        assert!(Voucher::open("amgw1.e30.AAAA", &[*mesh.public()], &gw.did(), 1_500).is_err());
        assert!(Voucher::open(&"a".repeat(5000), &[*mesh.public()], &gw.did(), 1_500).is_err());
    }
}
