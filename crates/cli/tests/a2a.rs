//! The A2A gateway against real peers: `a2a-sdk==1.3.0` clients (1.0 and
//! 0.3, JSON-RPC and REST, blocking and streaming) through `agentmesh a2a
//! gateway` to an `a2a-sdk` agent whose card is signed; the served card
//! verified with the gateway's key by the SDK's own verifier; policy
//! denials; task ownership; hostile requests; an IATP-attested caller.
//! Peers come from `.ci/run` (AGENTMESH_PEERS_PYTHON).

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use support::{Home, Proc, free_port, need, raw, repo, wait_port};

const POLICY: &str = r#"
version: "1.0"
agents: ["*"]
sponsor: alice@company.com
default_action: deny
rules:
  - name: no-forbidden
    condition: "action.type == 'agent_message' && request.arguments.text.contains('forbidden')"
    action: deny
  - name: a2a
    condition: "action.type in ['agent_message', 'task_read', 'task_cancel']"
    action: allow
"#;

fn python_has_a2a(python: &Path) -> bool {
    let ok = Command::new(python)
        .args(["-c", "import a2a, uvicorn"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install a2a-sdk[http-server,signing]==1.3.0 (see .ci/run)"
        );
        eprintln!("skipping: a2a-sdk is not installed in {}", python.display());
    }
    ok
}

/// Writes an Ed25519 key pair (private `<name>.json`, public `<name>.pub.json`).
fn gen_jwk(python: &Path, path: &Path) {
    let st = Command::new(python)
        .arg(repo().join("interop/a2a/agent.py"))
        .arg("--gen-jwk")
        .arg(path)
        .args(["--kty", "OKP"])
        .stdout(Stdio::null())
        .status()
        .expect("gen-jwk");
    assert!(st.success());
}

fn agent(python: &Path, sign: &Path) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(python)
        .arg(repo().join("interop/a2a/agent.py"))
        .args(["--port", &port.to_string(), "--sign-jwk"])
        .arg(sign)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent.py");
    let p = Proc(child);
    wait_port(port);
    (p, port)
}

fn drive(
    python: &Path,
    port: u16,
    version: &str,
    transport: &str,
    bearer: &str,
    steps: &Value,
    extra: &[&str],
) -> Vec<Value> {
    drive_at(
        python,
        &format!("http://127.0.0.1:{port}"),
        version,
        transport,
        bearer,
        steps,
        extra,
    )
}

fn drive_at(
    python: &Path,
    url: &str,
    version: &str,
    transport: &str,
    bearer: &str,
    steps: &Value,
    extra: &[&str],
) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("steps.json");
    std::fs::write(&f, steps.to_string()).expect("steps");
    let out = Command::new(python)
        .arg(repo().join("interop/a2a/drive.py"))
        .args(["--url", url])
        .args([
            "--version",
            version,
            "--transport",
            transport,
            "--bearer",
            bearer,
        ])
        .args(extra)
        .arg("--steps")
        .arg(&f)
        .output()
        .expect("drive.py");
    assert!(
        out.status.success(),
        "drive.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn gateway_config(h: &Home, upstream: u16, keyfile: &Path) -> (std::path::PathBuf, u16) {
    let port = free_port();
    h.write("policy.yaml", POLICY);
    let cfg = h.write(
        "a2a.yaml",
        &format!(
            "listen: 127.0.0.1:{port}\npolicy: policy.yaml\npush_notifications: {{allow_http: false}}\nagents:\n  - name: echo\n    url: http://127.0.0.1:{upstream}\n    card_keys: [{}]\n    card_signatures: require\n",
            keyfile.display()
        ),
    );
    (cfg, port)
}

/// A home with agent `caller`, a signed `a2a-sdk` agent, and the gateway
/// in front of it (requiring the card's signature).
struct Fronted {
    h: Home,
    _agent: Proc,
    _gw: Proc,
    port: u16,
}

fn fronted() -> Option<Fronted> {
    let python = need("AGENTMESH_PEERS_PYTHON")?;
    if !python_has_a2a(&python) {
        return None;
    }
    let h = Home::new();
    h.agent("caller", "message:echo");
    let key = h.file("upstream.json");
    gen_jwk(&python, &key);
    let (agent, upstream) = agent(&python, &key);
    let (cfg, port) = gateway_config(&h, upstream, &h.file("upstream.pub.json"));
    let gw = h.spawn(
        &["a2a", "gateway", "--config", cfg.to_str().expect("utf-8")],
        port,
    );
    Some(Fronted {
        h,
        _agent: agent,
        _gw: gw,
        port,
    })
}

fn last_state(events: &[Value]) -> String {
    events
        .iter()
        .rev()
        .find_map(|e| {
            e.pointer("/statusUpdate/status/state")
                .or_else(|| e.pointer("/task/status/state"))
                .and_then(Value::as_str)
        })
        .unwrap_or("")
        .to_owned()
}

#[test]
fn a2a_sdk_clients_of_both_versions_and_bindings_through_the_gateway() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    if !python_has_a2a(&python) {
        return;
    }
    let h = Home::new();
    h.agent("caller", "message:echo");
    h.agent("other", "message:echo");
    let key = h.file("upstream.json");
    gen_jwk(&python, &key);
    let (_agent, upstream) = agent(&python, &key);

    // A card signed by a key the gateway was not told about: refused at start.
    let stranger = h.file("stranger.json");
    gen_jwk(&python, &stranger);
    let (cfg, _) = gateway_config(&h, upstream, &h.file("stranger.pub.json"));
    let out = h.run(&["a2a", "gateway", "--config", cfg.to_str().expect("utf-8")]);
    assert!(
        !out.status.success(),
        "a card that does not verify must stop the gateway"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no configured key verifies it"), "{err}");

    let (cfg, port) = gateway_config(&h, upstream, &h.file("upstream.pub.json"));
    let _gw = h.spawn(
        &["a2a", "gateway", "--config", cfg.to_str().expect("utf-8")],
        port,
    );
    let (status, _, jwks) = raw(port, "GET", "/.well-known/jwks.json", &[], b"");
    assert_eq!(status, 200);
    let jwk = serde_json::from_str::<Value>(&jwks).expect("jwks")["keys"][0].clone();
    let wrong = serde_json::from_str::<Value>(
        &std::fs::read_to_string(h.file("stranger.pub.json")).expect("key"),
    )
    .expect("jwk");
    let token = h.credential("caller");
    let steps = json!([
        {"op": "card", "verify_jwk": jwk},
        {"op": "card", "verify_jwk": wrong},
        {"op": "send", "text": "hello"},
        {"op": "stream", "text": "task: t1"},
        {"op": "send", "text": "task: t2"},
        {"op": "get", "task": "$last"},
        {"op": "send", "text": "some forbidden words"},
        {"op": "send", "data": {"n": 1}},
        {"op": "send", "text": "slow: s1", "return_immediately": true},
        {"op": "subscribe", "task": "$last"},
    ]);
    let mut owned = Vec::new();
    for (version, transport) in [
        ("1.0", "jsonrpc"),
        ("1.0", "rest"),
        ("0.3", "jsonrpc"),
        ("0.3", "rest"),
    ] {
        let mode = format!("{version}/{transport}");
        let r = drive(
            &python,
            port,
            version,
            transport,
            &token,
            &steps,
            &["--extensions", "urn:test:ext"],
        );
        // The served card points at the gateway and verifies with the
        // gateway's key (the SDK's verifier), not with another.
        assert_eq!(r[0]["ok"]["verified"], true, "{mode}: {}", r[0]);
        let urls: Vec<&str> = r[0]["ok"]["card"]["supportedInterfaces"]
            .as_array()
            .expect("interfaces")
            .iter()
            .filter_map(|i| i["url"].as_str())
            .collect();
        assert!(
            !urls.is_empty()
                && urls
                    .iter()
                    .all(|u| u.starts_with(&format!("http://127.0.0.1:{port}/"))),
            "{mode}: {urls:?}"
        );
        assert_eq!(r[1]["ok"]["verified"], false, "{mode}: {}", r[1]);
        assert_eq!(
            r[2]["ok"]["message"]["parts"][0]["text"], "echo: hello",
            "{mode}: {}",
            r[2]
        );
        // Extensions pass through to the agent.
        assert!(
            r[2].to_string().contains("urn:test:ext"),
            "{mode}: A2A-Extensions reached the agent: {}",
            r[2]
        );
        let events = r[3]["ok"].as_array().expect("stream events");
        assert!(
            events.len() >= 3,
            "{mode}: a stream of several events: {events:?}"
        );
        assert_eq!(last_state(events), "TASK_STATE_COMPLETED", "{mode}");
        let t2 = r[4]["ok"]["task"]["id"]
            .as_str()
            .expect("task id")
            .to_owned();
        assert_eq!(
            r[5]["ok"]["id"],
            t2.as_str(),
            "{mode}: GetTask reached the owning upstream"
        );
        let denied = &r[6]["error"];
        assert!(
            denied["message"]
                .as_str()
                .unwrap_or("")
                .contains("denied by AgentMesh")
                || denied["code"] == 403,
            "{mode}: {denied}"
        );
        match (version, transport) {
            ("1.0", "jsonrpc") => assert_eq!(denied["code"], -31001, "{mode}"),
            (_, "rest") => assert_eq!(denied["code"], 403, "{mode}"),
            _ => assert!(
                denied["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no-forbidden"),
                "{mode}: {denied}"
            ),
        }
        assert_eq!(
            r[7]["ok"]["message"]["parts"][0]["data"]["received"]["n"], 1.0,
            "{mode}: {}",
            r[7]
        );
        let sub = r[9]["ok"].as_array().expect("subscription events");
        assert_eq!(last_state(sub), "TASK_STATE_COMPLETED", "{mode}: {sub:?}");
        owned.push(t2);
    }

    // Another agent cannot see or cancel the caller's tasks.
    let other = h.credential("other");
    for transport in ["jsonrpc", "rest"] {
        let r = drive(
            &python,
            port,
            "1.0",
            transport,
            &other,
            &json!([{"op": "get", "task": owned[0]}, {"op": "cancel", "task": owned[0]}]),
            &[],
        );
        for step in &r {
            assert!(
                step["error"]["code"] == -32001 || step["error"]["code"] == 404,
                "{transport}: someone else's task is not found: {step}"
            );
        }
    }

    // Every message was a decision leaf; the denial names its rule.
    h.audit_until(|entries| {
        let decisions: Vec<&Value> = entries
            .iter()
            .filter(|e| e["event"] == "decision" && e["action"] == "echo")
            .collect();
        decisions.len() >= 4 * 7
            && decisions
                .iter()
                .any(|e| e["decision"] == "deny" && e["rule"] == "policy/no-forbidden")
    });
}

#[test]
fn hostile_requests_get_protocol_errors_and_the_gateway_keeps_serving() {
    let Some(Fronted {
        h,
        _agent,
        _gw,
        port,
    }) = fronted()
    else {
        return;
    };
    let bearer = format!("Bearer {}", h.credential("caller"));
    let auth = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let v1 = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
        ("a2a-version", "1.0"),
    ];
    let rpc = |headers: &[(&str, &str)], body: &str| {
        let (status, head, body) = raw(port, "POST", "/", headers, body.as_bytes());
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        (status, head, v)
    };
    // No credential: 401 with a challenge, as a JSON-RPC error.
    let (s, head, v) = rpc(
        &[("content-type", "application/json")],
        r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}"#,
    );
    assert_eq!(s, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert_eq!(v["error"]["code"], -31000);
    let (s, _, v) = rpc(
        &[("authorization", "Bearer amcr1.garbage")],
        r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}"#,
    );
    assert_eq!(
        (s, v["error"]["data"][0]["metadata"]["reason"].as_str()),
        (401, Some("credential_malformed"))
    );
    // Not JSON, not JSON-RPC, unknown method, unknown version.
    assert_eq!(rpc(&auth, "{").2["error"]["code"], -32700);
    assert_eq!(
        rpc(&auth, r#"{"jsonrpc":"2.0","method":"SendMessage"}"#).2["error"]["code"],
        -32600
    );
    assert_eq!(
        rpc(
            &auth,
            r#"{"jsonrpc":"2.0","id":null,"method":"SendMessage"}"#
        )
        .2["error"]["code"],
        -32600
    );
    assert_eq!(rpc(&auth, r#"[1,2]"#).2["error"]["code"], -32600);
    assert_eq!(
        rpc(
            &v1,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#
        )
        .2["error"]["code"],
        -32601
    );
    let two = [("authorization", bearer.as_str()), ("a2a-version", "2.0")];
    assert_eq!(
        rpc(
            &two,
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}"#
        )
        .2["error"]["code"],
        -32009
    );
    // Bad params: no message, params not an object, unknown task.
    assert_eq!(
        rpc(
            &v1,
            r#"{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{}}"#
        )
        .2["error"]["code"],
        -32602
    );
    assert_eq!(
        rpc(
            &v1,
            r#"{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":[1]}"#
        )
        .2["error"]["code"],
        -32602
    );
    let (_, _, v) = rpc(
        &v1,
        r#"{"jsonrpc":"2.0","id":7,"method":"GetTask","params":{"id":"nope"}}"#,
    );
    assert_eq!(
        (v["error"]["code"].as_i64(), v["id"].as_i64()),
        (Some(-32001), Some(7))
    );
    // A push-notification webhook to a private address is refused (SSRF).
    let (_, _, v) = rpc(
        &v1,
        r#"{"jsonrpc":"2.0","id":8,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"task: x"}]},"configuration":{"taskPushNotificationConfig":{"url":"https://169.254.169.254/latest"}}}}"#,
    );
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("private"),
        "{v}"
    );
    // Oversized.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"x":"{}"}}}}"#,
        "a".repeat(5 << 20)
    );
    let (s, _, _) = raw(port, "POST", "/", &auth, big.as_bytes());
    assert_eq!(s, 413);
    // REST: unknown route, bad body; GET on the JSON-RPC endpoint.
    let (s, _, body) = raw(port, "GET", "/rest/etc/passwd", &v1, b"");
    assert_eq!(s, 404, "{body}");
    let (s, _, body) = raw(port, "POST", "/rest/message:send", &v1, b"not json");
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("status")["error"]["status"],
        "INVALID_ARGUMENT"
    );
    assert_eq!(raw(port, "GET", "/", &v1, b"").0, 405);
    // The card: ETag and If-None-Match.
    let (s, head, _) = raw(port, "GET", "/.well-known/agent-card.json", &[], b"");
    assert_eq!(s, 200);
    let etag = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("etag:")
                .then(|| l[5..].trim().to_owned())
        })
        .expect("etag");
    assert_eq!(
        raw(
            port,
            "GET",
            "/.well-known/agent-card.json",
            &[("if-none-match", &etag)],
            b""
        )
        .0,
        304
    );
    // Still serving.
    let (_, _, v) = rpc(
        &v1,
        r#"{"jsonrpc":"2.0","id":9,"method":"SendMessage","params":{"message":{"messageId":"m9","role":"ROLE_USER","parts":[{"text":"still here"}]}}}"#,
    );
    assert_eq!(
        v["result"]["message"]["parts"][0]["text"], "echo: still here",
        "{v}"
    );
}

#[test]
fn a_handshake_attested_caller_passes_the_gateway() {
    let Some(Fronted {
        h,
        _agent,
        _gw,
        port,
    }) = fronted()
    else {
        return;
    };
    let python = need("AGENTMESH_PEERS_PYTHON").expect("checked by fronted()");
    // The caller proves who it is to the gateway (whose challenge is signed
    // by the mesh authority, which the caller's registry trusts).
    let done = h.json(&[
        "iatp",
        "handshake",
        &format!("http://127.0.0.1:{port}"),
        "--agent",
        "caller",
    ]);
    let att = done["attestation"]
        .as_str()
        .expect("attestation")
        .to_owned();
    assert!(att.starts_with("amat1."), "{done}");
    assert_eq!(done["attested"]["name"], "caller");
    // As a bearer, through the SDK client.
    let r = drive(
        &python,
        port,
        "1.0",
        "jsonrpc",
        &att,
        &json!([{"op": "send", "text": "attested"}]),
        &[],
    );
    assert_eq!(
        r[0]["ok"]["message"]["parts"][0]["text"], "echo: attested",
        "{}",
        r[0]
    );
    // In the message metadata (the A2A extension), without any header.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "via metadata"}],
        "metadata": {"dev.agentmesh/iatp": {"attestation": att}, "keep": "yes"}}}});
    let (s, head, out) = raw(
        port,
        "POST",
        "/",
        &[
            ("content-type", "application/json"),
            ("a2a-version", "1.0"),
            ("a2a-extensions", "https://agentmesh.dev/ext/iatp/v1"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(s, 200, "{out}");
    assert!(out.contains("echo: via metadata"), "{out}");
    // The agent got the rest of the metadata, never the attestation.
    let answer: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        answer["result"]["message"]["metadata"]["receivedMetadataKeys"],
        json!(["keep"]),
        "{out}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("a2a-extensions: https://agentmesh.dev/ext/iatp/v1"),
        "{head}"
    );
    // A response to the gateway's challenge bound to the message's parts,
    // in the metadata: accepted once; the same message again is a replay.
    let key = agentmesh_store::read_private_key(&h.path.join("keys/agents/caller.key"))
        .expect("caller's key");
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let challenge = rt
        .block_on(agentmesh_iatp::http::HandshakeClient::new().challenge(&base, &key.did()))
        .expect("challenge");
    let parts = json!([{"text": "bound to this message"}]);
    let response = agentmesh_iatp::Response::answer(
        &challenge,
        &key,
        &agentmesh_iatp::request_channel(&parts),
    )
    .expect("randomness");
    let bound = json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {
        "messageId": "m2", "role": "ROLE_USER", "parts": parts,
        "metadata": {"dev.agentmesh/iatp": {"response": response}}}}});
    let headers = [("content-type", "application/json"), ("a2a-version", "1.0")];
    let (s, _, out) = raw(port, "POST", "/", &headers, bound.to_string().as_bytes());
    assert_eq!(s, 200, "{out}");
    assert!(out.contains("echo: bound to this message"), "{out}");
    let (s, _, out) = raw(port, "POST", "/", &headers, bound.to_string().as_bytes());
    assert_eq!(s, 401, "{out}");
    assert!(out.contains("replayed"), "{out}");
    // The same response moved onto other parts: the binding fails.
    let mut moved = bound.clone();
    moved["params"]["message"]["parts"] = json!([{"text": "something else"}]);
    let (s, _, out) = raw(port, "POST", "/", &headers, moved.to_string().as_bytes());
    assert_eq!(s, 401, "{out}");
    // A tampered attestation is refused.
    let mut bad = att.clone().into_bytes();
    let i = 10;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).expect("ascii");
    let (s, _, out) = raw(
        port,
        "POST",
        "/",
        &[
            ("authorization", &format!("Bearer {bad}")),
            ("a2a-version", "1.0"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(s, 401, "{out}");
    // The handshake itself is an audit leaf, and a trust event for the caller.
    h.audit_until(|entries| {
        entries
            .iter()
            .any(|e| e["event"] == "iatp.handshake" && e["decision"] == "allow")
            && entries
                .iter()
                .any(|e| e["event"] == "trust.event" && e["detail"]["kind"] == "handshake")
    });
}

fn mcp_drive(python: &Path, url: &str, bearer: &str, steps: &Value) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("steps.json");
    std::fs::write(&f, steps.to_string()).expect("steps");
    let out = Command::new(python)
        .arg(repo().join("interop/mcp/drive.py"))
        .arg("--steps")
        .arg(&f)
        .args(["--mode", "legacy", "--url", url, "--bearer", bearer])
        .output()
        .expect("mcp drive.py");
    assert!(
        out.status.success(),
        "mcp drive.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn the_bridge_works_both_ways_and_the_audit_links_the_legs() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    if !python_has_a2a(&python) {
        return;
    }
    let h = Home::new();
    h.agent(
        "caller",
        "message:echo,call:echo:ask,message:tools,call:tools:echo,call:tools:add",
    );
    h.write(
        "policy.yaml",
        r#"
version: "1.0"
agents: ["*"]
sponsor: alice@company.com
default_action: deny
rules:
  - name: bridge
    condition: "action.type in ['agent_message', 'tool_call']"
    action: allow
"#,
    );
    let key = h.file("upstream.json");
    gen_jwk(&python, &key);
    let (_agent, upstream) = agent(&python, &key);
    let (_fixture, fport) = support::mcp_fixture(&python);
    let port = free_port();
    let cfg = h.write(
        "a2a.yaml",
        &format!(
            "listen: 127.0.0.1:{port}\npolicy: policy.yaml\nagents:\n  - name: echo\n    url: http://127.0.0.1:{upstream}\n  - name: tools\n    mcp: http://127.0.0.1:{fport}/mcp\n"
        ),
    );
    let _gw = h.spawn(
        &["a2a", "gateway", "--config", cfg.to_str().expect("utf-8")],
        port,
    );
    let token = h.credential("caller");

    // An MCP client (the official Python SDK) asks the A2A agent.
    let r = mcp_drive(
        &python,
        &format!("http://127.0.0.1:{port}/mcp"),
        &token,
        &json!([
            {"op": "list_tools"},
            {"op": "call", "name": "ask_echo", "args": {"text": "hi from mcp"}},
            {"op": "call", "name": "ask_echo", "args": {"text": "task: bridged"}},
            {"op": "call", "name": "ask_nobody", "args": {"text": "x"}},
        ]),
    );
    let names: Vec<&str> = r[0]["ok"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["ask_echo"], "{}", r[0]);
    assert_eq!(
        r[1]["ok"]["content"][0]["text"], "echo: hi from mcp",
        "{}",
        r[1]
    );
    assert_eq!(r[1]["ok"]["isError"], false);
    assert!(r[2].to_string().contains("done: bridged"), "{}", r[2]);
    assert_eq!(
        r[2]["ok"]["structuredContent"]["state"], "TASK_STATE_COMPLETED",
        "{}",
        r[2]
    );
    assert!(r[3].get("error").is_some(), "{}", r[3]);

    // An A2A client (a2a-sdk, both versions) asks the MCP-backed agent.
    let gw_jwk =
        serde_json::from_str::<Value>(&raw(port, "GET", "/.well-known/jwks.json", &[], b"").2)
            .expect("jwks")["keys"][0]
            .clone();
    let steps = json!([
        {"op": "card", "verify_jwk": gw_jwk},
        {"op": "send", "data": {"tool": "echo", "arguments": {"text": "hi from a2a"}}},
        {"op": "send", "data": {"tool": "add", "arguments": {"a": 2, "b": 3}}},
        {"op": "send", "data": {"tool": "write_file", "arguments": {"path": "/tmp/x", "content": "no"}}},
    ]);
    for version in ["1.0", "0.3"] {
        let r = drive_at(
            &python,
            &format!("http://127.0.0.1:{port}/tools"),
            version,
            "jsonrpc",
            &token,
            &steps,
            &[],
        );
        assert_eq!(r[0]["ok"]["verified"], true, "{version}: {}", r[0]);
        let skills: Vec<&str> = r[0]["ok"]["card"]["skills"]
            .as_array()
            .expect("skills")
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert!(
            skills.contains(&"echo") && skills.contains(&"add"),
            "{skills:?}"
        );
        assert_eq!(
            r[1]["ok"]["message"]["parts"][0]["text"], "hi from a2a",
            "{version}: {}",
            r[1]
        );
        assert_eq!(
            r[2]["ok"]["message"]["parts"][0]["text"], "5",
            "{version}: {}",
            r[2]
        );
        // Not in the caller's capabilities: denied at the first leg.
        assert!(r[3].get("error").is_some(), "{version}: {}", r[3]);
    }

    // Both legs are decision leaves; the second names the first.
    let entries = h.audit_until(|entries| {
        let legs = |from: &str| {
            entries
                .iter()
                .filter(|e| {
                    e["event"] == "decision" && e["detail"]["note"]["bridge"]["from"] == from
                })
                .count()
        };
        legs("mcp") >= 2 && legs("a2a") >= 4
    });
    let by_seq = |seq: &Value| {
        entries
            .iter()
            .find(|e| e["seq"] == *seq)
            .cloned()
            .unwrap_or(Value::Null)
    };
    for e in entries
        .iter()
        .filter(|e| e["event"] == "decision" && e["detail"]["note"]["bridge"].is_object())
    {
        let first = by_seq(&e["detail"]["note"]["bridge"]["first_leg_audit_index"]);
        assert_eq!(first["event"], "decision", "{e}");
        assert_eq!(first["agent"], e["agent"], "the same caller on both legs");
        match e["detail"]["note"]["bridge"]["from"].as_str() {
            Some("mcp") => {
                assert_eq!(first["action"], "ask_echo", "{first}");
                assert_eq!(e["action"], "echo", "{e}");
            }
            Some("a2a") => {
                assert!(
                    first["action"].as_str().unwrap_or("").starts_with("tools/"),
                    "{first}"
                );
                assert!(
                    e["action"].as_str().unwrap_or("").starts_with("tools__"),
                    "{e}"
                );
            }
            other => panic!("unexpected bridge note {other:?}"),
        }
    }
}

/// What is judged is what the agent acts on (issue 14): the readable text
/// of every part kind reaches text rules; a message naming two skills, or a
/// part of two kinds, is refused; contexts belong to their first caller
/// like tasks; webhook URLs in non-canonical spellings or snake_case
/// aliases are refused; and a third party presenting someone's delegation
/// token with a bad proof moves nothing of that agent's trust.
#[test]
fn messages_are_judged_as_the_agent_reads_them() {
    use base64::Engine;
    let Some(Fronted {
        h,
        _agent,
        _gw,
        port,
    }) = fronted()
    else {
        return;
    };
    h.agent("other", "message:echo");
    let bearer = format!("Bearer {}", h.credential("caller"));
    let other = format!("Bearer {}", h.credential("other"));
    // The running gateway sees the new agent at its next registry refresh.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let headers = |b: &str| {
        vec![
            ("authorization", b.to_owned()),
            ("content-type", "application/json".to_owned()),
            ("a2a-version", "1.0".to_owned()),
        ]
    };
    let send = |b: &str, message: Value, configuration: Option<Value>| -> Value {
        let mut params = json!({"message": message});
        if let Some(c) = configuration {
            params["configuration"] = c;
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params});
        let hs = headers(b);
        let hs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, _, text) = raw(port, "POST", "/", &hs, body.to_string().as_bytes());
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    let msg =
        |id: &str, parts: Value| json!({"messageId": id, "role": "ROLE_USER", "parts": parts});

    // The deny rule reads `text`: a data part or a file's bytes carry it too.
    let v = send(
        &bearer,
        msg("d1", json!([{"data": {"note": "forbidden plan"}}])),
        None,
    );
    assert_eq!(v["error"]["code"], -31001, "data part: {v}");
    let b64 = base64::engine::general_purpose::STANDARD.encode("forbidden file");
    let v = send(
        &bearer,
        msg(
            "d2",
            json!([{"raw": b64, "mediaType": "text/plain", "filename": "a.txt"}]),
        ),
        None,
    );
    assert_eq!(v["error"]["code"], -31001, "file bytes: {v}");
    // Two skills, two kinds in one part: refused before anything is judged.
    let mut two = msg("s1", json!([{"text": "hi"}]));
    two["metadata"] = json!({"skillId": "echo", "skill_id": "admin"});
    let v = send(&bearer, two, None);
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let v = send(
        &bearer,
        msg("s2", json!([{"text": "hi", "data": {"cmd": "forbidden"}}])),
        None,
    );
    assert_eq!(v["error"]["code"], -32602, "{v}");

    // Contexts: the first caller's.
    let mut in_ctx = msg("c1", json!([{"text": "hello"}]));
    in_ctx["contextId"] = json!("ctx-owned-by-caller");
    let v = send(&bearer, in_ctx.clone(), None);
    assert!(v.get("result").is_some(), "{v}");
    in_ctx["messageId"] = json!("c2");
    let v = send(&other, in_ctx.clone(), None);
    assert_eq!(v["error"]["code"], -32602, "someone else's context: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{v}"
    );
    in_ctx["messageId"] = json!("c3");
    let v = send(&bearer, in_ctx, None);
    assert!(v.get("result").is_some(), "the owner continues: {v}");

    // Webhooks: spellings another parser reads differently, aliases.
    for (config, why) in [
        (
            json!({"taskPushNotificationConfig": {"url": "https://2130706433/hook"}}),
            "decimal IPv4",
        ),
        (
            json!({"taskPushNotificationConfig": {"url": "https://0x7f.1/hook"}}),
            "hex short IPv4",
        ),
        (
            json!({"taskPushNotificationConfig": {"url": "https://example.com./hook"}}),
            "trailing dot",
        ),
        (
            json!({"push_notification_config": {"url": "https://10.0.0.1/hook"}}),
            "snake_case alias",
        ),
        (
            json!({"taskPushNotificationConfig": {"url": "https://localhost:9443/hook"}}),
            "a name resolving to loopback",
        ),
    ] {
        let v = send(&bearer, msg("w", json!([{"text": "hi"}])), Some(config));
        assert_eq!(v["error"]["code"], -32602, "{why}: {v}");
    }

    // A third party with the caller's delegation token but not its key.
    let token = h.ok(&[
        "delegate",
        "--from",
        "alice@company.com",
        "--to",
        "caller",
        "--capabilities",
        "message:echo",
    ]);
    // The gateway flushes trust state every second.
    let flushed = || std::thread::sleep(std::time::Duration::from_millis(1500));
    flushed();
    let before = h.json(&["trust", "show", "caller"]);
    let stolen = format!("Bearer {}", token.trim());
    for i in 0..3 {
        let body = json!({"jsonrpc": "2.0", "id": i, "method": "SendMessage",
            "params": {"message": msg(&format!("x{i}"), json!([{"text": "hi"}]))}});
        let (s, _, _) = raw(
            port,
            "POST",
            "/",
            &[
                ("authorization", stolen.as_str()),
                ("content-type", "application/json"),
                ("agentmesh-proof", "amhp1.forged"),
            ],
            body.to_string().as_bytes(),
        );
        assert_eq!(s, 401);
    }
    let entries = h.audit_until(|es| {
        es.iter()
            .filter(|e| e["event"] == "auth.failed" && e["detail"]["source"] == "127.0.0.1")
            .count()
            >= 3
    });
    let caller_did = h.json(&["agent", "show", "caller"])["agent"]["did"]
        .as_str()
        .expect("did")
        .to_owned();
    for e in entries.iter().filter(|e| e["event"] == "auth.failed") {
        assert_eq!(e["agent"], "", "not the caller's conduct: {e}");
    }
    assert!(
        entries
            .iter()
            .any(|e| e["event"] == "auth.failed" && e["detail"]["claimed_agent"] == caller_did),
        "the claim is recorded as a claim"
    );
    flushed();
    let after = h.json(&["trust", "show", "caller"]);
    assert_eq!(
        before["events"], after["events"],
        "no trust event for the caller: {before} {after}"
    );
    assert_eq!(
        h.json(&["agent", "show", "caller"])["agent"]["status"],
        "active"
    );
}
