//! Audit entries as stored (one record's bytes) and checkpoint notes and
//! verifier keys as an auditor is handed them.
#![no_main]

use agentmesh_audit::Entry;
use agentmesh_audit::note::{NoteVerifier, parse_unverified, verify_checkpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::from_bytes(data) {
        // The stored form is canonical: what decodes re-encodes to itself.
        assert_eq!(e.to_bytes(), data, "an entry has one encoding");
        let _ = e.to_json();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_unverified(text);
    if let Ok(v) = NoteVerifier::parse_vkey(text) {
        let _ = verify_checkpoint(text, &v);
    }
    let _ = agentmesh_audit::parse_hex(text);
});
