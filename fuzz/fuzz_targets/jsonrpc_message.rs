//! One JSON-RPC message as it arrives on stdio or HTTP: classified, and its
//! raw-object helpers applied. Never a panic.
#![no_main]

use agentmesh_mcp::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match message::parse(data) {
        Ok(m) => {
            // A request or response keeps the id it was sent with.
            if let Some(id) = &m.id {
                assert!(!id.get().is_empty());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(obj) = message::raw_object(text)
    {
        let again = message::encode_raw(&obj);
        assert!(
            message::raw_object(&again).is_some(),
            "an encoded raw object parses again"
        );
    }
});
