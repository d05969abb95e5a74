//! IATP handshake messages (challenge, response) and trust manifests, as a
//! peer sends them: parsed and checked up to the signature.
#![no_main]

use agentmesh_iatp::manifest;
use agentmesh_iatp::wire::{Challenge, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = manifest::parse(data);
    if let Ok(c) = serde_json::from_slice::<Challenge>(data) {
        let _ = c.check(1_800_000_000);
    }
    if let Ok(r) = serde_json::from_slice::<Response>(data) {
        let _ = r.check_signature();
        let _ = r.transcript();
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = agentmesh_iatp::wire::request_channel(&v);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = agentmesh_iatp::wire::origin_channel(s);
    }
});
