//! The local-path provisioner end to end: a StatefulSet's claim (no class named) gets the
//! default class `local-path`, a hostPath volume pinned to the node the scheduler picked,
//! and a real pod on a real agent writes into it; the data outlives the pod, and the
//! directory goes with the claim. Needs root (containers, netns), as pods.rs.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{busybox_image, eventually, Agent, Server, TestNet};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

struct Cluster {
    // Drop order: agent (and its cleanup) before the server and the network reservation.
    _agent: Agent,
    server: Server,
    _net: TestNet,
}

fn cluster(node: &str) -> Cluster {
    let net = TestNet::reserve();
    let server = Server::start_with(&[
        "--cluster-cidr",
        &net.cluster_cidr(),
        "--local-storage-path",
        "{dir}/storage",
    ]);
    let (images, _) = busybox_image(server.data_dir());
    let agent = Agent::start(&server, node, &["--images-dir", images.to_str().unwrap()]);
    Cluster {
        _agent: agent,
        server,
        _net: net,
    }
}

fn running_pod(s: &Server, name: &str, not_uid: Option<&str>) -> Value {
    eventually(&format!("pod {name} Running and Ready"), WAIT, || {
        let p = s.get_opt(&format!("/api/v1/namespaces/default/pods/{name}"))?;
        let ready = p["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let fresh = not_uid.is_none_or(|u| p["metadata"]["uid"] != u);
        (fresh && p["status"]["phase"] == "Running" && ready).then_some(p)
    })
}

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.36
        imagePullPolicy: Never
        command: [sh, -c, 'date >> /data/boots; sleep 3600']
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 64Mi}}
"#;

#[test]
fn a_statefulset_keeps_its_local_volume_across_pod_restarts() {
    let c = cluster("st1");
    let s = &c.server;
    let sc = s.api_get("/apis/storage.k8s.io/v1/storageclasses/local-path");
    assert_eq!(sc["provisioner"], "reddwarf.io/local-path");
    assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    let out = s.kubectl_ok("1.33", &["get", "storageclass"]);
    assert!(out.contains("local-path (default)"), "{out}");

    s.apply(STATEFULSET);
    let first = running_pod(s, "web-0", None);
    assert_eq!(first["spec"]["nodeName"], "st1");

    // The claim got the default class and a volume made for it on the node.
    let pvc = s.api_get("/api/v1/namespaces/default/persistentvolumeclaims/data-web-0");
    assert_eq!(pvc["spec"]["storageClassName"], "local-path", "{pvc}");
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    let anns = &pvc["metadata"]["annotations"];
    assert_eq!(anns["volume.kubernetes.io/selected-node"], "st1", "{pvc}");
    assert_eq!(
        anns["volume.kubernetes.io/storage-provisioner"], "reddwarf.io/local-path",
        "{pvc}"
    );
    let pv_name = pvc["spec"]["volumeName"].as_str().unwrap().to_string();
    assert_eq!(
        pv_name,
        format!("pvc-{}", pvc["metadata"]["uid"].as_str().unwrap())
    );
    let pv = s.api_get(&format!("/api/v1/persistentvolumes/{pv_name}"));
    assert_eq!(pv["status"]["phase"], "Bound", "{pv}");
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "reddwarf.io/local-path"
    );
    assert_eq!(pv["spec"]["capacity"]["storage"], "64Mi");
    assert_eq!(pv["spec"]["accessModes"][0], "ReadWriteOnce");
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(pv["spec"]["claimRef"]["name"], "data-web-0");
    let term =
        &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(term["key"], "kubernetes.io/hostname", "{pv}");
    assert_eq!(term["operator"], "In");
    assert_eq!(term["values"][0], "st1");
    let dir = PathBuf::from(pv["spec"]["hostPath"]["path"].as_str().unwrap());
    assert_eq!(
        dir,
        s.data_dir()
            .join("storage")
            .join(format!("{pv_name}_default_data-web-0"))
    );
    assert_eq!(pv["spec"]["hostPath"]["type"], "DirectoryOrCreate");
    let events = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=data-web-0",
        ],
    );
    assert!(events.contains("ProvisioningSucceeded"), "{events}");

    let boots = |s: &Server| s.kubectl_ok("1.33", &["exec", "web-0", "--", "cat", "/data/boots"]);
    let out = eventually("one boot recorded", WAIT, || {
        let out = boots(s);
        (out.lines().count() == 1).then_some(out)
    });
    assert_eq!(
        std::fs::read_to_string(dir.join("boots")).unwrap(),
        out,
        "the pod writes into the node's directory"
    );

    // A new pod for the same ordinal mounts the same volume: the data is kept.
    s.kubectl_ok("1.33", &["delete", "pod", "web-0", "--wait=true"]);
    let second = running_pod(s, "web-0", first["metadata"]["uid"].as_str());
    assert_eq!(second["spec"]["nodeName"], "st1");
    eventually("two boots recorded", WAIT, || {
        (boots(s).lines().count() == 2).then_some(())
    });
    let pvc = s.api_get("/api/v1/namespaces/default/persistentvolumeclaims/data-web-0");
    assert_eq!(pvc["spec"]["volumeName"], pv_name.as_str());

    // Reclaim Delete: without the set and its claim, the volume and its directory go.
    s.kubectl_ok("1.33", &["delete", "statefulset", "web", "--wait=true"]);
    eventually("web-0 gone", WAIT, || {
        s.get_opt("/api/v1/namespaces/default/pods/web-0")
            .is_none()
            .then_some(())
    });
    s.kubectl_ok("1.33", &["delete", "pvc", "data-web-0", "--wait=true"]);
    eventually("the volume deleted", WAIT, || {
        s.get_opt(&format!("/api/v1/persistentvolumes/{pv_name}"))
            .is_none()
            .then_some(())
    });
    assert!(!dir.exists(), "{} left on the node", dir.display());
}

#[test]
fn claims_without_a_class_get_the_default_one() {
    let s = Server::start();
    let claim = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n{class}"
        )
    };
    eventually("the local-path class", WAIT, || {
        s.get_opt("/apis/storage.k8s.io/v1/storageclasses/local-path")
    });
    s.apply(&claim("plain", ""));
    s.apply(&claim("none", "  storageClassName: \"\"\n"));
    s.apply(&claim("other", "  storageClassName: fast\n"));
    let class = |s: &Server, name: &str| {
        s.api_get(&format!(
            "/api/v1/namespaces/default/persistentvolumeclaims/{name}"
        ))["spec"]["storageClassName"]
            .clone()
    };
    assert_eq!(class(&s, "plain"), "local-path");
    assert_eq!(class(&s, "none"), "", "an explicit empty class means none");
    assert_eq!(class(&s, "other"), "fast");
    // With several defaults, the newest wins.
    s.apply(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: newer\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/x\n",
    );
    // creationTimestamp counts whole seconds: the next class must be made in a later one.
    let made: jiff::Timestamp = s.api_get("/apis/storage.k8s.io/v1/storageclasses/newer")
        ["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eventually(
        "the clock past the second `newer` was made in",
        WAIT,
        || (jiff::Timestamp::now().as_second() > made.as_second()).then_some(()),
    );
    s.apply(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: newest\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/x\n",
    );
    s.apply(&claim("later", ""));
    assert_eq!(class(&s, "later"), "newest");

    // With the provisioner turned off there is no class, and claims keep none.
    let off = Server::start_with(&["--controllers", "*,-local-path-provisioner"]);
    off.apply(&claim("plain", ""));
    assert!(class(&off, "plain").is_null());
    assert!(off
        .get_opt("/apis/storage.k8s.io/v1/storageclasses/local-path")
        .is_none());
}
