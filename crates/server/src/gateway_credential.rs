//! Gateway credentials: what an attached gateway presents to its control
//! plane instead of the admin token. A gateway needs the registry snapshot,
//! the change feed, the published policy, to ship its audit leaves, to save
//! trust state, to store and read approvals and to suspend an agent whose
//! trust breached the floor — and nothing else: it cannot create or revoke
//! agents or sponsors, approve registrations or calls, publish policy or
//! issue credentials.
//!
//! Text form (docs/wire/credential.md): `amgw1.` ‖ base64url(canonical JSON
//! of [`GatewayClaims`]) ‖ `.` ‖ base64url(Ed25519 by the mesh key over
//! `"agentmesh/gateway-credential/v1"` ‖ 0x00 ‖ payload). Revoked by id
//! (`POST /v1/credentials/revoke`), like agent credentials.

use agentmesh_engine::credential::{CredentialError, SKEW_SECS, open_claims, sign_claims};
use agentmesh_iatp::Voucher;
use agentmesh_identity::{KeyPair, PublicKey};
use serde::{Deserialize, Serialize};

pub const GATEWAY_PREFIX: &str = "amgw1.";
pub const GATEWAY_DOMAIN: &str = "agentmesh/gateway-credential/v1";

/// What a gateway credential asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayClaims {
    /// Format version: 1.
    pub v: u8,
    /// Random identifier, for audit and revocation.
    pub id: String,
    /// The gateway's name (audit entries it ships name it).
    pub name: String,
    pub iat: u64,
    pub exp: u64,
}

/// Issues a gateway credential signed by the mesh key.
pub fn issue(mesh_key: &KeyPair, name: &str, ttl_secs: u64, now: u64) -> (String, GatewayClaims) {
    let claims = GatewayClaims {
        v: 1,
        id: format!("gw_{}", crate::pop::nonce()),
        name: name.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl_secs),
    };
    (
        sign_claims(GATEWAY_PREFIX, GATEWAY_DOMAIN, mesh_key, &claims),
        claims,
    )
}

/// Checks signature, format, version and time (not revocation).
pub fn verify(text: &str, mesh: &PublicKey, now: u64) -> Result<GatewayClaims, CredentialError> {
    let claims: GatewayClaims = open_claims(text, GATEWAY_PREFIX, GATEWAY_DOMAIN, mesh)?;
    if claims.v != 1 {
        return Err(CredentialError::Malformed("unsupported version"));
    }
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
    Ok(claims)
}

/// Signing domain of a gateway's request for a voucher: the gateway signs,
/// with the key to be vouched for, the canonical JSON of
/// `{"at": <unix secs>, "credential": <its credential id>, "did": <DID>}`.
pub const VOUCH_REQUEST_DOMAIN: &str = "agentmesh/gateway-vouch-request/v1";
/// How long a voucher lasts (gateways renew well before): short, because a
/// prover cannot ask whether the gateway credential behind it was revoked.
pub const VOUCHER_TTL_SECS: u64 = 15 * 60;
/// How far a vouch request's `at` may be from the control plane's clock.
pub const VOUCH_SKEW_SECS: u64 = 300;

/// The bytes a gateway signs to ask for a voucher for `did`.
pub fn vouch_request_message(credential_id: &str, did: &str, at: u64) -> String {
    agentmesh_identity::to_canonical_json(
        &serde_json::json!({"at": at, "credential": credential_id, "did": did}),
    )
}

/// A voucher, signed by the mesh key, for `key`: the key of the gateway
/// `claims` names, no longer than its credential lasts.
pub fn vouch(mesh_key: &KeyPair, claims: &GatewayClaims, key: &str, now: u64) -> (String, Voucher) {
    let v = Voucher {
        v: 1,
        name: claims.name.clone(),
        key: key.to_owned(),
        credential: claims.id.clone(),
        iat: now,
        exp: now.saturating_add(VOUCHER_TTL_SECS).min(claims.exp),
    };
    (v.encode(mesh_key), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_and_refuse() {
        let key = KeyPair::from_seed(&[1; 32]);
        let (text, claims) = issue(&key, "gw-1", 3600, 1_800_000_000);
        assert!(text.starts_with(GATEWAY_PREFIX));
        assert_eq!(
            verify(&text, key.public(), 1_800_000_001).expect("valid"),
            claims
        );
        assert!(
            verify(&text, key.public(), 1_800_003_600).is_err(),
            "expired"
        );
        let other = KeyPair::from_seed(&[2; 32]);
        assert_eq!(
            verify(&text, other.public(), 1_800_000_001),
            Err(CredentialError::BadSignature)
        );
        // An agent credential is not a gateway credential.
        let (agent, _) =
            agentmesh_engine::credential::issue(&key, &key.did(), "*", 60, 1_800_000_000);
        assert!(verify(&agent, key.public(), 1_800_000_001).is_err());
        assert!(verify("amgw1.x.y", key.public(), 0).is_err());
    }
}
