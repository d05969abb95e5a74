//! Published test vectors for mesh bearer credentials
//! (`docs/wire/vectors/credential.json`), compared on every run;
//! `AGENTMESH_WRITE_VECTORS=1` rewrites the file. An independent Python
//! implementation checks them too (`interop/vectors/check_vectors.py`).

use agentmesh_engine::credential::{
    CREDENTIAL_DOMAIN, Claims, CredentialError, decode, encode, verify,
};
use agentmesh_identity::KeyPair;
use serde_json::{Value, json};
use std::path::PathBuf;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/wire/vectors/credential.json")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn generate() -> Value {
    let mesh = KeyPair::from_seed(&[0x4d; 32]);
    let agent = KeyPair::from_seed(&[0x02; 32]);
    let claims = Claims {
        v: 1,
        id: "0123456789abcdef01234567".into(),
        sub: agent.did().to_string(),
        aud: "agentmesh-gateway".into(),
        iat: 1_800_000_000,
        exp: 1_800_003_600,
    };
    let text = encode(&mesh, &claims);
    let (payload_b64, sig_b64) = text
        .strip_prefix("amcr1.")
        .and_then(|b| b.split_once('.'))
        .expect("shape");
    let mut tampered = text.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    json!({
        "domain": CREDENTIAL_DOMAIN,
        "mesh_seed": hex(&[0x4d; 32]),
        "mesh_public_key": hex(mesh.public().as_bytes()),
        "claims": claims,
        "payload_b64url": payload_b64,
        "signature_b64url": sig_b64,
        "credential": text,
        "checks": [
            {"audience": "agentmesh-gateway", "now": 1_800_000_100, "valid": true},
            {"audience": "other-gateway", "now": 1_800_000_100, "valid": false, "error": "credential_wrong_audience"},
            {"audience": "agentmesh-gateway", "now": 1_800_003_600, "valid": false, "error": "credential_expired"}
        ],
        "tampered": String::from_utf8(tampered).expect("ascii"),
    })
}

#[test]
fn committed_credential_vectors_match() {
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
        "credential wire format changed: regenerate on purpose"
    );
    let mesh = KeyPair::from_seed(&[0x4d; 32]);
    let text = committed["credential"].as_str().expect("text");
    for c in committed["checks"].as_array().expect("checks") {
        let r = verify(
            text,
            mesh.public(),
            c["audience"].as_str().expect("aud"),
            c["now"].as_u64().expect("now"),
        );
        match c["valid"].as_bool() {
            Some(true) => assert!(r.is_ok(), "{c}: {r:?}"),
            _ => assert_eq!(r.map_err(|e| e.code()).err(), c["error"].as_str(), "{c}"),
        }
    }
    assert_eq!(
        decode(committed["tampered"].as_str().expect("t"), mesh.public()),
        Err(CredentialError::BadSignature)
    );
}
