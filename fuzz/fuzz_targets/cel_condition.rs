//! One CEL condition: compiled (parse, resolve, type-check), then, if it
//! compiles, evaluated against an empty request and one with values.
#![no_main]

use agentmesh_policy::{Request, compile_condition, eval_condition};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match compile_condition(src) {
        Ok(c) => {
            let full: Request = serde_json::from_value(serde_json::json!({
                "agent": {"name": "a", "trust_score": 0.5, "capabilities": ["read:*"]},
                "action": {"type": "read", "tool": "t"},
                "request": {"arguments": {"a": [1, "x", {"b": null}], "n": -1}},
            }))
            .expect("fixed request");
            let _ = eval_condition(&c, &Request::default());
            let _ = eval_condition(&c, &full);
        }
        Err(e) => assert!(!e.message.is_empty(), "a refusal says why"),
    }
});
