//! Audit log benchmarks.
//!
//! * in-memory hashing: leaf hash + tree update, and full encode + hash;
//! * durable appends per second with group commit (8 appender threads,
//!   pipelined), and the latency of one append waited for alone;
//! * inclusion proof generation and verification on a large log
//!   (`AUDIT_BENCH_LEAVES`, default 1,000,000; docs use 10,000,000);
//! * full offline verification of that log.

use agentmesh_audit::tree::{Frontier, Hash};
use agentmesh_audit::{AuditLog, Draft, Entry, Options, leaf_hash, verify_inclusion, verify_log};
use criterion::Criterion;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

fn decision(i: u64) -> Draft {
    Draft {
        event: "decision".into(),
        agent: "did:mesh:z6MkqtoBGLXbxcEawgsV8eKM9c2jpXwuFWgGJ5ruXLMT9mrQ".into(),
        sponsor: "alice@company.com".into(),
        action: "read_file".into(),
        arguments_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        decision: "allow".into(),
        rule: "policy-for-data-analyst-agent/require-high-trust".into(),
        policy_version: "48d22fb75d4ab580".into(),
        trust_before: Some(0.82),
        trust_after: Some(0.8201),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        detail: serde_json::json!({"protocol": "mcp", "n": i}),
    }
}

fn percentiles(name: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    let p = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] as f64 / 1000.0
    };
    println!(
        "{name:<52} p50 {:>8.3} µs   p99 {:>8.3} µs   (n={})",
        p(0.5),
        p(0.99),
        samples.len()
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let entry = Entry {
        seq: 123_456,
        time: "2026-11-26T15:04:16.123Z".into(),
        draft: decision(1),
    };
    let bytes = entry.to_bytes();
    println!("entry size: {} bytes", bytes.len());
    c.bench_function("audit/leaf hash (one entry)", |b| {
        b.iter(|| leaf_hash(black_box(&bytes)))
    });
    let mut f = Frontier::new();
    c.bench_function("audit/leaf hash + tree update (in memory)", |b| {
        b.iter(|| {
            let h = leaf_hash(black_box(&bytes));
            f.push(h, |_, _, n| {
                black_box(n);
            });
        })
    });
    c.bench_function("audit/encode + leaf hash + tree update", |b| {
        b.iter(|| {
            let h = leaf_hash(&black_box(&entry).to_bytes());
            f.push(h, |_, _, n| {
                black_box(n);
            });
        })
    });
    c.final_summary();

    // Durable appends with group commit.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(AuditLog::open(dir.path(), Options::default()).expect("open"));
    let total: u64 = 200_000;
    let threads = 8;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut pending = Vec::with_capacity(256);
                for i in 0..total / threads {
                    pending.push(log.append(decision(t * 1_000_000 + i)).expect("append"));
                    if pending.len() == 256 {
                        for p in pending.drain(..) {
                            p.wait().expect("durable");
                        }
                    }
                }
                for p in pending {
                    p.wait().expect("durable");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "durable appends, group commit, {threads} appenders: {total} in {secs:.2} s = {:.0} appends/s",
        total as f64 / secs
    );
    let mut lat = Vec::with_capacity(2000);
    for i in 0..2000 {
        let t = Instant::now();
        log.append_wait(decision(i)).expect("append");
        lat.push(t.elapsed().as_nanos() as u64);
    }
    percentiles("one durable append waited for alone (fsync each)", lat);
    let mut lat = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let t = Instant::now();
        black_box(log.append(decision(i)).expect("append"));
        lat.push(t.elapsed().as_nanos() as u64);
    }
    percentiles("append enqueue (caller's cost, non-blocking)", lat);
    drop(log);

    // A large log for proofs and full verification.
    let n: u64 = std::env::var("AUDIT_BENCH_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let big = tempfile::tempdir_in(
        std::env::var("AUDIT_BENCH_DIR")
            .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .expect("tempdir");
    let opts = Options {
        durable: false,
        ..Options::default()
    };
    let started = Instant::now();
    {
        let log = AuditLog::open(big.path(), opts.clone()).expect("open");
        let mut pending = Vec::with_capacity(8192);
        for i in 0..n {
            pending.push(
                log.append(Draft {
                    event: "bulk".into(),
                    detail: serde_json::json!(i),
                    ..Draft::default()
                })
                .expect("append"),
            );
            if pending.len() == 8192 {
                for p in pending.drain(..) {
                    p.wait().expect("written");
                }
            }
        }
        for p in pending {
            p.wait().expect("written");
        }
        log.close().expect("close");
    }
    println!(
        "built a {n}-entry log in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = AuditLog::open_read_only(big.path()).expect("reopen");
    let root = log.root(n).expect("root");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    // Warm the tile cache the way a serving node is warm.
    for _ in 0..20_000 {
        black_box(log.inclusion_proof(next(), n).expect("proof"));
    }
    let mut gen_lat = Vec::with_capacity(50_000);
    let mut proofs: Vec<(u64, Hash, Vec<Hash>)> = Vec::with_capacity(2000);
    for k in 0..50_000 {
        let i = next();
        let t = Instant::now();
        let p = log.inclusion_proof(i, n).expect("proof");
        gen_lat.push(t.elapsed().as_nanos() as u64);
        if k < 2000 {
            proofs.push((i, log.entry(i).expect("entry").leaf_hash, p));
        }
    }
    percentiles(&format!("inclusion proof generate at {n} leaves"), gen_lat);
    let mut ver_lat = Vec::with_capacity(proofs.len() * 10);
    for _ in 0..10 {
        for (i, leaf, p) in &proofs {
            let t = Instant::now();
            verify_inclusion(leaf, *i, n, p, &root).expect("verifies");
            ver_lat.push(t.elapsed().as_nanos() as u64);
        }
    }
    percentiles(&format!("inclusion proof verify at {n} leaves"), ver_lat);
    let started = Instant::now();
    let report = verify_log(big.path(), &[], None, &mut |_, _| {}).expect("verify");
    assert!(report.ok() && report.entries == n);
    println!(
        "full offline verification of {n} entries: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
