//! Compliance reports built from audit evidence.
//!
//! For one framework and a time window, every audit entry is mapped to the
//! controls it evidences: a `decision` entry names the controls it
//! triggered (`detail.controls`), and other events (`agent.created`,
//! `trust.event`, …) count for the controls that list them as evidence.
//! Per control the report gives evidence, violations, approvals (and by
//! whom) and gaps, each figure with the audit indices behind it and, for a
//! sample, their inclusion proofs against the latest signed checkpoint.

use crate::catalogue::{Catalogue, Control};
use agentmesh_audit::{AuditError, AuditLog, Entry, Event, hex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Indices listed (and proved) per figure.
pub const SAMPLE: usize = 25;

/// Indices behind one figure: the count, and the first few.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure {
    pub count: u64,
    pub indices: Vec<u64>,
}

impl Figure {
    fn add(&mut self, i: u64) {
        self.count += 1;
        if self.indices.len() < SAMPLE {
            self.indices.push(i);
        }
    }
}

/// One control's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlReport {
    pub id: String,
    pub title: String,
    pub citation: String,
    pub obligations: Vec<String>,
    pub duties: Vec<String>,
    pub evidence: Figure,
    pub violations: Figure,
    pub approvals: Figure,
    /// Who granted approvals, and how many each.
    pub approvers: BTreeMap<String, u64>,
    /// Calls allowed without the human oversight this control requires.
    pub oversight_missing: Figure,
    pub gaps: Vec<String>,
}

/// A report (read back by clients of the control plane's report route).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub framework: String,
    pub title: String,
    pub catalogue_version: String,
    pub source: String,
    /// RFC 3339 bounds of the window (inclusive start, exclusive end).
    pub since: String,
    pub until: String,
    pub entries_scanned: u64,
    pub entries_in_window: u64,
    pub controls: Vec<ControlReport>,
    /// Per day: (evidence, violations) across the framework's controls.
    pub daily: BTreeMap<String, (u64, u64)>,
    /// The signed checkpoint the proofs verify against, if any.
    pub checkpoint: Option<String>,
    /// Inclusion proofs (hex hashes) of every listed index.
    pub proofs: BTreeMap<u64, Vec<String>>,
    pub log_size: u64,
}

fn detail_str<'a>(e: &'a Entry, key: &str) -> Option<&'a str> {
    e.draft.detail.get(key).and_then(|v| v.as_str())
}

/// Builds the report for `catalogue` over entries whose time is in
/// `[since, until)` (RFC 3339 strings; they compare lexicographically).
/// `progress(done, total)` is called as entries are read.
pub fn build(
    log: &AuditLog,
    catalogue: &Catalogue,
    since: &str,
    until: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, AuditError> {
    let fw = &catalogue.framework;
    let prefix = format!("{fw}/");
    let mut controls: Vec<ControlReport> = catalogue
        .controls
        .iter()
        .map(|c: &Control| ControlReport {
            id: c.id.clone(),
            title: c.title.clone(),
            citation: c.citation.clone(),
            obligations: c.obligations.clone(),
            duties: c.duties.clone(),
            evidence: Figure::default(),
            violations: Figure::default(),
            approvals: Figure::default(),
            approvers: BTreeMap::new(),
            oversight_missing: Figure::default(),
            gaps: Vec::new(),
        })
        .collect();
    let index_of: BTreeMap<&str, usize> = catalogue
        .controls
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    // Which controls each non-decision event is evidence for.
    let mut by_event: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in catalogue.controls.iter().enumerate() {
        for e in &c.evidence {
            if *e != Event::Decision {
                by_event.entry(e.as_str()).or_default().push(i);
            }
        }
    }
    let size = log.size();
    let mut daily: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut in_window = 0u64;
    let mut scanned = 0u64;
    log.scan(0, size, &mut |i, e| {
        scanned += 1;
        if scanned.is_multiple_of(65_536) {
            progress(scanned, size);
        }
        if e.time.as_str() < since || e.time.as_str() >= until {
            return true;
        }
        in_window += 1;
        let day = e.time.get(..10).unwrap_or("").to_owned();
        let d = &e.draft;
        let mut ev = 0u64;
        let mut viol = 0u64;
        if d.event == Event::Decision {
            let Some(list) = d.detail.get("controls").and_then(|v| v.as_array()) else {
                return true;
            };
            let denied = matches!(d.decision.as_str(), "deny" | "rate_limited");
            let approved = detail_str(e, "reason") == Some("approval_granted");
            for key in list.iter().filter_map(|v| v.as_str()) {
                let Some(cid) = key.strip_prefix(&prefix) else {
                    continue;
                };
                let Some(&ci) = index_of.get(cid) else {
                    continue;
                };
                let c = &mut controls[ci];
                c.evidence.add(i);
                ev += 1;
                if denied {
                    c.violations.add(i);
                    viol += 1;
                }
                if approved {
                    c.approvals.add(i);
                    let by = detail_str(e, "approved_by").unwrap_or("unknown").to_owned();
                    *c.approvers.entry(by).or_default() += 1;
                }
                if c.obligations.iter().any(|o| o == "human_oversight")
                    && d.decision == "allow"
                    && !approved
                {
                    c.oversight_missing.add(i);
                }
            }
        } else if let Some(list) = by_event.get(d.event.as_str()) {
            let negative = d.event == Event::TrustEvent
                && matches!(
                    detail_str(e, "kind"),
                    Some("violation" | "anomaly" | "auth_failed")
                );
            for &ci in list {
                controls[ci].evidence.add(i);
                ev += 1;
                if negative {
                    controls[ci].violations.add(i);
                    viol += 1;
                }
            }
        }
        if ev > 0 {
            let slot = daily.entry(day).or_default();
            slot.0 += ev;
            slot.1 += viol;
        }
        true
    })?;
    progress(size, size);
    for c in &mut controls {
        if c.evidence.count == 0 {
            c.gaps.push("no evidence in this period".into());
        }
        if c.oversight_missing.count > 0 {
            c.gaps.push(format!(
                "{} call(s) were allowed without the human oversight this control requires",
                c.oversight_missing.count
            ));
        }
    }
    // Proofs for every listed index, against the latest checkpoint.
    let checkpoint = log.latest_checkpoint()?;
    let cp_size = checkpoint
        .as_deref()
        .and_then(|n| agentmesh_audit::note::parse_unverified(n).ok())
        .map(|c| c.size);
    let mut proofs = BTreeMap::new();
    if let Some(n) = cp_size {
        for c in &controls {
            for f in [
                &c.evidence,
                &c.violations,
                &c.approvals,
                &c.oversight_missing,
            ] {
                for &i in &f.indices {
                    if i < n && !proofs.contains_key(&i) {
                        let p = log.inclusion_proof(i, n)?;
                        proofs.insert(i, p.iter().map(|h| hex(h)).collect());
                    }
                }
            }
        }
    }
    Ok(Report {
        framework: fw.clone(),
        title: catalogue.title.clone(),
        catalogue_version: catalogue.version.clone(),
        source: catalogue.source.clone(),
        since: since.to_owned(),
        until: until.to_owned(),
        entries_scanned: scanned,
        entries_in_window: in_window,
        controls,
        daily,
        checkpoint: if cp_size.is_some() { checkpoint } else { None },
        proofs,
        log_size: size,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn anchor(control: &str, what: &str) -> String {
    let c: String = control
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("c-{c}-{what}")
}

impl Report {
    /// Markdown for reading in a terminal or a repository.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# {} — compliance report\n\nCatalogue `{}` version {} ({}).\nWindow {} → {}; {} of {} audit entries in the window.\n\n",
            self.title,
            self.framework,
            self.catalogue_version,
            self.source,
            self.since,
            self.until,
            self.entries_in_window,
            self.log_size
        );
        s.push_str("| control | citation | evidence | violations | approvals | gaps |\n|---|---|---|---|---|---|\n");
        for c in &self.controls {
            s.push_str(&format!(
                "| {} {} | {} | {} | {} | {} | {} |\n",
                c.id,
                c.title,
                c.citation,
                c.evidence.count,
                c.violations.count,
                c.approvals.count,
                if c.gaps.is_empty() {
                    "—".into()
                } else {
                    c.gaps.join("; ")
                }
            ));
        }
        for c in &self.controls {
            s.push_str(&format!("\n## {} — {} ({})\n\n", c.id, c.title, c.citation));
            if !c.obligations.is_empty() {
                s.push_str(&format!(
                    "Obligations acting per call: {}.\n",
                    c.obligations.join(", ")
                ));
            }
            if !c.duties.is_empty() {
                s.push_str(&format!("System duties: {}.\n", c.duties.join(", ")));
            }
            for (label, f) in [
                ("Evidence", &c.evidence),
                ("Violations", &c.violations),
                ("Approvals", &c.approvals),
            ] {
                s.push_str(&format!(
                    "- {label}: {} (audit indices {}{})\n",
                    f.count,
                    f.indices
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if f.count > f.indices.len() as u64 {
                        ", …"
                    } else {
                        ""
                    }
                ));
            }
            for (who, n) in &c.approvers {
                s.push_str(&format!("  - approved by {who}: {n}\n"));
            }
            for g in &c.gaps {
                s.push_str(&format!("- **Gap:** {g}\n"));
            }
        }
        s.push_str("\nEvery index can be proved with `agentmesh audit proof <index>` and checked with `agentmesh audit verify-proof`.\n");
        s
    }

    /// A self-contained HTML page with charts (inline SVG), for auditors.
    pub fn to_html(&self) -> String {
        let mut h = String::with_capacity(64 * 1024);
        h.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
        h.push_str(&format!(
            "<title>{} — compliance report</title>",
            esc(&self.title)
        ));
        h.push_str("<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#1b1b1b}table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.35rem .5rem;text-align:left;vertical-align:top}th{background:#f2f2f2}.gap{color:#a00;font-weight:600}.ok{color:#060}code,pre{font-size:.85em}pre{background:#f7f7f7;padding:.5rem;overflow:auto}details{margin:.2rem 0}a{color:#0645ad}</style></head><body>");
        h.push_str(&format!(
            "<h1>{}</h1><p>Compliance report for catalogue <code>{}</code> version {} — {}.</p><p>Window <strong>{}</strong> to <strong>{}</strong>: {} of {} audit entries.</p>",
            esc(&self.title),
            esc(&self.framework),
            esc(&self.catalogue_version),
            esc(&self.source),
            esc(&self.since),
            esc(&self.until),
            self.entries_in_window,
            self.log_size
        ));
        // Chart 1: evidence and violations per control.
        let max = self
            .controls
            .iter()
            .map(|c| c.evidence.count)
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let row_h = 22.0;
        let height = row_h * self.controls.len() as f64 + 10.0;
        h.push_str(&format!(
            "<h2>Evidence and violations per control</h2><svg role=\"img\" aria-label=\"evidence and violations per control\" width=\"760\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
        ));
        for (i, c) in self.controls.iter().enumerate() {
            let y = 5.0 + row_h * i as f64;
            let we = 460.0 * c.evidence.count as f64 / max;
            let wv = 460.0 * c.violations.count as f64 / max;
            h.push_str(&format!(
                "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"160\" y=\"{y}\" width=\"{we:.1}\" height=\"9\" fill=\"#3b7dd8\"><title>evidence {}</title></rect><rect x=\"160\" y=\"{}\" width=\"{wv:.1}\" height=\"9\" fill=\"#d83b3b\"><title>violations {}</title></rect><text x=\"{}\" y=\"{}\" font-size=\"11\">{} / {}</text>",
                y + 12.0,
                esc(&c.id),
                c.evidence.count,
                y + 9.0,
                c.violations.count,
                170.0 + we.max(wv),
                y + 12.0,
                c.evidence.count,
                c.violations.count
            ));
        }
        h.push_str("</svg><p><span style=\"color:#3b7dd8\">■</span> evidence <span style=\"color:#d83b3b\">■</span> violations</p>");
        // Chart 2: daily evidence.
        if !self.daily.is_empty() {
            let dmax = self.daily.values().map(|v| v.0).max().unwrap_or(1).max(1) as f64;
            let n = self.daily.len() as f64;
            let bw = (700.0 / n).clamp(2.0, 40.0);
            h.push_str(&format!(
                "<h2>Evidence per day</h2><svg role=\"img\" aria-label=\"evidence per day\" width=\"{}\" height=\"140\" xmlns=\"http://www.w3.org/2000/svg\">",
                (bw * n + 20.0) as u64
            ));
            for (i, (day, (ev, vi))) in self.daily.iter().enumerate() {
                let hh = 120.0 * *ev as f64 / dmax;
                let hv = 120.0 * *vi as f64 / dmax;
                let x = 10.0 + bw * i as f64;
                h.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hh:.1}\" fill=\"#3b7dd8\"><title>{} evidence {ev}</title></rect><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hv:.1}\" fill=\"#d83b3b\"><title>{} violations {vi}</title></rect>",
                    130.0 - hh,
                    (bw - 1.0).max(1.0),
                    esc(day),
                    130.0 - hv,
                    (bw - 1.0).max(1.0),
                    esc(day)
                ));
            }
            h.push_str("</svg>");
        }
        // Summary table.
        h.push_str("<h2>Controls</h2><table><thead><tr><th>Control</th><th>Citation</th><th>Evidence</th><th>Violations</th><th>Approvals</th><th>Gaps</th></tr></thead><tbody>");
        for c in &self.controls {
            let link = |what: &str, f: &Figure| {
                format!("<a href=\"#{}\">{}</a>", anchor(&c.id, what), f.count)
            };
            h.push_str(&format!(
                "<tr><td><strong>{}</strong> {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.id),
                esc(&c.title),
                esc(&c.citation),
                link("evidence", &c.evidence),
                link("violations", &c.violations),
                link("approvals", &c.approvals),
                if c.gaps.is_empty() {
                    "<span class=\"ok\">none</span>".to_owned()
                } else {
                    format!("<span class=\"gap\">{}</span>", esc(&c.gaps.join("; ")))
                }
            ));
        }
        h.push_str("</tbody></table>");
        // Details with indices and proofs.
        h.push_str("<h2>Evidence behind each figure</h2><p>Each audit index below carries its RFC 9162 inclusion proof against the signed checkpoint at the end of this report; any index can also be proved with <code>agentmesh audit proof &lt;index&gt;</code> and checked offline with <code>agentmesh audit verify-proof</code>.</p>");
        for c in &self.controls {
            h.push_str(&format!("<h3>{} — {}</h3>", esc(&c.id), esc(&c.title)));
            if !c.obligations.is_empty() {
                h.push_str(&format!(
                    "<p>Obligations acting per call: {}</p>",
                    esc(&c.obligations.join(", "))
                ));
            }
            if !c.duties.is_empty() {
                h.push_str(&format!(
                    "<p>System duties: {}</p>",
                    esc(&c.duties.join(", "))
                ));
            }
            for (what, label, f) in [
                ("evidence", "Evidence", &c.evidence),
                ("violations", "Violations", &c.violations),
                ("approvals", "Approvals", &c.approvals),
            ] {
                h.push_str(&format!(
                    "<div id=\"{}\"><h4>{label}: {}</h4>",
                    anchor(&c.id, what),
                    f.count
                ));
                for i in &f.indices {
                    match self.proofs.get(i) {
                        Some(p) => h.push_str(&format!(
                            "<details><summary>audit #{i}</summary><pre>inclusion proof ({} hashes):\n{}</pre></details>",
                            p.len(),
                            p.join("\n")
                        )),
                        None => h.push_str(&format!("<details><summary>audit #{i}</summary><p>not yet covered by a signed checkpoint</p></details>")),
                    }
                }
                if f.count > f.indices.len() as u64 {
                    h.push_str(&format!(
                        "<p>… and {} more.</p>",
                        f.count - f.indices.len() as u64
                    ));
                }
                h.push_str("</div>");
            }
            if !c.approvers.is_empty() {
                h.push_str("<p>Approved by: ");
                h.push_str(
                    &c.approvers
                        .iter()
                        .map(|(w, n)| format!("{} ({n})", esc(w)))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                h.push_str("</p>");
            }
        }
        match &self.checkpoint {
            Some(cp) => h.push_str(&format!("<h2>Signed checkpoint</h2><pre>{}</pre>", esc(cp))),
            None => h.push_str("<h2>Signed checkpoint</h2><p class=\"gap\">The log has no signed checkpoint yet; proofs cannot be given.</p>"),
        }
        h.push_str("</body></html>\n");
        h
    }
}
