//! Authorization with real kubectl (1.27 and 1.33) against the real binary: RBAC with the
//! bootstrap policy (a `view` user in one namespace, escalation prevention, aggregation),
//! anonymous requests, and upstream's 403 wording.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{eventually, kubectl_with, parse, stdout_ok, token_kubeconfig, Server};
use serde_json::json;

/// A static token file (upstream's CSV) in a directory of its own.
fn token_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens.csv");
    std::fs::write(&path, text).expect("token file");
    let p = path.display().to_string();
    (dir, p)
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "kubectl succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_view_user_in_one_namespace_reads_there_and_nothing_more() {
    let (_tokens, file) = token_file("jane-token,jane,1001,\"devs\"\n");
    let s = Server::start_with(&["--token-auth-file", &file]);
    s.kubectl_ok("1.33", &["create", "namespace", "team"]);
    s.kubectl_ok("1.33", &["create", "namespace", "other"]);
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "rolebinding",
            "jane-view",
            "--clusterrole=view",
            "--user=jane",
            "-n",
            "team",
        ],
    );
    s.kubectl_ok("1.33", &["create", "configmap", "c1", "-n", "team"]);
    let jane = token_kubeconfig(&s, "jane", "jane-token");
    for v in ["1.27", "1.33"] {
        let pods = stdout_ok(&kubectl_with(&s, v, &jane, &["get", "pods", "-n", "team"]));
        assert!(!pods.contains("Forbidden"), "{pods}");
        stdout_ok(&kubectl_with(
            &s,
            v,
            &jane,
            &["get", "configmap", "c1", "-n", "team"],
        ));
        let err = refused(&kubectl_with(
            &s,
            v,
            &jane,
            &["get", "secrets", "-n", "team"],
        ));
        assert!(
            err.contains(r#"Error from server (Forbidden): secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "team""#),
            "{err}"
        );
        let err = refused(&kubectl_with(
            &s,
            v,
            &jane,
            &["create", "configmap", "nope", "-n", "team"],
        ));
        assert!(
            err.contains(r#"configmaps is forbidden: User "jane" cannot create resource "configmaps" in API group "" in the namespace "team""#),
            "{err}"
        );
        let err = refused(&kubectl_with(
            &s,
            v,
            &jane,
            &["delete", "configmap", "c1", "-n", "team"],
        ));
        assert!(
            err.contains(r#"configmaps "c1" is forbidden: User "jane" cannot delete resource "configmaps" in API group "" in the namespace "team""#),
            "{err}"
        );
        let err = refused(&kubectl_with(&s, v, &jane, &["get", "pods", "-n", "other"]));
        assert!(err.contains(r#"in the namespace "other""#), "{err}");
        let err = refused(&kubectl_with(&s, v, &jane, &["get", "nodes"]));
        assert!(
            err.contains(r#"nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope"#),
            "{err}"
        );
        // Impersonation needs the impersonate verb.
        let err = refused(&kubectl_with(
            &s,
            v,
            &jane,
            &["get", "pods", "-n", "team", "--as=bob"],
        ));
        assert!(
            err.contains(r#"users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#),
            "{err}"
        );
        assert_eq!(
            stdout_ok(&kubectl_with(
                &s,
                v,
                &jane,
                &["auth", "can-i", "list", "pods", "-n", "team"]
            ))
            .trim(),
            "yes"
        );
        let no = kubectl_with(
            &s,
            v,
            &jane,
            &["auth", "can-i", "get", "secrets", "-n", "team"],
        );
        assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no");
    }
    // can-i --list: view's resources in the namespace, and no secrets or writes.
    let list = stdout_ok(&kubectl_with(
        &s,
        "1.33",
        &jane,
        &["auth", "can-i", "--list", "-n", "team"],
    ));
    let pods_line = list
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("no pods line:\n{list}"));
    assert!(pods_line.contains("[get list watch]"), "{pods_line}");
    assert!(!list.lines().any(|l| l.starts_with("secrets ")), "{list}");
    // Writes: only the self-reviews every user may create.
    for line in list.lines().skip(1) {
        let writes = ["create", "update", "patch", "delete"]
            .iter()
            .any(|w| line.contains(w));
        assert!(!writes || line.starts_with("selfsubject"), "{line}");
    }
    let other = stdout_ok(&kubectl_with(
        &s,
        "1.33",
        &jane,
        &["auth", "can-i", "--list", "-n", "other"],
    ));
    assert!(!other.lines().any(|l| l.starts_with("pods ")), "{other}");
    let who = parse(&stdout_ok(&kubectl_with(
        &s,
        "1.33",
        &jane,
        &["auth", "whoami", "-o", "json"],
    )));
    assert_eq!(who["status"]["userInfo"]["username"], "jane");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    // An admin may impersonate jane and is then held to her rules.
    let err = String::from_utf8_lossy(
        &s.kubectl("1.33", &["get", "secrets", "-n", "team", "--as=jane"])
            .stderr,
    )
    .into_owned();
    assert!(
        err.contains(r#"User "jane" cannot list resource "secrets""#),
        "{err}"
    );
}

#[test]
fn anonymous_requests_reach_only_the_public_endpoints() {
    let s = Server::start();
    let anon = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--cacert"])
            .arg(s.data_dir().join("pki/ca.crt"))
            .arg(format!("{}{path}", s.url))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse::<u16>().unwrap_or(0), body.to_string())
    };
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(anon(path).0, 200, "{path}");
    }
    let (code, body) = anon("/api");
    assert_eq!(code, 403, "{body}");
    let status = parse(&body);
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        r#"forbidden: User "system:anonymous" cannot get path "/api""#
    );
    let (code, body) = anon("/api/v1/namespaces/default/pods");
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        parse(&body)["message"],
        r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    // A token the server does not know is refused outright, not treated as anonymous.
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.data_dir().join("pki/ca.crt"))
        .args(["-H", "Authorization: Bearer nope"])
        .arg(format!("{}/api", s.url))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
}

#[test]
fn roles_grant_only_what_their_writer_holds_and_aggregate() {
    let (_tokens, file) = token_file("lead-token,lead,1002\n");
    let s = Server::start_with(&["--token-auth-file", &file]);
    s.kubectl_ok("1.33", &["create", "namespace", "team"]);
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "rolebinding",
            "lead-admin",
            "--clusterrole=admin",
            "--user=lead",
            "-n",
            "team",
        ],
    );
    let lead = token_kubeconfig(&s, "lead", "lead-token");
    // What the namespace admin holds, it may grant.
    stdout_ok(&kubectl_with(
        &s,
        "1.33",
        &lead,
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,secrets",
            "-n",
            "team",
        ],
    ));
    stdout_ok(&kubectl_with(
        &s,
        "1.33",
        &lead,
        &[
            "create",
            "rolebinding",
            "r",
            "--role=reader",
            "--user=dev",
            "-n",
            "team",
        ],
    ));
    // Not what it lacks: nodes, or cluster-admin.
    let err = refused(&kubectl_with(
        &s,
        "1.33",
        &lead,
        &[
            "create",
            "role",
            "nodes",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "team",
        ],
    ));
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "nodes" is forbidden: user "lead" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#)
            && err.contains(r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}"#),
        "{err}"
    );
    let err = refused(&kubectl_with(
        &s,
        "1.33",
        &lead,
        &[
            "create",
            "rolebinding",
            "up",
            "--clusterrole=cluster-admin",
            "--user=lead",
            "-n",
            "team",
        ],
    ));
    assert!(
        err.contains(r#"rolebindings.rbac.authorization.k8s.io "up" is forbidden: user "lead""#),
        "{err}"
    );

    // Aggregation: a labelled ClusterRole's rules join `view` (and so `edit` and `admin`).
    let started = Instant::now();
    s.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}]}),
    );
    let has_widgets = |role: &str| {
        s.api_get(&format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}"
        ))["rules"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["resources"] == json!(["widgets"])))
    };
    eventually("view aggregates widgets", Duration::from_secs(10), || {
        has_widgets("view").then_some(())
    });
    eprintln!("view aggregated in {:?}", started.elapsed());
    // view feeds edit, edit feeds admin.
    eventually("admin aggregates widgets", Duration::from_secs(10), || {
        has_widgets("admin").then_some(())
    });
    eprintln!("admin aggregated in {:?}", started.elapsed());
    assert!(has_widgets("edit"));
    // The namespace admin now may read widgets.
    let (code, body) = s.send_json(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "lead", "resourceAttributes": {"namespace": "team", "verb": "list",
                "group": "example.com", "resource": "widgets"}}}),
    );
    assert_eq!(code, 201, "{body}");
    let status = parse(&body)["status"].clone();
    assert_eq!(status["allowed"], true, "{status}");
    assert_eq!(
        status["reason"],
        r#"RBAC: allowed by RoleBinding "lead-admin/team" of ClusterRole "admin" to User "lead""#
    );
    // The bootstrap policy is in place, as upstream's.
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:node",
        "system:kube-scheduler",
    ] {
        assert!(
            s.get_opt(&format!(
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}"
            ))
            .is_some(),
            "{role}"
        );
    }
}
