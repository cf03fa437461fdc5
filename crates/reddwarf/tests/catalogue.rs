//! Every built-in kind, end to end with real kubectl: `kubectl api-resources` lists upstream
//! 1.33's built-in resources (less componentstatuses, apiservices and the authentication and
//! authorization reviews), applied manifests come back with upstream's defaults, `kubectl get`
//! prints upstream's columns, and `kubectl scale` works through `/scale`.

mod common;

use common::{parse, Server};
use serde_json::{json, Value};

const NS: &str = "cat";

/// `kubectl api-resources` of upstream 1.33, with the agreed omissions:
/// NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND.
const API_RESOURCES: &[[&str; 5]] = &[
    ["bindings", "", "v1", "true", "Binding"],
    ["componentstatuses", "cs", "v1", "false", "ComponentStatus"],
    ["configmaps", "cm", "v1", "true", "ConfigMap"],
    ["endpoints", "ep", "v1", "true", "Endpoints"],
    ["events", "ev", "v1", "true", "Event"],
    ["limitranges", "limits", "v1", "true", "LimitRange"],
    ["namespaces", "ns", "v1", "false", "Namespace"],
    ["nodes", "no", "v1", "false", "Node"],
    [
        "persistentvolumeclaims",
        "pvc",
        "v1",
        "true",
        "PersistentVolumeClaim",
    ],
    ["persistentvolumes", "pv", "v1", "false", "PersistentVolume"],
    ["pods", "po", "v1", "true", "Pod"],
    ["podtemplates", "", "v1", "true", "PodTemplate"],
    [
        "replicationcontrollers",
        "rc",
        "v1",
        "true",
        "ReplicationController",
    ],
    ["resourcequotas", "quota", "v1", "true", "ResourceQuota"],
    ["secrets", "", "v1", "true", "Secret"],
    ["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
    ["services", "svc", "v1", "true", "Service"],
    [
        "mutatingwebhookconfigurations",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "MutatingWebhookConfiguration",
    ],
    [
        "validatingadmissionpolicies",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingAdmissionPolicy",
    ],
    [
        "validatingadmissionpolicybindings",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingAdmissionPolicyBinding",
    ],
    [
        "validatingwebhookconfigurations",
        "",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingWebhookConfiguration",
    ],
    [
        "customresourcedefinitions",
        "crd,crds",
        "apiextensions.k8s.io/v1",
        "false",
        "CustomResourceDefinition",
    ],
    [
        "apiservices",
        "",
        "apiregistration.k8s.io/v1",
        "false",
        "APIService",
    ],
    [
        "controllerrevisions",
        "",
        "apps/v1",
        "true",
        "ControllerRevision",
    ],
    ["daemonsets", "ds", "apps/v1", "true", "DaemonSet"],
    ["deployments", "deploy", "apps/v1", "true", "Deployment"],
    ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
    ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"],
    [
        "selfsubjectreviews",
        "",
        "authentication.k8s.io/v1",
        "false",
        "SelfSubjectReview",
    ],
    [
        "tokenreviews",
        "",
        "authentication.k8s.io/v1",
        "false",
        "TokenReview",
    ],
    [
        "localsubjectaccessreviews",
        "",
        "authorization.k8s.io/v1",
        "true",
        "LocalSubjectAccessReview",
    ],
    [
        "selfsubjectaccessreviews",
        "",
        "authorization.k8s.io/v1",
        "false",
        "SelfSubjectAccessReview",
    ],
    [
        "selfsubjectrulesreviews",
        "",
        "authorization.k8s.io/v1",
        "false",
        "SelfSubjectRulesReview",
    ],
    [
        "subjectaccessreviews",
        "",
        "authorization.k8s.io/v1",
        "false",
        "SubjectAccessReview",
    ],
    [
        "horizontalpodautoscalers",
        "hpa",
        "autoscaling/v2",
        "true",
        "HorizontalPodAutoscaler",
    ],
    ["cronjobs", "cj", "batch/v1", "true", "CronJob"],
    ["jobs", "", "batch/v1", "true", "Job"],
    [
        "certificatesigningrequests",
        "csr",
        "certificates.k8s.io/v1",
        "false",
        "CertificateSigningRequest",
    ],
    ["leases", "", "coordination.k8s.io/v1", "true", "Lease"],
    [
        "endpointslices",
        "",
        "discovery.k8s.io/v1",
        "true",
        "EndpointSlice",
    ],
    ["events", "ev", "events.k8s.io/v1", "true", "Event"],
    [
        "flowschemas",
        "",
        "flowcontrol.apiserver.k8s.io/v1",
        "false",
        "FlowSchema",
    ],
    [
        "prioritylevelconfigurations",
        "",
        "flowcontrol.apiserver.k8s.io/v1",
        "false",
        "PriorityLevelConfiguration",
    ],
    [
        "ingressclasses",
        "",
        "networking.k8s.io/v1",
        "false",
        "IngressClass",
    ],
    [
        "ingresses",
        "ing",
        "networking.k8s.io/v1",
        "true",
        "Ingress",
    ],
    [
        "ipaddresses",
        "ip",
        "networking.k8s.io/v1",
        "false",
        "IPAddress",
    ],
    [
        "networkpolicies",
        "netpol",
        "networking.k8s.io/v1",
        "true",
        "NetworkPolicy",
    ],
    [
        "servicecidrs",
        "",
        "networking.k8s.io/v1",
        "false",
        "ServiceCIDR",
    ],
    [
        "runtimeclasses",
        "",
        "node.k8s.io/v1",
        "false",
        "RuntimeClass",
    ],
    [
        "poddisruptionbudgets",
        "pdb",
        "policy/v1",
        "true",
        "PodDisruptionBudget",
    ],
    [
        "clusterrolebindings",
        "",
        "rbac.authorization.k8s.io/v1",
        "false",
        "ClusterRoleBinding",
    ],
    [
        "clusterroles",
        "",
        "rbac.authorization.k8s.io/v1",
        "false",
        "ClusterRole",
    ],
    [
        "rolebindings",
        "",
        "rbac.authorization.k8s.io/v1",
        "true",
        "RoleBinding",
    ],
    ["roles", "", "rbac.authorization.k8s.io/v1", "true", "Role"],
    [
        "priorityclasses",
        "pc",
        "scheduling.k8s.io/v1",
        "false",
        "PriorityClass",
    ],
    ["csidrivers", "", "storage.k8s.io/v1", "false", "CSIDriver"],
    ["csinodes", "", "storage.k8s.io/v1", "false", "CSINode"],
    [
        "csistoragecapacities",
        "",
        "storage.k8s.io/v1",
        "true",
        "CSIStorageCapacity",
    ],
    [
        "storageclasses",
        "sc",
        "storage.k8s.io/v1",
        "false",
        "StorageClass",
    ],
    [
        "volumeattachments",
        "",
        "storage.k8s.io/v1",
        "false",
        "VolumeAttachment",
    ],
];

/// Splits kubectl's aligned table into cells by the header's column positions.
fn table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let mut starts = Vec::new();
    let mut prev_space = true;
    for (i, ch) in header.char_indices() {
        if ch != ' ' && prev_space {
            starts.push(i);
        }
        prev_space = ch == ' ';
    }
    // A column name may hold one space ("NOMINATED NODE"): merge starts one space apart.
    let mut merged: Vec<usize> = Vec::new();
    for s in starts {
        if let Some(&last) = merged.last() {
            if header[last..s].trim_end().len() + 1 == s - last {
                continue;
            }
        }
        merged.push(s);
    }
    let cut = |line: &str| -> Vec<String> {
        merged
            .iter()
            .enumerate()
            .map(|(n, &st)| {
                let end = merged
                    .get(n + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line.get(st.min(line.len())..end)
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .collect()
    };
    let head = cut(header);
    (
        head,
        lines.filter(|l| !l.trim().is_empty()).map(cut).collect(),
    )
}

fn header_of(text: &str) -> Vec<String> {
    text.lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Server {
    fn write_manifest(&self, name: &str, text: &str) -> String {
        let p = self.data_dir().join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.to_string_lossy().into_owned()
    }

    fn get_obj(&self, resource: &str, name: &str, namespaced: bool) -> Value {
        let mut args = vec!["get", resource, name, "-o", "json"];
        if namespaced {
            args.extend(["-n", NS]);
        }
        parse(&self.kubectl_ok("1.33", &args))
    }
}

#[test]
fn api_resources_list_every_builtin_kind() {
    let s = Server::start();
    for v in ["1.33", "1.27"] {
        let out = s.kubectl_ok(v, &["api-resources"]);
        let (head, rows) = table(&out);
        assert_eq!(
            head,
            ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
            "kubectl {v}:\n{out}"
        );
        let want: Vec<Vec<String>> = API_RESOURCES
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        assert_eq!(rows, want, "kubectl {v} api-resources:\n{out}");
    }
    let wide = s.kubectl_ok("1.33", &["api-resources", "-o", "wide"]);
    let (head, rows) = table(&wide);
    assert_eq!(head[5..], ["VERBS", "CATEGORIES"], "{wide}");
    let verbs = |name: &str, group: &str| -> (String, String) {
        let r = rows
            .iter()
            .find(|r| r[0] == name && r[2] == group)
            .unwrap_or_else(|| panic!("{name} missing:\n{wide}"));
        (r[5].clone(), r[6].clone())
    };
    let all = "create,delete,deletecollection,get,list,patch,update,watch";
    assert_eq!(verbs("bindings", "v1"), ("create".into(), String::new()));
    assert_eq!(
        verbs("namespaces", "v1"),
        (
            "create,delete,get,list,patch,update,watch".into(),
            String::new()
        )
    );
    assert_eq!(verbs("pods", "v1"), (all.into(), "all".into()));
    assert_eq!(verbs("deployments", "apps/v1"), (all.into(), "all".into()));
    assert_eq!(
        verbs("customresourcedefinitions", "apiextensions.k8s.io/v1"),
        (all.into(), "api-extensions".into())
    );

    // Verbs a resource does not serve answer 405, as upstream's routes do.
    let (code, body) = s.curl("GET", "/api/v1/namespaces/default/bindings", None, None);
    assert_eq!(code, 405, "{body}");
    let (code, body) = s.curl("DELETE", "/api/v1/namespaces", None, None);
    assert_eq!(code, 405, "{body}");

    // Discovery names the Scale kind of /scale, which the scale client relies on.
    let (code, body) = s.curl("GET", "/apis/apps/v1", None, None);
    assert_eq!(code, 200);
    let list = parse(&body);
    let scale = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .expect("deployments/scale in discovery")
        .clone();
    assert_eq!(
        (
            scale["group"].clone(),
            scale["version"].clone(),
            scale["kind"].clone()
        ),
        (json!("autoscaling"), json!("v1"), json!("Scale"))
    );
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: cat}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: cat}
spec:
  containers:
  - name: c
    image: nginx
    ports: [{containerPort: 80}]
    resources: {limits: {cpu: 100m, memory: 64Mi}}
  volumes: [{name: scratch}, {name: cfg, configMap: {name: cfg}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: cat}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 80}]}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: cat}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:16}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: cat}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: a, image: busybox:1.36}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs, namespace: cat}
spec:
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: a, image: busybox:1.36}]}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc, namespace: cat}
spec:
  template:
    metadata: {labels: {app: rc}}
    spec: {containers: [{name: a, image: busybox:1.36}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: pi, namespace: cat}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: pi, image: perl:5.34}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: cat}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec: {restartPolicy: OnFailure, containers: [{name: t, image: busybox:1.36}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: cat}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim, namespace: cat}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /tmp/pv1}}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: cat}
stringData: {k: v}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: cat}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: cat}
spec:
  rules:
  - host: web.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: cat}
spec:
  podSelector: {}
  egress: [{ports: [{port: 53}]}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb, namespace: cat}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: cat}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: cat}
roleRef: {kind: ClusterRole, name: view}
subjects: [{kind: User, name: alice}]
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: example.com/fast
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: vw}
webhooks:
- name: v.example.com
  sideEffects: None
  admissionReviewVersions: [v1]
  clientConfig: {service: {name: hook, namespace: cat}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: cat}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.1]}]
"#;

#[test]
fn applied_manifests_come_back_with_upstream_defaults() {
    // Without the PV binder: the claim's defaulted phase is what is checked here.
    let s = Server::start_with(&["--controllers=*,-persistentvolume-binder"]);
    let path = s.write_manifest("all.yaml", MANIFEST);
    s.kubectl_ok("1.33", &["apply", "-f", &path]);

    let pod = s.get_obj("pod", "p", true);
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(
        spec["containers"][0]["resources"]["requests"],
        json!({"cpu": "100m", "memory": "64Mi"})
    );
    assert_eq!(
        spec["volumes"][0],
        json!({"name": "scratch", "emptyDir": {}})
    );
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "Guaranteed");

    let d = s.get_obj("deployment", "web", true);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let tpl = &d["spec"]["template"]["spec"];
    assert_eq!(tpl["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(tpl["containers"][0]["terminationMessagePolicy"], "File");
    assert_eq!(tpl["securityContext"], json!({}));

    let sts = s.get_obj("statefulset", "db", true);
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );

    let ds = s.get_obj("daemonset", "agent", true);
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    );
    assert_eq!(s.get_obj("replicaset", "rs", true)["spec"]["replicas"], 1);
    let rc = s.get_obj("rc", "rc", true);
    assert_eq!(rc["spec"]["selector"], json!({"app": "rc"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "rc"}));

    let job = s.get_obj("job", "pi", true);
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    for (k, v) in [
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("manualSelector", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        assert_eq!(job["spec"][k], v, "job spec.{k}");
    }
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi", "controller-uid": uid, "job-name": "pi"})
    );

    let cj = s.get_obj("cronjob", "tick", true);
    for (k, v) in [
        ("concurrencyPolicy", json!("Allow")),
        ("suspend", json!(false)),
        ("successfulJobsHistoryLimit", json!(3)),
        ("failedJobsHistoryLimit", json!(1)),
    ] {
        assert_eq!(cj["spec"][k], v, "cronjob spec.{k}");
    }

    let svc = s.get_obj("service", "web", true);
    for (k, v) in [
        ("type", json!("ClusterIP")),
        ("sessionAffinity", json!("None")),
        ("ipFamilyPolicy", json!("SingleStack")),
        ("ipFamilies", json!(["IPv4"])),
        ("internalTrafficPolicy", json!("Cluster")),
    ] {
        assert_eq!(svc["spec"][k], v, "service spec.{k}");
    }
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );

    let pvc = s.get_obj("pvc", "claim", true);
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");
    let pv = s.get_obj("pv", "pv1", false);
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(s.get_obj("secret", "s", true)["type"], "Opaque");

    let hpa = s.get_obj("hpa", "web", true);
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    let np = s.get_obj("networkpolicy", "deny", true);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    let rb = s.get_obj("rolebinding", "reader", true);
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(
        s.get_obj("priorityclass", "high", false)["preemptionPolicy"],
        "PreemptLowerPriority"
    );
    let sc = s.get_obj("storageclass", "fast", false);
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
    let vw = s.get_obj("validatingwebhookconfiguration", "vw", false);
    let w = &vw["webhooks"][0];
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(w["matchPolicy"], "Equivalent");
    assert_eq!(w["timeoutSeconds"], 10);
    assert_eq!(w["namespaceSelector"], json!({}));
    assert_eq!(w["objectSelector"], json!({}));
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(w["clientConfig"]["service"]["port"], 443);
    assert_eq!(w["rules"][0]["scope"], "*");
    assert_eq!(vw["metadata"]["generation"], 1);
    let crd = s.get_obj("crd", "widgets.example.com", false);
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    let eps = s.get_obj("endpointslice", "web-1", true);
    assert_eq!(
        eps["ports"][0],
        json!({"name": "", "port": 80, "protocol": "TCP"})
    );

    // The YAML form carries the same defaults (and a re-apply changes nothing).
    let y = s.kubectl_ok("1.33", &["get", "deploy", "web", "-n", NS, "-o", "yaml"]);
    assert!(y.contains("progressDeadlineSeconds: 600"), "{y}");
    let before = d["metadata"]["resourceVersion"].clone();
    let deployment = MANIFEST
        .split("---")
        .find(|doc| doc.contains("kind: Deployment"))
        .unwrap();
    let again = s.write_manifest("deploy.yaml", deployment);
    let out = s.kubectl_ok("1.33", &["apply", "-f", &again]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(
        s.get_obj("deployment", "web", true)["metadata"]["resourceVersion"],
        before
    );

    // Every kind renders as a table.
    for r in [
        "pods",
        "deploy",
        "sts",
        "ds",
        "rs",
        "rc",
        "jobs",
        "cj",
        "svc",
        "pvc",
        "secrets",
        "hpa",
        "ing",
        "netpol",
        "pdb",
        "rolebindings",
        "endpointslices",
        "roles",
        "leases",
    ] {
        s.kubectl_ok("1.33", &["get", r, "-n", NS, "-o", "wide"]);
    }
    for r in [
        "pv",
        "pc",
        "sc",
        "validatingwebhookconfigurations",
        "crd",
        "clusterroles",
    ] {
        s.kubectl_ok("1.33", &["get", r]);
    }
}

#[test]
fn get_prints_upstream_columns() {
    let s = Server::start();
    let path = s.write_manifest("all.yaml", MANIFEST);
    s.kubectl_ok("1.33", &["apply", "-f", &path]);
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "configmap",
            "cfg",
            "-n",
            NS,
            "--from-literal=a=1",
            "--from-literal=b=2",
        ],
    );
    // A node as a kubelet registers it: with its status.
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "worker-1", "labels": {"node-role.kubernetes.io/worker": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "containerd://1.7.0", "machineID": "m", "systemUUID": "s", "bootID": "b",
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}});
    let (code, body) = s.curl(
        "POST",
        "/api/v1/nodes",
        Some("application/json"),
        Some(node.to_string().as_bytes()),
    );
    assert_eq!(code, 201, "{body}");

    let cases: &[(&[&str], &[&str])] = &[
        (&["pods"], &["NAME", "READY", "STATUS", "RESTARTS", "AGE"]),
        (
            &["pods", "-o", "wide"],
            &[
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES",
            ],
        ),
        (
            &["deployments"],
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ),
        (
            &["deployments", "-o", "wide"],
            &[
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR",
            ],
        ),
        (
            &["services"],
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
        ),
        (
            &["jobs"],
            &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ),
        (
            &["jobs", "-o", "wide"],
            &[
                "NAME",
                "STATUS",
                "COMPLETIONS",
                "DURATION",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR",
            ],
        ),
        (&["configmaps"], &["NAME", "DATA", "AGE"]),
        (
            &["rolebindings", "-o", "wide"],
            &["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        ),
        (&["roles"], &["NAME", "CREATED AT"]),
    ];
    for (args, want) in cases {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend(["-n", NS]);
        let out = s.kubectl_ok("1.33", &a);
        assert_eq!(header_of(&out), *want, "kubectl get {args:?}:\n{out}");
    }

    let out = s.kubectl_ok("1.33", &["get", "nodes"]);
    let (head, rows) = table(&out);
    assert_eq!(head, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{out}");
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(
        (&rows[0][0], &rows[0][1], &rows[0][2], &rows[0][4]),
        (
            &"worker-1".to_string(),
            &"Ready".to_string(),
            &"worker".to_string(),
            &"v1.33.1".to_string()
        ),
        "{out}"
    );
    let out = s.kubectl_ok("1.33", &["get", "nodes", "-o", "wide"]);
    let (head, rows) = table(&out);
    assert_eq!(
        head[5..],
        [
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ],
        "{out}"
    );
    assert_eq!(
        rows[0][5..],
        [
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12",
            "6.1.0",
            "containerd://1.7.0"
        ],
        "{out}"
    );

    let (_, rows) = table(&s.kubectl_ok("1.33", &["get", "jobs", "-n", NS]));
    assert_eq!(rows[0][..3], ["pi", "Running", "0/1"]);
    let (_, rows) = table(&s.kubectl_ok("1.33", &["get", "configmaps", "cfg", "-n", NS]));
    assert_eq!(rows[0][..2], ["cfg", "2"]);
    let (_, rows) = table(&s.kubectl_ok("1.33", &["get", "pods", "p", "-n", NS]));
    assert_eq!(rows[0][..4], ["p", "0/1", "Pending", "0"]);
    let (_, rows) = table(&s.kubectl_ok("1.33", &["get", "svc", "web", "-n", NS]));
    assert_eq!(rows[0][1], "ClusterIP");
    assert_eq!(rows[0][4], "80/TCP");
    let out = s.kubectl_ok("1.33", &["get", "crd"]);
    let (head, rows) = table(&out);
    assert_eq!(head, ["NAME", "CREATED AT"], "{out}");
    assert!(
        rows[0][1].ends_with('Z') && rows[0][1].contains('T'),
        "{out}"
    );
}

#[test]
fn kubectl_scale_works_through_the_scale_subresource() {
    let s = Server::start();
    let path = s.write_manifest("all.yaml", MANIFEST);
    s.kubectl_ok("1.33", &["apply", "-f", &path]);
    let replicas = |resource: &str, name: &str| -> (Value, Value) {
        let o = s.get_obj(resource, name, true);
        (
            o["spec"]["replicas"].clone(),
            o["metadata"]["generation"].clone(),
        )
    };
    assert_eq!(replicas("deployment", "web"), (json!(1), json!(1)));
    for (v, n) in [("1.27", "3"), ("1.33", "5")] {
        let out = s.kubectl_ok(
            v,
            &[
                "scale",
                "deployment",
                "web",
                "-n",
                NS,
                &format!("--replicas={n}"),
            ],
        );
        assert!(
            out.contains("deployment.apps/web scaled"),
            "kubectl {v}: {out}"
        );
    }
    assert_eq!(replicas("deployment", "web"), (json!(5), json!(3)));
    for r in ["statefulset/db", "replicaset/rs", "rc/rc"] {
        s.kubectl_ok("1.33", &["scale", r, "-n", NS, "--replicas=2"]);
        let (res, name) = r.split_once('/').unwrap();
        assert_eq!(replicas(res, name).0, json!(2), "{r}");
    }
    // A precondition that does not hold is refused by kubectl after reading the Scale.
    let out = s.kubectl(
        "1.33",
        &[
            "scale",
            "deploy/web",
            "-n",
            NS,
            "--current-replicas=4",
            "--replicas=1",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(replicas("deployment", "web").0, json!(5));

    let base = format!("/apis/apps/v1/namespaces/{NS}/deployments/web/scale");
    let (code, body) = s.curl("GET", &base, None, None);
    assert_eq!(code, 200, "{body}");
    let scale = parse(&body);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, body) = s.curl(
        "PATCH",
        &base,
        Some("application/merge-patch+json"),
        Some(br#"{"spec":{"replicas":4}}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["spec"]["replicas"], 4);
    // A stale resourceVersion is a conflict; a negative count is invalid.
    let stale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": NS, "resourceVersion": scale["metadata"]["resourceVersion"]},
        "spec": {"replicas": 2}});
    let (code, body) = s.curl(
        "PUT",
        &base,
        Some("application/json"),
        Some(stale.to_string().as_bytes()),
    );
    assert_eq!(code, 409, "{body}");
    let neg = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": -1}});
    let (code, body) = s.curl(
        "PUT",
        &base,
        Some("application/json"),
        Some(neg.to_string().as_bytes()),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("spec.replicas"), "{body}");
    let (code, _) = s.curl(
        "GET",
        &format!("/apis/apps/v1/namespaces/{NS}/daemonsets/agent/scale"),
        None,
        None,
    );
    assert_eq!(code, 404);
    let (code, body) = s.curl(
        "GET",
        &format!("/api/v1/namespaces/{NS}/replicationcontrollers/rc/scale"),
        None,
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["status"]["selector"], "app=rc");
}
