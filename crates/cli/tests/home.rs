//! Several governed processes on one mesh home (issue 14: a desktop client
//! that starts two `mcp wrap` servers with the same home got "audit log in
//! use" for the second). The first holds the audit log; the second follows
//! it (its entries reach the log through the registry outbox, its trust
//! events are applied by the holder), and takes the log over when the
//! first exits.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::{Home, agentmesh};

/// An `mcp wrap` process driven over its stdio, as a desktop client does.
struct Wrapper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Wrapper {
    fn start(h: &Home, policy: &std::path::Path, name: &str) -> Wrapper {
        let exe = agentmesh();
        let mut child = Command::new(&exe)
            .arg("--home")
            .arg(&h.path)
            .args(["mcp", "wrap", "--agent", "assistant", "--policy"])
            .arg(policy)
            .args(["--name", name, "--"])
            .arg(&exe)
            .args(["mcp", "demo-server", "--data"])
            .arg(h.file("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wrap");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut w = Wrapper {
            child,
            stdin,
            lines,
        };
        let init = w.request(
            1,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "home-test", "version": "1"}}),
        );
        assert!(init.get("result").is_some(), "{init}");
        w.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        w
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").expect("write");
        stdin.flush().expect("flush");
    }

    /// Sends a request and waits (20 s at most) for the answer with its id.
    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if msg["id"] == json!(id) {
                return msg;
            }
        }
    }

    fn search(&mut self, id: u64, word: &str) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": "search_docs", "arguments": {"query": word}}),
        )
    }

    /// Closes stdin, as a client does when it quits, and waits for the exit.
    fn quit(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "the wrapper did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock_names(h: &Home, pid: u32) -> bool {
    std::fs::read_to_string(h.path.join("audit/LOCK"))
        .map(|t| t.contains(&pid.to_string()))
        .unwrap_or(false)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn decisions(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["event"] == "decision" && e["action"] == "search_docs")
        .collect()
}

#[test]
fn two_wrappers_share_one_home_and_the_second_takes_over_the_log() {
    let h = Home::new();
    h.agent("assistant", "call:tools:*");
    let policy = h.write(
        "policy.yaml",
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@company.com\nrules:\n  - name: all\n    action: allow\n",
    );
    let mut first = Wrapper::start(&h, &policy, "tools");
    wait_for("the first wrapper never took the log", || {
        lock_names(&h, first.child.id())
    });
    // The second starts at once (no "in use", no 12 s wait) and serves.
    let started = Instant::now();
    let mut second = Wrapper::start(&h, &policy, "tools");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let a = first.search(2, "alpha");
    let b = second.search(2, "beta");
    assert!(a.get("result").is_some(), "{a}");
    assert!(b.get("result").is_some(), "{b}");

    // Both decisions reach the one log; the follower's was queued and its
    // trust event applied by the holder (trust_before/after filled in).
    let entries = h.audit_until(|e| decisions(e).len() >= 2);
    let queued: Vec<&Value> = decisions(&entries)
        .into_iter()
        .filter(|e| e["detail"]["queued_at"].is_string())
        .collect();
    assert_eq!(queued.len(), 1, "{entries:#?}");
    assert!(queued[0]["trust_after"].is_string(), "{:#?}", queued[0]);
    assert!(queued[0]["detail"]["trust"].is_object(), "{:#?}", queued[0]);

    // The first exits; the second takes the log over and appends its own
    // decisions directly from then on.
    first.quit();
    wait_for("the second wrapper never took the log over", || {
        lock_names(&h, second.child.id())
    });
    // The LOCK names the new holder as soon as it opens the log; a call
    // made in the moment before its sink switches over is still queued
    // (and drained into the log a second later), which is correct. Once
    // the switch is done, decisions are appended directly.
    let mut entries = Vec::new();
    let mut direct = None;
    for (id, word) in (3u64..).zip(["gamma", "delta", "epsilon", "zeta", "eta"]) {
        let c = second.search(id, word);
        assert!(c.get("result").is_some(), "{c}");
        let want = id as usize; // alpha, beta, then one per search here
        entries = h.audit_until(|e| decisions(e).len() >= want);
        let last = decisions(&entries).last().copied().cloned().expect("last");
        if last["detail"]["queued_at"].is_null() {
            direct = Some(last);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let last = direct.unwrap_or_else(|| panic!("never appended directly: {entries:#?}"));
    assert!(last["trust_after"].is_string(), "{last:#}");
    second.quit();

    // One verifiable log, and trust recomputed from it matches the state.
    let verify = h.json(&["audit", "verify"]);
    assert!(verify["problem"].is_null(), "{verify:#}");
    assert!(
        verify["entries"].as_u64() >= Some(entries.len() as u64),
        "{verify:#}"
    );
    let recomputed = h.run(&["trust", "recompute", "--from-audit"]);
    assert!(
        recomputed.status.success(),
        "{}",
        String::from_utf8_lossy(&recomputed.stdout)
    );
}
