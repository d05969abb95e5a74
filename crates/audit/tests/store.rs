//! The durable log: appends, reads, proofs, checkpoints, reopening, and
//! tampering (every single-byte flip is detected and located).

use agentmesh_audit::note::{NoteSigner, verify_checkpoint};
use agentmesh_audit::tree::{self, MemoryTree};
use agentmesh_audit::{
    AuditError, AuditLog, Draft, Options, verify_consistency, verify_inclusion, verify_log,
};
use agentmesh_identity::KeyPair;
use std::path::Path;

fn draft(i: u64) -> Draft {
    Draft {
        event: "decision".into(),
        agent: format!("did:mesh:agent{}", i % 7),
        sponsor: "alice@company.com".into(),
        action: "read_file".into(),
        decision: if i.is_multiple_of(3) { "deny" } else { "allow" }.into(),
        rule: "p/r".into(),
        policy_version: "v1".into(),
        trust_before: Some(0.5),
        trust_after: Some(0.51),
        detail: serde_json::json!({"i": i}),
        ..Draft::default()
    }
}

fn fill(log: &AuditLog, n: u64) {
    let tickets: Vec<_> = (0..n)
        .map(|i| log.append(draft(i)).expect("append"))
        .collect();
    for t in tickets {
        t.wait().expect("durable");
    }
}

fn signer() -> NoteSigner {
    NoteSigner::new("example.org/agentmesh/audit", KeyPair::from_seed(&[9; 32])).expect("signer")
}

#[test]
fn appends_read_back_and_prove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    assert_eq!(log.size(), 0);
    fill(&log, 1000);
    assert_eq!(log.size(), 1000);
    let mut mem = MemoryTree::new();
    for i in 0..1000 {
        let e = log.entry(i).expect("entry");
        assert_eq!(e.entry.seq, i);
        assert_eq!(e.entry.draft.detail["i"], i);
        mem.push(e.leaf_hash);
    }
    assert!(matches!(
        log.entry(1000),
        Err(AuditError::NoSuchEntry { .. })
    ));
    for size in [1, 2, 3, 255, 256, 257, 999, 1000] {
        let root = log.root(size).expect("root");
        assert_eq!(
            root,
            tree::root(&mem, size).expect("mem root"),
            "root {size}"
        );
        for i in [0, size / 2, size - 1] {
            let proof = log.inclusion_proof(i, size).expect("proof");
            verify_inclusion(&log.entry(i).expect("e").leaf_hash, i, size, &proof, &root)
                .expect("inclusion");
        }
        let old = size / 3 + 1;
        let proof = log.consistency_proof(old, size).expect("consistency");
        verify_consistency(old, size, &proof, &log.root(old).expect("r"), &root)
            .expect("consistency verifies");
    }
    assert!(log.root(1001).is_err(), "no proofs beyond the durable size");
}

#[test]
fn state_survives_reopen_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root_before;
    {
        let log = AuditLog::open(dir.path(), Options::default()).expect("open");
        fill(&log, 300);
        root_before = log.root(300).expect("root");
        log.close().expect("close");
    }
    let log = AuditLog::open(dir.path(), Options::default()).expect("reopen");
    assert_eq!(log.size(), 300);
    assert_eq!(log.root(300).expect("root"), root_before);
    let a = log.append_wait(draft(300)).expect("append");
    assert_eq!(a.index, 300);
    // Derived files deleted: rebuilt from the segments.
    log.close().expect("close");
    drop(log);
    std::fs::remove_file(dir.path().join("index.bin")).expect("rm index");
    std::fs::remove_dir_all(dir.path().join("tree")).expect("rm tree");
    std::fs::create_dir(dir.path().join("tree")).expect("mkdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("rebuild");
    assert_eq!(log.size(), 301);
    assert_eq!(log.root(300).expect("root"), root_before);
    assert_eq!(log.entry(300).expect("e").entry.draft.detail["i"], 300);
}

#[test]
fn small_segments_rotate() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Rotation happens between batches; small batches make it frequent.
    let opts = Options {
        segment_bytes: 4096,
        max_batch: 8,
        ..Options::default()
    };
    let log = AuditLog::open(dir.path(), opts.clone()).expect("open");
    fill(&log, 200);
    let root = log.root(200).expect("root");
    log.close().expect("close");
    drop(log);
    let segs = std::fs::read_dir(dir.path().join("segments"))
        .expect("dir")
        .count();
    assert!(segs > 5, "expected rotation, got {segs} segment(s)");
    let log = AuditLog::open(dir.path(), opts).expect("reopen");
    assert_eq!(log.root(200).expect("root"), root);
    for i in (0..200).step_by(17) {
        log.entry(i).expect("entry across segments");
    }
    let report = verify_log(dir.path(), &[], None, &mut |_, _| {}).expect("verify");
    assert!(report.ok() && report.entries == 200, "{report:?}");
}

#[test]
fn checkpoints_are_signed_consistent_and_verified_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    let s = signer();
    fill(&log, 10);
    let cp1 = log.checkpoint(&s).expect("checkpoint 1");
    let c1 = verify_checkpoint(&cp1, &s.verifier()).expect("verifies");
    assert_eq!(c1.size, 10);
    assert_eq!(
        log.checkpoint(&s).expect("same size again"),
        cp1,
        "no new checkpoint without new entries"
    );
    fill(&log, 25);
    let cp2 = log.checkpoint(&s).expect("checkpoint 2");
    assert_eq!(
        verify_checkpoint(&cp2, &s.verifier())
            .expect("verifies")
            .size,
        35
    );
    assert_eq!(log.latest_checkpoint().expect("latest"), Some(cp2.clone()));
    log.close().expect("close");
    let report = verify_log(
        dir.path(),
        &[cp1.clone(), cp2.clone()],
        Some(&s.verifier()),
        &mut |_, _| {},
    )
    .expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.checkpoints.len(), 2);
    // A checkpoint signed by another key is rejected.
    let other = NoteSigner::new("example.org/agentmesh/audit", KeyPair::from_seed(&[8; 32]))
        .expect("other");
    let report =
        verify_log(dir.path(), &[cp2], Some(&other.verifier()), &mut |_, _| {}).expect("verify");
    assert!(!report.ok());
}

fn record_boundaries(seg: &Path) -> Vec<usize> {
    let data = std::fs::read(seg).expect("segment");
    let mut out = vec![0];
    let mut pos = 0;
    while pos < data.len() {
        let len = u32::from_be_bytes([
            data[pos + 10],
            data[pos + 11],
            data[pos + 12],
            data[pos + 13],
        ]) as usize;
        pos += 14 + len + 32;
        out.push(pos);
    }
    out
}

#[test]
fn every_single_byte_flip_is_detected_and_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    fill(&log, 6);
    log.close().expect("close");
    drop(log);
    let seg = dir.path().join("segments/00000000000000000000.seg");
    let bounds = record_boundaries(&seg);
    let original = std::fs::read(&seg).expect("read");
    for pos in 0..original.len() {
        let mut bad = original.clone();
        bad[pos] ^= 0x20;
        std::fs::write(&seg, &bad).expect("write");
        let report = verify_log(dir.path(), &[], None, &mut |_, _| {}).expect("verify runs");
        let expected = bounds.iter().rposition(|b| *b <= pos).expect("record") as u64;
        let problem = report
            .problem
            .unwrap_or_else(|| panic!("flip at byte {pos} not detected"));
        assert_eq!(
            problem.index, expected,
            "flip at byte {pos}: {}",
            problem.reason
        );
    }
    std::fs::write(&seg, &original).expect("restore");
    assert!(
        verify_log(dir.path(), &[], None, &mut |_, _| {})
            .expect("verify")
            .ok()
    );
}

#[test]
fn reordering_and_truncation_are_caught_by_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    let s = signer();
    fill(&log, 8);
    let cp = log.checkpoint(&s).expect("checkpoint");
    log.close().expect("close");
    drop(log);
    let seg = dir.path().join("segments/00000000000000000000.seg");
    let original = std::fs::read(&seg).expect("read");
    let b = record_boundaries(&seg);

    // Truncate the last two records.
    std::fs::write(&seg, &original[..b[6]]).expect("truncate");
    let r = verify_log(
        dir.path(),
        std::slice::from_ref(&cp),
        Some(&s.verifier()),
        &mut |_, _| {},
    )
    .expect("verify");
    assert!(!r.ok());
    assert!(
        r.checkpoints[0].detail.contains("only 6 verify"),
        "{:?}",
        r.checkpoints
    );
    // Opening the truncated log fails too: 8 entries were acknowledged.
    match AuditLog::open(dir.path(), Options::default()) {
        Err(AuditError::Corrupt { index: 6, reason }) => {
            assert!(reason.contains("missing"), "{reason}")
        }
        other => panic!("expected the truncation to be reported at 6, got {other:?}"),
    }

    // Swap records 2 and 3 (each record rewritten consistently, sequence
    // numbers included, as an attacker with write access could).
    let mut swapped = original[..b[2]].to_vec();
    let rec = |i: usize| original[b[i]..b[i + 1]].to_vec();
    let (mut r2, mut r3) = (rec(2), rec(3));
    r2[2..10].copy_from_slice(&3u64.to_be_bytes());
    r3[2..10].copy_from_slice(&2u64.to_be_bytes());
    swapped.extend_from_slice(&r3);
    swapped.extend_from_slice(&r2);
    swapped.extend_from_slice(&original[b[4]..]);
    std::fs::write(&seg, &swapped).expect("swap");
    let r = verify_log(dir.path(), &[cp], Some(&s.verifier()), &mut |_, _| {}).expect("verify");
    assert!(!r.ok(), "a reordering must not verify: {r:?}");
    assert_eq!(
        r.problem.expect("problem").index,
        2,
        "the entry's own sequence number gives it away"
    );
}

#[test]
fn damage_covered_by_a_checkpoint_is_never_truncated_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    fill(&log, 5);
    log.checkpoint(&signer()).expect("checkpoint");
    // Force the last record to be after the durable state marker.
    log.close().expect("close");
    drop(log);
    std::fs::write(
        dir.path().join("state.json"),
        r#"{"size":0,"segment":0,"offset":0}"#,
    )
    .expect("reset state");
    let seg = dir.path().join("segments/00000000000000000000.seg");
    let mut data = std::fs::read(&seg).expect("read");
    let n = data.len();
    data[n - 40] ^= 1;
    std::fs::write(&seg, &data).expect("write");
    match AuditLog::open(dir.path(), Options::default()) {
        Err(AuditError::Corrupt { index: 4, reason }) => {
            assert!(reason.contains("checkpoint 5"), "{reason}")
        }
        other => panic!("expected corruption at 4, got {other:?}"),
    }
}

#[test]
fn a_torn_tail_is_set_aside_and_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    fill(&log, 5);
    log.close().expect("close");
    drop(log);
    std::fs::write(
        dir.path().join("state.json"),
        r#"{"size":0,"segment":0,"offset":0}"#,
    )
    .expect("reset state");
    let seg = dir.path().join("segments/00000000000000000000.seg");
    let data = std::fs::read(&seg).expect("read");
    std::fs::write(&seg, &data[..data.len() - 10]).expect("tear");
    let log = AuditLog::open(dir.path(), Options::default()).expect("recovers");
    assert_eq!(log.size(), 4);
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("segments"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".torn-"))
        .collect();
    assert_eq!(aside.len(), 1, "torn bytes are kept aside");
    assert_eq!(log.append_wait(draft(9)).expect("append").index, 4);
}

#[test]
fn proofs_from_a_million_entry_log_verify_with_only_checkpoint_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        durable: false,
        ..Options::default()
    };
    let log = AuditLog::open(dir.path(), opts).expect("open");
    let n: u64 = 1_000_000;
    let mut tickets = Vec::with_capacity(4096);
    for i in 0..n {
        tickets.push(
            log.append(Draft {
                event: "bulk".into(),
                detail: serde_json::json!(i),
                ..Draft::default()
            })
            .expect("append"),
        );
        if tickets.len() == 4096 {
            for t in tickets.drain(..) {
                t.wait().expect("written");
            }
        }
    }
    for t in tickets {
        t.wait().expect("written");
    }
    let s = signer();
    let note = log.checkpoint(&s).expect("checkpoint");
    // What a third party holds: the note text and the verifier key string.
    let vkey = s.verifier().to_vkey();
    let verifier = agentmesh_audit::note::NoteVerifier::parse_vkey(&vkey).expect("vkey");
    let cp = verify_checkpoint(&note, &verifier).expect("checkpoint verifies");
    assert_eq!(cp.size, n);
    for i in [0, 1, 4095, 4096, 123_457, 999_998, 999_999] {
        let e = log.entry(i).expect("entry");
        let proof = log.inclusion_proof(i, cp.size).expect("proof");
        assert!(
            proof.len() <= 20,
            "a proof at 10^6 leaves has at most 20 hashes"
        );
        verify_inclusion(
            &agentmesh_audit::leaf_hash(&e.bytes),
            i,
            cp.size,
            &proof,
            &cp.root,
        )
        .expect("inclusion");
    }
    let old = 654_321;
    let proof = log.consistency_proof(old, n).expect("consistency");
    verify_consistency(old, n, &proof, &log.root(old).expect("old root"), &cp.root)
        .expect("consistency");
}

#[test]
fn one_writer_at_a_time_and_readers_never_block_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    fill(&log, 10);
    assert!(matches!(
        AuditLog::open(dir.path(), Options::default()),
        Err(AuditError::Locked(_))
    ));
    // While the writer runs, a reader sees the prefix recorded in state.json.
    let reader = AuditLog::open_read_only(dir.path()).expect("reader");
    assert!(reader.size() <= 10);
    assert!(matches!(reader.append(draft(0)), Err(AuditError::Closed)));
    log.close().expect("close");
    drop(log);
    let reader = AuditLog::open_read_only(dir.path()).expect("reader after close");
    assert_eq!(reader.size(), 10);
    assert_eq!(reader.entry(9).expect("entry").entry.seq, 9);
    AuditLog::open(dir.path(), Options::default()).expect("the lock is free again");
}

#[test]
fn sequential_scan_reads_ranges_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        segment_bytes: 4096,
        max_batch: 8,
        ..Options::default()
    };
    let log = AuditLog::open(dir.path(), opts).expect("open");
    fill(&log, 120);
    let mut seen = Vec::new();
    log.scan(17, 103, &mut |i, e| {
        assert_eq!(e.seq, i);
        seen.push(i);
        true
    })
    .expect("scan");
    assert_eq!(seen, (17..103).collect::<Vec<_>>());
    let mut n = 0;
    log.scan(0, 1000, &mut |_, _| {
        n += 1;
        n < 10
    })
    .expect("scan stops early");
    assert_eq!(n, 10);
}

#[test]
fn deferred_appends_interleave_with_ready_ones_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    let mut waits = Vec::new();
    for i in 0..200u64 {
        if i % 2 == 0 {
            let q = log.append_deferred(move || draft(i)).expect("deferred");
            assert_eq!(q.index, i, "the index is known at once");
            waits.push(q);
        } else {
            log.append(draft(i))
                .expect("append")
                .wait()
                .expect("durable");
        }
    }
    for q in waits {
        q.wait().expect("durable");
    }
    assert_eq!(log.size(), 200);
    for i in [0u64, 1, 2, 99, 198, 199] {
        let e = log.entry(i).expect("entry");
        assert_eq!(e.entry.draft, draft(i), "entry {i} is what was appended");
        assert_eq!(e.leaf_hash, tree::leaf_hash(&e.bytes));
    }
    let report = verify_log(dir.path(), &[], None, &mut |_, _| {}).expect("verify");
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.entries, 200);
}

#[test]
fn an_oversized_or_panicking_deferred_entry_is_recorded_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), Options::default()).expect("open");
    let big = log
        .append_deferred(|| Draft {
            event: "decision".into(),
            detail: serde_json::json!({"blob": "x".repeat(100_000)}),
            ..Draft::default()
        })
        .expect("queued");
    #[allow(clippy::panic)]
    let boom = log
        .append_deferred(|| panic!("builder bug"))
        .expect("queued");
    big.wait().expect("durable");
    boom.wait().expect("durable");
    let e = log.entry(0).expect("entry 0");
    assert_eq!(e.entry.draft.event, "decision");
    assert_eq!(
        e.entry.draft.detail["error"], "entry too large; detail dropped",
        "{:?}",
        e.entry.draft.detail
    );
    let e = log.entry(1).expect("entry 1");
    assert_eq!(e.entry.draft.event, "audit.error");
    // The log stays writable.
    log.append(draft(2))
        .expect("append")
        .wait()
        .expect("durable");
    assert_eq!(log.size(), 3);
}
