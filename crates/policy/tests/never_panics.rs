//! The policy compiler never panics, on conditions shaped like CEL as well
//! as on random text, and every rejected condition in a policy file is a
//! load error that points at `file:line:col`.
//!
//! Random characters (see `robustness.rs`) almost never form a method call
//! with a receiver or a macro with the wrong arity, which is where the
//! compiler once indexed past the end of a call's arguments
//! (`action.tool.size() > 0`). The strategies here build expressions from
//! CEL's own pieces: every attribute, receiver and global calls with zero to
//! three arguments, every macro, map and list literals, and extreme numbers.

use agentmesh_policy::schema::ATTRIBUTES;
use agentmesh_policy::{DecideContext, PolicySet, Request, compile_condition, eval_condition};
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(ATTRIBUTES.iter().map(|a| a.path).collect::<Vec<_>>())
            .prop_map(str::to_owned),
        "request\\.arguments(\\.[a-z]{1,3}){1,3}",
        prop::sample::select(vec![
            "agent",
            "action",
            "x",
            "c",
            "__result__",
            "has",
            "size",
            "true",
            "false",
            "null",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|u| format!("{u}u")),
        any::<f64>().prop_map(|d| format!("{d:?}")),
        prop::sample::select(vec![
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551616u",
            "0x7fffffffffffffff",
            "1e400",
            "-0.0",
            "b'\\xff'",
            "'\\u0000'",
            "r'\\d'",
            "'''x'''",
            "{}",
            "[]",
        ])
        .prop_map(str::to_owned),
        "'[a-z/:*.]{0,6}'",
    ]
}

const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "exists",
    "all",
    "exists_one",
    "map",
    "filter",
    "has",
    "int",
    "string",
    "dyn",
    "lowerAscii",
];

const BINARY: &[&str] = &[
    "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "&&", "||", "in", "and", "or",
];

fn expr() -> impl Strategy<Value = String> {
    leaf().prop_recursive(6, 48, 4, |inner| {
        let args = prop::collection::vec(inner.clone(), 0..4).prop_map(|v| v.join(", "));
        prop_oneof![
            // Receiver call with any arity: `x.size()`, `l.exists(c)`, …
            (inner.clone(), prop::sample::select(FUNCTIONS), args.clone())
                .prop_map(|(t, f, a)| format!("{t}.{f}({a})")),
            // Global call with any arity: `size()`, `matches(x)`, …
            (prop::sample::select(FUNCTIONS), args.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            // A macro with a variable, well-formed or not.
            (
                inner.clone(),
                prop::sample::select(vec!["exists", "all", "exists_one", "map", "filter"]),
                inner.clone()
            )
                .prop_map(|(r, m, b)| format!("{r}.{m}(x, {b})")),
            (inner.clone(), prop::sample::select(BINARY), inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, i)| format!("{a}[{i}]")),
            (inner.clone(), "[a-z_]{1,6}").prop_map(|(a, f)| format!("{a}.{f}")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("{c} ? {a} : {b}")),
            args.clone().prop_map(|a| format!("[{a}]")),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| format!("{{{k}: {v}}}")),
            inner.clone().prop_map(|a| format!("has({a})")),
        ]
    })
}

/// A request with every kind of value the evaluator reads.
fn request() -> Request {
    serde_json::from_value(serde_json::json!({
        "agent": {"name": "a", "trust_score": 0.7, "capabilities": ["read:*"],
                  "delegation_depth": 2},
        "action": {"type": "read", "tool": "read_file"},
        "data": {"contains_pii": true, "size_bytes": 9_223_372_036_854_775_807i64},
        "user": {"role": "admin", "roles": ["a", "b"]},
        "time": {"unix": -1, "hour": 3},
        "request": {"arguments": {"a": {"b": [1, "x", null, {"c": 1.5}]},
                    "x": "y", "n": -9_223_372_036_854_775_807i64, "u": 18_446_744_073_709_551_615u64}},
    }))
    .expect("request")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Compiling CEL-shaped text never panics; what compiles also
    /// evaluates without panicking, and an error always says something.
    #[test]
    fn cel_shaped_conditions_never_panic(src in expr()) {
        match compile_condition(&src) {
            Ok(c) => {
                let _ = eval_condition(&c, &request());
                let _ = eval_condition(&c, &Request::default());
            }
            Err(e) => prop_assert!(!e.message.is_empty(), "{src}: empty error"),
        }
    }

    /// A policy whose condition is CEL-shaped either loads or fails with a
    /// diagnostic that names the file and a line.
    #[test]
    fn cel_shaped_conditions_in_a_policy_fail_with_a_position(src in expr()) {
        let yaml = format!(
            "agent: \"*\"\nrules:\n  - name: r\n    condition: {}\n    action: deny\n",
            serde_json::to_string(&src).expect("json string is a YAML string")
        );
        match PolicySet::from_yaml(&yaml, "p.yaml") {
            Ok(set) => {
                let _ = set.decide(&request(), &DecideContext::bare(0));
            }
            Err(e) => {
                let first = &e.diagnostics[0];
                prop_assert_eq!(&first.file, "p.yaml");
                prop_assert!(first.line >= 1, "{}: no line in {}", src, e);
                prop_assert!(first.column >= 1, "{}: no column in {}", src, e);
            }
        }
    }
}

/// YAML values nested a few levels deep, with policy keys mixed in.
fn yaml_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "allow",
            "deny",
            "warn",
            "require_approval",
            "*",
            "10/minute",
            "0/s",
            "99999999999999999999/second",
            "high",
            "action.tool.size() > 0",
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let keys = prop::sample::select(vec![
            "agent",
            "agents",
            "rules",
            "name",
            "condition",
            "action",
            "limit",
            "priority",
            "policies",
            "version",
            "default_action",
            "approvers",
            "severity",
            "message",
            "compliance",
            "delegation",
            "max_depth",
            "frameworks",
            "capabilities",
            "audit",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Structured YAML in the shape of a policy (JSON is YAML) never panics
    /// the loader, and a refusal always carries a diagnostic.
    #[test]
    fn policy_shaped_yaml_never_panics(v in yaml_value()) {
        let text = serde_json::to_string_pretty(&v).expect("json");
        match PolicySet::from_yaml(&text, "p.yaml") {
            Ok(set) => {
                let _ = set.decide(&request(), &DecideContext::bare(0));
            }
            Err(e) => prop_assert!(!e.diagnostics.is_empty()),
        }
    }
}

/// The condition from the report, and forms of the same class, loaded as a
/// policy file: compiled when valid, otherwise a load error at the rule's
/// condition, never a panic.
#[test]
fn reported_conditions_load_or_fail_at_their_position() {
    let ok = "agent: \"*\"\nrules:\n  - name: r\n    condition: \"action.tool.size() > 0\"\n    action: deny\n";
    PolicySet::from_yaml(ok, "p.yaml").expect("receiver-style size() is valid CEL");
    for (cond, want) in [
        ("size() > 0", "size() takes one value"),
        ("action.tool.size(1, 2) > 0", "size() takes one value"),
        ("[1, 2].map(x, x * 2).size() > 0", "exists() and all()"),
        ("{'a': 1}.size() > 0", "map literals"),
        ("action.tool.matches()", "matches() takes one pattern"),
        ("[1].exists_one(x, x == 1)", "exists() and all()"),
    ] {
        let yaml = format!(
            "agent: \"*\"\nrules:\n  - name: r\n    condition: \"{cond}\"\n    action: deny\n"
        );
        let e = PolicySet::from_yaml(&yaml, "p.yaml").expect_err(cond);
        let text = e.to_string();
        assert!(text.starts_with("p.yaml:4:"), "{cond}: {text}");
        assert!(text.contains(want), "{cond}: {text}");
    }
}
