//! `canonicalize`: objects come out in the key order upstream's Go structs give them. The
//! expected strings are written by hand from the Go type declarations (k8s.io/api v0.35,
//! apimachinery meta/v1), not from the schema.

use reddwarf_kubeproto::{canonicalize, canonicalize_unstructured};
use serde_json::Value;

/// Parse (keeping the given key order), canonicalize, serialize.
fn canon(input: &str) -> String {
    let mut v: Value = serde_json::from_str(input).unwrap();
    assert!(canonicalize(&mut v), "kind not known: {input}");
    let out = serde_json::to_string(&v).unwrap();
    // idempotent
    let mut again: Value = serde_json::from_str(&out).unwrap();
    assert!(canonicalize(&mut again));
    assert_eq!(
        serde_json::to_string(&again).unwrap(),
        out,
        "not idempotent"
    );
    out
}

fn compact(s: &str) -> String {
    serde_json::to_string(&serde_json::from_str::<Value>(s).unwrap()).unwrap()
}

#[test]
fn pod() {
    let scrambled = r#"{
      "status": {
        "qosClass": "BestEffort",
        "containerStatuses": [{"started": true, "containerID": "containerd://abc", "imageID": "sha256:1",
          "image": "nginx:1.27", "restartCount": 0, "ready": true,
          "state": {"running": {"startedAt": "2024-01-02T03:04:05Z"}}, "name": "web"}],
        "startTime": "2024-01-02T03:04:00Z",
        "podIPs": [{"ip": "10.0.0.7"}],
        "podIP": "10.0.0.7",
        "hostIP": "192.168.1.2",
        "conditions": [{"lastTransitionTime": "2024-01-02T03:04:05Z", "lastProbeTime": null,
          "status": "True", "type": "Ready"}],
        "phase": "Running",
        "observedGeneration": 1
      },
      "spec": {
        "tolerations": [{"tolerationSeconds": 300, "effect": "NoExecute", "operator": "Exists",
          "key": "node.kubernetes.io/not-ready"}],
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "nodeName": "node-1",
        "serviceAccountName": "default",
        "nodeSelector": {"zone": "a", "disk": "ssd", "arch": "amd64"},
        "dnsPolicy": "ClusterFirst",
        "terminationGracePeriodSeconds": 30,
        "restartPolicy": "Always",
        "ephemeralContainers": [{"image": "busybox", "name": "debug"}],
        "containers": [{
          "terminationMessagePolicy": "File",
          "terminationMessagePath": "/dev/termination-log",
          "imagePullPolicy": "IfNotPresent",
          "livenessProbe": {"periodSeconds": 10, "initialDelaySeconds": 3,
            "httpGet": {"scheme": "HTTP", "port": 8080, "path": "/healthz"}},
          "volumeMounts": [{"mountPath": "/etc/cfg", "readOnly": true, "name": "cfg"}],
          "resources": {"requests": {"memory": "64Mi", "cpu": "100m"}, "limits": {"memory": "128Mi"}},
          "env": [{"valueFrom": {"configMapKeyRef": {"key": "level", "name": "cfg"}}, "name": "LEVEL"},
                  {"value": "1", "name": "A"}],
          "ports": [{"protocol": "TCP", "containerPort": 8080, "name": "http"}],
          "args": ["-v"],
          "command": ["/bin/web"],
          "image": "nginx:1.27",
          "name": "web"
        }],
        "initContainers": [{"command": ["true"], "image": "busybox", "name": "init"}],
        "volumes": [{"configMap": {"defaultMode": 420, "items": [{"path": "a.conf", "key": "a"}], "name": "cfg"},
                     "name": "cfg"}]
      },
      "metadata": {
        "managedFields": [{"fieldsV1": {"f:spec": {}, "f:metadata": {}}, "fieldsType": "FieldsV1",
          "time": "2024-01-02T03:04:00Z", "apiVersion": "v1", "operation": "Update", "manager": "kubectl"}],
        "finalizers": ["example.com/x"],
        "ownerReferences": [{"blockOwnerDeletion": true, "controller": true, "uid": "u-1",
          "name": "web-abc", "kind": "ReplicaSet", "apiVersion": "apps/v1"}],
        "annotations": {"b": "2", "a": "1"},
        "labels": {"pod-template-hash": "abc", "app": "web"},
        "creationTimestamp": "2024-01-02T03:04:00Z",
        "generation": 1,
        "resourceVersion": "42",
        "uid": "9f0c",
        "namespace": "default",
        "generateName": "web-abc-",
        "name": "web-abc-xyz"
      },
      "apiVersion": "v1",
      "kind": "Pod"
    }"#;
    let want = r#"{"kind":"Pod","apiVersion":"v1",
      "metadata":{"name":"web-abc-xyz","generateName":"web-abc-","namespace":"default","uid":"9f0c",
        "resourceVersion":"42","generation":1,"creationTimestamp":"2024-01-02T03:04:00Z",
        "labels":{"app":"web","pod-template-hash":"abc"},"annotations":{"a":"1","b":"2"},
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","uid":"u-1",
          "controller":true,"blockOwnerDeletion":true}],
        "finalizers":["example.com/x"],
        "managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"v1",
          "time":"2024-01-02T03:04:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{},"f:metadata":{}}}]},
      "spec":{
        "volumes":[{"name":"cfg","configMap":{"name":"cfg","items":[{"key":"a","path":"a.conf"}],"defaultMode":420}}],
        "initContainers":[{"name":"init","image":"busybox","command":["true"]}],
        "containers":[{"name":"web","image":"nginx:1.27","command":["/bin/web"],"args":["-v"],
          "ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],
          "env":[{"name":"LEVEL","valueFrom":{"configMapKeyRef":{"name":"cfg","key":"level"}}},
                 {"name":"A","value":"1"}],
          "resources":{"limits":{"memory":"128Mi"},"requests":{"cpu":"100m","memory":"64Mi"}},
          "volumeMounts":[{"name":"cfg","readOnly":true,"mountPath":"/etc/cfg"}],
          "livenessProbe":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"},
            "initialDelaySeconds":3,"periodSeconds":10},
          "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File",
          "imagePullPolicy":"IfNotPresent"}],
        "ephemeralContainers":[{"name":"debug","image":"busybox"}],
        "restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst",
        "nodeSelector":{"arch":"amd64","disk":"ssd","zone":"a"},
        "serviceAccountName":"default","nodeName":"node-1","securityContext":{},
        "schedulerName":"default-scheduler",
        "tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute",
          "tolerationSeconds":300}]},
      "status":{"observedGeneration":1,"phase":"Running",
        "conditions":[{"type":"Ready","status":"True","lastProbeTime":null,
          "lastTransitionTime":"2024-01-02T03:04:05Z"}],
        "hostIP":"192.168.1.2","podIP":"10.0.0.7","podIPs":[{"ip":"10.0.0.7"}],
        "startTime":"2024-01-02T03:04:00Z",
        "containerStatuses":[{"name":"web","state":{"running":{"startedAt":"2024-01-02T03:04:05Z"}},
          "ready":true,"restartCount":0,"image":"nginx:1.27","imageID":"sha256:1",
          "containerID":"containerd://abc","started":true}],
        "qosClass":"BestEffort"}}"#;
    assert_eq!(canon(scrambled), compact(want));
}

#[test]
fn deployment() {
    let scrambled = r#"{"status":{"conditions":[{"message":"ok","reason":"NewReplicaSetAvailable",
        "lastTransitionTime":"2024-01-02T03:04:05Z","lastUpdateTime":"2024-01-02T03:04:05Z",
        "status":"True","type":"Progressing"}],"availableReplicas":2,"readyReplicas":2,
        "updatedReplicas":2,"replicas":2,"observedGeneration":3},
      "spec":{"progressDeadlineSeconds":600,"revisionHistoryLimit":10,
        "strategy":{"rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"},"type":"RollingUpdate"},
        "template":{"spec":{"containers":[{"image":"nginx","name":"web"}]},
          "metadata":{"labels":{"tier":"fe","app":"web"}}},
        "selector":{"matchExpressions":[{"values":["fe"],"operator":"In","key":"tier"}],
          "matchLabels":{"app":"web"}},
        "replicas":2},
      "metadata":{"labels":{"app":"web"},"generation":3,"namespace":"default","name":"web"},
      "kind":"Deployment","apiVersion":"apps/v1"}"#;
    let want = r#"{"kind":"Deployment","apiVersion":"apps/v1",
      "metadata":{"name":"web","namespace":"default","generation":3,"labels":{"app":"web"}},
      "spec":{"replicas":2,
        "selector":{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["fe"]}]},
        "template":{"metadata":{"labels":{"app":"web","tier":"fe"}},
          "spec":{"containers":[{"name":"web","image":"nginx"}]}},
        "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},
        "revisionHistoryLimit":10,"progressDeadlineSeconds":600},
      "status":{"observedGeneration":3,"replicas":2,"updatedReplicas":2,"readyReplicas":2,
        "availableReplicas":2,
        "conditions":[{"type":"Progressing","status":"True","lastUpdateTime":"2024-01-02T03:04:05Z",
          "lastTransitionTime":"2024-01-02T03:04:05Z","reason":"NewReplicaSetAvailable","message":"ok"}]}}"#;
    assert_eq!(canon(scrambled), compact(want));
}

#[test]
fn service() {
    let scrambled = r#"{"apiVersion":"v1","metadata":{"namespace":"default","name":"web"},
      "status":{"loadBalancer":{"ingress":[{"ipMode":"VIP","ip":"1.2.3.4"}]}},
      "spec":{"internalTrafficPolicy":"Cluster","ipFamilyPolicy":"SingleStack","ipFamilies":["IPv4"],
        "sessionAffinity":"None","type":"LoadBalancer","clusterIPs":["10.96.0.10"],
        "clusterIP":"10.96.0.10","selector":{"tier":"fe","app":"web"},
        "ports":[{"nodePort":30080,"targetPort":"http","port":80,"protocol":"TCP","name":"http"}],
        "externalTrafficPolicy":"Cluster","allocateLoadBalancerNodePorts":true},
      "kind":"Service"}"#;
    let want = r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"default"},
      "spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":"http","nodePort":30080}],
        "selector":{"app":"web","tier":"fe"},"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],
        "type":"LoadBalancer","sessionAffinity":"None","externalTrafficPolicy":"Cluster",
        "ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","allocateLoadBalancerNodePorts":true,
        "internalTrafficPolicy":"Cluster"},
      "status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4","ipMode":"VIP"}]}}}"#;
    assert_eq!(canon(scrambled), compact(want));
}

#[test]
fn status() {
    let scrambled = r#"{"code":422,"details":{"causes":[{"field":"metadata.name","message":"Required value",
        "reason":"FieldValueRequired"}],"kind":"pods","group":"","name":"x"},
      "reason":"Invalid","message":"Pod \"x\" is invalid","status":"Failure","metadata":{},
      "apiVersion":"v1","kind":"Status"}"#;
    // details.group is `omitempty`: the empty core group is left out.
    let want = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
      "message":"Pod \"x\" is invalid","reason":"Invalid",
      "details":{"name":"x","kind":"pods",
        "causes":[{"reason":"FieldValueRequired","message":"Required value","field":"metadata.name"}]},
      "code":422}"#;
    assert_eq!(canon(scrambled), compact(want));
}

#[test]
fn config_map() {
    let scrambled = r#"{"binaryData":{"z.bin":"AAE=","a.bin":"AQ=="},"data":{"b":"2","a.conf":"x","A":"0"},
      "immutable":true,"metadata":{"name":"cfg"},"kind":"ConfigMap","apiVersion":"v1"}"#;
    // map keys sorted bytewise, as Go's encoding/json sorts them (uppercase first)
    let want = r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cfg"},"immutable":true,
      "data":{"A":"0","a.conf":"x","b":"2"},"binaryData":{"a.bin":"AQ==","z.bin":"AAE="}}"#;
    assert_eq!(canon(scrambled), compact(want));
}

#[test]
fn unknown_fields_stay_after_known_ones_in_their_order() {
    let scrambled = r#"{"zz":1,"spec":{"containers":[{"y":2,"image":"i","x":1,"name":"c"}]},"aa":2,
      "metadata":{"name":"p","extra":true},"kind":"Pod","apiVersion":"v1"}"#;
    let want = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","extra":true},
      "spec":{"containers":[{"name":"c","image":"i","y":2,"x":1}]},"zz":1,"aa":2}"#;
    assert_eq!(canon(scrambled), compact(want));
}

#[test]
fn lists_and_watch_events_order_their_objects() {
    let list = r#"{"items":[{"metadata":{"name":"b"},"apiVersion":"v1","kind":"ConfigMap",
        "data":{"y":"1","x":"2"}}],"metadata":{"resourceVersion":"7"},"apiVersion":"v1","kind":"ConfigMapList"}"#;
    assert_eq!(
        canon(list),
        compact(
            r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"7"},
          "items":[{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"b"},"data":{"x":"2","y":"1"}}]}"#
        )
    );
    // `v1 List` items are RawExtensions: each follows its own kind
    let generic = r#"{"items":[{"spec":{"replicas":1},"metadata":{"name":"d"},"kind":"Deployment",
        "apiVersion":"apps/v1"}],"kind":"List","apiVersion":"v1","metadata":{}}"#;
    assert_eq!(
        canon(generic),
        compact(
            r#"{"kind":"List","apiVersion":"v1","metadata":{},
          "items":[{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"},"spec":{"replicas":1}}]}"#
        )
    );
    let event = r#"{"object":{"metadata":{"name":"p"},"kind":"Pod","apiVersion":"v1"},"type":"ADDED",
        "kind":"WatchEvent","apiVersion":"meta.k8s.io/v1"}"#;
    assert_eq!(
        canon(event),
        compact(
            r#"{"kind":"WatchEvent","apiVersion":"meta.k8s.io/v1","type":"ADDED",
          "object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}}"#
        )
    );
}

#[test]
fn raw_json_is_kept_as_given() {
    // ControllerRevision.data (RawExtension without a kind) and a CRD default (apiextensions JSON)
    let rev = r#"{"kind":"ControllerRevision","apiVersion":"apps/v1","metadata":{"name":"r"},
      "data":{"spec":{"template":{"z":1,"a":2}}},"revision":1}"#;
    assert_eq!(canon(rev), compact(rev));
    let crd = r#"{"spec":{"versions":[{"schema":{"openAPIV3Schema":{"properties":{"spec":{"default":{"z":1,"a":2},
        "type":"object"},"a":{"type":"string"}},"type":"object"}},"storage":true,"served":true,"name":"v1"}],
        "scope":"Namespaced","names":{"kind":"Foo","plural":"foos"},"group":"example.com"},
      "metadata":{"name":"foos.example.com"},"kind":"CustomResourceDefinition",
      "apiVersion":"apiextensions.k8s.io/v1"}"#;
    let want = r#"{"kind":"CustomResourceDefinition","apiVersion":"apiextensions.k8s.io/v1",
      "metadata":{"name":"foos.example.com"},
      "spec":{"group":"example.com","names":{"plural":"foos","kind":"Foo"},"scope":"Namespaced",
        "versions":[{"name":"v1","served":true,"storage":true,
          "schema":{"openAPIV3Schema":{"type":"object",
            "properties":{"a":{"type":"string"},"spec":{"type":"object","default":{"z":1,"a":2}}}}}}]}}"#;
    assert_eq!(canon(crd), compact(want));
}

#[test]
fn unknown_kinds_are_left_alone() {
    let cr = r#"{"spec":{"b":1,"a":2},"metadata":{"name":"x"},"kind":"Foo","apiVersion":"example.com/v1"}"#;
    let mut v: Value = serde_json::from_str(cr).unwrap();
    assert!(!canonicalize(&mut v));
    assert_eq!(serde_json::to_string(&v).unwrap(), cr);
    // what upstream does with custom resources: every key sorted
    canonicalize_unstructured(&mut v);
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"apiVersion":"example.com/v1","kind":"Foo","metadata":{"name":"x"},"spec":{"a":2,"b":1}}"#
    );
}

#[test]
fn ordered_objects_are_unchanged() {
    let want = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","labels":{"a":"1"}},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
    assert_eq!(canon(want), want);
}

#[test]
fn line_wrapped_base64_is_stored_on_one_line() {
    let wrapped = r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"b"},
      "binaryData":{"k":"aGVs\nbG8=\r\n"}}"#;
    assert!(canon(wrapped).contains(r#""binaryData":{"k":"aGVsbG8="}"#));
    let webhook = r#"{"kind":"ValidatingWebhookConfiguration","apiVersion":"admissionregistration.k8s.io/v1",
      "metadata":{"name":"w"},"webhooks":[{"name":"w.example.com","clientConfig":{"caBundle":"LS0t\nLS0="}}]}"#;
    assert!(canon(webhook).contains(r#""caBundle":"LS0tLS0=""#));
}

#[test]
fn zero_values_of_omitempty_scalars_are_left_out() {
    let rb = r#"{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"r"},
      "subjects":[{"kind":"ServiceAccount","apiGroup":"","name":"default","namespace":"d"}],
      "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"x"}}"#;
    let out = canon(rb);
    assert!(
        out.contains(r#""subjects":[{"kind":"ServiceAccount","name":"default","namespace":"d"}]"#),
        "{out}"
    );
    // roleRef.apiGroup has no omitempty: kept even when empty; a pointer's zero is kept.
    let rb2 = rb.replace(
        r#""apiGroup":"rbac.authorization.k8s.io""#,
        r#""apiGroup":"""#,
    );
    assert!(canon(&rb2).contains(r#""roleRef":{"apiGroup":"","#));
    let d = r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"},
      "spec":{"replicas":0,"template":{"spec":{"containers":[{"name":"c","image":"i","workingDir":""}]}}}}"#;
    let out = canon(d);
    assert!(out.contains(r#""replicas":0"#), "{out}");
    assert!(!out.contains("workingDir"), "{out}");
}
