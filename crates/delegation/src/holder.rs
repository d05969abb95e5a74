//! Holder proofs: the audience of a token proves it holds the audience key
//! by signing the request it makes.
//!
//! Signed message: `"agentmesh/holder-proof/v1" ‖ 0x00 ‖ leaf_link_hash (32)
//! ‖ request_digest (32) ‖ timestamp (u64 BE, unix seconds)`. The text form is
//! `amhp1.` + base64url(timestamp ‖ signature). A proof is accepted once,
//! within a time window around the verifier's clock.

use crate::VerifiedChain;
use crate::token::Token;
use agentmesh_identity::KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::sync::Mutex;

pub const HOLDER_DOMAIN: &str = "agentmesh/holder-proof/v1";
const TEXT_PREFIX: &str = "amhp1.";

/// Why a holder proof is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolderError {
    #[error("holder proof is malformed: expected `amhp1.` and 72 base64url-encoded bytes")]
    Malformed,
    #[error(
        "holder proof is not signed by the token's audience {holder}: the presenter does not hold the audience key"
    )]
    WrongKey { holder: agentmesh_identity::Did },
    #[error("holder proof is {age} s old; the window is {window} s")]
    Stale { age: u64, window: u64 },
    #[error("holder proof is dated {ahead} s in the future; the window is {window} s")]
    FromFuture { ahead: u64, window: u64 },
    #[error("holder proof was already used (replay)")]
    Replayed,
    #[error("replay cache is full; refusing proofs until older ones expire")]
    ReplayCacheFull,
}

/// A signature by the token's audience over a request digest and a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HolderProof {
    pub timestamp: u64,
    pub signature: [u8; 64],
}

fn message(leaf_hash: &[u8; 32], request_digest: &[u8; 32], timestamp: u64) -> [u8; 72] {
    let mut m = [0u8; 72];
    m[..32].copy_from_slice(leaf_hash);
    m[32..64].copy_from_slice(request_digest);
    m[64..].copy_from_slice(&timestamp.to_be_bytes());
    m
}

impl HolderProof {
    /// Made by the holder for one request.
    pub fn create(holder: &KeyPair, token: &Token, request_digest: &[u8; 32], now: u64) -> Self {
        let sig = holder.sign(
            HOLDER_DOMAIN,
            &message(&token.leaf_hash(), request_digest, now),
        );
        Self {
            timestamp: now,
            signature: sig,
        }
    }

    pub fn to_text(&self) -> String {
        let mut raw = [0u8; 72];
        raw[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        raw[8..].copy_from_slice(&self.signature);
        let mut s = String::from(TEXT_PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw, &mut s);
        s
    }

    pub fn parse(text: &str) -> Result<Self, HolderError> {
        let b64 = text
            .strip_prefix(TEXT_PREFIX)
            .ok_or(HolderError::Malformed)?;
        if b64.len() != 96 {
            return Err(HolderError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| HolderError::Malformed)?;
        let raw: [u8; 72] = raw.try_into().map_err(|_| HolderError::Malformed)?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[8..]);
        Ok(Self {
            timestamp: u64::from_be_bytes(ts),
            signature,
        })
    }
}

/// Remembers accepted proofs for the length of the window so each is
/// accepted once. Memory is bounded by `capacity`; when it is full of live
/// entries, new proofs are refused (fail closed) rather than forgotten.
#[derive(Debug)]
pub struct ReplayGuard {
    window: u64,
    capacity: usize,
    seen: Mutex<HashMap<[u8; 32], u64, foldhash::fast::RandomState>>,
}

impl ReplayGuard {
    /// `window`: seconds a proof's timestamp may differ from the clock.
    pub fn new(window: u64, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            seen: Mutex::new(HashMap::default()),
        }
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    /// Checks a proof for `chain` and `request_digest` at `now`.
    pub fn verify(
        &self,
        chain: &VerifiedChain,
        proof: &HolderProof,
        request_digest: &[u8; 32],
        now: u64,
    ) -> Result<(), HolderError> {
        if proof.timestamp > now && proof.timestamp - now > self.window {
            return Err(HolderError::FromFuture {
                ahead: proof.timestamp - now,
                window: self.window,
            });
        }
        if now > proof.timestamp && now - proof.timestamp > self.window {
            return Err(HolderError::Stale {
                age: now - proof.timestamp,
                window: self.window,
            });
        }
        let key = chain
            .holder
            .public_key()
            .map_err(|_| HolderError::WrongKey {
                holder: chain.holder,
            })?;
        key.verify(
            HOLDER_DOMAIN,
            &message(&chain.leaf_hash(), request_digest, proof.timestamp),
            &proof.signature,
        )
        .map_err(|_| HolderError::WrongKey {
            holder: chain.holder,
        })?;
        // The signature's R half is unique per signed message, so it
        // identifies the proof.
        let mut id = [0u8; 32];
        id.copy_from_slice(&proof.signature[..32]);
        let forget_after = proof.timestamp.saturating_add(self.window);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&id) {
            return Err(HolderError::Replayed);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                return Err(HolderError::ReplayCacheFull);
            }
        }
        seen.insert(id, forget_after);
        Ok(())
    }
}
