//! Conditions: CEL source → (cel crate parser) → AST → our typed IR.
//!
//! The `cel` crate parses (the full CEL grammar, macros expanded). We then
//! resolve every identifier against the attribute schema, type-check, and
//! compile to [`Node`], which [`crate::eval`] evaluates without string
//! lookups or allocation in the common cases. The `cel` crate's own
//! interpreter serves as the reference in a differential test.

use crate::schema::{self, Attr, Ty};
use cel::IdedExpr;
use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, LiteralValue, operators};
use std::fmt;

/// Longest condition accepted, in bytes.
pub const MAX_CONDITION_LEN: usize = 4096;
/// Deepest bracket nesting accepted.
pub const MAX_NESTING: usize = 32;
/// Deepest expression tree accepted (operators, field selections and calls
/// as well as brackets).
pub const MAX_DEPTH: usize = 64;

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(Box<str>),
    List(Vec<Lit>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrFn {
    Contains,
    StartsWith,
    EndsWith,
}

/// What `has()` tests.
#[derive(Debug, Clone, PartialEq)]
pub enum HasTarget {
    Attr(Attr),
    /// `has(request.arguments.a.b)`: the path below `request.arguments`.
    Arg(Vec<Box<str>>),
}

/// The compiled, typed form of a condition.
#[derive(Debug, Clone)]
pub enum Node {
    Lit(Lit),
    Attr(Attr),
    /// A value inside `request.arguments`, by path.
    Arg(Vec<Box<str>>),
    /// A comprehension variable, by slot.
    Var(u8, Box<str>),
    List(Vec<Node>),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Arith(ArithOp, Box<Node>, Box<Node>),
    Neg(Box<Node>),
    In(Box<Node>, Box<Node>),
    Str(StrFn, Box<Node>, Box<Node>),
    Matches(Box<Node>, Box<regex::Regex>),
    Size(Box<Node>),
    Has(HasTarget),
    Index(Box<Node>, Box<Node>),
    /// `range.exists(var, body)` (`all == false`) or `range.all(var, body)`.
    Quant {
        all: bool,
        range: Box<Node>,
        slot: u8,
        var: Box<str>,
        body: Box<Node>,
    },
}

/// A compile error, at a byte offset of the condition when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub offset: Option<usize>,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(offset: Option<usize>, message: impl Into<String>) -> CompileError {
    CompileError {
        offset,
        message: message.into(),
    }
}

/// Rewrites the seed's spelling (`and`, `or`, `not`) to CEL's (`&&`, `||`,
/// `!`) outside string literals, keeping every byte offset unchanged so
/// error positions still point into what the user wrote.
pub fn translate_seed_spelling(src: &str) -> String {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' || c == b'"' {
            // Copy a string literal verbatim (triple quotes and escapes too).
            let triple = bytes.len() >= i + 3 && bytes[i + 1] == c && bytes[i + 2] == c;
            let end = if triple {
                find_close(bytes, i + 3, &[c, c, c])
            } else {
                find_close(bytes, i + 1, &[c])
            };
            out.push_str(&src[i..end]);
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &src[start..i];
            let after_dot = start > 0 && bytes[start - 1] == b'.';
            // A raw string prefix (r'…') is not a word: copy it with its literal.
            match (word, after_dot) {
                ("and", false) => out.push_str("&& "),
                ("or", false) => out.push_str("||"),
                ("not", false) => out.push_str("!  "),
                _ => out.push_str(word),
            }
            continue;
        }
        // Multi-byte UTF-8 characters are copied whole.
        let ch_len = src[i..].chars().next().map(char::len_utf8).unwrap_or(1);
        out.push_str(&src[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Index just past the closing delimiter (or the end of input).
fn find_close(bytes: &[u8], mut i: usize, close: &[u8]) -> usize {
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i..].starts_with(close) {
            return i + close.len();
        }
        i += 1;
    }
    bytes.len()
}

/// Rejects input that is too long or too deeply nested before the parser
/// sees it.
fn precheck(src: &str) -> Result<(), CompileError> {
    if src.trim().is_empty() {
        return Err(err(Some(0), "condition is empty"));
    }
    if src.len() > MAX_CONDITION_LEN {
        return Err(err(
            None,
            format!(
                "condition is {} bytes; the limit is {MAX_CONDITION_LEN}",
                src.len()
            ),
        ));
    }
    let mut depth = 0usize;
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i = find_close(bytes, i + 1, &[q]);
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(err(
                        Some(i),
                        format!("condition nests deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// A compiled condition with its static type (always bool after checking).
#[derive(Debug, Clone)]
pub struct Compiled {
    pub node: Node,
    /// Attributes the condition reads (for explain output).
    pub reads: Vec<String>,
    /// A top-level conjunct `attr == 'literal'` on a string attribute: when
    /// the request's value differs, the whole condition is false (CEL's
    /// `&&` lets a false operand absorb errors), so the rule is skipped
    /// without evaluating it. Exact, and what keeps 100-rule policies fast.
    pub guard: Option<(Attr, Box<str>)>,
}

/// Finds an equality guard among the top-level conjuncts of `node`.
fn guard_of(node: &Node) -> Option<(Attr, Box<str>)> {
    let eq = |n: &Node| match n {
        Node::Cmp(CmpOp::Eq, l, r) => match (&**l, &**r) {
            (Node::Attr(a), Node::Lit(Lit::Str(s))) | (Node::Lit(Lit::Str(s)), Node::Attr(a))
                if a.def().ty == Ty::String =>
            {
                Some((*a, s.clone()))
            }
            _ => None,
        },
        _ => None,
    };
    match node {
        Node::And(parts) => parts.iter().find_map(eq),
        other => eq(other),
    }
}

/// Parses, resolves, type-checks and compiles a condition.
pub fn compile(source: &str) -> Result<Compiled, CompileError> {
    precheck(source)?;
    if source.len() <= INLINE_PARSE_LEN {
        return compile_checked(source);
    }
    // The CEL parser recurses once per link of an unbracketed chain
    // (`1 + 1 + …`, `a.b.c…`, `x[0][0]…`): a 4 KiB condition can need about
    // a megabyte of stack in a debug build, more than a 2 MiB tokio worker
    // can spare. Long conditions are parsed on a thread whose stack is
    // sized for the worst case; short ones (the common case, at most a few
    // hundred links) stay inline.
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("policy-compile".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, || compile_checked(source))
            .map_err(|e| err(None, format!("cannot start the condition compiler: {e}")))?;
        worker
            .join()
            .map_err(|_| err(None, "the CEL parser failed on this condition"))?
    })
}

/// Conditions up to this many bytes are compiled on the caller's thread.
const INLINE_PARSE_LEN: usize = 512;
/// Stack for compiling a longer condition (reserved, touched only as used).
const PARSE_STACK_BYTES: usize = 16 << 20;

/// [`compile`] after [`precheck`], on a thread with enough stack.
fn compile_checked(source: &str) -> Result<Compiled, CompileError> {
    let cel_src = translate_seed_spelling(source);
    // The parser is third-party code fed with user input: a panic in it
    // must become an error, not take the process down.
    let parsed = std::panic::catch_unwind(|| cel::Program::compile(&cel_src))
        .map_err(|_| err(None, "the CEL parser failed on this condition"))?;
    let program = parsed.map_err(|e| {
        let first = e.errors.first();
        let offset = first.and_then(|p| line_col_to_offset(source, p.pos.0, p.pos.1));
        let msg = first
            .map(|p| p.msg.clone())
            .unwrap_or_else(|| "syntax error".to_owned());
        err(offset, format!("syntax error: {msg}"))
    })?;
    let mut c = Compiler {
        info: program.source_info(),
        vars: Vec::new(),
        reads: Vec::new(),
        depth: 0,
    };
    let (node, ty) = c.expr(program.expression())?;
    if !matches!(ty, Ty::Bool | Ty::Dyn) {
        return Err(err(
            Some(0),
            format!(
                "a condition must be true or false, but this one is a {}",
                ty.name()
            ),
        ));
    }
    let mut reads = c.reads;
    reads.sort();
    reads.dedup();
    let guard = guard_of(&node);
    Ok(Compiled { node, reads, guard })
}

/// CEL parser positions are (1-based line, 0-based column).
fn line_col_to_offset(src: &str, line: isize, col: isize) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let col = usize::try_from(col).ok()?;
    let start: usize = src.split_inclusive('\n').take(line).map(str::len).sum();
    Some((start + col).min(src.len()))
}

struct Compiler<'p> {
    info: &'p cel::common::ast::SourceInfo,
    /// Comprehension variables in scope: (name, element type).
    vars: Vec<(String, Ty)>,
    reads: Vec<String>,
    /// Current recursion depth of [`Compiler::expr`].
    depth: usize,
}

impl Compiler<'_> {
    fn at(&self, e: &IdedExpr) -> Option<usize> {
        // A field selection is recorded at its dot; point at the start of
        // the whole path instead (`agent.trust_scor`, not `.trust_scor`).
        let mut root = e;
        while let Expr::Select(sel) = &root.expr {
            root = &sel.operand;
        }
        self.info
            .offset_for(root.id)
            .map(|(start, _)| start as usize)
    }

    /// Compiles one sub-expression, refusing trees deeper than
    /// [`MAX_DEPTH`]: bracket nesting is checked before parsing, but chains
    /// without brackets (`a.b.c…`, `1 + 1 + …`, `- - - x`) also nest, and
    /// the compiler, the evaluator and the explain output all recurse.
    fn expr(&mut self, e: &IdedExpr) -> Result<(Node, Ty), CompileError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(
                self.at(e),
                format!(
                    "condition is too deeply nested (more than {MAX_DEPTH} levels of operators, fields or calls); split it or use `in [...]`"
                ),
            ));
        }
        self.depth += 1;
        let r = self.expr_at_depth(e);
        self.depth -= 1;
        r
    }

    fn expr_at_depth(&mut self, e: &IdedExpr) -> Result<(Node, Ty), CompileError> {
        match &e.expr {
            Expr::Literal(l) => Ok(literal(l, self.at(e))?),
            Expr::Ident(name) => self.ident(e, name),
            Expr::Select(sel) => {
                if sel.test {
                    return self.has(e, &sel.operand, &sel.field);
                }
                self.path(e)
            }
            Expr::List(list) => {
                let mut nodes = Vec::with_capacity(list.elements.len());
                let mut lits = Vec::new();
                let mut elem_ty: Option<Ty> = None;
                for el in &list.elements {
                    let (n, t) = self.expr(el)?;
                    if let Node::Lit(l) = &n {
                        lits.push(l.clone());
                    }
                    elem_ty = Some(match elem_ty {
                        None => t,
                        Some(prev) if prev == t => t,
                        Some(_) => Ty::Dyn,
                    });
                    nodes.push(n);
                }
                let ty = if elem_ty == Some(Ty::String) {
                    Ty::StringList
                } else {
                    Ty::List
                };
                if lits.len() == nodes.len() {
                    Ok((Node::Lit(Lit::List(lits)), ty))
                } else {
                    Ok((Node::List(nodes), ty))
                }
            }
            Expr::Call(call) => self.call(e, call),
            Expr::Comprehension(comp) => self.comprehension(e, comp),
            Expr::Map(_) => Err(err(
                self.at(e),
                "map literals are not supported in conditions",
            )),
            Expr::Struct(_) => Err(err(
                self.at(e),
                "message literals are not supported in conditions",
            )),
            Expr::Unspecified => Err(err(self.at(e), "incomplete expression")),
        }
    }

    fn ident(&mut self, e: &IdedExpr, name: &str) -> Result<(Node, Ty), CompileError> {
        if let Some(slot) = self.vars.iter().rposition(|(v, _)| v == name) {
            let ty = self.vars[slot].1;
            return Ok((Node::Var(slot as u8, name.into()), ty));
        }
        if schema::ROOTS.contains(&name) {
            return Err(err(
                self.at(e),
                format!(
                    "`{name}` is a group of attributes, not a value: name one, e.g. {}",
                    example_of(name)
                ),
            ));
        }
        Err(err(
            self.at(e),
            format!(
                "unknown attribute `{name}`: conditions read agent.*, action.*, data.*, request.*, user.* and time.*"
            ),
        ))
    }

    /// A dotted path: a schema attribute or a path inside request.arguments.
    fn path(&mut self, e: &IdedExpr) -> Result<(Node, Ty), CompileError> {
        let Some(segments) = dotted(e) else {
            // A field of something that is not a plain path, e.g. `x[0].y`.
            let Expr::Select(sel) = &e.expr else {
                return Err(err(self.at(e), "unsupported expression"));
            };
            let (operand, ty) = self.expr(&sel.operand)?;
            if !matches!(ty, Ty::Dyn | Ty::Map) {
                return Err(err(
                    self.at(e),
                    format!("a {} has no field `{}`", ty.name(), sel.field),
                ));
            }
            return Ok((
                Node::Index(
                    Box::new(operand),
                    Box::new(Node::Lit(Lit::Str(sel.field.as_str().into()))),
                ),
                Ty::Dyn,
            ));
        };
        // A comprehension variable with fields (dynamic element).
        if let Some(slot) = self.vars.iter().rposition(|(v, _)| v == segments[0]) {
            let mut node = Node::Var(slot as u8, segments[0].into());
            for f in &segments[1..] {
                node = Node::Index(Box::new(node), Box::new(Node::Lit(Lit::Str((*f).into()))));
            }
            return Ok((node, Ty::Dyn));
        }
        let full = segments.join(".");
        if segments.len() > 2 && segments[0] == "request" && segments[1] == "arguments" {
            self.reads.push(full);
            let path = segments[2..].iter().map(|s| Box::<str>::from(*s)).collect();
            return Ok((Node::Arg(path), Ty::Dyn));
        }
        match schema::lookup(&full) {
            Some(def) => {
                self.reads.push(full);
                Ok((Node::Attr(def.attr), def.ty))
            }
            None => {
                let hint = schema::suggest(&full)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                Err(err(self.at(e), format!("unknown attribute `{full}`{hint}")))
            }
        }
    }

    fn has(
        &mut self,
        e: &IdedExpr,
        operand: &IdedExpr,
        field: &str,
    ) -> Result<(Node, Ty), CompileError> {
        let Some(mut segments) = dotted(operand) else {
            return Err(err(
                self.at(e),
                "has() takes an attribute path such as has(data.contains_pii)",
            ));
        };
        segments.push(field);
        let full = segments.join(".");
        if segments.len() > 2 && segments[0] == "request" && segments[1] == "arguments" {
            self.reads.push(full);
            let path = segments[2..].iter().map(|s| Box::<str>::from(*s)).collect();
            return Ok((Node::Has(HasTarget::Arg(path)), Ty::Bool));
        }
        match schema::lookup(&full) {
            Some(def) => {
                self.reads.push(full);
                Ok((Node::Has(HasTarget::Attr(def.attr)), Ty::Bool))
            }
            None => {
                let hint = schema::suggest(&full)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                Err(err(
                    self.at(e),
                    format!("has(): unknown attribute `{full}`{hint}"),
                ))
            }
        }
    }

    fn call(&mut self, e: &IdedExpr, call: &CallExpr) -> Result<(Node, Ty), CompileError> {
        let at = self.at(e);
        let f = call.func_name.as_str();
        // Operands are bound by slice patterns, never by index: the shape a
        // parser hands us (a receiver, the number of arguments) is outside
        // input, and a pattern that does not fit falls through to an error
        // instead of reading past the end. Each form is compiled by its own
        // function so that this one, which recurses, keeps a small frame.
        match (f, call.target.as_deref(), call.args.as_slice()) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, None, [a, b]) => self.logic(f, a, b),
            (operators::LOGICAL_NOT, None, [x]) => {
                let (n, t) = self.expr(x)?;
                self.expect_bool(x, t, "!")?;
                Ok((Node::Not(Box::new(n)), Ty::Bool))
            }
            (operators::CONDITIONAL, None, [c, a, b]) => self.conditional(c, a, b),
            (
                operators::EQUALS
                | operators::NOT_EQUALS
                | operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS,
                None,
                [a, b],
            ) => self.comparison(f, at, a, b),
            (
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO,
                None,
                [a, b],
            ) => self.arithmetic(f, at, a, b),
            (operators::NEGATE, None, [x]) => self.negate(at, x),
            (operators::IN, None, [a, b]) => self.membership(at, a, b),
            (operators::INDEX, None, [a, b]) => self.index(at, a, b),
            ("contains" | "startsWith" | "endsWith", Some(target), [arg]) => {
                self.string_fn(f, at, target, arg)
            }
            ("matches", Some(target), [pattern]) | ("matches", None, [target, pattern]) => {
                self.matches(at, target, pattern)
            }
            // Receiver form `x.size()` or global form `size(x)`.
            ("size", Some(x), []) | ("size", None, [x]) => self.size(at, x),
            (operators::NOT_STRICTLY_FALSE, _, _) => {
                Err(err(at, "internal operator is not allowed in conditions"))
            }
            _ => Err(unsupported_call(at, f, call)),
        }
    }

    fn logic(&mut self, f: &str, a: &IdedExpr, b: &IdedExpr) -> Result<(Node, Ty), CompileError> {
        let mut parts = Vec::new();
        for x in [a, b] {
            let (n, t) = self.expr(x)?;
            self.expect_bool(x, t, f)?;
            // Flatten nested and/or of the same kind.
            match (n, f) {
                (Node::And(inner), operators::LOGICAL_AND) => parts.extend(inner),
                (Node::Or(inner), operators::LOGICAL_OR) => parts.extend(inner),
                (n, _) => parts.push(n),
            }
        }
        Ok((
            if f == operators::LOGICAL_AND {
                Node::And(parts)
            } else {
                Node::Or(parts)
            },
            Ty::Bool,
        ))
    }

    fn conditional(
        &mut self,
        c: &IdedExpr,
        a: &IdedExpr,
        b: &IdedExpr,
    ) -> Result<(Node, Ty), CompileError> {
        let (c_node, ct) = self.expr(c)?;
        self.expect_bool(c, ct, "?:")?;
        let (a, at_) = self.expr(a)?;
        let (b, bt) = self.expr(b)?;
        let ty = if at_ == bt { at_ } else { Ty::Dyn };
        Ok((Node::Cond(Box::new(c_node), Box::new(a), Box::new(b)), ty))
    }

    fn comparison(
        &mut self,
        f: &str,
        at: Option<usize>,
        a: &IdedExpr,
        b: &IdedExpr,
    ) -> Result<(Node, Ty), CompileError> {
        let (a, at_) = self.expr(a)?;
        let (b, bt) = self.expr(b)?;
        let op = match f {
            operators::EQUALS => CmpOp::Eq,
            operators::NOT_EQUALS => CmpOp::Ne,
            operators::LESS => CmpOp::Lt,
            operators::LESS_EQUALS => CmpOp::Le,
            operators::GREATER => CmpOp::Gt,
            _ => CmpOp::Ge,
        };
        check_comparable(op, at_, bt).map_err(|m| err(at, m))?;
        Ok((Node::Cmp(op, Box::new(a), Box::new(b)), Ty::Bool))
    }

    fn arithmetic(
        &mut self,
        f: &str,
        at: Option<usize>,
        a: &IdedExpr,
        b: &IdedExpr,
    ) -> Result<(Node, Ty), CompileError> {
        let (a, at_) = self.expr(a)?;
        let (b, bt) = self.expr(b)?;
        let op = match f {
            operators::ADD => ArithOp::Add,
            operators::SUBSTRACT => ArithOp::Sub,
            operators::MULTIPLY => ArithOp::Mul,
            operators::DIVIDE => ArithOp::Div,
            _ => ArithOp::Rem,
        };
        let ty = arith_type(op, at_, bt).map_err(|m| err(at, m))?;
        Ok((Node::Arith(op, Box::new(a), Box::new(b)), ty))
    }

    fn negate(&mut self, at: Option<usize>, x: &IdedExpr) -> Result<(Node, Ty), CompileError> {
        let (a, t) = self.expr(x)?;
        if !(t.is_numeric() || t == Ty::Dyn) {
            return Err(err(at, format!("cannot negate a {}", t.name())));
        }
        Ok((Node::Neg(Box::new(a)), t))
    }

    fn membership(
        &mut self,
        at: Option<usize>,
        a: &IdedExpr,
        b: &IdedExpr,
    ) -> Result<(Node, Ty), CompileError> {
        let (a, at_) = self.expr(a)?;
        let (b, bt) = self.expr(b)?;
        match bt {
            Ty::StringList if !matches!(at_, Ty::String | Ty::Dyn) => {
                return Err(err(
                    at,
                    format!("a {} is never in a list of strings", at_.name()),
                ));
            }
            Ty::StringList | Ty::List | Ty::Map | Ty::Dyn => {}
            other => {
                return Err(err(
                    at,
                    format!(
                        "`in` needs a list or map on the right, not a {}",
                        other.name()
                    ),
                ));
            }
        }
        Ok((Node::In(Box::new(a), Box::new(b)), Ty::Bool))
    }

    fn index(
        &mut self,
        at: Option<usize>,
        a: &IdedExpr,
        b: &IdedExpr,
    ) -> Result<(Node, Ty), CompileError> {
        let (a, at_) = self.expr(a)?;
        let (b, bt) = self.expr(b)?;
        let ty = match at_ {
            Ty::StringList if matches!(bt, Ty::Int | Ty::Dyn) => Ty::String,
            Ty::List | Ty::Dyn if matches!(bt, Ty::Int | Ty::Dyn | Ty::String) => Ty::Dyn,
            Ty::Map if matches!(bt, Ty::String | Ty::Dyn) => Ty::Dyn,
            _ => {
                return Err(err(
                    at,
                    format!("cannot index a {} with a {}", at_.name(), bt.name()),
                ));
            }
        };
        Ok((Node::Index(Box::new(a), Box::new(b)), ty))
    }

    fn string_fn(
        &mut self,
        f: &str,
        at: Option<usize>,
        target: &IdedExpr,
        arg: &IdedExpr,
    ) -> Result<(Node, Ty), CompileError> {
        let (t, tt) = self.expr(target)?;
        let (a, aty) = self.expr(arg)?;
        for (ty, what) in [(tt, "target"), (aty, "argument")] {
            if !matches!(ty, Ty::String | Ty::Dyn) {
                return Err(err(
                    at,
                    format!("{f}() needs a string {what}, not a {}", ty.name()),
                ));
            }
        }
        let which = match f {
            "contains" => StrFn::Contains,
            "startsWith" => StrFn::StartsWith,
            _ => StrFn::EndsWith,
        };
        Ok((Node::Str(which, Box::new(t), Box::new(a)), Ty::Bool))
    }

    fn matches(
        &mut self,
        at: Option<usize>,
        target: &IdedExpr,
        pattern: &IdedExpr,
    ) -> Result<(Node, Ty), CompileError> {
        let (t, tt) = self.expr(target)?;
        if !matches!(tt, Ty::String | Ty::Dyn) {
            return Err(err(
                at,
                format!("matches() needs a string, not a {}", tt.name()),
            ));
        }
        let Expr::Literal(LiteralValue::String(p)) = &pattern.expr else {
            return Err(err(
                self.at(pattern),
                "matches() needs a literal pattern, so it is compiled once when the policy loads",
            ));
        };
        let re = regex::RegexBuilder::new(p.inner())
            .size_limit(1 << 20)
            .nest_limit(32)
            .build()
            .map_err(|e| err(self.at(pattern), format!("invalid regular expression: {e}")))?;
        Ok((Node::Matches(Box::new(t), Box::new(re)), Ty::Bool))
    }

    fn size(&mut self, at: Option<usize>, x: &IdedExpr) -> Result<(Node, Ty), CompileError> {
        let (a, t) = self.expr(x)?;
        if !matches!(
            t,
            Ty::String | Ty::StringList | Ty::List | Ty::Map | Ty::Dyn
        ) {
            return Err(err(at, format!("size() of a {} is not defined", t.name())));
        }
        Ok((Node::Size(Box::new(a)), Ty::Int))
    }

    /// `exists` and `all`, recognised from the parser's macro expansion.
    fn comprehension(
        &mut self,
        e: &IdedExpr,
        c: &ComprehensionExpr,
    ) -> Result<(Node, Ty), CompileError> {
        // The loop step of exists() is `accu || body`, of all() `accu && body`;
        // anything else (map, filter, exists_one, hand-built shapes) is refused.
        let (all, body_expr) = match (&c.accu_init.expr, &c.loop_step.expr) {
            (Expr::Literal(LiteralValue::Boolean(b)), Expr::Call(step))
                if step.target.is_none()
                    && ((!*b.inner() && step.func_name == operators::LOGICAL_OR)
                        || (*b.inner() && step.func_name == operators::LOGICAL_AND)) =>
            {
                match step.args.as_slice() {
                    [accu, body] if matches!(&accu.expr, Expr::Ident(a) if *a == c.accu_var) => {
                        (*b.inner(), body)
                    }
                    _ => {
                        return Err(err(
                            self.at(e),
                            "only the exists() and all() macros are supported in conditions",
                        ));
                    }
                }
            }
            _ => {
                return Err(err(
                    self.at(e),
                    "only the exists() and all() macros are supported in conditions",
                ));
            }
        };
        if c.iter_var2.is_some() {
            return Err(err(
                self.at(e),
                "two-variable comprehensions are not supported",
            ));
        }
        let (range, rt) = self.expr(&c.iter_range)?;
        let elem = match rt {
            Ty::StringList => Ty::String,
            Ty::List | Ty::Dyn => Ty::Dyn,
            Ty::Map => Ty::String,
            other => {
                return Err(err(
                    self.at(&c.iter_range),
                    format!("cannot iterate over a {}", other.name()),
                ));
            }
        };
        if self.vars.len() >= 8 {
            return Err(err(self.at(e), "comprehensions nest too deeply"));
        }
        self.vars.push((c.iter_var.clone(), elem));
        let slot = (self.vars.len() - 1) as u8;
        let body = self.expr(body_expr);
        self.vars.pop();
        let (body, bt) = body?;
        self.expect_bool(body_expr, bt, if all { "all()" } else { "exists()" })?;
        Ok((
            Node::Quant {
                all,
                range: Box::new(range),
                slot,
                var: c.iter_var.as_str().into(),
                body: Box::new(body),
            },
            Ty::Bool,
        ))
    }

    fn expect_bool(&self, e: &IdedExpr, ty: Ty, op: &str) -> Result<(), CompileError> {
        if matches!(ty, Ty::Bool | Ty::Dyn) {
            Ok(())
        } else {
            Err(err(
                self.at(e),
                format!(
                    "`{op}` needs true/false operands, but this is a {}",
                    ty.name()
                ),
            ))
        }
    }
}

/// The error for a call no form of [`Compiler::call`] accepts: a known
/// function with the wrong shape says what it takes, anything else lists
/// what is available.
fn unsupported_call(at: Option<usize>, f: &str, call: &CallExpr) -> CompileError {
    let takes = match f {
        "size" => "one value: size(x) or x.size()",
        "matches" => "one pattern: x.matches('re')",
        "exists" | "all" => "a variable and a predicate: list.exists(x, x > 0)",
        "contains" | "startsWith" | "endsWith" => "one string: x.contains('s')",
        _ => {
            return err(
                at,
                format!(
                    "function `{}` is not available in conditions (available: in, contains, startsWith, endsWith, matches, size, has, exists, all)",
                    f.trim_matches('_').trim_start_matches('@')
                ),
            );
        }
    };
    let n = call.args.len();
    err(
        at,
        format!(
            "{f}() takes {takes}, but was given {n} argument{}{}",
            if n == 1 { "" } else { "s" },
            if call.target.is_some() {
                " and a receiver"
            } else {
                ""
            },
        ),
    )
}

fn example_of(root: &str) -> &'static str {
    match root {
        "agent" => "agent.trust_score",
        "action" => "action.type",
        "data" => "data.contains_pii",
        "request" => "request.arguments.path",
        "user" => "user.role",
        _ => "time.hour",
    }
}

/// The segments of a plain dotted path (`a.b.c`), or `None`.
fn dotted(e: &IdedExpr) -> Option<Vec<&str>> {
    // Iterative: a path may be as long as the condition allows, and its
    // length is checked by the caller, not by the stack.
    let mut rev = Vec::new();
    let mut cur = e;
    loop {
        match &cur.expr {
            Expr::Ident(name) => {
                rev.push(name.as_str());
                rev.reverse();
                return Some(rev);
            }
            Expr::Select(sel) if !sel.test => {
                rev.push(sel.field.as_str());
                cur = &sel.operand;
            }
            _ => return None,
        }
    }
}

fn literal(l: &LiteralValue, at: Option<usize>) -> Result<(Node, Ty), CompileError> {
    Ok(match l {
        LiteralValue::Boolean(b) => (Node::Lit(Lit::Bool(*b.inner())), Ty::Bool),
        LiteralValue::Int(i) => (Node::Lit(Lit::Int(*i.inner())), Ty::Int),
        LiteralValue::UInt(u) => (Node::Lit(Lit::UInt(*u.inner())), Ty::Int),
        LiteralValue::Double(d) => (Node::Lit(Lit::Double(*d.inner())), Ty::Double),
        LiteralValue::String(s) => (Node::Lit(Lit::Str(s.inner().into())), Ty::String),
        LiteralValue::Null => (Node::Lit(Lit::Null), Ty::Null),
        LiteralValue::Bytes(_) => {
            return Err(err(at, "bytes literals are not supported in conditions"));
        }
    })
}

fn check_comparable(op: CmpOp, a: Ty, b: Ty) -> Result<(), String> {
    let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
    if a == Ty::Dyn || b == Ty::Dyn {
        return Ok(());
    }
    if ordered {
        let ok = (a.is_numeric() && b.is_numeric()) || (a == Ty::String && b == Ty::String);
        if !ok {
            return Err(format!(
                "cannot order a {} against a {}",
                a.name(),
                b.name()
            ));
        }
        return Ok(());
    }
    let ok = a == b
        || (a.is_numeric() && b.is_numeric())
        || (a.is_list() && b.is_list())
        || a == Ty::Null
        || b == Ty::Null;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "comparing a {} with a {} is always false; check the attribute's type",
            a.name(),
            b.name()
        ))
    }
}

fn arith_type(op: ArithOp, a: Ty, b: Ty) -> Result<Ty, String> {
    if a == Ty::Dyn || b == Ty::Dyn {
        return Ok(Ty::Dyn);
    }
    match (op, a, b) {
        (_, Ty::Int, Ty::Int) => Ok(Ty::Int),
        (ArithOp::Rem, _, _) if a.is_numeric() && b.is_numeric() => {
            Err("% needs two integers".to_owned())
        }
        (_, x, y) if x.is_numeric() && y.is_numeric() => Ok(Ty::Double),
        (ArithOp::Add, Ty::String, Ty::String) => Ok(Ty::String),
        (ArithOp::Add, x, y) if x.is_list() && y.is_list() => Ok(Ty::List),
        _ => Err(format!(
            "no arithmetic between a {} and a {}",
            a.name(),
            b.name()
        )),
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Null => f.write_str("null"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Int(i) => write!(f, "{i}"),
            Lit::UInt(u) => write!(f, "{u}u"),
            Lit::Double(d) => {
                if d.fract() == 0.0 && d.is_finite() {
                    write!(f, "{d:.1}")
                } else {
                    write!(f, "{d}")
                }
            }
            Lit::Str(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Lit::List(items) => {
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

impl fmt::Display for Node {
    /// CEL text of the node (for explanations).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, parts: &[Node], sep: &str| -> fmt::Result {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                if matches!(p, Node::And(_) | Node::Or(_) | Node::Cond(..)) {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{p}")?;
                }
            }
            Ok(())
        };
        match self {
            Node::Lit(l) => write!(f, "{l}"),
            Node::Attr(a) => f.write_str(a.def().path),
            Node::Arg(path) => write!(f, "request.arguments.{}", path.join(".")),
            Node::Var(_, name) => f.write_str(name),
            Node::List(items) => {
                f.write_str("[")?;
                join(f, items, ", ")?;
                f.write_str("]")
            }
            Node::Not(n) => write!(f, "!({n})"),
            Node::And(parts) => join(f, parts, " && "),
            Node::Or(parts) => join(f, parts, " || "),
            Node::Cond(c, a, b) => write!(f, "{c} ? {a} : {b}"),
            Node::Cmp(op, a, b) => {
                let s = match op {
                    CmpOp::Eq => "==",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                write!(f, "{a} {s} {b}")
            }
            Node::Arith(op, a, b) => {
                let s = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                    ArithOp::Rem => "%",
                };
                write!(f, "({a} {s} {b})")
            }
            Node::Neg(a) => write!(f, "-{a}"),
            Node::In(a, b) => write!(f, "{a} in {b}"),
            Node::Str(which, a, b) => {
                let s = match which {
                    StrFn::Contains => "contains",
                    StrFn::StartsWith => "startsWith",
                    StrFn::EndsWith => "endsWith",
                };
                write!(f, "{a}.{s}({b})")
            }
            Node::Matches(a, re) => write!(f, "{a}.matches('{}')", re.as_str()),
            Node::Size(a) => write!(f, "size({a})"),
            Node::Has(HasTarget::Attr(a)) => write!(f, "has({})", a.def().path),
            Node::Has(HasTarget::Arg(p)) => write!(f, "has(request.arguments.{})", p.join(".")),
            Node::Index(a, b) => write!(f, "{a}[{b}]"),
            Node::Quant {
                all,
                range,
                var,
                body,
                ..
            } => write!(
                f,
                "{range}.{}({var}, {body})",
                if *all { "all" } else { "exists" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spelling_keeps_offsets_and_strings() {
        let src = "action.type == 'export' and data.contains_pii";
        let t = translate_seed_spelling(src);
        assert_eq!(t.len(), src.len());
        assert_eq!(t, "action.type == 'export' &&  data.contains_pii");
        assert_eq!(
            translate_seed_spelling("not x or y == 'and or not'"),
            "!   x || y == 'and or not'"
        );
        // Field names that happen to be keywords after a dot are untouched.
        assert_eq!(translate_seed_spelling("a.and"), "a.and");
        assert_eq!(translate_seed_spelling("android"), "android");
    }

    #[test]
    fn compiles_the_seed_conditions() {
        for src in [
            "agent.trust_score >= 0.6",
            "action.type == 'export' and data.contains_pii",
            "action.type == 'api_call'",
            "(agent.trust_score >= 0.6 and action.type == 'read') or user.role == 'admin'",
            "not data.contains_pii",
            "action.tool in ['read_file', 'list_dir']",
            "request.arguments.path.startsWith('/etc')",
            "agent.capabilities.exists(c, c.startsWith('read:'))",
            "has(data.contains_pii) && data.contains_pii",
            "request.arguments.path.matches('^/home/[a-z]+/')",
            "size(agent.capabilities) > 2",
        ] {
            compile(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        }
    }

    #[test]
    fn rejects_unknown_attributes_and_type_errors() {
        let cases = [
            (
                "agent.trust_scor >= 0.6",
                "did you mean `agent.trust_score`",
            ),
            ("agnt.name == 'x'", "did you mean `agent.name`"),
            ("data.contains_pii + 1 > 0", "no arithmetic"),
            (
                "agent.trust_score >= 'high'",
                "cannot order a double against a string",
            ),
            ("action.type == 1", "always false"),
            ("agent.name", "must be true or false"),
            ("action.type.startsWith(1)", "needs a string argument"),
            ("1 in agent.capabilities", "never in a list of strings"),
            ("agent == 'x'", "group of attributes"),
            (
                "request.arguments.path.matches(action.type)",
                "literal pattern",
            ),
            (
                "request.arguments.path.matches('(')",
                "invalid regular expression",
            ),
            ("action.type == 'a' &&", "syntax error"),
            ("foo(1)", "function `foo` is not available"),
            ("lowerAscii(action.type) == 'x'", "not available"),
            ("", "empty"),
        ];
        for (src, want) in cases {
            let e = compile(src).expect_err(src);
            assert!(e.message.contains(want), "{src}: got `{}`", e.message);
        }
    }

    #[test]
    fn hostile_conditions_are_bounded() {
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert!(
            compile(&deep)
                .expect_err("deep")
                .message
                .contains("nests deeper")
        );
        let long = format!("action.type == '{}'", "a".repeat(5000));
        assert!(compile(&long).expect_err("long").message.contains("limit"));
        // 150 alternatives (just under the length limit) is a legitimate,
        // if long, condition.
        let many = (0..150)
            .map(|i| format!("action.type == 'a{i}'"))
            .collect::<Vec<_>>()
            .join(" || ");
        compile(&many).expect("a long flat disjunction compiles");
    }

    /// Every shape here once could, or plausibly could, index past the end
    /// of a call's arguments or recurse without bound. Each must be a
    /// compile error (or compile), never a panic.
    #[test]
    fn method_forms_macros_and_odd_shapes_are_errors_not_panics() {
        let cases = [
            // The reported panic: receiver-style size() has no arguments.
            ("action.tool.size() > 0", None),
            ("size() > 0", Some("size() takes one value")),
            (
                "size(action.tool, action.type) > 0",
                Some("size() takes one value"),
            ),
            ("action.tool.size(1) > 0", Some("size() takes one value")),
            (
                "{'a': 1}.size() > 0",
                Some("map literals are not supported"),
            ),
            ("[1, 2].size() == 2", None),
            (
                "[1, 2].map(x, x * 2).size() > 0",
                Some("only the exists() and all()"),
            ),
            (
                "[1, 2].filter(x, x > 1).size() > 0",
                Some("only the exists() and all()"),
            ),
            (
                "[1, 2].exists_one(x, x > 1)",
                Some("only the exists() and all()"),
            ),
            ("[1, 2].map(x, x > 1, x)[0]", None),
            ("[1, 2].exists(x)", None),
            ("[1, 2].all()", None),
            ("[1, 2].exists(1, true)", None),
            (
                "action.tool.contains()",
                Some("contains() takes one string"),
            ),
            (
                "action.tool.startsWith('a', 'b')",
                Some("startsWith() takes one string"),
            ),
            (
                "contains(action.tool, 'a')",
                Some("contains() takes one string"),
            ),
            ("action.tool.matches()", Some("matches() takes one pattern")),
            ("matches(action.tool)", Some("matches() takes one pattern")),
            (
                "action.tool.matches('a', 'b')",
                Some("matches() takes one pattern"),
            ),
            ("has()", None),
            ("has(1)", None),
            ("has(action)", None),
            (
                "action.tool.exists(c, c == 'x')",
                Some("cannot iterate over a string"),
            ),
            ("true ? 1", None),
            ("!", None),
            ("-", None),
            ("action.tool[0] == 'a'", Some("cannot index a string")),
            ("agent.capabilities[agent.capabilities] == 'a'", None),
            ("9223372036854775808 > 0", None),
            ("-9223372036854775809 > 0", None),
            ("18446744073709551616u > 0u", None),
            ("0x7fffffffffffffffffff > 0", None),
            ("1e999 > 0.0", None),
            ("-9223372036854775808 < 0", None),
            ("b'abc' == b'abc'", Some("bytes literals")),
            ("Foo{a: 1} == 1", None),
            ("action.tool.?x == 'a'", None),
            ("[1,2][?0] == 1", None),
            ("a.b.c.d.e.f.g.h == 'x'", Some("unknown attribute")),
            ("request.arguments.a.size() > 0", None),
            ("size(request.arguments) > 0", None),
            (r"'\u0000' == action.tool", None),
            (r"action.tool == '\xff'", None),
            ("action.tool in {'a': 1}", Some("map literals")),
            ("__result__ == 1", Some("unknown attribute")),
            ("@not_strictly_false(true)", None),
        ];
        for (src, want) in cases {
            match (compile(src), want) {
                (Err(e), Some(w)) => assert!(e.message.contains(w), "{src}: got `{}`", e.message),
                (Ok(_), Some(w)) => panic!("{src}: compiled, expected an error with `{w}`"),
                (r, None) => {
                    if let Err(e) = r {
                        assert!(!e.message.is_empty(), "{src}: empty message");
                    }
                }
            }
        }
        // The reported condition compiles and means what it says.
        let c = compile("action.tool.size() > 0").expect("receiver size()");
        assert_eq!(c.node.to_string(), "size(action.tool) > 0");
    }

    #[test]
    fn chains_without_brackets_are_bounded_by_depth() {
        // Each is within MAX_CONDITION_LEN but nests up to two thousand deep
        // without a bracket. Run on half the stack of a tokio worker (2 MiB),
        // in a debug build whose frames are several times larger than a
        // release build's, so unbounded recursion shows as a crash here.
        let long_path = format!("request.arguments{} == 1", ".a".repeat(1500));
        let sum = format!("{}1>0", "1+".repeat(2040));
        let negs = format!("{}1 > 0", "-".repeat(1501));
        let nots = format!("{}true", "!".repeat(2001));
        let ands = vec!["action.type == 'x'"; 150].join(" && ");
        let sizes = format!("action.tool{} > 0", ".size()".repeat(575));
        // The longest chain a condition compiled inline can hold.
        let short_sum = format!("{}1>0", "1+".repeat((INLINE_PARSE_LEN - 3) / 2));
        assert!(short_sum.len() <= INLINE_PARSE_LEN);
        for src in [&long_path, &sum, &negs, &nots, &ands, &sizes] {
            assert!(src.len() <= MAX_CONDITION_LEN, "{}", src.len());
        }
        let handle = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                for src in [&sum, &sizes, &short_sum] {
                    let e = compile(src).expect_err("too deep");
                    assert!(
                        e.message.contains("too deeply nested"),
                        "{}: {}",
                        &src[..40],
                        e.message
                    );
                }
                // A long flat conjunction is fine: the parser balances it.
                compile(&ands).expect("150 conjuncts");
                // A long path is one flat node, and an odd run of `-` or `!`
                // folds to one operator.
                compile(&long_path).expect("long argument path");
                compile(&negs).expect("folded negations");
                compile(&nots).expect("folded nots");
                // The deepest tree accepted is also evaluated, printed and
                // analysed (all recursive) within the same small stack.
                let deepest = format!("{}1 > 0", "1 + ".repeat(MAX_DEPTH - 3));
                let c = compile(&deepest).expect("deepest accepted tree");
                let req = crate::schema::Request::default();
                assert_eq!(crate::eval::eval_bool(&c.node, &req), Ok(true));
                let shown = c.node.to_string();
                assert_eq!(shown.matches('(').count(), MAX_DEPTH - 3, "{shown}");
                assert!(shown.ends_with(" + 1) > 0"), "{shown}");
                assert_eq!(crate::analysis::never_true(&c.node), None);
                let too_deep = format!("{}1 > 0", "1 + ".repeat(MAX_DEPTH - 1));
                assert!(compile(&too_deep).is_err());
            })
            .expect("spawn");
        handle.join().expect("no stack overflow or panic");
    }

    #[test]
    fn syntax_error_positions_point_into_the_source() {
        let e = compile("action.type == 'x' and ) ").expect_err("syntax");
        assert!(e.offset.is_some(), "{e:?}");
    }
}
