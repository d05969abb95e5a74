//! `agentmesh policy lint|test|explain|schema`: no mesh home needed.

use crate::PolicyCmd;
use crate::commands::{parse_time, read_input};
use crate::output::{Output, table};
use agentmesh_policy::{PolicySet, Request, run_cases};
use anyhow::{Context, Result, anyhow};
use serde_json::json;

pub fn run(cmd: PolicyCmd, now: u64) -> Result<Output> {
    match cmd {
        PolicyCmd::Lint { files } => {
            let mut text = String::new();
            let mut results = Vec::new();
            let mut failed = false;
            for f in &files {
                match PolicySet::from_file(f) {
                    Ok(set) => {
                        for w in &set.warnings {
                            text.push_str(&format!("{w}\n"));
                        }
                        text.push_str(&format!(
                            "ok: {} ({} polic{}, {} rules, version {})\n",
                            f.display(),
                            set.policies.len(),
                            if set.policies.len() == 1 { "y" } else { "ies" },
                            set.rule_count(),
                            set.version
                        ));
                        results.push(json!({"file": f, "ok": true, "version": &*set.version,
                            "policies": set.policies.len(), "rules": set.rule_count(), "warnings": set.warnings}));
                    }
                    Err(e) => {
                        failed = true;
                        text.push_str(&format!("{e}\n"));
                        results.push(json!({"file": f, "ok": false, "diagnostics": e.diagnostics}));
                    }
                }
            }
            let out = Output::new(json!({ "files": results }), text);
            Ok(if failed { out.with_code(1) } else { out })
        }
        PolicyCmd::Test { file, cases } => {
            let set = PolicySet::from_file(&file).map_err(|e| anyhow!("{e}"))?;
            let text = std::fs::read_to_string(&cases)
                .with_context(|| format!("reading {}", cases.display()))?;
            let results =
                run_cases(&set, &text, &cases.display().to_string()).map_err(|e| anyhow!("{e}"))?;
            let passed = results.iter().filter(|r| r.passed).count();
            let mut s = String::new();
            for r in &results {
                match &r.failure {
                    None => s.push_str(&format!("PASS  {}\n", r.name)),
                    Some(f) => s.push_str(&format!("FAIL  {}\n      {f}\n", r.name)),
                }
            }
            s.push_str(&format!("\n{passed}/{} cases passed", results.len()));
            let out = Output::new(
                json!({"passed": passed, "failed": results.len() - passed, "cases": results}),
                s,
            );
            Ok(if passed == results.len() {
                out
            } else {
                out.with_code(1)
            })
        }
        PolicyCmd::Explain { file, request, at } => {
            let set = PolicySet::from_file(&file).map_err(|e| anyhow!("{e}"))?;
            let raw = if request == "-"
                || request.starts_with('@')
                || request.trim_start().starts_with('{')
            {
                read_input(&request)?
            } else {
                read_input(&format!("@{request}"))?
            };
            let mut req: Request =
                serde_json::from_str(&raw).context("the request is not a valid request object")?;
            let at = at.as_deref().map(parse_time).transpose()?.unwrap_or(now);
            if req.time == Default::default() {
                req.time =
                    agentmesh_policy::schema::TimeAttrs::at(i64::try_from(at).unwrap_or(i64::MAX));
            }
            let ex = set.explain(&req, at);
            let d = &ex.decision;
            let reason = serde_json::to_value(d.reason)?;
            let mut s = format!(
                "decision: {}  ({}){}\n  {}\n",
                d.outcome.as_str().to_uppercase(),
                reason.as_str().unwrap_or_default(),
                d.rule
                    .as_deref()
                    .map(|r| format!(", rule `{r}`"))
                    .unwrap_or_default(),
                d.message
            );
            if !ex.skipped_policies.is_empty() {
                s.push_str(&format!(
                    "policies not applicable: {}\n",
                    ex.skipped_policies.join(", ")
                ));
            }
            let rows: Vec<Vec<String>> = ex
                .rules
                .iter()
                .map(|r| {
                    vec![
                        format!("{}/{}", r.policy, r.rule),
                        r.priority.to_string(),
                        r.action
                            .map(|a| {
                                serde_json::to_value(a)
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_owned))
                                    .unwrap_or_default()
                            })
                            .unwrap_or_else(|| {
                                format!("limit {}", r.limit.clone().unwrap_or_default())
                            }),
                        r.result.to_uppercase(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                s.push('\n');
                s.push_str(&table(&["RULE", "PRIORITY", "ACTION", "RESULT"], &rows));
            }
            for r in &ex.rules {
                if r.condition.is_none() {
                    continue;
                }
                s.push_str(&format!(
                    "\n{} — {}\n",
                    r.rule,
                    r.condition.as_deref().unwrap_or("")
                ));
                for (clause, value) in &r.clauses {
                    s.push_str(&format!("    {clause}  →  {value}\n"));
                }
                for (attr, value) in &r.attributes {
                    s.push_str(&format!("    where {attr} = {value}\n"));
                }
                if let Some(e) = &r.error {
                    s.push_str(&format!("    error: {e} (an error denies)\n"));
                }
            }
            Ok(Output::new(serde_json::to_value(&ex)?, s))
        }
        PolicyCmd::Schema => {
            let v = agentmesh_policy::policy_schema();
            let text = serde_json::to_string_pretty(&v)?;
            Ok(Output::new(v, text))
        }
        // Talk to a control plane: `remote_cmd::policy`.
        PolicyCmd::Publish { .. } | PolicyCmd::Show { .. } | PolicyCmd::Diff { .. } => Err(
            anyhow::anyhow!("`policy publish`, `show` and `diff` act on a control plane"),
        ),
    }
}
