//! Patching and merging Kubernetes objects, written from upstream's behaviour
//! (k8s.io/apimachinery `strategicpatch` and `managedfields`, sigs.k8s.io/structured-merge-diff)
//! over `serde_json::Value`. No HTTP here: the API server maps [`MergeError::kind`] and
//! [`ApplyError`] to its status codes.
//!
//! - [`strategic_merge`]: strategic merge patch with every directive, driven by a [`Schema`];
//!   [`create_two_way_merge_patch`] computes one from two objects.
//! - [`merge_patch`] (RFC 7396) and [`json_patch`] (RFC 6902, atomic).
//! - Server-side apply: [`apply`] and [`update`] maintain [`ManagedFields`]
//!   (`metadata.managedFields`, `FieldsV1`), with [`Conflicts`] for 409 answers;
//!   [`fields_of`] gives the [`FieldSet`] an object specifies.
//!
//! Types come from a [`Schema`] (the markers of upstream's Go types: `patchStrategy`,
//! `patchMergeKey`, `listType`, `listMapKey`, `mapType`, `structType`); a kind without one is
//! handled schemaless. [`MemorySchema`] builds one from a JSON table.

mod diff;
mod error;
pub mod fieldpath;
mod jsonpatch;
mod managed;
mod schema;
mod smp;
mod typed;
pub mod value;

pub use diff::create_two_way_merge_patch;
pub use error::{ErrorKind, MergeError};
pub use fieldpath::{FieldSet, Path, PathElement};
pub use jsonpatch::{create_merge_patch, json_patch, merge_patch};
pub use managed::{
    apply, compare, field_set_of, fields_of, managed_fields_for_update, update, Applied,
    ApplyError, Conflict, Conflicts, ManagedFields, ManagedFieldsEntry, Operation, Request,
    MAX_UPDATE_MANAGERS,
};
pub use schema::{FieldMeta, MemorySchema, NoSchema, Schema, Shape, TypeRef};
pub use smp::strategic_merge;
pub use typed::Comparison;
