//! `agentmesh serve` and gateways attached to it, as processes: the demo
//! end to end; two replicas on one PostgreSQL database (a revocation made
//! on one is enforced by a gateway attached to the other within a second);
//! kill -9 of a replica loses no acknowledged write; a gateway keeps
//! enforcing on cached state while its control plane is down and catches
//! up when it returns.

use agentmesh_identity::KeyPair;
use agentmesh_server::pop::CredentialRequest;
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "replica-test-admin-token-0123";

fn agentmesh() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agentmesh"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process, SIGKILLed when dropped (or on demand).
struct Proc(Child);
impl Proc {
    /// SIGTERM, then SIGKILL if it has not exited within 15 s.
    fn term(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `agentmesh <args>` and waits for its "listening on" line.
fn spawn_listening(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut c = Command::new(agentmesh());
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    let p = Proc(child);
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{args:?} did not start"));
    p
}

/// One HTTP/1.1 request on a fresh connection: (status, headers, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Some((status, head.to_owned(), body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn api(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    let (st, _, text) = http(
        port,
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &b,
    )
    .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (st, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn ok(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let (st, v) = api(port, method, path, body);
    assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
    v
}

fn credential(port: u16, key: &KeyPair) -> String {
    let mesh = ok(port, "GET", "/v1/authority", None)["mesh"]
        .as_str()
        .expect("mesh")
        .to_owned();
    let nonce = ok(port, "POST", "/v1/credentials/challenge", None)["nonce"]
        .as_str()
        .expect("nonce")
        .to_owned();
    let req = CredentialRequest {
        did: key.did().to_string(),
        audience: None,
        ttl_secs: None,
        nonce,
        timestamp: agentmesh_store::unix_now(),
        signature: String::new(),
    }
    .sign(key, &mesh);
    ok(port, "POST", "/v1/credentials", Some(json!(req)))["credential"]
        .as_str()
        .expect("credential")
        .to_owned()
}

/// A tools/call through the gateway (a fresh session each time):
/// `Ok(result)` or `Err(status or JSON-RPC error)`.
fn tool_call(port: u16, credential: &str) -> Result<Value, String> {
    let auth = format!("Bearer {credential}");
    let base = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (st, head, _) = http(port, "POST", "/mcp", &base, &init.to_string()).ok_or("no answer")?;
    if st != 200 {
        return Err(format!("initialize: {st}"));
    }
    let session = head
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .starts_with("mcp-session-id:")
                .then(|| l.split_once(':').map(|x| x.1.trim().to_owned()))
        })
        .flatten()
        .ok_or("no session")?;
    let mut h = base.to_vec();
    h.push(("mcp-session-id", &session));
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search_docs", "arguments": {"query": "retention"}}});
    let (st, _, body) = http(port, "POST", "/mcp", &h, &call.to_string()).ok_or("no answer")?;
    if st != 200 {
        return Err(format!("tools/call: {st}"));
    }
    let json_text = if body.trim_start().starts_with('{') {
        body
    } else {
        body.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .find(|l| l.starts_with('{'))
            .unwrap_or_default()
            .to_owned()
    };
    let v: Value = serde_json::from_str(&json_text).map_err(|e| e.to_string())?;
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(v["error"].to_string()),
    }
}

fn write_gateway(dir: &Path, port: u16) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("docs")).expect("data");
    std::fs::write(data.join("docs/a.md"), "retention is 24 months\n").expect("doc");
    std::fs::write(
        dir.join("policy.yaml"),
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@example.com\ndefault_action: deny\nrules:\n  - name: tools\n    condition: \"action.type == 'tool_call'\"\n    action: allow\n",
    )
    .expect("policy");
    let cfg = dir.join("gateway.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{port}\npolicy: {}\nupstreams:\n  - name: tools\n    stdio: {{ command: {:?}, args: [\"mcp\", \"demo-server\", \"--data\", {:?}] }}\n",
            dir.join("policy.yaml").display(),
            agentmesh().display().to_string(),
            data.display().to_string()
        ),
    )
    .expect("config");
    cfg
}

/// Registers an agent with an external key through the admin API.
fn agent(port: u16, name: &str) -> KeyPair {
    let key = KeyPair::generate().expect("key");
    ok(
        port,
        "POST",
        "/v1/agents",
        Some(
            json!({"name": name, "sponsor": "alice@example.com", "capabilities": ["call:tools:*"], "did": key.did().to_string()}),
        ),
    );
    key
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(agentmesh())
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .expect("demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "denied (policy/no-pii-export)",
        "rate_limited (policy/search-rate-limit)",
        "queued message #1 to team@company.com",
        "verified",
        "everything as expected yes",
    ] {
        assert!(stdout.contains(line), "`{line}` missing:\n{stdout}");
    }
    // The e-mail really went through the tool server, once, after approval.
    let outbox = std::fs::read_to_string(dir.path().join("data/outbox.jsonl")).expect("outbox");
    assert_eq!(outbox.lines().count(), 1);
}

/// SIGTERM while the demo keeps running: its gateway and control plane
/// stop, and its temporary folder (demo keys, the admin token) is gone.
#[test]
fn demo_stops_its_children_and_removes_its_folder_on_sigterm() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("dir");
    let mut child = Command::new(agentmesh())
        .args(["demo", "--keep-running"])
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut folder, mut gateway_port) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("AgentMesh demo (working directory ") {
            folder = Some(std::path::PathBuf::from(rest.trim_end_matches(')')));
        }
        if let Some(url) = line.trim().strip_prefix("gateway") {
            gateway_port = url
                .trim()
                .trim_start_matches("http://127.0.0.1:")
                .split('/')
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
        if line.contains("is held for approval: approve or deny it") {
            break;
        }
    }
    let folder = folder.expect("the demo names its folder");
    let port = gateway_port.expect("the demo names its gateway");
    assert!(folder.starts_with(tmp.path()) && folder.exists());
    let started = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the demo did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = status;
    assert!(!folder.exists(), "{} was left behind", folder.display());
    // Nothing listens on the gateway's port any more.
    std::thread::sleep(Duration::from_millis(500));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // Nothing else was left in the temporary directory either.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn replicas_on_postgres_share_revocations_and_survive_kill_9() {
    let Ok(base) = std::env::var("AGENTMESH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set AGENTMESH_TEST_POSTGRES_URL"
        );
        eprintln!("skipping: AGENTMESH_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let db = rt
        .block_on(agentmesh_store::postgres_test_schema(&base))
        .expect("schema");
    let dir = tempfile::tempdir().expect("dir");
    // The replicas share the home (keys; one of them holds the audit log
    // at a time, the other queues in the database).
    let home = dir.path().join("cp-home");
    let home_s = home.display().to_string();
    let st = Command::new(agentmesh())
        .args(["--home", &home_s, "init"])
        .output()
        .expect("init");
    assert!(st.status.success());
    let (pa, pb) = (free_port(), free_port());
    let env = [("AGENTMESH_ADMIN_TOKEN", TOKEN)];
    let serve = |port: u16, name: &str| {
        spawn_listening(
            &[
                "--home",
                &home_s,
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database",
                &db,
                "--replica",
                name,
                "--credential-rate",
                "4/minute",
            ],
            &env,
        )
    };
    let mut a = serve(pa, "a");
    let mut b = serve(pb, "b");

    ok(
        pa,
        "POST",
        "/v1/sponsors",
        Some(json!({"email": "alice@example.com"})),
    );
    let k1 = agent(pa, "agent-one");
    let k2 = agent(pb, "agent-two");
    let c1 = credential(pa, &k1);
    let c2 = credential(pb, &k2);

    // A gateway attached to replica B, with a gateway credential.
    let gw_token = ok(pa, "POST", "/v1/gateways", Some(json!({"name": "gw-b"})))["credential"]
        .as_str()
        .expect("gateway credential")
        .to_owned();
    let gport = free_port();
    let cfg = write_gateway(dir.path(), gport);
    let gw_home = dir.path().join("gw-home").display().to_string();
    let _gw = spawn_listening(
        &[
            "--home",
            &gw_home,
            "mcp",
            "gateway",
            "--config",
            &cfg.display().to_string(),
            "--control-plane",
            &format!("http://127.0.0.1:{pb}"),
        ],
        &[("AGENTMESH_CONTROL_PLANE_TOKEN", gw_token.as_str())],
    );
    let r = tool_call(gport, &c1).expect("agent-one allowed");
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("24 months")
    );
    tool_call(gport, &c2).expect("agent-two allowed");

    // The credential rate limit is shared: 4 per minute per agent, counted
    // across both replicas (one request already made on B above).
    let k3 = agent(pa, "agent-three");
    let c3 = credential(pa, &k3);
    for port in [pb, pa, pb] {
        credential(port, &k3);
    }
    let mesh = ok(pa, "GET", "/v1/authority", None)["mesh"]
        .as_str()
        .expect("mesh")
        .to_owned();
    let nonce = ok(pa, "POST", "/v1/credentials/challenge", None)["nonce"]
        .as_str()
        .expect("nonce")
        .to_owned();
    let over = CredentialRequest {
        did: k3.did().to_string(),
        audience: None,
        ttl_secs: None,
        nonce,
        timestamp: agentmesh_store::unix_now(),
        signature: String::new(),
    }
    .sign(&k3, &mesh);
    let (st, e) = api(pa, "POST", "/v1/credentials", Some(json!(over)));
    assert_eq!(st, 429, "the fifth request, on either replica: {e}");
    assert_eq!(e["error"]["code"], "rate_limited");

    // A policy published on A is enforced by the gateway on B within a second.
    // (agent-three is new: the gateway learns of it from the feed.)
    wait_until(Duration::from_secs(5), || tool_call(gport, &c3).is_ok())
        .expect("agent-three allowed before");
    let deny_all = "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@example.com\ndefault_action: deny\nrules:\n  - name: nothing-for-agent-three\n    condition: \"agent.name == 'agent-three'\"\n    action: deny\n  - name: tools\n    condition: \"action.type == 'tool_call'\"\n    action: allow\n";
    let auth = format!("Bearer {TOKEN}");
    let (st, _, body) = http(
        pa,
        "PUT",
        "/v1/policy",
        &[("authorization", &auth)],
        deny_all,
    )
    .expect("publish");
    assert_eq!(st, 200, "{body}");
    let took = wait_until(Duration::from_secs(5), || tool_call(gport, &c3).is_err())
        .expect("the published policy reached the gateway");
    assert!(took < Duration::from_secs(1), "policy took {took:?}");
    tool_call(gport, &c1).expect("agent-one still allowed by the new policy");

    // Revoked on A; enforced by the gateway on B within a second.
    ok(
        pa,
        "POST",
        "/v1/agents/agent-one/revoke",
        Some(json!({"reason": "compromised"})),
    );
    let took = wait_until(Duration::from_secs(5), || tool_call(gport, &c1).is_err())
        .expect("the revocation reached the gateway");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    tool_call(gport, &c2).expect("agent-two unaffected");

    // kill -9 of replica A right after an acknowledged write loses nothing.
    ok(
        pa,
        "POST",
        "/v1/sponsors",
        Some(json!({"email": "bob@example.com"})),
    );
    a.kill9();
    let (st, sponsors) = api(pb, "GET", "/v1/sponsors", None);
    assert_eq!(st, 200);
    assert!(sponsors.to_string().contains("bob@example.com"));
    let _a2 = serve(pa, "a2");
    let sponsors = ok(pa, "GET", "/v1/sponsors", None);
    assert!(sponsors.to_string().contains("bob@example.com"));
    // ...and its audit entry too (appended by whichever replica holds the log).
    let audited = wait_until(Duration::from_secs(5), || {
        let (_, log) = api(pb, "GET", "/v1/audit?limit=1000", None);
        log.to_string().contains("bob@example.com")
    });
    assert!(audited.is_some(), "the sponsor's audit entry is in the log");

    // The gateway's control plane goes away: it keeps enforcing what it
    // knew (agent-two allowed, agent-one denied).
    b.kill9();
    std::thread::sleep(Duration::from_millis(300));
    tool_call(gport, &c2).expect("cached state still allows agent-two");
    assert!(tool_call(gport, &c1).is_err(), "still denies agent-one");
    // A revocation made meanwhile is picked up when B returns.
    ok(pa, "POST", "/v1/agents/agent-two/revoke", None);
    std::thread::sleep(Duration::from_millis(300));
    let _b2 = serve(pb, "b2");
    let caught_up = wait_until(Duration::from_secs(10), || tool_call(gport, &c2).is_err());
    assert!(
        caught_up.is_some(),
        "the gateway caught up with the control plane"
    );
}

/// Metric names in Prometheus text (sample lines, not comments).
fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}

#[test]
fn grafana_queries_name_only_metrics_that_exist() {
    let dir = tempfile::tempdir().expect("dir");
    let home = dir.path().join("cp-home").display().to_string();
    let port = free_port();
    let _cp = spawn_listening(
        &[
            "--home",
            &home,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[("AGENTMESH_ADMIN_TOKEN", TOKEN)],
    );
    ok(
        port,
        "POST",
        "/v1/sponsors",
        Some(json!({"email": "alice@example.com"})),
    );
    let key = agent(port, "metered");
    let _other = agent(port, "revoked-one");
    let cred = credential(port, &key);
    ok(port, "POST", "/v1/agents/revoked-one/revoke", None);
    // A refused registration and a refused credential request.
    let (st, _) = api(
        port,
        "POST",
        "/v1/registrations",
        Some(
            json!({"name": "x", "sponsor": "alice@example.com", "capabilities": ["read:*"], "did": key.did().to_string(), "nonce": "n", "timestamp": agentmesh_store::unix_now(), "signature": "AAAA"}),
        ),
    );
    assert_eq!(st, 401);
    let (st, _) = api(
        port,
        "POST",
        "/v1/credentials",
        Some(
            json!({"did": key.did().to_string(), "nonce": "n", "timestamp": agentmesh_store::unix_now(), "signature": "AAAA"}),
        ),
    );
    assert_eq!(st, 401);

    let gw_token = ok(port, "POST", "/v1/gateways", Some(json!({"name": "gw"})))["credential"]
        .as_str()
        .expect("gateway credential")
        .to_owned();
    let gport = free_port();
    let cfg = write_gateway(dir.path(), gport);
    let gw_home = dir.path().join("gw-home").display().to_string();
    // The admin token is refused: a gateway holds a gateway credential.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_agentmesh"))
        .args([
            "--home",
            &gw_home,
            "mcp",
            "gateway",
            "--config",
            &cfg.display().to_string(),
            "--control-plane",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("AGENTMESH_CONTROL_PLANE_TOKEN", TOKEN)
        .output()
        .expect("gateway");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("gateway credential"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let _gw = spawn_listening(
        &[
            "--home",
            &gw_home,
            "mcp",
            "gateway",
            "--config",
            &cfg.display().to_string(),
            "--control-plane",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[("AGENTMESH_CONTROL_PLANE_TOKEN", gw_token.as_str())],
    );
    tool_call(gport, &cred).expect("allowed");
    assert!(tool_call(gport, "amcr1.forged.forged").is_err());
    std::thread::sleep(Duration::from_millis(2500));

    let (st, _, gw_text) = http(gport, "GET", "/metrics", &[], "").expect("gateway metrics");
    assert_eq!(st, 200);
    let (st, _, cp_text) = http(port, "GET", "/metrics", &[], "").expect("cp metrics");
    assert_eq!(st, 200);
    assert!(
        gw_text.contains("agentmesh_decisions_total{decision=\"allow\",protocol=\"mcp\"} 1"),
        "{gw_text}"
    );
    assert!(
        gw_text.contains("agentmesh_trust_score{agent=\"metered\"}"),
        "{gw_text}"
    );
    let mut exist = sample_names(&gw_text);
    exist.extend(sample_names(&cp_text));

    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/grafana/agentmesh.json"
        ))
        .expect("dashboard"),
    )
    .expect("json");
    let mut checked = 0;
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("agentmesh_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    exist.contains(&name),
                    "panel `{}` queries `{name}`, which neither /metrics exposes",
                    panel["title"]
                );
                checked += 1;
                rest = &rest[i + name.len()..];
            }
        }
    }
    assert!(checked >= 20, "only {checked} metric references found");
}

/// The dashboard in headless Chromium (Debian `chromium` driven by npm
/// `playwright-core`, both installed by `.ci/run`): the demo's agents and
/// trust chart show, an audit proof verifies in the browser, the call the
/// demo left waiting is approved there and completes. Screenshots are kept
/// in `target/tmp/dashboard-*.png`.
#[test]
fn dashboard_in_headless_chromium() {
    let node_dir = std::env::var_os("AGENTMESH_PEERS_NODE").map(PathBuf::from);
    let chromium = std::env::var_os("AGENTMESH_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let Some(node_dir) = node_dir.filter(|d| d.join("node_modules/playwright-core").exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install playwright-core into AGENTMESH_PEERS_NODE"
        );
        eprintln!("skipping: playwright-core is not installed (run .ci/run)");
        return;
    };
    if !chromium.exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium");
        eprintln!("skipping: no chromium at {}", chromium.display());
        return;
    }
    let node = node_dir.join("node_modules/.bin/node");
    let node = if node.exists() {
        node
    } else {
        PathBuf::from("node")
    };

    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut demo = Command::new(agentmesh())
        .args([
            "demo",
            "--keep-running",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("demo");
    let out = demo.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut demo = Proc(demo);
    let mut token = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while token.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1))
            && let Some(t) = line.trim().strip_prefix("admin token")
        {
            token = Some(t.trim().to_owned());
        }
    }
    let token = token.expect("the demo kept running and printed its token");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/dashboard/check.mjs");
    let run = Command::new(&node)
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&token)
        .arg(&shots)
        .arg(&chromium)
        .env("AGENTMESH_PEERS_NODE", &node_dir)
        .current_dir(&node_dir)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let r: Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).unwrap_or_else(|_| {
            panic!(
                "check.mjs: {stdout}\n{}",
                String::from_utf8_lossy(&run.stderr)
            )
        });
    assert!(r.get("failure").is_none(), "{r}");
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    let agents = r["agents"].to_string();
    assert!(
        agents.contains("data-analyst-agent") && agents.contains("report-writer"),
        "{r}"
    );
    assert!(
        r["trust_cell"].as_str().unwrap_or("").starts_with("0."),
        "{r}"
    );
    assert!(r["trust_points"].as_u64().unwrap_or(0) >= 3, "{r}");
    assert!(
        r["graph_nodes"].to_string().contains("report-writer"),
        "{r}"
    );
    assert!(r["decisions"].as_u64().unwrap_or(0) >= 4, "{r}");
    let proof = r["proof"].as_str().unwrap_or("");
    assert!(
        proof.starts_with("verified") && proof.contains("signature checked"),
        "{r}"
    );
    assert!(
        r["decided"]
            .as_str()
            .unwrap_or("")
            .starts_with("approved by alice@company.com"),
        "{r}"
    );
    for shot in ["dashboard.png", "dashboard-approved.png"] {
        let len = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 20_000, "{shot}: {len} bytes");
    }
    // The held call went through once approved in the browser.
    let mut completed = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !completed && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            completed = line.contains("held call decided on the dashboard: allowed");
        }
    }
    assert!(completed, "the approved call completed");
    let outbox = std::fs::read_to_string(dir.path().join("data/outbox.jsonl")).expect("outbox");
    assert_eq!(outbox.lines().count(), 2);
    // A graceful stop also stops the demo's gateway (a SIGKILL would
    // orphan it).
    demo.term();
    assert!(
        demo.0
            .try_wait()
            .ok()
            .flatten()
            .is_some_and(|s| s.success()),
        "the demo stopped cleanly on SIGTERM"
    );
}

fn cli(home: &Path, args: &[&str]) -> Value {
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .env_remove("AGENTMESH_CONTROL_PLANE")
        .env_remove("AGENTMESH_CONTROL_PLANE_TOKEN")
        .output()
        .expect("agentmesh");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The CLI against a running control plane: an agent registers from its
/// own home (its key never leaves it), the sponsor approves from the
/// control plane's home (signed with its key), the agent gets a credential.
#[test]
fn cli_registers_approves_and_gets_a_credential() {
    let dir = tempfile::tempdir().expect("dir");
    let cp_home = dir.path().join("cp-home");
    let agent_home = dir.path().join("agent-home");
    let port = free_port();
    let _cp = spawn_listening(
        &[
            "--home",
            &cp_home.display().to_string(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    let url = format!("http://127.0.0.1:{port}");
    // A sponsor made with the CLI while serve holds the audit log.
    cli(&cp_home, &["sponsor", "create", "alice@example.com"]);
    let req = cli(
        &agent_home,
        &[
            "registrations",
            "request",
            "bot",
            "--sponsor",
            "alice@example.com",
            "--capabilities",
            "read:*",
            "--control-plane",
            &url,
        ],
    );
    let id = req["id"].as_str().expect("id").to_owned();
    assert_eq!(req["state"], "pending");
    let listed = cli(
        &cp_home,
        &["registrations", "list", "--control-plane", &url],
    );
    assert_eq!(listed["registrations"][0]["id"], id.as_str());
    let approved = cli(
        &cp_home,
        &["registrations", "approve", &id, "--control-plane", &url],
    );
    assert_eq!(approved["agent"]["status"], "active");
    let cred = cli(
        &agent_home,
        &["credential", "request", "bot", "--control-plane", &url],
    );
    let text = cred["credential"].as_str().expect("credential");
    let auth = format!("Bearer {text}");
    let (st, _, body) = http(port, "GET", "/v1/me", &[("authorization", &auth)], "").expect("me");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"name\":\"bot\""));
    // The approval is in the audit log, with how it was signed.
    let token = std::fs::read_to_string(cp_home.join("admin.token")).expect("token");
    let admin = format!("Bearer {}", token.trim());
    let found = wait_until(Duration::from_secs(5), || {
        http(
            port,
            "GET",
            "/v1/audit?limit=100",
            &[("authorization", &admin)],
            "",
        )
        .is_some_and(|(_, _, b)| b.contains("sponsor_signature") && b.contains("sponsor.created"))
    });
    assert!(
        found.is_some(),
        "approval and the CLI's sponsor.created are audited"
    );
}

/// `serve` on SQLite in `dir/cp-home` with the test's admin token, and
/// sponsor alice@example.com: (process, port, home).
fn control_plane_with_alice(dir: &Path) -> (Proc, u16, String) {
    control_plane_on(dir, None)
}

/// As [`control_plane_with_alice`], on the PostgreSQL database `database`
/// when given.
fn control_plane_on(dir: &Path, database: Option<&str>) -> (Proc, u16, String) {
    let port = free_port();
    let home = dir.join("cp-home").display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--home", &home, "serve", "--listen", &listen];
    if let Some(db) = database {
        args.extend(["--database", db]);
    }
    let cp = spawn_listening(&args, &[("AGENTMESH_ADMIN_TOKEN", TOKEN)]);
    ok(
        port,
        "POST",
        "/v1/sponsors",
        Some(json!({"email": "alice@example.com"})),
    );
    (cp, port, home)
}

/// One A2A `SendMessage` through a gateway: `Ok(result)` or `Err(error)`.
fn a2a_send(port: u16, credential: &str, text: &str) -> Result<Value, String> {
    let auth = format!("Bearer {credential}");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {"messageId": format!("m-{text}-{}", agentmesh_store::unix_now()), "role": "ROLE_USER", "parts": [{"text": text}]}}});
    let (st, _, text) = http(
        port,
        "POST",
        "/",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("a2a-version", "1.0"),
        ],
        &body.to_string(),
    )
    .ok_or("no answer")?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{st}: {e}: {text}"))?;
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(format!("{st}: {}", v["error"])),
    }
}

/// `agentmesh --home <home> --json <args>` with the admin token file for
/// remote commands: the parsed output, or the failure's stdout+stderr.
fn cli_result(home: &Path, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .env_remove("AGENTMESH_CONTROL_PLANE")
        .env_remove("AGENTMESH_CONTROL_PLANE_TOKEN")
        .output()
        .expect("agentmesh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(text);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {text}"))
}

/// Starts a gateway attached to the control plane at `cp_port` with a
/// gateway credential of its own (in a 0600 file): (process, its home).
fn attached(dir: &Path, cp_port: u16, name: &str, args: &[&str]) -> (Proc, String) {
    let token = ok(cp_port, "POST", "/v1/gateways", Some(json!({"name": name})))["credential"]
        .as_str()
        .expect("gateway credential")
        .to_owned();
    let token_file = dir.join(format!("{name}.token"));
    std::fs::write(&token_file, &token).expect("token file");
    let home = dir.join(format!("{name}-home")).display().to_string();
    let cp = format!("http://127.0.0.1:{cp_port}");
    let mut all = vec!["--home", &home];
    all.extend_from_slice(args);
    let token_file = token_file.display().to_string();
    all.extend_from_slice(&[
        "--control-plane",
        &cp,
        "--control-plane-token-file",
        &token_file,
    ]);
    (spawn_listening(&all, &[]), home)
}

/// The end-to-end proof: one control plane, an attached MCP gateway
/// and an attached A2A gateway, each with its own gateway credential. An
/// agent registered with proof of possession calls a tool over MCP and
/// messages an agent over A2A; a policy published once (by the remote CLI)
/// applies to both; an IATP handshake with either gateway succeeds on the
/// control plane's voucher; a revocation stops both within 1 s; neither
/// gateway holds the admin token.
#[test]
fn one_control_plane_governs_an_attached_mcp_and_a2a_gateway() {
    // The A2A upstream is a real a2a-sdk agent (installed by `.ci/run`).
    let Some(python) = std::env::var_os("AGENTMESH_PEERS_PYTHON").map(PathBuf::from) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide AGENTMESH_PEERS_PYTHON (see .ci/run)"
        );
        eprintln!("skipping: AGENTMESH_PEERS_PYTHON is not set (run .ci/run to install the peers)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (_cp, cp_port, _cp_home) = control_plane_with_alice(dir.path());
    let cp_url = format!("http://127.0.0.1:{cp_port}");
    let admin_token = dir.path().join("admin.token");
    std::fs::write(&admin_token, TOKEN).expect("token");
    let admin_file = admin_token.display().to_string();

    // `writer` registers from its own machine with proof of possession (its
    // key never leaves the laptop); alice approves; it gets a credential.
    let laptop = dir.path().join("laptop");
    let req = cli_result(
        &laptop,
        &[
            "registrations",
            "request",
            "writer",
            "--sponsor",
            "alice@example.com",
            "--capabilities",
            "message:*,read:tasks:*,call:tools:*",
            "--control-plane",
            &cp_url,
        ],
    )
    .expect("registration");
    let id = req["id"].as_str().expect("id").to_owned();
    ok(
        cp_port,
        "POST",
        &format!("/v1/registrations/{id}/approve"),
        None,
    );
    let c1 = cli_result(
        &laptop,
        &[
            "credential",
            "request",
            "writer",
            "--control-plane",
            &cp_url,
        ],
    )
    .expect("credential")["credential"]
        .as_str()
        .expect("credential")
        .to_owned();
    // `reader`, registered by the admin with its public key.
    let k2 = KeyPair::generate().expect("key");
    ok(
        cp_port,
        "POST",
        "/v1/agents",
        Some(json!({"name": "reader", "sponsor": "alice@example.com",
                    "capabilities": ["message:*", "read:tasks:*", "call:tools:*"], "did": k2.did().to_string()})),
    );
    let c2 = credential(cp_port, &k2);

    let upstream_port = free_port();
    let _upstream = Proc(
        Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/a2a/agent.py"))
            .args(["--port", &upstream_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("agent.py"),
    );
    wait_until(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", upstream_port)).is_ok()
    })
    .expect("the upstream agent listens");

    // The A2A gateway: a local policy file that allows messages only.
    let gport = free_port();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@example.com\ndefault_action: deny\nrules:\n  - name: a2a\n    condition: \"action.type == 'agent_message'\"\n    action: allow\n",
    )
    .expect("policy");
    let cfg = dir.path().join("a2a.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{gport}\npolicy: {}\nagents:\n  - name: echo\n    url: http://127.0.0.1:{upstream_port}\n",
            dir.path().join("policy.yaml").display()
        ),
    )
    .expect("config");
    let cfg_text = cfg.display().to_string();
    let (a2a_gw, a2a_home) = attached(
        dir.path(),
        cp_port,
        "a2a-gw",
        &["a2a", "gateway", "--config", &cfg_text],
    );
    // The MCP gateway, in its own folder (its local policy allows tools).
    let mcp_dir = dir.path().join("mcp");
    std::fs::create_dir_all(&mcp_dir).expect("mcp dir");
    let mport = free_port();
    let mcp_cfg = write_gateway(&mcp_dir, mport).display().to_string();
    let (mcp_gw, mcp_home) = attached(
        dir.path(),
        cp_port,
        "mcp-gw",
        &["mcp", "gateway", "--config", &mcp_cfg],
    );

    // Ready: each holds its own home's audit log.
    for port in [gport, mport] {
        let (st, _, body) = http(port, "GET", "/readyz", &[], "").expect("readyz");
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("holder"), "{body}");
    }

    // The agent registered with proof of possession acts over both.
    a2a_send(gport, &c1, "hello").expect("writer messages over A2A");
    tool_call(mport, &c1).expect("writer calls a tool over MCP");
    a2a_send(gport, &c2, "hello").expect("reader allowed");

    // The gateways' trust state reaches the control plane; the admin CLI
    // reads it by URL (the same type on both sides).
    let shown = wait_until(Duration::from_secs(10), || {
        cli_result(
            &laptop,
            &[
                "trust",
                "show",
                "writer",
                "--control-plane",
                &cp_url,
                "--control-plane-token-file",
                &admin_file,
            ],
        )
        .is_ok_and(|v| {
            v["trust"]["score"].as_f64().is_some_and(|s| s > 0.0) && v["agent"] == "writer"
        })
    });
    assert!(
        shown.is_some(),
        "trust show by URL reads the gateways' trust state"
    );
    // The events behind it, from the shipped audit (read as recompute does).
    let explained = wait_until(Duration::from_secs(10), || {
        cli_result(
            &laptop,
            &[
                "trust",
                "explain",
                "writer",
                "--control-plane",
                &cp_url,
                "--control-plane-token-file",
                &admin_file,
            ],
        )
        .is_ok_and(|v| {
            v["events"].as_array().is_some_and(|e| {
                !e.is_empty()
                    && e.iter()
                        .all(|x| x["before"].is_number() && x["event"].is_string())
            })
        })
    });
    assert!(
        explained.is_some(),
        "trust explain by URL lists the writer's trust events"
    );

    // One policy, published once by the remote CLI, governs both gateways
    // within 1 s: the reader is refused everywhere, the writer may message
    // and call tools.
    let published = dir.path().join("published.yaml");
    std::fs::write(
        &published,
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@example.com\ndefault_action: deny\nrules:\n  - name: not-the-reader\n    condition: \"agent.name == 'reader'\"\n    action: deny\n  - name: a2a\n    condition: \"action.type == 'agent_message'\"\n    action: allow\n  - name: tools\n    condition: \"action.type == 'tool_call'\"\n    action: allow\n",
    )
    .expect("policy");
    cli_result(
        &laptop,
        &[
            "policy",
            "publish",
            &published.display().to_string(),
            "--control-plane",
            &cp_url,
            "--control-plane-token-file",
            &admin_file,
        ],
    )
    .expect("policy publish");
    let took = wait_until(Duration::from_secs(5), || {
        a2a_send(gport, &c2, "again").is_err() && tool_call(mport, &c2).is_err()
    })
    .expect("the published policy reached both gateways");
    assert!(took < Duration::from_secs(1), "policy took {took:?}");
    a2a_send(gport, &c1, "still").expect("writer still allowed over A2A");
    tool_call(mport, &c1).expect("writer still allowed over MCP");
    // Editing a gateway's local policy file does not override what the
    // control plane published.
    std::fs::write(
        dir.path().join("policy.yaml"),
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@example.com\ndefault_action: deny\nrules: []\n",
    )
    .expect("edit the local file");
    std::thread::sleep(Duration::from_millis(2500));
    a2a_send(gport, &c1, "after-local-edit").expect("the published policy still governs");

    // IATP: the writer's laptop lists neither gateway's key; each gateway
    // proves it is the mesh's with the control plane's voucher, and
    // attests the writer from the control plane's registry.
    for (port, name) in [(gport, "a2a-gw"), (mport, "mcp-gw")] {
        let peer = format!("http://127.0.0.1:{port}");
        let refused = cli_result(&laptop, &["iatp", "handshake", &peer, "--agent", "writer"])
            .expect_err("without the control plane's authority the gateway is unknown");
        assert!(refused.contains("unknown_agent"), "{refused}");
        let done = wait_until(Duration::from_secs(10), || {
            cli_result(
                &laptop,
                &[
                    "iatp",
                    "handshake",
                    &peer,
                    "--agent",
                    "writer",
                    "--control-plane",
                    &cp_url,
                ],
            )
            .is_ok()
        });
        assert!(done.is_some(), "the handshake with {name} never succeeded");
        let v = cli_result(
            &laptop,
            &[
                "iatp",
                "handshake",
                &peer,
                "--agent",
                "writer",
                "--control-plane",
                &cp_url,
            ],
        )
        .expect("handshake");
        assert_eq!(v["peer"]["vouched"], true, "{v:#}");
        assert_eq!(v["peer"]["name"], format!("gateway `{name}`"), "{v:#}");
        assert_eq!(v["attested"]["name"], "writer", "{v:#}");
    }

    // A revocation by the remote CLI stops the agent on both within 1 s.
    cli_result(
        &laptop,
        &[
            "agent",
            "revoke",
            "writer",
            "--reason",
            "compromised",
            "--control-plane",
            &cp_url,
            "--control-plane-token-file",
            &admin_file,
        ],
    )
    .expect("agent revoke");
    let took = wait_until(Duration::from_secs(5), || {
        a2a_send(gport, &c1, "after").is_err() && tool_call(mport, &c1).is_err()
    })
    .expect("the revocation reached both gateways");
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");

    // Both gateways' decisions reach the control plane's audit log.
    let shipped = wait_until(Duration::from_secs(10), || {
        let (_, log) = api(cp_port, "GET", "/v1/audit?limit=1000", None);
        // Each shipped copy names the gateway by its credential.
        let shipped_by = |protocol: &str, gateway: &str| {
            log["entries"].as_array().is_some_and(|l| {
                l.iter().any(|e| {
                    let d = &e["entry"]["detail"];
                    d["shipped_from"]["gateway"] == gateway && d["protocol"] == protocol
                })
            })
        };
        shipped_by("a2a", "a2a-gw") && shipped_by("mcp", "mcp-gw")
    });
    assert!(shipped.is_some(), "both gateways ship their audit logs");

    // Neither gateway process holds the admin token: not in its
    // environment, not in its home.
    for (gw, home) in [(&a2a_gw, &a2a_home), (&mcp_gw, &mcp_home)] {
        let environ = std::fs::read(format!("/proc/{}/environ", gw.0.id())).expect("environ");
        assert!(
            !String::from_utf8_lossy(&environ).contains(TOKEN),
            "the admin token is in a gateway's environment"
        );
        for entry in walk(Path::new(home)) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "the admin token is in {}",
                entry.display()
            );
        }
    }
    // A decision made just before the gateway stops still reaches the
    // control plane: the gateway ships what is left as it shuts down.
    let shipped_a2a = || {
        let (_, log) = api(cp_port, "GET", "/v1/audit?limit=1000", None);
        log["entries"].as_array().map_or(0, |l| {
            l.iter()
                .filter(|e| e["entry"]["detail"]["shipped_from"]["gateway"] == "a2a-gw")
                .count()
        })
    };
    wait_until(Duration::from_secs(5), || {
        let before = shipped_a2a();
        std::thread::sleep(Duration::from_millis(1200));
        before == shipped_a2a()
    })
    .expect("shipping settles");
    let before = shipped_a2a();
    let mut a2a_gw = a2a_gw;
    a2a_send(gport, &c2, "last words").expect_err("the reader is denied (and audited)");
    a2a_gw.term();
    assert!(
        shipped_a2a() > before,
        "the last decision was shipped before the gateway exited"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The admin CLI against a control plane by URL, from a machine without its
/// home: the same commands and output as on the control plane's own home.
#[test]
fn the_admin_cli_manages_agents_on_a_control_plane_by_url() {
    admin_cli_round_trip(None);
}

/// The same round trip against `serve` on PostgreSQL.
#[test]
fn the_admin_cli_manages_a_control_plane_on_postgres_by_url() {
    let Ok(base) = std::env::var("AGENTMESH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set AGENTMESH_TEST_POSTGRES_URL"
        );
        eprintln!("skipping: AGENTMESH_TEST_POSTGRES_URL is not set");
        return;
    };
    let db = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(agentmesh_store::postgres_test_schema(&base))
        .expect("schema");
    admin_cli_round_trip(Some(&db));
}

fn admin_cli_round_trip(database: Option<&str>) {
    let dir = tempfile::tempdir().expect("dir");
    let (_cp, port, cp_home) = control_plane_on(dir.path(), database);
    let _worker_key = agent(port, "worker");
    // An operator's laptop: its own (empty) home, the token in a file.
    let laptop = dir.path().join("laptop");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).expect("token");
    let url = format!("http://127.0.0.1:{port}");
    let remote = |args: &[&str]| -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--control-plane",
            &url,
            "--control-plane-token-file",
            token_file.to_str().expect("path"),
        ]);
        cli(&laptop, &all)
    };

    let list = remote(&["agent", "list"]);
    let names: Vec<&str> = list["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["worker"], "{list}");
    let shown = remote(&["agent", "show", "worker"]);
    assert_eq!(shown["agent"]["name"], "worker");
    assert!(
        shown["attestation"]
            .as_str()
            .is_some_and(|a| a.starts_with("signature valid")),
        "{shown}"
    );
    let s = remote(&["agent", "suspend", "worker", "--reason", "on leave"]);
    assert_eq!(s["status"], "suspended", "{s}");
    let (_, a) = api(port, "GET", "/v1/agents/worker", None);
    assert_eq!(a["agent"]["status"], "suspended", "{a}");
    let listed = remote(&["agent", "list", "--status", "suspended"]);
    assert_eq!(listed["agents"].as_array().map(Vec::len), Some(1));
    let r = remote(&["agent", "reactivate", "worker"]);
    assert_eq!(r["status"], "active", "{r}");
    let r = remote(&["agent", "revoke", "worker", "--reason", "done"]);
    assert_eq!(r["revoked"], json!(["worker"]), "{r}");
    let (_, a) = api(port, "GET", "/v1/agents/worker", None);
    assert_eq!(a["agent"]["status"], "revoked", "{a}");
    // Policy: linted here, published there, read back.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@example.com\ndefault_action: deny\nrules:\n  - name: reads\n    condition: \"action.type == 'tool_call'\"\n    action: allow\n",
    )
    .expect("policy");
    let published = remote(&["policy", "publish", policy.to_str().expect("path")]);
    let version = published["version"].as_str().expect("version").to_owned();
    let (_, doc) = api(port, "GET", "/v1/policy", None);
    assert!(
        doc["yaml"]
            .as_str()
            .is_some_and(|y| y.contains("name: reads")),
        "{doc}"
    );
    let shown = remote(&["policy", "show"]);
    assert_eq!(shown["version"], json!(version), "{shown}");
    // What would change: the same file differs in nothing; an edited one
    // names the rules.
    let same = remote(&["policy", "diff", policy.to_str().expect("path")]);
    assert_eq!(same["changed"], json!([]), "{same}");
    let edited = dir.path().join("edited.yaml");
    std::fs::write(
        &edited,
        "# a comment is not a change\nversion: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@example.com\ndefault_action: deny\nrules:\n  - name: reads\n    condition: \"action.type == 'resource_read'\"\n    action: allow\n  - name: writes\n    condition: \"action.type == 'tool_call'\"\n    action: deny\n",
    )
    .expect("edited");
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(&laptop)
        .args(["--json", "policy", "diff"])
        .arg(&edited)
        .args(["--control-plane", &url])
        .arg("--control-plane-token-file")
        .arg(&token_file)
        .output()
        .expect("agentmesh");
    assert_eq!(out.status.code(), Some(1), "differences exit 1");
    let d: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(d["added"], json!(["policy#0/writes"]), "{d}");
    assert_eq!(d["changed"], json!(["policy#0/reads"]), "{d}");
    assert_eq!(d["removed"], json!([]), "{d}");
    // An invalid policy never leaves the laptop (the same compiler).
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "version: \"1.0\"\nrules:\n  - name: x\n    condition: \"action.tool.size() > 0 &&\"\n    action: allow\n",
    )
    .expect("broken");
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(&laptop)
        .args(["policy", "publish"])
        .arg(&broken)
        .args(["--control-plane", &url])
        .arg("--control-plane-token-file")
        .arg(&token_file)
        .output()
        .expect("agentmesh");
    assert!(!out.status.success(), "a broken policy was published");
    let shown = remote(&["policy", "show"]);
    assert_eq!(shown["version"], json!(version), "unchanged: {shown}");

    let sponsors = remote(&["sponsor", "list"]);
    assert_eq!(
        sponsors["sponsors"][0]["email"], "alice@example.com",
        "{sponsors}"
    );
    let alice = remote(&["sponsor", "show", "alice@example.com"]);
    assert_eq!(alice["sponsor"]["email"], "alice@example.com", "{alice}");
    assert_eq!(alice["agents"], json!(["worker"]), "{alice}");
    let tail = remote(&["audit", "tail", "-n", "3"]);
    let entries = tail["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 3, "{tail}");
    assert!(
        entries.iter().any(|e| e["entry"]["event"]
            .as_str()
            .is_some_and(|ev| ev.starts_with("policy."))),
        "the newest entries: {tail}"
    );

    // An audit proof fetched from the control plane and checked here,
    // against the verifier key the operator pinned (from the control
    // plane's home, handed over out of band).
    let vkey = cli(std::path::Path::new(&cp_home), &["audit", "pubkey"])["vkey"]
        .as_str()
        .expect("vkey")
        .to_owned();
    let proved = remote(&["audit", "proof", "1", "--pubkey", &vkey]);
    assert_eq!(proved["valid"], json!(true), "{proved}");
    assert_eq!(proved["key"], "--pubkey");
    // The same proof against another key is refused.
    let stranger = KeyPair::generate().expect("key").did().to_string();
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(&laptop)
        .args([
            "audit",
            "proof",
            "1",
            "--pubkey",
            &stranger,
            "--control-plane",
            &url,
        ])
        .arg("--control-plane-token-file")
        .arg(&token_file)
        .output()
        .expect("agentmesh");
    assert!(
        !out.status.success(),
        "a checkpoint signed by another key was accepted"
    );

    // One entry by URL, checked here to hash to the leaf named; the whole
    // log verified here against the control plane's checkpoint and the
    // pinned key (and refused with another key).
    let one = remote(&["audit", "show", "1"]);
    assert_eq!(one["index"], 1, "{one}");
    assert!(one["entry"]["event"].is_string(), "{one}");
    ok(port, "POST", "/v1/audit/checkpoint", None);
    let verified = remote(&["audit", "verify", "--pubkey", &vkey]);
    assert!(verified["problem"].is_null(), "{verified}");
    assert_eq!(verified["checkpoints"][0]["ok"], true, "{verified}");
    assert!(verified["entries"].as_u64() >= Some(5), "{verified}");
    assert_eq!(verified["pinned"], true, "{verified}");
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(&laptop)
        .args([
            "audit",
            "verify",
            "--pubkey",
            &stranger,
            "--control-plane",
            &url,
        ])
        .arg("--control-plane-token-file")
        .arg(&token_file)
        .output()
        .expect("agentmesh");
    assert!(
        !out.status.success(),
        "a log signed by another key verified"
    );

    // Trust and approvals by URL, as the home prints them.
    let _second = agent(port, "second");
    let listed = remote(&["trust", "list"]);
    let trusted: Vec<&str> = listed["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert!(trusted.contains(&"second"), "{listed}");
    assert!(
        listed["agents"][0]["trust"]["score"].as_f64().is_some(),
        "{listed}"
    );
    let none = remote(&["trust", "list", "--below", "0.0"]);
    assert_eq!(none["agents"], json!([]), "{none}");
    let explained = remote(&["trust", "explain", "second"]);
    assert_eq!(explained["agent"], "second", "{explained}");
    assert_eq!(explained["events"], json!([]), "{explained}");
    let history = remote(&["trust", "history", "second"]);
    assert_eq!(history["agent"], "second", "{history}");
    assert!(history["history"].is_array(), "{history}");
    let report = remote(&[
        "compliance",
        "report",
        "--framework",
        "soc2",
        "--since",
        "1h",
        "--format",
        "json",
    ]);
    assert_eq!(report["framework"], "soc2", "{report}");
    assert!(
        report["controls"].as_array().is_some_and(|c| !c.is_empty()),
        "{report}"
    );
    assert!(report["entries_in_window"].as_u64() >= Some(5), "{report}");
    let approvals = remote(&["approvals", "list", "--all"]);
    assert!(approvals.is_array(), "{approvals}");

    // The laptop's home was never written as a registry of its own.
    assert!(
        !laptop.join("registry.db").exists(),
        "a remote command must not create a local registry"
    );

    // Another mesh's home (with its own admin token) pointed at this
    // control plane: its token is not sent; a clear error instead.
    let other = dir.path().join("other-home");
    let init = Command::new(agentmesh())
        .arg("--home")
        .arg(&other)
        .arg("init")
        .output()
        .expect("init");
    assert!(init.status.success());
    std::fs::write(
        other.join("admin.token"),
        "other-mesh-admin-token-0123456789",
    )
    .expect("token");
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(&other)
        .args(["agent", "list", "--control-plane", &url])
        .env_remove("AGENTMESH_CONTROL_PLANE_TOKEN")
        .output()
        .expect("agentmesh");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not sent"), "{err}");

    // A wrong token is a clear error, not a silent local fallback.
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "not-the-token-0123456789").expect("bad");
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(&laptop)
        .args(["agent", "list", "--control-plane", &url])
        .arg("--control-plane-token-file")
        .arg(&bad)
        .output()
        .expect("agentmesh");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") || err.to_lowercase().contains("token"),
        "{err}"
    );
}
