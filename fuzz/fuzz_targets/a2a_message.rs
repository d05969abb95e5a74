//! A2A message parts and JSON-RPC/REST routing as a caller sends them: what
//! policy sees of a message (skill, parts, text), ids and terminal states
//! in results, REST paths.
#![no_main]

use agentmesh_a2a::protocol;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        for m in [
            hyper::Method::GET,
            hyper::Method::POST,
            hyper::Method::DELETE,
        ] {
            let _ = protocol::rest_op(&m, path);
        }
        let _ = protocol::Op::from_method(path);
        let _ = protocol::Version::from_param(Some(path));
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let message = protocol::message_of(&v).unwrap_or(&v);
    if let Some(parts) = protocol::parts_of(message).as_array() {
        for p in parts {
            let n = protocol::normalize_part(p);
            assert!(n.get("kind").is_some(), "a normalised part has a kind");
        }
    }
    let _ = protocol::tool_of(message);
    let _ = protocol::message_arguments("agent", message);
    let mut ids = Vec::new();
    protocol::context_ids(&v, &mut ids);
    protocol::task_ids(&v, &mut ids);
    let _ = protocol::terminal(&v);
    if let Some(op) = v
        .get("method")
        .and_then(Value::as_str)
        .and_then(protocol::Op::from_method)
    {
        let _ = op.task_id(v.get("params").unwrap_or(&Value::Null));
    }
});
