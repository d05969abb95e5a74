//! Differential test: our compiled evaluator against the `cel` crate's own
//! interpreter, on random well-typed conditions and random requests. Both
//! must produce the same boolean, or both must fail.

use agentmesh_policy::{Request, compile_condition, eval_condition};
use proptest::prelude::*;

fn bool_expr(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("data.contains_pii".to_owned()),
        Just("has(data.contains_pii)".to_owned()),
        Just("has(request.arguments.path)".to_owned()),
        (num_expr(0), cmp_op(), num_expr(0)).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (str_expr(), prop_oneof![Just("=="), Just("!=")], str_expr())
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (str_expr(), str_expr()).prop_map(|(a, b)| format!("{a}.startsWith({b})")),
        (str_expr(), str_expr()).prop_map(|(a, b)| format!("{a}.contains({b})")),
        (str_expr(), str_expr()).prop_map(|(a, b)| format!("{a}.endsWith({b})")),
        str_expr().prop_map(|a| format!("{a} in agent.capabilities")),
        str_expr().prop_map(|a| format!("{a} in ['read', 'export', 'read:*']")),
        Just("agent.capabilities.exists(c, c.startsWith('read'))".to_owned()),
        Just("agent.capabilities.all(c, c.contains(':'))".to_owned()),
        Just("size(agent.capabilities) > 1".to_owned()),
        Just("request.arguments.path.matches('^/etc/')".to_owned()),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let sub = bool_expr(depth - 1);
    prop_oneof![
        3 => leaf,
        1 => (sub.clone(), sub.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
        1 => (sub.clone(), sub.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
        1 => sub.clone().prop_map(|a| format!("!({a})")),
        1 => (sub.clone(), sub.clone(), sub).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
    ]
    .boxed()
}

fn cmp_op() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec!["==", "!=", "<", "<=", ">", ">="])
}

fn num_expr(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("agent.trust_score".to_owned()),
        Just("agent.delegation_depth".to_owned()),
        Just("time.hour".to_owned()),
        Just("request.arguments.n".to_owned()),
        Just("size(action.type)".to_owned()),
        (-3i64..30).prop_map(|i| i.to_string()),
        proptest::sample::select(vec!["0.0", "0.5", "0.6", "1.0", "2.5"]).prop_map(str::to_owned),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let sub = num_expr(depth - 1);
    prop_oneof![
        2 => leaf,
        1 => (sub.clone(), proptest::sample::select(vec!["+", "-", "*"]), sub).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
    ]
    .boxed()
}

fn str_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("agent.name".to_owned()),
        Just("action.type".to_owned()),
        Just("request.arguments.path".to_owned()),
        proptest::sample::select(vec![
            "'read'", "'export'", "'a'", "''", "'/etc/'", "'read:*'"
        ])
        .prop_map(str::to_owned),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        proptest::option::of(proptest::sample::select(vec!["a", "analyst", "read"])),
        proptest::option::of(proptest::sample::select(vec![0.0, 0.3, 0.6, 0.9, 1.0])),
        proptest::option::of(0i64..4),
        proptest::option::of(proptest::sample::select(vec!["read", "export", "api_call"])),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::vec(
            proptest::sample::select(vec!["read:*", "write:reports", "read:db", "x"]),
            0..3,
        )),
        proptest::option::of((
            proptest::option::of(proptest::sample::select(vec!["/etc/passwd", "/home/a", ""])),
            proptest::option::of(-2i64..10),
        )),
        proptest::option::of(0i64..24),
    )
        .prop_map(|(name, trust, depth, action, pii, caps, args, hour)| {
            let mut r = Request::default();
            r.agent.name = name.map(str::to_owned);
            r.agent.trust_score = trust;
            r.agent.delegation_depth = depth;
            r.agent.capabilities = caps.map(|c| c.into_iter().map(str::to_owned).collect());
            r.action.kind = action.map(str::to_owned);
            r.data.contains_pii = pii;
            r.time.hour = hour;
            if let Some((path, n)) = args {
                let mut m = serde_json::Map::new();
                if let Some(p) = path {
                    m.insert("path".into(), p.into());
                }
                if let Some(n) = n {
                    m.insert("n".into(), n.into());
                }
                r.request.arguments = Some(serde_json::Value::Object(m));
            }
            r
        })
}

/// What the reference interpreter says.
fn reference(src: &str, req: &Request) -> Option<bool> {
    let program = cel::Program::compile(src).ok()?;
    let mut ctx = cel::Context::default();
    let v = serde_json::to_value(req).ok()?;
    for root in ["agent", "action", "data", "request", "user", "time"] {
        ctx.add_variable(root, v[root].clone()).ok()?;
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => Some(b),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn agrees_with_the_reference_interpreter(src in bool_expr(3), req in request()) {
        let Ok(compiled) = compile_condition(&src) else {
            // Ill-typed by our checker (e.g. string < int): nothing to compare.
            return Ok(());
        };
        let ours = eval_condition(&compiled, &req).ok();
        let theirs = reference(&src, &req);
        prop_assert_eq!(ours, theirs, "condition: {}\nrequest: {}", src, serde_json::to_string(&req).unwrap_or_default());
    }
}

/// Guards the test above against vacuity: most generated conditions must
/// compile, and many must evaluate to a boolean (not an error) on both sides.
#[test]
fn the_differential_test_is_not_vacuous() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut compiled, mut decided) = (0, 0);
    for _ in 0..2000 {
        let src = bool_expr(3).new_tree(&mut runner).expect("tree").current();
        let req = request().new_tree(&mut runner).expect("tree").current();
        if let Ok(c) = compile_condition(&src) {
            compiled += 1;
            if let (Ok(a), Some(b)) = (eval_condition(&c, &req), reference(&src, &req)) {
                assert_eq!(a, b, "{src}");
                decided += 1;
            }
        }
    }
    assert!(
        compiled > 1500,
        "only {compiled}/2000 generated conditions compiled"
    );
    assert!(
        decided > 400,
        "only {decided} conditions evaluated to a boolean on both sides"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The equality guard that lets `decide` skip a rule is exact: when it
    /// rules a condition out, evaluating the condition gives `false` (never
    /// `true`, never an error).
    #[test]
    fn a_guard_only_skips_conditions_that_are_false(
        lit in proptest::sample::select(vec!["read", "export", "a"]),
        rest in bool_expr(2),
        guard_first in any::<bool>(),
        req in request(),
    ) {
        let src = if guard_first {
            format!("action.type == '{lit}' && ({rest})")
        } else {
            format!("({rest}) && '{lit}' == action.type")
        };
        let Ok(compiled) = compile_condition(&src) else { return Ok(()); };
        prop_assert!(compiled.guard.is_some(), "{src}");
        let skipped = agentmesh_policy::guard_excludes(&compiled, &req);
        if skipped {
            prop_assert_eq!(eval_condition(&compiled, &req), Ok(false), "{}", src);
        }
    }
}
