use redb::{ReadableDatabase, TableDefinition};

use crate::StoreError;

/// key -> (revision the object was last written at, JSON bytes as served).
pub const OBJECTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("objects");
/// Small named counters and opaque blobs of the state machine.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("store_meta");

pub const META_REVISION: &str = "revision";
/// Opaque state owned by the caller of apply (raft's last applied log id and membership),
/// written in the same transaction as the objects it describes.
pub const META_APPLIED: &str = "applied";

pub fn ensure(db: &redb::Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(OBJECTS)?;
    txn.open_table(META)?;
    txn.commit()?;
    // A read keeps the trait import honest on every redb version.
    let _ = db.begin_read()?;
    Ok(())
}

pub fn u64_from(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}
