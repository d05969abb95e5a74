//! What a command prints: the same facts as text for people and as JSON
//! for programs.

use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

/// A command's result.
#[derive(Debug)]
pub struct Output {
    pub json: Value,
    pub text: String,
    /// Non-zero when the command ran but the answer is "no" (a token that
    /// does not verify).
    pub code: u8,
    /// A remark for the person at the terminal, printed on stderr so that
    /// stdout holds only the answer (`TOKEN=$(agentmesh credential issue x)`).
    pub note: Option<String>,
}

impl Output {
    pub fn new(json: Value, text: impl Into<String>) -> Self {
        Self {
            json,
            text: text.into(),
            code: 0,
            note: None,
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    pub fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    pub fn print(self, json: bool) -> ExitCode {
        let text = if json && self.json.is_null() && self.text.is_empty() {
            // The command streamed its own output (export, tail -f).
            String::new()
        } else if json {
            serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "{}".into())
        } else {
            if let Some(note) = &self.note {
                eprintln!("# {note}");
            }
            self.text.trim_end().to_owned()
        };
        if !text.is_empty() {
            // A closed pipe (`agentmesh … | head`) is not an error worth a
            // panic; anything else that stops output is reported.
            let mut out = std::io::stdout().lock();
            if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                eprintln!("error: writing output: {e}");
                return ExitCode::from(1);
            }
        }
        ExitCode::from(self.code)
    }
}

/// Prints an error (to stdout as JSON with --json, else to stderr) and
/// returns exit code 1.
pub fn fail(json: bool, err: &anyhow::Error) -> ExitCode {
    // Causes whose text the message already contains add nothing.
    let top = err.to_string();
    let chain: Vec<String> = err
        .chain()
        .skip(1)
        .map(|e| e.to_string())
        .filter(|c| !top.contains(c.as_str()))
        .collect();
    if json {
        let v = serde_json::json!({ "error": err.to_string(), "causes": chain });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        eprintln!("error: {top}");
        for cause in chain {
            eprintln!("  caused by: {cause}");
        }
    }
    ExitCode::from(1)
}

/// RFC 3339 UTC, to the second.
pub fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// `time(secs)` or `never`.
pub fn opt_time(secs: Option<u64>) -> String {
    secs.map(time).unwrap_or_else(|| "never".into())
}

/// Renders rows as aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}
