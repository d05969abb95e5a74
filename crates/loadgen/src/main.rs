//! `agentmesh-loadgen`: drives an MCP Streamable HTTP endpoint with 1 KB
//! `tools/call` requests and reports throughput and latency percentiles.
//!
//! ```text
//! agentmesh-loadgen --url http://127.0.0.1:8787/mcp [--rate 2000] [--connections 16]
//!     [--duration 15] [--body-bytes 1024] [--bearer TOKEN] [--legacy] [--warmup 2]
//! ```
//!
//! * `--rate 0` (default): closed loop, each connection sends as fast as
//!   answers come back (saturation throughput).
//! * `--rate N`: open loop at N requests/s; each request's latency counts
//!   from when it was *scheduled*, so a stall is not hidden by the
//!   generator waiting (coordinated omission).
//! * `--legacy`: opens a 2025-11-25 session (`initialize`) and sends its
//!   `Mcp-Session-Id`; otherwise requests carry the 2026-07-28 `_meta`.
//! * `--a2a`: A2A 1.0 `SendMessage` requests (JSON-RPC, `A2A-Version: 1.0`)
//!   with a 1 KB text part instead of MCP.
//! * `--serve-a2a PORT`: instead of generating load, be a minimal fast A2A
//!   agent on 127.0.0.1:PORT (a card, and a fixed answer to every
//!   `SendMessage`), so the gateway's own cost can be measured.
//!
//! Every response is checked: HTTP 200, a `result`, no `"isError":true`.
//! Prints one JSON object.

#![forbid(unsafe_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper::server::conn::http1 as server_http1;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Args {
    url: String,
    rate: u64,
    connections: usize,
    duration: u64,
    warmup: u64,
    body_bytes: usize,
    bearer: Option<String>,
    legacy: bool,
    a2a: bool,
    serve_a2a: Option<u16>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        rate: 0,
        connections: 16,
        duration: 15,
        warmup: 2,
        body_bytes: 1024,
        bearer: None,
        legacy: false,
        a2a: false,
        serve_a2a: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--url" => a.url = val()?,
            "--rate" => a.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--connections" => {
                a.connections = val()?.parse().map_err(|e| format!("--connections: {e}"))?
            }
            "--duration" => a.duration = val()?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--body-bytes" => {
                a.body_bytes = val()?.parse().map_err(|e| format!("--body-bytes: {e}"))?
            }
            "--bearer" => a.bearer = Some(val()?),
            "--legacy" => a.legacy = true,
            "--a2a" => a.a2a = true,
            "--serve-a2a" => {
                a.serve_a2a = Some(val()?.parse().map_err(|e| format!("--serve-a2a: {e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.url.is_empty() && a.serve_a2a.is_none() {
        return Err("--url is required".into());
    }
    if a.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    Ok(a)
}

struct Target {
    host: String,
    port: u16,
    path: String,
}

fn target(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or("the URL needs an explicit port")?;
    Ok(Target {
        host: host.to_owned(),
        port: port.parse().map_err(|e| format!("port: {e}"))?,
        path: path.to_owned(),
    })
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

struct Shared {
    args: Args,
    target: Target,
    session: Option<String>,
    padding: String,
}

fn body(shared: &Shared, id: u64) -> String {
    if shared.args.a2a {
        return format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"SendMessage","params":{{"message":{{"messageId":"m{id}","role":"ROLE_USER","parts":[{{"text":"{}"}}]}}}}}}"#,
            shared.padding
        );
    }
    let meta = if shared.args.legacy {
        String::new()
    } else {
        r#","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#.to_owned()
    };
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}{meta}}}}}"#,
        shared.padding
    )
}

async fn send(
    s: &Shared,
    sender: &mut Sender,
    text: String,
    method: &str,
) -> Result<(u16, Bytes, Option<String>), String> {
    let mut req = Request::builder()
        .method("POST")
        .uri(&s.target.path)
        .header("host", format!("{}:{}", s.target.host, s.target.port))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if s.args.a2a {
        req = req.header("a2a-version", "1.0");
    } else if s.args.legacy {
        req = req.header("mcp-protocol-version", "2025-11-25");
    } else {
        req = req
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if method == "tools/call" {
            req = req.header("mcp-name", "echo");
        }
    }
    if let Some(b) = &s.args.bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    if let Some(sid) = &s.session {
        req = req.header("mcp-session-id", sid);
    }
    let req = req
        .body(Full::new(Bytes::from(text)))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes, sid))
}

fn good(status: u16, body: &[u8]) -> bool {
    status == 200 && memfind(body, b"\"result\"") && !memfind(body, b"\"isError\":true")
}

fn memfind(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

async fn open_session(args: &Args, t: &Target) -> Result<Option<String>, String> {
    if !args.legacy || args.a2a {
        return Ok(None);
    }
    let shared = Shared {
        args: args.clone(),
        target: Target {
            host: t.host.clone(),
            port: t.port,
            path: t.path.clone(),
        },
        session: None,
        padding: String::new(),
    };
    let mut c = connect(t).await?;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"agentmesh-loadgen","version":"1"}}}"#;
    let (status, b, sid) = send(&shared, &mut c, init.to_owned(), "initialize").await?;
    if status != 200 {
        return Err(format!(
            "initialize: HTTP {status}: {}",
            String::from_utf8_lossy(&b)
        ));
    }
    let shared = Shared {
        session: sid.clone(),
        ..shared
    };
    let (status, _, _) = send(
        &shared,
        &mut c,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
        "notifications/initialized",
    )
    .await?;
    if !(200..300).contains(&status) {
        return Err(format!("notifications/initialized: HTTP {status}"));
    }
    Ok(sid)
}

#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    ok: u64,
    bad: u64,
    first_bad: Option<String>,
}

async fn worker(
    s: Arc<Shared>,
    index: usize,
    start: Instant,
    end: Instant,
    next: Arc<AtomicU64>,
    record_from: Instant,
) -> Tally {
    let mut t = Tally::default();
    let mut c = match connect(&s.target).await {
        Ok(c) => c,
        Err(e) => {
            t.bad += 1;
            t.first_bad = Some(e);
            return t;
        }
    };
    let interval_ns = 1_000_000_000u64.checked_div(s.args.rate).unwrap_or(0);
    let mut id = (index as u64 + 1) * 1_000_000_000;
    let mut prev_done = start;
    loop {
        let scheduled = if interval_ns > 0 {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let at = start + Duration::from_nanos(i * interval_ns);
            if at >= end {
                break;
            }
            if prev_done > at {
                // This connection was still busy when the request was due:
                // the wait counts (coordinated-omission correction).
                at
            } else {
                // Tokio's timer has ~1 ms resolution; the lateness it adds
                // is the generator's, so time from the actual send.
                tokio::time::sleep_until(at.into()).await;
                Instant::now()
            }
        } else {
            let now = Instant::now();
            if now >= end {
                break;
            }
            now
        };
        id += 1;
        let r = send(&s, &mut c, body(&s, id), "tools/call").await;
        prev_done = Instant::now();
        let done = Instant::now();
        if scheduled < record_from {
            if r.is_err() {
                match connect(&s.target).await {
                    Ok(n) => c = n,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            continue;
        }
        match r {
            Ok((status, b, _)) if good(status, &b) => {
                t.ok += 1;
                t.latencies_ns
                    .push(done.duration_since(scheduled).as_nanos() as u64);
            }
            Ok((status, b, _)) => {
                t.bad += 1;
                t.first_bad.get_or_insert_with(|| {
                    format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&b[..b.len().min(300)])
                    )
                });
            }
            Err(e) => {
                t.bad += 1;
                t.first_bad.get_or_insert(e);
                match connect(&s.target).await {
                    Ok(n) => c = n,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    }
    t
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1e6
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("agentmesh-loadgen: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentmesh-loadgen: runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Some(port) = args.serve_a2a {
        let code = rt.block_on(serve_a2a(port));
        std::process::exit(code);
    }
    let code = rt.block_on(async move {
        let t = match target(&args.url) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("agentmesh-loadgen: {e}");
                return 2;
            }
        };
        let session = match open_session(&args, &t).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("agentmesh-loadgen: {e}");
                return 1;
            }
        };
        let skeleton = if args.a2a {
            r#"{"jsonrpc":"2.0","id":0000000000,"method":"SendMessage","params":{"message":{"messageId":"m0000000000","role":"ROLE_USER","parts":[{"text":""}]}}}"#
        } else {
            r#"{"jsonrpc":"2.0","id":0000000000,"method":"tools/call","params":{"name":"echo","arguments":{"text":""}}}"#
        };
        let padding = "a".repeat(args.body_bytes.saturating_sub(skeleton.len()));
        let shared = Arc::new(Shared { args: args.clone(), target: t, session, padding });
        let start = Instant::now() + Duration::from_millis(50);
        let record_from = start + Duration::from_secs(args.warmup);
        let end = record_from + Duration::from_secs(args.duration);
        let next = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for i in 0..args.connections {
            handles.push(tokio::spawn(worker(shared.clone(), i, start, end, next.clone(), record_from)));
        }
        let mut all = Tally::default();
        for h in handles {
            if let Ok(t) = h.await {
                all.latencies_ns.extend(t.latencies_ns);
                all.ok += t.ok;
                all.bad += t.bad;
                if all.first_bad.is_none() {
                    all.first_bad = t.first_bad;
                }
            }
        }
        all.latencies_ns.sort_unstable();
        let secs = args.duration as f64;
        let out = serde_json::json!({
            "url": args.url,
            "mode": if args.rate > 0 { format!("fixed {} rps", args.rate) } else { "closed loop".to_owned() },
            "connections": args.connections,
            "seconds": secs,
            "ok": all.ok,
            "bad": all.bad,
            "first_bad": all.first_bad,
            "rps": all.ok as f64 / secs,
            "p50_ms": pct(&all.latencies_ns, 0.50),
            "p90_ms": pct(&all.latencies_ns, 0.90),
            "p99_ms": pct(&all.latencies_ns, 0.99),
            "p999_ms": pct(&all.latencies_ns, 0.999),
            "max_ms": all.latencies_ns.last().map(|v| *v as f64 / 1e6).unwrap_or(0.0),
        });
        println!("{out}");
        i32::from(all.bad > 0)
    });
    std::process::exit(code);
}

/// A minimal, fast A2A 1.0 agent: its card, and one fixed message for any
/// JSON-RPC request (echoing the request's id). Only for measuring what a
/// gateway in front of it adds.
async fn serve_a2a(port: u16) -> i32 {
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("agentmesh-loadgen: bind 127.0.0.1:{port}: {e}");
            return 2;
        }
    };
    let card: Bytes = serde_json::json!({
        "name": "fast-a2a", "description": "A fixed-answer A2A agent for benchmarks", "version": "1.0.0",
        "supportedInterfaces": [{"url": format!("http://127.0.0.1:{port}/"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {"streaming": false},
        "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "echo", "name": "Echo", "description": "Answers ok", "tags": ["bench"]}],
    })
    .to_string()
    .into();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let card = card.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let card = card.clone();
                async move {
                    let body = if req.method() == hyper::Method::GET {
                        card
                    } else {
                        let bytes = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let id = serde_json::from_slice::<serde_json::Value>(&bytes)
                            .ok()
                            .and_then(|v| v.get("id").cloned())
                            .unwrap_or(serde_json::Value::Null);
                        Bytes::from(format!(
                            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"message":{{"messageId":"r","role":"ROLE_AGENT","parts":[{{"text":"ok"}}]}}}}}}"#
                        ))
                    };
                    hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(body))
                }
            });
            let _ = server_http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
