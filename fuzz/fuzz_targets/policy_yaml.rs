//! A policy file: YAML → validated policy set (every condition compiled),
//! then a decision with it. Must return a value or diagnostics, never panic.
#![no_main]

use agentmesh_policy::{DecideContext, PolicySet, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PolicySet::from_yaml(text, "fuzz.yaml") {
        Ok(set) => {
            let d = set.decide(&Request::default(), &DecideContext::bare(1_800_000_000));
            assert!(!d.message.is_empty() || d.rule.is_none());
        }
        Err(e) => assert!(!e.diagnostics.is_empty(), "a refusal says why"),
    }
});
