//! How a failed authentication is answered, on every protocol: one table
//! (HTTP status, JSON-RPC code, stable reason code, `WWW-Authenticate`), so
//! the same failure never gets two answers from two gateways.
//!
//! | failure | HTTP | JSON-RPC | reason |
//! |---|---|---|---|
//! | no credential | 401 | −31000 | `credential_missing` |
//! | bad / expired / revoked credential, bad token or proof, unknown agent | 401 | −31000 | the failure's code |
//! | a valid credential of an agent that may not act now (suspended, revoked, expired registration; attestation of an inactive or under-trusted agent) | 403 | −31000 | `agent_inactive`, … |

use crate::jsonrpc::UNAUTHENTICATED;
use agentmesh_engine::AuthError;

/// The answer to one failed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRefusal {
    /// 401 (who you are is not proven) or 403 (proven, but may not act).
    pub status: u16,
    /// Always [`UNAUTHENTICATED`].
    pub code: i64,
    /// Stable, for clients, audit and metrics (`AuthError::code`).
    pub reason: &'static str,
    /// The `WWW-Authenticate` challenge (RFC 6750).
    pub www_authenticate: String,
}

/// The one mapping of authentication failures.
pub fn auth_refusal(e: &AuthError) -> AuthRefusal {
    let forbidden = match e {
        AuthError::Inactive(_) => true,
        AuthError::Attestation(h) => h.status() == 403,
        _ => false,
    };
    let www_authenticate = match e {
        AuthError::Missing => "Bearer realm=\"agentmesh\"".to_owned(),
        other => format!(
            "Bearer realm=\"agentmesh\", error=\"invalid_token\", error_description=\"{}\"",
            other.code()
        ),
    };
    AuthRefusal {
        status: if forbidden { 403 } else { 401 },
        code: UNAUTHENTICATED,
        reason: e.code(),
        www_authenticate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentmesh_iatp::HandshakeError;

    #[test]
    fn the_table() {
        let missing = auth_refusal(&AuthError::Missing);
        assert_eq!(missing.status, 401);
        assert_eq!(missing.reason, "credential_missing");
        assert_eq!(missing.www_authenticate, "Bearer realm=\"agentmesh\"");
        let unknown = auth_refusal(&AuthError::UnknownAgent("x".into()));
        assert_eq!(unknown.status, 401);
        assert!(unknown.www_authenticate.contains("error=\"invalid_token\""));
        assert!(unknown.www_authenticate.contains("unknown_agent"));
        let inactive = auth_refusal(&AuthError::Inactive("suspended".into()));
        assert_eq!(inactive.status, 403);
        // An attestation of an agent that may not act is forbidden on every
        // protocol (the MCP gateway used to answer 401, A2A 403).
        let att = auth_refusal(&AuthError::Attestation(HandshakeError::Inactive(
            "suspended".into(),
        )));
        assert_eq!(att.status, 403);
        let bad = auth_refusal(&AuthError::Attestation(HandshakeError::Malformed(
            "x".into(),
        )));
        assert_eq!(bad.status, 401);
        for r in [missing, unknown, inactive, att, bad] {
            assert_eq!(r.code, UNAUTHENTICATED);
        }
    }
}
