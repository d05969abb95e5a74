//! Canonical JSON: the one encoding AgentMesh hashes and signs when a value
//! is JSON (audit entry details, call arguments).
//!
//! Object keys are sorted by their UTF-16 code units (RFC 8785 order), no
//! whitespace, strings escaped as serde_json does (which matches RFC 8785
//! for the characters it escapes), integers as plain decimals. Doubles are
//! written by serde_json's shortest round-trip formatting, which differs
//! from RFC 8785 only in exponent notation; AgentMesh never signs doubles
//! it did not format itself.

/// Appends the canonical JSON of `v` to `out`.
pub fn canonical_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                out.push(':');
                canonical_json(&m[k.as_str()], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The canonical JSON of `v` as a new string.
pub fn to_canonical_json(v: &serde_json::Value) -> String {
    let mut s = String::new();
    canonical_json(v, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"b": 1, "a": {"y": [1, 2], "x": "s\n"}, "é": null, "Z": true}"#,
        )
        .expect("json");
        assert_eq!(
            to_canonical_json(&v),
            r#"{"Z":true,"a":{"x":"s\n","y":[1,2]},"b":1,"é":null}"#
        );
    }
}
