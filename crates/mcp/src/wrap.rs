//! The stdio wrapper: what a desktop MCP client's config points at instead
//! of the server itself. One client, one supervised server; every message
//! passes through byte for byte except what governance acts on: calls are
//! judged (and denied with a protocol error, or held for approval), lists
//! are filtered per the caller, and junk the server prints on stdout is
//! dropped instead of corrupting the stream. A server that crashes is
//! restarted (and re-initialised with the client's own `initialize`).

use crate::govern::{Governor, Judgement, ListTools, Route, Ticket, refusal_data};
use crate::message::{
    self, INTERNAL_ERROR, Kind, MAX_MESSAGE_BYTES, UPSTREAM_UNAVAILABLE, error_response,
    replace_field,
};
use crate::stdio::{Line, Server, ServerCommand, read_line, spawn};
use agentmesh_engine::Principal;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// Wrapper settings.
#[derive(Debug, Clone)]
pub struct WrapOptions {
    pub command: ServerCommand,
    /// Restart the server when it exits while the client is connected.
    pub restart: bool,
    /// Give up after this many restarts without a minute of uptime.
    pub max_restarts: u32,
    /// How long the server gets to exit at each shutdown step.
    pub grace: Duration,
}

/// A client request the server has not answered yet (keyed by the id
/// the wrapper gave it).
#[derive(Debug, Clone)]
struct Pending {
    /// The client's own id (raw JSON), restored on the answer.
    client_id: String,
    method: String,
    ticket: Option<Box<Ticket>>,
}

/// How long the wrapper waits for the server to list its tools when a
/// call names a tool it has not seen listed.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Prefix of ids the wrapper uses for its own requests (the replayed
/// `initialize` after a restart); their answers are not the client's.
const OWN_ID_PREFIX: &str = "\"agentmesh-wrap-";

struct State {
    /// By the wrapper's id (a number, as raw JSON): the server sees only
    /// these, and an answer must carry one exactly to reach the client.
    pending: Mutex<HashMap<String, Pending>>,
    next: AtomicU64,
    /// The wrapper's own requests (tool lists), by id.
    own: Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>,
    /// The client's `initialize` and `notifications/initialized`, replayed
    /// to a restarted server.
    init: Mutex<Option<Vec<u8>>>,
    initialized: Mutex<Option<Vec<u8>>>,
}

/// Runs the wrapper until the client closes its input (or the server
/// cannot be kept running). Returns the process exit code to use.
pub async fn run<R, W>(
    governor: Governor,
    principal: Principal,
    route: Route,
    opts: WrapOptions,
    client_in: R,
    client_out: W,
) -> i32
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let label = route.upstream.to_string();
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(write_client(client_out, out_rx));
    let state = Arc::new(State {
        pending: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
        own: Mutex::new(HashMap::new()),
        init: Mutex::new(None),
        initialized: Mutex::new(None),
    });

    let (mut server, mut server_out) = match spawn(&opts.command, &label) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agentmesh: cannot start `{}`: {e}", opts.command.display());
            return 1;
        }
    };
    let (to_server_tx, mut to_server_rx) = mpsc::channel::<Vec<u8>>(1024);

    // Client → server.
    let client_task = {
        let state = state.clone();
        let out_tx = out_tx.clone();
        let to_server = to_server_tx.clone();
        let governor = governor.clone();
        let principal = principal.clone();
        let route = route.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(client_in);
            loop {
                let line = match read_line(&mut r, MAX_MESSAGE_BYTES).await {
                    Ok(Some(Line::Text(l))) => l,
                    Ok(Some(Line::TooLong(n))) => {
                        let e = error_response(
                            None,
                            message::INVALID_REQUEST,
                            &format!(
                                "message of {n} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit"
                            ),
                            None,
                        );
                        send(&out_tx, e.into_bytes()).await;
                        continue;
                    }
                    Ok(None) | Err(_) => break,
                };
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                client_message(
                    &line, &state, &out_tx, &to_server, &governor, &principal, &route,
                )
                .await;
            }
        })
    };

    let mut restarts = 0u32;
    let mut started = std::time::Instant::now();
    let mut client_done = false;
    // After the client closes its input, the server gets `grace` to answer
    // what it has and exit at end of input; then it is stopped.
    let mut deadline: Option<tokio::time::Instant> = None;
    let code = loop {
        let until =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            biased;
            msg = to_server_rx.recv(), if !client_done => {
                if let Some(m) = msg {
                    server.send(m).await;
                }
            }
            line = server_out.recv() => {
                match line {
                    Some(Line::Text(l)) => server_message(l, &state, &out_tx, &governor, &principal, &route).await,
                    Some(Line::TooLong(n)) => eprintln!("[{label}] dropped a {n}-byte line from the server (over the limit)"),
                    None => {
                        // The server's stdout closed: it exited (or is about to).
                        let status = server.wait().await;
                        fail_pending(&state, &out_tx, "the MCP server exited").await;
                        if client_done || !opts.restart {
                            break if client_done { 0 } else { status.ok().and_then(|s| s.code()).unwrap_or(1) };
                        }
                        if started.elapsed() > Duration::from_secs(60) {
                            restarts = 0;
                        }
                        restarts += 1;
                        if restarts > opts.max_restarts {
                            eprintln!("agentmesh: `{}` keeps exiting; giving up after {} restarts", opts.command.display(), opts.max_restarts);
                            break 1;
                        }
                        let backoff = Duration::from_millis(250u64 << restarts.min(6));
                        eprintln!("agentmesh: `{}` exited ({status:?}); restarting in {backoff:?}", opts.command.display());
                        tokio::time::sleep(backoff).await;
                        match spawn(&opts.command, &label) {
                            Ok((s, o)) => {
                                server = s;
                                server_out = o;
                                started = std::time::Instant::now();
                                replay_init(&state, &server).await;
                            }
                            Err(e) => {
                                eprintln!("agentmesh: cannot restart `{}`: {e}", opts.command.display());
                                break 1;
                            }
                        }
                    }
                }
            }
            _ = wait_finished(&client_task), if !client_done => {
                client_done = true;
                // Deliver what the client already sent, then close the
                // server's input.
                while let Ok(m) = to_server_rx.try_recv() {
                    server.send(m).await;
                }
                server.close_stdin();
                deadline = Some(tokio::time::Instant::now() + opts.grace);
            }
            _ = tokio::time::sleep_until(until), if deadline.is_some() => {
                server.stop(opts.grace).await;
                break 0;
            }
        }
    };
    client_task.abort();
    drop(out_tx);
    drop(to_server_tx);
    let _ = writer.await;
    code
}

async fn wait_finished(task: &tokio::task::JoinHandle<()>) {
    while !task.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn write_client<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut m) = rx.recv().await {
        m.push(b'\n');
        if w.write_all(&m).await.is_err() || w.flush().await.is_err() {
            break;
        }
    }
}

async fn replay_init(state: &State, server: &Server) {
    let init = state.init.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(init) = init {
        let text = String::from_utf8_lossy(&init).into_owned();
        let id = RawValue::from_string(format!("{OWN_ID_PREFIX}init\"")).unwrap_or_default();
        if let Some(m) = replace_field(&text, "id", &id) {
            server.send(m.into_bytes()).await;
        }
        let note = state
            .initialized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(n) = note {
            server.send(n).await;
        }
    }
}

async fn fail_pending(state: &State, out: &mpsc::Sender<Vec<u8>>, why: &str) {
    let ids: Vec<String> = state
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .map(|(_, p)| p.client_id)
        .collect();
    state.own.lock().unwrap_or_else(|p| p.into_inner()).clear();
    for id in ids {
        let e = error_response(Some(&id), UPSTREAM_UNAVAILABLE, why, None);
        send(out, e.into_bytes()).await;
    }
}

impl State {
    /// Registers a client request under a fresh wrapper id; returns the
    /// message to send the server (the same bytes, but that id).
    fn issue(&self, line: &[u8], pending: Pending) -> Option<Vec<u8>> {
        let ours = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let raw = RawValue::from_string(ours.clone()).ok()?;
        let msg = replace_field(&String::from_utf8_lossy(line), "id", &raw)?;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ours, pending);
        Some(msg.into_bytes())
    }

    /// A client's `notifications/cancelled` for its request id, rewritten
    /// to the wrapper's id (`None`: not a request the server has).
    fn map_cancel(&self, line: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(line);
        message::remap_cancelled(&text, |client| {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|(_, p)| p.client_id == client)
                .map(|(k, _)| k.clone())
        })
        .map(String::into_bytes)
    }
}

/// The wrapped server's tool list, asked by the wrapper itself under its
/// own ids (for a call to a name it has not seen listed).
struct WrapTools {
    state: Arc<State>,
    to_server: mpsc::Sender<Vec<u8>>,
    /// The client's protocol `_meta` (2026-07-28 requests carry it).
    meta: serde_json::Map<String, Value>,
}

impl ListTools for WrapTools {
    fn list_tools(&self) -> futures_util::future::BoxFuture<'_, Result<Vec<Value>, String>> {
        Box::pin(async move {
            let mut tools = Vec::new();
            let mut cursor: Option<String> = None;
            for page in 0..50 {
                let mut params = json!({});
                if let Some(c) = &cursor {
                    params["cursor"] = json!(c);
                }
                if !self.meta.is_empty() {
                    params["_meta"] = Value::Object(self.meta.clone());
                }
                let n = self.state.next.fetch_add(1, Ordering::Relaxed);
                let id = format!("{OWN_ID_PREFIX}list-{n}-{page}\"");
                let (tx, rx) = oneshot::channel();
                self.state
                    .own
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), tx);
                let msg = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{params}}}"#
                );
                if self.to_server.send(msg.into_bytes()).await.is_err() {
                    return Err("the server is not running".into());
                }
                let answer = match tokio::time::timeout(LIST_TIMEOUT, rx).await {
                    Ok(Ok(a)) => a,
                    Ok(Err(_)) => return Err("the server exited before listing its tools".into()),
                    Err(_) => {
                        self.state
                            .own
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        return Err(format!(
                            "the server did not list its tools within {} s",
                            LIST_TIMEOUT.as_secs()
                        ));
                    }
                };
                cursor = crate::govern::read_tools_page(&answer, &mut tools)?;
                if cursor.is_none() {
                    break;
                }
            }
            Ok(tools)
        })
    }
}

/// The protocol keys of a request's `_meta` (`io.modelcontextprotocol/…`),
/// for the wrapper's own requests in the client's era. Other keys (a
/// progress token) belong to the client's request only.
fn protocol_meta(params: Option<&RawValue>) -> serde_json::Map<String, Value> {
    params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|v| v.get("_meta").and_then(Value::as_object).cloned())
        .map(|m| {
            m.into_iter()
                .filter(|(k, _)| k.starts_with("io.modelcontextprotocol/"))
                .collect()
        })
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn client_message(
    line: &[u8],
    state: &Arc<State>,
    out: &mpsc::Sender<Vec<u8>>,
    to_server: &mpsc::Sender<Vec<u8>>,
    governor: &Governor,
    principal: &Principal,
    route: &Route,
) {
    let msg = match message::parse(line) {
        Ok(m) => m,
        Err(e) => {
            // A repeated key is a refusal worth an audit leaf; other
            // malformed input is only answered.
            let data = e.duplicate_key.then(|| {
                refusal_data(&governor.refuse_duplicate_keys(principal, route, line, &e.message))
            });
            let reply = error_response(e.id.as_deref(), e.code, &e.message, data);
            send(out, reply.into_bytes()).await;
            return;
        }
    };
    match msg.kind {
        Kind::Request => {
            let id = msg
                .id
                .as_deref()
                .map(RawValue::get)
                .unwrap_or("null")
                .to_owned();
            let method = msg.method.clone().unwrap_or_default();
            if method == "initialize" {
                *state.init.lock().unwrap_or_else(|p| p.into_inner()) = Some(line.to_vec());
            }
            let governed = matches!(
                method.as_str(),
                "tools/call" | "prompts/get" | "resources/read" | "resources/subscribe"
            );
            if !governed {
                let pending = Pending {
                    client_id: id.clone(),
                    method,
                    ticket: None,
                };
                match state.issue(line, pending) {
                    Some(m) => send(to_server, m).await,
                    None => {
                        let e = error_response(
                            Some(&id),
                            INTERNAL_ERROR,
                            "could not rewrite the request",
                            None,
                        );
                        send(out, e.into_bytes()).await;
                    }
                }
                return;
            }
            // Judged in its own task: a call held for approval must not
            // stop the rest of the session.
            let (state, out, to_server) = (state.clone(), out.clone(), to_server.clone());
            let (governor, principal, route) = (governor.clone(), principal.clone(), route.clone());
            let line = line.to_vec();
            tokio::spawn(async move {
                let lister = WrapTools {
                    state: state.clone(),
                    to_server: to_server.clone(),
                    meta: protocol_meta(msg.params.as_deref()),
                };
                let j = governor
                    .request(
                        &principal,
                        &route,
                        &id,
                        &method,
                        msg.params.as_deref(),
                        &lister,
                    )
                    .await;
                match j {
                    Judgement::Reply(r) => send(&out, r.into_bytes()).await,
                    Judgement::Forward { params, ticket } => {
                        let bytes = match params {
                            None => Some(line),
                            Some(p) => replace_field(&String::from_utf8_lossy(&line), "params", &p)
                                .map(String::into_bytes),
                        };
                        let pending = Pending {
                            client_id: id.clone(),
                            method,
                            ticket,
                        };
                        match bytes.and_then(|b| state.issue(&b, pending)) {
                            Some(m) => send(&to_server, m).await,
                            None => {
                                let e = error_response(
                                    Some(&id),
                                    INTERNAL_ERROR,
                                    "could not rewrite the request",
                                    None,
                                );
                                send(&out, e.into_bytes()).await;
                            }
                        }
                    }
                }
            });
        }
        Kind::Notification => {
            let method = msg.method.as_deref().unwrap_or_default();
            if !message::is_notification_method(method) {
                // No id, so no error can be returned: refused, audited,
                // logged; the server never sees it.
                let v =
                    governor.refuse_notification(principal, route, method, msg.params.as_deref());
                eprintln!(
                    "agentmesh: refused `{method}` sent without an id (audit index {:?}): {}",
                    v.audit_index, v.decision.message
                );
                return;
            }
            if method == "notifications/initialized" {
                *state.initialized.lock().unwrap_or_else(|p| p.into_inner()) = Some(line.to_vec());
            }
            if method == "notifications/cancelled" {
                // The server knows the request by the wrapper's id.
                if let Some(m) = state.map_cancel(line) {
                    send(to_server, m).await;
                }
                return;
            }
            send(to_server, line.to_vec()).await;
        }
        Kind::Response => {
            // The client answering a server request (sampling, roots, …).
            send(to_server, line.to_vec()).await;
        }
    }
}

/// Queues a message for the other side; it is lost only when that side's
/// writer has ended (the client or server is gone), which the main loop
/// notices on its own.
async fn send(tx: &mpsc::Sender<Vec<u8>>, m: Vec<u8>) {
    if tx.send(m).await.is_err() {
        eprintln!("agentmesh: a message was not delivered (the other side has closed)");
    }
}

async fn server_message(
    line: Vec<u8>,
    state: &Arc<State>,
    out: &mpsc::Sender<Vec<u8>>,
    governor: &Governor,
    principal: &Principal,
    route: &Route,
) {
    let msg = match message::parse(&line) {
        Ok(m) => m,
        Err(e) => {
            // Not protocol: log it, never pass it to the client.
            eprintln!(
                "[{}] dropped non-JSON-RPC output ({}): {}",
                route.upstream,
                e.message,
                String::from_utf8_lossy(&line[..line.len().min(200)])
            );
            return;
        }
    };
    if msg.kind != Kind::Response {
        send(out, line).await;
        return;
    }
    let id = msg
        .id
        .as_deref()
        .map(RawValue::get)
        .unwrap_or("null")
        .to_owned();
    if id.starts_with(OWN_ID_PREFIX) {
        let waiter = state
            .own
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(w) = waiter {
            // The lister may have timed out meanwhile.
            let _ = w.send(line);
        }
        return;
    }
    let pending = state
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    let Some(pending) = pending else {
        stray_answer(state, out, governor, route, &id, msg.id.as_deref()).await;
        return;
    };
    let Some(line) = RawValue::from_string(pending.client_id.clone())
        .ok()
        .and_then(|raw| replace_field(&String::from_utf8_lossy(&line), "id", &raw))
        .map(String::into_bytes)
    else {
        let e = error_response(
            Some(&pending.client_id),
            UPSTREAM_UNAVAILABLE,
            "the server's answer could not be read",
            None,
        );
        send(out, e.into_bytes()).await;
        return;
    };
    if let Some(t) = &pending.ticket {
        governor.record(t, &line);
    }
    if !msg.is_error
        && matches!(pending.method.as_str(), "tools/list" | "prompts/list")
        && let Some(obj) = message::raw_object(&String::from_utf8_lossy(&line))
        && let Some(result) = obj.get("result")
        && let Some(filtered) = governor
            .filter_result(principal, route, &pending.method, result)
            .await
        && let Some(m) = replace_field(&String::from_utf8_lossy(&line), "result", &filtered)
    {
        send(out, m.into_bytes()).await;
        return;
    }
    send(out, line).await;
}

/// An answer under an id the wrapper did not give out. A look-alike of a
/// waiting id (`"7"` for `7`) ends that request with an error instead (a
/// lenient client would take it for the answer, unfiltered); anything
/// else is dropped.
async fn stray_answer(
    state: &State,
    out: &mpsc::Sender<Vec<u8>>,
    governor: &Governor,
    route: &Route,
    id: &str,
    raw: Option<&RawValue>,
) {
    let key = raw.and_then(message::id_key);
    let matched = key.and_then(|k| {
        let mut pending = state.pending.lock().unwrap_or_else(|p| p.into_inner());
        let ours = pending
            .keys()
            .find(|o| {
                RawValue::from_string((*o).clone())
                    .ok()
                    .and_then(|r| message::id_key(&r))
                    .as_deref()
                    == Some(k.as_str())
            })?
            .clone();
        pending.remove(&ours).map(|p| (ours, p))
    });
    match matched {
        Some((ours, p)) => {
            eprintln!(
                "[{}] answered request {ours} under the id {id}; refused (ids must match exactly)",
                route.upstream
            );
            if let Some(t) = &p.ticket {
                let e = error_response(Some(&p.client_id), UPSTREAM_UNAVAILABLE, "", None);
                // Recorded as a failed call (the outcome for trust).
                governor.record(t, e.as_bytes());
            }
            let e = error_response(
                Some(&p.client_id),
                UPSTREAM_UNAVAILABLE,
                &format!(
                    "the server answered under the id {id} instead of {ours}; refused (ids must match exactly)"
                ),
                None,
            );
            send(out, e.into_bytes()).await;
        }
        None => eprintln!(
            "[{}] dropped an answer to a request the wrapper never sent (id {id})",
            route.upstream
        ),
    }
}
