//! Path rules that restrict a folder cannot be passed through a symbolic
//! link out of it (issue 14): links are resolved by default for servers on
//! this machine (stdio upstreams, `mcp wrap`), and what is judged is what
//! is forwarded. A real gateway, the real demo tool server, a real link.

mod support;

use serde_json::{Value, json};
use support::{Home, agentmesh, free_port, raw};

#[test]
fn a_symlink_out_of_the_allowed_folder_is_judged_where_it_leads() {
    let h = Home::new();
    h.agent("reader", "call:tools:*");
    let data = h.file("data");
    let outside = h.file("outside");
    std::fs::create_dir_all(data.join("docs")).expect("data");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret.txt"), "the launch codes").expect("secret");
    std::fs::write(data.join("docs/ok.txt"), "fine").expect("ok");
    std::os::unix::fs::symlink(&outside, data.join("docs/link")).expect("symlink");
    let data_real = std::fs::canonicalize(&data).expect("real");
    h.write(
        "policy.yaml",
        &format!(
            "version: \"1.0\"\nagents: [\"*\"]\nsponsor: alice@company.com\ndefault_action: deny\nrules:\n  - name: only-the-data-folder\n    condition: \"action.tool == 'read_file' && request.arguments.path.startsWith('{}/')\"\n    action: allow\n",
            data_real.display()
        ),
    );
    let port = free_port();
    let exe = agentmesh();
    let cfg = h.write(
        "gw.yaml",
        &format!(
            "listen: 127.0.0.1:{port}\npolicy: policy.yaml\nupstreams:\n  - name: tools\n    stdio: {{ command: {:?}, args: [\"mcp\", \"demo-server\", \"--data\", {:?}] }}\n    path_arguments: [path]\n",
            exe.display().to_string(),
            data.display().to_string()
        ),
    );
    let _gw = h.spawn(
        &["mcp", "gateway", "--config", cfg.to_str().expect("path")],
        port,
    );
    let bearer = format!("Bearer {}", h.credential("reader"));
    let post = |session: Option<&str>, body: Value| -> (String, Value) {
        let mut headers = vec![
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if let Some(s) = session {
            headers.push(("mcp-session-id", s));
        }
        let (_, head, text) = raw(port, "POST", "/mcp", &headers, body.to_string().as_bytes());
        let session = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("mcp-session-id:")
                    .then(|| l[15..].trim().to_owned())
            })
            .unwrap_or_default();
        let json_text = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or(&text)
            .to_owned();
        (
            session,
            serde_json::from_str(&json_text).unwrap_or(Value::Null),
        )
    };
    let (session, init) = post(
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    let call = |path: String| {
        post(
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "read_file", "arguments": {"path": path}}}),
        )
        .1
    };
    let fine = call(format!("{}/docs/ok.txt", data.display()));
    assert!(fine.get("result").is_some(), "{fine}");
    // Lexically inside the folder, really outside it.
    let sneaky = call(format!("{}/docs/link/secret.txt", data.display()));
    assert_eq!(sneaky["error"]["code"], -31001, "{sneaky}");
    assert!(!sneaky.to_string().contains("launch codes"));
}
