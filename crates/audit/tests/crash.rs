//! Crash test: a writer process is SIGKILLed at random moments, many
//! times. After each restart every acknowledged index is present with the
//! acknowledged leaf hash, the whole log verifies, and appends continue.

use agentmesh_audit::{AuditLog, Draft, Options, hex, verify_log};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn kill_9_never_loses_an_acknowledged_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = env!("CARGO_BIN_EXE_audit-crash-writer");
    let mut acked: Vec<(u64, String)> = Vec::new();
    // Deterministic pseudo-random kill delays (xorshift), 20–220 ms.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let rounds = 12;
    for round in 0..rounds {
        let mut child = Command::new(exe)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(20 + x % 200);
        // The kill timer starts once the writer says it is ready: on a busy
        // machine start-up alone can take longer than the shortest delay.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(60));
        if first.is_err() {
            child.kill().ok();
        }
        assert!(
            first.as_deref().is_ok_and(|l| l.starts_with("ready")),
            "round {round}: writer did not start: {first:?}"
        );
        let started = Instant::now();
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        let killed_after = started.elapsed();
        child.wait().expect("reap the writer");
        reader.join().expect("reader");
        for l in rx.try_iter() {
            let mut parts = l.split(' ');
            if parts.next() == Some("ack")
                && let (Some(i), Some(h)) = (parts.next(), parts.next())
            {
                acked.push((i.parse().expect("index"), h.to_owned()));
            }
        }
        // Restart: recovery must keep every acknowledged entry.
        let log = AuditLog::open(dir.path(), Options::default()).expect("reopen after SIGKILL");
        let size = log.size();
        for (i, h) in &acked {
            assert!(
                *i < size,
                "round {round}: acknowledged entry {i} lost (log holds {size})"
            );
            let e = log
                .entry(*i)
                .unwrap_or_else(|err| panic!("round {round}: entry {i}: {err}"));
            assert_eq!(&hex(&e.leaf_hash), h, "round {round}: entry {i} changed");
        }
        // Appends continue at the next index.
        let next = log
            .append_wait(Draft {
                event: "after-restart".into(),
                ..Draft::default()
            })
            .expect("append");
        assert_eq!(next.index, size);
        log.close().expect("close");
        let report = verify_log(dir.path(), &[], None, &mut |_, _| {}).expect("verify");
        assert!(
            report.problem.is_none(),
            "round {round}: {:?}",
            report.problem
        );
        assert_eq!(report.entries, size + 1);
        eprintln!(
            "round {round}: killed after {:?}, {} acknowledged so far, log holds {}",
            killed_after,
            acked.len(),
            size + 1
        );
    }
    assert!(
        acked.len() > 1000,
        "the writer acknowledged only {} entries in {rounds} rounds",
        acked.len()
    );
}
