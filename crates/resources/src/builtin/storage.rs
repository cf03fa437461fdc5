//! storage.k8s.io/v1 (VolumeAttributesClass is still beta, off by default, in 1.33).

use serde_json::{json, Value};

use super::BASE;
use crate::columns::{
    age, age_col, bool_or, col, len_at, name, name_col, scalar_text, str_or, TableRow,
};
use crate::defaults;
use crate::jsonpath::s;
use crate::Basic;
use crate::ResourceKind;
use crate::StrategyRef;

const STORAGE: ResourceKind = ResourceKind {
    group: "storage.k8s.io",
    namespaced: false,
    ..BASE
};

pub(super) fn kinds() -> Vec<ResourceKind> {
    vec![
        ResourceKind {
            kind: "CSIDriver",
            plural: "csidrivers",
            singular: "csidriver",
            columns: || {
                vec![
                    name_col(),
                    col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation."),
                    col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations."),
                    col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report."),
                    col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication."),
                    col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume."),
                    col("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports."),
                    age_col(),
                ]
            },
            row: csi_driver_row,
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::csi_driver) }),
            ..STORAGE
        },
        ResourceKind {
            kind: "CSINode",
            plural: "csinodes",
            singular: "csinode",
            columns: || {
                vec![
                    name_col(),
                    col(
                        "Drivers",
                        "integer",
                        "Drivers indicates the number of CSI drivers registered on the node",
                    ),
                    age_col(),
                ]
            },
            row: |o, now| vec![name(o), json!(len_at(o, "/spec/drivers")), age(o, now)],
            ..STORAGE
        },
        ResourceKind {
            kind: "CSIStorageCapacity",
            plural: "csistoragecapacities",
            singular: "csistoragecapacity",
            namespaced: true,
            columns: || {
                vec![
                    name_col(),
                    col("StorageClassName", "string", "storageClassName represents the name of the StorageClass that the reported capacity applies to."),
                    col("Capacity", "string", "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields."),
                ]
            },
            row: |o, _| {
                vec![
                    name(o),
                    json!(s(o, "/storageClassName")),
                    json!(scalar_text(o.get("capacity")).unwrap_or_else(|| "<unset>".into())),
                ]
            },
            ..STORAGE
        },
        ResourceKind {
            kind: "StorageClass",
            plural: "storageclasses",
            singular: "storageclass",
            short_names: &["sc"],
            columns: || {
                vec![
                    name_col(),
                    col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
                    col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
                    col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used."),
                    col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
                    age_col(),
                ]
            },
            row: storage_class_row,
            strategy: StrategyRef::Static(const { &Basic::defaults(defaults::storage_class) }),
            ..STORAGE
        },
        ResourceKind {
            kind: "VolumeAttachment",
            always_emitted: r#"{"status":{"attached":false}}"#,
            plural: "volumeattachments",
            singular: "volumeattachment",
            status: true,
            columns: || {
                vec![
                    name_col(),
                    crate::columns::Column {
                        name: "Attacher",
                        type_: "string",
                        format: "name",
                        priority: 0,
                        description: "attacher indicates the name of the volume driver that MUST handle this request.",
                    },
                    col("PV", "string", "persistentVolumeName represents the name of the persistent volume to attach."),
                    col("Node", "string", "nodeName represents the node that the volume should be attached to."),
                    col("Attached", "boolean", "attached indicates the volume is successfully attached."),
                    age_col(),
                ]
            },
            row: |o, now| {
                vec![
                    name(o),
                    json!(s(o, "/spec/attacher")),
                    json!(s(o, "/spec/source/persistentVolumeName")),
                    json!(s(o, "/spec/nodeName")),
                    bool_or(o, "/status/attached", false),
                    age(o, now),
                ]
            },
            ..STORAGE
        },
    ]
}

fn csi_driver_row(o: &Value, now: i64) -> TableRow {
    let modes: Vec<&str> = o
        .pointer("/spec/volumeLifecycleModes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let tokens = match o.pointer("/spec/tokenRequests").and_then(Value::as_array) {
        Some(ts) => ts
            .iter()
            .map(|t| s(t, "/audience"))
            .collect::<Vec<_>>()
            .join(","),
        None => "<unset>".into(),
    };
    vec![
        name(o),
        bool_or(o, "/spec/attachRequired", true),
        bool_or(o, "/spec/podInfoOnMount", false),
        bool_or(o, "/spec/storageCapacity", false),
        json!(tokens),
        bool_or(o, "/spec/requiresRepublish", false),
        json!(if modes.is_empty() {
            "<none>".to_string()
        } else {
            modes.join(",")
        }),
        age(o, now),
    ]
}

/// `printStorageClass`: the default class is marked ` (default)`.
fn storage_class_row(o: &Value, now: i64) -> TableRow {
    let ann = |k: &str| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            == Some("true")
    };
    let mut n = s(o, "/metadata/name").to_string();
    if ann("storageclass.kubernetes.io/is-default-class")
        || ann("storageclass.beta.kubernetes.io/is-default-class")
    {
        n.push_str(" (default)");
    }
    vec![
        json!(n),
        json!(s(o, "/provisioner")),
        str_or(o, "/reclaimPolicy", "Delete"),
        str_or(o, "/volumeBindingMode", "Immediate"),
        bool_or(o, "/allowVolumeExpansion", false),
        age(o, now),
    ]
}
