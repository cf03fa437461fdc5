//! The CustomResourceDefinition kind's own rules (upstream's `customresourcedefinition`
//! strategy and `apiextensions/validation`): its validation, `status.storedVersions`, and
//! deletion that waits for its objects (the cleanup finalizer).

use serde_json::{json, Value};

use super::{condition_true, CLEANUP_FINALIZER};
use crate::validation::FieldError;
use crate::validation::{dns1123_subdomain, q, IMMUTABLE};
use crate::{Requester, ResourceKind, Strategy};

/// The CustomResourceDefinition strategy.
pub struct DefinitionStrategy;

use reddwarf_schema::dns1035_label;

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A list of strings as Go's `%#v` prints a `[]string`.
fn go_strings(v: &Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(|s| q(s.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    format!("[]string{{{}}}", items.join(", "))
}

const PRINTER_TYPES: &[&str] = &["integer", "number", "string", "boolean", "date"];
const PRINTER_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "password",
];

fn validate_names(names: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut label = |value: &str, field: &str, lower: bool| {
        if value.is_empty() {
            return;
        }
        let checked = if lower {
            value.to_ascii_lowercase()
        } else {
            value.to_string()
        };
        let msgs = dns1035_label(&checked);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.{field}"),
                &q(value),
                &msgs.join(","),
            ));
        }
    };
    label(str_at(names, "/plural"), "plural", false);
    label(str_at(names, "/singular"), "singular", false);
    label(str_at(names, "/kind"), "kind", true);
    label(str_at(names, "/listKind"), "listKind", true);
    for (field, list) in [("shortNames", "/shortNames"), ("categories", "/categories")] {
        for (i, s) in names
            .pointer(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let s = s.as_str().unwrap_or("");
            let msgs = dns1035_label(s);
            if !msgs.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.{field}[{i}]"),
                    &q(s),
                    &msgs.join(","),
                ));
            }
        }
    }
    let kind = str_at(names, "/kind");
    if !kind.is_empty() && kind == str_at(names, "/listKind") {
        errs.push(FieldError::invalid(
            format!("{path}.listKind"),
            &q(kind),
            "kind and listKind may not be the same or parsing will fail",
        ));
    }
}

fn validate_version(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v.pointer("/schema/openAPIV3Schema") {
        None => errs.push(FieldError::required(
            format!("{path}.schema.openAPIV3Schema"),
            "schemas are required",
        )),
        Some(schema) => {
            let at = format!("{path}.schema.openAPIV3Schema");
            let structural = reddwarf_schema::validate_crd_schema(schema, &at);
            let sound = structural.is_empty();
            for c in structural {
                errs.push(FieldError {
                    reason: c.reason,
                    field: c.field,
                    message: c.message,
                });
            }
            // Rules are compiled against a structural schema only (upstream skips them
            // otherwise).
            if sound {
                let mut bad = Vec::new();
                super::rules::check_definition_rules(schema, &at, &mut bad);
                for (field, value, detail) in bad {
                    errs.push(if value.is_empty() {
                        FieldError::forbidden(field, &detail)
                    } else {
                        FieldError::invalid(field, &value, &detail)
                    });
                }
            }
        }
    }
    if let Some(scale) = v.pointer("/subresources/scale") {
        let sp = format!("{path}.subresources.scale");
        for (field, required) in [
            ("specReplicasPath", true),
            ("statusReplicasPath", true),
            ("labelSelectorPath", false),
        ] {
            match scale[field].as_str() {
                None if required => {
                    errs.push(FieldError::required(format!("{sp}.{field}"), ""));
                }
                None => {}
                Some(p) => {
                    let prefix = if field == "specReplicasPath" {
                        ".spec."
                    } else {
                        ".status."
                    };
                    let ok = p.starts_with(".spec.") || p.starts_with(".status.");
                    let ok = ok
                        && (field == "labelSelectorPath" || p.starts_with(prefix))
                        && p.split('.').skip(1).all(|s| !s.is_empty());
                    if !ok {
                        let detail = if field == "labelSelectorPath" {
                            "should be a json path under either .spec or .status".to_string()
                        } else {
                            format!(
                                "should be a json path under {}",
                                prefix.trim_end_matches('.')
                            )
                        };
                        errs.push(FieldError::invalid(format!("{sp}.{field}"), &q(p), &detail));
                    }
                }
            }
        }
    }
    for (i, c) in v["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cp = format!("{path}.additionalPrinterColumns[{i}]");
        if str_at(c, "/name").is_empty() {
            errs.push(FieldError::required(format!("{cp}.name"), ""));
        }
        let t = str_at(c, "/type");
        if t.is_empty() {
            errs.push(FieldError::required(format!("{cp}.type"), ""));
        } else if !PRINTER_TYPES.contains(&t) {
            errs.push(FieldError::not_supported(
                format!("{cp}.type"),
                &q(t),
                PRINTER_TYPES,
            ));
        }
        let f = str_at(c, "/format");
        if !f.is_empty() && !PRINTER_FORMATS.contains(&f) {
            errs.push(FieldError::not_supported(
                format!("{cp}.format"),
                &q(f),
                PRINTER_FORMATS,
            ));
        }
        match c["jsonPath"].as_str() {
            None | Some("") => errs.push(FieldError::required(format!("{cp}.JSONPath"), "")),
            Some(p) => {
                if let Err(e) = super::PrinterPath::parse(p) {
                    errs.push(FieldError::invalid(
                        format!("{cp}.JSONPath"),
                        &q(p),
                        &format!("must be a simple json path: {e}"),
                    ));
                }
            }
        }
    }
    let mut seen = Vec::new();
    for (i, f) in v["selectableFields"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let fp = format!("{path}.selectableFields[{i}].jsonPath");
        match f["jsonPath"].as_str() {
            None | Some("") => errs.push(FieldError::required(fp, "")),
            Some(p) if seen.contains(&p) => errs.push(FieldError::duplicate(fp, &q(p))),
            Some(p) => seen.push(p),
        }
    }
}

/// `ValidateCustomResourceDefinition` (and its update form, given `old`).
fn validate_definition(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let group = str_at(spec, "/group");
    let plural = str_at(spec, "/names/plural");
    let name = str_at(obj, "/metadata/name");
    if !name.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &q(name),
            r#"must be spec.names.plural+"."+spec.group"#,
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let msgs = dns1123_subdomain(group);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                "spec.group",
                &q(group),
                &msgs.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                &q(group),
                "should be a domain with at least one dot",
            ));
        }
    }
    match str_at(spec, "/scope") {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            &q(other),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<&str> = Vec::new();
    let mut unique = true;
    let mut storage = 0;
    for (i, v) in versions.iter().enumerate() {
        let vname = str_at(v, "/name");
        if names.contains(&vname) {
            unique = false;
        }
        names.push(vname);
        if v["storage"] == true {
            storage += 1;
        }
        let msgs = dns1035_label(vname);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                format!("spec.versions[{i}].name"),
                &q(vname),
                &msgs.join(","),
            ));
        }
        validate_version(v, &format!("spec.versions[{i}]"), errs);
    }
    let versions_value = "[]apiextensions.CustomResourceDefinitionVersion{...}";
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            versions_value,
            "must have exactly one version marked as storage version",
        ));
    } else {
        if !unique {
            errs.push(FieldError::invalid(
                "spec.versions",
                versions_value,
                "must contain unique version names",
            ));
        }
        if storage != 1 {
            errs.push(FieldError::invalid(
                "spec.versions",
                versions_value,
                "must have exactly one version marked as storage version",
            ));
        }
        if !versions.iter().any(|v| v["served"] == true) {
            errs.push(FieldError::invalid(
                "spec.versions",
                versions_value,
                "must have at least one served version",
            ));
        }
    }
    for (field, ptr) in [
        ("plural", "/names/plural"),
        ("singular", "/names/singular"),
        ("kind", "/names/kind"),
        ("listKind", "/names/listKind"),
    ] {
        if str_at(spec, ptr).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{field}"), ""));
        }
    }
    validate_names(&spec["names"], "spec.names", errs);
    match str_at(spec, "/conversion/strategy") {
        "" | "None" => {
            if spec.pointer("/conversion/webhook").is_some() {
                errs.push(FieldError::forbidden(
                    "spec.conversion.webhook",
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => {
            if spec.pointer("/conversion/webhook/clientConfig").is_none() {
                errs.push(FieldError::required(
                    "spec.conversion.webhook",
                    "must be set when strategy is set to Webhook",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            &q(other),
            &["None", "Webhook"],
        )),
    }
    if let Some(old) = old {
        let established = condition_true(old, "Established");
        let mut immutable = |field: &str, ptr: &str, new_v: &str| {
            let old_v = str_at(old, ptr);
            if old_v != new_v {
                errs.push(FieldError::invalid(field, &q(new_v), IMMUTABLE));
            }
        };
        if established {
            immutable("spec.scope", "/spec/scope", str_at(spec, "/scope"));
            immutable(
                "spec.names.kind",
                "/spec/names/kind",
                str_at(spec, "/names/kind"),
            );
        }
        immutable("spec.group", "/spec/group", group);
        immutable("spec.names.plural", "/spec/names/plural", plural);
    }
    // ValidateCustomResourceDefinitionStoredVersions.
    let stored = obj
        .pointer("/status/storedVersions")
        .cloned()
        .unwrap_or(json!([]));
    let stored_list: Vec<&str> = stored
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if stored_list.is_empty() {
        errs.push(FieldError::invalid(
            "status.storedVersions",
            &go_strings(&stored),
            "must have at least one stored version",
        ));
        return;
    }
    for v in &versions {
        let vname = str_at(v, "/name");
        if v["storage"] == true && !stored_list.contains(&vname) {
            errs.push(FieldError::invalid(
                "status.storedVersions",
                "apiextensions.CustomResourceDefinitionVersion{...}",
                &format!("must have the storage version {vname}"),
            ));
        }
    }
    for (i, s) in stored_list.iter().enumerate() {
        if !names.contains(s) {
            errs.push(FieldError::invalid(
                format!("status.storedVersions[{i}]"),
                &q(s),
                "must appear in spec.versions",
            ));
        }
    }
}

/// Adds the storage version to `status.storedVersions` when it is not there yet.
fn record_storage_version(obj: &mut Value) {
    let Some(storage) = super::storage_version(obj).map(String::from) else {
        return;
    };
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    let stored = &mut obj["status"]["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    if let Some(a) = stored.as_array_mut() {
        if !a.iter().any(|v| v == storage.as_str()) {
            a.push(json!(storage));
        }
    }
}

impl Strategy for DefinitionStrategy {
    fn defaults(&self, obj: &mut Value) {
        crate::defaults::custom_resource_definition(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
        validate_definition(obj, old, errs);
    }

    fn prepare_for_create(&self, obj: &mut Value, _requester: &Requester<'_>) {
        // The status is the server's: conditions and accepted names come from the naming
        // controller, the stored versions from the spec.
        obj["status"] = json!({"conditions": [], "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []});
        record_storage_version(obj);
    }

    fn prepare_for_update(
        &self,
        kind: &ResourceKind,
        new: Value,
        old: &Value,
        sub: Option<&str>,
    ) -> Value {
        let mut out = crate::strategy::reset_for_update(kind, new, old, sub);
        if sub.is_none() {
            record_storage_version(&mut out);
        }
        out
    }

    fn finalizing(&self, obj: &Value) -> bool {
        // A definition not yet being deleted has its objects to remove first: its deletion
        // starts with the cleanup finalizer (see begin_delete).
        obj.pointer("/metadata/deletionTimestamp").is_none()
    }

    fn begin_delete(&self, obj: &mut Value) {
        let fins = &mut obj["metadata"]["finalizers"];
        if !fins.is_array() {
            *fins = json!([]);
        }
        if let Some(a) = fins.as_array_mut() {
            if !a.iter().any(|f| f == CLEANUP_FINALIZER) {
                a.push(json!(CLEANUP_FINALIZER));
            }
        }
        set_condition(
            obj,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
    }
}

/// Sets (or replaces) a condition in `status.conditions`, keeping its transition time when the
/// status does not change.
pub fn set_condition(obj: &mut Value, type_: &str, status: &str, reason: &str, message: &str) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    let conds = &mut obj["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    let now = crate::defaults::now_rfc3339();
    match list.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => list.push(
            json!({"type": type_, "status": status, "lastTransitionTime": now,
            "reason": reason, "message": message}),
        ),
    }
}
