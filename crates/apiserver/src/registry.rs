//! The generic registry store (upstream's `registry/generic/registry/store.go`): one create
//! path, one GuaranteedUpdate, one graceful delete, dry run and no-op detection, for every
//! kind. What differs between kinds comes from the kind's [`Strategy`] and from admission;
//! nothing here names a kind. Every write is a [`Mutation`] proposed through consensus; reads
//! use one consistent store view.

use reddwarf_resources::{Claims, Requester, ResourceKind, SubresourceRole};
use reddwarf_store::{Mutation, MutationError, ObjectKey, Outcome, Revision};
use serde_json::{json, Value};

use crate::admission::{Attributes, Operation};
use crate::codec;
use crate::field_manager::FieldManager;
use crate::meta::{self, finalizers, meta_mut, meta_str};
use crate::request::{parse_rv, FieldValidation, Scope, Selectors};
use crate::service_alloc::{self, Allocation};
use crate::status::{ApiError, ApiResult, Cause};

/// How often a write retries when a concurrent writer got in first (no client precondition).
const MAX_RETRIES: usize = 16;

/// What a write produced.
pub enum Written {
    /// An object as stored (converted to the request's version when served).
    Stored(Vec<u8>),
    /// A dry run's object, already in the request's version; nothing was stored.
    Preview(Vec<u8>),
}

/// A stored object as `kind`'s version serves it: converted, with the fields Go always
/// emits and in canonical order, for a kind with a storage alias; the object itself
/// otherwise.
pub fn from_storage(kind: &ResourceKind, v: Value) -> Value {
    let mut out = match kind.storage {
        None => v,
        Some(alias) => {
            let mut out = alias.from_storage.apply(&v);
            kind.fill_always_emitted(&mut out);
            canonical_order(&mut out);
            out
        }
    };
    if kind.strategy.defaults_on_read() {
        kind.strategy.defaults(&mut out);
        canonical_order(&mut out);
    }
    out
}

pub fn parse_stored(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))
}

/// Upstream encodes every object from its Go struct: fields in declaration order, map keys
/// sorted. Done once before the write, so the stored bytes are what is served.
pub(crate) fn canonical_order(obj: &mut Value) {
    reddwarf_kubeproto::canonicalize(obj);
}

/// A validated object of this request's version in the form it is stored: converted, then
/// in canonical field order, for a kind with a storage alias; untouched otherwise.
fn to_storage(kind: &ResourceKind, obj: &mut Value) {
    if let Some(alias) = kind.storage {
        *obj = alias.to_storage.apply(obj);
        canonical_order(obj);
    }
}

/// The admission attributes of this request.
fn attributes<'a>(scope: &'a Scope<'a>, op: Operation, name: &'a str) -> Attributes<'a> {
    Attributes {
        kind: scope.kind,
        operation: op,
        subresource: scope.subresource(),
        namespace: &scope.rp.namespace,
        name,
        user: scope.user,
    }
}

/// Checks apiVersion/kind of a body against the URL, filling them in when absent; applies
/// `fieldValidation` to unknown fields; puts the URL's namespace in.
pub fn check_type(scope: &Scope, obj: &mut Value) -> ApiResult<()> {
    let kind = scope.kind;
    let want_av = kind.api_version();
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
            m.insert("kind".into(), json!(kind.kind));
        }
        Some(k) if k != kind.kind => {
            // Upstream decodes the named kind, then fails to convert it to the URL's kind.
            let (want, v) = (kind.kind, kind.version);
            let internal = match kind.group.split('.').next() {
                Some("") | None => "core",
                Some(g) => g,
            };
            return Err(ApiError::bad_request(format!(
                "{k} in version {v:?} cannot be handled as a {want}: converting ({v}.{k}) to ({internal}.{want}): unknown conversion"
            )));
        }
        _ => {}
    }
    let mode = scope.write.field_validation;
    // A custom resource's schema prunes what it does not declare; built-ins decode against
    // their compiled-in types.
    let unknown = match kind.strategy.prune(obj) {
        Some(pruned) => {
            let unknown: Vec<String> = pruned
                .iter()
                .map(|p| format!("unknown field {p:?}"))
                .collect();
            if mode == FieldValidation::Strict && !unknown.is_empty() {
                let (k, v) = (kind.kind, kind.version);
                return Err(ApiError::bad_request(format!(
                    "{k} in version {v:?} cannot be handled as a {k}: strict decoding error: {}",
                    unknown.join(", ")
                )));
            }
            unknown
        }
        None => codec::check_schema(obj, mode == FieldValidation::Strict)?,
    };
    for unknown in unknown {
        if mode == FieldValidation::Warn {
            scope.warn(unknown);
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
            let k = kind.kind;
            return Err(ApiError::bad_request(format!(
                "{k} in version {:?} cannot be handled as a {k}: json: cannot unmarshal {} into Go struct field {k}.metadata of type v1.ObjectMeta",
                kind.version,
                codec::type_name(other)
            )));
        }
    }
    // Namespace: must match the URL for namespaced kinds; absent for cluster-scoped ones.
    let ns = meta_str(obj, "namespace").to_string();
    if kind.namespaced {
        if !ns.is_empty() && ns != scope.rp.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(obj).insert("namespace".into(), json!(scope.rp.namespace));
    } else {
        meta_mut(obj).remove("namespace");
    }
    Ok(())
}

fn invalid(kind: &ResourceKind, obj: &Value, errs: Vec<Cause>) -> ApiResult<()> {
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        kind.group,
        kind.kind,
        meta_str(obj, "name"),
        errs,
    ))
}

fn causes(errs: Vec<reddwarf_resources::validation::FieldError>) -> impl Iterator<Item = Cause> {
    errs.into_iter().map(|e| Cause {
        reason: e.reason,
        message: e.message,
        field: e.field,
    })
}

/// Metadata and the kind's own rules.
fn validate(kind: &ResourceKind, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let mut errs = Vec::new();
    meta::validate_metadata(kind.name_rule, obj, &mut errs);
    errs.extend(causes(reddwarf_resources::validation::validate(
        kind, obj, old,
    )));
    invalid(kind, obj, errs)
}

/// The part a subresource such as `ephemeralcontainers` or `approval` writes.
fn part_pointer(kind: &ResourceKind, sub: &str) -> Option<&'static str> {
    match kind.extra_subresource(sub)?.role {
        SubresourceRole::Part(p) => Some(p),
        _ => None,
    }
}

/// Picks and claims the exclusive values a kind's object holds (`old`: on update).
fn begin_claims(
    scope: &Scope,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<Option<Allocation>> {
    match scope.kind.strategy.claims() {
        Claims::None => Ok(None),
        Claims::ServiceAddresses => {
            let view = scope.api.store.read().map_err(ApiError::internal)?;
            service_alloc::allocate(&scope.api.service_network, &view, obj, old).map(Some)
        }
    }
}

/// The claims an object holds, released when it goes.
fn held_claims(kind: &ResourceKind, obj: &Value) -> Vec<String> {
    match kind.strategy.claims() {
        Claims::None => Vec::new(),
        Claims::ServiceAddresses => service_alloc::held(obj),
    }
}

/// Server-side preparation of a new object (PrepareForCreate + BeforeCreate), admission,
/// defaults and validation. `owned` is the managedFields an apply computed; other creates
/// record an Update by their manager.
fn prepare_create(
    scope: &Scope,
    fm: &FieldManager,
    obj: &mut Value,
    owned: Option<Value>,
) -> ApiResult<()> {
    check_type(scope, obj)?;
    let kind = scope.kind;
    {
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
    }
    if kind.status && !kind.create_keeps_status {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    let requester = Requester {
        name: &scope.user.name,
        groups: &scope.user.groups,
    };
    kind.strategy.prepare_for_create(obj, &requester);
    let name = meta_str(obj, "name").to_string();
    let attrs = attributes(scope, Operation::Create, &name);
    scope.api.admission.mutate(&attrs, obj, &scope.api.store)?;
    kind.apply_defaults(obj);
    // Ownership is computed from the object as upstream encodes it (no spelled-out zeros).
    canonical_order(obj);
    match owned {
        Some(mf) => {
            meta_mut(obj).insert("managedFields".into(), mf);
        }
        None => {
            // Ownership is the server's to record.
            meta_mut(obj).remove("managedFields");
            fm.track_update(&json!({}), obj);
        }
    }
    validate(kind, obj, None)?;
    scope.api.admission.validate(&attrs, obj, &scope.api.store)
}

/// The one path every create takes (POST, a PUT that creates, an apply to a missing
/// object): preparation, admission, defaults, validation, claims and the proposal.
pub async fn create(
    scope: &Scope<'_>,
    mut base: Value,
    owned: Option<Value>,
) -> ApiResult<Written> {
    let fm = scope.field_manager()?;
    prepare_create(scope, &fm, &mut base, owned)?;
    canonical_order(&mut base);
    let name = meta_str(&base, "name").to_string();
    let key = scope.key(&name);
    // Values we pick (cluster IPs, node ports) may lose a race with a concurrent create:
    // then pick again.
    for _ in 0..8 {
        let mut obj = base.clone();
        let alloc = begin_claims(scope, &mut obj, None)?;
        if scope.write.dry_run {
            return Ok(Written::Preview(
                serde_json::to_vec(&obj).map_err(ApiError::internal)?,
            ));
        }
        to_storage(scope.kind, &mut obj);
        let mut m = Mutation::Create {
            key: key.as_str().to_string(),
            object: serde_json::to_vec(&obj).map_err(ApiError::internal)?,
            namespace: scope.kind.namespaced.then(|| scope.rp.namespace.clone()),
        };
        if let Some(a) = &alloc {
            m = service_alloc::wrap(m, a.claims.clone(), a.releases.clone());
        }
        match scope.propose(m).await? {
            Outcome::Applied { object, .. } => return Ok(Written::Stored(object)),
            Outcome::Refused(MutationError::ClaimTaken(c)) => {
                if alloc.as_ref().is_some_and(|a| a.retry_on(&c)) {
                    continue;
                }
                return Err(service_alloc::taken_error(&obj, &c));
            }
            Outcome::Refused(e) => return Err(scope.refused(&name, e)),
        }
    }
    Err(ApiError::internal(
        "could not allocate a free value for this object after several attempts",
    ))
}

/// One try of a GuaranteedUpdate. (Built once per try and matched at once; boxing the
/// write would only add an allocation.)
#[allow(clippy::large_enum_variant)]
pub enum Attempt {
    /// Nothing to write: answer with this.
    Done(Written),
    /// Propose `mutation`. `pinned`: its precondition is the client's, so a conflict is the
    /// client's answer rather than a retry. `alloc`: claims picked for `object`.
    Write {
        mutation: Mutation,
        pinned: bool,
        alloc: Option<Allocation>,
        object: Value,
    },
}

/// GuaranteedUpdate: reads the current object, lets `attempt` compute the write from its
/// revision and stored bytes, proposes it with the read revision as precondition, and tries
/// again when a concurrent writer got in first (unless the client pinned a revision) or a
/// picked claim was lost. The one read-modify-write loop of every update, patch, apply,
/// subresource write, binding and deletion.
pub async fn guaranteed_update(
    scope: &Scope<'_>,
    key: &ObjectKey,
    name: &str,
    mut attempt: impl FnMut(Revision, Vec<u8>) -> ApiResult<Attempt>,
) -> ApiResult<Written> {
    for _ in 0..MAX_RETRIES {
        let view = scope.api.store.read().map_err(ApiError::internal)?;
        let (rev, bytes) = view
            .get(key.as_str())
            .map_err(ApiError::internal)?
            .ok_or_else(|| scope.not_found(name))?;
        drop(view);
        let (mutation, pinned, alloc, object) = match attempt(rev, bytes)? {
            Attempt::Done(w) => return Ok(w),
            Attempt::Write {
                mutation,
                pinned,
                alloc,
                object,
            } => (mutation, pinned, alloc, object),
        };
        match scope.propose(mutation).await? {
            Outcome::Applied { object, .. } => return Ok(Written::Stored(object)),
            Outcome::Refused(MutationError::Conflict) if !pinned => continue,
            Outcome::Refused(MutationError::ClaimTaken(c)) => {
                if alloc.as_ref().is_some_and(|a| a.retry_on(&c)) {
                    continue;
                }
                return Err(service_alloc::taken_error(&object, &c));
            }
            Outcome::Refused(e) => return Err(scope.refused(name, e)),
        }
    }
    Err(ApiError::conflict(
        scope.kind.group,
        scope.kind.plural,
        name,
    ))
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

/// Computes the object a client wrote from the current one (in the request's version):
/// the PUT body, the patched object, the applied configuration, a Scale's replicas. `None`
/// means an apply that changes nothing.
pub type Change<'c> = dyn Fn(&Value) -> ApiResult<Option<Value>> + Send + Sync + 'c;

/// How a client wrote an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A whole object (PUT): a resourceVersion in it is always a precondition.
    Put,
    /// A patch, or a subresource computed from the object (`/scale`): the object carries
    /// the current resourceVersion unless the client set another, which is then a
    /// precondition.
    Patch,
    /// A server-side apply, which records its own ownership.
    Apply,
}

/// An update of an existing object through the kind's strategy: `change` computes what the
/// client wrote; the registry keeps what the endpoint may not change, admits, defaults,
/// validates, tracks ownership and detects no-ops.
pub async fn update(scope: &Scope<'_>, change: &Change<'_>, via: Via) -> ApiResult<Written> {
    let name = scope.name().to_string();
    let key = scope.key(&name);
    let sub = scope.subresource();
    let kind = scope.kind;
    let fm = scope.field_manager()?;
    let attempt = |rev: Revision, bytes: Vec<u8>| -> ApiResult<Attempt> {
        let old = scope.decode_stored(&bytes)?;
        let Some(mut new) = change(&old)? else {
            return Ok(Attempt::Done(Written::Stored(bytes)));
        };
        check_type(scope, &mut new)?;
        if meta_str(&new, "name") != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&new, "name")
            )));
        }
        // The client's resourceVersion is a precondition; otherwise the revision just read.
        let user_rv = match meta_str(&new, "resourceVersion") {
            "" => None,
            s => {
                let r = parse_rv(s)?;
                (r != rev || via == Via::Put).then_some(r)
            }
        };
        if let Some(uid) = new.pointer("/metadata/uid").and_then(Value::as_str) {
            let cur = meta_str(&old, "uid");
            if !uid.is_empty() && uid != cur {
                return Err(ApiError::conflict_message(
                    kind.group,
                    kind.plural,
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {cur}"),
                ));
            }
        }
        let attrs = attributes(scope, Operation::Update, &name);
        if sub.is_none() {
            scope
                .api
                .admission
                .mutate(&attrs, &mut new, &scope.api.store)?;
        }
        // Defaults first: a write that only leaves out what defaulting fills in is no
        // change, so it must not bump generation (upstream decodes with defaults before
        // comparing).
        kind.apply_defaults(&mut new);
        // Encoded as upstream would before comparing: a body that spells out a zero value
        // Go leaves out (`hostNetwork: false`, `minReadySeconds: 0`) is the stored object.
        canonical_order(&mut new);
        new = kind.strategy.prepare_for_update(kind, new, &old, sub);
        keep_server_metadata(kind, &old, &mut new, sub);
        // Objects stored before a field was always emitted get it with their next write.
        kind.fill_always_emitted(&mut new);
        if via != Via::Apply {
            // managedFields the client sent replace the stored ones (`[{}]` clears them;
            // none keeps them), as upstream's decodeLiveOrNew: how kubectl and Helm move an
            // object from client-side to server-side apply. Then this manager's change is
            // recorded.
            fm.track_update(&old, &mut new);
        }
        let alloc = begin_claims(scope, &mut new, Some(&old))?;
        match sub.and_then(|s| part_pointer(kind, s)) {
            Some(p) => {
                // The parent's update rules apply to everything but the part; the part has
                // rules of its own.
                let mut base = old.clone();
                reddwarf_resources::strategy::copy_part(p, &new, &mut base);
                validate(kind, &new, Some(&base))?;
                let errs = reddwarf_resources::validation::validate_part(kind, p, &new, &old);
                invalid(kind, &new, causes(errs).collect())?;
            }
            None => validate(kind, &new, Some(&old))?,
        }
        scope
            .api
            .admission
            .validate(&attrs, &new, &scope.api.store)?;
        if without_volatile(&new) == without_volatile(&old)
            && ownership(&new) == ownership(&old)
            && user_rv.is_none_or(|r| r == rev)
        {
            // A no-op write: no revision bump, no event (upstream skips the storage write).
            return Ok(Attempt::Done(Written::Stored(bytes)));
        }
        if scope.write.dry_run {
            return Ok(Attempt::Done(Written::Preview(
                serde_json::to_vec(&new).map_err(ApiError::internal)?,
            )));
        }
        canonical_order(&mut new);
        to_storage(kind, &mut new);
        let expect = user_rv.unwrap_or(rev);
        // The last finalizer of an object being deleted is gone: now it goes. (A pod in
        // its grace period has none and stays until its kubelet deletes it.)
        let finished = old.pointer("/metadata/deletionTimestamp").is_some()
            && (!finalizers(&old).is_empty() || kind.strategy.finalizing(&old))
            && finalizers(&new).is_empty()
            && !kind.strategy.finalizing(&new);
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
            Some(_) if finished => service_alloc::wrap(m, vec![], held_claims(kind, &old)),
            Some(a) => service_alloc::wrap(m, a.claims.clone(), a.releases.clone()),
            None => m,
        };
        Ok(Attempt::Write {
            mutation: m,
            pinned: user_rv.is_some(),
            alloc,
            object: new,
        })
    };
    guaranteed_update(scope, &key, &name, attempt).await
}

/// Keeps the metadata only the server writes (uid, creation and deletion stamps,
/// generation) and bumps generation when what it counts changed.
fn keep_server_metadata(kind: &ResourceKind, old: &Value, new: &mut Value, sub: Option<&str>) {
    let om = old.get("metadata").cloned().unwrap_or(json!({}));
    let spec_changed = kind.generation_changed(old, new);
    let m = meta_mut(new);
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
    if kind.generation && spec_changed && sub.is_none() {
        let g = om.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        m.insert("generation".into(), json!(g));
    }
}

/// DeleteOptions as a DELETE (or an eviction) carries them.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    /// Orphan, Background or Foreground.
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub uid_precondition: Option<String>,
    pub rv_precondition: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads DeleteOptions from a decoded body (`{}` when there was none).
    pub fn from_value(v: &Value) -> ApiResult<DeleteOptions> {
        if let Some(k) = v.get("kind").and_then(Value::as_str) {
            if k != "DeleteOptions" {
                return Err(ApiError::bad_request(format!(
                    "the body of a DELETE must be DeleteOptions, got kind {k:?}"
                )));
            }
        }
        let policy = v.get("propagationPolicy").and_then(Value::as_str);
        if let Some(p) = policy {
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
        Ok(DeleteOptions {
            grace_period_seconds: v.get("gracePeriodSeconds").and_then(Value::as_i64),
            propagation_policy: policy.map(String::from),
            orphan_dependents: v.get("orphanDependents").and_then(Value::as_bool),
            uid_precondition: v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(String::from),
            rv_precondition: v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(String::from),
            dry_run: v
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All")),
        })
    }

    /// The warning upstream gives when a kind's default policy applies because none was
    /// named.
    pub fn default_policy_warning(&self, kind: &ResourceKind) -> Option<&'static str> {
        let gc = kind.strategy.default_gc_policy()?;
        (self.propagation_policy.is_none() && self.orphan_dependents.is_none())
            .then_some(gc.warning)
    }
}

/// What deleting one object means now: remove it, or mark it (finalizers, finalizing
/// kinds, the garbage collector's `orphan`/`foregroundDeletion` finalizers, a grace period).
fn deletion(
    kind: &ResourceKind,
    key: &ObjectKey,
    rev: Revision,
    old: &Value,
    opts: &DeleteOptions,
) -> ApiResult<Option<Mutation>> {
    let strategy = &kind.strategy;
    let terminating = old.pointer("/metadata/deletionTimestamp").is_some();
    let remove = Mutation::Delete {
        key: key.as_str().to_string(),
        expect_revision: Some(rev),
        expect_uid: None,
    };
    if terminating {
        // An object in its grace period goes at once when asked with grace 0 (the kubelet's
        // final delete, or `--force --grace-period=0`); anything else waits for its
        // finalizers.
        if opts.grace_period_seconds == Some(0)
            && finalizers(old).is_empty()
            && !strategy.finalizing(old)
        {
            return Ok(Some(remove));
        }
        return Ok(None);
    }
    // Upstream: orphanDependents=true means Orphan; propagationPolicy wins when both are set.
    let policy = opts
        .propagation_policy
        .as_deref()
        .or(opts
            .orphan_dependents
            .map(|o| if o { "Orphan" } else { "Background" }))
        .or_else(|| strategy.default_gc_policy().map(|g| g.policy));
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
    let grace = strategy.grace_period(old, opts.grace_period_seconds);
    if !fins.is_empty() || grace > 0 || strategy.finalizing(old) {
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
        strategy.begin_delete(&mut new);
        canonical_order(&mut new);
        return Ok(Some(Mutation::Update {
            key: key.as_str().to_string(),
            object: serde_json::to_vec(&new).map_err(ApiError::internal)?,
            expect_revision: Some(rev),
            expect_uid: None,
        }));
    }
    Ok(Some(service_alloc::wrap(
        remove,
        vec![],
        held_claims(kind, old),
    )))
}

fn check_preconditions(
    scope: &Scope,
    opts: &DeleteOptions,
    rev: Revision,
    old: &Value,
) -> ApiResult<()> {
    let name = scope.name();
    if let Some(uid) = &opts.uid_precondition {
        let cur = meta_str(old, "uid");
        if uid != cur {
            return Err(ApiError::conflict_message(
                scope.kind.group,
                scope.kind.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {cur}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.rv_precondition {
        if parse_rv(rv)? != rev {
            return Err(ApiError::conflict_message(
                scope.kind.group,
                scope.kind.plural,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {rev}"),
            ));
        }
    }
    Ok(())
}

/// What a delete did.
pub enum Deleted {
    /// The object is gone: its last stored form and uid.
    Removed { object: Vec<u8>, uid: String },
    /// The object stays (finalizers, grace period, already terminating, or a dry run).
    Remaining(Vec<u8>),
}

/// Graceful deletion of the object the URL names.
pub async fn delete(scope: &Scope<'_>, opts: &DeleteOptions) -> ApiResult<Deleted> {
    let dry_run = scope.write.dry_run || opts.dry_run;
    let name = scope.name().to_string();
    let key = scope.key(&name);
    let mut outcome_uid = String::new();
    let mut removed = false;
    let written = guaranteed_update(scope, &key, &name, |rev, bytes| {
        removed = false;
        // Deletion touches metadata only, so it works on the stored form.
        let old = parse_stored(&bytes)?;
        check_preconditions(scope, opts, rev, &old)?;
        let attrs = attributes(scope, Operation::Delete, &name);
        scope
            .api
            .admission
            .validate(&attrs, &old, &scope.api.store)?;
        let Some(m) = deletion(scope.kind, &key, rev, &old, opts)? else {
            // Already being deleted: nothing more to do until its finalizers are gone.
            return Ok(Attempt::Done(Written::Stored(bytes)));
        };
        if dry_run {
            return Ok(Attempt::Done(Written::Stored(bytes)));
        }
        removed = is_delete(&m);
        outcome_uid = meta_str(&old, "uid").to_string();
        Ok(Attempt::Write {
            mutation: m,
            pinned: false,
            alloc: None,
            object: old,
        })
    })
    .await?;
    let (Written::Stored(object) | Written::Preview(object)) = written;
    Ok(if removed {
        Deleted::Removed {
            object,
            uid: outcome_uid,
        }
    } else {
        Deleted::Remaining(object)
    })
}

fn is_delete(m: &Mutation) -> bool {
    match m {
        Mutation::Delete { .. } => true,
        Mutation::WithClaims { inner, .. } | Mutation::Attributed { inner, .. } => is_delete(inner),
        _ => false,
    }
}

/// Deletions proposed together by a DELETE of a collection.
const DELETE_COLLECTION_BATCH: usize = 256;
/// Most objects a DELETE of a collection deletes (or marks) per second. Every one is an event
/// to every watcher of the kind; unpaced, a namespace of 150 000 pods was marked in seconds,
/// more events than a watcher's queue (16 384) or the watch cache (8 192) holds. Upstream
/// deletes a collection one object at a time, at about this rate.
const DELETE_COLLECTION_PER_SECOND: f64 = 1_000.0;

/// Deletes every object of one namespace (or of a cluster-scoped kind) that the selectors
/// match, [`DELETE_COLLECTION_BATCH`] to a proposal. Returns the collection's revision and the
/// objects as they are after (stored form).
pub async fn delete_collection(
    scope: &Scope<'_>,
    selectors: &Selectors,
    opts: &DeleteOptions,
) -> ApiResult<(Revision, Vec<Vec<u8>>)> {
    let view = scope.api.store.read().map_err(ApiError::internal)?;
    let prefix = scope.prefix(false);
    // Only the names are kept from the list; each batch reads its objects afresh. Holding
    // every object, its deletion and the answer at once took a namespace of 150 000 pods
    // past 4 GB, and a read transaction held across the proposals keeps redb from reusing
    // the pages they free.
    let mut keys = Vec::new();
    let mut listed = Vec::new();
    let everything = selectors.is_empty();
    view.list_each(
        &prefix,
        None,
        0,
        false,
        |b| {
            everything
                || serde_json::from_slice::<Value>(b)
                    .map(|v| selectors.matches(&v))
                    .unwrap_or(false)
        },
        |k, b| {
            keys.push(k.to_string());
            if scope.write.dry_run {
                listed.push(b.to_vec());
            }
        },
    )
    .map_err(ApiError::internal)?;
    let rv = view.revision();
    drop(view);
    let mut items: Vec<Vec<u8>> = Vec::new();
    let started = std::time::Instant::now();
    let mut written = 0usize;
    for chunk in keys.chunks(DELETE_COLLECTION_BATCH) {
        if written > 0 {
            let due =
                std::time::Duration::from_secs_f64(written as f64 / DELETE_COLLECTION_PER_SECOND);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let view = scope.api.store.read().map_err(ApiError::internal)?;
        let mut mutations = Vec::new();
        for k in chunk {
            // Gone since the list: nothing left to delete.
            let Some((rev, b)) = view.get(k).map_err(ApiError::internal)? else {
                continue;
            };
            let key = ObjectKey::from_string(k.clone());
            let old = parse_stored(&b)?;
            let attrs = attributes(scope, Operation::Delete, meta_str(&old, "name"));
            scope
                .api
                .admission
                .validate(&attrs, &old, &scope.api.store)?;
            match deletion(scope.kind, &key, rev, &old, opts)? {
                Some(m) => mutations.push(m),
                None => items.push(b),
            }
        }
        drop(view);
        // A few hundred deletions per raft entry: one entry for a namespace of 150 000 pods
        // was ~1 GB, took longer than the commit timeout (503, retried by the namespace
        // controller) and held gigabytes. Like upstream, the collection is not deleted
        // atomically.
        if !scope.write.dry_run && !mutations.is_empty() {
            written += mutations.len();
            for outcome in scope.propose_all(mutations).await? {
                if let Outcome::Applied { object, .. } = outcome {
                    items.push(object);
                }
            }
        }
    }
    if scope.write.dry_run {
        items = listed;
    }
    Ok((scope.api.store.revision().max(rv), items))
}
