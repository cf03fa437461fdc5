//! The protobuf codec against hand-built wire bytes and kubectl's bodies: round trips of
//! common kinds, watch frames, error messages, and hostile or deeply nested input.

use reddwarf_kubeproto::{
    decode_object, decode_raw, decode_watch_frame, encode_object, encode_raw, encode_watch_frame,
    knows_kind, Error, MAGIC,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------- independent wire helpers

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn tag(num: u32, wt: u32) -> Vec<u8> {
    varint(u64::from((num << 3) | wt))
}

/// field `num` with wire type 2
fn ld(num: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = tag(num, 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// field `num` with wire type 0
fn vi(num: u32, v: u64) -> Vec<u8> {
    let mut out = tag(num, 0);
    out.extend(varint(v));
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(cat(&[
        ld(
            1,
            &cat(&[ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())]),
        ),
        ld(2, raw),
        ld(3, b""),
        ld(4, b""),
    ]));
    out
}

fn roundtrip(v: Value) {
    let body = encode_object(&v).unwrap_or_else(|e| panic!("encode {}: {e}", v["kind"]));
    assert_eq!(&body[..4], &MAGIC);
    let back = decode_object(&body).unwrap_or_else(|e| panic!("decode {}: {e}", v["kind"]));
    assert_eq!(back, v, "round trip of {}", v["kind"]);
    // and the key order of the result is apiVersion, kind, then field order
    let keys: Vec<&String> = back.as_object().unwrap().keys().collect();
    assert_eq!(keys[..2], ["apiVersion", "kind"]);
}

// ---------------------------------------------------------------- what kubectl sends

/// `kubectl create configmap c9 --from-literal=a=b -n default` (kubectl 1.32): Go's generated
/// marshaller writes every non-pointer ObjectMeta field, zero or not.
fn kubectl_configmap_body() -> Vec<u8> {
    let object_meta = cat(&[
        ld(1, b"c9"),      // name
        ld(2, b""),        // generateName
        ld(3, b"default"), // namespace
        ld(4, b""),        // selfLink
        ld(5, b""),        // uid
        ld(6, b""),        // resourceVersion
        vi(7, 0),          // generation
        ld(8, b""),        // creationTimestamp: zero metav1.Time marshals as empty
    ]);
    let raw = cat(&[
        ld(1, &object_meta),
        ld(2, &cat(&[ld(1, b"a"), ld(2, b"b")])), // data map entry a=b
    ]);
    envelope("v1", "ConfigMap", &raw)
}

#[test]
fn kubectl_create_configmap_body() {
    let body = kubectl_configmap_body();
    // magic, then typeMeta (field 1, 15 bytes: 0a 02 "v1" 12 09 "ConfigMap")
    assert_eq!(
        &body[..8],
        &[0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02]
    );
    let v = decode_object(&body).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c9", "namespace": "default"},
            "data": {"a": "b"}
        })
    );
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c9","namespace":"default"},"data":{"a":"b"}}"#
    );
}

#[test]
fn unknown_fields_are_skipped() {
    // newer clients may send fields we do not know: every wire type, including a group
    let unknown = cat(&[
        vi(90, 5),
        ld(91, b"future"),
        cat(&[tag(92, 1), vec![1, 2, 3, 4, 5, 6, 7, 8]]),
        cat(&[tag(93, 5), vec![1, 2, 3, 4]]),
        cat(&[tag(94, 3), vi(1, 1), ld(2, b"x"), tag(94, 4)]),
    ]);
    let raw = cat(&[ld(1, &cat(&[ld(1, b"x"), unknown.clone()])), unknown]);
    let v = decode_object(&envelope("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    );
}

#[test]
fn delete_options_under_any_group_version() {
    // kubectl delete --grace-period=0: gracePeriodSeconds is a pointer, 0 must survive
    let raw = cat(&[vi(1, 0), ld(4, b"Background")]);
    for av in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        assert!(knows_kind(av, "DeleteOptions"));
        let v = decode_object(&envelope(av, "DeleteOptions", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": av, "kind": "DeleteOptions",
                   "gracePeriodSeconds": 0, "propagationPolicy": "Background"})
        );
    }
}

#[test]
fn encoder_matches_go_layout() {
    let v = json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c9"}, "data": {"b": "2", "a": "1"}});
    let body = encode_object(&v).unwrap();
    let raw = cat(&[
        ld(1, &ld(1, b"c9")),
        ld(2, &cat(&[ld(1, b"a"), ld(2, b"1")])), // map entries sorted by key, like Go
        ld(2, &cat(&[ld(1, b"b"), ld(2, b"2")])),
    ]);
    assert_eq!(body, envelope("v1", "ConfigMap", &raw));
    assert_eq!(encode_raw(&v).unwrap(), raw);
    let dec = decode_raw("v1", "ConfigMap", &raw).unwrap();
    assert_eq!(dec["data"], json!({"a": "1", "b": "2"}));
}

// ---------------------------------------------------------------- round trips

#[test]
fn roundtrip_configmap() {
    roundtrip(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"note": ""}, "resourceVersion": "12", "generation": 3},
        "data": {"a": "b", "empty": ""},
        "binaryData": {"bin": "AAEC/w=="},
        "immutable": false
    }));
}

#[test]
fn roundtrip_secret_and_namespace() {
    roundtrip(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default", "uid": "0f4c3b2a-1111-2222-3333-444455556666"},
        "immutable": true,
        "data": {"password": "czNjcjN0", "empty": ""},
        "stringData": {"user": "admin"},
        "type": "Opaque"
    }));
    roundtrip(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"},
                     "finalizers": ["x/y"]},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    }));
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "creationTimestamp": "2024-01-02T03:04:05Z"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx:1.27",
                        "command": ["nginx", "-g", "daemon off;"],
                        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                        "env": [
                            {"name": "A", "value": "1"},
                            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "b", "optional": true}}}
                        ],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m", "memory": "64Mi"}
                        },
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                           "periodSeconds": 5},
                        "livenessProbe": {"tcpSocket": {"port": 80}},
                        "volumeMounts": [{"name": "conf", "mountPath": "/etc/nginx/conf.d"}],
                        "imagePullPolicy": "IfNotPresent"
                    }],
                    "volumes": [{"name": "conf", "configMap": {"name": "cm", "defaultMode": 420}}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "priority": -5,
                    "automountServiceAccountToken": false
                }
            },
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    })
}

#[test]
fn roundtrip_deployment() {
    roundtrip(deployment());
}

#[test]
fn deployment_wire_details() {
    let raw = encode_raw(&deployment()).unwrap();
    // inlined Go embedded structs: Volume{name=1, VolumeSource=2{configMap=19{LocalObjectReference=1{name=1}}}}
    let volume = cat(&[
        ld(1, b"conf"),
        ld(2, &ld(19, &cat(&[ld(1, &ld(1, b"cm")), vi(3, 420)]))),
    ]);
    assert!(
        raw.windows(volume.len()).any(|w| w == volume.as_slice()),
        "volume bytes not found"
    );
    // IntOrString "25%" -> {type=1, intVal=0, strVal="25%"}; 1 -> {type=0, intVal=1, strVal=""}
    let surge = ld(2, &cat(&[vi(1, 1), vi(2, 0), ld(3, b"25%")]));
    let unavail = ld(1, &cat(&[vi(1, 0), vi(2, 1), ld(3, b"")]));
    let ru = ld(2, &cat(&[unavail, surge]));
    assert!(raw.windows(ru.len()).any(|w| w == ru.as_slice()));
    // Quantity -> {string=1}
    let q = ld(2, &ld(1, b"500m"));
    assert!(raw.windows(q.len()).any(|w| w == q.as_slice()));
}

#[test]
fn roundtrip_pod_with_times() {
    roundtrip(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "p", "namespace": "default",
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "deletionTimestamp": "2024-01-02T03:05:05Z",
            "deletionGracePeriodSeconds": 30,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                 "uid": "u-1", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                               "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]
        },
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "args": ["sleep", "3600"],
                            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                                "capabilities": {"drop": ["ALL"]}}}],
            "nodeName": "n1",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                             "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": "2024-01-02T03:04:06Z"}],
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "startTime": "2024-01-02T03:04:05Z",
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "busybox",
                                   "imageID": "", "started": true,
                                   "state": {"running": {"startedAt": "2024-01-02T03:04:06Z"}}}]
        }
    }));
}

#[test]
fn roundtrip_service() {
    roundtrip(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https", "nodePort": 30443}
            ],
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "type": "NodePort",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack"
        },
        "status": {"loadBalancer": {}}
    }));
}

#[test]
fn roundtrip_delete_options_and_status() {
    roundtrip(json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u-1", "resourceVersion": "5"},
        "orphanDependents": false,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"]
    }));
    roundtrip(json!({
        "apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"
    }));
    roundtrip(json!({
        "apiVersion": "v1", "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": "configmaps \"nope\" not found",
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "configmaps",
                    "causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": "data"}]},
        "code": 404
    }));
}

#[test]
fn roundtrip_lists_and_misc_kinds() {
    roundtrip(json!({
        "apiVersion": "v1", "kind": "ConfigMapList",
        "metadata": {"resourceVersion": "77", "continue": "abc", "remainingItemCount": 3},
        "items": [
            {"metadata": {"name": "a"}, "data": {"k": "v"}},
            {"metadata": {"name": "b"}}
        ]
    }));
    // items carrying their own apiVersion/kind are accepted (Go omits them in typed lists)
    let v = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {},
                   "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]});
    let back = decode_object(&encode_object(&v).unwrap()).unwrap();
    assert_eq!(back["items"], json!([{"metadata": {"name": "a"}}]));

    // MicroTime (Lease, as kubelets and leader election send it)
    roundtrip(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                 "acquireTime": "2024-01-02T03:04:05.000000Z",
                 "renewTime": "2024-01-02T03:04:05.123456Z", "leaseTransitions": 0}
    }));
    // Duration
    roundtrip(json!({
        "apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
        "metadata": {"name": "n1"},
        "timestamp": "2024-01-02T03:04:05Z", "window": "20.5s",
        "usage": {"cpu": "100m", "memory": "1Gi"}
    }));
    // RBAC (group name) and a job
    roundtrip(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "r"},
        "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
    }));
    roundtrip(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"backoffLimit": 0, "template": {"metadata": {},
                 "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}
    }));
}

#[test]
fn roundtrip_crd_schema() {
    roundtrip(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                 "properties": {
                                    "size": {"type": "integer", "default": 1, "minimum": 0.5},
                                    "mode": {"type": "string", "enum": ["a", "b"]},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "tuple": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "closed": {"type": "object", "additionalProperties": false},
                                    "dep": {"type": "object", "dependencies": {"a": ["b"], "c": {"type": "object"}}},
                                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}
                                 },
                                 "required": ["size"]}
                    }
                }},
                "subresources": {"status": {}}
            }]
        }
    }));
}

// ---------------------------------------------------------------- watch

#[test]
fn watch_frame() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "resourceVersion": "9"}, "data": {"k": "v"}});
    let frame = encode_watch_frame("ADDED", &cm).unwrap();
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(len, frame.len() - 4);
    // WatchEvent{type=1 "ADDED", object=2 RawExtension{raw=1 envelope}}
    let env = encode_object(&cm).unwrap();
    let expect = cat(&[ld(1, b"ADDED"), ld(2, &ld(1, &env))]);
    assert_eq!(&frame[4..], expect.as_slice());

    let mut two = frame.clone();
    two.extend(encode_watch_frame("DELETED", &cm).unwrap());
    let f1 = decode_watch_frame(&two).unwrap();
    assert_eq!(f1.event_type, "ADDED");
    assert_eq!(f1.object, cm);
    assert_eq!(f1.consumed, frame.len());
    let f2 = decode_watch_frame(&two[f1.consumed..]).unwrap();
    assert_eq!(f2.event_type, "DELETED");
    assert_eq!(f2.object, cm);
    assert!(decode_watch_frame(&frame[..frame.len() - 1]).is_err());
}

// ---------------------------------------------------------------- errors

#[test]
fn json_errors_name_the_field() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    let e = encode_object(&d).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.template.spec.containers[0].imagee: unknown field (not in Container)"
    );

    let e = encode_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"labels": "x"}}))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "metadata.labels: expected object, got string"
    );

    let e = encode_object(&json!({"apiVersion": "v1", "kind": "Service",
                                  "spec": {"ports": [{"port": 99999999999u64}]}}))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.ports[0].port: 99999999999 is not a valid int32"
    );

    let e = encode_object(&json!({"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"creationTimestamp": "yesterday"}}))
    .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("metadata.creationTimestamp: \"yesterday\" is not an RFC 3339"));

    let e = encode_object(&json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "!!"}}))
        .unwrap_err();
    assert!(e.to_string().starts_with("data.k: invalid base64"), "{e}");

    let e = encode_object(&json!({"apiVersion": "apps/v1", "kind": "Foo"})).unwrap_err();
    assert_eq!(e.to_string(), "protobuf body: no such kind apps/v1 Foo");
    let e = encode_object(&json!({"kind": "ConfigMap"})).unwrap_err();
    assert!(e.to_string().starts_with("apiVersion: missing"));
}

#[test]
fn protobuf_errors() {
    assert_eq!(decode_object(b"{\"kind\":1}"), Err(Error::MissingMagic));
    assert_eq!(
        decode_object(&envelope("apps/v1", "Foo", b""))
            .unwrap_err()
            .to_string(),
        "protobuf body: no such kind apps/v1 Foo"
    );
    // a truncated varint inside metadata.generation
    let raw = cat(&[ld(1, &cat(&[ld(1, b"x"), vec![7 << 3, 0x80]]))]);
    let e = decode_raw("v1", "ConfigMap", &raw).unwrap_err();
    assert_eq!(
        e.to_string(),
        "protobuf body: truncated varint at byte 6 (in metadata.generation)"
    );
    // length running past the end
    let e = decode_raw("v1", "ConfigMap", &[0x0a, 0x05, 0x0a]).unwrap_err();
    assert!(e.to_string().contains("runs past the end"), "{e}");
    // wrong wire type for a known field
    let e = decode_raw("v1", "ConfigMap", &vi(1, 3)).unwrap_err();
    assert!(e.to_string().contains("(in metadata)"), "{e}");
}

// ---------------------------------------------------------------- hostile input

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_input_never_panics() {
    let bodies = [
        kubectl_configmap_body(),
        encode_object(&deployment()).unwrap(),
        encode_watch_frame("ADDED", &deployment()).unwrap(),
    ];
    for body in &bodies {
        for n in 0..body.len() {
            let _ = decode_object(&body[..n]);
            let _ = decode_watch_frame(&body[..n]);
        }
        for i in 0..body.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut b = body.clone();
                b[i] ^= bit;
                let _ = decode_object(&b);
                let _ = decode_watch_frame(&b);
            }
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let len = (rng.next() % 200) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 {
            let mut e = MAGIC.to_vec();
            e.extend(ld(1, &cat(&[ld(1, b"apps/v1"), ld(2, b"Deployment")])));
            e.extend(ld(2, &b));
            b = e;
        }
        let _ = decode_object(&b);
        let _ = decode_raw("v1", "Pod", &b);
        let _ = decode_raw("apiextensions.k8s.io/v1", "CustomResourceDefinition", &b);
        let _ = decode_watch_frame(&b);
    }
}

#[test]
fn deep_nesting_is_refused() {
    // JSONSchemaProps.not (field 28) nested 1000 deep inside a CRD
    let mut props = Vec::new();
    for _ in 0..1000 {
        props = ld(28, &props);
    }
    // CRD{spec=2{versions=7{schema=4{openAPIV3Schema=1}}}}
    let raw = ld(2, &ld(7, &ld(4, &ld(1, &props))));
    let e = decode_raw("apiextensions.k8s.io/v1", "CustomResourceDefinition", &raw).unwrap_err();
    assert!(matches!(e, Error::TooDeep(_)), "{e}");
    // nested unknown groups
    let mut g = Vec::new();
    for _ in 0..5000 {
        g = cat(&[tag(90, 3), g, tag(90, 4)]);
    }
    assert!(decode_raw("v1", "ConfigMap", &g).is_err());
    // RawExtension holding envelopes holding RawExtensions ... (v1 List items)
    let mut body = envelope("v1", "List", b"");
    for _ in 0..200 {
        body = envelope("v1", "List", &ld(2, &ld(1, &body)));
    }
    assert!(matches!(decode_object(&body), Err(Error::TooDeep(_))));
    // encoding deep JSON
    let mut v = json!({"type": "object"});
    for _ in 0..120 {
        v = json!({ "not": v });
    }
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": v}}]}});
    assert!(matches!(encode_object(&crd), Err(Error::TooDeep(_))));
}
