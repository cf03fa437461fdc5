//! Real agents joining a real server: token bootstrap, registration, heartbeats, the tunnel.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, Agent, Server};
use serde_json::Value;

fn node(s: &Server, name: &str) -> Value {
    s.api_get(&format!("/api/v1/nodes/{name}"))
}

fn condition(n: &Value, t: &str) -> String {
    n["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == t)
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn agents_join_with_the_token_register_and_heartbeat() {
    let s = Server::start();
    let a = Agent::start(
        &s,
        "edge-a",
        &["--node-labels", "tier=edge,zone=lab", "--max-pods", "42"],
    );
    let _b = Agent::start(&s, "edge-b", &["--node-taints", "dedicated=gpu:NoSchedule"]);

    let n = node(&s, "edge-a");
    assert_eq!(n["metadata"]["labels"]["tier"], "edge", "{n}");
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "edge-a");
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(n["status"]["capacity"]["pods"], "42");
    assert_eq!(n["status"]["allocatable"]["pods"], "42");
    let cpus = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    assert_eq!(n["status"]["capacity"]["cpu"], cpus.as_str());
    assert!(n["status"]["capacity"]["memory"]
        .as_str()
        .unwrap()
        .ends_with("Ki"));
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(condition(&n, t), "False", "{t}: {n}");
    }
    let info = &n["status"]["nodeInfo"];
    assert_eq!(info["operatingSystem"], "linux");
    assert!(info["kernelVersion"].as_str().unwrap().len() > 1, "{info}");
    assert!(info["kubeletVersion"]
        .as_str()
        .unwrap()
        .starts_with("v1.33."));
    let b = node(&s, "edge-b");
    assert_eq!(b["spec"]["taints"][0]["key"], "dedicated", "{b}");
    assert_eq!(b["spec"]["taints"][0]["effect"], "NoSchedule");

    // Node IPAM gives each node its own /24 of the cluster CIDR.
    let cidrs = eventually("pod CIDRs", Duration::from_secs(10), || {
        let a = node(&s, "edge-a")["spec"]["podCIDR"].as_str()?.to_string();
        let b = node(&s, "edge-b")["spec"]["podCIDR"].as_str()?.to_string();
        Some((a, b))
    });
    assert_ne!(cidrs.0, cidrs.1);
    for c in [&cidrs.0, &cidrs.1] {
        assert!(c.starts_with("10.42.") && c.ends_with(".0/24"), "{c}");
    }
    assert_eq!(node(&s, "edge-a")["spec"]["podCIDRs"][0], cidrs.0.as_str());

    // kubectl sees two Ready nodes.
    let out = s.kubectl_ok("1.33", &["get", "nodes", "--no-headers"]);
    assert_eq!(out.matches(" Ready ").count(), 2, "{out}");

    // Each node's certificate came from an approved, issued CSR requested with the token.
    let csrs = s.kubectl_ok("1.33", &["get", "csr", "--no-headers"]);
    assert_eq!(csrs.matches("Approved,Issued").count(), 2, "{csrs}");
    assert!(csrs.contains("system:bootstrap:node-token"), "{csrs}");

    // The Lease is renewed every 10 s.
    let renew = |s: &Server| {
        s.api_get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-a")["spec"]
            ["renewTime"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let first = renew(&s);
    assert!(!first.is_empty());
    eventually("the lease to be renewed", Duration::from_secs(25), || {
        (renew(&s) != first).then_some(())
    });
    let lease = s.api_get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-a");
    assert_eq!(lease["spec"]["holderIdentity"], "edge-a");
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");

    // The node API answers through the tunnel only.
    let healthz = s.kubectl_ok(
        "1.33",
        &["get", "--raw", "/api/v1/nodes/edge-a/proxy/healthz"],
    );
    assert_eq!(healthz.trim(), "ok");
    let configz = s.kubectl_ok(
        "1.33",
        &["get", "--raw", "/api/v1/nodes/edge-b/proxy/configz"],
    );
    assert!(configz.contains("KubeletConfiguration"), "{configz}");
    drop(a);
}

#[test]
fn the_token_only_asks_for_certificates_and_a_wrong_one_is_refused() {
    let s = Server::start();
    let token = std::fs::read_to_string(s.data_dir().join("node-token")).unwrap();
    let token = token.trim();
    // Holders of the token may create CSRs but not read pods.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.data_dir().join("pki/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{}/api/v1/pods", s.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    // A token whose CA hash is not this server's CA is refused before anything is sent.
    let bad = format!("K10{}::server:0123456789abcdef0123", "0".repeat(64));
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args([
            "agent",
            "--server",
            &s.url,
            "--node-name",
            "x",
            "--token",
            &bad,
        ])
        .arg("--data-dir")
        .arg(s.data_dir().join("agent-x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the token"), "{err}");
    // No token and no certificate: told what to do.
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args(["agent", "--server", &s.url, "--node-name", "y"])
        .arg("--data-dir")
        .arg(s.data_dir().join("agent-y"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node-token"), "{err}");
    let nodes = s.kubectl_ok("1.33", &["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.trim(), "", "{nodes}");
    // The tunnel endpoint: only a node's certificate may open one, and only as a WebSocket.
    let (code, body) = s.curl("GET", "/reddwarf/v1/tunnel", None, None);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("only a node's client certificate"), "{body}");
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(s.data_dir().join("pki/ca.crt"))
        .arg(format!("{}/reddwarf/v1/tunnel", s.url))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.ends_with("403"), "anonymous callers are refused: {out}");
}

#[test]
fn a_killed_agent_goes_unknown_and_a_restarted_one_is_ready_again_without_the_token() {
    let s = Server::start_with(&["--node-monitor-grace-period", "12s"]);
    let mut a = Agent::start(&s, "n1", &[]);
    a.kill9();
    // The tunnel went with the process.
    eventually("the tunnel to drop", Duration::from_secs(10), || {
        let out = s.kubectl("1.33", &["get", "--raw", "/api/v1/nodes/n1/proxy/healthz"]);
        String::from_utf8_lossy(&out.stderr)
            .contains("no agent is connected")
            .then_some(())
    });
    eventually("node n1 Ready=Unknown", Duration::from_secs(40), || {
        (condition(&node(&s, "n1"), "Ready") == "Unknown").then_some(())
    });
    // The certificate in its data dir is enough to come back.
    a.spawn(None);
    a.wait_ready(&s);
    let healthz = s.kubectl_ok("1.33", &["get", "--raw", "/api/v1/nodes/n1/proxy/healthz"]);
    assert_eq!(healthz.trim(), "ok");
    let csrs = s.kubectl_ok("1.33", &["get", "csr", "--no-headers"]);
    assert_eq!(csrs.lines().count(), 1, "{csrs}");
    assert!(a.terminate().success());

    // A revoked certificate authenticates nothing; the agent joins again with the token.
    // Copies of the revoked pair: the agent replaces its files when it joins again.
    let cert = s.data_dir().join("revoked-node.crt");
    let key = s.data_dir().join("revoked-node.key");
    std::fs::copy(a.data_dir.join("pki/node.crt"), &cert).unwrap();
    std::fs::copy(a.data_dir.join("pki/node.key"), &key).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args(["certificate", "revoke"])
        .arg(&cert)
        .arg("--data-dir")
        .arg(s.data_dir())
        .output()
        .expect("reddwarf certificate revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let with_cert = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(s.data_dir().join("pki/ca.crt"))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg(format!("{}{path}", s.url))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(with_cert("/api/v1/nodes/n1"), "401");
    let token = std::fs::read_to_string(s.data_dir().join("node-token")).unwrap();
    a.spawn(Some(token.trim()));
    eventually("a second certificate", Duration::from_secs(30), || {
        let csrs = s.kubectl_ok("1.33", &["get", "csr", "--no-headers"]);
        (csrs.lines().count() == 2).then_some(())
    });
    // Running again on its new certificate: a tunnel up after it noticed the refusal.
    let back = |log: String| {
        log.split_once("the server refuses the node certificate")
            .is_some_and(|(_, after)| after.contains("tunnel to"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !back(a.log()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent is not back with a new certificate:\n{}\nserver:\n{}",
            a.log(),
            common::tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    a.wait_ready(&s);
    assert!(a.log().contains("the server refuses the node certificate"));
    assert_eq!(with_cert("/api/v1/nodes/n1"), "401");
    let status = a.terminate();
    assert!(status.success(), "{status}:\n{}", a.log());
}
