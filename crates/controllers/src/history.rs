//! ControllerRevisions, the history DaemonSets and StatefulSets keep of their pod templates
//! (upstream `pkg/controller/history`): `kubectl rollout history|undo` read them.

use std::collections::BTreeMap;
use std::collections::HashSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

use crate::label_selector::selector_string;
use crate::ownership::is_controlled_by;

/// The label pods and revisions carry with their revision's hash (or name).
pub const HASH_LABEL: &str = "controller-revision-hash";

/// The revisions in `ns` matching `selector` controlled by `uid`, oldest revision first.
pub async fn controlled(
    client: &Client,
    ns: &str,
    selector: &LabelSelector,
    uid: &str,
) -> Result<Vec<ControllerRevision>, kube::Error> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let mut revs: Vec<ControllerRevision> = api
        .list(&ListParams::default().labels(&selector_string(selector)))
        .await?
        .items
        .into_iter()
        .filter(|r| is_controlled_by(&r.metadata, uid))
        .collect();
    revs.sort_by(|a, b| {
        (a.revision, a.creation_timestamp().map(|t| t.0))
            .cmp(&(b.revision, b.creation_timestamp().map(|t| t.0)))
    });
    Ok(revs)
}

/// The number the next revision gets.
pub fn next_number(revs: &[ControllerRevision]) -> i64 {
    revs.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// The revision's `data` (the part of the owner's spec it snapshots), if it has any.
pub fn data_of(rev: &ControllerRevision) -> Option<&serde_json::Value> {
    rev.data.as_ref().map(|d| &d.0)
}

/// Upstream `ControllerRevisionName`: `<parent>-<hash>`, the parent's name cut to fit.
pub fn revision_name(parent: &str, hash: &str) -> String {
    let parent = if parent.len() > 223 {
        &parent[..223]
    } else {
        parent
    };
    format!("{parent}-{hash}")
}

/// What creating a revision came to.
pub enum Created {
    /// The revision now stored under the name (ours, or an equal one already there).
    Revision(Box<ControllerRevision>),
    /// The name is taken by a revision with other data: bump the collision count.
    Collision,
}

/// Creates a revision, treating an existing equal one (same owner, same data) as success.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    client: &Client,
    ns: &str,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
    owner: OwnerReference,
    data: serde_json::Value,
    revision: i64,
) -> Result<Created, kube::Error> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let uid = owner.uid.clone();
    let rev = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(RawExtension(data.clone())),
        revision,
    };
    match api.create(&PostParams::default(), &rev).await {
        Ok(r) => Ok(Created::Revision(Box::new(r))),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(&name).await?;
            if is_controlled_by(&existing.metadata, &uid) && data_of(&existing) == Some(&data) {
                Ok(Created::Revision(Box::new(existing)))
            } else {
                Ok(Created::Collision)
            }
        }
        Err(e) => Err(e),
    }
}

/// Gives a revision a new number (an old template became current again).
pub async fn renumber(
    client: &Client,
    rev: &ControllerRevision,
    revision: i64,
) -> Result<ControllerRevision, kube::Error> {
    let api: Api<ControllerRevision> =
        Api::namespaced(client.clone(), &rev.namespace().unwrap_or_default());
    api.patch(
        &rev.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"revision": revision})),
    )
    .await
}

/// Deletes the oldest revisions not in `live` beyond `limit` (upstream `cleanupHistory` /
/// `truncateHistory`).
pub async fn truncate(
    client: &Client,
    revs: &[ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Result<(), kube::Error> {
    let dead: Vec<&ControllerRevision> = revs
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let excess = dead.len().saturating_sub(limit.max(0) as usize);
    for r in dead.into_iter().take(excess) {
        let api: Api<ControllerRevision> =
            Api::namespaced(client.clone(), &r.namespace().unwrap_or_default());
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Upstream `getPatch` of DaemonSets and StatefulSets: the revision's data is a strategic
/// merge patch replacing `spec.template`, which `kubectl rollout undo` applies as is.
pub fn template_patch(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> serde_json::Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), "replace".into());
    }
    serde_json::json!({"spec": {"template": t}})
}
