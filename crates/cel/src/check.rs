//! Static checks at compile time: undeclared variables and functions, fields
//! the schema does not declare, a result that cannot be a bool, and a lower
//! bound of the rule's cost from the schema's size limits.

use crate::convert::{additional_properties, escape, is_embedded, is_struct, schema_type};
use crate::env::FUNCTIONS;
use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::{json, Value as Json};

/// Upstream's bound on a request body, from which it derives the largest
/// possible list or map when the schema sets no maxItems/maxProperties.
const MAX_REQUEST_BYTES: u64 = 3 * 1024 * 1024;

/// Where in the source a problem is reported, as cel-go anchors it.
pub enum Anchor {
    /// An identifier: its first character.
    Ident(String),
    /// A call: the `(` after the function name.
    Call(String),
    /// A field selection: the `.` before the field.
    Select(String),
}

/// A problem found in the rule, before it is placed in the source.
pub struct Issue {
    /// How to find it in the source.
    pub anchor: Anchor,
    /// What is wrong.
    pub message: String,
}

/// Static type of an expression, as far as the checker follows it.
#[derive(Clone)]
enum Ty {
    /// Typed by this schema node.
    Schema(Json),
    /// Not followed.
    Unknown,
}

struct Checker<'a> {
    issues: Vec<Issue>,
    root: bool,
    schema: &'a Json,
    optional_old_self: bool,
}

/// Finds undeclared references and undefined fields in `expr`, typed by
/// `schema` (`resource_root`: apiVersion, kind and metadata.name/generateName
/// are visible too).
pub fn check(
    expr: &IdedExpr,
    schema: &Json,
    resource_root: bool,
    optional_old_self: bool,
) -> Vec<Issue> {
    let mut c = Checker {
        issues: Vec::new(),
        root: resource_root || is_embedded(schema),
        schema,
        optional_old_self,
    };
    let mut scope = Vec::new();
    c.walk(expr, &mut scope);
    c.issues
}

impl Checker<'_> {
    fn field(&mut self, of: &Ty, field: &str, root: bool) -> Ty {
        let Ty::Schema(s) = of else {
            return Ty::Unknown;
        };
        if root {
            match field {
                "apiVersion" | "kind" => return Ty::Schema(json!({"type": "string"})),
                "metadata" => {
                    return Ty::Schema(json!({"type": "object", "properties": {
                        "name": {"type": "string"}, "generateName": {"type": "string"}}}))
                }
                _ => {}
            }
        }
        if is_struct(s) {
            let props = s["properties"].as_object().into_iter().flatten();
            for (name, prop) in props {
                if escape(name).as_deref() == Some(field) {
                    return Ty::Schema(prop.clone());
                }
            }
            self.issues.push(Issue {
                anchor: Anchor::Select(field.to_owned()),
                message: format!("undefined field '{field}'"),
            });
            return Ty::Unknown;
        }
        match additional_properties(s) {
            Some(v) => Ty::Schema(v.clone()),
            None => Ty::Unknown,
        }
    }

    fn walk(&mut self, e: &IdedExpr, scope: &mut Vec<(String, Ty)>) -> Ty {
        match &e.expr {
            Expr::Ident(name) => {
                if let Some((_, ty)) = scope.iter().rev().find(|(n, _)| n == name) {
                    return ty.clone();
                }
                match name.as_str() {
                    "self" => Ty::Schema(self.schema.clone()),
                    "oldSelf" if !self.optional_old_self => Ty::Schema(self.schema.clone()),
                    "oldSelf" => Ty::Unknown,
                    _ => {
                        self.issues.push(Issue {
                            anchor: Anchor::Ident(name.clone()),
                            message: format!("undeclared reference to '{name}' (in container '')"),
                        });
                        Ty::Unknown
                    }
                }
            }
            Expr::Select(s) => {
                let of = self.walk(&s.operand, scope);
                let root = self.root
                    && matches!(&s.operand.expr, Expr::Ident(n) if (n == "self" || n == "oldSelf")
                        && !scope.iter().any(|(v, _)| v == n));
                let ty = self.field(&of, &s.field, root);
                if s.test {
                    Ty::Schema(json!({"type": "boolean"}))
                } else {
                    ty
                }
            }
            Expr::Call(c) => {
                let qualified = matches!(c.target.as_deref(), Some(IdedExpr {
                        expr: Expr::Ident(ns),
                        ..
                    }) if !scope.iter().any(|(v, _)| v == ns)
                        && FUNCTIONS.contains(&format!("{ns}.{}", c.func_name).as_str()));
                let operator = c.func_name.starts_with(['_', '@', '!', '-']);
                if !operator && !qualified && !FUNCTIONS.contains(&c.func_name.as_str()) {
                    self.issues.push(Issue {
                        anchor: Anchor::Call(c.func_name.clone()),
                        message: format!(
                            "undeclared reference to '{}' (in container '')",
                            c.func_name
                        ),
                    });
                }
                let target = match (&c.target, qualified) {
                    (Some(t), false) => Some(self.walk(t, scope)),
                    _ => None,
                };
                let args: Vec<Ty> = c.args.iter().map(|a| self.walk(a, scope)).collect();
                match c.func_name.as_str() {
                    "_[_]" => match args.first() {
                        Some(Ty::Schema(s)) if schema_type(s) == "array" => {
                            s.get("items").cloned().map_or(Ty::Unknown, Ty::Schema)
                        }
                        Some(Ty::Schema(s)) if !is_struct(s) => additional_properties(s)
                            .cloned()
                            .map_or(Ty::Unknown, Ty::Schema),
                        _ => Ty::Unknown,
                    },
                    "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" | "@in" | "_&&_" | "_||_"
                    | "!_" => Ty::Schema(json!({"type": "boolean"})),
                    _ => {
                        let _ = target;
                        Ty::Unknown
                    }
                }
            }
            Expr::List(l) => {
                for el in &l.elements {
                    self.walk(el, scope);
                }
                Ty::Unknown
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.walk(&me.key, scope);
                        self.walk(&me.value, scope);
                    }
                }
                Ty::Unknown
            }
            Expr::Comprehension(c) => {
                let range = self.walk(&c.iter_range, scope);
                let elem = match &range {
                    Ty::Schema(s) if schema_type(s) == "array" => {
                        s.get("items").cloned().map_or(Ty::Unknown, Ty::Schema)
                    }
                    Ty::Schema(s) if schema_type(s) == "object" => {
                        Ty::Schema(json!({"type": "string"}))
                    }
                    _ => Ty::Unknown,
                };
                self.walk(&c.accu_init, scope);
                scope.push((c.accu_var.clone(), Ty::Unknown));
                scope.push((c.iter_var.clone(), elem));
                self.walk(&c.loop_cond, scope);
                self.walk(&c.loop_step, scope);
                scope.pop();
                self.walk(&c.result, scope);
                scope.pop();
                Ty::Unknown
            }
            Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => Ty::Unknown,
        }
    }
}

/// Whether the expression certainly does not produce a bool (a non-bool
/// literal, a list or map literal, arithmetic, or a field the schema types as
/// something else). `None` when it may.
pub fn non_bool(e: &IdedExpr, schema: &Json) -> bool {
    match &e.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => false,
        Expr::Literal(_) | Expr::List(_) | Expr::Map(_) => true,
        Expr::Call(c) => matches!(
            c.func_name.as_str(),
            "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "-_"
        ),
        Expr::Select(s) if !s.test => {
            // Only `self.a.b…` paths through declared properties.
            let mut path = vec![s.field.as_str()];
            let mut op = &s.operand;
            loop {
                match &op.expr {
                    Expr::Select(inner) if !inner.test => {
                        path.push(inner.field.as_str());
                        op = &inner.operand;
                    }
                    Expr::Ident(n) if n == "self" => break,
                    _ => return false,
                }
            }
            let mut node = schema;
            for field in path.iter().rev() {
                let found = node
                    .get("properties")
                    .and_then(Json::as_object)
                    .and_then(|p| p.iter().find(|(k, _)| escape(k).as_deref() == Some(field)));
                match found {
                    Some((_, p)) => node = p,
                    None => return false,
                }
            }
            let t = schema_type(node);
            !t.is_empty() && t != "boolean" && node.get("x-kubernetes-int-or-string").is_none()
        }
        _ => false,
    }
}

/// Smallest JSON encoding of a value of this schema, as upstream estimates it.
fn min_size(schema: &Json) -> u64 {
    match schema_type(schema) {
        "string" => 2,
        "boolean" => 4,
        "object" | "array" => 2,
        _ => 1,
    }
}

/// Largest number of elements a list or map of this schema can hold.
fn max_elements(schema: &Json) -> Option<u64> {
    match schema_type(schema) {
        "array" => Some(
            schema
                .get("maxItems")
                .and_then(Json::as_u64)
                .unwrap_or_else(|| {
                    let items = schema.get("items").unwrap_or(&Json::Null);
                    (MAX_REQUEST_BYTES - 2) / (min_size(items) + 1)
                }),
        ),
        "object" if !is_struct(schema) => {
            let values = additional_properties(schema)?;
            Some(
                schema
                    .get("maxProperties")
                    .and_then(Json::as_u64)
                    .unwrap_or(
                        // `"":` before the value, `,` after it.
                        (MAX_REQUEST_BYTES - 2) / (min_size(values) + 4),
                    ),
            )
        }
        _ => None,
    }
}

/// A lower bound of what evaluating `e` costs in the worst case: one unit per
/// call, selection and variable, and for each comprehension over a list or map
/// the schema describes, its largest size times the cost of one iteration.
/// Comprehensions over anything else count one iteration, so this only ever
/// underestimates upstream's figure.
pub fn estimate(e: &IdedExpr, schema: &Json) -> u64 {
    let mut scope = Vec::new();
    est(e, schema, &mut scope).0
}

fn est(
    e: &IdedExpr,
    schema: &Json,
    scope: &mut Vec<(String, Option<Json>)>,
) -> (u64, Option<Json>) {
    match &e.expr {
        Expr::Ident(name) => {
            let ty = match scope.iter().rev().find(|(n, _)| n == name) {
                Some((_, t)) => t.clone(),
                None if name == "self" || name == "oldSelf" => Some(schema.clone()),
                None => None,
            };
            (1, ty)
        }
        Expr::Select(s) => {
            let (c, ty) = est(&s.operand, schema, scope);
            let ty = ty.and_then(|t| {
                if is_struct(&t) {
                    t["properties"]
                        .as_object()
                        .and_then(|p| {
                            p.iter()
                                .find(|(k, _)| escape(k).as_deref() == Some(&s.field))
                        })
                        .map(|(_, v)| v.clone())
                } else {
                    additional_properties(&t).cloned()
                }
            });
            (c.saturating_add(1), ty)
        }
        Expr::Call(c) => {
            let own: u64 = match c.func_name.as_str() {
                "_&&_" | "_||_" | "_?_:_" | "!_" => 0,
                _ => 1,
            };
            let mut total = own;
            if let Some(t) = &c.target {
                total = total.saturating_add(est(t, schema, scope).0);
            }
            let mut first = None;
            for (i, a) in c.args.iter().enumerate() {
                let (ac, at) = est(a, schema, scope);
                if i == 0 {
                    first = at;
                }
                total = total.saturating_add(ac);
            }
            let ty = match c.func_name.as_str() {
                "_[_]" => first.and_then(|t| {
                    if schema_type(&t) == "array" {
                        t.get("items").cloned()
                    } else {
                        additional_properties(&t).cloned()
                    }
                }),
                _ => None,
            };
            (total, ty)
        }
        Expr::List(l) => (
            l.elements
                .iter()
                .fold(1u64, |acc, el| acc.saturating_add(est(el, schema, scope).0)),
            None,
        ),
        Expr::Map(m) => {
            let mut total = 1u64;
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    total = total
                        .saturating_add(est(&me.key, schema, scope).0)
                        .saturating_add(est(&me.value, schema, scope).0);
                }
            }
            (total, None)
        }
        Expr::Comprehension(c) => {
            let (range_cost, range_ty) = est(&c.iter_range, schema, scope);
            let n = range_ty.as_ref().and_then(max_elements).unwrap_or(1);
            let elem = range_ty.and_then(|t| {
                if schema_type(&t) == "array" {
                    t.get("items").cloned()
                } else {
                    Some(json!({"type": "string"}))
                }
            });
            let init = est(&c.accu_init, schema, scope).0;
            scope.push((c.accu_var.clone(), None));
            scope.push((c.iter_var.clone(), elem));
            let per = est(&c.loop_cond, schema, scope)
                .0
                .saturating_add(est(&c.loop_step, schema, scope).0);
            scope.pop();
            let result = est(&c.result, schema, scope).0;
            scope.pop();
            (
                range_cost
                    .saturating_add(init)
                    .saturating_add(n.saturating_mul(per))
                    .saturating_add(result),
                None,
            )
        }
        Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => (0, None),
    }
}

/// Places issues in `source` and renders them as cel-go does: sorted by
/// position, each with the source line and a caret under the column.
pub fn render(source: &str, issues: &[Issue]) -> String {
    let mut located: Vec<((usize, usize), &str)> = issues
        .iter()
        .map(|i| (locate(source, &i.anchor), i.message.as_str()))
        .collect();
    located.sort_by_key(|(pos, _)| *pos);
    located.dedup();
    located
        .iter()
        .map(|(pos, msg)| format_error(source, *pos, msg))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ERROR: <input>:line:col: msg` with the snippet and caret (1-based line and
/// column, the column counted in characters).
pub fn format_error(source: &str, (line, col): (usize, usize), msg: &str) -> String {
    let mut out = format!("ERROR: <input>:{line}:{col}: {msg}");
    if let Some(text) = source.lines().nth(line.saturating_sub(1)) {
        out.push_str(&format!(
            "\n | {text}\n | {}^",
            ".".repeat(col.saturating_sub(1))
        ));
    }
    out
}

/// Positions (char index) of identifier tokens outside string literals, with
/// the previous and next non-space characters.
/// An identifier token: its start, text, and the non-space characters (with
/// their positions) before and after it.
type Token = (usize, String, Option<(usize, char)>, Option<(usize, char)>);

fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let prev_sig = |i: usize| {
        (0..i)
            .rev()
            .find(|&j| !chars[j].is_whitespace())
            .map(|j| (j, chars[j]))
    };
    let next_sig = |i: usize| {
        (i..chars.len())
            .find(|&j| !chars[j].is_whitespace())
            .map(|j| (j, chars[j]))
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // Skip the literal (triple quotes included), honouring escapes.
            let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
            let raw = i > 0 && matches!(chars[i - 1], 'r' | 'R');
            i += if triple { 3 } else { 1 };
            while i < chars.len() {
                if !raw && chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                if chars[i] == c
                    && (!triple || (chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c)))
                {
                    i += if triple { 3 } else { 1 };
                    break;
                }
                i += 1;
            }
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push((start, word, prev_sig(start), next_sig(i)));
            continue;
        }
        i += 1;
    }
    out
}

fn locate(source: &str, anchor: &Anchor) -> (usize, usize) {
    let toks = tokens(source);
    let found = toks
        .iter()
        .find_map(|(start, word, prev, next)| match anchor {
            Anchor::Ident(n) if word == n && !matches!(prev, Some((_, '.'))) => Some(*start),
            Anchor::Call(n) if word == n && matches!(next, Some((_, '('))) => next.map(|(j, _)| j),
            Anchor::Select(n) if word == n => match prev {
                Some((j, '.')) => Some(*j),
                _ => None,
            },
            _ => None,
        });
    let idx = found.unwrap_or(0);
    let before: String = source.chars().take(idx).collect();
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
