//! Continue tokens: a paginated list is served from one store snapshot, kept for a while so
//! later pages see the same revision. A token whose snapshot is gone answers 410 Expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use reddwarf_store::{ReadView, Revision};
use serde_json::json;

use crate::status::{ApiError, ApiResult};

/// How long a list snapshot stays readable after its last page was served. Every page that
/// the store's writes free while a snapshot is held stays in the file: at a thousand writes a
/// second, five minutes (the time upstream's compaction gives a token) grew the file by
/// gigabytes. A client whose token expired gets 410 and lists again, as after a compaction.
const IDLE: Duration = Duration::from_secs(30);
/// How long a snapshot stays once every list reading it has had its last page: long enough
/// for a client to retry the last page with the same token, short enough to pin little.
const LINGER: Duration = Duration::from_secs(10);
/// At most this many snapshots are held (each pins old pages of the file).
const MAX: usize = 32;

struct Held {
    expires: Instant,
    view: Arc<ReadView>,
    /// Lists served from it that have pages still to come.
    open: u32,
    /// How many items remain after a page's last key, by list and key: the next page's
    /// `remainingItemCount` is this less what it serves. Counting what remains after every
    /// page read the rest of the list each time, quadratic in its length: a re-list of
    /// 150 000 pods in pages of 500 read ~22 million objects.
    remaining: HashMap<(String, String), u64>,
}

/// What identifies one list among those served from a snapshot: its prefix and selectors.
pub fn list_id(prefix: &str, labels: Option<&str>, fields: Option<&str>) -> String {
    format!(
        "{prefix}\u{0}{}\u{0}{}",
        labels.unwrap_or(""),
        fields.unwrap_or("")
    )
}

#[derive(Default)]
pub struct Snapshots {
    held: Mutex<HashMap<Revision, Held>>,
}

impl Snapshots {
    /// Notes a page served from `view`: `continued` when the request carried a continue token
    /// (or listed at this exact revision from a held snapshot), `more` when the page has one.
    /// A list's first page with more to come holds the snapshot; its last page lets go of it
    /// (after [`LINGER`], for a retry).
    pub fn served(&self, view: &Arc<ReadView>, continued: bool, more: bool) {
        let mut held = self.held.lock().expect("snapshots lock");
        let now = Instant::now();
        held.retain(|_, h| now < h.expires);
        let rev = view.revision();
        match (continued, more) {
            (false, false) => {}
            (true, true) => {
                if let Some(h) = held.get_mut(&rev) {
                    h.expires = h.expires.max(now + IDLE);
                }
            }
            (true, false) => {
                if let Some(h) = held.get_mut(&rev) {
                    h.open = h.open.saturating_sub(1);
                    h.expires = if h.open == 0 {
                        now + LINGER
                    } else {
                        now + IDLE
                    };
                }
            }
            (false, true) => {
                if let Some(h) = held.get_mut(&rev) {
                    h.expires = now + IDLE;
                    h.open += 1;
                    return;
                }
                if held.len() >= MAX {
                    if let Some(oldest) =
                        held.iter().min_by_key(|(_, h)| h.expires).map(|(k, _)| *k)
                    {
                        held.remove(&oldest);
                    }
                }
                held.insert(
                    rev,
                    Held {
                        expires: now + IDLE,
                        view: view.clone(),
                        open: 1,
                        remaining: HashMap::new(),
                    },
                );
            }
        }
    }

    /// Notes that `remaining` items of list `list` follow `last_key` in the snapshot at `rev`
    /// (after [`Snapshots::served`] of a page with more to come).
    pub fn note_remaining(&self, rev: Revision, list: &str, last_key: &str, remaining: u64) {
        let mut held = self.held.lock().expect("snapshots lock");
        if let Some(h) = held.get_mut(&rev) {
            h.remaining
                .insert((list.to_string(), last_key.to_string()), remaining);
        }
    }

    /// How many items of list `list` follow `last_key` at `rev`, when a page ending there
    /// noted it (taken: a retried token counts afresh).
    pub fn remaining_after(&self, rev: Revision, list: &str, last_key: &str) -> Option<u64> {
        let mut held = self.held.lock().expect("snapshots lock");
        held.get_mut(&rev)?
            .remaining
            .remove(&(list.to_string(), last_key.to_string()))
    }

    pub fn get(&self, rev: Revision) -> Option<Arc<ReadView>> {
        let mut held = self.held.lock().expect("snapshots lock");
        let now = Instant::now();
        held.retain(|_, h| now < h.expires);
        held.get(&rev).map(|h| h.view.clone())
    }

    /// How many snapshots are held.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.lock().expect("snapshots lock").len()
    }

    /// Whether the snapshot at `rev` has no list left reading it and is about to go.
    #[cfg(test)]
    fn lingering(&self, rev: Revision) -> bool {
        let held = self.held.lock().expect("snapshots lock");
        held.get(&rev)
            .is_some_and(|h| h.open == 0 && h.expires <= Instant::now() + LINGER)
    }
}

/// Upstream's token: unpadded URL-safe base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":K}`
/// where `K` is the last key served, relative to the listed prefix, plus a NUL (the next key).
pub fn encode_token(rev: Revision, prefix: &str, last_key: &str) -> String {
    encode_raw_token(rev as i64, prefix, last_key)
}

/// `rv` -1 is upstream's "inconsistent" token: continue after the key at the latest revision.
fn encode_raw_token(rev: i64, prefix: &str, last_key: &str) -> String {
    let rel = last_key.strip_prefix(prefix).unwrap_or(last_key);
    let v = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": format!("{rel}\u{0}")});
    URL_SAFE_ANY_PAD.encode(serde_json::to_vec(&v).unwrap_or_default())
}

/// Unpadded on output, padding optional on input.
const URL_SAFE_ANY_PAD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Reads a continue token for a list under `prefix`: the revision (None: the latest, from an
/// inconsistent token) and the last key served. Errors are upstream's
/// (`storage.DecodeContinue` wrapped as a 400).
pub fn decode_token(token: &str, prefix: &str) -> ApiResult<(Option<Revision>, String)> {
    let bad = |why: String| ApiError::bad_request(format!("invalid continue token: {why}"));
    const INVALID: &str = "continue key is not valid";
    let bytes = URL_SAFE_ANY_PAD
        .decode(token)
        .map_err(|e| bad(format!("{INVALID}: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("{INVALID}: {e}")))?;
    let version = v.get("v").and_then(|x| x.as_str()).unwrap_or("");
    if version != "meta.k8s.io/v1" {
        return Err(bad(format!(
            "{INVALID}: server does not recognize this encoded version {version}"
        )));
    }
    let rev = match v.get("rv").and_then(|x| x.as_i64()) {
        Some(r) if r > 0 => Some(r as Revision),
        Some(r) if r < 0 => None,
        _ => {
            return Err(bad(format!(
                "{INVALID}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            )))
        }
    };
    let start = v.get("start").and_then(|x| x.as_str()).unwrap_or("");
    if start.is_empty() {
        return Err(bad(format!(
            "{INVALID}: encoded start key empty (version meta.k8s.io/v1)"
        )));
    }
    // Like upstream's path.Clean check: the key must stay below the listed prefix.
    let key = if start.starts_with('/') {
        start.to_string()
    } else {
        format!("/{start}")
    };
    let clean = key == "/"
        || (!key.ends_with('/')
            && !key.contains("//")
            && !key[1..].split('/').any(|seg| seg == "." || seg == ".."));
    if !clean {
        return Err(bad(format!("{INVALID}: {start}")));
    }
    let rel = key[1..].trim_end_matches('\u{0}');
    Ok((rev, format!("{prefix}{rel}")))
}

/// Upstream's answer for a continue token whose revision is gone.
pub fn expired(prefix: &str, last_key: &str) -> ApiError {
    let mut e = ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    );
    e.details = None;
    e.continue_token = Some(encode_raw_token(-1, prefix, last_key));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_held_until_the_last_page_of_every_list_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = reddwarf_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let view = Arc::new(store.read().unwrap());
        let rev = view.revision();
        let snapshots = Snapshots::default();
        // A whole list in one page holds nothing.
        snapshots.served(&view, false, false);
        assert_eq!(snapshots.held(), 0);
        // Two lists at the same revision, each with pages to come.
        snapshots.served(&view, false, true);
        snapshots.served(&view, false, true);
        assert_eq!(snapshots.held(), 1);
        // A middle page keeps it; the first list's last page leaves it to the second.
        snapshots.served(&view, true, true);
        snapshots.served(&view, true, false);
        assert!(snapshots.get(rev).is_some());
        assert!(!snapshots.lingering(rev));
        // The second list's last page lets it go (after a few seconds for a retried last
        // page): its pages can be reused by the store.
        snapshots.served(&view, true, false);
        assert!(snapshots.lingering(rev));
        assert!(snapshots.get(rev).is_some());
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let prefix = "core/configmaps/default/";
        let t = encode_token(42, prefix, "core/configmaps/default/b");
        assert!(!t.contains('='), "{t}");
        assert_eq!(
            decode_token(&t, prefix).unwrap(),
            (Some(42), "core/configmaps/default/b".to_string())
        );
        let inconsistent = expired(prefix, "core/configmaps/default/c")
            .continue_token
            .unwrap();
        assert_eq!(
            decode_token(&inconsistent, prefix).unwrap(),
            (None, "core/configmaps/default/c".to_string())
        );
        for bad in ["not-a-token!", "garbage", "e30"] {
            let e = decode_token(bad, prefix).unwrap_err();
            assert_eq!(e.code, 400);
            assert!(e
                .message
                .starts_with("invalid continue token: continue key is not valid"));
        }
        let escape =
            URL_SAFE_ANY_PAD.encode(br#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#);
        assert_eq!(decode_token(&escape, prefix).unwrap_err().code, 400);
    }
}
