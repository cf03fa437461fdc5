//! The HTTP side of the REST verbs over the catalogue: get, list, create, update, patch,
//! delete, deletecollection. Each decodes its body, calls the registry and answers in the
//! negotiated form; what a write does is the registry's (see `registry`).

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use reddwarf_store::{ReadView, Revision};
use serde_json::{json, Value};

use crate::codec::{self, Wanted};
use crate::field_manager::{self, APPLY};
use crate::list_stream;
use crate::meta::{meta_mut, meta_str};
use crate::pagination;
use crate::patch;
use crate::registry::{self, parse_stored, DeleteOptions, Deleted, Via, Written};
use crate::request::{ListFrom, ListOptions, Scope, Selectors};
use crate::status::{ApiError, ApiResult};
use crate::table;

impl Scope<'_> {
    /// Answers with what a write produced.
    pub fn respond_written(&self, code: StatusCode, w: Written) -> ApiResult<Response> {
        match w {
            Written::Stored(b) => self.respond_stored(code, b),
            Written::Preview(b) => self.respond(code, b),
        }
    }
}

pub fn get(scope: &Scope) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    let view = scope.api.store.read().map_err(ApiError::internal)?;
    let key = scope.key(scope.name());
    let found = view.get(key.as_str()).map_err(ApiError::internal)?;
    scope
        .api
        .metrics
        .storage("get", scope.kind, started.elapsed());
    match found {
        Some((_, bytes)) => scope.respond_stored(StatusCode::OK, bytes),
        None => Err(scope.not_found(scope.name())),
    }
}

/// A read without a resourceVersion is linearizable: on a member of several it waits for
/// the leader's read index (503 when no majority answers); `resourceVersion=0` reads the
/// member's own state without asking anyone.
pub async fn consistent_get(scope: &Scope<'_>) -> ApiResult<()> {
    match scope.query.get("resourceVersion") {
        None | Some("") => linearize(scope).await,
        Some(_) => Ok(()),
    }
}

async fn linearize(scope: &Scope<'_>) -> ApiResult<()> {
    scope
        .api
        .consensus
        .linearize()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))
}

/// Waits (briefly, as upstream does) for the store to reach `rev`.
async fn wait_for_revision(scope: &Scope<'_>, rev: Revision) -> ApiResult<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while scope.api.store.revision() < rev {
        if tokio::time::Instant::now() >= deadline {
            let mut e = ApiError::timeout(format!(
                "Too large resource version: {rev}, current: {}",
                scope.api.store.revision()
            ));
            e.details = Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            );
            return Err(e);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub async fn list(scope: &Scope<'_>) -> ApiResult<Response> {
    let opts = ListOptions::parse(scope.query, scope.kind)?;
    let limit = opts.limit;
    // All namespaces of a namespaced kind, or one namespace (empty for cluster-scoped kinds).
    let prefix = scope.prefix(scope.kind.namespaced && scope.rp.namespace.is_empty());
    let current = || -> ApiResult<Arc<ReadView>> {
        Ok(Arc::new(
            scope.api.store.read().map_err(ApiError::internal)?,
        ))
    };
    // Whether the list reads a held snapshot (a continue token's, or an exact revision's).
    let mut continued = false;
    let (view, start): (Arc<ReadView>, Option<String>) = match &opts.from {
        ListFrom::Continue(token) => {
            let (rev, start) = pagination::decode_token(token, &prefix)?;
            match rev {
                // An inconsistent token (from a 410): the rest of the list as it is now.
                None => (current()?, Some(start)),
                Some(rev) => match scope.api.snapshots.get(rev) {
                    Some(v) => {
                        continued = true;
                        (v, Some(start))
                    }
                    None => return Err(pagination::expired(&prefix, &start)),
                },
            }
        }
        ListFrom::Exact(rev) => {
            let rev = *rev;
            wait_for_revision(scope, rev).await?;
            let now = current()?;
            if now.revision() == rev {
                (now, None)
            } else if let Some(v) = scope.api.snapshots.get(rev) {
                (v, None)
            } else {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rev} ({})",
                    now.revision()
                )));
            }
        }
        ListFrom::NotOlderThan(rev) => {
            wait_for_revision(scope, *rev).await?;
            (current()?, None)
        }
        ListFrom::Current => (current()?, None),
        ListFrom::Consistent => {
            linearize(scope).await?;
            (current()?, None)
        }
    };
    // Selectors are tested on the stored form (an aliased kind's selectable fields name it).
    let filtering = !opts.selectors.is_empty();
    let keep = |bytes: &[u8]| {
        if !filtering {
            return true;
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => opts.selectors.matches(&v),
            Err(_) => false,
        }
    };
    let started = std::time::Instant::now();
    let rv = view.revision().to_string();
    // A continued list knows what remains from its previous page; only a first page counts.
    let list_id = pagination::list_id(
        &prefix,
        scope.query.get("labelSelector"),
        scope.query.get("fieldSelector"),
    );
    let known = match (&start, continued) {
        (Some(s), true) => scope
            .api
            .snapshots
            .remaining_after(view.revision(), &list_id, s),
        _ => None,
    };
    let remaining_of = |counted: Option<u64>, served: u64, more: Option<&String>| -> Option<u64> {
        let remaining = match known {
            Some(r) => more.map(|_| r.saturating_sub(served)),
            None => counted,
        };
        scope.api.snapshots.served(&view, continued, more.is_some());
        if let (Some(k), Some(r)) = (more, remaining) {
            scope
                .api
                .snapshots
                .note_remaining(view.revision(), &list_id, k, r);
        }
        remaining
    };
    // A whole list (no limit) is written as it is read; a page is bounded by its limit.
    let streamed = limit == 0
        && !scope.kind.converts_on_read()
        && matches!(
            scope.wanted,
            Wanted::Json | Wanted::Protobuf | Wanted::Metadata { .. }
        );
    if streamed {
        let items = list_stream::Items {
            view: view.clone(),
            prefix: prefix.clone(),
            start: start.clone(),
            selectors: Selectors::parse(scope.query, scope.kind)?,
            slim: scope.slim,
        };
        let (api, kind) = (scope.api.clone(), scope.kind.clone());
        let done = move || api.metrics.storage("list", &kind, started.elapsed());
        let (body, content_type) = if let Wanted::Metadata { v1beta1 } = scope.wanted {
            let header = partial_list_header(v1beta1, &rv, None, None);
            let body = list_stream::partial(items, header, v1beta1, done);
            (Some(body), "application/json")
        } else if matches!(scope.wanted, Wanted::Json) {
            let header = list_header(scope, &rv, None, None);
            (
                Some(list_stream::json(items, header, done)),
                "application/json",
            )
        } else {
            let encoder = reddwarf_kubeproto::ListEncoder::new(
                &scope.kind.api_version(),
                &scope.kind.list_kind(),
            )
            .ok();
            let metadata = json!({ "resourceVersion": rv });
            // Measuring the list reads all of it: off the async threads.
            let body = match encoder {
                Some(e) => tokio::task::spawn_blocking(move || {
                    list_stream::protobuf(items, e, &metadata, done)
                })
                .await
                .map_err(ApiError::internal)?,
                None => None,
            };
            (body, "application/vnd.kubernetes.protobuf")
        };
        // No body: an item without a protobuf form; answered below as before (JSON).
        if let Some(body) = body {
            return Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(body)
                .map_err(ApiError::internal);
        }
    }
    let partial = match scope.wanted {
        Wanted::Metadata { v1beta1 } => Some(v1beta1),
        _ => None,
    };
    if matches!(scope.wanted, Wanted::Json) || partial.is_some() {
        // Items are stored as the exact JSON served: copy each once, from the store's page
        // into one buffer, and send the list as header, items and footer chunks (a metadata
        // list splices each item's metadata from its bytes).
        let mut items = Vec::new();
        let mut failed = None;
        let mut served = 0u64;
        let (continue_after, counted) = view
            .list_each(
                &prefix,
                start.as_deref(),
                limit,
                known.is_none(),
                keep,
                |_, b| {
                    served += 1;
                    // An aliased kind's items are converted, the others copied as they are.
                    let b = match scope.served_bytes(b) {
                        Ok(b) => b,
                        Err(e) => {
                            failed.get_or_insert(e);
                            return;
                        }
                    };
                    if !items.is_empty() {
                        items.push(b',');
                    }
                    let b = if scope.slim {
                        crate::slim::without_managed_fields(&b)
                    } else {
                        b
                    };
                    match partial {
                        Some(v1beta1) => crate::slim::push_partial(&b, v1beta1, &mut items),
                        None => items.extend_from_slice(&b),
                    }
                },
            )
            .map_err(ApiError::internal)?;
        if let Some(e) = failed {
            return Err(e);
        }
        scope
            .api
            .metrics
            .storage("list", scope.kind, started.elapsed());
        let remaining = remaining_of(counted, served, continue_after.as_ref());
        let token = continue_after
            .as_ref()
            .map(|k| pagination::encode_token(view.revision(), &prefix, k));
        let header = match partial {
            Some(v1beta1) => partial_list_header(v1beta1, &rv, token.as_deref(), remaining),
            None => list_header(scope, &rv, token.as_deref(), remaining),
        };
        let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = vec![
            Ok(bytes::Bytes::from(header)),
            Ok(bytes::Bytes::from(items)),
            Ok(bytes::Bytes::from_static(b"]}\n")),
        ];
        return Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from_stream(futures::stream::iter(chunks)))
            .map_err(ApiError::internal);
    }
    let mut page = view
        .list(&prefix, start.as_deref(), limit, known.is_none(), keep)
        .map_err(ApiError::internal)?;
    page.remaining = remaining_of(
        page.remaining,
        page.items.len() as u64,
        page.continue_after.as_ref(),
    );
    scope
        .api
        .metrics
        .storage("list", scope.kind, started.elapsed());
    if scope.kind.converts_on_read() {
        for (_, b) in page.items.iter_mut() {
            *b = scope.served_bytes(b)?.into_owned();
        }
    }
    if scope.slim {
        for (_, b) in page.items.iter_mut() {
            if let std::borrow::Cow::Owned(o) = crate::slim::without_managed_fields(b) {
                *b = o;
            }
        }
    }
    let token = page
        .continue_after
        .as_ref()
        .map(|k| pagination::encode_token(view.revision(), &prefix, k));
    if let Wanted::Table { .. } = scope.wanted {
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|(_, b)| parse_stored(b))
            .collect::<ApiResult<_>>()?;
        let mut t = table::table(
            scope.kind,
            &items,
            &rv,
            token.as_deref().unwrap_or(""),
            scope.query,
        )?;
        if let Some(r) = page.remaining {
            t["metadata"]["remainingItemCount"] = json!(r);
        }
        return Ok(codec::json_value(StatusCode::OK, &t));
    }
    let mut out = list_header(scope, &rv, token.as_deref(), page.remaining).into_bytes();
    for (i, (_, b)) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b);
    }
    out.extend_from_slice(b"]}");
    Ok(codec::respond_object(StatusCode::OK, scope.wanted, out))
}

/// A list's `metadata`: its revision, and where a paginated list continues.
fn list_meta(rv: &str, token: Option<&str>, remaining: Option<u64>) -> Value {
    let mut meta = json!({"resourceVersion": rv});
    if let Some(t) = token {
        meta["continue"] = json!(t);
        if let Some(r) = remaining {
            meta["remainingItemCount"] = json!(r);
        }
    }
    meta
}

/// `{"kind":"<Kind>List","apiVersion":..,"metadata":{..},"items":[` for a list response.
fn list_header(scope: &Scope, rv: &str, token: Option<&str>, remaining: Option<u64>) -> String {
    format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        scope.kind.list_kind(),
        scope.kind.api_version(),
        list_meta(rv, token, remaining)
    )
}

/// The header of a `PartialObjectMetadataList` (`as=PartialObjectMetadataList`).
fn partial_list_header(
    v1beta1: bool,
    rv: &str,
    token: Option<&str>,
    remaining: Option<u64>,
) -> String {
    format!(
        "{{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"meta.k8s.io/{}\",\"metadata\":{},\"items\":[",
        if v1beta1 { "v1beta1" } else { "v1" },
        list_meta(rv, token, remaining)
    )
}

pub async fn create(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let obj = scope.decode_body(body)?;
    let w = registry::create(scope, obj, None).await?;
    scope.respond_written(StatusCode::CREATED, w)
}

pub async fn update(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let obj = scope.decode_body(body)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let body_name = meta_str(&obj, "name");
    if body_name != scope.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            scope.name()
        )));
    }
    let change = |_: &Value| Ok(Some(obj.clone()));
    match registry::update(scope, &change, Via::Put).await {
        Ok(w) => scope.respond_written(StatusCode::OK, w),
        // Upstream's AllowCreateOnUpdate kinds (Endpoints, Events, Leases, RBAC, ...): a PUT
        // of a missing object creates it.
        Err(e) if e.code == 404 && scope.kind.create_on_update && scope.subresource().is_none() => {
            let mut obj = obj.clone();
            meta_mut(&mut obj).remove("resourceVersion");
            let w = registry::create(scope, obj, None).await?;
            scope.respond_written(StatusCode::CREATED, w)
        }
        Err(e) => Err(e),
    }
}

pub async fn patch(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let ct = codec::content_type(scope.headers);
    patch::check_content_type(&ct, scope.kind)?;
    field_manager::check_options(scope.write.field_manager.as_deref(), scope.write.force, &ct)?;
    let result = if ct == APPLY {
        let fm = scope.field_manager()?;
        let applied = fm.decode_applied(body)?;
        let change = |old: &Value| {
            let (v, changed) = fm.apply(old, &applied)?;
            Ok(changed.then_some(v))
        };
        registry::update(scope, &change, Via::Apply).await
    } else {
        let change = |old: &Value| patch::apply(&ct, old, body).map(Some);
        registry::update(scope, &change, Via::Patch).await
    };
    match result {
        Ok(w) => scope.respond_written(StatusCode::OK, w),
        // Applying a configuration for an object that does not exist creates it.
        Err(e) if e.code == 404 && ct == APPLY && scope.subresource().is_none() => {
            apply_create(scope, body).await
        }
        Err(e) => Err(e),
    }
}

async fn apply_create(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let fm = scope.field_manager()?;
    let applied = fm.decode_applied(body)?;
    if meta_str(&applied, "name") != scope.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta_str(&applied, "name"),
            scope.name()
        )));
    }
    let (obj, _) = fm.apply(&json!({}), &applied)?;
    // The object is owned by the applier, not by an Update of its manager.
    let owned = obj
        .pointer("/metadata/managedFields")
        .cloned()
        .unwrap_or(json!([]));
    let w = registry::create(scope, obj, Some(owned)).await?;
    scope.respond_written(StatusCode::CREATED, w)
}

/// Reads DeleteOptions from a DELETE body (JSON or protobuf), or defaults.
fn delete_options(scope: &Scope, body: &[u8]) -> ApiResult<DeleteOptions> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeleteOptions::default());
    }
    DeleteOptions::from_value(&scope.decode_body(body)?)
}

pub async fn delete(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_options(scope, body)?;
    if let Some(w) = opts.default_policy_warning(scope.kind) {
        scope.warn(w.into());
    }
    match registry::delete(scope, &opts).await? {
        Deleted::Remaining(object) => scope.respond_stored(StatusCode::OK, object),
        Deleted::Removed { object, .. } if scope.kind.delete_returns_object => {
            scope.respond_stored(StatusCode::OK, object)
        }
        Deleted::Removed { uid, .. } => {
            let kind = scope.kind;
            let mut details =
                json!({"name": scope.name(), "group": kind.group, "kind": kind.plural, "uid": uid});
            if kind.group.is_empty() {
                details.as_object_mut().map(|m| m.remove("group"));
            }
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details});
            Ok(codec::json_value(StatusCode::OK, &status))
        }
    }
}

pub async fn delete_collection(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_options(scope, body)?;
    if let Some(w) = opts.default_policy_warning(scope.kind) {
        scope.warn(w.into());
    }
    let selectors = Selectors::parse(scope.query, scope.kind)?;
    let (rv, items) = registry::delete_collection(scope, &selectors, &opts).await?;
    let mut out = format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"}},\"items\":[",
        scope.kind.list_kind(),
        scope.kind.api_version(),
        rv
    )
    .into_bytes();
    // Each item is freed as it is copied: the answer for a large namespace is hundreds of MB.
    for (i, b) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&scope.served_bytes(&b)?);
    }
    out.extend_from_slice(b"]}");
    Ok(codec::respond_object(StatusCode::OK, scope.wanted, out))
}
