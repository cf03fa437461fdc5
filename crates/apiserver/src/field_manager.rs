//! Server-side apply and field ownership: every write records, in `metadata.managedFields`,
//! which manager set which fields (Update for POST/PUT/PATCH, Apply for apply patches), and an
//! apply patch merges the applied configuration per the kind's list and map semantics,
//! refusing (409) to change fields another manager owns unless forced.
//!
//! An adapter over the merge crate's [`Request`]: it knows the kind and the few options of
//! the write (manager, force, subresource), nothing else of the HTTP request.

use reddwarf_merge::{ApplyError, ManagedFields, Request};
use reddwarf_resources::ResourceKind;
use serde_json::{json, Value};

use crate::merge_schema;
use crate::meta;
use crate::patch::merge_error;
use crate::status::{ApiError, ApiResult, Cause};

pub const APPLY: &str = "application/apply-patch+yaml";

/// Who records ownership for one write, and how.
pub struct FieldManager<'a> {
    kind: &'a ResourceKind,
    manager: String,
    force: bool,
    subresource: &'a str,
}

fn invalid_options(field: &str, value: &str, msg: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "PatchOptions",
        "",
        vec![Cause::invalid(field, value, msg)],
    )
}

/// Checks the apply-only options: `force` only with apply, `fieldManager` required for apply.
pub fn check_options(
    field_manager: Option<&str>,
    force: Option<bool>,
    content_type: &str,
) -> ApiResult<()> {
    if content_type == APPLY {
        if field_manager.is_none() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
    } else if force.is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![Cause::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )],
        ));
    }
    Ok(())
}

impl<'a> FieldManager<'a> {
    /// The manager is `fieldManager`, else the client's User-Agent up to its first `/`
    /// (upstream's default: `kubectl/v1.33.1 (...)` is `kubectl`).
    pub fn new(
        kind: &'a ResourceKind,
        field_manager: Option<&str>,
        user_agent: Option<&str>,
        force: bool,
        subresource: &'a str,
    ) -> ApiResult<FieldManager<'a>> {
        let manager = match field_manager {
            Some(m) => m.to_string(),
            None => user_agent
                .map(|ua| ua.split('/').next().unwrap_or("").trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into()),
        };
        if manager.len() > 128 {
            return Err(invalid_options(
                "fieldManager",
                &manager,
                "must be no more than 128 characters",
            ));
        }
        Ok(FieldManager {
            kind,
            manager,
            force,
            subresource,
        })
    }

    /// Upstream's reset fields (`GetResetFields`): a write to the object itself never owns
    /// its status when status has its own endpoint.
    fn reset_fields(&self) -> Option<reddwarf_merge::FieldSet> {
        (self.kind.status && self.subresource.is_empty())
            .then(|| reddwarf_merge::field_set_of(&[&["status"]]))
    }

    /// Runs `f` with the merge crate's request for this write and the kind's schema root.
    fn with_request<T>(
        &self,
        f: impl FnOnce(&Request, &dyn reddwarf_merge::Schema, Option<&reddwarf_merge::TypeRef>) -> T,
    ) -> T {
        let av = self.kind.api_version();
        let time = meta::now_rfc3339();
        let (schema, root) = merge_schema::for_kind(self.kind);
        let reset = self.reset_fields();
        let req = Request {
            manager: &self.manager,
            api_version: &av,
            subresource: self.subresource,
            time: &time,
            ignored: reset.as_ref(),
        };
        f(&req, schema.as_ref(), root.as_ref())
    }

    /// Records an Update by this manager: `before` (`{}` on create) became `after`.
    pub fn track_update(&self, before: &Value, after: &mut Value) {
        let managed =
            reddwarf_merge::managed_fields_for_update(before, after, !self.subresource.is_empty());
        let updated = self.with_request(|req, schema, root| {
            reddwarf_merge::update(before, after, &managed, req, schema, root)
        });
        match updated {
            Ok(m) => m.write_to(after),
            // Ownership is bookkeeping: an object the schema cannot walk keeps its old
            // entries rather than failing the write.
            Err(e) => tracing::debug!("managedFields of {}: {}", self.kind.plural, e.message),
        }
    }

    /// Decodes an apply body (YAML or JSON) into the applied configuration.
    pub fn decode_applied(&self, body: &[u8]) -> ApiResult<Value> {
        let v = crate::codec::decode_yaml(body)?;
        if !v.is_object() {
            return Err(ApiError::bad_request("an apply patch must be an object"));
        }
        if v.pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let av = self.kind.api_version();
        if v.get("apiVersion").and_then(Value::as_str) != Some(av.as_str())
            || v.get("kind").and_then(Value::as_str) != Some(self.kind.kind)
        {
            return Err(ApiError::bad_request(format!(
                "the apply configuration must name apiVersion {av:?} and kind {:?}",
                self.kind.kind
            )));
        }
        Ok(v)
    }

    /// Server-side apply of `applied` onto `live` (`{}` when the object does not exist
    /// yet). Returns the new object (with managedFields) and whether anything changed.
    pub fn apply(&self, live: &Value, applied: &Value) -> ApiResult<(Value, bool)> {
        let managed = ManagedFields::from_object(live).map_err(merge_error)?;
        let result = self.with_request(|req, schema, root| {
            reddwarf_merge::apply(live, applied, &managed, self.force, req, schema, root)
        });
        match result {
            Ok(a) => {
                let changed = a.changed || a.managed_fields.to_json() != managed.to_json();
                Ok((a.object, changed))
            }
            Err(ApplyError::Invalid(e)) => Err(merge_error(e)),
            Err(ApplyError::Conflicts(c)) => {
                // The URL names the object when the configuration does not.
                let name = applied
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .or_else(|| live.pointer("/metadata/name").and_then(Value::as_str))
                    .unwrap_or("");
                let mut e = ApiError::new(409, "Conflict", c.message());
                let mut details = json!({
                    "name": name,
                    "group": self.kind.group,
                    "kind": self.kind.plural,
                    "causes": c.0.iter().map(|x| json!({"reason": "FieldManagerConflict", "message": x.message(), "field": x.field()})).collect::<Vec<_>>(),
                });
                if self.kind.group.is_empty() {
                    details.as_object_mut().map(|m| m.remove("group"));
                }
                e.details = Some(details);
                Err(e)
            }
        }
    }
}
