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
    /// A gateway credential only (`amgw1.…`; the admin token is refused).
    GatewayOnly,
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
    /// The success status.
    pub status: u16,
    /// JSON Schema of the request body (JSON text; empty: none or YAML).
    pub request: &'static str,
    /// JSON Schema of the success body (JSON text; empty: not JSON).
    pub response: &'static str,
    /// Query parameters, `name:type` separated by commas (`u32`, `u64`,
    /// `boolean`, `string`, or `a|b|c` for an enumeration).
    pub query: &'static str,
}

impl Route {
    /// The success status and the schemas of the request and success bodies.
    const fn typed(self, status: u16, request: &'static str, response: &'static str) -> Route {
        Route {
            status,
            request,
            response,
            ..self
        }
    }

    const fn query(self, query: &'static str) -> Route {
        Route { query, ..self }
    }
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
        status: 200,
        request: "",
        response: "",
        query: "",
    }
}

// Schemas shared by several routes (JSON Schema 2020-12, as OpenAPI 3.1).
const CHALLENGE: &str = r#"{"type":"object","required":["nonce","expires_at","mesh"],"properties":{"nonce":{"type":"string"},"expires_at":{"type":"integer"},"mesh":{"type":"string"}}}"#;
const CHECKPOINT: &str =
    r#"{"type":"object","required":["checkpoint"],"properties":{"checkpoint":{"type":"string"}}}"#;
const HEALTH: &str = r#"{"type":"object","required":["status","replica","backend","feed_seq","audit_holder","mesh"],"properties":{"status":{"type":"string"},"replica":{"type":"string"},"backend":{"type":"string"},"feed_seq":{"type":"integer"},"audit_holder":{"type":"boolean"},"mesh":{"type":"string"}}}"#;
const AUTHORITY: &str = r#"{"type":"object","required":["mesh","public_key","trust_domain","audit_origin","audit_vkey","credential_ttl_secs"],"properties":{"mesh":{"type":"string"},"public_key":{"type":"string"},"trust_domain":{"type":"string"},"audit_origin":{"type":"string"},"audit_vkey":{"type":"string"},"credential_ttl_secs":{"type":"integer"}}}"#;
const REASON: &str = r#"{"type":"object","additionalProperties":false,"properties":{"reason":{"type":["string","null"]},"by":{"type":["string","null"]}}}"#;
const DECISION: &str = r#"{"type":"object","additionalProperties":false,"required":["by"],"properties":{"by":{"type":"string"},"reason":{"type":["string","null"]},"at":{"type":["integer","null"],"minimum":0},"signature":{"type":["string","null"]}}}"#;
const REGISTRATION_REQUEST: &str = r#"{"type":"object","additionalProperties":false,"required":["name","sponsor","capabilities","did","nonce","timestamp","signature"],"properties":{"name":{"type":"string"},"sponsor":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}},"did":{"type":"string"},"parent":{"type":["string","null"]},"expires_at":{"type":["integer","null"],"minimum":0},"nonce":{"type":"string"},"timestamp":{"type":"integer","minimum":0},"signature":{"type":"string"}}}"#;
const CREDENTIAL_REQUEST: &str = r#"{"type":"object","additionalProperties":false,"required":["did","nonce","timestamp","signature"],"properties":{"did":{"type":"string"},"audience":{"type":["string","null"]},"ttl_secs":{"type":["integer","null"],"minimum":0},"nonce":{"type":"string"},"timestamp":{"type":"integer","minimum":0},"signature":{"type":"string"}}}"#;

/// `components.schemas`: the records several routes answer with.
const COMPONENTS: &str = r##"{
"Error": {"type":"object","required":["error"],"properties":{"error":{"type":"object","required":["code","message"],"properties":{"code":{"type":"string"},"message":{"type":"string"}}}}},
"Sponsor": {"type":"object","required":["email","did","capabilities","created_at","active"],"properties":{"email":{"type":"string"},"did":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}},"created_at":{"type":"integer"},"active":{"type":"boolean"}}},
"Agent": {"type":"object","required":["name","did","spiffe_id","sponsor","sponsor_did","parent_did","capabilities","status","status_reason","created_at","updated_at","expires_at","key_custody","sponsorship"],"properties":{"name":{"type":"string"},"did":{"type":"string"},"spiffe_id":{"type":"string"},"sponsor":{"type":"string"},"sponsor_did":{"type":"string"},"parent_did":{"type":["string","null"]},"capabilities":{"type":"array","items":{"type":"string"}},"status":{"enum":["active","suspended","revoked"]},"status_reason":{"type":["string","null"]},"created_at":{"type":"integer"},"updated_at":{"type":"integer"},"expires_at":{"type":["integer","null"]},"key_custody":{"enum":["home","external"]},"sponsorship":{"$ref":"#/components/schemas/Sponsorship"}}},
"Sponsorship": {"type":"object","required":["agent_did","agent_name","spiffe_id","sponsor","sponsor_did","capabilities","issued_at","signature"],"properties":{"agent_did":{"type":"string"},"agent_name":{"type":"string"},"spiffe_id":{"type":"string"},"sponsor":{"type":"string"},"sponsor_did":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}},"parent_did":{"type":"string"},"issued_at":{"type":"integer","minimum":0},"expires_at":{"type":"integer","minimum":0},"signature":{"type":"string"}}},
"Registration": {"type":"object","required":["id","name","sponsor","agent_did","capabilities","parent","expires_at","state","created_at","decided_at","decided_by","reason"],"properties":{"id":{"type":"string"},"name":{"type":"string"},"sponsor":{"type":"string"},"agent_did":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}},"parent":{"type":["string","null"]},"expires_at":{"type":["integer","null"]},"state":{"enum":["pending","approved","rejected"]},"created_at":{"type":"integer"},"decided_at":{"type":["integer","null"]},"decided_by":{"type":["string","null"]},"reason":{"type":["string","null"]}}},
"ApprovalState": {"enum":["pending","approved","denied","used","expired"]},
"Approval": {"type":"object","required":["id","caller","action","arguments_sha256","policy_version","rule","approvers","state","created_at","expires_at","summary"],"properties":{"id":{"type":"string"},"caller":{"type":"string"},"action":{"type":"string"},"arguments_sha256":{"type":"string"},"policy_version":{"type":"string"},"rule":{"type":"string"},"approvers":{"type":"array","items":{"type":"string"}},"state":{"$ref":"#/components/schemas/ApprovalState"},"decided_by":{"type":["string","null"]},"decided_at":{"type":["integer","null"],"minimum":0},"reason":{"type":["string","null"]},"created_at":{"type":"integer","minimum":0},"expires_at":{"type":"integer","minimum":0},"summary":{},"proof":{"type":["string","null"]}}},
"TrustState": {"type":"object","required":["dims","at_ms","events"],"properties":{"dims":{"type":"array","minItems":5,"maxItems":5,"items":{"type":"object","required":["r","s"],"properties":{"r":{"type":"number"},"s":{"type":"number"}}}},"at_ms":{"type":"integer","minimum":0},"events":{"type":"integer","minimum":0},"breached":{"type":"boolean"},"gains":{"type":"object"}}},
"TrustScore": {"type":"object","required":["score","uncertainty","tier","dimensions"],"properties":{"score":{"type":"number"},"uncertainty":{"type":"number"},"tier":{"type":"string"},"dimensions":{"type":"array","items":{"$ref":"#/components/schemas/DimensionScore"}}}},
"DimensionScore": {"type":"object","required":["dimension","score","uncertainty","positive","negative"],"properties":{"dimension":{"enum":["policy_compliance","security_posture","output_quality","resource_efficiency","collaboration"]},"score":{"type":"number"},"uncertainty":{"type":"number"},"positive":{"type":"number"},"negative":{"type":"number"}}},
"TrustScoreOrNull": {"oneOf":[{"$ref":"#/components/schemas/TrustScore"},{"type":"null"}]}
}"##;

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
    )
    .typed(200, "", HEALTH),
    r(
        "GET",
        "/metrics",
        Public,
        NoBody,
        "Prometheus metrics (OpenMetrics text)",
        "",
    )
    .typed(200, "", ""),
    r(
        "GET",
        "/v1/authority",
        Public,
        NoBody,
        "The mesh DID, credential-signing key and audit verifier key",
        "",
    )
    .typed(200, "", AUTHORITY),
    r(
        "POST",
        "/v1/registrations/challenge",
        Public,
        NoBody,
        "A single-use nonce for a registration (expires in 120 s)",
        "",
    )
    .typed(201, "", CHALLENGE),
    r(
        "POST",
        "/v1/registrations",
        ProofOfPossession,
        Json,
        "Ask to register an agent: the request is signed by the agent's key over the server nonce and a timestamp; it waits for its sponsor's approval",
        r#"{"name":"a","sponsor":"s@example.com","capabilities":["read:*"],"did":"did:key:z6Mk","nonce":"n","timestamp":0,"signature":"s"}"#,
    )
    .typed(202, REGISTRATION_REQUEST, r##"{"$ref":"#/components/schemas/Registration"}"##),
    r(
        "GET",
        "/v1/registrations",
        Admin,
        NoBody,
        "Pending registrations (`?all=true`: every one)",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["registrations"],"properties":{"registrations":{"type":"array","items":{"$ref":"#/components/schemas/Registration"}}}}"##)
    .query("all:boolean"),
    r(
        "GET",
        "/v1/registrations/{id}",
        Admin,
        NoBody,
        "One registration",
        "",
    )
    .typed(200, "", r##"{"$ref":"#/components/schemas/Registration"}"##),
    r(
        "POST",
        "/v1/registrations/{id}/approve",
        Admin,
        OptionalJson,
        "The sponsor approves: `sponsor_signature` by the sponsor's key, or signed with the sponsor key held in the control plane's home",
        r#"{"sponsor_signature":"s"}"#,
    )
    .typed(200, r##"{"type":"object","additionalProperties":false,"properties":{"sponsor_signature":{"type":["string","null"]}}}"##, r##"{"type":"object","required":["registration","agent"],"properties":{"registration":{"$ref":"#/components/schemas/Registration"},"agent":{"$ref":"#/components/schemas/Agent"}}}"##),
    r(
        "POST",
        "/v1/registrations/{id}/reject",
        Admin,
        OptionalJson,
        "Reject a pending registration",
        r#"{"reason":"unknown agent"}"#,
    )
    .typed(200, REASON, r##"{"$ref":"#/components/schemas/Registration"}"##),
    r(
        "POST",
        "/v1/credentials/challenge",
        Public,
        NoBody,
        "A single-use nonce for a credential request",
        "",
    )
    .typed(201, "", CHALLENGE),
    r(
        "POST",
        "/v1/credentials",
        ProofOfPossession,
        Json,
        "A short-lived credential (default 15 min) for an active agent that signs the nonce with its key",
        r#"{"did":"did:key:z6Mk","nonce":"n","timestamp":0,"signature":"s"}"#,
    )
    .typed(201, CREDENTIAL_REQUEST, r##"{"type":"object","required":["credential","id","agent","expires_at","refresh_after"],"properties":{"credential":{"type":"string"},"id":{"type":"string"},"agent":{"type":"string"},"expires_at":{"type":"integer"},"refresh_after":{"type":"integer"}}}"##),
    r(
        "POST",
        "/v1/credentials/revoke",
        Admin,
        Json,
        "Revoke a credential (by text or id) before it expires; pushed to gateways",
        r#"{"id":"abc","reason":"leaked"}"#,
    )
    .typed(200, r##"{"type":"object","additionalProperties":false,"properties":{"credential":{"type":["string","null"]},"id":{"type":["string","null"]},"reason":{"type":["string","null"]}}}"##, r##"{"type":"object","required":["id","agent","reason","revoked_at","expires_at"],"properties":{"id":{"type":"string"},"agent":{"type":"string"},"reason":{"type":"string"},"revoked_at":{"type":"integer"},"expires_at":{"type":"integer"}}}"##),
    r(
        "GET",
        "/v1/me",
        Agent,
        NoBody,
        "The calling agent's record and trust",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["agent","credential_id","trust"],"properties":{"agent":{"$ref":"#/components/schemas/Agent"},"credential_id":{"type":"string"},"trust":{"$ref":"#/components/schemas/TrustScoreOrNull"}}}"##),
    r("GET", "/v1/sponsors", Admin, NoBody, "Sponsors", "")
    .typed(200, "", r##"{"type":"object","required":["sponsors"],"properties":{"sponsors":{"type":"array","items":{"$ref":"#/components/schemas/Sponsor"}}}}"##),
    r(
        "POST",
        "/v1/sponsors",
        Admin,
        Json,
        "Create a sponsor (its key is held in the home)",
        r#"{"email":"s@example.com","capabilities":["*"]}"#,
    )
    .typed(201, r##"{"type":"object","additionalProperties":false,"required":["email"],"properties":{"email":{"type":"string"},"capabilities":{"type":["array","null"],"items":{"type":"string"}}}}"##, r##"{"$ref":"#/components/schemas/Sponsor"}"##),
    r(
        "GET",
        "/v1/agents",
        Admin,
        NoBody,
        "Agents by name, paged (`?after=<name>&limit=100`)",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["agents","next_after"],"properties":{"agents":{"type":"array","items":{"$ref":"#/components/schemas/Agent"}},"next_after":{"type":["string","null"]}}}"##)
    .query("after:string,limit:u32"),
    r(
        "POST",
        "/v1/agents",
        Admin,
        Json,
        "Register an agent whose key is held elsewhere (no approval step)",
        r#"{"name":"a","sponsor":"s@example.com","capabilities":["read:*"],"did":"did:key:z6Mk"}"#,
    )
    .typed(201, r##"{"type":"object","additionalProperties":false,"required":["name","sponsor","capabilities","did"],"properties":{"name":{"type":"string"},"sponsor":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}},"did":{"type":"string"},"parent":{"type":["string","null"]},"expires_at":{"type":["integer","null"],"minimum":0}}}"##, r##"{"$ref":"#/components/schemas/Agent"}"##),
    r(
        "POST",
        "/v1/agents/bulk",
        Admin,
        Json,
        "Register up to 10000 agents of one sponsor in one transaction",
        r#"{"sponsor":"s@example.com","agents":[{"name":"a","did":"did:key:z6Mk","capabilities":["read:*"]}]}"#,
    )
    .typed(201, r##"{"type":"object","additionalProperties":false,"required":["sponsor","agents"],"properties":{"sponsor":{"type":"string"},"agents":{"type":"array","minItems":1,"maxItems":10000,"items":{"type":"object","additionalProperties":false,"required":["name","did","capabilities"],"properties":{"name":{"type":"string"},"did":{"type":"string"},"capabilities":{"type":"array","items":{"type":"string"}}}}}}}"##, r##"{"type":"object","required":["created","audit_index"],"properties":{"created":{"type":"integer"},"audit_index":{"type":["integer","null"]}}}"##),
    r(
        "GET",
        "/v1/agents/{id}",
        Admin,
        NoBody,
        "One agent (name or DID) with its trust",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["agent","trust"],"properties":{"agent":{"$ref":"#/components/schemas/Agent"},"trust":{"$ref":"#/components/schemas/TrustScoreOrNull"}}}"##),
    r(
        "POST",
        "/v1/agents/{id}/revoke",
        Admin,
        OptionalJson,
        "Revoke an agent and its descendants; pushed to gateways",
        r#"{"reason":"compromised"}"#,
    )
    .typed(200, REASON, r##"{"type":"object","required":["revoked"],"properties":{"revoked":{"type":"array","items":{"type":"string"}}}}"##),
    r(
        "POST",
        "/v1/agents/{id}/suspend",
        Gateway,
        OptionalJson,
        "Suspend an agent",
        r#"{"reason":"investigating"}"#,
    )
    .typed(200, REASON, r##"{"$ref":"#/components/schemas/Agent"}"##),
    r(
        "POST",
        "/v1/agents/{id}/reactivate",
        Admin,
        OptionalJson,
        "Reactivate a suspended agent",
        r#"{"reason":"cleared"}"#,
    )
    .typed(200, REASON, r##"{"$ref":"#/components/schemas/Agent"}"##),
    r(
        "POST",
        "/v1/delegations",
        Admin,
        Json,
        "Issue a delegation token (narrowing only)",
        r#"{"from":"s@example.com","to":"a","capabilities":["read:*"],"ttl_secs":3600}"#,
    )
    .typed(201, r##"{"type":"object","additionalProperties":false,"required":["from","to"],"properties":{"from":{"type":"string"},"to":{"type":"string"},"capabilities":{"type":["array","null"],"items":{"type":"string"}},"ttl_secs":{"type":["integer","null"],"minimum":1,"maximum":31622400},"max_depth":{"type":["integer","null"],"minimum":0,"maximum":255},"parent_token":{"type":["string","null"]}}}"##, r##"{"type":"object","required":["token","links","capabilities"],"properties":{"token":{"type":"string"},"links":{"type":"array","items":{"type":"string"}},"capabilities":{"type":"array","items":{"type":"string"}}}}"##),
    r(
        "POST",
        "/v1/delegations/revoke",
        Admin,
        Json,
        "Revoke a delegation link (token or link hash)",
        r#"{"token":"amdt1.x","reason":"done"}"#,
    )
    .typed(200, r##"{"type":"object","additionalProperties":false,"required":["token"],"properties":{"token":{"type":"string"},"link":{"type":["integer","null"],"minimum":0},"reason":{"type":["string","null"]}}}"##, r##"{"type":"object","required":["hash","reason","revoked_at"],"properties":{"hash":{"type":"string"},"reason":{"type":"string"},"revoked_at":{"type":"integer"}}}"##),
    r(
        "POST",
        "/v1/delegations/verify",
        Admin,
        Json,
        "Verify a delegation token against the registry now (422 with the reason when invalid)",
        r#"{"token":"amdt1.x"}"#,
    )
    .typed(200, r##"{"type":"object","additionalProperties":false,"required":["token"],"properties":{"token":{"type":"string"}}}"##, r##"{"type":"object","required":["valid","holder","holder_did","sponsor","depth","capabilities","expires_at"],"properties":{"valid":{"const":true},"holder":{"type":"string"},"holder_did":{"type":"string"},"sponsor":{"type":"string"},"depth":{"type":"integer"},"capabilities":{"type":"array","items":{"type":"string"}},"expires_at":{"type":"integer"}}}"##),
    r(
        "GET",
        "/v1/policy",
        Gateway,
        NoBody,
        "The published policy document",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["name","yaml","sha256","updated_at","updated_by"],"properties":{"name":{"type":"string"},"yaml":{"type":"string"},"sha256":{"type":"string"},"updated_at":{"type":"integer"},"updated_by":{"type":"string"}}}"##),
    r(
        "PUT",
        "/v1/policy",
        Admin,
        Yaml,
        "Publish a policy (validated; gateways attached with --control-plane load it)",
        "policies: []",
    )
    .typed(200, "", r##"{"type":"object","required":["sha256","version"],"properties":{"sha256":{"type":"string"},"version":{"type":"string"}}}"##),
    r(
        "GET",
        "/v1/trust",
        Admin,
        NoBody,
        "Trust state and score of every agent with trust events, and the prior (the score of an agent without any)",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["trust","prior"],"properties":{"trust":{"type":"array","items":{"type":"object","required":["agent","score","state"],"properties":{"agent":{"type":"string"},"score":{"$ref":"#/components/schemas/TrustScore"},"state":{"$ref":"#/components/schemas/TrustState"}}}},"prior":{"$ref":"#/components/schemas/TrustScore"}}}"##),
    r(
        "GET",
        "/v1/trust/{agent}",
        Admin,
        NoBody,
        "One agent's trust score",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["agent","name","score"],"properties":{"agent":{"type":"string"},"name":{"type":"string"},"score":{"$ref":"#/components/schemas/TrustScoreOrNull"}}}"##),
    r(
        "GET",
        "/v1/trust/{agent}/history",
        Admin,
        NoBody,
        "The agent's trust score over time, from the audit log",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["agent","name","points"],"properties":{"agent":{"type":"string"},"name":{"type":"string"},"points":{"type":"array","items":{"type":"object","required":["index","time","score","before","label","event","decision"],"properties":{"index":{"type":"integer"},"time":{"type":"string"},"score":{"type":"number"},"before":{"type":"number"},"label":{"type":"string"},"event":{"type":"string"},"decision":{"type":"string"}}}}}}"##),
    r(
        "PUT",
        "/v1/trust/{agent}",
        Gateway,
        Json,
        "Store an agent's trust state (gateways flush theirs here)",
        r#"{}"#,
    )
    .typed(200, r##"{"$ref":"#/components/schemas/TrustState"}"##, r##"{"type":"object","required":["saved"],"properties":{"saved":{"const":true}}}"##),
    r(
        "GET",
        "/v1/approvals",
        Gateway,
        NoBody,
        "Pending approvals (`?all=true`: every one)",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["approvals"],"properties":{"approvals":{"type":"array","items":{"$ref":"#/components/schemas/Approval"}}}}"##)
    .query("all:boolean"),
    r(
        "POST",
        "/v1/approvals",
        Gateway,
        Json,
        "Store a held call's approval request (gateways)",
        r#"{}"#,
    )
    .typed(201, r##"{"$ref":"#/components/schemas/Approval"}"##, r##"{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"##),
    r(
        "GET",
        "/v1/approvals/{id}",
        Gateway,
        NoBody,
        "One approval",
        "",
    )
    .typed(200, "", r##"{"$ref":"#/components/schemas/Approval"}"##),
    r(
        "POST",
        "/v1/approvals/{id}/approve",
        Admin,
        Json,
        "Approve a held call (`by` must be among its approvers)",
        r#"{"by":"s@example.com"}"#,
    )
    .typed(200, DECISION, r##"{"$ref":"#/components/schemas/Approval"}"##),
    r(
        "POST",
        "/v1/approvals/{id}/deny",
        Admin,
        Json,
        "Deny a held call",
        r#"{"by":"s@example.com","reason":"no"}"#,
    )
    .typed(200, DECISION, r##"{"$ref":"#/components/schemas/Approval"}"##),
    r(
        "POST",
        "/v1/approvals/{id}/state",
        Gateway,
        Json,
        "Move an approval between states (gateways: used, expired)",
        r#"{"from":"approved","to":"used"}"#,
    )
    .typed(200, r##"{"type":"object","additionalProperties":false,"required":["from","to"],"properties":{"from":{"$ref":"#/components/schemas/ApprovalState"},"to":{"$ref":"#/components/schemas/ApprovalState"},"by":{"type":["string","null"]},"reason":{"type":["string","null"]}}}"##, r##"{"$ref":"#/components/schemas/Approval"}"##),
    r(
        "GET",
        "/v1/audit",
        Admin,
        NoBody,
        "Audit entries (`?from=&limit=`; default the newest 50)",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["size","entries"],"properties":{"size":{"type":"integer"},"entries":{"type":"array","items":{"type":"object","required":["index","leaf_hash","entry"],"properties":{"index":{"type":"integer"},"leaf_hash":{"type":"string"},"entry":{"type":"object"}}}}}}"##)
    .query("from:u64,limit:u32"),
    r(
        "GET",
        "/v1/audit/checkpoint",
        Admin,
        NoBody,
        "The latest signed checkpoint (C2SP signed note)",
        "",
    )
    .typed(200, "", CHECKPOINT),
    r(
        "POST",
        "/v1/audit/checkpoint",
        Admin,
        NoBody,
        "Sign a checkpoint now",
        "",
    )
    .typed(200, "", CHECKPOINT),
    r(
        "POST",
        "/v1/audit/ingest",
        Gateway,
        Json,
        "Append audit entries shipped by a gateway",
        r#"{"source":"gw","entries":[]}"#,
    )
    .typed(200, r##"{"type":"object","additionalProperties":false,"required":["source","entries"],"properties":{"source":{"type":"string"},"entries":{"type":"array","items":{"type":"array","prefixItems":[{"type":"integer","minimum":0},{"type":"string"}],"minItems":2,"maxItems":2}}}}"##, r##"{"type":"object","required":["accepted","last_index"],"properties":{"accepted":{"type":"integer"},"last_index":{"type":["integer","null"]}}}"##),
    r(
        "GET",
        "/v1/audit/{index}",
        Admin,
        NoBody,
        "One audit entry",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["index","leaf_hash","entry","bytes"],"properties":{"index":{"type":"integer"},"leaf_hash":{"type":"string"},"entry":{"type":"object"},"bytes":{"type":"string"}}}"##),
    r(
        "GET",
        "/v1/audit/{index}/proof",
        Admin,
        NoBody,
        "An inclusion proof for an entry against a signed checkpoint",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["index","size","entry","leaf_hash","proof","root","checkpoint"],"properties":{"index":{"type":"integer"},"size":{"type":"integer"},"entry":{"type":"string"},"leaf_hash":{"type":"string"},"proof":{"type":"array","items":{"type":"string"}},"root":{"type":"string"},"checkpoint":{"type":"string"}}}"##),
    r(
        "GET",
        "/v1/compliance/report",
        Admin,
        NoBody,
        "Compliance reports over the audit log (`?format=json|markdown|html`; one framework with `framework=`, the last `since_secs` seconds only)",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["reports"],"properties":{"reports":{"type":"array","items":{"type":"object"}}}}"##)
    .query("format:json|markdown|html,framework:string,since_secs:u64"),
    r(
        "GET",
        "/v1/snapshot",
        Gateway,
        NoBody,
        "Everything a gateway enforces with, and the change sequence it reflects",
        "",
    )
    .typed(200, "", r##"{"type":"object","required":["seq","mesh","sponsors","agents","revoked_links","revoked_credentials","trust"],"properties":{"seq":{"type":"integer"},"mesh":{"type":"string"},"sponsors":{"type":"array","items":{"$ref":"#/components/schemas/Sponsor"}},"agents":{"type":"array","items":{"$ref":"#/components/schemas/Agent"}},"revoked_links":{"type":"array","items":{"type":"object"}},"revoked_credentials":{"type":"array","items":{"type":"object"}},"trust":{"type":"object","additionalProperties":{"$ref":"#/components/schemas/TrustState"}}}}"##),
    r(
        "GET",
        "/v1/events",
        Gateway,
        NoBody,
        "Server-sent events: one `change` per registry change (revocations within a second)",
        "",
    )
    .typed(200, "", ""),
    r(
        "POST",
        "/v1/gateways",
        Admin,
        Json,
        "Issue a gateway credential (`amgw1.…`): what an attached gateway presents instead of the admin token",
        r#"{"name": "gw-1", "ttl_secs": 2592000}"#,
    )
    .typed(201, r##"{"type":"object","additionalProperties":false,"required":["name"],"properties":{"name":{"type":"string"},"ttl_secs":{"type":["integer","null"],"minimum":1,"maximum":31536000}}}"##, r##"{"type":"object","required":["credential","id","name","expires_at"],"properties":{"credential":{"type":"string"},"id":{"type":"string"},"name":{"type":"string"},"expires_at":{"type":"integer"}}}"##),
    r(
        "POST",
        "/v1/gateways/vouch",
        GatewayOnly,
        Json,
        "A voucher (`amgv1.…`) for the key a gateway signs IATP challenges with, on proof of possession: provers registered here then admit the gateway (docs/wire/iatp.md)",
        r#"{"did": "did:mesh:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "at": 1800000000, "proof": "AAAA"}"#,
    )
    .typed(200, r##"{"type":"object","additionalProperties":false,"required":["did","at","proof"],"properties":{"did":{"type":"string"},"at":{"type":"integer","minimum":0},"proof":{"type":"string"}}}"##, r##"{"type":"object","required":["voucher","name","key","expires_at"],"properties":{"voucher":{"type":"string"},"name":{"type":"string"},"key":{"type":"string"},"expires_at":{"type":"integer"}}}"##),
];

fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("route schema `{text}`: {e}"))
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// The 4xx/5xx answers a route may give (all with the `Error` body).
fn error_statuses(route: &Route) -> Vec<(u16, &'static str)> {
    let guarded = route.auth != Auth::Public;
    let has_input =
        route.body != BodyKind::None || route.path.contains('{') || !route.query.is_empty();
    let mut out = Vec::new();
    if guarded || has_input {
        out.push((400, "Malformed request"));
    }
    if guarded {
        out.push((401, "Not authenticated"));
        out.push((403, "Authenticated but not allowed"));
    }
    if guarded || route.path.contains('{') {
        out.push((404, "Not found"));
    }
    if guarded {
        out.push((409, "Conflicts with the current state"));
    }
    if route.body != BodyKind::None {
        out.push((413, "Body too large"));
    }
    if route.path == "/v1/delegations/verify" {
        out.push((
            422,
            "The delegation is not valid (the reason in `error.message`)",
        ));
    }
    if route.path == "/v1/credentials" {
        out.push((
            429,
            "Too many credential requests for this agent (`Retry-After`)",
        ));
    }
    if guarded
        || route.path == "/v1/registrations/challenge"
        || route.path == "/v1/credentials/challenge"
    {
        out.push((503, "The registry database or the audit log is unavailable"));
    }
    out
}

/// The OpenAPI 3.1 document for [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        let success = match (route.path, route.response) {
            ("/metrics", _) => {
                json!({"application/openmetrics-text": {"schema": {"type": "string"}}})
            }
            ("/v1/events", _) => json!({"text/event-stream": {"schema": {"type": "string"}}}),
            ("/v1/compliance/report", r) => json!({
                "application/json": {"schema": schema(r)},
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            }),
            (_, r) => json_content(schema(r)),
        };
        let mut responses = Map::new();
        responses.insert(
            route.status.to_string(),
            json!({"description": "Success", "content": success}),
        );
        for (status, description) in error_statuses(route) {
            responses.insert(
                status.to_string(),
                json!({"description": description, "content": json_content(json!({"$ref": "#/components/schemas/Error"}))}),
            );
        }
        if route.path == "/healthz" {
            responses.insert(
                "503".into(),
                json!({"description": "The database is unreachable", "content": json_content(schema(route.response))}),
            );
        }
        let mut op = json!({
            "summary": route.summary,
            "operationId": operation_id(route),
            "responses": responses,
        });
        op["security"] = match route.auth {
            Auth::Admin => json!([{"adminToken": []}]),
            Auth::Gateway => json!([{"adminToken": []}, {"gatewayCredential": []}]),
            Auth::GatewayOnly => json!([{"gatewayCredential": []}]),
            Auth::Agent => json!([{"agentCredential": []}]),
            Auth::Public | Auth::ProofOfPossession => json!([]),
        };
        if route.auth == Auth::ProofOfPossession {
            op["description"] =
                json!("Authenticated by proof of possession: see docs/wire/registration.md.");
        }
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let (schema, example) = match name {
                    "index" => (json!({"type": "integer", "minimum": 0}), json!(0)),
                    // Agent `a` of the examples (interop/schemathesis/run.sh creates it).
                    _ if route.path.starts_with("/v1/agents/") || name == "agent" => {
                        (json!({"type": "string", "minLength": 1}), json!("a"))
                    }
                    _ => (json!({"type": "string", "minLength": 1}), json!("x")),
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema, "example": example})
            })
            .collect();
        for q in route.query.split(',').filter(|q| !q.is_empty()) {
            let (name, ty) = q.split_once(':').unwrap_or((q, "string"));
            let schema = match ty {
                "u32" => json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
                "u64" => json!({"type": "integer", "minimum": 0}),
                "boolean" => json!({"type": "boolean"}),
                "string" => json!({"type": "string"}),
                variants => json!({"enum": variants.split('|').collect::<Vec<_>>()}),
            };
            params.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
        }
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        match route.body {
            BodyKind::None => {}
            BodyKind::Json | BodyKind::OptionalJson => {
                let example: Value = serde_json::from_str(route.example).unwrap_or(Value::Null);
                op["requestBody"] = json!({
                    "required": route.body == BodyKind::Json,
                    "content": {"application/json": {"schema": schema(route.request), "example": example}},
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
            "schemas": schema(COMPONENTS),
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
