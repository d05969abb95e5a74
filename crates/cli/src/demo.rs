//! `agentmesh demo`: the whole mesh on this machine in one command.
//!
//! Starts the control plane (embedded storage in a fresh home), an MCP
//! gateway attached to it in front of a real tool server (the demo tool
//! server over stdio), creates the seed's sponsor and a delegation chain,
//! drives real tool calls through the gateway (allowed, denied for
//! personal-data export, rate-limited, held for approval and approved),
//! shows the agent's trust moving, verifies an audit inclusion proof
//! against a signed checkpoint, and prints a summary.

use crate::output::Output;
use agentmesh_audit::note::{NoteVerifier, verify_checkpoint};
use agentmesh_audit::{parse_hex, verify_inclusion};
use agentmesh_delegation::{Grant, Token};
use agentmesh_identity::KeyPair;
use agentmesh_server::client::ControlPlane;
use agentmesh_server::pop::{
    CredentialRequest, RegistrationRequest, approval_message, sign_approval,
};
use agentmesh_server::{AppState, ServeConfig};
use agentmesh_store::{KeyKind, unix_now};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SPONSOR: &str = "alice@company.com";
const AGENT: &str = "data-analyst-agent";
const SUB_AGENT: &str = "report-writer";

const POLICY: &str = r#"version: "1.0"
agents: ["*"]
sponsor: alice@company.com
default_action: deny
rules:
  - name: no-pii-export
    condition: "action.tool == 'export_customers' and data.contains_pii"
    action: deny
    severity: medium
  - name: search-rate-limit
    condition: "action.tool == 'search_docs'"
    limit: "3/minute"
  - name: email-needs-approval
    condition: "action.tool == 'send_email'"
    action: require_approval
    approvers: ["alice@company.com"]
    approval_ttl: 2m
  - name: tools
    condition: "action.type == 'tool_call'"
    action: allow
compliance:
  frameworks: ["gdpr"]
"#;

/// A step of the demo, printed as it happens.
fn say(step: &str, detail: impl std::fmt::Display) {
    println!("  {step:<34} {detail}");
}

/// How long the demo waits for a call held for approval on the dashboard:
/// as long as the approval lives (`approval_ttl: 2m`), and a little more.
const HELD_CALL_WAIT: Duration = Duration::from_secs(130);

pub async fn run(
    home_arg: Option<PathBuf>,
    keep_running: bool,
    listen: Option<std::net::SocketAddr>,
) -> Result<Output> {
    // A temporary folder only when none was given; it holds keys and the
    // admin token, so it goes whatever happens: normal end, error, Ctrl-C,
    // SIGTERM (children are stopped first: dropping the run stops them).
    let tmp = match &home_arg {
        Some(_) => None,
        None => Some(tempdir()?),
    };
    let root = home_arg.unwrap_or_else(|| tmp.clone().unwrap_or_default());
    // A signal while the demo runs interrupts it; once it only keeps the
    // mesh running (--keep-running), a signal is the normal way to stop,
    // handled there (a clean stop, exit 0).
    let keeping = std::sync::Arc::new(KeepRunning::default());
    let waiting = keeping.clone();
    let result = tokio::select! {
        r = run_in(root, keep_running, listen, keeping) => r,
        _ = async move {
            crate::serve_cmd::shutdown_signal().await;
            if waiting.keeping.load(std::sync::atomic::Ordering::SeqCst) {
                // The one signal listener tells the keep-running phase.
                waiting.stop.notify_one();
                std::future::pending::<()>().await;
            }
        } => {
            Err(anyhow!("interrupted: the demo stopped its gateway and control plane"))
        }
    };
    if let Some(t) = tmp
        && let Err(e) = std::fs::remove_dir_all(&t)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!(
            "agentmesh: could not remove the demo's folder {} (it holds demo keys): {e}",
            t.display()
        );
    }
    result
}

/// The keep-running phase: entered (`keeping`), and told to stop.
#[derive(Default)]
struct KeepRunning {
    keeping: std::sync::atomic::AtomicBool,
    stop: tokio::sync::Notify,
}

async fn run_in(
    root: PathBuf,
    keep_running: bool,
    listen: Option<std::net::SocketAddr>,
    keeping: std::sync::Arc<KeepRunning>,
) -> Result<Output> {
    std::fs::create_dir_all(&root)?;
    let data = root.join("data");
    crate::demo_server::seed_data(&data)?;
    println!("AgentMesh demo (working directory {})\n", root.display());

    // 1. The control plane, embedded storage.
    let (mesh, sql) =
        crate::serve_cmd::open_control_plane(&root.join("control-plane"), None).await?;
    let token = format!("demo-{}", agentmesh_server::pop::nonce());
    let state = AppState::new(
        mesh,
        sql,
        &token,
        ServeConfig {
            replica: "demo".into(),
            ..ServeConfig::default()
        },
    )
    .await
    .map_err(|e| anyhow!("{e}"))?;
    let home = state.mesh.home().clone();
    let listener =
        tokio::net::TcpListener::bind(listen.unwrap_or(([127, 0, 0, 1], 0).into())).await?;
    let cp_addr = listener.local_addr()?;
    let (stop_cp, stopped) = tokio::sync::oneshot::channel::<()>();
    let cp_task = tokio::spawn(agentmesh_server::serve(state, listener, async {
        let _ = stopped.await;
    }));
    let cp_url = format!("http://{cp_addr}");
    let cp = ControlPlane::new(&cp_url, Some(&token)).map_err(|e| anyhow!("{e}"))?;
    say("control plane", &cp_url);
    let mesh_did = cp.call(Method::GET, "/v1/authority", None).await?["mesh"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // 2. The seed's sponsor, an agent that registers with proof of
    //    possession and is approved by its sponsor, and a delegation chain.
    cp.call(
        Method::POST,
        "/v1/sponsors",
        Some(&json!({"email": SPONSOR})),
    )
    .await?;
    say("sponsor", SPONSOR);
    let agent_key = KeyPair::generate().map_err(|e| anyhow!("{e}"))?;
    let caps = vec![
        "call:tools:*".to_string(),
        "read:customer-data".into(),
        "write:reports".into(),
    ];
    let nonce = cp
        .call(Method::POST, "/v1/registrations/challenge", None)
        .await?["nonce"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reg = RegistrationRequest {
        name: AGENT.into(),
        sponsor: SPONSOR.into(),
        capabilities: caps.clone(),
        did: agent_key.did().to_did_key().to_string(),
        parent: None,
        expires_at: None,
        nonce,
        timestamp: unix_now(),
        signature: String::new(),
    }
    .sign(&agent_key, &mesh_did);
    let pending = cp
        .call(
            Method::POST,
            "/v1/registrations",
            Some(&serde_json::to_value(&reg)?),
        )
        .await?;
    let reg_id = pending["id"].as_str().unwrap_or_default().to_owned();
    say(
        "registration (proof of possession)",
        format!("{reg_id} pending"),
    );
    let sponsor_key = home.read_key(KeyKind::Sponsor(SPONSOR))?;
    let msg = approval_message(&mesh_did, &reg_id, &agent_key.did(), AGENT, &caps);
    cp.call(
        Method::POST,
        &format!("/v1/registrations/{reg_id}/approve"),
        Some(&json!({"sponsor_signature": sign_approval(&sponsor_key, &msg)})),
    )
    .await?;
    say("sponsor approval (signed)", format!("{AGENT} active"));
    let sub_key = KeyPair::generate().map_err(|e| anyhow!("{e}"))?;
    cp.call(
        Method::POST,
        "/v1/agents",
        Some(&json!({"name": SUB_AGENT, "sponsor": SPONSOR, "capabilities": ["write:reports"], "did": sub_key.did().to_string(), "parent": AGENT})),
    )
    .await?;
    let root_link = cp
        .call(
            Method::POST,
            "/v1/delegations",
            Some(&json!({"from": SPONSOR, "to": AGENT, "capabilities": ["read:customer-data", "write:reports"], "ttl_secs": 3600, "max_depth": 2})),
        )
        .await?;
    let root_token = Token::parse(root_link["token"].as_str().unwrap_or_default())?;
    let now = unix_now();
    let grant = |caps: &[&str]| -> Result<Grant> {
        Ok(Grant {
            audience: sub_key.did(),
            capabilities: caps
                .iter()
                .map(|c| agentmesh_capability::Capability::parse(c))
                .collect::<Result<_, _>>()?,
            not_before: now,
            expires_at: now + 1800,
            max_depth: Some(0),
        })
    };
    // The agent signs the second link itself; widening is refused.
    let widened = root_token.delegate(
        &agent_key,
        grant(&["read:customer-data", "write:reports", "delete:*"])?,
    );
    let chain = root_token.delegate(&agent_key, grant(&["write:reports"])?)?;
    let verified = cp
        .call(
            Method::POST,
            "/v1/delegations/verify",
            Some(&json!({"token": chain.as_str()})),
        )
        .await?;
    say(
        "delegation chain",
        format!(
            "{SPONSOR} → {AGENT} → {SUB_AGENT} (depth {}, holds {}); widening refused: {}",
            verified["depth"],
            verified["capabilities"],
            widened
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "NOT REFUSED".into())
        ),
    );

    // 3. Policy published by the control plane; the gateway in front of the
    //    demo tool server, attached to the control plane.
    let (st, body) = cp
        .send(
            Method::PUT,
            "/v1/policy",
            Some(POLICY.as_bytes().to_vec()),
            None,
        )
        .await?;
    if !st.is_success() {
        bail!(
            "publishing the demo policy: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let gw_port = free_port()?;
    let exe = std::env::current_exe()?;
    std::fs::write(root.join("policy.yaml"), POLICY)?;
    std::fs::write(
        root.join("gateway.yaml"),
        format!(
            "listen: 127.0.0.1:{gw_port}\npolicy: {}\naudience: demo-gateway\nupstreams:\n  - name: tools\n    stdio: {{ command: {:?}, args: [\"mcp\", \"demo-server\", \"--data\", {:?}] }}\n    tools:\n      export_customers: {{ data: {{ contains_pii: true, classification: confidential }} }}\n",
            root.join("policy.yaml").display(),
            exe.display().to_string(),
            data.display().to_string(),
        ),
    )?;
    // The gateway gets a gateway credential, never the admin token.
    let gw_token = cp
        .call(
            Method::POST,
            "/v1/gateways",
            Some(&serde_json::json!({"name": "demo-gateway"})),
        )
        .await?["credential"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut gateway = Gateway::start(&exe, &root, &cp_url, &gw_token)?;
    say(
        "MCP gateway",
        format!("http://127.0.0.1:{gw_port}/mcp → stdio demo tool server"),
    );

    // 4. The agent's credential (proof of possession again), then calls.
    let nonce = cp
        .call(Method::POST, "/v1/credentials/challenge", None)
        .await?["nonce"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let creq = CredentialRequest {
        did: agent_key.did().to_string(),
        audience: None,
        ttl_secs: None,
        nonce,
        timestamp: unix_now(),
        signature: String::new(),
    }
    .sign(&agent_key, &mesh_did);
    let cred = cp
        .call(
            Method::POST,
            "/v1/credentials",
            Some(&serde_json::to_value(&creq)?),
        )
        .await?;
    let credential = cred["credential"].as_str().unwrap_or_default().to_owned();
    say(
        "credential (15 min)",
        format!("id {}", cred["id"].as_str().unwrap_or_default()),
    );

    let mut client =
        McpClient::connect(&format!("http://127.0.0.1:{gw_port}/mcp"), &credential).await?;
    let trust_path = format!("/v1/trust/{AGENT}");
    let mut outcomes = Vec::new();
    let r = client
        .call("search_docs", json!({"query": "retention"}))
        .await?;
    say("search_docs", outcome(&r));
    outcomes.push(("allowed", outcome_kind(&r)));
    // Let the gateway flush trust to the control plane.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let trust_before = cp.call(Method::GET, &trust_path, None).await?["score"]["score"].as_f64();

    let r = client
        .call("export_customers", json!({"format": "csv"}))
        .await?;
    say("export_customers (PII)", outcome(&r));
    outcomes.push(("denied", outcome_kind(&r)));

    let mut limited = None;
    for i in 0..5 {
        let r = client
            .call("search_docs", json!({"query": "weekly"}))
            .await?;
        if outcome_kind(&r) == "rate_limited" {
            limited = Some(i + 2);
            say(
                "search_docs, again and again",
                format!("call {} {}", i + 2, outcome(&r)),
            );
            break;
        }
    }
    outcomes.push((
        "rate-limited",
        if limited.is_some() {
            "rate_limited"
        } else {
            "allowed"
        },
    ));

    // Held for approval: a human (here, the demo) approves through the
    // control plane while the call waits.
    let approver = {
        let cp = cp.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(list) = cp.call(Method::GET, "/v1/approvals", None).await else {
                    continue;
                };
                if let Some(id) = list["approvals"][0]["id"].as_str() {
                    let _ = cp
                        .call(
                            Method::POST,
                            &format!("/v1/approvals/{id}/approve"),
                            Some(&json!({"by": SPONSOR})),
                        )
                        .await;
                    return Some(id.to_owned());
                }
            }
            None
        })
    };
    let r = client
        .call("send_email", json!({"to": "team@company.com", "subject": "Weekly report", "body": "Retention is up."}))
        .await?;
    let approval = approver.await.ok().flatten();
    say(
        "send_email (held for approval)",
        format!(
            "{} by {SPONSOR} → {}",
            approval.as_deref().unwrap_or("no approval"),
            outcome(&r)
        ),
    );
    outcomes.push(("held, then approved", outcome_kind(&r)));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let trust_after = cp.call(Method::GET, &trust_path, None).await?["score"]["score"].as_f64();
    say(
        "trust score",
        format!(
            "{} → {} (the PII export counted against it)",
            fmt_score(trust_before),
            fmt_score(trust_after)
        ),
    );

    // 5. An audit proof: a decision shipped by the gateway, proven against
    //    a checkpoint signed by the mesh key.
    let proof = prove_a_denial(&cp).await?;
    say("audit proof", &proof);

    println!("\nSummary");
    for (what, got) in &outcomes {
        println!("  {what:<22} {got}");
    }
    let verified_ok = proof.starts_with("entry");
    let ok = outcomes
        == vec![
            ("allowed", "allowed"),
            ("denied", "denied"),
            ("rate-limited", "rate_limited"),
            ("held, then approved", "allowed"),
        ]
        && verified_ok
        && matches!((trust_before, trust_after), (Some(b), Some(a)) if a < b);
    println!(
        "  {:<22} {}",
        "everything as expected",
        if ok { "yes" } else { "NO" }
    );

    if keep_running {
        // One more e-mail, held until someone decides on the dashboard.
        let waiting = tokio::spawn(async move {
            client.wait = HELD_CALL_WAIT;
            let r = client
                .call(
                    "send_email",
                    json!({"to": "board@company.com", "subject": "Quarterly numbers", "body": "Attached."}),
                )
                .await;
            match r {
                Ok(r) => println!("  held call decided on the dashboard: {}", outcome(&r)),
                Err(e) => println!(
                    "  gave up on the held call: {e}; its approval has expired, so a decision made now sends nothing"
                ),
            }
        });
        println!(
            "\nStill running (Ctrl-C stops):\n  control plane  {cp_url}\n  dashboard      {cp_url}/#token={token}\n  gateway        http://127.0.0.1:{gw_port}/mcp\n  admin token    {token}\n  one send_email call is held for approval: approve or deny it on the dashboard"
        );
        keeping
            .keeping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        keeping.stop.notified().await;
        waiting.abort();
    }
    gateway.stop();
    let _ = stop_cp.send(());
    let _ = cp_task.await;
    if !ok {
        bail!("the demo did not go as expected (see above)");
    }
    Ok(Output::new(
        json!({"ok": true, "outcomes": outcomes.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>()}),
        "",
    ))
}

fn fmt_score(s: Option<f64>) -> String {
    s.map(|v| format!("{v:.3}"))
        .unwrap_or_else(|| "unknown".into())
}

fn tempdir() -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!(
        "agentmesh-demo-{}-{}",
        std::process::id(),
        unix_now()
    ));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// What a tools/call answer was: allowed, denied, rate_limited, held.
fn outcome_kind(r: &Value) -> &'static str {
    if r.get("result").is_some() {
        return "allowed";
    }
    match r["error"]["data"]["decision"]
        .as_str()
        .or(r["error"]["data"]["reason"].as_str())
    {
        Some("rate_limited") | Some("rate_limit") => "rate_limited",
        Some("require_approval") => "held",
        _ => "denied",
    }
}

fn outcome(r: &Value) -> String {
    if let Some(res) = r.get("result") {
        let t = res["content"][0]["text"].as_str().unwrap_or_default();
        let first = t.lines().next().unwrap_or_default();
        return format!("allowed: {first}");
    }
    format!(
        "{} ({}): {}",
        outcome_kind(r),
        r["error"]["data"]["rule"].as_str().unwrap_or("-"),
        r["error"]["message"].as_str().unwrap_or_default()
    )
}

async fn prove_a_denial(cp: &ControlPlane) -> Result<String> {
    let authority = cp.call(Method::GET, "/v1/authority", None).await?;
    let verifier = NoteVerifier::parse_vkey(authority["audit_vkey"].as_str().unwrap_or_default())
        .map_err(|e| anyhow!("vkey: {e}"))?;
    for _ in 0..50 {
        let log = cp.call(Method::GET, "/v1/audit?limit=1000", None).await?;
        let found = log["entries"].as_array().and_then(|es| {
            es.iter()
                .find(|e| e["entry"]["event"] == "decision" && e["entry"]["decision"] == "deny")
        });
        if let Some(e) = found {
            let index = e["index"].as_u64().unwrap_or_default();
            let p = cp
                .call(Method::GET, &format!("/v1/audit/{index}/proof"), None)
                .await?;
            let cp_note =
                verify_checkpoint(p["checkpoint"].as_str().unwrap_or_default(), &verifier)
                    .map_err(|e| anyhow!("checkpoint: {e}"))?;
            let leaf =
                agentmesh_audit::leaf_hash(p["entry"].as_str().unwrap_or_default().as_bytes());
            let path: Vec<[u8; 32]> = p["proof"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str().and_then(parse_hex))
                        .collect()
                })
                .unwrap_or_default();
            verify_inclusion(&leaf, index, cp_note.size, &path, &cp_note.root)
                .map_err(|e| anyhow!("inclusion: {e}"))?;
            return Ok(format!(
                "entry {index} (the PII denial, shipped by the gateway) is in the signed tree of size {} — verified",
                cp_note.size
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok("no shipped denial found in the control plane's log".into())
}

/// The gateway child process.
struct Gateway {
    child: std::process::Child,
}

impl Gateway {
    fn start(exe: &Path, root: &Path, cp_url: &str, token: &str) -> Result<Self> {
        let mut child = std::process::Command::new(exe)
            .args(["--home"])
            .arg(root.join("gateway-home"))
            .args(["mcp", "gateway", "--config"])
            .arg(root.join("gateway.yaml"))
            .args(["--control-plane", cp_url])
            .env("AGENTMESH_CONTROL_PLANE_TOKEN", token)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the gateway")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("gateway stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let mut g = Gateway { child };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            g.stop();
            bail!("the gateway did not start within 20 s");
        }
        Ok(g)
    }

    fn stop(&mut self) {
        // SIGTERM lets it flush trust and sign a checkpoint.
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A minimal Streamable HTTP MCP client (legacy session).
struct McpClient {
    url: String,
    credential: String,
    session: Option<String>,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    next_id: u64,
    /// How long one request may take.
    wait: Duration,
}

impl McpClient {
    async fn connect(url: &str, credential: &str) -> Result<Self> {
        let mut c = McpClient {
            url: url.into(),
            credential: credential.into(),
            session: None,
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http(),
            next_id: 0,
            wait: Duration::from_secs(60),
        };
        let init = c
            .rpc(json!({"method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "agentmesh-demo", "version": env!("CARGO_PKG_VERSION")}}}))
            .await?;
        if init.get("result").is_none() {
            bail!("initialize failed: {init}");
        }
        c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(c)
    }

    async fn call(&mut self, tool: &str, args: Value) -> Result<Value> {
        self.rpc(json!({"method": "tools/call", "params": {"name": tool, "arguments": args}}))
            .await
    }

    async fn rpc(&mut self, mut msg: Value) -> Result<Value> {
        self.next_id += 1;
        msg["jsonrpc"] = json!("2.0");
        msg["id"] = json!(self.next_id);
        self.post(msg).await?.ok_or_else(|| anyhow!("no answer"))
    }

    async fn post(&mut self, msg: Value) -> Result<Option<Value>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", format!("Bearer {}", self.credential));
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let req = req.body(Full::new(Bytes::from(msg.to_string())))?;
        let wait = self.wait;
        let resp = tokio::time::timeout(wait, self.http.request(req))
            .await
            .map_err(|_| anyhow!("the gateway did not answer in {} s", wait.as_secs()))??;
        if let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(s.to_owned());
        }
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status.as_u16() == 202 || body.is_empty() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&body);
        // JSON or SSE: the answer is the last `data:` line of an SSE body.
        let json_text = if text.trim_start().starts_with('{') {
            text.to_string()
        } else {
            text.lines()
                .rev()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .find(|l| l.starts_with('{'))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Some(serde_json::from_str(&json_text).with_context(
            || format!("gateway answered {status}: {text}"),
        )?))
    }
}
