//! `policy test`: a file of requests and the decision each must get,
//! like `opa test`.
//!
//! ```yaml
//! cases:
//!   - name: trusted agent reads
//!     request: {agent: {name: data-analyst-agent, trust_score: 0.9}, action: {type: read}}
//!     expect: allow            # allow | warn | deny | require_approval | rate_limited
//!     rule: require-high-trust # optional: the deciding rule
//!     reason: rule_allow       # optional: the reason code
//!     repeat: 1                # optional: decide N times; the last must match
//!     approve_by: x@y.com      # optional: approve the pending approval, decide again
//!     now: 1800000000          # optional: unix seconds (time.* is derived from it)
//! ```

use crate::approval::ApprovalStore;
use crate::diag::{Diagnostic, LoadError, Severity};
use crate::limit::MemoryLimiter;
use crate::policy::{DecideContext, Decision, Outcome, PolicySet};
use crate::schema::{Request, TimeAttrs};
use serde::{Deserialize, Serialize};

/// Default clock for cases: 2027-01-15T08:00:00Z (a Friday).
pub const DEFAULT_CASE_TIME: u64 = 1_800_000_000;

/// Largest `repeat` a case may ask for.
const MAX_REPEAT: u32 = 100_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    request: Request,
    expect: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    repeat: Option<u32>,
    #[serde(default)]
    approve_by: Option<String>,
    #[serde(default)]
    now: Option<u64>,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    pub decision: Decision,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

/// Runs every case of `text` against `set`. A malformed case file is an
/// error with positions; failing cases are results with `passed: false`.
pub fn run_cases(set: &PolicySet, text: &str, origin: &str) -> Result<Vec<CaseResult>, LoadError> {
    let file: CaseFile = yaml_serde::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        LoadError {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                file: origin.to_owned(),
                line,
                column,
                message: e.to_string(),
            }],
        }
    })?;
    let mut results = Vec::with_capacity(file.cases.len());
    for case in file.cases {
        let Some(expected) = Outcome::parse(&case.expect) else {
            return Err(LoadError {
                diagnostics: vec![Diagnostic {
                    severity: Severity::Error,
                    file: origin.to_owned(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "case `{}`: expect `{}` is not one of allow, warn, deny, require_approval, rate_limited",
                        case.name, case.expect
                    ),
                }],
            });
        };
        // `repeat` exists to exhaust rate limits; an unbounded count would
        // turn a typo into a `policy test` that never finishes.
        if case.repeat.is_some_and(|n| n > MAX_REPEAT) {
            return Err(LoadError {
                diagnostics: vec![Diagnostic {
                    severity: Severity::Error,
                    file: origin.to_owned(),
                    line: 0,
                    column: 0,
                    message: format!("case `{}`: repeat is at most {MAX_REPEAT}", case.name),
                }],
            });
        }
        let now = case.now.unwrap_or(DEFAULT_CASE_TIME);
        let mut req = case.request.clone();
        if req.time == TimeAttrs::default() {
            req.time = TimeAttrs::at(i64::try_from(now).unwrap_or(i64::MAX));
        }
        // Arguments are judged as the gateways judge them: normalised by
        // the one normaliser (path arguments by the built-in heuristic; a
        // gateway's `path_arguments` may name others). An argument that
        // cannot be judged is denied, as a gateway denies it.
        let unjudgeable = match req.request.arguments.as_mut() {
            Some(args) => crate::arguments::PathRules::default().apply(args).err(),
            None => None,
        };
        if let Some(e) = unjudgeable {
            let decision = Decision::denied(
                crate::Reason::EvaluationError,
                e.to_string(),
                set.version.clone(),
            );
            let passed = expected == Outcome::Deny;
            results.push(CaseResult {
                name: case.name,
                passed,
                failure: (!passed).then(|| format!("expected {}, got deny ({e})", case.expect)),
                expected: case.expect,
                decision,
            });
            continue;
        }
        let limiter = MemoryLimiter::new();
        let approvals = ApprovalStore::new();
        let ctx = DecideContext {
            limiter: Some(&limiter),
            approvals: Some(&approvals),
            now_ns: now.saturating_mul(1_000_000_000),
        };
        let mut decision = set.decide(&req, &ctx);
        for _ in 1..case.repeat.unwrap_or(1).max(1) {
            decision = set.decide(&req, &ctx);
        }
        if let (Some(by), Some(a)) = (&case.approve_by, &decision.approval)
            && decision.outcome == Outcome::RequireApproval
        {
            if let Err(e) = approvals.approve(&a.id, by, now) {
                results.push(CaseResult {
                    name: case.name,
                    passed: false,
                    expected: case.expect,
                    decision,
                    failure: Some(format!("approving failed: {e}")),
                });
                continue;
            }
            decision = set.decide(&req, &ctx);
        }
        let mut failure = None;
        if decision.outcome != expected {
            failure = Some(format!(
                "expected {}, got {} ({})",
                expected.as_str(),
                decision.outcome.as_str(),
                decision.message
            ));
        } else if let Some(rule) = &case.rule
            && decision.rule.as_deref() != Some(rule.as_str())
        {
            failure = Some(format!(
                "expected rule `{rule}`, got {}",
                decision
                    .rule
                    .as_deref()
                    .map(|r| format!("`{r}`"))
                    .unwrap_or_else(|| "no rule".into())
            ));
        } else if let Some(reason) = &case.reason {
            let got = serde_json::to_value(decision.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if &got != reason {
                failure = Some(format!("expected reason `{reason}`, got `{got}`"));
            }
        }
        results.push(CaseResult {
            name: case.name,
            passed: failure.is_none(),
            expected: case.expect,
            decision,
            failure,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_case_files_are_errors() {
        let set = PolicySet::from_yaml("agent: \"*\"\ndefault_action: allow\n", "p.yaml")
            .expect("policy");
        for (text, want) in [
            ("cases: [", "t.yaml:"),
            ("cases:\n  - name: a\n    expect: maybe\n", "not one of"),
            (
                "cases:\n  - name: a\n    expect: allow\n    repeat: 4000000000\n",
                "repeat is at most",
            ),
            (
                "cases:\n  - name: a\n    expect: allow\n    now: -1\n",
                "t.yaml:",
            ),
        ] {
            let e = run_cases(&set, text, "t.yaml").expect_err(text);
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        let ok = "cases:\n  - name: a\n    expect: allow\n    repeat: 3\n    now: 18446744073709551615\n";
        let results = run_cases(&set, ok, "t.yaml").expect("valid case file");
        assert!(results[0].passed, "{:?}", results[0].failure);
    }
}
