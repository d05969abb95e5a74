//! The trust scenario: a well-behaved agent climbs to `trusted`; a burst of
//! denied exfiltration attempts drops it below the suspension floor and
//! suspends it; the policy engine then denies its next call. Every step is
//! an audit leaf, and the scores recompute exactly from the audit log.

use agentmesh_capability::parse_list;
use agentmesh_delegation::AgentStatus;
use agentmesh_policy::{DecideContext, Decision, Outcome, PolicySet, Request};
use agentmesh_store::{AgentRecord, Mesh, MeshHome, NewAgent, TRUST_EVENT, decision_event};
use agentmesh_trust::EventKind;

const T0_MS: u64 = 1_800_000_000_000;

const POLICY: &str = r#"
agent: analyst
sponsor: alice@company.com
rules:
  - name: reads-need-probation
    condition: "action.type == 'read' and agent.trust_score >= 0.4"
    action: allow
  - name: no-pii-export
    condition: "action.type == 'export' and data.contains_pii"
    action: deny
    severity: critical
    audit: true
  - name: exports-need-trust
    condition: "action.type == 'export' and agent.trust_tier in ['trusted', 'verified_partner']"
    action: allow
"#;

async fn setup() -> (tempfile::TempDir, Mesh, AgentRecord, AgentRecord) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = MeshHome::init(&dir.path().join("home"), "example.org", T0_MS / 1000)
        .await
        .expect("init");
    let mesh = Mesh::open(home).await.expect("open");
    mesh.create_sponsor("alice@company.com", None, T0_MS / 1000)
        .await
        .expect("sponsor");
    let mk = |name: &str| NewAgent {
        name: name.into(),
        sponsor: "alice@company.com".into(),
        capabilities: parse_list("read:*,export:*").expect("caps"),
        parent: None,
        expires_at: None,
    };
    let analyst = mesh
        .create_agent(mk("analyst"), T0_MS / 1000)
        .await
        .expect("analyst");
    let reviewer = mesh
        .create_agent(mk("reviewer"), T0_MS / 1000)
        .await
        .expect("reviewer");
    (dir, mesh, analyst, reviewer)
}

/// One governed call: the request carries the live trust score and tier,
/// the decision becomes a trust event and the call feeds the detectors.
async fn call(
    mesh: &Mesh,
    policy: &PolicySet,
    name: &str,
    action: &str,
    pii: bool,
    at_ms: u64,
) -> Decision {
    let agent = mesh.agent(name).await.expect("agent");
    let score = mesh.trust_score(&agent, at_ms).await.expect("score");
    let mut req = Request::default();
    req.agent.name = Some(agent.name.clone());
    req.agent.did = Some(agent.did.to_string());
    req.agent.sponsor = Some(agent.sponsor.clone());
    req.agent.trust_score = Some(score.score);
    req.agent.trust_tier = Some(score.tier.clone());
    req.action.kind = Some(action.into());
    req.action.tool = Some(format!("{action}_tool"));
    req.data.contains_pii = Some(pii);
    let mut d = policy.decide(&req, &DecideContext::bare(at_ms / 1000));
    if agent.status != AgentStatus::Active {
        // A suspended agent's credentials are void: the gateway would refuse it.
        d.outcome = Outcome::Deny;
    }
    let severity = d.severity.map(|s| {
        serde_json::to_value(s)
            .expect("json")
            .as_str()
            .expect("str")
            .to_owned()
    });
    let kind = decision_event(d.outcome.as_str(), severity.as_deref(), d.rule.as_deref());
    mesh.trust_event(&agent, kind, at_ms)
        .await
        .expect("trust event");
    mesh.observe(&agent, req.action.tool.as_deref(), !d.allowed(), at_ms)
        .await
        .expect("observe");
    d
}

#[tokio::test]
async fn climb_to_trusted_then_exfiltration_burst_suspends_and_the_next_call_is_denied() {
    let (_dir, mesh, analyst, reviewer) = setup().await;
    let policy = PolicySet::from_yaml(POLICY, "scenario.yaml").expect("policy");
    let mut t = T0_MS;

    // A new agent is visibly uncertain.
    let s = mesh.trust_score(&analyst, t).await.expect("score");
    assert_eq!((s.score, s.uncertainty), (0.5, 1.0));
    // Exports need `trusted`: not yet.
    assert_eq!(
        call(&mesh, &policy, "analyst", "export", false, t)
            .await
            .outcome,
        Outcome::Deny
    );

    // Phase 1: well-behaved for 30 rounds over five hours (allowed reads,
    // successful tasks, good handshakes, two endorsements by a peer). Trust
    // is earned over time: the same work repeated within an hour counts
    // less each time (see `trust_cannot_be_bought_by_repetition`).
    for round in 0..30u64 {
        t += 600_000;
        let d = call(&mesh, &policy, "analyst", "read", false, t).await;
        assert_eq!(d.outcome, Outcome::Allow, "round {round}: {}", d.message);
        mesh.trust_event(&analyst, EventKind::Task { success: true }, t)
            .await
            .expect("task");
        if round % 3 == 0 {
            mesh.trust_event(&analyst, EventKind::Handshake { ok: true }, t)
                .await
                .expect("handshake");
        }
        if round == 10 || round == 20 {
            mesh.endorse(&reviewer, &analyst, t).await.expect("endorse");
        }
    }
    let s = mesh.trust_score(&analyst, t).await.expect("score");
    assert_eq!(
        s.tier, "trusted",
        "score {:.3}, uncertainty {:.3}",
        s.score, s.uncertainty
    );
    assert!(s.uncertainty < 0.4);
    t += 60_000;
    let d = call(&mesh, &policy, "analyst", "export", false, t).await;
    assert_eq!(
        (d.outcome, d.rule.as_deref()),
        (Outcome::Allow, Some("exports-need-trust"))
    );

    // Phase 2: a burst of exfiltration attempts, all denied as critical.
    for k in 0..6u64 {
        let d = call(
            &mesh,
            &policy,
            "analyst",
            "export",
            true,
            t + 1_000 * (k + 1),
        )
        .await;
        assert_eq!(d.outcome, Outcome::Deny);
    }
    t += 10_000;
    let after = mesh.agent("analyst").await.expect("agent");
    let s = mesh.trust_score(&after, t).await.expect("score");
    assert!(
        s.score < 0.3,
        "score {:.3} should be below the floor",
        s.score
    );
    assert_eq!(
        after.status,
        AgentStatus::Suspended,
        "below the floor, the agent is suspended"
    );
    assert!(
        after
            .status_reason
            .as_deref()
            .unwrap_or("")
            .contains("fell below the floor")
    );

    // Phase 3: the next call is denied by the policy engine (the live score
    // no longer satisfies `reads-need-probation`).
    let d = call(&mesh, &policy, "analyst", "read", false, t + 60_000).await;
    assert_eq!(d.outcome, Outcome::Deny);

    // Everything is in the audit log: the violations, the anomaly, the
    // suspension, each with trust before/after.
    let log = mesh.audit().expect("audit");
    let entries: Vec<_> = (0..log.size())
        .map(|i| log.entry(i).expect("entry").entry)
        .collect();
    let violations = entries
        .iter()
        .filter(|e| {
            e.draft.event == TRUST_EVENT && e.draft.action.starts_with("violation (Critical)")
        })
        .count();
    assert_eq!(violations, 6);
    assert!(
        entries
            .iter()
            .any(|e| e.draft.action.contains("denial_burst")),
        "the denial burst was detected"
    );
    assert!(entries.iter().any(|e| e.draft.event == "agent.suspended"));
    let drops = entries
        .iter()
        .filter(|e| e.draft.event == TRUST_EVENT && e.draft.trust_after < e.draft.trust_before)
        .count();
    assert!(drops >= 7);

    // Anyone with the audit log recomputes exactly the live scores.
    let report = mesh.recompute_trust().await.expect("recompute");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.agents, 1, "only the analyst has had trust events");
    assert!(report.events > 60);
}

#[tokio::test]
async fn trust_state_survives_restart() {
    let (dir, mesh, analyst, _) = setup().await;
    for i in 0..5 {
        mesh.trust_event(&analyst, EventKind::Task { success: false }, T0_MS + i)
            .await
            .expect("event");
    }
    let before = mesh.trust_score(&analyst, T0_MS + 10).await.expect("score");
    drop(mesh);
    let mesh = Mesh::open(MeshHome::open(&dir.path().join("home")).expect("home"))
        .await
        .expect("reopen");
    let after = mesh.trust_score(&analyst, T0_MS + 10).await.expect("score");
    assert_eq!(before, after, "restarting does not reset trust");
    assert!(after.score < 0.5);
}
