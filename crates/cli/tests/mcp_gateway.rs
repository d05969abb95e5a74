//! The Streamable HTTP gateway against real peers: the official Python SDK
//! client (`mcp==2.3.0`, both eras) through `agentmesh mcp gateway` to a
//! fixture server over HTTP, PyPI `mcp-server-time` over stdio and npm
//! `@modelcontextprotocol/server-everything` (legacy) over HTTP; hostile
//! and malformed requests; and the MCP conformance suites run directly
//! against the upstream and through the gateway, which must agree.
//! Peers come from `.ci/run` (AGENTMESH_PEERS_PYTHON / _NODE / _NODE_NEXT).

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_path(name: &str) -> Option<PathBuf> {
    let p = std::env::var_os(name).map(PathBuf::from)?;
    p.exists().then_some(p)
}

fn need(name: &str) -> Option<PathBuf> {
    let p = env_path(name);
    if p.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide {name} (see .ci/run)"
        );
        eprintln!("skipping: {name} is not set (run .ci/run to install the MCP peers)");
    }
    p
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn agentmesh() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agentmesh"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port} after 30 s");
}

struct Home {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mesh");
        let h = Self { dir, path };
        h.ok(&["init", "--trust-domain", "example.org"]);
        h.ok(&["sponsor", "create", "alice@company.com"]);
        h
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = Command::new(agentmesh())
            .arg("--home")
            .arg(&self.path)
            .args(args)
            .output()
            .expect("run agentmesh");
        assert!(
            out.status.success(),
            "agentmesh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("json")
    }

    fn agent(&self, name: &str, caps: &str) {
        self.ok(&[
            "agent",
            "create",
            name,
            "--sponsor",
            "alice@company.com",
            "--capabilities",
            caps,
        ]);
    }

    fn credential(&self, agent: &str) -> String {
        self.json(&["credential", "issue", agent])["credential"]
            .as_str()
            .expect("credential")
            .to_owned()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Starts a gateway with `config` (YAML, `{port}` filled in).
    fn gateway(&self, config: &str) -> (Proc, u16) {
        let port = free_port();
        let cfg = self.write("gw.yaml", &config.replace("{port}", &port.to_string()));
        let child = Command::new(agentmesh())
            .arg("--home")
            .arg(&self.path)
            .args(["mcp", "gateway", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("gateway");
        let p = Proc(child);
        wait_port(port);
        (p, port)
    }
}

fn fixture_http(python: &Path) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(python)
        .arg(repo().join("interop/mcp/fixture_server.py"))
        .arg("http")
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fixture");
    let p = Proc(child);
    wait_port(port);
    (p, port)
}

fn everything_http(node_dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(node_dir.join("node_modules/.bin/node"))
        .arg(node_dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server-everything");
    let p = Proc(child);
    wait_port(port);
    (p, port)
}

fn drive(python: &Path, steps: &Value, url: &str, bearer: &str, mode: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("steps.json");
    std::fs::write(&f, steps.to_string()).expect("steps");
    let mut c = Command::new(python);
    c.arg(repo().join("interop/mcp/drive.py"))
        .arg("--steps")
        .arg(&f)
        .args(["--mode", mode, "--url", url]);
    if !bearer.is_empty() {
        c.args(["--bearer", bearer]);
    }
    let out = c.output().expect("driver");
    assert!(
        out.status.success(),
        "driver: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["ok"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

const POLICY: &str = r#"
version: "1.0"
agents: ["*"]
sponsor: alice@company.com
default_action: deny
rules:
  - name: calls
    condition: "action.type in ['tool_call', 'prompt_get', 'resource_read']"
    action: allow
"#;

#[test]
fn python_clients_of_both_eras_through_a_federating_gateway() {
    let (Some(python), Some(node)) = (need("AGENTMESH_PEERS_PYTHON"), need("AGENTMESH_PEERS_NODE"))
    else {
        return;
    };
    let h = Home::new();
    h.agent(
        "fed",
        "call:fixture:echo,call:fixture:add,call:time:convert_time,call:everything:echo",
    );
    h.write("policy.yaml", POLICY);
    let (_fixture, fport) = fixture_http(&python);
    let (_everything, eport) = everything_http(&node);
    let time = python.with_file_name("mcp-server-time");
    let (_gw, port) = h.gateway(&format!(
        r#"
listen: 127.0.0.1:{{port}}
policy: policy.yaml
upstreams:
  - name: fixture
    url: http://127.0.0.1:{fport}/mcp
  - name: time
    stdio: {{ command: "{}" }}
  - name: everything
    url: http://127.0.0.1:{eport}/mcp
"#,
        time.display()
    ));
    let url = format!("http://127.0.0.1:{port}/mcp");
    let token = h.credential("fed");
    let convert =
        json!({"source_timezone": "Etc/UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"});
    let steps = json!([
        {"op": "list_tools"},
        {"op": "call", "name": "fixture__echo", "args": {"text": "hi"}},
        {"op": "call", "name": "time__convert_time", "args": convert},
        {"op": "call", "name": "everything__echo", "args": {"message": "legacy"}},
        {"op": "call", "name": "everything__get-sum", "args": {"a": 1, "b": 2}},
        {"op": "call", "name": "fixture__write_file", "args": {"path": "/tmp/x", "content": "no"}},
    ]);
    // The same upstream answers, called directly, for comparison.
    let direct_fixture = drive(
        &python,
        &json!([{"op": "call", "name": "echo", "args": {"text": "hi"}}]),
        &format!("http://127.0.0.1:{fport}/mcp"),
        "",
        "auto",
    );
    for mode in ["auto", "legacy"] {
        let r = drive(&python, &steps, &url, &token, mode);
        let listed = names(&r[0]);
        let mut want = vec![
            "everything__echo",
            "fixture__add",
            "fixture__echo",
            "time__convert_time",
        ];
        want.sort();
        let mut got: Vec<&str> = listed.iter().map(String::as_str).collect();
        got.sort();
        assert_eq!(
            got, want,
            "{mode}: only what the caller may call, namespaced"
        );
        assert_eq!(
            r[1]["ok"]["content"], direct_fixture[0]["ok"]["content"],
            "{mode}"
        );
        assert_eq!(
            r[1]["ok"]["structuredContent"],
            json!({"result": "hi"}),
            "{mode}"
        );
        assert!(
            r[2]["ok"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("Asia/Tokyo"),
            "{mode}: {}",
            r[2]
        );
        assert_eq!(r[3]["ok"]["content"][0]["text"], "Echo: legacy", "{mode}");
        assert_eq!(
            r[4]["error"]["data"]["reason"], "capability_not_held",
            "{mode}"
        );
        assert_eq!(r[5]["error"]["code"], -31001, "{mode}");
    }
    // Every decision was audited; the log verifies (the gateway holds it;
    // reading is fine).
    // Another process reads the log as of the writer's last state save
    // (at most a second behind).
    let wanted = [
        "fixture__echo",
        "time__convert_time",
        "everything__echo",
        "everything__get-sum",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tail = h.json(&["audit", "tail", "-n", "200"]);
        let actions: Vec<String> = tail["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["entry"]["event"] == "decision")
            .filter_map(|e| e["entry"]["action"].as_str().map(str::to_owned))
            .collect();
        if wanted.iter().all(|a| actions.iter().any(|x| x == a)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all calls audited: {actions:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A raw HTTP/1.1 exchange (so tests can send what no client library would).
fn raw(port: u16, method: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!(
        "{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_lowercase(), body.to_owned())
}

#[test]
fn hostile_and_malformed_requests_get_protocol_errors_and_the_gateway_keeps_serving() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = Home::new();
    h.agent("worker", "call:fixture:*");
    h.write("policy.yaml", POLICY);
    let (_fixture, fport) = fixture_http(&python);
    let (_gw, port) = h.gateway(&format!(
        "listen: 127.0.0.1:{{port}}\npolicy: policy.yaml\nmax_body_bytes: 65536\nupstreams:\n  - name: fixture\n    url: http://127.0.0.1:{fport}/mcp\n"
    ));
    let token = h.credential("worker");
    let bearer = format!("Bearer {token}");
    let auth = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"still here"}},{meta}}}}}"#
    );
    let modern = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = auth.to_vec();
        v.push(("MCP-Protocol-Version", "2026-07-28"));
        v.extend_from_slice(extra);
        v
    };

    // No credential: 401 with a challenge; a forged one: 401.
    let (s, head, _) = raw(
        port,
        "POST",
        &[("Content-Type", "application/json")],
        call.as_bytes(),
    );
    assert_eq!(s, 401);
    assert!(
        head.contains("www-authenticate: bearer realm=\"agentmesh\""),
        "{head}"
    );
    let (s, head, body) = raw(
        port,
        "POST",
        &[("Authorization", "Bearer amcr1.AAAA.BBBB")],
        call.as_bytes(),
    );
    assert_eq!(s, 401, "{body}");
    assert!(head.contains("error=\"invalid_token\""), "{head}");
    // A browser page from elsewhere: 403.
    let mut evil = modern(&[]);
    evil.push(("Origin", "http://evil.example"));
    assert_eq!(raw(port, "POST", &evil, call.as_bytes()).0, 403);
    // Malformed JSON, a batch, a bad envelope: 400 with JSON-RPC errors.
    for (body, code) in [
        (&b"{not json"[..], -32700),
        (br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, -32600),
        (br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, -32600),
        (br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, -32600),
    ] {
        let (s, _, b) = raw(port, "POST", &modern(&[]), body);
        assert_eq!(s, 400, "{}", String::from_utf8_lossy(body));
        let v: Value = serde_json::from_str(&b).expect("json-rpc body");
        assert_eq!(v["error"]["code"], code, "{b}");
    }
    // Oversized: 413.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(raw(port, "POST", &modern(&[]), big.as_bytes()).0, 413);
    // Header and body disagree: 400, -32020.
    let (s, _, b) = raw(
        port,
        "POST",
        &modern(&[("Mcp-Method", "tools/list")]),
        call.as_bytes(),
    );
    assert_eq!(s, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&b).expect("json")["error"]["code"],
        -32020
    );
    let (s, _, _) = raw(
        port,
        "POST",
        &modern(&[("Mcp-Method", "tools/call"), ("Mcp-Name", "add")]),
        call.as_bytes(),
    );
    assert_eq!(s, 400, "Mcp-Name must match params.name");
    // An unknown session: 404 (so the client re-initialises).
    let (s, _, _) = raw(
        port,
        "POST",
        &modern(&[("Mcp-Session-Id", "0123456789abcdef")]),
        call.as_bytes(),
    );
    assert_eq!(s, 404);
    // GET and DELETE without a session (modern): 405.
    assert_eq!(raw(port, "GET", &auth, b"").0, 405);
    assert_eq!(raw(port, "DELETE", &auth, b"").0, 405);
    // Unknown tool arguments shape: a protocol error from governance.
    let bad_args = format!(
        r#"{{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{{"name":"echo","arguments":[1],{meta}}}}}"#
    );
    let (s, _, b) = raw(port, "POST", &modern(&[]), bad_args.as_bytes());
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&b).expect("json")["error"]["code"],
        -32602
    );
    // And the gateway still serves a good request, with the exact result.
    let (s, _, b) = raw(
        port,
        "POST",
        &modern(&[("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")]),
        call.as_bytes(),
    );
    assert_eq!(s, 200, "{b}");
    let text = if b.trim_start().starts_with('{') {
        b.clone()
    } else {
        b.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find(|l| l.contains("\"id\":7"))
            .unwrap_or_default()
            .to_owned()
    };
    let v: Value = serde_json::from_str(&text).expect("response");
    assert_eq!(v["result"]["content"][0]["text"], "still here", "{b}");
    assert_eq!(v["id"], 7);
}

/// One scenario's outcome from the suite's summary: (passed, failed).
fn summary(out: &str) -> std::collections::BTreeMap<String, bool> {
    out.lines()
        .filter_map(|l| {
            let (mark, rest) = (l.chars().next()?, l.get(l.char_indices().nth(1)?.0..)?);
            if mark != '✓' && mark != '✗' {
                return None;
            }
            let name = rest.trim().split(':').next()?.trim().to_owned();
            Some((name, mark == '✓'))
        })
        .collect()
}

fn conformance(
    node_dir: &Path,
    suite_js: &Path,
    url: &str,
    extra: &[&str],
) -> std::collections::BTreeMap<String, bool> {
    let out = Command::new(node_dir.join("node_modules/.bin/node"))
        .arg(suite_js)
        .args(["server", "--url", url])
        .args(extra)
        .env(
            "PATH",
            format!(
                "{}:{}",
                node_dir.join("node_modules/.bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("conformance suite");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let s = summary(&text);
    assert!(
        s.len() > 10,
        "no summary from the suite:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

/// Scenarios where the gateway is allowed to do better than the upstream:
/// the gateway checks `Origin`, server-everything does not.
const GATEWAY_IMPROVES: &[&str] = &["dns-rebinding-protection"];

fn compare(
    direct: &std::collections::BTreeMap<String, bool>,
    via: &std::collections::BTreeMap<String, bool>,
) {
    assert_eq!(
        direct.keys().collect::<Vec<_>>(),
        via.keys().collect::<Vec<_>>()
    );
    for (name, ok) in direct {
        let through = via[name];
        if GATEWAY_IMPROVES.contains(&name.as_str()) {
            assert!(
                through || !ok,
                "{name}: passed directly, fails through the gateway"
            );
        } else {
            assert_eq!(
                *ok, through,
                "{name}: direct {ok}, through the gateway {through}"
            );
        }
    }
}

fn conformance_home() -> Home {
    let h = Home::new();
    h.agent("conformance", "*");
    h.write(
        "policy.yaml",
        "version: \"1.0\"\nagent: conformance\nsponsor: alice@company.com\ndefault_action: allow\nrules:\n  - name: log-all\n    action: log\n",
    );
    // The suite fires bursts of failing calls on purpose; keep the agent
    // from being suspended mid-run (trust events are still recorded).
    std::fs::write(h.path.join("trust.toml"), "suspend_below = 0.0\n").expect("trust.toml");
    h
}

#[test]
fn conformance_2025_11_25_suite_agrees_direct_and_through_the_gateway() {
    let Some(node) = need("AGENTMESH_PEERS_NODE") else {
        return;
    };
    let (_everything, eport) = everything_http(&node);
    let h = conformance_home();
    let (_gw, port) = h.gateway(&format!(
        "listen: 127.0.0.1:{{port}}\npolicy: policy.yaml\nanonymous_agent: conformance\nupstreams:\n  - name: everything\n    url: http://127.0.0.1:{eport}/mcp\n"
    ));
    let suite = node.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let direct = conformance(&node, &suite, &format!("http://127.0.0.1:{eport}/mcp"), &[]);
    let via = conformance(&node, &suite, &format!("http://127.0.0.1:{port}/mcp"), &[]);
    eprintln!(
        "2025-11-25 suite: {} scenarios; direct passes {}, via gateway {}",
        direct.len(),
        direct.values().filter(|v| **v).count(),
        via.values().filter(|v| **v).count()
    );
    compare(&direct, &via);
}

#[test]
fn conformance_2026_07_28_requirements_agree_direct_and_through_the_gateway() {
    let (Some(python), Some(node), Some(next)) = (
        need("AGENTMESH_PEERS_PYTHON"),
        need("AGENTMESH_PEERS_NODE"),
        need("AGENTMESH_PEERS_NODE_NEXT"),
    ) else {
        return;
    };
    let (_fixture, fport) = fixture_http(&python);
    let h = conformance_home();
    let (_gw, port) = h.gateway(&format!(
        "listen: 127.0.0.1:{{port}}\npolicy: policy.yaml\nanonymous_agent: conformance\nupstreams:\n  - name: fixture\n    url: http://127.0.0.1:{fport}/mcp\n"
    ));
    let suite = next.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let args = ["--requirements", "2026-07-28"];
    let direct = conformance(
        &node,
        &suite,
        &format!("http://127.0.0.1:{fport}/mcp"),
        &args,
    );
    let via = conformance(
        &node,
        &suite,
        &format!("http://127.0.0.1:{port}/mcp"),
        &args,
    );
    eprintln!(
        "2026-07-28 requirements: {} scenarios; direct passes {}, via gateway {}",
        direct.len(),
        direct.values().filter(|v| **v).count(),
        via.values().filter(|v| **v).count()
    );
    compare(&direct, &via);
}
