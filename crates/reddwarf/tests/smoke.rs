//! Smoke tests: the server starts, serves its health endpoints, refuses anonymous callers
//! (403 beyond the public endpoints, as upstream's anonymous user) and accepts bearer tokens
//! from a token auth file.

mod common;

use common::Server;

#[test]
fn starts_serves_health_and_refuses_anonymous() {
    let s = Server::start();
    assert_eq!(s.curl_status(&format!("{}/healthz", s.url), false), 200);
    assert_eq!(s.curl_status(&format!("{}/version", s.url), false), 200);
    assert_eq!(
        s.curl_status(&format!("{}/api/v1/namespaces", s.url), false),
        403
    );
    assert_eq!(
        s.curl_status(&format!("{}/api/v1/namespaces", s.url), true),
        200
    );
    let out = s.kubectl_ok("1.33", &["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(&format!("namespace/{ns}")), "{out}");
    }
}

#[test]
fn bearer_tokens_from_a_token_auth_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.csv");
    std::fs::write(&file, "# static tokens\nsecret-1,alice,1001,\"dev,ops\"\n").unwrap();
    let s = Server::start_with(&["--token-auth-file", file.to_str().unwrap()]);
    let curl = |token: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(s.data_dir().join("pki/ca.crt"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("{}/api/v1/namespaces/default/configmaps", s.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // Authenticated, but RBAC grants alice nothing yet.
    assert_eq!(curl("secret-1"), "403");
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "rolebinding",
            "alice",
            "--clusterrole=view",
            "--user=alice",
            "-n",
            "default",
        ],
    );
    assert_eq!(curl("secret-1"), "200");
    assert_eq!(curl("wrong"), "401");
}
