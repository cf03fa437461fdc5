//! Runtime cost accounting.
//!
//! The `cel` interpreter has no cost tracker or interrupt hook, so the compiled
//! rule is rewritten: every evaluated node `e` (except literals, variable and field
//! reads, and the comprehension accumulators) becomes `@rd.charge(e)`, a function that charges
//! the meter for the value `e` produced and fails once the limit is passed. A
//! failure aborts the evaluation, and once the meter is exhausted every further
//! charge fails at once, so nothing keeps running after the limit. Each loop
//! iteration evaluates its (wrapped) condition, so iterations are charged too.
//!
//! A node's charge is `1 + size / 10`, where size counts list elements, map
//! entries, string/bytes length and scalars, deeply. That is the work the
//! interpreter does with the value (it copies values between its two
//! representations at nearly every step), so the bound is on real work; in
//! cel-go's units a traversal also costs about 0.1 per element or byte. Work a
//! single function does beyond the size of its inputs and output (regex
//! compilation, quadratic set operations, string growth) is charged before it
//! runs, by the guarded functions in `env`.

use kube_cel::cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr};
use kube_cel::cel::objects::Value;
use kube_cel::cel::ExecutionError;
use std::cell::Cell;

/// Name of the charging function inserted around nodes; `@` cannot be written
/// in a rule, so a rule cannot call or shadow it.
pub const CHARGE: &str = "@rd.charge";

/// Namespaces of qualified functions (`sets.contains(…)`): a call's target
/// that is one of these identifiers must stay a bare identifier for the
/// interpreter to find the qualified function.
pub const NAMESPACES: &[&str] = &[
    "sets", "strings", "format", "optional", "ip", "cidr", "lists",
];

thread_local! {
    static METER: Meter = const { Meter { used: Cell::new(0), limit: Cell::new(0), exceeded: Cell::new(false) } };
}

struct Meter {
    used: Cell<u64>,
    limit: Cell<u64>,
    exceeded: Cell<bool>,
}

/// Message of the error a charge fails with once the limit is passed.
pub const EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// Runs `f` with a fresh meter of `limit` units on this thread; returns its
/// result, the units used, and whether the limit was passed.
pub fn metered<T>(limit: u64, f: impl FnOnce() -> T) -> (T, u64, bool) {
    METER.with(|m| {
        m.used.set(0);
        m.limit.set(limit);
        m.exceeded.set(false);
    });
    let out = f();
    let (used, exceeded) = METER.with(|m| (m.used.get(), m.exceeded.get()));
    // A stray charge outside `metered` must not run against an old limit.
    METER.with(|m| m.limit.set(0));
    (out, used, exceeded)
}

/// Charges `units`; fails (and stays failed) once the meter's limit is passed.
pub fn charge(units: u64) -> Result<(), ExecutionError> {
    METER.with(|m| {
        if m.exceeded.get() {
            return Err(exceeded());
        }
        let used = m.used.get().saturating_add(units);
        m.used.set(used);
        if used > m.limit.get() {
            m.exceeded.set(true);
            return Err(exceeded());
        }
        Ok(())
    })
}

/// Units still available on this thread's meter.
pub fn remaining() -> u64 {
    METER.with(|m| m.limit.get().saturating_sub(m.used.get()))
}

fn exceeded() -> ExecutionError {
    ExecutionError::function_error(CHARGE, EXCEEDED)
}

/// The charge for a value: `1 + size / 10`, computing size no further than
/// `cap` (what is left on the meter), so sizing a huge value is bounded too.
pub fn weight(v: &Value, cap: u64) -> u64 {
    let mut size = 0u64;
    let cap = cap.saturating_mul(10).saturating_add(10);
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        if size > cap {
            break;
        }
        size += 1;
        match v {
            Value::String(s) => size += s.len() as u64,
            Value::Bytes(b) => size += b.len() as u64,
            Value::List(l) => stack.extend(l.iter()),
            Value::Map(m) => {
                for (k, v) in m.map.iter() {
                    if let kube_cel::cel::objects::Key::String(s) = k {
                        size += s.len() as u64;
                    }
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    1 + size / 10
}

/// The charging function registered in the evaluation context.
pub fn charge_fn(v: Value) -> Result<Value, ExecutionError> {
    charge(weight(&v, remaining()))?;
    Ok(v)
}

/// Rewrites `e` so that evaluating it charges the meter (see the module docs).
pub fn instrument(e: &IdedExpr) -> IdedExpr {
    let expr = match &e.expr {
        // Constants: their cost is part of the node that uses them.
        Expr::Literal(_) | Expr::Unspecified => return e.clone(),
        // Accumulators: the node that builds the next accumulator is charged
        // for it; charging each read too would double count every iteration.
        // Reading a variable or a field does no work of its own. Charging it would cost
        // more than the read: the interpreter copies a value deeply into every function
        // call (the charge too), so a charged `self.spec` would copy the whole object at
        // each use. What can grow or repeat (calls, literals built, loop iterations) is
        // still charged by the size of what it produces.
        Expr::Ident(_) => return e.clone(),
        Expr::Select(s) => {
            let mut s = s.clone();
            s.operand = Box::new(instrument(&s.operand));
            return IdedExpr {
                id: e.id,
                expr: Expr::Select(s),
            };
        }
        Expr::Call(c) => Expr::Call(CallExpr {
            func_name: if c.func_name == "_?._" {
                crate::env::OPT_SELECT.to_owned()
            } else {
                c.func_name.clone()
            },
            target: c.target.as_ref().map(|t| match &t.expr {
                Expr::Ident(n) if NAMESPACES.contains(&n.as_str()) => t.clone(),
                _ => Box::new(instrument(t)),
            }),
            args: c
                .args
                .iter()
                .map(|a| {
                    // The field name of an optional select must stay a literal.
                    if c.func_name == "_?._" {
                        match a.expr {
                            Expr::Literal(_) => a.clone(),
                            _ => instrument(a),
                        }
                    } else {
                        instrument(a)
                    }
                })
                .collect(),
        }),
        Expr::List(l) => {
            let mut l = l.clone();
            l.elements = l.elements.iter().map(instrument).collect();
            Expr::List(l)
        }
        Expr::Map(m) => {
            let mut m = m.clone();
            for entry in &mut m.entries {
                if let EntryExpr::MapEntry(me) = &mut entry.expr {
                    me.key = instrument(&me.key);
                    me.value = instrument(&me.value);
                }
            }
            Expr::Map(m)
        }
        Expr::Struct(s) => Expr::Struct(s.clone()),
        Expr::Comprehension(c) => Expr::Comprehension(Box::new(ComprehensionExpr {
            iter_range: instrument(&c.iter_range),
            iter_var: c.iter_var.clone(),
            iter_var2: c.iter_var2.clone(),
            accu_var: c.accu_var.clone(),
            accu_init: instrument(&c.accu_init),
            // Evaluated once per iteration: the per-iteration charge.
            loop_cond: wrap(instrument(&c.loop_cond)),
            loop_step: instrument(&c.loop_step),
            result: instrument(&c.result),
        })),
    };
    wrap(IdedExpr { id: e.id, expr })
}

fn wrap(e: IdedExpr) -> IdedExpr {
    // A literal loop condition (`true` in map/filter) is not wrapped by
    // `instrument`; wrapping here makes every iteration cost at least 1.
    if let Expr::Call(c) = &e.expr {
        if c.func_name == CHARGE {
            return e;
        }
    }
    IdedExpr {
        id: e.id,
        expr: Expr::Call(CallExpr {
            func_name: CHARGE.to_owned(),
            target: None,
            args: vec![e],
        }),
    }
}
