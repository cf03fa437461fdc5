//! CustomResourceDefinitions end to end: a definition makes its resource live (REST, watch,
//! discovery, OpenAPI, tables) without a restart, objects are defaulted, pruned and validated
//! by the schema and its CEL rules, and deleting the definition removes its objects and then
//! its routes. Driven with the real kubectl.

mod common;

use std::time::Duration;

use common::{eventually, parse, Server};
use serde_json::{json, Value};

/// A definition exercising most of the schema: defaults, enum, min/max, pattern, required,
/// CEL rules (one transition rule), a list-map, status and scale subresources, printer
/// columns, short names and a category.
const CRONTABS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Spec
      type: string
      description: The cron spec defining the interval a CronJob is run
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    selectableFields:
    - jsonPath: .spec.color
    schema:
      openAPIV3Schema:
        description: A CronTab runs an image on a schedule.
        type: object
        properties:
          spec:
            description: What the crontab runs and when.
            type: object
            required: [cronSpec]
            x-kubernetes-validations:
            - rule: self.minReplicas <= self.replicas
              message: replicas must be at least minReplicas
            properties:
              cronSpec:
                description: The schedule, in cron format.
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              color:
                type: string
                enum: [red, green, blue]
                default: red
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
              minReplicas:
                type: integer
                default: 1
              owner:
                type: string
                x-kubernetes-validations:
                - rule: self == oldSelf
                  message: owner is immutable
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              phase: {type: string}
"#;

fn crontab(name: &str, spec: &str) -> String {
    format!("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn established(s: &Server, crd: &str) {
    s.kubectl_ok(
        "1.33",
        &["wait", "--for=condition=Established", crd, "--timeout=20s"],
    );
}

/// kubectl 1.33 on stdin; (success, stdout, stderr).
fn kubectl_in(s: &Server, args: &[&str], input: &str) -> (bool, String, String) {
    let out = s.kubectl_stdin(args, input);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CT: &str = "/apis/stable.example.com/v1/namespaces/default/crontabs";

#[test]
fn a_definition_serves_its_resource_to_kubectl() {
    let s = Server::start();
    s.apply(CRONTABS);
    established(&s, "crd/crontabs.stable.example.com");
    let crd = s.api_get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.stable.example.com",
    );
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    let resources = s.kubectl_ok("1.33", &["api-resources", "--api-group=stable.example.com"]);
    assert!(
        resources.contains("crontabs") && resources.contains("ct") && resources.contains("CronTab"),
        "{resources}"
    );

    // Created, defaulted and pruned (fieldValidation=Ignore drops the unknown field silently;
    // kubectl's default, Strict, refuses it).
    let (ok, _, err) = kubectl_in(
        &s,
        &["create", "-f", "-"],
        &crontab("strict", "  cronSpec: \"* * * * */5\"\n  bogus: 1\n"),
    );
    assert!(!ok);
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.bogus""#),
        "{err}"
    );
    s.kubectl_stdin(
        &["create", "--validate=false", "-f", "-"],
        &crontab("first", "  cronSpec: \"* * * * */5\"\n  image: busybox\n  bogus: 1\n  ports:\n  - name: http\n    port: 80\n"),
    );
    let first = s.api_get(&format!("{CT}/first"));
    assert_eq!(first["spec"]["color"], "red", "defaulted: {first}");
    assert_eq!(first["spec"]["replicas"], 1);
    assert!(first["spec"].get("bogus").is_none(), "pruned: {first}");
    assert_eq!(first["metadata"]["generation"], 1);

    // Invalid objects: one cause per field, with upstream's wording.
    let (ok, _, err) = kubectl_in(
        &s,
        &["create", "-f", "-"],
        &crontab(
            "bad",
            "  cronSpec: \"every minute\"\n  color: pink\n  replicas: 11\n",
        ),
    );
    assert!(!ok);
    for want in [
        r#"The CronTab "bad" is invalid"#,
        r#"spec.color: Unsupported value: "pink": supported values: "red", "green", "blue""#,
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        r#"spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match"#,
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let (ok, _, err) = kubectl_in(
        &s,
        &["create", "-f", "-"],
        &crontab("noschedule", "  image: x\n"),
    );
    assert!(!ok);
    assert!(err.contains("spec.cronSpec: Required value"), "{err}");
    let (ok, _, err) = kubectl_in(
        &s,
        &["create", "-f", "-"],
        &crontab(
            "rule",
            "  cronSpec: \"* * * * *\"\n  replicas: 2\n  minReplicas: 3\n",
        ),
    );
    assert!(!ok);
    assert!(
        err.contains(r#"spec: Invalid value: "object": replicas must be at least minReplicas"#),
        "{err}"
    );
    // A transition rule: checked against the stored object on update only.
    s.apply(&crontab(
        "owned",
        "  cronSpec: \"* * * * *\"\n  owner: alice\n",
    ));
    let (ok, _, err) = kubectl_in(
        &s,
        &["apply", "-f", "-"],
        &crontab("owned", "  cronSpec: \"* * * * *\"\n  owner: bob\n"),
    );
    assert!(!ok);
    assert!(
        err.contains(r#"spec.owner: Invalid value: "string": owner is immutable"#),
        "{err}"
    );

    // Tables: printer columns, short names, the `all` category, selectable fields.
    let table = s.kubectl_ok("1.33", &["get", "ct"]);
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.contains("NAME")
            && header.contains("SPEC")
            && header.contains("REPLICAS")
            && header.contains("AGE"),
        "{table}"
    );
    assert!(table.contains("* * * * */5"), "{table}");
    let all = s.kubectl_ok("1.33", &["get", "all"]);
    assert!(all.contains("crontab.stable.example.com/first"), "{all}");
    let red = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "crontabs",
            "--field-selector",
            "spec.color=red",
            "-o",
            "name",
        ],
    );
    assert!(red.contains("crontab.stable.example.com/first"), "{red}");
    let (code, body) = s.curl(
        "GET",
        &format!("{CT}?fieldSelector=spec.image%3Dx"),
        None,
        None,
    );
    assert_eq!(code, 400, "only selectable fields select: {body}");

    // kubectl explain reads the schema's descriptions from OpenAPI v3 (and 1.27 too).
    for v in ["1.33", "1.27"] {
        let explain = s.kubectl_ok(v, &["explain", "crontab.spec"]);
        assert!(
            explain.contains("What the crontab runs and when."),
            "{v}: {explain}"
        );
        assert!(explain.contains("cronSpec"), "{v}: {explain}");
    }

    // Status and spec are written through their own endpoints.
    let mut obj = s.api_get(&format!("{CT}/first"));
    obj["status"] = json!({"replicas": 1, "selector": "app=cron", "phase": "Running"});
    obj["spec"]["image"] = json!("ignored-through-status");
    let (code, body) = s.send_json("PUT", &format!("{CT}/first/status"), &obj);
    assert_eq!(code, 200, "{body}");
    let now = s.api_get(&format!("{CT}/first"));
    assert_eq!(now["status"]["phase"], "Running");
    assert_eq!(now["spec"]["image"], "busybox");
    assert_eq!(
        now["metadata"]["generation"], 1,
        "a status write is no spec change"
    );
    let (code, body) = s.curl(
        "PATCH",
        &format!("{CT}/first"),
        Some("application/merge-patch+json"),
        Some(br#"{"status":{"phase":"Lost"},"spec":{"image":"nginx"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    let now = s.api_get(&format!("{CT}/first"));
    assert_eq!(
        now["status"]["phase"], "Running",
        "status only through /status"
    );
    assert_eq!(now["spec"]["image"], "nginx");
    assert_eq!(now["metadata"]["generation"], 2);

    // Scale, through the definition's paths.
    s.kubectl_ok("1.33", &["scale", "crontab/first", "--replicas=4"]);
    let scale = s.api_get(&format!("{CT}/first/scale"));
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=cron");
    assert_eq!(s.api_get(&format!("{CT}/first"))["spec"]["replicas"], 4);

    // Strategic merge patch is refused as upstream refuses it for custom resources; JSON
    // patch works.
    let (code, _) = s.curl(
        "PATCH",
        &format!("{CT}/first"),
        Some("application/strategic-merge-patch+json"),
        Some(br#"{"spec":{"image":"x"}}"#),
    );
    assert_eq!(code, 415);
    let (code, body) = s.curl(
        "PATCH",
        &format!("{CT}/first"),
        Some("application/json-patch+json"),
        Some(br#"[{"op":"replace","path":"/spec/image","value":"alpine"}]"#),
    );
    assert_eq!(code, 200, "{body}");

    // Server-side apply merges the list-map by key: two managers, one entry each.
    let (ok, _, err) = kubectl_in(
        &s,
        &["apply", "--server-side", "--field-manager=ops", "-f", "-"],
        &crontab(
            "first",
            "  cronSpec: \"* * * * */5\"\n  ports:\n  - name: metrics\n    port: 9090\n",
        ),
    );
    assert!(ok, "{err}");
    let ports = s.api_get(&format!("{CT}/first"))["spec"]["ports"].clone();
    assert_eq!(
        ports,
        json!([{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]),
    );

    // No protobuf form: asked for only protobuf, 406; protobuf or JSON, JSON; a protobuf
    // body, 415.
    let accept = |a: &str| {
        let out = s
            .curl_cmd()
            .args([
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{content_type}",
                "-H",
            ])
            .arg(format!("accept: {a}"))
            .arg(format!("{}{CT}", s.url))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(accept("application/vnd.kubernetes.protobuf").starts_with("406"));
    assert_eq!(
        accept("application/vnd.kubernetes.protobuf, application/json"),
        "200 application/json"
    );
    let (code, _) = s.curl(
        "POST",
        CT,
        Some("application/vnd.kubernetes.protobuf"),
        Some(b"k8s\0"),
    );
    assert_eq!(code, 415);

    // A watch sees custom objects like any other.
    let events = s.watch_events(
        &format!("{CT}?watch=true&resourceVersion=0&timeoutSeconds=1"),
        None,
    );
    assert!(
        events
            .iter()
            .any(|e| e["object"]["metadata"]["name"] == "first"),
        "{events:?}"
    );
}

#[test]
fn deleting_a_definition_removes_its_objects_then_its_routes() {
    let s = Server::start();
    s.apply(CRONTABS);
    let other = CRONTABS
        .replace("crontabs", "backups")
        .replace("crontab", "backup")
        .replace("CronTab", "Backup")
        .replace("[ct]", "[bk]");
    s.apply(&other);
    established(&s, "crd/crontabs.stable.example.com");
    established(&s, "crd/backups.stable.example.com");
    s.apply(&crontab("a", "  cronSpec: \"* * * * *\"\n"));
    s.kubectl_ok("1.33", &["create", "namespace", "team"]);
    s.kubectl_stdin(
        &["create", "-n", "team", "-f", "-"],
        &crontab("b", "  cronSpec: \"* * * * *\"\n"),
    );
    s.apply("apiVersion: stable.example.com/v1\nkind: Backup\nmetadata:\n  name: keep\nspec:\n  cronSpec: \"* * * * *\"\n");

    // An object with a finalizer of its own holds the definition in Terminating: creates are
    // refused meanwhile, reads and deletes still served.
    let (code, body) = s.curl(
        "PATCH",
        &format!("{CT}/a"),
        Some("application/merge-patch+json"),
        Some(br#"{"metadata":{"finalizers":["example.com/hold"]}}"#),
    );
    assert_eq!(code, 200, "{body}");
    s.kubectl_ok(
        "1.33",
        &[
            "delete",
            "crd",
            "crontabs.stable.example.com",
            "--wait=false",
        ],
    );
    let crd_path =
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.stable.example.com";
    eventually("the cleanup is under way", Duration::from_secs(20), || {
        let crd = s.api_get(crd_path);
        let c = crd["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Terminating")?
            .clone();
        (c["reason"] == "InstanceDeletionInProgress").then_some(())
    });
    let (code, body) = s.send_json(
        "POST",
        CT,
        &json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "late"}, "spec": {"cronSpec": "* * * * *"}}),
    );
    assert_eq!(code, 405, "{body}");
    assert!(body.contains("create not allowed while custom resource definition is terminating"));
    let (code, body) = s.curl(
        "PATCH",
        &format!("{CT}/a"),
        Some("application/merge-patch+json"),
        Some(br#"{"metadata":{"finalizers":null}}"#),
    );
    assert_eq!(code, 200, "{body}");
    s.kubectl_ok(
        "1.33",
        &[
            "wait",
            "--for=delete",
            "crd/crontabs.stable.example.com",
            "--timeout=30s",
        ],
    );
    let (code, _) = s.curl("GET", CT, None, None);
    assert_eq!(code, 404);
    let (code, _) = s.curl(
        "GET",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.stable.example.com",
        None,
        None,
    );
    assert_eq!(code, 404);
    let names = s.resource_names("/apis/stable.example.com/v1");
    assert!(!names.contains(&"crontabs".to_string()), "{names:?}");
    assert!(names.contains(&"backups".to_string()), "{names:?}");
    assert!(s
        .get_opt("/apis/stable.example.com/v1/namespaces/default/backups/keep")
        .is_some());

    // Re-created, the resource is empty: the objects went with the definition.
    s.apply(CRONTABS);
    established(&s, "crd/crontabs.stable.example.com");
    let list = s.api_get("/apis/stable.example.com/v1/crontabs");
    assert_eq!(list["items"], json!([]), "{list}");
}

#[test]
fn definitions_are_validated_and_names_must_not_collide() {
    let s = Server::start();
    let post = |crd: &str| {
        let (ok, out, err) = kubectl_in(&s, &["create", "-f", "-"], crd);
        (ok, format!("{out}{err}"))
    };
    let bad_name = CRONTABS.replace(
        "name: crontabs.stable.example.com",
        "name: tabs.stable.example.com",
    );
    let (ok, out) = post(&bad_name);
    assert!(!ok);
    assert!(
        out.contains(r#"metadata.name: Invalid value: "tabs.stable.example.com": must be spec.names.plural+"."+spec.group"#),
        "{out}"
    );
    let two_storage = CRONTABS.replace(
        "  versions:\n  - name: v1\n",
        "  versions:\n  - name: v2\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n  - name: v1\n",
    );
    let (ok, out) = post(&two_storage);
    assert!(!ok);
    assert!(
        out.contains("must have exactly one version marked as storage version"),
        "{out}"
    );
    let untyped = CRONTABS.replace(
        "              image:\n                type: string\n",
        "              image: {}\n",
    );
    let (ok, out) = post(&untyped);
    assert!(!ok);
    assert!(
        out.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[image].type: Required value: must not be empty for specified object fields"),
        "{out}"
    );
    let bad_rule = CRONTABS.replace(
        "rule: self.minReplicas <= self.replicas",
        "rule: self.nope > 1",
    );
    let (ok, out) = post(&bad_rule);
    assert!(!ok);
    assert!(out.contains("x-kubernetes-validations[0].rule"), "{out}");
    assert!(out.contains("compilation failed"), "{out}");

    // A second definition of the group whose kind is taken: names not accepted, not served.
    s.apply(CRONTABS);
    established(&s, "crd/crontabs.stable.example.com");
    let clash = CRONTABS
        .replace("crontabs", "timers")
        .replace("crontab\n", "timer\n")
        .replace("[ct]", "[tm]");
    s.apply(&clash);
    let crd = eventually("NamesAccepted=False", Duration::from_secs(20), || {
        let crd = s.api_get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/timers.stable.example.com",
        );
        let c = crd["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "NamesAccepted")?
            .clone();
        (c["status"] == "False").then_some(c)
    });
    assert_eq!(crd["reason"], "KindConflict");
    assert_eq!(crd["message"], r#""CronTab" is already in use"#);
    let (code, _) = s.curl("GET", "/apis/stable.example.com/v1/timers", None, None);
    assert_eq!(code, 404);
}

#[test]
fn versions_share_one_collection_and_deprecated_ones_warn() {
    let s = Server::start();
    let two = CRONTABS.replace(
        "  versions:\n  - name: v1\n",
        "  versions:\n  - name: v1beta1\n    served: true\n    storage: false\n    deprecated: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n  - name: v1\n",
    );
    s.apply(&two);
    established(&s, "crd/crontabs.stable.example.com");
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: stable.example.com/v1beta1\nkind: CronTab\nmetadata:\n  name: old\nspec:\n  cronSpec: \"* * * * *\"\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warned = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        warned.contains(
            "stable.example.com/v1beta1 CronTab is deprecated; use stable.example.com/v1 CronTab"
        ),
        "{warned}"
    );
    // Stored once, served in whichever version is asked for.
    let v1 = s.api_get(&format!("{CT}/old"));
    assert_eq!(v1["apiVersion"], "stable.example.com/v1");
    let beta = s.api_get("/apis/stable.example.com/v1beta1/namespaces/default/crontabs/old");
    assert_eq!(beta["apiVersion"], "stable.example.com/v1beta1");
    assert_eq!(beta["metadata"]["uid"], v1["metadata"]["uid"]);
    let list = s.api_get("/apis/stable.example.com/v1beta1/namespaces/default/crontabs");
    assert_eq!(list["items"][0]["apiVersion"], "stable.example.com/v1beta1");

    // Survives a restart: the catalogue is rebuilt from the store before serving.
    let mut s = s;
    s.kill9();
    s.spawn();
    let v1 = s.api_get(&format!("{CT}/old"));
    assert_eq!(v1["metadata"]["name"], "old");
    let (code, body) = s.send_json(
        "POST",
        CT,
        &json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "after"}, "spec": {"cronSpec": "* * * * *"}}),
    );
    assert_eq!(code, 201, "{body}");
    let created: Value = parse(&body);
    assert_eq!(created["spec"]["color"], "red");
}

#[test]
fn custom_objects_live_like_built_ins() {
    let s = Server::start();
    // Cluster scope, and defaults added to a schema later show on objects stored before.
    let cluster = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: zones.infra.example.com}
spec:
  group: infra.example.com
  scope: Cluster
  names: {plural: zones, singular: zone, kind: Zone}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              region: {type: string}
"#;
    s.apply(cluster);
    established(&s, "crd/zones.infra.example.com");
    s.apply("apiVersion: infra.example.com/v1\nkind: Zone\nmetadata:\n  name: eu-1\nspec:\n  region: eu\n");
    let zone = s.api_get("/apis/infra.example.com/v1/zones/eu-1");
    assert!(zone["metadata"].get("namespace").is_none(), "{zone}");
    let (code, _) = s.curl(
        "GET",
        "/apis/infra.example.com/v1/namespaces/default/zones",
        None,
        None,
    );
    assert_eq!(
        code, 404,
        "a cluster-scoped resource has no namespaced path"
    );
    s.apply(&cluster.replace(
        "              region: {type: string}\n",
        "              region: {type: string}\n              tier: {type: string, default: standard}\n",
    ));
    eventually("the default shows on read", Duration::from_secs(20), || {
        let zone = s.api_get("/apis/infra.example.com/v1/zones/eu-1");
        (zone["spec"]["tier"] == "standard").then_some(())
    });
    let listed = s.api_get("/apis/infra.example.com/v1/zones");
    assert_eq!(listed["items"][0]["spec"]["tier"], "standard");

    // Namespace deletion removes custom objects; the garbage collector deletes dependents
    // whose owner is gone.
    s.apply(CRONTABS);
    established(&s, "crd/crontabs.stable.example.com");
    s.kubectl_ok("1.33", &["create", "namespace", "doomed"]);
    s.kubectl_stdin(
        &["create", "-n", "doomed", "-f", "-"],
        &crontab("inside", "  cronSpec: \"* * * * *\"\n"),
    );
    let owner = s.create(
        "/api/v1/namespaces/default/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}),
    );
    let (code, body) = s.send_json(
        "POST",
        CT,
        &json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "dependent", "ownerReferences": [{"apiVersion": "v1",
                "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]},
            "spec": {"cronSpec": "* * * * *"}}),
    );
    assert_eq!(code, 201, "{body}");
    s.kubectl_ok("1.33", &["delete", "namespace", "doomed", "--timeout=30s"]);
    let (code, _) = s.curl(
        "GET",
        "/apis/stable.example.com/v1/namespaces/doomed/crontabs/inside",
        None,
        None,
    );
    assert_eq!(code, 404);
    s.kubectl_ok("1.33", &["delete", "configmap", "owner"]);
    eventually(
        "the dependent is collected",
        Duration::from_secs(60),
        || {
            let (code, _) = s.curl("GET", &format!("{CT}/dependent"), None, None);
            (code == 404).then_some(())
        },
    );

    // A version that would need a conversion webhook says so.
    let webhook = CRONTABS
        .replace("crontabs", "hooks")
        .replace("crontab\n", "hook\n")
        .replace("CronTab", "Hook")
        .replace("[ct]", "[hk]")
        .replace(
            "  versions:\n  - name: v1\n",
            "  conversion:\n    strategy: Webhook\n    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig:\n        url: https://127.0.0.1:1/convert\n  versions:\n  - name: v1beta1\n    served: true\n    storage: false\n    schema:\n      openAPIV3Schema:\n        type: object\n  - name: v1\n",
        );
    s.apply(&webhook);
    established(&s, "crd/hooks.stable.example.com");
    let (code, body) = s.curl("GET", "/apis/stable.example.com/v1beta1/hooks", None, None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("conversion webhook"), "{body}");
    let (code, body) = s.curl("GET", "/apis/stable.example.com/v1/hooks", None, None);
    assert_eq!(code, 200, "the storage version needs no conversion: {body}");
}
