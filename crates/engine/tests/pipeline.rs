//! The pipeline end to end over a real mesh home: credentials and
//! delegation tokens on real signatures, decisions on the seed-style policy
//! with arguments, every decision an audit leaf with the arguments' digest,
//! trust events that recompute exactly, and approvals decided through the
//! registry as `agentmesh approvals` does.

use agentmesh_capability::{Capability, parse_list};
use agentmesh_delegation::{AgentStatus, HolderProof, Token};
use agentmesh_engine::arguments::PathRules;
use agentmesh_engine::{
    AuthError, Call, DECISION_EVENT, Engine, EngineConfig, Presented, RESULT_EVENT, credential,
};
use agentmesh_policy::schema::DataAttrs;
use agentmesh_policy::{Outcome, PolicyHandle, PolicySet, Reason, arguments_digest};
use agentmesh_store::{ApprovalStatus, KeyKind, Mesh, MeshHome, NewAgent, NewDelegation, unix_now};
use serde_json::json;
use std::time::Duration;

const POLICY: &str = r#"
version: "1.0"
agents: ["analyst", "helper"]
sponsor: "alice@company.com"
default_action: deny
rules:
  - name: no-system-files
    condition: "action.tool == 'fs.read_file' and request.arguments.path.startsWith('/etc/')"
    action: deny
    severity: low
    priority: 10
  - name: reads
    condition: "action.tool == 'fs.read_file'"
    action: allow
  - name: deletes-need-a-human
    condition: "action.tool == 'fs.delete_file'"
    action: require_approval
    approvers: ["security@company.com"]
    approval_ttl: 2s
  - name: search-quota
    condition: "action.tool == 'web.search'"
    action: allow
    limit: "2/minute"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    mesh: Mesh,
    engine: Engine,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = unix_now();
    let home = MeshHome::init(&dir.path().join("home"), "example.org", now)
        .await
        .expect("init");
    let mesh = Mesh::open(home).await.expect("open");
    mesh.create_sponsor("security@company.com", None, now)
        .await
        .expect("approver");
    mesh.create_sponsor("alice@company.com", None, now)
        .await
        .expect("sponsor");
    for (name, caps, parent) in [
        ("analyst", "call:fs:*,call:web:*", None),
        ("helper", "call:fs:read_file", Some("analyst")),
    ] {
        mesh.create_agent(
            NewAgent {
                name: name.into(),
                sponsor: "alice@company.com".into(),
                capabilities: parse_list(caps).expect("caps"),
                parent: parent.map(str::to_owned),
                expires_at: None,
            },
            now,
        )
        .await
        .expect("agent");
    }
    let set = PolicySet::from_yaml(POLICY, "test.yaml").expect("policy");
    let engine = Engine::start(
        mesh.clone(),
        PolicyHandle::new(set),
        EngineConfig {
            audience: "gw-test".into(),
            approval_poll: Duration::from_millis(20),
            ..EngineConfig::default()
        },
    )
    .await
    .expect("engine");
    Fixture {
        _dir: dir,
        mesh,
        engine,
    }
}

fn call(tool: &str, args: serde_json::Value) -> Call {
    let (server, name) = tool.split_once('.').expect("namespaced");
    Call {
        protocol: "mcp",
        method: "tools/call".into(),
        kind: "tool_call",
        target: tool.into(),
        tool: tool.into(),
        capability: Capability::parse(&format!("call:{server}:{name}")).expect("cap"),
        arguments: Some(args),
        data: DataAttrs::default(),
        upstream: Some(server.into()),
        trace_id: None,
        note: None,
    }
}

async fn durable(engine: &Engine, index: u64) -> agentmesh_audit::StoredEntry {
    for _ in 0..500 {
        if engine.audit().expect("holds the log").size() > index {
            return engine
                .audit()
                .expect("holds the log")
                .entry(index)
                .expect("entry");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("audit entry {index} never became durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_follow_policy_and_arguments_and_are_audited() {
    let f = fixture().await;
    let p = f.engine.local_principal("analyst").expect("principal");

    let args = json!({"path": "/srv/data/report.csv"});
    let v = f.engine.decide(&p, &call("fs.read_file", args.clone()));
    assert_eq!(v.decision.outcome, Outcome::Allow, "{}", v.decision.message);
    let e = durable(&f.engine, v.audit_index.expect("recorded")).await;
    assert_eq!(e.entry.draft.event, DECISION_EVENT);
    assert_eq!(e.entry.draft.decision, "allow");
    assert_eq!(e.entry.draft.action, "fs.read_file");
    assert_eq!(
        e.entry.draft.arguments_sha256,
        arguments_digest(Some(&args))
    );
    assert_eq!(e.entry.draft.agent, p.agent.did_text.as_ref());
    assert!(
        e.entry.draft.detail.get("trust").is_some(),
        "carries its trust event"
    );

    // A path the normaliser fixes is judged as what it really is.
    let mut sneaky = json!({"path": "/srv/../etc//passwd"});
    let changed = PathRules::default().apply(&mut sneaky).expect("normalised");
    assert_eq!(changed.len(), 1);
    let v = f.engine.decide(&p, &call("fs.read_file", sneaky));
    assert_eq!(v.decision.outcome, Outcome::Deny);
    assert_eq!(v.decision.rule.as_deref(), Some("no-system-files"));
    let e = durable(&f.engine, v.audit_index.expect("recorded")).await;
    assert_eq!(e.entry.draft.decision, "deny");
    assert!(
        e.entry.draft.rule.ends_with("/no-system-files"),
        "{}",
        e.entry.draft.rule
    );

    assert!(
        v.trust_after > 0.3,
        "a low-severity denial does not suspend"
    );
    // Capability: the helper holds only fs.read_file.
    let h = f.engine.local_principal("helper").expect("helper");
    let v = f.engine.decide(&h, &call("web.search", json!({"q": "x"})));
    assert_eq!(v.decision.reason, Reason::CapabilityNotHeld);

    // Rate limit: 2/minute.
    let s1 = f.engine.decide(&p, &call("web.search", json!({"q": 1})));
    let s2 = f.engine.decide(&p, &call("web.search", json!({"q": 2})));
    let s3 = f.engine.decide(&p, &call("web.search", json!({"q": 3})));
    assert!(s1.allowed(), "{}", s1.decision.message);
    assert!(s2.allowed(), "{}", s2.decision.message);
    assert_eq!(s3.decision.outcome, Outcome::RateLimited);

    // Visibility for lists: a tool the caller lacks the capability for is
    // hidden; a tool whose rules read the arguments stays visible.
    assert!(!f.engine.visible(&h, &call("web.search", json!(null))));
    assert!(f.engine.visible(&h, &call("fs.read_file", json!(null))));

    // The outcome of an allowed call is a trust event of its own.
    f.engine
        .record_result(&p, &s1, false, json!({"is_error": true}));

    // Suspension takes effect on the next call, without re-authenticating.
    f.mesh
        .set_status("analyst", AgentStatus::Suspended, Some("test"), unix_now())
        .await
        .expect("suspend");
    f.engine.refresh().await.expect("refresh");
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/srv/x"})));
    assert_eq!(v.decision.reason, Reason::AgentInactive);
    assert!(matches!(
        f.engine.local_principal("analyst"),
        Err(AuthError::Inactive(_))
    ));

    // Every trust event recomputes exactly from the audit log.
    f.engine.flush_trust().await.expect("flush");
    let last = v.audit_index;
    durable(&f.engine, last.expect("recorded")).await;
    let size = f.engine.audit().expect("holds the log").size();
    let mut saw_result = false;
    for i in 0..size {
        if f.engine
            .audit()
            .expect("holds the log")
            .entry(i)
            .expect("entry")
            .entry
            .draft
            .event
            == RESULT_EVENT
        {
            saw_result = true;
        }
    }
    assert!(saw_result, "the call result was recorded");
    let report = f.mesh.recompute_trust().await.expect("recompute");
    assert!(report.ok(), "{report:?}");
    assert!(report.events >= 7, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_delegation_tokens_authenticate_and_fail_closed() {
    let f = fixture().await;
    let home = f.mesh.home();
    let mesh_key = home.mesh_key().expect("mesh key");
    let analyst = f.mesh.agent("analyst").await.expect("analyst");
    let now = unix_now();

    let (good, claims) = credential::issue(&mesh_key, &analyst.did, "gw-test", 600, now);
    let p = f
        .engine
        .authenticate(Presented::Credential(&good))
        .expect("valid credential");
    assert_eq!(p.agent.name.as_ref(), "analyst");
    assert_eq!(p.credential_id.as_deref(), Some(claims.id.as_str()));

    let (other_aud, _) = credential::issue(&mesh_key, &analyst.did, "elsewhere", 600, now);
    let e = f
        .engine
        .authenticate(Presented::Credential(&other_aud))
        .expect_err("wrong audience");
    assert_eq!(e.code(), "credential_wrong_audience");
    let forged_key = agentmesh_identity::KeyPair::from_seed(&[3; 32]);
    let (forged, _) = credential::issue(&forged_key, &analyst.did, "*", 600, now);
    assert_eq!(
        f.engine
            .authenticate(Presented::Credential(&forged))
            .expect_err("forged")
            .code(),
        "credential_bad_signature"
    );

    // Delegation: alice → analyst → helper, narrowed to fs.read_file.
    let root = f
        .mesh
        .delegate(
            NewDelegation {
                from: "alice@company.com".into(),
                to: "analyst".into(),
                capabilities: Some(parse_list("call:fs:*").expect("caps")),
                ttl_secs: 600,
                max_depth: Some(2),
                parent_token: None,
            },
            now,
        )
        .await
        .expect("root");
    let token = f
        .mesh
        .delegate(
            NewDelegation {
                from: "analyst".into(),
                to: "helper".into(),
                capabilities: Some(parse_list("call:fs:read_file").expect("caps")),
                ttl_secs: 600,
                max_depth: None,
                parent_token: Some(root.as_str().to_owned()),
            },
            now,
        )
        .await
        .expect("delegated");
    f.engine.refresh().await.expect("refresh");
    let helper_key = home.read_key(KeyKind::Agent("helper")).expect("helper key");
    let digest = [42u8; 32];
    let proof = HolderProof::create(
        &helper_key,
        &Token::parse(token.as_str()).expect("t"),
        &digest,
        now,
    );
    let proof_text = proof.to_text();
    let p = f
        .engine
        .authenticate(Presented::Delegation {
            token: token.as_str(),
            proof: &proof_text,
            request_digest: digest,
        })
        .expect("delegated principal");
    assert_eq!(p.delegation_depth, 1);
    assert_eq!(
        p.capability_names.as_ref(),
        ["call:fs:read_file".to_owned()]
    );
    // The same proof again is a replay.
    let replay = f
        .engine
        .authenticate(Presented::Delegation {
            token: token.as_str(),
            proof: &proof_text,
            request_digest: digest,
        })
        .expect_err("replay");
    assert_eq!(replay.code(), "holder_proof_rejected");
    // A proof by someone else's key.
    let wrong = HolderProof::create(
        &mesh_key,
        &Token::parse(token.as_str()).expect("t"),
        &digest,
        now,
    );
    assert!(
        f.engine
            .authenticate(Presented::Delegation {
                token: token.as_str(),
                proof: &wrong.to_text(),
                request_digest: digest,
            })
            .is_err()
    );
    // Revoking the middle agent kills the chain on the next refresh.
    f.mesh
        .revoke_agent("analyst", "test", now)
        .await
        .expect("revoke");
    f.engine.refresh().await.expect("refresh");
    let proof2 = HolderProof::create(
        &helper_key,
        &Token::parse(token.as_str()).expect("t"),
        &[7; 32],
        now,
    );
    assert!(
        f.engine
            .authenticate(Presented::Delegation {
                token: token.as_str(),
                proof: &proof2.to_text(),
                request_digest: [7; 32],
            })
            .is_err(),
        "a revoked link in the chain fails closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_calls_complete_after_approval_and_fail_after_expiry() {
    let f = fixture().await;
    let p = f.engine.local_principal("analyst").expect("principal");
    let c = call("fs.delete_file", json!({"path": "/srv/old.csv"}));
    let held = f.engine.decide(&p, &c);
    let id = held.held().expect("held for approval").to_owned();

    let engine = f.engine.clone();
    let (p2, c2) = (p.clone(), c.clone());
    let waiter = tokio::spawn(async move { engine.await_approval(&p2, &c2, held).await });
    // The approval shows up in the shared registry; a human approves it.
    let registry = f.mesh.registry();
    let mut found = None;
    for _ in 0..100 {
        if let Some(r) = registry.approval(&id).await.expect("read") {
            found = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let record = found.expect("approval stored");
    assert_eq!(record.approvers, ["security@company.com"]);
    // The approver decides with its own key, over this exact call.
    let security = f
        .mesh
        .home()
        .read_key(KeyKind::Sponsor("security@company.com"))
        .expect("approver key");
    let statement = |decision| agentmesh_policy::DecisionStatement {
        approval: &record.id,
        decision,
        by: "security@company.com",
        caller: &record.caller,
        action: &record.action,
        arguments_sha256: &record.arguments_sha256,
        policy_version: &record.policy_version,
        at: unix_now(),
    };
    let proof = statement("approved").sign(&security);
    registry
        .decide_approval(
            &id,
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            Some("security@company.com"),
            None,
            Some(&proof),
            unix_now(),
        )
        .await
        .expect("approve");
    let done = waiter.await.expect("joined");
    assert_eq!(
        done.decision.outcome,
        Outcome::Allow,
        "{}",
        done.decision.message
    );
    assert_eq!(done.decision.reason, Reason::ApprovalGranted);
    let e = durable(&f.engine, done.audit_index.expect("recorded")).await;
    assert_eq!(e.entry.draft.detail["approved_by"], "security@company.com");
    assert_eq!(
        registry
            .approval(&id)
            .await
            .expect("read")
            .expect("row")
            .state,
        ApprovalStatus::Used
    );

    // A row that merely says "approved by security@…" (no signature, or
    // one by another key) lets nothing through.
    for forged in [
        None,
        Some(statement("approved").sign(&f.mesh.home().mesh_key().expect("mesh key"))),
    ] {
        let c = call(
            "fs.delete_file",
            json!({"path": format!("/srv/forged-{}.csv", forged.is_some())}),
        );
        let held = f.engine.decide(&p, &c);
        let id = held.held().expect("held").to_owned();
        let engine = f.engine.clone();
        let (p2, c2) = (p.clone(), c.clone());
        let waiter = tokio::spawn(async move { engine.await_approval(&p2, &c2, held).await });
        let mut stored = false;
        for _ in 0..100 {
            if registry.approval(&id).await.expect("read").is_some() {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(stored);
        registry
            .decide_approval(
                &id,
                ApprovalStatus::Pending,
                ApprovalStatus::Approved,
                Some("security@company.com"),
                None,
                forged.as_deref(),
                unix_now(),
            )
            .await
            .expect("forged approval written");
        let done = waiter.await.expect("joined");
        assert_eq!(done.decision.outcome, Outcome::Deny, "{forged:?}");
        assert_eq!(done.decision.reason, Reason::ApprovalDenied);
    }

    // Nobody answers the next one: it expires (ttl 2 s) and is denied.
    let c = call("fs.delete_file", json!({"path": "/srv/older.csv"}));
    let held = f.engine.decide(&p, &c);
    assert!(held.held().is_some());
    let done = f.engine.await_approval(&p, &c, held).await;
    assert_eq!(done.decision.reason, Reason::ApprovalExpired);
    assert_eq!(done.decision.outcome, Outcome::Deny);
}
