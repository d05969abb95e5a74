//! `did:mesh` and `did:key` identifiers for Ed25519 keys.
//!
//! The method-specific id is `z` + base58btc(`0xed 0x01` ‖ 32-byte public
//! key): the multibase/multicodec form of `did:key`. `did:mesh:<id>` and
//! `did:key:<id>` name the same key and compare equal. The identifier is
//! self-certifying: whoever holds the private key controls the DID, and
//! resolving it needs no network.

use crate::keys::{KeyError, PublicKey};
use std::fmt;
use std::str::FromStr;

/// Longest DID string we try to parse. An Ed25519 DID is 56 characters.
const MAX_DID_LEN: usize = 128;
/// Multicodec varint for an Ed25519 public key (0xed).
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// Which spelling a DID was written in. Both name the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DidMethod {
    Mesh,
    Key,
}

/// Why a string is not a DID we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    #[error("DID is empty")]
    Empty,
    #[error("DID is {0} characters long; an Ed25519 DID is 56")]
    TooLong(usize),
    #[error("`{0}` does not start with `did:`")]
    NotADid(String),
    #[error("DID method `{0}` is not supported: use did:mesh or did:key")]
    UnsupportedMethod(String),
    #[error("`{0}` is a DID URL (it has a path, query or fragment); a bare DID is expected")]
    DidUrl(String),
    #[error("DID method-specific id must be multibase base58btc and start with `z`")]
    NotBase58btc,
    #[error("DID method-specific id is not valid base58btc")]
    BadBase58,
    #[error("DID key is {0} bytes after decoding; an Ed25519 key with its multicodec prefix is 34")]
    WrongLength(usize),
    #[error("DID names a key of multicodec type 0x{0:x}; only Ed25519 (0xed) is supported")]
    UnsupportedKeyType(u64),
    #[error("DID does not hold a valid Ed25519 public key: {0}")]
    InvalidKey(#[from] KeyError),
}

/// A decentralized identifier bound to an Ed25519 public key.
///
/// Parsing checks the syntax and the key type; it does not decompress the
/// curve point (that costs microseconds). [`Did::public_key`] does, so code
/// that verifies a signature always validates the key.
#[derive(Clone, Copy)]
pub struct Did {
    key: [u8; 32],
    method: DidMethod,
}

impl Did {
    /// The DID of a public key, in the `did:mesh` spelling.
    pub fn from_public_key(key: &PublicKey) -> Self {
        Self {
            key: *key.as_bytes(),
            method: DidMethod::Mesh,
        }
    }

    /// The DID naming 32 key bytes, without validating the curve point
    /// (as with parsing, [`Did::public_key`] validates it).
    pub fn from_key_bytes(key: &[u8; 32]) -> Self {
        Self {
            key: *key,
            method: DidMethod::Mesh,
        }
    }

    /// Parses `did:mesh:z…` or `did:key:z…` strictly.
    pub fn parse(s: &str) -> Result<Self, DidError> {
        if s.is_empty() {
            return Err(DidError::Empty);
        }
        if s.len() > MAX_DID_LEN {
            return Err(DidError::TooLong(s.len()));
        }
        let rest = s
            .strip_prefix("did:")
            .ok_or_else(|| DidError::NotADid(s.to_owned()))?;
        let (method, id) = rest
            .split_once(':')
            .ok_or_else(|| DidError::NotADid(s.to_owned()))?;
        let method = match method {
            "mesh" => DidMethod::Mesh,
            "key" => DidMethod::Key,
            other => return Err(DidError::UnsupportedMethod(other.to_owned())),
        };
        if id.contains(['/', '?', '#', ':']) {
            return Err(DidError::DidUrl(s.to_owned()));
        }
        let b58 = id.strip_prefix('z').ok_or(DidError::NotBase58btc)?;
        let mut buf = [0u8; 48];
        let n = bs58::decode(b58).onto(&mut buf[..]).map_err(|e| match e {
            bs58::decode::Error::BufferTooSmall => DidError::WrongLength(buf.len() + 1),
            _ => DidError::BadBase58,
        })?;
        let decoded = &buf[..n];
        let (codec, used) = read_varint(decoded).ok_or(DidError::WrongLength(n))?;
        if codec != 0xed {
            return Err(DidError::UnsupportedKeyType(codec));
        }
        if used != 2 || n != 34 {
            return Err(DidError::WrongLength(n));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&decoded[2..]);
        Ok(Self { key, method })
    }

    /// The 32 public-key bytes this DID names.
    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The validated public key (decompresses the point).
    pub fn public_key(&self) -> Result<PublicKey, DidError> {
        Ok(PublicKey::from_bytes(&self.key)?)
    }

    pub fn method(&self) -> DidMethod {
        self.method
    }

    /// The multibase method-specific id, `z6Mk…`.
    pub fn method_specific_id(&self) -> String {
        let mut bytes = [0u8; 34];
        bytes[..2].copy_from_slice(&ED25519_MULTICODEC);
        bytes[2..].copy_from_slice(&self.key);
        format!("z{}", bs58::encode(bytes).into_string())
    }

    /// The same DID in the `did:mesh` spelling.
    pub fn to_mesh(self) -> Self {
        Self {
            method: DidMethod::Mesh,
            ..self
        }
    }

    /// The same DID in the `did:key` spelling.
    pub fn to_did_key(self) -> Self {
        Self {
            method: DidMethod::Key,
            ..self
        }
    }
}

/// Reads an unsigned LEB128 varint (multicodec), at most 9 bytes.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

impl PartialEq for Did {
    /// Two DIDs are equal when they name the same key, whatever the spelling.
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Did {}

impl std::hash::Hash for Did {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = match self.method {
            DidMethod::Mesh => "mesh",
            DidMethod::Key => "key",
        };
        write!(f, "did:{method}:{}", self.method_specific_id())
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({self})")
    }
}

impl FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Did::parse(s)
    }
}

impl serde::Serialize for Did {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Did {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Did::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;

    /// did:key test vector from the W3C CCG did:key spec (Ed25519 section).
    const SPEC_VECTOR: &str = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";

    #[test]
    fn round_trips_both_spellings() {
        let kp = KeyPair::from_seed(&[1u8; 32]);
        let did = kp.did();
        let text = did.to_string();
        assert!(text.starts_with("did:mesh:z6Mk"), "{text}");
        assert_eq!(text.len(), 57);
        let parsed = Did::parse(&text).expect("parse");
        assert_eq!(parsed, did);
        let as_key = did.to_did_key().to_string();
        assert!(as_key.starts_with("did:key:z6Mk"));
        assert_eq!(Did::parse(&as_key).expect("parse"), did);
        assert_eq!(parsed.public_key().expect("key"), *kp.public());
    }

    #[test]
    fn accepts_the_did_key_spec_vector() {
        let did = Did::parse(SPEC_VECTOR).expect("spec vector parses");
        assert_eq!(did.method(), DidMethod::Key);
        assert_eq!(did.to_string(), SPEC_VECTOR);
        did.public_key().expect("spec vector is a valid point");
    }

    #[test]
    fn rejects_malformed_dids_with_typed_errors() {
        assert_eq!(Did::parse(""), Err(DidError::Empty));
        assert!(matches!(Did::parse("mesh:z6Mk"), Err(DidError::NotADid(_))));
        assert!(matches!(Did::parse("did:mesh"), Err(DidError::NotADid(_))));
        assert!(matches!(
            Did::parse("did:web:example.com"),
            Err(DidError::UnsupportedMethod(m)) if m == "web"
        ));
        // The original's random hex DIDs are not key-bound: rejected.
        assert_eq!(
            Did::parse("did:mesh:0123456789abcdef0123456789abcdef"),
            Err(DidError::NotBase58btc)
        );
        assert_eq!(Did::parse("did:mesh:z0OIl"), Err(DidError::BadBase58));
        assert!(matches!(
            Did::parse(&format!("{SPEC_VECTOR}#key-1")),
            Err(DidError::DidUrl(_))
        ));
        assert!(matches!(
            Did::parse(&format!("{SPEC_VECTOR}/path")),
            Err(DidError::DidUrl(_))
        ));
        assert!(matches!(
            Did::parse(&"x".repeat(500)),
            Err(DidError::TooLong(500))
        ));
        // Truncated by one character.
        assert!(Did::parse(&SPEC_VECTOR[..SPEC_VECTOR.len() - 1]).is_err());
        // A P-256 did:key (multicodec 0x1200): wrong key type.
        assert_eq!(
            Did::parse("did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169"),
            Err(DidError::UnsupportedKeyType(0x1200))
        );
        // Trailing whitespace is not silently trimmed.
        assert!(Did::parse(&format!("{SPEC_VECTOR} ")).is_err());
    }

    #[test]
    fn invalid_point_is_caught_when_the_key_is_used() {
        let mut bytes = [0u8; 34];
        bytes[..2].copy_from_slice(&ED25519_MULTICODEC);
        bytes[2] = 1; // identity point: small order
        let did = format!("did:mesh:z{}", bs58::encode(bytes).into_string());
        let parsed = Did::parse(&did).expect("syntax is fine");
        assert!(matches!(
            parsed.public_key(),
            Err(DidError::InvalidKey(KeyError::WeakPublicKey))
        ));
    }
}
