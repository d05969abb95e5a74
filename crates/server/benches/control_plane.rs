//! The control plane's bulk and lookup paths over real HTTP, on the
//! embedded SQLite registry and (when `AGENTMESH_TEST_POSTGRES_URL` is set)
//! on PostgreSQL:
//!
//! * bulk registration: `POST /v1/agents/bulk` with 10 000 agents per
//!   request (each sponsorship signed by the sponsor's key, one transaction
//!   per batch, one audit entry per batch) → registrations per second;
//! * lookup with `AGENT_BENCH_TOTAL` agents registered (default 10⁶;
//!   `QUICK=1`: 50 000): `GET /v1/agents/{name}` (registry row + trust) and
//!   the registry's `agent_by_did` directly, p50 / p99 over 10 000 random
//!   agents.
//!
//! Run: `cargo bench -p agentmesh-server --bench control_plane`.

use agentmesh_identity::KeyPair;
use agentmesh_server::client::ControlPlane;
use agentmesh_server::{AppState, ServeConfig};
use agentmesh_store::{Mesh, MeshHome, Registry, SqlRegistry, unix_now};
use hyper::Method;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-admin-token-0123456789";
const BATCH: usize = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(backend: &str, database: Option<String>, total: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let home = MeshHome::init(&dir.path().join("home"), "bench.local", unix_now())
        .await
        .expect("home");
    let sql = match &database {
        Some(url) => SqlRegistry::connect_postgres(url).await.expect("pg"),
        None => home.registry().await.expect("sqlite"),
    };
    let mesh = Mesh::new(home, Arc::new(sql.clone()));
    let state = AppState::new(mesh, sql.clone(), TOKEN, ServeConfig::default())
        .await
        .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(agentmesh_server::serve(
        state,
        listener,
        std::future::pending(),
    ));
    let cp = ControlPlane::new(&format!("http://{addr}"), Some(TOKEN)).expect("client");
    cp.call(
        Method::POST,
        "/v1/sponsors",
        Some(&json!({"email": "bench@example.com"})),
    )
    .await
    .expect("sponsor");

    // Keys are the agents' business; make them outside the timing.
    let mut registered = 0usize;
    let mut timed = Duration::ZERO;
    let mut timed_count = 0usize;
    while registered < total {
        let n = BATCH.min(total - registered);
        let agents: Vec<_> = (registered..registered + n)
            .map(|i| {
                let mut seed = [7u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let k = KeyPair::from_seed(&seed);
                json!({"name": format!("agent-{i:07}"), "did": k.did().to_string(), "capabilities": ["read:*", "call:tools:*"]})
            })
            .collect();
        let body = json!({"sponsor": "bench@example.com", "agents": agents});
        let started = Instant::now();
        cp.call(Method::POST, "/v1/agents/bulk", Some(&body))
            .await
            .expect("bulk");
        let took = started.elapsed();
        // The first 100 000 are the registration-rate figure.
        if registered < 100_000 {
            timed += took;
            timed_count += n;
        }
        registered += n;
    }
    let rate = timed_count as f64 / timed.as_secs_f64();
    println!(
        "{backend}: bulk registration over HTTP: {timed_count} agents in {:.2} s = {rate:.0} registrations/s",
        timed.as_secs_f64()
    );

    // Steady state, not the minutes after a bulk load: statistics
    // refreshed (PostgreSQL's autovacuum would otherwise be doing it, on the
    // same two cores, during the measurement) and one warm-up pass.
    let maintenance = match sql.backend() {
        agentmesh_store::Backend::Postgres => "VACUUM ANALYZE agents",
        agentmesh_store::Backend::Sqlite => "ANALYZE",
    };
    sqlx::raw_sql(maintenance)
        .execute(sql.pool())
        .await
        .expect("analyze");
    for i in 0..10_000usize {
        let name = format!("agent-{:07}", (i * 7919) % total);
        cp.call(Method::GET, &format!("/v1/agents/{name}"), None)
            .await
            .expect("warm-up");
    }

    // Lookups, with `total` agents registered.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % total as u64) as usize
    };
    let mut api = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let name = format!("agent-{:07}", next());
        let started = Instant::now();
        cp.call(Method::GET, &format!("/v1/agents/{name}"), None)
            .await
            .expect("lookup");
        api.push(started.elapsed());
    }
    api.sort();
    let mut direct = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let i = next();
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let did = KeyPair::from_seed(&seed).did();
        let started = Instant::now();
        let a = sql.agent_by_did(&did).await.expect("lookup");
        direct.push(started.elapsed());
        assert!(a.is_some());
    }
    direct.sort();
    println!(
        "{backend}: lookup with {total} agents: GET /v1/agents/{{name}} p50 {:?} p99 {:?}; registry agent_by_did p50 {:?} p99 {:?}",
        percentile(&api, 0.5),
        percentile(&api, 0.99),
        percentile(&direct, 0.5),
        percentile(&direct, 0.99),
    );
    server.abort();
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let total: usize = std::env::var("AGENT_BENCH_TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::var_os("QUICK").is_some() {
            50_000
        } else {
            1_000_000
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        run("sqlite", None, total).await;
        match std::env::var("AGENTMESH_TEST_POSTGRES_URL") {
            Ok(base) => {
                let url = agentmesh_store::postgres_test_schema(&base)
                    .await
                    .expect("schema");
                run("postgres", Some(url), total).await;
            }
            Err(_) => println!("postgres: skipped (AGENTMESH_TEST_POSTGRES_URL is not set)"),
        }
    });
}
