//! Published test vectors for the IATP handshake, AgentMesh profile
//! (`docs/wire/vectors/iatp.json`, specified in `docs/wire/iatp.md`): a
//! challenge, a response bound to an HTTP origin, a response bound to the
//! request it rides in, the transcript and its hash, an attestation, and
//! refusals each with its reason code, all from fixed seeds, nonces and
//! times. Compared on every run; `AGENTMESH_WRITE_VECTORS=1` rewrites the
//! file. Every refusal is also reproduced against a live [`Verifier`]
//! (same keys, same mutation, the verifier's own random challenge), so the
//! published code is the one the implementation answers with. The
//! independent Python check (`interop/vectors/check_vectors.py`) rebuilds
//! every signed byte string and verdict from the spec.

use agentmesh_iatp::manifest;
use agentmesh_iatp::wire::{ATTESTATION_DOMAIN, CHALLENGE_DOMAIN, RESPONSE_DOMAIN};
use agentmesh_iatp::{
    A2A_EXTENSION, Attestation, Challenge, Channel, Directory, HandshakeError, METADATA_KEY,
    PROFILE, PeerFacts, Response, Verifier, VerifierConfig, admit, check_verifier, origin_channel,
    request_channel, transcript,
};
use agentmesh_identity::{Did, KeyPair, sha256, to_canonical_json};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::path::PathBuf;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/wire/vectors/iatp.json")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// `n` bytes counting up from `start` (wrapping), base64url.
fn counting(start: u8, n: usize) -> String {
    b64(&(0..n)
        .map(|i| start.wrapping_add(i as u8))
        .collect::<Vec<_>>())
}

const VERIFIER_SEED: [u8; 32] = [0x76; 32];
const PROVER_SEED: [u8; 32] = [0x70; 32];
const OTHER_SEED: [u8; 32] = [0x6f; 32];
const LOW_SEED: [u8; 32] = [0x6c; 32];
/// When the verifier issues its challenges.
const T0: u64 = 1_800_000_000;
const TTL: u64 = 30;
/// When the verifier checks the responses (unless a vector says otherwise).
const AT: u64 = T0 + 5;
/// The verifier's configured origin (`agentmesh iatp serve`'s default
/// listen address).
const ORIGIN: &str = "http://127.0.0.1:7430";
const MIN_TRUST: f64 = 0.5;
const AUDIENCE: &str = "agentmesh";

struct Keys {
    verifier: KeyPair,
    prover: KeyPair,
    other: KeyPair,
    low: KeyPair,
}

fn keys() -> Keys {
    Keys {
        verifier: KeyPair::from_seed(&VERIFIER_SEED),
        prover: KeyPair::from_seed(&PROVER_SEED),
        other: KeyPair::from_seed(&OTHER_SEED),
        low: KeyPair::from_seed(&LOW_SEED),
    }
}

/// The verifier's registry: the prover and a low-trust agent; `other` is
/// not registered.
struct Registry(Vec<(Did, PeerFacts)>);

impl Directory for Registry {
    fn peer(&self, did: &Did) -> Option<PeerFacts> {
        self.0
            .iter()
            .find(|(d, _)| d == did)
            .map(|(_, f)| f.clone())
    }
}

fn registry(k: &Keys) -> Registry {
    Registry(vec![
        (
            k.prover.did(),
            PeerFacts {
                name: "beta-agent".into(),
                inactive: None,
                // 812.5 milli: the attestation rounds half away from zero.
                trust: 0.8125,
                tier: "trusted".into(),
                capabilities: vec!["write:reports".into(), "read:customer-data".into()],
            },
        ),
        (
            k.low.did(),
            PeerFacts {
                name: "low-agent".into(),
                inactive: None,
                trust: 0.2,
                tier: "probation".into(),
                capabilities: vec!["read:public".into()],
            },
        ),
    ])
}

fn registry_json(dir: &Registry) -> Value {
    let mut m = serde_json::Map::new();
    for (did, f) in &dir.0 {
        m.insert(
            did.to_string(),
            json!({
                "name": f.name,
                "inactive": f.inactive,
                "trust": f.trust,
                "tier": f.tier,
                "capabilities": f.capabilities,
            }),
        );
    }
    Value::Object(m)
}

/// The challenge of the origin-bound run (it names the prover, as the
/// HTTP client always does).
fn origin_challenge(k: &Keys) -> Challenge {
    Challenge::with(
        &k.verifier,
        counting(0x01, 16),
        counting(0xa0, 32),
        Some(&k.prover.did()),
        T0,
        TTL,
    )
}

fn origin_response(k: &Keys, c: &Challenge) -> Response {
    Response::answer_with(c, &k.prover, &origin_channel(ORIGIN), counting(0xc0, 32))
}

/// What an A2A request-bound response binds: the message's `parts`.
fn parts() -> Value {
    json!([
        {"text": "Summarise Q3 for the board \u{2014} \"net\" figures only\n"},
        {"data": {
            "quarter": 3,
            "year": 2026,
            "regions": ["EMEA", "APAC"],
            "draft": true,
            "owner": null,
            "tab\tctl\u{1f}": -7,
            "\u{ff76}": "halfwidth katakana (U+FF76)",
            "\u{1f600}": "astral (U+1F600, UTF-16 D83D DE00)"
        }}
    ])
}

fn request_challenge(k: &Keys) -> Challenge {
    Challenge::with(
        &k.verifier,
        counting(0x11, 16),
        counting(0x40, 32),
        Some(&k.prover.did()),
        T0,
        TTL,
    )
}

fn request_response(k: &Keys, c: &Challenge) -> Response {
    Response::answer_with(c, &k.prover, &request_channel(&parts()), counting(0x60, 32))
}

fn the_attestation(k: &Keys, dir: &Registry, c: &Challenge, r: &Response) -> Attestation {
    let facts = dir.peer(&k.prover.did()).expect("registered");
    Attestation {
        v: 1,
        id: c.id.clone(),
        iss: k.verifier.did().to_string(),
        sub: k.prover.did().to_string(),
        name: facts.name,
        aud: "*".into(),
        trust_milli: (facts.trust * 1000.0).round() as u32,
        tier: facts.tier,
        capabilities: facts.capabilities,
        iat: AT,
        exp: AT + 300,
        transcript: b64(&sha256(r.transcript().as_bytes())),
    }
}

/// The canonical JSON a challenge's signature covers: every field but
/// `signature` (computed here from the wire JSON, not by the crate).
fn challenge_signed_json(c: &Challenge) -> String {
    let mut v = json!(c);
    v.as_object_mut().expect("object").remove("signature");
    to_canonical_json(&v)
}

/// Which prover a refusal vector's challenge names.
#[derive(Clone, Copy)]
enum Named {
    Prover,
    Nobody,
}

/// How the verifier checks the channel.
#[derive(Clone)]
enum Bound {
    /// Over HTTP: its configured origins.
    Origins,
    /// Inside a request that asks for this.
    Request(Value),
}

/// A refusal: how the response is made from the issued challenge, and
/// when and how the verifier checks it.
struct Case {
    name: &'static str,
    what: &'static str,
    named: Named,
    bound: Bound,
    /// The same response was already accepted once.
    answered: bool,
    now: u64,
    respond: fn(&Keys, &Challenge) -> Response,
    expect: &'static str,
}

fn honest(k: &Keys, c: &Challenge) -> Response {
    Response::answer_with(c, &k.prover, &origin_channel(ORIGIN), counting(0xc0, 32))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "tampered-prover-nonce",
            what: "the origin response with `prover_nonce` replaced after signing",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                let mut r = honest(k, c);
                r.prover_nonce = counting(0xe0, 32);
                r
            },
            expect: "bad_signature",
        },
        Case {
            name: "rebound-channel",
            what: "the origin response with `channel` rewritten to another origin after signing (the signature is checked before the channel)",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                let mut r = honest(k, c);
                r.channel = origin_channel("http://attacker.example:7430");
                r
            },
            expect: "bad_signature",
        },
        Case {
            name: "signed-by-another-key",
            what: "a response signed by `other`'s key that names the prover",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                let mut r =
                    Response::answer_with(c, &k.other, &origin_channel(ORIGIN), counting(0xc0, 32));
                r.prover = k.prover.did().to_string();
                r
            },
            expect: "bad_signature",
        },
        Case {
            name: "expired-challenge",
            what: "the honest origin response, checked at the challenge's expires_at",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: T0 + TTL,
            respond: honest,
            expect: "challenge_expired",
        },
        Case {
            name: "replayed",
            what: "the honest origin response presented a second time",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: true,
            now: AT,
            respond: honest,
            expect: "replayed",
        },
        Case {
            name: "unknown-challenge",
            what: "a correctly signed answer to a challenge the verifier never issued",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, _| {
                let never = Challenge::with(
                    &k.verifier,
                    counting(0x21, 16),
                    counting(0x80, 32),
                    Some(&k.prover.did()),
                    T0,
                    TTL,
                );
                honest(k, &never)
            },
            expect: "unknown_challenge",
        },
        Case {
            name: "other-verifier-nonce",
            what: "a response, consistently signed, that carries another verifier_nonce than the challenge's",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                let mut c2 = c.clone();
                c2.nonce = counting(0x90, 32);
                honest(k, &c2)
            },
            expect: "transcript_mismatch",
        },
        Case {
            name: "wrong-peer",
            what: "the challenge names the prover; `other` answers, correctly signed, as itself",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                Response::answer_with(c, &k.other, &origin_channel(ORIGIN), counting(0xc0, 32))
            },
            expect: "wrong_peer",
        },
        Case {
            name: "origin-not-normalised",
            what: "bound to origin:http://localhost:7430 while the verifier's configured origin is http://127.0.0.1:7430 (origins are compared as strings)",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                Response::answer_with(
                    c,
                    &k.prover,
                    &origin_channel("http://localhost:7430"),
                    counting(0xc0, 32),
                )
            },
            expect: "channel_mismatch",
        },
        Case {
            name: "tls-exporter",
            what: "bound to a tls-exporter: channel, which this implementation does not support",
            named: Named::Prover,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                Response::answer_with(
                    c,
                    &k.prover,
                    &format!("tls-exporter:{}", counting(0x30, 32)),
                    counting(0xc0, 32),
                )
            },
            expect: "channel_unsupported",
        },
        Case {
            name: "request-parts-changed",
            what: "a response bound to the published parts, carried in a message whose parts are different",
            named: Named::Prover,
            bound: Bound::Request(json!([{"text": "Summarise Q3 for the board"}])),
            answered: false,
            now: AT,
            respond: |k, c| {
                Response::answer_with(c, &k.prover, &request_channel(&parts()), counting(0x60, 32))
            },
            expect: "channel_mismatch",
        },
        Case {
            name: "unregistered",
            what: "a challenge naming nobody, answered correctly by `other`, whom the verifier's registry does not know",
            named: Named::Nobody,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                Response::answer_with(c, &k.other, &origin_channel(ORIGIN), counting(0xc0, 32))
            },
            expect: "unknown_agent",
        },
        Case {
            name: "trust-below-threshold",
            what: "a challenge naming nobody, answered correctly by `low`, whose registry trust 0.2 is below min_trust 0.5",
            named: Named::Nobody,
            bound: Bound::Origins,
            answered: false,
            now: AT,
            respond: |k, c| {
                Response::answer_with(c, &k.low, &origin_channel(ORIGIN), counting(0xc0, 32))
            },
            expect: "trust_below_threshold",
        },
    ]
}

/// The challenge a case's verifier issued (fixed, for the vector).
fn issued(k: &Keys, named: Named) -> Challenge {
    match named {
        Named::Prover => origin_challenge(k),
        Named::Nobody => Challenge::with(
            &k.verifier,
            counting(0x01, 16),
            counting(0xa0, 32),
            None,
            T0,
            TTL,
        ),
    }
}

fn bound_json(b: &Bound) -> Value {
    match b {
        Bound::Origins => json!({"origins": [ORIGIN]}),
        Bound::Request(v) => json!({"governed": v}),
    }
}

/// The verifier's checks in the order docs/wire/iatp.md gives them, from
/// the crate's public pieces and the vector alone (no verifier state).
fn offline_verdict(
    c: &Challenge,
    r: &Response,
    answered: bool,
    now: u64,
    bound: &Bound,
    dir: &Registry,
) -> Result<(), HandshakeError> {
    if r.profile != PROFILE {
        return Err(HandshakeError::Profile(r.profile.clone()));
    }
    if r.challenge != c.id {
        return Err(HandshakeError::UnknownChallenge(r.challenge.clone()));
    }
    if answered {
        return Err(HandshakeError::Replayed(r.challenge.clone()));
    }
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
    if let Some(p) = &c.prover
        && *p != r.prover
    {
        return Err(HandshakeError::WrongPeer {
            want: p.clone(),
            got: r.prover.clone(),
        });
    }
    let prover = r.check_signature()?;
    if r.channel.starts_with("tls-exporter:") {
        return Err(HandshakeError::ChannelUnsupported(r.channel.clone()));
    }
    let want = match bound {
        Bound::Origins => origin_channel(ORIGIN),
        Bound::Request(v) => request_channel(v),
    };
    if r.channel != want {
        return Err(HandshakeError::Channel {
            got: r.channel.clone(),
            want,
        });
    }
    admit(&prover, dir, MIN_TRUST).map(|_| ())
}

fn manifests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "spec-shape",
            json!({"$schema": "http://inter-agent-trust.org/v1/schema",
              "identity": {"agent_id": "booking-agent-v2.1.0", "verification_key": "ed25519:AAAA", "owner": "Expedia Group"},
              "trust_level": "verified_partner", "scopes": ["repo:read"],
              "capabilities": {"idempotency": true, "concurrency_limit": 10},
              "reversibility": {"level": "partial", "undo_window_seconds": 3600},
              "privacy": {"retention_policy": "ephemeral", "human_in_loop": false, "training_consent": false},
              "protocol_version": "1.0"}),
        ),
        (
            "sidecar-0.5-shape",
            json!({"agent_id": "secure-bank-agent", "agent_version": "0.2.0", "trust_level": "standard",
              "capabilities": {"idempotency": true, "reversibility": "full", "undo_window": "24h"},
              "privacy_contract": {"retention": "permanent", "storage_location": null, "human_review": true},
              "scopes": []}),
        ),
        (
            "odd-values",
            json!({"agent_id": "x", "trust_level": "ROOT", "reversibility": 7,
              "privacy": {"retention_policy": "Forever", "human_in_loop": "yes", "training_consent": "1"},
              "extra": 1}),
        ),
    ]
}

fn generate() -> Value {
    let k = keys();
    let dir = registry(&k);
    let key_json = |seed: &[u8; 32], kp: &KeyPair| json!({"seed": hex(seed), "public_key": hex(kp.public().as_bytes()), "did": kp.did().to_string()});

    let c = origin_challenge(&k);
    let r = origin_response(&k, &c);
    let t = r.transcript();
    let t_hash = b64(&sha256(t.as_bytes()));

    let c2 = request_challenge(&k);
    let r2 = request_response(&k, &c2);
    let governed = parts();
    let governed_canonical = to_canonical_json(&governed);
    let t2 = r2.transcript();

    let mut tampered_challenge = c.clone();
    tampered_challenge.nonce = counting(0x90, 32);

    let att = the_attestation(&k, &dir, &c, &r);
    let text = att.encode(&k.verifier);
    let (p64, s64) = text
        .strip_prefix("amat1.")
        .and_then(|b| b.split_once('.'))
        .expect("shape");
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(p64).expect("b64")).expect("utf-8");

    // One byte of the payload changed (trust_milli 813 → 913): still
    // canonical JSON of valid claims, so only the signature fails.
    let flipped_payload = payload.replacen("\"trust_milli\":813", "\"trust_milli\":913", 1);
    assert_ne!(flipped_payload, payload);
    let flipped = format!("amat1.{}.{s64}", b64(flipped_payload.as_bytes()));
    // The same claims in declaration order, validly signed by the issuer:
    // refused because the payload is not canonical.
    let noncanonical_payload = serde_json::to_string(&att).expect("json");
    assert_ne!(noncanonical_payload, payload);
    let noncanonical = format!(
        "amat1.{}.{}",
        b64(noncanonical_payload.as_bytes()),
        b64(&k
            .verifier
            .sign(ATTESTATION_DOMAIN, noncanonical_payload.as_bytes()))
    );

    let refusals: Vec<Value> = cases()
        .iter()
        .map(|case| {
            let issued = issued(&k, case.named);
            let resp = (case.respond)(&k, &issued);
            let e = offline_verdict(&issued, &resp, case.answered, case.now, &case.bound, &dir)
                .expect_err("a refusal");
            json!({
                "name": case.name,
                "what": case.what,
                "challenge": issued,
                "response": resp,
                "transcript": resp.transcript(),
                "answered_before": case.answered,
                "now": case.now,
                "channel": bound_json(&case.bound),
                "expect": case.expect,
                "status": e.status(),
            })
        })
        .collect();

    let manifest_vectors: Vec<Value> = manifests()
        .into_iter()
        .map(|(name, m)| {
            let f = manifest::parse(m.to_string().as_bytes()).expect("reads");
            json!({
                "name": name,
                "manifest": m,
                "facts": f,
                "iatp_score": f.iatp_score(),
            })
        })
        .collect();

    json!({
        "description": "AgentMesh IATP profile vectors (docs/wire/iatp.md). Keys are Ed25519 from the given 32-byte seeds; DIDs are did:mesh; times are unix seconds; base64url has no padding. Every refusal is checked on its own, against a verifier that issued its `challenge` (and, when answered_before, already accepted the same response once).",
        "profile": PROFILE,
        "domains": {
            "challenge": CHALLENGE_DOMAIN,
            "response": RESPONSE_DOMAIN,
            "attestation": ATTESTATION_DOMAIN,
        },
        "keys": {
            "verifier": key_json(&VERIFIER_SEED, &k.verifier),
            "prover": key_json(&PROVER_SEED, &k.prover),
            "other": key_json(&OTHER_SEED, &k.other),
            "low": key_json(&LOW_SEED, &k.low),
        },
        "verifier": {
            "origins": [ORIGIN],
            "min_trust": MIN_TRUST,
            "challenge_ttl_secs": TTL,
            "attestation_ttl_secs": 300,
            "audience": "*",
            "registry": registry_json(&dir),
        },
        "challenge": {
            "message": c,
            "signed_json": challenge_signed_json(&c),
            "checks": [
                {"now": T0 + 1, "expect": "valid"},
                {"now": T0 + TTL, "expect": "challenge_expired"},
                {"now": T0 - 31, "expect": "not_yet_valid"},
            ],
            "tampered": {
                "what": "the challenge with `nonce` replaced after signing",
                "message": tampered_challenge,
                "now": T0 + 1,
                "expect": "bad_signature",
            },
        },
        "response": {
            "origin": ORIGIN,
            "message": r,
            "transcript": t,
            "transcript_sha256": t_hash,
            "now": AT,
            "expect": "valid",
        },
        "request_bound": {
            "governed": governed,
            "governed_canonical": governed_canonical,
            "governed_sha256": b64(&sha256(governed_canonical.as_bytes())),
            "channel": request_channel(&governed),
            "challenge": c2,
            "response": r2,
            "transcript": t2,
            "transcript_sha256": b64(&sha256(t2.as_bytes())),
            "now": AT,
            "expect": "valid",
            "a2a_extension": A2A_EXTENSION,
            "a2a_message": {
                "messageId": "msg-0001",
                "role": "ROLE_USER",
                "parts": parts(),
                "metadata": {METADATA_KEY: {"response": r2}},
            },
        },
        "attestation": {
            "claims": att,
            "payload_json": payload,
            "payload_b64url": p64,
            "signature_b64url": s64,
            "text": text,
            "checks": [
                {"audience": AUDIENCE, "now": AT, "expect": "valid"},
                {"audience": AUDIENCE, "now": AT + 300, "expect": "attestation_expired"},
                {"audience": AUDIENCE, "now": AT - 31, "expect": "not_yet_valid"},
            ],
            "refusals": [
                {"name": "flipped-payload-byte", "what": "one payload byte changed (trust_milli 813 → 913), the signature kept", "text": flipped, "expect": "bad_signature"},
                {"name": "non-canonical-payload", "what": "the same claims in declaration order, validly signed by the issuer", "text": noncanonical, "payload_json": noncanonical_payload, "expect": "malformed"},
            ],
        },
        "refusals": refusals,
        "manifests": manifest_vectors,
    })
}

#[test]
fn vectors_match_the_published_file() {
    let generated = serde_json::to_string_pretty(&generate()).expect("json") + "\n";
    if std::env::var_os("AGENTMESH_WRITE_VECTORS").is_some() {
        std::fs::write(path(), &generated).expect("write");
    }
    let published = std::fs::read_to_string(path()).unwrap_or_default();
    assert!(
        published == generated,
        "docs/wire/vectors/iatp.json is stale: rerun with AGENTMESH_WRITE_VECTORS=1"
    );
}

fn code<T: std::fmt::Debug>(r: Result<T, HandshakeError>) -> String {
    match r {
        Ok(_) => "valid".into(),
        Err(e) => e.code().into(),
    }
}

#[test]
fn the_challenge_and_responses_verify() {
    let k = keys();
    let dir = registry(&k);
    let v = generate();

    // The challenge: its signed bytes, and the prover's view of it.
    let c: Challenge =
        serde_json::from_value(v["challenge"]["message"].clone()).expect("challenge");
    let signed = v["challenge"]["signed_json"].as_str().expect("signed");
    let sig = URL_SAFE_NO_PAD.decode(&c.signature).expect("b64");
    k.verifier
        .public()
        .verify(CHALLENGE_DOMAIN, signed.as_bytes(), &sig)
        .expect("the challenge signature covers signed_json");
    for check in v["challenge"]["checks"].as_array().expect("checks") {
        let now = check["now"].as_u64().expect("now");
        assert_eq!(code(c.check(now)), check["expect"], "challenge at {now}");
    }
    let verifiers = Registry(vec![(
        k.verifier.did(),
        PeerFacts {
            name: "gateway".into(),
            inactive: None,
            trust: 0.9,
            tier: "trusted".into(),
            capabilities: vec![],
        },
    )]);
    let (did, _) = check_verifier(&c, Some(&k.verifier.did()), &verifiers, 0.5, T0 + 1)
        .expect("the prover admits the verifier");
    assert_eq!(did, k.verifier.did());
    let tampered: Challenge =
        serde_json::from_value(v["challenge"]["tampered"]["message"].clone()).expect("tampered");
    assert_eq!(code(tampered.check(T0 + 1)), "bad_signature");

    // The origin-bound response.
    let r: Response = serde_json::from_value(v["response"]["message"].clone()).expect("response");
    assert_eq!(r.transcript(), v["response"]["transcript"]);
    assert_eq!(
        transcript(
            &c.id,
            &c.verifier,
            &c.nonce,
            &r.prover,
            &r.prover_nonce,
            c.expires_at,
            &origin_channel(ORIGIN)
        ),
        v["response"]["transcript"]
    );
    assert_eq!(
        b64(&sha256(r.transcript().as_bytes())),
        v["response"]["transcript_sha256"]
    );
    assert_eq!(r.check_signature().expect("signed"), k.prover.did());
    offline_verdict(&c, &r, false, AT, &Bound::Origins, &dir).expect("valid");

    // The request-bound response.
    let rb = &v["request_bound"];
    let c2: Challenge = serde_json::from_value(rb["challenge"].clone()).expect("challenge");
    let r2: Response = serde_json::from_value(rb["response"].clone()).expect("response");
    assert_eq!(to_canonical_json(&rb["governed"]), rb["governed_canonical"]);
    assert_eq!(request_channel(&rb["governed"]), rb["channel"]);
    assert_eq!(r2.channel, rb["channel"]);
    assert_eq!(
        format!(
            "request:{}",
            rb["governed_sha256"].as_str().expect("digest")
        ),
        r2.channel
    );
    assert_eq!(rb["a2a_message"]["parts"], rb["governed"]);
    assert_eq!(
        rb["a2a_message"]["metadata"][METADATA_KEY]["response"],
        rb["response"]
    );
    assert_eq!(r2.transcript(), rb["transcript"]);
    c2.check(AT).expect("challenge");
    offline_verdict(
        &c2,
        &r2,
        false,
        AT,
        &Bound::Request(rb["governed"].clone()),
        &dir,
    )
    .expect("valid");
}

#[test]
fn every_refusal_is_the_one_the_verifier_answers() {
    let k = keys();
    let dir = registry(&k);
    let v = generate();
    let published = v["refusals"].as_array().expect("refusals");
    let cases = cases();
    assert_eq!(published.len(), cases.len());
    for (case, p) in cases.iter().zip(published) {
        // Offline, from the published vector.
        let c: Challenge = serde_json::from_value(p["challenge"].clone()).expect("challenge");
        let r: Response = serde_json::from_value(p["response"].clone()).expect("response");
        let e = offline_verdict(&c, &r, case.answered, case.now, &case.bound, &dir)
            .expect_err("refused");
        assert_eq!(e.code(), case.expect, "{}: offline", case.name);
        assert_eq!(p["status"], e.status(), "{}: status", case.name);

        // Live: the same mutation of a challenge a real verifier issued.
        let verifier = Verifier::new(
            KeyPair::from_seed(&VERIFIER_SEED),
            VerifierConfig {
                min_trust: MIN_TRUST,
                ..VerifierConfig::default()
            },
        );
        let named = match case.named {
            Named::Prover => Some(k.prover.did()),
            Named::Nobody => None,
        };
        let live = verifier.challenge(named.as_ref(), T0).expect("challenge");
        let resp = (case.respond)(&k, &live);
        let origins = vec![ORIGIN.to_owned()];
        let channel = match &case.bound {
            Bound::Origins => Channel::Origins(&origins),
            Bound::Request(g) => Channel::Request(g),
        };
        if case.answered {
            verifier
                .verify(&resp, channel, &dir, AT)
                .expect("first answer accepted");
        }
        let got = verifier
            .verify(&resp, channel, &dir, case.now)
            .expect_err("refused");
        assert_eq!(got.code(), case.expect, "{}: live verifier", case.name);
        assert_eq!(got.status(), e.status(), "{}: live status", case.name);
    }
}

#[test]
fn the_attestation_is_what_the_verifier_issues_and_refusals_are_named() {
    let k = keys();
    let dir = registry(&k);
    let v = generate();
    let a = &v["attestation"];
    let text = a["text"].as_str().expect("text");
    let (att, issuer) = Attestation::decode(text).expect("decodes");
    assert_eq!(issuer, k.verifier.did());
    assert_eq!(serde_json::to_value(&att).expect("json"), a["claims"]);
    assert_eq!(att.transcript, v["response"]["transcript_sha256"]);
    assert_eq!(att.id, v["challenge"]["message"]["id"]);
    assert_eq!(
        text,
        format!(
            "amat1.{}.{}",
            a["payload_b64url"].as_str().expect("p"),
            a["signature_b64url"].as_str().expect("s")
        )
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(a["payload_b64url"].as_str().expect("p"))
            .expect("b64"),
        a["payload_json"].as_str().expect("json").as_bytes()
    );
    for check in a["checks"].as_array().expect("checks") {
        let now = check["now"].as_u64().expect("now");
        let aud = check["audience"].as_str().expect("aud");
        assert_eq!(code(att.check(aud, now)), check["expect"], "at {now}");
    }
    for refusal in a["refusals"].as_array().expect("refusals") {
        assert_eq!(
            code(Attestation::decode(refusal["text"].as_str().expect("text"))),
            refusal["expect"],
            "{}",
            refusal["name"]
        );
    }
    // Padding and other encodings of the same bytes are refused.
    let padded = format!(
        "amat1.{}=.{}",
        a["payload_b64url"].as_str().expect("p"),
        a["signature_b64url"].as_str().expect("s")
    );
    assert_eq!(code(Attestation::decode(&padded)), "malformed");

    // A live verifier, after the same (honest, origin-bound) handshake,
    // issues the same claims but for its own challenge id and transcript.
    let verifier = Verifier::new(
        KeyPair::from_seed(&VERIFIER_SEED),
        VerifierConfig {
            min_trust: MIN_TRUST,
            ..VerifierConfig::default()
        },
    );
    let live = verifier
        .challenge(Some(&k.prover.did()), T0)
        .expect("challenge");
    let resp = origin_response(&k, &live);
    let origins = vec![ORIGIN.to_owned()];
    let done = verifier
        .verify(&resp, Channel::Origins(&origins), &dir, AT)
        .expect("verified");
    assert_eq!(
        done.attestation.transcript,
        b64(&sha256(resp.transcript().as_bytes()))
    );
    assert_eq!(
        Attestation {
            id: att.id.clone(),
            transcript: att.transcript.clone(),
            ..done.attestation.clone()
        },
        att
    );
    assert_eq!(
        Attestation::decode(&done.text).expect("decodes").0,
        done.attestation
    );
}

#[test]
fn the_manifest_mapping_is_as_published() {
    let v = generate();
    for m in v["manifests"].as_array().expect("manifests") {
        let f = manifest::parse(m["manifest"].to_string().as_bytes()).expect("reads");
        assert_eq!(serde_json::to_value(&f).expect("json"), m["facts"]);
        assert_eq!(m["iatp_score"], f.iatp_score());
    }
}
