//! The strategy of one served version of a custom resource: its schema's defaults, pruning
//! and validation, its printer columns, and where its scale subresource reads and writes.

use serde_json::Value;

use super::printer::{self, PrinterColumn};
use crate::columns::Column;
use crate::strategy::ScalePaths;
use crate::validation::FieldError;
use crate::{ResourceKind, Strategy};

/// Whether a schema sets a default anywhere.
fn has_default(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("default") || m.values().any(has_default),
        Value::Array(a) => a.iter().any(has_default),
        _ => false,
    }
}

/// A dotted path (`.spec.replicas`) as a JSON pointer (`/spec/replicas`).
fn pointer(dotted: &str) -> String {
    dotted
        .trim_start_matches('.')
        .split('.')
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The rules of one served version of a custom resource.
pub struct CustomStrategy {
    schema: Option<reddwarf_schema::Schema>,
    rules: super::rules::RuleCache,
    raw_schema: Option<Value>,
    status_subresource: bool,
    columns: Vec<PrinterColumn>,
    scale: ScalePaths,
    deprecation: Option<String>,
    unavailable: Option<String>,
    has_defaults: bool,
    terminating: bool,
    digest: u64,
}

impl CustomStrategy {
    /// The strategy of `version` (one entry of the definition's `spec.versions`).
    pub fn new(crd: &Value, version: &Value) -> Result<CustomStrategy, String> {
        let group = crd["spec"]["group"].as_str().unwrap_or("");
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or("");
        let name = version["name"].as_str().unwrap_or("");
        let deprecation = (version["deprecated"] == true).then(|| {
            if let Some(w) = version["deprecationWarning"].as_str() {
                return w.to_string();
            }
            let mut msg = format!("{group}/{name} {kind} is deprecated");
            let mut others: Vec<&str> = crd["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["served"] == true && v["deprecated"] != true)
                .filter_map(|v| v["name"].as_str())
                .collect();
            others.sort_by_key(|v| super::version_priority(v));
            if let Some(best) = others.first() {
                msg.push_str(&format!("; use {group}/{best} {kind}"));
            }
            msg
        });
        let storage = super::storage_version(crd).unwrap_or("");
        let unavailable = (crd.pointer("/spec/conversion/strategy") == Some(&Value::from("Webhook"))
            && name != storage)
            .then(|| {
                format!(
                    "{group}/{name} {kind} needs a conversion webhook to convert from the storage version {storage}, and this server does not call conversion webhooks yet; use {group}/{storage}"
                )
            });
        let schema = match version.pointer("/schema/openAPIV3Schema") {
            Some(s) => Some(reddwarf_schema::Schema::parse(s)?),
            None => None,
        };
        let scale = match version.pointer("/subresources/scale") {
            Some(s) => ScalePaths {
                spec_replicas: pointer(s["specReplicasPath"].as_str().unwrap_or(".spec.replicas")),
                status_replicas: pointer(
                    s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas"),
                ),
                label_selector: s["labelSelectorPath"].as_str().map(pointer),
            },
            None => ScalePaths::default(),
        };
        Ok(CustomStrategy {
            schema,
            rules: Default::default(),
            raw_schema: version.pointer("/schema/openAPIV3Schema").cloned(),
            status_subresource: version.pointer("/subresources/status").is_some(),
            columns: PrinterColumn::of_version(version),
            scale,
            deprecation,
            unavailable,
            // Objects are defaulted when written; reading must default again only where they
            // may have been written under another schema: the definition's spec changed since
            // it was created (a default may have been added), or another version (with its
            // own defaults) wrote them.
            has_defaults: version
                .pointer("/schema/openAPIV3Schema")
                .is_some_and(has_default)
                && (crd.pointer("/metadata/generation").and_then(Value::as_i64) != Some(1)
                    || crd["spec"]["versions"]
                        .as_array()
                        .is_some_and(|v| v.len() > 1)),
            terminating: crd.pointer("/metadata/deletionTimestamp").is_some(),
            digest: {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                version
                    .pointer("/schema/openAPIV3Schema")
                    .map(Value::to_string)
                    .hash(&mut h);
                h.finish()
            },
        })
    }

    /// The version's structural schema, when it has one.
    pub fn schema(&self) -> Option<&reddwarf_schema::Schema> {
        self.schema.as_ref()
    }
}

impl Strategy for CustomStrategy {
    fn defaults(&self, obj: &mut Value) {
        if let Some(s) = &self.schema {
            s.apply_defaults(obj);
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
        let Some(s) = &self.schema else {
            return;
        };
        let mut rules = super::rules::CelHook {
            cache: &self.rules,
            budget: reddwarf_cel::Budget::per_request(),
            exhausted: false,
        };
        for c in s.validate(obj, old, &mut rules) {
            errs.push(FieldError {
                reason: c.reason,
                field: c.field,
                message: c.message,
            });
        }
    }

    fn prune(&self, obj: &mut Value) -> Option<Vec<String>> {
        Some(match &self.schema {
            Some(s) => s.prune(obj),
            None => Vec::new(),
        })
    }

    fn generation_changed(&self, _kind: &ResourceKind, old: &Value, new: &Value) -> bool {
        // Upstream bumps a custom object's generation on any change but metadata (and status,
        // when status has its own endpoint).
        let differs = |k: &String| old.get(k) != new.get(k);
        let skip = |k: &str| k == "metadata" || (self.status_subresource && k == "status");
        let keys = old
            .as_object()
            .into_iter()
            .chain(new.as_object())
            .flat_map(|m| m.keys());
        keys.filter(|k| !skip(k)).any(differs)
    }

    fn columns(&self, _kind: &ResourceKind) -> Vec<Column> {
        printer::columns(&self.columns)
    }

    fn row(&self, _kind: &ResourceKind, obj: &Value, now: i64) -> Vec<Value> {
        printer::row(&self.columns, obj, now)
    }

    fn scale_selector(&self, obj: &Value) -> String {
        self.scale
            .label_selector
            .as_deref()
            .and_then(|p| obj.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    fn scale_paths(&self) -> ScalePaths {
        self.scale.clone()
    }

    fn defaults_on_read(&self) -> bool {
        self.has_defaults
    }

    fn deprecation(&self) -> Option<&str> {
        self.deprecation.as_deref()
    }

    fn create_refused(&self) -> Option<&str> {
        self.terminating
            .then_some("create not allowed while custom resource definition is terminating")
    }

    fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    fn schema_digest(&self) -> u64 {
        self.digest
    }

    fn openapi_schema(&self) -> Option<&Value> {
        self.raw_schema.as_ref()
    }
}
