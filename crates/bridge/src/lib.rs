//! The bridge between A2A and MCP, inside the A2A gateway, governed on
//! both sides with the same caller:
//!
//! * **A2A agent → MCP tool.** `POST /mcp` is an MCP server (2025-11-25
//!   session era, JSON answers) offering `ask_<agent>` for every fronted
//!   A2A agent. A call is judged as an MCP `tools/call`
//!   (`call:<agent>:ask`), then as an A2A `SendMessage`
//!   (`message:<agent>`); the message goes to the agent and its answer
//!   (message, or the task's artifacts) becomes the tool result.
//! * **MCP tools → A2A agent.** An agent configured with `mcp: <url>` is
//!   made of an MCP server's tools: its card lists one skill per tool, and
//!   a `SendMessage` whose data part is `{"tool": …, "arguments": {…}}`
//!   (or whose `metadata.skillId` names the tool) is judged as the A2A
//!   message (`message:<agent>:<tool>`), then as the MCP call
//!   (`call:<agent>:<tool>`), and becomes `tools/call`.
//!
//! Each leg is its own decision leaf; the second names the first's audit
//! index in `detail.note.bridge`, so the audit links the two.
//!
//! The bridge uses both protocols, so it lives above both crates: the A2A
//! gateway knows it only as a backend for `mcp:` agents and a route,
//! added by [`install`] while the gateway is built.

#![forbid(unsafe_code)]

use agentmesh_a2a::backend::{AgentBackend, BoxFuture, Judged, SendError};
use agentmesh_a2a::gateway::{
    Binding, Builder, Failure, Gateway, StartError, denial, invalid, unauthorized,
};
use agentmesh_a2a::protocol::{self, Op, Version};
use agentmesh_capability::Capability;
use agentmesh_engine::{Call, Principal, Verdict};
use agentmesh_mcp::upstream::{HttpClient, HttpUpstream, LEGACY, hdr};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Installs the bridge on an A2A gateway being built: every agent
/// configured with `mcp: <url>` is answered by an [`McpBackend`] (with the
/// gateway's HTTP client and upstream timeout), and `POST /mcp` offers the
/// other agents as MCP tools.
pub fn install(mut gateway: Builder) -> Result<Builder, StartError> {
    let http = gateway.http_client().clone();
    let timeout = gateway.upstream_timeout();
    let servers: Vec<(String, String)> = gateway
        .config()
        .agents
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.mcp.clone()?)))
        .collect();
    for (name, url) in servers {
        let backend = McpBackend::new(&name, &url, http.clone(), timeout).map_err(|message| {
            StartError::Agent {
                agent: name.clone(),
                message,
            }
        })?;
        gateway = gateway.backend(&name, Arc::new(backend));
    }
    Ok(gateway.routes(axum::Router::new().route("/mcp", axum::routing::post(mcp_endpoint))))
}

/// An MCP server offered as an A2A agent.
pub struct McpBackend {
    upstream: HttpUpstream,
    tools: RwLock<Vec<Value>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for McpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpBackend")
            .field("uri", &self.upstream.uri)
            .finish()
    }
}

impl McpBackend {
    pub fn new(name: &str, url: &str, http: HttpClient, timeout: Duration) -> Result<Self, String> {
        let uri = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
        Ok(Self {
            upstream: HttpUpstream::new(name, uri, http, timeout),
            tools: RwLock::new(Vec::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// One request in the bridge's own session with the server; a
    /// forgotten session is reopened once.
    async fn rpc(&self, method: &str, params: Value) -> Result<Value, Value> {
        for attempt in 0..2 {
            let session = self
                .upstream
                .shared_session(attempt > 0)
                .await
                .map_err(|e| json!({"code": -31003, "message": e.to_string()}))?;
            let id = format!(
                "\"agentmesh-bridge-{}\"",
                self.next_id.fetch_add(1, Ordering::Relaxed)
            );
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":{},"params":{params}}}"#,
                Value::from(method)
            );
            let mut h = HeaderMap::new();
            if let Some(s) = &session {
                h.insert("mcp-session-id", hdr(s));
            }
            h.insert("mcp-protocol-version", hdr(LEGACY));
            let (status, _, answer) = self
                .upstream
                .call(h, body, &id)
                .await
                .map_err(|e| json!({"code": -31003, "message": e.to_string()}))?;
            if status == StatusCode::NOT_FOUND && attempt == 0 {
                continue;
            }
            let v: Value = answer
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| json!({"code": -31003, "message": format!("the MCP server answered {status} without a response")}))?;
            if let Some(e) = v.get("error") {
                return Err(e.clone());
            }
            return Ok(v.get("result").cloned().unwrap_or(Value::Null));
        }
        Err(json!({"code": -31003, "message": "the MCP server keeps forgetting the session"}))
    }

    /// Lists the tools and builds the agent's card (not yet signed).
    pub async fn card(&self, name: &str, base: &str) -> Result<Value, String> {
        let listed = self
            .rpc("tools/list", json!({}))
            .await
            .map_err(|e| format!("tools/list at the MCP server failed: {e}"))?;
        let tools: Vec<Value> = listed["tools"].as_array().cloned().unwrap_or_default();
        let skills: Vec<Value> = tools
            .iter()
            .filter_map(|t| {
                let id = t["name"].as_str()?;
                Some(json!({
                    "id": id,
                    "name": t.get("title").and_then(Value::as_str).unwrap_or(id),
                    "description": t.get("description").and_then(Value::as_str).unwrap_or(id),
                    "tags": ["mcp-tool"],
                    "inputModes": ["application/json"],
                    "outputModes": ["application/json", "text/plain"],
                }))
            })
            .collect();
        *self.tools.write().unwrap_or_else(|p| p.into_inner()) = tools;
        let url = format!("{base}/");
        agentmesh_a2a::card::rewrite(
            &json!({
                "name": name,
                "description": format!("The tools of MCP server `{name}`, offered as an A2A agent by AgentMesh. Send a data part {{\"tool\": <skill id>, \"arguments\": {{…}}}}."),
                "version": "1.0.0",
                "supportedInterfaces": [
                    {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                    {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
                ],
                "capabilities": {"streaming": false},
                "defaultInputModes": ["application/json"],
                "defaultOutputModes": ["application/json", "text/plain"],
                "skills": skills,
                "url": url,
                "preferredTransport": "JSONRPC",
                "protocolVersion": "0.3.0",
            }),
            &url,
            None,
        )
        .map_err(|e| e.to_string())
    }

    fn has_tool(&self, name: &str) -> bool {
        self.tools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|t| t["name"] == name)
    }
}

impl AgentBackend for McpBackend {
    fn card<'a>(&'a self, name: &'a str, base: &'a str) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(McpBackend::card(self, name, base))
    }

    fn answer<'a>(&'a self, gw: &'a Gateway, call: Judged<'a>) -> BoxFuture<'a, Response> {
        Box::pin(answer_from_mcp(gw, self, call))
    }

    fn describe(&self) -> String {
        "made from the MCP server's tools".into()
    }
}

/// A message id. Ids need to be unique, not secret: without randomness a
/// process-wide counter with the time keeps them apart.
fn random_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    agentmesh_iatp::wire::random_b64(12).unwrap_or_else(|_| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("am-{now}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
    })
}

/// Which leg came first, for the second leg's audit entry.
fn link(leg: &str, from: &str, first: &Verdict) -> Value {
    json!({"bridge": {"leg": leg, "from": from, "first_leg_audit_index": first.audit_index}})
}

async fn judge(gw: &Gateway, p: &Principal, call: &Call) -> Verdict {
    let engine = gw.engine();
    let v = engine.decide(p, call);
    if v.held().is_some() {
        return engine.await_approval(p, call, v).await;
    }
    v
}

/// A2A → MCP: answers a `SendMessage` to an MCP-backed agent with one
/// `tools/call`.
async fn answer_from_mcp(gw: &Gateway, m: &McpBackend, call: Judged<'_>) -> Response {
    let Judged {
        principal: p,
        agent,
        op,
        binding: b,
        version,
        params,
        verdict: a2a,
        id,
    } = call;
    let engine = gw.engine();
    let fail = |f: Failure| {
        engine.record_result(p, &a2a, false, json!({"bridge": "mcp", "refused": true}));
        f.render(b, id)
    };
    if b != Binding::JsonRpc || op != Op::Send {
        return fail(Failure::new(
            400,
            protocol::UNSUPPORTED_OPERATION,
            "UNSUPPORTED_OPERATION",
            "an MCP-backed agent answers SendMessage over JSON-RPC only",
        ));
    }
    let Some(message) = protocol::message_of(params) else {
        return fail(invalid("SendMessage needs params.message"));
    };
    let data = protocol::parts_of(message)
        .as_array()
        .and_then(|ps| ps.iter().find_map(|p| p.get("data").cloned()));
    let (skill, args_seen) = match protocol::message_arguments("", message) {
        Ok(x) => x,
        Err(e) => return fail(invalid(e)),
    };
    let Some(tool) = skill else {
        return fail(invalid(
            "name the tool: a data part {\"tool\": <skill id>, \"arguments\": {…}} or metadata.skillId",
        ));
    };
    if !m.has_tool(&tool) {
        return fail(invalid(format!("the agent has no skill (tool) `{tool}`")));
    }
    let mut arguments = match &data {
        Some(d) if d.get("arguments").is_some_and(Value::is_object) => d["arguments"].clone(),
        Some(Value::Object(o)) => {
            let mut o = o.clone();
            o.remove("tool");
            Value::Object(o)
        }
        _ => json!({"text": args_seen["text"]}),
    };
    let Some(name) = gw.agent(agent).map(|a| a.name) else {
        return fail(invalid(format!("no agent number {agent}")));
    };
    let Ok(capability) = Capability::parse(&format!("call:{name}:{tool}")) else {
        return fail(invalid(format!(
            "tool name `{tool}` cannot be a capability"
        )));
    };
    // The MCP gateway's normaliser, applied the same way: what is judged
    // is what the MCP server gets.
    let normalised = agentmesh_engine::arguments::PathRules::default().apply(&mut arguments);
    let mut call = Call {
        protocol: "mcp",
        method: "tools/call".into(),
        kind: "tool_call",
        target: format!("{name}__{tool}"),
        tool: tool.to_owned(),
        capability,
        arguments: Some(arguments.clone()),
        data: Default::default(),
        upstream: Some(name.clone()),
        trace_id: None,
        note: Some(link("mcp", "a2a", &a2a)),
    };
    let mcp = match normalised {
        Ok(changed) => {
            if !changed.is_empty()
                && let Some(Value::Object(n)) = &mut call.note
            {
                n.insert("normalized".into(), json!(changed));
            }
            judge(gw, p, &call).await
        }
        Err(e) => gw.engine().deny(
            p,
            &call,
            agentmesh_policy::Reason::EvaluationError,
            e.to_string(),
        ),
    };
    if !mcp.allowed() {
        return fail(denial(&mcp));
    }
    // Only the minimum necessary, when the policy restricts arguments.
    let forwarded = mcp.restricted_arguments.clone().unwrap_or(arguments);
    let result = m
        .rpc("tools/call", json!({"name": tool, "arguments": forwarded}))
        .await;
    let (ok, parts, is_error) = match &result {
        Ok(r) => {
            let is_error = r["isError"].as_bool().unwrap_or(false);
            let mut parts: Vec<Value> = r["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["text"].as_str())
                .map(|t| text_part(version, t))
                .collect();
            if let Some(s) = r.get("structuredContent") {
                parts.push(data_part(version, s));
            }
            (!is_error, parts, is_error)
        }
        Err(e) => (
            false,
            vec![text_part(version, &format!("tool error: {e}"))],
            true,
        ),
    };
    engine.record_result(
        p,
        &mcp,
        ok,
        json!({"bridge": "a2a->mcp", "is_error": is_error}),
    );
    engine.record_result(
        p,
        &a2a,
        ok,
        json!({"bridge": "a2a->mcp", "is_error": is_error}),
    );
    let meta = json!({"agentmesh": {"tool": tool, "isError": is_error,
        "audit": [a2a.audit_index, mcp.audit_index]}});
    let context = message
        .get("contextId")
        .cloned()
        .unwrap_or_else(|| Value::from(random_id()));
    let reply = match version {
        Version::V1_0 => json!({"message": {"messageId": random_id(), "contextId": context,
            "role": "ROLE_AGENT", "parts": parts, "metadata": meta}}),
        Version::V0_3 => json!({"kind": "message", "messageId": random_id(), "contextId": context,
            "role": "agent", "parts": parts, "metadata": meta}),
    };
    json_rpc(json!({"jsonrpc": "2.0", "id": id, "result": reply}))
}

fn text_part(v: Version, t: &str) -> Value {
    match v {
        Version::V1_0 => json!({"text": t}),
        Version::V0_3 => json!({"kind": "text", "text": t}),
    }
}

fn data_part(v: Version, d: &Value) -> Value {
    match v {
        Version::V1_0 => json!({"data": d}),
        Version::V0_3 => json!({"kind": "data", "data": d}),
    }
}

fn json_rpc(v: Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn mcp_error(id: &Value, code: i64, message: &str, data: Option<Value>) -> Response {
    let mut e = json!({"code": code, "message": message});
    if let Some(d) = data {
        e["data"] = d;
    }
    json_rpc(json!({"jsonrpc": "2.0", "id": id, "error": e}))
}

/// The A2A agents the bridge offers as `ask_<agent>` tools.
fn ask_tools(gw: &Gateway) -> Vec<(usize, String)> {
    gw.agents()
        .iter()
        .filter(|a| !a.backend)
        .map(|a| (a.index, format!("ask_{}", a.name)))
        .collect()
}

fn ask_call(gw: &Gateway, agent: usize, tool: &str, args: Option<Value>) -> Option<Call> {
    let name = gw.agent(agent)?.name;
    Some(Call {
        protocol: "mcp",
        method: "tools/call".into(),
        kind: "tool_call",
        target: tool.to_owned(),
        // `ask_<agent>` is the gateway's own tool: no server names it
        // otherwise (`action.server` is the agent).
        tool: tool.to_owned(),
        capability: Capability::parse(&format!("call:{name}:ask")).ok()?,
        arguments: args,
        data: Default::default(),
        upstream: Some(name),
        trace_id: None,
        note: None,
    })
}

/// `POST /mcp`: the bridge's MCP server (A2A agents as `ask_<agent>`).
async fn mcp_endpoint(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    let limit = 4 << 20;
    let Ok(bytes) = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
    else {
        return Response::builder()
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .body(Body::empty())
            .unwrap_or_else(|_| Response::new(Body::empty()));
    };
    let Ok(msg) = serde_json::from_slice::<Value>(&bytes) else {
        return mcp_error(&Value::Null, -32700, "not JSON", None);
    };
    let p = match gw.authenticate(&headers, &bytes, None) {
        Ok((p, _)) => p,
        Err(e) => return unauthorized(&e).render(Binding::JsonRpc, &msg["id"]),
    };
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // A response or garbage: nothing the bridge asked for.
        return mcp_error(&Value::Null, -32600, "not a JSON-RPC request", None);
    };
    let Some(id) = msg
        .get("id")
        .cloned()
        .filter(|i| i.is_string() || i.is_number())
    else {
        // A notification (`notifications/initialized`, cancellations).
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap_or_else(|_| Response::new(Body::empty()));
    };
    let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
    match method {
        "initialize" => {
            let asked = params["protocolVersion"].as_str().unwrap_or(LEGACY);
            let version = if ["2025-11-25", "2025-06-18", "2025-03-26"].contains(&asked) {
                asked
            } else {
                LEGACY
            };
            json_rpc(json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": "agentmesh-a2a-bridge", "version": env!("CARGO_PKG_VERSION")},
                "instructions": "Each ask_<agent> tool sends a message to that A2A agent through AgentMesh and returns its answer."
            }}))
        }
        "ping" => json_rpc(json!({"jsonrpc": "2.0", "id": id, "result": {}})),
        "tools/list" => {
            let tools: Vec<Value> = ask_tools(&gw)
                .into_iter()
                .filter(|(i, t)| ask_call(&gw, *i, t, None).is_some_and(|c| gw.engine().visible(&p, &c)))
                .filter_map(|(i, t)| Some((gw.agent(i)?, t)))
                .map(|(a, t)| {
                    let card: Value = serde_json::from_str(&a.card).unwrap_or(Value::Null);
                    let skills: Vec<String> = card["skills"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s["id"].as_str().map(str::to_owned))
                        .collect();
                    json!({
                        "name": t,
                        "description": format!("Ask the A2A agent `{}` ({}). Skills: {}.",
                            a.name, card["description"].as_str().unwrap_or(""), skills.join(", ")),
                        "inputSchema": {"type": "object", "properties": {
                            "text": {"type": "string", "description": "The message to the agent."},
                            "data": {"type": "object", "description": "Structured data to send along."},
                            "skill": {"type": "string", "description": "The skill to ask for.", "enum": skills},
                        }, "required": ["text"]},
                    })
                })
                .collect();
            json_rpc(json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}}))
        }
        "tools/call" => ask(&gw, &p, &id, &params, bytes.len()).await,
        _ => mcp_error(
            &id,
            -32601,
            &format!("method `{method}` is not offered by the bridge"),
            None,
        ),
    }
}

/// MCP → A2A: one `ask_<agent>` call.
async fn ask(gw: &Gateway, p: &Principal, id: &Value, params: &Value, size: usize) -> Response {
    let tool = params["name"].as_str().unwrap_or("");
    let Some((agent, _)) = ask_tools(gw).into_iter().find(|(_, t)| t == tool) else {
        return mcp_error(id, -32602, &format!("unknown tool `{tool}`"), None);
    };
    let args = params
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let Some(text) = args["text"].as_str() else {
        return mcp_error(id, -32602, "`text` (a string) is required", None);
    };
    let Some(call) = ask_call(gw, agent, tool, Some(args.clone())) else {
        return mcp_error(id, -32602, "agent name cannot be a capability", None);
    };
    let engine = gw.engine();
    let mcp = judge(gw, p, &call).await;
    if !mcp.allowed() {
        let body = agentmesh_mcp::govern::denial(&id.to_string(), &mcp);
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap_or_else(|_| Response::new(Body::empty()));
    }
    let mut parts = vec![json!({"text": text})];
    if let Some(d) = args.get("data").filter(|d| d.is_object()) {
        parts.push(json!({"data": d}));
    }
    let mut message = json!({"messageId": random_id(), "role": "ROLE_USER", "parts": parts});
    if let Some(s) = args["skill"].as_str() {
        message["metadata"] = json!({"skillId": s});
    }
    let send = json!({"message": message});
    let (target, a2a, capability) = match gw
        .govern(
            p,
            agent,
            Op::Send,
            &send,
            None,
            size,
            Some(link("a2a", "mcp", &mcp)),
        )
        .await
    {
        Ok(x) => x,
        Err(f) => {
            engine.record_result(
                p,
                &mcp,
                false,
                json!({"bridge": "mcp->a2a", "refused": true}),
            );
            return mcp_error(id, f.rpc_code(), &f.message_text(), None);
        }
    };
    let body =
        json!({"jsonrpc": "2.0", "id": random_id(), "method": "SendMessage", "params": send});
    // The gateway remembers the answer's tasks as the caller's.
    let answer = match gw.send_message(p, target, &capability, &body).await {
        Ok(answer) => answer,
        Err(e @ SendError::NoJsonRpc) => return mcp_error(id, -31003, &e.to_string(), None),
        Err(e @ SendError::Unreachable(_)) => {
            engine.record_result(
                p,
                &a2a,
                false,
                json!({"bridge": "mcp->a2a", "upstream_error": true}),
            );
            engine.record_result(
                p,
                &mcp,
                false,
                json!({"bridge": "mcp->a2a", "upstream_error": true}),
            );
            return mcp_error(id, -31003, &e.to_string(), None);
        }
    };
    let (texts, data, state, error) = read_answer(&answer);
    let mut ids = Vec::new();
    if let Some(r) = answer.get("result") {
        protocol::task_ids(r, &mut ids);
    }
    let failed = error.is_some()
        || matches!(
            state.as_deref(),
            Some("TASK_STATE_FAILED" | "TASK_STATE_REJECTED" | "TASK_STATE_CANCELED")
        );
    engine.record_result(
        p,
        &a2a,
        !failed,
        json!({"bridge": "mcp->a2a", "state": state}),
    );
    engine.record_result(
        p,
        &mcp,
        !failed,
        json!({"bridge": "mcp->a2a", "state": state}),
    );
    let mut content: Vec<Value> = texts
        .iter()
        .map(|t| json!({"type": "text", "text": t}))
        .collect();
    if let Some(e) = &error {
        content.push(
            json!({"type": "text", "text": format!("the agent answered with an error: {e}")}),
        );
    }
    let mut result = json!({"content": content, "isError": failed,
        "structuredContent": {"agent": gw.agent(target).map(|a| a.name.to_string()), "task_id": ids.first(),
            "state": state, "data": data, "audit": [mcp.audit_index, a2a.audit_index]}});
    if content_is_empty(&result) {
        result["content"] = json!([{"type": "text", "text": ""}]);
    }
    json_rpc(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn content_is_empty(r: &Value) -> bool {
    r["content"].as_array().is_none_or(Vec::is_empty)
}

/// Texts, data parts, task state and error of an A2A 1.0 answer.
fn read_answer(v: &Value) -> (Vec<String>, Vec<Value>, Option<String>, Option<String>) {
    let mut texts = Vec::new();
    let mut data = Vec::new();
    let mut take = |parts: Option<&Value>| {
        for p in parts.and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = p["text"].as_str() {
                texts.push(t.to_owned());
            }
            if let Some(d) = p.get("data") {
                data.push(d.clone());
            }
        }
    };
    let r = v.get("result").cloned().unwrap_or(Value::Null);
    take(r.pointer("/message/parts"));
    take(r.pointer("/task/status/message/parts"));
    for a in r
        .pointer("/task/artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        take(a.get("parts"));
    }
    let state = r
        .pointer("/task/status/state")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let error = v
        .get("error")
        .map(|e| e["message"].as_str().unwrap_or("error").to_owned());
    (texts, data, state, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_answer_is_read_from_its_message_task_and_artifacts() {
        let message =
            json!({"result": {"message": {"parts": [{"text": "hi"}, {"data": {"n": 1}}]}}});
        assert_eq!(
            read_answer(&message),
            (vec!["hi".to_owned()], vec![json!({"n": 1})], None, None)
        );
        let task = json!({"result": {"task": {
            "status": {"state": "TASK_STATE_COMPLETED", "message": {"parts": [{"text": "done"}]}},
            "artifacts": [{"parts": [{"text": "a"}]}, {"parts": [{"data": [2]}]}],
        }}});
        assert_eq!(
            read_answer(&task),
            (
                vec!["done".to_owned(), "a".to_owned()],
                vec![json!([2])],
                Some("TASK_STATE_COMPLETED".to_owned()),
                None
            )
        );
        let error = json!({"error": {"code": -32001, "message": "task not found"}});
        assert_eq!(
            read_answer(&error),
            (vec![], vec![], None, Some("task not found".to_owned()))
        );
        assert_eq!(
            read_answer(&json!({"error": {}})).3.as_deref(),
            Some("error")
        );
    }
}
