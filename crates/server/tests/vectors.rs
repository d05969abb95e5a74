//! Published test vectors for proof of possession
//! (`docs/wire/vectors/registration.json`): a registration request, a
//! credential request and a sponsor approval, from fixed keys. Compared on
//! every run; `AGENTMESH_WRITE_VECTORS=1` rewrites the file. The
//! independent Python check (`interop/vectors/check_vectors.py`) rebuilds
//! each message from the fields and verifies each signature.

use agentmesh_identity::KeyPair;
use agentmesh_server::pop::{
    self, APPROVAL_DOMAIN, CREDENTIAL_REQUEST_DOMAIN, CredentialRequest, REGISTER_DOMAIN,
    RegistrationRequest,
};
use serde_json::{Value, json};
use std::path::PathBuf;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/wire/vectors/registration.json")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn generate() -> Value {
    let mesh = KeyPair::from_seed(&[0x4d; 32]).did().to_mesh().to_string();
    let agent = KeyPair::from_seed(&[0x0a; 32]);
    let sponsor = KeyPair::from_seed(&[0x05; 32]);
    let reg = RegistrationRequest {
        name: "data-analyst-agent".into(),
        sponsor: "alice@company.com".into(),
        capabilities: vec!["read:customer-data".into(), "write:reports".into()],
        did: agent.did().to_did_key().to_string(),
        parent: None,
        expires_at: Some(1_900_000_000),
        nonce: "00112233445566778899aabbccddeeff".into(),
        timestamp: 1_800_000_000,
        signature: String::new(),
    }
    .sign(&agent, &mesh);
    let cred = CredentialRequest {
        did: agent.did().to_string(),
        audience: Some("agentmesh-gateway".into()),
        ttl_secs: None,
        nonce: "ffeeddccbbaa99887766554433221100".into(),
        timestamp: 1_800_000_100,
        signature: String::new(),
    }
    .sign(&agent, &mesh);
    let caps: Vec<String> = reg.capabilities.clone();
    let approval_msg =
        pop::approval_message(&mesh, "reg_0123", &agent.did(), "data-analyst-agent", &caps);
    let approval_sig = pop::sign_approval(&sponsor, &approval_msg);
    json!({
        "mesh": mesh,
        "agent_seed": hex(&[0x0a; 32]),
        "sponsor_seed": hex(&[0x05; 32]),
        "registration": {
            "domain": REGISTER_DOMAIN,
            "request": reg,
            "message": reg.message(&mesh),
        },
        "credential_request": {
            "domain": CREDENTIAL_REQUEST_DOMAIN,
            "request": cred,
            "message": cred.message(&mesh),
        },
        "approval": {
            "domain": APPROVAL_DOMAIN,
            "fields": {"mesh": mesh, "registration": "reg_0123", "did": agent.did().to_mesh().to_string(), "name": "data-analyst-agent", "capabilities": caps},
            "message": approval_msg,
            "signature": approval_sig,
        },
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
        "docs/wire/vectors/registration.json is stale: rerun with AGENTMESH_WRITE_VECTORS=1"
    );
}

#[test]
fn published_vectors_verify() {
    let v = generate();
    let mesh = v["mesh"].as_str().expect("mesh");
    let reg: RegistrationRequest =
        serde_json::from_value(v["registration"]["request"].clone()).expect("request");
    pop::check(
        REGISTER_DOMAIN,
        &reg.did,
        &reg.message(mesh),
        &reg.signature,
        reg.timestamp,
        reg.timestamp,
    )
    .expect("registration verifies");
    // For another mesh, or another timestamp, it does not.
    assert!(
        pop::check(
            REGISTER_DOMAIN,
            &reg.did,
            &reg.message("did:mesh:z6MkOther"),
            &reg.signature,
            reg.timestamp,
            reg.timestamp
        )
        .is_err()
    );
    let cred: CredentialRequest =
        serde_json::from_value(v["credential_request"]["request"].clone()).expect("request");
    pop::check(
        CREDENTIAL_REQUEST_DOMAIN,
        &cred.did,
        &cred.message(mesh),
        &cred.signature,
        cred.timestamp,
        cred.timestamp + 60,
    )
    .expect("credential request verifies");
}
