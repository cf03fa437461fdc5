//! The compiled form of one JSONSchemaProps node.

use regex::Regex;
use serde_json::{Map, Value};

/// `additionalProperties`: a boolean or a schema.
#[derive(Debug, Clone)]
pub(crate) enum Additional {
    Bool(bool),
    Schema(Box<Node>),
}

/// One schema node, with the fields validation, pruning and defaulting read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub raw: Value,
    /// `type`, empty when unset.
    pub ty: String,
    /// `format` after upstream's stripping of formats it does not support for the type.
    pub format: String,
    pub nullable: bool,
    pub default: Option<Value>,
    pub enum_: Option<Vec<Value>>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<f64>,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    /// The pattern as written and its compiled form (Err: the compile error text).
    pub pattern: Option<(String, Result<Regex, String>)>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub unique_items: bool,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub required: Vec<String>,
    /// Sorted by name: upstream iterates a Go map here, so any fixed order is as faithful;
    /// sorted is what a CRD read back from the server shows.
    pub properties: Vec<(String, Node)>,
    pub additional: Option<Additional>,
    pub items: Option<Box<Node>>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub validations: Option<Value>,
}

/// String formats apiextensions validates (1.33: the set introduced in 1.0; "quantity" is in
/// the list but has no validator in the registry, so it validates nothing), normalized by
/// dropping dashes as go-openapi does.
const SUPPORTED_STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "quantity",
];

fn int_of(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn str_of(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// Translates Go RE2 shorthands that differ from the `regex` crate's Unicode defaults
/// (`\d`, `\w`, `\s`, `\b` are ASCII in Go) so patterns match what upstream matches.
pub(crate) fn go_regex(p: &str) -> Result<Regex, String> {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rep = match (n, in_class) {
                    ('d', false) => Some("[0-9]"),
                    ('D', false) => Some("[^0-9]"),
                    ('w', false) => Some("[0-9A-Za-z_]"),
                    ('W', false) => Some("[^0-9A-Za-z_]"),
                    ('s', false) => Some("[\\t\\n\\f\\r ]"),
                    ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                    ('d', true) => Some("0-9"),
                    ('D', true) => Some("[^0-9]"),
                    ('w', true) => Some("0-9A-Za-z_"),
                    ('W', true) => Some("[^0-9A-Za-z_]"),
                    ('s', true) => Some("\\t\\n\\f\\r "),
                    ('S', true) => Some("[^\\t\\n\\f\\r ]"),
                    ('b', false) => Some("(?-u:\\b)"),
                    ('B', false) => Some("(?-u:\\B)"),
                    _ => None,
                };
                match rep {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A leading `]` or `^]` is literal in RE2 classes.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
            }
            '[' if in_class => {
                // `[` inside a class is literal in RE2 unless it opens `[:alpha:]`.
                if chars.peek() == Some(&':') {
                    out.push('[');
                } else {
                    out.push_str("\\[");
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    Regex::new(&out).map_err(|e| e.to_string())
}

impl Node {
    /// Parses a JSONSchemaProps value leniently: unknown or mistyped keywords are ignored
    /// (validate_crd_schema is what reports them).
    pub(crate) fn parse(v: &Value) -> Result<Node, String> {
        let m = match v {
            Value::Object(m) => m,
            Value::Null => return Ok(Node::default()),
            other => {
                return Err(format!(
                    "schema must be an object, not {}",
                    crate::gofmt::json(other)
                ))
            }
        };
        let mut n = Node {
            raw: v.clone(),
            ty: str_of(m.get("type")),
            nullable: m.get("nullable").and_then(Value::as_bool).unwrap_or(false),
            default: m.get("default").filter(|d| !d.is_null()).cloned(),
            enum_: m.get("enum").and_then(Value::as_array).cloned(),
            maximum: m.get("maximum").and_then(Value::as_f64),
            exclusive_maximum: m
                .get("exclusiveMaximum")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            minimum: m.get("minimum").and_then(Value::as_f64),
            exclusive_minimum: m
                .get("exclusiveMinimum")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            multiple_of: m.get("multipleOf").and_then(Value::as_f64),
            max_length: int_of(m.get("maxLength")),
            min_length: int_of(m.get("minLength")),
            max_items: int_of(m.get("maxItems")),
            min_items: int_of(m.get("minItems")),
            unique_items: m
                .get("uniqueItems")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_properties: int_of(m.get("maxProperties")),
            min_properties: int_of(m.get("minProperties")),
            preserve_unknown: flag(m, "x-kubernetes-preserve-unknown-fields"),
            embedded: flag(m, "x-kubernetes-embedded-resource"),
            int_or_string: flag(m, "x-kubernetes-int-or-string"),
            list_type: m
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            map_type: m
                .get("x-kubernetes-map-type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            validations: m
                .get("x-kubernetes-validations")
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                .cloned(),
            ..Node::default()
        };
        if let Some(p) = m.get("pattern").and_then(Value::as_str) {
            if !p.is_empty() {
                n.pattern = Some((p.to_owned(), go_regex(p)));
            }
        }
        n.required = strings(m.get("required"));
        n.list_map_keys = strings(m.get("x-kubernetes-list-map-keys"));
        n.format = supported_format(&n.ty, n.int_or_string, &str_of(m.get("format")));
        if let Some(Value::Object(props)) = m.get("properties") {
            let mut ps = Vec::with_capacity(props.len());
            for (k, p) in props {
                ps.push((k.clone(), Node::parse(p)?));
            }
            ps.sort_by(|a, b| a.0.cmp(&b.0));
            n.properties = ps;
        }
        n.additional = match m.get("additionalProperties") {
            Some(Value::Bool(b)) => Some(Additional::Bool(*b)),
            Some(s @ Value::Object(_)) => Some(Additional::Schema(Box::new(Node::parse(s)?))),
            _ => None,
        };
        if let Some(items @ Value::Object(_)) = m.get("items") {
            n.items = Some(Box::new(Node::parse(items)?));
        }
        n.all_of = list(m.get("allOf"))?;
        n.any_of = list(m.get("anyOf"))?;
        n.one_of = list(m.get("oneOf"))?;
        if let Some(not @ Value::Object(_)) = m.get("not") {
            n.not = Some(Box::new(Node::parse(not)?));
        }
        Ok(n)
    }

    /// The property named `k`.
    pub(crate) fn prop(&self, k: &str) -> Option<&Node> {
        self.properties
            .binary_search_by(|(n, _)| n.as_str().cmp(k))
            .ok()
            .map(|i| &self.properties[i].1)
    }

    /// The schema of `additionalProperties`, when it is one.
    pub(crate) fn additional_schema(&self) -> Option<&Node> {
        match &self.additional {
            Some(Additional::Schema(s)) => Some(s),
            _ => None,
        }
    }

    /// The schema a map key `k` is validated, pruned and defaulted with.
    pub(crate) fn field(&self, k: &str) -> Option<&Node> {
        self.prop(k).or_else(|| self.additional_schema())
    }

    /// The type list kube-openapi sees (int-or-string becomes two types).
    pub(crate) fn types(&self) -> Vec<&str> {
        if self.int_or_string {
            vec!["integer", "string"]
        } else if self.ty.is_empty() {
            vec![]
        } else {
            vec![self.ty.as_str()]
        }
    }
}

fn flag(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn list(v: Option<&Value>) -> Result<Vec<Node>, String> {
    match v.and_then(Value::as_array) {
        Some(a) => a.iter().map(Node::parse).collect(),
        None => Ok(vec![]),
    }
}

/// Upstream strips formats it does not support before validating (so they are ignored).
fn supported_format(ty: &str, int_or_string: bool, format: &str) -> String {
    if format.is_empty() {
        return String::new();
    }
    let ty = if int_or_string { "" } else { ty };
    let keep = match ty {
        "" | "string" => SUPPORTED_STRING_FORMATS.contains(&format.replace('-', "").as_str()),
        "integer" => format == "int32" || format == "int64",
        "number" => format == "float" || format == "double",
        _ => false,
    };
    if keep {
        format.to_owned()
    } else {
        String::new()
    }
}
