use serde_json::{json, Value};

use super::*;

fn defaulted(f: fn(&mut Value), mut v: Value) -> Value {
    f(&mut v);
    // Defaulting twice changes nothing (it runs again on every update).
    let mut again = v.clone();
    f(&mut again);
    assert_eq!(v, again, "defaulting is not idempotent");
    v
}

#[test]
fn image_pull_policy_follows_tag() {
    assert_eq!(image_pull_policy("nginx"), "Always");
    assert_eq!(image_pull_policy("nginx:latest"), "Always");
    assert_eq!(image_pull_policy("nginx:1.27"), "IfNotPresent");
    assert_eq!(image_pull_policy("registry:5000/nginx"), "Always");
    assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
}

#[test]
fn namespace_gets_its_name_label() {
    let n = defaulted(
        namespace,
        json!({"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "x", "a": "b"}}}),
    );
    assert_eq!(
        n["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "team", "a": "b"})
    );
    assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
    let unnamed = defaulted(namespace, json!({"metadata": {"generateName": "t-"}}));
    assert!(unnamed["metadata"].get("labels").is_none());
}

#[test]
fn pods_get_spec_container_volume_and_admission_defaults() {
    let p = defaulted(
        pod,
        json!({"metadata": {"name": "p"}, "spec": {
            "hostNetwork": true,
            "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "readinessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [{"name": "scratch"}, {"name": "s", "secret": {"secretName": "x"}},
                        {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]}}),
    );
    let spec = &p["spec"];
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("securityContext", json!({})),
        ("schedulerName", json!("default-scheduler")),
        ("enableServiceLinks", json!(true)),
        ("serviceAccountName", json!("default")),
        ("serviceAccount", json!("default")),
        ("priority", json!(0)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
    ] {
        assert_eq!(spec[k], v, "{k}");
    }
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(
        c["ports"][0],
        json!({"containerPort": 80, "protocol": "TCP", "hostPort": 80})
    );
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "1", "memory": "1Gi"})
    );
    assert_eq!(
        c["readinessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(
        spec["volumes"][0],
        json!({"name": "scratch", "emptyDir": {}})
    );
    assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
    assert_eq!(
        spec["volumes"][2]["projected"],
        json!({"defaultMode": 420, "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]})
    );
    // DefaultTolerationSeconds is admission (configurable), not defaulting.
    assert!(spec.get("tolerations").is_none());
    assert_eq!(
        p["status"],
        json!({"phase": "Pending", "qosClass": "Guaranteed"})
    );
    let be = defaulted(
        pod,
        json!({"spec": {"containers": [{"name": "c", "image": "x:1"}]}}),
    );
    assert_eq!(be["status"]["qosClass"], "BestEffort");
}

#[test]
fn services_get_types_ports_policies_and_families() {
    let s = defaulted(
        service,
        json!({"spec": {"selector": {"app": "a"}, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
    );
    let spec = &s["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["ports"][1]["targetPort"], "dns");
    assert!(spec.get("externalTrafficPolicy").is_none());
    let lb = defaulted(
        service,
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        lb["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    let headless = defaulted(service, json!({"spec": {"clusterIP": "None"}}));
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
    let ext = defaulted(
        service,
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(ext["spec"].get("ipFamilyPolicy").is_none());
    assert!(ext["spec"].get("internalTrafficPolicy").is_none());
}

#[test]
fn storage_and_core_kinds() {
    let pvc = defaulted(persistent_volume_claim, json!({"spec": {}}));
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");
    let pv = defaulted(
        persistent_volume,
        json!({"spec": {"capacity": {"storage": "1Gi"}}}),
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["status"]["phase"], "Pending");
    assert!(pv["status"]["lastPhaseTransitionTime"].is_string());
    let sec = defaulted(secret, json!({}));
    assert_eq!(sec["type"], "Opaque");
    let n = defaulted(node, json!({"status": {"capacity": {"cpu": "4"}}}));
    assert_eq!(n["status"]["allocatable"], json!({"cpu": "4"}));
    let rc = defaulted(
        replication_controller,
        json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
    );
    assert_eq!(rc["spec"]["selector"], json!({"app": "a"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "a"}));
    assert_eq!(rc["spec"]["replicas"], 1);
    assert_eq!(rc["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    let lr = defaulted(
        limit_range,
        json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
    );
    assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "2", "memory": "1Mi"})
    );
    let ep = defaulted(endpoints, json!({"subsets": [{"ports": [{"port": 80}]}]}));
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
}

#[test]
fn workloads_get_upstream_defaults() {
    let d = defaulted(
        deployment,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}}),
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    // SetDefaults_Pod is for pods only.
    assert!(d["spec"]["template"]["spec"]
        .get("enableServiceLinks")
        .is_none());
    let recreate = defaulted(
        deployment,
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));

    let sts = defaulted(
        stateful_set,
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
    );
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"],
        "Pending"
    );
    let ondelete = defaulted(
        stateful_set,
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    assert_eq!(
        ondelete["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );

    let ds = defaulted(daemon_set, json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    let rs = defaulted(replica_set, json!({"spec": {}}));
    assert_eq!(rs["spec"]["replicas"], 1);
}

#[test]
fn jobs_get_defaults_and_a_generated_selector() {
    let j = defaulted(
        job,
        json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}}}}),
    );
    let spec = &j["spec"];
    for (k, v) in [
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("manualSelector", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        assert_eq!(spec[k], v, "{k}");
    }
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    let labels = json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"});
    assert_eq!(spec["template"]["metadata"]["labels"], labels);
    assert_eq!(j["metadata"]["labels"], labels);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");

    let manual = defaulted(
        job,
        json!({"metadata": {"name": "m", "uid": "u", "labels": {"own": "x"}}, "spec": {"manualSelector": true, "parallelism": 3,
            "selector": {"matchLabels": {"a": "b"}}, "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
            "template": {"metadata": {"labels": {"a": "b"}}}}}),
    );
    assert_eq!(
        manual["spec"]["selector"],
        json!({"matchLabels": {"a": "b"}})
    );
    assert!(manual["spec"].get("completions").is_none());
    assert_eq!(manual["spec"]["podReplacementPolicy"], "Failed");
    assert_eq!(
        manual["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    assert_eq!(manual["metadata"]["labels"], json!({"own": "x"}));

    let cj = defaulted(
        cron_job,
        json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}}),
    );
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
        "Always"
    );
    assert!(cj["spec"]["jobTemplate"]["spec"]
        .get("backoffLimit")
        .is_none());
}

#[test]
fn autoscalers() {
    let h = defaulted(
        hpa_v2,
        json!({"spec": {"maxReplicas": 3, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
    );
    assert_eq!(h["spec"]["minReplicas"], 1);
    assert_eq!(
        h["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(
        h["spec"]["behavior"]["scaleUp"],
        json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    assert_eq!(
        h["spec"]["behavior"]["scaleDown"],
        json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    let v1 = defaulted(hpa_v1, json!({"spec": {"maxReplicas": 3}}));
    assert_eq!(v1["spec"]["minReplicas"], 1);
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);
}

#[test]
fn other_groups() {
    let np = defaulted(
        network_policy,
        json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    let np = defaulted(network_policy, json!({"spec": {"podSelector": {}}}));
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));

    let ic = defaulted(
        ingress_class,
        json!({"spec": {"controller": "x", "parameters": {"kind": "K", "name": "n"}}}),
    );
    assert_eq!(ic["spec"]["parameters"]["scope"], "Cluster");

    let eps = defaulted(
        endpoint_slice,
        json!({"addressType": "IPv4", "ports": [{"port": 80}]}),
    );
    assert_eq!(
        eps["ports"][0],
        json!({"port": 80, "name": "", "protocol": "TCP"})
    );

    let rb = defaulted(
        role_binding,
        json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s", "namespace": "d"}]}),
    );
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(rb["subjects"][1].get("apiGroup").is_none());

    assert_eq!(
        defaulted(priority_class, json!({"value": 1}))["preemptionPolicy"],
        "PreemptLowerPriority"
    );
    let sc = defaulted(storage_class, json!({"provisioner": "p"}));
    assert_eq!(
        (sc["reclaimPolicy"].clone(), sc["volumeBindingMode"].clone()),
        (json!("Delete"), json!("Immediate"))
    );
    let csi = defaulted(csi_driver, json!({"spec": {}}));
    assert_eq!(
        csi["spec"],
        json!({"attachRequired": true, "podInfoOnMount": false, "storageCapacity": false, "fsGroupPolicy": "ReadWriteOnceWithFSType",
            "volumeLifecycleModes": ["Persistent"], "requiresRepublish": false, "seLinuxMount": false})
    );

    let vw = defaulted(
        validating_webhooks,
        json!({"webhooks": [{"name": "w", "sideEffects": "None", "admissionReviewVersions": ["v1"], "clientConfig": {"service": {"name": "s", "namespace": "d"}}, "rules": [{"operations": ["CREATE"]}]}]}),
    );
    let w = &vw["webhooks"][0];
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(w["matchPolicy"], "Equivalent");
    assert_eq!(w["timeoutSeconds"], 10);
    assert_eq!(w["namespaceSelector"], json!({}));
    assert_eq!(w["objectSelector"], json!({}));
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(w["clientConfig"]["service"]["port"], 443);
    assert_eq!(w["rules"][0]["scope"], "*");
    assert!(w.get("reinvocationPolicy").is_none());
    let mw = defaulted(mutating_webhooks, json!({"webhooks": [{"name": "w"}]}));
    assert_eq!(mw["webhooks"][0]["reinvocationPolicy"], "Never");

    let vap = defaulted(
        validating_admission_policy,
        json!({"spec": {"matchConstraints": {"resourceRules": [{"operations": ["CREATE"]}]}}}),
    );
    assert_eq!(vap["spec"]["failurePolicy"], "Fail");
    assert_eq!(vap["spec"]["matchConstraints"]["matchPolicy"], "Equivalent");
    assert_eq!(
        vap["spec"]["matchConstraints"]["resourceRules"][0]["scope"],
        "*"
    );

    let crd = defaulted(
        custom_resource_definition,
        json!({"spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced",
            "versions": [{"name": "v1beta1", "served": true, "storage": false}, {"name": "v1", "served": true, "storage": true}]}}),
    );
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));

    let fs = defaulted(
        flow_schema,
        json!({"spec": {"priorityLevelConfiguration": {"name": "p"}}}),
    );
    assert_eq!(fs["spec"]["matchingPrecedence"], 1000);
    let plc = defaulted(
        priority_level_configuration,
        json!({"spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Queue", "queuing": {}}}}}),
    );
    assert_eq!(
        plc["spec"]["limited"],
        json!({"nominalConcurrencyShares": 30, "lendablePercent": 0, "limitResponse": {"type": "Queue", "queuing": {"handSize": 8, "queues": 64, "queueLengthLimit": 50}}})
    );
}

#[test]
fn formats_rfc3339() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_709_294_400), "2024-03-01T12:00:00Z");
    assert_eq!(
        crate::parse_rfc3339(&now_rfc3339()).map(|t| t > 1_700_000_000),
        Some(true)
    );
}
