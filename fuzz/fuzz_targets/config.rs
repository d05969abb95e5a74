//! Operator configuration files: the MCP gateway's YAML, the A2A gateway's
//! YAML and trust.toml. A bad file is an error message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = agentmesh_mcp::config::GatewayConfig::parse(text) {
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = agentmesh_a2a::config::A2aConfig::parse(text) {
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = agentmesh_trust::TrustConfig::from_toml(text) {
        assert!(!e.to_string().is_empty());
    }
});
