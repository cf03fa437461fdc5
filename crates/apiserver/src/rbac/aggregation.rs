//! Keeping the policy in place: the bootstrap roles and bindings reconciled at start (as
//! kube-apiserver's `rbac/bootstrap-roles` hook), and the ClusterRole aggregation controller
//! (an aggregated ClusterRole's rules are the union of the rules of the ClusterRoles its
//! selectors match).

use std::sync::Arc;
use std::time::Duration;

use reddwarf_resources::label_selector_string;
use serde_json::{json, Value};

use super::escalation::missing;
use super::{bootstrap, PolicyRule, Rbac, GROUP};
use crate::client::InProcessClient;
use crate::selector::LabelSelector;

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn collection(kind: &str, namespace: &str) -> String {
    let plural = match kind {
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        _ => "rolebindings",
    };
    if namespace.is_empty() {
        format!("/apis/{GROUP}/v1/{plural}")
    } else {
        format!("/apis/{GROUP}/v1/namespaces/{namespace}/{plural}")
    }
}

/// Creates every bootstrap role and binding that is missing and adds what upstream's policy
/// has and a stored object lacks (rules, aggregation selectors, subjects, labels), unless the
/// stored object's `autoupdate` annotation is `"false"`. Nothing is removed, as upstream.
pub async fn reconcile_bootstrap(client: &InProcessClient) -> anyhow::Result<()> {
    let all = bootstrap::cluster_roles()
        .into_iter()
        .chain(bootstrap::cluster_role_bindings())
        .chain(bootstrap::roles())
        .chain(bootstrap::role_bindings());
    // Reads first (local), then every write at once: they share the log's group commit, so a
    // fresh cluster's ~130 objects cost a few fsyncs, not one each.
    let mut writes = Vec::new();
    for want in all {
        let kind = want["kind"].as_str().unwrap_or("").to_string();
        let name = want["metadata"]["name"].as_str().unwrap_or("").to_string();
        let namespace = want["metadata"]["namespace"].as_str().unwrap_or("");
        let base = collection(&kind, namespace);
        let path = format!("{base}/{name}");
        let (code, have) = client.get_json(&path).await?;
        let write = match code {
            404 => Write::Create(want),
            200 if have["metadata"]["annotations"][AUTOUPDATE].as_str() == Some("false") => {
                continue
            }
            200 => match reconciled(&want, &have) {
                None => continue,
                // A binding's role cannot change: recreate it, as upstream.
                Some(mut next) if next.get("roleRef") != have.get("roleRef") => {
                    next["metadata"] = want["metadata"].clone();
                    Write::Recreate(next)
                }
                Some(next) => Write::Update(next),
            },
            _ => anyhow::bail!("reading {kind} {name}: {code}"),
        };
        writes.push((kind, name, base, path, write));
    }
    let done = futures::future::join_all(writes.iter().map(|(_, _, base, path, w)| async move {
        match w {
            Write::Create(obj) => client.request("POST", base, Some(obj)).await,
            Write::Update(obj) => client.request("PUT", path, Some(obj)).await,
            Write::Recreate(obj) => {
                client.request("DELETE", path, None).await?;
                client.request("POST", base, Some(obj)).await
            }
        }
    }))
    .await;
    for ((kind, name, ..), result) in writes.iter().zip(done) {
        let (code, text) = result?;
        if !matches!(code, 200 | 201 | 409) {
            anyhow::bail!("reconciling {kind} {name}: {code} {text}");
        }
    }
    Ok(())
}

enum Write {
    Create(Value),
    Update(Value),
    Recreate(Value),
}

/// The stored object with what the bootstrap object adds, or `None` when nothing is missing.
fn reconciled(want: &Value, have: &Value) -> Option<Value> {
    let mut next = have.clone();
    for field in ["labels", "annotations"] {
        for (k, v) in want["metadata"][field].as_object().into_iter().flatten() {
            if next["metadata"][field].get(k).is_none() {
                next["metadata"][field][k] = v.clone();
            }
        }
    }
    if let Some(rule) = want.get("aggregationRule") {
        let wanted = rule["clusterRoleSelectors"].as_array().cloned();
        let mut selectors = have["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for s in wanted.into_iter().flatten() {
            if !selectors.contains(&s) {
                selectors.push(s);
            }
        }
        next["aggregationRule"] = json!({ "clusterRoleSelectors": selectors });
    } else if want.get("rules").is_some() {
        let held = PolicyRule::of_role(have);
        let lacking = missing(&held, &PolicyRule::of_role(want));
        if !lacking.is_empty() {
            let mut rules = have["rules"].as_array().cloned().unwrap_or_default();
            rules.extend(lacking.iter().map(PolicyRule::to_value));
            next["rules"] = json!(rules);
        }
    }
    if let Some(subjects) = want["subjects"].as_array() {
        let mut have_subjects = have["subjects"].as_array().cloned().unwrap_or_default();
        for s in subjects {
            if !have_subjects.contains(s) {
                have_subjects.push(s.clone());
            }
        }
        next["subjects"] = json!(have_subjects);
    }
    if let Some(r) = want.get("roleRef") {
        next["roleRef"] = r.clone();
    }
    (next != *have).then_some(next)
}

/// The aggregation controller: runs until the process ends, recomputing aggregated
/// ClusterRoles whenever a ClusterRole changes.
pub async fn run(api: Arc<crate::ApiServer>, rbac: Arc<Rbac>, client: InProcessClient) {
    loop {
        // The controller manager's work: on the leading member only.
        api.until_leading().await;
        if let Err(e) = aggregate(&client).await {
            tracing::warn!("clusterrole aggregation: {e:#}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::select! {
            _ = rbac.cluster_roles_changed.notified() => {}
            _ = api.starts_leading() => {}
        }
        // Let a burst of changes (a chart's roles) settle into one pass.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One pass: every aggregated ClusterRole whose rules differ from the union of its sources'
/// gets that union.
async fn aggregate(client: &InProcessClient) -> anyhow::Result<()> {
    let base = collection("ClusterRole", "");
    let (code, list) = client.get_json(&base).await?;
    if code != 200 {
        anyhow::bail!("listing cluster roles: {code}");
    }
    let mut roles = list["items"].as_array().cloned().unwrap_or_default();
    roles.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    for role in &roles {
        let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
            continue;
        };
        let name = role["metadata"]["name"].as_str().unwrap_or("");
        let selectors: Vec<LabelSelector> = selectors
            .iter()
            .filter_map(|s| LabelSelector::parse(&label_selector_string(s)).ok())
            .collect();
        let mut rules: Vec<Value> = Vec::new();
        for source in &roles {
            if source["metadata"]["name"].as_str() == Some(name)
                || !selectors.iter().any(|s| !s.is_empty() && s.matches(source))
            {
                continue;
            }
            for r in source["rules"].as_array().into_iter().flatten() {
                if !rules.contains(r) {
                    rules.push(r.clone());
                }
            }
        }
        let current = role["rules"].as_array().cloned().unwrap_or_default();
        if current == rules {
            continue;
        }
        let patch = json!({"rules": rules});
        let (code, text) = client
            .request_with(
                "PATCH",
                &format!("{base}/{name}"),
                Some(&patch),
                "application/merge-patch+json",
            )
            .await?;
        if code != 200 && code != 404 {
            anyhow::bail!("updating aggregated cluster role {name}: {code} {text}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciling_adds_what_is_missing_and_keeps_the_rest() {
        let want = json!({"metadata": {"name": "r", "labels": {"a": "1"}},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]});
        let have = json!({"metadata": {"name": "r", "labels": {"a": "2"}},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "secrets"]}]});
        let next = reconciled(&want, &have).unwrap();
        assert_eq!(next["metadata"]["labels"]["a"], "2");
        assert_eq!(
            next["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "secrets"]},
                   {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}])
        );
        assert!(reconciled(&want, &next).is_none());
        let binding = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "Group", "name": "g"}]});
        let stored = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "User", "name": "u"}]});
        let next = reconciled(&binding, &stored).unwrap();
        assert_eq!(next["subjects"].as_array().unwrap().len(), 2);
    }
}
