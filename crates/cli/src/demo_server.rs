//! `agentmesh mcp demo-server --data <dir>`: a small MCP tool server over
//! stdio (JSON-RPC, one message per line) that the demo puts behind the
//! gateway. Its tools do real work on files under `--data`: search
//! documents, read a file, export the customer table (personal data),
//! queue an e-mail in an outbox file.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// Longest line read from the client.
const MAX_LINE: usize = 1 << 20;

pub fn tools() -> Value {
    json!([
        {"name": "search_docs", "description": "Search the document folder for lines containing a word",
         "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
        {"name": "read_file", "description": "Read a file from the data folder",
         "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
        {"name": "export_customers", "description": "Export the customer table (names, e-mail addresses)",
         "inputSchema": {"type": "object", "properties": {"format": {"type": "string", "enum": ["csv"]}}}},
        {"name": "send_email", "description": "Queue an e-mail in the outbox",
         "inputSchema": {"type": "object", "properties": {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}}, "required": ["to", "subject", "body"]}},
    ])
}

/// Writes the demo's data folder (documents, customer table).
pub fn seed_data(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("docs"))?;
    std::fs::write(
        dir.join("docs/retention.md"),
        "# Data retention\nCustomer records are kept for 24 months.\nRetention reviews happen every quarter.\n",
    )?;
    std::fs::write(
        dir.join("docs/reports.md"),
        "# Weekly reports\nThe weekly report summarises churn and retention by region.\n",
    )?;
    std::fs::write(
        dir.join("customers.csv"),
        "id,name,email\n1,Ada Lovelace,ada@example.org\n2,Alan Turing,alan@example.org\n",
    )?;
    Ok(())
}

fn text(t: String) -> Value {
    json!({"content": [{"type": "text", "text": t}], "isError": false})
}

fn tool_error(t: String) -> Value {
    json!({"content": [{"type": "text", "text": t}], "isError": true})
}

fn inside(data: &Path, rel: &str) -> Option<PathBuf> {
    let p = data.join(rel.trim_start_matches('/'));
    let canon = p.canonicalize().ok()?;
    canon
        .starts_with(data.canonicalize().ok()?)
        .then_some(canon)
}

fn call(data: &Path, name: &str, args: &Value) -> Value {
    let arg = |k: &str| args[k].as_str().unwrap_or_default().to_owned();
    match name {
        "search_docs" => {
            let q = arg("query").to_lowercase();
            let mut hits = Vec::new();
            if let Ok(dir) = std::fs::read_dir(data.join("docs")) {
                let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
                files.sort();
                for f in files {
                    let body = std::fs::read_to_string(&f).unwrap_or_default();
                    for line in body.lines().filter(|l| l.to_lowercase().contains(&q)) {
                        let file = f.file_name().map(|n| n.to_string_lossy().into_owned());
                        hits.push(format!("{}: {line}", file.unwrap_or_default()));
                    }
                }
            }
            text(if hits.is_empty() {
                format!("no document mentions `{q}`")
            } else {
                hits.join("\n")
            })
        }
        "read_file" => match inside(data, &arg("path")) {
            Some(p) => match std::fs::read_to_string(&p) {
                Ok(t) => text(t),
                Err(e) => tool_error(format!("cannot read: {e}")),
            },
            None => tool_error("no such file in the data folder".into()),
        },
        "export_customers" => match std::fs::read_to_string(data.join("customers.csv")) {
            Ok(t) => text(t),
            Err(e) => tool_error(format!("cannot export: {e}")),
        },
        "send_email" => {
            let line = json!({"to": arg("to"), "subject": arg("subject"), "body": arg("body")});
            let outbox = data.join("outbox.jsonl");
            let result = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&outbox)
                .and_then(|mut f| writeln!(f, "{line}"));
            match result {
                Ok(()) => {
                    let n = std::fs::read_to_string(&outbox)
                        .map(|t| t.lines().count())
                        .unwrap_or(0);
                    text(format!("queued message #{n} to {}", arg("to")))
                }
                Err(e) => tool_error(format!("cannot queue: {e}")),
            }
        }
        other => tool_error(format!("unknown tool `{other}`")),
    }
}

fn answer(data: &Path, msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let method = msg["method"].as_str().unwrap_or_default();
    let result = match method {
        "initialize" => json!({
            "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "agentmesh-demo-tools", "version": env!("CARGO_PKG_VERSION")},
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": tools()}),
        "tools/call" => call(
            data,
            msg["params"]["name"].as_str().unwrap_or_default(),
            &msg["params"]["arguments"],
        ),
        _ => {
            return Some(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("method `{method}` not found")}}));
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

pub fn run(data: &Path) -> Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    let mut input = stdin.lock();
    loop {
        line.clear();
        let n = input
            .by_ref()
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .context("reading stdin")?;
        if n == 0 {
            return Ok(());
        }
        let reply = match serde_json::from_str::<Value>(line.trim()) {
            Ok(msg) => answer(data, &msg),
            Err(e) => Some(json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": format!("parse error: {e}")}})),
        };
        if let Some(r) = reply {
            writeln!(out, "{r}")?;
            out.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_work_on_real_files_and_stay_inside_the_data_folder() {
        let dir = tempfile::tempdir().expect("dir");
        seed_data(dir.path()).expect("seed");
        let r = call(dir.path(), "search_docs", &json!({"query": "retention"}));
        assert!(
            r["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("retention.md: Retention reviews happen every quarter.")
        );
        let r = call(
            dir.path(),
            "read_file",
            &json!({"path": "docs/retention.md"}),
        );
        assert!(
            r["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("24 months")
        );
        let r = call(
            dir.path(),
            "read_file",
            &json!({"path": "../../etc/passwd"}),
        );
        assert_eq!(r["isError"], true);
        let r = call(
            dir.path(),
            "send_email",
            &json!({"to": "a@b.c", "subject": "s", "body": "b"}),
        );
        assert_eq!(r["content"][0]["text"], "queued message #1 to a@b.c");
        let bad = answer(
            dir.path(),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "nope"}),
        );
        assert_eq!(bad.expect("answer")["error"]["code"], -32601);
    }
}
