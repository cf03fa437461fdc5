//! End-to-end: the real `reddwarf` binary driven by every real kubectl version through the
//! everyday object work (discovery, create, apply, get in every output, label, annotate,
//! replace, delete, watch, namespace deletion), plus bad-input answers checked with curl.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{eventually, parse, Server, KUBECTL_VERSIONS};
use serde_json::{json, Value};

const NS: &str = "e2e";

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn cols(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// An AGE cell as kubectl prints a young object: `0s`, `12s`, `2m3s`.
fn is_age(s: &str) -> bool {
    !s.is_empty()
        && s.ends_with('s')
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == 'm' || c == 's')
}

impl Server {
    /// Runs kubectl, asserts failure, returns stderr.
    fn kubectl_fails(&self, v: &str, args: &[&str]) -> String {
        let out = self.kubectl(v, args);
        assert!(
            !out.status.success(),
            "kubectl {v} {args:?} unexpectedly succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn get_json(&self, v: &str, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        parse(&self.kubectl_ok(v, &a))
    }
}

fn applied_manifest(k1: &str, with_k2: bool) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {NS}\n  labels:\n    app: web\ndata:\n  k1: {k1}\n"
    );
    if with_k2 {
        s.push_str("  k2: v2\n");
    }
    s
}

/// The whole everyday scenario for one kubectl version against a fresh server.
fn scenario(v: &str) {
    let s = Server::start();
    let minor = v.split('.').nth(1).expect("version like 1.NN");

    // version: client and server lines.
    let (code, body) = s.curl("GET", "/version", None, None);
    assert_eq!(code, 200, "{body}");
    let server_git = parse(&body)["gitVersion"]
        .as_str()
        .expect("gitVersion")
        .to_string();
    let out = s.kubectl_ok(v, &["version"]);
    let l = lines(&out);
    let client = l
        .iter()
        .find(|l| l.starts_with("Client Version: "))
        .expect(&out);
    let server = l
        .iter()
        .find(|l| l.starts_with("Server Version: "))
        .expect(&out);
    if v == "1.27" {
        assert!(
            client.contains(&format!("Major:\"1\", Minor:\"{minor}\"")),
            "{out}"
        );
        assert!(
            server.contains(&format!("GitVersion:\"{server_git}\"")),
            "{out}"
        );
    } else {
        assert!(
            client.starts_with(&format!("Client Version: v1.{minor}.")),
            "{out}"
        );
        assert_eq!(*server, format!("Server Version: {server_git}"), "{out}");
    }
    let vj = parse(&s.kubectl_ok(v, &["version", "-o", "json"]));
    assert_eq!(vj["clientVersion"]["minor"], minor, "{vj}");
    assert_eq!(
        vj["serverVersion"]["gitVersion"],
        server_git.as_str(),
        "{vj}"
    );
    assert_eq!(vj["serverVersion"]["major"], "1", "{vj}");

    // api-resources.
    let out = s.kubectl_ok(v, &["api-resources"]);
    let l = lines(&out);
    assert_eq!(
        cols(l[0]),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "{out}"
    );
    let row = |name: &str| -> Vec<&str> {
        l.iter()
            .map(|l| cols(l))
            .find(|c| c.first() == Some(&name))
            .unwrap_or_else(|| panic!("api-resources lacks {name}:\n{out}"))
    };
    assert_eq!(
        row("configmaps"),
        ["configmaps", "cm", "v1", "true", "ConfigMap"]
    );
    assert_eq!(
        row("namespaces"),
        ["namespaces", "ns", "v1", "false", "Namespace"]
    );
    assert_eq!(row("secrets"), ["secrets", "v1", "true", "Secret"]);
    assert_eq!(
        row("deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        row("leases"),
        ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    );
    let names = s.kubectl_ok(v, &["api-resources", "-o", "name"]);
    for n in [
        "configmaps",
        "namespaces",
        "deployments.apps",
        "leases.coordination.k8s.io",
    ] {
        assert!(names.lines().any(|l| l == n), "{n} missing:\n{names}");
    }

    // create namespace / create configmap (protobuf body from the generator).
    assert_eq!(
        s.kubectl_ok(v, &["create", "namespace", NS]),
        format!("namespace/{NS} created\n")
    );
    // The root CA publisher gives every namespace its kube-root-ca.crt, as upstream's does.
    common::eventually(
        "kube-root-ca.crt in the test namespace",
        std::time::Duration::from_secs(20),
        || {
            s.kubectl(v, &["-n", NS, "get", "cm", "kube-root-ca.crt"])
                .status
                .success()
                .then_some(())
        },
    );
    let ns = s.get_json(v, &["get", "namespace", NS]);
    assert_eq!(
        ns["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": NS}),
        "{ns}"
    );
    assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}), "{ns}");
    assert_eq!(ns["status"], json!({"phase": "Active"}), "{ns}");
    assert_eq!(
        s.kubectl_ok(
            v,
            &[
                "-n",
                NS,
                "create",
                "configmap",
                "lit",
                "--from-literal=a=1",
                "--from-literal=b=two"
            ]
        ),
        "configmap/lit created\n"
    );
    let lit = s.get_json(v, &["-n", NS, "get", "configmap", "lit"]);
    assert_eq!(lit["data"], json!({"a": "1", "b": "two"}), "{lit}");
    assert_eq!(lit["metadata"]["namespace"], NS);

    // apply -f: created, unchanged, configured, key removal.
    let file = s.write_file("applied.yaml", &applied_manifest("v1", true));
    let get_applied = || s.get_json(v, &["-n", NS, "get", "cm", "applied"]);
    assert_eq!(
        s.kubectl_ok(v, &["apply", "-f", &file]),
        "configmap/applied created\n"
    );
    let first = get_applied();
    assert_eq!(first["data"], json!({"k1": "v1", "k2": "v2"}));
    assert!(
        first["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    assert_eq!(
        s.kubectl_ok(v, &["apply", "-f", &file]),
        "configmap/applied unchanged\n"
    );
    let again = get_applied();
    assert_eq!(
        again["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"],
        "an identical apply must not write"
    );
    s.write_file("applied.yaml", &applied_manifest("changed", true));
    assert_eq!(
        s.kubectl_ok(v, &["apply", "-f", &file]),
        "configmap/applied configured\n"
    );
    let changed = get_applied();
    assert_eq!(changed["data"], json!({"k1": "changed", "k2": "v2"}));
    assert_ne!(
        changed["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    s.write_file("applied.yaml", &applied_manifest("changed", false));
    assert_eq!(
        s.kubectl_ok(v, &["apply", "-f", &file]),
        "configmap/applied configured\n"
    );
    assert_eq!(get_applied()["data"], json!({"k1": "changed"}));

    // get as a table, in every output.
    let out = s.kubectl_ok(v, &["-n", NS, "get", "cm", "lit"]);
    let l = lines(&out);
    assert_eq!(l.len(), 2, "{out}");
    assert_eq!(l[0], "NAME   DATA   AGE", "{out}");
    let c = cols(l[1]);
    assert_eq!(&c[..2], ["lit", "2"], "{out}");
    assert!(c.len() == 3 && is_age(c[2]), "{out}");
    assert!(l[1].starts_with("lit    2      "), "{out}");
    let out = s.kubectl_ok(v, &["-n", NS, "get", "cm", "lit", "-o", "wide"]);
    assert_eq!(lines(&out)[0], "NAME   DATA   AGE", "{out}");
    assert_eq!(&cols(lines(&out)[1])[..2], ["lit", "2"], "{out}");
    let out = s.kubectl_ok(v, &["-n", NS, "get", "cm"]);
    let l = lines(&out);
    assert_eq!(cols(l[0]), ["NAME", "DATA", "AGE"], "{out}");
    let listed: Vec<&str> = l[1..].iter().map(|r| cols(r)[0]).collect();
    assert_eq!(listed, ["applied", "kube-root-ca.crt", "lit"], "{out}");
    assert_eq!(
        s.kubectl_ok(v, &["-n", NS, "get", "cm", "lit", "-o", "name"]),
        "configmap/lit\n"
    );
    let list = s.get_json(v, &["-n", NS, "get", "cm"]);
    assert_eq!(list["kind"], "List", "{list}");
    assert_eq!(list["apiVersion"], "v1");
    let items: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(items, ["applied", "kube-root-ca.crt", "lit"], "{list}");
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["kind"] == "ConfigMap" && i["apiVersion"] == "v1"));
    let lit = s.get_json(v, &["-n", NS, "get", "cm", "lit"]);
    let m = &lit["metadata"];
    let yaml = s.kubectl_ok(v, &["-n", NS, "get", "cm", "lit", "-o", "yaml"]);
    assert_eq!(
        yaml,
        format!(
            "apiVersion: v1\ndata:\n  a: \"1\"\n  b: two\nkind: ConfigMap\nmetadata:\n  creationTimestamp: \"{}\"\n  name: lit\n  namespace: {NS}\n  resourceVersion: \"{}\"\n  uid: {}\n",
            m["creationTimestamp"].as_str().unwrap(),
            m["resourceVersion"].as_str().unwrap(),
            m["uid"].as_str().unwrap()
        )
    );
    assert_eq!(
        s.kubectl_ok(v, &["-n", NS, "get", "cm", "-l", "app=web", "-o", "name"]),
        "configmap/applied\n"
    );
    let out = s.kubectl_ok(v, &["-n", NS, "get", "cm", "-l", "app=web"]);
    assert_eq!(lines(&out).len(), 2, "{out}");
    assert_eq!(cols(lines(&out)[1])[..2], ["applied", "1"], "{out}");
    assert_eq!(
        s.kubectl_ok(
            v,
            &[
                "-n",
                NS,
                "get",
                "cm",
                "--field-selector",
                "metadata.name=lit",
                "-o",
                "name"
            ]
        ),
        "configmap/lit\n"
    );
    let out = s.kubectl_ok(v, &["-n", NS, "get", "cm", "-l", "app=nothing"]);
    assert_eq!(out, "", "no match prints nothing on stdout");
    let err = s.kubectl_fails(v, &["-n", NS, "get", "cm", "--field-selector", "data.a=1"]);
    assert!(
        err.contains(
            r#""data.a" is not a known field selector: only "metadata.name", "metadata.namespace""#
        ),
        "{err}"
    );

    // A field the kind does not have: kubectl asks for fieldValidation=Strict.
    let typo = s.write_file(
        "typo.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  namespace: {NS}\ndatta:\n  a: b\n"),
    );
    let err = s.kubectl_fails(v, &["apply", "-f", &typo]);
    assert!(
        err.contains(&format!(
            "Error from server (BadRequest): error when creating \"{typo}\": ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\""
        )),
        "{err}"
    );

    // --chunk-size=1 over several objects: every object exactly once, in key order.
    let mut docs = String::new();
    for i in 0..5 {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chunk-{i}\n  namespace: {NS}\n  labels:\n    group: chunk\ndata:\n  i: \"{i}\"\n"
        ));
    }
    let chunks = s.write_file("chunks.yaml", &docs);
    let out = s.kubectl_ok(v, &["create", "-f", &chunks]);
    assert_eq!(
        out,
        (0..5)
            .map(|i| format!("configmap/chunk-{i} created\n"))
            .collect::<String>()
    );
    let expected: Vec<String> = [
        "applied",
        "chunk-0",
        "chunk-1",
        "chunk-2",
        "chunk-3",
        "chunk-4",
        "kube-root-ca.crt",
        "lit",
    ]
    .iter()
    .map(|n| format!("configmap/{n}"))
    .collect();
    let out = s.kubectl_ok(v, &["-n", NS, "get", "cm", "--chunk-size=1", "-o", "name"]);
    assert_eq!(lines(&out), expected, "{out}");
    let out = s.kubectl_ok(v, &["-n", NS, "get", "cm", "--chunk-size=1"]);
    let l = lines(&out);
    assert_eq!(cols(l[0]), ["NAME", "DATA", "AGE"], "{out}");
    let rows: Vec<String> = l[1..]
        .iter()
        .map(|r| format!("configmap/{}", cols(r)[0]))
        .collect();
    assert_eq!(rows, expected, "{out}");
    let list = s.get_json(
        v,
        &["-n", NS, "get", "cm", "--chunk-size=2", "-l", "group=chunk"],
    );
    assert_eq!(list["items"].as_array().map(Vec::len), Some(5), "{list}");
    // The pages really were pages: one request per object (kubectl -v=6 logs each).
    let paged = s.kubectl(
        v,
        &[
            "-n",
            NS,
            "get",
            "cm",
            "--chunk-size=1",
            "-o",
            "name",
            "-v=6",
        ],
    );
    assert!(paged.status.success());
    let log = String::from_utf8_lossy(&paged.stderr);
    let pages = log
        .lines()
        .filter(|l| l.contains("limit=1") && l.contains("200 OK"))
        .count();
    assert_eq!(pages, expected.len(), "{log}");
    // Cluster-scoped kinds and all-namespace lists page the same way.
    let out = s.kubectl_ok(v, &["get", "ns", "--chunk-size=1", "-o", "name"]);
    assert_eq!(
        lines(&out),
        [
            "namespace/default",
            format!("namespace/{NS}").as_str(),
            "namespace/kube-node-lease",
            "namespace/kube-public",
            "namespace/kube-system"
        ],
        "{out}"
    );
    let all = s.kubectl_ok(v, &["get", "cm", "-A", "--chunk-size=0", "-o", "name"]);
    // Plus kube-root-ca.crt in each of the four bootstrap namespaces.
    assert_eq!(all.lines().count(), expected.len() + 4, "{all}");
    assert_eq!(
        s.kubectl_ok(v, &["get", "cm", "-A", "--chunk-size=1", "-o", "name"]),
        all
    );

    // label, label --overwrite, unlabel, annotate.
    assert_eq!(
        s.kubectl_ok(v, &["-n", NS, "label", "cm", "lit", "tier=backend"]),
        "configmap/lit labeled\n"
    );
    let err = s.kubectl_fails(v, &["-n", NS, "label", "cm", "lit", "tier=frontend"]);
    assert!(
        err.contains("'tier' already has a value (backend), and --overwrite is false"),
        "{err}"
    );
    assert_eq!(
        s.kubectl_ok(
            v,
            &[
                "-n",
                NS,
                "label",
                "cm",
                "lit",
                "tier=frontend",
                "--overwrite"
            ]
        ),
        "configmap/lit labeled\n"
    );
    let lit = s.get_json(v, &["-n", NS, "get", "cm", "lit"]);
    assert_eq!(
        lit["metadata"]["labels"],
        json!({"tier": "frontend"}),
        "{lit}"
    );
    assert_eq!(
        s.kubectl_ok(
            v,
            &["-n", NS, "get", "cm", "-l", "tier=frontend", "-o", "name"]
        ),
        "configmap/lit\n"
    );
    assert_eq!(
        s.kubectl_ok(v, &["-n", NS, "label", "cm", "lit", "tier-"]),
        "configmap/lit unlabeled\n"
    );
    // kubectl 1.27 itself words this "annotate" (fixed in 1.28).
    let annotated = if v == "1.27" { "annotate" } else { "annotated" };
    assert_eq!(
        s.kubectl_ok(v, &["-n", NS, "annotate", "cm", "lit", "note=hello world"]),
        format!("configmap/lit {annotated}\n")
    );
    let lit = s.get_json(v, &["-n", NS, "get", "cm", "lit"]);
    assert!(
        lit["metadata"]
            .get("labels")
            .is_none_or(|l| l == &json!({})),
        "{lit}"
    );
    assert_eq!(
        lit["metadata"]["annotations"],
        json!({"note": "hello world"}),
        "{lit}"
    );

    // replace -f with the fetched object edited; a stale copy then conflicts.
    let mut edited = lit.clone();
    edited["data"]["a"] = json!("replaced");
    let rep = s.write_file("replace.json", &edited.to_string());
    assert_eq!(
        s.kubectl_ok(v, &["replace", "-f", &rep]),
        "configmap/lit replaced\n"
    );
    let after = s.get_json(v, &["-n", NS, "get", "cm", "lit"]);
    assert_eq!(
        after["data"],
        json!({"a": "replaced", "b": "two"}),
        "{after}"
    );
    assert_eq!(after["metadata"]["uid"], lit["metadata"]["uid"]);
    assert_ne!(
        after["metadata"]["resourceVersion"],
        lit["metadata"]["resourceVersion"]
    );
    let err = s.kubectl_fails(v, &["replace", "-f", &rep]);
    assert!(
        err.contains("Operation cannot be fulfilled on configmaps \"lit\": the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );

    // delete.
    assert_eq!(
        s.kubectl_ok(v, &["-n", NS, "delete", "cm", "lit"]),
        "configmap \"lit\" deleted\n"
    );
    let err = s.kubectl_fails(v, &["-n", NS, "get", "cm", "lit"]);
    assert_eq!(
        err.trim_end(),
        "Error from server (NotFound): configmaps \"lit\" not found"
    );

    watch_events(&s, v);
    delete_namespace(&s, v);
}

/// `get -w --output-watch-events` in the background sees ADDED, MODIFIED, DELETED in order.
fn watch_events(s: &Server, v: &str) {
    let mut child = s
        .kubectl_cmd(v, &["-n", NS, "get", "cm", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut next_line = |what: &str, deadline: Instant| -> String {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                l
            }
            Err(_) => panic!(
                "kubectl {v} get -w: timed out waiting for {what}; lines so far:\n{}",
                seen.join("\n")
            ),
        }
    };
    // The initial list arrives first (the watch then starts from the list's revision).
    let deadline = Instant::now() + Duration::from_secs(20);
    let header = next_line("the header", deadline);
    assert_eq!(cols(&header), ["EVENT", "NAME", "DATA", "AGE"], "{header}");
    loop {
        let l = next_line("the initial ADDED of applied", deadline);
        if cols(&l)[..2] == ["ADDED", "applied"] {
            break;
        }
    }
    s.kubectl_ok(
        v,
        &["-n", NS, "create", "cm", "watched", "--from-literal=x=1"],
    );
    s.kubectl_ok(v, &["-n", NS, "label", "cm", "watched", "stage=two"]);
    s.kubectl_ok(v, &["-n", NS, "delete", "cm", "watched"]);
    let mut events = Vec::new();
    while events.last().map(String::as_str) != Some("DELETED") {
        let l = next_line("the events of watched", deadline);
        let c = cols(&l);
        if c.get(1) == Some(&"watched") {
            assert_eq!(c[2], "1", "{l}");
            events.push(c[0].to_string());
        }
    }
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}

/// Deleting a namespace removes it and everything in it.
fn delete_namespace(s: &Server, v: &str) {
    let ns = "doomed";
    s.kubectl_ok(v, &["create", "namespace", ns]);
    s.kubectl_ok(
        v,
        &["-n", ns, "create", "configmap", "c", "--from-literal=a=b"],
    );
    s.kubectl_ok(
        v,
        &[
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=a=b",
        ],
    );
    s.kubectl_ok(v, &["-n", ns, "create", "deployment", "d", "--image=nginx"]);
    let out = s.kubectl_ok(v, &["-n", ns, "get", "cm,secret,deploy", "-o", "name"]);
    // The root CA publisher's kube-root-ca.crt may or may not be there yet.
    let mine: Vec<&str> = lines(&out)
        .into_iter()
        .filter(|l| *l != "configmap/kube-root-ca.crt")
        .collect();
    assert_eq!(
        mine,
        ["configmap/c", "secret/s", "deployment.apps/d"],
        "{out}"
    );
    assert_eq!(
        s.kubectl_ok(v, &["delete", "namespace", ns]),
        format!("namespace \"{ns}\" deleted\n")
    );
    eventually("the namespace to be gone", Duration::from_secs(30), || {
        let out = s.kubectl(v, &["get", "ns", ns]);
        let err = String::from_utf8_lossy(&out.stderr);
        (!out.status.success()
            && err.contains(&format!(
                "Error from server (NotFound): namespaces \"{ns}\" not found"
            )))
        .then_some(())
    });
    for (path, kind) in [
        (
            format!("/api/v1/namespaces/{ns}/configmaps"),
            "ConfigMapList",
        ),
        (format!("/api/v1/namespaces/{ns}/secrets"), "SecretList"),
        (
            format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            "DeploymentList",
        ),
    ] {
        let (code, body) = s.curl("GET", &path, None, None);
        assert_eq!(code, 200, "{body}");
        let list = parse(&body);
        assert_eq!(list["kind"], kind);
        assert_eq!(
            list["items"],
            json!([]),
            "{path} still holds objects: {body}"
        );
    }
    let out = s.kubectl_ok(v, &["-n", ns, "get", "cm,secret,deploy", "-o", "name"]);
    assert_eq!(out, "");
}

macro_rules! per_version {
    ($($name:ident => $v:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                assert!(KUBECTL_VERSIONS.contains(&$v));
                scenario($v);
            }
        )*
    };
}

per_version! {
    kubectl_1_27 => "1.27",
    kubectl_1_28 => "1.28",
    kubectl_1_29 => "1.29",
    kubectl_1_30 => "1.30",
    kubectl_1_31 => "1.31",
    kubectl_1_32 => "1.32",
    kubectl_1_33 => "1.33",
}

#[test]
fn every_kubectl_version_has_a_test() {
    assert_eq!(
        KUBECTL_VERSIONS,
        ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input, answered with metav1.Status; the server stays up and keeps its data.

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: Option<&str> = Some("application/json");

/// Asserts a Status body with this code and reason; returns it.
fn status(code: u16, body: &str, want_code: u16, want_reason: &str) -> Value {
    let st = parse(body);
    assert_eq!(code, want_code, "{body}");
    assert_eq!(st["kind"], "Status", "{body}");
    assert_eq!(st["apiVersion"], "v1", "{body}");
    assert_eq!(st["status"], "Failure", "{body}");
    assert_eq!(st["code"], want_code, "{body}");
    assert_eq!(st["reason"], want_reason, "{body}");
    assert!(
        st["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    st
}

/// Creates the configmap `keep` that every bad request must leave alone.
fn seed(s: &Server) -> Value {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "b"}});
    let (code, text) = s.curl("POST", CMS, JSON, Some(body.to_string().as_bytes()));
    assert_eq!(code, 201, "{text}");
    parse(&text)
}

fn still_there(s: &Server, seeded: &Value) {
    let (code, text) = s.curl("GET", &format!("{CMS}/keep"), None, None);
    assert_eq!(code, 200, "{text}");
    let now = parse(&text);
    assert_eq!(now["data"], json!({"a": "b"}));
    assert_eq!(now["metadata"]["uid"], seeded["metadata"]["uid"]);
    assert_eq!(
        now["metadata"]["resourceVersion"],
        seeded["metadata"]["resourceVersion"]
    );
    assert_eq!(s.curl_status(&format!("{}/readyz", s.url), false), 200);
}

fn post(s: &Server, ct: Option<&str>, body: &[u8]) -> (u16, String) {
    s.curl("POST", CMS, ct, Some(body))
}

#[test]
fn undecodable_bodies_answer_400_413_415() {
    let s = Server::start();
    let seeded = seed(&s);

    // Malformed JSON.
    let (code, body) = post(
        &s,
        JSON,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"#,
    );
    status(code, &body, 400, "BadRequest");

    // Deeply nested JSON: refused, not a crash.
    let deep = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep"}},"data":{}1{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    let (code, body) = post(&s, JSON, deep.as_bytes());
    status(code, &body, 400, "BadRequest");
    let deep_array = "[".repeat(100_000) + &"]".repeat(100_000);
    let (code, body) = post(&s, JSON, deep_array.as_bytes());
    status(code, &body, 400, "BadRequest");

    // A YAML body is accepted.
    let (code, body) = post(
        &s,
        Some("application/yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  greeting: hello\n  number: \"7\"\n",
    );
    assert_eq!(code, 201, "{body}");
    let created = parse(&body);
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["data"], json!({"greeting": "hello", "number": "7"}));

    // Wrong field types.
    for bad in [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "oops"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t1"}, "data": "oops"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t2"}, "data": {"n": 1}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t3", "labels": ["x"]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 7}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t4"}, "immutable": "yes"}),
        json!(["not", "an", "object"]),
    ] {
        let (code, body) = post(&s, JSON, bad.to_string().as_bytes());
        let st = status(code, &body, 400, "BadRequest");
        assert!(
            !st["message"].as_str().unwrap().contains("Internal"),
            "{st}"
        );
    }
    let (code, body) = post(
        &s,
        JSON,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":"oops"}"#,
    );
    let st = status(code, &body, 400, "BadRequest");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap:"),
        "{st}"
    );
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (code, body) = s.curl(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        JSON,
        Some(dep.to_string().as_bytes()),
    );
    status(code, &body, 400, "BadRequest");

    // kind / apiVersion that do not match the URL.
    let (code, body) = post(
        &s,
        JSON,
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"wrong-kind"}}"#,
    );
    let st = status(code, &body, 400, "BadRequest");
    assert_eq!(
        st["message"],
        r#"Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion"#
    );
    let (code, body) = post(
        &s,
        JSON,
        br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"wrong-group"}}"#,
    );
    let st = status(code, &body, 400, "BadRequest");
    assert_eq!(
        st["message"],
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );

    // Unknown fields are dropped, or refused under fieldValidation=Strict.
    let unknown = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"extra","bogus":1},"data":{"a":"b"},"datta":{"x":"y"}}"#;
    let (code, body) = s.curl(
        "POST",
        &format!("{CMS}?fieldValidation=Strict"),
        JSON,
        Some(unknown),
    );
    let st = status(code, &body, 400, "BadRequest");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field ""#
        ),
        "{msg}"
    );
    assert!(msg.contains(r#"unknown field "datta""#), "{msg}");
    assert!(msg.contains(r#"unknown field "metadata.bogus""#), "{msg}");
    let (code, body) = post(&s, JSON, unknown);
    assert_eq!(code, 201, "{body}");
    let created = parse(&body);
    assert!(created.get("datta").is_none(), "{body}");
    assert!(created["metadata"].get("bogus").is_none(), "{body}");
    assert_eq!(created["data"], json!({"a": "b"}));

    // More than 3 MiB.
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
        "data": {"x": "y".repeat(3 * 1024 * 1024 + 1)}});
    let (code, body) = post(&s, JSON, big.to_string().as_bytes());
    status(code, &body, 413, "RequestEntityTooLarge");

    // Unsupported content type.
    let (code, body) = post(&s, Some("text/plain"), b"hello");
    status(code, &body, 415, "UnsupportedMediaType");

    // None of it was stored; the server still serves and kept its data.
    for name in [
        "deep",
        "t1",
        "t2",
        "t3",
        "t4",
        "wrong-kind",
        "wrong-group",
        "big",
    ] {
        let (code, body) = s.curl("GET", &format!("{CMS}/{name}"), None, None);
        status(code, &body, 404, "NotFound");
    }
    still_there(&s, &seeded);
}

#[test]
fn semantic_errors_answer_upstream_statuses() {
    let s = Server::start();
    let seeded = seed(&s);

    // Invalid name: 422 with the field named.
    let (code, body) = post(
        &s,
        JSON,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
    );
    let st = status(code, &body, 422, "Invalid");
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.name", "{st}");
    assert_eq!(
        st["details"]["causes"][0]["reason"], "FieldValueInvalid",
        "{st}"
    );
    assert_eq!(st["details"]["name"], "Bad_Name");
    assert_eq!(st["details"]["kind"], "ConfigMap");
    assert!(st["message"]
        .as_str()
        .unwrap()
        .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));

    // Stale resourceVersion on PUT: 409 Conflict.
    let mut stale = seeded.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["data"] = json!({"a": "stale"});
    let (code, body) = s.curl(
        "PUT",
        &format!("{CMS}/keep"),
        JSON,
        Some(stale.to_string().as_bytes()),
    );
    let st = status(code, &body, 409, "Conflict");
    assert_eq!(
        st["message"],
        "Operation cannot be fulfilled on configmaps \"keep\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(st["details"], json!({"name": "keep", "kind": "configmaps"}));

    // Create of an existing name: 409 AlreadyExists.
    let (code, body) = post(
        &s,
        JSON,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"keep"},"data":{"a":"other"}}"#,
    );
    let st = status(code, &body, 409, "AlreadyExists");
    assert_eq!(st["message"], "configmaps \"keep\" already exists");
    assert_eq!(st["details"], json!({"name": "keep", "kind": "configmaps"}));

    // Get of a missing object: 404.
    let (code, body) = s.curl("GET", &format!("{CMS}/nope"), None, None);
    let st = status(code, &body, 404, "NotFound");
    assert_eq!(st["message"], "configmaps \"nope\" not found");
    assert_eq!(st["details"], json!({"name": "nope", "kind": "configmaps"}));

    // Create in a missing namespace: 404 naming the namespace.
    let (code, body) = s.curl(
        "POST",
        "/api/v1/namespaces/missing/configmaps",
        JSON,
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#),
    );
    let st = status(code, &body, 404, "NotFound");
    assert_eq!(st["message"], "namespaces \"missing\" not found");

    // An unknown bearer token: 401 with a Status body (no credentials at all is anonymous, 403).
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "10", "--cacert"])
        .arg(s.data_dir().join("pki").join("ca.crt"))
        .args(["-H", "Authorization: Bearer nobody"])
        .arg(format!("{}/api/v1/namespaces", s.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    let st = status(code.trim().parse().unwrap_or(0), body, 401, "Unauthorized");
    assert_eq!(st["message"], "Unauthorized");

    // Continue tokens: a real one pages on; garbage is 400; one whose snapshot is gone is 410.
    for i in 0..3 {
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("page-{i}")}});
        let (code, text) = post(&s, JSON, b.to_string().as_bytes());
        assert_eq!(code, 201, "{text}");
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let path = if token.is_empty() {
            format!("{CMS}?limit=1")
        } else {
            format!("{CMS}?limit=1&continue={token}")
        };
        let (code, text) = s.curl("GET", &path, None, None);
        assert_eq!(code, 200, "{text}");
        let page = parse(&text);
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    // default holds the root CA publisher's kube-root-ca.crt too, as on upstream.
    assert_eq!(
        names,
        ["keep", "kube-root-ca.crt", "page-0", "page-1", "page-2"]
    );
    for garbage in [
        "garbage",
        "%21%21%21",
        "e30",
        "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJhIn0",
    ] {
        let (code, body) = s.curl(
            "GET",
            &format!("{CMS}?limit=1&continue={garbage}"),
            None,
            None,
        );
        let st = status(code, &body, 400, "BadRequest");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid continue token: continue key is not valid"),
            "{st}"
        );
    }
    // Well-formed, but for a revision whose snapshot is not kept.
    let old = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"v":"meta.k8s.io/v1","rv":1,"start":"keep\u0000"}"#);
    let (code, body) = s.curl("GET", &format!("{CMS}?limit=1&continue={old}"), None, None);
    let st = status(code, &body, 410, "Expired");
    assert!(
        st["message"].as_str().unwrap().starts_with(
            "The provided continue parameter is too old to display a consistent list result."
        ),
        "{st}"
    );
    // Its inconsistent token reads on from the latest revision.
    let rest = st["metadata"]["continue"].as_str().expect("continue token");
    let (code, text) = s.curl(
        "GET",
        &format!("{CMS}?limit=10&continue={rest}"),
        None,
        None,
    );
    assert_eq!(code, 200, "{text}");
    let page = parse(&text);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["kube-root-ca.crt", "page-0", "page-1", "page-2"],
        "{text}"
    );

    still_there(&s, &seeded);
}
