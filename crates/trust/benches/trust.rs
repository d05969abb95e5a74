//! Trust benchmarks: record an event, read a score, run the detectors, and
//! the memory of 10^6 agents' state (engine + detector state).

use agentmesh_trust::{Activity, EventKind, TrustConfig, TrustEngine, TrustEvent};
use criterion::Criterion;
use std::hint::black_box;
use std::time::Instant;

const T0: u64 = 1_800_000_000_000;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn percentiles(name: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)];
    println!(
        "{name:<44} p50 {:>6} ns   p99 {:>6} ns   (n={})",
        p(0.5),
        p(0.99),
        ns.len()
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let agent = "did:mesh:z6MkqtoBGLXbxcEawgsV8eKM9c2jpXwuFWgGJ5ruXLMT9mrQ".to_owned();
    let mut engine = TrustEngine::new(TrustConfig::default());
    let mut t = T0;
    c.bench_function("trust/record event + update score", |b| {
        b.iter(|| {
            t += 10;
            engine
                .apply(black_box(&TrustEvent {
                    agent: agent.clone(),
                    at_ms: t,
                    kind: EventKind::Decision {
                        outcome: "allow".into(),
                    },
                    about: None,
                }))
                .expect("apply")
        })
    });
    c.bench_function("trust/read score (composite + uncertainty)", |b| {
        b.iter(|| engine.quick_score(black_box(&agent), black_box(t + 1000)))
    });
    c.bench_function("trust/run detectors on one call", |b| {
        b.iter(|| {
            t += 10;
            engine.observe(
                &agent,
                black_box(&Activity {
                    at_ms: t,
                    tool: Some("read_file"),
                    denied: false,
                }),
            )
        })
    });
    c.final_summary();

    let ev = TrustEvent {
        agent: agent.clone(),
        at_ms: t,
        kind: EventKind::Decision {
            outcome: "deny".into(),
        },
        about: None,
    };
    let mut lat = Vec::with_capacity(200_000);
    for i in 0..200_000u64 {
        let mut e = ev.clone();
        e.at_ms = t + i;
        let s = Instant::now();
        black_box(engine.apply(&e).expect("apply"));
        lat.push(s.elapsed().as_nanos() as u64);
    }
    percentiles("record event + update (timed one by one)", lat);
    let mut lat = Vec::with_capacity(200_000);
    for i in 0..200_000u64 {
        let s = Instant::now();
        black_box(engine.quick_score(&agent, t + i));
        lat.push(s.elapsed().as_nanos() as u64);
    }
    percentiles("read score (timed one by one)", lat);

    // 10^6 agents, each with trust state and detector state.
    let before = rss_bytes();
    let mut big = TrustEngine::new(TrustConfig::default());
    let started = Instant::now();
    for i in 0..1_000_000u64 {
        let name = format!("did:mesh:z6Mk{i:044}");
        big.apply(&TrustEvent {
            agent: name.clone(),
            at_ms: T0 + i,
            kind: EventKind::Decision {
                outcome: "allow".into(),
            },
            about: None,
        })
        .expect("apply");
        big.observe(
            &name,
            &Activity {
                at_ms: T0 + i,
                tool: Some("read_file"),
                denied: false,
            },
        );
        big.observe(
            &name,
            &Activity {
                at_ms: T0 + i + 1,
                tool: Some("search"),
                denied: true,
            },
        );
    }
    let after = rss_bytes();
    println!(
        "10^6 agents (DID keys, trust + detector state): {:.0} MiB resident, built in {:.1} s",
        (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    black_box(big.len());
}
