//! Both ends of the handshake: the [`Verifier`] (issues challenges, checks
//! responses once, attests from its registry) and [`check_verifier`] (the
//! prover's view of the peer that challenged it, so the handshake is
//! mutual).

use crate::wire::{
    Attestation, Challenge, HandshakeError, Response, b64, origin_channel, request_channel,
};
use agentmesh_identity::{Did, KeyPair, sha256};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// What the local registry says about a peer: the only source of its
/// trust and capabilities (whatever the peer claims is ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerFacts {
    pub name: String,
    /// Why the peer may not act now (suspended, revoked, expired, …).
    pub inactive: Option<String>,
    /// Trust score, 0.0–1.0.
    pub trust: f64,
    pub tier: String,
    pub capabilities: Vec<String>,
}

/// The registry as the handshake reads it.
pub trait Directory: Send + Sync {
    fn peer(&self, did: &Did) -> Option<PeerFacts>;

    /// Mesh authorities whose gateway vouchers this side accepts for a
    /// verifier its registry does not list ([`crate::voucher`]). None by
    /// default: only registered peers are admitted.
    fn authorities(&self) -> Vec<agentmesh_identity::PublicKey> {
        Vec::new()
    }
}

/// Tier reported for a verifier admitted by a mesh authority's voucher.
pub const VOUCHED_GATEWAY_TIER: &str = "mesh_gateway";

/// Verifier settings.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// How long a challenge may be answered.
    pub challenge_ttl_secs: u64,
    /// How long an attestation is valid.
    pub attestation_ttl_secs: u64,
    /// Provers whose registry trust is below this are refused.
    pub min_trust: f64,
    /// The audience written into attestations (`*`: any gateway that
    /// trusts this issuer).
    pub audience: String,
    /// Challenges kept at once (answered ones are kept until they expire,
    /// to name replays).
    pub max_outstanding: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            challenge_ttl_secs: 30,
            attestation_ttl_secs: 300,
            min_trust: 0.5,
            audience: "*".into(),
            max_outstanding: 100_000,
        }
    }
}

/// Where the response must be bound.
#[derive(Debug, Clone, Copy)]
pub enum Channel<'a> {
    /// The handshake ran over HTTP to one of these origins: the verifier's
    /// own listen address and configured public URLs (never the request's
    /// `Host`, which a relay controls).
    Origins(&'a [String]),
    /// The response rides in a request that asks for `governed`.
    Request(&'a Value),
}

impl Channel<'_> {
    fn check(&self, got: &str) -> Result<(), HandshakeError> {
        if got.starts_with("tls-exporter:") {
            return Err(HandshakeError::ChannelUnsupported(got.to_owned()));
        }
        match self {
            Channel::Origins(origins) => {
                if origins.iter().any(|o| origin_channel(o) == got) {
                    Ok(())
                } else {
                    Err(HandshakeError::Channel {
                        got: got.to_owned(),
                        want: origins
                            .first()
                            .map(|o| origin_channel(o))
                            .unwrap_or_default(),
                    })
                }
            }
            Channel::Request(v) => {
                let want = request_channel(v);
                if want == got {
                    Ok(())
                } else {
                    Err(HandshakeError::Channel {
                        got: got.to_owned(),
                        want,
                    })
                }
            }
        }
    }
}

struct Outstanding {
    challenge: Challenge,
    answered: bool,
}

/// The verifying side.
pub struct Verifier {
    key: KeyPair,
    did: Did,
    cfg: VerifierConfig,
    outstanding: Mutex<HashMap<String, Outstanding, foldhash::fast::RandomState>>,
    /// The mesh authority's voucher for this key, carried in challenges
    /// (gateways attached to a control plane; renewed before it expires).
    voucher: std::sync::RwLock<Option<String>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("did", &self.did).finish()
    }
}

/// A successful handshake, as the verifier saw it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub prover: Did,
    pub facts: PeerFacts,
    pub attestation: Attestation,
    /// `amat1.…`, signed by the verifier.
    pub text: String,
}

impl Verifier {
    pub fn new(key: KeyPair, cfg: VerifierConfig) -> Self {
        let did = key.did();
        Self {
            key,
            did,
            cfg,
            outstanding: Mutex::new(HashMap::default()),
            voucher: std::sync::RwLock::new(None),
        }
    }

    /// Carries `voucher` (`amgv1.…`, about this verifier's key) in the
    /// challenges issued from now on.
    pub fn set_voucher(&self, voucher: Option<String>) {
        *self.voucher.write().unwrap_or_else(|p| p.into_inner()) = voucher;
    }

    pub fn did(&self) -> &Did {
        &self.did
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.cfg
    }

    /// The verifier's key (it signs attestations).
    pub fn public_key(&self) -> &agentmesh_identity::PublicKey {
        self.key.public()
    }

    /// Issues a challenge (optionally for one expected prover).
    pub fn challenge(&self, prover: Option<&Did>, now: u64) -> Result<Challenge, HandshakeError> {
        let mut c = Challenge::new(&self.key, prover, now, self.cfg.challenge_ttl_secs)?;
        let voucher = self
            .voucher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(v) = voucher {
            c = c.vouched(&self.key, v);
        }
        let mut map = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        // Forget long-dead challenges as the table grows (every 1,024
        // issues), so it does not stay at its high-water mark.
        if map.len() % 1024 == 1023 {
            map.retain(|_, o| now < o.challenge.expires_at.saturating_add(60));
        }
        if map.len() >= self.cfg.max_outstanding {
            // Forget challenges expired over a minute ago (long enough to
            // name a late answer `challenge_expired`).
            map.retain(|_, o| now < o.challenge.expires_at.saturating_add(60));
            if map.len() >= self.cfg.max_outstanding {
                return Err(HandshakeError::Busy);
            }
        }
        map.insert(
            c.id.clone(),
            Outstanding {
                challenge: c.clone(),
                answered: false,
            },
        );
        Ok(c)
    }

    /// Checks a response once: it must answer a challenge issued here and
    /// not yet answered, before it expires, signed by the prover's key over
    /// the transcript, bound to `channel`; then the prover must be
    /// registered, active and trusted enough *in `dir`*. Returns the
    /// attestation.
    pub fn verify(
        &self,
        r: &Response,
        channel: Channel<'_>,
        dir: &dyn Directory,
        now: u64,
    ) -> Result<Verified, HandshakeError> {
        if r.profile != crate::wire::PROFILE {
            return Err(HandshakeError::Profile(r.profile.clone()));
        }
        {
            let map = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            let o = map
                .get(&r.challenge)
                .ok_or_else(|| HandshakeError::UnknownChallenge(r.challenge.clone()))?;
            if o.answered {
                return Err(HandshakeError::Replayed(r.challenge.clone()));
            }
            let c = &o.challenge;
            if r.verifier != c.verifier {
                return Err(HandshakeError::Mismatch("verifier"));
            }
            if r.verifier_nonce != c.nonce {
                return Err(HandshakeError::Mismatch("verifier_nonce"));
            }
            if r.expires_at != c.expires_at {
                return Err(HandshakeError::Mismatch("expires_at"));
            }
            if now >= c.expires_at {
                return Err(HandshakeError::Expired {
                    expires_at: c.expires_at,
                    now,
                });
            }
            // Compared as keys: `did:mesh:X` and `did:key:X` are one peer.
            if let Some(p) = &c.prover
                && agentmesh_identity::Did::parse(p).ok()
                    != agentmesh_identity::Did::parse(&r.prover).ok()
            {
                return Err(HandshakeError::WrongPeer {
                    want: p.clone(),
                    got: r.prover.clone(),
                });
            }
        }
        let prover = r.check_signature()?;
        channel.check(&r.channel)?;
        {
            // Consume: the first valid answer wins, any later one is a
            // replay (checked again under the lock: two answers may race).
            let mut map = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            match map.get_mut(&r.challenge) {
                Some(o) if !o.answered => o.answered = true,
                Some(_) => return Err(HandshakeError::Replayed(r.challenge.clone())),
                None => return Err(HandshakeError::UnknownChallenge(r.challenge.clone())),
            }
        }
        let facts = admit(&prover, dir, self.cfg.min_trust)?;
        let attestation = Attestation {
            v: 1,
            id: r.challenge.clone(),
            iss: self.did.to_string(),
            sub: prover.to_string(),
            name: facts.name.clone(),
            aud: self.cfg.audience.clone(),
            trust_milli: (facts.trust.clamp(0.0, 1.0) * 1000.0).round() as u32,
            tier: facts.tier.clone(),
            capabilities: facts.capabilities.clone(),
            iat: now,
            exp: now.saturating_add(self.cfg.attestation_ttl_secs),
            transcript: b64(&sha256(r.transcript().as_bytes())),
        };
        let text = attestation.encode(&self.key);
        Ok(Verified {
            prover,
            facts,
            attestation,
            text,
        })
    }

    /// Number of challenges kept (issued and not yet forgotten).
    pub fn outstanding(&self) -> usize {
        self.outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// A peer is admitted when the registry knows it, it is active, and its
/// registry trust is at least `min_trust`.
pub fn admit(did: &Did, dir: &dyn Directory, min_trust: f64) -> Result<PeerFacts, HandshakeError> {
    let facts = dir
        .peer(did)
        .ok_or_else(|| HandshakeError::UnknownAgent(did.to_string()))?;
    if let Some(why) = &facts.inactive {
        return Err(HandshakeError::Inactive(why.clone()));
    }
    if facts.trust < min_trust {
        return Err(HandshakeError::TrustTooLow {
            agent: format!("{} ({did})", facts.name),
            score: facts.trust,
            required: min_trust,
        });
    }
    Ok(facts)
}

/// The prover's check of the verifier that challenged it: a valid, fresh
/// challenge signed by a peer the prover's registry admits (and, when the
/// prover dialled a specific peer, that one).
pub fn check_verifier(
    c: &Challenge,
    expected: Option<&Did>,
    dir: &dyn Directory,
    min_trust: f64,
    now: u64,
) -> Result<(Did, PeerFacts), HandshakeError> {
    let verifier = c.check(now)?;
    if let Some(want) = expected
        && *want != verifier
    {
        return Err(HandshakeError::WrongPeer {
            want: want.to_string(),
            got: verifier.to_string(),
        });
    }
    // The registry's word first; a gateway it does not list is admitted
    // only on a voucher from a mesh authority this side trusts, for
    // exactly the key that signed the challenge (the signature was checked
    // above, over the voucher too).
    let facts = match (admit(&verifier, dir, min_trust), &c.voucher) {
        (Err(HandshakeError::UnknownAgent(who)), Some(text)) => {
            let (v, _) = crate::voucher::Voucher::open(text, &dir.authorities(), &verifier, now)
                .map_err(|e| match e {
                    // Vouched for by a mesh this side does not know: as
                    // unknown as without a voucher.
                    HandshakeError::UntrustedIssuer(_) => HandshakeError::UnknownAgent(format!(
                        "{who} (vouched for by a mesh authority this side does not trust)"
                    )),
                    e => e,
                })?;
            PeerFacts {
                name: format!("gateway `{}`", v.name),
                inactive: None,
                trust: 1.0,
                tier: VOUCHED_GATEWAY_TIER.into(),
                capabilities: Vec::new(),
            }
        }
        (other, _) => other?,
    };
    Ok((verifier, facts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Response;

    struct Dir(Vec<(Did, PeerFacts)>);
    impl Directory for Dir {
        fn peer(&self, did: &Did) -> Option<PeerFacts> {
            self.0
                .iter()
                .find(|(d, _)| d == did)
                .map(|(_, f)| f.clone())
        }
    }

    fn facts(name: &str, trust: f64) -> PeerFacts {
        PeerFacts {
            name: name.into(),
            inactive: None,
            trust,
            tier: "standard".into(),
            capabilities: vec!["read:x".into()],
        }
    }

    fn setup() -> (Verifier, KeyPair, Dir, Vec<String>) {
        let v = Verifier::new(KeyPair::from_seed(&[1; 32]), VerifierConfig::default());
        let p = KeyPair::from_seed(&[2; 32]);
        let low = KeyPair::from_seed(&[4; 32]);
        let dir = Dir(vec![
            (p.did(), facts("beta", 0.8)),
            (low.did(), facts("low", 0.2)),
        ]);
        (v, p, dir, vec!["http://127.0.0.1:9".into()])
    }

    #[test]
    fn every_failure_has_its_own_reason() {
        let (v, p, dir, origins) = setup();
        let ch = Channel::Origins(&origins);
        let c = v.challenge(None, 100).expect("challenge");
        let r = Response::answer(&c, &p, "origin:http://127.0.0.1:9").expect("randomness");
        let ok = v.verify(&r, ch, &dir, 101).expect("verified");
        assert_eq!(ok.facts.name, "beta");
        assert_eq!(ok.attestation.trust_milli, 800);
        // Replayed.
        assert_eq!(
            v.verify(&r, ch, &dir, 102).expect_err("must fail").code(),
            "replayed"
        );
        // Signed by another key.
        let c = v.challenge(None, 100).expect("challenge");
        let mut forged = Response::answer(
            &c,
            &KeyPair::from_seed(&[3; 32]),
            "origin:http://127.0.0.1:9",
        )
        .expect("randomness");
        forged.prover = p.did().to_string();
        assert_eq!(
            v.verify(&forged, ch, &dir, 101)
                .expect_err("must fail")
                .code(),
            "bad_signature"
        );
        // The real prover can still answer that challenge (a forgery does
        // not burn it).
        let r = Response::answer(&c, &p, "origin:http://127.0.0.1:9").expect("randomness");
        assert!(v.verify(&r, ch, &dir, 101).is_ok());
        // Expired.
        let c = v.challenge(None, 100).expect("challenge");
        let r = Response::answer(&c, &p, "origin:http://127.0.0.1:9").expect("randomness");
        assert_eq!(
            v.verify(&r, ch, &dir, 130).expect_err("must fail").code(),
            "challenge_expired"
        );
        // Trust below the threshold, from the registry.
        let c = v.challenge(None, 100).expect("challenge");
        let r = Response::answer(
            &c,
            &KeyPair::from_seed(&[4; 32]),
            "origin:http://127.0.0.1:9",
        )
        .expect("randomness");
        assert_eq!(
            v.verify(&r, ch, &dir, 101).expect_err("must fail").code(),
            "trust_below_threshold"
        );
        // Unregistered.
        let c = v.challenge(None, 100).expect("challenge");
        let r = Response::answer(
            &c,
            &KeyPair::from_seed(&[5; 32]),
            "origin:http://127.0.0.1:9",
        )
        .expect("randomness");
        assert_eq!(
            v.verify(&r, ch, &dir, 101).expect_err("must fail").code(),
            "unknown_agent"
        );
        // Bound to another channel.
        let c = v.challenge(None, 100).expect("challenge");
        let r = Response::answer(&c, &p, "origin:http://evil:9").expect("randomness");
        assert_eq!(
            v.verify(&r, ch, &dir, 101).expect_err("must fail").code(),
            "channel_mismatch"
        );
        // Never issued here.
        let other = Verifier::new(KeyPair::from_seed(&[9; 32]), VerifierConfig::default());
        let c = other.challenge(None, 100).expect("challenge");
        let r = Response::answer(&c, &p, "origin:http://127.0.0.1:9").expect("randomness");
        assert_eq!(
            v.verify(&r, ch, &dir, 101).expect_err("must fail").code(),
            "unknown_challenge"
        );
        // For another prover.
        let c = v
            .challenge(Some(&KeyPair::from_seed(&[4; 32]).did()), 100)
            .expect("challenge");
        let r = Response::answer(&c, &p, "origin:http://127.0.0.1:9").expect("randomness");
        assert_eq!(
            v.verify(&r, ch, &dir, 101).expect_err("must fail").code(),
            "wrong_peer"
        );
    }

    #[test]
    fn request_bound_responses_check_the_request() {
        let (v, p, dir, _) = setup();
        let parts = serde_json::json!([{"text": "hi"}]);
        let c = v.challenge(None, 100).expect("challenge");
        let r = Response::answer(&c, &p, &request_channel(&parts)).expect("randomness");
        let other = serde_json::json!([{"text": "bye"}]);
        assert_eq!(
            v.verify(&r, Channel::Request(&other), &dir, 101)
                .expect_err("must fail")
                .code(),
            "channel_mismatch"
        );
        assert!(v.verify(&r, Channel::Request(&parts), &dir, 101).is_ok());
    }

    #[test]
    fn the_prover_checks_the_verifier_too() {
        let (v, p, _, _) = setup();
        let dir = Dir(vec![
            (*v.did(), facts("gw", 0.9)),
            (p.did(), facts("beta", 0.8)),
        ]);
        let c = v.challenge(None, 100).expect("challenge");
        let (did, f) = check_verifier(&c, Some(v.did()), &dir, 0.5, 101).expect("ok");
        assert_eq!((did, f.name.as_str()), (*v.did(), "gw"));
        assert_eq!(
            check_verifier(&c, Some(&p.did()), &dir, 0.5, 101)
                .expect_err("must fail")
                .code(),
            "wrong_peer"
        );
        assert_eq!(
            check_verifier(&c, None, &dir, 0.95, 101)
                .expect_err("must fail")
                .code(),
            "trust_below_threshold"
        );
    }

    /// A directory that knows no verifier, only a mesh authority.
    struct Authorities(Vec<agentmesh_identity::PublicKey>);
    impl Directory for Authorities {
        fn peer(&self, _: &Did) -> Option<PeerFacts> {
            None
        }
        fn authorities(&self) -> Vec<agentmesh_identity::PublicKey> {
            self.0.clone()
        }
    }

    #[test]
    fn an_unlisted_gateway_is_admitted_only_on_its_mesh_authoritys_voucher() {
        use crate::voucher::Voucher;
        let (v, _, _, _) = setup();
        let (mesh, stranger) = (KeyPair::from_seed(&[7; 32]), KeyPair::from_seed(&[8; 32]));
        let voucher = |key: &Did, by: &KeyPair| {
            Voucher {
                v: 1,
                name: "edge".into(),
                key: key.to_string(),
                credential: "gw_1".into(),
                iat: 90,
                exp: 1_000,
            }
            .encode(by)
        };
        let dir = Authorities(vec![*mesh.public()]);
        // A voucher from a mesh this side does not trust: still unknown.
        v.set_voucher(Some(voucher(v.did(), &stranger)));
        let c = v.challenge(None, 100).expect("challenge");
        assert_eq!(
            check_verifier(&c, None, &dir, 0.5, 101)
                .expect_err("unknown")
                .code(),
            "unknown_agent"
        );
        v.set_voucher(None);
        // No voucher: unknown, as before.
        let c = v.challenge(None, 100).expect("challenge");
        assert_eq!(
            check_verifier(&c, None, &dir, 0.5, 101)
                .expect_err("unknown")
                .code(),
            "unknown_agent"
        );
        // Vouched by the mesh: admitted as that gateway.
        v.set_voucher(Some(voucher(v.did(), &mesh)));
        let c = v.challenge(None, 100).expect("challenge");
        let (did, f) = check_verifier(&c, Some(v.did()), &dir, 0.5, 101).expect("vouched");
        assert_eq!(did, *v.did());
        assert_eq!(
            (f.name.as_str(), f.tier.as_str()),
            ("gateway `edge`", VOUCHED_GATEWAY_TIER)
        );
        // The voucher is under the challenge's signature: swapping it breaks it.
        let mut swapped = c.clone();
        swapped.voucher = Some(voucher(v.did(), &stranger));
        assert_eq!(
            check_verifier(&swapped, None, &dir, 0.5, 101)
                .expect_err("re-signed voucher")
                .code(),
            "bad_signature"
        );
        // A stranger's voucher, or the mesh's voucher for another key.
        v.set_voucher(Some(voucher(v.did(), &stranger)));
        let c = v.challenge(None, 100).expect("challenge");
        assert!(check_verifier(&c, None, &dir, 0.5, 101).is_err());
        v.set_voucher(Some(voucher(&stranger.did(), &mesh)));
        let c = v.challenge(None, 100).expect("challenge");
        assert!(check_verifier(&c, None, &dir, 0.5, 101).is_err());
        // Expired.
        v.set_voucher(Some(voucher(v.did(), &mesh)));
        let c = v.challenge(None, 990).expect("challenge");
        assert!(check_verifier(&c, None, &dir, 0.5, 1_001).is_err());
        // A registry entry wins over a voucher (a suspended gateway agent
        // is not revived by one).
        let mut listed = facts("gw", 0.9);
        listed.inactive = Some("suspended".into());
        let c = v.challenge(None, 100).expect("challenge");
        assert_eq!(
            check_verifier(&c, None, &Dir(vec![(*v.did(), listed)]), 0.5, 101)
                .expect_err("inactive")
                .code(),
            "agent_inactive"
        );
    }

    #[test]
    fn the_challenge_table_is_bounded() {
        let v = Verifier::new(
            KeyPair::from_seed(&[1; 32]),
            VerifierConfig {
                max_outstanding: 3,
                ..VerifierConfig::default()
            },
        );
        for _ in 0..3 {
            v.challenge(None, 100).expect("room");
        }
        assert_eq!(
            v.challenge(None, 100).expect_err("must fail").code(),
            "busy"
        );
        // Once they expired (plus the grace minute) there is room again.
        assert!(v.challenge(None, 200).is_ok());
        assert_eq!(v.outstanding(), 1);
    }
}
