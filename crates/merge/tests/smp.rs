//! Strategic merge patch: the table in `data/smp.yaml`, and patch generation round trips from
//! `data/two_way.yaml`.

use reddwarf_merge::{create_two_way_merge_patch, strategic_merge, MemorySchema, Schema, TypeRef};
use serde_json::Value;

fn schema() -> MemorySchema {
    let doc: Value = serde_json::from_str(include_str!("data/schema.json")).unwrap();
    MemorySchema::from_json(&doc).unwrap()
}

fn cases(text: &str) -> Vec<Value> {
    let v: Value = serde_yaml::from_str(text).unwrap();
    v.as_array().unwrap().clone()
}

fn root(schema: &MemorySchema, case: &Value) -> Option<TypeRef> {
    match case
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("MergeItem")
    {
        "MergeItem" => schema.root("test/v1", "MergeItem"),
        "Deployment" => schema.root("apps/v1", "Deployment"),
        "Pod" => schema.root("v1", "Pod"),
        _ => None,
    }
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

#[test]
fn strategic_merge_table() {
    let schema = schema();
    let mut failures = Vec::new();
    let all = cases(include_str!("data/smp.yaml"));
    for case in &all {
        let name = case["description"].as_str().unwrap();
        let root = root(&schema, case);
        let got = strategic_merge(&case["original"], &case["patch"], &schema, root.as_ref());
        match (case.get("result"), case.get("error"), got) {
            (Some(want), _, Ok(got)) if *want == got => {}
            (_, Some(Value::String(want)), Err(e)) if e.to_string().contains(want.as_str()) => {}
            (_, _, got) => failures.push(format!(
                "--- {name}\nexpected:\n{}{}\ngot:\n{}",
                case.get("result").map(yaml).unwrap_or_default(),
                case.get("error")
                    .map(|e| format!("error {e}"))
                    .unwrap_or_default(),
                match got {
                    Ok(v) => yaml(&v),
                    Err(e) => format!("error: {e} ({:?})\n", e.kind),
                }
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn two_way_patches_round_trip() {
    let schema = schema();
    let mut failures = Vec::new();
    let all = cases(include_str!("data/two_way.yaml"));
    for case in &all {
        let name = case["description"].as_str().unwrap();
        let root = root(&schema, case);
        let (original, modified) = (&case["original"], &case["modified"]);
        let patch = match create_two_way_merge_patch(original, modified, &schema, root.as_ref()) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("--- {name}: {e}"));
                continue;
            }
        };
        if let Some(want) = case.get("twoWay") {
            if *want != patch {
                failures.push(format!(
                    "--- {name}\nexpected patch:\n{}got:\n{}",
                    yaml(want),
                    yaml(&patch)
                ));
            }
        }
        let want = case.get("result").unwrap_or(modified);
        match strategic_merge(original, &patch, &schema, root.as_ref()) {
            Ok(got) if got == *want => {}
            other => failures.push(format!(
                "--- {name}: applying\n{}to the original gave\n{:?}",
                yaml(&patch),
                other
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
