use agentmesh_capability::parse_list;
use agentmesh_delegation::{
    AgentStatus, Grant, HolderProof, MemoryDirectory, ReplayGuard, Token, VerifiedCache,
    VerifyOptions, verify,
};
use agentmesh_identity::KeyPair;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const T0: u64 = 1_800_000_000;

fn seed() -> (Token, MemoryDirectory, KeyPair) {
    let sponsor = KeyPair::from_seed(&[1; 32]);
    let a = KeyPair::from_seed(&[0xa; 32]);
    let b = KeyPair::from_seed(&[0xb; 32]);
    let c = KeyPair::from_seed(&[0xc; 32]);
    let mut dir = MemoryDirectory::new();
    let caps = |s: &str| parse_list(s).expect("caps");
    dir.add_sponsor(sponsor.did(), "alice@company.com", caps("*"), true);
    dir.add_agent(
        a.did(),
        "a",
        sponsor.did(),
        caps("read:*,write:*,delete:*"),
        AgentStatus::Active,
    );
    dir.add_agent(
        b.did(),
        "b",
        sponsor.did(),
        caps("read:*,write:reports"),
        AgentStatus::Active,
    );
    dir.add_agent(
        c.did(),
        "c",
        sponsor.did(),
        caps("read:public-data"),
        AgentStatus::Active,
    );
    let g = |to: &KeyPair, c: &str| Grant {
        audience: to.did(),
        capabilities: caps(c),
        not_before: T0,
        expires_at: T0 + 3600,
        max_depth: None,
    };
    let t = Token::issue_root(&sponsor, g(&a, "read:*,write:*,delete:*"))
        .and_then(|t| t.delegate(&a, g(&b, "read:*,write:reports")))
        .and_then(|t| t.delegate(&b, g(&c, "read:public-data")))
        .expect("seed chain");
    (t, dir, c)
}

fn bench(cr: &mut Criterion) {
    let (token, dir, c) = seed();
    let opts = VerifyOptions::at(T0 + 10);
    cr.bench_function("delegation/verify 3-link uncached", |b| {
        b.iter(|| verify(black_box(token.as_str()), &dir, opts).expect("valid"))
    });
    let cache = VerifiedCache::new(1024);
    cache.verify(token.as_str(), &dir, opts).expect("valid");
    cr.bench_function("delegation/verify 3-link cache hit", |b| {
        b.iter(|| {
            cache
                .verify(black_box(token.as_str()), &dir, opts)
                .expect("valid")
        })
    });
    cr.bench_function("delegation/parse 3-link token", |b| {
        b.iter(|| Token::parse(black_box(token.as_str())).expect("valid"))
    });
    let chain = verify(token.as_str(), &dir, opts).expect("valid");
    let guard = ReplayGuard::new(60, 10_000_000);
    let mut n = 0u64;
    cr.bench_function("delegation/holder proof verify", |b| {
        b.iter_batched(
            || {
                n += 1;
                let mut digest = [0u8; 32];
                digest[..8].copy_from_slice(&n.to_be_bytes());
                (HolderProof::create(&c, &token, &digest, T0 + 10), digest)
            },
            |(proof, digest)| {
                guard
                    .verify(&chain, &proof, &digest, T0 + 10)
                    .expect("valid")
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
