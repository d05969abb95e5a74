//! What the gateway needs to understand of A2A 1.0 and 0.3: versions,
//! operations in both method spellings and in the REST binding, message
//! parts in both shapes, task ids in results and stream events, and the
//! error shapes of each binding.

use serde_json::{Value, json};

/// Protocol versions the gateway fronts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V0_3,
    V1_0,
}

impl Version {
    /// From the `A2A-Version` header or query parameter: absent or empty
    /// means 0.3; `None` for a version the gateway does not speak.
    pub fn from_param(v: Option<&str>) -> Option<Version> {
        match v.map(str::trim) {
            None | Some("") => Some(Version::V0_3),
            Some("1.0") | Some("1") => Some(Version::V1_0),
            Some("0.3") | Some("0.3.0") => Some(Version::V0_3),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3 => "0.3",
            Version::V1_0 => "1.0",
        }
    }
}

/// A2A operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Send,
    Stream,
    GetTask,
    CancelTask,
    Subscribe,
    ListTasks,
    PushSet,
    PushGet,
    PushList,
    PushDelete,
    ExtendedCard,
}

impl Op {
    /// From a JSON-RPC method name, either spelling.
    pub fn from_method(m: &str) -> Option<Op> {
        Some(match m {
            "SendMessage" | "message/send" => Op::Send,
            "SendStreamingMessage" | "message/stream" => Op::Stream,
            "GetTask" | "tasks/get" => Op::GetTask,
            "CancelTask" | "tasks/cancel" => Op::CancelTask,
            "SubscribeToTask" | "tasks/resubscribe" => Op::Subscribe,
            "ListTasks" | "tasks/list" => Op::ListTasks,
            "CreateTaskPushNotificationConfig" | "tasks/pushNotificationConfig/set" => Op::PushSet,
            "GetTaskPushNotificationConfig" | "tasks/pushNotificationConfig/get" => Op::PushGet,
            "ListTaskPushNotificationConfigs"
            | "ListTaskPushNotificationConfig"
            | "tasks/pushNotificationConfig/list" => Op::PushList,
            "DeleteTaskPushNotificationConfig" | "tasks/pushNotificationConfig/delete" => {
                Op::PushDelete
            }
            "GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard" => Op::ExtendedCard,
            _ => return None,
        })
    }

    /// The 1.0 name: what policy sees as `request.method`, whatever the
    /// client's version.
    pub fn name(self) -> &'static str {
        match self {
            Op::Send => "SendMessage",
            Op::Stream => "SendStreamingMessage",
            Op::GetTask => "GetTask",
            Op::CancelTask => "CancelTask",
            Op::Subscribe => "SubscribeToTask",
            Op::ListTasks => "ListTasks",
            Op::PushSet => "CreateTaskPushNotificationConfig",
            Op::PushGet => "GetTaskPushNotificationConfig",
            Op::PushList => "ListTaskPushNotificationConfigs",
            Op::PushDelete => "DeleteTaskPushNotificationConfig",
            Op::ExtendedCard => "GetExtendedAgentCard",
        }
    }

    /// `action.type` for policy.
    pub fn kind(self) -> &'static str {
        match self {
            Op::Send | Op::Stream => "agent_message",
            Op::GetTask | Op::Subscribe | Op::ListTasks | Op::PushGet | Op::PushList => "task_read",
            Op::CancelTask => "task_cancel",
            Op::PushSet | Op::PushDelete => "push_config",
            Op::ExtendedCard => "card_read",
        }
    }

    /// Streams its answer.
    pub fn streams(self) -> bool {
        matches!(self, Op::Stream | Op::Subscribe)
    }

    /// Names an existing task (routed by affinity, owner-checked).
    pub fn on_task(self) -> bool {
        matches!(
            self,
            Op::GetTask
                | Op::CancelTask
                | Op::Subscribe
                | Op::PushSet
                | Op::PushGet
                | Op::PushList
                | Op::PushDelete
        )
    }

    /// The task id a JSON-RPC request names.
    pub fn task_id(self, params: &Value) -> Option<String> {
        let s = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
        match self {
            Op::GetTask | Op::CancelTask | Op::Subscribe => s("id")
                .or_else(|| s("name").and_then(|n| n.strip_prefix("tasks/").map(str::to_owned))),
            Op::PushSet | Op::PushGet | Op::PushList | Op::PushDelete => {
                s("taskId").or_else(|| s("id")).or_else(|| {
                    params
                        .pointer("/taskPushNotificationConfig/taskId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
            }
            _ => None,
        }
    }
}

/// A REST request: the operation and the task id in its path. `path` is
/// relative to the agent's REST base (`/message:send`, `/tasks/t1:cancel`,
/// with an optional `/v1` prefix as 0.3 used).
pub fn rest_op(method: &hyper::Method, path: &str) -> Option<(Op, Option<String>)> {
    use hyper::Method as M;
    let path = path.strip_prefix("/v1").unwrap_or(path);
    match (method, path) {
        (&M::POST, "/message:send") => return Some((Op::Send, None)),
        (&M::POST, "/message:stream") => return Some((Op::Stream, None)),
        (&M::GET, "/tasks") => return Some((Op::ListTasks, None)),
        (&M::GET, "/extendedAgentCard") | (&M::GET, "/card") => {
            return Some((Op::ExtendedCard, None));
        }
        _ => {}
    }
    let rest = path.strip_prefix("/tasks/")?;
    if let Some((task, tail)) = rest.split_once('/') {
        // Push configs: /tasks/{id}/pushNotificationConfigs[/{configId}]
        let tail = tail.trim_end_matches('/');
        let has_config = tail.contains('/');
        let base = tail.split('/').next().unwrap_or("");
        if base != "pushNotificationConfigs" {
            return None;
        }
        let op = match (method, has_config) {
            (&M::POST, false) => Op::PushSet,
            (&M::GET, false) => Op::PushList,
            (&M::GET, true) => Op::PushGet,
            (&M::DELETE, true) => Op::PushDelete,
            _ => return None,
        };
        return valid_id(task).map(|t| (op, Some(t)));
    }
    if let Some(task) = rest.strip_suffix(":cancel") {
        return (method == M::POST)
            .then_some(())
            .and(valid_id(task))
            .map(|t| (Op::CancelTask, Some(t)));
    }
    if let Some(task) = rest.strip_suffix(":subscribe") {
        return matches!(*method, M::POST | M::GET)
            .then_some(())
            .and(valid_id(task))
            .map(|t| (Op::Subscribe, Some(t)));
    }
    (method == M::GET)
        .then_some(())
        .and(valid_id(rest))
        .map(|t| (Op::GetTask, Some(t)))
}

fn valid_id(t: &str) -> Option<String> {
    (!t.is_empty() && t.len() <= 256 && !t.contains(['/', ':'])).then(|| t.to_owned())
}

/// A message part in one shape for policy: `{kind, text?, data?, url?,
/// media_type?, filename?, bytes?}`; 1.0 (`text` / `data` / `url` / `raw`
/// members) and 0.3 (`kind` discriminator, `file.{uri,bytes}`) alike.
pub fn normalize_part(p: &Value) -> Value {
    let media = p
        .get("mediaType")
        .or_else(|| p.pointer("/file/mimeType"))
        .cloned()
        .unwrap_or(Value::Null);
    let filename = p
        .get("filename")
        .or_else(|| p.pointer("/file/name"))
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(t) = p.get("text").and_then(Value::as_str) {
        return json!({"kind": "text", "text": t});
    }
    if let Some(d) = p.get("data") {
        return json!({"kind": "data", "data": d, "media_type": media});
    }
    let url = p.get("url").or_else(|| p.pointer("/file/uri"));
    if let Some(u) = url {
        return json!({"kind": "file", "url": u, "media_type": media, "filename": filename});
    }
    let raw = p.get("raw").or_else(|| p.pointer("/file/bytes"));
    if let Some(r) = raw.and_then(Value::as_str) {
        // Base64: 4 characters carry 3 bytes.
        return json!({"kind": "file", "bytes": r.len() / 4 * 3, "media_type": media, "filename": filename});
    }
    json!({"kind": "unknown"})
}

/// The message of a send: `message` (1.0 and 0.3 JSON-RPC, 1.0 REST) or
/// `request` (0.3 REST, whose bodies are the 0.3 proto in JSON).
pub fn message_of(params: &Value) -> Option<&Value> {
    params
        .get("message")
        .or_else(|| params.get("request"))
        .filter(|m| m.is_object())
}

/// The parts of a message, in either layout.
pub fn parts_of(message: &Value) -> Value {
    message
        .get("parts")
        .or_else(|| message.get("content"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The tool a message to an MCP-backed agent names: `{"tool": …}` in
/// its first data part.
pub fn tool_of(message: &Value) -> Option<String> {
    parts_of(message)
        .as_array()?
        .iter()
        .find_map(|p| p.get("data"))
        .and_then(|d| d.get("tool"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Most bytes of a file part decoded for `text` (larger files are judged
/// on their other attributes).
pub const MAX_TEXT_FILE_BYTES: usize = 1 << 20;

/// What policy sees of a message: the skill (from metadata, when the
/// client names one, or the data part's `tool`), the parts, all their
/// readable text, the ids.
///
/// Refused (what is judged must be what the agent acts on): a message that
/// names its skill in more than one way with different values
/// (`metadata.skillId`, `skill_id`, `skill`, a data part's `tool`), and a
/// part that is more than one kind at once (`text` and `data`, …), which
/// another reader could take for the other kind.
///
/// `text` joins every part's readable text: text parts, the string values
/// inside data parts, file bytes that are UTF-8 (up to
/// [`MAX_TEXT_FILE_BYTES`]) and file URLs (the URL itself: the gateway does
/// not fetch them).
pub fn message_arguments(agent: &str, message: &Value) -> Result<(Option<String>, Value), String> {
    let mut named: Vec<(&str, &str)> = Vec::new();
    for k in ["skillId", "skill_id", "skill"] {
        if let Some(v) = message.pointer(&format!("/metadata/{k}")) {
            let v = v
                .as_str()
                .ok_or_else(|| format!("metadata.{k} must be a string"))?;
            named.push((k, v));
        }
    }
    let all_parts = parts_of(message);
    let tools: Vec<&str> = all_parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("data")?.get("tool")?.as_str())
        .collect();
    for t in &tools {
        named.push(("data part `tool`", t));
    }
    if let Some((k, v)) = named.first()
        && let Some((k2, v2)) = named.iter().find(|(_, x)| x != v)
    {
        return Err(format!(
            "the message names two skills: {k} `{v}` and {k2} `{v2}`"
        ));
    }
    let skill = named.first().map(|(_, v)| (*v).to_owned());
    // 0.3 REST bodies carry the parts as `content`.
    let raw_parts: Vec<&Value> = message
        .get("parts")
        .or_else(|| message.get("content"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(256)
        .collect();
    for (i, p) in raw_parts.iter().enumerate() {
        let kinds = ["text", "data", "url", "raw", "file"]
            .iter()
            .filter(|k| p.get(**k).is_some())
            .count();
        if kinds > 1 {
            return Err(format!(
                "part {i} is more than one kind (text, data, url, raw, file): send one kind per part"
            ));
        }
    }
    let parts: Vec<Value> = raw_parts.iter().map(|p| normalize_part(p)).collect();
    let mut text: Vec<String> = Vec::new();
    for p in &raw_parts {
        readable_text(p, &mut text);
    }
    let args = json!({
        "agent": agent,
        "skill": skill,
        "text": text.join("\n"),
        "parts": parts,
        "context_id": message.get("contextId").or_else(|| message.get("context_id")),
        "task_id": message.get("taskId").or_else(|| message.get("task_id")),
        "extensions": message.get("extensions"),
    });
    Ok((skill, args))
}

/// The readable text of one part (either version's layout).
fn readable_text(p: &Value, out: &mut Vec<String>) {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(m) => m.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    if let Some(t) = p.get("text").and_then(Value::as_str) {
        out.push(t.to_owned());
    }
    if let Some(d) = p.get("data") {
        strings(d, out);
    }
    if let Some(u) = p
        .get("url")
        .or_else(|| p.pointer("/file/uri"))
        .and_then(Value::as_str)
    {
        out.push(u.to_owned());
    }
    if let Some(b64) = p
        .get("raw")
        .or_else(|| p.pointer("/file/bytes"))
        .and_then(Value::as_str)
        && b64.len() / 4 * 3 <= MAX_TEXT_FILE_BYTES
    {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(b64.trim()));
        if let Ok(bytes) = decoded
            && let Ok(t) = String::from_utf8(bytes)
        {
            out.push(t);
        }
    }
}

/// Context ids an answer mentions (like [`task_ids`]).
pub fn context_ids(result: &Value, out: &mut Vec<String>) {
    let mut push = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str)
            && !out.iter().any(|x| x == s)
        {
            out.push(s.to_owned());
        }
    };
    for p in [
        "/task/contextId",
        "/message/contextId",
        "/statusUpdate/contextId",
        "/artifactUpdate/contextId",
        "/contextId",
    ] {
        push(result.pointer(p));
    }
}

/// Task ids an answer mentions: a task, a message in a task, status and
/// artifact updates (1.0 members or 0.3 `kind`s), or a task list.
pub fn task_ids(result: &Value, out: &mut Vec<String>) {
    let mut push = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str)
            && !out.iter().any(|x| x == s)
        {
            out.push(s.to_owned());
        }
    };
    push(result.pointer("/task/id"));
    push(result.pointer("/message/taskId"));
    push(result.pointer("/statusUpdate/taskId"));
    push(result.pointer("/artifactUpdate/taskId"));
    match result.get("kind").and_then(Value::as_str) {
        Some("task") => push(result.get("id")),
        Some("message" | "status-update" | "artifact-update") => push(result.get("taskId")),
        _ => {}
    }
}

/// A task's state is final (no more events).
pub fn terminal(result: &Value) -> bool {
    let state = result
        .pointer("/task/status/state")
        .or_else(|| result.pointer("/statusUpdate/status/state"))
        .or_else(|| result.pointer("/status/state"))
        .and_then(Value::as_str)
        .unwrap_or("");
    matches!(
        state,
        "TASK_STATE_COMPLETED"
            | "TASK_STATE_FAILED"
            | "TASK_STATE_CANCELED"
            | "TASK_STATE_REJECTED"
            | "completed"
            | "failed"
            | "canceled"
            | "rejected"
    )
}

/// A2A error codes (JSON-RPC).
pub const TASK_NOT_FOUND: i64 = -32001;
pub const UNSUPPORTED_OPERATION: i64 = -32004;
pub const INVALID_AGENT_RESPONSE: i64 = -32006;
pub const EXTENDED_CARD_NOT_CONFIGURED: i64 = -32007;
pub const VERSION_NOT_SUPPORTED: i64 = -32009;

/// A `google.rpc.ErrorInfo` as JSON (the 1.0 error detail shape).
pub fn error_info(reason: &str, domain: &str, metadata: Value) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": domain,
        "metadata": metadata,
    })
}

/// The REST error body: `google.rpc.Status` as JSON.
pub fn rest_error(http: u16, message: &str, details: Vec<Value>) -> Value {
    let status = match http {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        413 => "INVALID_ARGUMENT",
        429 => "RESOURCE_EXHAUSTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    json!({"error": {"code": http, "status": status, "message": message, "details": details}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Method;

    #[test]
    fn both_method_spellings_map_to_one_operation() {
        for (a, b) in [
            ("SendMessage", "message/send"),
            ("SendStreamingMessage", "message/stream"),
            ("GetTask", "tasks/get"),
            ("CancelTask", "tasks/cancel"),
            ("SubscribeToTask", "tasks/resubscribe"),
        ] {
            assert_eq!(Op::from_method(a), Op::from_method(b));
            assert_eq!(Op::from_method(a).map(Op::name), Some(a));
        }
        assert_eq!(Op::from_method("tools/call"), None);
        assert_eq!(Version::from_param(None), Some(Version::V0_3));
        assert_eq!(Version::from_param(Some("1.0")), Some(Version::V1_0));
        assert_eq!(Version::from_param(Some("2.0")), None);
    }

    #[test]
    fn rest_paths_name_the_operation_and_task() {
        let cases = [
            (Method::POST, "/message:send", Some((Op::Send, None))),
            (Method::POST, "/v1/message:stream", Some((Op::Stream, None))),
            (
                Method::GET,
                "/tasks/t1",
                Some((Op::GetTask, Some("t1".into()))),
            ),
            (
                Method::POST,
                "/tasks/t1:cancel",
                Some((Op::CancelTask, Some("t1".into()))),
            ),
            (
                Method::GET,
                "/tasks/t1:subscribe",
                Some((Op::Subscribe, Some("t1".into()))),
            ),
            (
                Method::POST,
                "/tasks/t1:subscribe",
                Some((Op::Subscribe, Some("t1".into()))),
            ),
            (
                Method::GET,
                "/tasks/t1/pushNotificationConfigs/c",
                Some((Op::PushGet, Some("t1".into()))),
            ),
            (
                Method::POST,
                "/tasks/t1/pushNotificationConfigs",
                Some((Op::PushSet, Some("t1".into()))),
            ),
            (Method::DELETE, "/tasks/t1", None),
            (Method::GET, "/tasks/", None),
            (Method::GET, "/tasks/a:b", None),
            (Method::GET, "/etc/passwd", None),
        ];
        for (m, p, want) in cases {
            assert_eq!(rest_op(&m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn parts_of_both_versions_read_alike() {
        let v1 = json!({"parts": [{"text": "hi"}, {"data": {"a": 1}}, {"url": "https://x/y", "mediaType": "text/plain"}], "metadata": {"skillId": "echo"}});
        let v03 = json!({"kind": "message", "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"a": 1}}, {"kind": "file", "file": {"uri": "https://x/y", "mimeType": "text/plain"}}], "metadata": {"skill": "echo"}});
        let (s1, a1) = message_arguments("agent", &v1).expect("v1");
        let (s2, a2) = message_arguments("agent", &v03).expect("v03");
        assert_eq!((s1.as_deref(), s2.as_deref()), (Some("echo"), Some("echo")));
        assert_eq!(a1["parts"], a2["parts"]);
        // Every part's readable text, not only text parts.
        assert_eq!(a1["text"], "hi\nhttps://x/y");
        assert_eq!(a1["text"], a2["text"]);
        let mut ids = Vec::new();
        task_ids(&json!({"task": {"id": "t1"}}), &mut ids);
        task_ids(&json!({"kind": "status-update", "taskId": "t2"}), &mut ids);
        task_ids(&json!({"statusUpdate": {"taskId": "t1"}}), &mut ids);
        assert_eq!(ids, ["t1", "t2"]);
        assert!(terminal(
            &json!({"statusUpdate": {"status": {"state": "TASK_STATE_COMPLETED"}}})
        ));
        assert!(!terminal(
            &json!({"kind": "status-update", "status": {"state": "working"}})
        ));
    }

    #[test]
    fn every_part_kind_is_visible_to_text_rules() {
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD.encode("the launch codes");
        let m = json!({"parts": [
            {"data": {"note": {"deep": "forbidden word"}}},
            {"raw": secret, "mediaType": "text/plain"},
            {"kind": "file", "file": {"bytes": base64::engine::general_purpose::STANDARD.encode("0.3 file")}},
        ]});
        let (_, a) = message_arguments("agent", &m).expect("ok");
        let text = a["text"].as_str().expect("text");
        for want in ["forbidden word", "the launch codes", "0.3 file"] {
            assert!(text.contains(want), "{text}");
        }
    }

    #[test]
    fn conflicting_skills_and_ambiguous_parts_are_refused() {
        for m in [
            json!({"parts": [{"text": "x"}], "metadata": {"skillId": "read", "skill_id": "delete"}}),
            json!({"parts": [{"text": "x"}], "metadata": {"skill": "read", "skillId": "delete"}}),
            json!({"parts": [{"data": {"tool": "delete"}}], "metadata": {"skillId": "read"}}),
            json!({"parts": [{"data": {"tool": "a"}}, {"data": {"tool": "b"}}]}),
            json!({"parts": [{"text": "harmless", "data": {"cmd": "rm -rf /"}}]}),
            json!({"parts": [{"text": "x"}], "metadata": {"skillId": 7}}),
        ] {
            assert!(message_arguments("agent", &m).is_err(), "{m}");
        }
        // The same skill named twice the same way is fine.
        let ok = json!({"parts": [{"data": {"tool": "read"}}], "metadata": {"skillId": "read"}});
        assert_eq!(
            message_arguments("agent", &ok).expect("ok").0.as_deref(),
            Some("read")
        );
    }

    #[test]
    fn context_ids_are_found() {
        let mut ids = Vec::new();
        context_ids(&json!({"task": {"id": "t", "contextId": "c1"}}), &mut ids);
        context_ids(&json!({"kind": "message", "contextId": "c2"}), &mut ids);
        context_ids(&json!({"statusUpdate": {"contextId": "c1"}}), &mut ids);
        assert_eq!(ids, ["c1", "c2"]);
    }
}
