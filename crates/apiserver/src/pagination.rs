//! Continue tokens: a paginated list is served from one store snapshot, kept for a while so
//! later pages see the same revision. A token whose snapshot is gone answers 410 Expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use reddwarf_store::{ReadView, Revision};
use serde_json::json;

use crate::status::{ApiError, ApiResult};

/// How long a list snapshot stays readable for its continue tokens.
const KEEP: Duration = Duration::from_secs(300);
/// At most this many snapshots are held (each pins old pages of the file).
const MAX: usize = 32;

#[derive(Default)]
pub struct Snapshots {
    held: Mutex<HashMap<Revision, (Instant, Arc<ReadView>)>>,
}

impl Snapshots {
    pub fn keep(&self, view: Arc<ReadView>) {
        let mut held = self.held.lock().expect("snapshots lock");
        let now = Instant::now();
        held.retain(|_, (t, _)| now.duration_since(*t) < KEEP);
        if held.len() >= MAX {
            if let Some(oldest) = held.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) {
                held.remove(&oldest);
            }
        }
        held.insert(view.revision(), (now, view));
    }

    pub fn get(&self, rev: Revision) -> Option<Arc<ReadView>> {
        let mut held = self.held.lock().expect("snapshots lock");
        let now = Instant::now();
        held.retain(|_, (t, _)| now.duration_since(*t) < KEEP);
        held.get(&rev).map(|(_, v)| v.clone())
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
