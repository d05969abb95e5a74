//! The in-process pipeline: authenticate (credential cache hit), re-check a
//! 3-link delegation chain (cache hit), and decide against a 100-rule
//! policy with a rate limit, compliance off, the audit leaf queued to a
//! durable log and the trust event applied. Criterion reports means; a
//! second pass times single calls for p50/p99.

use agentmesh_capability::{Capability, parse_list};
use agentmesh_delegation::{HolderProof, Token};
use agentmesh_engine::{Call, Engine, EngineConfig, Presented, credential};
use agentmesh_policy::schema::DataAttrs;
use agentmesh_policy::{PolicyHandle, PolicySet};
use agentmesh_store::{KeyKind, Mesh, MeshHome, NewAgent, NewDelegation, unix_now};
use criterion::Criterion;
use std::hint::black_box;
use std::time::Instant;

// As in the `agentmesh` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn hundred_rules() -> PolicySet {
    let mut y = String::from(
        "name: hundred\nagents: [\"*\"]\nrules:\n  - name: quota\n    condition: \"action.tool == 'fs.read_file'\"\n    limit: \"1000000000/second\"\n",
    );
    for i in 0..99 {
        let action = if i % 3 == 0 { "deny" } else { "allow" };
        y.push_str(&format!(
            "  - name: r{i}\n    condition: \"action.type == 'type_{i}' && agent.trust_score >= 0.{}\"\n    action: {action}\n    priority: {}\n",
            i % 9 + 1,
            i % 7
        ));
    }
    y.push_str("  - name: reads\n    condition: \"action.tool == 'fs.read_file' && !request.arguments.path.startsWith('/etc/')\"\n    action: allow\n");
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
        "{name:<52} p50 {:>7.3} µs   p99 {:>7.3} µs   (n={iters})",
        p(0.50),
        p(0.99)
    );
}

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
    credential: String,
    /// An IATP attestation for a3, issued by the mesh key (a trusted issuer).
    attestation: String,
    chain_principal: agentmesh_engine::Principal,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = unix_now();
    let home = MeshHome::init(&dir.path().join("home"), "example.org", now)
        .await
        .expect("init");
    let mesh = Mesh::open(home).await.expect("open");
    mesh.create_sponsor("alice@company.com", None, now)
        .await
        .expect("sponsor");
    for name in ["a1", "a2", "a3"] {
        mesh.create_agent(
            NewAgent {
                name: name.into(),
                sponsor: "alice@company.com".into(),
                capabilities: parse_list("call:fs:*").expect("caps"),
                parent: None,
                expires_at: None,
            },
            now,
        )
        .await
        .expect("agent");
    }
    let mut token: Option<String> = None;
    for (from, to) in [("alice@company.com", "a1"), ("a1", "a2"), ("a2", "a3")] {
        let t = mesh
            .delegate(
                NewDelegation {
                    from: from.into(),
                    to: to.into(),
                    capabilities: None,
                    ttl_secs: 3600,
                    max_depth: token.is_none().then_some(4),
                    parent_token: token.clone(),
                },
                now,
            )
            .await
            .expect("delegate");
        token = Some(t.as_str().to_owned());
    }
    let token = token.expect("3-link token");
    let engine = Engine::start(
        mesh.clone(),
        PolicyHandle::new(hundred_rules()),
        EngineConfig {
            audience: "bench".into(),
            attestation_issuers: vec![*mesh.home().mesh_key().expect("mk").public()],
            ..EngineConfig::default()
        },
    )
    .await
    .expect("engine");
    let key = mesh.home().read_key(KeyKind::Agent("a3")).expect("key");
    let proof = HolderProof::create(&key, &Token::parse(&token).expect("t"), &[1; 32], now);
    let chain_principal = engine
        .authenticate(Presented::Delegation {
            token: &token,
            proof: &proof.to_text(),
            request_digest: [1; 32],
        })
        .expect("chain principal");
    let a3 = mesh.agent("a3").await.expect("a3");
    let (credential, _) = credential::issue(
        &mesh.home().mesh_key().expect("mk"),
        &a3.did,
        "bench",
        3600,
        now,
    );
    let attestation = agentmesh_iatp::Attestation {
        v: 1,
        id: "bench-handshake".into(),
        iss: mesh.home().mesh_key().expect("mk").did().to_string(),
        sub: a3.did.to_mesh().to_string(),
        name: "a3".into(),
        aud: "*".into(),
        trust_milli: 500,
        tier: "standard".into(),
        capabilities: vec!["call:fs:*".into()],
        iat: now,
        exp: now + 3600,
        transcript: "AAAA".into(),
    }
    .encode(&mesh.home().mesh_key().expect("mk"));
    Setup {
        _dir: dir,
        engine,
        credential,
        attestation,
        chain_principal,
    }
}

fn call() -> Call {
    // ~1 KB of arguments, as in the gateway benchmark.
    let args = serde_json::json!({"path": "/srv/data/report.csv", "padding": "x".repeat(960)});
    Call {
        protocol: "mcp",
        method: "tools/call".into(),
        kind: "tool_call",
        target: "fs.read_file".into(),
        tool: "fs.read_file".into(),
        capability: Capability::parse("call:fs:read_file").expect("cap"),
        arguments: Some(args),
        data: DataAttrs::default(),
        upstream: Some("fs".into()),
        trace_id: None,
        note: None,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(setup());
    let _guard = rt.enter();
    let c = call();
    let full = || {
        let p = s
            .engine
            .authenticate(Presented::Credential(&s.credential))
            .expect("credential");
        s.engine.revalidate(&s.chain_principal).expect("chain");
        let v = s.engine.decide(&p, &c);
        assert!(v.allowed(), "{}", v.decision.message);
        black_box(v);
    };
    let mut crit = Criterion::default().configure_from_args();
    crit.bench_function("engine/authenticate credential (cache hit)", |b| {
        b.iter(|| {
            black_box(
                s.engine
                    .authenticate(Presented::Credential(&s.credential))
                    .expect("ok"),
            )
        })
    });
    crit.bench_function("engine/authenticate IATP attestation (cache hit)", |b| {
        b.iter(|| {
            black_box(
                s.engine
                    .authenticate(Presented::Attestation(&s.attestation))
                    .expect("ok"),
            )
        })
    });
    crit.bench_function("engine/revalidate 3-link chain (cache hit)", |b| {
        b.iter(|| s.engine.revalidate(&s.chain_principal).expect("ok"))
    });
    crit.bench_function(
        "engine/decide: credential + chain + 100 rules + limit + audit + trust",
        |b| b.iter(full),
    );
    // What the audit writer thread pays per decision leaf (off the
    // caller's path, but it bounds sustained throughput).
    let args = c.arguments.clone();
    crit.bench_function(
        "writer/arguments digest (canonical JSON + SHA-256, 1 KB)",
        |b| b.iter(|| black_box(agentmesh_policy::arguments_digest(args.as_ref()))),
    );
    let sample = s
        .engine
        .audit()
        .expect("holds the log")
        .entry(5)
        .expect("a decision leaf");
    crit.bench_function("writer/entry encode (decision leaf)", |b| {
        b.iter(|| black_box(sample.entry.to_bytes()))
    });
    crit.bench_function("writer/leaf hash (decision leaf)", |b| {
        b.iter(|| black_box(agentmesh_audit::leaf_hash(&sample.bytes)))
    });
    println!("decision leaf: {} bytes", sample.bytes.len());
    crit.final_summary();
    percentiles(
        "engine/decide full path (1 KB args)",
        if std::env::var_os("QUICK").is_some() {
            20_000
        } else {
            200_000
        },
        full,
    );
    percentiles(
        "engine/attested-caller check (IATP attestation, cached)",
        if std::env::var_os("QUICK").is_some() {
            20_000
        } else {
            200_000
        },
        || {
            black_box(
                s.engine
                    .authenticate(Presented::Attestation(&s.attestation))
                    .expect("attested"),
            );
        },
    );
    let log = s.engine.audit().expect("holds the log");
    let queued = log.size();
    rt.block_on(async {
        let _ = s.engine.shutdown().await;
    });
    println!("audit entries written: {queued}+ (durable, group-committed)");
}
