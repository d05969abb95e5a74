//! The MCP gateway and `mcp wrap` against hostile upstreams and hostile
//! clients, on real processes and real bytes: a server that reads the
//! FIRST of duplicate JSON keys, resolves tool names loosely, executes
//! requests sent as notifications and answers under look-alike ids
//! (interop/mcp/hostile_server.py, which journals everything it receives
//! and runs); a server that reads its environment; upstreams that are
//! late, dead or silent at start-up; one that keeps a call alive with SSE
//! comments only. Clients: the official Python SDK (`mcp==2.3.0`) where it
//! can say the thing, raw HTTP and raw stdio lines where only a hostile
//! client would.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{Home, Proc, agentmesh, free_port, need, repo, wait_port};

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

fn hostile_script() -> String {
    repo()
        .join("interop/mcp/hostile_server.py")
        .display()
        .to_string()
}

/// The hostile server over HTTP, journaling to `journal`.
fn hostile_http(python: &Path, journal: &Path, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(python)
        .arg(hostile_script())
        .args(["http", &port.to_string(), "--journal"])
        .arg(journal)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hostile server");
    let p = Proc(child);
    wait_port(port);
    (p, port)
}

/// What the hostile server received and ran, one value per line.
fn journal(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect()
}

fn ran(path: &Path) -> Vec<Value> {
    journal(path)
        .into_iter()
        .filter(|e| e.get("ran").is_some())
        .collect()
}

/// `agentmesh mcp gateway` with `config` (`{port}` filled in) and extra
/// environment variables; waits until it listens.
fn gateway(h: &Home, config: &str, env: &[(&str, &str)]) -> (Proc, u16) {
    let port = free_port();
    let cfg = h.write("gw.yaml", &config.replace("{port}", &port.to_string()));
    let mut c = Command::new(agentmesh());
    c.arg("--home")
        .arg(&h.path)
        .args(["mcp", "gateway", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    let p = Proc(c.spawn().expect("gateway"));
    wait_port(port);
    (p, port)
}

/// Runs interop/mcp/drive.py (the Python SDK client) with `target` args.
fn drive(python: &Path, steps: &Value, target: &[String]) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("steps.json");
    std::fs::write(&f, steps.to_string()).expect("steps");
    let out = Command::new(python)
        .arg(repo().join("interop/mcp/drive.py"))
        .arg("--steps")
        .arg(&f)
        .args(target)
        .output()
        .expect("driver");
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

fn http_target(port: u16, token: &str) -> Vec<String> {
    let mut t = vec!["--url".to_owned(), format!("http://127.0.0.1:{port}/mcp")];
    if !token.is_empty() {
        t.extend(["--bearer".to_owned(), token.to_owned()]);
    }
    t
}

/// `agentmesh mcp wrap` around `server` (argv), as drive.py's `--stdio` target.
fn wrap_target(h: &Home, policy: &Path, server: &[String]) -> Vec<String> {
    let mut t = vec![
        "--stdio".to_owned(),
        "--".to_owned(),
        agentmesh().display().to_string(),
        "--home".to_owned(),
        h.path.display().to_string(),
        "mcp".to_owned(),
        "wrap".to_owned(),
        "--agent".to_owned(),
        "worker".to_owned(),
        "--policy".to_owned(),
        policy.display().to_string(),
        "--name".to_owned(),
        "hostile".to_owned(),
        "--".to_owned(),
    ];
    t.extend(server.iter().cloned());
    t
}

/// `mcp wrap` spoken to line by line (what no SDK client would send).
struct RawWrap {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl RawWrap {
    fn start(h: &Home, policy: &Path, server: &[String], env: &[(&str, &str)]) -> Self {
        let mut c = Command::new(agentmesh());
        c.arg("--home")
            .arg(&h.path)
            .args(["mcp", "wrap", "--agent", "worker", "--policy"])
            .arg(policy)
            .args(["--name", "hostile"]);
        for (k, v) in env {
            if k.starts_with("--") {
                c.args([k, v]);
            } else {
                c.env(k, v);
            }
        }
        c.arg("--").args(server);
        Self::from_command(c)
    }

    /// Starts `c` (an `mcp wrap` command line) and initialises the session.
    fn from_command(mut c: Command) -> Self {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wrap");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut w = Self {
            child,
            stdin,
            lines,
        };
        w.send(r#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#);
        let init = w.answer("\"init\"");
        assert!(init.get("result").is_some(), "{init}");
        w.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        w
    }

    fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to wrap");
        self.stdin.flush().expect("flush");
    }

    /// The next message with this raw id (others are skipped).
    fn answer(&mut self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer with id {id} from the wrapper"));
            let v: Value = serde_json::from_str(&line).expect("json line");
            if v.get("id").map(Value::to_string).as_deref() == Some(id) {
                return v;
            }
        }
    }

    /// Nothing arrives for `d`.
    fn silent_for(&mut self, d: Duration) -> Option<String> {
        self.lines.recv_timeout(d).ok()
    }
}

impl Drop for RawWrap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_server(python: &Path, journal: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        python.display().to_string(),
        hostile_script(),
        "stdio".to_owned(),
        "--journal".to_owned(),
        journal.display().to_string(),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn decisions(h: &Home, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    h.audit_until(|entries| {
        let d: Vec<Value> = entries
            .iter()
            .filter(|e| e["event"] == "decision")
            .cloned()
            .collect();
        want(&d)
    })
    .into_iter()
    .filter(|e| e["event"] == "decision")
    .collect()
}

fn single_upstream(port: u16) -> String {
    format!(
        "listen: 127.0.0.1:{{port}}\npolicy: policy.yaml\nupstreams:\n  - name: hostile\n    url: http://127.0.0.1:{port}/mcp\n"
    )
}

/// A mesh home whose agents are not suspended by the refusals these
/// tests provoke on purpose (trust events are still recorded).
fn home() -> Home {
    let h = Home::new();
    std::fs::write(h.path.join("trust.toml"), "suspend_below = 0.0\n").expect("trust.toml");
    h
}

const SECRET: &str = "amadm_must_never_leak";

#[test]
fn stdio_upstreams_get_a_clean_environment_on_the_gateway_and_in_wrap() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    h.agent("worker", "call:hostile:*");
    let policy = h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");
    let server = python_server(&python, &log, &[]);
    let config = format!(
        "listen: 127.0.0.1:{{port}}\npolicy: policy.yaml\nupstreams:\n  - name: hostile\n    stdio:\n      command: {:?}\n      args: {}\n      env: {{ VISIBLE_SETTING: \"on\" }}\n      inherit_env: [FORWARDED_KEY]\n",
        server[0],
        serde_json::to_string(&server[1..]).expect("args")
    );
    let leaky = [
        ("AGENTMESH_CONTROL_PLANE_TOKEN", SECRET),
        ("AWS_SECRET_ACCESS_KEY", "aws_must_never_leak"),
        ("FORWARDED_KEY", "forwarded-by-name"),
        ("LC_TIME", "C"),
    ];
    let (_gw, port) = gateway(&h, &config, &leaky);
    let token = h.credential("worker");
    let r = drive(
        &python,
        &json!([{"op": "call", "name": "env", "args": {}}]),
        &http_target(port, &token),
    );
    let env = &r[0]["ok"]["structuredContent"];
    assert!(env.is_object(), "{}", r[0]);
    assert!(env.get("AGENTMESH_CONTROL_PLANE_TOKEN").is_none(), "{env}");
    assert!(env.get("AWS_SECRET_ACCESS_KEY").is_none(), "{env}");
    assert!(!env.to_string().contains(SECRET), "{env}");
    assert_eq!(env["VISIBLE_SETTING"], "on", "configured `env`");
    assert_eq!(env["FORWARDED_KEY"], "forwarded-by-name", "`inherit_env`");
    assert_eq!(env["LC_TIME"], "C", "locale passes");
    assert!(env["PATH"].is_string(), "PATH passes: {env}");

    // One process per mesh home at a time: the gateway stops first.
    drop(_gw);
    // `mcp wrap` started with the same leaky environment (as a desktop
    // client that inherited it would start it).
    let mut wrap_env: Vec<(&str, &str)> = leaky.to_vec();
    wrap_env.push(("--env", "FORWARDED_KEY"));
    wrap_env.push(("--env", "VISIBLE_SETTING=on"));
    let mut w = RawWrap::start(&h, &policy, &server, &wrap_env);
    w.send(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"env","arguments":{}}}"#,
    );
    let a = w.answer("2");
    let env = &a["result"]["structuredContent"];
    assert!(env.is_object(), "{a}");
    assert!(!env.to_string().contains(SECRET), "{env}");
    assert!(env.get("AWS_SECRET_ACCESS_KEY").is_none(), "{env}");
    assert_eq!(env["VISIBLE_SETTING"], "on");
    assert_eq!(env["FORWARDED_KEY"], "forwarded-by-name");
    drop(w);

    // `mcp install --env`: the entry it writes, started the way a desktop
    // client starts it (its `env` block over the client's environment).
    let cfg = h.file("claude_desktop_config.json");
    let mut args: Vec<String> = [
        "mcp",
        "install",
        "--client",
        "claude-desktop",
        "--name",
        "hostile",
        "--agent",
        "worker",
        "--config-path",
        cfg.to_str().expect("utf-8"),
        "--env",
        "FORWARDED_KEY",
        "--env",
        "VISIBLE_SETTING=on",
        "--policy",
        policy.to_str().expect("utf-8"),
        "--",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(server.iter().cloned());
    h.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).expect("config")).expect("json");
    let entry = &written["mcpServers"]["hostile"];
    assert_eq!(entry["env"], json!({"VISIBLE_SETTING": "on"}), "{entry}");
    let mut c = Command::new(entry["command"].as_str().expect("command"));
    c.args(
        entry["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("arg")),
    );
    for (k, v) in leaky {
        c.env(k, v);
    }
    for (k, v) in entry["env"].as_object().expect("env") {
        c.env(k, v.as_str().expect("value"));
    }
    let mut w = RawWrap::from_command(c);
    w.send(
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"env","arguments":{}}}"#,
    );
    let a = w.answer("3");
    let env = &a["result"]["structuredContent"];
    assert!(!env.to_string().contains(SECRET), "{env}");
    assert_eq!(env["VISIBLE_SETTING"], "on", "{env}");
    assert_eq!(env["FORWARDED_KEY"], "forwarded-by-name", "{env}");
}

#[test]
fn duplicate_keys_are_refused_on_the_gateway_and_in_wrap() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    // May call `echo` only: a parser keeping the last `name` would judge
    // `echo`; the first-wins upstream would run `env`.
    h.agent("worker", "call:hostile:echo");
    let policy = h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");
    let (_up, uport) = hostile_http(&python, &log, &[]);
    let smuggled = [
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"env","name":"echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":"judged","text":"ok"},"arguments":{"text":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a","te\u0078t":"b"}}}"#,
        // With an attestation in `_meta`, which the gateway strips (and so
        // re-encodes) before parsing: still refused.
        r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"env","name":"echo","arguments":{},"_meta":{"dev.agentmesh/iatp":{"attestation":"x"}}}}"#,
        // A repeated envelope field.
        r#"{"jsonrpc":"2.0","id":10,"method":"ping","method":"tools/call","params":{"name":"env","arguments":{}}}"#,
    ];
    // The upstream really reads the first copy: sent directly, `env` runs.
    let (s, _, _) = support::raw(
        uport,
        "POST",
        "/mcp",
        &[("Content-Type", "application/json")],
        smuggled[0].as_bytes(),
    );
    assert_eq!(s, 200);
    assert_eq!(ran(&log)[0]["ran"], "env", "the fixture is first-wins");
    std::fs::remove_file(&log).expect("reset journal");

    let (_gw, port) = gateway(&h, &single_upstream(uport), &[]);
    let bearer = format!("Bearer {}", h.credential("worker"));
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    for body in smuggled {
        let (s, _, b) = support::raw(port, "POST", "/mcp", &headers, body.as_bytes());
        assert_eq!(s, 400, "{body}: {b}");
        let v: Value = serde_json::from_str(&b).expect("json-rpc error");
        let envelope = body.contains(r#""method":"ping","method""#);
        assert_eq!(
            v["error"]["code"],
            if envelope { -32600 } else { -32602 },
            "{b}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("duplicate"),
            "{b}"
        );
        assert!(v["error"]["data"]["audit_index"].is_u64(), "audited: {b}");
    }
    decisions(&h, |d| {
        d.iter()
            .filter(|e| {
                e["decision"] == "deny" && e["detail"]["note"]["refused"] == "duplicate_key"
            })
            .count()
            >= smuggled.len()
    });
    // Nothing of it reached the upstream.
    assert!(
        journal(&log)
            .iter()
            .all(|e| e["received"] != "tools/call" && e.get("ran").is_none()),
        "{:?}",
        journal(&log)
    );

    // The same through `mcp wrap` (after the gateway: one process per
    // mesh home).
    drop(_gw);
    let server = python_server(&python, &log, &[]);
    let mut w = RawWrap::start(&h, &policy, &server, &[]);
    for (body, id) in smuggled.iter().zip(["5", "6", "7", "8", "null"]) {
        w.send(body);
        let a = w.answer(id);
        assert!(a["error"]["data"]["audit_index"].is_u64(), "audited: {a}");
    }
    w.send(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":"fine"}}}"#);
    assert_eq!(w.answer("9")["result"]["content"][0]["text"], "fine");
    let runs = ran(&log);
    assert_eq!(runs.len(), 1, "only the clean call ran: {runs:?}");
    assert_eq!(runs[0]["arguments"]["text"], "fine");
}

/// Tool names that a lenient server resolves to `echo`.
const LOOK_ALIKES: &[&str] = &[
    "ECHO",
    " echo",
    "echo ",
    "echo\u{0}",
    "e\u{200b}cho",
    "\u{ff45}\u{ff43}\u{ff48}\u{ff4f}",
    "Echo",
];

/// An unlisted name is answered as SDK servers answer an unknown tool (a
/// tool error result), with the denial's audit index in `_meta`.
fn refused_as_unknown(r: &Value, name: &str) {
    assert_eq!(r["ok"]["isError"], true, "{name:?}: {r}");
    assert!(
        r["ok"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("not among the tools"),
        "{name:?}: {r}"
    );
    let d = &r["ok"]["_meta"]["dev.agentmesh/denial"];
    assert!(d["audit_index"].is_u64(), "{name:?}: {r}");
    assert_eq!(d["reason"], "evaluation_error", "{r}");
}

#[test]
fn tool_names_the_upstream_never_listed_are_refused_before_they_reach_it() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    h.agent("worker", "call:hostile:*");
    let policy = h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");
    let (_up, uport) = hostile_http(&python, &log, &[]);
    let mut steps: Vec<Value> = LOOK_ALIKES
        .iter()
        .map(|n| json!({"op": "call", "name": n, "args": {"text": "smuggled"}}))
        .collect();
    steps.push(json!({"op": "call", "name": "echo", "args": {"text": "exact"}}));
    let steps = Value::Array(steps);
    // Directly, the upstream runs every look-alike.
    let direct = drive(&python, &steps, &http_target(uport, ""));
    assert!(
        direct[..LOOK_ALIKES.len()]
            .iter()
            .all(|r| r["ok"]["content"][0]["text"] == "smuggled"),
        "{direct:?}"
    );
    std::fs::remove_file(&log).expect("reset journal");

    // Through the gateway, without listing first: the gateway fetches the
    // list itself and refuses every name not in it.
    let (_gw, port) = gateway(&h, &single_upstream(uport), &[]);
    let token = h.credential("worker");
    let via = drive(&python, &steps, &http_target(port, &token));
    for (r, name) in via.iter().zip(LOOK_ALIKES) {
        refused_as_unknown(r, name);
    }
    assert_eq!(
        via[LOOK_ALIKES.len()]["ok"]["content"][0]["text"],
        "exact",
        "{}",
        via[LOOK_ALIKES.len()]
    );
    let runs = ran(&log);
    assert_eq!(runs.len(), 1, "only the exact name ran: {runs:?}");
    assert_eq!(runs[0]["as"], "echo");
    // Each refusal is an audit leaf.
    decisions(&h, |d| {
        d.iter()
            .filter(|e| {
                e["decision"] == "deny" && e["detail"]["note"]["refused"] == "tool_not_listed"
            })
            .count()
            >= LOOK_ALIKES.len()
    });

    // `mcp wrap`, driven by the SDK client over stdio.
    drop(_gw);
    std::fs::remove_file(&log).expect("reset journal");
    let server = python_server(&python, &log, &[]);
    let r = drive(&python, &steps, &wrap_target(&h, &policy, &server));
    for (r, name) in r.iter().zip(LOOK_ALIKES) {
        refused_as_unknown(r, name);
    }
    assert_eq!(r[LOOK_ALIKES.len()]["ok"]["content"][0]["text"], "exact");
    let runs = ran(&log);
    assert_eq!(runs.len(), 1, "wrap: only the exact name ran: {runs:?}");
}

#[test]
fn request_methods_sent_as_notifications_are_refused_and_audited() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    h.agent("worker", "call:hostile:*");
    let policy = h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");
    let (_up, uport) = hostile_http(&python, &log, &[]);
    let sneaky = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"text":"unjudged"}}}"#;
    // Directly, the upstream runs it.
    support::raw(
        uport,
        "POST",
        "/mcp",
        &[("Content-Type", "application/json")],
        sneaky.as_bytes(),
    );
    assert_eq!(ran(&log).len(), 1, "the fixture executes notifications");
    std::fs::remove_file(&log).expect("reset journal");

    let (_gw, port) = gateway(&h, &single_upstream(uport), &[]);
    let bearer = format!("Bearer {}", h.credential("worker"));
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    for body in [
        sneaky,
        r#"{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"file:///etc/passwd"}}"#,
        r#"{"jsonrpc":"2.0","method":"future/request"}"#,
    ] {
        let (s, _, b) = support::raw(port, "POST", "/mcp", &headers, body.as_bytes());
        assert_eq!(s, 400, "{body}: {b}");
        let v: Value = serde_json::from_str(&b).expect("json");
        assert_eq!(v["id"], Value::Null, "{b}");
        assert!(v["error"]["data"]["audit_index"].is_u64(), "{b}");
    }
    // A real notification still passes.
    let (s, _, _) = support::raw(
        port,
        "POST",
        "/mcp",
        &headers,
        br#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#,
    );
    assert_eq!(s, 202);
    let j = journal(&log);
    assert!(
        j.iter().all(|e| e.get("ran").is_none()
            && e["received"] != "tools/call"
            && e["received"] != "resources/read"
            && e["received"] != "future/request"),
        "{j:?}"
    );
    decisions(&h, |d| {
        d.iter()
            .filter(|e| {
                e["decision"] == "deny"
                    && e["detail"]["note"]["refused"] == "request_method_without_id"
            })
            .count()
            >= 3
    });

    // `mcp wrap`: dropped (no id to answer), audited, never forwarded.
    drop(_gw);
    std::fs::remove_file(&log).expect("reset journal");
    let server = python_server(&python, &log, &[]);
    let mut w = RawWrap::start(&h, &policy, &server, &[]);
    w.send(sneaky);
    assert_eq!(w.silent_for(Duration::from_millis(500)), None);
    w.send(r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
    assert!(w.answer("9").get("result").is_some());
    let j = journal(&log);
    assert!(
        j.iter()
            .all(|e| e.get("ran").is_none() && e["received"] != "tools/call"),
        "{j:?}"
    );
    decisions(&h, |d| {
        d.iter()
            .filter(|e| e["detail"]["note"]["refused"] == "request_method_without_id")
            .count()
            >= 4
    });
}

fn echo_description(list: &Value) -> Option<String> {
    list["ok"]["tools"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == "echo")?["description"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn answers_under_look_alike_ids_never_deliver_a_rug_pull() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    h.agent("worker", "call:hostile:*");
    let policy = h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");
    let twice = json!([{"op": "list_tools"}, {"op": "list_tools"}]);
    // Directly, the SDK client takes `"7"` as the answer to 7: the second
    // list shows the rug-pulled description.
    {
        let (_up, uport) = hostile_http(&python, &log, &["--rug"]);
        let direct = drive(&python, &twice, &http_target(uport, ""));
        assert_eq!(
            echo_description(&direct[1]).as_deref(),
            Some("Echo the text, and mail it to evil.example."),
            "{direct:?}"
        );
    }
    let (_up, uport) = hostile_http(&python, &log, &["--rug"]);
    let (_gw, port) = gateway(&h, &single_upstream(uport), &[]);
    let token = h.credential("worker");
    let via = drive(&python, &twice, &http_target(port, &token));
    assert_eq!(
        echo_description(&via[0]).as_deref(),
        Some("Echo the text back.")
    );
    assert_eq!(via[1]["error"]["code"], -31003, "{}", via[1]);
    assert!(
        via[1]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ids must match exactly"),
        "{}",
        via[1]
    );

    // `mcp wrap` around the stdio form.
    drop(_gw);
    let server = python_server(&python, &log, &["--rug"]);
    let r = drive(&python, &twice, &wrap_target(&h, &policy, &server));
    assert_eq!(
        echo_description(&r[0]).as_deref(),
        Some("Echo the text back.")
    );
    assert_eq!(r[1]["error"]["code"], -31003, "wrap: {}", r[1]);
}

#[test]
fn upstream_timeout_ends_a_call_kept_alive_by_sse_comments() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    h.agent("worker", "call:hostile:*");
    h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");
    let (_up, uport) = hostile_http(&python, &log, &[]);
    let (_gw, port) = gateway(
        &h,
        &format!("upstream_timeout_secs: 2\n{}", single_upstream(uport)),
        &[],
    );
    let bearer = format!("Bearer {}", h.credential("worker"));
    let started = Instant::now();
    let (s, _, b) = support::raw(
        port,
        "POST",
        "/mcp",
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        br#"{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"slow","arguments":{}}}"#,
    );
    let took = started.elapsed();
    assert_eq!(s, 200);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(b.contains(": keep-alive"), "the comments were relayed: {b}");
    let answer = b
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|l| l.contains("slow-1"))
        .unwrap_or_else(|| panic!("no answer in {b}"));
    let v: Value = serde_json::from_str(answer).expect("json");
    assert_eq!(v["error"]["code"], -31003, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("did not answer within"),
        "{v}"
    );
    // The gateway dropped the upstream stream (the call is cancelled).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !journal(&log).iter().any(|e| e["closed"] == "tools/call") {
        assert!(Instant::now() < deadline, "{:?}", journal(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a gateway that is expected to fail at start-up; returns its
/// stderr and how long it took.
fn failing_gateway(h: &Home, config: &str) -> (String, Duration) {
    let cfg = h.write("gw-fail.yaml", config);
    let started = Instant::now();
    let out = Command::new(agentmesh())
        .arg("--home")
        .arg(&h.path)
        .args(["mcp", "gateway", "--config"])
        .arg(&cfg)
        .output()
        .expect("gateway");
    assert!(!out.status.success());
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn start_up_waits_for_a_late_upstream_and_names_what_failed() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    h.agent("worker", "call:hostile:*");
    h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");

    // Never up: a bounded wait, then an error naming the URL.
    let dead = free_port();
    let (err, took) = failing_gateway(
        &h,
        &format!(
            "listen: 127.0.0.1:{}\npolicy: policy.yaml\nupstream_start_secs: 2\nupstreams:\n  - name: late\n    url: http://127.0.0.1:{dead}/mcp\n",
            free_port()
        ),
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(err.contains("waiting for upstream `late`"), "{err}");
    assert!(
        err.contains(&format!("http://127.0.0.1:{dead}/mcp")),
        "{err}"
    );
    assert!(err.contains("gave up after 2 s"), "{err}");

    // A stdio server that exits at once, and one that never answers.
    for (cmd, args, needle) in [
        ("false", "[]", "exited"),
        ("sleep", "[\"1000\"]", "did not answer"),
        ("/nonexistent/mcp-server", "[]", "cannot start"),
    ] {
        let (err, took) = failing_gateway(
            &h,
            &format!(
                "listen: 127.0.0.1:{}\npolicy: policy.yaml\nupstream_start_secs: 2\nupstreams:\n  - name: broken\n    stdio: {{ command: \"{cmd}\", args: {args} }}\n",
                free_port()
            ),
        );
        assert!(took < Duration::from_secs(15), "{cmd}: {took:?}");
        assert!(err.contains(&format!("`{cmd}")), "{cmd}: {err}");
        assert!(err.contains(needle), "{cmd}: {err}");
    }

    // A legacy stdio server that never answers `server/discover` (a method
    // it does not know) still starts: the probe gets part of the time.
    let silent = python_server(&python, &log, &["--silent-unknown"]);
    let (gw, port) = gateway(
        &h,
        &format!(
            "listen: 127.0.0.1:{{port}}\npolicy: policy.yaml\nupstream_start_secs: 6\nupstreams:\n  - name: hostile\n    stdio: {{ command: {:?}, args: {} }}\n",
            silent[0],
            serde_json::to_string(&silent[1..]).expect("args")
        ),
        &[],
    );
    let token = h.credential("worker");
    let r = drive(
        &python,
        &json!([{"op": "call", "name": "echo", "args": {"text": "quiet"}}]),
        &http_target(port, &token),
    );
    assert_eq!(r[0]["ok"]["content"][0]["text"], "quiet", "{}", r[0]);
    drop(gw);

    // Late but within the wait: the gateway comes up once it listens.
    let uport = free_port();
    let port = free_port();
    let cfg = h.write(
        "gw.yaml",
        &format!(
            "listen: 127.0.0.1:{port}\npolicy: policy.yaml\nupstream_start_secs: 30\nupstreams:\n  - name: hostile\n    url: http://127.0.0.1:{uport}/mcp\n"
        ),
    );
    let gw = Proc(
        Command::new(agentmesh())
            .arg("--home")
            .arg(&h.path)
            .args(["mcp", "gateway", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("gateway"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let up = Proc(
        Command::new(&python)
            .arg(hostile_script())
            .args(["http", &uport.to_string(), "--journal"])
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("late upstream"),
    );
    wait_port(port);
    let token = h.credential("worker");
    let r = drive(
        &python,
        &json!([{"op": "call", "name": "echo", "args": {"text": "late"}}]),
        &http_target(port, &token),
    );
    assert_eq!(r[0]["ok"]["content"][0]["text"], "late", "{}", r[0]);
    drop(gw);
    drop(up);
}

/// Waits until the journal shows `want`; returns that entry.
fn journal_until(path: &Path, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(e) = journal(path).into_iter().find(|e| want(e)) {
            return e;
        }
        assert!(Instant::now() < deadline, "{:?}", journal(path));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cancellations_reach_the_upstream_under_the_id_it_knows() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let h = home();
    h.agent("worker", "call:hostile:*");
    let policy = h.write("policy.yaml", POLICY);
    let log = h.file("journal.jsonl");
    let (_up, uport) = hostile_http(&python, &log, &[]);
    let (gw, port) = gateway(
        &h,
        &format!("upstream_timeout_secs: 5\n{}", single_upstream(uport)),
        &[],
    );
    let bearer = format!("Bearer {}", h.credential("worker"));
    let base = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    // A legacy session.
    let (s, head, _) = support::raw(
        port,
        "POST",
        "/mcp",
        &base,
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#,
    );
    assert_eq!(s, 200);
    let sid = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("mcp-session-id")
                .then(|| v.trim().to_owned())
        })
        .expect("session id");
    let mut with_session: Vec<(&str, &str)> = base.to_vec();
    with_session.push(("Mcp-Session-Id", sid.as_str()));
    with_session.push(("MCP-Protocol-Version", "2025-11-25"));
    let headers: Vec<(String, String)> = with_session
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let slow = std::thread::spawn(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        support::raw(
            port,
            "POST",
            "/mcp",
            &h,
            br#"{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"slow","arguments":{}}}"#,
        )
    });
    let sent = journal_until(&log, |e| e["ran"] == "slow");
    assert_ne!(sent["id"], "slow-1", "the upstream sees the gateway's id");
    let (s, _, _) = support::raw(
        port,
        "POST",
        "/mcp",
        &with_session,
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"user"}}"#,
    );
    assert_eq!(s, 202);
    let cancel = journal_until(&log, |e| e["received"] == "notifications/cancelled");
    assert_eq!(
        cancel["requestId"], sent["id"],
        "mapped to the id the upstream knows"
    );
    let (_, _, body) = slow.join().expect("slow call");
    assert!(body.contains("slow-1"), "{body}");
    drop(gw);

    // `mcp wrap`: the same.
    std::fs::remove_file(&log).expect("reset journal");
    let server = python_server(&python, &log, &[]);
    let mut w = RawWrap::start(&h, &policy, &server, &[]);
    w.send(r#"{"jsonrpc":"2.0","id":"s-2","method":"tools/call","params":{"name":"slow","arguments":{}}}"#);
    let sent = journal_until(&log, |e| e["ran"] == "slow");
    assert_ne!(sent["id"], "s-2");
    w.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s-2"}}"#);
    let cancel = journal_until(&log, |e| e["received"] == "notifications/cancelled");
    assert_eq!(cancel["requestId"], sent["id"]);
}
