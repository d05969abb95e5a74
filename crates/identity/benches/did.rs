use agentmesh_identity::{Did, KeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let kp = KeyPair::from_seed(&[1; 32]);
    let text = kp.did().to_string();
    c.bench_function("identity/did parse", |b| {
        b.iter(|| Did::parse(black_box(&text)).expect("valid"))
    });
    let did = kp.did();
    c.bench_function("identity/did to_string", |b| {
        b.iter(|| black_box(&did).to_string())
    });
    c.bench_function("identity/did public_key (point decompression)", |b| {
        b.iter(|| black_box(&did).public_key().expect("valid"))
    });
    c.bench_function("identity/keygen + DID (cf. AgentIdentity.create)", |b| {
        b.iter(|| KeyPair::generate().expect("rng").did().to_string())
    });
    // 1 KiB, as the Python baseline measures.
    let msg = [0u8; 1024];
    let sig = kp.sign("bench", &msg);
    c.bench_function("identity/ed25519 sign 1 KiB", |b| {
        b.iter(|| kp.sign("bench", black_box(&msg)))
    });
    let pk = *kp.public();
    c.bench_function("identity/ed25519 verify 1 KiB", |b| {
        b.iter(|| pk.verify("bench", black_box(&msg), &sig).expect("valid"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
