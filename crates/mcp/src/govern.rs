//! Governance on MCP messages: which methods are judged, how a request
//! becomes an engine [`Call`], how lists are filtered per caller, and how a
//! denial becomes a protocol-correct error. Transport-agnostic: the stdio
//! wrapper and the HTTP gateway both call this.

use crate::message::{
    APPROVAL_REFUSED, INVALID_PARAMS, POLICY_DENIED, RATE_LIMITED, RawObject, error_response,
    raw_object, to_raw,
};
use crate::pins::{PinMode, PinState, Pins};
use agentmesh_capability::Capability;
use agentmesh_engine::arguments::PathRules;
use agentmesh_engine::{Call, Engine, Principal, Verdict};
use agentmesh_policy::schema::DataAttrs;
use agentmesh_policy::{Outcome, Reason};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Separator between an upstream's name and its tool or prompt names when
/// several upstreams are federated (`fs__read_file`). Allowed in MCP tool
/// names and in the tool names model APIs accept.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// Per-tool settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSettings {
    /// The capability a call needs (default `call:<upstream>:<tool>`).
    pub capability: Option<String>,
    /// What the tool touches, for policy and compliance (`data.*`).
    pub data: Option<DataAttrs>,
    /// Argument names that hold paths (default: the built-in heuristic).
    pub path_arguments: Option<Vec<String>>,
}

/// Governance settings of one upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    #[serde(default)]
    pub tools: BTreeMap<String, ToolSettings>,
    /// Default `data.*` attributes of everything this upstream serves.
    #[serde(default)]
    pub data: Option<DataAttrs>,
    /// Argument names that hold paths, for every tool.
    #[serde(default)]
    pub path_arguments: Vec<String>,
    /// Relative paths are resolved against this directory.
    #[serde(default)]
    pub path_base: Option<PathBuf>,
    /// Resolve symbolic links (only when the server runs on this machine).
    #[serde(default)]
    pub resolve_symlinks: bool,
    #[serde(default)]
    pub pinning: PinMode,
}

/// Where a governed request goes and under which settings.
#[derive(Debug, Clone)]
pub struct Route {
    pub upstream: Arc<str>,
    /// Whether names are prefixed with `<upstream>__`.
    pub namespaced: bool,
    pub settings: Arc<UpstreamSettings>,
}

impl Route {
    /// The name a client sees for an upstream name.
    pub fn outer(&self, name: &str) -> String {
        if self.namespaced {
            format!("{}{NAMESPACE_SEPARATOR}{name}", self.upstream)
        } else {
            name.to_owned()
        }
    }

    /// The upstream's name for a client-visible name (`None`: not this
    /// upstream's).
    pub fn inner<'a>(&self, name: &'a str) -> Option<&'a str> {
        if !self.namespaced {
            return Some(name);
        }
        name.strip_prefix(self.upstream.as_ref())?
            .strip_prefix(NAMESPACE_SEPARATOR)
    }
}

/// What to do with a request after governance.
#[derive(Debug)]
pub enum Judgement {
    /// Send it on, with these params (`None`: the original bytes).
    Forward {
        params: Option<Box<RawValue>>,
        ticket: Option<Box<Ticket>>,
    },
    /// Answer the client with this message instead.
    Reply(String),
}

/// An allowed call whose outcome is still to be recorded.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub principal: Principal,
    pub verdict: Verdict,
}

/// Characters a capability segment may hold; others become `_`.
fn segment(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

fn traceparent_trace_id(params: &RawObject) -> Option<String> {
    let meta: Value = serde_json::from_str(params.get("_meta")?.get()).ok()?;
    let tp = meta.get("traceparent")?.as_str()?;
    let id = tp.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
}

/// The governance adapter.
#[derive(Debug, Clone)]
pub struct Governor {
    engine: Engine,
    pins: Pins,
}

fn now_secs() -> u64 {
    agentmesh_store::unix_now()
}

impl Governor {
    pub fn new(engine: Engine, pins: Pins) -> Self {
        Self { engine, pins }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    fn tool_call(&self, route: &Route, tool: &str, outer: &str, args: Option<Value>) -> Call {
        let s = route.settings.tools.get(tool);
        let capability = s
            .and_then(|t| t.capability.as_deref())
            .and_then(|c| Capability::parse(c).ok())
            .unwrap_or_else(|| {
                Capability::parse(&format!(
                    "call:{}:{}",
                    segment(&route.upstream),
                    segment(tool)
                ))
                .unwrap_or_else(|_| Capability::any())
            });
        Call {
            protocol: "mcp",
            method: "tools/call".into(),
            kind: "tool_call",
            target: outer.to_owned(),
            tool: tool.to_owned(),
            capability,
            arguments: args,
            data: s
                .and_then(|t| t.data.clone())
                .or_else(|| route.settings.data.clone())
                .unwrap_or_default(),
            upstream: Some(route.upstream.clone()),
            trace_id: None,
            note: None,
        }
    }

    fn other_call(
        &self,
        route: &Route,
        method: &str,
        kind: &'static str,
        target: String,
        cap: String,
    ) -> Call {
        Call {
            protocol: "mcp",
            method: method.into(),
            kind,
            // The upstream's own name (prompts are namespaced on a
            // federated gateway; resource URIs and methods are not).
            tool: route.inner(&target).unwrap_or(&target).to_owned(),
            target,
            capability: Capability::parse(&cap).unwrap_or_else(|_| Capability::any()),
            arguments: None,
            data: route.settings.data.clone().unwrap_or_default(),
            upstream: Some(route.upstream.clone()),
            trace_id: None,
            note: None,
        }
    }

    fn path_rules(&self, route: &Route, tool: &str) -> PathRules {
        let keys = route
            .settings
            .tools
            .get(tool)
            .and_then(|t| t.path_arguments.clone())
            .unwrap_or_else(|| route.settings.path_arguments.clone());
        PathRules {
            keys,
            base: route.settings.path_base.clone(),
            resolve_symlinks: route.settings.resolve_symlinks,
        }
    }

    /// Judges one client request bound for `route`. Methods that are not
    /// calls (lists, ping, initialize, …) are forwarded unchanged; lists
    /// are filtered on the way back by [`Governor::filter_result`].
    pub async fn request(
        &self,
        p: &Principal,
        route: &Route,
        id: &str,
        method: &str,
        params: Option<&RawValue>,
    ) -> Judgement {
        match method {
            "tools/call" => self.tools_call(p, route, id, params).await,
            "prompts/get" => {
                let Some(mut obj) = params.and_then(|r| raw_object(r.get())) else {
                    return bad_params(id, "prompts/get needs params with a `name`");
                };
                let Some(name) = obj
                    .get("name")
                    .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
                else {
                    return bad_params(id, "prompts/get needs a string `name`");
                };
                let Some(inner) = route.inner(&name).map(str::to_owned) else {
                    return bad_params(id, &format!("unknown prompt `{name}`"));
                };
                let mut call = self.other_call(
                    route,
                    method,
                    "prompt_get",
                    name.clone(),
                    format!("prompt:{}:{}", segment(&route.upstream), segment(&inner)),
                );
                call.arguments = obj
                    .get("arguments")
                    .and_then(|v| serde_json::from_str(v.get()).ok());
                call.trace_id = traceparent_trace_id(&obj);
                let verdict = self.judge(p, &call).await;
                if !verdict.allowed() {
                    return Judgement::Reply(denial(id, &verdict));
                }
                let params = (inner != name).then(|| {
                    obj.insert("name".into(), to_raw(&Value::from(inner)));
                    to_raw_obj(&obj)
                });
                Judgement::Forward {
                    params,
                    ticket: Some(Box::new(Ticket {
                        principal: p.clone(),
                        verdict,
                    })),
                }
            }
            "resources/read" | "resources/subscribe" => {
                let obj = params.and_then(|r| raw_object(r.get())).unwrap_or_default();
                let uri = obj
                    .get("uri")
                    .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
                    .unwrap_or_default();
                let mut call = self.other_call(
                    route,
                    method,
                    "resource_read",
                    uri,
                    format!("read:{}:resources", segment(&route.upstream)),
                );
                call.trace_id = traceparent_trace_id(&obj);
                let verdict = self.judge(p, &call).await;
                if !verdict.allowed() {
                    return Judgement::Reply(denial(id, &verdict));
                }
                Judgement::Forward {
                    params: None,
                    ticket: Some(Box::new(Ticket {
                        principal: p.clone(),
                        verdict,
                    })),
                }
            }
            _ => Judgement::Forward {
                params: None,
                ticket: None,
            },
        }
    }

    async fn judge(&self, p: &Principal, call: &Call) -> Verdict {
        let verdict = self.engine.decide(p, call);
        if verdict.held().is_some() {
            return self.engine.await_approval(p, call, verdict).await;
        }
        verdict
    }

    async fn tools_call(
        &self,
        p: &Principal,
        route: &Route,
        id: &str,
        params: Option<&RawValue>,
    ) -> Judgement {
        let Some(mut obj) = params.and_then(|r| raw_object(r.get())) else {
            return bad_params(id, "tools/call needs params with a `name`");
        };
        let Some(name) = obj
            .get("name")
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        else {
            return bad_params(id, "tools/call needs a string `name`");
        };
        let Some(tool) = route.inner(&name).map(str::to_owned) else {
            return bad_params(id, &format!("unknown tool `{name}`"));
        };
        let mut args: Option<Value> = match obj.get("arguments") {
            None => None,
            Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
                Ok(v @ Value::Object(_)) => Some(v),
                Ok(Value::Null) => None,
                _ => return bad_params(id, "`arguments` must be an object"),
            },
        };
        // Paths are judged — and forwarded — in their canonical form.
        let mut normalized = Vec::new();
        if let Some(a) = args.as_mut() {
            match self.path_rules(route, &tool).apply(a) {
                Ok(changed) => normalized = changed,
                Err(e) => {
                    let call = self.tool_call(route, &tool, &name, args.clone());
                    let v = self
                        .engine
                        .deny(p, &call, Reason::EvaluationError, e.to_string());
                    return Judgement::Reply(denial(id, &v));
                }
            }
        }
        let mut call = self.tool_call(route, &tool, &name, args.clone());
        call.trace_id = traceparent_trace_id(&obj);
        let mut note = serde_json::Map::new();
        if !normalized.is_empty() {
            note.insert("normalized".into(), json!(normalized));
        }
        match (
            route.settings.pinning,
            self.pins.state(&route.upstream, &tool),
        ) {
            (PinMode::Off, _) | (_, PinState::Pinned | PinState::Unknown) => {}
            (
                mode,
                PinState::Changed {
                    pinned_sha256,
                    current_sha256,
                },
            ) => {
                note.insert(
                    "tool_changed".into(),
                    json!({"pinned": pinned_sha256, "current": current_sha256}),
                );
                if mode == PinMode::Block {
                    call.note = Some(Value::Object(note));
                    let v = self.engine.deny(
                        p,
                        &call,
                        Reason::ToolChanged,
                        format!(
                            "tool `{name}` changed its definition since it was pinned; an operator must review it (`agentmesh mcp pins diff {}/{tool}`)",
                            route.upstream
                        ),
                    );
                    return Judgement::Reply(denial(id, &v));
                }
            }
        }
        if !note.is_empty() {
            call.note = Some(Value::Object(note));
        }
        let verdict = self.judge(p, &call).await;
        if !verdict.allowed() {
            return Judgement::Reply(denial(id, &verdict));
        }
        // Rewrite only what changed: the name (namespacing), the arguments
        // (normalised paths, minimum necessary).
        let mut rewrite = false;
        if tool != name {
            obj.insert("name".into(), to_raw(&Value::from(tool.clone())));
            rewrite = true;
        }
        if let Some(restricted) = &verdict.restricted_arguments {
            obj.insert("arguments".into(), to_raw(restricted));
            rewrite = true;
        } else if !normalized.is_empty()
            && let Some(a) = &args
        {
            obj.insert("arguments".into(), to_raw(a));
            rewrite = true;
        }
        Judgement::Forward {
            params: rewrite.then(|| to_raw_obj(&obj)),
            ticket: Some(Box::new(Ticket {
                principal: p.clone(),
                verdict,
            })),
        }
    }

    /// Records the upstream's answer to an allowed call as a trust event.
    pub fn record(&self, ticket: &Ticket, response: &[u8]) {
        let v: Value = serde_json::from_slice(response).unwrap_or(Value::Null);
        let (ok, detail) = if let Some(e) = v.get("error") {
            (
                false,
                json!({"error_code": e.get("code"), "bytes": response.len()}),
            )
        } else {
            let is_error = v
                .pointer("/result/isError")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (
                !is_error,
                json!({"is_error": is_error, "bytes": response.len()}),
            )
        };
        self.engine
            .record_result(&ticket.principal, &ticket.verdict, ok, detail);
    }

    /// Filters (and namespaces) a list result for `p`: `tools/list` keeps
    /// the tools the caller may call whose definitions match their pins;
    /// `prompts/list` the prompts it may get. Returns `None` when the result
    /// passes unchanged.
    pub async fn filter_result(
        &self,
        p: &Principal,
        route: &Route,
        method: &str,
        result: &RawValue,
    ) -> Option<Box<RawValue>> {
        let (field, is_tools) = match method {
            "tools/list" => ("tools", true),
            "prompts/list" => ("prompts", false),
            _ => return None,
        };
        let mut obj = raw_object(result.get())?;
        let items: Vec<Value> = serde_json::from_str(obj.get(field)?.get()).ok()?;
        let now = now_secs();
        let mut kept = Vec::with_capacity(items.len());
        let mut filtered = false;
        for mut item in items {
            let Some(name) = item.get("name").and_then(Value::as_str).map(str::to_owned) else {
                filtered = true;
                continue;
            };
            let visible = if is_tools {
                let pin = match route.settings.pinning {
                    PinMode::Off => PinState::Pinned,
                    _ => self.pins.observe(&route.upstream, &item, now).await,
                };
                let pin_ok = !matches!(pin, PinState::Changed { .. })
                    || route.settings.pinning == PinMode::Warn;
                pin_ok
                    && self
                        .engine
                        .visible(p, &self.tool_call(route, &name, &route.outer(&name), None))
            } else {
                let call = self.other_call(
                    route,
                    "prompts/get",
                    "prompt_get",
                    route.outer(&name),
                    format!("prompt:{}:{}", segment(&route.upstream), segment(&name)),
                );
                self.engine.visible(p, &call)
            };
            if !visible {
                filtered = true;
                continue;
            }
            if route.namespaced
                && let Some(m) = item.as_object_mut()
            {
                m.insert("name".into(), Value::from(route.outer(&name)));
            }
            kept.push(item);
        }
        if !filtered && !route.namespaced {
            return None;
        }
        obj.insert(field.into(), to_raw(&Value::Array(kept)));
        if filtered && obj.contains_key("cacheScope") {
            // A list that varies by caller must not be shared by caches.
            obj.insert("cacheScope".into(), to_raw(&Value::from("private")));
        }
        Some(to_raw_obj(&obj))
    }
}

fn to_raw_obj(obj: &RawObject) -> Box<RawValue> {
    RawValue::from_string(crate::message::encode_raw(obj)).unwrap_or_default()
}

fn bad_params(id: &str, message: &str) -> Judgement {
    Judgement::Reply(error_response(Some(id), INVALID_PARAMS, message, None))
}

/// The error a denied call gets: the reason code, the message, the rule,
/// and the audit index that proves the decision.
pub fn denial(id: &str, v: &Verdict) -> String {
    let d = &v.decision;
    let code = match (d.outcome, d.reason) {
        (Outcome::RateLimited, _) => RATE_LIMITED,
        (_, Reason::ApprovalDenied | Reason::ApprovalExpired) => APPROVAL_REFUSED,
        _ => POLICY_DENIED,
    };
    let mut data = json!({
        "reason": d.reason.code(),
        "decision": d.outcome.as_str(),
        "audit_index": v.audit_index,
        "policy_version": d.policy_version.as_ref(),
    });
    if let (Some(p), Some(r)) = (&d.policy, &d.rule) {
        data["rule"] = Value::from(format!("{p}/{r}"));
    }
    if let Some(s) = d.retry_after_secs {
        data["retry_after_secs"] = Value::from(s);
    }
    if let Some(a) = &d.approval {
        data["approval"] = Value::from(a.id.clone());
    }
    error_response(
        Some(id),
        code,
        &format!("denied by AgentMesh: {}", d.message),
        Some(data),
    )
}
