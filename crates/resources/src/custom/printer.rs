//! `additionalPrinterColumns`: the JSONPath subset definitions may use (fields, indexes,
//! `[*]` and `[?(@.field == "value")]` filters) and how upstream renders each cell.

use serde_json::Value;

use crate::columns::{name, name_col, Column};

/// One step of a printer column's path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.a.b == value)]` (or `!=`): keep the elements whose field compares so.
    Filter {
        path: Vec<String>,
        equal: bool,
        value: Value,
    },
}

/// A parsed printer-column path (`.status.conditions[?(@.type=="Ready")].status`).
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterPath(Vec<Step>);

impl PrinterPath {
    /// Parses a definition's `jsonPath`; the error says what is wrong with it.
    pub fn parse(src: &str) -> Result<PrinterPath, String> {
        let mut steps = Vec::new();
        let s = src.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(s);
        let b = s.as_bytes();
        let mut i = 0;
        if b.first() == Some(&b'$') {
            i = 1;
        }
        while i < b.len() {
            match b[i] {
                b'.' => {
                    i += 1;
                    let start = i;
                    while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                        i += 1;
                    }
                    if start == i {
                        return Err(format!("unexpected end of field name in {src:?}"));
                    }
                    steps.push(Step::Field(s[start..i].to_string()));
                }
                b'[' => {
                    let end = find_close(s, i).ok_or_else(|| format!("unclosed [ in {src:?}"))?;
                    let inner = s[i + 1..end].trim();
                    steps.push(bracket(inner).map_err(|e| format!("{e} in {src:?}"))?);
                    i = end + 1;
                }
                _ => return Err(format!("unrecognized character in {src:?} at {i}")),
            }
        }
        Ok(PrinterPath(steps))
    }

    /// Every value the path reaches in `obj`, in document order.
    pub fn find<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![obj];
        for step in &self.0 {
            let mut next = Vec::new();
            for v in cur {
                match step {
                    Step::Field(f) => next.extend(v.get(f.as_str())),
                    Step::Index(n) => {
                        if let Some(a) = v.as_array() {
                            let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                            if idx >= 0 {
                                next.extend(a.get(idx as usize));
                            }
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter { path, equal, value } => {
                        if let Some(a) = v.as_array() {
                            next.extend(a.iter().filter(|e| {
                                let mut x = Some(*e);
                                for p in path {
                                    x = x.and_then(|x| x.get(p.as_str()));
                                }
                                let same = x.is_some_and(|x| loosely_equal(x, value));
                                same == *equal
                            }));
                        }
                    }
                }
            }
            cur = next;
        }
        cur
    }
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The index of the `]` closing the `[` at `open`, skipping quoted text.
fn find_close(s: &str, open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s[open + 1..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(open + 1 + i),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
}

fn bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Some(f) = unquote(inner) {
        return Ok(Step::Field(f.to_string()));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Ok(Step::Index(n));
    }
    let Some(expr) = inner
        .strip_prefix("?(")
        .and_then(|x| x.strip_suffix(')'))
        .map(str::trim)
    else {
        return Err(format!("unsupported subscript [{inner}]"));
    };
    let (lhs, rhs, equal) = if let Some((l, r)) = expr.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = expr.split_once("!=") {
        (l, r, false)
    } else {
        return Err(format!("unsupported filter {expr}"));
    };
    let lhs = lhs.trim();
    let path: Vec<String> = lhs
        .strip_prefix("@.")
        .ok_or_else(|| format!("a filter compares a field of @, not {lhs}"))?
        .split('.')
        .map(String::from)
        .collect();
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => Value::String(s.to_string()),
        None => serde_json::from_str(rhs).map_err(|_| format!("unsupported value {rhs}"))?,
    };
    Ok(Step::Filter { path, equal, value })
}

/// One parsed `additionalPrinterColumns` entry.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    /// The column as tables define it.
    pub column: Column,
    /// Where its cells come from.
    pub path: PrinterPath,
}

impl PrinterColumn {
    /// The columns of a version: its `additionalPrinterColumns`, or upstream's single Age
    /// column when it has none. Columns whose path does not parse are left out (the
    /// definition's validation refuses them).
    pub fn of_version(version: &Value) -> Vec<PrinterColumn> {
        let Some(cols) = version["additionalPrinterColumns"].as_array() else {
            return vec![PrinterColumn {
                column: Column {
                    name: "Age",
                    type_: "date",
                    format: "",
                    priority: 0,
                    description: crate::columns::CREATION_TIMESTAMP,
                },
                path: PrinterPath(vec![
                    Step::Field("metadata".into()),
                    Step::Field("creationTimestamp".into()),
                ]),
            }];
        };
        cols.iter()
            .filter_map(|c| {
                let path = PrinterPath::parse(c["jsonPath"].as_str()?).ok()?;
                let text = |k: &str| super::intern(c[k].as_str().unwrap_or(""));
                Some(PrinterColumn {
                    column: Column {
                        name: text("name"),
                        type_: text("type"),
                        format: text("format"),
                        priority: c["priority"].as_i64().unwrap_or(0) as i32,
                        description: text("description"),
                    },
                    path,
                })
            })
            .collect()
    }

    /// The cell of one object, as upstream's table convertor renders it: the first value the
    /// path reaches, as text for `string` columns and as the typed value otherwise (null when
    /// absent or of another type).
    pub fn cell(&self, obj: &Value, now: i64) -> Value {
        let Some(v) = self.path.find(obj).into_iter().next() else {
            return Value::Null;
        };
        match self.column.type_ {
            "string" => Value::String(go_text(v)),
            "integer" => match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
                _ => Value::Null,
            },
            "number" => match v {
                Value::Number(_) => v.clone(),
                _ => Value::Null,
            },
            "boolean" => match v {
                Value::Bool(_) => v.clone(),
                _ => Value::Null,
            },
            // Dates are shown as their age, as upstream's table convertor renders them.
            "date" => match v {
                Value::String(s) => match crate::columns::parse_rfc3339(s) {
                    Some(t) => Value::String(crate::human_duration(now - t)),
                    None => Value::String("<invalid>".into()),
                },
                _ => Value::Null,
            },
            _ => Value::Null,
        }
    }
}

/// A value printed the way upstream's JSONPath printer (Go's `fmt.Print`) prints it.
fn go_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_text(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// The table columns of a custom resource: Name, then its printer columns.
pub(crate) fn columns(cols: &[PrinterColumn]) -> Vec<Column> {
    let mut out = vec![name_col()];
    out.extend(cols.iter().map(|c| c.column.clone()));
    out
}

/// The cells of one custom object, matching [`columns`].
pub(crate) fn row(cols: &[PrinterColumn], obj: &Value, now: i64) -> Vec<Value> {
    let mut out = vec![name(obj)];
    out.extend(cols.iter().map(|c| c.cell(obj, now)));
    out
}
