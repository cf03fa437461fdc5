//! The built-in kinds reddwarf serves, one file per API group (or family of small groups).
//! Each entry carries upstream's names, scope, verbs and subresources (from the 1.33
//! discovery documents), its table (from `pkg/printers/internalversion/printers.go`) and its
//! defaulting. Within a group-version, entries are in discovery order (by resource name).

mod admission;
mod apps;
mod auth;
mod autoscaling;
mod batch;
mod core;
mod misc;
mod networking;
mod rbac;
mod storage;
mod strategies;

use serde_json::Value;

pub use misc::{core_event_to_events_v1, events_v1_to_core_event};

use crate::columns::{default_columns, default_row};
use crate::StrategyRef;
use crate::{Backend, Basic, NameRule, ResourceKind, ALL_VERBS};

/// The fields every entry starts from: a namespaced core/v1 kind with all verbs, no
/// subresources, no generation, the default table and no defaulting.
pub(crate) const BASE: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "",
    plural: "",
    singular: "",
    namespaced: true,
    short_names: &[],
    categories: &[],
    status: false,
    scale: false,
    generation: false,
    generation_fields: &["/spec"],
    verbs: ALL_VERBS,
    delete_returns_object: false,
    create_keeps_status: false,
    selectable_fields: &[],
    columns: default_columns,
    row: default_row,
    strategy: StrategyRef::Static(&Basic::NONE),
    backend: Backend::Store,
    name_rule: NameRule::Subdomain,
    create_on_update: false,
    always_emitted: "",
    extra_subresources: &[],
    storage: None,
};

/// `<none>` for an empty cell, as many printers write it.
pub(crate) fn none_if_empty(v: &str) -> Value {
    Value::String(if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    })
}

/// The built-in kinds, core first, then the groups in upstream's `/apis` order.
pub fn builtin_kinds() -> Vec<ResourceKind> {
    let mut kinds = Vec::with_capacity(64);
    kinds.extend(core::kinds());
    kinds.extend(admission::apiregistration());
    kinds.extend(apps::kinds());
    kinds.extend(misc::events());
    kinds.extend(auth::authentication());
    kinds.extend(auth::authorization());
    kinds.extend(autoscaling::kinds());
    kinds.extend(batch::kinds());
    kinds.extend(misc::certificates());
    kinds.extend(networking::kinds());
    kinds.extend(misc::policy());
    kinds.extend(rbac::kinds());
    kinds.extend(storage::kinds());
    kinds.extend(admission::admissionregistration());
    kinds.extend(admission::apiextensions());
    kinds.extend(misc::scheduling());
    kinds.extend(misc::coordination());
    kinds.extend(misc::node());
    kinds.extend(misc::discovery());
    kinds.extend(admission::flowcontrol());
    kinds
}

#[cfg(test)]
mod tests;
