use agentmesh_capability::{Capability, covers, covers_all, parse_list};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let granted = Capability::parse("read:customer-data:*").expect("cap");
    let requested = Capability::parse("read:customer-data:eu").expect("cap");
    c.bench_function("capability/covers", |b| {
        b.iter(|| covers(black_box(&granted), black_box(&requested)))
    });
    let grants = parse_list("read:*,write:reports,delete:tmp:*").expect("list");
    let wanted = parse_list("read:public-data,write:reports:q3").expect("list");
    c.bench_function("capability/covers_all 3x2", |b| {
        b.iter(|| covers_all(black_box(&grants), black_box(&wanted)))
    });
    c.bench_function("capability/parse", |b| {
        b.iter(|| Capability::parse(black_box("write:reports:weekly")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
