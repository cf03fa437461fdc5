//! Custom resources: the catalogue entries a CustomResourceDefinition serves, one per served
//! version, with a [`CustomStrategy`] driven by the version's schema.
//!
//! Catalogue entries hold `&'static str` names (built-ins are constants); a custom resource's
//! names are interned once per distinct string, so re-creating a definition costs nothing new.

mod definition;
mod intern;
mod printer;
mod rules;
mod strategy;

pub use definition::{set_condition, DefinitionStrategy};
pub use intern::{intern, intern_list};
pub use printer::{PrinterColumn, PrinterPath};
pub use strategy::CustomStrategy;

use serde_json::Value;

use crate::columns::{default_columns, default_row};
use crate::{Backend, NameRule, ResourceKind, StorageAlias, StrategyRef, ALL_VERBS};

/// The finalizer upstream puts on a definition being deleted: its objects go first.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Whether the definition's condition `type_` is `True`.
pub fn condition_true(crd: &Value, type_: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// The version objects are stored in (the one with `storage: true`).
pub fn storage_version(crd: &Value) -> Option<&str> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
}

/// Upstream's version priority (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1` > others,
/// alphabetically): the sort key, lowest first.
pub(crate) fn version_priority(v: &str) -> (u8, i64, i64, String) {
    let parse = |s: &str| -> Option<(i64, u8, i64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 0, 0));
        }
        for (word, rank) in [("beta", 1u8), ("alpha", 2u8)] {
            if let Some(n) = tail.strip_prefix(word) {
                return Some((major, rank, n.parse().ok()?));
            }
        }
        None
    };
    match parse(v) {
        Some((major, rank, minor)) => (rank, -major, -minor, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

/// The catalogue entries a definition serves: one per served version, named by its accepted
/// names. Nothing until the names are accepted (upstream serves a definition once it is
/// `NamesAccepted` or `Established`), and nothing whose schema does not compile.
pub fn kinds_from_crd(crd: &Value) -> Vec<ResourceKind> {
    if !(condition_true(crd, "NamesAccepted") || condition_true(crd, "Established")) {
        return Vec::new();
    }
    let spec = &crd["spec"];
    let names = &crd["status"]["acceptedNames"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        names["kind"].as_str(),
        names["plural"].as_str(),
    ) else {
        return Vec::new();
    };
    if kind.is_empty() || plural.is_empty() {
        return Vec::new();
    }
    let singular = match names["singular"].as_str() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => kind.to_ascii_lowercase(),
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = intern_list(&strings(&names["shortNames"]));
    let categories = intern_list(&strings(&names["categories"]));
    let namespaced = spec["scope"] != "Cluster";
    let Some(storage) = storage_version(crd) else {
        return Vec::new();
    };
    let mut versions = spec["versions"].as_array().cloned().unwrap_or_default();
    // Discovery lists versions by upstream's priority, the preferred one first.
    versions.sort_by_key(|v| version_priority(v["name"].as_str().unwrap_or("")));
    let several = versions.len() > 1;
    let group = intern(group);
    let storage_api_version = intern(&format!("{group}/{storage}"));
    let mut out = Vec::new();
    for v in versions.iter().filter(|v| v["served"] == true) {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        let Ok(strategy) = CustomStrategy::new(crd, v) else {
            continue;
        };
        let status = v.pointer("/subresources/status").is_some();
        let scale = v.pointer("/subresources/scale").is_some();
        let selectable: Vec<String> = v["selectableFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        let version = intern(name);
        // Every version of a definition shares one collection; objects keep the storage
        // version's apiVersion there and are rewritten to the version asked for (conversion
        // strategy None), so with several versions each entry converts.
        let storage = several.then(|| StorageAlias {
            group,
            version: intern(storage),
            plural: intern(plural),
            to_storage: crate::Convert::ApiVersion(storage_api_version),
            from_storage: crate::Convert::ApiVersion(intern(&format!("{group}/{name}"))),
        });
        out.push(ResourceKind {
            group,
            version,
            kind: intern(kind),
            plural: intern(plural),
            singular: intern(&singular),
            namespaced,
            short_names,
            categories,
            status,
            scale,
            generation: true,
            generation_fields: &[],
            verbs: ALL_VERBS,
            delete_returns_object: false,
            create_keeps_status: !status,
            selectable_fields: intern::intern_fields(selectable),
            columns: default_columns,
            row: default_row,
            strategy: StrategyRef::Shared(std::sync::Arc::new(strategy)),
            backend: Backend::Store,
            name_rule: NameRule::Subdomain,
            create_on_update: false,
            always_emitted: "",
            extra_subresources: &[],
            storage,
        });
    }
    out
}

#[cfg(test)]
mod tests;
