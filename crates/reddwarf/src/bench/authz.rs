//! `bench authz`: the cost of one authorization decision (the RBAC index and the Node
//! authorizer's chain), in process, over upstream's bootstrap policy plus many users' bindings:
//! what authorization adds to every request.

use std::time::Instant;

use reddwarf_apiserver::rbac::{bootstrap, Rbac};
use reddwarf_apiserver::{Attributes, User};
use serde_json::{json, Value};

use super::Report;

#[derive(clap::Args, Clone, Debug)]
pub struct AuthzArgs {
    /// Namespaces, each with its own RoleBindings.
    #[arg(long, default_value_t = 1_000)]
    pub namespaces: usize,
    /// RoleBindings per namespace (each binds `view` or `edit` to one user and one group).
    #[arg(long, default_value_t = 10)]
    pub bindings: usize,
    /// Decisions timed per case.
    #[arg(long, default_value_t = 200_000)]
    pub count: u64,
    /// `text` (a table) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

fn key(resource: &str, namespace: &str, name: &str) -> String {
    format!("rbac.authorization.k8s.io/{resource}/{namespace}/{name}")
}

pub fn run(a: AuthzArgs) -> anyhow::Result<Report> {
    let mut objects: Vec<(&str, String, Value)> = Vec::new();
    for r in bootstrap::cluster_roles() {
        let name = r["metadata"]["name"].as_str().unwrap_or("").to_string();
        objects.push(("clusterroles", key("clusterroles", "", &name), r));
    }
    for b in bootstrap::cluster_role_bindings() {
        let name = b["metadata"]["name"].as_str().unwrap_or("").to_string();
        objects.push((
            "clusterrolebindings",
            key("clusterrolebindings", "", &name),
            b,
        ));
    }
    // The aggregated roles' rules as the aggregation controller leaves them.
    for (role, sources) in [
        ("view", vec!["system:aggregate-to-view"]),
        (
            "edit",
            vec!["system:aggregate-to-view", "system:aggregate-to-edit"],
        ),
    ] {
        let rules: Vec<Value> = bootstrap::cluster_roles()
            .into_iter()
            .filter(|r| sources.iter().any(|s| r["metadata"]["name"] == *s))
            .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        objects.push((
            "clusterroles",
            key("clusterroles", "", role),
            json!({"metadata": {"name": role}, "rules": rules}),
        ));
    }
    for n in 0..a.namespaces {
        let ns = format!("ns-{n}");
        for b in 0..a.bindings {
            let role = if b % 2 == 0 { "view" } else { "edit" };
            let name = format!("b-{b}");
            objects.push((
                "rolebindings",
                key("rolebindings", &ns, &name),
                json!({"metadata": {"name": name, "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user-{n}-{b}")},
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("team-{}", n % 100)},
                    ]}),
            ));
        }
    }
    let total = objects.len();
    let rbac = Rbac::of_objects(objects);
    let user = User {
        name: "user-500-3".into(),
        groups: vec!["team-0".into(), "system:authenticated".into()],
    };
    let cases: Vec<(&str, Attributes<'_>)> = vec![
        (
            "allowed: list pods via a RoleBinding",
            Attributes::resource("list", "", "pods", "", "ns-500", ""),
        ),
        (
            "denied: get secrets in another namespace",
            Attributes::resource("get", "", "secrets", "", "ns-7", "x"),
        ),
        (
            "allowed: get /api (system:discovery)",
            Attributes::path("get", "/api"),
        ),
    ];
    let mut r = Report::new("authz", &a.output);
    r.add(
        "objects",
        json!(total),
        format!(
            "{total} roles and bindings ({} namespaces x {} RoleBindings + the bootstrap policy)",
            a.namespaces, a.bindings
        ),
    );
    for (name, attrs) in cases {
        let started = Instant::now();
        let mut allowed = 0u64;
        for _ in 0..a.count {
            allowed += u64::from(rbac.authorize(&user, &attrs).allowed);
        }
        let per = started.elapsed().as_nanos() as f64 / a.count as f64;
        r.add(
            name,
            json!({"ns_per_decision": per, "allowed": allowed == a.count}),
            format!("{per:.0} ns per decision (allowed: {})", allowed == a.count),
        );
    }
    Ok(r)
}
