//! The trust handshake: the full round trip over loopback HTTP (challenge,
//! the prover's check of the verifier, response, the verifier's checks and
//! the signed attestation, the prover's check of it), p50 / p99; and the
//! same work in process, without HTTP, to show what is crypto.
//!
//! `cargo bench -p agentmesh-iatp` (QUICK=1 for a short run).

use agentmesh_iatp::http::{HandshakeClient, Service};
use agentmesh_iatp::{
    Attestation, Channel, Directory, PeerFacts, Response, Verifier, VerifierConfig, origin_channel,
};
use agentmesh_identity::{Did, KeyPair};
use criterion::Criterion;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

struct Dir(HashMap<[u8; 32], PeerFacts>);

impl Directory for Dir {
    fn peer(&self, did: &Did) -> Option<PeerFacts> {
        self.0.get(did.key_bytes()).cloned()
    }
}

fn facts(name: &str) -> PeerFacts {
    PeerFacts {
        name: name.into(),
        inactive: None,
        trust: 0.8,
        tier: "trusted".into(),
        capabilities: vec!["read:reports".into()],
    }
}

fn main() {
    let verifier_key = KeyPair::from_seed(&[1; 32]);
    let prover = KeyPair::from_seed(&[2; 32]);
    let mut map = HashMap::new();
    map.insert(*verifier_key.did().key_bytes(), facts("verifier"));
    map.insert(*prover.did().key_bytes(), facts("prover"));
    let dir = Arc::new(Dir(map));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let service = Arc::new(Service {
        verifier: Verifier::new(KeyPair::from_seed(&[1; 32]), VerifierConfig::default()),
        directory: dir.clone(),
        origins: vec![base.clone()],
        manifest: None,
        on_outcome: None,
    });
    rt.spawn(async move {
        let _ = axum::serve(listener, agentmesh_iatp::http::router(service)).await;
    });
    let client = HandshakeClient::new();
    let verifier_did = verifier_key.did();
    let n = if std::env::var_os("QUICK").is_some() {
        500
    } else {
        5_000
    };
    let mut us: Vec<f64> = Vec::with_capacity(n);
    rt.block_on(async {
        for i in 0..n + n / 10 {
            let t = Instant::now();
            let done = client
                .handshake(&base, &prover, Some(&verifier_did), &*dir, 0.5)
                .await
                .expect("handshake");
            let took = t.elapsed().as_secs_f64() * 1e6;
            black_box(done);
            if i >= n / 10 {
                us.push(took);
            }
        }
    });
    us.sort_by(f64::total_cmp);
    let p = |q: f64| us[((us.len() as f64 * q) as usize).min(us.len() - 1)];
    println!(
        "iatp/full handshake over loopback HTTP (2 round trips)  p50 {:>8.1} µs   p99 {:>8.1} µs   (n={n})",
        p(0.5),
        p(0.99)
    );

    // The same work in process: what the signatures cost.
    let v = Verifier::new(
        KeyPair::from_seed(&[1; 32]),
        VerifierConfig {
            max_outstanding: 1 << 24,
            ..VerifierConfig::default()
        },
    );
    let origins = vec![base.clone()];
    let mut crit = Criterion::default().configure_from_args();
    crit.bench_function("iatp/handshake in process (3 signs, 4 verifies)", |b| {
        b.iter(|| {
            let c = v.challenge(Some(&prover.did()), 100).expect("challenge");
            agentmesh_iatp::check_verifier(&c, None, &*dir, 0.5, 100).expect("verifier ok");
            let r = Response::answer(&c, &prover, &origin_channel(&base)).expect("randomness");
            let done = v
                .verify(&r, Channel::Origins(&origins), &*dir, 101)
                .expect("verified");
            black_box(Attestation::decode(&done.text).expect("attestation"));
        })
    });
    crit.final_summary();
}
