//! rbac.authorization.k8s.io/v1. Roles and cluster roles have no upstream printer: they get
//! the default NAME/CREATED AT table.

use serde_json::{json, Value};

use super::BASE;
use crate::columns::{age, age_col, col, name, name_col, wide, Column, TableRow};
use crate::defaults;
use crate::jsonpath::s;
use crate::validation;
use crate::Basic;
use crate::StrategyRef;
use crate::{NameRule, ResourceKind};

const RBAC: ResourceKind = ResourceKind {
    group: "rbac.authorization.k8s.io",
    // `ValidateRBACName`: names such as `system:metrics-server` are valid.
    name_rule: NameRule::PathSegment,
    create_on_update: true,
    ..BASE
};

pub(super) fn kinds() -> Vec<ResourceKind> {
    vec![
        ResourceKind {
            kind: "ClusterRoleBinding",
            plural: "clusterrolebindings",
            singular: "clusterrolebinding",
            namespaced: false,
            columns: || binding_columns("clusterRoleBinding"),
            row: binding_row,
            strategy: StrategyRef::Static(
                const {
                    &Basic {
                        defaults: defaults::role_binding,
                        validate: validation::cluster_role_binding,
                    }
                },
            ),
            ..RBAC
        },
        ResourceKind {
            kind: "ClusterRole",
            always_emitted: r#"{"rules":null}"#,
            plural: "clusterroles",
            singular: "clusterrole",
            namespaced: false,
            strategy: StrategyRef::Static(const { &Basic::validated(validation::cluster_role) }),
            ..RBAC
        },
        ResourceKind {
            kind: "RoleBinding",
            plural: "rolebindings",
            singular: "rolebinding",
            columns: || binding_columns("roleBinding"),
            row: binding_row,
            strategy: StrategyRef::Static(
                const {
                    &Basic {
                        defaults: defaults::role_binding,
                        validate: validation::role_binding,
                    }
                },
            ),
            ..RBAC
        },
        ResourceKind {
            kind: "Role",
            always_emitted: r#"{"rules":null}"#,
            plural: "roles",
            singular: "role",
            strategy: StrategyRef::Static(const { &Basic::validated(validation::role) }),
            ..RBAC
        },
    ]
}

fn binding_columns(which: &str) -> Vec<Column> {
    let (users, groups, sas) = if which == "roleBinding" {
        (
            "Users in the roleBinding",
            "Groups in the roleBinding",
            "ServiceAccounts in the roleBinding",
        )
    } else {
        (
            "Users in the clusterRoleBinding",
            "Groups in the clusterRoleBinding",
            "ServiceAccounts in the clusterRoleBinding",
        )
    };
    vec![
        name_col(),
        col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
        age_col(),
        wide("Users", "string", users),
        wide("Groups", "string", groups),
        wide("ServiceAccounts", "string", sas),
    ]
}

/// `printRoleBinding` / `printClusterRoleBinding` with `rbac.SubjectsStrings`.
fn binding_row(o: &Value, now: i64) -> TableRow {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut sas = Vec::new();
    for subj in o
        .pointer("/subjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match s(subj, "/kind") {
            "ServiceAccount" => sas.push(format!("{}/{}", s(subj, "/namespace"), s(subj, "/name"))),
            "User" => users.push(s(subj, "/name").to_string()),
            "Group" => groups.push(s(subj, "/name").to_string()),
            _ => {}
        }
    }
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            s(o, "/roleRef/kind"),
            s(o, "/roleRef/name")
        )),
        age(o, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}
