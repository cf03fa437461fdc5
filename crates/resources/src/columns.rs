use serde_json::{json, Value};

use crate::duration::human_duration;
use crate::jsonpath::{i, s};

/// A server-side table column (`meta.k8s.io/v1` TableColumnDefinition).
#[derive(Clone, Debug)]
pub struct Column {
    /// The header kubectl prints (`NAME`, `READY`, ...).
    pub name: &'static str,
    /// The OpenAPI type of the cells (`string`, `integer`, `date`, ...).
    pub type_: &'static str,
    /// The OpenAPI format of the cells (`name` for the name column; usually empty).
    pub format: &'static str,
    /// 0: shown by default; higher: only with `-o wide`.
    pub priority: i32,
    /// Upstream's description of the column.
    pub description: &'static str,
}

impl Column {
    /// A column with an empty `format`.
    pub const fn new(
        name: &'static str,
        type_: &'static str,
        priority: i32,
        description: &'static str,
    ) -> Column {
        Column {
            name,
            type_,
            format: "",
            priority,
            description,
        }
    }

    /// The column as a TableColumnDefinition in a Table response.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The cells of one row.
pub type TableRow = Vec<Value>;

pub(crate) fn name_col() -> Column {
    Column {
        name: "Name",
        type_: "string",
        format: "name",
        priority: 0,
        description: "Name must be unique within a namespace.",
    }
}

pub(crate) fn age_col() -> Column {
    Column::new(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp ("2024-01-02T03:04:05Z").
pub fn parse_rfc3339(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { ts.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se)
}

/// The AGE cell: time since creation, as kubectl renders it; "<unknown>" without a timestamp.
pub(crate) fn age(obj: &Value, now: i64) -> Value {
    match parse_rfc3339(s(obj, "/metadata/creationTimestamp")) {
        Some(t) => Value::String(human_duration(now - t)),
        None => Value::String("<unknown>".into()),
    }
}

pub(crate) fn since(ts: &str, now: i64) -> Value {
    match parse_rfc3339(ts) {
        Some(t) => Value::String(human_duration(now - t)),
        None => Value::String("<unknown>".into()),
    }
}

pub(crate) fn name(obj: &Value) -> Value {
    Value::String(s(obj, "/metadata/name").to_string())
}

/// ObjectMeta's description of `creationTimestamp`, which date columns of it carry.
pub(crate) const CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// Upstream's default table convertor (`apiserver/pkg/registry/rest/table.go`) for kinds
/// without a printer: NAME and CREATED AT (RFC 3339, UTC).
pub(crate) fn default_columns() -> Vec<Column> {
    vec![
        name_col(),
        Column {
            name: "Created At",
            type_: "date",
            format: "",
            priority: 0,
            description: CREATION_TIMESTAMP,
        },
    ]
}

pub(crate) fn default_row(obj: &Value, _now: i64) -> TableRow {
    let created = match s(obj, "/metadata/creationTimestamp") {
        "" => "0001-01-01T00:00:00Z",
        t => t,
    };
    vec![name(obj), json!(created)]
}

/// A column of priority 0 (`wide` = priority 1).
pub(crate) fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column::new(name, type_, 0, description)
}

pub(crate) fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column::new(name, type_, 1, description)
}

/// The Containers/Images/... columns every workload printer ends with.
pub(crate) fn container_cols() -> [Column; 2] {
    [
        wide(
            "Containers",
            "string",
            "Names of each container in the template.",
        ),
        wide(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        ),
    ]
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(obj: &Value, pointer: &str) -> (Value, Value) {
    let cs = obj
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// A string at `pointer`, or `default` when absent or empty.
pub(crate) fn str_or(obj: &Value, pointer: &str, default: &str) -> Value {
    match s(obj, pointer) {
        "" => json!(default),
        v => json!(v),
    }
}

/// A scalar rendered as Go's `%v`/`String()` would (quantities, int-or-strings).
pub(crate) fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `printBoolPtr`: True/False, `<unset>` when absent.
pub(crate) fn bool_ptr(obj: &Value, pointer: &str) -> Value {
    match obj.pointer(pointer).and_then(Value::as_bool) {
        Some(true) => json!("True"),
        Some(false) => json!("False"),
        None => json!("<unset>"),
    }
}

/// A boolean at `pointer`, or `default`.
pub(crate) fn bool_or(obj: &Value, pointer: &str, default: bool) -> Value {
    json!(obj
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(default))
}

/// The length of the array at `pointer` (0 when absent).
pub(crate) fn len_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.len() as i64)
        .unwrap_or(0)
}

pub(crate) fn count_map(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| m.len() as i64)
        .unwrap_or(0)
}

pub(crate) fn int(obj: &Value, pointer: &str) -> Value {
    json!(i(obj, pointer))
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn parses_utc_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-01T12:00:00Z"), Some(1_709_294_400));
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
