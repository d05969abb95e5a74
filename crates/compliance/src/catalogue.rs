//! Catalogues: one YAML file per framework, shipped with the binary and
//! overridable from a directory. Validated strictly when loaded.

use serde::Deserialize;
use std::collections::HashMap;

/// Obligations that act on a call (everything else a control asks for is a
/// system-level duty, reported but not enforced per call).
pub const OBLIGATIONS: &[&str] = &[
    "human_oversight",
    "audit_log",
    "logging",
    "minimum_necessary",
    "consent_required",
    "access_control",
    "prohibited",
];

/// The catalogues built into the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "eu_ai_act.yaml",
        include_str!("../catalogues/eu_ai_act.yaml"),
    ),
    ("hipaa.yaml", include_str!("../catalogues/hipaa.yaml")),
    ("soc2.yaml", include_str!("../catalogues/soc2.yaml")),
    ("gdpr.yaml", include_str!("../catalogues/gdpr.yaml")),
    (
        "owasp_agentic.yaml",
        include_str!("../catalogues/owasp_agentic.yaml"),
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueDoc {
    framework: String,
    title: String,
    version: String,
    source: String,
    #[serde(default)]
    classifications: Vec<ClassificationDoc>,
    controls: Vec<ControlDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassificationDoc {
    id: String,
    label: String,
    citation: String,
    when: When,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlDoc {
    id: String,
    title: String,
    citation: String,
    when: When,
    #[serde(default)]
    obligations: Vec<String>,
    #[serde(default)]
    duties: Vec<String>,
    #[serde(default)]
    evidence: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

/// What triggers a classification or a control. Every key given must match
/// (AND); within a key, any listed value (OR).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Data classifications (`phi`, `pii`, `biometric`, …).
    #[serde(default)]
    pub data: Vec<String>,
    /// Action or tool names; `*` is a wildcard (`*patient*`).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Action types (`read`, `export`, `tool_call`, …).
    #[serde(default)]
    pub action_types: Vec<String>,
    /// Context domains (`healthcare`, `employment`, …).
    #[serde(default)]
    pub domains: Vec<String>,
    /// This framework's classification ids (controls only).
    #[serde(default)]
    pub classifications: Vec<String>,
    #[serde(default)]
    pub always: bool,
}

impl When {
    fn is_empty(&self) -> bool {
        !self.always
            && self.data.is_empty()
            && self.actions.is_empty()
            && self.action_types.is_empty()
            && self.domains.is_empty()
            && self.classifications.is_empty()
    }
}

/// A classification rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub id: String,
    pub label: String,
    pub citation: String,
    pub when: When,
}

/// A control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub id: String,
    pub title: String,
    pub citation: String,
    pub when: When,
    /// Obligations that act on each triggered call.
    pub obligations: Vec<String>,
    /// System-level duties (reported, not enforced per call).
    pub duties: Vec<String>,
    /// Audit events that count as evidence for this control.
    pub evidence: Vec<String>,
    pub description: Option<String>,
}

/// One framework's catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    pub framework: String,
    pub title: String,
    pub version: String,
    pub source: String,
    pub classifications: Vec<Classification>,
    pub controls: Vec<Control>,
    /// Controls triggered by each classification id alone (the index).
    pub(crate) by_class: HashMap<String, Vec<usize>>,
    /// Controls with other triggers, checked one by one.
    pub(crate) conditional: Vec<usize>,
}

/// Why a catalogue was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalogue {file}: {message}")]
pub struct CatalogueError {
    pub file: String,
    pub message: String,
}

impl Catalogue {
    /// Parses and validates one catalogue file.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, CatalogueError> {
        let err = |message: String| CatalogueError {
            file: file.to_owned(),
            message,
        };
        let doc: CatalogueDoc = yaml_serde::from_str(text).map_err(|e| err(e.to_string()))?;
        let ident = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !ident(&doc.framework) {
            return Err(err(format!(
                "framework id `{}` must be lowercase letters, digits and `_`",
                doc.framework
            )));
        }
        for (what, v) in [
            ("title", &doc.title),
            ("version", &doc.version),
            ("source", &doc.source),
        ] {
            if v.trim().is_empty() {
                return Err(err(format!("`{what}` is empty")));
            }
        }
        let mut class_ids: Vec<&str> = Vec::new();
        for c in &doc.classifications {
            if !ident(&c.id) {
                return Err(err(format!(
                    "classification id `{}` must be lowercase letters, digits and `_`",
                    c.id
                )));
            }
            if c.citation.trim().is_empty() {
                return Err(err(format!("classification `{}` has no citation", c.id)));
            }
            if c.label.trim().is_empty() {
                return Err(err(format!("classification `{}` has no label", c.id)));
            }
            if c.when.is_empty() {
                return Err(err(format!(
                    "classification `{}` says nothing about when it applies",
                    c.id
                )));
            }
            if !c.when.classifications.is_empty() {
                return Err(err(format!(
                    "classification `{}` cannot depend on classifications",
                    c.id
                )));
            }
            class_ids.push(&c.id);
        }
        if doc.controls.is_empty() {
            return Err(err("no controls".into()));
        }
        if doc.controls.len() > 64 {
            return Err(err("more than 64 controls in one framework".into()));
        }
        let mut seen: Vec<&str> = Vec::new();
        for c in &doc.controls {
            if c.id.trim().is_empty() {
                return Err(err("a control has an empty id".into()));
            }
            if seen.contains(&c.id.as_str()) {
                return Err(err(format!("duplicate control id `{}`", c.id)));
            }
            seen.push(&c.id);
            if c.citation.trim().is_empty() {
                return Err(err(format!("control `{}` has no citation", c.id)));
            }
            if c.title.trim().is_empty() {
                return Err(err(format!("control `{}` has no title", c.id)));
            }
            if c.when.is_empty() {
                return Err(err(format!(
                    "control `{}` says nothing about when it applies",
                    c.id
                )));
            }
            for k in &c.when.classifications {
                if !class_ids.contains(&k.as_str()) {
                    return Err(err(format!(
                        "control `{}` refers to unknown classification `{k}`",
                        c.id
                    )));
                }
            }
            for o in &c.obligations {
                if !OBLIGATIONS.contains(&o.as_str()) {
                    return Err(err(format!(
                        "control `{}`: unknown obligation `{o}` (known: {}); use `duties` for system-level duties",
                        c.id,
                        OBLIGATIONS.join(", ")
                    )));
                }
            }
            if c.duties
                .iter()
                .chain(&c.evidence)
                .any(|d| d.trim().is_empty())
            {
                return Err(err(format!(
                    "control `{}` has an empty duty or evidence name",
                    c.id
                )));
            }
            // Evidence is matched against entry names: a name the mesh never
            // writes (a typo) would silently count nothing.
            if let Some(e) = c
                .evidence
                .iter()
                .find(|e| agentmesh_audit::Event::parse(e).is_none())
            {
                return Err(err(format!(
                    "control `{}`: `{e}` is not an audit event the mesh writes (see docs/wire/audit.md)",
                    c.id
                )));
            }
            if c.obligations.is_empty() && c.duties.is_empty() {
                return Err(err(format!(
                    "control `{}` asks for nothing (no obligations, no duties)",
                    c.id
                )));
            }
        }
        let controls: Vec<Control> = doc
            .controls
            .into_iter()
            .map(|c| Control {
                id: c.id,
                title: c.title,
                citation: c.citation,
                when: c.when,
                obligations: c.obligations,
                duties: c.duties,
                evidence: c.evidence,
                description: c.description,
            })
            .collect();
        let mut by_class: HashMap<String, Vec<usize>> = HashMap::new();
        let mut conditional = Vec::new();
        for (i, c) in controls.iter().enumerate() {
            let w = &c.when;
            let only_class = !w.classifications.is_empty()
                && w.data.is_empty()
                && w.actions.is_empty()
                && w.action_types.is_empty()
                && w.domains.is_empty()
                && !w.always;
            if only_class {
                for k in &w.classifications {
                    by_class.entry(k.clone()).or_default().push(i);
                }
            } else {
                conditional.push(i);
            }
        }
        Ok(Self {
            framework: doc.framework,
            title: doc.title,
            version: doc.version,
            source: doc.source,
            classifications: doc
                .classifications
                .into_iter()
                .map(|c| Classification {
                    id: c.id,
                    label: c.label,
                    citation: c.citation,
                    when: c.when,
                })
                .collect(),
            controls,
            by_class,
            conditional,
        })
    }
}

/// All loaded catalogues.
#[derive(Debug, Clone)]
pub struct Catalogues {
    pub(crate) frameworks: Vec<Catalogue>,
}

impl Catalogues {
    /// The catalogues built into the binary.
    pub fn builtin() -> Result<Self, CatalogueError> {
        let mut frameworks = Vec::new();
        for (file, text) in BUILTIN {
            frameworks.push(Catalogue::from_yaml(text, file)?);
        }
        Ok(Self { frameworks })
    }

    /// The built-in catalogues, with any `*.yaml` in `dir` replacing the
    /// framework of the same id (or adding a new one).
    pub fn with_overrides(dir: &std::path::Path) -> Result<Self, CatalogueError> {
        let mut c = Self::builtin()?;
        let entries = std::fs::read_dir(dir).map_err(|e| CatalogueError {
            file: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| CatalogueError {
                file: f.display().to_string(),
                message: e.to_string(),
            })?;
            let cat = Catalogue::from_yaml(&text, &f.display().to_string())?;
            match c
                .frameworks
                .iter_mut()
                .find(|x| x.framework == cat.framework)
            {
                Some(slot) => *slot = cat,
                None => c.frameworks.push(cat),
            }
        }
        Ok(c)
    }

    pub fn get(&self, framework: &str) -> Option<&Catalogue> {
        self.frameworks.iter().find(|c| c.framework == framework)
    }

    pub fn all(&self) -> &[Catalogue] {
        &self.frameworks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogues_load() {
        let c = Catalogues::builtin().expect("builtin catalogues are valid");
        let ids: Vec<&str> = c.all().iter().map(|c| c.framework.as_str()).collect();
        assert_eq!(ids, ["eu_ai_act", "hipaa", "soc2", "gdpr", "owasp_agentic"]);
        for cat in c.all() {
            for ctl in &cat.controls {
                assert!(!ctl.citation.is_empty());
            }
        }
        let hipaa = c.get("hipaa").expect("hipaa");
        for id in [
            "164.312(a)(1)",
            "164.312(b)",
            "164.312(c)(1)",
            "164.312(d)",
            "164.312(e)(1)",
            "164.502(b)",
        ] {
            assert!(hipaa.controls.iter().any(|x| x.id == id), "{id}");
        }
        let soc2 = c.get("soc2").expect("soc2");
        for id in ["CC6.1", "CC6.2", "CC6.3", "CC7.2", "CC8.1"] {
            assert!(soc2.controls.iter().any(|x| x.id == id), "{id}");
        }
        let gdpr = c.get("gdpr").expect("gdpr");
        for id in ["art5", "art6", "art9", "art22", "art25", "art30", "art32"] {
            assert!(gdpr.controls.iter().any(|x| x.id == id), "{id}");
        }
        let eu = c.get("eu_ai_act").expect("eu");
        for id in ["art9", "art10", "art12", "art13", "art14", "art15"] {
            assert!(eu.controls.iter().any(|x| x.id == id), "{id}");
        }
        assert_eq!(c.get("owasp_agentic").expect("owasp").controls.len(), 10);
    }

    fn bad(yaml: &str) -> String {
        Catalogue::from_yaml(yaml, "t.yaml")
            .expect_err("must be rejected")
            .to_string()
    }

    const HEAD: &str = "framework: t\ntitle: T\nversion: \"1\"\nsource: S\n";

    #[test]
    fn validation_rejects_bad_catalogues() {
        assert!(bad(&format!("{HEAD}controls: []\nextra: 1\n")).contains("unknown field `extra`"));
        assert!(bad(&format!("{HEAD}controls:\n  - {{id: a, title: A, citation: '', when: {{always: true}}, duties: [x]}}\n")).contains("no citation"));
        assert!(bad(&format!(
            "{HEAD}controls:\n  - {{id: a, title: A, citation: C, when: {{always: true}}, duties: [x]}}\n  - {{id: a, title: B, citation: C, when: {{always: true}}, duties: [x]}}\n"
        ))
        .contains("duplicate control id"));
        assert!(
            bad(&format!(
                "{HEAD}controls:\n  - {{id: a, title: A, citation: C, when: {{}}, duties: [x]}}\n"
            ))
            .contains("says nothing")
        );
        assert!(bad(&format!("{HEAD}controls:\n  - {{id: a, title: A, citation: C, when: {{always: true}}, obligations: [fly]}}\n")).contains("unknown obligation `fly`"));
        assert!(bad(&format!("{HEAD}controls:\n  - {{id: a, title: A, citation: C, when: {{classifications: [nope]}}, duties: [x]}}\n")).contains("unknown classification"));
        assert!(bad(&format!("{HEAD}controls:\n  - {{id: a, title: A, citation: C, when: {{always: true}}, duties: [x], colour: red}}\n")).contains("unknown field `colour`"));
        assert!(bad(&format!("{HEAD}controls:\n  - {{id: a, title: A, citation: C, when: {{always: true}}, duties: [x], evidence: [policy.changed]}}\n")).contains("`policy.changed` is not an audit event"));
        assert!(
            bad("framework: T-1\ntitle: T\nversion: \"1\"\nsource: S\ncontrols: []\n")
                .contains("lowercase")
        );
        assert!(bad(&format!("{HEAD}classifications:\n  - {{id: c, label: L, citation: '', when: {{always: true}}}}\ncontrols: []\n")).contains("no citation"));
    }
}
