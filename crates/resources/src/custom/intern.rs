//! Interned names for catalogue entries built at run time: one `'static` copy per distinct
//! string (or list), so definitions that come and go do not grow memory without bound.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::SelectableField;

#[derive(Default)]
struct Pool {
    strings: HashMap<String, &'static str>,
    lists: HashMap<Vec<String>, &'static [&'static str]>,
    fields: HashMap<Vec<String>, &'static [SelectableField]>,
}

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn string_in(p: &mut Pool, s: &str) -> &'static str {
    if let Some(v) = p.strings.get(s) {
        return v;
    }
    let v: &'static str = Box::leak(s.to_string().into_boxed_str());
    p.strings.insert(s.to_string(), v);
    v
}

/// The `'static` copy of `s`.
pub fn intern(s: &str) -> &'static str {
    string_in(&mut pool(), s)
}

/// The `'static` copy of a list of strings (short names, categories).
pub fn intern_list(items: &[String]) -> &'static [&'static str] {
    let mut p = pool();
    if let Some(v) = p.lists.get(items) {
        return v;
    }
    let list: Vec<&'static str> = items.iter().map(|s| string_in(&mut p, s)).collect();
    let v: &'static [&'static str] = Box::leak(list.into_boxed_slice());
    p.lists.insert(items.to_vec(), v);
    v
}

/// The `'static` selectable fields of a custom resource, by their dotted paths (an absent
/// field compares as the empty string).
pub(crate) fn intern_fields(paths: Vec<String>) -> &'static [SelectableField] {
    let mut p = pool();
    if let Some(v) = p.fields.get(&paths) {
        return v;
    }
    let list: Vec<SelectableField> = paths
        .iter()
        .map(|d| {
            let d = string_in(&mut p, d);
            SelectableField {
                name: d,
                path: d,
                zero: "",
            }
        })
        .collect();
    let v: &'static [SelectableField] = Box::leak(list.into_boxed_slice());
    p.fields.insert(paths, v);
    v
}
