//! `x-kubernetes-validations` in a custom resource's validation: the schema walker calls this
//! hook at each node with rules; rules are compiled once per definition version (on first use)
//! and evaluated within one cost budget per request, as upstream's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reddwarf_cel::{Budget, Compiled, Outcome, Rule};
use reddwarf_schema::{Cause, RuleHook};
use serde_json::Value;

/// One `x-kubernetes-validations` array, compiled (a rule that does not compile keeps its
/// error).
type CompiledRules = Arc<Vec<Result<Compiled, String>>>;

/// The compiled rules of one schema, by the address of their `x-kubernetes-validations`
/// array inside the schema (stable: the schema is owned by the strategy and never changes).
#[derive(Default)]
pub(crate) struct RuleCache {
    compiled: Mutex<HashMap<usize, CompiledRules>>,
}

impl RuleCache {
    fn get(&self, rules: &Value, schema: &Value, root: bool) -> CompiledRules {
        let key = rules as *const Value as usize;
        let mut map = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| Arc::new(compile_all(rules, schema, root)))
            .clone()
    }
}

/// Compiles every rule of one `x-kubernetes-validations` array.
pub(crate) fn compile_all(
    rules: &Value,
    schema: &Value,
    root: bool,
) -> Vec<Result<Compiled, String>> {
    rules
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let rule = Rule::from_value(r)?;
            if root {
                reddwarf_cel::compile_for_resource_root(&rule, schema)
            } else {
                reddwarf_cel::compile(&rule, schema)
            }
        })
        .collect()
}

/// One request's evaluation of the rules.
pub(crate) struct CelHook<'a> {
    pub cache: &'a RuleCache,
    pub budget: Budget,
    /// Set once the budget ran out: no further rule runs.
    pub exhausted: bool,
}

fn join(path: &str, rel: Option<&str>) -> String {
    match rel {
        None | Some("") => path.to_string(),
        Some(r) if path.is_empty() => r.trim_start_matches('.').to_string(),
        Some(r) if r.starts_with('[') => format!("{path}{r}"),
        Some(r) => format!("{path}.{}", r.trim_start_matches('.')),
    }
}

/// The value upstream's `field.Invalid` shows for a failed rule: the node's schema type.
fn type_name(schema: &Value) -> String {
    let t = schema["type"].as_str().unwrap_or("");
    let t = if t.is_empty() && schema["x-kubernetes-int-or-string"] == true {
        "integer-or-string"
    } else {
        t
    };
    format!("{t:?}")
}

impl RuleHook for CelHook<'_> {
    fn check(
        &mut self,
        path: &str,
        rules: &Value,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        causes: &mut Vec<Cause>,
    ) {
        if self.exhausted {
            return;
        }
        let compiled = self.cache.get(rules, schema, path.is_empty());
        let subject = reddwarf_cel::Subject::new(schema, value, old, path.is_empty());
        let shown = type_name(schema);
        let field = if path.is_empty() { "<nil>" } else { path };
        for c in compiled.iter() {
            let c = match c {
                Ok(c) => c,
                Err(e) => {
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: field.to_string(),
                        message: format!("Invalid value: {shown}: {e}"),
                    });
                    continue;
                }
            };
            // A transition rule has nothing to compare on create, unless it says oldSelf is
            // optional.
            if c.is_transition() && old.is_none() && !c.rule().optional_old_self {
                continue;
            }
            match reddwarf_cel::evaluate_subject(c, &subject, &mut self.budget) {
                Outcome::Pass => {}
                Outcome::Fail {
                    message,
                    field_path,
                    reason,
                } => {
                    let at = join(path, field_path.as_deref());
                    let at = if at.is_empty() {
                        "<nil>".to_string()
                    } else {
                        at
                    };
                    let (reason, message) = match reason.as_deref() {
                        Some("FieldValueForbidden") => {
                            ("FieldValueForbidden", format!("Forbidden: {message}"))
                        }
                        Some("FieldValueRequired") => {
                            ("FieldValueRequired", format!("Required value: {message}"))
                        }
                        Some("FieldValueDuplicate") => {
                            ("FieldValueDuplicate", format!("Duplicate value: {message}"))
                        }
                        _ => (
                            "FieldValueInvalid",
                            format!("Invalid value: {shown}: {message}"),
                        ),
                    };
                    causes.push(Cause {
                        reason,
                        field: at,
                        message,
                    });
                }
                Outcome::Exhausted {
                    message,
                    field_path,
                } => {
                    let at = join(path, field_path.as_deref());
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        field: if at.is_empty() { "<nil>".into() } else { at },
                        message: format!("Invalid value: {shown}: {message}"),
                    });
                    self.exhausted = true;
                    return;
                }
                Outcome::Error(e) => causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: field.to_string(),
                    message: format!("Invalid value: {shown}: {e}"),
                }),
            }
        }
    }
}

/// Compile errors of every rule in a version's schema, as the definition's validation
/// reports them (`<path>.x-kubernetes-validations[i].rule: Invalid value: ...`), and rules
/// whose estimated cost is over the per-call limit.
pub(crate) fn check_definition_rules(
    schema: &Value,
    path: &str,
    out: &mut Vec<(String, String, String)>,
) {
    walk(schema, path, true, out);
}

fn walk(schema: &Value, path: &str, root: bool, out: &mut Vec<(String, String, String)>) {
    let Some(m) = schema.as_object() else {
        return;
    };
    if let Some(rules) = m.get("x-kubernetes-validations").and_then(Value::as_array) {
        for (i, (r, c)) in rules
            .iter()
            .zip(compile_all(&Value::Array(rules.clone()), schema, root))
            .enumerate()
        {
            let rule_text = r["rule"].as_str().unwrap_or("");
            let at = format!("{path}.x-kubernetes-validations[{i}].rule");
            match c {
                Err(e) => out.push((at, format!("{rule_text:?}"), e)),
                Ok(c) => {
                    if let Some(e) = c.cost_exceeds_limit() {
                        out.push((at, String::new(), e));
                    }
                }
            }
        }
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(v, &format!("{path}.properties[{k}]"), false, out);
        }
    }
    if let Some(items) = m.get("items") {
        walk(items, &format!("{path}.items"), false, out);
    }
    if let Some(ap) = m.get("additionalProperties") {
        walk(ap, &format!("{path}.additionalProperties"), false, out);
    }
}
