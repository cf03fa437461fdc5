mod common;

use common::Server;

#[test]
fn starts_serves_health_and_refuses_anonymous() {
    let s = Server::start();
    assert_eq!(s.curl_status(&format!("{}/healthz", s.url), false), 200);
    assert_eq!(s.curl_status(&format!("{}/version", s.url), false), 200);
    assert_eq!(
        s.curl_status(&format!("{}/api/v1/namespaces", s.url), false),
        401
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
