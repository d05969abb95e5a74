//! The policy file as written (YAML), before validation. Unknown keys are
//! rejected by serde with their position.

use serde::Deserialize;

/// One policy document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Format version: "1.0".
    #[serde(default)]
    pub version: Option<yaml_serde::Value>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// One agent (name or DID) or `"*"`.
    #[serde(default)]
    pub agent: Option<String>,
    /// Several agents (names or DIDs), or `["*"]`.
    #[serde(default)]
    pub agents: Option<Vec<String>>,
    /// Only agents sponsored by this e-mail.
    #[serde(default)]
    pub sponsor: Option<String>,
    /// Ceiling on what agents under this policy may do.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub default_action: Option<DefaultActionDoc>,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    #[serde(default)]
    pub compliance: Option<ComplianceDoc>,
    #[serde(default)]
    pub delegation: Option<DelegationDoc>,
}

/// A file holding several policies: `policies: [...]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiDoc {
    #[serde(default)]
    pub version: Option<yaml_serde::Value>,
    pub policies: Vec<PolicyDoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultActionDoc {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionDoc {
    Allow,
    Deny,
    Warn,
    RequireApproval,
    Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// CEL; absent means "always".
    #[serde(default)]
    pub condition: Option<String>,
    /// Absent only on a rule with `limit` (a pure rate limit).
    #[serde(default)]
    pub action: Option<ActionDoc>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub audit: Option<bool>,
    /// `N/second|minute|hour|day`.
    #[serde(default)]
    pub limit: Option<String>,
    /// Who may approve (`require_approval`).
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
    /// How long a pending approval lives, e.g. `15m`.
    #[serde(default)]
    pub approval_ttl: Option<String>,
    /// Text returned to the caller when this rule decides.
    #[serde(default)]
    pub message: Option<String>,
    /// How serious a call this rule stops is (trust weighs violations by it).
    #[serde(default)]
    pub severity: Option<SeverityDoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityDoc {
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityDoc {
    pub fn as_str(self) -> &'static str {
        match self {
            SeverityDoc::Low => "low",
            SeverityDoc::Medium => "medium",
            SeverityDoc::High => "high",
            SeverityDoc::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceDoc {
    #[serde(default)]
    pub frameworks: Vec<String>,
    /// The area the agents work in (for risk classification), e.g.
    /// `healthcare`, `employment`, `credit`.
    #[serde(default)]
    pub domain: Option<String>,
    /// Per action (tool or action type): the argument fields that are the
    /// minimum necessary. Required where a framework imposes the
    /// minimum-necessary standard.
    #[serde(default)]
    pub minimum_necessary: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationDoc {
    #[serde(default)]
    pub allow: Option<bool>,
    #[serde(default)]
    pub max_depth: Option<u8>,
    #[serde(default)]
    pub must_narrow: Option<bool>,
}
