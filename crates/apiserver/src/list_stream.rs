//! LIST responses written while the store is read: a slice of items at a time from the list's
//! read view, so a list of every pod is never held whole in the server's memory. The bytes are
//! those of the buffered form (a paginated list, bounded by its limit, is still buffered).

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use reddwarf_kubeproto::ListEncoder;
use reddwarf_store::ReadView;
use serde_json::Value;

use crate::request::Selectors;

/// Items read from the store for one chunk of the response.
const SLICE: usize = 256;

/// Encoded protobuf items kept while the list's length is measured, at most this many bytes:
/// a longer list is encoded again as it is written (the envelope states the length first).
const KEEP_ENCODED: usize = 1 << 20;

/// The items of one list: the keys under `prefix` after `start` that the selectors match.
pub(crate) struct Items {
    pub view: Arc<ReadView>,
    pub prefix: String,
    pub start: Option<String>,
    pub selectors: Selectors,
    /// Leave `metadata.managedFields` out (the in-process controllers).
    pub slim: bool,
}

impl Items {
    /// Hands up to [`SLICE`] items after `after` to `each`; returns the key to continue after,
    /// `None` at the end.
    fn slice(
        &self,
        after: Option<&str>,
        mut each: impl FnMut(&[u8]),
    ) -> Result<Option<String>, reddwarf_store::StoreError> {
        let filtering = !self.selectors.is_empty();
        let keep = |b: &[u8]| {
            !filtering
                || serde_json::from_slice::<Value>(b).is_ok_and(|v| self.selectors.matches(&v))
        };
        let (next, _) = self
            .view
            .list_each(&self.prefix, after, SLICE, false, keep, |_, b| {
                if self.slim {
                    each(&crate::slim::without_managed_fields(b))
                } else {
                    each(b)
                }
            })?;
        Ok(next)
    }

    /// Every item, slice by slice, each slice turned into one chunk by `fill` (which appends
    /// an item to the chunk); `first` and `last` are sent before and after them. A failure
    /// after the first byte can only end the response early: the client sees a cut body.
    fn stream<F>(
        self,
        first: Bytes,
        last: Bytes,
        fill: F,
        done: impl FnOnce() + Send + 'static,
    ) -> Body
    where
        F: FnMut(&mut Vec<u8>, &[u8]) -> Result<(), String> + Send + 'static,
    {
        enum Step {
            First,
            Items(Option<String>),
            Last,
            End,
        }
        struct State<F, D> {
            items: Items,
            step: Step,
            first: Bytes,
            last: Bytes,
            fill: F,
            done: Option<D>,
        }
        let state = State {
            items: self,
            step: Step::First,
            first,
            last,
            fill,
            done: Some(done),
        };
        let s = futures::stream::unfold(state, |mut st| async move {
            loop {
                match std::mem::replace(&mut st.step, Step::End) {
                    Step::First => {
                        st.step = Step::Items(st.items.start.clone());
                        let b = std::mem::take(&mut st.first);
                        if !b.is_empty() {
                            return Some((Ok(b), st));
                        }
                    }
                    Step::Items(after) => {
                        let mut chunk = Vec::new();
                        let mut failed = None;
                        let fill = &mut st.fill;
                        let next = st.items.slice(after.as_deref(), |b| {
                            if failed.is_none() {
                                if let Err(e) = fill(&mut chunk, b) {
                                    failed = Some(e);
                                }
                            }
                        });
                        let next = match (next, failed) {
                            (Ok(n), None) => n,
                            (Err(e), _) => return Some((Err(cut(e.to_string())), st)),
                            (_, Some(e)) => return Some((Err(cut(e)), st)),
                        };
                        st.step = match next {
                            Some(k) => Step::Items(Some(k)),
                            None => Step::Last,
                        };
                        if !chunk.is_empty() {
                            return Some((Ok(Bytes::from(chunk)), st));
                        }
                    }
                    Step::Last => {
                        if let Some(d) = st.done.take() {
                            d();
                        }
                        let b = std::mem::take(&mut st.last);
                        return Some((Ok(b), st));
                    }
                    Step::End => return None,
                }
            }
        });
        Body::from_stream(s)
    }
}

fn cut(reason: String) -> std::io::Error {
    tracing::warn!("list response cut short: {reason}");
    std::io::Error::other(reason)
}

/// A JSON list: `header` (`{..,"items":[`), the stored items as they are, `]}` and a newline.
pub(crate) fn json(items: Items, header: String, done: impl FnOnce() + Send + 'static) -> Body {
    json_with(items, header, done, |b, chunk| chunk.extend_from_slice(b))
}

/// A metadata-only list (`PartialObjectMetadataList`): `header`, then each item's
/// `PartialObjectMetadata` spliced from its stored bytes, `]}` and a newline.
pub(crate) fn partial(
    items: Items,
    header: String,
    v1beta1: bool,
    done: impl FnOnce() + Send + 'static,
) -> Body {
    json_with(items, header, done, move |b, chunk| {
        crate::slim::push_partial(b, v1beta1, chunk)
    })
}

/// `header`, each stored item as `write` puts it, comma-separated, `]}` and a newline.
fn json_with(
    items: Items,
    header: String,
    done: impl FnOnce() + Send + 'static,
    mut write: impl FnMut(&[u8], &mut Vec<u8>) + Send + 'static,
) -> Body {
    let mut any = false;
    items.stream(
        Bytes::from(header),
        Bytes::from_static(b"]}\n"),
        move |chunk, b| {
            if any {
                chunk.push(b',');
            }
            any = true;
            write(b, chunk);
            Ok(())
        },
        done,
    )
}

/// A protobuf list, or `None` when an item (or the kind) has no protobuf form: the caller then
/// answers as it would have without streaming. Every item is encoded once to learn the
/// message's length; a list longer than [`KEEP_ENCODED`] is encoded again as it is sent.
/// Blocking work (the whole list is read): call it off the async threads.
pub(crate) fn protobuf(
    items: Items,
    encoder: ListEncoder,
    metadata: &Value,
    done: impl FnOnce() + Send + 'static,
) -> Option<Body> {
    let head = encoder.head(metadata).ok()?;
    let mut len = head.len();
    let mut kept = Some(Vec::new());
    let mut one = Vec::new();
    let mut failed = false;
    let mut after = items.start.clone();
    loop {
        let next = items
            .slice(after.as_deref(), |b| {
                if failed {
                    return;
                }
                one.clear();
                let encoded = serde_json::from_slice::<Value>(b)
                    .ok()
                    .and_then(|v| encoder.item(&v, &mut one).ok());
                if encoded.is_none() {
                    failed = true;
                    return;
                }
                len += one.len();
                if let Some(k) = &mut kept {
                    if k.len() + one.len() <= KEEP_ENCODED {
                        k.extend_from_slice(&one);
                    } else {
                        kept = None;
                    }
                }
            })
            .ok()?;
        if failed {
            return None;
        }
        match next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    let mut first = encoder.envelope_start(len);
    first.extend_from_slice(&head);
    let last = Bytes::from(encoder.envelope_end());
    if let Some(k) = kept {
        first.extend_from_slice(&k);
        first.extend_from_slice(&last);
        done();
        return Some(Body::from(first));
    }
    Some(items.stream(
        Bytes::from(first),
        last,
        move |chunk, b| {
            let v = serde_json::from_slice::<Value>(b).map_err(|e| e.to_string())?;
            encoder.item(&v, chunk).map_err(|e| e.to_string())
        },
        done,
    ))
}
