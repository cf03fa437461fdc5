//! Service cluster IP and node port allocation, as upstream's allocators behave.

mod common;

use common::Server;

#[test]
fn allocates_unique_ips_and_node_ports_and_releases_them() {
    let s = Server::start();
    // The kubernetes Service holds the first address of the default 10.43.0.0/16.
    assert_eq!(
        s.jsonpath("1.33", "svc/kubernetes", "{.spec.clusterIP}"),
        "10.43.0.1"
    );

    s.kubectl_ok(
        "1.33",
        &["create", "service", "clusterip", "a", "--tcp=80:8080"],
    );
    s.kubectl_ok(
        "1.33",
        &["create", "service", "nodeport", "b", "--tcp=80:8080"],
    );
    let a_ip = s.jsonpath("1.33", "svc/a", "{.spec.clusterIP}");
    let b_ip = s.jsonpath("1.33", "svc/b", "{.spec.clusterIP}");
    assert!(
        a_ip.starts_with("10.43.") && b_ip.starts_with("10.43.") && a_ip != b_ip,
        "{a_ip} {b_ip}"
    );
    assert_eq!(s.jsonpath("1.33", "svc/a", "{.spec.clusterIPs[0]}"), a_ip);
    let port: u16 = s
        .jsonpath("1.33", "svc/b", "{.spec.ports[0].nodePort}")
        .parse()
        .expect("node port");
    assert!((30000..=32767).contains(&port));

    // Requested values: taken, out of range.
    let taken = s.kubectl(
        "1.33",
        &[
            "create",
            "service",
            "clusterip",
            "c",
            "--tcp=80",
            &format!("--clusterip={a_ip}"),
        ],
    );
    assert!(!taken.status.success());
    let err = String::from_utf8_lossy(&taken.stderr);
    assert!(err.contains(&format!("spec.clusterIPs: Invalid value: \"{a_ip}\": failed to allocate IP {a_ip}: provided IP is already allocated")), "{err}");
    let outside = s.kubectl(
        "1.33",
        &[
            "create",
            "service",
            "clusterip",
            "d",
            "--tcp=80",
            "--clusterip=10.99.0.1",
        ],
    );
    assert!(
        String::from_utf8_lossy(&outside.stderr).contains("provided IP is not in the valid range")
    );
    let dup_port = s.kubectl(
        "1.33",
        &[
            "create",
            "service",
            "nodeport",
            "e",
            "--tcp=81",
            &format!("--node-port={port}"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&dup_port.stderr).contains(&format!(
            "spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        )),
        "{}",
        String::from_utf8_lossy(&dup_port.stderr)
    );

    // An update that leaves allocated values out keeps them.
    let json = s.kubectl_ok("1.33", &["get", "svc", "a", "-o", "json"]);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["spec"].as_object_mut().unwrap().remove("clusterIP");
    v["spec"].as_object_mut().unwrap().remove("clusterIPs");
    let file = s.data_dir().join("a.json");
    std::fs::write(&file, v.to_string()).unwrap();
    s.kubectl_ok("1.33", &["replace", "-f", file.to_str().unwrap()]);
    assert_eq!(s.jsonpath("1.33", "svc/a", "{.spec.clusterIP}"), a_ip);

    // Deleting frees both the IP and the node port, also when a namespace goes.
    s.kubectl_ok("1.33", &["delete", "svc", "a", "b"]);
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "service",
            "clusterip",
            "c",
            "--tcp=80",
            &format!("--clusterip={a_ip}"),
        ],
    );
    s.kubectl_ok("1.33", &["create", "namespace", "tmp"]);
    s.kubectl_ok(
        "1.33",
        &[
            "-n",
            "tmp",
            "create",
            "service",
            "nodeport",
            "x",
            "--tcp=80",
            &format!("--node-port={port}"),
        ],
    );
    s.kubectl_ok("1.33", &["delete", "namespace", "tmp"]);
    common::eventually(
        "namespace tmp gone",
        std::time::Duration::from_secs(20),
        || (!s.kubectl("1.33", &["get", "ns", "tmp"]).status.success()).then_some(()),
    );
    s.kubectl_ok(
        "1.33",
        &[
            "create",
            "service",
            "nodeport",
            "y",
            "--tcp=80",
            &format!("--node-port={port}"),
        ],
    );
    // Headless services get no address.
    s.kubectl_ok(
        "1.33",
        &["create", "service", "clusterip", "h", "--clusterip=None"],
    );
    assert_eq!(s.jsonpath("1.33", "svc/h", "{.spec.clusterIP}"), "None");
}
