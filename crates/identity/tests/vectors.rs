//! Published identity vectors (`docs/wire/vectors/identity.json`): DIDs,
//! JWK and a sponsorship attestation from fixed seeds. Regenerated and
//! compared on every run; `AGENTMESH_WRITE_VECTORS=1` rewrites the file.

use agentmesh_capability::parse_list;
use agentmesh_identity::{Did, DidDocument, Jwk, KeyPair, SpiffeId, Sponsorship};
use serde_json::{Value, json};

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/wire/vectors/identity.json")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn generate() -> Value {
    let agent = KeyPair::from_seed(&[0x0a; 32]);
    let sponsor = KeyPair::from_seed(&[0x01; 32]);
    let spiffe = SpiffeId::for_agent("example.org", "data-analyst-agent").expect("spiffe");
    let att = Sponsorship {
        agent_did: agent.did(),
        agent_name: "data-analyst-agent".into(),
        spiffe_id: spiffe.clone(),
        sponsor: "alice@company.com".into(),
        sponsor_did: sponsor.did(),
        capabilities: parse_list("read:customer-data,write:reports").expect("caps"),
        parent_did: None,
        issued_at: 1_800_000_000,
        expires_at: Some(1_831_536_000),
        signature: String::new(),
    }
    .sign(&sponsor);
    json!({
        "description": "AgentMesh identity vectors (docs/wire/identity.md). Ed25519 keys from 32-byte seeds.",
        "keys": [
            {"seed": hex(&[0x0a; 32]), "public_key": hex(agent.public().as_bytes()),
             "did_mesh": agent.did().to_string(), "did_key": agent.did().to_did_key().to_string(),
             "jwk": Jwk::public(agent.public()),
             "did_document": DidDocument::for_did(&agent.did(), Some(&spiffe))},
            {"seed": hex(&[0x01; 32]), "public_key": hex(sponsor.public().as_bytes()),
             "did_mesh": sponsor.did().to_string(), "did_key": sponsor.did().to_did_key().to_string()}
        ],
        "sponsorship": {
            "domain": agentmesh_identity::SPONSORSHIP_DOMAIN,
            "canonical_json": String::from_utf8(att.canonical_bytes()).expect("utf8"),
            "attestation": att,
        },
        "invalid_dids": [
            {"did": "did:mesh:0123456789abcdef0123456789abcdef", "error": "not base58btc"},
            {"did": "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169", "error": "P-256 key type"},
            {"did": "did:web:example.com", "error": "unsupported method"},
            {"did": "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp#key-1", "error": "DID URL"}
        ]
    })
}

#[test]
fn committed_identity_vectors_match() {
    let generated = generate();
    if std::env::var_os("AGENTMESH_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).expect("json") + "\n";
        std::fs::write(path(), text).expect("write");
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path()).expect("vectors file"))
            .expect("json");
    assert_eq!(
        committed, generated,
        "identity wire format changed: regenerate on purpose"
    );
    let att: Sponsorship = serde_json::from_value(committed["sponsorship"]["attestation"].clone())
        .expect("attestation");
    att.verify(1_800_000_001)
        .expect("committed attestation verifies");
    for k in committed["keys"].as_array().expect("keys") {
        let a = Did::parse(k["did_mesh"].as_str().expect("did")).expect("parse");
        let b = Did::parse(k["did_key"].as_str().expect("did")).expect("parse");
        assert_eq!(a, b);
    }
    for bad in committed["invalid_dids"].as_array().expect("bad") {
        assert!(Did::parse(bad["did"].as_str().expect("did")).is_err());
    }
}
