//! End-to-end: the OpenAPI documents of the built-in catalogue (`/openapi/v3` index and
//! group-version documents, `/openapi/v2` as JSON and gnostic protobuf) as real kubectl
//! 1.27 and 1.33 use them: `explain` (v3 template and the v2 `plaintext-openapiv2` output),
//! client-side apply's strategic merge patch computed from the served merge keys, and
//! create/replace/apply never failing on the OpenAPI download.

mod common;

use common::{parse, Server};
use serde_json::Value;

fn has_line(out: &str, want: &str) -> bool {
    out.lines().any(|l| l.trim_end() == want)
}

fn assert_lines(out: &str, wants: &[&str]) {
    for w in wants {
        assert!(has_line(out, w), "missing line {w:?} in:\n{out}");
    }
}

/// (resource, apiVersion) of every served resource.
fn served_resources(s: &Server) -> Vec<(String, String)> {
    s.kubectl_ok("1.33", &["api-resources", "--no-headers"])
        .lines()
        .filter_map(|l| {
            // NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
            let t: Vec<&str> = l.split_whitespace().collect();
            let ns = t.iter().position(|c| *c == "true" || *c == "false")?;
            Some((t[0].to_string(), t[ns - 1].to_string()))
        })
        .collect()
}

fn explain(s: &Server, v: &str) {
    // the OpenAPI v3 template (the default of both versions)
    let out = s.kubectl_ok(v, &["explain", "deployments"]);
    assert_lines(
        &out,
        &[
            "GROUP:      apps",
            "KIND:       Deployment",
            "VERSION:    v1",
            "    Deployment enables declarative updates for Pods and ReplicaSets.",
            "  spec\t<DeploymentSpec>",
            "  metadata\t<ObjectMeta>",
        ],
    );
    let out = s.kubectl_ok(v, &["explain", "pods.spec.containers"]);
    assert_lines(
        &out,
        &[
            "KIND:       Pod",
            "VERSION:    v1",
            "FIELD: containers <[]Container>",
            "    A single application container that you want to run within a pod.",
            "  name\t<string> -required-",
            "  ports\t<[]ContainerPort>",
            "  resources\t<ResourceRequirements>",
        ],
    );
    assert!(
        out.contains("List of containers belonging to the pod."),
        "{out}"
    );
    let out = s.kubectl_ok(v, &["explain", "pods.spec.containers", "--recursive"]);
    assert_lines(
        &out,
        &[
            "  env\t<[]EnvVar>",
            "    valueFrom\t<EnvVarSource>",
            "      configMapKeyRef\t<ConfigMapKeySelector>",
            "        key\t<string> -required-",
        ],
    );
    assert!(out.lines().count() > 150, "{out}");
    let out = s.kubectl_ok(v, &["explain", "services"]);
    assert_lines(&out, &["KIND:       Service", "VERSION:    v1"]);
    assert!(!out.contains("GROUP:"), "{out}");
    assert!(out.contains("Service is a named abstraction of software service"));
    let out = s.kubectl_ok(v, &["explain", "configmaps.data"]);
    assert_lines(&out, &["FIELD: data <map[string]string>"]);
    assert!(
        out.contains("Data contains the configuration data."),
        "{out}"
    );

    // the OpenAPI v2 (gnostic protobuf) output
    let v2 = |args: &[&str]| {
        let mut a = vec!["explain"];
        a.extend(args);
        a.push("--output=plaintext-openapiv2");
        s.kubectl_ok(v, &a)
    };
    let out = v2(&["deployments"]);
    assert_lines(&out, &["KIND:     Deployment", "VERSION:  apps/v1"]);
    assert!(out.contains("   spec\t<Object>"), "{out}");
    let out = v2(&["pods.spec.containers"]);
    assert_lines(
        &out,
        &[
            "KIND:     Pod",
            "VERSION:  v1",
            "RESOURCE: containers <[]Object>",
            "   name\t<string> -required-",
        ],
    );
    let out = v2(&["pods.spec.containers", "--recursive"]);
    assert!(out.contains("      configMapKeyRef\t<Object>"), "{out}");
    let out = v2(&["configmaps.data"]);
    assert_lines(&out, &["FIELD:    data <map[string]string>"]);

    // every served resource explains through both documents
    let served = served_resources(s);
    assert!(served.len() > 5, "{served:?}");
    for (r, av) in &served {
        let av = format!("--api-version={av}");
        s.kubectl_ok(v, &["explain", r, &av, "--recursive"]);
        s.kubectl_ok(
            v,
            &[
                "explain",
                r,
                &av,
                "--recursive",
                "--output=plaintext-openapiv2",
            ],
        );
    }
    if served.iter().any(|(r, _)| r == "customresourcedefinitions") {
        let out = s.kubectl_ok(v, &["explain", "customresourcedefinitions"]);
        assert_lines(
            &out,
            &[
                "GROUP:      apiextensions.k8s.io",
                "KIND:       CustomResourceDefinition",
                "VERSION:    v1",
            ],
        );
        let out = s.kubectl_ok(
            v,
            &[
                "explain",
                "customresourcedefinitions.spec.versions.schema",
                "--recursive",
            ],
        );
        assert!(out.contains("openAPIV3Schema\t<JSONSchemaProps>"), "{out}");
    }
}

#[test]
fn explain_kubectl_1_27() {
    explain(&Server::start(), "1.27");
}

#[test]
fn explain_kubectl_1_33() {
    explain(&Server::start(), "1.33");
}

/// Every `$ref` of a document names one of its schemas.
fn refs_resolve(doc: &Value, prefix: &str, schemas: &Value) {
    let text = doc.to_string();
    let needle = format!("\"$ref\":\"{prefix}");
    for r in text.split(needle.as_str()).skip(1) {
        let name = &r[..r.find('"').expect("closing quote")];
        assert!(schemas.get(name).is_some(), "dangling $ref {name}");
    }
}

#[test]
fn openapi_v3_index_and_documents() {
    let s = Server::start();
    let (code, body) = s.curl("GET", "/openapi/v3", None, None);
    assert_eq!(code, 200, "{body}");
    let index = parse(&body);
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1 in the index")
        .to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    assert!(index["paths"]["api/v1"]["serverRelativeURL"].is_string());
    // the hash is stable while nothing changes
    let (_, again) = s.curl("GET", "/openapi/v3", None, None);
    assert_eq!(parse(&again), index);

    let (code, body) = s.curl("GET", &url, None, None);
    assert_eq!(code, 200);
    let doc = parse(&body);
    let schemas = &doc["components"]["schemas"];
    let dep = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        dep["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert_eq!(
        dep["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    assert_eq!(containers["type"], "array");
    let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        serde_json::json!(["containerPort", "protocol"])
    );
    let ios = &schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
    assert_eq!(ios["format"], "int-or-string");
    assert_eq!(ios["x-kubernetes-int-or-string"], true);
    let time = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
    assert_eq!(time["format"], "date-time");
    assert!(schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"].is_array());
    refs_resolve(&doc, "#/components/schemas/", schemas);
    // kubectl learns field validation from the PATCH operation
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .expect("patch parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for want in ["fieldValidation", "dryRun", "fieldManager", "force"] {
        assert!(params.contains(&want), "{params:?}");
    }
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    // served from memory the second time: the same bytes
    let (_, second) = s.curl("GET", &url, None, None);
    assert_eq!(second, body);

    let (code, body) = s.curl("GET", "/openapi/v3/api/v1", None, None);
    assert_eq!(code, 200);
    let core = parse(&body);
    let svc_ports =
        &core["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(
        svc_ports["x-kubernetes-list-map-keys"],
        serde_json::json!(["port", "protocol"])
    );
    let (code, _) = s.curl("GET", "/openapi/v3/apis/nope/v1", None, None);
    assert_eq!(code, 404);
}

fn curl_accept(s: &Server, accept: &str) -> (String, Vec<u8>) {
    let out = s
        .curl_cmd()
        .args(["-D", "-", "--max-time", "20", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg(format!("{}/openapi/v2", s.url))
        .output()
        .expect("curl");
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    (
        String::from_utf8_lossy(&out.stdout[..split]).to_ascii_lowercase(),
        out.stdout[split + 4..].to_vec(),
    )
}

#[test]
fn openapi_v2_json_and_protobuf() {
    let s = Server::start();
    let (headers, body) = curl_accept(&s, "application/json");
    assert!(headers.starts_with("http/2 200") || headers.starts_with("http/1.1 200"));
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    let doc: Value = serde_json::from_slice(&body).expect("v2 JSON");
    assert_eq!(doc["swagger"], "2.0");
    let defs = &doc["definitions"];
    let dep = &defs["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        dep["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    assert_eq!(
        dep["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(
        defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
        "int-or-string"
    );
    refs_resolve(&doc, "#/definitions/", defs);
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(patch["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));

    let (headers, body) = curl_accept(
        &s,
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    );
    assert!(
        headers.contains("content-type: application/octet-stream"),
        "{headers}"
    );
    // Document{swagger = 1: "2.0", info = 2, ...}
    assert_eq!(&body[..5], b"\x0a\x032.0");
    assert!(body.len() > 100_000, "{} bytes", body.len());
    let needle = b"io.k8s.api.core.v1.PodSpec";
    assert!(body.windows(needle.len()).any(|w| w == needle));

    let (headers, _) = curl_accept(&s, "text/plain");
    assert!(headers.contains(" 406"), "{headers}");
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: a
        image: nginx:1
      - name: b
        image: busybox:1
";

/// Client-side apply computes its strategic merge patch from the merge keys of the served
/// schemas (`/openapi/v2`; 1.33 reads the v3 document too): only the changed
/// container, by name, with the element order; the server merges it by key, so both
/// containers remain.
fn reapply_keeps_both_containers(v: &str, reads: &[&str]) {
    let s = Server::start();
    let f = s.write_file("dep.yaml", DEPLOYMENT);
    s.kubectl_ok(v, &["apply", "-f", &f]);
    s.write_file("dep.yaml", &DEPLOYMENT.replace("busybox:1", "busybox:2"));
    let out = s.kubectl(v, &["apply", "-f", &f, "-v=9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for path in reads {
        assert!(
            stderr.contains(&format!("{}{path}", s.url)),
            "kubectl {v} did not read {path}:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("error calculating patch from openapi"),
        "{stderr}"
    );
    // (1.33 logs the body as a quoted string)
    let body = stderr
        .lines()
        .find(|l| l.contains("Request Body") && l.contains("$setElementOrder/containers"))
        .unwrap_or_else(|| panic!("no strategic merge patch by merge key:\n{stderr}"))
        .replace('\\', "");
    assert!(
        body.contains(r#""containers":[{"image":"busybox:2","name":"b"}]"#),
        "{body}"
    );
    let out = s.kubectl_ok(
        v,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image} {end}",
        ],
    );
    assert_eq!(out.trim(), "a=nginx:1 b=busybox:2");
}

#[test]
fn kubectl_1_27_reapply_keeps_both_containers() {
    reapply_keeps_both_containers("1.27", &["/openapi/v2"]);
}

#[test]
fn kubectl_1_33_reapply_keeps_both_containers() {
    reapply_keeps_both_containers("1.33", &["/openapi/v3/apis/apps/v1?hash=", "/openapi/v2"]);
}

/// create/replace/apply download and parse the OpenAPI (field validation support, the
/// patch schema) without a complaint.
#[test]
fn create_replace_apply_read_the_openapi_cleanly() {
    // No controllers writing the Deployment's status: `replace` right after `create` would
    // race them (a 409, as it would upstream).
    let s = Server::start_with(&["--controllers=*,-deployment,-replicaset"]);
    for v in ["1.27", "1.33"] {
        let f = s.write_file("dep.yaml", DEPLOYMENT);
        for args in [
            vec!["create", "-f", &f, "--validate=strict"],
            vec!["replace", "-f", &f, "--validate=strict"],
            vec!["apply", "-f", &f, "--validate=strict"],
            vec!["delete", "-f", &f],
        ] {
            let out = s.kubectl(v, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "kubectl {v} {args:?}: {stderr}");
            assert!(
                !stderr.to_ascii_lowercase().contains("openapi"),
                "kubectl {v} {args:?}: {stderr}"
            );
        }
        // an unknown field is refused by the server (kubectl relies on field validation)
        let bad = s.write_file(
            "bad.yaml",
            &DEPLOYMENT.replace("  replicas: 1", "  replicas: 1\n  replicaz: 2"),
        );
        let out = s.kubectl(v, &["create", "-f", &bad, "--validate=strict"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("replicaz"), "{stderr}");
        assert!(!stderr.to_ascii_lowercase().contains("openapi"), "{stderr}");
    }
}
