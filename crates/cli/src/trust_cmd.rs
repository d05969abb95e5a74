//! `agentmesh trust …`.

use crate::TrustCmd;
use crate::output::{Output, table};
use agentmesh_audit::AuditLog;
use agentmesh_store::{AgentRecord, Mesh, trust_event_of};
use agentmesh_trust::{EventKind, Score, Severity};
use anyhow::{Result, bail};
use serde_json::json;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One trust event of an agent, as the audit log holds it.
#[derive(Debug, Clone)]
pub struct Line {
    pub index: u64,
    pub time: String,
    pub label: String,
    pub before: f64,
    pub after: f64,
}

impl Line {
    fn change(&self) -> f64 {
        self.after - self.before
    }
}

/// `trust explain` as printed, from this home's log or a control plane's:
/// the score now, the last `last` events with what each changed, the
/// largest drop and rise, and the status when it is not active.
pub fn explain_shown(
    name: &str,
    s: &Score,
    h: &[Line],
    last: usize,
    status: Option<&str>,
) -> Output {
    let start = h.len().saturating_sub(last);
    let rows: Vec<Vec<String>> = h[start..]
        .iter()
        .map(|l| {
            vec![
                l.index.to_string(),
                l.time.clone(),
                format!("{:+.3}", l.change()),
                format!("{:.3}", l.after),
                l.label.clone(),
            ]
        })
        .collect();
    let mut text = format!(
        "{} scores {:.3} (uncertainty {:.3}, tier {}) after {} trust events.\n",
        name,
        s.score,
        s.uncertainty,
        s.tier,
        h.len()
    );
    if h.is_empty() {
        text.push_str("No events yet: the score is the prior, and nothing is known.\n");
    } else {
        text.push('\n');
        text.push_str(&table(
            &["AUDIT#", "TIME", "CHANGE", "SCORE", "EVENT"],
            &rows,
        ));
        // Only real drops and rises: "largest drop: +0.015" says nothing
        // dropped.
        let worst = h
            .iter()
            .filter(|l| l.change() < 0.0)
            .min_by(|x, y| x.change().total_cmp(&y.change()));
        let best = h
            .iter()
            .filter(|l| l.change() > 0.0)
            .max_by(|x, y| x.change().total_cmp(&y.change()));
        text.push('\n');
        match worst {
            Some(w) => text.push_str(&format!(
                "largest drop: {:+.3} at audit #{} ({})\n",
                w.change(),
                w.index,
                w.label
            )),
            None => text.push_str("no event lowered the score\n"),
        }
        match best {
            Some(b) => text.push_str(&format!(
                "largest rise: {:+.3} at audit #{} ({})\n",
                b.change(),
                b.index,
                b.label
            )),
            None => text.push_str("no event raised the score\n"),
        }
        if let Some(st) = status {
            text.push_str(&format!("\nstatus: {st}\n"));
        }
    }
    let events: Vec<_> = h
        .iter()
        .map(|l| json!({"audit_index": l.index, "time": l.time, "event": l.label, "before": l.before, "after": l.after, "change": l.change()}))
        .collect();
    Output::new(json!({"agent": name, "trust": s, "events": events}), text)
}

/// Trust events of one agent from the audit log, oldest first: entries of
/// their own and those carried by decisions and call results (a gateway's,
/// also when shipped to a control plane), read as `recompute` reads them.
fn history(mesh: &Mesh, did: &str) -> Result<Vec<Line>> {
    let dir = mesh.home().audit_dir();
    if !dir.join("segments").is_dir() {
        return Ok(Vec::new());
    }
    let log = AuditLog::open_read_only(&dir)?;
    let mut out = Vec::new();
    for i in 0..log.size() {
        let e = log.entry(i)?.entry;
        let Some((event, Some(before), Some(after))) = trust_event_of(&e.draft) else {
            continue;
        };
        if event.agent == did {
            out.push(Line {
                index: i,
                time: e.time.clone(),
                label: event.kind.label(),
                before,
                after,
            });
        }
    }
    Ok(out)
}

/// One point of an agent's trust history: the score after the event
/// recorded at audit index `index`.
#[derive(Debug, Clone)]
pub struct Point {
    pub index: u64,
    pub time: String,
    pub score: f64,
}

/// `trust history` as printed, from this home's log or a control plane's.
pub fn history_shown(name: &str, h: &[Point], last: usize) -> Output {
    if h.is_empty() {
        return Output::new(
            json!({"agent": name, "history": []}),
            format!("{name}: no trust events yet"),
        );
    }
    let start = h.len().saturating_sub(last);
    let values: Vec<f64> = h[start..].iter().map(|l| l.score).collect();
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let text = format!(
        "{} — last {} of {} trust events\n1.0 ┤\n    │ {}\n0.0 ┤\n    from {} ({:.3}) to {} ({:.3}); min {:.3}, max {:.3}",
        name,
        values.len(),
        h.len(),
        sparkline(&values),
        h[start].time,
        values[0],
        h[h.len() - 1].time,
        values[values.len() - 1],
        min,
        max
    );
    let hist: Vec<_> = h
        .iter()
        .map(|l| json!({"audit_index": l.index, "time": l.time, "score": l.score}))
        .collect();
    Output::new(json!({"agent": name, "history": hist}), text)
}

/// `trust list` as printed: lowest score first, those at or above `below`
/// left out.
pub fn trust_listing(items: Vec<(AgentRecord, Score)>, below: Option<f64>) -> Output {
    let mut items: Vec<_> = items
        .into_iter()
        .filter(|(_, s)| !below.is_some_and(|b| s.score >= b))
        .collect();
    items.sort_by(|x, y| x.1.score.total_cmp(&y.1.score));
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|(a, s)| {
            vec![
                a.name.clone(),
                format!("{:.3}", s.score),
                format!("{:.3}", s.uncertainty),
                s.tier.clone(),
                format!("{:?}", a.status).to_lowercase(),
            ]
        })
        .collect();
    let text = if rows.is_empty() {
        "No agents.".to_owned()
    } else {
        table(&["AGENT", "SCORE", "UNCERTAINTY", "TIER", "STATUS"], &rows)
    };
    let v: Vec<_> = items
        .iter()
        .map(|(a, s)| json!({"agent": a.name, "did": a.did, "trust": s, "status": a.status}))
        .collect();
    Output::new(json!({"agents": v}), text)
}

fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|v| BARS[((v.clamp(0.0, 1.0) * 7.0).round()) as usize])
        .collect()
}

pub async fn run(mesh: &Mesh, cmd: TrustCmd) -> Result<Output> {
    let now = now_ms();
    match cmd {
        TrustCmd::Show { agent, .. } => {
            let a = mesh.agent(&agent).await?;
            let s = mesh.trust_score(&a, now).await?;
            let events = mesh.trust_state(&a).await?.map(|st| st.events).unwrap_or(0);
            Ok(trust_shown(&a.name, &a.did.to_string(), Some(events), &s))
        }
        TrustCmd::Explain { agent, last, .. } => {
            let a = mesh.agent(&agent).await?;
            let h = history(mesh, &a.did.to_string())?;
            let s = mesh.trust_score(&a, now).await?;
            let status = (a.status != agentmesh_delegation::AgentStatus::Active).then(|| {
                format!(
                    "{:?}{}",
                    a.status,
                    a.status_reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )
            });
            Ok(explain_shown(&a.name, &s, &h, last, status.as_deref()))
        }
        TrustCmd::History { agent, last, .. } => {
            let a = mesh.agent(&agent).await?;
            let points: Vec<Point> = history(mesh, &a.did.to_string())?
                .into_iter()
                .map(|l| Point {
                    index: l.index,
                    time: l.time,
                    score: l.after,
                })
                .collect();
            Ok(history_shown(&a.name, &points, last))
        }
        TrustCmd::List { below, .. } => {
            let mut items = Vec::new();
            for a in mesh.registry().list_agents().await? {
                let s = mesh.trust_score(&a, now).await?;
                items.push((a, s));
            }
            Ok(trust_listing(items, below))
        }
        TrustCmd::Endorse { from, to } => {
            let f = mesh.agent(&from).await?;
            let t = mesh.agent(&to).await?;
            let o = mesh.endorse(&f, &t, now).await?;
            Ok(Output::new(
                json!({"audit_index": o.audit_index, "before": o.applied.as_ref().map(|a| a.before),
                       "after": o.applied.as_ref().map(|a| a.after), "queued": o.applied.is_none()}),
                format!(
                    "{} endorsed {}: {} ({})",
                    f.name,
                    t.name,
                    change_text(&o),
                    audit_ref(o.audit_index)
                ),
            ))
        }
        TrustCmd::Record {
            agent,
            event,
            severity,
            reason,
        } => {
            let a = mesh.agent(&agent).await?;
            let kind = match event.as_str() {
                "task-success" => EventKind::Task { success: true },
                "task-failure" => EventKind::Task { success: false },
                "violation" => EventKind::Violation {
                    severity: Severity::parse(&severity).unwrap_or(Severity::Medium),
                    reason,
                },
                "auth-failed" => EventKind::AuthFailed { reason },
                "handshake-ok" => EventKind::Handshake { ok: true },
                "handshake-failed" => EventKind::Handshake { ok: false },
                other => bail!("unknown event `{other}`"),
            };
            let o = mesh.trust_event(&a, kind, now).await?;
            let mut text = format!(
                "{}: {} — {}, {}",
                a.name,
                o.event.kind.label(),
                change_text(&o),
                audit_ref(o.audit_index)
            );
            if o.suspended {
                text.push_str(&format!(
                    "\n{} fell below the suspension floor and is now SUSPENDED",
                    a.name
                ));
            }
            Ok(Output::new(
                json!({"audit_index": o.audit_index, "before": o.applied.as_ref().map(|x| x.before),
                       "after": o.applied.as_ref().map(|x| x.after),
                       "tier": o.applied.as_ref().map(|x| x.tier_after.clone()),
                       "suspended": o.suspended, "queued": o.applied.is_none()}),
                text,
            ))
        }
        TrustCmd::Recompute { .. } => {
            let r = mesh.recompute_trust().await?;
            let text = if r.ok() {
                format!(
                    "OK: {} trust events in the audit log reproduce the live scores of all {} agents exactly",
                    r.events, r.agents
                )
            } else {
                format!(
                    "MISMATCH for {} agent(s): {}",
                    r.mismatches.len(),
                    r.mismatches.join(", ")
                )
            };
            let ok = r.ok();
            let out = Output::new(serde_json::to_value(&r)?, text);
            Ok(if ok { out } else { out.with_code(1) })
        }
    }
}

/// `0.500 → 0.550 (tier standard → standard)`, or a note that the running
/// gateway (the one writer of this home's trust state) applies it.
fn change_text(o: &agentmesh_store::TrustOutcome) -> String {
    match &o.applied {
        Some(a) => format!(
            "{:.3} → {:.3} (tier {} → {})",
            a.before, a.after, a.tier_before, a.tier_after
        ),
        None => "queued: the gateway running on this home applies it within seconds".into(),
    }
}

/// `audit #N`, or a note that the entry was queued for the gateway that
/// holds the log.
fn audit_ref(index: Option<u64>) -> String {
    match index {
        Some(i) => format!("audit #{i}"),
        None => "audit entry queued for the running gateway".into(),
    }
}

/// `trust show`, from this home or a control plane (`events`: how many
/// events the state folds, when known).
pub(crate) fn trust_shown(
    name: &str,
    did: &str,
    events: Option<u64>,
    s: &agentmesh_trust::Score,
) -> Output {
    let rows: Vec<Vec<String>> = s
        .dimensions
        .iter()
        .map(|d| {
            vec![
                d.dimension.name().to_owned(),
                format!("{:.3}", d.score),
                format!("{:.3}", d.uncertainty),
                format!("{:.2}", d.positive),
                format!("{:.2}", d.negative),
            ]
        })
        .collect();
    let text = format!(
        "agent        {name} ({did})\nscore        {:.3}\nuncertainty  {:.3}{}\ntier         {}\nevents       {}\n\n{}",
        s.score,
        s.uncertainty,
        if events == Some(0) {
            "  (nothing known yet: the prior)"
        } else {
            ""
        },
        s.tier,
        events.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        table(
            &["DIMENSION", "SCORE", "UNCERTAINTY", "POSITIVE", "NEGATIVE"],
            &rows
        )
    );
    Output::new(
        json!({"agent": name, "did": did, "events": events, "trust": s}),
        text,
    )
}
