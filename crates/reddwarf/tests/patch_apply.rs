//! Patch and apply with real kubectl: client-side apply, diff, strategic/merge/JSON patches,
//! scale, set image, rollout restart, and server-side apply with conflicts.

mod common;

use common::Server;

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1.36
";

fn client_side(v: &str) {
    // Resource versions are compared: no controller may write the Deployments meanwhile.
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset"]);
    let d1 = s.write_file("d1.yaml", DEPLOY);
    let d2 = s.write_file(
        "d2.yaml",
        &DEPLOY
            .replace("nginx:1.27", "nginx:1.28")
            .replace("replicas: 2", "replicas: 3"),
    );
    assert!(s
        .kubectl_ok(v, &["apply", "-f", &d1])
        .contains("deployment.apps/web created"));
    assert!(s
        .kubectl_ok(v, &["apply", "-f", &d2])
        .contains("deployment.apps/web configured"));
    assert_eq!(
        s.jsonpath(
            v,
            "deploy/web",
            "{.spec.replicas} {.metadata.generation} {.spec.template.spec.containers[*].image}"
        ),
        "3 2 nginx:1.28 busybox:1.36",
        "both containers kept, generation bumped"
    );
    let rv = s.jsonpath(v, "deploy/web", "{.metadata.resourceVersion}");
    assert!(s
        .kubectl_ok(v, &["apply", "-f", &d2])
        .contains("deployment.apps/web unchanged"));
    assert_eq!(
        s.jsonpath(v, "deploy/web", "{.metadata.resourceVersion}"),
        rv,
        "no write for an unchanged apply"
    );

    let d3 = s.write_file(
        "d3.yaml",
        &DEPLOY
            .replace("nginx:1.27", "nginx:1.28")
            .replace("replicas: 2", "replicas: 3")
            .replace("busybox:1.36", "busybox:1.37"),
    );
    let diff = s.kubectl(v, &["diff", "-f", &d3]);
    assert_eq!(diff.status.code(), Some(1), "diff exits 1 on a difference");
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        text.contains("-      - image: busybox:1.36")
            && text.contains("+      - image: busybox:1.37"),
        "{text}"
    );
    assert_eq!(
        s.jsonpath(v, "deploy/web", "{.metadata.resourceVersion}"),
        rv,
        "diff is a dry run"
    );

    s.kubectl_ok(v, &["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#]);
    assert_eq!(
        s.jsonpath(v, "deploy/web", "{.spec.template.spec.containers[*].name}"),
        "nginx"
    );
    s.kubectl_ok(
        v,
        &[
            "patch",
            "deploy",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"fe"}}}"#,
        ],
    );
    assert_eq!(s.jsonpath(v, "deploy/web", "{.metadata.labels.tier}"), "fe");
    s.kubectl_ok(
        v,
        &[
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        ],
    );
    assert_eq!(s.jsonpath(v, "deploy/web", "{.spec.replicas}"), "4");
    let rv = s.jsonpath(v, "deploy/web", "{.metadata.resourceVersion}");
    let failed = s.kubectl(v, &["patch", "deploy", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":9},{"op":"test","path":"/spec/replicas","value":99}]"#]);
    assert!(!failed.status.success());
    assert_eq!(
        s.jsonpath(
            v,
            "deploy/web",
            "{.spec.replicas} {.metadata.resourceVersion}"
        ),
        format!("4 {rv}"),
        "a failing test op changes nothing"
    );

    s.kubectl_ok(v, &["scale", "deploy", "web", "--replicas=5"]);
    assert_eq!(s.jsonpath(v, "deploy/web", "{.spec.replicas}"), "5");
    s.kubectl_ok(v, &["set", "image", "deploy/web", "nginx=nginx:1.29"]);
    assert_eq!(
        s.jsonpath(v, "deploy/web", "{.spec.template.spec.containers[0].image}"),
        "nginx:1.29"
    );
    s.kubectl_ok(v, &["rollout", "restart", "deploy/web"]);
    assert!(!s
        .jsonpath(
            v,
            "deploy/web",
            "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"
        )
        .is_empty());
    s.kubectl_ok(v, &["label", "deploy", "web", "tier=be", "--overwrite"]);
    s.kubectl_ok(v, &["annotate", "deploy", "web", "note=x"]);
    assert_eq!(
        s.jsonpath(
            v,
            "deploy/web",
            "{.metadata.labels.tier} {.metadata.annotations.note}"
        ),
        "be x"
    );

    // kubectl edit through a non-interactive editor.
    let editor = s.write_file(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/replicas: 5/replicas: 6/' \"$1\"\n",
    );
    std::process::Command::new("chmod")
        .args(["+x", &editor])
        .status()
        .unwrap();
    let out = s
        .kubectl_cmd(v, &["edit", "deploy", "web"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.jsonpath(v, "deploy/web", "{.spec.replicas}"), "6");
}

fn server_side(v: &str) {
    // Resource versions are compared: no controller may write the Deployments meanwhile.
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset"]);
    let mine = s.write_file(
        "mine.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"1\", b: \"2\"}\n",
    );
    let theirs = s.write_file(
        "theirs.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {b: \"3\", c: \"4\"}\n",
    );
    assert!(s
        .kubectl_ok(v, &["apply", "--server-side", "-f", &mine])
        .contains("serverside-applied"));
    let conflict = s.kubectl(
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &theirs,
        ],
    );
    assert!(!conflict.status.success());
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict")
            && err.contains("conflict with \"kubectl\"")
            && err.contains(".data.b"),
        "{err}"
    );
    s.kubectl_ok(
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &theirs,
        ],
    );
    assert_eq!(
        s.jsonpath(v, "cm/ssa", "{.data.a} {.data.b} {.data.c}"),
        "1 3 4"
    );
    let managers = s.jsonpath(v, "cm/ssa", "{.metadata.managedFields[*].manager}");
    assert_eq!(managers, "kubectl other");
    // kubectl drops `a` (its only owner) and `b` (now owned by other): a goes, b stays.
    let dropped = s.write_file(
        "dropped.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {}\n",
    );
    s.kubectl_ok(v, &["apply", "--server-side", "-f", &dropped]);
    assert_eq!(s.jsonpath(v, "cm/ssa", "{.data}"), r#"{"b":"3","c":"4"}"#);
    let rv = s.jsonpath(v, "cm/ssa", "{.metadata.resourceVersion}");
    s.kubectl_ok(v, &["apply", "--server-side", "-f", &dropped]);
    assert_eq!(
        s.jsonpath(v, "cm/ssa", "{.metadata.resourceVersion}"),
        rv,
        "an unchanged apply writes nothing"
    );
    // Plain get hides managedFields; --show-managed-fields shows them.
    assert!(!s
        .kubectl_ok(v, &["get", "cm", "ssa", "-o", "yaml"])
        .contains("managedFields"));
    assert!(s
        .kubectl_ok(
            v,
            &["get", "cm", "ssa", "-o", "yaml", "--show-managed-fields"]
        )
        .contains("manager: other"));
}

#[test]
fn client_side_apply_and_patches_kubectl_1_27() {
    client_side("1.27");
}

#[test]
fn client_side_apply_and_patches_kubectl_1_33() {
    client_side("1.33");
}

#[test]
fn server_side_apply_kubectl_1_27() {
    server_side("1.27");
}

#[test]
fn server_side_apply_kubectl_1_33() {
    server_side("1.33");
}

#[test]
fn patch_errors_answer_upstream_statuses() {
    // Resource versions are compared: no controller may write the Deployments meanwhile.
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset"]);
    s.kubectl_ok("1.33", &["create", "configmap", "p", "--from-literal=a=b"]);
    let path = "/api/v1/namespaces/default/configmaps/p";
    let (code, body) = s.curl(
        "PATCH",
        &format!("{path}?fieldManager=x"),
        Some("application/apply-patch+yaml"),
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\n"),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.curl(
        "PATCH",
        path,
        Some("application/apply-patch+yaml"),
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\n"),
    );
    assert_eq!(code, 422, "fieldManager is required for apply: {body}");
    let (code, body) = s.curl(
        "PATCH",
        &format!("{path}?force=true"),
        Some("application/merge-patch+json"),
        Some(br#"{"data":{"a":"c"}}"#),
    );
    assert_eq!(code, 422, "force is only for apply: {body}");
    let (code, _) = s.curl(
        "PATCH",
        path,
        Some("application/json-patch+json"),
        Some(br#"{"op":"add"}"#),
    );
    assert_eq!(code, 400, "a JSON patch must be an array");
    let (code, _) = s.curl(
        "PATCH",
        path,
        Some("application/strategic-merge-patch+json"),
        Some(br#"{"data":{"$patch":"bogus"}}"#),
    );
    assert!(
        code == 400 || code == 422,
        "a bad directive is refused ({code})"
    );
    let (code, _) = s.curl("PATCH", path, Some("text/plain"), Some(b"x"));
    assert_eq!(code, 415);
    assert_eq!(
        s.jsonpath("1.33", "cm/p", "{.data.a}"),
        "b",
        "nothing changed"
    );
}
