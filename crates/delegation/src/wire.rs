//! The delegation token's bytes. Layout (all integers big-endian):
//!
//! ```text
//! token      = "AMDT" version:u8(=1) link_count:u8 link{link_count}
//! link       = body_len:u16 body signature:[u8;64]
//! body       = version:u8(=1) issuer:[u8;32] audience:[u8;32]
//!              not_before:u64 expires_at:u64 max_depth:u8 prev_hash:[u8;32]
//!              cap_count:u8 cap{cap_count}
//! cap        = len:u16 utf8-bytes
//! ```
//!
//! A link's signature is Ed25519 by `issuer` over
//! `"agentmesh/delegation-link/v1" ‖ 0x00 ‖ body`. A link's hash is
//! `SHA-256("agentmesh/delegation-link-hash/v1" ‖ 0x00 ‖ body ‖ signature)`.
//! Capabilities inside a body are sorted by their bytes and unique, so a set
//! has exactly one encoding. The text form is `amdt1.` + base64url (no
//! padding) of the token bytes. See `docs/wire/delegation.md`.

use agentmesh_capability::{Capability, CapabilityError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Signing domain of a link.
pub const LINK_DOMAIN: &str = "agentmesh/delegation-link/v1";
/// Hashing domain of a link.
pub const LINK_HASH_DOMAIN: &str = "agentmesh/delegation-link-hash/v1";
/// Prefix of the text form.
pub const TEXT_PREFIX: &str = "amdt1.";
/// Most links a token may hold (root included).
pub const MAX_LINKS: usize = 8;
/// Most capabilities one link may grant.
pub const MAX_CAPS_PER_LINK: usize = 64;
/// Largest token text accepted, in bytes. Decoding stops before any work
/// on anything longer.
pub const MAX_TOKEN_TEXT: usize = 16 * 1024;

const MAGIC: &[u8; 4] = b"AMDT";
const VERSION: u8 = 1;

/// Why token bytes could not be decoded. Decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("token is empty")]
    Empty,
    #[error("token is {0} bytes; the limit is {MAX_TOKEN_TEXT}")]
    TooLarge(usize),
    #[error("token does not start with `{TEXT_PREFIX}` (not an AgentMesh delegation token)")]
    WrongPrefix,
    #[error("token is not base64url without padding")]
    BadBase64,
    #[error("token bytes do not start with the AMDT magic")]
    BadMagic,
    #[error("token version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("token holds {0} links; a token holds 1 to {MAX_LINKS}")]
    LinkCount(usize),
    #[error("token is truncated: {0}")]
    Truncated(&'static str),
    #[error("link {link}: {reason}")]
    BadLink { link: usize, reason: String },
    #[error("{0} unexpected bytes after the last link")]
    TrailingBytes(usize),
}

/// One link as it travels: the signed fields plus the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub issuer: [u8; 32],
    pub audience: [u8; 32],
    pub not_before: u64,
    pub expires_at: u64,
    /// How many further links may follow this one.
    pub max_depth: u8,
    /// Hash of the previous link; all zero for the root link.
    pub prev_hash: [u8; 32],
    /// Sorted by text, unique.
    pub capabilities: Vec<Capability>,
    pub signature: [u8; 64],
}

impl Link {
    /// The signed bytes (without the domain prefix).
    pub fn body(&self) -> Vec<u8> {
        let mut b =
            Vec::with_capacity(1 + 32 + 32 + 8 + 8 + 1 + 32 + 1 + self.capabilities.len() * 24);
        b.push(VERSION);
        b.extend_from_slice(&self.issuer);
        b.extend_from_slice(&self.audience);
        b.extend_from_slice(&self.not_before.to_be_bytes());
        b.extend_from_slice(&self.expires_at.to_be_bytes());
        b.push(self.max_depth);
        b.extend_from_slice(&self.prev_hash);
        // Bounded by MAX_CAPS_PER_LINK / MAX_CAPABILITY_LEN when built.
        b.push(self.capabilities.len() as u8);
        for c in &self.capabilities {
            b.extend_from_slice(&(c.as_str().len() as u16).to_be_bytes());
            b.extend_from_slice(c.as_str().as_bytes());
        }
        b
    }

    /// The link's hash, which the next link names as `prev_hash`.
    pub fn hash(&self) -> [u8; 32] {
        hash_parts(&self.body(), &self.signature)
    }
}

pub(crate) fn hash_parts(body: &[u8], signature: &[u8; 64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LINK_HASH_DOMAIN.as_bytes());
    h.update([0u8]);
    h.update(body);
    h.update(signature);
    h.finalize().into()
}

/// Encodes links to token bytes.
pub fn encode(links: &[Link]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + links.len() * 300);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(links.len() as u8);
    for l in links {
        let body = l.body();
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&l.signature);
    }
    out
}

/// Encodes links to the text form `amdt1.…`.
pub fn encode_text(links: &[Link]) -> String {
    let mut s = String::from(TEXT_PREFIX);
    URL_SAFE_NO_PAD.encode_string(encode(links), &mut s);
    s
}

/// A decoded link together with its hash, computed once while decoding.
#[derive(Debug, Clone)]
pub struct DecodedLink {
    pub link: Link,
    pub hash: [u8; 32],
    pub body: Vec<u8>,
}

/// Decodes the text form. Checks only syntax; [`crate::verify`] checks meaning.
pub fn decode_text(text: &str) -> Result<Vec<DecodedLink>, DecodeError> {
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    if text.len() > MAX_TOKEN_TEXT {
        return Err(DecodeError::TooLarge(text.len()));
    }
    let b64 = text
        .strip_prefix(TEXT_PREFIX)
        .ok_or(DecodeError::WrongPrefix)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| DecodeError::BadBase64)?;
    decode(&bytes)
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DecodeError::Truncated(what))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    fn arr32(&mut self, what: &'static str) -> Result<[u8; 32], DecodeError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32, what)?);
        Ok(a)
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

/// Decodes token bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<DecodedLink>, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let count = r.u8("link count")? as usize;
    if count == 0 || count > MAX_LINKS {
        return Err(DecodeError::LinkCount(count));
    }
    let mut links = Vec::with_capacity(count);
    for i in 0..count {
        let body_len = r.u16("link length")? as usize;
        let body = r.take(body_len, "link body")?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(r.take(64, "link signature")?);
        let link = decode_body(body, signature)
            .map_err(|reason| DecodeError::BadLink { link: i, reason })?;
        let hash = hash_parts(body, &signature);
        links.push(DecodedLink {
            link,
            hash,
            body: body.to_vec(),
        });
    }
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(links)
}

fn decode_body(body: &[u8], signature: [u8; 64]) -> Result<Link, String> {
    let mut r = Reader {
        bytes: body,
        pos: 0,
    };
    let e = |e: DecodeError| e.to_string();
    let version = r.u8("link version").map_err(e)?;
    if version != VERSION {
        return Err(format!("link version {version} is not supported"));
    }
    let issuer = r.arr32("issuer").map_err(e)?;
    let audience = r.arr32("audience").map_err(e)?;
    let not_before = r.u64("not-before").map_err(e)?;
    let expires_at = r.u64("expiry").map_err(e)?;
    let max_depth = r.u8("max depth").map_err(e)?;
    let prev_hash = r.arr32("previous hash").map_err(e)?;
    let cap_count = r.u8("capability count").map_err(e)? as usize;
    if cap_count == 0 {
        return Err("grants no capabilities".into());
    }
    if cap_count > MAX_CAPS_PER_LINK {
        return Err(format!(
            "grants {cap_count} capabilities; the limit is {MAX_CAPS_PER_LINK}"
        ));
    }
    let mut capabilities: Vec<Capability> = Vec::with_capacity(cap_count);
    for _ in 0..cap_count {
        let len = r.u16("capability length").map_err(e)? as usize;
        let raw = r.take(len, "capability").map_err(e)?;
        let text = std::str::from_utf8(raw).map_err(|_| "capability is not UTF-8".to_owned())?;
        let cap = Capability::parse(text).map_err(|err: CapabilityError| err.to_string())?;
        if let Some(prev) = capabilities.last()
            && prev.as_str() >= cap.as_str()
        {
            return Err("capabilities are not sorted and unique".into());
        }
        capabilities.push(cap);
    }
    if r.remaining() != 0 {
        return Err(format!(
            "{} unexpected bytes after the capabilities",
            r.remaining()
        ));
    }
    Ok(Link {
        issuer,
        audience,
        not_before,
        expires_at,
        max_depth,
        prev_hash,
        capabilities,
        signature,
    })
}
