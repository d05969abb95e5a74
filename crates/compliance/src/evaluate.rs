//! Evaluating an action: per framework, its classification, the controls
//! it triggers and the obligations that act on it.

use crate::catalogue::{Catalogue, Catalogues, Classification, Control, When};
use serde::Serialize;

/// What is being done, as the catalogues see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Action or tool name (`access_patient_record`, `read_file`).
    pub action: &'a str,
    /// Action type (`read`, `export`, `tool_call`, …), if known.
    pub action_type: Option<&'a str>,
    /// Data classification (`phi`, `pii`, …), if known.
    pub data: Option<&'a str>,
    /// Domain the agent works in (`healthcare`, …), if declared.
    pub domain: Option<&'a str>,
}

/// One framework's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct FrameworkResult<'c> {
    pub framework: &'c str,
    pub title: &'c str,
    pub version: &'c str,
    #[serde(serialize_with = "ser_class")]
    pub classification: Option<&'c Classification>,
    #[serde(serialize_with = "ser_controls")]
    pub controls: Vec<&'c Control>,
    /// Obligations acting on this call, in first-seen order, without repeats.
    pub obligations: Vec<&'c str>,
}

fn ser_class<S: serde::Serializer>(c: &Option<&Classification>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        None => s.serialize_none(),
        Some(c) => {
            serde_json::json!({"id": c.id, "label": c.label, "citation": c.citation}).serialize(s)
        }
    }
}

fn ser_controls<S: serde::Serializer>(c: &[&Control], s: S) -> Result<S::Ok, S::Error> {
    let v: Vec<_> = c
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "title": c.title, "citation": c.citation, "obligations": c.obligations, "duties": c.duties}))
        .collect();
    v.serialize(s)
}

/// The verdict of every requested framework.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation<'c> {
    pub frameworks: Vec<FrameworkResult<'c>>,
}

impl<'c> Evaluation<'c> {
    /// All obligations across frameworks, without repeats.
    pub fn obligations(&self) -> Vec<&'c str> {
        let mut out: Vec<&str> = Vec::new();
        for f in &self.frameworks {
            for o in &f.obligations {
                if !out.contains(o) {
                    out.push(o);
                }
            }
        }
        out
    }

    /// Triggered controls as `framework/control`.
    pub fn control_keys(&self) -> Vec<String> {
        self.frameworks
            .iter()
            .flat_map(|f| {
                f.controls
                    .iter()
                    .map(move |c| format!("{}/{}", f.framework, c.id))
            })
            .collect()
    }

    /// The first control (as `framework/control`) imposing `obligation`.
    pub fn control_for(&self, obligation: &str) -> Option<String> {
        self.frameworks.iter().find_map(|f| {
            f.controls
                .iter()
                .find(|c| c.obligations.iter().any(|o| o == obligation))
                .map(|c| format!("{}/{}", f.framework, c.id))
        })
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || !s.ends_with(last) || s.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn matches(w: &When, ctx: &Context<'_>, class: Option<&str>) -> bool {
    let any = |list: &[String], v: Option<&str>| {
        list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
    };
    (w.always
        || !w.data.is_empty()
        || !w.actions.is_empty()
        || !w.action_types.is_empty()
        || !w.domains.is_empty()
        || !w.classifications.is_empty())
        && any(&w.data, ctx.data)
        && any(&w.action_types, ctx.action_type)
        && any(&w.domains, ctx.domain)
        && any(&w.classifications, class)
        && (w.actions.is_empty() || w.actions.iter().any(|p| glob(p, ctx.action)))
}

impl Catalogue {
    /// This framework's verdict on `ctx`.
    pub fn evaluate(&self, ctx: &Context<'_>) -> FrameworkResult<'_> {
        let classification = self
            .classifications
            .iter()
            .find(|c| matches(&c.when, ctx, None));
        let class = classification.map(|c| c.id.as_str());
        let mut idx: Vec<usize> = class
            .and_then(|k| self.by_class.get(k))
            .cloned()
            .unwrap_or_default();
        for &i in &self.conditional {
            if matches(&self.controls[i].when, ctx, class) {
                idx.push(i);
            }
        }
        idx.sort_unstable();
        let controls: Vec<&Control> = idx.iter().map(|&i| &self.controls[i]).collect();
        let mut obligations: Vec<&str> = Vec::new();
        for c in &controls {
            for o in &c.obligations {
                if !obligations.contains(&o.as_str()) {
                    obligations.push(o);
                }
            }
        }
        FrameworkResult {
            framework: &self.framework,
            title: &self.title,
            version: &self.version,
            classification,
            controls,
            obligations,
        }
    }
}

/// Why frameworks could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compliance framework `{0}` (known: {1})")]
pub struct UnknownFramework(pub String, pub String);

impl Catalogues {
    /// The verdict of each named framework on `ctx`.
    pub fn evaluate<'c>(
        &'c self,
        frameworks: &[&str],
        ctx: &Context<'_>,
    ) -> Result<Evaluation<'c>, UnknownFramework> {
        let mut out = Evaluation::default();
        for f in frameworks {
            let cat = self.get(f).ok_or_else(|| {
                UnknownFramework(
                    (*f).to_owned(),
                    self.all()
                        .iter()
                        .map(|c| c.framework.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })?;
            out.frameworks.push(cat.evaluate(ctx));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*patient*", "access_patient_record"));
        assert!(glob("access_*", "access_patient_record"));
        assert!(!glob("access_*", "read_patient"));
        assert!(glob("*record", "access_patient_record"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-c-b"));
    }
}
