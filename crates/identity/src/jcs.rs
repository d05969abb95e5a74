//! RFC 8785 JSON Canonicalization Scheme, exactly: object members sorted by
//! the UTF-16 code units of their names, no whitespace, strings escaped as
//! ECMAScript `JSON.stringify` does, and numbers serialised as ECMAScript's
//! `Number.prototype.toString` (shortest round-trip digits; exponent form
//! only below 1e-6 or from 1e21). Agent-card signatures are over these
//! bytes, so a card signed by another implementation verifies here.

use serde_json::Value;

/// The canonical form of `v`.
pub fn canonicalize(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(n, out),
        Value::String(s) => string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                write(&m[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        // Integers beyond 2^53 are not exact in ECMAScript; they are
        // formatted as the double they become.
        if i.unsigned_abs() <= 1 << 53 {
            out.push_str(&i.to_string());
            return;
        }
    } else if let Some(u) = n.as_u64()
        && u <= 1 << 53
    {
        out.push_str(&u.to_string());
        return;
    }
    match n.as_f64() {
        Some(f) => out.push_str(&es_number(f)),
        None => out.push_str(&n.to_string()),
    }
}

/// ECMAScript `Number.prototype.toString(10)` of a finite double.
pub fn es_number(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        // Not representable in JSON; serde_json never produces it.
        return "null".into();
    }
    let neg = f < 0.0;
    // Rust's `{:e}` gives the shortest round-trip digits: d[.ddd]e<exp>.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let e: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    // n: position of the decimal point relative to the digits (value =
    // 0.digits × 10^n).
    let n = e + 1;
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if k <= n && n <= 21 {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        s.push_str(&digits[..n as usize]);
        s.push('.');
        s.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-n) as usize));
        s.push_str(&digits);
    } else {
        s.push_str(&digits[..1]);
        if k > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if n > 0 { '+' } else { '-' });
        s.push_str(&(n - 1).abs().to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_follow_ecmascript() {
        // From RFC 8785 appendix B and ECMAScript behaviour.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (4.5, "4.5"),
            (0.002, "0.002"),
            (333333333.3333333, "333333333.3333333"),
            (1e23, "1e+23"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992"),
        ];
        for (f, want) in cases {
            assert_eq!(es_number(*f), *want, "{f}");
        }
    }

    #[test]
    fn objects_sort_by_utf16_and_strings_escape_like_json_stringify() {
        // RFC 8785 §3.2.3 sorting example (keys with non-BMP characters).
        let v = json!({"\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh", "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{0080}": "Control", "\u{00f6}": "Latin Small Letter O With Diaeresis"});
        let c = canonicalize(&v);
        let order: Vec<&str> = [
            "\"\\r\"",
            "\"1\"",
            "\"\u{0080}\"",
            "\"\u{00f6}\"",
            "\"\u{20ac}\"",
            "\"\u{1f600}\"",
            "\"\u{fb33}\"",
        ]
        .to_vec();
        let mut last = 0;
        for k in order {
            let at = c.find(k).expect(k);
            assert!(at >= last, "{k} out of order in {c}");
            last = at;
        }
        assert_eq!(
            canonicalize(&json!({"b": [1, 2.5, "\u{1}x\u{7f}"], "a": {"z": null, "y": true}})),
            "{\"a\":{\"y\":true,\"z\":null},\"b\":[1,2.5,\"\\u0001x\u{7f}\"]}"
        );
    }
}
