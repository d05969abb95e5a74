//! Published test vectors (`docs/wire/vectors/delegation.json`).
//!
//! The vectors are generated deterministically from fixed seeds and times.
//! This test regenerates them and fails if the committed file differs (so
//! the wire format cannot drift unnoticed), then checks every committed
//! token against its expected outcome on its own.
//! `AGENTMESH_WRITE_VECTORS=1 cargo test -p agentmesh-delegation --test vectors`
//! rewrites the file after an intended change.

use agentmesh_capability::parse_list;
use agentmesh_delegation::wire::{self, LINK_DOMAIN, Link};
use agentmesh_delegation::{
    AgentStatus, Grant, HolderProof, MemoryDirectory, ReplayGuard, Token, VerifyOptions, hex,
    verify,
};
use agentmesh_identity::KeyPair;
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000;

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/wire/vectors/delegation.json")
}

struct Keys {
    sponsor: KeyPair,
    a: KeyPair,
    b: KeyPair,
    c: KeyPair,
}

fn keys() -> Keys {
    Keys {
        sponsor: KeyPair::from_seed(&[0x01; 32]),
        a: KeyPair::from_seed(&[0x0a; 32]),
        b: KeyPair::from_seed(&[0x0b; 32]),
        c: KeyPair::from_seed(&[0x0c; 32]),
    }
}

const REGISTRY: &[(&str, &str)] = &[
    ("agent-a", "read:*,write:*,delete:*"),
    ("agent-b", "read:*,write:reports"),
    ("agent-c", "read:public-data"),
];

fn directory(k: &Keys) -> MemoryDirectory {
    let mut d = MemoryDirectory::new();
    d.add_sponsor(
        k.sponsor.did(),
        "alice@company.com",
        parse_list("*").expect("caps"),
        true,
    );
    for (kp, (name, caps)) in [&k.a, &k.b, &k.c].into_iter().zip(REGISTRY) {
        d.add_agent(
            kp.did(),
            name,
            k.sponsor.did(),
            parse_list(caps).expect("caps"),
            AgentStatus::Active,
        );
    }
    d
}

fn grant(to: &KeyPair, caps: &str) -> Grant {
    Grant {
        audience: to.did(),
        capabilities: parse_list(caps).expect("caps"),
        not_before: T0,
        expires_at: T0 + 3600,
        max_depth: None,
    }
}

fn links_of(t: &Token) -> Vec<Link> {
    t.links().iter().map(|d| d.link.clone()).collect()
}

fn generate() -> Value {
    let k = keys();
    let root = Token::issue_root(&k.sponsor, grant(&k.a, "read:*,write:*,delete:*")).expect("root");
    let ab = root
        .delegate(&k.a, grant(&k.b, "read:*,write:reports"))
        .expect("ab");
    let bc = ab
        .delegate(&k.b, grant(&k.c, "read:public-data"))
        .expect("bc");

    // Forged: B grants C write:* (validly signed by B).
    let mut forged = links_of(&ab);
    let mut wide = Link {
        issuer: *k.b.public().as_bytes(),
        audience: *k.c.public().as_bytes(),
        not_before: T0,
        expires_at: T0 + 3600,
        max_depth: 0,
        prev_hash: forged[1].hash(),
        capabilities: parse_list("write:*").expect("caps"),
        signature: [0; 64],
    };
    wide.signature = k.b.sign(LINK_DOMAIN, &wide.body());
    forged.push(wide);

    // Tampered: one capability byte of link 2 changed after signing.
    let mut tampered = wire::encode(&links_of(&bc));
    let pos = tampered.len() - 64 - 1;
    tampered[pos] ^= 0x02; // `read:public-data` becomes `read:public-datc`
    let tampered_text = {
        use base64::Engine;
        format!(
            "{}{}",
            wire::TEXT_PREFIX,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tampered)
        )
    };

    // Depth: A gives B max depth 0, B delegates anyway (forged).
    let mut g = grant(&k.b, "read:*");
    g.max_depth = Some(0);
    let shallow = root.delegate(&k.a, g).expect("shallow");
    let mut deep = links_of(&shallow);
    let mut extra = Link {
        issuer: *k.b.public().as_bytes(),
        audience: *k.c.public().as_bytes(),
        not_before: T0,
        expires_at: T0 + 3600,
        max_depth: 0,
        prev_hash: deep[1].hash(),
        capabilities: parse_list("read:public-data").expect("caps"),
        signature: [0; 64],
    };
    extra.signature = k.b.sign(LINK_DOMAIN, &extra.body());
    deep.push(extra);

    let digest = [0x42u8; 32];
    let proof = HolderProof::create(&k.c, &bc, &digest, T0 + 60);

    let body_hex = |t: &Token| -> Vec<String> { t.links().iter().map(|d| hex(&d.body)).collect() };
    let hashes = |t: &Token| -> Vec<String> { t.links().iter().map(|d| hex(&d.hash)).collect() };
    json!({
        "description": "AgentMesh delegation token vectors (docs/wire/delegation.md). Keys are Ed25519 from the given 32-byte seeds; times are unix seconds.",
        "keys": {
            "sponsor": {"seed": hex(&[0x01; 32]), "did": k.sponsor.did(), "email": "alice@company.com", "may_grant": ["*"]},
            "agent-a": {"seed": hex(&[0x0a; 32]), "did": k.a.did(), "registered": REGISTRY[0].1},
            "agent-b": {"seed": hex(&[0x0b; 32]), "did": k.b.did(), "registered": REGISTRY[1].1},
            "agent-c": {"seed": hex(&[0x0c; 32]), "did": k.c.did(), "registered": REGISTRY[2].1},
        },
        "vectors": [
            {"name": "root-link", "token": root.as_str(), "verify_at": T0 + 60,
             "link_bodies": body_hex(&root), "link_hashes": hashes(&root),
             "expect": "valid", "capabilities": ["delete:*", "read:*", "write:*"]},
            {"name": "seed-chain", "token": bc.as_str(), "verify_at": T0 + 60,
             "link_bodies": body_hex(&bc), "link_hashes": hashes(&bc),
             "expect": "valid", "capabilities": ["read:public-data"]},
            {"name": "seed-chain-expired", "token": bc.as_str(), "verify_at": T0 + 3600, "expect": "expired"},
            {"name": "seed-chain-not-yet-valid", "token": bc.as_str(), "verify_at": T0 - 31, "expect": "not_yet_valid"},
            {"name": "forged-widening", "token": wire::encode_text(&forged), "verify_at": T0 + 60, "expect": "widened"},
            {"name": "tampered-capability-byte", "token": tampered_text, "verify_at": T0 + 60, "expect": "bad_signature"},
            {"name": "depth-exceeded", "token": wire::encode_text(&deep), "verify_at": T0 + 60, "expect": "depth_exhausted"},
        ],
        "holder_proofs": [
            {"name": "seed-chain-holder", "token": bc.as_str(), "holder": "agent-c",
             "request_digest": hex(&digest), "timestamp": T0 + 60, "proof": proof.to_text(),
             "verify_at": T0 + 61, "expect": "valid"}
        ]
    })
}

#[test]
fn committed_vectors_match_and_verify() {
    let generated = generate();
    let text = serde_json::to_string_pretty(&generated).expect("json") + "\n";
    if std::env::var_os("AGENTMESH_WRITE_VECTORS").is_some() {
        std::fs::write(path(), &text).expect("write vectors");
    }
    let committed_text = std::fs::read_to_string(path())
        .expect("docs/wire/vectors/delegation.json exists (AGENTMESH_WRITE_VECTORS=1 creates it)");
    let committed: Value = serde_json::from_str(&committed_text).expect("vectors are JSON");
    assert_eq!(
        committed, generated,
        "the wire format changed: regenerate the vectors on purpose"
    );

    // Check every committed vector on its own.
    let k = keys();
    let dir = directory(&k);
    for v in committed["vectors"].as_array().expect("vectors") {
        let token = v["token"].as_str().expect("token");
        let at = v["verify_at"].as_u64().expect("time");
        let expect = v["expect"].as_str().expect("expect");
        match verify(token, &dir, VerifyOptions::at(at)) {
            Ok(chain) => {
                assert_eq!(expect, "valid", "{}", v["name"]);
                let caps: Vec<String> = chain.capabilities.iter().map(|c| c.to_string()).collect();
                assert_eq!(json!(caps), v["capabilities"], "{}", v["name"]);
            }
            Err(e) => assert_eq!(e.code(), expect, "{}: {e}", v["name"]),
        }
    }
    for p in committed["holder_proofs"].as_array().expect("proofs") {
        let chain = verify(
            p["token"].as_str().expect("t"),
            &dir,
            VerifyOptions::at(T0 + 60),
        )
        .expect("chain");
        let proof = HolderProof::parse(p["proof"].as_str().expect("p")).expect("proof");
        let digest = agentmesh_delegation_hex32(p["request_digest"].as_str().expect("d"));
        ReplayGuard::new(60, 16)
            .verify(&chain, &proof, &digest, p["verify_at"].as_u64().expect("t"))
            .expect("holder proof vector verifies");
    }
}

fn agentmesh_delegation_hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}
