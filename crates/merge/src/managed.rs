//! Server-side apply: `metadata.managedFields`, the Apply and Update operations and their
//! conflicts, following upstream's field manager (k8s.io/apimachinery
//! `pkg/util/managedfields/internal` over structured-merge-diff's `merge.Updater`).

use std::fmt;

use serde_json::{Map, Value};

use crate::error::MergeError;
use crate::fieldpath::{FieldSet, Path};
use crate::schema::{Node, Schema, TypeRef};
use crate::typed;
use crate::value::json_eq;

/// The operation that produced a managedFields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Written by server-side apply.
    Apply,
    /// Written by any other write (create, update, patch).
    Update,
}

impl Operation {
    /// The operation as `managedFields[].operation` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedFieldsEntry {
    /// The field manager's name (`kubectl`, `kubectl-client-side-apply`, …).
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The apiVersion the fields were written through.
    pub api_version: String,
    /// RFC 3339 time of the last change this manager made, if any.
    pub time: Option<String>,
    /// The subresource written through (`status`, `scale`), empty for the main resource.
    pub subresource: String,
    /// The fields this manager owns (`fieldsV1`).
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Upstream's manager identifier: entries are merged per (manager, operation, subresource)
    /// and, for Update, apiVersion; this is the JSON upstream uses as the key.
    pub fn identity(&self) -> String {
        identity(
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
        )
    }

    /// A copy of this entry without its fields.
    fn header(&self) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: self.manager.clone(),
            operation: self.operation,
            api_version: self.api_version.clone(),
            time: self.time.clone(),
            subresource: self.subresource.clone(),
            fields: FieldSet::new(),
        }
    }

    fn same_identity(&self, other: &ManagedFieldsEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// The manager as upstream names it in conflict messages: `"kubectl"`,
    /// `"kube-controller-manager" using apps/v1`, `"x" with subresource "status" using v1`.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    /// This entry as a `metadata.managedFields` item.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(m)
    }

    /// Parses a `metadata.managedFields` item, validating it as upstream does.
    pub fn from_json(v: &Value, index: usize) -> Result<ManagedFieldsEntry, MergeError> {
        let err =
            |msg: String| MergeError::invalid(&format!("metadata.managedFields[{index}]"), msg);
        let obj = v
            .as_object()
            .ok_or_else(|| err("expected an object".into()))?;
        let string = |key: &str| -> Result<String, MergeError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(err(format!("{key}: expected a string"))),
            }
        };
        let operation = match string("operation")?.as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err(err("operation must be `Apply` or `Update`".into())),
        };
        let api_version = string("apiVersion")?;
        if api_version.is_empty() {
            return Err(err("apiVersion must not be empty".into()));
        }
        match string("fieldsType")?.as_str() {
            "FieldsV1" => {}
            "" => {
                return Err(err(format!(
                    "missing fieldsType in managed fields entry {index}"
                )))
            }
            other => {
                return Err(err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {index}"
                )))
            }
        }
        let fields = match obj.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => FieldSet::from_fields_v1(f)
                .map_err(|e| err(format!("error decoding versioned set: {e}")))?,
        };
        let time = string("time")?;
        Ok(ManagedFieldsEntry {
            manager: string("manager")?,
            operation,
            api_version,
            time: (!time.is_empty()).then_some(time),
            subresource: string("subresource")?,
            fields,
        })
    }
}

fn identity(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> String {
    let mut m = Map::new();
    m.insert("manager".into(), Value::String(manager.into()));
    m.insert("operation".into(), Value::String(operation.as_str().into()));
    if operation == Operation::Update && !api_version.is_empty() {
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    if !subresource.is_empty() {
        m.insert("subresource".into(), Value::String(subresource.into()));
    }
    Value::Object(m).to_string()
}

/// The managers of an object and the fields each owns. Entries are kept in upstream's order
/// (see [`ManagedFields::to_json`]); equality ignores order.
#[derive(Clone, Debug, Default)]
pub struct ManagedFields {
    entries: Vec<ManagedFieldsEntry>,
}

impl PartialEq for ManagedFields {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self.entries.iter().all(|e| other.entries.contains(e))
    }
}

impl ManagedFields {
    /// No entries.
    pub fn new() -> ManagedFields {
        ManagedFields::default()
    }

    /// The entries, in `metadata.managedFields` order.
    pub fn entries(&self) -> &[ManagedFieldsEntry] {
        &self.entries
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Parses the `metadata.managedFields` array (null or absent: empty). Entries with the same
    /// identity are merged as upstream does (the last one wins).
    pub fn from_json(v: &Value) -> Result<ManagedFields, MergeError> {
        let mut out = ManagedFields::new();
        match v {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    out.put(ManagedFieldsEntry::from_json(item, i)?);
                }
            }
            _ => {
                return Err(MergeError::invalid(
                    "metadata.managedFields",
                    "expected a list",
                ))
            }
        }
        out.sort();
        Ok(out)
    }

    /// The managed fields stored in an object's metadata.
    pub fn from_object(obj: &Value) -> Result<ManagedFields, MergeError> {
        match obj.pointer("/metadata/managedFields") {
            None => Ok(ManagedFields::new()),
            Some(v) => ManagedFields::from_json(v),
        }
    }

    /// The `metadata.managedFields` array, sorted as upstream sorts it (operation, time,
    /// manager, apiVersion, subresource).
    pub fn to_json(&self) -> Value {
        let mut sorted: Vec<&ManagedFieldsEntry> = self.entries.iter().collect();
        sorted.sort_by(|p, q| entry_order(p, q));
        Value::Array(
            sorted
                .into_iter()
                .map(ManagedFieldsEntry::to_json)
                .collect(),
        )
    }

    fn sort(&mut self) {
        self.entries.sort_by(entry_order);
    }

    /// Stores these managed fields in `obj.metadata.managedFields` (removing the key when there
    /// are none).
    pub fn write_to(&self, obj: &mut Value) {
        let Some(root) = obj.as_object_mut() else {
            return;
        };
        if self.entries.is_empty() {
            if let Some(Value::Object(meta)) = root.get_mut("metadata") {
                meta.shift_remove("managedFields");
            }
            return;
        }
        let meta = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(meta) = meta {
            meta.insert("managedFields".into(), self.to_json());
        }
    }

    /// The entry with this identity.
    pub fn get(
        &self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> Option<&ManagedFieldsEntry> {
        let probe = ManagedFieldsEntry {
            manager: manager.into(),
            operation,
            api_version: api_version.into(),
            time: None,
            subresource: subresource.into(),
            fields: FieldSet::new(),
        };
        self.entries.iter().find(|e| e.same_identity(&probe))
    }

    fn position(&self, probe: &ManagedFieldsEntry) -> Option<usize> {
        self.entries.iter().position(|e| e.same_identity(probe))
    }

    /// Inserts or replaces the entry with the same identity.
    pub fn put(&mut self, entry: ManagedFieldsEntry) {
        match self.position(&entry) {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
    }

    /// All fields owned by anyone.
    fn all_fields(&self) -> FieldSet {
        self.entries
            .iter()
            .fold(FieldSet::new(), |acc, e| acc.union(&e.fields))
    }
}

fn entry_order(p: &ManagedFieldsEntry, q: &ManagedFieldsEntry) -> std::cmp::Ordering {
    p.operation
        .as_str()
        .cmp(q.operation.as_str())
        .then_with(|| time_secs(&p.time).cmp(&time_secs(&q.time)))
        .then_with(|| p.manager.cmp(&q.manager))
        .then_with(|| p.api_version.cmp(&q.api_version))
        .then_with(|| p.subresource.cmp(&q.subresource))
}

/// Seconds since the Unix epoch of an RFC 3339 time (0 when absent or unparsable), for
/// upstream's ordering of entries.
fn time_secs(t: &Option<String>) -> i64 {
    t.as_deref().and_then(parse_rfc3339).unwrap_or(0)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = rest.get(1..3)?.parse::<i64>().ok()?;
            let om = rest.get(4..6)?.parse::<i64>().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

/// Who is writing, and when.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The `fieldManager` (empty: `unknown`, as upstream).
    pub manager: &'a str,
    /// The group/version the object is written in (`apps/v1`, `v1`).
    pub api_version: &'a str,
    /// The subresource written through (`status`, `scale`), empty for the main resource.
    pub subresource: &'a str,
    /// The RFC 3339 time stamped on the manager's entry when it changes something; decided by
    /// the caller so that every replica computes the same object.
    pub time: &'a str,
    /// Fields no manager tracks in this request (upstream's reset fields, e.g. `.status` on
    /// the main resource of a kind with a status subresource, everything but `.status` on
    /// `/status`): they and everything under them are left out of every set.
    pub ignored: Option<&'a FieldSet>,
}

impl Request<'_> {
    fn manager(&self) -> &str {
        if self.manager.is_empty() {
            "unknown"
        } else {
            self.manager
        }
    }

    fn entry(&self, operation: Operation, fields: FieldSet) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: self.manager().to_string(),
            operation,
            api_version: self.api_version.to_string(),
            time: None,
            subresource: self.subresource.to_string(),
            fields,
        }
    }

    fn filter(&self, set: FieldSet) -> FieldSet {
        match self.ignored {
            Some(ignored) if !ignored.is_empty() => set.recursive_difference(ignored),
            _ => set,
        }
    }
}

/// Another manager owns a field the request changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The manager owning the field (its entry without its fields).
    pub owner: ManagedFieldsEntry,
    /// The conflicting field.
    pub path: Path,
}

impl Conflict {
    /// The cause message upstream puts in the 409 Status: `conflict with "kubectl" using
    /// apps/v1`.
    pub fn message(&self) -> String {
        format!("conflict with {}", self.owner.describe())
    }

    /// The cause field: `.spec.replicas`.
    pub fn field(&self) -> String {
        self.path.to_string()
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message(), self.path)
    }
}

/// The conflicts of an apply, sorted by manager identity then path.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// The Status message upstream answers with: `Apply failed with 1 conflict: conflict with
    /// "kubectl" using apps/v1: .spec.replicas`.
    pub fn message(&self) -> String {
        let c = &self.0;
        if c.len() == 1 {
            return format!("Apply failed with 1 conflict: {}", c[0]);
        }
        let mut lines = Vec::new();
        let mut last: Option<String> = None;
        for conflict in c {
            let id = conflict.owner.identity();
            if last.as_deref() != Some(id.as_str()) {
                lines.push(format!("conflicts with {}:", conflict.owner.describe()));
                last = Some(id);
            }
            lines.push(format!("- {}", conflict.path));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            c.len(),
            lines.join("\n")
        )
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Conflicts {}

/// Why an apply failed.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyError {
    /// Other managers own fields the configuration changes (409 Conflict).
    Conflicts(Conflicts),
    /// The configuration or the live object cannot be processed (400/422 per
    /// [`MergeError::kind`]).
    Invalid(MergeError),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Conflicts(c) => c.fmt(f),
            ApplyError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<MergeError> for ApplyError {
    fn from(e: MergeError) -> ApplyError {
        ApplyError::Invalid(e)
    }
}

/// The result of [`apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The new object, with `metadata.managedFields` set.
    pub object: Value,
    /// The managed fields after the apply (also written into `object`).
    pub managed_fields: ManagedFields,
    /// Whether anything but managedFields changed (when false, upstream writes the object
    /// only if its managedFields changed).
    pub changed: bool,
}

/// Fields never tracked (upstream's strip-meta manager): exactly these paths, not what is
/// under them.
fn stripped_fields() -> FieldSet {
    let mut s = FieldSet::new();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        s.insert(&Path::fields(p).0);
    }
    s
}

/// `.metadata.managedFields`, which no comparison looks into.
fn managed_fields_path() -> FieldSet {
    field_set_of(&[&["metadata", "managedFields"]])
}

/// The fields an object specifies (structured-merge-diff's `ToFieldSet`).
pub fn fields_of(
    obj: &Value,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Result<FieldSet, MergeError> {
    typed::to_field_set(obj, Node::root(root, schema), schema)
}

/// Compares two objects field by field.
pub fn compare(
    before: &Value,
    after: &Value,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Result<typed::Comparison, MergeError> {
    typed::compare(before, after, Node::root(root, schema), schema)
}

/// Server-side apply of `applied` (the configuration a manager sends) to `live` (an empty
/// object `{}` when creating). `managed` are the live object's managed fields.
///
/// The configuration is merged into the live object (atomic lists, maps and structs are
/// replaced whole, sets united, list-maps merged by key, granular maps and structs merged
/// key by key); fields the manager applied last time but not this time are removed unless
/// another manager owns them; the manager's entry becomes exactly the configuration's fields.
/// Fields of other managers that the result changes are conflicts, unless `force`, in which
/// case their ownership moves to the applier.
///
/// Migration from client-side apply, as upstream does for the manager `kubectl`: conflicts on
/// fields that `kubectl.kubernetes.io/last-applied-configuration` sets to their live value are
/// not conflicts (the fields move to the applier), and an object carrying that annotation gets
/// it rewritten to the new configuration.
pub fn apply(
    live: &Value,
    applied: &Value,
    managed: &ManagedFields,
    force: bool,
    req: &Request,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Result<Applied, ApplyError> {
    let mut out = match apply_once(live, applied, managed, force, req, schema, root) {
        Err(ApplyError::Conflicts(conflicts)) if req.manager == KUBECTL => {
            let Some(allowed) = allowed_by_last_applied(live, req, schema, root) else {
                return Err(ApplyError::Conflicts(conflicts));
            };
            let remaining: Vec<Conflict> = conflicts
                .0
                .into_iter()
                .filter(|c| !allowed.has(&c.path.0))
                .collect();
            if !remaining.is_empty() {
                return Err(ApplyError::Conflicts(Conflicts(remaining)));
            }
            apply_once(live, applied, managed, true, req, schema, root)?
        }
        other => other?,
    };
    if req.manager == KUBECTL {
        if let Some(old) = last_applied(&out.object).map(str::to_string) {
            let mut config = applied.clone();
            if let Some(Value::Object(a)) = config.pointer_mut("/metadata/annotations") {
                a.shift_remove(LAST_APPLIED);
            }
            let mut text = String::new();
            crate::value::write_go_json(&mut text, &config);
            text.push('\n');
            if text != old {
                if let Some(Value::Object(a)) = out.object.pointer_mut("/metadata/annotations") {
                    a.insert(LAST_APPLIED.to_string(), Value::String(text));
                }
                out.changed = true;
            }
        }
    }
    Ok(out)
}

const KUBECTL: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn last_applied(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The fields client-side apply last set to their current live value (upstream's
/// `allowedConflictsFromLastApplied`).
fn allowed_by_last_applied(
    live: &Value,
    req: &Request,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Option<FieldSet> {
    let text = last_applied(live)?;
    let config: Value = serde_json::from_str(text).ok()?;
    if config.get("apiVersion").and_then(Value::as_str) != Some(req.api_version) {
        return None;
    }
    let node = Node::root(root, schema);
    let fields = typed::to_field_set(&config, node, schema).ok()?;
    let cmp = typed::compare(&config, live, node, schema).ok()?;
    Some(
        fields
            .difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

fn apply_once(
    live: &Value,
    applied: &Value,
    managed: &ManagedFields,
    force: bool,
    req: &Request,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Result<Applied, ApplyError> {
    if !applied.is_object() {
        return Err(
            MergeError::bad_request("", "the applied configuration must be an object").into(),
        );
    }
    if !matches!(
        applied.pointer("/metadata/managedFields"),
        None | Some(Value::Null)
    ) {
        return Err(MergeError::bad_request(
            "metadata.managedFields",
            "metadata.managedFields must be nil",
        )
        .into());
    }
    let node = Node::root(root, schema);
    // The live object's managedFields ride along unchanged (the configuration has none), so
    // they never differ below; they are replaced at the end.
    let merged = typed::merge(live, applied, node, schema)?;

    let mut managers = managed.clone();
    let applied_set = req.filter(typed::to_field_set(applied, node, schema)?);
    let entry = req.entry(Operation::Apply, FieldSet::new());
    let (mine, last) = match managers.position(&entry) {
        Some(i) => {
            let last = std::mem::replace(&mut managers.entries[i].fields, applied_set);
            (i, Some(last))
        }
        None => {
            managers.entries.push(ManagedFieldsEntry {
                fields: applied_set,
                ..entry.clone()
            });
            (managers.entries.len() - 1, None)
        }
    };

    // Prune what this manager applied last time and nobody (including its new
    // configuration) owns now.
    let new_obj = match last {
        Some(last) if !last.is_empty() => {
            let mut unowned = last.difference(&managers.entries[mine].fields);
            for e in &managers.entries {
                if unowned.is_empty() {
                    break;
                }
                unowned = unowned.difference(&e.fields);
            }
            if unowned.is_empty() {
                // Everything applied last time is still owned: nothing to prune.
                merged
            } else {
                let owned = typed::ensure_named_fields(&managers.all_fields(), node, schema);
                let last = typed::ensure_named_fields(&last, node, schema);
                let to_remove = last.difference(&owned);
                if to_remove.is_empty() {
                    merged
                } else {
                    typed::remove_items(&merged, &to_remove, node, schema)?
                }
            }
        }
        _ => merged,
    };

    let cmp = typed::compare(live, &new_obj, node, schema)?;
    let untracked = managed_fields_path();
    let changed_fields = req.filter(
        cmp.modified
            .union(&cmp.added)
            .recursive_difference(&untracked),
    );
    let removed = req.filter(cmp.removed.recursive_difference(&untracked));
    let mut conflicts = Vec::new();
    for other in &managers.entries {
        if other.same_identity(&entry) {
            continue;
        }
        for path in other.fields.intersection(&changed_fields).paths() {
            conflicts.push(Conflict {
                owner: other.header(),
                path,
            });
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort_by(|a, b| {
            a.owner
                .identity()
                .cmp(&b.owner.identity())
                .then_with(|| a.path.cmp(&b.path))
        });
        return Err(ApplyError::Conflicts(Conflicts(conflicts)));
    }
    for other in managers.entries.iter_mut() {
        if other.same_identity(&entry) {
            continue;
        }
        other.fields = other
            .fields
            .difference(&changed_fields)
            .difference(&removed);
    }
    let strip = stripped_fields();
    let changed = !json_eq(live, &new_obj);
    for e in managers.entries.iter_mut() {
        if e.same_identity(&entry) {
            e.fields = e.fields.difference(&strip);
            if changed {
                e.time = Some(req.time.to_string());
            }
        }
    }
    managers.entries.retain(|e| !e.fields.is_empty());
    managers.sort();

    let mut object = if changed { new_obj } else { live.clone() };
    managers.write_to(&mut object);
    Ok(Applied {
        object,
        managed_fields: managers,
        changed,
    })
}

/// Tracks a non-apply write (create, update, patch): the manager takes ownership of the fields
/// it changed or added, other managers lose them and the fields removed. Pass `{}` as `before`
/// for a create. Returns the new managed fields (store them with
/// [`ManagedFields::write_to`]).
pub fn update(
    before: &Value,
    after: &Value,
    managed: &ManagedFields,
    req: &Request,
    schema: &dyn Schema,
    root: Option<&TypeRef>,
) -> Result<ManagedFields, MergeError> {
    let node = Node::root(root, schema);
    let cmp = typed::compare(before, after, node, schema)?;
    let untracked = managed_fields_path();
    let changed_fields = req.filter(
        cmp.modified
            .union(&cmp.added)
            .recursive_difference(&untracked),
    );
    let removed = req.filter(cmp.removed.recursive_difference(&untracked));

    let mut managers = managed.clone();
    for other in managers.entries.iter_mut() {
        other.fields = other
            .fields
            .difference(&changed_fields)
            .difference(&removed);
    }
    let mine = changed_fields.difference(&stripped_fields());
    if !mine.is_empty() {
        let mut entry = req.entry(Operation::Update, mine);
        if let Some(i) = managers.position(&entry) {
            entry.fields = entry.fields.union(&managers.entries[i].fields);
        }
        entry.time = Some(req.time.to_string());
        managers.put(entry);
    }
    managers.entries.retain(|e| !e.fields.is_empty());
    cap_update_managers(&mut managers, MAX_UPDATE_MANAGERS);
    managers.sort();
    Ok(managers)
}

/// Upstream keeps at most this many Update entries; older ones are merged into
/// `ancient-changes`.
pub const MAX_UPDATE_MANAGERS: usize = 10;

fn cap_update_managers(managers: &mut ManagedFields, max: usize) {
    let mut updaters: Vec<&ManagedFieldsEntry> = managers
        .entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .collect();
    if updaters.len() <= max {
        return;
    }
    updaters.sort_by(|p, q| {
        time_secs(&p.time)
            .cmp(&time_secs(&q.time))
            .then_with(|| p.identity().cmp(&q.identity()))
    });
    let order: Vec<String> = updaters.iter().map(|e| e.identity()).collect();
    let mut count = order.len();
    // Version -> identity of the oldest updater of that version.
    let mut first_of_version: Vec<(String, String)> = Vec::new();
    let find = |m: &ManagedFields, id: &str| m.entries.iter().position(|e| e.identity() == id);
    for id in order {
        if count <= max {
            break;
        }
        let Some(i) = find(managers, &id) else {
            continue;
        };
        let version = managers.entries[i].api_version.clone();
        let bucket_id = identity(ANCIENT_CHANGES, Operation::Update, &version, "");
        let first = first_of_version
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, f)| f.clone());
        match first {
            Some(first) if id != bucket_id => {
                if find(managers, &bucket_id).is_none() {
                    // The oldest updater of this version becomes the bucket.
                    if let Some(f) = find(managers, &first) {
                        let e = &mut managers.entries[f];
                        e.manager = ANCIENT_CHANGES.to_string();
                        e.subresource.clear();
                    }
                }
                let merged = managers.entries.remove(find(managers, &id).unwrap_or(i));
                if let Some(b) = find(managers, &bucket_id) {
                    let bucket = &mut managers.entries[b];
                    bucket.fields = bucket.fields.union(&merged.fields);
                    bucket.time = merged.time;
                }
                count -= 1;
            }
            _ => first_of_version.push((version, id)),
        }
    }
}

const ANCIENT_CHANGES: &str = "ancient-changes";

/// The managed fields an Update starts from (upstream's `decodeLiveOrNew`): those the client
/// sent in the new object if it sent valid, non-empty ones (`[]` or `[{}]` reset them to
/// none), else the live object's. Writes through a subresource always keep the live ones.
pub fn managed_fields_for_update(live: &Value, new: &Value, subresource: bool) -> ManagedFields {
    let live_mf = || ManagedFields::from_object(live).unwrap_or_default();
    if subresource {
        return live_mf();
    }
    match new.pointer("/metadata/managedFields") {
        Some(Value::Array(items)) if items.is_empty() => ManagedFields::new(),
        Some(Value::Array(items))
            if items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty) =>
        {
            ManagedFields::new()
        }
        Some(v @ Value::Array(_)) => match ManagedFields::from_json(v) {
            Ok(m) if !m.is_empty() => m,
            _ => live_mf(),
        },
        _ => live_mf(),
    }
}

/// A set of paths made of field names, handy for [`Request::ignored`]:
/// `field_set_of(&[&["status"]])`.
pub fn field_set_of(paths: &[&[&str]]) -> FieldSet {
    let mut s = FieldSet::new();
    for p in paths {
        s.insert(&Path::fields(p).0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-01T12:00:00Z"), Some(1709294400));
        assert_eq!(parse_rfc3339("2024-03-01T13:00:00+01:00"), Some(1709294400));
        assert_eq!(parse_rfc3339("2024-03-01T12:00:00.5Z"), Some(1709294400));
        assert_eq!(parse_rfc3339("nope"), None);
    }
}
