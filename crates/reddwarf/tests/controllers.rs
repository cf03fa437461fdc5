//! Controllers running inside the server (kube-runtime over the in-process client).

mod common;

use std::time::Duration;

use common::{eventually, Server};

#[test]
fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    let s = Server::start();
    let ca = std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).unwrap();
    s.kubectl_ok("1.33", &["create", "namespace", "team"]);
    eventually(
        "default ServiceAccount in team",
        Duration::from_secs(20),
        || {
            s.kubectl("1.33", &["-n", "team", "get", "sa", "default"])
                .status
                .success()
                .then_some(())
        },
    );
    let published = eventually("kube-root-ca.crt in team", Duration::from_secs(20), || {
        let out = s.kubectl(
            "1.33",
            &[
                "-n",
                "team",
                "get",
                "cm",
                "kube-root-ca.crt",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(published, ca, "the published CA is the cluster CA");

    // Deleting the account brings it back; editing the CA map is undone.
    let uid = s.kubectl_ok(
        "1.33",
        &[
            "-n",
            "team",
            "get",
            "sa",
            "default",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    );
    s.kubectl_ok("1.33", &["-n", "team", "delete", "sa", "default"]);
    eventually(
        "default ServiceAccount recreated",
        Duration::from_secs(20),
        || {
            let out = s.kubectl(
                "1.33",
                &[
                    "-n",
                    "team",
                    "get",
                    "sa",
                    "default",
                    "-o",
                    "jsonpath={.metadata.uid}",
                ],
            );
            (out.status.success() && String::from_utf8_lossy(&out.stdout) != uid).then_some(())
        },
    );
    s.kubectl_ok(
        "1.33",
        &[
            "-n",
            "team",
            "patch",
            "cm",
            "kube-root-ca.crt",
            "--type=merge",
            "-p",
            r#"{"data":{"ca.crt":"tampered"}}"#,
        ],
    );
    eventually("kube-root-ca.crt repaired", Duration::from_secs(20), || {
        let out = s.kubectl(
            "1.33",
            &[
                "-n",
                "team",
                "get",
                "cm",
                "kube-root-ca.crt",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ],
        );
        (String::from_utf8_lossy(&out.stdout) == ca).then_some(())
    });
    // Their writes are recorded as the controller manager's.
    let managers = s.kubectl_ok(
        "1.33",
        &[
            "-n",
            "team",
            "get",
            "cm",
            "kube-root-ca.crt",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    assert!(managers.contains("kube-controller-manager"), "{managers}");

    // A namespace being deleted gets nothing new, and goes away with what it had.
    s.kubectl_ok("1.33", &["delete", "namespace", "team"]);
    eventually("namespace team gone", Duration::from_secs(30), || {
        (!s.kubectl("1.33", &["get", "namespace", "team"])
            .status
            .success())
        .then_some(())
    });
    let left = s.kubectl_ok("1.33", &["-n", "team", "get", "sa,cm", "-o", "name"]);
    assert_eq!(left, "", "nothing recreated in a deleted namespace");
}
