//! Objects without `metadata.managedFields`, for the in-process controllers: they never read
//! field ownership, and dropping it keeps every controller cache several times smaller
//! (upstream's controller manager strips it from its informers the same way). Works on the
//! stored JSON bytes, so watch frames stay spliced rather than re-encoded.

use std::borrow::Cow;

/// The request header the in-process client sets to ask for this.
pub const OMIT_MANAGED_FIELDS: &str = "x-reddwarf-omit-managed-fields";

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index just past the string starting at `i` (which is `"`).
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Index just past the JSON value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace()
            {
                j += 1;
            }
            Some(j)
        }
    }
}

/// Calls `f(key, key_start, value_start, value_end)` for each member of the object at `i`.
fn members(
    b: &[u8],
    i: usize,
    mut f: impl FnMut(&[u8], usize, usize, usize) -> bool,
) -> Option<()> {
    let mut i = skip_ws(b, i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    while i < b.len() && b[i] != b'}' {
        let key_start = i;
        let key_end = skip_string(b, i)?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = skip_value(b, value_start)?;
        if !f(
            &b[key_start + 1..key_end - 1],
            key_start,
            value_start,
            value_end,
        ) {
            return Some(());
        }
        i = skip_ws(b, value_end);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
    }
    Some(())
}

/// The object without `metadata.managedFields` (unchanged when it has none).
pub fn without_managed_fields(b: &[u8]) -> Cow<'_, [u8]> {
    let mut meta = None;
    members(b, 0, |k, _, vs, _| {
        if k == b"metadata" {
            meta = Some(vs);
            return false;
        }
        true
    });
    let Some(meta_start) = meta else {
        return Cow::Borrowed(b);
    };
    let mut span = None;
    members(b, meta_start, |k, ks, _, ve| {
        if k == b"managedFields" {
            span = Some((ks, ve));
            return false;
        }
        true
    });
    let Some((start, end)) = span else {
        return Cow::Borrowed(b);
    };
    // Take a following comma with it, or else a preceding one.
    let after = skip_ws(b, end);
    let (cut_start, cut_end) = if b.get(after) == Some(&b',') {
        (start, after + 1)
    } else {
        let mut p = start;
        while p > 0 && b[p - 1].is_ascii_whitespace() {
            p -= 1;
        }
        if p > 0 && b[p - 1] == b',' {
            (p - 1, end)
        } else {
            (start, end)
        }
    };
    let mut out = Vec::with_capacity(b.len() - (cut_end - cut_start));
    out.extend_from_slice(&b[..cut_start]);
    out.extend_from_slice(&b[cut_end..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn strip(v: &Value) -> Value {
        let bytes = serde_json::to_vec(v).unwrap();
        serde_json::from_slice(&without_managed_fields(&bytes)).unwrap()
    }

    #[test]
    fn drops_only_metadata_managed_fields() {
        let mf = json!([{"manager": "m", "fieldsV1": {"f:data": {"f:x]\"{": {}}}}]);
        for v in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "managedFields": mf, "uid": "u"}, "data": {"managedFields": "[keep]"}}),
            json!({"metadata": {"managedFields": mf}}),
            json!({"metadata": {"name": "a", "managedFields": mf}}),
            json!({"data": {"managedFields": []}, "metadata": {"managedFields": mf, "name": "b"}}),
        ] {
            let mut want = v.clone();
            want["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("managedFields");
            assert_eq!(strip(&v), want);
        }
        let none = json!({"metadata": {"name": "a"}, "spec": {"managedFields": [1]}});
        let bytes = serde_json::to_vec(&none).unwrap();
        assert!(matches!(without_managed_fields(&bytes), Cow::Borrowed(_)));
        // Pretty-printed input works too.
        let pretty =
            serde_json::to_vec_pretty(&json!({"metadata": {"a": 1, "managedFields": mf}})).unwrap();
        let out: Value = serde_json::from_slice(&without_managed_fields(&pretty)).unwrap();
        assert_eq!(out, json!({"metadata": {"a": 1}}));
    }
}

/// The bytes of a stored object's `metadata` value.
fn metadata_member(b: &[u8]) -> Option<&[u8]> {
    let mut span = None;
    members(b, 0, |k, _, vs, ve| {
        if k == b"metadata" {
            span = Some((vs, ve));
            return false;
        }
        true
    })?;
    span.map(|(s, e)| &b[s..e])
}

/// Appends the metadata-only form (`PartialObjectMetadata`) of a stored object to `out`,
/// spliced from its bytes: a list of it no longer parses every object whole (the garbage
/// collector lists the metadata of every object when it starts).
pub fn push_partial(b: &[u8], v1beta1: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"kind":"PartialObjectMetadata","apiVersion":"#);
    out.extend_from_slice(if v1beta1 {
        br#""meta.k8s.io/v1beta1""#
    } else {
        br#""meta.k8s.io/v1""#
    });
    out.extend_from_slice(br#","metadata":"#);
    out.extend_from_slice(metadata_member(b).unwrap_or(b"{}"));
    out.push(b'}');
}

#[cfg(test)]
mod partial_tests {
    #[test]
    fn the_spliced_partial_form_equals_the_parsed_one() {
        let obj = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"d","labels":{"x":"y \"}"},"resourceVersion":"5"},"data":{"metadata":"{not this}"}}"#;
        for v1beta1 in [false, true] {
            let mut spliced = Vec::new();
            super::push_partial(obj, v1beta1, &mut spliced);
            let parsed =
                crate::codec::partial_metadata(&serde_json::from_slice(obj).unwrap(), v1beta1);
            assert_eq!(spliced, serde_json::to_vec(&parsed).unwrap());
        }
    }
}
