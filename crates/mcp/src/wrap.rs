//! The stdio wrapper: what a desktop MCP client's config points at instead
//! of the server itself. One client, one supervised server; every message
//! passes through byte for byte except what governance acts on: calls are
//! judged (and denied with a protocol error, or held for approval), lists
//! are filtered per the caller, and junk the server prints on stdout is
//! dropped instead of corrupting the stream. A server that crashes is
//! restarted (and re-initialised with the client's own `initialize`).

use crate::govern::{Governor, Judgement, Route, Ticket};
use crate::message::{
    self, INTERNAL_ERROR, Kind, MAX_MESSAGE_BYTES, UPSTREAM_UNAVAILABLE, error_response,
    replace_field,
};
use crate::stdio::{Line, Server, ServerCommand, read_line, spawn};
use agentmesh_engine::Principal;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

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

/// A request the server has not answered yet.
#[derive(Debug, Clone)]
struct Pending {
    method: String,
    ticket: Option<Box<Ticket>>,
}

/// Prefix of ids the wrapper uses for its own requests (the replayed
/// `initialize` after a restart); their answers are not the client's.
const OWN_ID_PREFIX: &str = "\"agentmesh-wrap-";

struct State {
    pending: Mutex<HashMap<String, Pending>>,
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
                        let _ = out_tx.send(e.into_bytes()).await;
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
        .map(|(id, _)| id)
        .collect();
    for id in ids {
        let e = error_response(Some(&id), UPSTREAM_UNAVAILABLE, why, None);
        let _ = out.send(e.into_bytes()).await;
    }
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
            let reply = error_response(e.id.as_deref(), e.code, &e.message, None);
            let _ = out.send(reply.into_bytes()).await;
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
                state
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        id,
                        Pending {
                            method,
                            ticket: None,
                        },
                    );
                let _ = to_server.send(line.to_vec()).await;
                return;
            }
            // Judged in its own task: a call held for approval must not
            // stop the rest of the session.
            let (state, out, to_server) = (state.clone(), out.clone(), to_server.clone());
            let (governor, principal, route) = (governor.clone(), principal.clone(), route.clone());
            let line = line.to_vec();
            tokio::spawn(async move {
                let j = governor
                    .request(&principal, &route, &id, &method, msg.params.as_deref())
                    .await;
                match j {
                    Judgement::Reply(r) => {
                        let _ = out.send(r.into_bytes()).await;
                    }
                    Judgement::Forward { params, ticket } => {
                        let bytes = match params {
                            None => line,
                            Some(p) => {
                                match replace_field(&String::from_utf8_lossy(&line), "params", &p) {
                                    Some(m) => m.into_bytes(),
                                    None => {
                                        let e = error_response(
                                            Some(&id),
                                            INTERNAL_ERROR,
                                            "could not rewrite the request",
                                            None,
                                        );
                                        let _ = out.send(e.into_bytes()).await;
                                        return;
                                    }
                                }
                            }
                        };
                        state
                            .pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id, Pending { method, ticket });
                        let _ = to_server.send(bytes).await;
                    }
                }
            });
        }
        Kind::Notification => {
            if msg.method.as_deref() == Some("notifications/initialized") {
                *state.initialized.lock().unwrap_or_else(|p| p.into_inner()) = Some(line.to_vec());
            }
            let _ = to_server.send(line.to_vec()).await;
        }
        Kind::Response => {
            // The client answering a server request (sampling, roots, …).
            let _ = to_server.send(line.to_vec()).await;
        }
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
        let _ = out.send(line).await;
        return;
    }
    let id = msg
        .id
        .as_deref()
        .map(RawValue::get)
        .unwrap_or("null")
        .to_owned();
    if id.starts_with(OWN_ID_PREFIX) {
        return;
    }
    let pending = state
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    let Some(pending) = pending else {
        let _ = out.send(line).await;
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
        let _ = out.send(m.into_bytes()).await;
        return;
    }
    let _ = out.send(line).await;
}
