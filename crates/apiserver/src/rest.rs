//! The REST verbs over the catalogue: get, list, create, update, patch, delete,
//! deletecollection. Every write is a [`Mutation`] proposed through consensus; reads use one
//! consistent store view.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use reddwarf_resources::{ResourceKind, SubresourceRole};
use reddwarf_store::{Mutation, MutationError, ObjectKey, Outcome, ReadView, Revision};
use serde_json::{json, Value};

use crate::codec::{self, Wanted};
use crate::meta::{self, finalizers, meta_mut, meta_str};
use crate::pagination;
use crate::path::ResourcePath;
use crate::query::Query;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{qualified, ApiError, ApiResult, Cause};
use crate::table;
use crate::{managed_fields, patch, service_alloc, ApiServer, User};

/// Everything a verb needs about the request.
pub struct Ctx<'a> {
    /// Warnings for the client (`Warning` response headers), e.g. dropped unknown fields.
    pub warnings: std::sync::Mutex<Vec<String>>,
    pub api: &'a Arc<ApiServer>,
    pub kind: &'a ResourceKind,
    pub rp: &'a ResourcePath,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    #[allow(dead_code)]
    pub user: &'a User,
    pub wanted: Wanted,
    /// Leave `metadata.managedFields` out of what is served (the in-process controllers).
    pub slim: bool,
}

/// How often a write retries when a concurrent writer got in first (no client precondition).
const MAX_RETRIES: usize = 16;

impl Ctx<'_> {
    pub fn key(&self, name: &str) -> ObjectKey {
        ObjectKey::new(
            self.kind.storage_group(),
            self.kind.storage_plural(),
            &self.rp.namespace,
            name,
        )
    }

    /// The key prefix of the collection a list, watch or deletecollection reads: one
    /// namespace, or all of them (`all`).
    pub fn prefix(&self, all: bool) -> String {
        let (group, plural) = (self.kind.storage_group(), self.kind.storage_plural());
        if all {
            ObjectKey::resource_prefix(group, plural)
        } else {
            ObjectKey::namespace_prefix(group, plural, &self.rp.namespace)
        }
    }

    /// A stored object in this request's version (a kind with a storage alias converts).
    pub fn decode_stored(&self, bytes: &[u8]) -> ApiResult<Value> {
        Ok(from_storage(self.kind, parse_stored(bytes)?))
    }

    /// The stored bytes of an object as served in this request's version; borrowed (no
    /// decode) for kinds without a storage alias.
    pub fn served_bytes<'b>(&self, bytes: &'b [u8]) -> ApiResult<std::borrow::Cow<'b, [u8]>> {
        if self.kind.storage.is_none() {
            return Ok(std::borrow::Cow::Borrowed(bytes));
        }
        let v = self.decode_stored(bytes)?;
        Ok(std::borrow::Cow::Owned(
            serde_json::to_vec(&v).map_err(ApiError::internal)?,
        ))
    }

    /// A validated object of this request's version in the form it is stored: converted,
    /// then in canonical field order, for a kind with a storage alias; untouched otherwise.
    fn to_storage(&self, obj: &mut Value) {
        if let Some(alias) = self.kind.storage {
            *obj = (alias.to_storage)(obj);
            canonical_order(obj);
        }
    }

    fn name(&self) -> &str {
        self.rp.name.as_deref().unwrap_or("")
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.kind.group, self.kind.plural, name)
    }

    pub fn warn(&self, w: String) {
        if let Ok(mut v) = self.warnings.lock() {
            v.push(w);
        }
    }

    /// `fieldValidation`: Strict refuses unknown and duplicate fields, Warn (upstream's
    /// default) drops them with a warning, Ignore drops them silently.
    pub fn field_validation(&self) -> ApiResult<&str> {
        match self.query.get("fieldValidation").unwrap_or("Warn") {
            v @ ("Strict" | "Warn" | "Ignore") => Ok(v),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
            ))),
        }
    }

    /// Decodes an object body, applying `fieldValidation` to duplicate JSON keys.
    pub fn decode_body(&self, body: &[u8]) -> ApiResult<Value> {
        let obj = codec::decode_object(self.headers, body)?;
        if matches!(
            codec::content_type(self.headers).as_str(),
            "application/json" | ""
        ) {
            let dups = codec::duplicate_fields(body);
            if !dups.is_empty() {
                match self.field_validation()? {
                    "Strict" => {
                        let list: Vec<String> = dups
                            .iter()
                            .map(|d| format!("duplicate field {d:?}"))
                            .collect();
                        return Err(ApiError::bad_request(format!(
                            "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                            self.kind.kind,
                            self.kind.version,
                            self.kind.kind,
                            list.join(", ")
                        )));
                    }
                    "Warn" => {
                        for d in dups {
                            self.warn(format!("duplicate field {d:?}"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(obj)
    }

    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.query.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: valid values are \"All\""
            ))),
        }
    }

    pub fn label_selector(&self) -> ApiResult<LabelSelector> {
        LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))
    }

    pub fn field_selector(&self) -> ApiResult<FieldSelector> {
        FieldSelector::parse(
            self.query.get("fieldSelector").unwrap_or(""),
            self.kind.selectable_fields,
        )
    }

    /// Sends one stored object in the negotiated form.
    pub fn respond(&self, code: StatusCode, bytes: Vec<u8>) -> ApiResult<Response> {
        let bytes = if self.slim {
            crate::slim::without_managed_fields(&bytes).into_owned()
        } else {
            bytes
        };
        match self.wanted {
            Wanted::Table { .. } => {
                let v: Value = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
                let rv = meta_str(&v, "resourceVersion").to_string();
                let t = table::table(self.kind, &[v], &rv, "", self.query)?;
                Ok(codec::json_value(code, &t))
            }
            w => Ok(codec::respond_object(code, w, bytes)),
        }
    }

    fn propose_error(&self, e: reddwarf_consensus::ProposeError) -> ApiError {
        match e {
            reddwarf_consensus::ProposeError::NotLeader => {
                ApiError::unavailable("this control-plane node is not the leader; retry")
            }
            reddwarf_consensus::ProposeError::ShuttingDown => {
                ApiError::unavailable("the server is shutting down")
            }
            other => ApiError::internal(other),
        }
    }

    pub async fn propose(&self, m: Mutation) -> ApiResult<Outcome> {
        let op = operation(&m);
        let started = std::time::Instant::now();
        let out = self
            .api
            .consensus
            .propose(m)
            .await
            .map_err(|e| self.propose_error(e));
        self.api.metrics.storage(op, self.kind, started.elapsed());
        out
    }

    pub async fn propose_all(&self, ms: Vec<Mutation>) -> ApiResult<Vec<Outcome>> {
        self.api
            .consensus
            .propose_all(ms)
            .await
            .map_err(|e| self.propose_error(e))
    }

    /// Sends an object read from the store (or returned by a proposal), converted to this
    /// request's version.
    pub fn respond_stored(&self, code: StatusCode, bytes: Vec<u8>) -> ApiResult<Response> {
        if self.kind.storage.is_none() {
            return self.respond(code, bytes);
        }
        let served = self.served_bytes(&bytes)?.into_owned();
        self.respond(code, served)
    }

    fn refused(&self, name: &str, e: MutationError) -> ApiError {
        match e {
            MutationError::AlreadyExists => {
                ApiError::already_exists(self.kind.group, self.kind.plural, name)
            }
            MutationError::NotFound => self.not_found(name),
            MutationError::Conflict => ApiError::conflict(self.kind.group, self.kind.plural, name),
            MutationError::NamespaceNotFound(ns) => ApiError::not_found("", "namespaces", &ns),
            MutationError::NamespaceTerminating(ns) => {
                let mut e = ApiError::forbidden(
                    self.kind.group,
                    self.kind.plural,
                    name,
                    &format!("unable to create new content in namespace {ns} because it is being terminated"),
                );
                if let Some(d) = e.details.as_mut().and_then(Value::as_object_mut) {
                    d.insert(
                        "causes".into(),
                        json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]),
                    );
                }
                e
            }
            MutationError::ClaimTaken(c) => ApiError::invalid(
                self.kind.group,
                self.kind.kind,
                name,
                vec![Cause::invalid("spec", &c, "already allocated")],
            ),
            MutationError::Invalid(m) => ApiError::internal(m),
        }
    }
}

/// The storage operation a mutation is, as upstream's storage metrics name them.
fn operation(m: &Mutation) -> &'static str {
    match m {
        Mutation::Create { .. } => "create",
        Mutation::Update { .. } => "update",
        Mutation::Delete { .. } => "delete",
        Mutation::WithClaims { inner, .. } => operation(inner),
    }
}

/// A stored object as `kind`'s version serves it: converted, with the fields Go always
/// emits and in canonical order, for a kind with a storage alias; the object itself
/// otherwise.
pub fn from_storage(kind: &ResourceKind, v: Value) -> Value {
    match kind.storage {
        None => v,
        Some(alias) => {
            let mut out = (alias.from_storage)(&v);
            kind.fill_always_emitted(&mut out);
            canonical_order(&mut out);
            out
        }
    }
}

pub fn parse_stored(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))
}

fn parse_rv(s: &str) -> ApiResult<Revision> {
    s.parse::<Revision>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resourceVersion {s:?}: must be a decimal number"
        ))
    })
}

/// Checks apiVersion/kind of a body against the URL, filling them in when absent.
fn check_type(ctx: &Ctx, obj: &mut Value) -> ApiResult<()> {
    let want_av = ctx.kind.api_version();
    let m = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    match m.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) if av != want_av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
        _ => {}
    }
    match m.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("kind".into(), json!(ctx.kind.kind));
        }
        Some(k) if k != ctx.kind.kind => {
            // Upstream decodes the named kind, then fails to convert it to the URL's kind.
            let (want, v) = (ctx.kind.kind, ctx.kind.version);
            let internal = match ctx.kind.group.split('.').next() {
                Some("") | None => "core",
                Some(g) => g,
            };
            return Err(ApiError::bad_request(format!(
                "{k} in version {v:?} cannot be handled as a {want}: converting ({v}.{k}) to ({internal}.{want}): unknown conversion"
            )));
        }
        _ => {}
    }
    let mode = ctx.field_validation()?;
    for unknown in codec::check_schema(obj, mode == "Strict")? {
        if mode == "Warn" {
            ctx.warn(unknown);
        }
    }
    let m = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    match m.get("metadata") {
        None | Some(Value::Object(_)) => {}
        Some(Value::Null) => {
            m.remove("metadata");
        }
        Some(other) => {
            let k = ctx.kind.kind;
            return Err(ApiError::bad_request(format!(
                "{k} in version {:?} cannot be handled as a {k}: json: cannot unmarshal {} into Go struct field {k}.metadata of type v1.ObjectMeta",
                ctx.kind.version,
                codec::type_name(other)
            )));
        }
    }
    // Namespace: must match the URL for namespaced kinds; absent for cluster-scoped ones.
    let ns = meta_str(obj, "namespace").to_string();
    if ctx.kind.namespaced {
        if !ns.is_empty() && ns != ctx.rp.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(obj).insert("namespace".into(), json!(ctx.rp.namespace));
    } else {
        meta_mut(obj).remove("namespace");
    }
    Ok(())
}

/// The rules of a part written through its subresource.
fn validate_part(ctx: &Ctx, pointer: &str, new: &Value, old: &Value) -> ApiResult<()> {
    let errs = reddwarf_resources::validation::validate_part(ctx.kind, pointer, new, old);
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        ctx.kind.group,
        ctx.kind.kind,
        meta_str(new, "name"),
        errs.into_iter()
            .map(|e| Cause {
                reason: e.reason,
                message: e.message,
                field: e.field,
            })
            .collect(),
    ))
}

fn validate(ctx: &Ctx, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let mut causes = Vec::new();
    meta::validate_metadata(ctx.kind.name_rule, obj, &mut causes);
    for e in reddwarf_resources::validation::validate(ctx.kind, obj, old) {
        causes.push(Cause {
            reason: e.reason,
            message: e.message,
            field: e.field,
        });
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            ctx.kind.group,
            ctx.kind.kind,
            meta_str(obj, "name"),
            causes,
        ));
    }
    Ok(())
}

pub fn get(ctx: &Ctx) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    let view = ctx.api.store.read().map_err(ApiError::internal)?;
    let key = ctx.key(ctx.name());
    let found = view.get(key.as_str()).map_err(ApiError::internal)?;
    ctx.api.metrics.storage("get", ctx.kind, started.elapsed());
    match found {
        Some((_, bytes)) => ctx.respond_stored(StatusCode::OK, bytes),
        None => Err(ctx.not_found(ctx.name())),
    }
}

/// Waits (briefly, as upstream does) for the store to reach `rev`.
async fn wait_for_revision(ctx: &Ctx<'_>, rev: Revision) -> ApiResult<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while ctx.api.store.revision() < rev {
        if tokio::time::Instant::now() >= deadline {
            let mut e = ApiError::timeout(format!(
                "Too large resource version: {rev}, current: {}",
                ctx.api.store.revision()
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

pub async fn list(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let labels = ctx.label_selector()?;
    let fields = ctx.field_selector()?;
    let limit: usize = match ctx.query.get("limit") {
        None => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
    };
    // All namespaces of a namespaced kind, or one namespace (empty for cluster-scoped kinds).
    let prefix = ctx.prefix(ctx.kind.namespaced && ctx.rp.namespace.is_empty());
    let (view, start): (Arc<ReadView>, Option<String>) = if let Some(token) =
        ctx.query.get("continue")
    {
        let (rev, start) = pagination::decode_token(token, &prefix)?;
        if ctx.query.get("resourceVersion").is_some_and(|v| v != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        match rev {
            // An inconsistent token (from a 410): the rest of the list as it is now.
            None => (
                Arc::new(ctx.api.store.read().map_err(ApiError::internal)?),
                Some(start),
            ),
            Some(rev) => match ctx.api.snapshots.get(rev) {
                Some(v) => (v, Some(start)),
                None => return Err(pagination::expired(&prefix, &start)),
            },
        }
    } else {
        let rv = ctx.query.get("resourceVersion");
        let rv_match = ctx.query.get("resourceVersionMatch");
        match (rv, rv_match) {
            (None, Some(m)) => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    vec![Cause::forbidden("resourceVersionMatch", &format!("resourceVersionMatch {m:?} is forbidden unless resourceVersion is provided"))],
                ))
            }
            (Some(v), Some("Exact")) => {
                let rev = parse_rv(v)?;
                wait_for_revision(ctx, rev).await?;
                let current = Arc::new(ctx.api.store.read().map_err(ApiError::internal)?);
                if current.revision() == rev {
                    (current, None)
                } else if let Some(v) = ctx.api.snapshots.get(rev) {
                    (v, None)
                } else {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rev} ({})",
                        current.revision()
                    )));
                }
            }
            (Some(v), m) => {
                if let Some(m) = m {
                    if m != "NotOlderThan" {
                        return Err(ApiError::bad_request(format!(
                            "unsupported resourceVersionMatch {m:?}: supported values are \"Exact\", \"NotOlderThan\""
                        )));
                    }
                }
                if v != "0" {
                    wait_for_revision(ctx, parse_rv(v)?).await?;
                }
                (Arc::new(ctx.api.store.read().map_err(ApiError::internal)?), None)
            }
            (None, None) => (Arc::new(ctx.api.store.read().map_err(ApiError::internal)?), None),
        }
    };
    // Selectors are tested on the stored form (an aliased kind's selectable fields name it).
    let filtering = !labels.is_empty() || !fields.is_empty();
    let keep = |bytes: &[u8]| {
        if !filtering {
            return true;
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => labels.matches(&v) && fields.matches(&v),
            Err(_) => false,
        }
    };
    let started = std::time::Instant::now();
    let rv = view.revision().to_string();
    if matches!(ctx.wanted, Wanted::Json) {
        // Items are stored as the exact JSON served: copy each once, from the store's page
        // into one buffer, and send the list as header, items and footer chunks.
        let mut items = Vec::new();
        let mut failed = None;
        let (continue_after, remaining) = view
            .list_each(&prefix, start.as_deref(), limit, true, keep, |_, b| {
                // An aliased kind's items are converted, the others copied as they are.
                let b = match ctx.served_bytes(b) {
                    Ok(b) => b,
                    Err(e) => {
                        failed.get_or_insert(e);
                        return;
                    }
                };
                if !items.is_empty() {
                    items.push(b',');
                }
                if ctx.slim {
                    items.extend_from_slice(&crate::slim::without_managed_fields(&b));
                } else {
                    items.extend_from_slice(&b);
                }
            })
            .map_err(ApiError::internal)?;
        if let Some(e) = failed {
            return Err(e);
        }
        ctx.api.metrics.storage("list", ctx.kind, started.elapsed());
        let token = continue_after.as_ref().map(|k| {
            ctx.api.snapshots.keep(view.clone());
            pagination::encode_token(view.revision(), &prefix, k)
        });
        let header = list_header(ctx, &rv, token.as_deref(), remaining);
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
        .list(&prefix, start.as_deref(), limit, true, keep)
        .map_err(ApiError::internal)?;
    ctx.api.metrics.storage("list", ctx.kind, started.elapsed());
    if ctx.kind.storage.is_some() {
        for (_, b) in page.items.iter_mut() {
            *b = ctx.served_bytes(b)?.into_owned();
        }
    }
    if ctx.slim {
        for (_, b) in page.items.iter_mut() {
            if let std::borrow::Cow::Owned(o) = crate::slim::without_managed_fields(b) {
                *b = o;
            }
        }
    }
    let token = page.continue_after.as_ref().map(|k| {
        ctx.api.snapshots.keep(view.clone());
        pagination::encode_token(view.revision(), &prefix, k)
    });
    if let Wanted::Table { .. } = ctx.wanted {
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|(_, b)| parse_stored(b))
            .collect::<ApiResult<_>>()?;
        let mut t = table::table(
            ctx.kind,
            &items,
            &rv,
            token.as_deref().unwrap_or(""),
            ctx.query,
        )?;
        if let Some(r) = page.remaining {
            t["metadata"]["remainingItemCount"] = json!(r);
        }
        return Ok(codec::json_value(StatusCode::OK, &t));
    }
    let mut out = list_header(ctx, &rv, token.as_deref(), page.remaining).into_bytes();
    for (i, (_, b)) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b);
    }
    out.extend_from_slice(b"]}");
    Ok(codec::respond_object(StatusCode::OK, ctx.wanted, out))
}

/// `{"kind":"<Kind>List","apiVersion":..,"metadata":{..},"items":[` for a list response.
fn list_header(ctx: &Ctx, rv: &str, token: Option<&str>, remaining: Option<u64>) -> String {
    let mut meta = json!({"resourceVersion": rv});
    if let Some(t) = token {
        meta["continue"] = json!(t);
        if let Some(r) = remaining {
            meta["remainingItemCount"] = json!(r);
        }
    }
    format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        ctx.kind.list_kind(),
        ctx.kind.api_version(),
        meta
    )
}

/// The Priority admission step: a pod's priority (and preemption policy) come from its
/// PriorityClass, or from the cluster's globalDefault class; a pod may not state its own.
fn admit_priority(ctx: &Ctx, pod: &mut Value) -> ApiResult<()> {
    let name = meta_str(pod, "name").to_string();
    let class_name = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let view = ctx.api.store.read().map_err(ApiError::internal)?;
    let class: Option<Value> = if class_name.is_empty() {
        let prefix = ObjectKey::resource_prefix("scheduling.k8s.io", "priorityclasses");
        let page = view
            .list(&prefix, None, 0, false, |b| {
                serde_json::from_slice::<Value>(b)
                    .map(|v| v["globalDefault"] == true)
                    .unwrap_or(false)
            })
            .map_err(ApiError::internal)?;
        page.items
            .first()
            .and_then(|(_, b)| serde_json::from_slice(b).ok())
    } else {
        let key = ObjectKey::new("scheduling.k8s.io", "priorityclasses", "", &class_name);
        match view.get(key.as_str()).map_err(ApiError::internal)? {
            Some((_, b)) => Some(serde_json::from_slice(&b).map_err(ApiError::internal)?),
            None => {
                return Err(ApiError::forbidden(
                    "",
                    "pods",
                    &name,
                    &format!("no PriorityClass with name {class_name} was found"),
                ))
            }
        }
    };
    drop(view);
    let priority = class
        .as_ref()
        .and_then(|c| c["value"].as_i64())
        .unwrap_or(0);
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
        if given != priority {
            return Err(ApiError::forbidden("", "pods", &name, &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    spec.insert("priority".into(), json!(priority));
    if let Some(c) = &class {
        if class_name.is_empty() {
            spec.insert("priorityClassName".into(), c["metadata"]["name"].clone());
        }
        if let Some(policy) = c["preemptionPolicy"].as_str() {
            spec.insert("preemptionPolicy".into(), json!(policy));
        }
    }
    Ok(())
}

/// The DefaultStorageClass admission step (upstream `setdefault`): a new claim that names
/// no class (neither `storageClassName`, not even "", nor the beta annotation) gets the
/// default StorageClass, the newest of those annotated default (ties: the first by name).
fn admit_default_storage_class(ctx: &Ctx, pvc: &mut Value) -> ApiResult<()> {
    let beta = pvc
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .is_some();
    if beta
        || pvc
            .pointer("/spec/storageClassName")
            .is_some_and(|c| !c.is_null())
    {
        return Ok(());
    }
    let view = ctx.api.store.read().map_err(ApiError::internal)?;
    let prefix = ObjectKey::resource_prefix("storage.k8s.io", "storageclasses");
    let page = view
        .list(&prefix, None, 0, false, |b| {
            serde_json::from_slice::<Value>(b)
                .map(|v| {
                    let ann = |k: &str| v["metadata"]["annotations"][k] == "true";
                    ann("storageclass.kubernetes.io/is-default-class")
                        || ann("storageclass.beta.kubernetes.io/is-default-class")
                })
                .unwrap_or(false)
        })
        .map_err(ApiError::internal)?;
    drop(view);
    let mut defaults: Vec<(String, String)> = page
        .items
        .iter()
        .filter_map(|(_, b)| serde_json::from_slice::<Value>(b).ok())
        .map(|c| {
            (
                meta_str(&c, "creationTimestamp").to_string(),
                meta_str(&c, "name").to_string(),
            )
        })
        .collect();
    // RFC 3339 UTC timestamps of one width order as strings: newest first, then by name.
    defaults.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let Some((_, name)) = defaults.into_iter().next() else {
        return Ok(());
    };
    if let Some(spec) = pvc.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("storageClassName".into(), json!(name));
    }
    Ok(())
}

/// Server-side preparation of a new object (PrepareForCreate + BeforeCreate). `owned` is
/// the managedFields an apply computed; other creates record an Update by their manager.
fn prepare_create(ctx: &Ctx, obj: &mut Value, owned: Option<Value>) -> ApiResult<()> {
    check_type(ctx, obj)?;
    {
        let kind = ctx.kind;
        let m = meta_mut(obj);
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate = m
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() && !generate.is_empty() {
            m.insert("name".into(), json!(meta::generate_name(&generate)));
        }
        if m.get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        m.remove("resourceVersion");
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("selfLink");
        if kind.generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if is_daemonset(kind) {
            // Upstream's DaemonSet strategy: templateGeneration starts at 1; apps/v1 carries
            // it in this annotation.
            let annotations = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(DS_TEMPLATE_GENERATION.into(), json!("1"));
            }
        }
    }
    if ctx.kind.status && !ctx.kind.create_keeps_status {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    if ctx.kind.group.is_empty() && ctx.kind.plural == "pods" {
        admit_priority(ctx, obj)?;
    }
    if ctx.kind.group.is_empty() && ctx.kind.plural == "persistentvolumeclaims" {
        admit_default_storage_class(ctx, obj)?;
    }
    if ctx.kind.group == "certificates.k8s.io" && ctx.kind.kind == "CertificateSigningRequest" {
        // Upstream's CSR strategy: the requester is who sent it, whatever the body says.
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("username".into(), json!(ctx.user.name));
            spec.insert("groups".into(), json!(ctx.user.groups));
            spec.remove("uid");
            spec.remove("extra");
        }
    }
    ctx.kind.apply_defaults(obj);
    // Ownership is computed from the object as upstream encodes it (no spelled-out zeros).
    canonical_order(obj);
    match owned {
        Some(mf) => {
            meta_mut(obj).insert("managedFields".into(), mf);
        }
        None => {
            // Ownership is the server's to record.
            meta_mut(obj).remove("managedFields");
            managed_fields::track_update(ctx, &json!({}), obj)?;
        }
    }
    validate(ctx, obj, None)
}

pub async fn create(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let obj = ctx.decode_body(body)?;
    create_object(ctx, obj, None).await
}

/// The one path every create takes (POST, and an apply to a missing object): preparation,
/// admission, defaults, validation, then allocation of Service IPs and ports and the proposal.
async fn create_object(
    ctx: &Ctx<'_>,
    mut base: Value,
    owned: Option<Value>,
) -> ApiResult<Response> {
    let dry_run = ctx.dry_run()?;
    prepare_create(ctx, &mut base, owned)?;
    canonical_order(&mut base);
    let name = meta_str(&base, "name").to_string();
    let key = ctx.key(&name);
    // Values we pick (cluster IPs, node ports) may lose a race with a concurrent create:
    // then pick again.
    for _ in 0..8 {
        let mut obj = base.clone();
        let alloc = if is_service(ctx.kind) {
            let view = ctx.api.store.read().map_err(ApiError::internal)?;
            Some(service_alloc::allocate(
                &ctx.api.service_network,
                &view,
                &mut obj,
                None,
            )?)
        } else {
            None
        };
        if dry_run {
            return ctx.respond(
                StatusCode::CREATED,
                serde_json::to_vec(&obj).map_err(ApiError::internal)?,
            );
        }
        ctx.to_storage(&mut obj);
        let mut m = Mutation::Create {
            key: key.as_str().to_string(),
            object: serde_json::to_vec(&obj).map_err(ApiError::internal)?,
            namespace: ctx.kind.namespaced.then(|| ctx.rp.namespace.clone()),
        };
        if let Some(a) = &alloc {
            m = service_alloc::wrap(m, a.claims.clone(), a.releases.clone());
        }
        match ctx.propose(m).await? {
            Outcome::Applied { object, .. } => {
                return ctx.respond_stored(StatusCode::CREATED, object)
            }
            Outcome::Refused(MutationError::ClaimTaken(c)) => {
                if alloc.as_ref().is_some_and(|a| a.retry_on(&c)) {
                    continue;
                }
                return Err(service_alloc::taken_error(&obj, &c));
            }
            Outcome::Refused(e) => return Err(ctx.refused(&name, e)),
        }
    }
    Err(ApiError::internal(
        "could not allocate a free service IP or node port after several attempts",
    ))
}

fn is_service(kind: &ResourceKind) -> bool {
    kind.group.is_empty() && kind.plural == "services"
}

fn is_delete(m: &Mutation) -> bool {
    match m {
        Mutation::Delete { .. } => true,
        Mutation::WithClaims { inner, .. } => is_delete(inner),
        _ => false,
    }
}

/// The parts of an object compared to decide whether a write changes anything.
fn without_volatile(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

/// Who owns what, without the times: a write that changes only an entry's time is no change,
/// one that adds an owner (an apply of values another manager set) is.
fn ownership(v: &Value) -> Vec<Value> {
    v.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e.as_object_mut().map(|m| m.remove("time"));
                    e
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How the current object becomes the new one.
enum Change {
    /// A PUT of this body (to the object, `/status` or `/finalize`).
    Replace(Value),
    /// A PATCH of this content type and body.
    Patch(String, Vec<u8>),
    /// A new object computed from the current one (subresources such as `/scale`); a
    /// resourceVersion it names is a precondition, as in a patch.
    Compute(Compute<'static>),
}

/// Computes the new object from the current one.
pub(crate) type Compute<'a> = std::sync::Arc<dyn Fn(&Value) -> ApiResult<Value> + Send + Sync + 'a>;

/// An update through the normal path (GuaranteedUpdate, defaults, validation, generation,
/// dry run) whose new object `f` computes from the current one.
pub(crate) async fn update_computed(ctx: &Ctx<'_>, f: Compute<'static>) -> ApiResult<Response> {
    write_existing(ctx, Change::Compute(f)).await
}

pub async fn update(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let mut obj = ctx.decode_body(body)?;
    check_type(ctx, &mut obj)?;
    let body_name = meta_str(&obj, "name");
    if body_name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    let create = (ctx.kind.create_on_update && ctx.rp.subresource.is_none()).then(|| obj.clone());
    match write_existing(ctx, Change::Replace(obj)).await {
        // Upstream's AllowCreateOnUpdate kinds (Endpoints, Events, Leases, RBAC, ...): a PUT
        // of a missing object creates it.
        Err(e) if e.code == 404 && create.is_some() => {
            let mut obj = create.unwrap_or_default();
            meta_mut(&mut obj).remove("resourceVersion");
            create_object(ctx, obj, None).await
        }
        other => other,
    }
}

pub async fn patch(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let ct = codec::content_type(ctx.headers);
    patch::check_content_type(&ct, ctx.kind)?;
    managed_fields::check_options(ctx, &ct)?;
    match write_existing(ctx, Change::Patch(ct.clone(), body.to_vec())).await {
        // Applying a configuration for an object that does not exist creates it.
        Err(e) if e.code == 404 && ct == managed_fields::APPLY && ctx.rp.subresource.is_none() => {
            apply_create(ctx, body).await
        }
        other => other,
    }
}

async fn apply_create(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let applied = managed_fields::decode_applied(ctx, body)?;
    if meta_str(&applied, "name") != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta_str(&applied, "name"),
            ctx.name()
        )));
    }
    let (obj, _) = managed_fields::apply(ctx, &json!({}), &applied)?;
    // The object is owned by the applier, not by an Update of its manager.
    let owned = obj
        .pointer("/metadata/managedFields")
        .cloned()
        .unwrap_or(json!([]));
    create_object(ctx, obj, Some(owned)).await
}

/// GuaranteedUpdate: read, compute, propose with the read revision as precondition, retry on
/// a concurrent change unless the client named a resourceVersion itself.
async fn write_existing(ctx: &Ctx<'_>, change: Change) -> ApiResult<Response> {
    let dry_run = ctx.dry_run()?;
    let name = ctx.name().to_string();
    let key = ctx.key(&name);
    let sub = ctx.rp.subresource.as_deref();
    for _ in 0..MAX_RETRIES {
        let view = ctx.api.store.read().map_err(ApiError::internal)?;
        let (rev, bytes) = view
            .get(key.as_str())
            .map_err(ApiError::internal)?
            .ok_or_else(|| ctx.not_found(&name))?;
        drop(view);
        let old = ctx.decode_stored(&bytes)?;
        let mut new = match &change {
            Change::Replace(v) => v.clone(),
            Change::Patch(ct, p) if ct == managed_fields::APPLY => {
                let applied = managed_fields::decode_applied(ctx, p)?;
                let (mut v, changed) = managed_fields::apply(ctx, &old, &applied)?;
                if !changed {
                    return ctx.respond_stored(StatusCode::OK, bytes);
                }
                check_type(ctx, &mut v)?;
                v
            }
            Change::Patch(ct, p) => {
                let mut v = patch::apply(ct, &old, p)?;
                check_type(ctx, &mut v)?;
                if meta_str(&v, "name") != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta_str(&v, "name")
                    )));
                }
                v
            }
            Change::Compute(f) => f(&old)?,
        };
        // The client's resourceVersion is a precondition; otherwise the revision just read.
        let user_rv = match meta_str(&new, "resourceVersion") {
            "" => None,
            s => {
                let r = parse_rv(s)?;
                (r != rev || matches!(change, Change::Replace(_))).then_some(r)
            }
        };
        if let Some(uid) = new.pointer("/metadata/uid").and_then(Value::as_str) {
            let cur = meta_str(&old, "uid");
            if !uid.is_empty() && uid != cur {
                return Err(ApiError::conflict_message(
                    ctx.kind.group,
                    ctx.kind.plural,
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {cur}"),
                ));
            }
        }
        // Defaults first: a write that only leaves out what defaulting fills in is no change,
        // so it must not bump generation (upstream decodes with defaults before comparing).
        ctx.kind.apply_defaults(&mut new);
        // Encoded as upstream would before comparing: a body that spells out a zero value
        // Go leaves out (`hostNetwork: false`, `minReadySeconds: 0`) is the stored object.
        canonical_order(&mut new);
        new = merge_server_fields(ctx, &old, new, sub);
        // Objects stored before a field was always emitted get it with their next write.
        ctx.kind.fill_always_emitted(&mut new);
        if !matches!(&change, Change::Patch(ct, _) if ct == managed_fields::APPLY) {
            // managedFields the client sent replace the stored ones (`[{}]` clears them; none
            // keeps them), as upstream's decodeLiveOrNew: how kubectl and Helm move an object
            // from client-side to server-side apply. Then this manager's change is recorded.
            managed_fields::track_update(ctx, &old, &mut new)?;
        }
        let alloc = if is_service(ctx.kind) {
            let view = ctx.api.store.read().map_err(ApiError::internal)?;
            Some(service_alloc::allocate(
                &ctx.api.service_network,
                &view,
                &mut new,
                Some(&old),
            )?)
        } else {
            None
        };
        match sub.and_then(|s| part_pointer(ctx, s)) {
            Some(p) => {
                // The parent's update rules apply to everything but the part; the part has
                // rules of its own.
                let mut base = old.clone();
                copy_part(p, &new, &mut base);
                validate(ctx, &new, Some(&base))?;
                validate_part(ctx, p, &new, &old)?;
            }
            None => validate(ctx, &new, Some(&old))?,
        }
        if without_volatile(&new) == without_volatile(&old)
            && ownership(&new) == ownership(&old)
            && user_rv.is_none_or(|r| r == rev)
        {
            // A no-op write: no revision bump, no event (upstream skips the storage write).
            return ctx.respond_stored(StatusCode::OK, bytes);
        }
        if dry_run {
            return ctx.respond(
                StatusCode::OK,
                serde_json::to_vec(&new).map_err(ApiError::internal)?,
            );
        }
        canonical_order(&mut new);
        ctx.to_storage(&mut new);
        let expect = user_rv.unwrap_or(rev);
        // The last finalizer of an object being deleted is gone: now it goes. (A pod in its
        // grace period has none and stays until its kubelet deletes it.)
        let finished = old.pointer("/metadata/deletionTimestamp").is_some()
            && (!finalizers(&old).is_empty() || namespace_has_spec_finalizers(ctx.kind, &old))
            && finalizers(&new).is_empty()
            && !namespace_has_spec_finalizers(ctx.kind, &new);
        let m = if finished {
            Mutation::Delete {
                key: key.as_str().to_string(),
                expect_revision: Some(expect),
                expect_uid: None,
            }
        } else {
            Mutation::Update {
                key: key.as_str().to_string(),
                object: serde_json::to_vec(&new).map_err(ApiError::internal)?,
                expect_revision: Some(expect),
                expect_uid: None,
            }
        };
        let m = match &alloc {
            Some(_) if finished => service_alloc::wrap(m, vec![], service_alloc::held(&old)),
            Some(a) => service_alloc::wrap(m, a.claims.clone(), a.releases.clone()),
            None => m,
        };
        match ctx.propose(m).await? {
            Outcome::Applied { object, .. } => return ctx.respond_stored(StatusCode::OK, object),
            Outcome::Refused(MutationError::Conflict) if user_rv.is_none() => continue,
            Outcome::Refused(MutationError::ClaimTaken(c)) => {
                if alloc.as_ref().is_some_and(|a| a.retry_on(&c)) {
                    continue;
                }
                return Err(service_alloc::taken_error(&new, &c));
            }
            Outcome::Refused(e) => return Err(ctx.refused(&name, e)),
        }
    }
    Err(ApiError::conflict(ctx.kind.group, ctx.kind.plural, &name))
}

fn namespace_has_spec_finalizers(kind: &ResourceKind, obj: &Value) -> bool {
    kind.plural == "namespaces"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// Upstream encodes every object from its Go struct: fields in declaration order, map keys
/// sorted. Done once before the write, so the stored bytes are what is served.
pub(crate) fn canonical_order(obj: &mut Value) {
    reddwarf_kubeproto::canonicalize(obj);
}

/// The part of the object a subresource such as `ephemeralcontainers` or `approval` writes.
fn part_pointer(ctx: &Ctx, sub: &str) -> Option<&'static str> {
    match ctx.kind.extra_subresource(sub)?.role {
        SubresourceRole::Part(p) => Some(p),
        _ => None,
    }
}

/// Copies the part at `pointer` from `from` into `to`. Containers (pods' `resize`) carry only
/// their resources and resize policy over, matched by name.
fn copy_part(pointer: &str, from: &Value, to: &mut Value) {
    if pointer == "/spec/containers" {
        let Some(Value::Array(old)) = to.pointer_mut(pointer) else {
            return;
        };
        let new = from.pointer(pointer).and_then(Value::as_array);
        for c in old.iter_mut() {
            let name = c.get("name").cloned();
            let n = new.and_then(|n| n.iter().find(|x| x.get("name") == name.as_ref()));
            for f in ["resources", "resizePolicy"] {
                match n.and_then(|n| n.get(f)) {
                    Some(v) => c[f] = v.clone(),
                    None => {
                        c.as_object_mut().map(|m| m.remove(f));
                    }
                }
            }
        }
        return;
    }
    let (parent, field) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let value = from.pointer(pointer).cloned();
    let mut cur = &mut *to;
    for seg in parent.split('/').filter(|s| !s.is_empty()) {
        if !cur.get(seg).is_some_and(Value::is_object) {
            if value.is_none() {
                return;
            }
            cur[seg] = json!({});
        }
        cur = &mut cur[seg];
    }
    match value {
        Some(v) => cur[field] = v,
        None => {
            cur.as_object_mut().map(|m| m.remove(field));
        }
    }
}

/// Keeps what clients may not change through this endpoint (PrepareForUpdate).
fn merge_server_fields(ctx: &Ctx, old: &Value, mut new: Value, sub: Option<&str>) -> Value {
    match sub {
        Some("status") => {
            // Only status changes through /status.
            let mut merged = old.clone();
            match new.get("status") {
                Some(s) => merged["status"] = s.clone(),
                None => {
                    merged.as_object_mut().map(|m| m.remove("status"));
                }
            }
            if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
                meta_mut(&mut merged).insert("resourceVersion".into(), rv);
            }
            // Upstream's deployment status strategy resets only spec and labels: the
            // deployment controller records the revision annotation through /status.
            if ctx.kind.group == "apps" && ctx.kind.kind == "Deployment" {
                match new.pointer("/metadata/annotations").cloned() {
                    Some(a) => {
                        meta_mut(&mut merged).insert("annotations".into(), a);
                    }
                    None => {
                        meta_mut(&mut merged).remove("annotations");
                    }
                }
            }
            new = merged;
        }
        Some(part) if part_pointer(ctx, part).is_some() => {
            // Upstream's per-subresource strategies: only that part of the object changes.
            let mut merged = old.clone();
            copy_part(part_pointer(ctx, part).unwrap_or(""), &new, &mut merged);
            if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
                meta_mut(&mut merged).insert("resourceVersion".into(), rv);
            }
            new = merged;
        }
        Some("finalize") => {
            // Only spec.finalizers changes through /finalize.
            let mut merged = old.clone();
            let f = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            if !merged.get("spec").is_some_and(Value::is_object) {
                merged["spec"] = json!({});
            }
            merged["spec"]["finalizers"] = f;
            new = merged;
        }
        _ => {
            if ctx.kind.status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
        }
    }
    let om = old.get("metadata").cloned().unwrap_or(json!({}));
    let spec_changed = ctx.kind.generation_changed(old, &new);
    let m = meta_mut(&mut new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match om.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    m.remove("selfLink");
    if ctx.kind.generation && spec_changed && sub.is_none() {
        let g = om.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        m.insert("generation".into(), json!(g));
    }
    if is_daemonset(ctx.kind) && sub.is_none() {
        // Clients may not set templateGeneration; it counts changes of the pod template.
        let mut tg = om
            .pointer(&format!(
                "/annotations/{}",
                DS_TEMPLATE_GENERATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if old.pointer("/spec/template") != new.pointer("/spec/template") {
            tg += 1;
        }
        let m = meta_mut(&mut new);
        if tg > 0 {
            let annotations = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(DS_TEMPLATE_GENERATION.into(), json!(tg.to_string()));
            }
        } else if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(DS_TEMPLATE_GENERATION);
        }
    }
    new
}

/// Where apps/v1 DaemonSets keep upstream's `spec.templateGeneration`.
const DS_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn is_daemonset(kind: &ResourceKind) -> bool {
    kind.group == "apps" && kind.plural == "daemonsets"
}

/// Reads DeleteOptions from a DELETE body (JSON or protobuf), or defaults.
fn delete_options<'a>(ctx: &'a Ctx<'a>) -> impl Fn(&[u8]) -> ApiResult<Value> + 'a {
    move |body: &[u8]| {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        let v = ctx.decode_body(body)?;
        if let Some(k) = v.get("kind").and_then(Value::as_str) {
            if k != "DeleteOptions" {
                return Err(ApiError::bad_request(format!(
                    "the body of a DELETE must be DeleteOptions, got kind {k:?}"
                )));
            }
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            if !matches!(p, "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    vec![Cause {
                        reason: "FieldValueNotSupported",
                        message: format!("Unsupported value: {}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"", json!(p)),
                        field: "propagationPolicy".into(),
                    }],
                ));
            }
        }
        Ok(v)
    }
}

/// What deleting one object means now: remove it, or mark it (finalizers, namespaces, the
/// garbage collector's `orphan`/`foregroundDeletion` finalizers, a bound pod's grace period).
fn deletion(
    ctx: &Ctx,
    key: &ObjectKey,
    rev: Revision,
    old: &Value,
    opts: &Value,
) -> ApiResult<Option<Mutation>> {
    let is_ns = ctx.kind.plural == "namespaces";
    let is_pod = ctx.kind.plural == "pods" && ctx.kind.group.is_empty();
    let terminating = old.pointer("/metadata/deletionTimestamp").is_some();
    let explicit_grace = opts.get("gracePeriodSeconds").and_then(Value::as_i64);
    let remove = Mutation::Delete {
        key: key.as_str().to_string(),
        expect_revision: Some(rev),
        expect_uid: None,
    };
    if terminating {
        // A pod in its grace period goes at once when asked with grace 0 (the kubelet's final
        // delete, or `--force --grace-period=0`); anything else waits for its finalizers.
        if is_pod && explicit_grace == Some(0) && finalizers(old).is_empty() {
            return Ok(Some(remove));
        }
        return Ok(None);
    }
    // Upstream: orphanDependents=true means Orphan; propagationPolicy wins when both are set.
    let policy = opts
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| {
            opts.get("orphanDependents")
                .and_then(Value::as_bool)
                .map(|o| if o { "Orphan" } else { "Background" })
        })
        .or_else(|| is_batch_v1_job(ctx.kind).then_some("Orphan"));
    let gc_finalizer = match policy {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        _ => None,
    };
    let mut fins = finalizers(old);
    if let Some(f) = gc_finalizer {
        if !fins.iter().any(|x| x == f) {
            fins.push(f.to_string());
        }
    }
    // A pod on a node gets its grace period: the kubelet stops it, then deletes it.
    let grace = if is_pod {
        let bound = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            old.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let g = explicit_grace.unwrap_or_else(|| {
            old.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        });
        if bound && !finished {
            g.max(0)
        } else {
            0
        }
    } else {
        0
    };
    if !fins.is_empty() || grace > 0 || (is_ns && namespace_has_spec_finalizers(ctx.kind, old)) {
        let mut new = old.clone();
        let m = meta_mut(&mut new);
        let at = if grace > 0 {
            meta::rfc3339_after(grace)
        } else {
            meta::now_rfc3339()
        };
        m.insert("deletionTimestamp".into(), json!(at));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if !fins.is_empty() {
            m.insert("finalizers".into(), json!(fins));
        }
        if is_ns {
            new["status"] = json!({"phase": "Terminating"});
        }
        canonical_order(&mut new);
        return Ok(Some(Mutation::Update {
            key: key.as_str().to_string(),
            object: serde_json::to_vec(&new).map_err(ApiError::internal)?,
            expect_revision: Some(rev),
            expect_uid: None,
        }));
    }
    if is_service(ctx.kind) {
        return Ok(Some(service_alloc::wrap(
            remove,
            vec![],
            service_alloc::held(old),
        )));
    }
    Ok(Some(remove))
}

/// batch/v1 Jobs keep their pods when a DELETE names no policy (upstream's job strategy
/// `DefaultGarbageCollectionPolicy`, kept for compatibility; kubectl always sends one).
fn is_batch_v1_job(kind: &ResourceKind) -> bool {
    kind.group == "batch" && kind.plural == "jobs"
}

/// Upstream's warning when a Job is deleted without a propagation policy.
const JOB_DELETE_WARNING: &str = "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

fn warn_job_default_policy(ctx: &Ctx, opts: &Value) {
    if is_batch_v1_job(ctx.kind)
        && opts.get("propagationPolicy").is_none_or(Value::is_null)
        && opts.get("orphanDependents").is_none_or(Value::is_null)
    {
        ctx.warn(JOB_DELETE_WARNING.into());
    }
}

fn check_preconditions(ctx: &Ctx, opts: &Value, rev: Revision, old: &Value) -> ApiResult<()> {
    let name = ctx.name();
    if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
        let cur = meta_str(old, "uid");
        if uid != cur {
            return Err(ApiError::conflict_message(
                ctx.kind.group,
                ctx.kind.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {cur}"
                ),
            ));
        }
    }
    if let Some(rv) = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
    {
        if parse_rv(rv)? != rev {
            return Err(ApiError::conflict_message(
                ctx.kind.group,
                ctx.kind.plural,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {rev}"),
            ));
        }
    }
    Ok(())
}

/// Kinds whose DELETE answers with the object rather than a Status (upstream ReturnDeletedObject).
fn returns_object(kind: &ResourceKind) -> bool {
    kind.delete_returns_object
}

pub async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_options(ctx)(body)?;
    warn_job_default_policy(ctx, &opts);
    delete_with(ctx, opts).await
}

/// Deletes the pod a pods/eviction request names, with the eviction's delete options.
pub async fn delete_pod_for_eviction(ctx: &Ctx<'_>, name: &str, opts: &Value) -> ApiResult<()> {
    debug_assert_eq!(ctx.rp.name.as_deref(), Some(name));
    delete_with(ctx, opts.clone()).await.map(|_| ())
}

async fn delete_with(ctx: &Ctx<'_>, opts: Value) -> ApiResult<Response> {
    let dry_run = ctx.dry_run()?
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let name = ctx.name().to_string();
    let key = ctx.key(&name);
    for _ in 0..MAX_RETRIES {
        let view = ctx.api.store.read().map_err(ApiError::internal)?;
        let (rev, bytes) = view
            .get(key.as_str())
            .map_err(ApiError::internal)?
            .ok_or_else(|| ctx.not_found(&name))?;
        drop(view);
        // Deletion touches metadata only, so it works on the stored form.
        let old = parse_stored(&bytes)?;
        check_preconditions(ctx, &opts, rev, &old)?;
        let Some(m) = deletion(ctx, &key, rev, &old, &opts)? else {
            // Already being deleted: nothing more to do until its finalizers are gone.
            return ctx.respond_stored(StatusCode::OK, bytes);
        };
        if dry_run {
            return ctx.respond_stored(StatusCode::OK, bytes);
        }
        let removed = is_delete(&m);
        match ctx.propose(m).await? {
            Outcome::Applied { object, .. } => {
                if !removed || returns_object(ctx.kind) {
                    return ctx.respond_stored(StatusCode::OK, object);
                }
                let mut details = json!({"name": name, "group": ctx.kind.group, "kind": ctx.kind.plural, "uid": meta_str(&old, "uid")});
                if ctx.kind.group.is_empty() {
                    details.as_object_mut().map(|m| m.remove("group"));
                }
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details});
                return Ok(codec::json_value(StatusCode::OK, &status));
            }
            Outcome::Refused(MutationError::Conflict) => continue,
            Outcome::Refused(e) => return Err(ctx.refused(&name, e)),
        }
    }
    Err(ApiError::conflict(ctx.kind.group, ctx.kind.plural, &name))
}

pub async fn delete_collection(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_options(ctx)(body)?;
    warn_job_default_policy(ctx, &opts);
    let dry_run = ctx.dry_run()?;
    let labels = ctx.label_selector()?;
    let fields = ctx.field_selector()?;
    let view = ctx.api.store.read().map_err(ApiError::internal)?;
    let prefix = ctx.prefix(false);
    let page = view
        .list(&prefix, None, 0, false, |b| {
            serde_json::from_slice::<Value>(b)
                .map(|v| labels.matches(&v) && fields.matches(&v))
                .unwrap_or(false)
        })
        .map_err(ApiError::internal)?;
    let mut mutations = Vec::new();
    let mut unchanged = Vec::new();
    for (k, b) in &page.items {
        let key = ObjectKey::from_string(k.clone());
        let (rev, _) = view
            .get(k)
            .map_err(ApiError::internal)?
            .unwrap_or((0, Vec::new()));
        let old = parse_stored(b)?;
        match deletion(ctx, &key, rev, &old, &opts)? {
            Some(m) => mutations.push(m),
            None => unchanged.push(b.clone()),
        }
    }
    let rv = view.revision();
    drop(view);
    let mut items: Vec<Vec<u8>> = unchanged;
    if dry_run {
        items.extend(page.items.into_iter().map(|(_, b)| b));
    } else if !mutations.is_empty() {
        // One raft entry for the whole collection.
        for outcome in ctx.propose_all(mutations).await? {
            if let Outcome::Applied { object, .. } = outcome {
                items.push(object);
            }
        }
    }
    let mut out = format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"}},\"items\":[",
        ctx.kind.list_kind(),
        ctx.kind.api_version(),
        ctx.api.store.revision().max(rv)
    )
    .into_bytes();
    for (i, b) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&ctx.served_bytes(b)?);
    }
    out.extend_from_slice(b"]}");
    Ok(codec::respond_object(StatusCode::OK, ctx.wanted, out))
}

#[allow(dead_code)]
fn qualified_name(ctx: &Ctx) -> String {
    qualified(ctx.kind.group, ctx.kind.plural)
}
