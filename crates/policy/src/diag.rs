//! Load-time diagnostics with `file:line:col` positions.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found while loading a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {sev}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(f, "{}: {sev}: {}", self.file, self.message)
        }
    }
}

/// All diagnostics of a failed load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Finds positions in YAML source text for things serde cannot locate
/// (a rule's condition, a rule's name). Best effort: falls back to the
/// rule's line, then to an unknown position.
#[derive(Debug)]
pub(crate) struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            lines: src.lines().collect(),
        }
    }

    /// 0-based index of the line declaring rule `name` (the n-th such
    /// declaration when names repeat), searching from `from`.
    pub fn rule_line(&self, name: &str, from: usize) -> Option<usize> {
        (from..self.lines.len()).find(|&i| {
            let l = self.lines[i]
                .trim_start()
                .trim_start_matches("- ")
                .trim_start();
            l.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(['"', '\'']) == name)
                .unwrap_or(false)
        })
    }

    /// Position (1-based line, 1-based column) of the value of `key` in the
    /// rule starting at `rule_line`, and the column where its text starts.
    pub fn key_in_rule(&self, rule_line: usize, key: &str) -> Option<(usize, usize)> {
        let indent = |l: &str| l.len() - l.trim_start_matches([' ', '-']).len();
        let rule_indent = indent(self.lines[rule_line]);
        for i in rule_line..self.lines.len() {
            let l = self.lines[i];
            if i > rule_line && !l.trim().is_empty() && indent(l) < rule_indent {
                break;
            }
            if i > rule_line && l.trim_start().starts_with("- ") && indent(l) <= rule_indent {
                break;
            }
            let body = l.trim_start_matches([' ', '-']);
            if let Some(rest) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                let value_start = l.len() - rest.trim_start().len();
                let quoted = rest.trim_start().starts_with(['"', '\'']);
                return Some((i + 1, value_start + 1 + usize::from(quoted)));
            }
        }
        None
    }

    /// 1-based line and column of the top-level `key`.
    pub fn top_key(&self, key: &str) -> Option<(usize, usize)> {
        self.lines
            .iter()
            .position(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
            .map(|i| (i + 1, 1))
    }
}
