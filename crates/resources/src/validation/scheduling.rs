//! scheduling.k8s.io/v1 (`ValidatePriorityClass`).

use serde_json::Value;

use super::{int, FieldError};

/// Upstream's built-in classes: (name, value). `system-` names are theirs alone.
const SYSTEM_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The highest value a class not named `system-…` may have.
const HIGHEST_USER_DEFINABLE: i64 = 1_000_000_000;

pub(super) fn validate_priority_class(pc: &Value, errs: &mut Vec<FieldError>) {
    let name = pc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = int(pc.get("value")).unwrap_or(0);
    let global = pc
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match SYSTEM_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            Some(_) if global => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(p) = problem {
            errs.push(FieldError::forbidden(
                "metadata.name",
                &format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE {
        errs.push(FieldError::forbidden(
            "value",
            &format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(pc: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_priority_class(&pc, &mut errs);
        errs.into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn system_names_and_high_values_are_reserved() {
        assert!(errors(
            json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000})
        )
        .is_empty());
        assert!(errors(json!({"metadata": {"name": "high"}, "value": 1000})).is_empty());
        let e = errors(json!({"metadata": {"name": "system-mine"}, "value": 1}));
        assert_eq!(e, ["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"]);
        let e = errors(json!({"metadata": {"name": "big"}, "value": 1_000_000_001}));
        assert_eq!(
            e,
            ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
        );
    }
}
