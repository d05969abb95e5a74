//! Loading, validating and deciding.

use crate::analysis;
use crate::approval::{Approval, ApprovalStore, Binding, arguments_digest};
use crate::compile::{self, Compiled};
use crate::diag::{Diagnostic, LoadError, Locator, Severity};
use crate::eval::{self, EvalError};
use crate::limit::{Quota, RateLimiter};
pub use crate::model::SeverityDoc as RuleSeverity;
use crate::model::{ActionDoc, DefaultActionDoc, MultiDoc, PolicyDoc, RuleDoc};
use crate::schema::Request;
use agentmesh_capability::{Capability, covers_all};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Largest policy file accepted.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;
/// Most rules in one policy.
pub const MAX_RULES: usize = 10_000;
/// Compliance frameworks a policy may opt into.
pub const FRAMEWORKS: &[&str] = &["eu_ai_act", "hipaa", "soc2", "gdpr", "owasp_agentic"];

/// What a rule does when its condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Allow,
    Deny,
    Warn,
    RequireApproval,
    Log,
}

impl RuleAction {
    /// Among matches of equal priority, the most severe wins.
    fn severity(self) -> u8 {
        match self {
            RuleAction::Deny => 4,
            RuleAction::RequireApproval => 3,
            RuleAction::Warn => 2,
            RuleAction::Allow => 1,
            RuleAction::Log => 0,
        }
    }

    fn decisive(self) -> bool {
        self != RuleAction::Log
    }
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    /// `policy/rule`: the rate-limit and approval key.
    pub key: Arc<str>,
    pub description: Option<String>,
    pub condition: Option<Compiled>,
    pub condition_source: Option<String>,
    /// `None`: a pure rate-limit rule (no decision of its own).
    pub action: Option<RuleAction>,
    pub priority: i64,
    pub audit: bool,
    pub limit: Option<Quota>,
    pub approvers: Vec<String>,
    pub approval_ttl_secs: u64,
    pub message: Option<String>,
    /// How serious a call this rule stops is.
    pub severity: Option<RuleSeverity>,
    pub line: usize,
}

/// Which agents a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMatch {
    Any,
    /// A name or a DID.
    Named(String),
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: Arc<str>,
    pub description: Option<String>,
    pub agents: Vec<AgentMatch>,
    pub sponsor: Option<String>,
    pub capabilities: Option<Vec<Capability>>,
    pub default_allow: bool,
    /// Sorted by priority, highest first (stable: file order within a priority).
    pub rules: Vec<Rule>,
    pub frameworks: Vec<String>,
    /// Compliance domain (risk classification), if declared.
    pub domain: Option<String>,
    /// Minimum necessary argument fields per action.
    pub minimum_necessary: std::collections::BTreeMap<String, Vec<String>>,
    pub delegation_allowed: bool,
    pub delegation_max_depth: Option<u8>,
}

impl Policy {
    fn applies_to(&self, req: &Request) -> bool {
        self.agents.iter().any(|m| match m {
            AgentMatch::Any => true,
            AgentMatch::Named(n) => {
                req.agent.name.as_deref() == Some(n.as_str())
                    || req.agent.did.as_deref() == Some(n.as_str())
            }
        })
    }
}

/// A loaded, validated set of policies. Immutable; swap a new one in to
/// reload.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    /// First 16 hex digits of the SHA-256 of the source text.
    pub version: Arc<str>,
    pub origin: String,
    pub warnings: Vec<Diagnostic>,
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// Allowed, and flagged.
    Warn,
    Deny,
    /// Held until a human approves this exact call.
    RequireApproval,
    RateLimited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Warn => "warn",
            Outcome::Deny => "deny",
            Outcome::RequireApproval => "require_approval",
            Outcome::RateLimited => "rate_limited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "allow" => Outcome::Allow,
            "warn" => Outcome::Warn,
            "deny" => Outcome::Deny,
            "require_approval" => Outcome::RequireApproval,
            "rate_limited" => Outcome::RateLimited,
            _ => return None,
        })
    }
}

/// Why a decision came out as it did: a stable code for audit and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    RuleAllow,
    RuleWarn,
    RuleDeny,
    ApprovalRequired,
    ApprovalGranted,
    DefaultAllow,
    DefaultDeny,
    NoPolicy,
    SponsorMismatch,
    CapabilityNotHeld,
    CapabilityOutsidePolicy,
    InvalidCapability,
    DelegationNotAllowed,
    DelegationTooDeep,
    EvaluationError,
    RateLimited,
    /// A compliance obligation denied the call (prohibited practice,
    /// missing consent, arguments beyond the minimum necessary).
    ComplianceDeny,
    /// A human-oversight obligation holds the call for approval.
    ComplianceOversight,
    /// The caller is suspended, revoked, expired or no longer registered
    /// (checked on every call, not only at authentication).
    AgentInactive,
    /// The caller's trust score is below the gateway's floor.
    TrustBelowFloor,
    /// The tool's definition changed since it was pinned.
    ToolChanged,
    /// A held call was denied by an approver.
    ApprovalDenied,
    /// Nobody approved a held call before its approval expired.
    ApprovalExpired,
}

impl Reason {
    /// The stable snake_case code (as serialized, in audit and metrics).
    pub fn code(self) -> &'static str {
        match self {
            Reason::RuleAllow => "rule_allow",
            Reason::RuleWarn => "rule_warn",
            Reason::RuleDeny => "rule_deny",
            Reason::ApprovalRequired => "approval_required",
            Reason::ApprovalGranted => "approval_granted",
            Reason::DefaultAllow => "default_allow",
            Reason::DefaultDeny => "default_deny",
            Reason::NoPolicy => "no_policy",
            Reason::SponsorMismatch => "sponsor_mismatch",
            Reason::CapabilityNotHeld => "capability_not_held",
            Reason::CapabilityOutsidePolicy => "capability_outside_policy",
            Reason::InvalidCapability => "invalid_capability",
            Reason::DelegationNotAllowed => "delegation_not_allowed",
            Reason::DelegationTooDeep => "delegation_too_deep",
            Reason::EvaluationError => "evaluation_error",
            Reason::RateLimited => "rate_limited",
            Reason::ComplianceDeny => "compliance_deny",
            Reason::ComplianceOversight => "compliance_oversight",
            Reason::AgentInactive => "agent_inactive",
            Reason::TrustBelowFloor => "trust_below_floor",
            Reason::ToolChanged => "tool_changed",
            Reason::ApprovalDenied => "approval_denied",
            Reason::ApprovalExpired => "approval_expired",
        }
    }
}

/// Compliance settings in force for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComplianceSettings {
    pub frameworks: Vec<String>,
    pub domain: Option<String>,
    pub minimum_necessary: std::collections::BTreeMap<String, Vec<String>>,
}

/// A decision with everything the audit trail and the caller need.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: Reason,
    pub message: String,
    pub policy: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
    pub policy_version: Arc<str>,
    /// Marked for the audit trail by `audit: true` on a matching rule.
    pub audit: bool,
    /// `log` rules that matched.
    pub logged: Vec<Arc<str>>,
    pub retry_after_secs: Option<u64>,
    pub approval: Option<Approval>,
    /// Compliance frameworks of the applicable policies.
    pub frameworks: Vec<String>,
    /// Severity of the deciding rule, when it declares one.
    pub severity: Option<RuleSeverity>,
    /// Compliance controls this call triggered (`framework/control`), set by
    /// the compliance engine.
    pub controls: Vec<String>,
    /// Compliance obligations that acted on this call.
    pub obligations: Vec<String>,
    /// When set, only these argument fields may be forwarded (the minimum
    /// necessary); the gateway drops the others.
    pub restrict_arguments: Option<Vec<String>>,
}

impl Decision {
    /// A denial decided before or after the policy (identity, trust floor,
    /// tool pinning, approvals), under policy version `version`.
    pub fn denied(reason: Reason, message: String, version: Arc<str>) -> Self {
        Decision {
            outcome: Outcome::Deny,
            reason,
            message,
            policy: None,
            rule: None,
            policy_version: version,
            audit: true,
            logged: Vec::new(),
            retry_after_secs: None,
            approval: None,
            frameworks: Vec::new(),
            severity: None,
            controls: Vec::new(),
            obligations: Vec::new(),
            restrict_arguments: None,
        }
    }

    /// True when the call may proceed (allow or warn).
    pub fn allowed(&self) -> bool {
        matches!(self.outcome, Outcome::Allow | Outcome::Warn)
    }
}

/// What `decide` may use besides the request.
#[derive(Clone, Copy)]
pub struct DecideContext<'a> {
    pub limiter: Option<&'a dyn RateLimiter>,
    pub approvals: Option<&'a ApprovalStore>,
    /// Unix time in nanoseconds (rate limits) — seconds are derived from it.
    pub now_ns: u64,
}

impl std::fmt::Debug for DecideContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecideContext")
            .field("now_ns", &self.now_ns)
            .finish()
    }
}

impl DecideContext<'_> {
    /// No rate limiting, no approvals store (for lint/test/explain).
    pub fn bare(now_secs: u64) -> DecideContext<'static> {
        DecideContext {
            limiter: None,
            approvals: None,
            now_ns: now_secs.saturating_mul(1_000_000_000),
        }
    }
}

// ---------------------------------------------------------------- loading

impl PolicySet {
    /// Parses and validates policy YAML. `origin` names the file in
    /// diagnostics. Errors list every problem found, with positions.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, LoadError> {
        let file = origin.to_owned();
        let fail = |line: usize, column: usize, message: String| LoadError {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                file: file.clone(),
                line,
                column,
                message,
            }],
        };
        if text.len() > MAX_POLICY_BYTES {
            return Err(fail(
                0,
                0,
                format!(
                    "policy file is {} bytes; the limit is {MAX_POLICY_BYTES}",
                    text.len()
                ),
            ));
        }
        let yaml_err = |e: yaml_serde::Error| {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            fail(line, col, e.to_string())
        };
        // One document with `policies:`, or a single policy.
        let probe: yaml_serde::Value = yaml_serde::from_str(text).map_err(yaml_err)?;
        let is_multi = probe.get("policies").is_some();
        let (docs, version) = if is_multi {
            let m: MultiDoc = yaml_serde::from_str(text).map_err(yaml_err)?;
            (m.policies, m.version)
        } else if probe.is_mapping() {
            let p: PolicyDoc = yaml_serde::from_str(text).map_err(yaml_err)?;
            let v = p.version.clone();
            (vec![p], v)
        } else {
            return Err(fail(
                1,
                1,
                "a policy file is a YAML mapping (see docs/policy-language.md)".into(),
            ));
        };
        let mut b = Builder {
            file: origin.to_owned(),
            loc: Locator::new(text),
            diags: Vec::new(),
            search_from: 0,
        };
        b.check_version(version.as_ref());
        let mut policies = Vec::new();
        for (i, doc) in docs.into_iter().enumerate() {
            if let Some(p) = b.policy(doc, i, origin) {
                policies.push(p);
            }
        }
        let mut names: Vec<&str> = policies.iter().map(|p| &*p.name).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            let d = w[0].to_owned();
            b.error(
                0,
                0,
                format!("two policies are named `{d}`; names must be unique"),
            );
        }
        if policies.is_empty() && b.errors() == 0 {
            b.error(1, 1, "the file holds no policy".into());
        }
        if b.errors() > 0 {
            return Err(LoadError {
                diagnostics: b.diags,
            });
        }
        let digest = Sha256::digest(text.as_bytes());
        let version: String = digest[..8].iter().map(|x| format!("{x:02x}")).collect();
        Ok(Self {
            policies,
            version: version.into(),
            origin: origin.to_owned(),
            warnings: b.diags,
        })
    }

    /// Reads and validates a policy file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, LoadError> {
        let origin = path.display().to_string();
        let fail = |m: String| LoadError {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                file: origin.clone(),
                line: 0,
                column: 0,
                message: m,
            }],
        };
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if meta.len() > MAX_POLICY_BYTES as u64 {
            return Err(fail(format!(
                "policy file is {} bytes; the limit is {MAX_POLICY_BYTES}",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::from_yaml(&text, &origin)
    }

    pub fn rule_count(&self) -> usize {
        self.policies.iter().map(|p| p.rules.len()).sum()
    }
}

struct Builder<'a> {
    file: String,
    loc: Locator<'a>,
    diags: Vec<Diagnostic>,
    search_from: usize,
}

impl Builder<'_> {
    fn push(&mut self, severity: Severity, line: usize, column: usize, message: String) {
        self.diags.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            column,
            message,
        });
    }

    fn error(&mut self, line: usize, column: usize, message: String) {
        self.push(Severity::Error, line, column, message);
    }

    fn errors(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    fn check_version(&mut self, v: Option<&yaml_serde::Value>) {
        let Some(v) = v else { return };
        let text = match v {
            yaml_serde::Value::String(s) => s.clone(),
            yaml_serde::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        if !matches!(text.as_str(), "1" | "1.0") {
            let (l, c) = self.loc.top_key("version").unwrap_or((0, 0));
            self.error(
                l,
                c,
                format!(
                    "policy format version `{text}` is not supported; this build reads \"1.0\""
                ),
            );
        }
    }

    fn policy(&mut self, doc: PolicyDoc, index: usize, origin: &str) -> Option<Policy> {
        let errors_before = self.errors();
        let name: Arc<str> = doc
            .name
            .clone()
            .or_else(|| doc.agent.clone().map(|a| format!("policy-for-{a}")))
            .unwrap_or_else(|| {
                let stem = std::path::Path::new(origin)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "policy".into());
                if index == 0 {
                    stem
                } else {
                    format!("{stem}-{index}")
                }
            })
            .into();
        let agents = match (&doc.agent, &doc.agents) {
            (Some(_), Some(_)) => {
                let (l, c) = self.loc.top_key("agents").unwrap_or((0, 0));
                self.error(
                    l,
                    c,
                    format!("policy `{name}`: give `agent` or `agents`, not both"),
                );
                Vec::new()
            }
            (Some(a), None) => vec![a.clone()],
            (None, Some(list)) => list.clone(),
            (None, None) => {
                self.error(
                    0,
                    0,
                    format!("policy `{name}` says nothing about which agents it covers: add `agent: <name>` or `agents: [\"*\"]`"),
                );
                Vec::new()
            }
        };
        let agents: Vec<AgentMatch> = agents
            .into_iter()
            .map(|a| {
                if a == "*" {
                    AgentMatch::Any
                } else {
                    AgentMatch::Named(a)
                }
            })
            .collect();
        if agents
            .iter()
            .any(|a| matches!(a, AgentMatch::Named(n) if n.trim().is_empty()))
        {
            self.error(0, 0, format!("policy `{name}`: an empty agent name"));
        }
        let capabilities = doc.capabilities.as_ref().map(|caps| {
            caps.iter()
                .filter_map(|c| match Capability::parse(c) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        let (l, col) = self.loc.top_key("capabilities").unwrap_or((0, 0));
                        self.error(l, col, format!("policy `{name}`: {e}"));
                        None
                    }
                })
                .collect::<Vec<_>>()
        });
        let mut frameworks = Vec::new();
        if let Some(c) = &doc.compliance {
            for f in &c.frameworks {
                let norm = f.to_ascii_lowercase().replace(['-', ' '], "_");
                let norm = match norm.as_str() {
                    "soc_2" => "soc2".to_owned(),
                    "eu_ai" | "euaiact" | "ai_act" => "eu_ai_act".to_owned(),
                    _ => norm,
                };
                if FRAMEWORKS.contains(&norm.as_str()) {
                    frameworks.push(norm);
                } else {
                    let (l, col) = self.loc.top_key("compliance").unwrap_or((0, 0));
                    self.error(
                        l,
                        col,
                        format!(
                            "policy `{name}`: unknown compliance framework `{f}` (known: {})",
                            FRAMEWORKS.join(", ")
                        ),
                    );
                }
            }
        }
        let (delegation_allowed, delegation_max_depth) = match &doc.delegation {
            None => (true, None),
            Some(d) => {
                if d.must_narrow == Some(false) {
                    let (l, col) = self.loc.top_key("delegation").unwrap_or((0, 0));
                    self.error(
                        l,
                        col,
                        format!(
                            "policy `{name}`: `must_narrow: false` cannot be honoured: AgentMesh delegation chains always narrow"
                        ),
                    );
                }
                (d.allow.unwrap_or(true), d.max_depth)
            }
        };
        if doc.rules.len() > MAX_RULES {
            self.error(
                0,
                0,
                format!(
                    "policy `{name}` has {} rules; the limit is {MAX_RULES}",
                    doc.rules.len()
                ),
            );
            return None;
        }
        let mut rules = Vec::with_capacity(doc.rules.len());
        for r in doc.rules {
            if let Some(rule) = self.rule(&name, r) {
                rules.push(rule);
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        let mut dup = None;
        for r in &rules {
            if seen.contains(&&*r.name) {
                dup = Some((r.name.to_string(), r.line));
            }
            seen.push(&r.name);
        }
        if let Some((d, line)) = dup {
            self.error(
                line,
                1,
                format!("policy `{name}`: two rules are named `{d}`"),
            );
        }
        // Highest priority first; stable keeps file order within a priority.
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        self.shadowing(&name, &rules);
        if self.errors() > errors_before {
            return None;
        }
        Some(Policy {
            name,
            description: doc.description,
            agents,
            sponsor: doc.sponsor.map(|s| s.to_ascii_lowercase()),
            capabilities,
            default_allow: doc.default_action == Some(DefaultActionDoc::Allow),
            rules,
            frameworks,
            domain: doc.compliance.as_ref().and_then(|c| c.domain.clone()),
            minimum_necessary: doc
                .compliance
                .as_ref()
                .map(|c| c.minimum_necessary.clone())
                .unwrap_or_default(),
            delegation_allowed,
            delegation_max_depth,
        })
    }

    fn rule(&mut self, policy: &str, r: RuleDoc) -> Option<Rule> {
        let rule_line = self.loc.rule_line(&r.name, self.search_from);
        if let Some(l) = rule_line {
            self.search_from = l + 1;
        }
        let line = rule_line.map(|l| l + 1).unwrap_or(0);
        let before = self.errors();
        if r.name.trim().is_empty() {
            self.error(
                line,
                1,
                format!("policy `{policy}`: a rule has an empty name"),
            );
        }
        let condition = match &r.condition {
            None => None,
            Some(src) => match compile::compile(src) {
                Ok(c) => {
                    if let Some(why) = analysis::never_true(&c.node) {
                        let (l, col) = self.cond_pos(rule_line, None);
                        self.error(l, col, format!("rule `{}` can never match: {why}", r.name));
                    }
                    for name in analysis::namespaced_tool_literals(&c.node) {
                        let (l, col) = self.cond_pos(rule_line, None);
                        let hint = match name.split_once("__") {
                            Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
                                format!(
                                    "write `action.server == '{server}' && action.tool == '{tool}'`"
                                )
                            }
                            _ => "compare `action.server` and `action.tool`".to_owned(),
                        };
                        self.push(
                            Severity::Warning,
                            l,
                            col,
                            format!(
                                "rule `{}` compares action.tool with `{name}`, a gateway's namespaced form: action.tool is the tool as its server names it, so this never matches; {hint}",
                                r.name
                            ),
                        );
                    }
                    Some(c)
                }
                Err(e) => {
                    let (l, col) = self.cond_pos(rule_line, e.offset);
                    self.error(l, col, format!("rule `{}`: {}", r.name, e.message));
                    None
                }
            },
        };
        let limit = match &r.limit {
            None => None,
            Some(s) => match Quota::parse(s) {
                Ok(q) => Some(q),
                Err(e) => {
                    let (l, col) = rule_line
                        .and_then(|rl| self.loc.key_in_rule(rl, "limit"))
                        .unwrap_or((line, 1));
                    self.error(l, col, format!("rule `{}`: {e}", r.name));
                    None
                }
            },
        };
        let action = match r.action {
            Some(ActionDoc::Allow) => Some(RuleAction::Allow),
            Some(ActionDoc::Deny) => Some(RuleAction::Deny),
            Some(ActionDoc::Warn) => Some(RuleAction::Warn),
            Some(ActionDoc::RequireApproval) => Some(RuleAction::RequireApproval),
            Some(ActionDoc::Log) => Some(RuleAction::Log),
            None if r.limit.is_some() => None,
            None => {
                self.error(
                    line,
                    1,
                    format!("rule `{}` has no action: add `action: allow|deny|warn|require_approval|log`", r.name),
                );
                None
            }
        };
        if limit.is_some() && action == Some(RuleAction::Deny) {
            self.error(
                line,
                1,
                format!("rule `{}`: a limit on a deny rule can never apply", r.name),
            );
        }
        let approval_ttl_secs = match &r.approval_ttl {
            None => 900,
            Some(s) => match parse_secs(s) {
                Some(v) if v > 0 => v,
                _ => {
                    self.error(
                        line,
                        1,
                        format!(
                            "rule `{}`: approval_ttl `{s}` is not a duration like 15m or 1h",
                            r.name
                        ),
                    );
                    0
                }
            },
        };
        if action != Some(RuleAction::RequireApproval)
            && (r.approvers.is_some() || r.approval_ttl.is_some())
        {
            self.error(
                line,
                1,
                format!(
                    "rule `{}`: approvers/approval_ttl only apply to action: require_approval",
                    r.name
                ),
            );
        }
        if self.errors() > before {
            return None;
        }
        Some(Rule {
            key: format!("{policy}/{}", r.name).into(),
            name: r.name.into(),
            description: r.description,
            condition_source: r.condition,
            condition,
            action,
            priority: r.priority.unwrap_or(0),
            audit: r.audit.unwrap_or(false),
            limit,
            approvers: r.approvers.unwrap_or_default(),
            approval_ttl_secs,
            message: r.message,
            severity: r.severity,
            line,
        })
    }

    fn cond_pos(&self, rule_line: Option<usize>, offset: Option<usize>) -> (usize, usize) {
        match rule_line.and_then(|rl| self.loc.key_in_rule(rl, "condition")) {
            Some((l, c)) => (l, c + offset.unwrap_or(0)),
            None => (rule_line.map(|l| l + 1).unwrap_or(0), 1),
        }
    }

    /// A decisive rule is unreachable when a higher-priority decisive rule
    /// matches whenever it does, or an equal-priority rule that wins
    /// conflicts does.
    fn shadowing(&mut self, policy: &str, rules: &[Rule]) {
        for (i, b) in rules.iter().enumerate() {
            let Some(ba) = b.action.filter(|a| a.decisive()) else {
                continue;
            };
            for a in &rules[..i] {
                let Some(aa) = a.action.filter(|x| x.decisive()) else {
                    continue;
                };
                let wins = a.priority > b.priority
                    || (a.priority == b.priority && aa.severity() > ba.severity());
                if wins
                    && analysis::implies(
                        b.condition.as_ref().map(|c| &c.node),
                        a.condition.as_ref().map(|c| &c.node),
                    )
                {
                    let why = if a.priority > b.priority {
                        format!(
                            "higher-priority rule `{}` ({:?}) matches every request it does",
                            a.name, aa
                        )
                    } else {
                        format!(
                            "rule `{}` ({:?}) matches every request it does and wins at equal priority",
                            a.name, aa
                        )
                    };
                    self.error(
                        b.line,
                        1,
                        format!("policy `{policy}`: rule `{}` is unreachable: {why}", b.name),
                    );
                    break;
                }
            }
        }
    }
}

fn parse_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

// ---------------------------------------------------------------- deciding

/// A rule that matched, during one decision.
#[derive(Clone, Copy)]
struct Hit<'p> {
    policy: &'p Policy,
    rule: &'p Rule,
}

impl PolicySet {
    /// Decides a request. See `docs/policy-language.md` for the semantics:
    /// gates first (applicability, sponsor, delegation, capability), then
    /// rules (highest priority wins; at equal priority deny >
    /// require_approval > warn > allow), then rate limits, then approvals.
    /// Anything that cannot be evaluated denies.
    pub fn decide(&self, req: &Request, ctx: &DecideContext<'_>) -> Decision {
        let mut d = self.decide_inner(req, ctx);
        if d.frameworks.is_empty() {
            for p in self.policies.iter().filter(|p| p.applies_to(req)) {
                for f in &p.frameworks {
                    if !d.frameworks.contains(f) {
                        d.frameworks.push(f.clone());
                    }
                }
            }
        }
        d
    }

    fn base(&self, outcome: Outcome, reason: Reason, message: String) -> Decision {
        Decision {
            outcome,
            reason,
            message,
            policy: None,
            rule: None,
            policy_version: self.version.clone(),
            audit: false,
            logged: Vec::new(),
            retry_after_secs: None,
            approval: None,
            frameworks: Vec::new(),
            severity: None,
            controls: Vec::new(),
            obligations: Vec::new(),
            restrict_arguments: None,
        }
    }

    fn deny(&self, reason: Reason, message: String, policy: Option<&Policy>) -> Decision {
        let mut d = self.base(Outcome::Deny, reason, message);
        d.policy = policy.map(|p| p.name.clone());
        d
    }

    fn decide_inner(&self, req: &Request, ctx: &DecideContext<'_>) -> Decision {
        let applicable: Vec<&Policy> = self.policies.iter().filter(|p| p.applies_to(req)).collect();
        if applicable.is_empty() {
            let who = req
                .agent
                .name
                .as_deref()
                .or(req.agent.did.as_deref())
                .unwrap_or("an unnamed agent");
            return self.deny(
                Reason::NoPolicy,
                format!("no policy applies to {who}; default deny"),
                None,
            );
        }
        if let Some(d) = self.gates(req, &applicable) {
            return d;
        }

        // Rules: evaluate every condition; remember the winning decisive
        // match, matched log and limit rules, and the first error.
        let mut winner: Option<Hit<'_>> = None;
        let mut audit = false;
        let mut logged = Vec::new();
        let mut limited: Vec<Hit<'_>> = Vec::new();
        for p in &applicable {
            for r in &p.rules {
                let matched = match &r.condition {
                    None => true,
                    Some(c) if eval::guard_excludes(c, req) => false,
                    Some(c) => match eval::eval_bool(&c.node, req) {
                        Ok(b) => b,
                        Err(e) => return self.eval_error(p, r, &e),
                    },
                };
                if !matched {
                    continue;
                }
                audit |= r.audit;
                if r.limit.is_some() {
                    limited.push(Hit { policy: p, rule: r });
                }
                match r.action {
                    Some(RuleAction::Log) => logged.push(r.key.clone()),
                    Some(a) => {
                        let better = match winner {
                            None => true,
                            Some(w) => {
                                let wa = w.rule.action.map(RuleAction::severity).unwrap_or(0);
                                r.priority > w.rule.priority
                                    || (r.priority == w.rule.priority && a.severity() > wa)
                            }
                        };
                        if better {
                            winner = Some(Hit { policy: p, rule: r });
                        }
                    }
                    None => {}
                }
            }
        }

        let mut d = match winner {
            Some(w) => {
                let (outcome, reason) = match w.rule.action {
                    Some(RuleAction::Deny) => (Outcome::Deny, Reason::RuleDeny),
                    Some(RuleAction::Warn) => (Outcome::Warn, Reason::RuleWarn),
                    Some(RuleAction::RequireApproval) => {
                        (Outcome::RequireApproval, Reason::ApprovalRequired)
                    }
                    _ => (Outcome::Allow, Reason::RuleAllow),
                };
                let message = w.rule.message.clone().unwrap_or_else(|| {
                    format!(
                        "rule `{}` of policy `{}` ({})",
                        w.rule.name,
                        w.policy.name,
                        outcome.as_str()
                    )
                });
                let mut d = self.base(outcome, reason, message);
                d.policy = Some(w.policy.name.clone());
                d.rule = Some(w.rule.name.clone());
                d.severity = w.rule.severity;
                d
            }
            None => {
                let deny = applicable.iter().any(|p| !p.default_allow);
                let (outcome, reason, what) = if deny {
                    (Outcome::Deny, Reason::DefaultDeny, "deny")
                } else {
                    (Outcome::Allow, Reason::DefaultAllow, "allow")
                };
                let mut d = self.base(outcome, reason, format!("no rule matched; default {what}"));
                d.policy = Some(applicable[0].name.clone());
                d
            }
        };
        d.audit = audit;
        d.logged = logged;

        if d.outcome != Outcome::Deny
            && let Some(limiter) = ctx.limiter
        {
            let agent = req
                .agent
                .did
                .as_deref()
                .or(req.agent.name.as_deref())
                .unwrap_or("anonymous");
            for h in &limited {
                let Some(q) = h.rule.limit else { continue };
                if let Err(retry_ns) = limiter.acquire(agent, &h.rule.key, q, ctx.now_ns) {
                    let secs = retry_ns.div_ceil(1_000_000_000);
                    d.outcome = Outcome::RateLimited;
                    d.reason = Reason::RateLimited;
                    d.message = format!(
                        "rate limit {q} of rule `{}` exceeded; retry in {secs} s",
                        h.rule.name
                    );
                    d.policy = Some(h.policy.name.clone());
                    d.rule = Some(h.rule.name.clone());
                    d.retry_after_secs = Some(secs);
                    return d;
                }
            }
        }

        if d.outcome == Outcome::RequireApproval
            && let (Some(store), Some(w)) = (ctx.approvals, winner)
        {
            let binding = self.binding(req, w.rule);
            let now = ctx.now_ns / 1_000_000_000;
            if let Some(granted) = store.take_approved(&binding, now) {
                d.outcome = Outcome::Allow;
                d.reason = Reason::ApprovalGranted;
                let by = match &granted.state {
                    crate::approval::ApprovalState::Used { by, .. } => by.clone(),
                    _ => String::new(),
                };
                d.message = format!("approved by {by} ({})", granted.id);
                d.approval = Some(granted);
            } else {
                let pending =
                    store.request(binding, &w.rule.approvers, w.rule.approval_ttl_secs, now);
                d.message = format!("{}; approval {} pending", d.message, pending.id);
                d.approval = Some(pending);
            }
        }
        d
    }

    /// The approval binding of a request under `rule`.
    pub fn binding(&self, req: &Request, rule: &Rule) -> Binding {
        self.binding_for(req, &rule.key)
    }

    /// The approval binding of a request under any named reason (a rule key
    /// or a compliance control).
    pub fn binding_for(&self, req: &Request, rule_key: &str) -> Binding {
        Binding {
            caller: req
                .agent
                .did
                .clone()
                .or_else(|| req.agent.name.clone())
                .unwrap_or_default(),
            action: req
                .action
                .tool
                .clone()
                .or_else(|| req.action.kind.clone())
                .or_else(|| req.action.capability.clone())
                .unwrap_or_default(),
            arguments_sha256: arguments_digest(req.request.arguments.as_ref()),
            policy_version: self.version.to_string(),
            rule: rule_key.to_owned(),
        }
    }

    /// Compliance settings of the policies that apply to `req`: their
    /// frameworks, the first declared domain, and the minimum-necessary
    /// fields (merged).
    pub fn compliance_for(&self, req: &Request) -> ComplianceSettings {
        let mut out = ComplianceSettings::default();
        for p in self.policies.iter().filter(|p| p.applies_to(req)) {
            for f in &p.frameworks {
                if !out.frameworks.contains(f) {
                    out.frameworks.push(f.clone());
                }
            }
            if out.domain.is_none() {
                out.domain = p.domain.clone();
            }
            for (k, v) in &p.minimum_necessary {
                out.minimum_necessary
                    .entry(k.clone())
                    .or_default()
                    .extend(v.iter().cloned());
            }
        }
        out
    }

    fn eval_error(&self, p: &Policy, r: &Rule, e: &EvalError) -> Decision {
        let mut d = self.deny(
            Reason::EvaluationError,
            format!("rule `{}` could not be evaluated ({e}); denying", r.name),
            Some(p),
        );
        d.rule = Some(r.name.clone());
        d.audit = true;
        d
    }

    /// Sponsor, delegation and capability gates, before any rule runs.
    fn gates(&self, req: &Request, applicable: &[&Policy]) -> Option<Decision> {
        for p in applicable {
            if let Some(s) = &p.sponsor {
                let actual = req.agent.sponsor.as_deref().map(str::to_ascii_lowercase);
                if actual.as_deref() != Some(s.as_str()) {
                    return Some(self.deny(
                        Reason::SponsorMismatch,
                        format!(
                            "policy `{}` covers agents sponsored by {s}; this agent's sponsor is {}",
                            p.name,
                            actual.as_deref().unwrap_or("unknown")
                        ),
                        Some(p),
                    ));
                }
            }
            if let Some(depth) = req.agent.delegation_depth.filter(|d| *d > 0) {
                if !p.delegation_allowed {
                    return Some(self.deny(
                        Reason::DelegationNotAllowed,
                        format!(
                            "policy `{}` does not allow delegated calls (depth {depth})",
                            p.name
                        ),
                        Some(p),
                    ));
                }
                if let Some(max) = p.delegation_max_depth
                    && depth > i64::from(max)
                {
                    return Some(self.deny(
                        Reason::DelegationTooDeep,
                        format!(
                            "delegation depth {depth} exceeds policy `{}`'s max_depth {max}",
                            p.name
                        ),
                        Some(p),
                    ));
                }
            }
        }
        let wanted = req.action.capability.as_deref()?;
        let cap = match Capability::parse(wanted) {
            Ok(c) => c,
            Err(e) => {
                return Some(self.deny(
                    Reason::InvalidCapability,
                    format!("action.capability: {e}"),
                    None,
                ));
            }
        };
        let held: Vec<Capability> = req
            .agent
            .capabilities
            .iter()
            .flatten()
            .filter_map(|c| Capability::parse(c).ok())
            .collect();
        if !covers_all(&held, std::slice::from_ref(&cap)) {
            return Some(self.deny(
                Reason::CapabilityNotHeld,
                format!("the agent does not hold {cap}"),
                None,
            ));
        }
        for p in applicable {
            if let Some(ceiling) = &p.capabilities
                && !covers_all(ceiling, std::slice::from_ref(&cap))
            {
                return Some(self.deny(
                    Reason::CapabilityOutsidePolicy,
                    format!("{cap} is outside policy `{}`'s capabilities", p.name),
                    Some(p),
                ));
            }
        }
        None
    }
}

// ---------------------------------------------------------------- explain

/// One rule's evaluation, for `policy explain`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleTrace {
    pub policy: String,
    pub rule: String,
    pub priority: i64,
    pub action: Option<RuleAction>,
    pub limit: Option<String>,
    pub condition: Option<String>,
    /// `matched`, `not matched` or `error`.
    pub result: String,
    pub error: Option<String>,
    /// Each top-level clause of the condition and its value.
    pub clauses: Vec<(String, String)>,
    /// Each attribute the condition reads and its value in the request.
    pub attributes: Vec<(String, String)>,
}

/// A full account of a decision.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub decision: Decision,
    pub applicable_policies: Vec<String>,
    pub skipped_policies: Vec<String>,
    pub rules: Vec<RuleTrace>,
}

impl PolicySet {
    /// Decides `req` (without rate limits or approvals) and reports every
    /// rule of every applicable policy: matched or not, and why.
    pub fn explain(&self, req: &Request, now_secs: u64) -> Explanation {
        let decision = self.decide(req, &DecideContext::bare(now_secs));
        let mut applicable = Vec::new();
        let mut skipped = Vec::new();
        let mut rules = Vec::new();
        for p in &self.policies {
            if !p.applies_to(req) {
                skipped.push(p.name.to_string());
                continue;
            }
            applicable.push(p.name.to_string());
            for r in &p.rules {
                let (result, error, clauses, attributes) = match &r.condition {
                    None => ("matched".to_owned(), None, Vec::new(), Vec::new()),
                    Some(c) => {
                        let res = eval::eval_bool(&c.node, req);
                        let parts: Vec<&compile::Node> = match &c.node {
                            compile::Node::And(p) | compile::Node::Or(p) => p.iter().collect(),
                            n => vec![n],
                        };
                        let clauses = parts
                            .iter()
                            .map(|n| {
                                let v = match eval::eval_value(n, req) {
                                    Ok(v) => v.to_string(),
                                    Err(e) => format!("error: {e}"),
                                };
                                (n.to_string(), v)
                            })
                            .collect();
                        let attributes = c
                            .reads
                            .iter()
                            .map(|path| (path.clone(), read_attr(req, path)))
                            .collect();
                        match res {
                            Ok(true) => ("matched".to_owned(), None, clauses, attributes),
                            Ok(false) => ("not matched".to_owned(), None, clauses, attributes),
                            Err(e) => {
                                ("error".to_owned(), Some(e.to_string()), clauses, attributes)
                            }
                        }
                    }
                };
                rules.push(RuleTrace {
                    policy: p.name.to_string(),
                    rule: r.name.to_string(),
                    priority: r.priority,
                    action: r.action,
                    limit: r.limit.map(|q| q.to_string()),
                    condition: r.condition_source.clone(),
                    result,
                    error,
                    clauses,
                    attributes,
                });
            }
        }
        Explanation {
            decision,
            applicable_policies: applicable,
            skipped_policies: skipped,
            rules,
        }
    }
}

fn read_attr(req: &Request, path: &str) -> String {
    // `path == path` compiles for every attribute type; its left side is
    // the attribute node.
    let node = compile::compile(&format!("{path} == {path}"))
        .ok()
        .and_then(|c| match c.node {
            compile::Node::Cmp(_, a, _) => Some(*a),
            _ => None,
        });
    match node.map(|n| eval::eval_value(&n, req).map(|v| v.to_string())) {
        Some(Ok(v)) => v,
        _ => "absent".to_owned(),
    }
}

#[cfg(test)]
mod reason_tests {
    use super::Reason;

    #[test]
    fn reason_codes_are_the_serialized_names() {
        use Reason::*;
        for r in [
            RuleAllow,
            RuleWarn,
            RuleDeny,
            ApprovalRequired,
            ApprovalGranted,
            DefaultAllow,
            DefaultDeny,
            NoPolicy,
            SponsorMismatch,
            CapabilityNotHeld,
            CapabilityOutsidePolicy,
            InvalidCapability,
            DelegationNotAllowed,
            DelegationTooDeep,
            EvaluationError,
            RateLimited,
            ComplianceDeny,
            ComplianceOversight,
            AgentInactive,
            TrustBelowFloor,
            ToolChanged,
            ApprovalDenied,
            ApprovalExpired,
        ] {
            assert_eq!(
                serde_json::to_value(r).expect("serialize"),
                serde_json::Value::from(r.code()),
                "{r:?}"
            );
        }
    }
}
