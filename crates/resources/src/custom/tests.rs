use serde_json::{json, Value};

use super::*;

fn crd(conditions: &[&str]) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object"}},
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.selector"}},
                 "selectableFields": [{"jsonPath": ".spec.color"}],
                 "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                 ]},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v1alpha1", "served": false, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
            ],
        },
        "status": {
            "acceptedNames": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"], "categories": ["all"]},
            "conditions": conditions.iter().map(|c| json!({"type": c, "status": "True"})).collect::<Vec<_>>(),
        },
    })
}

#[test]
fn served_versions_become_entries_once_names_are_accepted() {
    assert!(kinds_from_crd(&crd(&[])).is_empty());
    let kinds = kinds_from_crd(&crd(&["NamesAccepted", "Established"]));
    let versions: Vec<&str> = kinds.iter().map(|k| k.version).collect();
    assert_eq!(versions, ["v1", "v1beta1"], "by priority");
    let v1 = &kinds[0];
    assert_eq!(
        (v1.group, v1.kind, v1.plural),
        ("example.com", "Widget", "widgets")
    );
    assert_eq!(v1.short_names, ["wd"]);
    assert_eq!(v1.categories, ["all"]);
    assert!(v1.namespaced && v1.status && v1.scale);
    assert!(!kinds[1].status, "subresources are per version");
    assert_eq!(v1.selectable_fields[0].name, "spec.color");
    // Both versions share the collection; a stored object reads back in the asked version.
    let stored = json!({"apiVersion": "example.com/v1", "kind": "Widget"});
    let alias = kinds[1].storage.expect("alias");
    assert_eq!(
        alias.from_storage.apply(&stored)["apiVersion"],
        "example.com/v1beta1"
    );
    assert_eq!(
        alias.to_storage.apply(&stored)["apiVersion"],
        "example.com/v1"
    );
    assert_eq!(kinds[1].storage_plural(), "widgets");
}

#[test]
fn printer_columns_scale_and_generation_follow_the_definition() {
    let kinds = kinds_from_crd(&crd(&["NamesAccepted"]));
    let v1 = &kinds[0];
    let names: Vec<&str> = v1.strategy.columns(v1).iter().map(|c| c.name).collect();
    assert_eq!(names, ["Name", "Size", "Ready"]);
    let obj = json!({"metadata": {"name": "a"}, "spec": {"size": 3},
        "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
    assert_eq!(
        v1.strategy.row(v1, &obj, 0),
        vec![json!("a"), json!(3), json!("True")]
    );
    let paths = v1.strategy.scale_paths();
    assert_eq!(paths.spec_replicas, "/spec/size");
    assert_eq!(paths.status_replicas, "/status/size");
    // Without printer columns: Name and an Age date column.
    let beta = &kinds[1];
    let cols = beta.strategy.columns(beta);
    assert_eq!((cols[1].name, cols[1].type_), ("Age", "date"));
    // Generation: any change but metadata, and status when it has its own endpoint.
    let old = json!({"metadata": {"labels": {}}, "spec": {"size": 1}, "status": {"n": 1}});
    let mut new = old.clone();
    new["status"]["n"] = json!(2);
    new["metadata"]["labels"]["a"] = json!("b");
    assert!(!v1.generation_changed(&old, &new));
    assert!(beta.generation_changed(&old, &new));
    new["extra"] = json!(1);
    assert!(v1.generation_changed(&old, &new));
}

#[test]
fn printer_paths_parse_and_find() {
    let obj =
        json!({"a": {"b": [{"n": 1, "t": "x"}, {"n": 2, "t": "y"}]}, "m": {"k.with.dots": "v"}});
    let find = |p: &str| -> Vec<Value> {
        PrinterPath::parse(p)
            .unwrap()
            .find(&obj)
            .into_iter()
            .cloned()
            .collect()
    };
    assert_eq!(find(".a.b[1].n"), [json!(2)]);
    assert_eq!(find(".a.b[-1].t"), [json!("y")]);
    assert_eq!(find(".a.b[*].n"), [json!(1), json!(2)]);
    assert_eq!(find(".a.b[?(@.t=='x')].n"), [json!(1)]);
    assert_eq!(find(".a.b[?(@.n != 1)].t"), [json!("y")]);
    assert_eq!(find(".m['k.with.dots']"), [json!("v")]);
    assert!(find(".missing").is_empty());
    assert!(PrinterPath::parse(".a[").is_err());
    assert!(PrinterPath::parse("a b").is_err());
}

#[test]
fn names_are_interned_once() {
    assert!(std::ptr::eq(intern("frobs"), intern("frobs")));
    let a = intern_list(&["x".into(), "y".into()]);
    let b = intern_list(&["x".into(), "y".into()]);
    assert!(std::ptr::eq(a, b));
}

#[test]
fn versions_sort_by_upstream_priority() {
    let mut v = vec![
        "v1alpha1", "v2", "foo", "v1beta2", "v1", "v10", "v1beta1", "bar",
    ];
    v.sort_by_key(|x| version_priority(x));
    assert_eq!(
        v,
        ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"]
    );
}

#[test]
fn only_objects_that_may_predate_the_schema_are_defaulted_on_read() {
    let crd = |generation: i64, versions: Value| {
        json!({
            "metadata": {"name": "things.example.com", "generation": generation},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Thing", "plural": "things"}, "versions": versions},
            "status": {"acceptedNames": {"kind": "Thing", "plural": "things"},
                "conditions": [{"type": "Established", "status": "True"}]},
        })
    };
    let defaulted =
        json!({"type": "object", "properties": {"a": {"type": "string", "default": "x"}}});
    let one = json!([{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": defaulted}}]);
    let two = json!([
        {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": defaulted}},
        {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": defaulted}},
    ]);
    let on_read = |c: Value| kinds_from_crd(&c)[0].strategy.defaults_on_read();
    assert!(!on_read(crd(1, one.clone())), "one schema since creation");
    assert!(on_read(crd(2, one)), "the schema may have changed");
    assert!(
        on_read(crd(1, two)),
        "another version may have written them"
    );
}
