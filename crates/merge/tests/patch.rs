//! JSON patch (RFC 6902) and JSON merge patch (RFC 7396).

use reddwarf_merge::{create_merge_patch, json_patch, merge_patch, ErrorKind};
use serde_json::{json, Value};

fn doc() -> Value {
    json!({
        "metadata": {"name": "a", "labels": {"x": "1", "a/b": "slash", "t~n": "tilde"}},
        "spec": {"list": [1, 2, 3], "replicas": 1}
    })
}

#[test]
fn json_patch_operations() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "add a member",
            json!([{"op": "add", "path": "/spec/paused", "value": true}]),
            json!(true),
        ),
        (
            "add replaces an existing member",
            json!([{"op": "add", "path": "/spec/replicas", "value": 3}]),
            json!(3),
        ),
        (
            "add into a list at an index",
            json!([{"op": "add", "path": "/spec/list/1", "value": 9}]),
            json!([1, 9, 2, 3]),
        ),
        (
            "add at the end with -",
            json!([{"op": "add", "path": "/spec/list/-", "value": 4}]),
            json!([1, 2, 3, 4]),
        ),
        (
            "add at index == length",
            json!([{"op": "add", "path": "/spec/list/3", "value": 4}]),
            json!([1, 2, 3, 4]),
        ),
        (
            "remove a list item",
            json!([{"op": "remove", "path": "/spec/list/0"}]),
            json!([2, 3]),
        ),
        (
            "replace",
            json!([{"op": "replace", "path": "/spec/list", "value": []}]),
            json!([]),
        ),
        (
            "move within a list",
            json!([{"op": "move", "from": "/spec/list/0", "path": "/spec/list/-"}]),
            json!([2, 3, 1]),
        ),
        (
            "copy",
            json!([{"op": "copy", "from": "/spec/replicas", "path": "/spec/copy"}]),
            json!(1),
        ),
        (
            "test then replace",
            json!([
                {"op": "test", "path": "/spec/replicas", "value": 1.0},
                {"op": "replace", "path": "/spec/replicas", "value": 2}
            ]),
            json!(2),
        ),
        (
            "escaped pointer tokens",
            json!([
                {"op": "remove", "path": "/metadata/labels/a~1b"},
                {"op": "replace", "path": "/metadata/labels/t~0n", "value": "T"}
            ]),
            json!({"x": "1", "t~n": "T"}),
        ),
    ];
    let pointers = [
        "/spec/paused",
        "/spec/replicas",
        "/spec/list",
        "/spec/list",
        "/spec/list",
        "/spec/list",
        "/spec/list",
        "/spec/list",
        "/spec/copy",
        "/spec/replicas",
        "/metadata/labels",
    ];
    for ((name, patch, want), pointer) in cases.into_iter().zip(pointers) {
        let out = json_patch(&doc(), &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.pointer(pointer), Some(&want), "{name}");
    }
    // Replacing the whole document.
    let out = json_patch(
        &doc(),
        &json!([{"op": "add", "path": "", "value": {"a": 1}}]),
    )
    .unwrap();
    assert_eq!(out, json!({"a": 1}));
    // Moving a member keeps the rest.
    let out = json_patch(
        &doc(),
        &json!([{"op": "move", "from": "/metadata/name", "path": "/spec/name"}]),
    )
    .unwrap();
    assert_eq!(out.pointer("/spec/name"), Some(&json!("a")));
    assert_eq!(out.pointer("/metadata/name"), None);
}

#[test]
fn json_patch_is_all_or_nothing() {
    let failing: Vec<(&str, Value, ErrorKind, &str)> = vec![
        (
            "failed test",
            json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/spec/replicas", "value": 1}
            ]),
            ErrorKind::Unprocessable,
            "operation 1",
        ),
        (
            "remove of a missing member",
            json!([{"op": "remove", "path": "/spec/nope"}]),
            ErrorKind::Unprocessable,
            "does not exist",
        ),
        (
            "replace of a missing member",
            json!([{"op": "replace", "path": "/spec/nope", "value": 1}]),
            ErrorKind::Unprocessable,
            "does not exist",
        ),
        (
            "add under a missing parent",
            json!([{"op": "add", "path": "/nope/x", "value": 1}]),
            ErrorKind::Unprocessable,
            "does not exist",
        ),
        (
            "index out of bounds",
            json!([{"op": "add", "path": "/spec/list/7", "value": 1}]),
            ErrorKind::Unprocessable,
            "out of bounds",
        ),
        (
            "leading zero index",
            json!([{"op": "remove", "path": "/spec/list/01"}]),
            ErrorKind::Unprocessable,
            "does not exist",
        ),
        (
            "move into its own child",
            json!([{"op": "move", "from": "/spec", "path": "/spec/list/0"}]),
            ErrorKind::Unprocessable,
            "children",
        ),
        (
            "unknown op",
            json!([{"op": "frobnicate", "path": "/spec"}]),
            ErrorKind::BadRequest,
            "unexpected operation",
        ),
        (
            "missing value",
            json!([{"op": "add", "path": "/spec/x"}]),
            ErrorKind::BadRequest,
            "missing \"value\"",
        ),
        (
            "pointer without a slash",
            json!([{"op": "remove", "path": "spec"}]),
            ErrorKind::BadRequest,
            "must start with /",
        ),
        (
            "not a list",
            json!({"op": "remove", "path": "/spec"}),
            ErrorKind::BadRequest,
            "list of operations",
        ),
    ];
    for (name, patch, kind, msg) in failing {
        let err = json_patch(&doc(), &patch).unwrap_err();
        assert_eq!(err.kind, kind, "{name}: {err}");
        assert!(err.to_string().contains(msg), "{name}: {err}");
    }
}

#[test]
fn merge_patch_rfc7396_examples() {
    // The examples of RFC 7396 appendix A.
    let examples = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (original, patch, want) in examples {
        assert_eq!(merge_patch(&original, &patch), want, "{original} + {patch}");
    }
}

#[test]
fn merge_patch_generation_round_trips() {
    let a = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": "gone"});
    let b = json!({"a": 1, "b": {"c": [3], "d": "x", "f": true}, "g": {"h": 1}});
    let patch = create_merge_patch(&a, &b);
    assert_eq!(
        patch,
        json!({"e": null, "b": {"c": [3], "f": true}, "g": {"h": 1}})
    );
    assert_eq!(merge_patch(&a, &patch), b);
}
