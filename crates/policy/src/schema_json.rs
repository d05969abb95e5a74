//! The JSON Schema of the policy file (`docs/policy.schema.json`), for
//! editors and CI linters. Kept in step with `model.rs` by a test that
//! regenerates it.

use serde_json::{Value, json};

/// JSON Schema (draft 2020-12) of a policy file.
pub fn policy_schema() -> Value {
    let rule = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "Unique within the policy."},
            "description": {"type": "string"},
            "condition": {"type": "string", "maxLength": crate::compile::MAX_CONDITION_LEN,
                "description": "CEL expression over agent.*, action.*, data.*, request.*, user.*, time.*; `and`/`or`/`not` accepted. Absent = always."},
            "action": {"enum": ["allow", "deny", "warn", "require_approval", "log"],
                "description": "Required unless `limit` is given (a pure rate-limit rule)."},
            "priority": {"type": "integer", "default": 0, "description": "Higher wins; at equal priority deny > require_approval > warn > allow."},
            "audit": {"type": "boolean", "default": false},
            "limit": {"type": "string", "pattern": "^\\s*[1-9][0-9]*\\s*/\\s*(second|minute|hour|day)\\s*$",
                "description": "Rate limit per (agent, policy, rule), e.g. 100/hour."},
            "approvers": {"type": "array", "items": {"type": "string"}},
            "approval_ttl": {"type": "string", "pattern": "^[0-9]+\\s*(s|sec|second|seconds|m|min|minute|minutes|h|hour|hours|d|day|days)$", "default": "15m"},
            "message": {"type": "string"},
            "severity": {"enum": ["low", "medium", "high", "critical"],
                "description": "How serious a call this rule stops is; trust weighs the violation by it (deny, warn, require_approval rules)."}
        }
    });
    let policy = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "version": {"type": ["string", "number"], "enum": ["1.0", "1", 1.0, 1]},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "agent": {"type": "string", "description": "Agent name or DID, or \"*\"."},
            "agents": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "sponsor": {"type": "string", "description": "Only agents sponsored by this e-mail."},
            "capabilities": {"type": "array", "items": {"type": "string"},
                "description": "Ceiling: actions needing other capabilities are denied before rules run."},
            "default_action": {"enum": ["allow", "deny"], "default": "deny"},
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}, "maxItems": crate::policy::MAX_RULES},
            "compliance": {"type": "object", "additionalProperties": false, "properties": {
                "frameworks": {"type": "array", "items": {"enum": ["eu_ai_act", "hipaa", "soc2", "gdpr", "owasp_agentic"]}},
                "domain": {"type": "string", "description": "Area the agents work in, for risk classification (healthcare, employment, credit, …)."},
                "minimum_necessary": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "description": "Per action (tool or action type): the argument fields that are the minimum necessary."}}},
            "delegation": {"type": "object", "additionalProperties": false, "properties": {
                "allow": {"type": "boolean", "default": true},
                "max_depth": {"type": "integer", "minimum": 0, "maximum": 255},
                "must_narrow": {"const": true}}}
        },
        "oneOf": [{"required": ["agent"]}, {"required": ["agents"]}]
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://agentmesh.dev/schemas/policy-1.0.json",
        "title": "AgentMesh policy file",
        "description": "A single policy, or several under `policies:`. See docs/policy-language.md.",
        "$defs": {"rule": rule, "policy": policy},
        "oneOf": [
            {"$ref": "#/$defs/policy"},
            {"type": "object", "additionalProperties": false, "required": ["policies"], "properties": {
                "version": {"type": ["string", "number"]},
                "policies": {"type": "array", "items": {"$ref": "#/$defs/policy"}, "minItems": 1}}}
        ]
    })
}
