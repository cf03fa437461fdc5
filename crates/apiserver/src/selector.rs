//! Label and field selectors, parsed as upstream parses them (`k8s.io/apimachinery/pkg/labels`
//! and `pkg/fields`).

use reddwarf_resources::SelectableField;
use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

/// Upstream's `IsValidLabelValue`: empty, or at most 63 alphanumerics, `-`, `_` and `.`,
/// starting and ending alphanumeric.
fn valid_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    if !rest.starts_with('(') || !rest.ends_with(')') {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: found '{rest}', expected: '('  in selector {whole:?}"
        )));
    }
    Ok(rest[1..rest.len() - 1]
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let bad = |why: &str| {
                ApiError::bad_request(format!(
                    "unable to parse requirement: {why} in label selector {s:?}"
                ))
            };
            let req = if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Req::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some(idx) = part.find(" notin ") {
                Req::NotIn(part[..idx].trim().into(), parse_set(&part[idx + 7..], s)?)
            } else if let Some(idx) = part.find(" in ") {
                Req::In(part[..idx].trim().into(), parse_set(&part[idx + 4..], s)?)
            } else if part.contains(' ') || part.contains('(') {
                return Err(bad(&format!(
                    "found '{part}', expected: in, notin, =, ==, !=, gt, lt"
                )));
            } else {
                Req::Exists(part.clone())
            };
            let key = match &req {
                Req::Eq(k, _)
                | Req::NotEq(k, _)
                | Req::In(k, _)
                | Req::NotIn(k, _)
                | Req::Exists(k)
                | Req::NotExists(k) => k,
            };
            if !valid_key(key) {
                return Err(bad(&format!("invalid label key \"{key}\"")));
            }
            let values: &[String] = match &req {
                Req::Eq(_, v) | Req::NotEq(_, v) => std::slice::from_ref(v),
                Req::In(_, vs) | Req::NotIn(_, vs) => vs,
                Req::Exists(_) | Req::NotExists(_) => &[],
            };
            for (i, v) in values.iter().enumerate() {
                if !valid_value(v) {
                    return Err(bad(&format!(
                        "values[{i}][{key}]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                    )));
                }
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches against an object's `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).map(|x| vs.iter().any(|v| v == x)).unwrap_or(false),
            Req::NotIn(k, vs) => get(k).map(|x| !vs.iter().any(|v| v == x)).unwrap_or(true),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector over a kind's selectable fields.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(SelectableField, bool, String)>);

impl FieldSelector {
    /// `fields` lists the kind's selectable fields beyond metadata.name/namespace.
    pub fn parse(s: &str, fields: &[SelectableField]) -> Result<FieldSelector, ApiError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            let field = match k {
                "metadata.name" => reddwarf_resources::field("metadata.name", "metadata.name"),
                "metadata.namespace" => {
                    reddwarf_resources::field("metadata.namespace", "metadata.namespace")
                }
                _ => match fields.iter().find(|f| f.name == k) {
                    Some(f) => *f,
                    // Kinds with their own field label conversion word it one way,
                    // the rest fall to DefaultMetaV1FieldSelectorConversion.
                    None if fields.is_empty() => {
                        return Err(ApiError::bad_request(format!(
                            "{k:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                        )))
                    }
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {k}"
                        )))
                    }
                },
            };
            out.push((field, eq, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let got = field.value(obj);
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_operators() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=be", false),
            ("missing notin (x)", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        // Values are label values, as upstream checks them (400, not an empty answer).
        for bad in [
            "app=a b",
            "app!=-x",
            "app in (ok,no way)",
            &format!("app={}", "v".repeat(64)),
        ] {
            let e = LabelSelector::parse(bad).unwrap_err();
            assert_eq!(e.code, 400, "{bad}");
        }
        assert!(LabelSelector::parse("app=,tier in (a.b_c-d)").is_ok());
    }

    #[test]
    fn field_selector_known_fields_only() {
        let o =
            json!({"metadata": {"name": "p", "namespace": "d"}, "status": {"phase": "Running"}});
        let fields = [reddwarf_resources::field("status.phase", "status.phase")];
        assert!(
            FieldSelector::parse("metadata.name=p,status.phase=Running", &fields)
                .unwrap()
                .matches(&o)
        );
        assert!(!FieldSelector::parse("status.phase!=Running", &fields)
            .unwrap()
            .matches(&o));
        let e = FieldSelector::parse("spec.foo=1", &fields).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("field label not supported: spec.foo"));
        let e = FieldSelector::parse("data.a=b", &[]).unwrap_err();
        assert_eq!(
            e.message,
            r#""data.a" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
    }

    #[test]
    fn absent_fields_compare_as_go_zero_values() {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        let fields = [reddwarf_resources::bool_field(
            "spec.unschedulable",
            "spec.unschedulable",
        )];
        let sel = |s: &str| FieldSelector::parse(s, &fields).unwrap();
        assert!(sel("spec.unschedulable=false").matches(&node));
        assert!(!sel("spec.unschedulable=true").matches(&node));
        assert!(!sel("spec.unschedulable!=false").matches(&node));
        let job = json!({"metadata": {"name": "j"}});
        let fields = [reddwarf_resources::int_field(
            "status.successful",
            "status.succeeded",
        )];
        assert!(FieldSelector::parse("status.successful=0", &fields)
            .unwrap()
            .matches(&job));
    }
}
