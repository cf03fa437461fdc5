use serde_json::{json, Value};

use super::builtin_kinds;
use crate::{Catalogue, ResourceKind};

fn kind(group: &str, plural: &str) -> ResourceKind {
    builtin_kinds()
        .into_iter()
        .find(|k| {
            k.group == group && k.plural == plural && (k.version == "v1" || k.version == "v2")
        })
        .unwrap_or_else(|| panic!("{group}/{plural} not in the catalogue"))
}

/// Seconds since the epoch of 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "d", "creationTimestamp": "2024-01-01T00:00:00Z"})
}

fn row(k: &ResourceKind, o: &Value) -> Vec<Value> {
    let cells = (k.row)(o, T0 + 90);
    assert_eq!(
        cells.len(),
        (k.columns)().len(),
        "{}: cells and columns differ",
        k.plural
    );
    cells
}

fn headers(k: &ResourceKind, priority: i32) -> Vec<&'static str> {
    (k.columns)()
        .into_iter()
        .filter(|c| c.priority <= priority)
        .map(|c| c.name)
        .collect()
}

#[test]
fn resources_are_unique_and_well_formed() {
    let kinds = builtin_kinds();
    for (i, a) in kinds.iter().enumerate() {
        assert!(!a.kind.is_empty() && !a.plural.is_empty() && !a.singular.is_empty());
        assert!(!a.verbs.is_empty(), "{} has no verbs", a.plural);
        for b in &kinds[i + 1..] {
            assert!(
                !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                "{}/{} listed twice",
                a.group,
                a.plural
            );
        }
        // Every table renders, even for an empty object.
        let cells = (a.row)(&json!({"metadata": meta("x")}), T0);
        assert_eq!(cells.len(), (a.columns)().len(), "{}", a.plural);
    }
    // Core first; autoscaling prefers v2 (listed first).
    assert_eq!(kinds[0].group, "");
    let c = Catalogue::builtin();
    let groups = c.groups();
    let autoscaling = groups.iter().find(|(g, _)| *g == "autoscaling").unwrap();
    assert_eq!(autoscaling.1, vec!["v2", "v1"]);
    // Deprecated but still served by upstream 1.33, read-only.
    let cs = c.by_resource("", "v1", "componentstatuses").unwrap();
    assert_eq!(cs.verbs(), &["get", "list"]);
    assert_eq!(cs.short_names, &["cs"]);
}

#[test]
fn subresources_beyond_status_follow_upstream_1_33() {
    assert_eq!(
        kind("", "pods").subresources(),
        vec![
            "status",
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
        ]
    );
    assert_eq!(kind("", "services").subresources(), vec!["status", "proxy"]);
    assert_eq!(kind("", "nodes").subresources(), vec!["status", "proxy"]);
    let csr = kind("certificates.k8s.io", "certificatesigningrequests");
    assert_eq!(csr.subresources(), vec!["status", "approval"]);
    assert_eq!(
        csr.extra_subresource("approval").map(|s| s.role),
        Some(crate::SubresourceRole::Part("/status/conditions"))
    );
}

#[test]
fn verbs_and_subresources_follow_upstream() {
    let b = kind("", "bindings");
    assert_eq!(b.verbs(), &["create"]);
    assert!(!b.serves("get"));
    let ns = kind("", "namespaces");
    assert!(!ns.serves("deletecollection"));
    assert_eq!(ns.subresources(), vec!["status", "finalize"]);
    for (g, p) in [
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("", "replicationcontrollers"),
    ] {
        assert_eq!(kind(g, p).subresources(), vec!["status", "scale"], "{p}");
    }
    assert!(kind("", "pods").delete_returns_object);
    assert!(kind("", "services").delete_returns_object);
    assert!(!kind("", "configmaps").delete_returns_object);
    assert!(kind("", "nodes").create_keeps_status);
    assert_eq!(
        kind("apiextensions.k8s.io", "customresourcedefinitions").short_names,
        &["crd", "crds"]
    );
}

#[test]
fn generation_follows_the_upstream_fields() {
    let d = kind("apps", "deployments");
    let old = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
    let mut new = old.clone();
    new["metadata"]["labels"]["a"] = json!("2");
    assert!(!d.generation_changed(&old, &new));
    new["spec"]["replicas"] = json!(2);
    assert!(d.generation_changed(&old, &new));
    let w = kind(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    );
    assert!(w.generation);
    assert!(w.generation_changed(&json!({}), &json!({"webhooks": []})));
    let eps = kind("discovery.k8s.io", "endpointslices");
    assert!(eps.generation_changed(&old, &new));
}

#[test]
fn default_table_is_name_and_created_at() {
    let r = kind("rbac.authorization.k8s.io", "roles");
    assert_eq!(headers(&r, 0), vec!["Name", "Created At"]);
    assert_eq!((r.columns)()[1].type_, "date");
    assert_eq!(
        row(&r, &json!({"metadata": meta("reader")})),
        vec![json!("reader"), json!("2024-01-01T00:00:00Z")]
    );
    for (g, p) in [
        ("", "limitranges"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ] {
        assert_eq!(headers(&kind(g, p), 1), vec!["Name", "Created At"], "{p}");
    }
}

#[test]
fn headers_match_upstream_printers() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("", "pods", &["Name", "Ready", "Status", "Restarts", "Age"]),
        ("", "nodes", &["Name", "Status", "Roles", "Age", "Version"]),
        (
            "",
            "services",
            &[
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
            ],
        ),
        ("", "configmaps", &["Name", "Data", "Age"]),
        (
            "apps",
            "deployments",
            &["Name", "Ready", "Up-to-date", "Available", "Age"],
        ),
        ("apps", "statefulsets", &["Name", "Ready", "Age"]),
        (
            "apps",
            "daemonsets",
            &[
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
            ],
        ),
        (
            "batch",
            "jobs",
            &["Name", "Status", "Completions", "Duration", "Age"],
        ),
        (
            "batch",
            "cronjobs",
            &[
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
            ],
        ),
        (
            "",
            "persistentvolumeclaims",
            &[
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "VolumeAttributesClass",
                "Age",
            ],
        ),
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            &["Name", "Role", "Age"],
        ),
        (
            "storage.k8s.io",
            "storageclasses",
            &[
                "Name",
                "Provisioner",
                "ReclaimPolicy",
                "VolumeBindingMode",
                "AllowVolumeExpansion",
                "Age",
            ],
        ),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            &[
                "Name",
                "Reference",
                "Targets",
                "MinPods",
                "MaxPods",
                "Replicas",
                "Age",
            ],
        ),
    ];
    for (g, p, want) in cases {
        assert_eq!(headers(&kind(g, p), 0), *want, "{p}");
    }
    assert_eq!(
        headers(&kind("", "nodes"), 1)[5..],
        [
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
    assert_eq!(
        headers(&kind("batch", "jobs"), 1)[5..],
        ["Containers", "Images", "Selector"]
    );
    assert_eq!(
        headers(&kind("rbac.authorization.k8s.io", "rolebindings"), 1)[3..],
        ["Users", "Groups", "ServiceAccounts"]
    );
}

#[test]
fn pod_rows_show_container_state() {
    let k = kind("", "pods");
    let pod = json!({"metadata": meta("p"),
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"finishedAt": "2024-01-01T00:00:30Z"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    let r = row(&k, &pod);
    assert_eq!(r[1], "1/2");
    assert_eq!(r[2], "CrashLoopBackOff");
    assert_eq!(r[3], "2 (60s ago)");
    assert_eq!(r[4], "90s");
    assert_eq!(r[5], "10.0.0.5");
    assert_eq!(r[6], "n1");
    assert_eq!(r[7], "<none>");
    let init = json!({"metadata": meta("p"),
        "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}, {"name": "j"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}});
    assert_eq!(row(&k, &init)[2], "Init:0/2");
    let mut deleting = pod.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:01:00Z");
    assert_eq!(row(&k, &deleting)[2], "Terminating");
}

#[test]
fn node_rows_show_status_roles_and_version() {
    let k = kind("", "nodes");
    let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "infra"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian"}}});
    assert_eq!(
        row(&k, &node),
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,infra"),
            json!("90s"),
            json!("v1.33.0"),
            json!("192.168.1.2"),
            json!("<none>"),
            json!("Debian"),
            json!("<unknown>"),
            json!("<unknown>"),
        ]
    );
    let bare = json!({"metadata": {"name": "n2"}});
    assert_eq!(row(&k, &bare)[1], "Unknown");
    assert_eq!(row(&k, &bare)[2], "<none>");
}

#[test]
fn workload_rows() {
    let job = kind("batch", "jobs");
    let j = json!({"metadata": meta("j"),
        "spec": {"completions": 3, "parallelism": 2, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                 "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {"succeeded": 1, "startTime": "2024-01-01T00:00:10Z",
                   "conditions": [{"type": "Complete", "status": "True"}], "completionTime": "2024-01-01T00:00:40Z"}});
    assert_eq!(
        row(&job, &j),
        vec![
            json!("j"),
            json!("Complete"),
            json!("1/3"),
            json!("30s"),
            json!("90s"),
            json!("c"),
            json!("busybox"),
            json!("batch.kubernetes.io/controller-uid=u"),
        ]
    );
    let running = json!({"metadata": meta("j"), "spec": {"parallelism": 2}});
    let r = row(&job, &running);
    assert_eq!(
        (r[1].clone(), r[2].clone(), r[3].clone()),
        (json!("Running"), json!("0/1 of 2"), json!(""))
    );

    let cj = kind("batch", "cronjobs");
    let r = row(
        &cj,
        &json!({"metadata": meta("c"), "spec": {"schedule": "*/5 * * * *", "suspend": false}}),
    );
    assert_eq!(
        r[1..6],
        [
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(0),
            json!("<none>")
        ]
    );

    let rs = kind("apps", "replicasets");
    let r = row(
        &rs,
        &json!({"metadata": meta("r"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2, "readyReplicas": 1}}),
    );
    assert_eq!(r[1..4], [json!(3), json!(2), json!(1)]);
    assert_eq!(r[7], "app=web");

    let sts = kind("apps", "statefulsets");
    assert_eq!(
        row(
            &sts,
            &json!({"metadata": meta("s"), "spec": {"replicas": 2}})
        )[1],
        "0/2"
    );

    let cr = kind("apps", "controllerrevisions");
    let r = row(
        &cr,
        &json!({"metadata": {"name": "web-1", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}, "revision": 1}),
    );
    assert_eq!(r[1..3], [json!("statefulset.apps/web"), json!(1)]);
}

#[test]
fn service_and_network_rows() {
    let svc = kind("", "services");
    let lb = json!({"metadata": meta("s"),
        "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.10"], "selector": {"app": "web"},
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
        "status": {"loadBalancer": {}}});
    assert_eq!(
        row(&svc, &lb),
        vec![
            json!("s"),
            json!("LoadBalancer"),
            json!("10.96.0.10"),
            json!("<pending>"),
            json!("80:30080/TCP,53/UDP"),
            json!("90s"),
            json!("app=web"),
        ]
    );
    let ext = json!({"metadata": meta("e"), "spec": {"type": "ExternalName", "externalName": "example.com"}});
    let r = row(&svc, &ext);
    assert_eq!(
        (r[2].clone(), r[3].clone(), r[4].clone(), r[6].clone()),
        (
            json!("<none>"),
            json!("example.com"),
            json!("<none>"),
            json!("<none>")
        )
    );

    let ing = kind("networking.k8s.io", "ingresses");
    let r = row(
        &ing,
        &json!({"metadata": meta("i"), "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example"}, {}], "tls": [{}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
    );
    assert_eq!(
        r[1..5],
        [
            json!("nginx"),
            json!("a.example"),
            json!("1.2.3.4"),
            json!("80, 443")
        ]
    );

    let np = kind("networking.k8s.io", "networkpolicies");
    assert_eq!(
        row(
            &np,
            &json!({"metadata": meta("n"), "spec": {"podSelector": {}}})
        )[1],
        "<none>"
    );

    let ep = kind("", "endpoints");
    let r = row(
        &ep,
        &json!({"metadata": meta("e"), "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}], "ports": [{"port": 80}]}]}),
    );
    assert_eq!(r[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...");

    let eps = kind("discovery.k8s.io", "endpointslices");
    let r = row(
        &eps,
        &json!({"metadata": meta("e"), "addressType": "IPv4", "ports": [{"port": 80}], "endpoints": [{"addresses": ["10.0.0.1"]}]}),
    );
    assert_eq!(r[1..4], [json!("IPv4"), json!("80"), json!("10.0.0.1")]);
    let r = row(&eps, &json!({"metadata": meta("e"), "addressType": "IPv4"}));
    assert_eq!(r[2..4], [json!("<unset>"), json!("<unset>")]);
}

#[test]
fn storage_rbac_and_other_rows() {
    let pv = kind("", "persistentvolumes");
    let r = row(
        &pv,
        &json!({"metadata": meta("pv1"), "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "d", "name": "c"}, "storageClassName": "fast", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}}),
    );
    assert_eq!(
        r[1..8],
        [
            json!("1Gi"),
            json!("RWO,RWX"),
            json!("Retain"),
            json!("Bound"),
            json!("d/c"),
            json!("fast"),
            json!("<unset>")
        ]
    );
    let pvc = kind("", "persistentvolumeclaims");
    let r = row(
        &pvc,
        &json!({"metadata": meta("c"), "spec": {"storageClassName": "fast"}, "status": {"phase": "Pending"}}),
    );
    assert_eq!(
        r[1..6],
        [
            json!("Pending"),
            json!(""),
            json!(""),
            json!(""),
            json!("fast")
        ]
    );
    assert_eq!(r[8], "<unset>");

    let sc = kind("storage.k8s.io", "storageclasses");
    let r = row(
        &sc,
        &json!({"metadata": {"name": "std", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "x.io/p"}),
    );
    assert_eq!(
        r[..5],
        [
            json!("std (default)"),
            json!("x.io/p"),
            json!("Delete"),
            json!("Immediate"),
            json!(false)
        ]
    );

    let rb = kind("rbac.authorization.k8s.io", "rolebindings");
    let r = row(
        &rb,
        &json!({"metadata": meta("rb"), "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "namespace": "d", "name": "bot"}, {"kind": "User", "name": "bob"}]}),
    );
    assert_eq!(r[1], "ClusterRole/view");
    assert_eq!(r[3..], [json!("alice, bob"), json!("devs"), json!("d/bot")]);

    let hpa = kind("autoscaling", "horizontalpodautoscalers");
    let r = row(
        &hpa,
        &json!({"metadata": meta("h"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
    );
    assert_eq!(
        r[1..6],
        [
            json!("Deployment/web"),
            json!("cpu: <unknown>/80%"),
            json!("1"),
            json!(5),
            json!(0)
        ]
    );

    let pdb = kind("policy", "poddisruptionbudgets");
    let r = row(
        &pdb,
        &json!({"metadata": meta("p"), "spec": {"minAvailable": 2}}),
    );
    assert_eq!(r[1..4], [json!("2"), json!("N/A"), json!(0)]);

    let pc = kind("scheduling.k8s.io", "priorityclasses");
    let r = row(
        &pc,
        &json!({"metadata": meta("high"), "value": 1000, "preemptionPolicy": "Never"}),
    );
    assert_eq!(r[1..3], [json!(1000), json!(false)]);
    assert_eq!(r[4], "Never");

    let csr = kind("certificates.k8s.io", "certificatesigningrequests");
    let r = row(
        &csr,
        &json!({"metadata": meta("c"), "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 86400},
        "status": {"conditions": [{"type": "Approved"}], "certificate": "Zm9v"}}),
    );
    assert_eq!(
        r[2..],
        [
            json!("kubernetes.io/kube-apiserver-client"),
            json!("alice"),
            json!("24h"),
            json!("Approved,Issued")
        ]
    );

    let rq = kind("", "resourcequotas");
    let r = row(
        &rq,
        &json!({"metadata": meta("q"), "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"}, "used": {"pods": "3"}}}),
    );
    assert_eq!(
        r[1..3],
        [
            json!("pods: 3/10, requests.cpu: 0/1"),
            json!("limits.cpu: 0/2")
        ]
    );

    let ev = kind("events.k8s.io", "events");
    let r = row(
        &ev,
        &json!({"metadata": meta("e"), "regarding": {"kind": "Pod", "name": "p"}, "note": "hi ", "reason": "Started", "type": "Normal",
        "reportingController": "kubelet", "eventTime": "2024-01-01T00:00:30Z"}),
    );
    assert_eq!(
        r[..7],
        [
            json!("60s"),
            json!("Normal"),
            json!("Started"),
            json!("pod/p"),
            json!(""),
            json!("kubelet"),
            json!("hi")
        ]
    );
    assert_eq!(r[8], 1);
}

#[test]
fn always_emitted_fields_are_json_objects_and_fill_only_what_is_absent() {
    for k in builtin_kinds() {
        if !k.always_emitted.is_empty() {
            let v: serde_json::Value = serde_json::from_str(k.always_emitted)
                .unwrap_or_else(|e| panic!("{}: {e}", k.plural));
            assert!(v.is_object(), "{}", k.plural);
        }
    }
    let sts = kind("apps", "statefulsets");
    let mut o = json!({"metadata": meta("x"), "status": {"replicas": 3}});
    sts.apply_defaults(&mut o);
    assert_eq!(o["status"], json!({"replicas": 3, "availableReplicas": 0}));
    let deploy = kind("apps", "deployments");
    let mut o = json!({"metadata": meta("x"), "status": null});
    deploy.fill_always_emitted(&mut o);
    assert_eq!(o["status"], json!({}));
}
