//! Policy benchmarks: one condition, the seed policy, the Python
//! baseline's 5-rule policy and a 100-rule policy. Criterion reports means;
//! a second pass times each call to report p50/p99 (timer overhead
//! ~20–30 ns included, so the percentiles are slightly pessimistic).

use agentmesh_policy::{
    DecideContext, MemoryLimiter, PolicySet, Request, compile_condition, eval_condition,
};
use criterion::Criterion;
use std::hint::black_box;
use std::time::Instant;

const NOW_NS: u64 = 1_800_000_000_000_000_000;

fn req(v: serde_json::Value) -> Request {
    serde_json::from_value(v).expect("request")
}

fn seed() -> PolicySet {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies/seed.yaml");
    PolicySet::from_file(&p).expect("seed")
}

/// The Python baseline's policy (../shared/bench/agentmesh_py_baseline.py).
const BASELINE_5: &str = r#"
name: bench
agents: ["*"]
default_action: deny
rules:
  - name: r1
    condition: "action.type == 'delete'"
    action: deny
    priority: 100
  - name: r2
    condition: "action.type == 'export' and data.contains_pii"
    action: deny
    priority: 90
  - name: r3
    condition: "action.tool == 'shell' or action.tool == 'exec'"
    action: deny
    priority: 80
  - name: r4
    condition: "user.role == 'admin'"
    action: allow
    priority: 70
  - name: r5
    condition: "action.type == 'read'"
    action: allow
    priority: 10
"#;

fn hundred_rules() -> PolicySet {
    let mut y = String::from("name: hundred\nagents: [\"*\"]\nrules:\n");
    for i in 0..100 {
        let action = if i % 3 == 0 { "deny" } else { "allow" };
        y.push_str(&format!(
            "  - name: r{i}\n    condition: \"action.type == 'type_{i}' && agent.trust_score >= 0.{}\"\n    action: {action}\n    priority: {}\n",
            i % 9 + 1,
            i % 7
        ));
    }
    PolicySet::from_yaml(&y, "hundred.yaml").expect("100-rule policy")
}

fn percentiles(name: &str, iters: usize, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let mut ns: Vec<u64> = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    println!(
        "{name:<48} p50 {:>7.3} µs   p99 {:>7.3} µs   (n={iters})",
        p(0.50),
        p(0.99)
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();

    let cond = compile_condition("agent.trust_score >= 0.6").expect("condition");
    let seed_cond =
        compile_condition("action.type == 'export' and data.contains_pii").expect("condition");
    let r_trusted = req(serde_json::json!({
        "agent": {"name": "data-analyst-agent", "sponsor": "alice@company.com", "trust_score": 0.9,
                  "capabilities": ["read:customer-data", "write:reports"]},
        "action": {"type": "export", "capability": "read:customer-data"},
        "data": {"contains_pii": false}
    }));
    c.bench_function("policy/condition trust_score >= 0.6", |b| {
        b.iter(|| eval_condition(black_box(&cond), black_box(&r_trusted)))
    });
    c.bench_function("policy/condition export and contains_pii", |b| {
        b.iter(|| eval_condition(black_box(&seed_cond), black_box(&r_trusted)))
    });

    let seed = seed();
    let limiter = MemoryLimiter::new();
    let ctx = DecideContext {
        limiter: Some(&limiter),
        approvals: None,
        now_ns: NOW_NS,
    };
    c.bench_function("policy/seed decide (allow, capability gate)", |b| {
        b.iter(|| seed.decide(black_box(&r_trusted), &ctx))
    });

    let five = PolicySet::from_yaml(BASELINE_5, "bench.yaml").expect("5 rules");
    let first = req(serde_json::json!({"action": {"type": "delete"}}));
    let last = req(
        serde_json::json!({"action": {"type": "read", "tool": "fs"}, "user": {"role": "dev"}, "data": {"contains_pii": false}}),
    );
    let none = req(
        serde_json::json!({"action": {"type": "write", "tool": "fs"}, "user": {"role": "dev"}}),
    );
    let bare = DecideContext::bare(1_800_000_000);
    c.bench_function("policy/baseline 5 rules (match 1st)", |b| {
        b.iter(|| five.decide(black_box(&first), &bare))
    });
    c.bench_function("policy/baseline 5 rules (match last)", |b| {
        b.iter(|| five.decide(black_box(&last), &bare))
    });
    c.bench_function("policy/baseline 5 rules (no match)", |b| {
        b.iter(|| five.decide(black_box(&none), &bare))
    });

    let hundred = hundred_rules();
    let r100_hit =
        req(serde_json::json!({"agent": {"trust_score": 0.95}, "action": {"type": "type_99"}}));
    let r100_miss =
        req(serde_json::json!({"agent": {"trust_score": 0.95}, "action": {"type": "nothing"}}));
    c.bench_function("policy/100 rules decide (last matches)", |b| {
        b.iter(|| hundred.decide(black_box(&r100_hit), &bare))
    });
    c.bench_function("policy/100 rules decide (none matches)", |b| {
        b.iter(|| hundred.decide(black_box(&r100_miss), &bare))
    });
    c.final_summary();

    println!("\npercentiles (each call timed individually):");
    percentiles("condition trust_score >= 0.6", 200_000, || {
        black_box(eval_condition(black_box(&cond), black_box(&r_trusted)).ok());
    });
    percentiles("seed decide (allow, capability gate)", 200_000, || {
        black_box(seed.decide(black_box(&r_trusted), &ctx));
    });
    percentiles("baseline 5 rules (match last)", 200_000, || {
        black_box(five.decide(black_box(&last), &bare));
    });
    percentiles("100 rules decide (last matches)", 100_000, || {
        black_box(hundred.decide(black_box(&r100_hit), &bare));
    });
    percentiles("100 rules decide (none matches)", 100_000, || {
        black_box(hundred.decide(black_box(&r100_miss), &bare));
    });
}
