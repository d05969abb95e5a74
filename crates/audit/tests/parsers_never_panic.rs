//! What the audit reader takes from disk or from an auditor — entry bytes,
//! segment files, checkpoint notes, verifier keys — never panics it; every
//! entry the log writes parses back to the same bytes. (Fuzz targets:
//! `audit_entry`, `audit_segment`.)

use agentmesh_audit::note::{NoteVerifier, parse_unverified};
use agentmesh_audit::{AuditLog, Draft, Entry, Options, verify_log};
use proptest::prelude::*;
use serde_json::Value;

fn detail() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_as_an_entry_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(e) = Entry::from_bytes(&b) {
            prop_assert_eq!(e.to_bytes(), b);
        }
    }

    #[test]
    fn entries_round_trip_through_their_bytes(
        seq in any::<u64>(),
        event in "\\PC{0,20}",
        agent in "\\PC{0,40}",
        trust in prop::option::of(0.0f64..=1.0),
        detail in detail(),
    ) {
        let e = Entry {
            seq,
            time: "2026-12-03T14:00:00.000Z".into(),
            draft: Draft { event, agent, trust_before: trust, detail, ..Draft::default() },
        };
        let bytes = e.to_bytes();
        let back = Entry::from_bytes(&bytes).expect("what the log writes parses");
        prop_assert_eq!(back.to_bytes(), bytes);
        prop_assert_eq!(back.seq, seq);
    }

    #[test]
    fn arbitrary_notes_and_keys_never_panic(s in "\\PC{0,300}") {
        let _ = parse_unverified(&s);
        let _ = NoteVerifier::parse_vkey(&s);
    }
}

proptest! {
    // Each case writes a log to disk: fewer cases, same invariant.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A real log's segment with bytes flipped, cut or inserted: verifying
    /// and reading report the damage and never panic.
    #[test]
    fn damaged_segments_never_panic(
        n in 1u64..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let log = AuditLog::open(dir.path(), Options::default()).expect("open");
            for i in 0..n {
                log.append_wait(Draft {
                    event: "decision".into(),
                    detail: serde_json::json!({"i": i}),
                    ..Draft::default()
                })
                .expect("append");
            }
            log.close().expect("close");
        }
        let seg = dir.path().join("segments").join(format!("{:020}.seg", 0));
        let mut bytes = std::fs::read(&seg).expect("segment");
        for (at, byte, kind) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] ^= byte | 1,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        std::fs::write(&seg, &bytes).expect("write damaged segment");
        let _ = verify_log(dir.path(), &[], None, &mut |_, _| {});
        if let Ok(log) = AuditLog::open_read_only(dir.path()) {
            for i in 0..log.size() {
                let _ = log.entry(i);
            }
        }
    }

    #[test]
    fn arbitrary_segment_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let segments = dir.path().join("segments");
        std::fs::create_dir(&segments).expect("segments dir");
        std::fs::write(segments.join(format!("{:020}.seg", 0)), &b).expect("segment");
        let _ = verify_log(dir.path(), &[], None, &mut |_, _| {});
        if let Ok(log) = AuditLog::open_read_only(dir.path()) {
            for i in 0..log.size() {
                let _ = log.entry(i);
            }
        }
    }
}
