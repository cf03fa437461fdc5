//! A disk that fails under the state machine: the batch must fail as a storage error (the
//! replica stops), never come back as a client's refusal that every replica would record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::StorageBackend;
use reddwarf_store::{Batch, Mutation, ObjectKey, Outcome, Store, StoreError, StoreOptions};

/// An in-memory disk whose reads fail once `broken` is set.
#[derive(Debug)]
struct FlakyDisk {
    inner: InMemoryBackend,
    broken: Arc<AtomicBool>,
}

impl StorageBackend for FlakyDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected read failure"));
        }
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }
}

fn key(name: &str) -> String {
    ObjectKey::new("", "namespaces", "", name)
        .as_str()
        .to_string()
}

fn namespace(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"kind": "Namespace", "metadata": {"name": name}}))
        .unwrap()
}

#[test]
fn a_read_failure_while_applying_is_a_storage_error_not_a_refusal() {
    let broken = Arc::new(AtomicBool::new(false));
    let disk = FlakyDisk {
        inner: InMemoryBackend::new(),
        broken: broken.clone(),
    };
    let store = Store::open_on_backend(disk, StoreOptions::default()).unwrap();
    let first = Batch(vec![Mutation::Create {
        key: key("a"),
        object: namespace("a"),
        namespace: None,
    }]);
    let out = store.apply(&[&first], b"1").unwrap().outcomes.remove(0);
    assert!(
        matches!(out[0], Outcome::Applied { revision: 1, .. }),
        "{out:?}"
    );

    broken.store(true, Ordering::SeqCst);
    let update = Batch(vec![Mutation::Update {
        key: key("a"),
        object: namespace("a"),
        expect_revision: Some(1),
        expect_uid: None,
    }]);
    match store.apply(&[&update], b"2") {
        Err(StoreError::Redb(msg)) => assert!(msg.contains("injected"), "{msg}"),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(applied) => panic!("a failed read was answered: {:?}", applied.outcomes),
    }

    // Nothing of the failed batch was published, and redb refuses further use until the
    // file is opened again (the member restarts and replays its log).
    broken.store(false, Ordering::SeqCst);
    assert_eq!(store.revision(), 1);
    assert!(store.applied_state().is_err());
}
