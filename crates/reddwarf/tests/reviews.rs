//! The review APIs with real kubectl: `auth whoami` (SelfSubjectReview), `auth can-i`
//! (SelfSubjectAccessReview, SelfSubjectRulesReview), TokenReview against the server's token
//! sources, and SubjectAccessReview's upstream validation.

mod common;

use common::{parse, Server};
use serde_json::json;

#[test]
fn kubectl_auth_whoami_and_can_i() {
    let s = Server::start();
    let who = s.kubectl_ok("1.33", &["auth", "whoami", "-o", "json"]);
    let who = parse(&who);
    assert_eq!(who["kind"], "SelfSubjectReview");
    assert_eq!(who["status"]["userInfo"]["username"], "admin");
    assert!(who["status"]["userInfo"]["groups"]
        .as_array()
        .unwrap()
        .contains(&json!("system:masters")));
    for v in ["1.33", "1.29"] {
        assert_eq!(
            s.kubectl_ok(v, &["auth", "can-i", "create", "pods"]).trim(),
            "yes"
        );
    }
    let list = s.kubectl_ok("1.33", &["auth", "can-i", "--list"]);
    assert!(list.contains("*.*"), "{list}");
    let resources = s.resource_names("/apis/authorization.k8s.io/v1");
    assert_eq!(
        resources,
        [
            "localsubjectaccessreviews",
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
            "subjectaccessreviews"
        ]
    );
    assert_eq!(
        s.resource_names("/apis/authentication.k8s.io/v1"),
        ["selfsubjectreviews", "tokenreviews"]
    );
}

#[test]
fn token_and_access_reviews_answer_and_validate() {
    let s = Server::start();
    // The node token is one of the server's token sources: it names the bootstrap user.
    let token = std::fs::read_to_string(s.data_dir().join("node-token")).expect("node token");
    let review = |token: &str| {
        let (code, body) = s.send_json(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token}}),
        );
        assert_eq!(code, 201, "{body}");
        parse(&body)["status"].clone()
    };
    let ok = review(token.trim());
    assert_eq!(ok["authenticated"], true, "{ok}");
    assert_eq!(ok["user"]["username"], "system:bootstrap:node-token");
    let bad = review("not-a-token");
    assert!(bad.get("authenticated").is_none(), "{bad}");
    assert!(bad["error"]
        .as_str()
        .unwrap()
        .contains("invalid bearer token"));

    // The bootstrap user may ask for certificates, and nothing else.
    let sar = |spec: serde_json::Value| {
        s.send_json(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}),
        )
    };
    let ask = |verb: &str, group: &str, resource: &str| {
        let (code, body) = sar(json!({"user": "system:bootstrap:node-token",
            "groups": ["system:bootstrappers", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource}}));
        assert_eq!(code, 201, "{body}");
        parse(&body)["status"]["allowed"].clone()
    };
    assert_eq!(
        ask(
            "create",
            "certificates.k8s.io",
            "certificatesigningrequests"
        ),
        true
    );
    assert_eq!(ask("list", "", "secrets"), false);

    // Upstream's validation.
    let (code, body) = sar(json!({"resourceAttributes": {"verb": "get", "resource": "pods"}}));
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(
            "spec.user: Invalid value: \\\"\\\": at least one of user or group must be specified"
        ),
        "{body}"
    );
    let (code, body) = sar(json!({"user": "bob"}));
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(
            "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        ),
        "{body}"
    );
    let (code, body) = s.send_json(
        "POST",
        "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews",
        &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "spec": {"user": "bob", "resourceAttributes": {"namespace": "other", "verb": "get", "resource": "pods"}}}),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("must match metadata.namespace"), "{body}");
    // Reviews are created, never stored: there is nothing to get or list.
    let (code, _) = s.curl(
        "GET",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        None,
        None,
    );
    assert_eq!(code, 405);
}

#[test]
fn impersonation_acts_as_another_user_when_allowed() {
    let s = Server::start();
    let who = parse(&s.kubectl_ok(
        "1.33",
        &[
            "auth",
            "whoami",
            "--as=bob",
            "--as-group=devs",
            "-o",
            "json",
        ],
    ));
    assert_eq!(who["status"]["userInfo"]["username"], "bob");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    let sa = parse(&s.kubectl_ok(
        "1.33",
        &[
            "auth",
            "whoami",
            "--as=system:serviceaccount:ci:builder",
            "-o",
            "json",
        ],
    ));
    assert_eq!(
        sa["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated"
        ])
    );
    // Groups without a user are refused; a node-token holder may not impersonate anyone.
    let (code, body) = {
        let out = s
            .curl_cmd()
            .args(["-w", "\n%{http_code}", "-H", "Impersonate-Group: devs"])
            .arg(format!("{}/api/v1/namespaces", s.url))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().to_string(), body.to_string())
    };
    assert_eq!(code, "400", "{body}");
    let token = std::fs::read_to_string(s.data_dir().join("node-token")).expect("node token");
    let out = std::process::Command::new("curl")
        .arg("-s")
        .arg("--cacert")
        .arg(s.data_dir().join("pki/ca.crt"))
        .args(["-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .args(["-H", "Impersonate-User: bob"])
        .arg(format!("{}/api/v1/namespaces", s.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    assert_eq!(code.trim(), "403", "{body}");
    assert!(
        body.contains(r#"users \"bob\" is forbidden: User \"system:bootstrap:node-token\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"#),
        "{body}"
    );
}
