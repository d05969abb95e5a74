//! Evaluation of compiled conditions against a request.
//!
//! Semantics follow CEL: `&&`/`||` are commutative with respect to errors
//! (`false && error` is false, `true || error` is true); reading an absent
//! attribute is an error, never a default; equality across unrelated types
//! is false; numbers compare across int/uint/double by value.

use crate::compile::{ArithOp, CmpOp, HasTarget, Lit, Node, StrFn};
use crate::schema::{Attr, Request};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// A run-time value, borrowing from the request or the compiled policy
/// wherever it can.
#[derive(Debug, Clone)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(Cow<'a, str>),
    StrList(&'a [String]),
    Lits(&'a [Lit]),
    List(Vec<Val<'a>>),
    /// A JSON array or object from `request.arguments`.
    Json(&'a Json),
}

/// Why a condition could not be evaluated. The decision denies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The request does not carry this attribute.
    Missing(String),
    Type(String),
    DivideByZero,
    Overflow,
    Index(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Missing(p) => write!(f, "the request has no `{p}`"),
            EvalError::Type(m) => write!(f, "type error: {m}"),
            EvalError::DivideByZero => f.write_str("division by zero"),
            EvalError::Overflow => f.write_str("integer overflow"),
            EvalError::Index(m) => write!(f, "{m}"),
        }
    }
}

type R<'a> = Result<Val<'a>, EvalError>;

/// Evaluates a condition to true or false.
pub fn eval_bool(node: &Node, req: &Request) -> Result<bool, EvalError> {
    let mut vars = Vec::new();
    match eval(node, req, &mut vars)? {
        Val::Bool(b) => Ok(b),
        other => Err(EvalError::Type(format!(
            "condition produced {} instead of true/false",
            kind(&other)
        ))),
    }
}

/// Evaluates any node (used by explain to show clause values).
pub fn eval_value<'a>(node: &'a Node, req: &'a Request) -> R<'a> {
    let mut vars = Vec::new();
    eval(node, req, &mut vars)
}

fn kind(v: &Val<'_>) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "bool",
        Val::Int(_) => "int",
        Val::UInt(_) => "uint",
        Val::Double(_) => "double",
        Val::Str(_) => "string",
        Val::StrList(_) | Val::Lits(_) | Val::List(_) => "list",
        Val::Json(Json::Array(_)) => "list",
        Val::Json(_) => "map",
    }
}

/// True when the condition's equality guard rules it out for `req` (the
/// condition would evaluate to false).
pub(crate) fn guard_excludes(c: &crate::compile::Compiled, req: &Request) -> bool {
    match &c.guard {
        Some((a, lit)) => match attr(req, *a) {
            Some(Val::Str(v)) => v.as_ref() != lit.as_ref(),
            _ => false,
        },
        None => false,
    }
}

pub(crate) fn attr<'a>(req: &'a Request, a: Attr) -> Option<Val<'a>> {
    let s = |v: &'a Option<String>| v.as_deref().map(|x| Val::Str(Cow::Borrowed(x)));
    match a {
        Attr::AgentDid => s(&req.agent.did),
        Attr::AgentName => s(&req.agent.name),
        Attr::AgentSponsor => s(&req.agent.sponsor),
        Attr::AgentTrustScore => req.agent.trust_score.map(Val::Double),
        Attr::AgentTrustTier => s(&req.agent.trust_tier),
        Attr::AgentCapabilities => req.agent.capabilities.as_deref().map(Val::StrList),
        Attr::AgentDelegationDepth => req.agent.delegation_depth.map(Val::Int),
        Attr::ActionType => s(&req.action.kind),
        Attr::ActionCapability => s(&req.action.capability),
        Attr::ActionTool => s(&req.action.tool),
        Attr::ActionServer => s(&req.action.server),
        Attr::DataClassification => s(&req.data.classification),
        Attr::DataContainsPii => req.data.contains_pii.map(Val::Bool),
        Attr::DataContainsPhi => req.data.contains_phi.map(Val::Bool),
        Attr::DataContainsSecrets => req.data.contains_secrets.map(Val::Bool),
        Attr::DataConsent => req.data.consent.map(Val::Bool),
        Attr::DataResidency => s(&req.data.residency),
        Attr::DataSizeBytes => req.data.size_bytes.map(Val::Int),
        Attr::RequestProtocol => s(&req.request.protocol),
        Attr::RequestMethod => s(&req.request.method),
        Attr::RequestArguments => req.request.arguments.as_ref().map(json),
        Attr::UserId => s(&req.user.id),
        Attr::UserRole => s(&req.user.role),
        Attr::UserRoles => req.user.roles.as_deref().map(Val::StrList),
        Attr::TimeUnix => req.time.unix.map(Val::Int),
        Attr::TimeHour => req.time.hour.map(Val::Int),
        Attr::TimeMinute => req.time.minute.map(Val::Int),
        Attr::TimeWeekday => req.time.weekday.map(Val::Int),
        Attr::TimeDate => s(&req.time.date),
    }
}

fn json(v: &Json) -> Val<'_> {
    match v {
        Json::Null => Val::Null,
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Int(i)
            } else if let Some(u) = n.as_u64() {
                Val::UInt(u)
            } else {
                Val::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Val::Str(Cow::Borrowed(s)),
        Json::Array(_) | Json::Object(_) => Val::Json(v),
    }
}

fn lit(l: &Lit) -> Val<'_> {
    match l {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(i) => Val::Int(*i),
        Lit::UInt(u) => Val::UInt(*u),
        Lit::Double(d) => Val::Double(*d),
        Lit::Str(s) => Val::Str(Cow::Borrowed(s)),
        Lit::List(items) => Val::Lits(items),
    }
}

fn arg_path<'a>(req: &'a Request, path: &[Box<str>]) -> Result<&'a Json, EvalError> {
    let mut cur = req
        .request
        .arguments
        .as_ref()
        .ok_or_else(|| EvalError::Missing("request.arguments".into()))?;
    for (i, seg) in path.iter().enumerate() {
        cur = match cur {
            Json::Object(m) => m.get(&**seg).ok_or_else(|| {
                EvalError::Missing(format!(
                    "request.arguments.{}",
                    path[..=i]
                        .iter()
                        .map(|s| &**s)
                        .collect::<Vec<_>>()
                        .join(".")
                ))
            })?,
            _ => {
                return Err(EvalError::Type(format!(
                    "request.arguments.{} is not an object",
                    path[..i].iter().map(|s| &**s).collect::<Vec<_>>().join(".")
                )));
            }
        };
    }
    Ok(cur)
}

fn eval<'a>(node: &'a Node, req: &'a Request, vars: &mut Vec<Val<'a>>) -> R<'a> {
    match node {
        Node::Lit(l) => Ok(lit(l)),
        Node::Attr(a) => attr(req, *a).ok_or_else(|| EvalError::Missing(a.def().path.to_owned())),
        Node::Arg(path) => Ok(json(arg_path(req, path)?)),
        Node::Var(slot, name) => vars
            .get(*slot as usize)
            .cloned()
            .ok_or_else(|| EvalError::Missing(name.to_string())),
        Node::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(eval(i, req, vars)?);
            }
            Ok(Val::List(out))
        }
        Node::Not(n) => match eval(n, req, vars)? {
            Val::Bool(b) => Ok(Val::Bool(!b)),
            other => Err(EvalError::Type(format!("! of a {}", kind(&other)))),
        },
        Node::And(parts) => logic(parts, req, vars, false),
        Node::Or(parts) => logic(parts, req, vars, true),
        Node::Cond(c, a, b) => match eval(c, req, vars)? {
            Val::Bool(true) => eval(a, req, vars),
            Val::Bool(false) => eval(b, req, vars),
            other => Err(EvalError::Type(format!(
                "?: condition is a {}",
                kind(&other)
            ))),
        },
        Node::Cmp(op, a, b) => {
            let a = eval(a, req, vars)?;
            let b = eval(b, req, vars)?;
            compare(*op, &a, &b).map(Val::Bool)
        }
        Node::Arith(op, a, b) => {
            let a = eval(a, req, vars)?;
            let b = eval(b, req, vars)?;
            arith(*op, a, b)
        }
        Node::Neg(a) => match eval(a, req, vars)? {
            Val::Int(i) => i.checked_neg().map(Val::Int).ok_or(EvalError::Overflow),
            Val::Double(d) => Ok(Val::Double(-d)),
            other => Err(EvalError::Type(format!("cannot negate a {}", kind(&other)))),
        },
        Node::In(a, b) => {
            let a = eval(a, req, vars)?;
            let b = eval(b, req, vars)?;
            contains_item(&b, &a).map(Val::Bool)
        }
        Node::Str(which, a, b) => {
            let a = eval(a, req, vars)?;
            let b = eval(b, req, vars)?;
            match (&a, &b) {
                (Val::Str(x), Val::Str(y)) => Ok(Val::Bool(match which {
                    StrFn::Contains => x.contains(&**y),
                    StrFn::StartsWith => x.starts_with(&**y),
                    StrFn::EndsWith => x.ends_with(&**y),
                })),
                _ => Err(EvalError::Type(format!(
                    "string function on a {} and a {}",
                    kind(&a),
                    kind(&b)
                ))),
            }
        }
        Node::Matches(a, re) => match eval(a, req, vars)? {
            Val::Str(s) => Ok(Val::Bool(re.is_match(&s))),
            other => Err(EvalError::Type(format!("matches() on a {}", kind(&other)))),
        },
        Node::Size(a) => {
            let v = eval(a, req, vars)?;
            let n = match &v {
                Val::Str(s) => s.chars().count(),
                Val::StrList(l) => l.len(),
                Val::Lits(l) => l.len(),
                Val::List(l) => l.len(),
                Val::Json(Json::Array(a)) => a.len(),
                Val::Json(Json::Object(m)) => m.len(),
                other => return Err(EvalError::Type(format!("size() of a {}", kind(other)))),
            };
            Ok(Val::Int(n as i64))
        }
        Node::Has(HasTarget::Attr(a)) => Ok(Val::Bool(attr(req, *a).is_some())),
        Node::Has(HasTarget::Arg(path)) => {
            // As in CEL, has(a.b.c) tests only the last field: a.b itself
            // must exist (and be a map), or it is an error.
            let (last, parent) = path
                .split_last()
                .ok_or_else(|| EvalError::Missing("request.arguments".into()))?;
            match arg_path(req, parent)? {
                Json::Object(m) => Ok(Val::Bool(m.contains_key(&**last))),
                _ => Err(EvalError::Type(
                    "has() on a field of something that is not a map".into(),
                )),
            }
        }
        Node::Index(a, b) => {
            let a = eval(a, req, vars)?;
            let b = eval(b, req, vars)?;
            index(a, &b)
        }
        Node::Quant {
            all,
            range,
            slot,
            body,
            ..
        } => {
            let range = eval(range, req, vars)?;
            let items = items(&range)?;
            let mut error = None;
            for item in items {
                vars.truncate(*slot as usize);
                vars.push(item);
                match eval(body, req, vars) {
                    Ok(Val::Bool(b)) if b != *all => {
                        vars.truncate(*slot as usize);
                        return Ok(Val::Bool(b));
                    }
                    Ok(Val::Bool(_)) => {}
                    Ok(other) => {
                        error.get_or_insert(EvalError::Type(format!(
                            "predicate produced a {}",
                            kind(&other)
                        )));
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
            }
            vars.truncate(*slot as usize);
            match error {
                Some(e) => Err(e),
                None => Ok(Val::Bool(*all)),
            }
        }
    }
}

/// `&&` (`stop_on == false`) or `||` (`stop_on == true`), commutative over
/// errors as CEL requires.
fn logic<'a>(parts: &'a [Node], req: &'a Request, vars: &mut Vec<Val<'a>>, stop_on: bool) -> R<'a> {
    let mut error = None;
    for p in parts {
        match eval(p, req, vars) {
            Ok(Val::Bool(b)) if b == stop_on => return Ok(Val::Bool(stop_on)),
            Ok(Val::Bool(_)) => {}
            Ok(other) => {
                error.get_or_insert(EvalError::Type(format!(
                    "{} operand is a {}",
                    if stop_on { "||" } else { "&&" },
                    kind(&other)
                )));
            }
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(Val::Bool(!stop_on)),
    }
}

fn num(v: &Val<'_>) -> Option<Num> {
    match v {
        Val::Int(i) => Some(Num::I(*i)),
        Val::UInt(u) => Some(Num::U(*u)),
        Val::Double(d) => Some(Num::D(*d)),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    U(u64),
    D(f64),
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::U(x), Num::U(y)) => Some(x.cmp(&y)),
        (Num::I(x), Num::U(y)) => Some(if x < 0 {
            Ordering::Less
        } else {
            (x as u64).cmp(&y)
        }),
        (Num::U(x), Num::I(y)) => Some(if y < 0 {
            Ordering::Greater
        } else {
            x.cmp(&(y as u64))
        }),
        (Num::D(x), Num::D(y)) => x.partial_cmp(&y),
        (Num::D(x), Num::I(y)) => x.partial_cmp(&(y as f64)),
        (Num::I(x), Num::D(y)) => (x as f64).partial_cmp(&y),
        (Num::D(x), Num::U(y)) => x.partial_cmp(&(y as f64)),
        (Num::U(x), Num::D(y)) => (x as f64).partial_cmp(&y),
    }
}

/// CEL equality: by value, false across unrelated types.
fn equal(a: &Val<'_>, b: &Val<'_>) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return num_cmp(x, y) == Some(Ordering::Equal);
    }
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Json(Json::Object(x)), Val::Json(Json::Object(y))) => x == y,
        _ => match (items(a), items(b)) {
            (Ok(x), Ok(y)) => x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| equal(p, q)),
            _ => false,
        },
    }
}

fn compare(op: CmpOp, a: &Val<'_>, b: &Val<'_>) -> Result<bool, EvalError> {
    match op {
        CmpOp::Eq => return Ok(equal(a, b)),
        CmpOp::Ne => return Ok(!equal(a, b)),
        _ => {}
    }
    let ord = match (num(a), num(b)) {
        (Some(x), Some(y)) => num_cmp(x, y),
        _ => match (a, b) {
            (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
            (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
            _ => {
                return Err(EvalError::Type(format!(
                    "cannot order a {} against a {}",
                    kind(a),
                    kind(b)
                )));
            }
        },
    };
    // NaN compares false with everything.
    let Some(ord) = ord else { return Ok(false) };
    Ok(match op {
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

/// The elements of a list value (keys of a map).
fn items<'a>(v: &Val<'a>) -> Result<Vec<Val<'a>>, EvalError> {
    Ok(match v {
        Val::StrList(l) => l
            .iter()
            .map(|s| Val::Str(Cow::Borrowed(s.as_str())))
            .collect(),
        Val::Lits(l) => l.iter().map(lit).collect(),
        Val::List(l) => l.clone(),
        Val::Json(Json::Array(a)) => a.iter().map(json).collect(),
        Val::Json(Json::Object(m)) => m
            .keys()
            .map(|k| Val::Str(Cow::Borrowed(k.as_str())))
            .collect(),
        other => {
            return Err(EvalError::Type(format!(
                "cannot iterate over a {}",
                kind(other)
            )));
        }
    })
}

fn contains_item(list: &Val<'_>, x: &Val<'_>) -> Result<bool, EvalError> {
    Ok(match list {
        // Fast paths without collecting.
        Val::StrList(l) => match x {
            Val::Str(s) => l.iter().any(|e| e == &**s),
            _ => false,
        },
        Val::Lits(l) => l.iter().any(|e| equal(&lit(e), x)),
        Val::Json(Json::Object(m)) => match x {
            Val::Str(s) => m.contains_key(&**s),
            _ => false,
        },
        _ => items(list)?.iter().any(|e| equal(e, x)),
    })
}

fn index<'a>(a: Val<'a>, b: &Val<'_>) -> R<'a> {
    match (&a, b) {
        (Val::Json(Json::Object(m)), Val::Str(k)) => m
            .get(&**k)
            .map(json)
            .ok_or_else(|| EvalError::Missing(format!("key `{k}`"))),
        (_, _) if num(b).is_some() => {
            let i = match num(b) {
                Some(Num::I(i)) if i >= 0 => i as usize,
                Some(Num::U(u)) => usize::try_from(u).unwrap_or(usize::MAX),
                _ => {
                    return Err(EvalError::Index(
                        "list index must be a non-negative integer".into(),
                    ));
                }
            };
            let all = items(&a)?;
            all.into_iter()
                .nth(i)
                .ok_or_else(|| EvalError::Index(format!("index {i} is out of range")))
        }
        _ => Err(EvalError::Type(format!(
            "cannot index a {} with a {}",
            kind(&a),
            kind(b)
        ))),
    }
}

fn arith<'a>(op: ArithOp, a: Val<'a>, b: Val<'a>) -> R<'a> {
    match (&a, &b) {
        (Val::Int(x), Val::Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div => {
                    if y == 0 {
                        return Err(EvalError::DivideByZero);
                    }
                    x.checked_div(y)
                }
                ArithOp::Rem => {
                    if y == 0 {
                        return Err(EvalError::DivideByZero);
                    }
                    x.checked_rem(y)
                }
            };
            r.map(Val::Int).ok_or(EvalError::Overflow)
        }
        (Val::Str(x), Val::Str(y)) if op == ArithOp::Add => {
            Ok(Val::Str(Cow::Owned(format!("{x}{y}"))))
        }
        _ => {
            if let (Some(x), Some(y)) = (num(&a), num(&b)) {
                let f = |n: Num| match n {
                    Num::I(i) => i as f64,
                    Num::U(u) => u as f64,
                    Num::D(d) => d,
                };
                let (x, y) = (f(x), f(y));
                return match op {
                    ArithOp::Add => Ok(Val::Double(x + y)),
                    ArithOp::Sub => Ok(Val::Double(x - y)),
                    ArithOp::Mul => Ok(Val::Double(x * y)),
                    ArithOp::Div => Ok(Val::Double(x / y)),
                    ArithOp::Rem => Err(EvalError::Type("% needs integers".into())),
                };
            }
            if op == ArithOp::Add
                && let (Ok(mut x), Ok(y)) = (items(&a), items(&b))
            {
                x.extend(y);
                return Ok(Val::List(x));
            }
            Err(EvalError::Type(format!(
                "no arithmetic between a {} and a {}",
                kind(&a),
                kind(&b)
            )))
        }
    }
}

impl fmt::Display for Val<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Null => f.write_str("null"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Int(i) => write!(f, "{i}"),
            Val::UInt(u) => write!(f, "{u}u"),
            Val::Double(d) => write!(f, "{d}"),
            Val::Str(s) => write!(f, "'{s}'"),
            Val::Json(j) => write!(f, "{j}"),
            other => {
                let items = items(other).unwrap_or_default();
                f.write_str("[")?;
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;

    fn req() -> Request {
        serde_json::from_value(serde_json::json!({
            "agent": {"name": "a", "trust_score": 0.7, "capabilities": ["read:*", "write:reports"]},
            "action": {"type": "export"},
            "data": {"contains_pii": true},
            "request": {"arguments": {"path": "/etc/passwd", "n": 3, "tags": ["x", "y"]}},
        }))
        .expect("request")
    }

    fn check(src: &str) -> Result<bool, EvalError> {
        eval_bool(&compile(src).expect(src).node, &req())
    }

    #[test]
    fn the_original_bugs_are_fixed() {
        // `agent.trust_score >= 0.6` silently never matched in the original.
        assert_eq!(check("agent.trust_score >= 0.6"), Ok(true));
        assert_eq!(check("agent.trust_score >= 0.8"), Ok(false));
        // Parentheses broke parsing.
        assert_eq!(
            check("(action.type == 'export' and data.contains_pii) or agent.name == 'zz'"),
            Ok(true)
        );
        // A missing field counted as 0: now it is an error (which denies).
        assert_eq!(
            check("user.role == 'admin'"),
            Err(EvalError::Missing("user.role".into()))
        );
        assert_eq!(
            check("data.size_bytes < 100"),
            Err(EvalError::Missing("data.size_bytes".into()))
        );
    }

    #[test]
    fn cel_error_semantics() {
        // false && error = false; true || error = true, in either order.
        assert_eq!(check("user.role == 'x' && false"), Ok(false));
        assert_eq!(check("false && user.role == 'x'"), Ok(false));
        assert_eq!(check("user.role == 'x' || true"), Ok(true));
        assert!(check("user.role == 'x' || false").is_err());
        assert_eq!(check("has(user.role)"), Ok(false));
        assert_eq!(check("has(data.contains_pii)"), Ok(true));
        assert_eq!(check("has(request.arguments.path)"), Ok(true));
        assert_eq!(check("has(request.arguments.nope)"), Ok(false));
        // As in CEL: has() on a field of a missing parent is an error.
        assert!(check("has(request.arguments.nope.deeper)").is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(check("'read:*' in agent.capabilities"), Ok(true));
        assert_eq!(check("action.type in ['read', 'export']"), Ok(true));
        assert_eq!(check("request.arguments.path.startsWith('/etc')"), Ok(true));
        assert_eq!(check("request.arguments.path.contains('passwd')"), Ok(true));
        assert_eq!(
            check("request.arguments.path.matches('^/etc/(passwd|shadow)$')"),
            Ok(true)
        );
        assert_eq!(check("request.arguments.n + 1 == 4"), Ok(true));
        assert_eq!(check("size(request.arguments.tags) == 2"), Ok(true));
        assert_eq!(check("'y' in request.arguments.tags"), Ok(true));
        assert_eq!(
            check("agent.capabilities.exists(c, c.startsWith('write:'))"),
            Ok(true)
        );
        assert_eq!(
            check("agent.capabilities.all(c, c.startsWith('read:'))"),
            Ok(false)
        );
        assert_eq!(check("agent.trust_score > 0 && 1 < 2.5"), Ok(true));
        assert_eq!(
            check("request.arguments.n / 0 == 1"),
            Err(EvalError::DivideByZero)
        );
        assert_eq!(
            check("request.arguments.tags[5] == 'x'"),
            Err(EvalError::Index("index 5 is out of range".into()))
        );
    }
}
