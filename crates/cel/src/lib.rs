//! CustomResourceDefinition validation rules (`x-kubernetes-validations`):
//! compiling and evaluating their CEL expressions as kube-apiserver 1.33 does,
//! on the `cel` interpreter with the Kubernetes function libraries of
//! `kube-cel`.
//!
//! [`compile`] parses a rule once per CRD version and checks it against the
//! schema node it is attached to; [`evaluate`] runs it against a value (and
//! the old value, for transition rules) within a [`Budget`].
//!
//! # Cost
//!
//! Upstream bounds the work of all rules of one request by a runtime cost
//! budget ([`RUNTIME_COST_BUDGET`]) and of one rule by a per-call limit
//! ([`PER_CALL_LIMIT`]). The `cel` crate tracks no cost, so a compiled rule is
//! instrumented: every node it evaluates charges a per-thread meter by the size
//! of the value it produced, each comprehension iteration charges at least one
//! unit, and the functions whose work can outgrow their inputs and output
//! (`replace`, `format` precision, the `sets` functions, regex compilation)
//! charge before they run. The evaluation is aborted by the first charge past
//! the limit, so a runaway rule stops after about as much work as its limit
//! allows. The units approximate cel-go's (about one per node, 0.1 per list
//! element or string byte traversed); they are not the same numbers.
//!
//! At compile time [`Compiled::cost_exceeds_limit`] gives a lower bound of
//! the rule's worst-case cost from the schema's maxItems/maxProperties (or the
//! largest list a 3 MiB request can carry) and reports it the way upstream
//! rejects a rule whose estimated cost exceeds the per-call limit; being a
//! lower bound of cel-go's estimate, it rejects no rule that upstream admits,
//! but admits some that upstream rejects (string-length costs are not
//! modelled).

use kube_cel::cel::common::ast::{Expr, IdedExpr};
use kube_cel::cel::objects::Value;
use kube_cel::cel::parser::Parser;
use kube_cel::cel::ExecutionError;
use serde_json::Value as Json;

mod check;
mod convert;
mod cost;
mod env;

pub use convert::escape as escape_property_name;

/// Upstream's runtime cost budget for validating one custom resource.
pub const RUNTIME_COST_BUDGET: u64 = 10_000_000;
/// Upstream's cost limit for one evaluation of one expression.
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Longest message a messageExpression may produce.
pub const MAX_EVALUATED_MESSAGE_EXPRESSION_SIZE_BYTES: usize = 5 * 1024;
/// Detail of the error reported when the request's budget runs out.
pub const BUDGET_EXHAUSTED: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

/// One entry of `x-kubernetes-validations`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    /// The CEL expression; `self` is the value the rule is attached to.
    pub rule: String,
    /// Message reported when the rule fails.
    pub message: Option<String>,
    /// CEL expression producing the message reported when the rule fails.
    pub message_expression: Option<String>,
    /// Path, relative to the rule's node, the failure is reported at.
    pub field_path: Option<String>,
    /// Reason of the failure (`FieldValueInvalid`, `FieldValueForbidden`, …).
    pub reason: Option<String>,
    /// Evaluate a transition rule on create too, `oldSelf` being optional.
    pub optional_old_self: bool,
}

impl Rule {
    /// Reads one entry of `x-kubernetes-validations`.
    pub fn from_value(v: &Json) -> Result<Rule, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| "a validation rule must be an object".to_owned())?;
        let text = |name: &str| -> Result<Option<String>, String> {
            match obj.get(name) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{name} must be a string")),
            }
        };
        Ok(Rule {
            rule: text("rule")?.ok_or_else(|| "rule: Required value".to_owned())?,
            message: text("message")?,
            message_expression: text("messageExpression")?,
            field_path: text("fieldPath")?,
            reason: text("reason")?,
            optional_old_self: match obj.get("optionalOldSelf") {
                None | Some(Json::Null) => false,
                Some(Json::Bool(b)) => *b,
                Some(_) => return Err("optionalOldSelf must be a boolean".to_owned()),
            },
        })
    }

    /// The rule as upstream names it in errors: its message, or its text.
    fn error_string(&self) -> &str {
        match self.message.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() => m,
            _ => self.rule.trim(),
        }
    }
}

/// A compiled rule: parse, checks and instrumentation done once, evaluated
/// any number of times from any thread.
#[derive(Clone, Debug)]
pub struct Compiled {
    rule: Rule,
    /// `None` for an empty rule, which upstream skips.
    program: Option<IdedExpr>,
    message_program: Option<IdedExpr>,
    transition: bool,
    resource_root: bool,
    field_path: Option<String>,
    estimated_cost: u64,
    estimated_message_cost: u64,
}

/// Compiles `rule` for the schema node (`JSONSchemaProps`) it is attached to.
///
/// Errors are upstream's details: `compilation failed: ERROR: <input>:1:6:
/// undeclared reference to 'foo' (in container '')` (with the source line and a
/// caret), `cel expression must evaluate to a bool`, `messageExpression
/// compilation failed: …`, or an invalid fieldPath.
pub fn compile(rule: &Rule, schema: &Json) -> Result<Compiled, String> {
    compile_at(rule, schema, false)
}

/// [`compile`] for a rule at the root of the custom resource, where `self`
/// also has `apiVersion`, `kind` and `metadata.name`/`metadata.generateName`.
pub fn compile_for_resource_root(rule: &Rule, schema: &Json) -> Result<Compiled, String> {
    compile_at(rule, schema, true)
}

fn parse(source: &str) -> Result<IdedExpr, String> {
    Parser::new()
        .enable_optional_syntax(true)
        .parse(source)
        .map_err(|errs| {
            errs.errors
                .iter()
                .map(|e| {
                    let pos = (e.pos.0.max(1) as usize, e.pos.1.max(0) as usize + 1);
                    check::format_error(source, pos, &e.msg)
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
}

fn compile_at(rule: &Rule, schema: &Json, resource_root: bool) -> Result<Compiled, String> {
    let field_path = match &rule.field_path {
        Some(p) if !p.is_empty() => Some(normalize_field_path(p, schema)?),
        _ => None,
    };
    let mut compiled = Compiled {
        rule: rule.clone(),
        program: None,
        message_program: None,
        transition: false,
        resource_root,
        field_path,
        estimated_cost: 0,
        estimated_message_cost: 0,
    };
    if rule.rule.trim().is_empty() {
        return Ok(compiled);
    }
    let expr = parse(&rule.rule).map_err(|e| format!("compilation failed: {e}"))?;
    let issues = check::check(&expr, schema, resource_root, rule.optional_old_self);
    if !issues.is_empty() {
        return Err(format!(
            "compilation failed: {}",
            check::render(&rule.rule, &issues)
        ));
    }
    if check::non_bool(&expr, schema) {
        return Err("cel expression must evaluate to a bool".to_owned());
    }
    compiled.transition = expr.references().has_variable("oldSelf");
    compiled.estimated_cost = check::estimate(&expr, schema);
    compiled.program = Some(cost::instrument(&expr));
    if let Some(m) = rule
        .message_expression
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        let mexpr = parse(m).map_err(|e| format!("messageExpression compilation failed: {e}"))?;
        let issues = check::check(&mexpr, schema, resource_root, false);
        if !issues.is_empty() {
            return Err(format!(
                "messageExpression compilation failed: {}",
                check::render(m, &issues)
            ));
        }
        if matches!(mexpr.expr, Expr::Literal(_)) && !is_string_literal(&mexpr) {
            return Err("messageExpression must evaluate to a string".to_owned());
        }
        compiled.estimated_message_cost = check::estimate(&mexpr, schema);
        compiled.message_program = Some(cost::instrument(&mexpr));
    }
    Ok(compiled)
}

fn is_string_literal(e: &IdedExpr) -> bool {
    matches!(
        e.expr,
        Expr::Literal(kube_cel::cel::common::ast::LiteralValue::String(_))
    )
}

/// Validates a rule's fieldPath against the schema (`.a.b`, `['a.b']`, map
/// keys) and returns it as upstream prints it (`a.b`, `m[key]`).
fn normalize_field_path(path: &str, schema: &Json) -> Result<String, String> {
    let invalid = |why: &str| format!("fieldPath: Invalid value: {path:?}: {why}");
    let mut node = schema;
    let mut out = String::new();
    let mut rest = path;
    while !rest.is_empty() {
        let name = if let Some(r) = rest.strip_prefix("['") {
            let end = r
                .find("']")
                .ok_or_else(|| invalid("unexpected end of JSON path"))?;
            rest = &r[end + 2..];
            r[..end].replace("\\'", "'").replace("\\\\", "\\")
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            rest = &r[end..];
            r[..end].to_owned()
        } else {
            return Err(invalid("expected [ or . but got something else"));
        };
        if convert::is_struct(node) {
            node = node["properties"]
                .get(&name)
                .ok_or_else(|| invalid("does not refer to a valid field"))?;
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&name);
        } else if let Some(values) = convert::additional_properties(node) {
            node = values;
            out.push_str(&format!("[{name}]"));
        } else {
            return Err(invalid("does not refer to a valid field"));
        }
    }
    Ok(out)
}

/// Forbidden-style detail of a cost estimate over `limit`, as upstream words it.
fn cost_error(what: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_owned()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{what} exceeds budget by factor of {factor} (try simplifying the rule, or adding \
         maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

impl Compiled {
    /// Whether the rule references `oldSelf` (a transition rule: evaluated
    /// only on update, unless `optionalOldSelf`).
    pub fn is_transition(&self) -> bool {
        self.transition
    }

    /// The rule this was compiled from.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The fieldPath as upstream appends it to the rule's path (`spec.x`,
    /// `m[key]`), if the rule names one.
    pub fn field_path(&self) -> Option<&str> {
        self.field_path.as_deref()
    }

    /// The compile-time lower bound of the rule's worst-case cost.
    pub fn estimated_cost(&self) -> u64 {
        self.estimated_cost
    }

    /// Upstream's `Forbidden` detail when the estimated cost of the rule (or
    /// of its messageExpression) exceeds [`PER_CALL_LIMIT`], for rejecting the
    /// CRD (reported at the rule's `rule`/`messageExpression` field).
    pub fn cost_exceeds_limit(&self) -> Option<String> {
        if self.estimated_cost > PER_CALL_LIMIT {
            return Some(cost_error(
                "estimated rule cost",
                self.estimated_cost,
                PER_CALL_LIMIT,
            ));
        }
        if self.estimated_message_cost > PER_CALL_LIMIT {
            return Some(cost_error(
                "estimated messageExpression cost",
                self.estimated_message_cost,
                PER_CALL_LIMIT,
            ));
        }
        None
    }
}

/// What is left of a request's cost budget; shared by all rules evaluated for
/// one request, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    remaining: u64,
}

impl Budget {
    /// Upstream's runtime budget for one custom resource.
    pub fn per_request() -> Budget {
        Budget::new(RUNTIME_COST_BUDGET)
    }

    /// A budget of `units`.
    pub fn new(units: u64) -> Budget {
        Budget { remaining: units }
    }

    /// Units left.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether nothing is left (no further rule may run).
    pub fn is_exhausted(&self) -> bool {
        self.remaining == 0
    }
}

/// The result of evaluating one rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The rule holds, or was skipped (empty rule; a transition rule without
    /// an old value).
    Pass,
    /// The rule does not hold. `message` is the messageExpression's result,
    /// the message, or `failed rule: <rule>`; report it at the rule's path
    /// joined with `field_path`, as `Invalid` or by `reason`.
    Fail {
        /// The error detail.
        message: String,
        /// Normalized fieldPath, relative to the rule's node.
        field_path: Option<String>,
        /// The rule's reason, as written.
        reason: Option<String>,
    },
    /// The cost budget or the per-call limit ran out: report `message` as
    /// `Invalid` at the rule's path (joined with `field_path` when set) and run
    /// no further rules for this request.
    Exhausted {
        /// The error detail (upstream's words for which limit ran out).
        message: String,
        /// Set when the messageExpression ran out, as upstream reports it.
        field_path: Option<String>,
    },
    /// The rule could not be evaluated (`no such key: x evaluating rule: …`);
    /// report as `Invalid` at the rule's path and go on with the next rule.
    Error(String),
}

/// Evaluates a compiled rule against `value` (and `old` on update), charging
/// `budget`. `schema` is the node the rule was compiled for.
pub fn evaluate(
    c: &Compiled,
    schema: &Json,
    value: &Json,
    old: Option<&Json>,
    budget: &mut Budget,
) -> Outcome {
    evaluate_subject(
        c,
        &Subject::new(schema, value, old, c.resource_root),
        budget,
    )
}

/// A value and its old value, converted to CEL once for every rule of one schema node
/// (the old value only if a transition rule asks for it).
pub struct Subject<'a> {
    schema: &'a Json,
    old_json: Option<&'a Json>,
    resource_root: bool,
    value: Option<Value>,
    old: std::cell::OnceCell<Option<Value>>,
}

impl<'a> Subject<'a> {
    /// The subject of the rules at a node whose schema is `schema` (`resource_root` for the
    /// custom resource's root); a null value is one no rule checks.
    pub fn new(
        schema: &'a Json,
        value: &'a Json,
        old: Option<&'a Json>,
        resource_root: bool,
    ) -> Subject<'a> {
        Subject {
            schema,
            old_json: old.filter(|o| !o.is_null()),
            resource_root,
            value: (!value.is_null()).then(|| convert::to_value(value, schema, resource_root)),
            old: std::cell::OnceCell::new(),
        }
    }

    fn old(&self) -> Option<&Value> {
        self.old
            .get_or_init(|| {
                self.old_json
                    .map(|o| convert::to_value(o, self.schema, self.resource_root))
            })
            .as_ref()
    }
}

/// [`evaluate`] on a [`Subject`] shared by the rules of one node.
pub fn evaluate_subject(c: &Compiled, subject: &Subject<'_>, budget: &mut Budget) -> Outcome {
    let Some(program) = &c.program else {
        return Outcome::Pass;
    };
    let Some(self_value) = subject.value.clone() else {
        // Upstream validates only non-null values.
        return Outcome::Pass;
    };
    if c.transition && subject.old_json.is_none() && !c.rule.optional_old_self {
        return Outcome::Pass;
    }
    if budget.is_exhausted() {
        return Outcome::Exhausted {
            message: BUDGET_EXHAUSTED.to_owned(),
            field_path: None,
        };
    }
    let old_value = if c.transition {
        subject.old().cloned()
    } else {
        None
    };
    let mut ctx = env::root().new_inner_scope();
    ctx.add_variable_from_value("self", self_value.clone());
    if c.rule.optional_old_self {
        ctx.add_variable_from_value("oldSelf", convert::optional(old_value.clone()));
    } else if let Some(o) = &old_value {
        ctx.add_variable_from_value("oldSelf", o.clone());
    }

    let limit = PER_CALL_LIMIT.min(budget.remaining);
    let (result, used, exceeded) = cost::metered(limit, || ctx.resolve(program));
    budget.remaining = budget.remaining.saturating_sub(used);
    if exceeded {
        let message = if used > PER_CALL_LIMIT {
            format!(
                "'{}': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                cost::EXCEEDED,
                c.rule.error_string()
            )
        } else {
            BUDGET_EXHAUSTED.to_owned()
        };
        budget.remaining = 0;
        return Outcome::Exhausted {
            message,
            field_path: None,
        };
    }
    match result {
        Ok(Value::Bool(true)) => return Outcome::Pass,
        Ok(_) => {}
        Err(e) => {
            let text = error_text(&e);
            return Outcome::Error(if text == "no such overload" {
                format!(
                    "'{text}': call arguments did not match a supported operator, function or \
                     macro signature for rule: {}",
                    c.rule.error_string()
                )
            } else {
                format!("{text} evaluating rule: {}", c.rule.error_string())
            });
        }
    }

    let mut message = None;
    if let Some(mp) = &c.message_program {
        // Upstream evaluates the message with plain `oldSelf`, never optional.
        let mut mctx = env::root().new_inner_scope();
        mctx.add_variable_from_value("self", self_value);
        if let Some(o) = old_value {
            mctx.add_variable_from_value("oldSelf", o);
        }
        let limit = PER_CALL_LIMIT.min(budget.remaining);
        let (result, used, exceeded) = cost::metered(limit, || mctx.resolve(mp));
        budget.remaining = budget.remaining.saturating_sub(used);
        if exceeded {
            let message = if used > PER_CALL_LIMIT {
                format!(
                    "no further validation rules will be run due to call cost exceeds limit for messageExpression: {:?}",
                    c.rule.message_expression.as_deref().unwrap_or_default()
                )
            } else {
                "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run".to_owned()
            };
            budget.remaining = 0;
            return Outcome::Exhausted {
                message,
                field_path: c.field_path.clone(),
            };
        }
        // A message that fails, is empty, too long or multi-line falls back to
        // the static message, as upstream does.
        if let Ok(Value::String(s)) = result {
            let s = s.trim();
            if !s.is_empty()
                && s.len() <= MAX_EVALUATED_MESSAGE_EXPRESSION_SIZE_BYTES
                && !s.contains('\n')
            {
                message = Some(s.to_owned());
            }
        }
    }
    let message = message.unwrap_or_else(|| match c.rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => format!("failed rule: {}", c.rule.rule.trim()),
    });
    Outcome::Fail {
        message,
        field_path: c.field_path.clone(),
        reason: c.rule.reason.clone(),
    }
}

/// cel-go's wording of runtime errors.
fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::NoSuchOverload
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::UnsupportedUnaryOperator(..)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::UnsupportedTargetType { .. }
        | ExecutionError::NotSupportedAsMethod { .. }
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnsupportedMapIndex(..)
        | ExecutionError::UnsupportedListIndex(..)
        | ExecutionError::UnsupportedIndex(..) => "no such overload".to_owned(),
        ExecutionError::IndexOutOfBounds(i) => match i {
            Value::Int(i) => format!("index out of bounds: {i}"),
            Value::UInt(i) => format!("index out of bounds: {i}"),
            _ => "index out of bounds".to_owned(),
        },
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_owned(),
        ExecutionError::Overflow(..) => "integer overflow".to_owned(),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
