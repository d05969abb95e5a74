//! Audit entries and their canonical bytes.
//!
//! An entry is a JSON object with **every** field always present, keys in
//! sorted order, no whitespace (canonical JSON); its leaf hash is
//! `SHA-256(0x00 ‖ bytes)`. Trust scores are written as strings with six
//! decimals so no floating-point formatting question can change the bytes.
//! `docs/wire/audit.md` specifies it.

use agentmesh_identity::canonical_json;
#[cfg(test)]
use agentmesh_identity::to_canonical_json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
#[cfg(test)]
use serde_json::json;

/// Entry format version.
pub const ENTRY_VERSION: u64 = 1;
/// Largest encoded entry accepted, in bytes.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// What a caller records. `seq` and `time` are assigned by the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// `decision`, `agent.created`, `delegation.issued`, …
    pub event: String,
    /// DID of the agent concerned.
    pub agent: String,
    /// E-mail of its sponsor.
    pub sponsor: String,
    /// Action or tool.
    pub action: String,
    /// Lowercase hex SHA-256 of the canonical arguments, or empty.
    pub arguments_sha256: String,
    /// allow / deny / warn / require_approval / rate_limited, or empty.
    pub decision: String,
    /// Deciding rule (`policy/rule`), or empty.
    pub rule: String,
    pub policy_version: String,
    pub trust_before: Option<f64>,
    pub trust_after: Option<f64>,
    /// W3C trace id, or empty.
    pub trace_id: String,
    /// Anything else, as a JSON value (canonicalised when encoded).
    pub detail: Value,
}

/// A stored entry: the draft plus its sequence number and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-26T15:04:16.123Z`.
    pub time: String,
    pub draft: Draft,
}

/// Why bytes are not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry is {0} bytes; the limit is {MAX_ENTRY_BYTES}")]
    TooLarge(usize),
    #[error("entry is not valid JSON: {0}")]
    Json(String),
    #[error("entry field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("entry format version {0} is not supported")]
    Version(u64),
    #[error("entry bytes are not in canonical form")]
    NotCanonical,
}

#[cfg(test)]
fn trust(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.is_finite() => Value::String(format!("{:.6}", x.clamp(0.0, 1.0))),
        _ => Value::Null,
    }
}

impl Entry {
    /// The canonical bytes that are hashed and stored. Written field by
    /// field in sorted key order (the same bytes `to_canonical_json` of the
    /// object would give, without building the object): only `detail` goes
    /// through the general canonicaliser.
    pub fn to_bytes(&self) -> Vec<u8> {
        let d = &self.draft;
        let mut out = String::with_capacity(256 + d.detail.to_string().len());
        let field = |out: &mut String, key: &str, first: bool| {
            if !first {
                out.push(',');
            }
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
        };
        let string = |out: &mut String, v: &str| {
            // serde_json's string escaping is the canonical one.
            out.push_str(&Value::String(v.to_owned()).to_string());
        };
        let trust = |out: &mut String, v: Option<f64>| match v {
            Some(x) if x.is_finite() => {
                out.push('"');
                out.push_str(&format!("{:.6}", x.clamp(0.0, 1.0)));
                out.push('"');
            }
            _ => out.push_str("null"),
        };
        out.push('{');
        field(&mut out, "action", true);
        string(&mut out, &d.action);
        field(&mut out, "agent", false);
        string(&mut out, &d.agent);
        field(&mut out, "arguments_sha256", false);
        string(&mut out, &d.arguments_sha256);
        field(&mut out, "decision", false);
        string(&mut out, &d.decision);
        field(&mut out, "detail", false);
        canonical_json(&d.detail, &mut out);
        field(&mut out, "event", false);
        string(&mut out, &d.event);
        field(&mut out, "policy_version", false);
        string(&mut out, &d.policy_version);
        field(&mut out, "rule", false);
        string(&mut out, &d.rule);
        field(&mut out, "seq", false);
        out.push_str(&self.seq.to_string());
        field(&mut out, "sponsor", false);
        string(&mut out, &d.sponsor);
        field(&mut out, "time", false);
        string(&mut out, &self.time);
        field(&mut out, "trace_id", false);
        string(&mut out, &d.trace_id);
        field(&mut out, "trust_after", false);
        trust(&mut out, d.trust_after);
        field(&mut out, "trust_before", false);
        trust(&mut out, d.trust_before);
        field(&mut out, "v", false);
        out.push_str(&ENTRY_VERSION.to_string());
        out.push('}');
        out.into_bytes()
    }

    /// The bytes via the general canonicaliser (the definition `to_bytes`
    /// must match; checked by a test).
    #[cfg(test)]
    fn to_bytes_reference(&self) -> Vec<u8> {
        let d = &self.draft;
        let v = json!({
            "v": ENTRY_VERSION,
            "seq": self.seq,
            "time": self.time,
            "event": d.event,
            "agent": d.agent,
            "sponsor": d.sponsor,
            "action": d.action,
            "arguments_sha256": d.arguments_sha256,
            "decision": d.decision,
            "rule": d.rule,
            "policy_version": d.policy_version,
            "trust_before": trust(d.trust_before),
            "trust_after": trust(d.trust_after),
            "trace_id": d.trace_id,
            "detail": d.detail,
        });
        to_canonical_json(&v).into_bytes()
    }

    /// Parses stored bytes, requiring the canonical form (so two different
    /// byte strings can never mean the same entry).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge(bytes.len()));
        }
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
        let s = |k: &'static str| -> Result<String, EntryError> {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(EntryError::Field(k))
        };
        let t = |k: &'static str| -> Result<Option<f64>, EntryError> {
            match v.get(k) {
                Some(Value::Null) => Ok(None),
                Some(Value::String(x)) => {
                    x.parse::<f64>().map(Some).map_err(|_| EntryError::Field(k))
                }
                _ => Err(EntryError::Field(k)),
            }
        };
        let version = v
            .get("v")
            .and_then(Value::as_u64)
            .ok_or(EntryError::Field("v"))?;
        if version != ENTRY_VERSION {
            return Err(EntryError::Version(version));
        }
        let entry = Entry {
            seq: v
                .get("seq")
                .and_then(Value::as_u64)
                .ok_or(EntryError::Field("seq"))?,
            time: s("time")?,
            draft: Draft {
                event: s("event")?,
                agent: s("agent")?,
                sponsor: s("sponsor")?,
                action: s("action")?,
                arguments_sha256: s("arguments_sha256")?,
                decision: s("decision")?,
                rule: s("rule")?,
                policy_version: s("policy_version")?,
                trust_before: t("trust_before")?,
                trust_after: t("trust_after")?,
                trace_id: s("trace_id")?,
                detail: v
                    .get("detail")
                    .cloned()
                    .ok_or(EntryError::Field("detail"))?,
            },
        };
        if entry.to_bytes() != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }

    /// The entry as a JSON value (for display and export).
    pub fn to_json(&self) -> Value {
        serde_json::from_slice(&self.to_bytes()).unwrap_or(Value::Null)
    }
}

/// RFC 3339 UTC with milliseconds for a time in unix nanoseconds.
pub fn rfc3339_millis(unix_ns: u128) -> String {
    let secs = (unix_ns / 1_000_000_000) as i64;
    let millis = ((unix_ns / 1_000_000) % 1000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            seq: 7,
            time: "2026-11-26T15:04:16.123Z".into(),
            draft: Draft {
                event: "decision".into(),
                agent: "did:mesh:z6Mk".into(),
                sponsor: "alice@company.com".into(),
                action: "read_file".into(),
                arguments_sha256: "ab".repeat(32),
                decision: "deny".into(),
                rule: "p/no-pii-export".into(),
                policy_version: "48d22fb75d4ab580".into(),
                trust_before: Some(0.75),
                trust_after: Some(0.7),
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                detail: json!({"z": 1, "a": [true, null]}),
            },
        }
    }

    #[test]
    fn round_trips_and_is_canonical() {
        let e = sample();
        let b = e.to_bytes();
        let text = String::from_utf8(b.clone()).expect("utf8");
        assert!(
            text.starts_with("{\"action\":\"read_file\",\"agent\":"),
            "{text}"
        );
        assert!(
            text.contains("\"detail\":{\"a\":[true,null],\"z\":1}"),
            "{text}"
        );
        assert!(text.contains("\"trust_after\":\"0.700000\""), "{text}");
        assert_eq!(Entry::from_bytes(&b), Ok(e));
        // The same JSON with different spacing is not the canonical form.
        let spaced = text.replace(",\"agent\"", ", \"agent\"");
        assert_eq!(
            Entry::from_bytes(spaced.as_bytes()),
            Err(EntryError::NotCanonical)
        );
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let base = sample().to_bytes();
        let mut variants = Vec::new();
        let mut e = sample();
        e.seq += 1;
        variants.push(e);
        macro_rules! vary {
            ($($f:ident),*) => {$(
                let mut e = sample();
                e.draft.$f.push('x');
                variants.push(e);
            )*};
        }
        vary!(
            event,
            agent,
            sponsor,
            action,
            arguments_sha256,
            decision,
            rule,
            policy_version,
            trace_id
        );
        let mut e = sample();
        e.time.push('x');
        variants.push(e);
        let mut e = sample();
        e.draft.trust_before = Some(0.75001);
        variants.push(e);
        let mut e = sample();
        e.draft.trust_after = None;
        variants.push(e);
        let mut e = sample();
        e.draft.detail = json!({"z": 2, "a": [true, null]});
        variants.push(e);
        for v in variants {
            assert_ne!(v.to_bytes(), base, "{v:?}");
        }
    }

    #[test]
    fn fast_encoding_matches_the_canonicaliser() {
        let mut e = sample();
        assert_eq!(e.to_bytes(), e.to_bytes_reference());
        e.draft.event = "quote \" backslash \\ newline \n é \u{1}".into();
        e.draft.trust_before = None;
        e.draft.trust_after = Some(f64::NAN);
        e.draft.detail = json!({"b": [1, {"z": null, "a": "x"}], "a": 1.5});
        assert_eq!(e.to_bytes(), e.to_bytes_reference());
        Entry::from_bytes(&e.to_bytes()).expect("round trip");
    }

    #[test]
    fn rejects_bad_bytes() {
        assert!(matches!(
            Entry::from_bytes(b"not json"),
            Err(EntryError::Json(_))
        ));
        assert_eq!(Entry::from_bytes(b"{}"), Err(EntryError::Field("v")));
        assert!(matches!(
            Entry::from_bytes(&vec![b' '; MAX_ENTRY_BYTES + 1]),
            Err(EntryError::TooLarge(_))
        ));
    }

    #[test]
    fn time_format() {
        assert_eq!(
            rfc3339_millis(1_800_000_000_123_456_789),
            "2027-01-15T08:00:00.123Z"
        );
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
