//! Label selectors and label sets rendered as upstream's `labels.Selector.String()` does
//! (apimachinery `metav1.LabelSelectorAsSelector`, `labels.FormatLabels`).

use serde_json::Value;

/// One requirement of a selector, rendered.
fn requirement(key: &str, op: &str, values: &[&str]) -> Option<String> {
    let mut vals: Vec<&str> = values.to_vec();
    vals.sort_unstable();
    Some(match op {
        "In" => format!("{key} in ({})", vals.join(",")),
        "NotIn" => format!("{key} notin ({})", vals.join(",")),
        "Exists" => key.to_string(),
        "DoesNotExist" => format!("!{key}"),
        _ => return None,
    })
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key, `k=v`,
/// `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; empty for an absent or empty selector, `None`
/// for an operator upstream refuses.
pub fn label_selector_parts(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            reqs.push((key.to_string(), requirement(key, op, &values)?));
        }
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The string form of a `LabelSelector` (as `Scale.status.selector` carries it).
pub fn label_selector_string(sel: &Value) -> String {
    label_selector_parts(sel).unwrap_or_default()
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match sel {
        None | Some(Value::Null) => "<none>".into(),
        Some(s) => match label_selector_parts(s) {
            None => "<error>".into(),
            Some(s) if s.is_empty() => "<none>".into(),
            Some(s) => s,
        },
    }
}

/// `labels.SelectorFromSet(m).String()` / `labels.Set.String()`: sorted `k=v` joined by `,`.
pub fn label_set_string(set: &Value) -> String {
    let mut v: Vec<String> = set
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.join(",")
}

/// `labels.FormatLabels`: `<none>` when empty.
pub(crate) fn format_labels(set: Option<&Value>) -> String {
    let s = set.map(label_set_string).unwrap_or_default();
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_render_like_upstream() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                 {"key": "c", "operator": "DoesNotExist"}]});
        assert_eq!(label_selector_string(&sel), "a=1,b=2,!c,env in (dev,prod)");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "k", "operator": "Bad"}]})
            )),
            "<error>"
        );
        assert_eq!(
            label_set_string(&json!({"z": "1", "app": "web"})),
            "app=web,z=1"
        );
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
    }
}
