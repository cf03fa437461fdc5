//! The definitions' controllers, as upstream's naming, establishing and finalizer controllers:
//! a new or renamed definition gets `status.acceptedNames` and the `NamesAccepted` and
//! `Established` conditions (or a conflict reason when another definition of its group holds a
//! name); a definition being deleted has all its objects deleted, then its cleanup finalizer
//! removed, after which it (and its routes) go.

use std::sync::Arc;
use std::time::Duration;

use reddwarf_resources::custom::{set_condition, CLEANUP_FINALIZER};
use serde_json::{json, Value};

use crate::client::InProcessClient;
use crate::ApiServer;

const COLLECTION: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// Runs until the process ends.
pub async fn run(api: Arc<ApiServer>, client: InProcessClient) {
    loop {
        match sweep(&api, &client).await {
            Ok((_, true)) => {
                // Objects with finalizers of their own are still going: look again shortly.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok((rv, false)) => {
                let path =
                    format!("{COLLECTION}?watch=true&resourceVersion={rv}&timeoutSeconds=300");
                if let Err(e) = client.wait_for_change(&path).await {
                    tracing::warn!("custom resource definitions watch: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Err(e) => {
                tracing::warn!("custom resource definitions controller: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// One pass over every definition; returns the list's revision and whether a deletion is
/// still under way.
async fn sweep(api: &ApiServer, client: &InProcessClient) -> anyhow::Result<(String, bool)> {
    let (_, list) = client.get_json(COLLECTION).await?;
    let rv = s(&list, "/metadata/resourceVersion").to_string();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut pending = false;
    for crd in &items {
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            if has_cleanup_finalizer(crd) && !cleanup(api, client, crd).await? {
                pending = true;
            }
            continue;
        }
        name(client, crd, &items).await?;
    }
    Ok((rv, pending))
}

fn has_cleanup_finalizer(crd: &Value) -> bool {
    crd.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == CLEANUP_FINALIZER))
}

/// A name of `names` (plural, singular, kind, listKind, each short name) that another
/// definition of the same group has accepted, as upstream's naming controller words it.
fn conflict(crd: &Value, others: &[Value]) -> Option<(&'static str, String)> {
    let group = s(crd, "/spec/group");
    let me = s(crd, "/metadata/name");
    let names = &crd["spec"]["names"];
    let accepted: Vec<&Value> = others
        .iter()
        .filter(|o| s(o, "/spec/group") == group && s(o, "/metadata/name") != me)
        .map(|o| &o["status"]["acceptedNames"])
        .collect();
    let taken = |field: &str, value: &str| {
        !value.is_empty()
            && accepted.iter().any(|a| {
                let resource_names = [s(a, "/plural"), s(a, "/singular")];
                let short: Vec<&str> = a["shortNames"]
                    .as_array()
                    .map(|x| x.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match field {
                    "kind" | "listKind" => s(a, "/kind") == value || s(a, "/listKind") == value,
                    _ => resource_names.contains(&value) || short.contains(&value),
                }
            })
    };
    let plural = s(names, "/plural");
    if taken("plural", plural) {
        return Some(("PluralConflict", format!("{plural:?} is already in use")));
    }
    let singular = s(names, "/singular");
    if taken("singular", singular) {
        return Some((
            "SingularConflict",
            format!("{singular:?} is already in use"),
        ));
    }
    for short in names["shortNames"].as_array().into_iter().flatten() {
        let short = short.as_str().unwrap_or("");
        if taken("short", short) {
            return Some(("ShortNamesConflict", format!("{short:?} is already in use")));
        }
    }
    let kind = s(names, "/kind");
    if taken("kind", kind) {
        return Some(("KindConflict", format!("{kind:?} is already in use")));
    }
    let list_kind = s(names, "/listKind");
    if taken("listKind", list_kind) {
        return Some((
            "ListKindConflict",
            format!("{list_kind:?} is already in use"),
        ));
    }
    None
}

/// Accepts the definition's names (or reports the conflict) and establishes it.
async fn name(client: &InProcessClient, crd: &Value, all: &[Value]) -> anyhow::Result<()> {
    let mut next = crd.clone();
    match conflict(crd, all) {
        None => {
            next["status"]["acceptedNames"] = crd["spec"]["names"].clone();
            set_condition(
                &mut next,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            );
            let reason = if reddwarf_resources::custom::condition_true(crd, "Established") {
                None
            } else {
                Some((
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                ))
            };
            if let Some((reason, message)) = reason {
                set_condition(&mut next, "Established", "True", reason, message);
            }
        }
        Some((reason, message)) => {
            set_condition(&mut next, "NamesAccepted", "False", reason, &message);
            if !reddwarf_resources::custom::condition_true(crd, "Established") {
                set_condition(
                    &mut next,
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                );
            }
        }
    }
    if conditions_and_names(&next) == conditions_and_names(crd) {
        return Ok(());
    }
    let path = format!("{COLLECTION}/{}/status", s(crd, "/metadata/name"));
    let (code, text) = client.request("PUT", &path, Some(&next)).await?;
    // A conflict means someone wrote in between: the next pass sees the new state.
    if code >= 300 && code != 409 && code != 404 {
        anyhow::bail!("updating {path}: {code} {text}");
    }
    Ok(())
}

/// What the naming controller owns, compared without transition times.
fn conditions_and_names(crd: &Value) -> Value {
    let conds: Vec<Value> = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| json!([c["type"], c["status"], c["reason"], c["message"]]))
                .collect()
        })
        .unwrap_or_default();
    json!([conds, crd.pointer("/status/acceptedNames")])
}

/// Deletes every object of a definition being deleted; once none is left, removes the cleanup
/// finalizer. Returns whether it is done.
async fn cleanup(api: &ApiServer, client: &InProcessClient, crd: &Value) -> anyhow::Result<bool> {
    let name = s(crd, "/metadata/name").to_string();
    let group = s(crd, "/spec/group").to_string();
    let plural = s(crd, "/status/acceptedNames/plural").to_string();
    let catalogue = api.catalogue();
    // Any served version reaches the one collection every version shares.
    let kind = catalogue
        .kinds()
        .iter()
        .find(|k| k.group == group && k.plural == plural)
        .cloned();
    if let Some(kind) = kind {
        let mut progress = crd.clone();
        set_condition(
            &mut progress,
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        );
        if conditions_and_names(&progress) != conditions_and_names(crd) {
            let path = format!("{COLLECTION}/{name}/status");
            let _ = client.request("PUT", &path, Some(&progress)).await?;
        }
        let base = format!("/apis/{group}/{}/{plural}", kind.version);
        let (code, list) = client.get_json(&base).await?;
        if code >= 300 {
            anyhow::bail!("listing {base}: {code} {list}");
        }
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            if kind.namespaced {
                let mut namespaces: Vec<&str> =
                    items.iter().map(|o| s(o, "/metadata/namespace")).collect();
                namespaces.sort_unstable();
                namespaces.dedup();
                for ns in namespaces {
                    let path = format!("/apis/{group}/{}/namespaces/{ns}/{plural}", kind.version);
                    let (code, text) = client.request("DELETE", &path, None).await?;
                    if code >= 300 {
                        anyhow::bail!("deleting {path}: {code} {text}");
                    }
                }
            } else {
                let (code, text) = client.request("DELETE", &base, None).await?;
                if code >= 300 {
                    anyhow::bail!("deleting {base}: {code} {text}");
                }
            }
            let (_, left) = client.get_json(&format!("{base}?limit=1")).await?;
            if left["items"].as_array().is_some_and(|a| !a.is_empty()) {
                return Ok(false);
            }
        }
    }
    let finalizers: Vec<Value> = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter(|x| *x != CLEANUP_FINALIZER)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let patch = json!({"metadata": {"finalizers": finalizers,
        "resourceVersion": s(crd, "/metadata/resourceVersion")}});
    let path = format!("{COLLECTION}/{name}");
    let (code, text) = client
        .request_with("PATCH", &path, Some(&patch), "application/merge-patch+json")
        .await?;
    if code >= 300 && code != 404 && code != 409 {
        anyhow::bail!("removing the cleanup finalizer of {name}: {code} {text}");
    }
    Ok(code < 300 || code == 404)
}
