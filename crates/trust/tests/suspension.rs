//! When trust suspends an agent, and when it must not (issue 14): one
//! ordinary denial of a new agent, a single medium anomaly, or trust bought
//! by repetition.

use agentmesh_trust::{EventKind, Severity, TrustConfig, TrustEngine, TrustEvent};
use proptest::prelude::*;

const T0: u64 = 1_800_000_000_000;
const MIN: u64 = 60_000;

fn ev(at_ms: u64, kind: EventKind) -> TrustEvent {
    TrustEvent::new("a", at_ms, kind)
}

fn decision(outcome: &str) -> EventKind {
    EventKind::Decision {
        outcome: outcome.into(),
    }
}

#[test]
fn one_ordinary_denial_does_not_suspend_a_new_agent() {
    let mut e = TrustEngine::new(TrustConfig::default());
    let a = e.apply(&ev(T0, decision("deny"))).expect("apply");
    // The worked example of docs/trust-model.md: E_pc = 1/3, weighted mean
    // 0.3·1/3 + 0.7·0.5 = 0.45, conduct factor (1/3)/0.5 = 2/3 → 0.30 (a
    // hair below it in floating point), under the 0.30 floor …
    assert!((a.after - 0.3).abs() < 1e-9, "{}", a.after);
    assert!(a.after < 0.3);
    // … but one unit of conduct evidence is not the 10 a suspension needs.
    assert!(!a.suspend, "a new agent's first denial must not suspend it");
    assert!(!e.breached("a"));
}

#[test]
fn ordinary_denials_suspend_once_there_is_enough_evidence() {
    let mut e = TrustEngine::new(TrustConfig::default());
    let mut suspended_at = None;
    // One denial every ten minutes: no burst, just a bad record.
    for i in 0..20u64 {
        let a = e
            .apply(&ev(T0 + i * 10 * MIN, decision("deny")))
            .expect("apply");
        if a.suspend {
            suspended_at = Some(i + 1);
            break;
        }
    }
    let n = suspended_at.expect("a record of denials suspends eventually");
    // Decay shaves a little off the evidence between events.
    assert!((10..=11).contains(&n), "suspended after {n} denials");
    assert!(e.breached("a"));
    // Already breached: further drops do not suspend again.
    let again = e
        .apply(&ev(T0 + 21 * 10 * MIN, decision("deny")))
        .expect("apply");
    assert!(!again.suspend);
}

#[test]
fn a_severe_event_suspends_at_once() {
    for kind in [
        EventKind::Violation {
            severity: Severity::Critical,
            reason: "exfiltration".into(),
        },
        EventKind::Anomaly {
            detector: "denial_burst".into(),
            severity: Severity::High,
            explanation: "5 denied calls within 60 s".into(),
        },
    ] {
        let mut e = TrustEngine::new(TrustConfig::default());
        let a = e.apply(&ev(T0, kind.clone())).expect("apply");
        assert!(a.suspend, "{kind:?} must suspend a new agent");
    }
}

#[test]
fn a_single_medium_anomaly_never_suspends() {
    let mut e = TrustEngine::new(TrustConfig::default());
    // An established agent: plenty of evidence, all good.
    for i in 0..30u64 {
        e.apply(&ev(T0 + i * MIN, decision("allow")).about(format!("call:t:{i}")))
            .expect("apply");
    }
    let a = e
        .apply(&ev(
            T0 + 31 * MIN,
            EventKind::Anomaly {
                detector: "rate_spike".into(),
                severity: Severity::Medium,
                explanation: "busy".into(),
            },
        ))
        .expect("apply");
    assert!(a.after < a.before);
    assert!(!a.suspend, "a medium anomaly alone must not suspend");
    assert!(!e.breached("a"));
}

#[test]
fn reinstatement_clears_the_breach_and_the_next_drop_counts_again() {
    let mut e = TrustEngine::new(TrustConfig::default());
    let a = e
        .apply(&ev(
            T0,
            EventKind::Violation {
                severity: Severity::High,
                reason: "r".into(),
            },
        ))
        .expect("apply");
    assert!(a.suspend && e.breached("a"));
    let r = e
        .apply(&ev(
            T0 + MIN,
            EventKind::Reinstated {
                by: "alice@example.com".into(),
            },
        ))
        .expect("apply");
    assert!(!e.breached("a"));
    assert!(!r.suspend);
    // The override adds no evidence: the score is what it was.
    assert!((r.after - r.before).abs() < 1e-9);
    let again = e
        .apply(&ev(
            T0 + 2 * MIN,
            EventKind::Violation {
                severity: Severity::Critical,
                reason: "r".into(),
            },
        ))
        .expect("apply");
    assert!(again.suspend && e.breached("a"));
}

#[test]
fn trust_cannot_be_bought_by_repetition() {
    let mut e = TrustEngine::new(TrustConfig::default());
    let start = e.score("a", T0).tier;
    // Ten minutes of the cheapest possible "good behaviour": the same
    // trivial call, its success and a handshake with the same peer, five
    // times a second.
    for i in 0..3_000u64 {
        let t = T0 + i * 200;
        e.apply(&ev(t, decision("allow")).about("call:clock:now"))
            .expect("apply");
        e.apply(&ev(t, EventKind::Task { success: true }).about("call:clock:now"))
            .expect("apply");
        e.apply(&ev(t, EventKind::Handshake { ok: true }).about("did:mesh:verifier"))
            .expect("apply");
    }
    let s = e.score("a", T0 + 10 * MIN);
    assert_eq!(s.tier, start, "repetition must not raise the tier: {s:?}");
    let pos = |name: &str| {
        s.dimensions
            .iter()
            .find(|d| d.dimension.name() == name)
            .expect("dimension")
            .positive
    };
    // Handshakes with one peer count once per window.
    assert!(pos("security_posture") <= 1.0 + 1e-9);
    // The same call: harmonic returns, capped per window.
    let cap = TrustConfig::default().max_gain_per_window;
    assert!(pos("policy_compliance") <= cap + 1e-9);
    assert!(pos("output_quality") <= cap + 1e-9);
}

#[test]
fn distinct_work_over_hours_still_earns_trust() {
    let mut e = TrustEngine::new(TrustConfig::default());
    // Three hours of varied work with several peers.
    for i in 0..(3 * 60u64) {
        let t = T0 + i * MIN;
        let about = format!("call:tools:t{}", i % 20);
        e.apply(&ev(t, decision("allow")).about(about.clone()))
            .expect("apply");
        e.apply(&ev(t, EventKind::Task { success: true }).about(about))
            .expect("apply");
        e.apply(&ev(t, EventKind::Handshake { ok: true }).about(format!("peer-{}", i % 6)))
            .expect("apply");
    }
    let s = e.score("a", T0 + 3 * 60 * MIN);
    assert!(s.score > 0.7, "{s:?}");
    assert_eq!(s.tier, "trusted", "{s:?}");
}

fn kind() -> impl Strategy<Value = EventKind> {
    let sev = prop_oneof![
        Just(Severity::Low),
        Just(Severity::Medium),
        Just(Severity::High),
        Just(Severity::Critical)
    ];
    prop_oneof![
        proptest::sample::select(vec!["allow", "deny", "warn", "refused", "rate_limited"])
            .prop_map(decision),
        sev.clone().prop_map(|s| EventKind::Violation {
            severity: s,
            reason: "r".into()
        }),
        any::<bool>().prop_map(|b| EventKind::Task { success: b }),
        any::<bool>().prop_map(|b| EventKind::Handshake { ok: b }),
        sev.prop_map(|s| EventKind::Anomaly {
            detector: "d".into(),
            severity: s,
            explanation: "e".into()
        }),
        Just(EventKind::Reinstated { by: "h".into() }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Suspension happens only below the floor, on a drop, and only with
    /// enough evidence or a severe event — never by a low/medium anomaly.
    #[test]
    fn suspension_needs_evidence_or_severity(
        evs in proptest::collection::vec((kind(), 0u64..600_000, 0u8..4), 1..120)
    ) {
        let cfg = TrustConfig::default();
        let floor = cfg.suspend_below.expect("floor");
        let mut e = TrustEngine::new(cfg.clone());
        let mut t = T0;
        for (k, dt, about) in evs {
            t += dt;
            let event = ev(t, k).about(format!("x{about}"));
            let before_state = e.state("a").cloned().unwrap_or_default();
            let a = e.apply(&event).expect("apply");
            if a.suspend {
                prop_assert!(a.after < floor && a.after < a.before);
                prop_assert!(!before_state.breached);
                let minor = matches!(&event.kind, EventKind::Anomaly { severity, .. }
                    if matches!(severity, Severity::Low | Severity::Medium));
                prop_assert!(!minor);
                let evidence = e.state("a").expect("state").conduct_evidence(t, &cfg);
                prop_assert!(event.is_severe() || evidence >= cfg.suspend_min_evidence);
            }
            if matches!(event.kind, EventKind::Reinstated { .. }) {
                prop_assert!(!e.breached("a"));
            }
        }
    }
}
