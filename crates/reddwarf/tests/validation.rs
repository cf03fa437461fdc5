//! End-to-end: kind-specific validation. Invalid manifests are answered 422 `Invalid` with
//! upstream's field paths in `details.causes`, kubectl prints upstream's
//! `The <Kind> "<name>" is invalid: ...` line, updates that touch immutable fields are
//! refused, and the objects kubectl's generators make are accepted.

mod common;

use common::{parse, Server, KUBECTL_VERSIONS};
use serde_json::{json, Value};

const NS: &str = "val";

/// Whether `<plural>` is listed by the group-version discovery document at `gv_path`.
fn served(s: &Server, gv_path: &str, plural: &str) -> bool {
    let (code, body) = s.curl("GET", gv_path, None, None);
    code == 200
        && parse(&body)["resources"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["name"] == plural))
}

fn collection(gv_path: &str, plural: &str, namespaced: bool) -> String {
    if namespaced {
        format!("{gv_path}/namespaces/{NS}/{plural}")
    } else {
        format!("{gv_path}/{plural}")
    }
}

fn setup() -> Server {
    // Resource versions are compared: no controller may write the Deployments (or, through
    // the scheduler's Unschedulable condition, the pods) meanwhile.
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset,-scheduler"]);
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(code, 201, "{body}");
    s
}

/// Sends `body` and asserts a 422 Invalid whose causes include every `(field, message)`.
fn expect_invalid(
    s: &Server,
    method: &str,
    path: &str,
    body: &Value,
    want: &[(&str, &str)],
) -> Value {
    let (code, text) = s.curl(
        method,
        path,
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 422, "{method} {path}: {text}");
    let st = parse(&text);
    assert_eq!(st["reason"], "Invalid", "{text}");
    assert_eq!(st["code"], 422, "{text}");
    let causes = st["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (field, message) in want {
        assert!(
            causes
                .iter()
                .any(|c| c["field"] == *field && c["message"] == *message),
            "{method} {path}: want cause {field}: {message}; got {}",
            serde_json::to_string_pretty(&causes).unwrap()
        );
    }
    st
}

fn container() -> Value {
    json!({"name": "c", "image": "nginx:1.27"})
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

fn deployment(name: &str, selector: Value, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": selector, "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}}},
    })
}

#[test]
fn invalid_objects_answer_422_with_upstream_causes() {
    let s = setup();
    let pods = collection("/api/v1", "pods", true);

    let st = expect_invalid(
        &s,
        "POST",
        &pods,
        &pod("empty", json!({"containers": []})),
        &[("spec.containers", "Required value")],
    );
    assert_eq!(
        st["message"], "Pod \"empty\" is invalid: spec.containers: Required value",
        "{st}"
    );
    assert_eq!(st["details"]["name"], "empty");
    assert_eq!(st["details"]["kind"], "Pod");
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueRequired");

    expect_invalid(
        &s,
        "POST",
        &pods,
        &pod("dup", json!({"containers": [container(), container()]})),
        &[("spec.containers[1].name", "Duplicate value: \"c\"")],
    );
    expect_invalid(
        &s,
        "POST",
        &pods,
        &pod("qty", json!({"containers": [{"name": "c", "image": "nginx", "resources": {"limits": {"cpu": "lots"}}}]})),
        &[(
            "spec.containers[0].resources.limits[cpu]",
            "Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        )],
    );
    expect_invalid(
        &s,
        "POST",
        &pods,
        &pod(
            "greedy",
            json!({"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}),
        ),
        &[(
            "spec.containers[0].resources.requests",
            "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        )],
    );
    expect_invalid(
        &s,
        "POST",
        &pods,
        &pod(
            "ports",
            json!({"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "HTTP"}, {"containerPort": 70000}]}]}),
        ),
        &[
            (
                "spec.containers[0].ports[0].protocol",
                "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ),
            (
                "spec.containers[0].ports[1].containerPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
        ],
    );
    expect_invalid(
        &s,
        "POST",
        &pods,
        &pod("mounts", json!({"containers": [{"name": "c", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}], "restartPolicy": "Sometimes"})),
        &[
            ("spec.containers[0].volumeMounts[0].name", "Not found: \"data\""),
            (
                "spec.restartPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ),
        ],
    );

    let svcs = collection("/api/v1", "services", true);
    let st = expect_invalid(
        &s,
        "POST",
        &svcs,
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 0}]}}),
        &[(
            "spec.ports[0].port",
            "Invalid value: 0: must be between 1 and 65535, inclusive",
        )],
    );
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("Service \"web\" is invalid: "),
        "{st}"
    );
    expect_invalid(
        &s,
        "POST",
        &svcs,
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "two"}, "spec": {"ports": [{"port": 80}, {"port": 81}], "type": "ClusterIP"}}),
        &[
            ("spec.ports[0].name", "Required value"),
            ("spec.ports[1].name", "Required value"),
        ],
    );

    expect_invalid(
        &s,
        "POST",
        &collection("/api/v1", "configmaps", true),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"bad key": "v"}}),
        &[(
            "data[bad key]",
            "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        )],
    );
    expect_invalid(
        &s,
        "POST",
        &collection("/api/v1", "secrets", true),
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}}),
        &[("data[tls.key]", "Required value")],
    );
    expect_invalid(
        &s,
        "POST",
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fin"}, "spec": {"finalizers": ["bogus"]}}),
        &[(
            "spec.finalizers",
            "Invalid value: \"bogus\": name is neither a standard finalizer name nor is it fully qualified",
        )],
    );

    if served(&s, "/apis/apps/v1", "deployments") {
        let st = expect_invalid(
            &s,
            "POST",
            &collection("/apis/apps/v1", "deployments", true),
            &deployment("mismatch", json!({"matchLabels": {"app": "api"}}), json!({"app": "web"})),
            &[(
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            )],
        );
        assert_eq!(st["details"]["group"], "apps", "{st}");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .starts_with("Deployment.apps \"mismatch\" is invalid: "),
            "{st}"
        );
        let mut bad = deployment(
            "neg",
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        bad["spec"]["replicas"] = json!(-1);
        bad["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 0}]);
        expect_invalid(
            &s,
            "POST",
            &collection("/apis/apps/v1", "deployments", true),
            &bad,
            &[
                (
                    "spec.replicas",
                    "Invalid value: -1: must be greater than or equal to 0",
                ),
                (
                    "spec.template.spec.containers[0].ports[0].containerPort",
                    "Required value",
                ),
            ],
        );
    } else {
        eprintln!("deployments not served: skipped");
    }

    if served(&s, "/apis/batch/v1", "jobs") {
        expect_invalid(
            &s,
            "POST",
            &collection("/apis/batch/v1", "jobs", true),
            &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [container()]}}}}),
            &[(
                "spec.template.spec.restartPolicy",
                "Required value: valid values: \"OnFailure\", \"Never\"",
            )],
        );
    } else {
        eprintln!("jobs not served: skipped");
    }
    if served(&s, "/apis/batch/v1", "cronjobs") {
        expect_invalid(
            &s,
            "POST",
            &collection("/apis/batch/v1", "cronjobs", true),
            &json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"schedule": "61 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [container()], "restartPolicy": "OnFailure"}}}}}}),
            &[(
                "spec.schedule",
                "Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
            )],
        );
    } else {
        eprintln!("cronjobs not served: skipped");
    }

    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    if served(&s, rbac, "roles") {
        expect_invalid(
            &s,
            "POST",
            &collection(rbac, "roles", true),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            &[(
                "rules[0].verbs",
                "Required value: verbs must contain at least one value",
            )],
        );
    } else {
        eprintln!("roles not served: skipped");
    }
    if served(&s, rbac, "rolebindings") {
        expect_invalid(
            &s,
            "POST",
            &collection(rbac, "rolebindings", true),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"}, "subjects": [{"kind": "User", "name": "alice"}]}),
            &[
                (
                    "roleRef.kind",
                    "Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\"",
                ),
                ("roleRef.name", "Required value"),
            ],
        );
    } else {
        eprintln!("rolebindings not served: skipped");
    }
    if served(&s, "/apis/coordination.k8s.io/v1", "leases") {
        expect_invalid(
            &s,
            "POST",
            &collection("/apis/coordination.k8s.io/v1", "leases", true),
            &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
            &[(
                "spec.leaseDurationSeconds",
                "Invalid value: 0: must be greater than 0",
            )],
        );
    } else {
        eprintln!("leases not served: skipped");
    }
}

/// GETs an object, applies `change` and PUTs it back; returns (status, body).
fn put_changed(s: &Server, path: &str, change: impl FnOnce(&mut Value)) -> (u16, String) {
    let (code, text) = s.curl("GET", path, None, None);
    assert_eq!(code, 200, "GET {path}: {text}");
    let mut obj = parse(&text);
    change(&mut obj);
    s.curl(
        "PUT",
        path,
        Some("application/json"),
        Some(obj.to_string().as_bytes()),
    )
}

fn expect_put_invalid(
    s: &Server,
    path: &str,
    change: impl FnOnce(&mut Value),
    field: &str,
    message: &str,
) -> Value {
    let (code, text) = put_changed(s, path, change);
    assert_eq!(code, 422, "PUT {path}: {text}");
    let st = parse(&text);
    let causes = st["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        causes.iter().any(
            |c| c["field"] == field && c["message"].as_str().unwrap_or("").starts_with(message)
        ),
        "PUT {path}: want {field}: {message}…; got {text}"
    );
    st
}

#[test]
fn immutable_fields_are_refused_on_update() {
    let s = setup();

    // Pods: the image may change; a port may not.
    let pods = collection("/api/v1", "pods", true);
    s.create(
        &pods,
        pod(
            "p",
            json!({"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}),
        ),
    );
    let p = format!("{pods}/p");
    let (code, text) = put_changed(&s, &p, |o| {
        o["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    });
    assert_eq!(code, 200, "{text}");
    let st = expect_put_invalid(
        &s,
        &p,
        |o| o["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81),
        "spec",
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    );
    assert!(
        st["message"].as_str().unwrap().starts_with(
            "Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than"
        ),
        "{st}"
    );

    // Services: the allocated cluster IP stays.
    let svcs = collection("/api/v1", "services", true);
    let svc = s.create(
        &svcs,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "s"}}}),
    );
    let ip = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    if !ip.is_empty() && ip != "None" {
        let other = if ip.ends_with(".200") {
            ip.replace(".200", ".201")
        } else {
            let (head, _) = ip.rsplit_once('.').unwrap();
            format!("{head}.200")
        };
        let want = format!("Invalid value: []string{{\"{other}\"}}: may not change once set");
        let path = format!("{svcs}/s");
        expect_put_invalid(
            &s,
            &path,
            |o| {
                o["spec"]["clusterIP"] = json!(other);
                o["spec"]["clusterIPs"] = json!([other]);
            },
            "spec.clusterIPs[0]",
            &want,
        );
    }

    // ConfigMaps and Secrets marked immutable.
    let cms = collection("/api/v1", "configmaps", true);
    s.create(
        &cms,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"}, "immutable": true, "data": {"a": "1"}}),
    );
    expect_put_invalid(
        &s,
        &format!("{cms}/frozen"),
        |o| o["data"]["a"] = json!("2"),
        "data",
        "Forbidden: field is immutable when `immutable` is set",
    );
    let secrets = collection("/api/v1", "secrets", true);
    s.create(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "typed"}, "data": {"a": "MQ=="}}),
    );
    expect_put_invalid(
        &s,
        &format!("{secrets}/typed"),
        |o| o["type"] = json!("kubernetes.io/basic-auth"),
        "type",
        "Invalid value: \"kubernetes.io/basic-auth\": field is immutable",
    );

    if served(&s, "/apis/apps/v1", "deployments") {
        let deps = collection("/apis/apps/v1", "deployments", true);
        s.create(
            &deps,
            deployment(
                "web",
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "web"}),
            ),
        );
        expect_put_invalid(
            &s,
            &format!("{deps}/web"),
            |o| {
                o["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
                o["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "v": "2"});
            },
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        );
        // The template may change.
        let (code, text) = put_changed(&s, &format!("{deps}/web"), |o| {
            o["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        });
        assert_eq!(code, 200, "{text}");
    }

    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    if served(&s, rbac, "rolebindings") {
        let rbs = collection(rbac, "rolebindings", true);
        s.create(
            &rbs,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "alice"}]}),
        );
        expect_put_invalid(
            &s,
            &format!("{rbs}/rb"),
            |o| o["roleRef"]["name"] = json!("edit"),
            "roleRef",
            "Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef",
        );
    }
}

#[test]
fn kubectl_apply_prints_the_upstream_error() {
    let s = setup();
    if !served(&s, "/apis/apps/v1", "deployments") {
        eprintln!("deployments not served: skipped");
        return;
    }
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\n  namespace: {NS}\nspec:\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
    );
    let file = s.data_dir().join("bad-deployment.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let file = file.to_string_lossy().into_owned();
    let want = "The Deployment \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`";
    for v in KUBECTL_VERSIONS {
        let out = s.kubectl(v, &["apply", "-f", &file]);
        assert!(!out.status.success(), "kubectl {v} apply succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.lines().any(|l| l.trim() == want),
            "kubectl {v}: want {want:?}\nstderr: {stderr}"
        );
    }
    // Several causes: a bracketed list from the aggregate, or bullets from newer kubectls.
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: twice\n  namespace: {NS}\nspec:\n  containers:\n  - name: c\n    image: nginx\n  - name: c\n    image: nginx\n    ports:\n    - containerPort: 0\n"
    );
    let file = s.data_dir().join("twice.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let file = file.to_string_lossy().into_owned();
    let listed = "The Pod \"twice\" is invalid: [spec.containers[1].ports[0].containerPort: Required value, spec.containers[1].name: Duplicate value: \"c\"]";
    let bullets = "The Pod \"twice\" is invalid: \n* spec.containers[1].ports[0].containerPort: Required value\n* spec.containers[1].name: Duplicate value: \"c\"";
    for v in KUBECTL_VERSIONS {
        let out = s.kubectl(v, &["apply", "-f", &file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(listed) || stderr.contains(bullets),
            "kubectl {v}: {stderr}"
        );
    }
}

#[test]
fn objects_kubectl_generates_are_valid() {
    let s = setup();
    let v = "1.33";
    let ns = ["-n", NS];
    let run = |args: &[&str]| {
        let mut a = ns.to_vec();
        a.extend(args);
        s.kubectl_ok(v, &a)
    };
    run(&["run", "p", "--image=nginx:1.27", "--port=80", "--env=A=1"]);
    // A strategic merge patch of the image is an allowed pod update.
    run(&["set", "image", "pod/p", "p=nginx:1.28"]);
    run(&["create", "configmap", "cm", "--from-literal=key.name=v"]);
    run(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=x",
    ]);
    run(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=registry.example.com",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    run(&[
        "create",
        "service",
        "clusterip",
        "svc",
        "--tcp=80:8080",
        "--tcp=443:8443",
    ]);
    run(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    run(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ]);
    if served(&s, "/apis/apps/v1", "deployments") {
        run(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ]);
        run(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
        run(&["scale", "deployment/web", "--replicas=3"]);
        run(&[
            "set",
            "resources",
            "deployment/web",
            "--requests=cpu=100m",
            "--limits=cpu=500m",
        ]);
    }
    if served(&s, "/apis/batch/v1", "jobs") {
        run(&["create", "job", "job", "--image=busybox", "--", "true"]);
    }
    if served(&s, "/apis/batch/v1", "cronjobs") {
        run(&[
            "create",
            "cronjob",
            "cron",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "true",
        ]);
        run(&["create", "job", "from-cron", "--from=cronjob/cron"]);
    }
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    if served(&s, rbac, "roles") && served(&s, rbac, "rolebindings") {
        run(&[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,configmaps",
        ]);
        run(&[
            "create",
            "rolebinding",
            "reader",
            "--role=reader",
            "--user=alice",
            "--serviceaccount=val:default",
        ]);
    }
    if served(&s, rbac, "clusterroles") && served(&s, rbac, "clusterrolebindings") {
        s.kubectl_ok(
            v,
            &[
                "create",
                "clusterrole",
                "health",
                "--verb=get",
                "--non-resource-url=/healthz",
            ],
        );
        s.kubectl_ok(
            v,
            &[
                "create",
                "clusterrolebinding",
                "health",
                "--clusterrole=health",
                "--group=ops",
            ],
        );
    }
}
