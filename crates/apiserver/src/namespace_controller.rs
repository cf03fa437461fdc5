//! Namespace lifecycle: when a namespace is being deleted, delete everything in it, then clear
//! its `kubernetes` finalizer so the namespace itself goes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::InProcessClient;
use crate::ApiServer;

/// When each kind of a terminating namespace is next to be deleted again, and how long the
/// wait after that is.
type Retries = HashMap<String, (Instant, Duration)>;

/// The first repeat of a DELETE of a kind's collection, and the longest wait between repeats.
const FIRST_REPEAT: Duration = Duration::from_millis(500);
const LONGEST_REPEAT: Duration = Duration::from_secs(30);

pub async fn run(api: Arc<ApiServer>, client: InProcessClient) {
    // Keyed by namespace uid: a namespace made again under the same name starts afresh.
    let mut retries: HashMap<String, Retries> = HashMap::new();
    loop {
        // The controller manager's work: on the leading member only.
        api.until_leading().await;
        let rv = match sweep(&api, &client, &mut retries).await {
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
async fn sweep(
    api: &ApiServer,
    client: &InProcessClient,
    retries: &mut HashMap<String, Retries>,
) -> anyhow::Result<(String, bool)> {
    let (_, list) = client.get_json("/api/v1/namespaces").await?;
    let rv = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
    let mut pending = false;
    let mut terminating = HashMap::new();
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
        let uid = ns
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut mine = retries.remove(&uid).unwrap_or_default();
        let done = finalize(api, client, &name, &ns, &mut mine).await;
        terminating.insert(uid, mine);
        if !done? {
            pending = true;
        }
    }
    // Namespaces gone or no longer terminating are forgotten.
    *retries = terminating;
    Ok((rv, pending))
}

/// Deletes the namespace's content; when none is left, clears the finalizer. Returns whether
/// the namespace is done.
///
/// What a DELETE leaves is waiting (pods for their kubelets, objects for their finalizers) or
/// was created as the namespace began terminating; only the latter needs the DELETE again, so
/// a kind's repeats back off from 0.5 s to 30 s. Repeated every half second, the DELETE of a
/// namespace of 150 000 pods read, decoded and answered with every pod twice a second while
/// the kubelets were confirming their deletions.
async fn finalize(
    api: &ApiServer,
    client: &InProcessClient,
    ns: &str,
    obj: &Value,
    retries: &mut Retries,
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
        let now = Instant::now();
        let due = retries.get(&base).is_none_or(|(at, _)| *at <= now);
        if due {
            let (code, text) = client.request_status("DELETE", &base).await?;
            if code >= 300 {
                anyhow::bail!("deleting {} in {ns}: {code} {text}", k.plural);
            }
            let wait = retries
                .get(&base)
                .map_or(FIRST_REPEAT, |(_, w)| (*w * 2).min(LONGEST_REPEAT));
            retries.insert(base.clone(), (Instant::now() + wait, wait));
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
