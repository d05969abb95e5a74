//! What the A2A and IATP integration tests share: a mesh home driven
//! through the real `agentmesh` binary, child processes killed on drop,
//! free loopback ports, raw HTTP exchanges.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn env_path(name: &str) -> Option<PathBuf> {
    let p = std::env::var_os(name).map(PathBuf::from)?;
    p.exists().then_some(p)
}

/// A peer's path from the environment; CI must provide it.
pub fn need(name: &str) -> Option<PathBuf> {
    let p = env_path(name);
    if p.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide {name} (see .ci/run)"
        );
        eprintln!("skipping: {name} is not set (run .ci/run to install the peers)");
    }
    p
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn agentmesh() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agentmesh"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process stopped (TERM, then KILL) when dropped.
pub struct Proc(pub Child);
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

pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port} after 30 s");
}

/// A mesh home with one sponsor, driven through the binary.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Home {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mesh");
        let h = Self { dir, path };
        h.ok(&["init", "--trust-domain", "example.org"]);
        h.ok(&["sponsor", "create", "alice@company.com"]);
        h
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(agentmesh())
            .arg("--home")
            .arg(&self.path)
            .args(args)
            // Never the developer's control plane.
            .env_remove("AGENTMESH_CONTROL_PLANE")
            .env_remove("AGENTMESH_CONTROL_PLANE_TOKEN")
            .output()
            .expect("run agentmesh")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "agentmesh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("json")
    }

    pub fn agent(&self, name: &str, caps: &str) {
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

    pub fn credential(&self, agent: &str) -> String {
        self.json(&["credential", "issue", agent])["credential"]
            .as_str()
            .expect("credential")
            .to_owned()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `agentmesh <args>` in the background and waits for `port`.
    pub fn spawn(&self, args: &[&str], port: u16) -> Proc {
        let child = Command::new(agentmesh())
            .arg("--home")
            .arg(&self.path)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn agentmesh");
        let p = Proc(child);
        wait_port(port);
        p
    }

    /// Decision entries in the audit log (waits up to 10 s for `want`).
    pub fn audit_until(&self, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tail = self.json(&["audit", "tail", "-n", "500"]);
            let entries: Vec<Value> = tail["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|e| e["entry"].clone())
                .collect();
            if want(&entries) {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "the audit log never showed what was expected: {entries:#?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A raw HTTP/1.1 exchange (so tests can send what no client library
/// would). Returns status, headers and body.
pub fn raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The MCP fixture server (interop/mcp/fixture_server.py) over HTTP.
pub fn mcp_fixture(python: &Path) -> (Proc, u16) {
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
