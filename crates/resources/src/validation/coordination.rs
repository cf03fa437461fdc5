//! `coordination.k8s.io/v1` (`pkg/apis/coordination/validation`): Leases.

use serde_json::Value;

use super::field::q;
use super::names::qualified_name;
use super::{int, str_at, FieldError};

/// `ValidateLeaseSpec`.
pub fn validate_lease(lease: &Value, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = lease.get("spec").unwrap_or(&null);
    if let Some(d) = int(spec.get("leaseDurationSeconds")).filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            &d.to_string(),
            "must be greater than 0",
        ));
    }
    if let Some(t) = int(spec.get("leaseTransitions")).filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            &t.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let strategy = str_at(spec, "strategy");
    if let Some(s) = strategy {
        // Upstream appends "strategy" twice to the path.
        let path = "spec.strategy.strategy";
        if !s.contains('/') {
            if s != "OldestEmulationVersion" {
                errs.push(FieldError::not_supported(
                    path,
                    &q(s),
                    &["OldestEmulationVersion"],
                ));
            }
        } else {
            for m in qualified_name(s) {
                errs.push(FieldError::invalid(path, &q(s), &m));
            }
        }
    }
    if !str_at(spec, "preferredHolder").unwrap_or("").is_empty()
        && strategy.unwrap_or("").is_empty()
    {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leases() {
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (
                json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}}),
                vec![],
            ),
            (
                json!({"spec": {"leaseDurationSeconds": 0}}),
                vec![(
                    "spec.leaseDurationSeconds",
                    "Invalid value: 0: must be greater than 0",
                )],
            ),
            (
                json!({"spec": {"leaseTransitions": -1}}),
                vec![(
                    "spec.leaseTransitions",
                    "Invalid value: -1: must be greater than or equal to 0",
                )],
            ),
            (
                json!({"spec": {"preferredHolder": "x"}}),
                vec![(
                    "spec.preferredHolder",
                    "Forbidden: may only be specified if `strategy` is defined",
                )],
            ),
            (
                json!({"spec": {"strategy": "Newest"}}),
                vec![(
                    "spec.strategy.strategy",
                    "Unsupported value: \"Newest\": supported values: \"OldestEmulationVersion\"",
                )],
            ),
        ];
        for (lease, want) in cases {
            let mut errs = Vec::new();
            validate_lease(&lease, &mut errs);
            let got: Vec<(&str, &str)> = errs
                .iter()
                .map(|e| (e.field.as_str(), e.message.as_str()))
                .collect();
            assert_eq!(got, want, "{lease}");
        }
    }
}
