//! The function environment rules are evaluated in: cel's standard functions,
//! kube-cel's Kubernetes libraries, the charging function, and guarded
//! versions of the functions whose work is not bounded by the size of their
//! inputs and output.

use crate::convert::optional;
use crate::cost;
use kube_cel::cel::common::ast::{CallExpr, Expr, IdedExpr};
use kube_cel::cel::objects::{Key, OptionalValue, Value};
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult};
use kube_cel::KubeCelExt;
use regex::Regex;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

/// Functions (and methods) a rule may call: what kube-apiserver 1.33 offers
/// CRD rules and the interpreter implements. Anything else is an undeclared
/// reference at compile time, as upstream reports it.
pub const FUNCTIONS: &[&str] = &[
    // standard
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "bytes",
    "double",
    "int",
    "uint",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    // optional types
    "optional.none",
    "optional.of",
    "optional.ofNonZeroValue",
    "value",
    "hasValue",
    "or",
    "orValue",
    // Kubernetes lists
    "isSorted",
    "sum",
    "min",
    "max",
    "indexOf",
    "lastIndexOf",
    // strings extension (v2) and format
    "charAt",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "strings.quote",
    "reverse",
    "format",
    // sets
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    // regex
    "find",
    "findAll",
    // URLs
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    // IP and CIDR
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isLoopback",
    "isUnspecified",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "prefixLength",
    "masked",
    // quantity
    "quantity",
    "isQuantity",
    "isInteger",
    "asInteger",
    "asApproximateFloat",
    "sign",
    "add",
    "sub",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    // semver
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    // named formats
    "format.dns1123Label",
    "format.dns1123Subdomain",
    "format.dns1035Label",
    "format.dns1035LabelPrefix",
    "format.dns1123LabelPrefix",
    "format.dns1123SubdomainPrefix",
    "format.qualifiedName",
    "format.labelValue",
    "format.uri",
    "format.uuid",
    "format.byte",
    "format.date",
    "format.datetime",
    "format.named",
    "validate",
];

/// Compiled patterns kept per thread, so a constant pattern in a loop is
/// compiled once (upstream compiles constant patterns at rule compile time).
const REGEX_CACHE: usize = 32;
/// Bound on a compiled pattern, so compiling a pattern from data is bounded.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest `format` precision accepted: the output of `%.Nf` grows with N.
const MAX_PRECISION: usize = 1000;

struct Envs {
    /// The environment rules run in.
    guarded: Context<'static>,
    /// kube-cel's own functions, which the guarded ones delegate to.
    original: Context<'static>,
}

fn envs() -> &'static Envs {
    static ENVS: OnceLock<Envs> = OnceLock::new();
    ENVS.get_or_init(|| {
        let mut guarded = Context::default().with_all();
        guarded.add_function(cost::CHARGE, cost::charge_fn);
        guarded.add_function("replace", replace);
        guarded.add_function("format", format);
        // The interpreter passes a qualified function its bare name, so each
        // set function needs its own entry to delegate to the right one.
        guarded.add_function("sets.contains", |ftx: &FunctionContext| {
            sets("sets.contains", ftx)
        });
        guarded.add_function("sets.equivalent", |ftx: &FunctionContext| {
            sets("sets.equivalent", ftx)
        });
        guarded.add_function("sets.intersects", |ftx: &FunctionContext| {
            sets("sets.intersects", ftx)
        });
        guarded.add_function(OPT_SELECT, opt_select);
        guarded.add_function("matches", matches);
        guarded.add_function("find", find);
        guarded.add_function("findAll", find_all);
        Envs {
            guarded,
            original: Context::default().with_all(),
        }
    })
}

/// The root context rules are evaluated in (shared; each evaluation adds
/// `self`/`oldSelf` in a child scope).
pub fn root() -> &'static Context<'static> {
    &envs().guarded
}

/// Resolves the call's receiver and arguments.
fn resolve_call(ftx: &FunctionContext) -> Result<(Option<Value>, Vec<Value>), ExecutionError> {
    let args = ftx
        .args
        .iter()
        .map(|a| ftx.ptx.resolve(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ftx.this.clone(), args))
}

/// Calls kube-cel's own `name` with already evaluated receiver and arguments.
fn delegate(name: &str, this: Option<Value>, args: Vec<Value>) -> ResolveResult {
    let mut ctx = envs().original.new_inner_scope();
    let ident = |n: String| IdedExpr {
        id: 0,
        expr: Expr::Ident(n),
    };
    let target = this.map(|t| {
        ctx.add_variable_from_value("@t", t);
        Box::new(ident("@t".to_owned()))
    });
    let mut arg_exprs = Vec::with_capacity(args.len());
    for (i, a) in args.into_iter().enumerate() {
        let n = format!("@a{i}");
        ctx.add_variable_from_value(n.clone(), a);
        arg_exprs.push(ident(n));
    }
    let call = IdedExpr {
        id: 0,
        expr: Expr::Call(CallExpr {
            func_name: name.to_owned(),
            target,
            args: arg_exprs,
        }),
    };
    ctx.resolve(&call)
}

fn str_len(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::String(s)) => s.len() as u64,
        _ => 0,
    }
}

/// `replace` can grow a string by a factor of the replacement's length: charge
/// for the output before building it.
fn replace(ftx: &FunctionContext) -> ResolveResult {
    let (this, args) = resolve_call(ftx)?;
    if let (Some(Value::String(s)), Some(Value::String(from))) = (&this, args.first()) {
        let to = str_len(args.get(1));
        let count = if from.is_empty() {
            s.chars().count() as u64 + 1
        } else {
            s.matches(from.as_str()).count() as u64
        };
        let limit = match args.get(2) {
            Some(Value::Int(n)) if *n >= 0 => *n as u64,
            _ => u64::MAX,
        };
        let out = (s.len() as u64).saturating_add(count.min(limit).saturating_mul(to));
        cost::charge(1 + out / 10)?;
    }
    delegate(ftx.name, this, args)
}

/// `format`'s float precision sets the output length: refuse absurd ones.
fn format(ftx: &FunctionContext) -> ResolveResult {
    let (this, args) = resolve_call(ftx)?;
    if let Some(Value::String(f)) = &this {
        let mut rest = f.as_str();
        while let Some(i) = rest.find("%.") {
            rest = &rest[i + 2..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if digits.len() > 4 || digits.parse::<usize>().unwrap_or(0) > MAX_PRECISION {
                return Err(ftx.error(format!("precision exceeds the maximum of {MAX_PRECISION}")));
            }
        }
        cost::charge(1 + f.len() as u64 / 10)?;
    }
    delegate(ftx.name, this, args)
}

/// The set functions compare every element of one list with every element of
/// the other: charge for that before doing it.
fn sets(name: &str, ftx: &FunctionContext) -> ResolveResult {
    let (this, args) = resolve_call(ftx)?;
    let len = |v: Option<&Value>| match v {
        Some(Value::List(l)) => l.len() as u64,
        _ => 0,
    };
    let (a, b) = match &this {
        Some(t) => (len(Some(t)), len(args.first())),
        None => (len(args.first()), len(args.get(1))),
    };
    cost::charge(1 + a.saturating_mul(b) / 10)?;
    delegate(name, this, args)
}

/// Stands in for `_?._` (`self.?field`): the interpreter fails on an absent
/// field of a plain map where CEL yields `optional.none()`.
pub const OPT_SELECT: &str = "@rd.optselect";

fn opt_select(operand: Value, field: Arc<String>) -> ResolveResult {
    let of = |v: &Value| match v {
        Value::Map(m) => optional(m.map.get(&Key::String(field.clone())).cloned()),
        _ => optional(None),
    };
    match &operand {
        Value::Opaque(o) => match o.downcast_ref::<OptionalValue>() {
            Some(opt) => Ok(opt.value().map_or_else(|| optional(None), of)),
            None => Err(ExecutionError::NoSuchOverload),
        },
        Value::Map(_) => Ok(of(&operand)),
        _ => Err(ExecutionError::NoSuchOverload),
    }
}

thread_local! {
    static PATTERNS: RefCell<VecDeque<(Arc<String>, Regex)>> = const { RefCell::new(VecDeque::new()) };
}

fn compiled(pattern: &Arc<String>) -> Result<Regex, String> {
    if let Some(re) = PATTERNS.with(|p| {
        p.borrow()
            .iter()
            .find(|(k, _)| k.as_str() == pattern.as_str())
            .map(|(_, re)| re.clone())
    }) {
        return Ok(re);
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())?;
    PATTERNS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() >= REGEX_CACHE {
            p.pop_front();
        }
        p.push_back((pattern.clone(), re.clone()));
    });
    Ok(re)
}

fn regex_args(ftx: &FunctionContext) -> Result<(Arc<String>, Regex, Vec<Value>), ExecutionError> {
    let (this, mut args) = resolve_call(ftx)?;
    // `matches` may also be called as a global: matches(s, re).
    let subject = match this {
        Some(t) => t,
        None if !args.is_empty() => args.remove(0),
        None => return Err(ExecutionError::missing_argument_or_target()),
    };
    let (Value::String(s), Some(Value::String(pattern))) = (subject, args.first().cloned()) else {
        return Err(ExecutionError::NoSuchOverload);
    };
    // Matching is linear in the subject; compiling is charged by pattern size.
    cost::charge(1 + (s.len() + pattern.len()) as u64 / 10)?;
    let re = compiled(&pattern).map_err(|e| ftx.error(format!("invalid regex: {e}")))?;
    Ok((s, re, args))
}

fn matches(ftx: &FunctionContext) -> ResolveResult {
    let (s, re, _) = regex_args(ftx)?;
    Ok(Value::Bool(re.is_match(&s)))
}

fn find(ftx: &FunctionContext) -> ResolveResult {
    let (s, re, _) = regex_args(ftx)?;
    let found = re
        .find(&s)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    Ok(Value::String(Arc::new(found)))
}

fn find_all(ftx: &FunctionContext) -> ResolveResult {
    let (s, re, args) = regex_args(ftx)?;
    let limit = match args.get(1) {
        Some(Value::Int(n)) if *n >= 0 => *n as usize,
        _ => usize::MAX,
    };
    Ok(Value::List(Arc::new(
        re.find_iter(&s)
            .take(limit)
            .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
            .collect(),
    )))
}
