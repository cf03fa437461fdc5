use std::ops::Bound;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use crate::tables::{u64_from, META, META_REVISION, OBJECTS};
use crate::{Revision, StoreError};

pub(crate) fn current_revision(db: &redb::Database) -> Result<Revision, StoreError> {
    ReadView::new(db).map(|v| v.revision())
}

/// A consistent snapshot of the store. Holding one keeps its revision readable (used for
/// paginated lists, whose continue token names the snapshot's revision).
pub struct ReadView {
    txn: ReadTransaction,
    revision: Revision,
}

/// One page of a list: raw stored objects in key order, plus where to continue.
pub struct ListPage {
    /// `(key, stored JSON)` pairs in key order.
    pub items: Vec<(String, Vec<u8>)>,
    /// The last key returned, when more items remain after it.
    pub continue_after: Option<String>,
    /// How many matching items remain after this page (counted when asked).
    pub remaining: Option<u64>,
}

impl ReadView {
    pub(crate) fn new(db: &redb::Database) -> Result<ReadView, StoreError> {
        let txn = db.begin_read()?;
        let revision = {
            let meta = txn.open_table(META)?;
            let v = meta
                .get(META_REVISION)?
                .map(|v| u64_from(v.value()))
                .unwrap_or(0);
            v
        };
        Ok(ReadView { txn, revision })
    }

    /// The revision the snapshot reads at.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub(crate) fn meta_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let meta = self.txn.open_table(META)?;
        let v = meta.get(name)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    /// The stored JSON of one object and the revision it was last written at.
    pub fn get(&self, key: &str) -> Result<Option<(Revision, Vec<u8>)>, StoreError> {
        let objects = self.txn.open_table(OBJECTS)?;
        let v = objects.get(key)?.map(|g| {
            let (rev, bytes) = g.value();
            (rev, bytes.to_vec())
        });
        Ok(v)
    }

    /// Objects whose key starts with `prefix`, after `start_after` (exclusive), in key order,
    /// keeping those `filter` accepts, at most `limit` of them (0 = no limit).
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        count_remaining: bool,
        filter: impl FnMut(&[u8]) -> bool,
    ) -> Result<ListPage, StoreError> {
        let mut items = Vec::new();
        let (continue_after, remaining) = self.list_each(
            prefix,
            start_after,
            limit,
            count_remaining,
            filter,
            |k, v| items.push((k.to_string(), v.to_vec())),
        )?;
        Ok(ListPage {
            items,
            continue_after,
            remaining,
        })
    }

    /// Like [`ReadView::list`], handing each kept object to `each` as borrowed bytes instead of
    /// copying it into a page (so a large list can be written straight into a response).
    /// Returns where to continue and, when asked, how many matching objects remain.
    pub fn list_each(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        count_remaining: bool,
        mut filter: impl FnMut(&[u8]) -> bool,
        mut each: impl FnMut(&str, &[u8]),
    ) -> Result<(Option<String>, Option<u64>), StoreError> {
        let objects = self.txn.open_table(OBJECTS)?;
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s),
            _ => Bound::Included(prefix),
        };
        let mut taken = 0usize;
        let mut last_key: Option<String> = None;
        let mut continue_after = None;
        let mut remaining = 0u64;
        for entry in objects.range::<&str>((lower, Bound::Unbounded))? {
            let (k, v) = entry?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let (_, bytes) = v.value();
            if !filter(bytes) {
                continue;
            }
            if limit > 0 && taken == limit {
                if continue_after.is_none() {
                    continue_after = last_key.take();
                }
                if !count_remaining {
                    break;
                }
                remaining += 1;
                continue;
            }
            each(key, bytes);
            taken += 1;
            if limit > 0 && taken == limit {
                last_key = Some(key.to_string());
            }
        }
        let has_more = continue_after.is_some();
        Ok((
            continue_after,
            if count_remaining && has_more {
                Some(remaining)
            } else {
                None
            },
        ))
    }

    /// Claims whose name starts with `prefix`, with the key of the object holding each.
    pub fn claims(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let full = format!("{}{prefix}", crate::apply::CLAIM_PREFIX);
        let page = self.list(&full, None, 0, false, |_| true)?;
        Ok(page
            .items
            .into_iter()
            .map(|(k, owner)| {
                (
                    k[crate::apply::CLAIM_PREFIX.len()..].to_string(),
                    String::from_utf8_lossy(&owner).into_owned(),
                )
            })
            .collect())
    }

    /// Counts objects under a prefix without copying them (metrics, emptiness checks).
    pub fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        let objects = self.txn.open_table(OBJECTS)?;
        let mut n = 0;
        for entry in objects.range::<&str>(prefix..)? {
            let (k, _) = entry?;
            if !k.value().starts_with(prefix) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    pub(crate) fn for_each_raw(
        &self,
        mut f: impl FnMut(&str, Revision, &[u8]),
    ) -> Result<(), StoreError> {
        let objects = self.txn.open_table(OBJECTS)?;
        for entry in objects.iter()? {
            let (k, v) = entry?;
            let (rev, bytes) = v.value();
            f(k.value(), rev, bytes);
        }
        Ok(())
    }
}
