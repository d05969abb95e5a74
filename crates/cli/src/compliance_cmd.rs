//! `agentmesh compliance …`.

use crate::ComplianceCmd;
use crate::output::{Output, table};
use agentmesh_audit::{AuditLog, rfc3339_millis};
use agentmesh_compliance::{Catalogues, Context, report};
use agentmesh_store::MeshHome;
use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::json;
use std::io::IsTerminal;
use std::path::Path;

fn catalogues(dir: Option<&Path>) -> Result<Catalogues> {
    Ok(match dir {
        Some(d) => Catalogues::with_overrides(d)?,
        None => Catalogues::builtin()?,
    })
}

pub async fn run(home: &Path, cmd: ComplianceCmd) -> Result<Output> {
    match cmd {
        ComplianceCmd::Evaluate {
            agent,
            action,
            data,
            action_type,
            domain,
            frameworks,
            catalogues: dir,
        } => {
            let cats = catalogues(dir.as_deref())?;
            let names: Vec<String> = match frameworks {
                Some(f) => f,
                None => cats.all().iter().map(|c| c.framework.clone()).collect(),
            };
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let agent_json = match &agent {
                Some(a) => {
                    let mesh = crate::commands::open(home).await?;
                    let r = mesh.agent(a).await?;
                    Some(json!({"name": r.name, "did": r.did, "sponsor": r.sponsor}))
                }
                None => None,
            };
            let ctx = Context {
                action: &action,
                action_type: action_type.as_deref(),
                data: data.as_deref(),
                domain: domain.as_deref(),
            };
            let eval = cats.evaluate(&names, &ctx)?;
            // The seed's summary: one line per framework.
            const ORDER: [&str; 7] = [
                "prohibited",
                "human_oversight",
                "consent_required",
                "minimum_necessary",
                "audit_log",
                "access_control",
                "logging",
            ];
            let human = |obligations: &[&str]| -> String {
                let mut o: Vec<&str> = obligations.to_vec();
                o.sort_by_key(|x| ORDER.iter().position(|y| y == x).unwrap_or(ORDER.len()));
                if o.is_empty() {
                    "nothing per call".to_owned()
                } else {
                    o.iter()
                        .map(|x| x.replace('_', " "))
                        .collect::<Vec<_>>()
                        .join(" + ")
                }
            };
            let mut text = format!(
                "{}{} with {} data\n",
                agent_json
                    .as_ref()
                    .and_then(|a| a["name"].as_str())
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default(),
                action,
                data.as_deref().unwrap_or("unclassified")
            );
            for f in &eval.frameworks {
                text.push_str(&format!(
                    "  {:<14} {:<28} → {}\n",
                    f.framework,
                    f.classification
                        .map(|c| c.id.as_str())
                        .unwrap_or("not in scope"),
                    human(&f.obligations)
                ));
            }
            for f in &eval.frameworks {
                let class = f
                    .classification
                    .map(|c| format!("{} — {} ({})", c.id, c.label, c.citation))
                    .unwrap_or_else(|| "not in scope".into());
                text.push_str(&format!("\n{}\n  classification  {}\n", f.framework, class));
                text.push_str(&format!("  requires        {}\n", human(&f.obligations)));
                let rows: Vec<Vec<String>> = f
                    .controls
                    .iter()
                    .map(|c| {
                        vec![
                            format!("  {}", c.id),
                            c.title.clone(),
                            c.citation.clone(),
                            if c.obligations.is_empty() {
                                format!("{} (system duty)", c.duties.join(", "))
                            } else {
                                c.obligations.join(", ")
                            },
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    text.push_str(&table(
                        &["  CONTROL", "TITLE", "CITATION", "OBLIGATION / DUTY"],
                        &rows,
                    ));
                }
            }
            let mut v = serde_json::to_value(&eval)?;
            v["obligations"] = json!(eval.obligations());
            if let Some(a) = agent_json {
                v["agent"] = a;
            }
            Ok(Output::new(v, text))
        }
        ComplianceCmd::Report {
            framework,
            since,
            format,
            output,
            catalogues,
            remote,
        } if remote.control_plane.is_some() => {
            if catalogues.is_some() {
                bail!(
                    "--catalogues is for a report built here; a control plane reports with its built-in catalogues"
                );
            }
            let window = humantime::parse_duration(&since)
                .with_context(|| format!("--since `{since}` is not a duration (30d, 12h)"))?;
            let r =
                crate::remote_cmd::compliance_report(home, &remote, &framework, window.as_secs())
                    .await?;
            report_output(&r, &format, output)
        }
        ComplianceCmd::Report {
            framework,
            since,
            format,
            output,
            catalogues: dir,
            ..
        } => {
            let cats = catalogues(dir.as_deref())?;
            let cat = cats.get(&framework).ok_or_else(|| {
                anyhow!(
                    "unknown framework `{framework}`; `agentmesh compliance catalogues` lists them"
                )
            })?;
            let window = humantime::parse_duration(&since)
                .with_context(|| format!("--since `{since}` is not a duration (30d, 12h)"))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let from = now.saturating_sub(window.as_nanos());
            let (since_s, until_s) = (rfc3339_millis(from), rfc3339_millis(now + 1_000_000));
            let h = MeshHome::open(home)?;
            let log = AuditLog::open_read_only(&h.audit_dir()).context("opening the audit log")?;
            let show = std::io::stderr().is_terminal();
            let mut last = u64::MAX;
            let r = report::build(&log, cat, &since_s, &until_s, &mut |done, total| {
                if show && total > 0 {
                    let pct = done * 100 / total;
                    if pct != last {
                        last = pct;
                        eprint!(
                            "\rreading audit log [{:<25}] {pct:>3}%",
                            "#".repeat((pct / 4) as usize)
                        );
                        if pct == 100 {
                            eprintln!();
                        }
                    }
                }
            })?;
            report_output(&r, &format, output)
        }
        ComplianceCmd::Catalogues { catalogues: dir } => {
            let cats = catalogues(dir.as_deref())?;
            let mut text = String::new();
            let mut v = Vec::new();
            for c in cats.all() {
                text.push_str(&format!(
                    "{} — {} (version {})\n  source: {}\n",
                    c.framework, c.title, c.version, c.source
                ));
                for ctl in &c.controls {
                    text.push_str(&format!(
                        "  {:<14} {} [{}]\n",
                        ctl.id, ctl.title, ctl.citation
                    ));
                }
                text.push('\n');
                v.push(json!({"framework": c.framework, "title": c.title, "version": c.version, "source": c.source,
                    "controls": c.controls.iter().map(|x| json!({"id": x.id, "title": x.title, "citation": x.citation, "obligations": x.obligations, "duties": x.duties})).collect::<Vec<_>>()}));
            }
            Ok(Output::new(json!({"catalogues": v}), text))
        }
    }
}

/// A report as `compliance report` prints or writes it (markdown, HTML or
/// JSON), from this home's log or a control plane's.
pub fn report_output(
    r: &report::Report,
    format: &str,
    output: Option<std::path::PathBuf>,
) -> Result<Output> {
    let body = match format {
        "html" => r.to_html(),
        "json" => serde_json::to_string_pretty(r)?,
        _ => r.to_markdown(),
    };
    match output {
        Some(p) => {
            std::fs::write(&p, &body).with_context(|| format!("writing {}", p.display()))?;
            let gaps: usize = r.controls.iter().map(|c| c.gaps.len()).sum();
            Ok(Output::new(
                json!({"written": p, "controls": r.controls.len(), "gaps": gaps, "entries": r.entries_in_window}),
                format!(
                    "Wrote {} ({} controls, {} entries in the window, {} gap(s))",
                    p.display(),
                    r.controls.len(),
                    r.entries_in_window,
                    gaps
                ),
            ))
        }
        None => Ok(Output::new(serde_json::to_value(r)?, body)),
    }
}
