//! Trust that nobody else can move (issue 14): failed authentication is
//! never evidence against the agent it names; a new agent survives its
//! first ordinary denial; a sponsor's reactivation lets a breached agent act
//! again; and a trust event recorded by another process (the CLI) while the
//! engine holds the home is applied by the engine, not overwritten by it.

use agentmesh_capability::{Capability, parse_list};
use agentmesh_delegation::{AgentStatus, HolderProof, Token};
use agentmesh_engine::source::{ANOMALY_AT, DETAIL_PER_WINDOW};
use agentmesh_engine::{
    AUTH_FAILED_EVENT, AUTH_SOURCE_ANOMALY_EVENT, Call, Engine, EngineConfig, Presented,
};
use agentmesh_policy::schema::DataAttrs;
use agentmesh_policy::{Outcome, PolicyHandle, PolicySet, Reason};
use agentmesh_store::{KeyKind, Mesh, MeshHome, NewAgent, NewDelegation, unix_now};
use agentmesh_trust::EventKind;
use serde_json::json;
use std::time::Duration;

const POLICY: &str = r#"
version: "1.0"
agents: ["*"]
default_action: deny
rules:
  - name: no-secrets
    condition: "action.tool == 'fs.read_file' and request.arguments.path.startsWith('/secret/')"
    action: deny
    priority: 10
  - name: no-exfiltration
    condition: "action.tool == 'net.upload'"
    action: deny
    severity: critical
  - name: reads
    condition: "action.tool == 'fs.read_file'"
    action: allow
"#;

struct Fixture {
    dir: tempfile::TempDir,
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
    mesh.create_sponsor("alice@company.com", None, now)
        .await
        .expect("sponsor");
    for name in ["victim", "newbie", "helper"] {
        mesh.create_agent(
            NewAgent {
                name: name.into(),
                sponsor: "alice@company.com".into(),
                capabilities: parse_list("call:fs:*,call:net:*").expect("caps"),
                parent: None,
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
            // The test drives refreshes itself.
            refresh_every: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
    )
    .await
    .expect("engine");
    Fixture { dir, mesh, engine }
}

/// What another process (the CLI) sees: the same home, opened again.
async fn other_process(f: &Fixture) -> Mesh {
    Mesh::open(MeshHome::open(&f.dir.path().join("home")).expect("home"))
        .await
        .expect("open")
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

async fn wait_for_audit(engine: &Engine, size: u64) {
    for _ in 0..500 {
        if engine.audit().expect("holds the log").size() >= size {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("audit log never reached {size} entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_with_the_victims_token_cannot_move_its_trust() {
    let f = fixture().await;
    let now = unix_now();
    // alice → victim: a delegation token the attacker has seen (it is a
    // bearer-like string), but not the victim's key.
    let token = f
        .mesh
        .delegate(
            NewDelegation {
                from: "alice@company.com".into(),
                to: "victim".into(),
                capabilities: Some(parse_list("call:fs:*").expect("caps")),
                ttl_secs: 600,
                max_depth: Some(1),
                parent_token: None,
            },
            now,
        )
        .await
        .expect("token");
    f.engine.refresh().await.expect("refresh");
    let victim = f.mesh.agent("victim").await.expect("victim");
    let victim_did = victim.did.to_string();
    let before = f.engine.audit().expect("holds the log").size();
    let attacker_key = agentmesh_identity::KeyPair::from_seed(&[9; 32]);
    let parsed = Token::parse(token.as_str()).expect("token");
    let attempts = ANOMALY_AT + 5;
    for i in 0..attempts {
        let digest = [i as u8; 32];
        let forged = HolderProof::create(&attacker_key, &parsed, &digest, now).to_text();
        let e = f
            .engine
            .authenticate_from(
                Presented::Delegation {
                    token: token.as_str(),
                    proof: &forged,
                    request_digest: digest,
                },
                Some("198.51.100.7"),
            )
            .expect_err("a forged proof fails");
        assert_eq!(e.code(), "holder_proof_rejected");
    }
    // The victim's trust is untouched: no event, the prior score, active.
    f.engine.flush_trust().await.expect("flush");
    assert!(
        f.mesh
            .registry()
            .trust_states()
            .await
            .expect("states")
            .iter()
            .all(|(a, _)| a != &victim_did),
        "no trust state for the victim"
    );
    assert_eq!(
        f.mesh.agent("victim").await.expect("victim").status,
        AgentStatus::Active
    );
    // The failures are audited against the source, not as the victim's
    // conduct, and only the first few one by one.
    let expected = u64::from(DETAIL_PER_WINDOW) + 1;
    wait_for_audit(&f.engine, before + expected).await;
    let mut failed = 0;
    let mut anomalies = 0;
    for i in before..f.engine.audit().expect("holds the log").size() {
        let d = f
            .engine
            .audit()
            .expect("holds the log")
            .entry(i)
            .expect("entry")
            .entry
            .draft;
        assert!(
            d.agent.is_empty(),
            "an unproven claim names no agent: {d:?}"
        );
        assert!(d.trust_after.is_none());
        match d.event.as_str() {
            AUTH_FAILED_EVENT => {
                failed += 1;
                assert_eq!(d.detail["source"], "198.51.100.7");
                assert_eq!(d.detail["claimed_agent"], victim_did.as_str());
            }
            AUTH_SOURCE_ANOMALY_EVENT => {
                anomalies += 1;
                assert_eq!(d.detail["source"], "198.51.100.7");
            }
            other => panic!("unexpected entry {other}"),
        }
    }
    assert_eq!((failed, anomalies), (DETAIL_PER_WINDOW, 1));
    // The victim itself still authenticates and acts.
    let victim_key = f
        .mesh
        .home()
        .read_key(KeyKind::Agent("victim"))
        .expect("key");
    let good = HolderProof::create(&victim_key, &parsed, &[200; 32], now).to_text();
    let p = f
        .engine
        .authenticate_from(
            Presented::Delegation {
                token: token.as_str(),
                proof: &good,
                request_digest: [200; 32],
            },
            Some("192.0.2.1"),
        )
        .expect("the victim's own proof");
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/srv/a"})));
    assert_eq!(v.decision.outcome, Outcome::Allow, "{}", v.decision.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_survives_its_first_ordinary_denial() {
    let f = fixture().await;
    let p = f.engine.local_principal("newbie").expect("newbie");
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/secret/keys"})));
    assert_eq!(v.decision.outcome, Outcome::Deny);
    assert!(v.trust_after < 0.3, "below the floor: {}", v.trust_after);
    // Not enough evidence to suspend: the next ordinary call goes through.
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.engine.refresh().await.expect("refresh");
    assert_eq!(
        f.mesh.agent("newbie").await.expect("newbie").status,
        AgentStatus::Active
    );
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/srv/report"})));
    assert_eq!(v.decision.outcome, Outcome::Allow, "{}", v.decision.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactivation_by_the_sponsor_lets_a_breached_agent_act_again() {
    let f = fixture().await;
    let p = f.engine.local_principal("newbie").expect("newbie");
    // A critical violation breaches the floor at once and suspends.
    let v = f.engine.decide(&p, &call("net.upload", json!({"to": "x"})));
    assert_eq!(v.decision.outcome, Outcome::Deny);
    let mut suspended = false;
    for _ in 0..200 {
        if f.mesh.agent("newbie").await.expect("newbie").status == AgentStatus::Suspended {
            suspended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(suspended, "a critical violation suspends");
    f.engine.refresh().await.expect("refresh");
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/srv/x"})));
    assert_eq!(v.decision.reason, Reason::AgentInactive);

    // The sponsor reactivates from the CLI (another process on the home).
    let cli = other_process(&f).await;
    cli.set_status("newbie", AgentStatus::Active, None, unix_now())
        .await
        .expect("reactivate");
    f.engine.drain_outbox().await.expect("drain");
    f.engine.refresh().await.expect("refresh");
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/srv/x"})));
    assert_eq!(
        v.decision.outcome,
        Outcome::Allow,
        "reactivated: {}",
        v.decision.message
    );
    // The override is an audited trust event, and trust still recomputes
    // exactly from the log.
    f.engine.flush_trust().await.expect("flush");
    wait_for_audit(&f.engine, v.audit_index.expect("recorded") + 1).await;
    let mut reinstated = false;
    for i in 0..f.engine.audit().expect("holds the log").size() {
        let d = f
            .engine
            .audit()
            .expect("holds the log")
            .entry(i)
            .expect("entry")
            .entry
            .draft;
        if d.event == agentmesh_store::TRUST_EVENT && d.action.starts_with("reinstated by") {
            reinstated = true;
        }
    }
    assert!(reinstated, "the reinstatement is in the audit log");
    let report = f.mesh.recompute_trust().await.expect("recompute");
    assert!(report.ok(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_trust_event_is_applied_by_the_engine_not_overwritten() {
    let f = fixture().await;
    let p = f.engine.local_principal("helper").expect("helper");
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/srv/a"})));
    assert!(v.allowed());
    f.engine.flush_trust().await.expect("flush");

    // `agentmesh trust record` from another process while the engine runs.
    let cli = other_process(&f).await;
    let helper = cli.agent("helper").await.expect("helper");
    let o = cli
        .trust_event(
            &helper,
            EventKind::Task { success: false },
            unix_now() * 1000,
        )
        .await
        .expect("record");
    assert!(
        o.applied.is_none(),
        "queued for the engine, not applied here"
    );
    assert_eq!(f.engine.drain_outbox().await.expect("drain"), 1);
    // More traffic and a flush: the CLI's event is part of the state.
    let v = f
        .engine
        .decide(&p, &call("fs.read_file", json!({"path": "/srv/b"})));
    f.engine.flush_trust().await.expect("flush");
    wait_for_audit(&f.engine, v.audit_index.expect("recorded") + 1).await;
    let states = f.mesh.registry().trust_states().await.expect("states");
    let (_, state) = states
        .iter()
        .find(|(a, _)| a == &helper.did.to_string())
        .expect("helper state");
    assert_eq!(state.events, 3, "two decisions and the CLI's task event");
    assert!(state.dims[agentmesh_trust::Dimension::OutputQuality.index()].s > 0.0);
    let report = f.mesh.recompute_trust().await.expect("recompute");
    assert!(report.ok(), "{report:?}");
}
