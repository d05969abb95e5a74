//! Compliance benchmarks: evaluating an action (three frameworks, and all
//! five) and building a report over 10^6 audit entries.

use agentmesh_audit::{AuditLog, Draft, Options};
use agentmesh_compliance::{Catalogues, Context, report};
use criterion::Criterion;
use std::hint::black_box;
use std::time::Instant;

fn percentiles(name: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)];
    println!(
        "{name:<52} p50 {:>6} ns   p99 {:>6} ns   (n={})",
        p(0.5),
        p(0.99),
        ns.len()
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let cats = Catalogues::builtin().expect("catalogues");
    let ctx = Context {
        action: "access_patient_record",
        action_type: Some("read"),
        data: Some("phi"),
        domain: None,
    };
    let three = ["eu_ai_act", "hipaa", "soc2"];
    let all = ["eu_ai_act", "hipaa", "soc2", "gdpr", "owasp_agentic"];
    c.bench_function("compliance/evaluate seed example (3 frameworks)", |b| {
        b.iter(|| {
            cats.evaluate(black_box(&three), black_box(&ctx))
                .expect("eval")
        })
    });
    c.bench_function("compliance/evaluate all 5 frameworks", |b| {
        b.iter(|| {
            cats.evaluate(black_box(&all), black_box(&ctx))
                .expect("eval")
        })
    });
    c.final_summary();
    let mut lat = Vec::with_capacity(200_000);
    for _ in 0..200_000 {
        let t = Instant::now();
        black_box(cats.evaluate(&three, &ctx).expect("eval"));
        lat.push(t.elapsed().as_nanos() as u64);
    }
    percentiles("evaluate seed example (3 frameworks, timed)", lat);

    let n: u64 = std::env::var("REPORT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(
        dir.path(),
        Options {
            durable: false,
            ..Options::default()
        },
    )
    .expect("open");
    let mut tickets = Vec::with_capacity(8192);
    for i in 0..n {
        let controls = if i % 10 == 0 {
            serde_json::json!(["hipaa/164.312(b)", "hipaa/164.502(b)", "soc2/CC6.1"])
        } else {
            serde_json::json!(["hipaa/164.312(b)", "soc2/CC7.2"])
        };
        tickets.push(
            log.append(Draft {
                event: "decision".into(),
                decision: if i % 10 == 0 { "deny" } else { "allow" }.into(),
                detail: serde_json::json!({"controls": controls, "reason": "rule_allow"}),
                ..Draft::default()
            })
            .expect("append"),
        );
        if tickets.len() == 8192 {
            for t in tickets.drain(..) {
                t.wait().expect("written");
            }
        }
    }
    for t in tickets {
        t.wait().expect("written");
    }
    let started = Instant::now();
    let r = report::build(
        &log,
        cats.get("hipaa").expect("hipaa"),
        "0000",
        "9999",
        &mut |_, _| {},
    )
    .expect("report");
    let html = r.to_html();
    println!(
        "report over {n} audit entries (hipaa, HTML {} KiB): {:.2} s",
        html.len() / 1024,
        started.elapsed().as_secs_f64()
    );
}
