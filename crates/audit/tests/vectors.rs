//! Published audit vectors (`docs/wire/vectors/audit.json`): entries with
//! their canonical bytes and leaf hashes, the tree root, an inclusion and a
//! consistency proof, and a signed checkpoint. Regenerated and compared on
//! every run; `AGENTMESH_WRITE_VECTORS=1` rewrites the file.

use agentmesh_audit::note::{Checkpoint, NoteSigner, verify_checkpoint};
use agentmesh_audit::tree::{self, MemoryTree};
use agentmesh_audit::{Draft, Entry, hex, leaf_hash};
use agentmesh_identity::KeyPair;
use serde_json::{Value, json};

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/wire/vectors/audit.json")
}

fn generate() -> Value {
    let entries: Vec<Entry> = (0..5u64)
        .map(|i| Entry {
            seq: i,
            time: format!("2027-01-15T08:00:0{i}.000Z"),
            draft: Draft {
                event: if i == 0 { "agent.created" } else { "decision" }.into(),
                agent: "did:mesh:z6Mkj1MDZKcfx9AX5CeXHdysiGkRLzBbALyFuShD6wNeY1E3".into(),
                sponsor: "alice@company.com".into(),
                action: if i == 3 { "export" } else { "read" }.into(),
                arguments_sha256: if i == 0 {
                    String::new()
                } else {
                    "ab".repeat(32)
                },
                decision: if i == 3 { "deny" } else { "allow" }.into(),
                rule: if i == 3 {
                    "policy-for-data-analyst-agent/no-pii-export"
                } else {
                    ""
                }
                .into(),
                policy_version: "48d22fb75d4ab580".into(),
                trust_before: (i > 0).then_some(0.8),
                trust_after: (i > 0).then_some(if i == 3 { 0.74 } else { 0.81 }),
                trace_id: format!("4bf92f3577b34da6a3ce929d0e0e473{i}"),
                detail: json!({"note": format!("entry {i}"), "zeta": [i, null], "alpha": true}),
            },
        })
        .collect();
    let mut t = MemoryTree::new();
    let mut out = Vec::new();
    for e in &entries {
        let bytes = e.to_bytes();
        let leaf = leaf_hash(&bytes);
        t.push(leaf);
        out.push(
            json!({"canonical": String::from_utf8(bytes).expect("utf8"), "leaf_hash": hex(&leaf)}),
        );
    }
    let root = t.root();
    let signer = NoteSigner::new(
        "example.org/agentmesh/audit",
        KeyPair::from_seed(&[0x0d; 32]),
    )
    .expect("signer");
    let note = Checkpoint {
        origin: "example.org/agentmesh/audit".into(),
        size: 5,
        root,
    }
    .sign(&signer)
    .expect("sign");
    let incl: Vec<String> = tree::inclusion_proof(&t, 3, 5)
        .expect("proof")
        .iter()
        .map(|h| hex(h))
        .collect();
    let cons: Vec<String> = tree::consistency_proof(&t, 3, 5)
        .expect("proof")
        .iter()
        .map(|h| hex(h))
        .collect();
    json!({
        "description": "AgentMesh audit vectors (docs/wire/audit.md): canonical entries, leaf hashes SHA-256(0x00 || bytes), RFC 9162 root and proofs, and a C2SP signed-note checkpoint by the Ed25519 key with seed 0x0d repeated.",
        "entries": out,
        "root": hex(&root),
        "root_at_3": hex(&tree::root(&t, 3).expect("root")),
        "inclusion": {"index": 3, "size": 5, "path": incl},
        "consistency": {"old": 3, "new": 5, "proof": cons},
        "checkpoint": note,
        "verifier_key": signer.verifier().to_vkey(),
        "signer_seed": hex(&[0x0d; 32]),
    })
}

#[test]
fn committed_audit_vectors_match() {
    let generated = generate();
    if std::env::var_os("AGENTMESH_WRITE_VECTORS").is_some() {
        std::fs::write(
            path(),
            serde_json::to_string_pretty(&generated).expect("json") + "\n",
        )
        .expect("write");
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path()).expect("vectors")).expect("json");
    assert_eq!(
        committed, generated,
        "the audit wire format changed: regenerate on purpose"
    );
    for e in committed["entries"].as_array().expect("entries") {
        let bytes = e["canonical"].as_str().expect("s").as_bytes();
        Entry::from_bytes(bytes).expect("canonical entry parses");
        assert_eq!(hex(&leaf_hash(bytes)), e["leaf_hash"]);
    }
    let v = agentmesh_audit::note::NoteVerifier::parse_vkey(
        committed["verifier_key"].as_str().expect("vkey"),
    )
    .expect("vkey");
    let cp = verify_checkpoint(committed["checkpoint"].as_str().expect("note"), &v)
        .expect("checkpoint verifies");
    assert_eq!(hex(&cp.root), committed["root"]);
}
