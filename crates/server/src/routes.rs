//! The route table: documentation of every API route, from which
//! docs/openapi.json is generated (a test keeps the file current) and the
//! malformed-input tests are driven.

use serde_json::{Map, Value, json};

/// How a route authenticates its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (read-only or challenge issuance).
    Public,
    /// Proof of possession in the body (a signature by the agent's key).
    ProofOfPossession,
    /// `Authorization: Bearer <admin token>`.
    Admin,
    /// The admin token, or a gateway credential (`amgw1.…`): the routes an
    /// attached gateway needs.
    Gateway,
    /// `Authorization: Bearer <agent credential>`.
    Agent,
}

/// The body a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    /// JSON, required.
    Json,
    /// JSON, may be empty.
    OptionalJson,
    /// YAML text.
    Yaml,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub auth: Auth,
    pub body: BodyKind,
    pub summary: &'static str,
    /// A valid example body (JSON text), when there is a body.
    pub example: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    body: BodyKind,
    summary: &'static str,
    example: &'static str,
) -> Route {
    Route {
        method,
        path,
        auth,
        body,
        summary,
        example,
    }
}

use Auth::*;
use BodyKind::{Json, None as NoBody, OptionalJson, Yaml};

pub const ROUTES: &[Route] = &[
    r(
        "GET",
        "/healthz",
        Public,
        NoBody,
        "Liveness and the database's reachability",
        "",
    ),
    r(
        "GET",
        "/metrics",
        Public,
        NoBody,
        "Prometheus metrics (OpenMetrics text)",
        "",
    ),
    r(
        "GET",
        "/v1/authority",
        Public,
        NoBody,
        "The mesh DID, credential-signing key and audit verifier key",
        "",
    ),
    r(
        "POST",
        "/v1/registrations/challenge",
        Public,
        NoBody,
        "A single-use nonce for a registration (expires in 120 s)",
        "",
    ),
    r(
        "POST",
        "/v1/registrations",
        ProofOfPossession,
        Json,
        "Ask to register an agent: the request is signed by the agent's key over the server nonce and a timestamp; it waits for its sponsor's approval",
        r#"{"name":"a","sponsor":"s@example.com","capabilities":["read:*"],"did":"did:key:z6Mk","nonce":"n","timestamp":0,"signature":"s"}"#,
    ),
    r(
        "GET",
        "/v1/registrations",
        Admin,
        NoBody,
        "Pending registrations (`?all=true`: every one)",
        "",
    ),
    r(
        "GET",
        "/v1/registrations/{id}",
        Admin,
        NoBody,
        "One registration",
        "",
    ),
    r(
        "POST",
        "/v1/registrations/{id}/approve",
        Admin,
        OptionalJson,
        "The sponsor approves: `sponsor_signature` by the sponsor's key, or signed with the sponsor key held in the control plane's home",
        r#"{"sponsor_signature":"s"}"#,
    ),
    r(
        "POST",
        "/v1/registrations/{id}/reject",
        Admin,
        OptionalJson,
        "Reject a pending registration",
        r#"{"reason":"unknown agent"}"#,
    ),
    r(
        "POST",
        "/v1/credentials/challenge",
        Public,
        NoBody,
        "A single-use nonce for a credential request",
        "",
    ),
    r(
        "POST",
        "/v1/credentials",
        ProofOfPossession,
        Json,
        "A short-lived credential (default 15 min) for an active agent that signs the nonce with its key",
        r#"{"did":"did:key:z6Mk","nonce":"n","timestamp":0,"signature":"s"}"#,
    ),
    r(
        "POST",
        "/v1/credentials/revoke",
        Admin,
        Json,
        "Revoke a credential (by text or id) before it expires; pushed to gateways",
        r#"{"id":"abc","reason":"leaked"}"#,
    ),
    r(
        "GET",
        "/v1/me",
        Agent,
        NoBody,
        "The calling agent's record and trust",
        "",
    ),
    r("GET", "/v1/sponsors", Admin, NoBody, "Sponsors", ""),
    r(
        "POST",
        "/v1/sponsors",
        Admin,
        Json,
        "Create a sponsor (its key is held in the home)",
        r#"{"email":"s@example.com","capabilities":["*"]}"#,
    ),
    r(
        "GET",
        "/v1/agents",
        Admin,
        NoBody,
        "Agents by name, paged (`?after=<name>&limit=100`)",
        "",
    ),
    r(
        "POST",
        "/v1/agents",
        Admin,
        Json,
        "Register an agent whose key is held elsewhere (no approval step)",
        r#"{"name":"a","sponsor":"s@example.com","capabilities":["read:*"],"did":"did:key:z6Mk"}"#,
    ),
    r(
        "POST",
        "/v1/agents/bulk",
        Admin,
        Json,
        "Register up to 10000 agents of one sponsor in one transaction",
        r#"{"sponsor":"s@example.com","agents":[{"name":"a","did":"did:key:z6Mk","capabilities":["read:*"]}]}"#,
    ),
    r(
        "GET",
        "/v1/agents/{id}",
        Admin,
        NoBody,
        "One agent (name or DID) with its trust",
        "",
    ),
    r(
        "POST",
        "/v1/agents/{id}/revoke",
        Admin,
        OptionalJson,
        "Revoke an agent and its descendants; pushed to gateways",
        r#"{"reason":"compromised"}"#,
    ),
    r(
        "POST",
        "/v1/agents/{id}/suspend",
        Gateway,
        OptionalJson,
        "Suspend an agent",
        r#"{"reason":"investigating"}"#,
    ),
    r(
        "POST",
        "/v1/agents/{id}/reactivate",
        Admin,
        OptionalJson,
        "Reactivate a suspended agent",
        r#"{"reason":"cleared"}"#,
    ),
    r(
        "POST",
        "/v1/delegations",
        Admin,
        Json,
        "Issue a delegation token (narrowing only)",
        r#"{"from":"s@example.com","to":"a","capabilities":["read:*"],"ttl_secs":3600}"#,
    ),
    r(
        "POST",
        "/v1/delegations/revoke",
        Admin,
        Json,
        "Revoke a delegation link (token or link hash)",
        r#"{"token":"amdt1.x","reason":"done"}"#,
    ),
    r(
        "POST",
        "/v1/delegations/verify",
        Admin,
        Json,
        "Verify a delegation token against the registry now (422 with the reason when invalid)",
        r#"{"token":"amdt1.x"}"#,
    ),
    r(
        "GET",
        "/v1/policy",
        Gateway,
        NoBody,
        "The published policy document",
        "",
    ),
    r(
        "PUT",
        "/v1/policy",
        Admin,
        Yaml,
        "Publish a policy (validated; gateways attached with --control-plane load it)",
        "policies: []",
    ),
    r(
        "GET",
        "/v1/trust",
        Admin,
        NoBody,
        "Trust state and score of every agent",
        "",
    ),
    r(
        "GET",
        "/v1/trust/{agent}",
        Admin,
        NoBody,
        "One agent's trust score",
        "",
    ),
    r(
        "GET",
        "/v1/trust/{agent}/history",
        Admin,
        NoBody,
        "The agent's trust score over time, from the audit log",
        "",
    ),
    r(
        "PUT",
        "/v1/trust/{agent}",
        Gateway,
        Json,
        "Store an agent's trust state (gateways flush theirs here)",
        r#"{}"#,
    ),
    r(
        "GET",
        "/v1/approvals",
        Gateway,
        NoBody,
        "Pending approvals (`?all=true`: every one)",
        "",
    ),
    r(
        "POST",
        "/v1/approvals",
        Gateway,
        Json,
        "Store a held call's approval request (gateways)",
        r#"{}"#,
    ),
    r(
        "GET",
        "/v1/approvals/{id}",
        Gateway,
        NoBody,
        "One approval",
        "",
    ),
    r(
        "POST",
        "/v1/approvals/{id}/approve",
        Admin,
        OptionalJson,
        "Approve a held call (`by` must be among its approvers)",
        r#"{"by":"s@example.com"}"#,
    ),
    r(
        "POST",
        "/v1/approvals/{id}/deny",
        Admin,
        OptionalJson,
        "Deny a held call",
        r#"{"by":"s@example.com","reason":"no"}"#,
    ),
    r(
        "POST",
        "/v1/approvals/{id}/state",
        Gateway,
        Json,
        "Move an approval between states (gateways: used, expired)",
        r#"{"from":"approved","to":"used"}"#,
    ),
    r(
        "GET",
        "/v1/audit",
        Admin,
        NoBody,
        "Audit entries (`?from=&limit=`; default the newest 50)",
        "",
    ),
    r(
        "GET",
        "/v1/audit/checkpoint",
        Admin,
        NoBody,
        "The latest signed checkpoint (C2SP signed note)",
        "",
    ),
    r(
        "POST",
        "/v1/audit/checkpoint",
        Admin,
        NoBody,
        "Sign a checkpoint now",
        "",
    ),
    r(
        "POST",
        "/v1/audit/ingest",
        Gateway,
        Json,
        "Append audit entries shipped by a gateway",
        r#"{"source":"gw","entries":[]}"#,
    ),
    r(
        "GET",
        "/v1/audit/{index}",
        Admin,
        NoBody,
        "One audit entry",
        "",
    ),
    r(
        "GET",
        "/v1/audit/{index}/proof",
        Admin,
        NoBody,
        "An inclusion proof for an entry against a signed checkpoint",
        "",
    ),
    r(
        "GET",
        "/v1/compliance/report",
        Admin,
        NoBody,
        "Compliance reports over the audit log (`?format=json|markdown|html`)",
        "",
    ),
    r(
        "GET",
        "/v1/snapshot",
        Gateway,
        NoBody,
        "Everything a gateway enforces with, and the change sequence it reflects",
        "",
    ),
    r(
        "GET",
        "/v1/events",
        Gateway,
        NoBody,
        "Server-sent events: one `change` per registry change (revocations within a second)",
        "",
    ),
    r(
        "POST",
        "/v1/gateways",
        Admin,
        Json,
        "Issue a gateway credential (`amgw1.…`): what an attached gateway presents instead of the admin token",
        r#"{"name": "gw-1", "ttl_secs": 2592000}"#,
    ),
];

/// The OpenAPI 3.1 document for [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": route.summary,
            "operationId": operation_id(route),
            "responses": {
                "200": {"description": "Success (201/202 where something was created or queued)"},
                "400": {"description": "Malformed request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "Not authenticated", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "403": {"description": "Authenticated but not allowed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "404": {"description": "Not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "409": {"description": "Conflicts with the current state", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        op["security"] = match route.auth {
            Auth::Admin => json!([{"adminToken": []}]),
            Auth::Gateway => json!([{"adminToken": []}, {"gatewayCredential": []}]),
            Auth::Agent => json!([{"agentCredential": []}]),
            Auth::Public | Auth::ProofOfPossession => json!([]),
        };
        if route.auth == Auth::ProofOfPossession {
            op["description"] =
                json!("Authenticated by proof of possession: see docs/wire/registration.md.");
        }
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        match route.body {
            BodyKind::None => {}
            BodyKind::Json | BodyKind::OptionalJson => {
                let example: Value = serde_json::from_str(route.example).unwrap_or(Value::Null);
                op["requestBody"] = json!({
                    "required": route.body == BodyKind::Json,
                    "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
                });
            }
            BodyKind::Yaml => {
                op["requestBody"] = json!({
                    "required": true,
                    "content": {"application/yaml": {"schema": {"type": "string"}, "example": route.example}},
                });
            }
        }
        if let Value::Object(m) = entry {
            m.insert(route.method.to_lowercase(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "AgentMesh control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Generated from crates/server/src/routes.rs; do not edit by hand.",
        },
        "servers": [{"url": "http://127.0.0.1:7400"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "The admin token (admin.token in the mesh home)"},
                "agentCredential": {"type": "http", "scheme": "bearer", "bearerFormat": "amcr1", "description": "A mesh credential from POST /v1/credentials"},
                "gatewayCredential": {"type": "http", "scheme": "bearer", "bearerFormat": "amgw1", "description": "A gateway credential from POST /v1/gateways (`agentmesh gateways issue`)"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
                },
            },
        },
    })
}

fn operation_id(route: &Route) -> String {
    let mut id = route.method.to_lowercase();
    for seg in route
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "v1")
    {
        let seg = seg.trim_start_matches('{').trim_end_matches('}');
        let mut chars = seg.chars();
        if let Some(c) = chars.next() {
            id.push(c.to_ascii_uppercase());
            id.extend(chars.filter(|c| c.is_ascii_alphanumeric()));
        }
    }
    id
}
