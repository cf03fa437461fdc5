//! Namespace lifecycle: when a namespace is being deleted, delete everything in it, then clear
//! its `kubernetes` finalizer so the namespace itself goes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::client::InProcessClient;
use crate::ApiServer;

pub async fn run(api: Arc<ApiServer>, client: InProcessClient) {
    loop {
        // The controller manager's work: on the leading member only.
        api.until_leading().await;
        let rv = match sweep(&api, &client).await {
            Ok((rv, pending)) => {
                if pending {
                    // Content with finalizers is still going: look again shortly.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                rv
            }
            Err(e) => {
                tracing::warn!("namespace controller: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let path = format!("/api/v1/namespaces?watch=true&resourceVersion={rv}&timeoutSeconds=300");
        tokio::select! {
            r = client.wait_for_change(&path) => {
                if let Err(e) = r {
                    tracing::warn!("namespace controller watch: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            // A new leader sweeps at once: deletions may have been left half-way.
            _ = api.starts_leading() => {}
        }
    }
}

/// Processes every terminating namespace; returns the list revision and whether any remain.
async fn sweep(api: &ApiServer, client: &InProcessClient) -> anyhow::Result<(String, bool)> {
    let (_, list) = client.get_json("/api/v1/namespaces").await?;
    let rv = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
    let mut pending = false;
    for ns in list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        if ns.pointer("/metadata/deletionTimestamp").is_none() {
            continue;
        }
        let name = ns
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !finalize(api, client, &name, &ns).await? {
            pending = true;
        }
    }
    Ok((rv, pending))
}

/// Deletes the namespace's content; when none is left, clears the finalizer. Returns whether
/// the namespace is done.
async fn finalize(
    api: &ApiServer,
    client: &InProcessClient,
    ns: &str,
    obj: &Value,
) -> anyhow::Result<bool> {
    let mut empty = true;
    // Only what can be listed and collection-deleted (not bindings), as upstream's
    // namespaced-resources deleter does.
    for k in api
        .catalogue()
        .kinds()
        .iter()
        .filter(|k| k.namespaced && k.serves("list") && k.serves("deletecollection"))
    {
        let base = if k.group.is_empty() {
            format!("/api/{}/namespaces/{ns}/{}", k.version, k.plural)
        } else {
            format!(
                "/apis/{}/{}/namespaces/{ns}/{}",
                k.group, k.version, k.plural
            )
        };
        let (code, text) = client.request("DELETE", &base, None).await?;
        if code >= 300 {
            anyhow::bail!("deleting {} in {ns}: {code} {text}", k.plural);
        }
        let (_, left) = client.get_json(&format!("{base}?limit=1")).await?;
        if left
            .get("items")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            empty = false;
        }
    }
    if !empty {
        return Ok(false);
    }
    let has_spec_finalizer = obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|f| f == "kubernetes"));
    if has_spec_finalizer {
        let mut body = obj.clone();
        let remaining: Vec<Value> = obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter(|f| *f != "kubernetes").cloned().collect())
            .unwrap_or_default();
        body["spec"]["finalizers"] = Value::Array(remaining);
        let (code, text) = client
            .request(
                "PUT",
                &format!("/api/v1/namespaces/{ns}/finalize"),
                Some(&body),
            )
            .await?;
        if code >= 300 && code != 404 && code != 409 {
            anyhow::bail!("finalizing namespace {ns}: {code} {text}");
        }
    }
    Ok(true)
}
