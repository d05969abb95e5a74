//! Test helper for the crash test (`tests/crash.rs`): appends to the log in
//! the directory given, in pipelined batches, and prints `ack <index>
//! <leaf hash>` for every entry once it is durable. The test kills it with
//! SIGKILL at random moments.

use agentmesh_audit::{AuditLog, Draft, Options, hex};
use std::io::Write;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: audit-crash-writer <dir>");
        std::process::exit(2);
    };
    let log = match AuditLog::open(std::path::Path::new(&dir), Options::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("open failed: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", log.size());
    let _ = out.flush();
    let mut n: u64 = 0;
    loop {
        let mut tickets = Vec::with_capacity(64);
        for _ in 0..64 {
            n += 1;
            let draft = Draft {
                event: "crash-test".into(),
                action: format!("op-{n}"),
                detail: serde_json::json!({"n": n, "pad": "x".repeat((n % 200) as usize)}),
                ..Draft::default()
            };
            match log.append(draft) {
                Ok(t) => tickets.push(t),
                Err(e) => {
                    eprintln!("append failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        for t in tickets {
            match t.wait() {
                Ok(a) => {
                    let _ = writeln!(out, "ack {} {}", a.index, hex(&a.leaf_hash));
                }
                Err(e) => {
                    eprintln!("wait failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        let _ = out.flush();
    }
}
