//! End-to-end: the real `agentmesh` binary against a temporary mesh home.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

struct Home {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mesh");
        Self { _dir: dir, path }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("agentmesh").expect("binary built");
        // Never the developer's control plane: these commands act on the
        // test's home.
        c.env("AGENTMESH_HOME", &self.path)
            .env_remove("RUST_LOG")
            .env_remove("AGENTMESH_CONTROL_PLANE")
            .env_remove("AGENTMESH_CONTROL_PLANE_TOKEN");
        c
    }

    /// Runs, expects success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run");
        assert!(
            out.status.success(),
            "agentmesh {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Runs with --json, expects success, parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("JSON output")
    }

    /// Runs, expects exit code 1, returns stdout + stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run");
        assert_eq!(
            out.status.code(),
            Some(1),
            "agentmesh {args:?} should fail:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self._dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        format!("@{}", p.display())
    }

    /// The seed's world: alice, agent-a/b/c.
    fn seed(&self) {
        self.ok(&["init", "--trust-domain", "example.org"]);
        self.ok(&["sponsor", "create", "alice@company.com"]);
        self.ok(&[
            "agent",
            "create",
            "agent-a",
            "--sponsor",
            "alice@company.com",
            "--capabilities",
            "read:*,write:*,delete:*",
        ]);
        self.ok(&[
            "agent",
            "create",
            "agent-b",
            "--sponsor",
            "alice@company.com",
            "--capabilities",
            "read:*,write:reports",
            "--parent",
            "agent-a",
        ]);
        self.ok(&[
            "agent",
            "create",
            "agent-c",
            "--sponsor",
            "alice@company.com",
            "--capabilities",
            "read:public-data",
            "--parent",
            "agent-b",
        ]);
    }

    /// sponsor → A → B → C; returns (A→B token file, B→C token file).
    fn chain(&self) -> (String, String) {
        let ab = self.ok(&[
            "delegate",
            "--from",
            "agent-a",
            "--to",
            "agent-b",
            "--capabilities",
            "read:*,write:reports",
            "--ttl",
            "1h",
        ]);
        let ab = self.write("ab.token", &ab);
        let bc = self.ok(&[
            "delegate",
            "--from",
            "agent-b",
            "--to",
            "agent-c",
            "--capabilities",
            "read:public-data",
            "--token",
            &ab,
        ]);
        let bc = self.write("bc.token", &bc);
        (ab, bc)
    }
}

#[test]
fn quick_start_flow_and_seed_chain() {
    let h = Home::new();
    h.seed();
    let (_, bc) = h.chain();
    let v = h.json(&["delegation", "verify", &bc]);
    assert_eq!(v["valid"], true);
    assert_eq!(v["chain"]["holder_name"], "agent-c");
    assert_eq!(
        v["chain"]["capabilities"],
        serde_json::json!(["read:public-data"])
    );
    assert_eq!(v["chain"]["links"].as_array().expect("links").len(), 3);
    let text = h.ok(&["delegation", "verify", &bc]);
    assert!(text.starts_with("VALID"), "{text}");
    assert!(text.contains("may: read:public-data"), "{text}");

    let agents = h.json(&["agent", "list"]);
    assert_eq!(agents["agents"].as_array().expect("agents").len(), 3);
    let show = h.json(&["agent", "show", "agent-c"]);
    assert_eq!(show["attestation_valid"], true);
    assert_eq!(show["parent_name"], "agent-b");
    assert_eq!(
        show["agent"]["spiffe_id"],
        "spiffe://example.org/agent/agent-c"
    );
    let status = h.json(&["status"]);
    assert_eq!(status["agents"]["active"], 3);
    assert_eq!(status["sponsors"], 1);

    // Inspect decodes without verifying.
    let inspect = h.json(&["delegation", "inspect", &bc]);
    assert_eq!(inspect["verified"], false);
    assert_eq!(
        inspect["links"][2]["capabilities"],
        serde_json::json!(["read:public-data"])
    );
}

#[test]
fn every_failure_is_rejected_with_its_own_reason() {
    let h = Home::new();
    h.seed();
    let (ab, bc) = h.chain();

    // Widening at creation.
    let out = h.fails(&[
        "delegate",
        "--from",
        "agent-b",
        "--to",
        "agent-c",
        "--capabilities",
        "write:*",
        "--token",
        &ab,
    ]);
    assert!(out.contains("widens the delegation: write:*"), "{out}");

    // Expired: verify one day later.
    let tomorrow = (agentmesh_store::unix_now() + 86_400).to_string();
    let out = h.fails(&["delegation", "verify", &bc, "--at", &tomorrow]);
    assert!(out.contains("INVALID") && out.contains("expired"), "{out}");

    // Depth: B gets max depth 0 and cannot delegate further.
    let shallow = h.ok(&[
        "delegate",
        "--from",
        "agent-a",
        "--to",
        "agent-b",
        "--capabilities",
        "read:*",
        "--max-depth",
        "0",
    ]);
    let shallow = h.write("shallow.token", &shallow);
    let out = h.fails(&[
        "delegate",
        "--from",
        "agent-b",
        "--to",
        "agent-c",
        "--capabilities",
        "read:public-data",
        "--token",
        &shallow,
    ]);
    assert!(out.contains("max depth is 0"), "{out}");

    // Wrong holder: agent-b signs a proof for C's token.
    let digest = "11".repeat(32);
    let out = h.fails(&[
        "delegation",
        "prove",
        "--agent",
        "agent-b",
        "--token",
        &bc,
        "--request-digest",
        &digest,
    ]);
    assert!(
        out.contains("only its audience can prove possession"),
        "{out}"
    );
    let proof = h.ok(&[
        "delegation",
        "prove",
        "--agent",
        "agent-c",
        "--token",
        &bc,
        "--request-digest",
        &digest,
    ]);
    let v = h.json(&[
        "delegation",
        "verify",
        &bc,
        "--proof",
        proof.trim(),
        "--request-digest",
        &digest,
    ]);
    assert_eq!(v["holder_proof"]["valid"], true);
    let other = "22".repeat(32);
    let out = h.fails(&[
        "delegation",
        "verify",
        &bc,
        "--proof",
        proof.trim(),
        "--request-digest",
        &other,
    ]);
    assert!(out.contains("does not hold the audience key"), "{out}");

    // Revoking the middle link (A→B) kills B→C.
    h.ok(&["delegation", "revoke", &ab]);
    let out = h.fails(&["delegation", "verify", &bc]);
    assert!(out.contains("link 1") && out.contains("revoked"), "{out}");
    let revoked = h.json(&["delegation", "revoked"]);
    assert_eq!(revoked["revoked_links"].as_array().expect("list").len(), 1);
}

#[test]
fn revoking_an_agent_revokes_its_descendants() {
    let h = Home::new();
    h.seed();
    let (_, bc) = h.chain();
    let v = h.json(&["agent", "revoke", "agent-a", "--reason", "compromised"]);
    assert_eq!(
        v["revoked"],
        serde_json::json!(["agent-a", "agent-b", "agent-c"])
    );
    let out = h.fails(&["delegation", "verify", &bc]);
    assert!(out.contains("Revoked"), "{out}");
    let out = h.fails(&["agent", "reactivate", "agent-b"]);
    assert!(out.contains("permanent"), "{out}");
    let list = h.json(&["agent", "list", "--status", "revoked"]);
    assert_eq!(list["agents"].as_array().expect("agents").len(), 3);
}

#[test]
fn suspend_and_reactivate() {
    let h = Home::new();
    h.seed();
    let (_, bc) = h.chain();
    h.ok(&["agent", "suspend", "agent-b", "--reason", "investigation"]);
    let out = h.fails(&["delegation", "verify", &bc]);
    assert!(out.contains("Suspended"), "{out}");
    h.ok(&["agent", "reactivate", "agent-b"]);
    h.ok(&["delegation", "verify", &bc]);
}

#[test]
fn registration_errors_are_clear() {
    let h = Home::new();
    let out = h.fails(&["agent", "list"]);
    assert!(out.contains("run `agentmesh init`"), "{out}");
    h.seed();
    let out = h.fails(&[
        "agent",
        "create",
        "agent-a",
        "--sponsor",
        "alice@company.com",
        "--capabilities",
        "read:x",
    ]);
    assert!(out.contains("agent name `agent-a` is taken"), "{out}");
    let out = h.fails(&[
        "agent",
        "create",
        "x",
        "--sponsor",
        "bob@company.com",
        "--capabilities",
        "read:x",
    ]);
    assert!(out.contains("no sponsor `bob@company.com`"), "{out}");
    let out = h.fails(&[
        "agent",
        "create",
        "x",
        "--sponsor",
        "alice@company.com",
        "--capabilities",
        "write:*",
        "--parent",
        "agent-b",
    ]);
    assert!(out.contains("does not hold write:*"), "{out}");
    let out = h.fails(&[
        "agent",
        "create",
        "x",
        "--sponsor",
        "alice@company.com",
        "--capabilities",
        "read:data*",
    ]);
    assert!(out.contains("`*` must stand alone"), "{out}");
    let out = h.fails(&["sponsor", "create", "alice@company.com"]);
    assert!(out.contains("already exists"), "{out}");
    let out = h.fails(&["sponsor", "create", "not an email"]);
    assert!(out.contains("not an e-mail address"), "{out}");
    let out = h.fails(&["init"]);
    assert!(out.contains("already exists"), "{out}");
    // JSON errors are JSON.
    let out = h
        .cmd()
        .args(["--json", "agent", "show", "ghost"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert!(
        v["error"]
            .as_str()
            .expect("message")
            .contains("no agent `ghost`")
    );
}

#[test]
fn bad_tokens_and_dids_are_errors_not_panics() {
    let h = Home::new();
    h.seed();
    let (_, bc) = h.chain();
    let text = std::fs::read_to_string(bc.trim_start_matches('@')).expect("token");
    let text = text.trim();
    for cut in [7, text.len() / 2, text.len() - 1] {
        let out = h.fails(&["delegation", "verify", &text[..cut]]);
        assert!(out.contains("INVALID"), "{out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    let big = h.write("big.token", &format!("amdt1.{}", "A".repeat(20_000)));
    let out = h.fails(&["delegation", "verify", &big]);
    assert!(out.contains("limit"), "{out}");
    let out = h.fails(&["delegation", "verify", "not-a-token"]);
    assert!(out.contains("not an AgentMesh delegation token"), "{out}");
    let out = h.fails(&["did", "resolve", "did:mesh:0123456789abcdef"]);
    assert!(out.contains("base58btc"), "{out}");
    let out = h.fails(&[
        "did",
        "resolve",
        "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169",
    ]);
    assert!(out.contains("only Ed25519"), "{out}");
    let out = h.fails(&["did", "resolve", "did:web:example.com"]);
    assert!(out.contains("not supported"), "{out}");
    let doc = h.json(&[
        "did",
        "resolve",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
    ]);
    assert_eq!(doc["verificationMethod"][0]["type"], "Multikey");
    let out = h.fails(&[
        "delegate", "--from", "agent-a", "--to", "agent-b", "--ttl", "soon",
    ]);
    assert!(out.contains("not a duration"), "{out}");
}

#[test]
fn export_and_import_keys() {
    let h = Home::new();
    h.seed();
    let doc = h.json(&["agent", "export", "agent-a"]);
    assert_eq!(doc["verificationMethod"][0]["type"], "Multikey");
    assert_eq!(doc["alsoKnownAs"][1], "spiffe://example.org/agent/agent-a");
    let jwk = h.json(&["agent", "export", "agent-a", "--format", "jwk"]);
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert!(
        jwk.get("d").is_none(),
        "export must never include the private key"
    );

    // Import an externally held key (here: a fresh key, public JWK only).
    let key = agentmesh_identity::KeyPair::generate().expect("key");
    let public =
        serde_json::to_string(&agentmesh_identity::Jwk::public(key.public())).expect("json");
    let file = h.write("ext.jwk", &public);
    let v = h.json(&[
        "agent",
        "import",
        "external",
        "--sponsor",
        "alice@company.com",
        "--capabilities",
        "read:*",
        "--jwk",
        file.trim_start_matches('@'),
    ]);
    assert_eq!(v["agent"]["did"], key.did().to_string());
    assert_eq!(v["agent"]["key_custody"], "external");
    // A private JWK is refused.
    let private = serde_json::to_string(&agentmesh_identity::Jwk::private(&key)).expect("json");
    let file = h.write("priv.jwk", &private);
    let out = h.fails(&[
        "agent",
        "import",
        "external2",
        "--sponsor",
        "alice@company.com",
        "--capabilities",
        "read:*",
        "--jwk",
        file.trim_start_matches('@'),
    ]);
    assert!(out.contains("private key"), "{out}");
    // A wrong key type is refused.
    let file = h.write("ec.jwk", r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#);
    let out = h.fails(&[
        "agent",
        "import",
        "external3",
        "--sponsor",
        "alice@company.com",
        "--capabilities",
        "read:*",
        "--jwk",
        file.trim_start_matches('@'),
    ]);
    assert!(out.contains("only OKP"), "{out}");
}

#[cfg(unix)]
#[test]
fn world_readable_keys_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    h.seed();
    let key: &Path = &h.path.join("keys/sponsors/alice@company.com.key");
    assert_eq!(
        std::fs::metadata(key).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = h.fails(&[
        "agent",
        "create",
        "x",
        "--sponsor",
        "alice@company.com",
        "--capabilities",
        "read:x",
    ]);
    assert!(
        out.contains("readable by group or others") && out.contains("chmod 600"),
        "{out}"
    );
}

#[test]
fn help_reads_well() {
    let h = Home::new();
    let out = h.ok(&["--help"]);
    for cmd in ["init", "sponsor", "agent", "delegate", "delegation", "did"] {
        assert!(out.contains(cmd), "--help lists {cmd}: {out}");
    }
    let out = h.ok(&["delegate", "--help"]);
    assert!(
        out.contains("--max-depth") && out.contains("--token"),
        "{out}"
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn policy_lint_test_and_explain() {
    let h = Home::new();
    let seed = repo().join("examples/policies/seed.yaml");
    let seed = seed.to_str().expect("path");
    let cases = repo().join("examples/policies/seed.cases.yaml");
    let cases = cases.to_str().expect("path");
    let out = h.ok(&["policy", "lint", seed]);
    assert!(out.starts_with("ok: ") && out.contains("3 rules"), "{out}");
    let out = h.ok(&["policy", "test", seed, "--cases", cases]);
    assert!(out.contains("16/16 cases passed"), "{out}");

    // A broken policy: diagnostics with file:line:col, exit 1.
    let bad = h.write("bad.yaml", "agent: x\nrules:\n  - name: r\n    condition: \"agent.trust_scor >= 0.6\"\n    action: allow\n");
    let bad = bad.trim_start_matches('@');
    let out = h.fails(&["policy", "lint", bad]);
    assert!(
        out.contains("bad.yaml:4:17: error: rule `r`: unknown attribute `agent.trust_scor`"),
        "{out}"
    );
    let v: Value = {
        let o = h
            .cmd()
            .args(["--json", "policy", "lint", bad])
            .output()
            .expect("run");
        serde_json::from_slice(&o.stdout).expect("json")
    };
    assert_eq!(v["files"][0]["diagnostics"][0]["line"], 4);

    // A case that fails makes `policy test` exit 1.
    let wrong = h.write(
        "wrong.cases.yaml",
        "cases:\n  - name: low trust is allowed (wrong)\n    request: {agent: {name: data-analyst-agent, sponsor: alice@company.com, trust_score: 0.1}, action: {type: read}}\n    expect: allow\n",
    );
    let out = h.fails(&[
        "policy",
        "test",
        seed,
        "--cases",
        wrong.trim_start_matches('@'),
    ]);
    assert!(
        out.contains("FAIL")
            && out.contains("expected allow, got deny")
            && out.contains("0/1 cases passed"),
        "{out}"
    );

    let req = h.write(
        "req.json",
        r#"{"agent":{"name":"data-analyst-agent","sponsor":"alice@company.com","trust_score":0.9},"action":{"type":"export"},"data":{"contains_pii":true}}"#,
    );
    let out = h.ok(&["policy", "explain", seed, "--request", &req]);
    assert!(
        out.starts_with("decision: DENY  (rule_deny), rule `no-pii-export`"),
        "{out}"
    );
    assert!(out.contains("data.contains_pii  →  true"), "{out}");
    let v = h.json(&["policy", "explain", seed, "--request", &req]);
    assert_eq!(v["decision"]["outcome"], "deny");
    assert_eq!(v["rules"].as_array().expect("rules").len(), 3);
    // A request with an unknown attribute is rejected, not ignored.
    let typo = h.write("typo.json", r#"{"agent":{"trust_scor":0.9}}"#);
    let out = h.fails(&["policy", "explain", seed, "--request", &typo]);
    assert!(out.contains("unknown field `trust_scor`"), "{out}");
    let schema = h.json(&["policy", "schema"]);
    assert_eq!(schema["title"], "AgentMesh policy file");
}

#[test]
fn audit_records_mutations_proves_and_verifies_offline() {
    let h = Home::new();
    h.seed();
    let (_, bc) = h.chain();
    h.ok(&["delegation", "revoke", &bc]);
    let tail = h.json(&["audit", "tail", "-n", "100"]);
    let events: Vec<String> = tail["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["entry"]["event"].as_str().expect("event").to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "sponsor.created",
            "agent.created",
            "agent.created",
            "agent.created",
            "delegation.issued",
            "delegation.issued",
            "delegation.revoked"
        ]
    );
    let out = h.ok(&["audit", "verify"]);
    assert!(
        out.contains("7 entries verified") && out.trim_end().ends_with("OK"),
        "{out}"
    );

    // A proof checked by a third party with only the proof file and the key.
    let proof = h.ok(&["audit", "proof", "4"]);
    let proof_file = h.write("proof.json", &proof);
    let vkey = h.ok(&["audit", "pubkey"]);
    let mut third = h.cmd();
    third.env("AGENTMESH_HOME", "/nonexistent/home");
    let out = third
        .args([
            "audit",
            "verify-proof",
            proof_file.trim_start_matches('@'),
            "--pubkey",
            vkey.trim(),
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("VALID: entry 4"),
        "{stdout}"
    );
    // A doctored entry in the proof fails.
    let doctored = proof.replace("delegation.issued", "delegation.ignored");
    let doctored = h.write("doctored.json", &doctored);
    let out = h.fails(&[
        "audit",
        "verify-proof",
        doctored.trim_start_matches('@'),
        "--pubkey",
        vkey.trim(),
    ]);
    assert!(out.contains("INVALID"), "{out}");

    let export = h.ok(&["audit", "export", "--format", "cloudevents"]);
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["specversion"], "1.0");
    assert_eq!(lines[6]["type"], "dev.agentmesh.audit.delegation.revoked");

    // Flip one byte of the stored log: `audit verify` finds it and names the index.
    let seg = h.path.join("audit/segments/00000000000000000000.seg");
    let mut data = std::fs::read(&seg).expect("segment");
    let pos = data.len() / 2;
    data[pos] ^= 0x01;
    std::fs::write(&seg, &data).expect("tamper");
    let out = h.fails(&["audit", "verify"]);
    assert!(out.contains("FAILED at index"), "{out}");
}

#[test]
fn trust_commands_read_real_state_and_recompute_from_the_audit() {
    let h = Home::new();
    h.seed();
    let show = h.json(&["trust", "show", "agent-c"]);
    assert_eq!(show["events"], 0);
    assert_eq!(
        show["trust"]["uncertainty"], 1.0,
        "a new agent is visibly uncertain"
    );
    for _ in 0..4 {
        h.ok(&["trust", "record", "agent-c", "--event", "task-success"]);
    }
    let out = h.ok(&["trust", "endorse", "--from", "agent-b", "--to", "agent-c"]);
    assert!(out.contains("agent-b endorsed agent-c"), "{out}");
    let out = h.fails(&["trust", "endorse", "--from", "agent-c", "--to", "agent-c"]);
    assert!(out.contains("cannot endorse itself"), "{out}");
    let v = h.json(&[
        "trust",
        "record",
        "agent-c",
        "--event",
        "violation",
        "--severity",
        "critical",
        "--reason",
        "exfiltration",
    ]);
    assert_eq!(
        v["suspended"], true,
        "one critical violation drops a young agent below the floor"
    );
    let explain = h.ok(&["trust", "explain", "agent-c"]);
    assert!(
        explain.contains("violation (Critical): exfiltration") && explain.contains("largest drop"),
        "{explain}"
    );
    assert!(explain.contains("Suspended"), "{explain}");
    let history = h.ok(&["trust", "history", "agent-c"]);
    assert!(history.contains('▁') || history.contains('▂'), "{history}");
    let list = h.json(&["trust", "list", "--below", "0.3"]);
    assert_eq!(list["agents"].as_array().expect("agents").len(), 1);
    let out = h.ok(&["trust", "recompute", "--from-audit"]);
    assert!(out.starts_with("OK: 6 trust events"), "{out}");
    // The suspension is real: C's delegation no longer verifies.
    let status = h.json(&["agent", "show", "agent-c"]);
    assert_eq!(status["agent"]["status"], "suspended");
    // Trust events are audit leaves covered by signed checkpoints.
    let verify = h.ok(&["audit", "verify"]);
    assert!(verify.trim_end().ends_with("OK"), "{verify}");
}

#[test]
fn compliance_evaluate_prints_the_seed_example_and_reports_render() {
    let h = Home::new();
    let out = h.ok(&[
        "compliance",
        "evaluate",
        "--action",
        "access_patient_record",
        "--data",
        "phi",
        "--frameworks",
        "eu_ai_act,hipaa,soc2",
    ]);
    let lines: Vec<String> = out
        .lines()
        .skip(1)
        .take(3)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            "eu_ai_act high_risk_system → human oversight",
            "hipaa phi_access → minimum necessary + audit log",
            "soc2 data_access → access control + logging",
        ],
        "{out}"
    );
    let v = h.json(&[
        "compliance",
        "evaluate",
        "--action",
        "access_patient_record",
        "--data",
        "phi",
        "--frameworks",
        "eu_ai_act,hipaa,soc2",
    ]);
    assert_eq!(
        v["frameworks"][0]["classification"]["citation"],
        "Art. 6(2) and Annex III point 5(a)"
    );
    let out = h.fails(&[
        "compliance",
        "evaluate",
        "--action",
        "x",
        "--frameworks",
        "pci",
    ]);
    assert!(out.contains("unknown compliance framework `pci`"), "{out}");
    let cats = h.ok(&["compliance", "catalogues"]);
    for needle in [
        "eu_ai_act",
        "45 CFR §164.502(b)",
        "TSC CC8.1",
        "Art. 22(3)",
        "ASI10",
    ] {
        assert!(cats.contains(needle), "{needle}");
    }
    // An override directory with a broken catalogue is rejected with the reason.
    let bad = h._dir.path().join("cats");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("hipaa.yaml"), "framework: hipaa\ntitle: t\nversion: \"1\"\nsource: s\ncontrols:\n  - {id: x, title: X, citation: '', when: {always: true}, duties: [d]}\n").expect("write");
    let out = h.fails(&[
        "compliance",
        "catalogues",
        "--catalogues",
        bad.to_str().expect("path"),
    ]);
    assert!(out.contains("no citation"), "{out}");

    // A report from this mesh's real audit log.
    h.seed();
    let (_, bc) = h.chain();
    h.ok(&["delegation", "revoke", &bc]);
    let file = h._dir.path().join("soc2.html");
    let out = h.ok(&[
        "compliance",
        "report",
        "--framework",
        "soc2",
        "--format",
        "html",
        "-o",
        file.to_str().expect("path"),
    ]);
    assert!(out.starts_with("Wrote"), "{out}");
    let html = std::fs::read_to_string(&file).expect("report");
    assert!(
        html.contains("<svg") && html.contains("CC6.2") && html.contains("inclusion proof"),
        "report lacks content"
    );
    let json = h.json(&[
        "compliance",
        "report",
        "--framework",
        "soc2",
        "--format",
        "json",
    ]);
    let cc62 = json["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .find(|c| c["id"] == "CC6.2")
        .expect("CC6.2");
    assert_eq!(
        cc62["evidence"]["count"], 4,
        "one sponsor and three agents were registered"
    );
}

#[test]
fn mcp_install_edits_a_client_config_with_a_backup_and_refuses_to_clobber() {
    let h = Home::new();
    h.seed();
    let dir = h._dir.path();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "agent: agent-a\nrules: []\n").expect("policy");
    let cfg = dir.join("claude_desktop_config.json");
    std::fs::write(
        &cfg,
        r#"{"mcpServers": {"other": {"command": "x"}}, "theme": "dark"}"#,
    )
    .expect("config");
    let p = policy.display().to_string();
    let c = cfg.display().to_string();
    let args = [
        "mcp",
        "install",
        "--client",
        "claude-desktop",
        "--name",
        "fs",
        "--agent",
        "agent-a",
        "--policy",
        &p,
        "--config-path",
        &c,
        "--",
        "npx",
        "-y",
        "server-fs",
        "/data",
    ];
    let out = h.json(&args);
    let backup = out["backup"].as_str().expect("a backup was made");
    assert!(
        std::fs::read_to_string(backup)
            .expect("backup")
            .contains("\"other\"")
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).expect("cfg")).expect("json");
    assert_eq!(v["theme"], "dark", "other settings are kept");
    assert_eq!(v["mcpServers"]["other"]["command"], "x");
    let entry = &v["mcpServers"]["fs"];
    assert!(
        entry["command"]
            .as_str()
            .expect("command")
            .ends_with("agentmesh")
    );
    let a: Vec<&str> = entry["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(&a[2..6], ["mcp", "wrap", "--agent", "agent-a"]);
    assert_eq!(&a[a.len() - 4..], ["npx", "-y", "server-fs", "/data"]);
    // The same name again: refused without --force, nothing changes.
    let before = std::fs::read_to_string(&cfg).expect("cfg");
    let e = h.fails(&args);
    assert!(e.contains("already has a server named `fs`"), "{e}");
    assert_eq!(std::fs::read_to_string(&cfg).expect("cfg"), before);
    // A config that is not JSON is left alone.
    std::fs::write(&cfg, "{ not json").expect("garbage");
    let e = h.fails(&args);
    assert!(e.contains("not valid JSON"), "{e}");
    assert_eq!(std::fs::read_to_string(&cfg).expect("cfg"), "{ not json");
    // VS Code's format, dry run: nothing written.
    let vs = dir.join("vscode-mcp.json");
    let vsc = vs.display().to_string();
    let dry = h.json(&[
        "mcp",
        "install",
        "--client",
        "vscode",
        "--name",
        "fs",
        "--agent",
        "agent-a",
        "--policy",
        &p,
        "--config-path",
        &vsc,
        "--dry-run",
        "--",
        "server-fs",
    ]);
    assert_eq!(dry["would_write"]["servers"]["fs"]["type"], "stdio");
    assert!(!vs.exists());
}
