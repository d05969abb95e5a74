//! Properties of the trust fold.

use agentmesh_trust::{
    AgentTrust, Dimension, EventKind, Severity, TrustConfig, TrustEngine, TrustEvent,
};
use proptest::prelude::*;

const T0: u64 = 1_800_000_000_000;

fn kind() -> impl Strategy<Value = EventKind> {
    let sev = prop_oneof![
        Just(Severity::Low),
        Just(Severity::Medium),
        Just(Severity::High),
        Just(Severity::Critical)
    ];
    prop_oneof![
        proptest::sample::select(vec![
            "allow",
            "deny",
            "warn",
            "rate_limited",
            "require_approval"
        ])
        .prop_map(|o| EventKind::Decision { outcome: o.into() }),
        sev.clone().prop_map(|s| EventKind::Violation {
            severity: s,
            reason: "r".into()
        }),
        any::<bool>().prop_map(|b| EventKind::Task { success: b }),
        Just(EventKind::AuthFailed { reason: "x".into() }),
        any::<bool>().prop_map(|b| EventKind::Handshake { ok: b }),
        (0.0f64..=1.0).prop_map(|s| EventKind::Endorsement {
            by: "other".into(),
            endorser_score: s
        }),
        sev.prop_map(|s| EventKind::Anomaly {
            detector: "d".into(),
            severity: s,
            explanation: "e".into()
        }),
    ]
}

fn events() -> impl Strategy<Value = Vec<TrustEvent>> {
    proptest::collection::vec((kind(), 0u64..3_600_000), 0..80).prop_map(|v| {
        let mut t = T0;
        v.into_iter()
            .map(|(k, dt)| {
                t += dt;
                TrustEvent {
                    agent: "a".into(),
                    at_ms: t,
                    kind: k,
                    about: None,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn score_and_uncertainty_stay_in_range(evs in events(), later in 0u64..10_000_000_000) {
        let mut e = TrustEngine::new(TrustConfig::default());
        for ev in &evs {
            let a = e.apply(ev).expect("apply");
            prop_assert!((0.0..=1.0).contains(&a.before) && (0.0..=1.0).contains(&a.after));
        }
        let now = evs.last().map(|x| x.at_ms).unwrap_or(T0) + later;
        let s = e.score("a", now);
        prop_assert!((0.0..=1.0).contains(&s.score) && (0.0..=1.0).contains(&s.uncertainty));
        for d in &s.dimensions {
            prop_assert!((0.0..=1.0).contains(&d.score) && (0.0..=1.0).contains(&d.uncertainty));
        }
    }

    #[test]
    fn more_violations_never_raise_the_score(evs in events(), extra in 1usize..5) {
        let mut plain = TrustEngine::new(TrustConfig::default());
        let mut worse = TrustEngine::new(TrustConfig::default());
        for ev in &evs {
            plain.apply(ev).expect("apply");
            worse.apply(ev).expect("apply");
        }
        let t = evs.last().map(|x| x.at_ms).unwrap_or(T0);
        for _ in 0..extra {
            worse.apply(&TrustEvent { agent: "a".into(), at_ms: t, kind: EventKind::Violation { severity: Severity::Medium, reason: "r".into() }, about: None  }).expect("apply");
        }
        let later = t + 1_000;
        prop_assert!(worse.quick_score("a", later).0 <= plain.quick_score("a", later).0 + 1e-12);
    }

    #[test]
    fn decay_is_idempotent_and_monotone_toward_the_prior(evs in events(), d1 in 0u64..100_000_000_000, d2 in 0u64..100_000_000_000) {
        let cfg = TrustConfig::default();
        let mut e = TrustEngine::new(cfg.clone());
        for ev in &evs { e.apply(ev).expect("apply"); }
        let Some(state) = e.state("a").cloned() else { return Ok(()) };
        // Decaying twice to the same instant equals decaying once.
        let t1 = state.at_ms + d1;
        let mut once = state.clone();
        once.decay_to(t1, &cfg);
        let mut twice = once.clone();
        twice.decay_to(t1, &cfg);
        prop_assert_eq!(&once, &twice);
        // Decaying to an earlier time changes nothing.
        let mut back = once.clone();
        back.decay_to(state.at_ms, &cfg);
        prop_assert_eq!(&back, &once);
        // Each dimension moves toward the base rate and gains uncertainty.
        let t2 = t1 + d2;
        let (s1, s2) = (state.score(t1, &cfg), state.score(t2, &cfg));
        for (a, b) in s1.dimensions.iter().zip(&s2.dimensions) {
            prop_assert!((b.score - cfg.base_rate).abs() <= (a.score - cfg.base_rate).abs() + 1e-12);
            prop_assert!(b.uncertainty + 1e-12 >= a.uncertainty);
        }
        // Reading at a later time is the same as decaying then reading.
        let mut decayed = state.clone();
        decayed.decay_to(t2, &cfg);
        let (x, y) = (decayed.composite(t2, &cfg), state.composite(t2, &cfg));
        prop_assert!((x.0 - y.0).abs() < 1e-12 && (x.1 - y.1).abs() < 1e-12);
    }

    #[test]
    fn recomputing_from_the_events_gives_the_same_state(evs in events()) {
        let mut live = TrustEngine::new(TrustConfig::default());
        for ev in &evs { live.apply(ev).expect("apply"); }
        // What the audit log holds: the events as JSON.
        let logged: Vec<String> = evs.iter().map(|e| serde_json::to_string(e).expect("json")).collect();
        let mut again = TrustEngine::new(TrustConfig::default());
        for line in &logged {
            let ev: TrustEvent = serde_json::from_str(line).expect("parse");
            again.apply(&ev).expect("apply");
        }
        prop_assert_eq!(live.state("a"), again.state("a"));
        // And the persisted state survives a JSON round trip exactly.
        if let Some(s) = live.state("a") {
            let back: AgentTrust = serde_json::from_str(&serde_json::to_string(s).expect("json")).expect("parse");
            prop_assert_eq!(&back, s);
        }
    }
}

#[test]
fn a_new_agent_is_visibly_uncertain() {
    let e = TrustEngine::new(TrustConfig::default());
    let s = e.score("nobody", T0);
    assert_eq!(s.score, 0.5);
    assert_eq!(s.uncertainty, 1.0, "nothing is known");
    assert_eq!(s.tier, "standard");
    for d in &s.dimensions {
        assert_eq!(d.uncertainty, 1.0);
    }
    let _ = Dimension::ALL;
}

#[test]
fn self_endorsement_is_refused_and_cycles_are_harmless() {
    let mut e = TrustEngine::new(TrustConfig::default());
    let self_e = TrustEvent {
        agent: "a".into(),
        at_ms: T0,
        kind: EventKind::Endorsement {
            by: "a".into(),
            endorser_score: 1.0,
        },
        about: None,
    };
    assert!(e.apply(&self_e).is_err());
    // a endorses b, b endorses a, repeatedly: bounded, and each endorsement
    // is weighted by the endorser's score at that moment.
    for i in 0..50 {
        let sa = e.quick_score("a", T0 + i).0;
        e.apply(&TrustEvent {
            agent: "b".into(),
            at_ms: T0 + i,
            kind: EventKind::Endorsement {
                by: "a".into(),
                endorser_score: sa,
            },
            about: None,
        })
        .expect("b");
        let sb = e.quick_score("b", T0 + i).0;
        e.apply(&TrustEvent {
            agent: "a".into(),
            at_ms: T0 + i,
            kind: EventKind::Endorsement {
                by: "b".into(),
                endorser_score: sb,
            },
            about: None,
        })
        .expect("a");
    }
    let (a, b) = (e.score("a", T0 + 100), e.score("b", T0 + 100));
    assert!(a.score < 1.0 && b.score < 1.0);
    // Collaboration is 15% of the composite: endorsements alone cannot make
    // an agent trusted.
    assert!(a.score < 0.7 && b.score < 0.7, "{} {}", a.score, b.score);
}

#[test]
fn tiers_need_evidence_not_just_a_high_mean() {
    let mut e = TrustEngine::new(TrustConfig::default());
    // Three good decisions: high mean on one dimension, still uncertain.
    for i in 0..3 {
        e.apply(&TrustEvent {
            agent: "a".into(),
            at_ms: T0 + i,
            kind: EventKind::Decision {
                outcome: "allow".into(),
            },
            about: None,
        })
        .expect("a");
    }
    assert_ne!(e.score("a", T0 + 10).tier, "trusted");
}
