//! A mesh home that another process writes is a clear error at once, naming
//! that process (issue 14: it used to be 12 s of silence, then "in use").

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Home, agentmesh};

#[test]
fn a_second_writer_is_told_who_holds_the_home_at_once() {
    let h = Home::new();
    h.agent("assistant", "call:tools:*");
    let policy = h.write(
        "policy.yaml",
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@company.com\nrules:\n  - name: all\n    action: allow\n",
    );
    let data = h.file("data");
    let exe = agentmesh();
    let wrap = |name: &str| {
        Command::new(&exe)
            .arg("--home")
            .arg(&h.path)
            .args(["mcp", "wrap", "--agent", "assistant", "--policy"])
            .arg(&policy)
            .args(["--name", name, "--"])
            .arg(&exe)
            .args(["mcp", "demo-server", "--data"])
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wrap")
    };
    let mut first = wrap("tools");
    // The first wrapper holds the audit log once its engine is up.
    let lock = h.path.join("audit/LOCK");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&lock)
        .map(|t| !t.contains(&first.id().to_string()))
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the first wrapper never took the log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let second = wrap("tools").wait_with_output().expect("second");
    let took = started.elapsed();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("process {}", first.id())), "{err}");
    assert!(err.contains("--home"), "{err}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let _ = first.kill();
    let _ = first.wait();
}
