//! Places where real clients and Helm charts saw reddwarf differ from upstream: each test
//! drives the real binary with kubectl or curl and checks upstream's behaviour.

mod common;

use std::time::Duration;

use common::{eventually, Server};
use serde_json::{json, Value};

fn get_json(s: &Server, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok("1.33", &args)).expect("JSON")
}

fn ok_stdin(s: &Server, args: &[&str], input: &str) -> String {
    let out = s.kubectl_stdin(args, input);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply_ss(s: &Server, manifest: &str) {
    ok_stdin(s, &["apply", "--server-side", "-f", "-"], manifest);
}

const SERVICES: &[(&str, &str)] = &[
    (
        "ci",
        "spec: {selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}",
    ),
    (
        "np",
        "spec: {type: NodePort, selector: {app: a}, ports: [{port: 80}]}",
    ),
    (
        "lb",
        "spec: {type: LoadBalancer, selector: {app: a}, ports: [{port: 80}]}",
    ),
    (
        "hl",
        "spec: {clusterIP: None, selector: {app: a}, ports: [{port: 80}]}",
    ),
];

/// The spec with the values the allocators pick blanked out, and whether they were picked.
fn shape(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let ip = spec["clusterIP"].as_str().unwrap_or("").to_string();
    assert!(!ip.is_empty(), "no clusterIP: {spec}");
    assert_eq!(spec["clusterIPs"], json!([ip]), "{spec}");
    if ip != "None" {
        spec["clusterIP"] = json!("<ip>");
        spec["clusterIPs"] = json!(["<ip>"]);
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            if p.get("nodePort").is_some() {
                assert!(p["nodePort"].as_i64().is_some_and(|n| n >= 30000));
                p["nodePort"] = json!("<port>");
            }
        }
    }
    spec
}

#[test]
fn server_side_apply_creates_services_as_create_does() {
    let s = Server::start();
    for (name, spec) in SERVICES {
        for how in ["create", "apply"] {
            let manifest = format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}-{how}}}\n{spec}\n"
            );
            if how == "create" {
                ok_stdin(&s, &["create", "-f", "-"], &manifest);
            } else {
                apply_ss(&s, &manifest);
            }
        }
        let created = get_json(&s, &["svc", &format!("{name}-create")]);
        let applied = get_json(&s, &["svc", &format!("{name}-apply")]);
        assert_eq!(
            shape(&applied["spec"]),
            shape(&created["spec"]),
            "service {name}"
        );
        let ip = created["spec"]["clusterIP"].as_str().unwrap().to_string();
        if *name == "hl" {
            assert_eq!(applied["spec"]["clusterIPs"], json!(["None"]));
        } else {
            assert_ne!(ip, applied["spec"]["clusterIP"].as_str().unwrap_or(""));
        }
        // The applier owns what it applied.
        let raw = s.api_get(&format!("/api/v1/namespaces/default/services/{name}-apply"));
        let managers: Vec<String> = raw["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{} {}", m["manager"], m["operation"]))
            .collect();
        assert_eq!(managers, vec!["\"kubectl\" \"Apply\""], "{managers:?}");
    }
}

const DEFAULTED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx:1.27
        env:
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        volumeMounts: [{name: info, mountPath: /info}]
      volumes:
      - name: info
        downwardAPI:
          items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
      - name: token
        projected:
          sources: [{serviceAccountToken: {path: token}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: c, image: postgres:16}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: vw}
webhooks:
- name: v.example.com
  sideEffects: None
  admissionReviewVersions: [v1]
  clientConfig: {url: "https://example.com/validate"}
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
"#;

#[test]
fn reapplying_a_manifest_that_leaves_out_defaults_changes_nothing() {
    // Without the workload controllers: their status writes move resourceVersion too.
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset,-statefulset"]);
    let objects = [
        "deployment/web",
        "networkpolicy/np",
        "statefulset/db",
        "validatingwebhookconfiguration/vw",
    ];
    apply_ss(&s, DEFAULTED);
    let first: Vec<(Value, Value)> = objects
        .iter()
        .map(|o| {
            let v = get_json(&s, &[o]);
            (
                v["metadata"]["generation"].clone(),
                v["metadata"]["resourceVersion"].clone(),
            )
        })
        .collect();
    for round in 0..2 {
        apply_ss(&s, DEFAULTED);
        for (o, (generation, rv)) in objects.iter().zip(&first) {
            let v = get_json(&s, &[o]);
            assert_eq!(generation, &json!(1), "{o}");
            assert_eq!(
                &v["metadata"]["generation"], generation,
                "{o} round {round}"
            );
            assert_eq!(&v["metadata"]["resourceVersion"], rv, "{o} round {round}");
        }
    }
    // And kubectl diff agrees there is nothing to do.
    let out = s.kubectl_stdin(&["diff", "--server-side", "-f", "-"], DEFAULTED);
    assert!(
        out.status.success(),
        "diff not clean: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rbac_names_are_path_segments() {
    let s = Server::start();
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "clusterrole",
            "system:metrics-server",
            "--verb=get",
            "--resource=pods",
        ],
    );
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "role",
            "cert-manager:leaderelection",
            "--verb=get",
            "--resource=leases",
        ],
    );
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "rolebinding",
            "cert-manager:leaderelection",
            "--role=cert-manager:leaderelection",
            "--user=u",
        ],
    );
    let body = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "a%b"}});
    let (code, text) = s.send_json(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        &body,
    );
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("may not contain '%'"), "{text}");
    // Other kinds keep DNS names: a ConfigMap named with a colon is refused.
    let out = s.kubectl(
        "1.33",
        &["create", "configmap", "a:b", "--from-literal=k=v"],
    );
    assert!(!out.status.success());
}

const WRAPPED_TLS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
data:
  tls.crt: |
    aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8g
    d29ybGQ=
  tls.key: a2V5
"#;

#[test]
fn secrets_take_wrapped_base64_and_merge_string_data() {
    let s = Server::start();
    ok_stdin(&s, &["create", "-f", "-"], WRAPPED_TLS);
    let tls = get_json(&s, &["secret", "tls"]);
    assert_eq!(
        tls["data"]["tls.crt"],
        "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="
    );
    // stringData wins over data, lands in data, and is never returned.
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n\
        data: {user: b2xk, keep: a2VlcA==}\nstringData: {user: admin, pass: s3cret}\n";
    ok_stdin(&s, &["create", "-f", "-"], manifest);
    let creds = get_json(&s, &["secret", "creds"]);
    assert_eq!(
        creds["data"],
        json!({"keep": "a2VlcA==", "pass": "czNjcmV0", "user": "YWRtaW4="})
    );
    assert!(creds.get("stringData").is_none(), "{creds}");
    // Through server-side apply too.
    apply_ss(
        &s,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: applied}\nstringData: {token: abc}\n",
    );
    let applied = get_json(&s, &["secret", "applied"]);
    assert_eq!(applied["data"], json!({"token": "YWJj"}));
    assert!(applied.get("stringData").is_none());
    // A patch that sets stringData updates data.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "secret",
            "creds",
            "--type=merge",
            "-p",
            r#"{"stringData":{"pass":"new"}}"#,
        ],
    );
    assert_eq!(get_json(&s, &["secret", "creds"])["data"]["pass"], "bmV3");
}

#[test]
fn new_objects_carry_the_status_upstream_always_serializes() {
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset,-statefulset,-replicationcontroller,-job,-scheduler,-nodelifecycle,-daemonset"]);
    ok_stdin(
        &s,
        &["create", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  template: {metadata: {labels: {app: d}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ss}
spec:
  serviceName: ss
  selector: {matchLabels: {app: ss}}
  template: {metadata: {labels: {app: ss}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec:
  replicas: 0
  selector: {app: rc}
  template: {metadata: {labels: {app: rc}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  suspend: true
  template: {spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 80}]}
"#,
    );
    for (what, status) in [
        ("deployment/d", json!({})),
        (
            "statefulset/ss",
            json!({"replicas": 0, "availableReplicas": 0}),
        ),
        ("replicationcontroller/rc", json!({"replicas": 0})),
        ("service/svc", json!({"loadBalancer": {}})),
    ] {
        assert_eq!(get_json(&s, &[what])["status"], status, "{what}");
    }
    assert!(get_json(&s, &["job/j"])["status"].is_object());
}

#[test]
fn field_selectors_compare_absent_fields_as_go_zero_values() {
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset,-statefulset,-replicationcontroller,-job,-scheduler,-nodelifecycle,-daemonset"]);
    ok_stdin(
        &s,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {name: n2}\nspec: {unschedulable: true}\n---\n\
         apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  suspend: true\n  \
         template: {spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}\n",
    );
    let names = |args: &[&str]| {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "jsonpath={.items[*].metadata.name}"]);
        s.kubectl_ok("1.33", &a)
    };
    assert_eq!(
        names(&["nodes", "--field-selector", "spec.unschedulable=false"]),
        "n1"
    );
    assert_eq!(
        names(&["nodes", "--field-selector", "spec.unschedulable!=false"]),
        "n2"
    );
    assert_eq!(
        names(&["jobs", "--field-selector", "status.successful=0"]),
        "j"
    );
}

#[test]
fn boolean_query_parameters_follow_apimachinery() {
    let s = Server::start();
    // The Python client before v37 sends `watch=True`: that is a watch, not a list.
    let (code, body) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=True&timeoutSeconds=1",
        None,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let first: Value = serde_json::from_str(body.lines().next().unwrap_or("")).expect("event");
    assert_eq!(first["type"], "ADDED", "{body}");
    let (_, body) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=false",
        None,
        None,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["kind"],
        "ConfigMapList"
    );
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n";
    let (code, body) = s.curl(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?fieldManager=py&force=True",
        Some("application/apply-patch+yaml"),
        Some(cm.as_bytes()),
    );
    assert_eq!(code, 201, "{body}");
}

#[test]
fn bodies_come_out_in_upstream_field_order_with_a_newline() {
    let s = Server::start();
    let body = r#"{"data":{"b":"2","a":"1"},"metadata":{"labels":{"z":"1","a":"2"},"name":"order"},"apiVersion":"v1","kind":"ConfigMap"}"#;
    let (code, created) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        Some(body.as_bytes()),
    );
    assert_eq!(code, 201, "{created}");
    let (_, got) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps/order",
        None,
        None,
    );
    assert!(got.ends_with("}\n"), "{got:?}");
    let v: Value = serde_json::from_str(&got).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["kind", "apiVersion", "metadata", "data"]);
    let meta: Vec<&String> = v["metadata"].as_object().unwrap().keys().collect();
    assert_eq!(
        meta,
        [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "labels",
            "managedFields"
        ]
    );
    assert!(got.contains(r#""labels":{"a":"2","z":"1"}"#), "{got}");
    assert!(got.contains(r#""data":{"a":"1","b":"2"}"#), "{got}");
    // Errors are metav1.Status in Go's order.
    let (code, err) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps/none",
        None,
        None,
    );
    assert_eq!(code, 404);
    assert_eq!(
        err,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"none\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"none\",\"kind\":\"configmaps\"},\"code\":404}\n"
    );
    // Lists end with a newline too.
    let (_, list) = s.curl("GET", "/api/v1/namespaces/default/configmaps", None, None);
    assert!(list.ends_with("]}\n"), "{list:?}");
}

#[test]
fn catalogue_serves_upstreams_remaining_resources() {
    let s = Server::start();
    let out = s.kubectl_ok("1.33", &["api-resources", "--no-headers"]);
    for line in ["componentstatuses", "apiservices"] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "{line} missing:\n{out}"
        );
    }
    let cs = s.kubectl_ok("1.33", &["get", "componentstatuses"]);
    for c in ["scheduler", "controller-manager", "etcd-0"] {
        assert!(
            cs.lines()
                .any(|l| l.starts_with(c) && l.contains("Healthy") && l.contains("ok")),
            "{cs}"
        );
    }
    let names = s.resource_names("/api/v1");
    for sub in [
        "pods/ephemeralcontainers",
        "pods/resize",
        "pods/proxy",
        "services/proxy",
        "nodes/proxy",
    ] {
        assert!(
            names.iter().any(|n| n == sub),
            "{sub} missing from {names:?}"
        );
    }
    let certs = s.api_get("/apis/certificates.k8s.io/v1");
    assert!(certs
        .to_string()
        .contains("certificatesigningrequests/approval"));
    // Proxies answer 503 until the tunnel serves them.
    let (code, body) = s.curl(
        "GET",
        "/api/v1/namespaces/default/services/kubernetes/proxy/",
        None,
        None,
    );
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("ServiceUnavailable"), "{body}");
}

#[test]
fn ephemeral_containers_are_added_through_their_subresource_only() {
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset,-statefulset,-replicationcontroller,-job,-scheduler,-nodelifecycle,-daemonset"]);
    ok_stdin(
        &s,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n",
    );
    s.kubectl_ok(
        "1.33",
        &[
            "debug",
            "p",
            "--image=busybox",
            "--container=dbg",
            "--target=c",
        ],
    );
    let pod = get_json(&s, &["pod", "p"]);
    assert_eq!(
        pod["spec"]["ephemeralContainers"][0]["name"], "dbg",
        "{pod}"
    );
    assert_eq!(
        pod["spec"]["ephemeralContainers"][0]["targetContainerName"],
        "c"
    );
    // Not through the pod itself, and an existing one may not change.
    let out = s.kubectl(
        "1.33",
        &["patch", "pod", "p", "--type=json", "-p",
          r#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"x","image":"busybox"}}]"#],
    );
    assert!(!out.status.success());
    let (code, body) = s.curl(
        "PATCH",
        "/api/v1/namespaces/default/pods/p/ephemeralcontainers",
        Some("application/json-patch+json"),
        Some(br#"[{"op":"replace","path":"/spec/ephemeralContainers/0/image","value":"other"}]"#),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("may not be changed"), "{body}");
}

#[test]
fn csrs_record_their_requester_and_are_approved_through_approval() {
    let s = Server::start();
    // Any well-formed CSR PEM; its content is not checked by approval.
    let pem = "-----BEGIN CERTIFICATE REQUEST-----\nMIHxMIGYAgEAMDYxEzARBgNVBAoTCnN5c3RlbTpmb28xHzAdBgNVBAMTFnN5c3RlbTpub2RlOmV4YW1wbGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT1ElZYSn0b4iwqqjkY5LBAxxUOAHNOPS5HV3jfJaP8I04V6FfWLr5B9Ob3kMv4VyV7lXX2UsCHFphBAcErX4yqoAAwCgYIKoZIzj0EAwIDSAAwRQIgRkbEw1W5G3JO1UutKyyFyZUq7i0OUZmxNt3PJn9Gu/ICIQDWbU1v7+AtHMmKkzfLfYbtZ8tSdjJt7PSa3QfPqWmzOQ==\n-----END CERTIFICATE REQUEST-----\n";
    use base64::Engine as _;
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "c1"},
        "spec": {"request": request, "signerName": "example.com/signer", "usages": ["client auth"],
            "username": "someone-else", "groups": ["x"]}});
    let (code, text) = s.send_json(
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        &body,
    );
    assert_eq!(code, 201, "{text}");
    let csr: Value = serde_json::from_str(&text).unwrap();
    assert_ne!(csr["spec"]["username"], "someone-else");
    assert!(!csr["spec"]["username"].as_str().unwrap_or("").is_empty());
    assert!(csr["spec"]["groups"]
        .as_array()
        .unwrap()
        .contains(&json!("system:authenticated")));
    s.kubectl_ok("1.33", &["certificate", "approve", "c1"]);
    let csr = get_json(&s, &["csr", "c1"]);
    assert_eq!(csr["status"]["conditions"][0]["type"], "Approved", "{csr}");
    // Approved and Denied are exclusive.
    let out = s.kubectl("1.33", &["certificate", "deny", "c1"]);
    assert!(!out.status.success());
}

#[test]
fn apiservices_report_why_they_are_not_available() {
    let s = Server::start();
    ok_stdin(
        &s,
        &["create", "-f", "-"],
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: metrics-server, namespace: kube-system}
"#,
    );
    let cond = |s: &Server| {
        let v = get_json(s, &["apiservice", "v1beta1.metrics.k8s.io"]);
        v["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Available").cloned())
    };
    let c = eventually("ServiceNotFound", Duration::from_secs(20), || {
        cond(&s).filter(|c| c["reason"] == "ServiceNotFound")
    });
    assert_eq!(c["status"], "False");
    assert_eq!(
        c["message"],
        "service/metrics-server in \"kube-system\" is not present"
    );
    let v = get_json(&s, &["apiservice", "v1beta1.metrics.k8s.io"]);
    assert_eq!(v["spec"]["service"]["port"], 443);
    s.kubectl_ok(
        "1.33",
        &[
            "-n",
            "kube-system",
            "create",
            "service",
            "clusterip",
            "metrics-server",
            "--tcp=443:4443",
        ],
    );
    eventually("MissingEndpoints", Duration::from_secs(20), || {
        cond(&s).filter(|c| c["reason"] == "MissingEndpoints")
    });
    let table = s.kubectl_ok("1.33", &["get", "apiservices"]);
    assert!(
        table.contains("kube-system/metrics-server   False (MissingEndpoints)"),
        "{table}"
    );
    // The groups this server serves are Local APIServices, as upstream registers them.
    eventually(
        "v1.apps Local and available",
        Duration::from_secs(20),
        || {
            let t = s.kubectl_ok("1.33", &["get", "apiservices"]);
            t.lines()
                .any(|l| l.starts_with("v1.apps ") && l.contains(" Local ") && l.contains(" True "))
                .then_some(())
        },
    );
    // The aggregated group is discovered, and its requests answer 503 until it is served.
    let apis = s.api_get("/apis");
    assert!(
        apis.to_string().contains("\"name\":\"metrics.k8s.io\""),
        "{apis}"
    );
    let (code, body) = s.curl("GET", "/apis/metrics.k8s.io/v1beta1/nodes", None, None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the server is currently unable to handle the request"));
    let out = s.kubectl("1.33", &["top", "nodes"]);
    assert!(!out.status.success());
    // The name must be version.group.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: wrong}\n\
         spec: {group: a.io, version: v1, groupPriorityMinimum: 1, versionPriority: 1}\n",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be `spec.version+\".\"+spec.group`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn simulated_kubelets_report_a_deleted_pod_stopped_before_removing_it() {
    let s = Server::start();
    let _nodes = common::SimNodes::start(&s, "grace", 1, &["--stop-time", "3s"]);
    ok_stdin(
        &s,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n",
    );
    s.kubectl_ok(
        "1.33",
        &["wait", "--for=condition=Ready", "pod/p", "--timeout=30s"],
    );
    s.kubectl_ok("1.33", &["delete", "pod", "p", "--wait=false"]);
    // While its containers stop, the pod is still there, not ready, its containers terminated.
    let pod = eventually(
        "Ready=False while terminating",
        Duration::from_secs(20),
        || {
            let (code, body) = s.curl("GET", "/api/v1/namespaces/default/pods/p", None, None);
            let v: Value = serde_json::from_str(&body).ok()?;
            let ready = v["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?
                .clone();
            (code == 200 && ready["status"] == "False").then_some(v)
        },
    );
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"].is_object(),
        "{pod}"
    );
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        143
    );
    // Then the kubelet deletes it for good.
    eventually("pod gone", Duration::from_secs(20), || {
        let (code, _) = s.curl("GET", "/api/v1/namespaces/default/pods/p", None, None);
        (code == 404).then_some(())
    });
}

#[test]
fn put_creates_missing_objects_of_the_kinds_upstream_allows() {
    let s = Server::start();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}});
    let (code, body) = s.send_json(
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/l",
        &lease,
    );
    assert_eq!(code, 201, "{body}");
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:r"}, "rules": []});
    let (code, body) = s.send_json(
        "PUT",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:r",
        &role,
    );
    assert_eq!(code, 201, "{body}");
    // ConfigMaps are not among them.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let (code, body) = s.send_json("PUT", "/api/v1/namespaces/default/configmaps/c", &cm);
    assert_eq!(code, 404, "{body}");
}

/// The managedFields entry of `manager` in `obj`.
fn managed_entry(obj: &Value, manager: &str) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["manager"] == manager).cloned())
        .unwrap_or_else(|| panic!("no managedFields entry of {manager}: {obj}"))
}

fn managed(s: &Server, path: &str) -> Vec<(String, String)> {
    s.api_get(path)["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or("").to_string(),
                m["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn client_side_applied_objects_move_to_server_side_apply() {
    let s = Server::start();
    let path = "/api/v1/namespaces/default/configmaps/mig";
    s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mig, labels: {a: '1', b: '2'}}\ndata: {x: '1', yy: '2'}\n");
    // kubectl hands the client-side owner's fields to its apply manager (a JSON patch of
    // managedFields), then applies: what the manifest dropped goes.
    apply_ss(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mig, labels: {a: '1'}}\ndata: {x: '1'}\n",
    );
    let cm = s.api_get(path);
    assert_eq!(cm["metadata"]["labels"], json!({"a": "1"}), "{cm}");
    assert_eq!(cm["data"], json!({"x": "1"}), "{cm}");
    // The client-side owner is gone (kubectl keeps the last-applied annotation in step under
    // a manager of its own).
    let owners = managed(&s, path);
    assert!(
        owners.contains(&("kubectl".into(), "Apply".into())),
        "{owners:?}"
    );
    assert!(
        !owners.iter().any(|(m, _)| m == "kubectl-client-side-apply"),
        "{owners:?}"
    );
    // `[{}]` clears managedFields.
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "cm",
            "mig",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/metadata/managedFields","value":[{}]}]"#,
        ],
    );
    assert!(managed(&s, path).is_empty());
}

#[test]
fn applying_values_another_manager_set_records_shared_ownership() {
    let s = Server::start();
    let path = "/api/v1/namespaces/default/configmaps/shared";
    s.kubectl_ok(
        "1.33",
        &["create", "configmap", "shared", "--from-literal=k=v"],
    );
    let rv = s.api_get(path)["metadata"]["resourceVersion"].clone();
    ok_stdin(
        &s,
        &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: v}\n",
    );
    let cm = s.api_get(path);
    assert_ne!(cm["metadata"]["resourceVersion"], rv);
    assert!(managed(&s, path).contains(&("helm".into(), "Apply".into())));
    // The same apply again changes nothing.
    ok_stdin(
        &s,
        &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: v}\n",
    );
    assert_eq!(
        s.api_get(path)["metadata"]["resourceVersion"],
        cm["metadata"]["resourceVersion"]
    );
    // Ownership of what the object's own endpoint cannot write (status) is not recorded.
    s.kubectl_ok("1.33", &["create", "deployment", "d", "--image=x"]);
    let d = s.api_get("/apis/apps/v1/namespaces/default/deployments/d");
    let create = managed_entry(&d, "kubectl-create");
    assert!(create["fieldsV1"].get("f:status").is_none(), "{create}");
}

#[test]
fn two_managers_apply_the_same_role_binding_without_conflict() {
    let s = Server::start();
    let rb = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\n\
        subjects: [{kind: ServiceAccount, name: default, namespace: default}]\n";
    ok_stdin(
        &s,
        &["apply", "--server-side", "--field-manager=one", "-f", "-"],
        rb,
    );
    let got = s.api_get("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/rb");
    assert_eq!(
        got["subjects"],
        json!([{"kind": "ServiceAccount", "name": "default", "namespace": "default"}])
    );
    ok_stdin(
        &s,
        &["apply", "--server-side", "--field-manager=two", "-f", "-"],
        rb,
    );
}

#[test]
fn spelled_out_zero_values_are_no_change() {
    let s =
        Server::start_with(&["--controllers=*,-deployment,-replicaset,-scheduler,-nodelifecycle"]);
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: z}\nspec:\n  \
        minReadySeconds: 0\n  selector: {matchLabels: {app: z}}\n  template:\n    \
        metadata: {labels: {app: z}}\n    spec:\n      hostNetwork: false\n      \
        containers: [{name: c, image: x, readinessProbe: {initialDelaySeconds: 0, \
        tcpSocket: {port: 80}}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: zp}\n\
        spec: {hostNetwork: false, containers: [{name: c, image: x}]}\n";
    apply_ss(&s, manifest);
    let d = "/apis/apps/v1/namespaces/default/deployments/z";
    let before = s.api_get(d)["metadata"].clone();
    apply_ss(&s, manifest);
    let after = s.api_get(d)["metadata"].clone();
    assert_eq!(after["generation"], 1);
    assert_eq!(after["resourceVersion"], before["resourceVersion"]);
    let out = s.kubectl_stdin(&["diff", "--server-side", "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A label on a RoleBinding is owned alone: the subjects stay their applier's.
    apply_ss(
        &s,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\n\
         subjects: [{kind: ServiceAccount, name: default, namespace: default}]\n",
    );
    s.kubectl_ok("1.33", &["label", "rolebinding", "rb", "foo=bar"]);
    let rb = s.api_get("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/rb");
    let label = managed_entry(&rb, "kubectl-label");
    assert!(label["fieldsV1"].get("f:subjects").is_none(), "{label}");
}
