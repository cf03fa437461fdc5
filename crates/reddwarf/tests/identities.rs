//! Identities beyond the admin: service-account tokens (`kubectl create token`, pod-bound
//! tokens, legacy token Secrets, OIDC discovery checked by a generic JWT library) and node
//! certificates held to the Node authorizer and NodeRestriction.

mod common;

use std::process::Command;

use common::{kubectl_with, parse, stdout_ok, token_kubeconfig, Server};
use serde_json::json;

/// GET `path` with a bearer token: (status, body).
fn get_with_token(s: &Server, token: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(s.data_dir().join("pki/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{}{path}", s.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn service_account_tokens_carry_their_roles_and_die_with_their_pod() {
    let s = Server::start();
    s.kubectl_ok("1.33", &["create", "namespace", "ci"]);
    s.kubectl_ok("1.33", &["create", "serviceaccount", "bot", "-n", "ci"]);
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get,list",
            "--resource=configmaps",
            "-n",
            "ci",
        ],
    );
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "rolebinding",
            "bot",
            "--role=cm-reader",
            "--serviceaccount=ci:bot",
            "-n",
            "ci",
        ],
    );
    for v in ["1.27", "1.33"] {
        let token = s.kubectl_ok(v, &["create", "token", "bot", "-n", "ci"]);
        let token = token.trim();
        assert_eq!(token.split('.').count(), 3, "{token}");
        let k = token_kubeconfig(&s, &format!("bot-{v}"), token);
        stdout_ok(&kubectl_with(&s, v, &k, &["get", "configmaps", "-n", "ci"]));
        let out = kubectl_with(&s, v, &k, &["get", "secrets", "-n", "ci"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(r#"secrets is forbidden: User "system:serviceaccount:ci:bot" cannot list resource "secrets" in API group "" in the namespace "ci""#),
            "{err}"
        );
    }
    // (kubectl 1.27 asks for SelfSubjectReview in its beta versions, which 1.33 no longer serves.)
    let token = s.kubectl_ok("1.33", &["create", "token", "bot", "-n", "ci"]);
    let k = token_kubeconfig(&s, "bot", token.trim());
    let who = parse(&stdout_ok(&kubectl_with(
        &s,
        "1.33",
        &k,
        &["auth", "whoami", "-o", "json"],
    )));
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:ci:bot"
    );

    // Upstream's validation of the request.
    let (code, body) = s.send_json(
        "POST",
        "/api/v1/namespaces/ci/serviceaccounts/bot/token",
        &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 60}}),
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("may not specify a duration less than 10 minutes"),
        "{body}"
    );
    let (code, _) = s.send_json(
        "POST",
        "/api/v1/namespaces/ci/serviceaccounts/ghost/token",
        &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    );
    assert_eq!(code, 404);

    // A token bound to a pod works while the pod exists.
    s.create(
        "/api/v1/namespaces/ci/pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"serviceAccountName": "bot", "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    let token = s.kubectl_ok(
        "1.33",
        &[
            "create",
            "token",
            "bot",
            "-n",
            "ci",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ],
    );
    let token = token.trim().to_string();
    assert_eq!(
        get_with_token(&s, &token, "/api/v1/namespaces/ci/configmaps").0,
        200
    );
    // TokenReview names the account and the audiences.
    let (code, body) = s.send_json(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}}),
    );
    assert_eq!(code, 201, "{body}");
    let review = parse(&body)["status"].clone();
    assert_eq!(review["authenticated"], true, "{review}");
    assert_eq!(review["user"]["username"], "system:serviceaccount:ci:bot");
    assert_eq!(
        review["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    // Another audience: not good for the API.
    let other = s.kubectl_ok(
        "1.33",
        &["create", "token", "bot", "-n", "ci", "--audience=vault"],
    );
    assert_eq!(
        get_with_token(&s, other.trim(), "/api/v1/namespaces/ci/configmaps").0,
        401
    );
    s.kubectl_ok(
        "1.33",
        &[
            "delete",
            "pod",
            "p",
            "-n",
            "ci",
            "--grace-period=0",
            "--force",
        ],
    );
    assert_eq!(
        get_with_token(&s, &token, "/api/v1/namespaces/ci/configmaps").0,
        401
    );

    // A legacy token Secret is filled in and authenticates until it is deleted.
    s.create(
        "/api/v1/namespaces/ci/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "bot-token", "annotations": {"kubernetes.io/service-account.name": "bot"}}}),
    );
    let secret = s.api_get("/api/v1/namespaces/ci/secrets/bot-token");
    use base64::Engine;
    let legacy = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["token"].as_str().expect("token filled"))
        .unwrap();
    let legacy = String::from_utf8(legacy).unwrap();
    assert!(secret["data"]["ca.crt"].is_string());
    assert_eq!(
        get_with_token(&s, &legacy, "/api/v1/namespaces/ci/configmaps").0,
        200
    );
    s.kubectl_ok("1.33", &["delete", "secret", "bot-token", "-n", "ci"]);
    assert_eq!(
        get_with_token(&s, &legacy, "/api/v1/namespaces/ci/configmaps").0,
        401
    );

    // Tokens die with their service account.
    let token = s.kubectl_ok("1.33", &["create", "token", "bot", "-n", "ci"]);
    assert_eq!(
        get_with_token(&s, token.trim(), "/api/v1/namespaces/ci/configmaps").0,
        200
    );
    s.kubectl_ok("1.33", &["delete", "serviceaccount", "bot", "-n", "ci"]);
    assert_eq!(
        get_with_token(&s, token.trim(), "/api/v1/namespaces/ci/configmaps").0,
        401
    );
}

#[test]
fn oidc_discovery_lets_a_generic_jwt_library_verify_tokens() {
    let python = std::env::var("REDDWARF_PYTHON")
        .expect("REDDWARF_PYTHON names a python with PyJWT; ./test.sh sets it up");
    let s = Server::start();
    let token = s.kubectl_ok("1.33", &["create", "token", "default", "-n", "default"]);
    // Service accounts may read the discovery documents (system:service-account-issuer-discovery).
    let (code, config) = get_with_token(&s, token.trim(), "/.well-known/openid-configuration");
    assert_eq!(code, 200, "{config}");
    let config = parse(&config);
    assert_eq!(
        config["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert!(config["jwks_uri"]
        .as_str()
        .unwrap()
        .ends_with("/openid/v1/jwks"));
    let (code, jwks) = get_with_token(&s, token.trim(), "/openid/v1/jwks");
    assert_eq!(code, 200, "{jwks}");
    let script = r#"
import json, sys, jwt
token, jwks, issuer = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
header = jwt.get_unverified_header(token)
key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"],
                    audience="https://kubernetes.default.svc.cluster.local", issuer=issuer)
print(claims["sub"])
tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
try:
    jwt.decode(tampered, jwt.PyJWK(key).key, algorithms=["ES256"], audience=claims["aud"])
    print("tampered token accepted")
except jwt.InvalidSignatureError:
    print("tampered token refused")
"#;
    let out = Command::new(python)
        .args(["-c", script, token.trim(), &jwks])
        .arg(config["issuer"].as_str().unwrap())
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "system:serviceaccount:default:default",
            "tampered token refused"
        ]
    );
}

/// A client certificate for node `name`, issued through a CSR the admin approves.
fn node_certificate(s: &Server, name: &str) -> (String, String) {
    let dir = s.data_dir();
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", &format!("/O=system:nodes/CN=system:node:{name}")])
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    use base64::Engine;
    let request = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&csr).unwrap());
    s.create(
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": format!("node-{name}")},
            "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"]}}),
    );
    s.kubectl_ok("1.33", &["certificate", "approve", &format!("node-{name}")]);
    let cert = common::eventually(
        "the node certificate",
        std::time::Duration::from_secs(20),
        || {
            let csr = s.api_get(&format!(
                "/apis/certificates.k8s.io/v1/certificatesigningrequests/node-{name}"
            ));
            csr["status"]["certificate"].as_str().map(String::from)
        },
    );
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cert)
        .unwrap();
    let cert = dir.join(format!("{name}.crt"));
    std::fs::write(&cert, pem).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn a_node_reads_only_what_its_pods_use_and_writes_only_its_own() {
    let s = Server::start();
    for n in ["n1", "n2"] {
        s.create(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}),
        );
    }
    for (secret, node) in [("s1", "n1"), ("s2", "n2")] {
        s.kubectl_ok(
            "1.33",
            &["create", "secret", "generic", secret, "--from-literal=k=v"],
        );
        s.create(
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p-{node}")},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                         "volumes": [{"name": "s", "secret": {"secretName": secret}}]}}),
        );
    }
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "secret",
            "generic",
            "unused",
            "--from-literal=k=v",
        ],
    );
    let (cert, key) = node_certificate(&s, "n1");
    let as_node = |method: &str, path: &str, ct: Option<&str>, body: Option<serde_json::Value>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "-X", method, "--cacert"])
            .arg(s.data_dir().join("pki/ca.crt"))
            .args(["--cert", &cert, "--key", &key]);
        if let Some(ct) = ct {
            cmd.args(["-H", &format!("content-type: {ct}")]);
        }
        if let Some(b) = body {
            cmd.args(["--data-binary", &b.to_string()]);
        }
        let out = cmd.arg(format!("{}{path}", s.url)).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse::<u16>().unwrap_or(0), body.to_string())
    };
    // Secrets: only the one its pod mounts.
    assert_eq!(
        as_node("GET", "/api/v1/namespaces/default/secrets/s1", None, None).0,
        200
    );
    for other in ["s2", "unused"] {
        let (code, body) = as_node(
            "GET",
            &format!("/api/v1/namespaces/default/secrets/{other}"),
            None,
            None,
        );
        assert_eq!(code, 403, "{body}");
        assert_eq!(
            parse(&body)["message"],
            format!(
                r#"secrets "{other}" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#
            )
        );
    }
    assert_eq!(
        as_node("GET", "/api/v1/namespaces/default/secrets", None, None).0,
        403
    );
    // Its own Node, not another's.
    let label = json!({"metadata": {"labels": {"x": "y"}}});
    let merge = Some("application/merge-patch+json");
    assert_eq!(
        as_node("PATCH", "/api/v1/nodes/n1", merge, Some(label.clone())).0,
        200
    );
    let (code, body) = as_node("PATCH", "/api/v1/nodes/n2", merge, Some(label));
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"node \"n1\" is not allowed to modify node \"n2\""#),
        "{body}"
    );
    // Its own pods' status, not another node's.
    let status = json!({"status": {"message": "hello"}});
    let (code, body) = as_node(
        "PATCH",
        "/api/v1/namespaces/default/pods/p-n1/status",
        merge,
        Some(status.clone()),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = as_node(
        "PATCH",
        "/api/v1/namespaces/default/pods/p-n2/status",
        merge,
        Some(status),
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("can only update pod status for pods with spec.nodeName set to itself"),
        "{body}"
    );
    // Nor anything the node role lacks.
    assert_eq!(as_node("GET", "/api/v1/namespaces", None, None).0, 403);
    // Its lease only.
    let lease = |name: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": {"holderIdentity": name}})
    };
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    assert_eq!(
        as_node("POST", leases, Some("application/json"), Some(lease("n1"))).0,
        201
    );
    assert_eq!(
        as_node("POST", leases, Some("application/json"), Some(lease("n2"))).0,
        403
    );
}

#[test]
fn the_admin_certificate_rotates_and_the_old_one_stops_working() {
    let s = Server::start();
    let pki = s.data_dir().join("pki");
    let old_cert = s.data_dir().join("old-admin.crt");
    let old_key = s.data_dir().join("old-admin.key");
    std::fs::copy(pki.join("admin.crt"), &old_cert).unwrap();
    std::fs::copy(pki.join("admin.key"), &old_key).unwrap();
    let with = |cert: &std::path::Path, key: &std::path::Path| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg(format!("{}/api/v1/namespaces", s.url))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(with(&old_cert, &old_key), "200");
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args(["certificate", "rotate", "admin", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .expect("reddwarf certificate rotate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running server refuses the old certificate from the next connection on; the
    // rewritten kubeconfig works (same CA, same address).
    assert_eq!(with(&old_cert, &old_key), "401");
    assert_eq!(with(&pki.join("admin.crt"), &pki.join("admin.key")), "200");
    s.kubectl_ok("1.33", &["get", "namespaces"]);
    // A serial given by hand works too; unknown input is refused with a message.
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args(["certificate", "revoke", "not-a-serial!", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .expect("reddwarf certificate revoke");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("neither a readable certificate file nor a hex serial number"));
}

#[test]
fn bootstrap_tokens_only_ask_for_certificates_until_they_expire() {
    let s = Server::start();
    let secret = |name: &str, id: &str, expiration: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": name, "namespace": "kube-system"},
            "stringData": {"token-id": id, "token-secret": "0123456789abcdef",
                "usage-bootstrap-authentication": "true", "expiration": expiration,
                "auth-extra-groups": "system:bootstrappers:edge"}})
    };
    s.create(
        "/api/v1/namespaces/kube-system/secrets",
        secret("bootstrap-token-abc123", "abc123", "2099-01-01T00:00:00Z"),
    );
    s.create(
        "/api/v1/namespaces/kube-system/secrets",
        secret("bootstrap-token-old111", "old111", "2020-01-01T00:00:00Z"),
    );
    let (code, body) = s.send_json(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": "abc123.0123456789abcdef"}}),
    );
    assert_eq!(code, 201, "{body}");
    let review = parse(&body)["status"].clone();
    assert_eq!(
        review["user"]["username"], "system:bootstrap:abc123",
        "{review}"
    );
    assert_eq!(
        review["user"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:edge",
            "system:authenticated"
        ])
    );
    // It may ask for a node certificate, and read nothing else.
    let (code, body) = get_with_token(
        &s,
        "abc123.0123456789abcdef",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = get_with_token(
        &s,
        "abc123.0123456789abcdef",
        "/api/v1/namespaces/kube-system/secrets",
    );
    assert_eq!(code, 403, "{body}");
    // Expired or wrong: not a credential at all.
    assert_eq!(get_with_token(&s, "old111.0123456789abcdef", "/api").0, 401);
    assert_eq!(get_with_token(&s, "abc123.0123456789abcdeX", "/api").0, 401);
}
