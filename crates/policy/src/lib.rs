//! Policies: the seed's YAML with CEL conditions.
//!
//! * [`PolicySet::from_yaml`] / [`PolicySet::from_file`] parse and validate
//!   a policy file, failing with `file:line:col` diagnostics on unknown
//!   keys, unknown attributes, type errors, malformed limits, rules that can
//!   never match and rules shadowed by others.
//! * [`PolicySet::decide`] turns a [`Request`] into a [`Decision`]; anything
//!   that cannot be evaluated denies. [`PolicySet::explain`] says why.
//! * [`RateLimiter`] (GCRA, [`MemoryLimiter`] in process) and
//!   [`ApprovalStore`] hold the state decisions need.
//! * [`PolicyHandle`] swaps in a new version atomically on reload and keeps
//!   the old one when the new file is invalid.
//!
//! The language is specified in `docs/policy-language.md`.

#![forbid(unsafe_code)]

mod analysis;
mod approval;
pub mod arguments;
mod cases;
mod compile;
mod diag;
mod eval;
mod limit;
mod model;
mod policy;
mod reload;
pub mod schema;
mod schema_json;

pub use approval::{
    Approval, ApprovalError, ApprovalState, ApprovalStore, Binding, DECISION_DOMAIN,
    DecisionStatement, arguments_digest,
};
pub use cases::{CaseResult, DEFAULT_CASE_TIME, run_cases};
pub use compile::{
    MAX_CONDITION_LEN, MAX_NESTING, compile as compile_condition, translate_seed_spelling,
};
pub use diag::{Diagnostic, LoadError, Severity};
pub use eval::EvalError;
pub use limit::{MemoryLimiter, Quota, RateLimiter};
pub use policy::{
    AgentMatch, ComplianceSettings, DecideContext, Decision, Explanation, FRAMEWORKS,
    MAX_POLICY_BYTES, MAX_RULES, Outcome, Policy, PolicySet, Reason, Rule, RuleAction,
    RuleSeverity, RuleTrace,
};
pub use reload::{PolicyHandle, ReloadEvent, Watcher};
pub use schema::Request;
pub use schema_json::policy_schema;

/// True when a condition's equality guard rules it out for `req` without
/// evaluating it (see [`compile::Compiled::guard`]).
pub fn guard_excludes(c: &compile::Compiled, req: &Request) -> bool {
    eval::guard_excludes(c, req)
}

/// Evaluates one compiled condition against a request (for benchmarks and
/// tools): `Ok(true/false)` or the evaluation error.
pub fn eval_condition(c: &compile::Compiled, req: &Request) -> Result<bool, EvalError> {
    eval::eval_bool(&c.node, req)
}
