//! The control plane's front door (issue 14): requests naming a `Host` it
//! does not answer to are refused (DNS rebinding), and a stopping server
//! exits within seconds even while SSE subscribers hold `/v1/events` open,
//! and a client that never finishes its headers is cut off.

use agentmesh_server::{AppState, ServeConfig};
use agentmesh_store::{Mesh, MeshHome, unix_now};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-admin-token-0123456789";

async fn start() -> (
    tempfile::TempDir,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = MeshHome::init(&dir.path().join("home"), "test.local", unix_now())
        .await
        .expect("home");
    let sql = home.registry().await.expect("sqlite");
    let mesh = Mesh::new(home, Arc::new(sql.clone()));
    let state = AppState::new(
        mesh,
        sql,
        TOKEN,
        ServeConfig {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "cp.example".into()],
            header_read_timeout: Duration::from_millis(500),
            ..ServeConfig::default()
        },
    )
    .await
    .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        agentmesh_server::serve(state, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    (dir, addr, tx, task)
}

/// Status code of a GET with the given Host header.
fn get_with_host(addr: SocketAddr, path: &str, host: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_hosts_it_answers_to() {
    let (_dir, addr, stop, task) = start().await;
    let port = addr.port();
    let results = tokio::task::spawn_blocking(move || {
        [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            "CP.example".to_owned(),
            format!("rebind.attacker.example:{port}"),
            "169.254.169.254".to_owned(),
        ]
        .map(|h| get_with_host(addr, "/healthz", &h))
    })
    .await
    .expect("requests");
    assert_eq!(results, [200, 200, 200, 421, 421]);
    let _ = stop.send(());
    task.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_within_seconds_with_sse_subscribers() {
    let (_dir, addr, stop, task) = start().await;
    // Two subscribers that never hang up.
    let mut subscribers = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .expect("write");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut first = [0u8; 64];
        let n = s.read(&mut first).expect("stream opened");
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        subscribers.push(s);
    }
    let asked = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stopped despite open SSE streams")
        .expect("serve task");
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}");
    drop(subscribers);
}

/// One HTTP exchange; returns status and body.
fn exchange(addr: SocketAddr, method: &str, path: &str, auth: bool, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = if auth {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_registrations_cannot_grow_the_audit_log_without_bound() {
    let (_dir, addr, stop, task) = start().await;
    let sizes = tokio::task::spawn_blocking(move || {
        let size = || {
            let (_, b) = exchange(addr, "GET", "/v1/audit?limit=1", true, "");
            let start = b.find('{').unwrap_or(0);
            let end = b.rfind('}').map(|i| i + 1).unwrap_or(b.len());
            serde_json::from_str::<serde_json::Value>(&b[start..end])
                .unwrap_or_else(|e| panic!("{e}: {b}"))["size"]
                .as_u64()
                // A fresh home has no log yet.
                .unwrap_or(0)
        };
        let before = size();
        // 60 forged registrations, each with a 100 KB "DID".
        let huge = "z".repeat(100_000);
        for i in 0..60 {
            let body = serde_json::json!({
                "name": format!("bot-{i}"), "sponsor": "alice@example.com",
                "capabilities": ["read:*"], "did": format!("did:key:{huge}"),
                "nonce": "n", "timestamp": unix_now(), "signature": "AAAA"
            })
            .to_string();
            let (status, _) = exchange(addr, "POST", "/v1/registrations", false, &body);
            assert_eq!(status, 401);
        }
        let (_, b) = exchange(addr, "GET", "/v1/audit?limit=1000", true, "");
        (before, size(), b)
    })
    .await
    .expect("requests");
    let (before, after, entries) = sizes;
    // 10 recorded one by one, one anomaly; the other 49 are counted.
    assert!(after - before <= 11, "{before} → {after}");
    assert!(entries.len() < 100_000, "no 100 KB DID was recorded");
    assert!(entries.contains("registration.source_anomaly"));
    assert!(entries.contains("sha256"));
    let _ = stop.send(());
    task.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_credential_reaches_only_what_a_gateway_needs() {
    let (_dir, addr, stop, task) = start().await;
    tokio::task::spawn_blocking(move || {
        let json_of = |b: &str| -> serde_json::Value {
            let start = b.find('{').unwrap_or(0);
            let end = b.rfind('}').map(|i| i + 1).unwrap_or(b.len());
            serde_json::from_str(&b[start..end]).unwrap_or(serde_json::Value::Null)
        };
        let (st, b) = exchange(addr, "POST", "/v1/gateways", true, r#"{"name": "gw-1"}"#);
        assert_eq!(st, 201, "{b}");
        let issued = json_of(&b);
        let token = issued["credential"].as_str().expect("credential").to_owned();
        assert!(token.starts_with("amgw1."));
        let with = |method: &str, path: &str, body: &str| -> u16 {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("write");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out.split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0)
        };
        // What a gateway needs.
        assert_eq!(with("GET", "/v1/snapshot", ""), 200);
        assert_eq!(
            with("POST", "/v1/audit/ingest", r#"{"source": "gw-1", "entries": []}"#),
            200
        );
        // A shipped entry carrying a trust event nobody applied (no score
        // before and after) would be applied here on the gateway's word:
        // refused. The same event with its applied scores is accepted.
        let shipped = |before: Option<f64>| -> String {
            use base64::Engine;
            let entry = agentmesh_audit::Entry {
                seq: 0,
                time: "2026-12-03T00:00:00.000Z".into(),
                draft: agentmesh_audit::Draft {
                    event: "decision".into(),
                    agent: "did:mesh:z6MkvictimXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into(),
                    trust_before: before,
                    trust_after: before,
                    detail: serde_json::json!({"trust": {
                        "agent": "did:mesh:z6MkvictimXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                        "at_ms": 1, "kind": "violation", "severity": "critical", "reason": "forged"}}),
                    ..agentmesh_audit::Draft::default()
                },
            };
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(entry.to_bytes());
            format!(r#"{{"source": "gw-1", "entries": [[0, "{b64}"]]}}"#)
        };
        assert_eq!(with("POST", "/v1/audit/ingest", &shipped(None)), 400);
        assert_eq!(with("POST", "/v1/audit/ingest", &shipped(Some(0.5))), 200);
        // Nothing else.
        for (m, p, body) in [
            ("POST", "/v1/sponsors", r#"{"email": "mallory@example.com"}"#),
            ("PUT", "/v1/policy", "rules: []"),
            ("POST", "/v1/gateways", r#"{"name": "gw-2"}"#),
            ("POST", "/v1/credentials/revoke", r#"{"id": "x"}"#),
            ("GET", "/v1/audit", ""),
            ("POST", "/v1/agents/x/reactivate", ""),
        ] {
            assert_eq!(with(m, p, body), 401, "{m} {p}");
        }
        // Revoked at the control plane: refused at once.
        let id = issued["id"].as_str().expect("id");
        let (st, b) = exchange(
            addr,
            "POST",
            "/v1/credentials/revoke",
            true,
            &format!(r#"{{"id": "{id}"}}"#),
        );
        assert!(st < 300, "{st} {b}");
        assert_eq!(with("GET", "/v1/snapshot", ""), 401);
    })
    .await
    .expect("requests");
    let _ = stop.send(());
    task.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sponsor_with_its_key_at_home_approves_by_signature_only() {
    let (_dir, addr, stop, task) = start().await;
    let alice = agentmesh_identity::KeyPair::from_seed(&[21; 32]);
    let mallory = agentmesh_identity::KeyPair::from_seed(&[22; 32]);
    let alice_did = alice.did().to_string();
    tokio::task::spawn_blocking(move || {
        // Registered by public key: the control plane holds no private key.
        let (st, b) = exchange(
            addr,
            "POST",
            "/v1/sponsors",
            true,
            &format!(r#"{{"email": "alice@example.com", "did": "{alice_did}"}}"#),
        );
        assert_eq!(st, 201, "{b}");
        let now = unix_now();
        let approval = serde_json::json!({
            "id": "ap_home", "caller": "did:mesh:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "action": "send_email", "arguments_sha256": "00", "policy_version": "v", "rule": "p/r",
            "approvers": ["alice@example.com"], "state": "pending",
            "decided_by": null, "decided_at": null, "reason": null,
            "created_at": now, "expires_at": now + 300, "summary": {"tool": "send_email"},
        });
        let (st, b) = exchange(addr, "POST", "/v1/approvals", true, &approval.to_string());
        assert!(st < 300, "{st} {b}");
        let statement = |at| agentmesh_policy::DecisionStatement {
            approval: "ap_home",
            decision: "approved",
            by: "alice@example.com",
            caller: "did:mesh:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            action: "send_email",
            arguments_sha256: "00",
            policy_version: "v",
            at,
        };
        let sig = |key: &agentmesh_identity::KeyPair| {
            let proof: serde_json::Value =
                serde_json::from_str(&statement(now).sign(key)).expect("proof");
            proof["signature"].as_str().expect("sig").to_owned()
        };
        let decide =
            |body: String| exchange(addr, "POST", "/v1/approvals/ap_home/approve", true, &body);
        // No default approver, no unsigned decision, no one else's key.
        assert_eq!(decide("{}".into()).0, 400);
        let (st, b) = decide(r#"{"by": "alice@example.com"}"#.into());
        assert_eq!(st, 403, "{b}");
        assert!(b.contains("signature_required"), "{b}");
        let (st, b) = decide(format!(
            r#"{{"by": "alice@example.com", "at": {now}, "signature": "{}"}}"#,
            sig(&mallory)
        ));
        assert_eq!(st, 403, "{b}");
        // Alice's own signature, made in her home.
        let (st, b) = decide(format!(
            r#"{{"by": "alice@example.com", "at": {now}, "signature": "{}"}}"#,
            sig(&alice)
        ));
        assert_eq!(st, 200, "{b}");
        assert!(b.contains("\"proof\""), "{b}");
    })
    .await
    .expect("requests");
    let _ = stop.send(());
    task.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (_dir, addr, stop, task) = start().await;
    let (slow, status) = tokio::task::spawn_blocking(move || {
        // Many half-open connections: each is closed after the timeout,
        // and a normal request is still answered meanwhile.
        let mut trickling: Vec<TcpStream> = (0..50)
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
                    .expect("write");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                s
            })
            .collect();
        let status = get_with_host(addr, "/healthz", "localhost");
        let started = Instant::now();
        for s in &mut trickling {
            let mut buf = Vec::new();
            // Closed by the server: EOF (or a reset), never the 10 s timeout.
            let _ = s.read_to_end(&mut buf);
        }
        (started.elapsed(), status)
    })
    .await
    .expect("clients");
    assert_eq!(status, 200);
    assert!(slow < Duration::from_secs(5), "closed after {slow:?}");
    stop.send(()).expect("stop");
    task.await.expect("serve");
}
