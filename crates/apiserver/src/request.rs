//! The scope of one resource request — who asks, for which kind, at which path, in which
//! encoding — and its options, parsed and validated once per verb (upstream's
//! `GetOptions`, `ListOptions`, `CreateOptions`/`UpdateOptions`/`PatchOptions` and the
//! query half of `DeleteOptions`).

use std::sync::Arc;

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use reddwarf_resources::ResourceKind;
use reddwarf_store::{Mutation, MutationError, ObjectKey, Outcome, Revision};
use serde_json::{json, Value};

use crate::codec::{self, Wanted};
use crate::field_manager::FieldManager;
use crate::meta::meta_str;
use crate::path::ResourcePath;
use crate::query::Query;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult, Cause};
use crate::{table, ApiServer, User};

/// Everything a verb needs about its request.
pub struct Scope<'a> {
    /// Warnings for the client (`Warning` response headers), e.g. dropped unknown fields.
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// The request's authorization verb (create, update, patch, delete, ...).
    pub verb: &'a str,
    pub api: &'a Arc<ApiServer>,
    pub kind: &'a ResourceKind,
    pub rp: &'a ResourcePath,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    pub user: &'a User,
    pub wanted: Wanted,
    /// Leave `metadata.managedFields` out of what is served (the in-process controllers).
    pub slim: bool,
    /// The write options of a create, update, patch or delete (defaults for reads).
    pub write: WriteOptions,
}

/// `fieldValidation`: what happens to unknown and duplicate fields of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped with a warning (upstream's default).
    #[default]
    Warn,
    /// Refused (400).
    Strict,
}

/// The options every write takes from the query: `dryRun`, `fieldValidation`,
/// `fieldManager` and (apply only) `force`.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub field_manager: Option<String>,
    pub force: Option<bool>,
}

impl WriteOptions {
    pub fn parse(q: &Query) -> ApiResult<WriteOptions> {
        let dry_run = match q.get("dryRun") {
            None => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {other:?}: valid values are \"All\""
                )))
            }
        };
        let field_validation = match q.get("fieldValidation").unwrap_or("Warn") {
            "Strict" => FieldValidation::Strict,
            "Warn" => FieldValidation::Warn,
            "Ignore" => FieldValidation::Ignore,
            other => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
                )))
            }
        };
        Ok(WriteOptions {
            dry_run,
            field_validation,
            field_manager: q.get("fieldManager").map(String::from),
            force: q.bool_param("force"),
        })
    }
}

/// A resourceVersion as clients send it: a decimal revision.
pub fn parse_rv(s: &str) -> ApiResult<Revision> {
    s.parse::<Revision>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resourceVersion {s:?}: must be a decimal number"
        ))
    })
}

/// A `ListOptions` error upstream reports as a 422 on `meta.k8s.io` ListOptions.
fn list_options_forbidden(field: &str, msg: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        vec![Cause::forbidden(field, msg)],
    )
}

/// Label and field selectors of a list, watch or deletecollection.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(q: &Query, kind: &ResourceKind) -> ApiResult<Selectors> {
        Ok(Selectors {
            labels: LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(
                q.get("fieldSelector").unwrap_or(""),
                kind.selectable_fields,
            )?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// Where a list reads from.
pub enum ListFrom {
    /// This member's current state (`resourceVersion=0`).
    Current,
    /// The current state, linearizable across members (`resourceVersion` unset).
    Consistent,
    /// At least this revision (`NotOlderThan`, the default when a version is given).
    NotOlderThan(Revision),
    /// Exactly this revision.
    Exact(Revision),
    /// The rest of a paginated list (the token is decoded against the collection).
    Continue(String),
}

/// A list's options.
pub struct ListOptions {
    pub selectors: Selectors,
    /// 0: everything.
    pub limit: usize,
    pub from: ListFrom,
}

impl ListOptions {
    pub fn parse(q: &Query, kind: &ResourceKind) -> ApiResult<ListOptions> {
        let selectors = Selectors::parse(q, kind)?;
        let limit = match q.get("limit") {
            None => 0,
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        };
        let rv = q.get("resourceVersion");
        let rv_match = q.get("resourceVersionMatch");
        let from = if let Some(token) = q.get("continue") {
            if rv.is_some_and(|v| v != "0") {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            ListFrom::Continue(token.to_string())
        } else {
            match (rv, rv_match) {
                (None, Some(m)) => {
                    return Err(list_options_forbidden(
                        "resourceVersionMatch",
                        &format!("resourceVersionMatch {m:?} is forbidden unless resourceVersion is provided"),
                    ))
                }
                (Some(v), Some("Exact")) => ListFrom::Exact(parse_rv(v)?),
                (Some(v), m) => {
                    if let Some(m) = m {
                        if m != "NotOlderThan" {
                            return Err(ApiError::bad_request(format!(
                                "unsupported resourceVersionMatch {m:?}: supported values are \"Exact\", \"NotOlderThan\""
                            )));
                        }
                    }
                    match v {
                        "0" => ListFrom::Current,
                        v => ListFrom::NotOlderThan(parse_rv(v)?),
                    }
                }
                (None, None) => ListFrom::Consistent,
            }
        };
        Ok(ListOptions {
            selectors,
            limit,
            from,
        })
    }
}

/// Upstream's default when the client gives no timeout (min-request-timeout).
const DEFAULT_WATCH_TIMEOUT: u64 = 1800;

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchFrom {
    /// The current state first, as ADDED events, then changes after it.
    InitialState,
    /// Changes from now on.
    Now,
    /// Changes after this revision.
    After(Revision),
}

/// A watch's options.
pub struct WatchOptions {
    pub selectors: Selectors,
    /// `includeObject` for Table frames.
    pub include: String,
    pub from: WatchFrom,
    pub bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: u64,
}

impl WatchOptions {
    pub fn parse(q: &Query, kind: &ResourceKind) -> ApiResult<WatchOptions> {
        let selectors = Selectors::parse(q, kind)?;
        let include = table::include_object(q)?.to_string();
        let rv = q.get("resourceVersion");
        let rv_match = q.get("resourceVersionMatch");
        let bookmarks = q.flag("allowWatchBookmarks");
        let send_initial = q.bool_param("sendInitialEvents");
        if send_initial.is_some() {
            if rv_match != Some("NotOlderThan") {
                return Err(list_options_forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !bookmarks {
                return Err(list_options_forbidden(
                    "allowWatchBookmarks",
                    "sendInitialEvents requires setting allowWatchBookmarks to true",
                ));
            }
        } else if rv_match.is_some() {
            return Err(list_options_forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        let timeout_seconds = match q.get("timeoutSeconds") {
            None => DEFAULT_WATCH_TIMEOUT,
            Some(t) => t
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        };
        // Unset or "0" resourceVersion (or sendInitialEvents=true): the current state as
        // synthetic ADDED events first, then changes after it.
        let initial_state = match send_initial {
            Some(v) => v,
            None => rv.is_none() || rv == Some("0"),
        };
        let from = match rv {
            _ if initial_state => WatchFrom::InitialState,
            Some(v) if v != "0" => WatchFrom::After(parse_rv(v)?),
            _ => WatchFrom::Now,
        };
        Ok(WatchOptions {
            selectors,
            include,
            from,
            bookmarks,
            send_initial_events: send_initial,
            timeout_seconds,
        })
    }
}

impl Scope<'_> {
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

    /// The object the URL names ("" for a collection).
    pub fn name(&self) -> &str {
        self.rp.name.as_deref().unwrap_or("")
    }

    /// The subresource the URL names.
    pub fn subresource(&self) -> Option<&str> {
        self.rp.subresource.as_deref()
    }

    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.kind.group, self.kind.plural, name)
    }

    pub fn warn(&self, w: String) {
        if let Ok(mut v) = self.warnings.lock() {
            v.push(w);
        }
    }

    /// The field manager this write records ownership as.
    pub fn field_manager(&self) -> ApiResult<FieldManager<'_>> {
        FieldManager::new(
            self.kind,
            self.write.field_manager.as_deref(),
            self.headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            self.write.force.unwrap_or(false),
            self.subresource().unwrap_or(""),
        )
    }

    /// A stored object in this request's version (a kind with a storage alias converts).
    pub fn decode_stored(&self, bytes: &[u8]) -> ApiResult<Value> {
        Ok(crate::registry::from_storage(
            self.kind,
            crate::registry::parse_stored(bytes)?,
        ))
    }

    /// The stored bytes of an object as served in this request's version; borrowed (no
    /// decode) for kinds without a storage alias.
    pub fn served_bytes<'b>(&self, bytes: &'b [u8]) -> ApiResult<std::borrow::Cow<'b, [u8]>> {
        if !self.kind.converts_on_read() {
            return Ok(std::borrow::Cow::Borrowed(bytes));
        }
        let v = self.decode_stored(bytes)?;
        Ok(std::borrow::Cow::Owned(
            serde_json::to_vec(&v).map_err(ApiError::internal)?,
        ))
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
                match self.write.field_validation {
                    FieldValidation::Strict => {
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
                    FieldValidation::Warn => {
                        for d in dups {
                            self.warn(format!("duplicate field {d:?}"));
                        }
                    }
                    FieldValidation::Ignore => {}
                }
            }
        }
        Ok(obj)
    }

    /// Sends one object already in this request's version, in the negotiated form.
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

    /// Sends an object read from the store (or returned by a proposal), converted to this
    /// request's version.
    pub fn respond_stored(&self, code: StatusCode, bytes: Vec<u8>) -> ApiResult<Response> {
        if !self.kind.converts_on_read() {
            return self.respond(code, bytes);
        }
        let served = self.served_bytes(&bytes)?.into_owned();
        self.respond(code, served)
    }

    fn propose_error(&self, e: reddwarf_consensus::ProposeError) -> ApiError {
        match e {
            reddwarf_consensus::ProposeError::NotLeader => {
                ApiError::unavailable("this control-plane node is not the leader; retry")
            }
            reddwarf_consensus::ProposeError::ShuttingDown => {
                ApiError::unavailable("the server is shutting down")
            }
            reddwarf_consensus::ProposeError::Unavailable(m) => ApiError::unavailable(m),
            other => ApiError::internal(other),
        }
    }

    /// Who makes this request's changes, for the history.
    fn attribution(&self) -> reddwarf_store::Attribution {
        let verb = match self.verb {
            "patch" if codec::content_type(self.headers) == "application/apply-patch+yaml" => {
                "apply"
            }
            "deletecollection" => "delete",
            v => v,
        };
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        reddwarf_store::Attribution {
            verb: verb.to_string(),
            user: self.user.name.clone(),
            user_agent: self
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            time_ms,
        }
    }

    /// Wraps a mutation with who makes it. Always, not only when this member records
    /// history: the raft log is the same for every member, and others may.
    fn attribute(&self, m: Mutation) -> Mutation {
        if !matches!(m, Mutation::Attributed { .. }) {
            m.attributed(self.attribution())
        } else {
            m
        }
    }

    pub async fn propose(&self, m: Mutation) -> ApiResult<Outcome> {
        let op = operation(&m);
        let m = self.attribute(m);
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
        let ms = ms.into_iter().map(|m| self.attribute(m)).collect();
        self.api
            .consensus
            .propose_all(ms)
            .await
            .map_err(|e| self.propose_error(e))
    }

    /// The client's answer for a refused mutation of object `name`.
    pub fn refused(&self, name: &str, e: MutationError) -> ApiError {
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
        Mutation::WithClaims { inner, .. } | Mutation::Attributed { inner, .. } => operation(inner),
    }
}
