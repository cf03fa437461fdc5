//! Prints the CPU cost of `Mirror::record` for slices of 1, 10, 100 and 1000 changes,
//! and whether it grows with the number of records already in the repository.
//!
//! `cargo run -p reddwarf-history --example record_cost [-- DIR]`; with DIR the
//! repositories are left in DIR/<n> for inspection (`git --git-dir DIR/10/.jj/repo/store/git log --all`).

use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use reddwarf_history::Change;
use reddwarf_history::Mirror;

/// CPU time (user + system) of the whole process.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A ConfigMap-sized YAML document.
fn yaml(name: &str, revision: u64) -> Vec<u8> {
    let mut s = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n  resourceVersion: \"{revision}\"\n  uid: 0b5c6d7e-{revision:08x}\ndata:\n"
    );
    for i in 0..12 {
        s.push_str(&format!(
            "  key{i}: value-{i}-{revision}-lorem-ipsum-dolor-sit-amet\n"
        ));
    }
    s.into_bytes()
}

struct Feed {
    revision: u64,
}

impl Feed {
    /// `n` changes over a pool of 5000 objects in 20 namespaces (updates, some deletes).
    fn slice(&mut self, n: usize) -> Vec<Change> {
        (0..n)
            .map(|_| {
                self.revision += 1;
                let r = self.revision;
                let object = r % 5000;
                let (ns, name) = (object % 20, format!("cm-{object}"));
                Change {
                    revision: r,
                    path: format!("core/v1/configmaps/ns{ns}/{name}.yaml"),
                    content: (r % 17 != 0).then(|| yaml(&name, r)),
                    summary: format!("{r} update configmaps ns{ns}/{name} by bench"),
                    time_ms: 1_750_000_000_000 + r as i64,
                }
            })
            .collect()
    }
}

fn main() {
    let keep = std::env::args().nth(1).map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let base = keep.unwrap_or_else(|| tmp.path().to_owned());
    println!(
        "profile: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    // Slices of n changes, after a warm-up that fills the tree with the 5000 objects.
    for (n, records) in [(1usize, 100usize), (10, 200), (100, 50), (1000, 10)] {
        let dir = base.join(n.to_string());
        let mut mirror = Mirror::open(&dir).unwrap();
        let mut feed = Feed { revision: 0 };
        for _ in 0..5 {
            mirror.record(&feed.slice(1000)).unwrap();
        }
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        for _ in 0..records {
            mirror.record(&feed.slice(n)).unwrap();
        }
        let cpu = (cpu_time() - cpu0) / records as u32;
        let wall = wall0.elapsed() / records as u32;
        println!(
            "{n:>5} changes/record: cpu {:>9.3} ms/record ({:>7.1} µs/change), wall {:>9.3} ms/record",
            cpu.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e6 / n as f64,
            wall.as_secs_f64() * 1e3,
        );
    }

    // Growth: the same slice size early and late in a longer history.
    let dir = base.join("growth");
    let mut mirror = Mirror::open(&dir).unwrap();
    let mut feed = Feed { revision: 0 };
    let batches = 10;
    let per_batch = 200;
    for batch in 0..batches {
        let cpu0 = cpu_time();
        for _ in 0..per_batch {
            mirror.record(&feed.slice(10)).unwrap();
        }
        let cpu = (cpu_time() - cpu0) / per_batch;
        println!(
            "records {:>5}..{:>5} (10 changes each): cpu {:.3} ms/record",
            batch * per_batch,
            (batch + 1) * per_batch,
            cpu.as_secs_f64() * 1e3
        );
    }
}
