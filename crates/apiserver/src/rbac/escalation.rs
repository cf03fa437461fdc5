//! Escalation prevention, as upstream's RBAC storage: a user may only write a role whose rules
//! they already hold (or hold `escalate` on it), and only bind a role whose rules they hold
//! (or hold `bind` on it). `system:masters` may do either.

use std::sync::Arc;

use serde_json::Value;

use super::{has, PolicyRule, Rbac, GROUP};
use crate::admission::{Attributes as Admitted, Operation, Plugin};
use crate::auth::{Attributes, User, MASTERS_GROUP};
use crate::status::{ApiError, ApiResult};
use reddwarf_store::Store;

/// The admission plugin refusing RBAC writes that would grant what the writer lacks.
pub struct Escalation(pub Arc<Rbac>);

impl Plugin for Escalation {
    fn name(&self) -> &'static str {
        "RBACEscalation"
    }

    fn validate(&self, a: &Admitted, obj: &Value, _store: &Store) -> ApiResult<()> {
        if a.kind.group != GROUP
            || a.subresource.is_some()
            || a.operation == Operation::Delete
            || a.user.in_group(MASTERS_GROUP)
        {
            return Ok(());
        }
        let rbac = &self.0;
        let may = |verb: &str, resource: &str, namespace: &str, name: &str| {
            let attrs = Attributes::resource(verb, GROUP, resource, "", namespace, name);
            rbac.authorize(a.user, &attrs).allowed
        };
        let forbidden = |why: String| ApiError::forbidden(GROUP, a.kind.plural, a.name, &why);
        match a.kind.plural {
            "roles" | "clusterroles" => {
                if may("escalate", a.kind.plural, a.namespace, a.name) {
                    return Ok(());
                }
                let held = rbac.rules_for(a.user, a.namespace);
                if obj.get("aggregationRule").is_some_and(|r| !r.is_null()) {
                    let all = full_authority();
                    if !missing(&held, &all).is_empty() {
                        return Err(forbidden(
                            "must have cluster-admin privileges to use the aggregationRule".into(),
                        ));
                    }
                }
                let wanted = PolicyRule::of_role(obj);
                let lacking = missing(&held, &wanted);
                if lacking.is_empty() {
                    return Ok(());
                }
                Err(forbidden(not_held(a.user, &lacking)))
            }
            "rolebindings" | "clusterrolebindings" => {
                let role_ref = &obj["roleRef"];
                let cluster = role_ref["kind"].as_str() == Some("ClusterRole");
                let role_name = role_ref["name"].as_str().unwrap_or("");
                let role_resource = if cluster { "clusterroles" } else { "roles" };
                if may("bind", role_resource, a.namespace, role_name) {
                    return Ok(());
                }
                let Some(wanted) = rbac.role_rules(cluster, a.namespace, role_name) else {
                    let kind = if cluster { "clusterroles" } else { "roles" };
                    return Err(ApiError::bad_request(format!(
                        "{kind}.{GROUP} {role_name:?} not found"
                    )));
                };
                let held = rbac.rules_for(a.user, a.namespace);
                let lacking = missing(&held, &wanted);
                if lacking.is_empty() {
                    return Ok(());
                }
                Err(forbidden(not_held(a.user, &lacking)))
            }
            _ => Ok(()),
        }
    }
}

fn full_authority() -> Vec<PolicyRule> {
    let all = vec!["*".to_string()];
    vec![
        PolicyRule {
            verbs: all.clone(),
            api_groups: all.clone(),
            resources: all.clone(),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: all.clone(),
            non_resource_urls: all,
            ..PolicyRule::default()
        },
    ]
}

/// Upstream's message for rules the writer does not hold.
fn not_held(user: &User, lacking: &[PolicyRule]) -> String {
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let rules: Vec<String> = lacking.iter().map(compact).collect();
    format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        rules.join("\n")
    )
}

/// A rule as upstream's `CompactString` writes it.
fn compact(r: &PolicyRule) -> String {
    let q = |v: &[String]| {
        let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", items.join(" "))
    };
    let mut parts = Vec::new();
    for (name, v) in [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("NonResourceURLs", &r.non_resource_urls),
        ("ResourceNames", &r.resource_names),
        ("Verbs", &r.verbs),
    ] {
        if !v.is_empty() {
            parts.push(format!("{name}:{}", q(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// The parts of `wanted`, broken down to one verb, group, resource (and name) each, that no
/// rule of `held` covers (upstream's `Covers`).
pub fn missing(held: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for atom in wanted.iter().flat_map(breakdown) {
        if !held.iter().any(|h| covers(h, &atom)) && !out.contains(&atom) {
            out.push(atom);
        }
    }
    out
}

fn one(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

fn breakdown(r: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &r.api_groups {
        for resource in &r.resources {
            for verb in &r.verbs {
                let base = PolicyRule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..PolicyRule::default()
                };
                if r.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &r.resource_names {
                        out.push(PolicyRule {
                            resource_names: one(name),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &r.non_resource_urls {
        for verb in &r.verbs {
            out.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

fn covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = has(&owner.resources, "*")
        || sub.resources.iter().all(|path| {
            has(&owner.resources, path)
                || path
                    .split_once('/')
                    .is_some_and(|(_, s)| has(&owner.resources, &format!("*/{s}")))
        });
    let urls = sub.non_resource_urls.iter().all(|path| {
        owner.non_resource_urls.iter().any(|o| {
            o == path
                || o.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    });
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && names && urls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> Vec<PolicyRule> {
        PolicyRule::of_role(&json!({ "rules": v }))
    }

    #[test]
    fn held_rules_cover_what_they_grant_and_no_more() {
        let held = rules(json!([
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]},
            {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]},
        ]));
        let ok = rules(json!([
            {"verbs": ["list"], "apiGroups": [""], "resources": ["pods", "services/status"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]},
            {"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]},
        ]));
        assert!(missing(&held, &ok).is_empty());
        let too_much = rules(json!([
            {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]},
        ]));
        let lacking = missing(&held, &too_much);
        assert_eq!(
            lacking.iter().map(compact).collect::<Vec<_>>(),
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#,
            ]
        );
        let user = User {
            name: "jane".into(),
            groups: vec!["devs".into(), "system:authenticated".into()],
        };
        assert!(not_held(&user, &lacking).starts_with(
            "user \"jane\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups"
        ));
    }
}
