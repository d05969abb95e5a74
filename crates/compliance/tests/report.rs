//! A report over a generated audit log of 10^5 decisions, checked against
//! counts computed by hand, and rendered.

use agentmesh_audit::note::NoteSigner;
use agentmesh_audit::{AuditLog, Draft, Options};
use agentmesh_compliance::{Catalogues, report};
use agentmesh_identity::KeyPair;
use serde_json::json;

fn decision(decision: &str, controls: &[&str], reason: &str, approved_by: Option<&str>) -> Draft {
    let mut detail = json!({"controls": controls, "reason": reason});
    if let Some(a) = approved_by {
        detail["approved_by"] = json!(a);
    }
    Draft {
        event: "decision".into(),
        agent: "did:mesh:z6MkClinical".into(),
        action: "access_patient_record".into(),
        decision: decision.into(),
        detail,
        ..Draft::default()
    }
}

#[test]
fn report_over_a_hundred_thousand_decisions_matches_hand_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(
        dir.path(),
        Options {
            durable: false,
            ..Options::default()
        },
    )
    .expect("open");
    let n = 100_000u64;
    let mut tickets = Vec::with_capacity(8192);
    for i in 0..n {
        let d = match i % 10 {
            0 => decision(
                "deny",
                &["hipaa/164.312(b)", "hipaa/164.502(b)", "soc2/CC6.1"],
                "rule_deny",
                None,
            ),
            1 => decision(
                "allow",
                &["eu_ai_act/art14", "hipaa/164.312(b)"],
                "approval_granted",
                Some(if i % 20 == 1 {
                    "dr.a@hospital.org"
                } else {
                    "dr.b@hospital.org"
                }),
            ),
            2 => decision("allow", &["eu_ai_act/art14"], "rule_allow", None),
            _ => decision(
                "allow",
                &["hipaa/164.312(b)", "soc2/CC7.2"],
                "rule_allow",
                None,
            ),
        };
        tickets.push(log.append(d).expect("append"));
        if tickets.len() == 8192 {
            for t in tickets.drain(..) {
                t.wait().expect("written");
            }
        }
    }
    for _ in 0..3 {
        tickets.push(
            log.append(Draft {
                event: "agent.created".into(),
                ..Draft::default()
            })
            .expect("append"),
        );
    }
    for _ in 0..2 {
        tickets.push(
            log.append(Draft {
                event: "trust.event".into(),
                detail: json!({"kind": "violation", "agent": "x", "at_ms": 1}),
                ..Draft::default()
            })
            .expect("append"),
        );
    }
    for t in tickets {
        t.wait().expect("written");
    }
    let signer = NoteSigner::new("example.org/agentmesh/audit", KeyPair::from_seed(&[3; 32]))
        .expect("signer");
    log.checkpoint(&signer).expect("checkpoint");

    let cats = Catalogues::builtin().expect("catalogues");
    let mut calls = 0;
    let hipaa = report::build(
        &log,
        cats.get("hipaa").expect("hipaa"),
        "0000",
        "9999",
        &mut |_, _| calls += 1,
    )
    .expect("report");
    assert!(calls >= 2, "progress is reported");
    assert_eq!(hipaa.entries_in_window, n + 5);
    let c = |id: &str| hipaa.controls.iter().find(|c| c.id == id).expect("control");
    let audit = c("164.312(b)");
    assert_eq!(audit.evidence.count, 90_000);
    assert_eq!(audit.violations.count, 10_000);
    assert_eq!(audit.approvals.count, 10_000);
    assert_eq!(audit.approvers.get("dr.a@hospital.org"), Some(&5_000));
    assert_eq!(audit.approvers.get("dr.b@hospital.org"), Some(&5_000));
    assert_eq!(audit.evidence.indices[..3], [0, 1, 3]);
    let min = c("164.502(b)");
    assert_eq!((min.evidence.count, min.violations.count), (10_000, 10_000));
    assert_eq!(
        c("164.312(a)(1)").evidence.count,
        3,
        "agent.created is access-control evidence"
    );
    let auth = c("164.312(d)");
    assert_eq!(
        (auth.evidence.count, auth.violations.count),
        (2, 2),
        "trust violations count"
    );
    assert!(
        c("164.312(e)(1)")
            .gaps
            .iter()
            .any(|g| g.contains("no evidence"))
    );
    assert!(hipaa.checkpoint.is_some());
    assert!(!hipaa.proofs.is_empty());
    let total = hipaa.daily.values().map(|d| d.0).sum::<u64>();
    assert_eq!(total, 90_000 + 10_000 + 3 + 2);

    let eu = report::build(
        &log,
        cats.get("eu_ai_act").expect("eu"),
        "0000",
        "9999",
        &mut |_, _| {},
    )
    .expect("report");
    let art14 = eu.controls.iter().find(|c| c.id == "art14").expect("art14");
    assert_eq!(
        (
            art14.evidence.count,
            art14.approvals.count,
            art14.oversight_missing.count
        ),
        (20_000, 10_000, 10_000)
    );
    assert!(
        art14
            .gaps
            .iter()
            .any(|g| g.contains("10000 call(s) were allowed without the human oversight"))
    );

    // A window that holds nothing.
    let empty = report::build(
        &log,
        cats.get("hipaa").expect("hipaa"),
        "1999",
        "2000",
        &mut |_, _| {},
    )
    .expect("report");
    assert_eq!(empty.entries_in_window, 0);

    // Renders: HTML readable by an auditor, with charts, links and proofs.
    let html = hipaa.to_html();
    for needle in [
        "<svg",
        "Evidence and violations per control",
        "164.312(b)",
        "45 CFR §164.312(b)",
        "90000",
        "dr.a@hospital.org (5000)",
        "href=\"#c-164-312-b--evidence\"",
        "id=\"c-164-312-b--evidence\"",
        "inclusion proof (",
        "example.org/agentmesh/audit",
        "no evidence in this period",
    ] {
        assert!(html.contains(needle), "HTML lacks {needle:?}");
    }
    let md = hipaa.to_markdown();
    assert!(
        md.contains("| 164.312(b) Audit controls | 45 CFR §164.312(b) | 90000 | 10000 | 10000 |"),
        "{md}"
    );
    let json = serde_json::to_value(&hipaa).expect("json");
    assert_eq!(json["controls"][1]["evidence"]["count"], 90_000);
}
