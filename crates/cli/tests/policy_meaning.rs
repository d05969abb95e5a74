//! One meaning of `action.tool` on every gateway (issue 14): a published
//! rule written against a tool name matches on a single-upstream gateway
//! and on a federated one alike, where the client sees the tool as
//! `<upstream>__<name>`; `action.server` names the upstream; and `policy
//! lint` warns about rules written against the namespaced form. Real
//! gateways, the Python SDK client, the MCP fixture server and PyPI
//! `mcp-server-time`.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use support::{Home, Proc, free_port, mcp_fixture, need, raw, repo, wait_port};

const POLICY: &str = r#"
version: "1.0"
agents: ["*"]
sponsor: alice@company.com
default_action: deny
rules:
  - name: no-echo
    condition: "action.tool == 'echo'"
    action: deny
    message: "echo is off this week"
    priority: 10
  - name: no-fixture-add
    condition: "action.server == 'fixture' && action.tool == 'add'"
    action: deny
    priority: 10
  - name: calls
    condition: "action.type == 'tool_call'"
    action: allow
"#;

fn drive(python: &Path, steps: &Value, url: &str, bearer: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("steps.json");
    std::fs::write(&f, steps.to_string()).expect("steps");
    let out = Command::new(python)
        .arg(repo().join("interop/mcp/drive.py"))
        .arg("--steps")
        .arg(&f)
        .args(["--mode", "auto", "--url", url, "--bearer", bearer])
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

fn gateway(h: &Home, config: &str) -> (Proc, u16) {
    let port = free_port();
    let cfg = h.write("gw.yaml", &config.replace("{port}", &port.to_string()));
    let cfg = cfg.to_str().expect("path").to_owned();
    let p = h.spawn(&["mcp", "gateway", "--config", &cfg], port);
    wait_port(port);
    (p, port)
}

fn home() -> (Home, String) {
    let h = Home::new();
    h.agent("caller", "call:fixture:*,call:time:*");
    h.write("policy.yaml", POLICY);
    let token = h.credential("caller");
    (h, token)
}

#[test]
fn a_tool_rule_means_the_same_on_single_and_federated_gateways() {
    let Some(python) = need("AGENTMESH_PEERS_PYTHON") else {
        return;
    };
    let (_fixture, fport) = mcp_fixture(&python);
    let time = python.with_file_name("mcp-server-time");

    // One upstream: tools keep their names.
    let (single, single_token) = home();
    let (_g1, p1) = gateway(
        &single,
        &format!(
            "listen: 127.0.0.1:{{port}}\npolicy: {}\nupstreams:\n  - name: fixture\n    url: http://127.0.0.1:{fport}/mcp\n",
            single.file("policy.yaml").display()
        ),
    );
    // Two upstreams: the client sees `fixture__echo`.
    let (fed, fed_token) = home();
    let (_g2, p2) = gateway(
        &fed,
        &format!(
            "listen: 127.0.0.1:{{port}}\npolicy: {}\nupstreams:\n  - name: fixture\n    url: http://127.0.0.1:{fport}/mcp\n  - name: time\n    stdio: {{ command: \"{}\" }}\n",
            fed.file("policy.yaml").display(),
            time.display()
        ),
    );
    let single_steps = json!([
        {"op": "call", "name": "echo", "args": {"text": "hi"}},
        {"op": "call", "name": "add", "args": {"a": 1, "b": 2}},
    ]);
    let fed_steps = json!([
        {"op": "call", "name": "fixture__echo", "args": {"text": "hi"}},
        {"op": "call", "name": "fixture__add", "args": {"a": 1, "b": 2}},
        {"op": "call", "name": "time__get_current_time", "args": {"timezone": "Etc/UTC"}},
    ]);
    let a = drive(
        &python,
        &single_steps,
        &format!("http://127.0.0.1:{p1}/mcp"),
        &single_token,
    );
    let b = drive(
        &python,
        &fed_steps,
        &format!("http://127.0.0.1:{p2}/mcp"),
        &fed_token,
    );
    for (gw, r) in [("single", &a), ("federated", &b)] {
        assert_eq!(
            r[0]["error"]["code"], -31001,
            "{gw}: the echo rule denies: {r:?}"
        );
        assert!(
            r[0]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("echo is off")),
            "{gw}: {r:?}"
        );
        assert_eq!(
            r[1]["error"]["code"], -31001,
            "{gw}: action.server + action.tool deny: {r:?}"
        );
    }
    // The other upstream's tools are untouched by those rules.
    assert!(b[2].get("ok").is_some(), "{b:?}");
    // The audit entries show the tool as the client saw it, the rule that
    // matched, and that it was the same rule on both gateways.
    for (h, name) in [(&single, "echo"), (&fed, "fixture__echo")] {
        let entries = h.audit_until(|es| {
            es.iter()
                .any(|e| e["action"] == name && e["decision"] == "deny")
        });
        let e = entries
            .iter()
            .find(|e| e["action"] == name && e["decision"] == "deny")
            .expect("entry");
        assert!(
            e["rule"].as_str().is_some_and(|r| r.ends_with("/no-echo")),
            "{e}"
        );
    }
    // `trust explain` reads the trust events the gateway's decisions
    // carry (it used to say "after 0 trust events"), and names a real drop.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let explained = fed.ok(&["trust", "explain", "caller"]);
    assert!(!explained.contains("after 0 trust events"), "{explained}");
    assert!(explained.contains("largest drop: -"), "{explained}");
    assert!(!explained.contains("largest drop: +"), "{explained}");
    // A failed authentication is the source's, not the agent's.
    let (status, _, _) = raw(
        p1,
        "POST",
        "/mcp",
        &[
            ("authorization", "Bearer amcr1.garbage"),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    );
    assert_eq!(status, 401);
    single.audit_until(|es| {
        es.iter().any(|e| {
            e["event"] == "auth.failed" && e["detail"]["source"] == "127.0.0.1" && e["agent"] == ""
        })
    });
}

#[test]
fn lint_warns_about_rules_written_against_a_namespaced_name() {
    let h = Home::new();
    let p = h.write(
        "ns.yaml",
        "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@company.com\nrules:\n  - name: r\n    condition: \"action.tool == 'time__convert_time'\"\n    action: deny\n",
    );
    let out = h.run(&["policy", "lint", p.to_str().expect("path")]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("warning"), "{text}");
    assert!(text.contains("namespaced"), "{text}");
    assert!(
        text.contains("action.server == 'time' && action.tool == 'convert_time'"),
        "{text}"
    );
}
