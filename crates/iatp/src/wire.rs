//! The three messages of the handshake and their exact bytes
//! (docs/wire/iatp.md).
//!
//! * [`Challenge`]: the verifier's nonce, expiry and DID, signed by the
//!   verifier (so the prover knows who asks, and can check it too).
//! * [`Response`]: the prover's nonce, DID and channel, with an Ed25519
//!   signature over the [`transcript`], which binds both DIDs, both nonces,
//!   the profile version, the expiry and the channel.
//! * [`Attestation`]: what the verifier concludes, from *its* registry:
//!   who the prover is, its trust and capabilities, until when. Text form
//!   `amat1.<payload>.<signature>`, presented to gateways as a bearer.
//!
//! Every signed payload is the canonical JSON (RFC 8785; no doubles occur)
//! of an object of strings and integers, framed as
//! `domain ‖ 0x00 ‖ payload` before signing.

use agentmesh_identity::{Did, KeyPair, PublicKey, sha256, to_canonical_json};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Profile and version of the handshake.
pub const PROFILE: &str = "agentmesh-iatp/1";
pub const CHALLENGE_DOMAIN: &str = "agentmesh/iatp/challenge/v1";
pub const RESPONSE_DOMAIN: &str = "agentmesh/iatp/response/v1";
pub const ATTESTATION_DOMAIN: &str = "agentmesh/iatp/attestation/v1";
pub const ATTESTATION_PREFIX: &str = "amat1.";
/// Longer attestation texts are rejected before any decoding.
pub const MAX_ATTESTATION_LEN: usize = 8192;
/// Longest handshake message body accepted, in bytes.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;
/// Clock skew tolerated on `issued_at` / `iat`.
pub const SKEW_SECS: u64 = 30;

/// Why a handshake message or attestation is rejected. Each failure has
/// its own stable [`code`](HandshakeError::code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unsupported profile `{0}` (this side speaks {PROFILE})")]
    Profile(String),
    #[error("unknown challenge `{0}` (never issued here, or forgotten after expiry)")]
    UnknownChallenge(String),
    #[error("challenge `{0}` was already answered: a replayed response")]
    Replayed(String),
    #[error("challenge expired at {expires_at} (now {now})")]
    Expired { expires_at: u64, now: u64 },
    #[error("the response does not match the challenge: {0}")]
    Mismatch(&'static str),
    #[error("the signature does not verify under {0}'s key")]
    BadSignature(String),
    #[error("the channel binding `{got}` is not this connection's (`{want}`)")]
    Channel { got: String, want: String },
    #[error("channel binding `{0}` is not supported by this implementation")]
    ChannelUnsupported(String),
    #[error("{0} is not registered in this mesh")]
    UnknownAgent(String),
    #[error("{0}")]
    Inactive(String),
    #[error("{agent}'s trust score {score:.3} is below the required {required:.3}")]
    TrustTooLow {
        agent: String,
        score: f64,
        required: f64,
    },
    #[error("expected to talk to {want}, but the peer is {got}")]
    WrongPeer { want: String, got: String },
    #[error("attestation issuer {0} is not trusted here")]
    UntrustedIssuer(String),
    #[error("attestation is for audience `{aud}`, not `{expected}`")]
    WrongAudience { aud: String, expected: String },
    #[error("attestation expired at {exp} (now {now})")]
    AttestationExpired { exp: u64, now: u64 },
    #[error("dated {at}, in the future (now {now}); check the clocks")]
    NotYetValid { at: u64, now: u64 },
    #[error("too many challenges outstanding; try again shortly")]
    Busy,
    #[error("the operating system's random source failed")]
    NoRandomness,
}

impl HandshakeError {
    /// A stable code for errors on the wire, audit and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            HandshakeError::Malformed(_) => "malformed",
            HandshakeError::Profile(_) => "unsupported_profile",
            HandshakeError::UnknownChallenge(_) => "unknown_challenge",
            HandshakeError::Replayed(_) => "replayed",
            HandshakeError::Expired { .. } => "challenge_expired",
            HandshakeError::Mismatch(_) => "transcript_mismatch",
            HandshakeError::BadSignature(_) => "bad_signature",
            HandshakeError::Channel { .. } => "channel_mismatch",
            HandshakeError::ChannelUnsupported(_) => "channel_unsupported",
            HandshakeError::UnknownAgent(_) => "unknown_agent",
            HandshakeError::Inactive(_) => "agent_inactive",
            HandshakeError::TrustTooLow { .. } => "trust_below_threshold",
            HandshakeError::WrongPeer { .. } => "wrong_peer",
            HandshakeError::UntrustedIssuer(_) => "untrusted_issuer",
            HandshakeError::WrongAudience { .. } => "wrong_audience",
            HandshakeError::AttestationExpired { .. } => "attestation_expired",
            HandshakeError::NotYetValid { .. } => "not_yet_valid",
            HandshakeError::Busy => "busy",
            HandshakeError::NoRandomness => "no_randomness",
        }
    }

    /// The HTTP status a verifier answers with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Malformed(_)
            | HandshakeError::Profile(_)
            | HandshakeError::ChannelUnsupported(_) => 400,
            HandshakeError::Busy | HandshakeError::NoRandomness => 503,
            HandshakeError::Inactive(_) | HandshakeError::TrustTooLow { .. } => 403,
            _ => 401,
        }
    }
}

pub(crate) fn malformed(what: impl Into<String>) -> HandshakeError {
    HandshakeError::Malformed(what.into())
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(text: &str, what: &str) -> Result<Vec<u8>, HandshakeError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| malformed(format!("`{what}` is not base64url")))
}

/// `n` random bytes, base64url. Without randomness there is no safe
/// nonce, so a failing random source is an error, never a weaker value.
pub fn random_b64(n: usize) -> Result<String, HandshakeError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|_| HandshakeError::NoRandomness)?;
    Ok(b64(&b))
}

fn signature_of(
    text: &str,
    signer: &Did,
    domain: &str,
    payload: &[u8],
) -> Result<(), HandshakeError> {
    let sig = unb64(text, "signature")?;
    let key = signer
        .public_key()
        .map_err(|_| malformed(format!("{signer} does not name an Ed25519 key")))?;
    key.verify(domain, payload, &sig)
        .map_err(|_| HandshakeError::BadSignature(signer.to_string()))
}

pub(crate) fn parse_did(text: &str, field: &str) -> Result<Did, HandshakeError> {
    Did::parse(text).map_err(|e| malformed(format!("`{field}`: {e}")))
}

fn check_nonce(text: &str, field: &str) -> Result<(), HandshakeError> {
    let n = unb64(text, field)?;
    if n.len() != 32 {
        return Err(malformed(format!("`{field}` must be 32 bytes")));
    }
    Ok(())
}

/// The verifier's challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    pub profile: String,
    /// 16 random bytes, base64url: names the challenge (single use).
    pub id: String,
    /// The verifier's DID.
    pub verifier: String,
    /// 32 random bytes, base64url.
    pub nonce: String,
    pub issued_at: u64,
    pub expires_at: u64,
    /// The prover the verifier expects, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prover: Option<String>,
    /// The mesh authority's voucher for the verifier's key (`amgv1.…`),
    /// when the verifier is a gateway the prover's registry may not list
    /// ([`crate::voucher`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher: Option<String>,
    /// Ed25519 by the verifier over the canonical JSON of the other fields.
    pub signature: String,
}

impl Challenge {
    fn signed_part(&self) -> String {
        let mut v = json!({
            "profile": self.profile,
            "id": self.id,
            "verifier": self.verifier,
            "nonce": self.nonce,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
        });
        if let Some(p) = &self.prover {
            v["prover"] = Value::from(p.as_str());
        }
        if let Some(p) = &self.voucher {
            v["voucher"] = Value::from(p.as_str());
        }
        to_canonical_json(&v)
    }

    /// A new signed challenge.
    pub fn new(
        verifier: &KeyPair,
        prover: Option<&Did>,
        now: u64,
        ttl_secs: u64,
    ) -> Result<Self, HandshakeError> {
        Ok(Self::with(
            verifier,
            random_b64(16)?,
            random_b64(32)?,
            prover,
            now,
            ttl_secs,
        ))
    }

    /// A challenge with given id and nonce (test vectors).
    pub fn with(
        verifier: &KeyPair,
        id: String,
        nonce: String,
        prover: Option<&Did>,
        now: u64,
        ttl_secs: u64,
    ) -> Self {
        let mut c = Challenge {
            profile: PROFILE.into(),
            id,
            verifier: verifier.did().to_string(),
            nonce,
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
            prover: prover.map(|d| d.to_string()),
            voucher: None,
            signature: String::new(),
        };
        c.signature = b64(&verifier.sign(CHALLENGE_DOMAIN, c.signed_part().as_bytes()));
        c
    }

    /// The same challenge carrying `voucher`, signed again.
    pub fn vouched(mut self, verifier: &KeyPair, voucher: String) -> Self {
        self.voucher = Some(voucher);
        self.signature = b64(&verifier.sign(CHALLENGE_DOMAIN, self.signed_part().as_bytes()));
        self
    }

    /// Checks the form, the verifier's signature and the time; returns
    /// the verifier's DID.
    pub fn check(&self, now: u64) -> Result<Did, HandshakeError> {
        if self.profile != PROFILE {
            return Err(HandshakeError::Profile(self.profile.clone()));
        }
        if unb64(&self.id, "id")?.len() != 16 {
            return Err(malformed("`id` must be 16 bytes"));
        }
        check_nonce(&self.nonce, "nonce")?;
        let verifier = parse_did(&self.verifier, "verifier")?;
        if let Some(p) = &self.prover {
            parse_did(p, "prover")?;
        }
        signature_of(
            &self.signature,
            &verifier,
            CHALLENGE_DOMAIN,
            self.signed_part().as_bytes(),
        )?;
        if now >= self.expires_at {
            return Err(HandshakeError::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        if self.issued_at > now.saturating_add(SKEW_SECS) {
            return Err(HandshakeError::NotYetValid {
                at: self.issued_at,
                now,
            });
        }
        Ok(verifier)
    }
}

/// The prover's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub profile: String,
    /// The challenge's id.
    pub challenge: String,
    pub verifier: String,
    pub verifier_nonce: String,
    pub prover: String,
    /// 32 random bytes, base64url.
    pub prover_nonce: String,
    /// The challenge's expiry (bound so a response cannot outlive it).
    pub expires_at: u64,
    /// The channel binding: `origin:<scheme://host:port>` of the verifier
    /// as the prover dialled it, or `request:<base64url SHA-256>` of the
    /// request the response rides in.
    pub channel: String,
    /// Ed25519 by the prover over [`transcript`].
    pub signature: String,
}

/// The transcript both sides compute: canonical JSON of the profile, both
/// DIDs, both nonces, the challenge id, its expiry and the channel.
pub fn transcript(
    challenge: &str,
    verifier: &str,
    verifier_nonce: &str,
    prover: &str,
    prover_nonce: &str,
    expires_at: u64,
    channel: &str,
) -> String {
    to_canonical_json(&json!({
        "profile": PROFILE,
        "challenge": challenge,
        "verifier": verifier,
        "verifier_nonce": verifier_nonce,
        "prover": prover,
        "prover_nonce": prover_nonce,
        "expires_at": expires_at,
        "channel": channel,
    }))
}

impl Response {
    /// The transcript this response claims.
    pub fn transcript(&self) -> String {
        transcript(
            &self.challenge,
            &self.verifier,
            &self.verifier_nonce,
            &self.prover,
            &self.prover_nonce,
            self.expires_at,
            &self.channel,
        )
    }

    /// Answers `challenge` as `prover`, bound to `channel`.
    pub fn answer(
        challenge: &Challenge,
        prover: &KeyPair,
        channel: &str,
    ) -> Result<Self, HandshakeError> {
        Ok(Self::answer_with(
            challenge,
            prover,
            channel,
            random_b64(32)?,
        ))
    }

    /// With a given nonce (test vectors).
    pub fn answer_with(
        challenge: &Challenge,
        prover: &KeyPair,
        channel: &str,
        prover_nonce: String,
    ) -> Self {
        let mut r = Response {
            profile: PROFILE.into(),
            challenge: challenge.id.clone(),
            verifier: challenge.verifier.clone(),
            verifier_nonce: challenge.nonce.clone(),
            prover: prover.did().to_string(),
            prover_nonce,
            expires_at: challenge.expires_at,
            channel: channel.to_owned(),
            signature: String::new(),
        };
        r.signature = b64(&prover.sign(RESPONSE_DOMAIN, r.transcript().as_bytes()));
        r
    }

    /// Checks the form and the prover's signature over the transcript;
    /// returns the prover's DID. Matching against the issued challenge,
    /// the channel and the registry is the verifier's job.
    pub fn check_signature(&self) -> Result<Did, HandshakeError> {
        if self.profile != PROFILE {
            return Err(HandshakeError::Profile(self.profile.clone()));
        }
        check_nonce(&self.prover_nonce, "prover_nonce")?;
        check_nonce(&self.verifier_nonce, "verifier_nonce")?;
        if self.channel.len() > 512 {
            return Err(malformed("`channel` is longer than 512 bytes"));
        }
        let prover = parse_did(&self.prover, "prover")?;
        signature_of(
            &self.signature,
            &prover,
            RESPONSE_DOMAIN,
            self.transcript().as_bytes(),
        )?;
        Ok(prover)
    }
}

/// The channel binding of a handshake run over HTTP: the verifier's origin
/// as the prover dialled it (`http://127.0.0.1:7401`, no trailing slash).
pub fn origin_channel(origin: &str) -> String {
    format!("origin:{}", origin.trim_end_matches('/'))
}

/// The channel binding of a response carried inside a request: SHA-256 of
/// the RFC 8785 form of what the request asks for (A2A: the message's
/// `parts`; MCP: the call's `arguments`). Unlike the signed payloads here,
/// this value is the caller's and may hold any number, so it is
/// canonicalised by full JCS (ECMAScript number form).
pub fn request_channel(governed: &Value) -> String {
    format!(
        "request:{}",
        b64(&sha256(
            agentmesh_identity::jcs::canonicalize(governed).as_bytes()
        ))
    )
}

/// What a verifier concluded about a prover, from its own registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    pub v: u8,
    /// The challenge id (unique per handshake).
    pub id: String,
    /// The verifier that ran the handshake.
    pub iss: String,
    /// The prover.
    pub sub: String,
    /// The prover's registered name.
    pub name: String,
    /// Audience: the verifier's, or `*`.
    pub aud: String,
    /// Trust score × 1000, as the verifier's registry had it.
    pub trust_milli: u32,
    pub tier: String,
    /// The prover's registered capabilities.
    pub capabilities: Vec<String>,
    pub iat: u64,
    pub exp: u64,
    /// base64url SHA-256 of the handshake transcript.
    pub transcript: String,
}

impl Attestation {
    /// Signs and encodes as `amat1.…`.
    pub fn encode(&self, issuer: &KeyPair) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let payload = to_canonical_json(&value);
        let sig = issuer.sign(ATTESTATION_DOMAIN, payload.as_bytes());
        format!(
            "{ATTESTATION_PREFIX}{}.{}",
            b64(payload.as_bytes()),
            b64(&sig)
        )
    }

    /// Checks the format and the issuer's signature (the issuer's key is
    /// its DID's); returns the attestation and its issuer. Time, audience
    /// and whether the issuer is trusted are the caller's checks
    /// ([`Attestation::check`]).
    pub fn decode(text: &str) -> Result<(Self, Did), HandshakeError> {
        if text.len() > MAX_ATTESTATION_LEN {
            return Err(malformed(format!(
                "attestation longer than {MAX_ATTESTATION_LEN} bytes"
            )));
        }
        let body = text
            .strip_prefix(ATTESTATION_PREFIX)
            .ok_or_else(|| malformed("attestation does not start with `amat1.`"))?;
        let (p64, s64) = body
            .split_once('.')
            .ok_or_else(|| malformed("attestation: expected payload.signature"))?;
        let payload = unb64(p64, "payload")?;
        let a: Attestation = serde_json::from_slice(&payload)
            .map_err(|e| malformed(format!("attestation payload: {e}")))?;
        if a.v != 1 {
            return Err(malformed("attestation version is not 1"));
        }
        let value = serde_json::to_value(&a).unwrap_or(Value::Null);
        if to_canonical_json(&value).as_bytes() != payload.as_slice() {
            return Err(malformed("attestation payload is not canonical JSON"));
        }
        let issuer = parse_did(&a.iss, "iss")?;
        parse_did(&a.sub, "sub")?;
        signature_of(s64, &issuer, ATTESTATION_DOMAIN, &payload)?;
        Ok((a, issuer))
    }

    /// Time and audience.
    pub fn check(&self, audience: &str, now: u64) -> Result<(), HandshakeError> {
        if now >= self.exp {
            return Err(HandshakeError::AttestationExpired { exp: self.exp, now });
        }
        if self.iat > now.saturating_add(SKEW_SECS) {
            return Err(HandshakeError::NotYetValid { at: self.iat, now });
        }
        if self.aud != "*" && self.aud != audience {
            return Err(HandshakeError::WrongAudience {
                aud: self.aud.clone(),
                expected: audience.to_owned(),
            });
        }
        Ok(())
    }

    /// The trust score as a fraction.
    pub fn trust(&self) -> f64 {
        f64::from(self.trust_milli) / 1000.0
    }
}

/// The public key a DID names (did:mesh and did:key are key-bound).
pub fn key_of(did: &Did) -> Result<PublicKey, HandshakeError> {
    did.public_key()
        .map_err(|_| malformed(format!("{did} does not name an Ed25519 key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> KeyPair {
        KeyPair::from_seed(&[n; 32])
    }

    #[test]
    fn a_challenge_and_its_response_verify_and_any_field_change_breaks_them() {
        let (v, p) = (key(1), key(2));
        let c = Challenge::new(&v, Some(&p.did()), 1_000, 30).expect("randomness");
        assert_eq!(c.check(1_000).expect("ok"), v.did());
        let r = Response::answer(&c, &p, "origin:http://127.0.0.1:1").expect("randomness");
        assert_eq!(r.check_signature().expect("ok"), p.did());
        let mut bad = r.clone();
        bad.channel = "origin:http://evil".into();
        assert_eq!(
            bad.check_signature().expect_err("must fail").code(),
            "bad_signature"
        );
        let mut bad = r.clone();
        bad.expires_at += 1;
        assert_eq!(
            bad.check_signature().expect_err("must fail").code(),
            "bad_signature"
        );
        let mut bad = c.clone();
        bad.nonce = random_b64(32).expect("randomness");
        assert_eq!(
            bad.check(1_000).expect_err("must fail").code(),
            "bad_signature"
        );
        assert_eq!(
            c.check(1_030).expect_err("must fail").code(),
            "challenge_expired"
        );
    }

    #[test]
    fn a_response_signed_by_another_key_is_refused() {
        let (v, p, other) = (key(1), key(2), key(3));
        let c = Challenge::new(&v, None, 1_000, 30).expect("randomness");
        let mut r = Response::answer(&c, &other, "origin:x").expect("randomness");
        r.prover = p.did().to_string();
        assert_eq!(
            r.check_signature().expect_err("must fail").code(),
            "bad_signature"
        );
    }

    #[test]
    fn attestations_round_trip_and_reject_tampering() {
        let v = key(1);
        let a = Attestation {
            v: 1,
            id: random_b64(16).expect("randomness"),
            iss: v.did().to_string(),
            sub: key(2).did().to_string(),
            name: "beta".into(),
            aud: "*".into(),
            trust_milli: 812,
            tier: "trusted".into(),
            capabilities: vec!["read:x".into()],
            iat: 100,
            exp: 400,
            transcript: b64(&[7; 32]),
        };
        let text = a.encode(&v);
        let (back, iss) = Attestation::decode(&text).expect("decodes");
        assert_eq!(back, a);
        assert_eq!(iss, v.did());
        assert!(back.check("gw", 399).is_ok());
        assert_eq!(
            back.check("gw", 400).expect_err("must fail").code(),
            "attestation_expired"
        );
        let mut bytes = text.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(bytes).expect("ascii");
        assert!(Attestation::decode(&t).is_err());
        for junk in ["", "amat1.", "amat1..", "amat1.e30.AA", "amcr1.x.y"] {
            assert!(Attestation::decode(junk).is_err(), "{junk}");
        }
    }
}
