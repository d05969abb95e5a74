//! JSON-RPC messages as MCP carries them, handled losslessly: a message is
//! classified from its envelope, and everything the gateway does not need to
//! change (ids of either type, `_meta`, unknown fields, future methods) is
//! forwarded as the original bytes. Only what governance must rewrite is
//! re-encoded, and then only the fields touched.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Largest message accepted on any transport (the body limit of the HTTP
/// gateway, the line limit of stdio).
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

// JSON-RPC and AgentMesh error codes: the gateway core's one table.
pub use agentmesh_gateway::jsonrpc::{
    APPROVAL_REFUSED, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    PARSE_ERROR, POLICY_DENIED, RATE_LIMITED, UNAUTHENTICATED, UPSTREAM_UNAVAILABLE,
};
/// 2026-07-28: an HTTP header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the requested protocol version is not supported.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// What kind of message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// A classified message. The original bytes stay with the caller.
#[derive(Debug)]
pub struct Message {
    pub kind: Kind,
    /// The id exactly as sent (`1`, `"abc"`, `0`).
    pub id: Option<Box<RawValue>>,
    pub method: Option<String>,
    pub params: Option<Box<RawValue>>,
    /// For responses: `true` when it is an error response.
    pub is_error: bool,
}

/// Why bytes are not a JSON-RPC message, as the error to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Malformed {
    pub code: i64,
    pub message: String,
    /// The id, when one could be read (so the error can be correlated).
    pub id: Option<String>,
    /// A key repeated in an object: well-formed JSON whose meaning depends
    /// on the parser (a smuggling attempt more than a mistake; the gateway
    /// and the wrapper audit it).
    pub duplicate_key: bool,
}

fn malformed(code: i64, message: impl Into<String>, id: Option<&RawValue>) -> Malformed {
    Malformed {
        code,
        message: message.into(),
        id: id.map(|i| i.get().to_owned()),
        duplicate_key: false,
    }
}

/// A field that is present, even when its value is `null` (`Option`
/// alone would read `"id": null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Box<RawValue>>,
}

/// An id must be a string or an integer (never null, never fractional).
fn valid_id(raw: &RawValue) -> bool {
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::String(_)) => true,
        Ok(Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// Classifies one message.
pub fn parse(bytes: &[u8]) -> Result<Message, Malformed> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(malformed(
            INVALID_REQUEST,
            format!(
                "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                bytes.len()
            ),
            None,
        ));
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(malformed(
            INVALID_REQUEST,
            "JSON-RPC batches are not part of MCP (removed in 2025-06-18)",
            None,
        ));
    }
    let env: Envelope<'_> = serde_json::from_slice(bytes).map_err(|e| {
        // A repeated envelope field (`id`, `method`, `params`, …): the
        // same smuggling as a repeat deeper down.
        if e.is_data() && e.to_string().starts_with("duplicate field") {
            return Malformed {
                duplicate_key: true,
                ..malformed(
                    INVALID_REQUEST,
                    format!("not a JSON-RPC message: {e} (a key may appear once per object: parsers disagree on which copy counts)"),
                    None,
                )
            };
        }
        if e.is_data() {
            malformed(
                INVALID_REQUEST,
                format!("not a JSON-RPC message: {e}"),
                None,
            )
        } else {
            malformed(PARSE_ERROR, format!("not valid JSON: {e}"), None)
        }
    })?;
    let id = env.id;
    // Serde keeps the last of repeated keys; other parsers keep the first.
    // A message whose meaning depends on the parser is refused, so what is
    // judged is what every upstream reads.
    if let Err(e) = no_duplicate_keys(bytes) {
        let code = if e.in_params {
            INVALID_PARAMS
        } else {
            INVALID_REQUEST
        };
        return Err(Malformed {
            duplicate_key: true,
            ..malformed(code, e.message, id.as_deref())
        });
    }
    if env.jsonrpc.map(|v| v.get()) != Some("\"2.0\"") {
        return Err(malformed(
            INVALID_REQUEST,
            "`jsonrpc` must be \"2.0\"",
            id.as_deref(),
        ));
    }
    if let Some(i) = &id
        && !valid_id(i)
    {
        return Err(malformed(
            INVALID_REQUEST,
            "`id` must be a string or an integer (not null)",
            None,
        ));
    }
    let method = match env.method {
        None => None,
        Some(Value::String(m)) if !m.is_empty() => Some(m),
        Some(_) => {
            return Err(malformed(
                INVALID_REQUEST,
                "`method` must be a non-empty string",
                id.as_deref(),
            ));
        }
    };
    if let Some(p) = &env.params {
        let t = p.get().trim_start();
        if !(t.starts_with('{') || t.starts_with('[')) {
            return Err(malformed(
                INVALID_REQUEST,
                "`params` must be an object or an array",
                id.as_deref(),
            ));
        }
    }
    match (&method, &id, env.result.is_some(), env.error.is_some()) {
        (Some(_), _, false, false) => Ok(Message {
            kind: if id.is_some() {
                Kind::Request
            } else {
                Kind::Notification
            },
            id,
            method,
            params: env.params,
            is_error: false,
        }),
        (None, Some(_), true, false) | (None, Some(_), false, true) => Ok(Message {
            kind: Kind::Response,
            is_error: env.error.is_some(),
            id,
            method: None,
            params: None,
        }),
        _ => Err(malformed(
            INVALID_REQUEST,
            "a message needs `method` (request/notification) or exactly one of `result` and `error` with an `id` (response)",
            id.as_deref(),
        )),
    }
}

/// A key repeated in one JSON object.
#[derive(Debug)]
pub struct DuplicateKey {
    pub message: String,
    /// Whether it is inside `params`.
    pub in_params: bool,
}

/// Checks that no object in `bytes` (which must be valid JSON) repeats a
/// key, at any depth. Keys are compared after unescaping (`"a"` and
/// `"\u0061"` are the same key), as every parser reads them.
pub fn no_duplicate_keys(bytes: &[u8]) -> Result<(), DuplicateKey> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let top = Walk { up: None, key: "" };
    serde::de::DeserializeSeed::deserialize(top, &mut de).map_err(|e| {
        let text = e.to_string();
        DuplicateKey {
            in_params: text.starts_with("duplicate key `params."),
            message: text,
        }
    })
}

/// Where the walk is: a chain of keys up to the root (`[]` for array
/// elements), so the error names the repeated key's full path.
#[derive(Clone, Copy)]
struct Walk<'a> {
    up: Option<&'a Walk<'a>>,
    key: &'a str,
}

impl Walk<'_> {
    fn path(&self, last: &str) -> String {
        let mut parts = vec![last];
        let mut w = Some(self);
        while let Some(x) = w {
            if !x.key.is_empty() {
                parts.push(x.key);
            }
            w = x.up;
        }
        parts.reverse();
        parts.join(".").replace(".[]", "[]")
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Walk {
                up: Some(&self),
                key: "[]",
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if seen.contains(&k) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{}` (a key may appear once per object: parsers disagree on which copy counts)",
                    self.path(&k)
                )));
            }
            map.next_value_seed(Walk {
                up: Some(&self),
                key: &k,
            })?;
            seen.insert(k);
        }
        Ok(())
    }
}

/// Whether a message without an `id` may pass as a notification. MCP
/// names every notification `notifications/…`; any other method sent
/// without an id is a request nobody can answer, and a server that runs it
/// anyway would run a call that was never judged. Such messages are
/// refused, whatever the method (future request methods included).
pub fn is_notification_method(method: &str) -> bool {
    method.starts_with("notifications/")
}

/// An id as a loose key: `7` and `"7"` give the same key. Never used to
/// deliver an answer (ids match exactly, type included); only to notice
/// an upstream answering a request with a look-alike of its id.
pub fn id_key(raw: &RawValue) -> Option<String> {
    match serde_json::from_str::<Value>(raw.get()).ok()? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A `notifications/cancelled` (`text`) rewritten to name the request by
/// the id it was sent upstream under: `upstream_id` maps the client's
/// `requestId` (raw JSON) to that id. `None` when it names no request in
/// flight (nothing to cancel).
pub fn remap_cancelled(
    text: &str,
    upstream_id: impl FnOnce(&str) -> Option<String>,
) -> Option<String> {
    let obj = raw_object(text)?;
    let mut params = raw_object(obj.get("params")?.get())?;
    let ours = upstream_id(params.get("requestId")?.get())?;
    params.insert("requestId".into(), RawValue::from_string(ours).ok()?);
    let raw = RawValue::from_string(encode_raw(&params)).ok()?;
    replace_field(text, "params", &raw)
}

/// An error response to `id` (raw JSON; `null` when unknown).
pub fn error_response(id: Option<&str>, code: i64, message: &str, data: Option<Value>) -> String {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), Value::from(code));
    error.insert("message".into(), Value::from(message));
    if let Some(d) = data {
        error.insert("data".into(), d);
    }
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{}}}",
        id.unwrap_or("null"),
        Value::Object(error)
    )
}

/// A success response to `id` with `result`.
pub fn result_response(id: &str, result: &Value) -> String {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}")
}

/// A message's top-level fields with their values kept as raw bytes.
pub type RawObject = BTreeMap<String, Box<RawValue>>;

/// Parses an object keeping every value's bytes.
pub fn raw_object(text: &str) -> Option<RawObject> {
    serde_json::from_str(text).ok()
}

/// Encodes a raw object back to JSON.
pub fn encode_raw(obj: &RawObject) -> String {
    serde_json::to_string(obj).unwrap_or_else(|_| "{}".into())
}

/// Replaces one top-level field of the JSON object `text` (e.g. `params`),
/// keeping every other field's bytes.
pub fn replace_field(text: &str, field: &str, value: &RawValue) -> Option<String> {
    let mut obj = raw_object(text)?;
    obj.insert(field.to_owned(), value.to_owned());
    Some(encode_raw(&obj))
}

/// Boxes a `Value` as raw JSON.
pub fn to_raw(v: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_classified_and_ids_kept_exactly() {
        let m = parse(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#)
            .expect("request");
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.id.as_deref().map(RawValue::get), Some("0"));
        let m = parse(br#"{"jsonrpc":"2.0","id":"0","method":"ping"}"#).expect("string id");
        assert_eq!(m.id.as_deref().map(RawValue::get), Some("\"0\""));
        let m = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .expect("notification");
        assert_eq!(m.kind, Kind::Notification);
        let m = parse(br#"{"jsonrpc":"2.0","id":7,"result":{"x":1}}"#).expect("response");
        assert_eq!((m.kind, m.is_error), (Kind::Response, false));
        let m = parse(br#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"m"}}"#)
            .expect("error response");
        assert!(m.is_error);
    }

    #[test]
    fn malformed_input_gets_the_right_code() {
        for (input, code) in [
            (&b"{"[..], PARSE_ERROR),
            (b"not json", PARSE_ERROR),
            (b"[]", INVALID_REQUEST),
            (
                br#"[{"jsonrpc":"2.0","id":1,"method":"a"}]"#,
                INVALID_REQUEST,
            ),
            (b"42", INVALID_REQUEST),
            (br#"{"id":1,"method":"a"}"#, INVALID_REQUEST),
            (br#"{"jsonrpc":"1.0","id":1,"method":"a"}"#, INVALID_REQUEST),
            (
                br#"{"jsonrpc":"2.0","id":null,"method":"a"}"#,
                INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1.5,"method":"a"}"#,
                INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"a"}"#,
                INVALID_REQUEST,
            ),
            (br#"{"jsonrpc":"2.0","id":1,"method":5}"#, INVALID_REQUEST),
            (br#"{"jsonrpc":"2.0","id":1,"method":""}"#, INVALID_REQUEST),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"a","params":3}"#,
                INVALID_REQUEST,
            ),
            (br#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST),
            (
                br#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
                INVALID_REQUEST,
            ),
            (br#"{"jsonrpc":"2.0","result":1}"#, INVALID_REQUEST),
        ] {
            let e = parse(input).expect_err(&String::from_utf8_lossy(input));
            assert_eq!(e.code, code, "{}", String::from_utf8_lossy(input));
        }
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(parse(&big).expect_err("big").code, INVALID_REQUEST);
        // The id is kept for correlation when the rest is wrong.
        let e = parse(br#"{"jsonrpc":"2.0","id":"x","method":7}"#).expect_err("bad");
        assert_eq!(e.id.as_deref(), Some("\"x\""));
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        for (input, code, path) in [
            (
                &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_file"}}"#[..],
                INVALID_PARAMS,
                "params.name",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"p":"/ok","p":"/etc/passwd"}}}"#,
                INVALID_PARAMS,
                "params.arguments.p",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{},"arguments":{"x":1}}}"#,
                INVALID_PARAMS,
                "params.arguments",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"t","params":{"l":[{"k":1},{"k":2,"\u006b":3}]}}"#,
                INVALID_PARAMS,
                "params.l[].k",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
                INVALID_REQUEST,
                "method",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
                INVALID_REQUEST,
                "id",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"params":{},"params":{"name":"x"},"method":"tools/call"}"#,
                INVALID_REQUEST,
                "params",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","description":"x","description":"y"}]}}"#,
                INVALID_REQUEST,
                "result.tools[].description",
            ),
        ] {
            let text = String::from_utf8_lossy(input);
            let e = parse(input).expect_err(&text);
            assert_eq!(e.code, code, "{text}: {e:?}");
            assert!(e.message.contains(path), "{text}: {}", e.message);
            assert!(e.duplicate_key, "{text}");
        }
        // The same key in different objects is fine.
        parse(br#"{"jsonrpc":"2.0","id":1,"method":"t","params":{"a":{"a":1},"b":[{"a":2},{"a":3}]}}"#)
            .expect("no repeats");
    }

    #[test]
    fn only_notifications_may_come_without_an_id() {
        assert!(is_notification_method("notifications/cancelled"));
        assert!(is_notification_method("notifications/roots/list_changed"));
        for m in [
            "tools/call",
            "resources/read",
            "ping",
            "future/request",
            "notifications",
        ] {
            assert!(!is_notification_method(m), "{m}");
        }
    }

    #[test]
    fn look_alike_ids_share_a_key_but_never_match_exactly() {
        let raw = |t: &str| RawValue::from_string(t.to_owned()).expect("raw");
        assert_eq!(id_key(&raw("7")), id_key(&raw("\"7\"")));
        assert_ne!(raw("7").get(), raw("\"7\"").get());
        assert_eq!(id_key(&raw("\"a\"")).as_deref(), Some("a"));
        assert_eq!(id_key(&raw("null")), None);
    }

    #[test]
    fn a_cancellation_is_mapped_to_the_upstream_id() {
        let text = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c-1","reason":"user"}}"#;
        let out =
            remap_cancelled(text, |c| (c == "\"c-1\"").then(|| "42".to_owned())).expect("mapped");
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["params"]["requestId"], 42);
        assert_eq!(v["params"]["reason"], "user");
        assert_eq!(remap_cancelled(text, |_| None), None);
    }

    #[test]
    fn replacing_a_field_keeps_the_other_bytes() {
        let text = r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/call","params":{"name":"a"},"x-extra":{"keep":1.000}}"#;
        let p = to_raw(&serde_json::json!({"name": "b"}));
        let out = replace_field(text, "params", &p).expect("object");
        assert!(
            out.contains(r#""id":123456789012345678901234567890"#),
            "{out}"
        );
        assert!(out.contains(r#""x-extra":{"keep":1.000}"#), "{out}");
        assert!(out.contains(r#""params":{"name":"b"}"#), "{out}");
    }

    #[test]
    fn error_responses_are_valid_json_rpc() {
        let e = error_response(
            Some("\"a\""),
            POLICY_DENIED,
            "no",
            Some(serde_json::json!({"k": 1})),
        );
        let m = parse(e.as_bytes()).expect("valid");
        assert!(m.is_error);
        let v: Value = serde_json::from_str(&e).expect("json");
        assert_eq!(v["error"]["code"], POLICY_DENIED);
        assert_eq!(v["id"], "a");
    }
}
