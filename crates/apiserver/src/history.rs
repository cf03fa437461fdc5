//! The change history over HTTP, under `/apis/history.reddwarf.io/v1/`:
//! `log` (changes, newest first), `object` (one object at a revision), `list` (a resource, in
//! one namespace or all, at a revision) and `status` (where kept history starts, how far the
//! jj mirror has got). Read-only; a user sees only history of what they may `get` (each
//! change is checked as a `get` of its object), so RBAC governs history as it governs reads.

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use reddwarf_store::{AtRevision, Change, ChangeKind, LogFilter, ObjectKey};
use serde_json::{json, Value};

use crate::auth::{Attributes, Authorizer, User};
use crate::query::Query;
use crate::status::ApiError;
use crate::ApiServer;

const MAX_LIMIT: usize = 100_000;

pub async fn serve(
    api: &Arc<ApiServer>,
    method: &http::Method,
    what: &str,
    query: &Query,
    user: &User,
) -> Response {
    if method != http::Method::GET {
        return ApiError::method_not_allowed().into_response();
    }
    let store = api.store.clone();
    if !store.history_enabled() {
        return ApiError::new(
            404,
            "NotFound",
            "this server keeps no history (it was started with --history=false)",
        )
        .into_response();
    }
    let api2 = api.clone();
    let (what, query, user) = (what.to_string(), query.clone(), user.clone());
    // redb reads and per-change authorization: blocking work, off the async workers
    let result = tokio::task::spawn_blocking(move || match what.as_str() {
        "log" => log(&api2, &query, &user),
        "object" => object(&api2, &query, &user),
        "list" => list(&api2, &query, &user),
        "status" => status(&api2),
        _ => Err(ApiError::path_not_found()),
    })
    .await;
    match result {
        Ok(Ok(v)) => crate::codec::json_value(StatusCode::OK, &v),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

fn store_err(e: reddwarf_store::StoreError) -> ApiError {
    ApiError::internal(e)
}

fn parts(key: &str) -> (String, String, String, String) {
    let k = ObjectKey::from_string(key.to_string());
    (
        k.group().to_string(),
        k.resource().to_string(),
        k.namespace().to_string(),
        k.name().to_string(),
    )
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn change_json(c: &Change) -> Value {
    let (group, resource, namespace, name) = parts(&c.key);
    json!({
        "revision": c.revision.to_string(),
        "time": time(c.by.time_ms),
        "type": match c.kind {
            ChangeKind::Created => "Created",
            ChangeKind::Modified => "Modified",
            ChangeKind::Deleted => "Deleted",
            ChangeKind::Base => "Base",
        },
        "verb": c.by.verb,
        "user": c.by.user,
        "userAgent": c.by.user_agent,
        "group": group,
        "resource": resource,
        "namespace": namespace,
        "name": name,
    })
}

/// The stored object as history shows it: managedFields left out (bookkeeping of who owns
/// which field, not the object's content).
fn object_json(c: &Change) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&c.object).map_err(ApiError::internal)?;
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    Ok(v)
}

/// May `user` read objects of this resource in this namespace? Decisions are cached per
/// (group, resource, namespace, name) for one request.
struct Reader<'a> {
    api: &'a ApiServer,
    user: &'a User,
    seen: HashMap<(String, String, String), bool>,
}

impl Reader<'_> {
    fn may_get(&mut self, group: &str, resource: &str, namespace: &str, name: &str) -> bool {
        let k = (
            group.to_string(),
            resource.to_string(),
            namespace.to_string(),
        );
        if let Some(d) = self.seen.get(&k) {
            return *d;
        }
        // a namespace-wide grant answers for every name in it; else ask for this one
        let any = Attributes::resource("get", group, resource, "", namespace, "");
        if self.api.authorizer.authorize(self.user, &any).allowed {
            self.seen.insert(k, true);
            return true;
        }
        let one = Attributes::resource("get", group, resource, "", namespace, name);
        self.api.authorizer.authorize(self.user, &one).allowed
    }

    fn require(
        &mut self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let attrs = Attributes::resource(verb, group, resource, "", namespace, name);
        let d = self.api.authorizer.authorize(self.user, &attrs);
        if d.allowed {
            Ok(())
        } else {
            Err(attrs.forbidden(self.user, &d.reason))
        }
    }
}

fn revision(query: &Query, name: &str) -> Result<Option<u64>, ApiError> {
    match query.get(name) {
        None | Some("") => Ok(None),
        Some(r) => r.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "{name} must be a revision (a resourceVersion), not {r:?}"
            ))
        }),
    }
}

fn key_params(query: &Query) -> (String, String, String, String) {
    let g = |k: &str| query.get(k).unwrap_or("").to_string();
    (g("group"), g("resource"), g("namespace"), g("name"))
}

fn log(api: &ApiServer, query: &Query, user: &User) -> Result<Value, ApiError> {
    let (group, resource, namespace, name) = key_params(query);
    let limit = match query.get("limit") {
        None | Some("") | Some("0") => MAX_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("limit must be a number, not {l:?}")))?
            .min(MAX_LIMIT),
    };
    let mut reader = Reader {
        api,
        user,
        seen: HashMap::new(),
    };
    let mut filter = LogFilter {
        before: revision(query, "before")?,
        limit,
        ..Default::default()
    };
    if !name.is_empty() {
        if resource.is_empty() {
            return Err(ApiError::bad_request("a name needs a resource"));
        }
        reader.require("get", &group, &resource, &namespace, &name)?;
        filter.key = Some(
            ObjectKey::new(&group, &resource, &namespace, &name)
                .as_str()
                .to_string(),
        );
    } else if !resource.is_empty() {
        filter.prefix = Some(if namespace.is_empty() {
            ObjectKey::resource_prefix(&group, &resource)
        } else {
            ObjectKey::namespace_prefix(&group, &resource, &namespace)
        });
    } else if !namespace.is_empty() {
        filter.namespace = Some(namespace.clone());
    }
    let store = &api.store;
    // Unreadable changes are filtered out after the limit is applied by the store: ask for
    // more while some were hidden, so that the answer is `limit` readable changes.
    let mut items = Vec::new();
    loop {
        let page = store.history_log(&filter).map_err(store_err)?;
        let full = page.len() >= filter.limit;
        let last = page.last().map(|c| c.revision);
        for c in &page {
            if items.len() >= limit {
                break;
            }
            let (g, r, ns, n) = parts(&c.key);
            if reader.may_get(&g, &r, &ns, &n) {
                items.push(change_json(c));
            }
        }
        match last {
            Some(last) if full && items.len() < limit && last > 0 && filter.key.is_none() => {
                filter.before = Some(last - 1);
            }
            _ => break,
        }
    }
    let start = store.history_start().map_err(store_err)?.unwrap_or(0);
    Ok(json!({
        "kind": "ChangeList",
        "apiVersion": "history.reddwarf.io/v1",
        "metadata": {"resourceVersion": store.revision().to_string()},
        "historyStart": start.to_string(),
        "items": items,
    }))
}

fn at_revision(query: &Query) -> Result<u64, ApiError> {
    revision(query, "revision")?.ok_or_else(|| ApiError::bad_request("revision is required"))
}

fn pruned(start: u64, revision: u64) -> ApiError {
    ApiError::gone(format!(
        "history before revision {start} was pruned (asked for {revision}); kept history starts at {start}"
    ))
}

fn object(api: &ApiServer, query: &Query, user: &User) -> Result<Value, ApiError> {
    let (group, resource, namespace, name) = key_params(query);
    if resource.is_empty() || name.is_empty() {
        return Err(ApiError::bad_request("resource and name are required"));
    }
    let rev = at_revision(query)?;
    Reader {
        api,
        user,
        seen: HashMap::new(),
    }
    .require("get", &group, &resource, &namespace, &name)?;
    let key = ObjectKey::new(&group, &resource, &namespace, &name);
    let current = api.store.revision();
    if rev > current {
        return Err(ApiError::new(
            504,
            "Timeout",
            format!("revision {rev} is newer than this server's {current}; retry"),
        ));
    }
    match api.store.history_at(key.as_str(), rev).map_err(store_err)? {
        AtRevision::Pruned { start } => Err(pruned(start, rev)),
        AtRevision::Absent(deleted) => {
            let mut e = ApiError::not_found(&group, &resource, &name);
            e.message = match deleted {
                Some(c) => format!(
                    "{resource} {name:?} did not exist at revision {rev}: deleted at revision {} by {}",
                    c.revision,
                    if c.by.user.is_empty() { "an unknown user" } else { &c.by.user }
                ),
                None => format!("{resource} {name:?} did not exist at revision {rev}"),
            };
            Err(e)
        }
        AtRevision::Present(c) => Ok(json!({
            "kind": "ObjectAtRevision",
            "apiVersion": "history.reddwarf.io/v1",
            "revision": rev.to_string(),
            "change": change_json(&c),
            "object": object_json(&c)?,
        })),
    }
}

fn list(api: &ApiServer, query: &Query, user: &User) -> Result<Value, ApiError> {
    let (group, resource, namespace, _) = key_params(query);
    if resource.is_empty() {
        return Err(ApiError::bad_request("resource is required"));
    }
    let rev = at_revision(query)?;
    Reader {
        api,
        user,
        seen: HashMap::new(),
    }
    .require("list", &group, &resource, &namespace, "")?;
    let prefix = if namespace.is_empty() {
        ObjectKey::resource_prefix(&group, &resource)
    } else {
        ObjectKey::namespace_prefix(&group, &resource, &namespace)
    };
    let Some(changes) = api.store.history_list_at(&prefix, rev).map_err(store_err)? else {
        let start = api.store.history_start().map_err(store_err)?.unwrap_or(0);
        return Err(pruned(start, rev));
    };
    let items = changes
        .iter()
        .map(object_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "kind": "List",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rev.to_string()},
        "items": items,
    }))
}

fn status(api: &ApiServer) -> Result<Value, ApiError> {
    let store = &api.store;
    let mirror = api
        .history_mirror
        .read()
        .map(|m| m.clone())
        .unwrap_or(Value::Null);
    Ok(json!({
        "kind": "HistoryStatus",
        "apiVersion": "history.reddwarf.io/v1",
        "revision": store.revision().to_string(),
        "historyStart": store.history_start().map_err(store_err)?.unwrap_or(0).to_string(),
        "records": store.history_records().map_err(store_err)?,
        "mirror": mirror,
    }))
}
