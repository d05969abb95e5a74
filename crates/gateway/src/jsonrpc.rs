//! JSON-RPC error codes every AgentMesh gateway answers with: one table for
//! MCP and A2A (both speak JSON-RPC 2.0), so the same refusal has the same
//! code on every protocol. `docs/mcp-gateway.md` and `docs/a2a-gateway.md`
//! document them for clients.

// JSON-RPC 2.0.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

// AgentMesh's own, outside the JSON-RPC and MCP reserved ranges
// (−32768…−32000), as the MCP specification asks of new codes.

/// The request carries no valid credential (HTTP 401/403).
pub const UNAUTHENTICATED: i64 = -31000;
/// The call was denied by governance.
pub const POLICY_DENIED: i64 = -31001;
/// The call is held for human approval and was not approved.
pub const APPROVAL_REFUSED: i64 = -31002;
/// The upstream server is unreachable or failed.
pub const UPSTREAM_UNAVAILABLE: i64 = -31003;
/// The call was rate limited.
pub const RATE_LIMITED: i64 = -31004;

/// Header carrying the holder proof that goes with a delegation token (on
/// every protocol's HTTP requests).
pub const PROOF_HEADER: &str = "agentmesh-proof";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_codes_stay_out_of_the_reserved_ranges_and_are_distinct() {
        let ours = [
            UNAUTHENTICATED,
            POLICY_DENIED,
            APPROVAL_REFUSED,
            UPSTREAM_UNAVAILABLE,
            RATE_LIMITED,
        ];
        for c in ours {
            assert!(!(-32768..=-32000).contains(&c), "{c} is reserved");
        }
        let mut sorted = ours.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ours.len());
    }
}
