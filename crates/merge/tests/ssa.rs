//! Server-side apply: field sets, managedFields, apply/update with several managers,
//! conflicts, force, pruning.

use reddwarf_merge::{
    apply, field_set_of, fields_of, managed_fields_for_update, update, ApplyError, ErrorKind,
    ManagedFields, MemorySchema, Operation, Request, Schema, TypeRef,
};
use serde_json::{json, Value};

fn schema() -> MemorySchema {
    let doc: Value = serde_json::from_str(include_str!("data/schema.json")).unwrap();
    MemorySchema::from_json(&doc).unwrap()
}

/// An object and its managers, changed by successive requests.
struct World {
    schema: MemorySchema,
    root: Option<TypeRef>,
    obj: Value,
    clock: u32,
}

impl World {
    fn new(api_version: &str, kind: &str) -> World {
        let schema = schema();
        let root = schema.root(api_version, kind);
        World {
            schema,
            root,
            obj: json!({}),
            clock: 0,
        }
    }

    fn deployment() -> World {
        World::new("apps/v1", "Deployment")
    }

    fn managed(&self) -> ManagedFields {
        ManagedFields::from_object(&self.obj).unwrap()
    }

    fn time(&mut self) -> String {
        self.clock += 1;
        format!("2024-05-01T10:00:{:02}Z", self.clock)
    }

    fn try_apply(&mut self, manager: &str, cfg: Value, force: bool) -> Result<bool, ApplyError> {
        let time = self.time();
        let req = Request {
            manager,
            api_version: "apps/v1",
            subresource: "",
            time: &time,
            ignored: None,
        };
        let managed = self.managed();
        let out = apply(
            &self.obj,
            &cfg,
            &managed,
            force,
            &req,
            &self.schema,
            self.root.as_ref(),
        )?;
        assert_eq!(
            ManagedFields::from_object(&out.object).unwrap(),
            out.managed_fields
        );
        self.obj = out.object;
        Ok(out.changed)
    }

    fn apply(&mut self, manager: &str, cfg: Value) {
        self.try_apply(manager, cfg, false).unwrap();
    }

    /// A non-apply write (PUT/PATCH) by `manager` producing `new_obj`.
    fn update(&mut self, manager: &str, new_obj: Value) {
        let time = self.time();
        let req = Request {
            manager,
            api_version: "apps/v1",
            subresource: "",
            time: &time,
            ignored: None,
        };
        let managed = managed_fields_for_update(&self.obj, &new_obj, false);
        let mf = update(
            &self.obj,
            &new_obj,
            &managed,
            &req,
            &self.schema,
            self.root.as_ref(),
        )
        .unwrap();
        let mut obj = new_obj;
        mf.write_to(&mut obj);
        self.obj = obj;
    }

    fn at(&self, pointer: &str) -> Option<&Value> {
        self.obj.pointer(pointer)
    }

    /// The fieldsV1 of a manager's entry.
    fn fields(&self, manager: &str, op: Operation) -> Value {
        let mf = self.managed();
        mf.entries()
            .iter()
            .find(|e| e.manager == manager && e.operation == op)
            .map(|e| e.fields.to_fields_v1())
            .unwrap_or(Value::Null)
    }

    fn owns(&self, manager: &str, op: Operation, pointer: &str) -> bool {
        let mut v = self.fields(manager, op);
        for part in pointer.split('/').skip(1) {
            match v.get(part) {
                Some(next) => v = next.clone(),
                None => return false,
            }
        }
        true
    }
}

fn nginx_deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}
                ]}
            }
        }
    })
}

#[test]
fn field_set_of_a_deployment_matches_upstream_encoding() {
    let schema = schema();
    let root = schema.root("apps/v1", "Deployment");
    let set = fields_of(&nginx_deployment(2, "nginx"), &schema, root.as_ref()).unwrap();
    assert_eq!(
        set.to_fields_v1(),
        json!({
            "f:apiVersion": {},
            "f:kind": {},
            "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {}
                        }}
                    }}}
                }
            }
        })
    );
    // Key order in the serialized JSON is upstream's (fields sorted, "." first).
    let text = set.to_fields_v1().to_string();
    assert!(text.starts_with(r#"{"f:apiVersion":{},"f:kind":{},"f:metadata":"#));
    assert!(text.contains(r#"{".":{},"f:image":{},"f:name":{},"f:ports":"#));
}

#[test]
fn first_apply_creates_and_records_the_manager() {
    let mut w = World::deployment();
    assert!(w
        .try_apply("kubectl", nginx_deployment(2, "nginx:1"), false)
        .unwrap());
    assert_eq!(w.at("/spec/replicas"), Some(&json!(2)));
    let mf = w.obj.pointer("/metadata/managedFields").unwrap();
    assert_eq!(mf.as_array().unwrap().len(), 1);
    let entry = &mf[0];
    assert_eq!(entry["manager"], "kubectl");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(entry["time"], "2024-05-01T10:00:01Z");
    // apiVersion, kind, metadata.name are never tracked.
    assert!(entry["fieldsV1"].get("f:apiVersion").is_none());
    assert!(entry["fieldsV1"]["f:metadata"].get("f:name").is_none());
    assert!(w.owns("kubectl", Operation::Apply, "/f:spec/f:replicas"));
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let mut w = World::deployment();
    w.apply("kubectl", nginx_deployment(2, "nginx:1"));
    let before = w.obj.clone();
    assert!(!w
        .try_apply("kubectl", nginx_deployment(2, "nginx:1"), false)
        .unwrap());
    assert_eq!(w.obj, before, "not even the entry's time moves");
}

#[test]
fn two_managers_on_different_fields() {
    let mut w = World::deployment();
    w.apply("kubectl", nginx_deployment(2, "nginx:1"));
    w.apply(
        "labeler",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
               "labels": {"team": "blue"}}}),
    );
    assert_eq!(
        w.at("/metadata/labels"),
        Some(&json!({"app": "web", "team": "blue"}))
    );
    assert_eq!(w.at("/spec/replicas"), Some(&json!(2)));
    assert!(w.owns("labeler", Operation::Apply, "/f:metadata/f:labels/f:team"));
    assert!(!w.owns("labeler", Operation::Apply, "/f:metadata/f:labels/f:app"));
    assert!(w.owns("kubectl", Operation::Apply, "/f:metadata/f:labels/f:app"));
    // The labeler drops its label: only it owned it, so it goes.
    w.apply(
        "labeler",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
    );
    assert_eq!(w.at("/metadata/labels"), Some(&json!({"app": "web"})));
    assert!(w.managed().entries().iter().all(|e| e.manager != "labeler"));
}

#[test]
fn conflict_then_force() {
    let mut w = World::deployment();
    w.apply("kubectl", nginx_deployment(2, "nginx:1"));
    let err = w
        .try_apply("autoscaler", nginx_deployment(5, "nginx:1"), false)
        .unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!("expected conflicts, got {err:?}")
    };
    assert_eq!(c.0.len(), 1);
    assert_eq!(c.0[0].field(), ".spec.replicas");
    assert_eq!(c.0[0].message(), "conflict with \"kubectl\"");
    assert_eq!(
        c.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    assert_eq!(w.at("/spec/replicas"), Some(&json!(2)), "nothing changed");

    // Force: the value changes and ownership moves.
    w.try_apply("autoscaler", nginx_deployment(5, "nginx:1"), true)
        .unwrap();
    assert_eq!(w.at("/spec/replicas"), Some(&json!(5)));
    assert!(w.owns("autoscaler", Operation::Apply, "/f:spec/f:replicas"));
    assert!(!w.owns("kubectl", Operation::Apply, "/f:spec/f:replicas"));
    // Both still co-own the image (same value, no conflict).
    let img = "/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"nginx\"}/f:image";
    assert!(w.owns("kubectl", Operation::Apply, img));
    assert!(w.owns("autoscaler", Operation::Apply, img));
}

#[test]
fn conflict_with_an_update_manager_names_its_api_version() {
    let mut w = World::deployment();
    w.apply("kubectl", nginx_deployment(2, "nginx:1"));
    // kubectl edit (an Update) changes the image.
    let mut edited = w.obj.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    w.update("kubectl-edit", edited);
    let img = "/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"nginx\"}/f:image";
    assert!(w.owns("kubectl-edit", Operation::Update, img));
    assert!(!w.owns("kubectl", Operation::Apply, img));

    let ApplyError::Conflicts(c) = w
        .try_apply("kubectl", nginx_deployment(2, "nginx:1"), false)
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(c.0.len(), 1);
    assert_eq!(
        c.0[0].field(),
        ".spec.template.spec.containers[name=\"nginx\"].image"
    );
    assert_eq!(
        c.0[0].message(),
        "conflict with \"kubectl-edit\" using apps/v1"
    );
}

#[test]
fn field_dropped_by_its_only_owner_disappears_but_a_co_owned_one_stays() {
    let mut w = World::deployment();
    let mut a = nginx_deployment(2, "nginx:1");
    a["metadata"]["labels"] = json!({"app": "web", "tier": "fe", "env": "prod"});
    w.apply("a", a);
    // b co-owns env with the same value.
    w.apply(
        "b",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
               "labels": {"env": "prod"}}}),
    );
    // a stops applying tier and env.
    w.apply("a", nginx_deployment(2, "nginx:1"));
    assert_eq!(
        w.at("/metadata/labels"),
        Some(&json!({"app": "web", "env": "prod"}))
    );
}

#[test]
fn containers_merge_by_name_and_dropped_containers_are_removed() {
    let mut w = World::deployment();
    let mut two = nginx_deployment(1, "nginx:1");
    two["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "nginx", "image": "nginx:1"},
        {"name": "sidecar", "image": "busybox"}
    ]);
    w.apply("a", two);
    // Another manager adds a third container and an env var to nginx.
    w.apply(
        "b",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "env": [{"name": "X", "value": "1"}]},
            {"name": "logger", "image": "fluentd"}
        ]}}}}),
    );
    let names = |w: &World| -> Vec<String> {
        w.at("/spec/template/spec/containers")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&w), ["nginx", "sidecar", "logger"]);
    assert_eq!(
        w.at("/spec/template/spec/containers/0/env"),
        Some(&json!([{"name": "X", "value": "1"}]))
    );
    // a drops the sidecar: removed. nginx stays (a and b own it), with b's env.
    w.apply("a", nginx_deployment(1, "nginx:1"));
    assert_eq!(names(&w), ["nginx", "logger"]);
    assert_eq!(
        w.at("/spec/template/spec/containers/0/env/0/name"),
        Some(&json!("X"))
    );
}

#[test]
fn associative_list_order_follows_structured_merge_diff() {
    let mut w = World::new("v1", "Pod");
    let pod = |names: &[&str]| {
        let cs: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "image": "x"}))
            .collect();
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": cs}})
    };
    w.apply("a", pod(&["a", "b", "c"]));
    w.apply("z", pod(&["c", "a"]));
    let names: Vec<&str> = w.obj["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c", "a"]);
    w.apply("y", pod(&["d", "b"]));
    let names: Vec<&str> = w.obj["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["d", "b", "c", "a"]);
}

#[test]
fn sets_unite_atomic_lists_and_maps_conflict() {
    let mut w = World::new("v1", "Pod");
    w.apply(
        "a",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["x"]},
               "spec": {"nodeSelector": {"disk": "ssd"},
                        "containers": [{"name": "c", "args": ["1", "2"]}]}}),
    );
    w.apply(
        "b",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["y"]}}),
    );
    assert_eq!(w.at("/metadata/finalizers"), Some(&json!(["x", "y"])));
    assert!(w.owns("b", Operation::Apply, "/f:metadata/f:finalizers/v:\"y\""));

    // nodeSelector is an atomic map, args an atomic list: whole-value conflicts.
    let err = w
        .try_apply(
            "b",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["y"]},
                   "spec": {"nodeSelector": {"zone": "a"},
                            "containers": [{"name": "c", "args": ["3"]}]}}),
            false,
        )
        .unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!()
    };
    let fields: Vec<String> = c.0.iter().map(|c| c.field()).collect();
    assert_eq!(
        fields,
        [".spec.containers[name=\"c\"].args", ".spec.nodeSelector"]
    );
    assert!(c
        .message()
        .starts_with("Apply failed with 2 conflicts: conflicts with \"a\":\n- "));
    w.try_apply(
        "b",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["y"]},
               "spec": {"nodeSelector": {"zone": "a"}, "containers": [{"name": "c", "args": ["3"]}]}}),
        true,
    )
    .unwrap();
    assert_eq!(w.at("/spec/nodeSelector"), Some(&json!({"zone": "a"})));
    assert_eq!(w.at("/spec/containers/0/args"), Some(&json!(["3"])));
}

#[test]
fn update_tracks_changes_and_takes_ownership() {
    let mut w = World::deployment();
    // Create through a POST by kubectl-create.
    w.update("kubectl-create", nginx_deployment(1, "nginx:1"));
    let mf = w.managed();
    assert_eq!(mf.entries().len(), 1);
    let e = &mf.entries()[0];
    assert_eq!(
        (e.manager.as_str(), e.operation, e.api_version.as_str()),
        ("kubectl-create", Operation::Update, "apps/v1")
    );
    assert!(w.owns("kubectl-create", Operation::Update, "/f:spec/f:replicas"));
    assert!(!w.owns("kubectl-create", Operation::Update, "/f:metadata/f:name"));
    // Labels were added as a whole: the map itself is owned too (".").
    assert!(w.owns(
        "kubectl-create",
        Operation::Update,
        "/f:metadata/f:labels/."
    ));

    // A scale by another manager moves .spec.replicas only.
    let mut scaled = w.obj.clone();
    scaled["spec"]["replicas"] = json!(4);
    w.update("kube-controller-manager", scaled);
    assert!(w.owns(
        "kube-controller-manager",
        Operation::Update,
        "/f:spec/f:replicas"
    ));
    assert!(!w.owns("kubectl-create", Operation::Update, "/f:spec/f:replicas"));
    assert!(w.owns("kubectl-create", Operation::Update, "/f:spec/f:selector"));

    // Writing only untracked metadata creates no entry.
    let mut touched = w.obj.clone();
    touched["metadata"]["resourceVersion"] = json!("42");
    w.update("noop", touched);
    assert!(w.managed().entries().iter().all(|e| e.manager != "noop"));

    // An apply of replicas now conflicts with the controller.
    let ApplyError::Conflicts(c) = w
        .try_apply("kubectl", nginx_deployment(2, "nginx:1"), false)
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(
        c.0[0].message(),
        "conflict with \"kube-controller-manager\" using apps/v1"
    );
}

#[test]
fn removed_fields_leave_every_manager() {
    let mut w = World::deployment();
    let mut d = nginx_deployment(1, "nginx:1");
    d["metadata"]["labels"]["tier"] = json!("fe");
    w.apply("a", d);
    let mut edited = w.obj.clone();
    edited["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .shift_remove("tier");
    w.update("editor", edited);
    assert!(!w.owns("a", Operation::Apply, "/f:metadata/f:labels/f:tier"));
    assert!(w.managed().entries().iter().all(|e| e.manager != "editor"));
}

#[test]
fn managed_fields_json_round_trip_and_order() {
    let mf = json!([
        {"manager": "z", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:02Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:b": {}}}},
        {"manager": "y", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:01Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:c": {}}}, "subresource": "status"},
        {"manager": "a", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}
    ]);
    let parsed = ManagedFields::from_json(&mf).unwrap();
    let out = parsed.to_json();
    let managers: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["a", "y", "z"]);
    assert_eq!(out[1]["subresource"], "status");
    assert_eq!(ManagedFields::from_json(&out).unwrap(), parsed);

    // Validation as upstream.
    let bad = |entry: Value| {
        ManagedFields::from_json(&json!([entry]))
            .unwrap_err()
            .message
    };
    assert!(bad(
        json!({"manager": "m", "operation": "Patch", "apiVersion": "v1",
                       "fieldsType": "FieldsV1"})
    )
    .contains("operation must be `Apply` or `Update`"));
    assert!(
        bad(json!({"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1"}))
            .contains("apiVersion must not be empty")
    );
    assert!(
        bad(json!({"manager": "m", "operation": "Apply", "apiVersion": "v1"}))
            .contains("missing fieldsType")
    );
}

#[test]
fn managed_fields_for_update_follows_decode_live_or_new() {
    let live = json!({"metadata": {"managedFields": [
        {"manager": "a", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {}}}
    ]}});
    // Not sent: the live ones.
    assert_eq!(
        managed_fields_for_update(&live, &json!({}), false)
            .entries()
            .len(),
        1
    );
    // Sent empty: reset.
    let reset = json!({"metadata": {"managedFields": []}});
    assert!(managed_fields_for_update(&live, &reset, false).is_empty());
    let reset = json!({"metadata": {"managedFields": [{}]}});
    assert!(managed_fields_for_update(&live, &reset, false).is_empty());
    // Subresources always keep the live ones.
    assert_eq!(
        managed_fields_for_update(&live, &reset, true)
            .entries()
            .len(),
        1
    );
}

#[test]
fn update_managers_are_capped_into_ancient_changes() {
    let schema = schema();
    let root = schema.root("v1", "ConfigMap");
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                         "data": {}});
    let mut managed = ManagedFields::new();
    for i in 0..12 {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("v");
        let time = format!("2024-01-01T00:00:{i:02}Z");
        let req = Request {
            manager: &format!("m{i}"),
            api_version: "v1",
            subresource: "",
            time: &time,
            ignored: None,
        };
        managed = update(&obj, &next, &managed, &req, &schema, root.as_ref()).unwrap();
        obj = next;
    }
    let entries = managed.entries();
    assert_eq!(entries.len(), 10);
    let ancient = entries
        .iter()
        .find(|e| e.manager == "ancient-changes")
        .expect("bucket");
    assert_eq!(
        ancient.fields.len(),
        3,
        "m0, m1 and m2 merged: {}",
        ancient.fields
    );
    assert!(entries
        .iter()
        .all(|e| !["m0", "m1", "m2"].contains(&e.manager.as_str())));
}

#[test]
fn invalid_configurations_are_rejected() {
    let mut w = World::new("v1", "Pod");
    let dup = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
    let ApplyError::Invalid(e) = w.try_apply("a", dup, false).unwrap_err() else {
        panic!()
    };
    assert_eq!(e.kind, ErrorKind::Unprocessable);
    assert!(
        e.to_string()
            .contains("duplicate entries for key [name=\"a\"]"),
        "{e}"
    );
    let no_key = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                        "spec": {"containers": [{"image": "a"}]}});
    let ApplyError::Invalid(e) = w.try_apply("a", no_key, false).unwrap_err() else {
        panic!()
    };
    assert!(e.to_string().contains("omits all key fields"), "{e}");
    let with_mf = json!({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": "p", "managedFields": [{}]}});
    let ApplyError::Invalid(e) = w.try_apply("a", with_mf, false).unwrap_err() else {
        panic!()
    };
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert!(e.to_string().contains("metadata.managedFields must be nil"));
}

#[test]
fn ignored_fields_are_not_tracked() {
    let schema = schema();
    let root = schema.root("apps/v1", "Deployment");
    let status = field_set_of(&[&["status"]]);
    let req = Request {
        manager: "a",
        api_version: "apps/v1",
        subresource: "",
        time: "2024-01-01T00:00:00Z",
        ignored: Some(&status),
    };
    let mut cfg = nginx_deployment(1, "x");
    cfg["status"] = json!({"replicas": 3});
    let out = apply(
        &json!({}),
        &cfg,
        &ManagedFields::new(),
        false,
        &req,
        &schema,
        root.as_ref(),
    )
    .unwrap();
    let fields = out.managed_fields.entries()[0].fields.to_fields_v1();
    assert!(fields.get("f:status").is_none());
    assert!(fields.get("f:spec").is_some());
}

#[test]
fn schemaless_objects_use_deduced_types() {
    // A custom resource without a schema: maps granular, lists atomic.
    let mut w = World::new("example.com/v1", "Widget");
    w.apply(
        "a",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"size": 1, "tags": ["x"], "opts": {"a": 1}}}),
    );
    w.apply(
        "b",
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"opts": {"b": 2}}}),
    );
    assert_eq!(w.at("/spec/opts"), Some(&json!({"a": 1, "b": 2})));
    assert!(w.owns("a", Operation::Apply, "/f:spec/f:tags"));
    let ApplyError::Conflicts(c) = w
        .try_apply(
            "b",
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                   "spec": {"opts": {"b": 2}, "tags": ["y"]}}),
            false,
        )
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(c.0[0].field(), ".spec.tags");
}

#[test]
fn structs_applied_whole_by_one_manager_are_pruned_whole() {
    let mut w = World::deployment();
    let mut d = nginx_deployment(1, "x");
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
    w.apply("a", d);
    w.apply("a", nginx_deployment(1, "x"));
    assert_eq!(w.at("/spec/strategy"), None);
    assert_eq!(w.at("/spec/replicas"), Some(&json!(1)));
}

#[test]
fn conflict_paths_render_like_upstream() {
    use reddwarf_merge::{Path, PathElement};
    let p = Path(vec![
        PathElement::field("spec"),
        PathElement::field("containers"),
        PathElement::key([("name".to_string(), json!("nginx"))]),
        PathElement::field("ports"),
        PathElement::key([
            ("protocol".to_string(), json!("TCP")),
            ("containerPort".to_string(), json!(80)),
        ]),
        PathElement::field("hostPort"),
    ]);
    assert_eq!(
        p.to_string(),
        ".spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"].hostPort"
    );
    let set_item = Path(vec![
        PathElement::field("metadata"),
        PathElement::field("finalizers"),
        PathElement::Value(json!("a")),
    ]);
    assert_eq!(set_item.to_string(), ".metadata.finalizers[=\"a\"]");
}

#[test]
fn atomic_struct_items_are_owned_whole() {
    let schema = schema();
    let root = schema.root("v1", "Pod");
    let pod = json!({"spec": {"imagePullSecrets": [{"name": "a"}],
                              "securityContext": {"runAsUser": 1}}});
    let set = fields_of(&pod, &schema, root.as_ref()).unwrap();
    assert_eq!(
        set.to_fields_v1(),
        json!({"f:spec": {
            "f:imagePullSecrets": {"k:{\"name\":\"a\"}": {}},
            "f:securityContext": {"f:runAsUser": {}}
        }})
    );
}

#[test]
fn subresource_managers_are_separate_entries() {
    let schema = schema();
    let root = schema.root("apps/v1", "Deployment");
    let obj = nginx_deployment(1, "x");
    let mut with_status = obj.clone();
    with_status["status"] = json!({"replicas": 1});
    let req = Request {
        manager: "kube-controller-manager",
        api_version: "apps/v1",
        subresource: "status",
        time: "2024-01-01T00:00:00Z",
        ignored: None,
    };
    let mf = update(
        &obj,
        &with_status,
        &ManagedFields::new(),
        &req,
        &schema,
        root.as_ref(),
    )
    .unwrap();
    let json = mf.to_json();
    assert_eq!(json[0]["subresource"], "status");
    assert_eq!(
        json[0]["fieldsV1"],
        json!({"f:status": {".": {}, "f:replicas": {}}})
    );
    assert!(mf
        .get(
            "kube-controller-manager",
            Operation::Update,
            "apps/v1",
            "status"
        )
        .is_some());
    assert!(mf
        .get("kube-controller-manager", Operation::Update, "apps/v1", "")
        .is_none());
}

#[test]
fn migration_from_client_side_apply() {
    const LAST: &str = "kubectl.kubernetes.io/last-applied-configuration";
    let mut w = World::deployment();
    // `kubectl apply` (client side) created the object: an Update entry and the annotation.
    let config = nginx_deployment(2, "nginx:1");
    let mut created = config.clone();
    created["metadata"]["annotations"] = json!({LAST: config.to_string()});
    w.update("kubectl-client-side-apply", created);

    // Switching to server-side apply: the fields kubectl last applied, still at their live
    // value, are not conflicts.
    w.try_apply("kubectl", nginx_deployment(3, "nginx:1"), false)
        .unwrap();
    assert_eq!(w.at("/spec/replicas"), Some(&json!(3)));
    assert!(w.owns("kubectl", Operation::Apply, "/f:spec/f:replicas"));
    assert!(!w.owns(
        "kubectl-client-side-apply",
        Operation::Update,
        "/f:spec/f:replicas"
    ));
    // The annotation now holds the new configuration (Go's JSON: sorted keys, newline).
    let last = w.at(&format!(
        "/metadata/annotations/{}",
        LAST.replace('/', "~1")
    ));
    let last: Value = serde_json::from_str(last.unwrap().as_str().unwrap()).unwrap();
    assert_eq!(last, nginx_deployment(3, "nginx:1"));

    // A field someone else changed since is still a conflict.
    let mut w = World::deployment();
    let mut created = config.clone();
    created["metadata"]["annotations"] = json!({LAST: config.to_string()});
    w.update("kubectl-client-side-apply", created);
    let mut scaled = w.obj.clone();
    scaled["spec"]["replicas"] = json!(5);
    w.update("hpa", scaled);
    let err = w
        .try_apply("kubectl", nginx_deployment(3, "nginx:2"), false)
        .unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!()
    };
    let fields: Vec<String> = c.0.iter().map(|c| c.field()).collect();
    assert_eq!(fields, [".spec.replicas"], "the image conflict is allowed");
    assert_eq!(c.0[0].message(), "conflict with \"hpa\" using apps/v1");
}
