//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note`
//! envelopes, with Ed25519 signatures (signature type 0x01).
//!
//! ```text
//! example.org/agentmesh/audit      ← origin
//! 1024                             ← tree size
//! 3q2+7w…=                         ← base64 root hash
//!                                  ← blank line
//! — example.org/agentmesh/audit AbCdEf…   ← key name, base64(key ID ‖ signature)
//! ```
//!
//! key ID = first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key).
//! A verifier key is written `<name>+<key ID hex>+<base64(0x01 ‖ public key)>`.

use crate::tree::Hash;
use agentmesh_identity::{KeyPair, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Largest note accepted.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
const ED25519: u8 = 0x01;

/// Why a note or key is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is {0} bytes; the limit is {MAX_NOTE_BYTES}")]
    TooLarge(usize),
    #[error("note is malformed: {0}")]
    Malformed(&'static str),
    #[error("checkpoint is malformed: {0}")]
    BadCheckpoint(&'static str),
    #[error("no signature by key `{name}` ({id:08x}) on this note")]
    NoSignature { name: String, id: u32 },
    #[error("the signature by `{0}` does not verify")]
    BadSignature(String),
    #[error("verifier key is malformed: {0}")]
    BadKey(&'static str),
    #[error("key name `{0}` is not allowed (it must be non-empty, without spaces or `+`)")]
    BadName(String),
}

/// A tree head: origin, size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text (body) of the checkpoint, ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Signs the checkpoint and returns the complete signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        validate_origin(&self.origin)?;
        let body = self.body();
        let sig = signer.key.sign_raw(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&signer.id.to_be_bytes());
        blob.extend_from_slice(&sig);
        Ok(format!(
            "{body}\n\u{2014} {} {}\n",
            signer.name,
            STANDARD.encode(blob)
        ))
    }

    fn parse_body(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(NoteError::BadCheckpoint("no origin line"))?;
        let size_line = lines
            .next()
            .ok_or(NoteError::BadCheckpoint("no size line"))?;
        if size_line.is_empty() || (size_line.len() > 1 && size_line.starts_with('0')) {
            return Err(NoteError::BadCheckpoint(
                "size is not a decimal number without leading zeros",
            ));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| NoteError::BadCheckpoint("size is not a decimal number"))?;
        let root_line = lines
            .next()
            .ok_or(NoteError::BadCheckpoint("no root hash line"))?;
        let root = STANDARD
            .decode(root_line)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or(NoteError::BadCheckpoint(
                "root hash is not 32 bytes of base64",
            ))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

fn validate_origin(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(NoteError::BadName(name.to_owned()));
    }
    Ok(())
}

fn key_id(name: &str, key: &PublicKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A named signing key.
#[derive(Debug)]
pub struct NoteSigner {
    name: String,
    id: u32,
    key: KeyPair,
}

impl NoteSigner {
    pub fn new(name: &str, key: KeyPair) -> Result<Self, NoteError> {
        validate_origin(name)?;
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, key.public()),
            key,
        })
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: *self.key.public(),
        }
    }
}

/// A named verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    pub name: String,
    pub id: u32,
    pub key: PublicKey,
}

impl NoteVerifier {
    pub fn new(name: &str, key: PublicKey) -> Result<Self, NoteError> {
        validate_origin(name)?;
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.
    pub fn to_vkey(&self) -> String {
        let mut k = vec![ED25519];
        k.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, STANDARD.encode(k))
    }

    /// Parses the verifier key format, checking the key ID.
    pub fn parse_vkey(s: &str) -> Result<Self, NoteError> {
        let s = s.trim();
        // Names never contain `+`; base64 may, so split from the left.
        let mut parts = s.splitn(3, '+');
        let name = parts.next().ok_or(NoteError::BadKey("missing name"))?;
        let id_hex = parts.next().ok_or(NoteError::BadKey("missing key ID"))?;
        let key_b64 = parts.next().ok_or(NoteError::BadKey("missing key"))?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::BadKey("key is not base64"))?;
        if raw.len() != 33 || raw[0] != ED25519 {
            return Err(NoteError::BadKey(
                "only Ed25519 keys (type 0x01, 32 bytes) are supported",
            ));
        }
        let key = PublicKey::from_slice(&raw[1..])
            .map_err(|_| NoteError::BadKey("not a valid Ed25519 key"))?;
        let v = Self::new(name, key)?;
        let id =
            u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::BadKey("key ID is not hex"))?;
        if id_hex.len() != 8 || id != v.id {
            return Err(NoteError::BadKey("key ID does not match the name and key"));
        }
        Ok(v)
    }
}

/// Splits a note into its text and signature lines, enforcing the format.
/// A signature line: key name and decoded (key ID ‖ signature).
type SigLine<'a> = (&'a str, Vec<u8>);

fn split_note(note: &str) -> Result<(&str, Vec<SigLine<'_>>), NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge(note.len()));
    }
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(
            "control characters other than newline",
        ));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature block does not end in a newline",
        ));
    }
    let mut out = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
            "signature line does not start with an em dash",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("signature line has no signature"))?;
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        out.push((name, blob));
    }
    if out.is_empty() {
        return Err(NoteError::Malformed("no signatures"));
    }
    if out.len() > 64 {
        return Err(NoteError::Malformed("too many signatures"));
    }
    Ok((text, out))
}

/// Verifies a signed checkpoint with `verifier` and returns it.
pub fn verify_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
    let (text, sigs) = split_note(note)?;
    let mut verified = false;
    for (name, blob) in sigs {
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        if name != verifier.name || id != verifier.id {
            continue; // signatures by unknown keys are ignored, as the spec says
        }
        verifier
            .key
            .verify_raw(text.as_bytes(), &blob[4..])
            .map_err(|_| NoteError::BadSignature(name.to_owned()))?;
        verified = true;
    }
    if !verified {
        return Err(NoteError::NoSignature {
            name: verifier.name.clone(),
            id: verifier.id,
        });
    }
    let cp = Checkpoint::parse_body(text)?;
    if cp.origin != verifier.name {
        return Err(NoteError::BadCheckpoint(
            "origin line does not match the signing key's name",
        ));
    }
    Ok(cp)
}

/// Reads a checkpoint without verifying it (display only).
pub fn parse_unverified(note: &str) -> Result<Checkpoint, NoteError> {
    let (text, _) = split_note(note)?;
    Checkpoint::parse_body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::new("example.org/agentmesh/audit", KeyPair::from_seed(&[5; 32]))
            .expect("signer")
    }

    #[test]
    fn sign_parse_verify() {
        let s = signer();
        let cp = Checkpoint {
            origin: "example.org/agentmesh/audit".into(),
            size: 1024,
            root: [7u8; 32],
        };
        let note = cp.sign(&s).expect("sign");
        assert!(
            note.starts_with("example.org/agentmesh/audit\n1024\nBwcH"),
            "{note}"
        );
        assert!(note.contains("\n\n\u{2014} example.org/agentmesh/audit "));
        let v = s.verifier();
        assert_eq!(verify_checkpoint(&note, &v), Ok(cp.clone()));
        let vkey = v.to_vkey();
        assert_eq!(NoteVerifier::parse_vkey(&vkey), Ok(v.clone()));
        // Keys whose base64 holds `+` parse too.
        for seed in 0..64u8 {
            let v = NoteSigner::new("o", KeyPair::from_seed(&[seed; 32]))
                .expect("s")
                .verifier();
            assert_eq!(NoteVerifier::parse_vkey(&v.to_vkey()), Ok(v));
        }
        // Tampering with the size, root or signature is caught.
        assert!(verify_checkpoint(&note.replace("\n1024\n", "\n1025\n"), &v).is_err());
        let other = NoteSigner::new("example.org/agentmesh/audit", KeyPair::from_seed(&[6; 32]))
            .expect("other");
        assert!(matches!(
            verify_checkpoint(&note, &other.verifier()),
            Err(NoteError::NoSignature { .. })
        ));
        assert!(verify_checkpoint("", &v).is_err());
        assert!(verify_checkpoint("a\n1\nAAAA\n\n", &v).is_err());
        assert!(NoteVerifier::parse_vkey("name+00000000+AQ==").is_err());
        assert!(NoteSigner::new("has space", KeyPair::from_seed(&[1; 32])).is_err());
    }

    #[test]
    fn rejects_leading_zero_sizes_and_bad_roots() {
        assert!(
            Checkpoint::parse_body("o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
                .is_err()
        );
        assert!(Checkpoint::parse_body("o\n1\nAAAA\n").is_err());
        assert!(
            Checkpoint::parse_body("o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").is_ok()
        );
    }
}
