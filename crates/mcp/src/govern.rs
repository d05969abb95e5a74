//! Governance on MCP messages: which methods are judged, how a request
//! becomes an engine [`Call`], how lists are filtered per caller, and how a
//! denial becomes a protocol-correct error. Transport-agnostic: the stdio
//! wrapper and the HTTP gateway both call this.

use crate::message::{INVALID_PARAMS, RawObject, error_response, raw_object, to_raw};
use crate::pins::{PinMode, PinState, Pins};
use agentmesh_capability::Capability;
use agentmesh_engine::arguments::PathRules;
use agentmesh_engine::{Call, Engine, Principal, Verdict};
use agentmesh_policy::Reason;
use agentmesh_policy::schema::DataAttrs;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, Deserialize)]
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
    /// Resolve symbolic links before judging paths (the server runs on this
    /// machine: `mcp wrap`, stdio upstreams). Default on, so a rule that
    /// restricts a folder cannot be passed through a link out of it.
    #[serde(default = "resolve_by_default")]
    pub resolve_symlinks: bool,
    #[serde(default)]
    pub pinning: PinMode,
}

fn resolve_by_default() -> bool {
    true
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            tools: BTreeMap::new(),
            data: None,
            path_arguments: Vec::new(),
            path_base: None,
            resolve_symlinks: resolve_by_default(),
            pinning: PinMode::default(),
        }
    }
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

/// Fetches an upstream's current tool list (every page), for a call to a
/// name the gateway has not seen listed yet. Each transport (the HTTP
/// gateway, the stdio wrapper) knows how to ask its upstream.
pub trait ListTools: Send + Sync {
    /// The tool definitions as the upstream lists them.
    fn list_tools(&self) -> futures_util::future::BoxFuture<'_, Result<Vec<Value>, String>>;
}

/// How soon an unknown name may make the gateway fetch an upstream's list
/// again: a client calling made-up names must not make it hammer the
/// upstream.
const REFETCH_AFTER: Duration = Duration::from_secs(1);

/// Held while an upstream's list is fetched; holds when the last fetch
/// ended.
type FetchLock = Arc<tokio::sync::Mutex<Option<Instant>>>;

/// The exact tool names each upstream listed. A call is forwarded only
/// for a name that matches one byte for byte: servers that resolve names
/// loosely (case, whitespace, NUL, zero-width characters, NFKC forms)
/// would otherwise run a tool under a name policy never saw.
#[derive(Debug, Default)]
struct Catalog {
    names: std::sync::Mutex<HashMap<Arc<str>, HashSet<String>>>,
    /// Per upstream: serialises fetches; holds when the last one ended.
    fetches: std::sync::Mutex<HashMap<Arc<str>, FetchLock>>,
}

impl Catalog {
    fn contains(&self, upstream: &Arc<str>, tool: &str) -> bool {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(upstream)
            .is_some_and(|s| s.contains(tool))
    }

    fn add<'a>(
        &self,
        upstream: &Arc<str>,
        names: impl IntoIterator<Item = &'a str>,
        replace: bool,
    ) {
        let mut all = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let set = all.entry(upstream.clone()).or_default();
        if replace {
            set.clear();
        }
        set.extend(names.into_iter().map(str::to_owned));
    }

    fn fetch_lock(&self, upstream: &Arc<str>) -> FetchLock {
        self.fetches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(upstream.clone())
            .or_default()
            .clone()
    }
}

/// The governance adapter.
#[derive(Debug, Clone)]
pub struct Governor {
    engine: Engine,
    pins: Pins,
    catalog: Arc<Catalog>,
}

fn now_secs() -> u64 {
    agentmesh_store::unix_now()
}

impl Governor {
    pub fn new(engine: Engine, pins: Pins) -> Self {
        Self {
            engine,
            pins,
            catalog: Arc::default(),
        }
    }

    /// Whether `tool` is among the names `route`'s upstream listed; when
    /// it is not known, the list is fetched again (at most once per
    /// [`REFETCH_AFTER`] per upstream) before answering.
    async fn listed(&self, route: &Route, tool: &str, lister: &dyn ListTools) -> bool {
        if self.catalog.contains(&route.upstream, tool) {
            return true;
        }
        let lock = self.catalog.fetch_lock(&route.upstream);
        let mut last = lock.lock().await;
        // Another call may have fetched the list while this one waited.
        if self.catalog.contains(&route.upstream, tool) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < REFETCH_AFTER) {
            return false;
        }
        let fetched = lister.list_tools().await;
        *last = Some(Instant::now());
        match fetched {
            Ok(items) => {
                if route.settings.pinning != PinMode::Off {
                    let now = now_secs();
                    for item in &items {
                        self.pins.observe(&route.upstream, item, now).await;
                    }
                }
                let names = items
                    .iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str));
                self.catalog.add(&route.upstream, names, true);
                self.catalog.contains(&route.upstream, tool)
            }
            Err(e) => {
                eprintln!(
                    "agentmesh: could not list the tools of upstream `{}`: {e}",
                    route.upstream
                );
                false
            }
        }
    }

    /// Refuses a request method sent without an `id` (`tools/call` as a
    /// notification): no answer could reach the caller, and a server that
    /// executes it anyway would run a call nobody judged. Audited as a
    /// denial; the caller gets the [`Verdict`] to report where it can.
    pub fn refuse_notification(
        &self,
        p: &Principal,
        route: &Route,
        method: &str,
        params: Option<&RawValue>,
    ) -> Verdict {
        self.refuse(
            p,
            route,
            method,
            params,
            json!({"refused": "request_method_without_id"}),
            format!(
                "`{method}` was sent as a notification (without an `id`); a request needs an id, so it was refused and not forwarded"
            ),
        )
    }

    /// Audits the refusal of a message that repeats a key (`why`: which):
    /// well-formed JSON that parsers read differently, so never forwarded.
    /// The call is described as serde reads it (the last copy of each key).
    pub fn refuse_duplicate_keys(
        &self,
        p: &Principal,
        route: &Route,
        bytes: &[u8],
        why: &str,
    ) -> Verdict {
        let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let method = v.get("method").and_then(Value::as_str).unwrap_or("(none)");
        let params = v.get("params").map(to_raw);
        self.refuse(
            p,
            route,
            method,
            params.as_deref(),
            json!({"refused": "duplicate_key", "detail": why}),
            format!("refused, not forwarded: {why}"),
        )
    }

    fn refuse(
        &self,
        p: &Principal,
        route: &Route,
        method: &str,
        params: Option<&RawValue>,
        note: Value,
        message: String,
    ) -> Verdict {
        let obj = params.and_then(|r| raw_object(r.get())).unwrap_or_default();
        let field = |k: &str| {
            obj.get(k)
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        };
        let mut call = match (method, field("name")) {
            ("tools/call", Some(name)) => {
                let tool = route.inner(&name).unwrap_or(&name).to_owned();
                let args = obj
                    .get("arguments")
                    .and_then(|v| serde_json::from_str(v.get()).ok());
                self.tool_call(route, &tool, &name, args)
            }
            (_, name) => {
                let target = name.or_else(|| field("uri")).unwrap_or_default();
                self.other_call(
                    route,
                    method,
                    "refused",
                    target,
                    format!("call:{}:{}", segment(&route.upstream), segment(method)),
                )
            }
        };
        call.method = method.into();
        call.note = Some(note);
        self.engine.deny(p, &call, Reason::EvaluationError, message)
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
        lister: &dyn ListTools,
    ) -> Judgement {
        match method {
            "tools/call" => self.tools_call(p, route, id, params, lister).await,
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
                let mut obj = params.and_then(|r| raw_object(r.get())).unwrap_or_default();
                let given = obj
                    .get("uri")
                    .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
                    .unwrap_or_default();
                // File URIs and paths are judged — and forwarded — in the
                // canonical form the path normaliser gives them.
                let (uri, normalized) = match agentmesh_engine::arguments::normalize_uri(&given) {
                    None => (given.clone(), false),
                    Some(Ok(n)) => {
                        let changed = n != given;
                        (n, changed)
                    }
                    Some(Err(e)) => {
                        let call = self.other_call(
                            route,
                            method,
                            "resource_read",
                            given.clone(),
                            format!("read:{}:resources", segment(&route.upstream)),
                        );
                        let v = self.engine.deny(
                            p,
                            &call,
                            Reason::EvaluationError,
                            format!("resource URI: {e}"),
                        );
                        return Judgement::Reply(denial(id, &v));
                    }
                };
                let mut call = self.other_call(
                    route,
                    method,
                    "resource_read",
                    uri.clone(),
                    format!("read:{}:resources", segment(&route.upstream)),
                );
                call.trace_id = traceparent_trace_id(&obj);
                if normalized {
                    call.note = Some(
                        json!({"normalized": [{"pointer": "/uri", "from": given, "to": uri}]}),
                    );
                }
                let verdict = self.judge(p, &call).await;
                if !verdict.allowed() {
                    return Judgement::Reply(denial(id, &verdict));
                }
                if normalized {
                    obj.insert("uri".into(), to_raw(&Value::from(uri)));
                }
                Judgement::Forward {
                    params: normalized.then(|| to_raw_obj(&obj)),
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
        lister: &dyn ListTools,
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
        // Only names the upstream listed, byte for byte, reach it.
        if !self.listed(route, &tool, lister).await {
            let mut call = self.tool_call(route, &tool, &name, args.clone());
            call.note = Some(json!({"refused": "tool_not_listed"}));
            let v = self.engine.deny(
                p,
                &call,
                Reason::EvaluationError,
                format!(
                    "tool `{}` is not among the tools `{}` lists (names must match a listed tool exactly)",
                    name.escape_debug(),
                    route.upstream
                ),
            );
            // 2026-07-28 requests carry their version in `_meta`; their
            // results need `resultType`.
            let modern = obj
                .get("_meta")
                .and_then(|m| serde_json::from_str::<Value>(m.get()).ok())
                .is_some_and(|m| m.get("io.modelcontextprotocol/protocolVersion").is_some());
            return Judgement::Reply(unknown_tool(id, &v, modern));
        }
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
        if is_tools {
            let names = items
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str));
            self.catalog.add(&route.upstream, names, false);
        }
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

/// The answer to a call of a tool the upstream never listed: a tool error
/// result (`isError`), the way the reference SDK servers answer an unknown
/// name, so clients and models treat it as the upstream's own "not found"
/// and can correct the name; the denial's data (audit index included) is in
/// `_meta["dev.agentmesh/denial"]`.
pub fn unknown_tool(id: &str, v: &Verdict, modern: bool) -> String {
    let d = &v.decision;
    let mut result = json!({
        "content": [{"type": "text", "text": format!("denied by AgentMesh: {}", d.message)}],
        "isError": true,
        "_meta": {"dev.agentmesh/denial": {
            "reason": d.reason.code(),
            "decision": d.outcome.as_str(),
            "audit_index": v.audit_index,
            "policy_version": d.policy_version.as_ref(),
        }},
    });
    if modern {
        result["resultType"] = json!("complete");
    }
    crate::message::result_response(id, &result)
}

/// The `data` of a protocol error for a refused message: the reason and
/// the audit index that proves the refusal.
pub fn refusal_data(v: &Verdict) -> Value {
    json!({
        "reason": v.decision.reason.code(),
        "decision": v.decision.outcome.as_str(),
        "audit_index": v.audit_index,
    })
}

/// The error a denied call gets: the reason code, the message, the rule,
/// and the audit index that proves the decision.
pub fn denial(id: &str, v: &Verdict) -> String {
    let d = &v.decision;
    let code = agentmesh_gateway::refusal::decision_refusal(d).code;
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

/// Reads one page of a `tools/list` answer (the gateway's and the wrapper's
/// check of which names an upstream lists): appends its tools, returns the
/// next cursor.
pub fn read_tools_page(answer: &[u8], tools: &mut Vec<Value>) -> Result<Option<String>, String> {
    let v: Value = serde_json::from_slice(answer).map_err(|e| e.to_string())?;
    if let Some(e) = v.get("error") {
        return Err(format!("tools/list failed: {e}"));
    }
    let result = v
        .get("result")
        .ok_or("tools/list answered without a result")?;
    if let Some(items) = result.get("tools").and_then(Value::as_array) {
        tools.extend(items.iter().cloned());
    }
    Ok(result
        .get("nextCursor")
        .and_then(Value::as_str)
        .map(str::to_owned))
}
