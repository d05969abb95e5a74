//! Static checks on compiled conditions: conditions that can never be true,
//! and what one condition implies about another (for shadowed rules).
//!
//! Sound, not complete: when these checks say "never true" or "implies",
//! that holds for every request; they do not find every such case.

use crate::compile::{CmpOp, Lit, Node};
use crate::schema::{Attr, Ty};
use std::collections::HashMap;

/// `Some(b)` when the condition is the constant `b` for every request.
pub fn constant(node: &Node) -> Option<bool> {
    match node {
        Node::Lit(Lit::Bool(b)) => Some(*b),
        Node::Not(n) => constant(n).map(|b| !b),
        Node::And(parts) => {
            let vals: Vec<Option<bool>> = parts.iter().map(constant).collect();
            if vals.contains(&Some(false)) {
                Some(false)
            } else if vals.iter().all(|v| *v == Some(true)) {
                Some(true)
            } else {
                None
            }
        }
        Node::Or(parts) => {
            let vals: Vec<Option<bool>> = parts.iter().map(constant).collect();
            if vals.contains(&Some(true)) {
                Some(true)
            } else if vals.iter().all(|v| *v == Some(false)) {
                Some(false)
            } else {
                None
            }
        }
        Node::Cmp(op, a, b) => match (&**a, &**b) {
            (Node::Lit(x), Node::Lit(y)) => {
                let r = crate::eval::eval_bool(
                    &Node::Cmp(
                        *op,
                        Box::new(Node::Lit(x.clone())),
                        Box::new(Node::Lit(y.clone())),
                    ),
                    &crate::schema::Request::default(),
                );
                r.ok()
            }
            _ => None,
        },
        _ => None,
    }
}

/// Why a condition can never be true, if it provably cannot.
pub fn never_true(node: &Node) -> Option<String> {
    if constant(node) == Some(false) {
        return Some("the condition is always false".into());
    }
    match node {
        Node::And(parts) => conjunction_conflict(parts),
        Node::Or(parts) => {
            // Every branch impossible.
            let reasons: Vec<Option<String>> = parts.iter().map(never_true).collect();
            if reasons.iter().all(Option::is_some) {
                Some(format!(
                    "every alternative is impossible ({})",
                    reasons.into_iter().flatten().collect::<Vec<_>>().join("; ")
                ))
            } else {
                None
            }
        }
        other => conjunction_conflict(std::slice::from_ref(other)),
    }
}

#[derive(Default)]
struct Facts {
    eq: Option<Lit>,
    ne: Vec<Lit>,
    any_of: Option<Vec<Lit>>,
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
}

fn as_f64(l: &Lit) -> Option<f64> {
    match l {
        Lit::Int(i) => Some(*i as f64),
        Lit::UInt(u) => Some(*u as f64),
        Lit::Double(d) => Some(*d),
        _ => None,
    }
}

fn lit_eq(a: &Lit, b: &Lit) -> bool {
    match (as_f64(a), as_f64(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// String literals compared with `action.tool` that look like a gateway's
/// namespaced name (`<server>__<tool>`). `action.tool` is the tool as its
/// server names it, whichever gateway fronts it; a rule written against the
/// namespaced form never matches (and adding an upstream must not change
/// what a rule matches). `policy lint` warns about each.
pub fn namespaced_tool_literals(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    namespaced_walk(node, &mut out);
    out
}

fn namespaced_walk(node: &Node, out: &mut Vec<String>) {
    let is_tool = |n: &Node| matches!(n, Node::Attr(Attr::ActionTool));
    let mut lit = |l: &Lit| match l {
        Lit::Str(s) if s.contains("__") => out.push(s.to_string()),
        Lit::List(items) => {
            for i in items {
                if let Lit::Str(s) = i
                    && s.contains("__")
                {
                    out.push(s.to_string());
                }
            }
        }
        _ => {}
    };
    match node {
        Node::Cmp(_, a, b) | Node::In(a, b) | Node::Str(_, a, b) => {
            match (&**a, &**b) {
                (x, Node::Lit(l)) | (Node::Lit(l), x) if is_tool(x) => lit(l),
                (x, Node::List(items)) if is_tool(x) => {
                    for i in items {
                        if let Node::Lit(l) = i {
                            lit(l);
                        }
                    }
                }
                _ => {}
            }
            namespaced_walk(a, out);
            namespaced_walk(b, out);
        }
        Node::Not(x) | Node::Neg(x) | Node::Size(x) | Node::Matches(x, _) => {
            namespaced_walk(x, out)
        }
        Node::And(v) | Node::Or(v) | Node::List(v) => {
            for x in v {
                namespaced_walk(x, out);
            }
        }
        Node::Cond(a, b, c) => {
            for x in [a, b, c] {
                namespaced_walk(x, out);
            }
        }
        Node::Arith(_, a, b) | Node::Index(a, b) => {
            namespaced_walk(a, out);
            namespaced_walk(b, out);
        }
        Node::Quant { range, body, .. } => {
            namespaced_walk(range, out);
            namespaced_walk(body, out);
        }
        Node::Lit(_) | Node::Attr(_) | Node::Arg(_) | Node::Var(..) | Node::Has(_) => {}
    }
}

/// Attribute on one side, literal on the other, operator as if the
/// attribute were on the left.
fn attr_cmp(node: &Node) -> Option<(Attr, CmpOp, &Lit)> {
    let Node::Cmp(op, a, b) = node else {
        return None;
    };
    let flip = |op: CmpOp| match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        o => o,
    };
    match (&**a, &**b) {
        (Node::Attr(x), Node::Lit(l)) => Some((*x, *op, l)),
        (Node::Lit(l), Node::Attr(x)) => Some((*x, flip(*op), l)),
        _ => None,
    }
}

fn conjunction_conflict(parts: &[Node]) -> Option<String> {
    let mut facts: HashMap<Attr, Facts> = HashMap::new();
    for p in parts {
        if let Some((a, op, l)) = attr_cmp(p) {
            let f = facts.entry(a).or_default();
            match op {
                CmpOp::Eq => {
                    if let Some(prev) = &f.eq
                        && !lit_eq(prev, l)
                    {
                        return Some(format!("{} cannot be both {prev} and {l}", a.def().path));
                    }
                    f.eq = Some(l.clone());
                }
                CmpOp::Ne => f.ne.push(l.clone()),
                CmpOp::Lt | CmpOp::Le => {
                    if let Some(v) = as_f64(l) {
                        let strict = op == CmpOp::Lt;
                        f.hi = Some(match f.hi {
                            Some((h, s)) if h < v || (h == v && s) => (h, s),
                            _ => (v, strict),
                        });
                    }
                }
                CmpOp::Gt | CmpOp::Ge => {
                    if let Some(v) = as_f64(l) {
                        let strict = op == CmpOp::Gt;
                        f.lo = Some(match f.lo {
                            Some((lo, s)) if lo > v || (lo == v && s) => (lo, s),
                            _ => (v, strict),
                        });
                    }
                }
            }
        } else if let Node::In(a, b) = p
            && let (Node::Attr(x), Node::Lit(Lit::List(items))) = (&**a, &**b)
        {
            let f = facts.entry(*x).or_default();
            f.any_of = Some(match f.any_of.take() {
                Some(prev) => prev
                    .into_iter()
                    .filter(|v| items.iter().any(|i| lit_eq(i, v)))
                    .collect(),
                None => items.clone(),
            });
            if f.any_of.as_ref().is_some_and(Vec::is_empty) {
                return Some(format!(
                    "{} is in no value of every list it is tested against",
                    x.def().path
                ));
            }
        }
    }
    for (a, f) in &facts {
        let def = a.def();
        // Known closed value sets (trust tiers, protocols).
        if let (Some(values), Some(Lit::Str(s))) = (def.values, &f.eq)
            && !values.contains(&&**s)
        {
            return Some(format!(
                "{} is never '{s}' (it is one of: {})",
                def.path,
                values.join(", ")
            ));
        }
        if let Some(eq) = &f.eq {
            if f.ne.iter().any(|n| lit_eq(n, eq)) {
                return Some(format!("{} cannot be {eq} and not {eq}", def.path));
            }
            if let Some(list) = &f.any_of
                && !list.iter().any(|v| lit_eq(v, eq))
            {
                return Some(format!(
                    "{} == {eq} but it must also be in a list without {eq}",
                    def.path
                ));
            }
        }
        if def.ty.is_numeric() || def.ty == Ty::Int {
            let (mut lo, mut hi) = (f.lo, f.hi);
            if let Some(v) = f.eq.as_ref().and_then(as_f64) {
                lo = Some((v, false)).max_by_bound(lo, true);
                hi = Some((v, false)).max_by_bound(hi, false);
            }
            if let Some((rl, rh)) = def.range {
                lo = Some((rl, false)).max_by_bound(lo, true);
                hi = Some((rh, false)).max_by_bound(hi, false);
            }
            if let (Some((l, ls)), Some((h, hs))) = (lo, hi)
                && (l > h || (l == h && (ls || hs)))
            {
                let range = def
                    .range
                    .map(|(a, b)| format!(" (its range is {a}–{b})"))
                    .unwrap_or_default();
                return Some(format!(
                    "no value of {} satisfies these bounds{range}",
                    def.path
                ));
            }
        }
    }
    None
}

trait Bound {
    /// The tighter of two bounds: the larger lower bound (`lower`) or the
    /// smaller upper bound.
    fn max_by_bound(self, other: Option<(f64, bool)>, lower: bool) -> Option<(f64, bool)>;
}

impl Bound for Option<(f64, bool)> {
    fn max_by_bound(self, other: Option<(f64, bool)>, lower: bool) -> Option<(f64, bool)> {
        match (self, other) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) => {
                let a_tighter = if lower {
                    a.0 > b.0 || (a.0 == b.0 && a.1)
                } else {
                    a.0 < b.0 || (a.0 == b.0 && a.1)
                };
                Some(if a_tighter { a } else { b })
            }
        }
    }
}

/// True when every request satisfying `a` also satisfies `b` (`None` for
/// `b` means "always true"). Checked syntactically: `b` is absent, equal to
/// `a`, or each conjunct of `b` is a conjunct of `a`.
pub fn implies(a: Option<&Node>, b: Option<&Node>) -> bool {
    let Some(b) = b else { return true };
    let Some(a) = a else {
        return constant(b) == Some(true);
    };
    if constant(b) == Some(true) {
        return true;
    }
    let conjuncts = |n: &Node| -> Vec<String> {
        match n {
            Node::And(parts) => parts.iter().map(|p| p.to_string()).collect(),
            other => vec![other.to_string()],
        }
    };
    let ca = conjuncts(a);
    conjuncts(b).iter().all(|x| ca.contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;

    fn never(src: &str) -> Option<String> {
        never_true(&compile(src).expect(src).node)
    }

    #[test]
    fn finds_conditions_that_can_never_be_true() {
        for src in [
            "false",
            "1 == 2",
            "action.type == 'a' && action.type == 'b'",
            "agent.trust_score > 1.5",
            "agent.trust_score >= 0.8 && agent.trust_score < 0.5",
            "agent.trust_tier == 'superhero'",
            "request.protocol == 'smtp'",
            "action.type == 'x' && action.type != 'x'",
            "action.type in ['a', 'b'] && action.type == 'c'",
            "time.hour > 23",
            "time.hour >= 9 && time.hour < 9",
            "action.type == 'a' and false",
            "agent.trust_score < 0",
            "(action.type == 'a' && action.type == 'b') || time.hour == 24",
        ] {
            assert!(never(src).is_some(), "{src} should be flagged");
        }
        for src in [
            "agent.trust_score >= 0.6",
            "agent.trust_score >= 1.0",
            "agent.trust_score <= 0",
            "action.type == 'a' || action.type == 'b'",
            "agent.trust_tier == 'trusted'",
            "time.hour >= 9 && time.hour <= 17",
            "action.type != 'x'",
            "true",
        ] {
            assert_eq!(never(src), None, "{src} is satisfiable");
        }
    }

    #[test]
    fn namespaced_tool_names_are_found() {
        let found = |src: &str| namespaced_tool_literals(&compile(src).expect(src).node);
        assert_eq!(
            found("action.tool == 'time__convert_time'"),
            vec!["time__convert_time"]
        );
        assert_eq!(
            found("action.tool in ['a', 'fs__rm'] || action.tool.startsWith('x__')"),
            vec!["fs__rm", "x__"]
        );
        assert!(found("action.tool == 'convert_time' && action.server == 'time'").is_empty());
        assert!(found("request.arguments.path == 'a__b'").is_empty());
    }

    #[test]
    fn implication() {
        let a = compile("action.type == 'export' && data.contains_pii")
            .expect("a")
            .node;
        let b = compile("action.type == 'export'").expect("b").node;
        assert!(implies(Some(&a), Some(&b)));
        assert!(!implies(Some(&b), Some(&a)));
        assert!(implies(Some(&a), None));
        assert!(implies(Some(&b), Some(&b)));
    }
}
