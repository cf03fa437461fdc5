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

pub fn encode_token(rev: Revision, last_key: &str) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&v).unwrap_or_default())
}

pub fn decode_token(token: &str) -> ApiResult<(Revision, String)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v.get("v").and_then(|x| x.as_str()) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let rev = v.get("rv").and_then(|x| x.as_u64()).ok_or_else(bad)?;
    let start = v.get("start").and_then(|x| x.as_str()).ok_or_else(bad)?;
    Ok((rev, start.trim_end_matches('\u{0}').to_string()))
}

/// Upstream's answer for a continue token whose revision is gone.
pub fn expired(rev_now: Revision, last_key: &str) -> ApiError {
    let mut e = ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    );
    e.details = None;
    e.continue_token = Some(encode_token(rev_now, last_key));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token(42, "core/configmaps/default/b");
        assert_eq!(
            decode_token(&t).unwrap(),
            (42, "core/configmaps/default/b".to_string())
        );
        assert_eq!(decode_token("not-a-token!").unwrap_err().code, 400);
    }
}
