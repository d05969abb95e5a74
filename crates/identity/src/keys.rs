//! Ed25519 keys with domain separation.
//!
//! Every signature AgentMesh makes is over `domain ‖ 0x00 ‖ message`, where
//! `domain` is a fixed ASCII label such as `agentmesh/delegation-link/v1`.
//! Verification uses `verify_strict` (no small-order keys or points, canonical
//! `S`), so a signature has exactly one valid encoding.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

pub use ed25519_dalek::Signature;

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Why a key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("public key is not a valid Ed25519 point")]
    InvalidPublicKey,
    #[error("public key is a weak (small-order) Ed25519 point")]
    WeakPublicKey,
    #[error("public key must be 32 bytes, got {0}")]
    PublicKeyLength(usize),
    #[error("signature must be 64 bytes, got {0}")]
    SignatureLength(usize),
    #[error("signature does not verify")]
    BadSignature,
    #[error("private key PEM is not a PKCS#8 Ed25519 key: {0}")]
    Pem(String),
    #[error("could not read random bytes from the operating system: {0}")]
    Random(String),
}

/// A public Ed25519 key: 32 bytes, validated as a strict point on
/// construction, so holding one means verification can proceed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    bytes: [u8; 32],
    key: VerifyingKey,
}

impl PublicKey {
    /// Validates 32 bytes as an Ed25519 public key (not small-order).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(KeyError::WeakPublicKey);
        }
        Ok(Self { bytes: *bytes, key })
    }

    /// Like [`PublicKey::from_bytes`] for a slice of any length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::PublicKeyLength(bytes.len()))?;
        Self::from_bytes(arr)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Verifies `signature` over `domain ‖ 0x00 ‖ message`.
    pub fn verify(&self, domain: &str, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let sig = Signature::from_slice(signature)
            .map_err(|_| KeyError::SignatureLength(signature.len()))?;
        let framed = frame(domain, message);
        self.key
            .verify_strict(&framed, &sig)
            .map_err(|_| KeyError::BadSignature)
    }

    /// Verifies a plain RFC 8032 signature over `message`, with no domain
    /// prefix: only for formats that define their own framing (C2SP signed
    /// notes, JWS). Such messages never contain a 0x00 byte after an
    /// `agentmesh/…` label, so they cannot collide with framed signatures.
    pub fn verify_raw(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let sig = Signature::from_slice(signature)
            .map_err(|_| KeyError::SignatureLength(signature.len()))?;
        self.key
            .verify_strict(message, &sig)
            .map_err(|_| KeyError::BadSignature)
    }

    /// The `did:mesh` identifier of this key.
    pub fn did(&self) -> crate::Did {
        crate::Did::from_public_key(self)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.did())
    }
}

/// An Ed25519 key pair. The private half is zeroized on drop and never
/// printed by `Debug`.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
    public: PublicKey,
}

impl KeyPair {
    /// Generates a new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// Builds a key pair from a 32-byte seed (the RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let verifying = signing.verifying_key();
        let public = PublicKey {
            bytes: verifying.to_bytes(),
            key: verifying,
        };
        Self { signing, public }
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn did(&self) -> crate::Did {
        self.public.did()
    }

    /// The 32-byte seed. Handle with care: it is the private key.
    pub fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.signing.to_bytes())
    }

    /// Signs `domain ‖ 0x00 ‖ message`.
    pub fn sign(&self, domain: &str, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(&frame(domain, message)).to_bytes()
    }

    /// A plain RFC 8032 signature over `message` (see
    /// [`PublicKey::verify_raw`] for when this is appropriate).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(message).to_bytes()
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), readable by OpenSSL.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>, KeyError> {
        self.signing
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| KeyError::Pem(e.to_string()))
    }

    /// Reads a PKCS#8 PEM Ed25519 private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let signing = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
        Ok(Self::from_seed(&signing.to_bytes()))
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({}, private key hidden)", self.did())
    }
}

fn frame(domain: &str, message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(domain.len() + 1 + message.len());
    framed.extend_from_slice(domain.as_bytes());
    framed.push(0);
    framed.extend_from_slice(message);
    framed
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_domain_separation() {
        let kp = KeyPair::from_seed(&[7u8; 32]);
        let sig = kp.sign("agentmesh/test/v1", b"hello");
        kp.public()
            .verify("agentmesh/test/v1", b"hello", &sig)
            .expect("verifies");
        assert_eq!(
            kp.public().verify("agentmesh/other/v1", b"hello", &sig),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            kp.public().verify("agentmesh/test/v1", b"hellO", &sig),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            kp.public()
                .verify("agentmesh/test/v1", b"hello", &sig[..63]),
            Err(KeyError::SignatureLength(63))
        );
    }

    #[test]
    fn pem_round_trip() {
        let kp = KeyPair::generate().expect("rng");
        let pem = kp.to_pkcs8_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = KeyPair::from_pkcs8_pem(&pem).expect("parse");
        assert_eq!(back.public(), kp.public());
        assert!(
            KeyPair::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
        assert!(KeyPair::from_pkcs8_pem("").is_err());
    }

    #[test]
    fn rejects_weak_and_invalid_public_keys() {
        // The identity point (small order) encodes as 0x01 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey::from_bytes(&identity),
            Err(KeyError::WeakPublicKey)
        );
        assert_eq!(
            PublicKey::from_slice(&[1, 2, 3]),
            Err(KeyError::PublicKeyLength(3))
        );
        // y = 2 is not on the curve.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert_eq!(PublicKey::from_bytes(&bad), Err(KeyError::InvalidPublicKey));
    }

    #[test]
    fn debug_never_prints_private_key() {
        let kp = KeyPair::from_seed(&[9u8; 32]);
        let dbg = format!("{kp:?}");
        assert!(dbg.contains("private key hidden"));
        assert!(!dbg.contains("0909"));
    }
}
