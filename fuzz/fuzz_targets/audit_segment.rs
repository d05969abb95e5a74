//! An audit log directory whose segment file holds arbitrary bytes (a torn
//! write, a disk error, tampering): opening it recovers or refuses, reading
//! and verifying report problems, never panic.
#![no_main]

use agentmesh_audit::{AuditLog, verify_log};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Opening a log syncs files and directories: on a RAM disk when there
    // is one, so the fuzzer measures the parser rather than the disk.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let segments = dir.path().join("segments");
    std::fs::create_dir(&segments).expect("segments dir");
    std::fs::write(segments.join(format!("{:020}.seg", 0)), data).expect("segment");
    let report = verify_log(dir.path(), &[], None, &mut |_, _| {});
    if let Ok(log) = AuditLog::open_read_only(dir.path()) {
        let size = log.size();
        if let Ok(r) = &report
            && r.ok()
        {
            // A log that verifies reads back in full.
            for i in 0..size {
                log.entry(i).expect("a verified entry reads");
            }
        } else {
            for i in 0..size.min(64) {
                let _ = log.entry(i);
            }
        }
        if size > 0 {
            let _ = log.root(size);
            let _ = log.inclusion_proof(0, size);
        }
    }
});
