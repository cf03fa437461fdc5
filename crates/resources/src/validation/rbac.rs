//! `rbac.authorization.k8s.io/v1` (`pkg/apis/rbac/validation`): Roles, ClusterRoles and
//! their bindings.

use serde_json::Value;

use super::field::{go_label_selector, q};
use super::names::{
    as_selector, dns1123_subdomain, path_segment_name, push_msgs, validate_label_selector,
};
use super::{arr, str_at, FieldError};

const GROUP: &str = "rbac.authorization.k8s.io";

/// `validatePolicyRule`.
fn validate_rules(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in arr(obj.get("rules")).iter().enumerate() {
        let p = format!("rules[{i}]");
        if arr(rule.get("verbs")).is_empty() {
            errs.push(FieldError::required(
                format!("{p}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr(rule.get("nonResourceURLs"));
        let groups = arr(rule.get("apiGroups"));
        let resources = arr(rule.get("resources"));
        let names = arr(rule.get("resourceNames"));
        if !urls.is_empty() {
            let shown = super::field::go_string_slice(rule.get("nonResourceURLs"));
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{p}.nonResourceURLs"),
                    &shown,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{p}.nonResourceURLs"),
                    &shown,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            errs.push(FieldError::required(
                format!("{p}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errs.push(FieldError::required(
                format!("{p}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
        if !names.is_empty() && resources.len() > 1 {
            errs.push(FieldError::required(
                format!("{p}.resourceNames"),
                "resource names cannot apply to multiple resources",
            ));
        }
    }
}

/// `ValidateRole`.
pub fn validate_role(role: &Value, errs: &mut Vec<FieldError>) {
    validate_rules(role, true, errs);
}

/// `ValidateClusterRole` (rules plus the aggregation rule's selectors).
pub fn validate_cluster_role(role: &Value, errs: &mut Vec<FieldError>) {
    validate_rules(role, false, errs);
    if let Some(agg) = role.get("aggregationRule").filter(|a| !a.is_null()) {
        let sels = arr(agg.get("clusterRoleSelectors"));
        if sels.is_empty() {
            errs.push(FieldError::required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, sel) in sels.iter().enumerate() {
            let p = format!("aggregationRule.clusterRoleSelectors[{i}]");
            validate_label_selector(Some(sel), &p, errs);
            if as_selector(Some(sel)).is_err() {
                errs.push(FieldError::invalid(
                    &p,
                    &go_label_selector(Some(sel)),
                    "invalid label selector.",
                ));
            }
        }
    }
}

/// The roleRef after defaulting (`apiGroup` defaults to the RBAC group).
fn role_ref(binding: &Value) -> (String, String, String) {
    let r = binding.get("roleRef");
    let get = |k: &str| r.and_then(|r| str_at(r, k)).unwrap_or("").to_string();
    let group = match get("apiGroup") {
        g if g.is_empty() => GROUP.to_string(),
        g => g,
    };
    (group, get("kind"), get("name"))
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding` and their updates.
pub fn validate_binding(
    binding: &Value,
    old: Option<&Value>,
    cluster: bool,
    errs: &mut Vec<FieldError>,
) {
    let (group, kind, name) = role_ref(binding);
    if group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &q(&group),
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&kind.as_str()) {
        errs.push(FieldError::not_supported("roleRef.kind", &q(&kind), kinds));
    }
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        push_msgs(errs, "roleRef.name", &name, path_segment_name(&name));
    }
    for (i, s) in arr(binding.get("subjects")).iter().enumerate() {
        let p = format!("subjects[{i}]");
        let sname = str_at(s, "name").unwrap_or("");
        let skind = str_at(s, "kind").unwrap_or("");
        let sgroup = str_at(s, "apiGroup").unwrap_or("");
        if sname.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        }
        match skind {
            "ServiceAccount" => {
                if !sname.is_empty() {
                    push_msgs(errs, &format!("{p}.name"), sname, dns1123_subdomain(sname));
                }
                if !sgroup.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        &q(sgroup),
                        &[""],
                    ));
                }
                if cluster && str_at(s, "namespace").unwrap_or("").is_empty() {
                    errs.push(FieldError::required(format!("{p}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if sname.is_empty() {
                    let what = if skind == "User" { "user" } else { "group" };
                    errs.push(FieldError::invalid(
                        format!("{p}.name"),
                        &q(sname),
                        &format!("{what} name cannot be empty"),
                    ));
                }
                // An empty apiGroup defaults to the RBAC group for users and groups.
                if !sgroup.is_empty() && sgroup != GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{p}.apiGroup"),
                        &q(sgroup),
                        &[GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{p}.kind"),
                &q(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    if let Some(old) = old {
        if role_ref(old) != (group.clone(), kind.clone(), name.clone()) {
            errs.push(FieldError::invalid(
                "roleRef",
                &format!(
                    "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                    q(&group),
                    q(&kind),
                    q(&name)
                ),
                "cannot change roleRef",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn has(errs: &[FieldError], field: &str, message: &str) -> bool {
        errs.iter()
            .any(|e| e.field == field && e.message == message)
    }

    #[test]
    fn roles() {
        let cases: Vec<(Value, bool, &str, &str)> = vec![
            (json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}), true, "rules[0].verbs", "Required value: verbs must contain at least one value"),
            (json!({"rules": [{"verbs": ["get"], "resources": ["pods"]}]}), true, "rules[0].apiGroups", "Required value: resource rules must supply at least one api group"),
            (json!({"rules": [{"verbs": ["get"], "apiGroups": [""]}]}), true, "rules[0].resources", "Required value: resource rules must supply at least one resource"),
            (
                json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
                true,
                "rules[0].nonResourceURLs",
                "Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
            ),
            (
                json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]}]}),
                false,
                "rules[0].nonResourceURLs",
                "Invalid value: []string{\"/healthz\"}: rules cannot apply to both regular resources and non-resource URLs",
            ),
            (
                json!({"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "services"], "resourceNames": ["x"]}]}),
                true,
                "rules[0].resourceNames",
                "Required value: resource names cannot apply to multiple resources",
            ),
            (json!({"aggregationRule": {}}), false, "aggregationRule.clusterRoleSelectors", "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"),
        ];
        for (obj, namespaced, field, message) in cases {
            let mut errs = Vec::new();
            if namespaced {
                validate_role(&obj, &mut errs);
            } else {
                validate_cluster_role(&obj, &mut errs);
            }
            assert!(has(&errs, field, message), "{obj}: {errs:?}");
        }
        let mut errs = Vec::new();
        validate_cluster_role(
            &json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
            &mut errs,
        );
        assert_eq!(errs, vec![]);
    }

    #[test]
    fn bindings() {
        let mut errs = Vec::new();
        validate_binding(
            &json!({"subjects": [{"kind": "User", "name": "u"}]}),
            None,
            false,
            &mut errs,
        );
        assert!(has(
            &errs,
            "roleRef.kind",
            "Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\""
        ));
        assert!(has(&errs, "roleRef.name", "Required value"));
        let cases: Vec<(Value, bool, &str, &str)> = vec![
            (json!({"roleRef": {"apiGroup": "x", "kind": "Role", "name": "r"}}), false, "roleRef.apiGroup", "Unsupported value: \"x\": supported values: \"rbac.authorization.k8s.io\""),
            (json!({"roleRef": {"kind": "Role", "name": "r"}}), true, "roleRef.kind", "Unsupported value: \"Role\": supported values: \"ClusterRole\""),
            (json!({"roleRef": {"kind": "Role", "name": "a/b"}}), false, "roleRef.name", "Invalid value: \"a/b\": may not contain '/'"),
            (json!({"roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "Robot", "name": "x"}]}), false, "subjects[0].kind", "Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""),
            (json!({"roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}), true, "subjects[0].namespace", "Required value"),
            (json!({"roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "User", "name": "u", "apiGroup": "v1"}]}), false, "subjects[0].apiGroup", "Unsupported value: \"v1\": supported values: \"rbac.authorization.k8s.io\""),
            (json!({"roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "sa", "apiGroup": "rbac.authorization.k8s.io"}]}), false, "subjects[0].apiGroup", "Unsupported value: \"rbac.authorization.k8s.io\": supported values: \"\""),
        ];
        for (obj, cluster, field, message) in cases {
            let mut errs = Vec::new();
            validate_binding(&obj, None, cluster, &mut errs);
            assert!(has(&errs, field, message), "{obj}: {errs:?}");
        }
        let old = json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "a"}});
        let mut errs = Vec::new();
        validate_binding(
            &json!({"roleRef": {"kind": "Role", "name": "a"}}),
            Some(&old),
            false,
            &mut errs,
        );
        assert_eq!(errs, vec![]);
        validate_binding(
            &json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "b"}}),
            Some(&old),
            false,
            &mut errs,
        );
        assert!(has(&errs, "roleRef", "Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"b\"}: cannot change roleRef"));
    }
}
