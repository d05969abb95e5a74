//! The seed's example and obligations acting through a real decision.

use agentmesh_compliance::{Catalogues, Context, apply, context_for};
use agentmesh_policy::{ApprovalStore, DecideContext, Outcome, PolicySet, Reason, Request};

fn set(v: &[&str]) -> Vec<String> {
    let mut x: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    x.sort();
    x
}

#[test]
fn the_seed_example_yields_exactly_the_seeds_obligations() {
    let cats = Catalogues::builtin().expect("catalogues");
    let ctx = Context {
        action: "access_patient_record",
        data: Some("phi"),
        ..Context::default()
    };
    let eval = cats
        .evaluate(&["eu_ai_act", "hipaa", "soc2"], &ctx)
        .expect("evaluate");
    let by = |f: &str| {
        eval.frameworks
            .iter()
            .find(|r| r.framework == f)
            .expect("framework")
    };
    // EU AI Act: high-risk → human oversight.
    let eu = by("eu_ai_act");
    assert_eq!(eu.classification.expect("class").id, "high_risk_system");
    assert_eq!(set(&eu.obligations), set(&["human_oversight"]));
    // HIPAA: PHI access → minimum necessary + audit log.
    let hipaa = by("hipaa");
    assert_eq!(hipaa.classification.expect("class").id, "phi_access");
    assert_eq!(
        set(&hipaa.obligations),
        set(&["minimum_necessary", "audit_log"])
    );
    // SOC 2: data access → access control + logging.
    let soc2 = by("soc2");
    assert_eq!(soc2.classification.expect("class").id, "data_access");
    assert_eq!(set(&soc2.obligations), set(&["access_control", "logging"]));
    // Every triggered control cites its source.
    for f in &eval.frameworks {
        for c in &f.controls {
            assert!(!c.citation.is_empty(), "{}/{}", f.framework, c.id);
        }
    }
    assert!(eval.control_keys().contains(&"eu_ai_act/art14".to_owned()));
    assert!(eval.control_keys().contains(&"hipaa/164.502(b)".to_owned()));
    assert!(
        cats.evaluate(&["pci"], &ctx).is_err(),
        "unknown frameworks are errors"
    );
}

const POLICY: &str = r#"
agent: clinical-agent
compliance:
  frameworks: [eu_ai_act, hipaa, soc2]
  minimum_necessary:
    access_patient_record: [patient_id, fields]
rules:
  - name: clinicians-read-records
    condition: "action.tool == 'access_patient_record'"
    action: allow
"#;

fn request(args: serde_json::Value) -> Request {
    serde_json::from_value(serde_json::json!({
        "agent": {"name": "clinical-agent", "did": "did:mesh:z6MkClinical"},
        "action": {"type": "read", "tool": "access_patient_record"},
        "data": {"classification": "phi"},
        "request": {"arguments": args}
    }))
    .expect("request")
}

#[test]
fn the_pipeline_turns_oversight_into_a_pending_approval() {
    let cats = Catalogues::builtin().expect("catalogues");
    let policy = PolicySet::from_yaml(POLICY, "clinical.yaml").expect("policy");
    let store = ApprovalStore::new();
    let ctx = DecideContext {
        limiter: None,
        approvals: Some(&store),
        now_ns: 1_800_000_000_000_000_000,
    };
    let req =
        request(serde_json::json!({"patient_id": "p-17", "fields": ["allergies"], "ssn": "x"}));
    let decide = |req: &Request| {
        let mut d = policy.decide(req, &ctx);
        let settings = policy.compliance_for(req);
        let frameworks: Vec<&str> = settings.frameworks.iter().map(String::as_str).collect();
        let eval = cats
            .evaluate(&frameworks, &context_for(req, &settings))
            .expect("evaluate");
        let applied = apply(&policy, &mut d, &eval, req, &settings, &ctx);
        (d, applied)
    };
    let (held, applied) = decide(&req);
    assert_eq!(held.outcome, Outcome::RequireApproval, "{}", held.message);
    assert_eq!(held.reason, Reason::ComplianceOversight);
    assert!(held.message.contains("eu_ai_act/art14"), "{}", held.message);
    assert!(held.audit, "HIPAA audit controls mark the decision");
    assert_eq!(
        held.restrict_arguments.as_deref(),
        Some(&["patient_id".to_owned(), "fields".to_owned()][..])
    );
    assert_eq!(
        applied.dropped_fields,
        ["ssn"],
        "minimum necessary drops the rest"
    );
    let approval = held.approval.expect("pending approval");
    // Approved by a human: the same call passes once.
    store
        .approve(&approval.id, "dr.house@hospital.org", 1_800_000_001)
        .expect("approve");
    let (ok, _) = decide(&req);
    assert_eq!(
        (ok.outcome, ok.reason),
        (Outcome::Allow, Reason::ApprovalGranted)
    );
    assert!(ok.message.contains("dr.house@hospital.org"));
    let (again, _) = decide(&req);
    assert_eq!(again.outcome, Outcome::RequireApproval, "single use");
}

#[test]
fn minimum_necessary_without_a_declaration_denies() {
    let cats = Catalogues::builtin().expect("catalogues");
    let policy = PolicySet::from_yaml(
        "agent: a\ncompliance:\n  frameworks: [hipaa]\nrules:\n  - {name: r, condition: \"true\", action: allow}\n",
        "p.yaml",
    )
    .expect("policy");
    let mut req = request(serde_json::json!({"patient_id": "p"}));
    req.agent.name = Some("a".into());
    let ctx = DecideContext::bare(0);
    let mut d = policy.decide(&req, &ctx);
    let settings = policy.compliance_for(&req);
    let eval = cats
        .evaluate(&["hipaa"], &context_for(&req, &settings))
        .expect("evaluate");
    apply(&policy, &mut d, &eval, &req, &settings, &ctx);
    assert_eq!(
        (d.outcome, d.reason),
        (Outcome::Deny, Reason::ComplianceDeny)
    );
    assert!(d.message.contains("minimum_necessary"), "{}", d.message);
}

#[test]
fn gdpr_special_categories_need_consent() {
    let cats = Catalogues::builtin().expect("catalogues");
    let policy = PolicySet::from_yaml(
        "agent: a\ncompliance:\n  frameworks: [gdpr]\n  minimum_necessary:\n    lookup: [id]\nrules:\n  - {name: r, condition: \"true\", action: allow}\n",
        "p.yaml",
    )
    .expect("policy");
    let mk = |consent: Option<bool>| {
        let mut r: Request = serde_json::from_value(serde_json::json!({
            "agent": {"name": "a"}, "action": {"type": "read", "tool": "lookup"},
            "data": {"classification": "health"}, "request": {"arguments": {"id": 1}}
        }))
        .expect("request");
        r.data.consent = consent;
        r
    };
    let ctx = DecideContext::bare(0);
    let run = |req: &Request| {
        let mut d = policy.decide(req, &ctx);
        let settings = policy.compliance_for(req);
        let eval = cats
            .evaluate(&["gdpr"], &context_for(req, &settings))
            .expect("evaluate");
        apply(&policy, &mut d, &eval, req, &settings, &ctx);
        d
    };
    let d = run(&mk(None));
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(d.message.contains("gdpr/art9"), "{}", d.message);
    assert_eq!(run(&mk(Some(false))).outcome, Outcome::Deny);
    let d = run(&mk(Some(true)));
    assert_eq!(d.outcome, Outcome::Allow, "{}", d.message);
    assert!(d.controls.contains(&"gdpr/art30".to_owned()) && d.audit);
}

#[test]
fn denials_stay_denials() {
    let cats = Catalogues::builtin().expect("catalogues");
    let policy = PolicySet::from_yaml(
        "agent: a\ncompliance:\n  frameworks: [eu_ai_act]\n",
        "p.yaml",
    )
    .expect("policy");
    let mut req = request(serde_json::json!({}));
    req.agent.name = Some("a".into());
    let ctx = DecideContext::bare(0);
    let mut d = policy.decide(&req, &ctx);
    assert_eq!(d.outcome, Outcome::Deny);
    let settings = policy.compliance_for(&req);
    let eval = cats
        .evaluate(&["eu_ai_act"], &context_for(&req, &settings))
        .expect("evaluate");
    apply(&policy, &mut d, &eval, &req, &settings, &ctx);
    assert_eq!((d.outcome, d.reason), (Outcome::Deny, Reason::DefaultDeny));
    assert!(
        !d.controls.is_empty(),
        "the controls are still recorded for the audit"
    );
}
