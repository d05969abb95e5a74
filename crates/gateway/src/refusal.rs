//! How a refusal is answered, on every protocol: one table (HTTP status,
//! JSON-RPC code, stable reason code, and for authentication the
//! `WWW-Authenticate` challenge), so the same failure never gets two
//! answers from two gateways. MCP answers JSON-RPC errors inside HTTP 200
//! (the status applies to its HTTP-level refusals: authentication);
//! A2A's HTTP+JSON binding uses the status, its JSON-RPC binding the code;
//! A2A writes the reason upper-case (`google.rpc.ErrorInfo` style).
//!
//! | failure | HTTP | JSON-RPC | reason |
//! |---|---|---|---|
//! | no credential | 401 | −31000 | `credential_missing` |
//! | bad / expired / revoked credential, bad token or proof, unknown agent | 401 | −31000 | the failure's code |
//! | a valid credential of an agent that may not act now (suspended, revoked, expired registration; attestation of an inactive or under-trusted agent) | 403 | −31000 | `agent_inactive`, … |
//! | denied by policy, trust gate or capability | 403 | −31001 | the decision's reason (`rule_deny`, `trust_below_threshold`, …) |
//! | held for approval and denied, or the approval expired | 403 | −31002 | `approval_denied`, `approval_expired` |
//! | rate limited (policy `limit:` or fair share) | 429 | −31004 | `rate_limited`, … |
//! | upstream unreachable or failed | 502 | −31003 | `upstream_unavailable` |
//! | upstream did not answer in time | 504 | −31003 | `upstream_timeout` |

use crate::jsonrpc::{
    APPROVAL_REFUSED, POLICY_DENIED, RATE_LIMITED, UNAUTHENTICATED, UPSTREAM_UNAVAILABLE,
};
use agentmesh_engine::AuthError;
use agentmesh_policy::{Decision, Outcome, Reason};

/// The answer to a refused call that is not about authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: i64,
    /// Stable, for clients, audit and metrics.
    pub reason: &'static str,
}

/// A decision that does not let the call through (its outcome and reason).
pub fn decision_refusal(d: &Decision) -> Refusal {
    refusal_of(d.outcome, d.reason)
}

fn refusal_of(outcome: Outcome, reason: Reason) -> Refusal {
    let (status, code) = match (outcome, reason) {
        (Outcome::RateLimited, _) => (429, RATE_LIMITED),
        (_, Reason::ApprovalDenied | Reason::ApprovalExpired) => (403, APPROVAL_REFUSED),
        _ => (403, POLICY_DENIED),
    };
    Refusal {
        status,
        code,
        reason: reason.code(),
    }
}

/// Why an allowed call got no answer from its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Unreachable, refused, reset, or answered with something unusable.
    Unavailable,
    /// No answer within the configured time.
    Timeout,
}

pub fn upstream_refusal(f: UpstreamFailure) -> Refusal {
    match f {
        UpstreamFailure::Unavailable => Refusal {
            status: 502,
            code: UPSTREAM_UNAVAILABLE,
            reason: "upstream_unavailable",
        },
        UpstreamFailure::Timeout => Refusal {
            status: 504,
            code: UPSTREAM_UNAVAILABLE,
            reason: "upstream_timeout",
        },
    }
}

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

    #[test]
    fn decisions_and_upstream_failures() {
        assert_eq!(
            refusal_of(Outcome::Deny, Reason::RuleDeny),
            Refusal {
                status: 403,
                code: POLICY_DENIED,
                reason: "rule_deny"
            }
        );
        assert_eq!(
            refusal_of(Outcome::Deny, Reason::ApprovalExpired).code,
            APPROVAL_REFUSED
        );
        let limited = refusal_of(Outcome::RateLimited, Reason::RateLimited);
        assert_eq!((limited.status, limited.code), (429, RATE_LIMITED));
        assert_eq!(upstream_refusal(UpstreamFailure::Timeout).status, 504);
        assert_eq!(
            upstream_refusal(UpstreamFailure::Unavailable).reason,
            "upstream_unavailable"
        );
    }
}
