//! Pod specs (`pkg/apis/core/validation`: `ValidatePodSpec`, `validateContainers`,
//! `ValidatePodTemplateSpec`, `ValidatePodUpdate`), shared by Pods and every workload
//! template. Fields upstream defaults (restartPolicy, dnsPolicy, imagePullPolicy, protocol…)
//! are accepted when absent, since validation runs after defaulting.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::field::{go_scalar, q, NEGATIVE};
use super::names::{
    config_map_key, dns1123_label, dns1123_subdomain, env_var_name, inclusive_range_error,
    label_value, port_name, port_num, push_msgs, qualified_name, validate_annotations,
    validate_labels,
};
use super::quantity;
use super::{arr, int, obj, str_at, FieldError};

/// Options that differ between a Pod and a template embedded in another object.
#[derive(Default)]
pub struct PodOpts {
    /// The top-level object is a Pod (stricter image and hostPort rules).
    pub is_pod: bool,
    /// Volume names provided from elsewhere (a StatefulSet's volumeClaimTemplates).
    pub extra_volumes: Vec<String>,
}

const VOLUME_TYPES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

/// The `(name, source)` map of the volumes that validated (upstream's `vols`).
fn validate_volumes(
    volumes: &[Value],
    path: &str,
    errs: &mut Vec<FieldError>,
) -> HashMap<String, Value> {
    let mut vols = HashMap::new();
    let mut names = HashSet::new();
    for (i, vol) in volumes.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = str_at(vol, "name").unwrap_or("");
        let mut el = validate_volume_source(vol, &idx);
        if name.is_empty() {
            el.push(FieldError::required(format!("{idx}.name"), ""));
        } else {
            for m in dns1123_label(name) {
                el.push(FieldError::invalid(format!("{idx}.name"), &q(name), &m));
            }
        }
        if names.contains(name) {
            el.push(FieldError::duplicate(format!("{idx}.name"), &q(name)));
        }
        if el.is_empty() {
            names.insert(name.to_string());
            vols.insert(name.to_string(), vol.clone());
        } else {
            errs.extend(el);
        }
    }
    vols
}

fn validate_volume_source(vol: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    for ty in VOLUME_TYPES {
        let Some(src) = vol.get(*ty).filter(|v| !v.is_null()) else {
            continue;
        };
        // Upstream's paths for these two differ from the field names.
        let forbid = match *ty {
            "cephfs" => "cephFS",
            "downwardAPI" => "downwarAPI",
            t => t,
        };
        if count > 0 {
            errs.push(FieldError::forbidden(
                format!("{path}.{forbid}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = format!("{path}.{ty}");
        let need = |errs: &mut Vec<FieldError>, key: &str| {
            if str_at(src, key).unwrap_or("").is_empty() {
                errs.push(FieldError::required(format!("{p}.{key}"), ""));
            }
        };
        match *ty {
            "hostPath" => need(&mut errs, "path"),
            "secret" => need(&mut errs, "secretName"),
            "configMap" => need(&mut errs, "name"),
            "persistentVolumeClaim" => need(&mut errs, "claimName"),
            "gitRepo" => need(&mut errs, "repository"),
            "nfs" => {
                need(&mut errs, "server");
                need(&mut errs, "path");
                let nfs_path = str_at(src, "path").unwrap_or("");
                if !nfs_path.starts_with('/') {
                    errs.push(FieldError::invalid(
                        format!("{p}.path"),
                        &q(nfs_path),
                        "must be an absolute path",
                    ));
                }
            }
            "emptyDir" => {
                if let Some(limit) = src.get("sizeLimit") {
                    if quantity::parse_json(limit).is_ok_and(|l| l.is_negative()) {
                        errs.push(FieldError::forbidden(
                            format!("{p}.sizeLimit"),
                            "SizeLimit field must be a valid resource quantity",
                        ));
                    }
                }
            }
            _ => {}
        }
        for mode_key in ["defaultMode"] {
            if let Some(m) = int(src.get(mode_key)) {
                if !(0..=0o777).contains(&m) {
                    errs.push(FieldError::invalid(
                        format!("{p}.{mode_key}"),
                        &m.to_string(),
                        "must be a number between 0 and 0777 (octal), both inclusive",
                    ));
                }
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    errs
}

fn validate_ports(ports: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if let Some(name) = str_at(p, "name").filter(|n| !n.is_empty()) {
            let msgs = port_name(name);
            if !msgs.is_empty() {
                push_msgs(errs, &format!("{idx}.name"), name, msgs);
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{idx}.name"), &q(name)));
            }
        }
        match int(p.get("containerPort")) {
            None | Some(0) => errs.push(FieldError::required(format!("{idx}.containerPort"), "")),
            Some(n) => {
                for m in port_num(n) {
                    errs.push(FieldError::invalid(
                        format!("{idx}.containerPort"),
                        &n.to_string(),
                        &m,
                    ));
                }
            }
        }
        if let Some(hp) = int(p.get("hostPort")).filter(|h| *h != 0) {
            for m in port_num(hp) {
                errs.push(FieldError::invalid(
                    format!("{idx}.hostPort"),
                    &hp.to_string(),
                    &m,
                ));
            }
        }
        protocol(p, &format!("{idx}.protocol"), errs);
    }
}

/// `protocol` of a port: defaulted to TCP when absent, else TCP, UDP or SCTP.
pub fn protocol(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match port.get("protocol") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_str().unwrap_or("") {
            "TCP" | "UDP" | "SCTP" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(
                path,
                &q(other),
                &["SCTP", "TCP", "UDP"],
            )),
        },
    }
}

/// A string enum defaulted upstream: absent is fine, `""` is required, else one of `valid`.
fn enum_field(v: Option<&Value>, path: &str, valid: &[&str], errs: &mut Vec<FieldError>) {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return;
    };
    let s = v.as_str().unwrap_or("");
    if s.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !valid.contains(&s) {
        errs.push(FieldError::not_supported(path, &q(s), valid));
    }
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const CONVERTIBLE_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Secret and ConfigMap names in references (`NameIsDNSSubdomain`, `prefix` masks a
/// trailing dash as for generateName).
fn ref_name(name: &str, prefix: bool) -> Vec<String> {
    let mut n = name.to_string();
    if prefix && n.ends_with('-') {
        n.pop();
        n.push('a');
    }
    dns1123_subdomain(&n)
}

fn validate_env(env: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, ev) in env.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = str_at(ev, "name").unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{idx}.name"), ""));
        } else {
            push_msgs(errs, &format!("{idx}.name"), name, env_var_name(name));
        }
        let Some(from) = ev.get("valueFrom").filter(|v| !v.is_null()) else {
            continue;
        };
        let fp = format!("{idx}.valueFrom");
        let mut sources = 0;
        if let Some(fr) = from.get("fieldRef").filter(|v| !v.is_null()) {
            sources += 1;
            let p = format!("{fp}.fieldRef");
            let fpath = str_at(fr, "fieldPath").unwrap_or("");
            if str_at(fr, "apiVersion") == Some("") {
                errs.push(FieldError::required(format!("{p}.apiVersion"), ""));
            } else if fpath.is_empty() {
                errs.push(FieldError::required(format!("{p}.fieldPath"), ""));
            } else {
                let (base, sub) = match fpath.split_once('[') {
                    Some((b, rest)) if rest.ends_with(']') => {
                        let s = &rest[..rest.len() - 1];
                        (b, Some(s.trim_matches('\'').to_string()))
                    }
                    _ => (fpath, None),
                };
                if !CONVERTIBLE_FIELD_PATHS.contains(&base) {
                    errs.push(FieldError::invalid(
                        format!("{p}.fieldPath"),
                        &q(fpath),
                        &format!("error converting fieldPath: field label not supported: {fpath}"),
                    ));
                } else if let Some(sub) = sub {
                    match base {
                        "metadata.annotations" => {
                            push_msgs(errs, &p, &sub, qualified_name(&sub.to_lowercase()))
                        }
                        "metadata.labels" => push_msgs(errs, &p, &sub, qualified_name(&sub)),
                        _ => errs.push(FieldError::invalid(
                            &p,
                            &q(base),
                            "does not support subscript",
                        )),
                    }
                } else if !ENV_FIELD_PATHS.contains(&base) {
                    errs.push(FieldError::not_supported(
                        format!("{p}.fieldPath"),
                        &q(base),
                        ENV_FIELD_PATHS,
                    ));
                }
            }
        }
        if let Some(rr) = from.get("resourceFieldRef").filter(|v| !v.is_null()) {
            sources += 1;
            let p = format!("{fp}.resourceFieldRef");
            let res = str_at(rr, "resource").unwrap_or("");
            if res.is_empty() {
                errs.push(FieldError::required(format!("{p}.resource"), ""));
            } else if !RESOURCE_FIELD_PATHS.contains(&res)
                && !res.starts_with("requests.hugepages-")
                && !res.starts_with("limits.hugepages-")
            {
                errs.push(FieldError::not_supported(
                    format!("{p}.resource"),
                    &q(res),
                    RESOURCE_FIELD_PATHS,
                ));
            }
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            let Some(r) = from.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            sources += 1;
            let p = format!("{fp}.{key}");
            let n = str_at(r, "name").unwrap_or("");
            push_msgs(errs, &format!("{p}.name"), n, ref_name(n, false));
            let k = str_at(r, "key").unwrap_or("");
            if k.is_empty() {
                errs.push(FieldError::required(format!("{p}.key"), ""));
            } else {
                push_msgs(errs, &format!("{p}.key"), k, config_map_key(k));
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &fp,
                "\"\"",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !str_at(ev, "value").unwrap_or("").is_empty() {
            errs.push(FieldError::invalid(
                &fp,
                "\"\"",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &fp,
                "\"\"",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn validate_env_from(env_from: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, ev) in env_from.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if let Some(prefix) = str_at(ev, "prefix").filter(|p| !p.is_empty()) {
            push_msgs(errs, &format!("{idx}.prefix"), prefix, env_var_name(prefix));
        }
        let mut sources = 0;
        for key in ["configMapRef", "secretRef"] {
            let Some(r) = ev.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            sources += 1;
            let n = str_at(r, "name").unwrap_or("");
            let p = format!("{idx}.{key}.name");
            if n.is_empty() {
                errs.push(FieldError::required(p, ""));
            } else {
                push_msgs(errs, &p, n, ref_name(n, true));
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                path,
                "\"\"",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                path,
                "\"\"",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `validateLocalDescendingPath`.
fn local_descending_path(p: &str, field: &str, errs: &mut Vec<FieldError>) {
    if p.starts_with('/') {
        errs.push(FieldError::invalid(field, &q(p), "must be a relative path"));
    }
    if p.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(field, &q(p), "must not contain '..'"));
    }
}

fn validate_volume_mounts(
    mounts: &[Value],
    vols: &HashMap<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut mount_points = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = str_at(m, "name").unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{idx}.name"), ""));
        }
        if !vols.contains_key(name) {
            errs.push(FieldError::not_found(format!("{idx}.name"), &q(name)));
        }
        let mp = str_at(m, "mountPath").unwrap_or("");
        if mp.is_empty() {
            errs.push(FieldError::required(format!("{idx}.mountPath"), ""));
        }
        if !mount_points.insert(mp.to_string()) {
            errs.push(FieldError::invalid(
                format!("{idx}.mountPath"),
                &q(mp),
                "must be unique",
            ));
        }
        let sub = str_at(m, "subPath").unwrap_or("");
        if !sub.is_empty() {
            local_descending_path(sub, &format!("{path}.subPath"), errs);
        }
        let expr = str_at(m, "subPathExpr").unwrap_or("");
        if !expr.is_empty() {
            if !sub.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{idx}.subPathExpr"),
                    &q(expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(expr, &format!("{path}.subPathExpr"), errs);
        }
        enum_field(
            m.get("mountPropagation"),
            &format!("{path}.mountPropagation"),
            &["Bidirectional", "HostToContainer", "None"],
            errs,
        );
    }
}

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && qualified_name(&format!("requests.{name}")).is_empty()
}

/// `validateContainerResourceName`.
fn container_resource_name(name: &str, field: &str, errs: &mut Vec<FieldError>) {
    let msgs = qualified_name(name);
    if !msgs.is_empty() {
        push_msgs(errs, field, name, msgs);
    } else if !name.contains('/') && !STANDARD_RESOURCES.contains(&name) && !is_hugepages(name) {
        errs.push(FieldError::invalid(
            field,
            &q(name),
            "must be a standard resource type or fully qualified",
        ));
    }
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
            errs.push(FieldError::invalid(
                field,
                &q(name),
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(FieldError::invalid(
            field,
            &q(name),
            "doesn't follow extended resource name standard",
        ));
    }
}

/// `validateResourceRequirements` for a container, with quantities parsed here (upstream
/// rejects unparsable quantities while decoding).
pub fn validate_resources(res: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(res) = res.filter(|r| !r.is_null()) else {
        return;
    };
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let mut limits: BTreeMap<String, quantity::Quantity> = BTreeMap::new();
    let (mut lim_cpu_mem, mut req_cpu_mem, mut lim_huge, mut req_huge) =
        (false, false, false, false);
    let empty = Map::new();
    let lim_map = res
        .get("limits")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let req_map = res
        .get("requests")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, raw) in lim_map {
        let f = format!("{lim_path}[{name}]");
        container_resource_name(name, &f, errs);
        let Some(qty) = quantity_value(name, raw, &f, errs) else {
            continue;
        };
        if is_hugepages(name) {
            lim_huge = true;
        }
        if matches!(name.as_str(), "cpu" | "memory") {
            lim_cpu_mem = true;
        }
        limits.insert(name.clone(), qty);
    }
    for (name, raw) in req_map {
        let f = format!("{req_path}[{name}]");
        container_resource_name(name, &f, errs);
        let Some(qty) = quantity_value(name, raw, &f, errs) else {
            continue;
        };
        let overcommit = is_native(name) && !is_hugepages(name);
        if let Some(limit) = limits.get(name) {
            let ord = qty.cmp_value(limit);
            if ord != std::cmp::Ordering::Equal && !overcommit {
                errs.push(FieldError::invalid(
                    &req_path,
                    &q(&qty.canonical()),
                    &format!("must be equal to {name} limit of {}", limit.canonical()),
                ));
            } else if ord == std::cmp::Ordering::Greater {
                errs.push(FieldError::invalid(
                    &req_path,
                    &q(&qty.canonical()),
                    &format!(
                        "must be less than or equal to {name} limit of {}",
                        limit.canonical()
                    ),
                ));
            }
        } else if !overcommit && !lim_map.contains_key(name) {
            errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            ));
        }
        if is_hugepages(name) {
            req_huge = true;
        }
        if matches!(name.as_str(), "cpu" | "memory") {
            req_cpu_mem = true;
        }
    }
    if !lim_cpu_mem && !req_cpu_mem && (lim_huge || req_huge) {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
}

/// Parses a quantity and applies `ValidateResourceQuantityValue`.
fn quantity_value(
    name: &str,
    raw: &Value,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<quantity::Quantity> {
    let qty = match quantity::parse_json(raw) {
        Ok(qty) => qty,
        Err(msg) => {
            errs.push(FieldError::invalid(field, &go_scalar(raw), msg));
            return None;
        }
    };
    if qty.is_negative() {
        errs.push(FieldError::invalid(field, &q(&qty.canonical()), NEGATIVE));
    }
    if is_extended(name) && !qty.is_integer() {
        errs.push(FieldError::invalid(
            field,
            &q(&qty.canonical()),
            "must be an integer",
        ));
    }
    Some(qty)
}

fn port_num_or_name(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Some(Value::String(s)) => push_msgs(errs, path, s, port_name(s)),
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            for m in port_num(n) {
                errs.push(FieldError::invalid(path, &n.to_string(), &m));
            }
        }
        _ => {
            for m in port_num(0) {
                errs.push(FieldError::invalid(path, "0", &m));
            }
        }
    }
}

fn validate_handler(
    h: &Value,
    keys: &[&str],
    path: &str,
    grace: Option<i64>,
    errs: &mut Vec<FieldError>,
) {
    let mut n = 0;
    for key in keys {
        let Some(a) = h.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        let p = format!("{path}.{key}");
        if n > 0 {
            errs.push(FieldError::forbidden(
                p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        n += 1;
        match *key {
            "exec" if arr(a.get("command")).is_empty() => {
                errs.push(FieldError::required(format!("{p}.command"), ""));
            }
            "httpGet" => {
                if str_at(a, "path") == Some("") {
                    errs.push(FieldError::required(format!("{p}.path"), ""));
                }
                port_num_or_name(a.get("port"), &format!("{p}.port"), errs);
                if let Some(s) = str_at(a, "scheme") {
                    if s != "HTTP" && s != "HTTPS" {
                        errs.push(FieldError::not_supported(
                            format!("{p}.scheme"),
                            &q(s),
                            &["HTTP", "HTTPS"],
                        ));
                    }
                }
            }
            "tcpSocket" => port_num_or_name(a.get("port"), &format!("{p}.port"), errs),
            "grpc" => {
                let port = int(a.get("port")).unwrap_or(0);
                for m in port_num(port) {
                    errs.push(FieldError::invalid(
                        format!("{p}.port"),
                        &port.to_string(),
                        &m,
                    ));
                }
            }
            "sleep" => {
                let secs = int(a.get("seconds")).unwrap_or(0);
                if let Some(g) = grace {
                    if secs <= 0 || secs > g {
                        errs.push(FieldError::invalid(
                            p.clone(),
                            &secs.to_string(),
                            &format!("must be greater than 0 and less than terminationGracePeriodSeconds ({g}). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];
const LIFECYCLE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "sleep"];

fn validate_probe(
    probe: Option<&Value>,
    kind: &str,
    path: &str,
    grace: Option<i64>,
    errs: &mut Vec<FieldError>,
) {
    let Some(p) = probe.filter(|p| !p.is_null()) else {
        return;
    };
    validate_handler(p, PROBE_HANDLERS, path, grace, errs);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(v) = int(p.get(key)).filter(|v| *v < 0) {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                &v.to_string(),
                NEGATIVE,
            ));
        }
    }
    if let Some(t) = int(p.get("terminationGracePeriodSeconds")) {
        if kind == "readiness" {
            errs.push(FieldError::invalid(
                format!("{path}.terminationGracePeriodSeconds"),
                &t.to_string(),
                "must not be set for readinessProbes",
            ));
        } else if t <= 0 {
            errs.push(FieldError::invalid(
                format!("{path}.terminationGracePeriodSeconds"),
                &t.to_string(),
                "must be greater than 0",
            ));
        }
    }
    if kind != "readiness" {
        if let Some(s) = int(p.get("successThreshold")).filter(|s| *s != 1) {
            errs.push(FieldError::invalid(
                format!("{path}.successThreshold"),
                &s.to_string(),
                "must be 1",
            ));
        }
    }
}

/// A long-running container's lifecycle hooks and liveness/readiness/startup probes.
fn validate_lifecycle_and_probes(
    c: &Value,
    p: &str,
    grace: Option<i64>,
    errs: &mut Vec<FieldError>,
) {
    if let Some(lc) = c.get("lifecycle").filter(|v| !v.is_null()) {
        validate_lifecycle(lc, &format!("{p}.lifecycle"), grace, errs);
    }
    for (field, kind) in [
        ("livenessProbe", "liveness"),
        ("readinessProbe", "readiness"),
        ("startupProbe", "startup"),
    ] {
        validate_probe(c.get(field), kind, &format!("{p}.{field}"), grace, errs);
    }
}

fn validate_lifecycle(lc: &Value, path: &str, grace: Option<i64>, errs: &mut Vec<FieldError>) {
    for key in ["postStart", "preStop"] {
        if let Some(h) = lc.get(key).filter(|v| !v.is_null()) {
            validate_handler(h, LIFECYCLE_HANDLERS, &format!("{path}.{key}"), grace, errs);
        }
    }
}

fn id_range(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(id) = int(v) {
        if !(0..=0xffff_ffff).contains(&id) {
            errs.push(FieldError::invalid(
                path,
                &id.to_string(),
                &inclusive_range_error(0, 0xffff_ffff),
            ));
        }
    }
}

/// `validateContainerCommon`.
fn validate_container_common(
    c: &Value,
    vols: &HashMap<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let name = str_at(c, "name").unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        push_msgs(errs, &format!("{path}.name"), name, dns1123_label(name));
    }
    if str_at(c, "image").unwrap_or("").is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    enum_field(
        c.get("terminationMessagePolicy"),
        &format!("{path}.terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
        errs,
    );
    validate_ports(arr(c.get("ports")), &format!("{path}.ports"), errs);
    validate_env(arr(c.get("env")), &format!("{path}.env"), errs);
    validate_env_from(arr(c.get("envFrom")), &format!("{path}.envFrom"), errs);
    validate_volume_mounts(
        arr(c.get("volumeMounts")),
        vols,
        &format!("{path}.volumeMounts"),
        errs,
    );
    enum_field(
        c.get("imagePullPolicy"),
        &format!("{path}.imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        errs,
    );
    validate_resources(c.get("resources"), &format!("{path}.resources"), errs);
    if let Some(sc) = c.get("securityContext").filter(|v| !v.is_null()) {
        let p = format!("{path}.securityContext");
        id_range(sc.get("runAsUser"), &format!("{p}.runAsUser"), errs);
        id_range(sc.get("runAsGroup"), &format!("{p}.runAsGroup"), errs);
        enum_field(
            sc.get("procMount"),
            &format!("{p}.procMount"),
            &["Default", "Unmasked"],
            errs,
        );
    }
}

fn host_port_conflicts(containers: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, p) in arr(c.get("ports")).iter().enumerate() {
            let hp = int(p.get("hostPort")).unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{hp}",
                str_at(p, "protocol").unwrap_or("TCP"),
                str_at(p, "hostIP").unwrap_or("")
            );
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    format!("{path}[{ci}].ports[{pi}].hostPort"),
                    &q(&key),
                ));
            }
        }
    }
}

fn validate_tolerations(tols: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, t) in tols.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let key = str_at(t, "key").unwrap_or("");
        if !key.is_empty() {
            push_msgs(errs, &format!("{idx}.key"), key, qualified_name(key));
        }
        let op = str_at(t, "operator").unwrap_or("");
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                format!("{idx}.operator"),
                &q(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = str_at(t, "effect").unwrap_or("");
        if t.get("tolerationSeconds").is_some_and(|v| !v.is_null()) && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                format!("{idx}.effect"),
                &q(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = str_at(t, "value").unwrap_or("");
        match op {
            "Equal" | "" => {
                let msgs = label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{idx}.operator"),
                        &q(value),
                        &msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{idx}.operator"),
                        &q(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{idx}.operator"),
                &q(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(FieldError::not_supported(
                format!("{idx}.effect"),
                &q(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

/// `ValidatePodSpec` at `path` (`spec` for a Pod, `spec.template.spec` in a Deployment…).
pub fn validate_pod_spec(spec: &Value, path: &str, opts: &PodOpts, errs: &mut Vec<FieldError>) {
    let grace = int(spec.get("terminationGracePeriodSeconds"));
    let mut vols = validate_volumes(arr(spec.get("volumes")), &format!("{path}.volumes"), errs);
    for extra in &opts.extra_volumes {
        vols.entry(extra.clone()).or_insert(Value::Null);
    }
    let containers = arr(spec.get("containers"));
    let cpath = format!("{path}.containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&cpath, ""));
    } else {
        let mut names = HashSet::new();
        for (i, c) in containers.iter().enumerate() {
            let p = format!("{cpath}[{i}]");
            validate_container_common(c, &vols, &p, errs);
            let name = str_at(c, "name").unwrap_or("");
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{p}.name"), &q(name)));
            }
            validate_lifecycle_and_probes(c, &p, grace, errs);
            if c.get("restartPolicy").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden(
                    format!("{p}.restartPolicy"),
                    "may not be set for non-init containers",
                ));
            }
        }
        host_port_conflicts(containers, &cpath, errs);
    }
    let ipath = format!("{path}.initContainers");
    let mut all_names: HashSet<String> = containers
        .iter()
        .map(|c| str_at(c, "name").unwrap_or("").to_string())
        .collect();
    for (i, c) in arr(spec.get("initContainers")).iter().enumerate() {
        let p = format!("{ipath}[{i}]");
        validate_container_common(c, &vols, &p, errs);
        let restart = str_at(c, "restartPolicy");
        if let Some(r) = restart.filter(|r| *r != "Always") {
            errs.push(FieldError::not_supported(
                format!("{p}.restartPolicy"),
                &q(r),
                &["Always"],
            ));
        }
        let name = str_at(c, "name").unwrap_or("");
        if all_names.contains(name) {
            errs.push(FieldError::duplicate(format!("{p}.name"), &q(name)));
        } else if !name.is_empty() {
            all_names.insert(name.to_string());
        }
        host_port_conflicts(std::slice::from_ref(c), &ipath, errs);
        if restart == Some("Always") {
            validate_lifecycle_and_probes(c, &p, grace, errs);
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if c.get(key).is_some_and(|v| !v.is_null()) {
                    errs.push(FieldError::forbidden(
                        format!("{p}.{key}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    enum_field(
        spec.get("restartPolicy"),
        &format!("{path}.restartPolicy"),
        &["Always", "OnFailure", "Never"],
        errs,
    );
    enum_field(
        spec.get("dnsPolicy"),
        &format!("{path}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        errs,
    );
    validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
        errs,
    );
    if let Some(sc) = spec.get("securityContext").filter(|v| !v.is_null()) {
        let p = format!("{path}.securityContext");
        id_range(sc.get("fsGroup"), &format!("{p}.fsGroup"), errs);
        id_range(sc.get("runAsUser"), &format!("{p}.runAsUser"), errs);
        id_range(sc.get("runAsGroup"), &format!("{p}.runAsGroup"), errs);
        for (i, g) in arr(sc.get("supplementalGroups")).iter().enumerate() {
            id_range(Some(g), &format!("{p}.supplementalGroups[{i}]"), errs);
        }
        enum_field(
            sc.get("fsGroupChangePolicy"),
            &format!("{p}.fsGroupChangePolicy"),
            &["Always", "OnRootMismatch"],
            errs,
        );
    }
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for (i, c) in containers.iter().enumerate() {
            for (j, p) in arr(c.get("ports")).iter().enumerate() {
                let hp = int(p.get("hostPort")).unwrap_or(0);
                let cp = int(p.get("containerPort")).unwrap_or(0);
                if (opts.is_pod || hp != 0) && hp != cp {
                    errs.push(FieldError::invalid(
                        format!("{cpath}[{i}].ports[{j}].hostPort"),
                        &hp.to_string(),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    if str_at(spec, "dnsPolicy") == Some("None") {
        let dc = spec.get("dnsConfig").filter(|v| !v.is_null());
        match dc {
            None => errs.push(FieldError::required(
                format!("{path}.dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some(dc) if arr(dc.get("nameservers")).is_empty() => errs.push(FieldError::required(
                format!("{path}.dnsConfig.nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )),
            _ => {}
        }
    }
    for key in ["serviceAccountName", "nodeName", "priorityClassName"] {
        if let Some(v) = str_at(spec, key).filter(|v| !v.is_empty()) {
            push_msgs(errs, &format!("{path}.{key}"), v, dns1123_subdomain(v));
        }
    }
    if let Some(ads) = int(spec.get("activeDeadlineSeconds")) {
        if !(1..=i32::MAX as i64).contains(&ads) {
            errs.push(FieldError::invalid(
                format!("{path}.activeDeadlineSeconds"),
                &ads.to_string(),
                &inclusive_range_error(1, i32::MAX as i64),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        if let Some(v) = str_at(spec, key).filter(|v| !v.is_empty()) {
            push_msgs(errs, &format!("{path}.{key}"), v, dns1123_label(v));
        }
    }
    validate_tolerations(
        arr(spec.get("tolerations")),
        &format!("{path}.tolerations"),
        errs,
    );
    enum_field(
        spec.get("preemptionPolicy"),
        &format!("{path}.preemptionPolicy"),
        &["PreemptLowerPriority", "Never"],
        errs,
    );
    if let Some(os) = spec.get("os").filter(|v| !v.is_null()) {
        let name = str_at(os, "name").unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.os.name"),
                "cannot be empty",
            ));
        } else if name != "linux" && name != "windows" {
            errs.push(FieldError::not_supported(
                format!("{path}.os"),
                &q(name),
                &["linux", "windows"],
            ));
        }
    }
}

/// `ValidatePodTemplateSpec` at `path` (e.g. `spec.template`).
pub fn validate_pod_template(
    tpl: Option<&Value>,
    path: &str,
    opts: &PodOpts,
    errs: &mut Vec<FieldError>,
) {
    let null = Value::Null;
    let tpl = tpl.unwrap_or(&null);
    let meta = tpl.get("metadata").unwrap_or(&null);
    validate_labels(meta.get("labels"), &format!("{path}.labels"), errs);
    validate_annotations(
        meta.get("annotations"),
        &format!("{path}.annotations"),
        errs,
    );
    let spec = tpl.get("spec").unwrap_or(&null);
    validate_pod_spec(spec, &format!("{path}.spec"), opts, errs);
    if !arr(spec.get("ephemeralContainers")).is_empty() {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// A pod spec's restartPolicy after defaulting.
pub fn restart_policy(spec: Option<&Value>) -> &str {
    spec.and_then(|s| str_at(s, "restartPolicy"))
        .filter(|r| !r.is_empty())
        .unwrap_or("Always")
}

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Pods: `ValidatePodCreate` / `ValidatePodUpdate`.
pub fn validate_pod(pod: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let spec = pod.get("spec").unwrap_or(&null);
    let opts = PodOpts {
        is_pod: true,
        ..Default::default()
    };
    validate_pod_spec(spec, "spec", &opts, errs);
    for key in ["containers", "initContainers"] {
        for (i, c) in arr(spec.get(key)).iter().enumerate() {
            let image = str_at(c, "image").unwrap_or("");
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    format!("spec.{key}[{i}].image"),
                    &q(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    let Some(old) = old else {
        if !arr(spec.get("ephemeralContainers")).is_empty() {
            errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                "cannot be set on create",
            ));
        }
        if !str_at(spec, "nodeName").unwrap_or("").is_empty()
            && !arr(spec.get("schedulingGates")).is_empty()
        {
            errs.push(FieldError::forbidden(
                "spec.nodeName",
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
        return;
    };
    let old_spec = old.get("spec").unwrap_or(&null);
    for key in ["containers", "initContainers"] {
        if arr(spec.get(key)).len() != arr(old_spec.get(key)).len() {
            errs.push(FieldError::forbidden(
                format!("spec.{key}"),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }
    let new_ads = int(spec.get("activeDeadlineSeconds"));
    let old_ads = int(old_spec.get("activeDeadlineSeconds"));
    match (new_ads, old_ads) {
        (Some(n), _) if !(0..=i32::MAX as i64).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &n.to_string(),
                &inclusive_range_error(0, i32::MAX as i64),
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &n.to_string(),
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Only additions to tolerations (tolerationSeconds of existing ones may change).
    let new_tols = arr(spec.get("tolerations"));
    for ot in arr(old_spec.get("tolerations")) {
        let strip = |t: &Value| {
            let mut t = normalize(t);
            if let Some(m) = t.as_object_mut() {
                m.remove("tolerationSeconds");
            }
            t
        };
        let want = strip(ot);
        if !new_tols.iter().any(|nt| strip(nt) == want) {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    let old_gates: HashSet<&str> = arr(old_spec.get("schedulingGates"))
        .iter()
        .filter_map(|g| str_at(g, "name"))
        .collect();
    for (i, g) in arr(spec.get("schedulingGates")).iter().enumerate() {
        let name = str_at(g, "name").unwrap_or("");
        if !old_gates.contains(name) {
            errs.push(FieldError::forbidden(
                format!("spec.schedulingGates[{i}].name"),
                &format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }
    // Compare what is left after putting back the fields that may change.
    let mut munged = spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            if let Some(Value::Array(cs)) = m.get_mut(key) {
                for (i, c) in cs.iter_mut().enumerate() {
                    let old_image = old_spec
                        .get(key)
                        .and_then(|l| l.get(i))
                        .and_then(|c| c.get("image"))
                        .cloned();
                    if let Some(c) = c.as_object_mut() {
                        match old_image {
                            Some(img) => c.insert("image".into(), img),
                            None => c.remove("image"),
                        };
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old_spec.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = int(old_spec.get("terminationGracePeriodSeconds"));
        if old_grace.is_some_and(|g| g < 0)
            && int(m.get("terminationGracePeriodSeconds")) == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                old_spec["terminationGracePeriodSeconds"].clone(),
            );
        }
        if !old_gates.is_empty() {
            // Gated pods: additions to nodeSelector, and node affinity, may change.
            let old_sel = old_spec.get("nodeSelector").and_then(Value::as_object);
            let new_sel = m.get("nodeSelector").and_then(Value::as_object);
            let only_added = old_sel
                .into_iter()
                .flatten()
                .all(|(k, v)| new_sel.and_then(|n| n.get(k)) == Some(v));
            if !only_added {
                errs.push(FieldError::invalid(
                    "spec.nodeSelector",
                    &super::field::go_string_map(new_sel),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                ));
            }
            match old_spec.get("nodeSelector") {
                Some(v) => m.insert("nodeSelector".into(), v.clone()),
                None => m.remove("nodeSelector"),
            };
            let old_na = old_spec.pointer("/affinity/nodeAffinity").cloned();
            if let Some(aff) = m.get_mut("affinity").and_then(Value::as_object_mut) {
                match old_na {
                    Some(na) => aff.insert("nodeAffinity".into(), na),
                    None => aff.remove("nodeAffinity"),
                };
            }
        }
    }
    let (a, b) = (normalize(old_spec), normalize(&munged));
    if a != b {
        let mut lines = Vec::new();
        diff(&a, &b, "", &mut lines);
        errs.push(FieldError::forbidden(
            "spec",
            &format!(
                "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n  core.PodSpec{{\n{}  }}\n",
                lines.concat()
            ),
        ));
    }
}

/// Drops what Go's semantic equality treats as unset: nulls, empty strings, lists and maps.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let v = normalize(v);
                let unset = match &v {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    _ => false,
                };
                if !unset {
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// A `cmp.Diff`-like listing of the paths that differ.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &p,
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ => {
            if !a.is_null() {
                out.push(format!("- \t{path}: {a}\n"));
            }
            if !b.is_null() {
                out.push(format!("+ \t{path}: {b}\n"));
            }
        }
    }
}

/// `ValidateNonnegativeField` for an optional integer.
pub fn nonnegative(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = int(v).filter(|n| *n < 0) {
        errs.push(FieldError::invalid(path, &n.to_string(), NEGATIVE));
    }
}

/// The labels of a template's metadata.
pub fn meta_labels(tpl: Option<&Value>) -> Option<&Map<String, Value>> {
    tpl.and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(obj)
}

/// Fields an ephemeral container may not have (`validateEphemeralContainers`).
const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "lifecycle",
    "livenessProbe",
    "ports",
    "readinessProbe",
    "resizePolicy",
    "resources",
    "restartPolicy",
    "startupProbe",
];

/// `ValidatePodEphemeralContainersUpdate`: ephemeral containers are only ever added; each new
/// one needs a unique name and an image, has none of the fields of a long-running container,
/// and may only target a container of the pod.
pub(super) fn validate_ephemeral_update(pod: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let list = |v: &Value, k: &str| {
        v.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let new = list(pod, "ephemeralContainers");
    let olds = list(old, "ephemeralContainers");
    let name_of = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for o in &olds {
        let n = name_of(o);
        match new.iter().position(|c| name_of(c) == n) {
            None => errs.push(FieldError::forbidden(
                "spec",
                &format!(
                    "existing ephemeral containers {} may not be removed\n",
                    q(&n)
                ),
            )),
            Some(i) if normalize(&new[i]) != normalize(o) => errs.push(FieldError::forbidden(
                format!("spec.ephemeralContainers[{i}]"),
                &format!(
                    "existing ephemeral containers {} may not be changed\n",
                    q(&n)
                ),
            )),
            Some(_) => {}
        }
    }
    let mut taken: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| list(pod, k))
        .map(|c| name_of(&c))
        .collect();
    let targets = taken.clone();
    for (i, c) in new.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let n = name_of(c);
        if n.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else if taken.contains(&n) {
            errs.push(FieldError::duplicate(format!("{path}.name"), &q(&n)));
        } else {
            taken.push(n);
        }
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            errs.push(FieldError::required(format!("{path}.image"), ""));
        }
        for f in EPHEMERAL_FORBIDDEN {
            let set = c.get(*f).map(normalize).is_some_and(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            });
            if set {
                errs.push(FieldError::forbidden(
                    format!("{path}.{f}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        let target = c
            .get("targetContainerName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !target.is_empty() && !targets.iter().any(|t| t == target) {
            errs.push(FieldError::not_found(
                format!("{path}.targetContainerName"),
                &q(target),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_errs(spec: Value) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        validate_pod(&json!({"spec": spec}), None, &mut errs);
        errs.into_iter().map(|e| (e.field, e.message)).collect()
    }

    fn c(extra: Value) -> Value {
        let mut base = json!({"name": "c", "image": "nginx"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    #[test]
    fn valid_pod_passes() {
        let spec = json!({
            "containers": [c(json!({
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
            }))],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
        });
        assert_eq!(pod_errs(spec), vec![]);
    }

    #[test]
    fn pod_rules() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({}), "spec.containers", "Required value"),
            (
                json!({"containers": [c(json!({})), c(json!({}))]}),
                "spec.containers[1].name",
                "Duplicate value: \"c\"",
            ),
            (
                json!({"containers": [{"name": "c"}]}),
                "spec.containers[0].image",
                "Required value",
            ),
            (
                json!({"containers": [{"image": "x"}]}),
                "spec.containers[0].name",
                "Required value",
            ),
            (
                json!({"containers": [c(json!({"name": "Bad_Name"}))]}),
                "spec.containers[0].name",
                "Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 70000}]}))]}),
                "spec.containers[0].ports[0].containerPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 0}]}))]}),
                "spec.containers[0].ports[0].containerPort",
                "Required value",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "protocol": "HTTP"}]}))]}),
                "spec.containers[0].ports[0].protocol",
                "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"name": "web", "containerPort": 80}, {"name": "web", "containerPort": 81}]}))]}),
                "spec.containers[0].ports[1].name",
                "Duplicate value: \"web\"",
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]}),
                "spec.volumes[1].name",
                "Duplicate value: \"v\"",
            ),
            (
                json!({"containers": [c(json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}))]}),
                "spec.containers[0].volumeMounts[0].name",
                "Not found: \"nope\"",
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v"}]}),
                "spec.volumes[0]",
                "Required value: must specify a volume type",
            ),
            (
                json!({"containers": [c(json!({"resources": {"limits": {"cpu": "abc"}}}))]}),
                "spec.containers[0].resources.limits[cpu]",
                "Invalid value: \"abc\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ),
            (
                json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}))]}),
                "spec.containers[0].resources.requests",
                "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ),
            (
                json!({"containers": [c(json!({"resources": {"requests": {"memory": "-1"}}}))]}),
                "spec.containers[0].resources.requests[memory]",
                "Invalid value: \"-1\": must be greater than or equal to 0",
            ),
            (
                json!({"containers": [c(json!({"resources": {"limits": {"example.com/gpu": "1"}, "requests": {"example.com/gpu": "2"}}}))]}),
                "spec.containers[0].resources.requests",
                "Invalid value: \"2\": must be equal to example.com/gpu limit of 1",
            ),
            (
                json!({"containers": [c(json!({"resources": {"limits": {"foo": "1"}}}))]}),
                "spec.containers[0].resources.limits[foo]",
                "Invalid value: \"foo\": must be a standard resource type or fully qualified",
            ),
            (
                json!({"containers": [c(json!({}))], "restartPolicy": "Sometimes"}),
                "spec.restartPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ),
            (
                json!({"containers": [c(json!({}))], "dnsPolicy": "Google"}),
                "spec.dnsPolicy",
                "Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            ),
            (
                json!({"containers": [c(json!({}))], "dnsPolicy": "None"}),
                "spec.dnsConfig",
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            ),
            (
                json!({"containers": [c(json!({"env": [{"name": "1BAD"}]}))]}),
                "spec.containers[0].env[0].name",
                "Invalid value: \"1BAD\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            ),
            (
                json!({"containers": [c(json!({"env": [{"name": "X", "valueFrom": {}}]}))]}),
                "spec.containers[0].env[0].valueFrom",
                "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ),
            (
                json!({"containers": [c(json!({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]}))]}),
                "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                "Unsupported value: \"status.phase\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
            ),
            (
                json!({"containers": [c(json!({"imagePullPolicy": "Sometimes"}))]}),
                "spec.containers[0].imagePullPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ),
            (
                json!({"containers": [c(json!({"livenessProbe": {}}))]}),
                "spec.containers[0].livenessProbe",
                "Required value: must specify a handler type",
            ),
            (
                json!({"containers": [c(json!({"restartPolicy": "Always"}))]}),
                "spec.containers[0].restartPolicy",
                "Forbidden: may not be set for non-init containers",
            ),
            (
                json!({"containers": [c(json!({}))], "initContainers": [c(json!({}))]}),
                "spec.initContainers[0].name",
                "Duplicate value: \"c\"",
            ),
            (
                json!({"containers": [c(json!({}))], "activeDeadlineSeconds": 0}),
                "spec.activeDeadlineSeconds",
                "Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ),
            (
                json!({"containers": [c(json!({"image": " nginx"}))]}),
                "spec.containers[0].image",
                "Invalid value: \" nginx\": must not have leading or trailing whitespace",
            ),
            (
                json!({"containers": [c(json!({}))], "tolerations": [{"operator": "Equal", "value": "x"}]}),
                "spec.tolerations[0].operator",
                "Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ),
            (
                json!({"containers": [c(json!({}))], "nodeSelector": {"bad key": "v"}}),
                "spec.nodeSelector",
                "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ),
            (
                json!({"containers": [c(json!({"ports": [{"containerPort": 80, "hostPort": 80}]})), c(json!({"name": "d", "ports": [{"containerPort": 81, "hostPort": 80}]}))]}),
                "spec.containers[1].ports[0].hostPort",
                "Duplicate value: \"TCP//80\"",
            ),
        ];
        for (spec, field, message) in cases {
            let errs = pod_errs(spec.clone());
            assert!(
                errs.iter().any(|(f, m)| f == field && m == message),
                "{spec}: want {field}: {message}, got {errs:?}"
            );
        }
    }

    #[test]
    fn pod_updates() {
        let old = json!({"spec": {"containers": [c(json!({"ports": [{"containerPort": 80}]}))], "activeDeadlineSeconds": 100, "tolerations": [{"key": "a", "operator": "Exists"}]}});
        let check = |new: Value| {
            let mut errs = Vec::new();
            validate_pod(&new, Some(&old), &mut errs);
            errs
        };
        // Image, lower activeDeadlineSeconds and added tolerations are allowed.
        let mut ok = old.clone();
        ok["spec"]["containers"][0]["image"] = json!("nginx:2");
        ok["spec"]["activeDeadlineSeconds"] = json!(50);
        ok["spec"]["tolerations"] =
            json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]);
        assert_eq!(check(ok), vec![]);
        let mut port = old.clone();
        port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
        let errs = check(port);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert!(errs[0].message.starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{}", errs[0].message);
        let mut more = old.clone();
        more["spec"]["containers"] = json!([c(json!({})), c(json!({"name": "d"}))]);
        let errs = check(more);
        assert_eq!(
            errs[0].message,
            "Forbidden: pod updates may not add or remove containers"
        );
        let mut higher = old.clone();
        higher["spec"]["activeDeadlineSeconds"] = json!(200);
        assert_eq!(
            check(higher)[0].message,
            "Invalid value: 200: must be less than or equal to previous value"
        );
        let mut removed = old.clone();
        removed["spec"]["tolerations"] = json!([]);
        assert_eq!(
            check(removed)[0].message,
            "Forbidden: existing toleration can not be modified except its tolerationSeconds"
        );
    }

    #[test]
    fn templates_use_their_prefix() {
        let mut errs = Vec::new();
        validate_pod_template(
            Some(
                &json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}, {"name": "d", "image": "i", "ports": [{"containerPort": 0}]}]}}),
            ),
            "spec.template",
            &PodOpts::default(),
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].field,
            "spec.template.spec.containers[1].ports[0].containerPort"
        );
    }
}
