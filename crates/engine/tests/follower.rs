//! Two engines on one mesh home (issue 14: two `mcp wrap` servers started
//! by one desktop client). The first holds the audit log and the trust
//! state; the second follows: its entries go through the registry outbox,
//! its trust events are applied by the holder exactly once, and when no
//! process takes its entries it stops acting (no record, no action).

use agentmesh_capability::{Capability, parse_list};
use agentmesh_engine::{Call, DECISION_EVENT, Engine, EngineConfig};
use agentmesh_policy::schema::DataAttrs;
use agentmesh_policy::{Outcome, PolicyHandle, PolicySet};
use agentmesh_store::{Mesh, MeshHome, NewAgent, unix_now};
use std::time::Duration;

const POLICY: &str = r#"
version: "1.0"
agents: ["*"]
default_action: deny
rules:
  - name: reads
    condition: "action.tool == 'fs.read_file'"
    action: allow
"#;

async fn engine(mesh: Mesh, refresh_every: Duration) -> Engine {
    let set = PolicySet::from_yaml(POLICY, "test.yaml").expect("policy");
    Engine::start(
        mesh,
        PolicyHandle::new(set),
        EngineConfig {
            audience: "gw-test".into(),
            refresh_every,
            ..EngineConfig::default()
        },
    )
    .await
    .expect("engine")
}

fn read_file() -> Call {
    Call {
        protocol: "mcp",
        method: "tools/call".into(),
        kind: "tool_call",
        target: "fs.read_file".into(),
        tool: "fs.read_file".into(),
        capability: Capability::parse("call:fs:read_file").expect("cap"),
        arguments: Some(serde_json::json!({"path": "/tmp/x"})),
        data: DataAttrs::default(),
        upstream: Some("fs".into()),
        trace_id: None,
        note: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_acts_and_the_holder_applies_its_trust_events_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = unix_now();
    let home = MeshHome::init(&dir.path().join("home"), "example.org", now)
        .await
        .expect("init");
    let mesh = Mesh::open(home).await.expect("open");
    mesh.create_sponsor("alice@company.com", None, now)
        .await
        .expect("sponsor");
    mesh.create_agent(
        NewAgent {
            name: "reader".into(),
            sponsor: "alice@company.com".into(),
            capabilities: parse_list("call:fs:*").expect("caps"),
            parent: None,
            expires_at: None,
        },
        now,
    )
    .await
    .expect("agent");
    // The test drives the holder's drains itself; the follower follows
    // every second, as it does by default.
    let holder = engine(mesh, Duration::from_secs(3600)).await;
    assert!(holder.holds_audit_log());
    let second = Mesh::open(MeshHome::open(&dir.path().join("home")).expect("home"))
        .await
        .expect("open");
    let follower = engine(second, Duration::from_secs(1)).await;
    assert!(!follower.holds_audit_log(), "the log is held");
    assert_eq!(holder.readiness(), Ok("holder"));
    assert_eq!(follower.readiness(), Ok("follower"));

    let p = follower.local_principal("reader").expect("principal");
    let mut allowed = 0;
    for _ in 0..5 {
        let v = follower.decide(&p, &read_file());
        assert_eq!(v.decision.outcome, Outcome::Allow, "{:?}", v.decision);
        assert_eq!(v.audit_index, None, "the index is the holder's to give");
        follower.record_result(&p, &v, true, serde_json::json!({}));
        allowed += 1;
    }
    // The follower's queue reaches the registry within a moment.
    for _ in 0..100 {
        if holder
            .mesh()
            .registry()
            .queued_audit(100)
            .await
            .expect("q")
            .len()
            >= 2 * allowed
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = holder.audit().expect("holder");
    let before = log.size();
    let drained = holder.drain_outbox().await.expect("drain");
    assert_eq!(drained, 2 * allowed, "decisions and results");
    // Drained again: nothing more (dequeued, never appended twice).
    assert_eq!(holder.drain_outbox().await.expect("drain"), 0);
    let mut decisions = 0;
    for i in before..log.size() {
        let d = log.entry(i).expect("entry").entry.draft;
        assert!(d.detail["queued_at"].is_string(), "{:?}", d.detail);
        assert!(
            d.trust_before.is_some() && d.trust_after.is_some(),
            "applied by the holder: {d:?}"
        );
        decisions += usize::from(d.event == DECISION_EVENT);
    }
    assert_eq!(decisions, allowed);
    // Each event applied once: the holder's state counts exactly them, and
    // the log recomputes to it.
    holder.flush_trust().await.expect("flush");
    let report = holder.mesh().recompute_trust().await.expect("recompute");
    assert!(report.ok(), "{report:?}");

    // The holder stops draining (as a holder attached to a control plane
    // would): after the stall bound the follower refuses to act. (First
    // the follower sees the outbox emptied: the wait starts afresh.)
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let p = follower.local_principal("reader").expect("principal");
    let v = follower.decide(&p, &read_file());
    assert_eq!(v.decision.outcome, Outcome::Allow);
    // Let the follower hand it on and see nobody take it.
    tokio::time::sleep(Duration::from_millis(16_500)).await;
    let v = follower.decide(&p, &read_file());
    assert_eq!(v.decision.outcome, Outcome::Deny, "no record, no action");
    assert!(
        follower.readiness().is_err(),
        "a follower that cannot record is not ready"
    );
    assert!(
        v.decision.message.contains("has not taken queued entries"),
        "{}",
        v.decision.message
    );
}
