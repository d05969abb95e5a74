//! Fair share under load (issue 14): one agent cannot take every session of
//! a gateway, and a client that never finishes its request headers is cut
//! off instead of holding a connection (and a file descriptor) for ever.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::{Home, agentmesh, free_port, raw};

#[test]
fn sessions_per_agent_are_bounded_and_slow_headers_are_cut_off() {
    let h = Home::new();
    h.agent("greedy", "call:tools:*");
    h.agent("other", "call:tools:*");
    h.write(
        "policy.yaml",
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@company.com\nrules:\n  - name: all\n    action: allow\n",
    );
    let port = free_port();
    let exe = agentmesh();
    let cfg = h.write(
        "gw.yaml",
        &format!(
            "listen: 127.0.0.1:{port}\npolicy: policy.yaml\nmax_sessions_per_agent: 2\nheader_read_timeout_secs: 1\nupstreams:\n  - name: tools\n    stdio: {{ command: {:?}, args: [\"mcp\", \"demo-server\", \"--data\", {:?}] }}\n",
            exe.display().to_string(),
            h.file("data").display().to_string()
        ),
    );
    let _gw = h.spawn(
        &["mcp", "gateway", "--config", cfg.to_str().expect("path")],
        port,
    );
    let initialize = |token: &str| -> u16 {
        let bearer = format!("Bearer {token}");
        raw(
            port,
            "POST",
            "/mcp",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
            ],
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .0
    };
    let greedy = h.credential("greedy");
    let other = h.credential("other");
    assert_eq!(initialize(&greedy), 200);
    assert_eq!(initialize(&greedy), 200);
    assert_eq!(
        initialize(&greedy),
        429,
        "a third session for the same agent"
    );
    assert_eq!(initialize(&other), 200, "another agent still gets one");

    // Half a request, then silence: closed after about a second.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a trickling client was kept {:?}",
        started.elapsed()
    );
    // And the gateway still serves.
    assert_eq!(initialize(&other), 200);
}
