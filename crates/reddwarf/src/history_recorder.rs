//! The history's jj mirror and retention, on a thread of their own behind the write path.
//!
//! The store records every change in the same transaction that applies it (exact after a
//! crash, no lag for queries). This thread trails those records and writes them to the jj
//! repository at `DIR/history` (jj-lib's git backend, so `jj` and `git` read it in place):
//! one commit and one jj operation per half-second of changes, by the changes' recorded times.
//! Those times come from the raft log, so every member cuts the same operations and builds
//! the same ids. A member that falls behind writes its backlog one window at a
//! time, never slowing writes: the thread runs under SCHED_IDLE.
//!
//! Retention moves the start of kept history forward (never past what the mirror has
//! written), in steps, so that each pruning transaction stays short.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reddwarf_apiserver::ApiServer;
use reddwarf_history::Mirror;
use reddwarf_store::{Change, ChangeKind, ObjectKey, Store};
use serde_json::{json, Value};

/// How much history is kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Retention {
    /// Everything.
    Forever,
    /// Changes younger than this.
    Age(Duration),
    /// The newest this many revisions.
    Revisions(u64),
}

impl std::str::FromStr for Retention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "0" {
            return Ok(Retention::Forever);
        }
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Retention::Revisions(n));
        }
        s.parse::<crate::GoDuration>()
            .map(|d| Retention::Age(d.0))
            .map_err(|_| {
                format!("invalid history retention {s:?}: a duration (720h) or a number of revisions (1000000)")
            })
    }
}

/// One operation covers the changes of half a second (by recorded time), at most this many.
const WINDOW_MS: i64 = 500;
const MAX_PER_OPERATION: usize = 20_000;
/// A window is closed when a later change exists, or this long after it ended with none
/// (a change for it arriving later would need a leader clock this far behind).
const IDLE_CLOSE_MS: i64 = 1000;
/// While writes stream in faster than this (revisions per second), the mirror waits, up to
/// `MAX_DEFER_MS` behind: its loose git objects and CPU would otherwise slow the writes.
const BUSY_RATE: f64 = 2000.0;
const MAX_DEFER_MS: i64 = 30_000;
const PRUNE_EVERY: Duration = Duration::from_secs(30);
const PRUNE_STEP: u64 = 10_000;

/// The running recorder; stops (and joins) when dropped.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the mirror of `store`'s history into `dir` and its retention.
pub fn start(store: Store, dir: PathBuf, retention: Retention, api: Arc<ApiServer>) -> Recorder {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("history".into())
        .spawn(move || run(store, &dir, retention, &api, &s))
        .ok();
    Recorder { stop, thread }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn run(store: Store, dir: &Path, retention: Retention, api: &ApiServer, stop: &AtomicBool) {
    // Behind the write path: SCHED_IDLE runs this thread only on CPU time nothing else
    // wants, so a saturated server loses no throughput to it (the mirror lags instead and
    // catches up when the load drops). Where the policy is refused, a high nice value.
    // SAFETY: both calls name this thread's own id and pass a valid param struct.
    unsafe {
        let tid = libc::gettid();
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
        }
    }
    let mut mirror = match Mirror::open(dir) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!("history: the jj mirror at {} cannot be opened: {e}; changes are still recorded and queryable", dir.display());
            api.set_history_mirror(json!({"error": e.to_string()}));
            None
        }
    };
    let mut lags: Vec<i64> = Vec::new();
    let mut last_prune = Instant::now();
    let mut seen = (Instant::now(), store.revision());
    while !stop.load(Ordering::Relaxed) {
        let mut wrote = false;
        let busy = {
            let now = store.revision();
            let secs = seen.0.elapsed().as_secs_f64().max(0.001);
            let busy = now.saturating_sub(seen.1) as f64 / secs > BUSY_RATE;
            seen = (Instant::now(), now);
            busy
        };
        if let Some(m) = mirror.as_mut() {
            match step(&store, m, &mut lags, busy) {
                Ok(w) => wrote = w,
                Err(e) => {
                    tracing::error!("history: writing the jj mirror: {e}; retrying");
                    api.set_history_mirror(json!({"error": e.to_string()}));
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            if wrote {
                let (op, rev) = m.head();
                let mut sorted = lags.clone();
                sorted.sort_unstable();
                let pct = |p: f64| {
                    sorted
                        .get(
                            ((sorted.len() as f64 * p) as usize)
                                .min(sorted.len().saturating_sub(1)),
                        )
                        .copied()
                        .unwrap_or(0)
                };
                api.set_history_mirror(json!({
                    "operation": op,
                    "revision": rev.to_string(),
                    "behindRevisions": store.revision().saturating_sub(rev),
                    "lagMillis": {"p50": pct(0.5), "p99": pct(0.99), "max": sorted.last().copied().unwrap_or(0), "operations": sorted.len()},
                }));
            }
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let mirrored = mirror.as_ref().map(|m| m.recorded_revision() + 1);
            if let Err(e) = prune(&store, retention, mirrored) {
                tracing::warn!("history: pruning: {e}");
            }
        }
        if !wrote {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Writes the next closed window, if any; true when it wrote one. While `busy` (writes
/// streaming in) it waits unless it is `MAX_DEFER_MS` behind.
fn step(
    store: &Store,
    mirror: &mut Mirror,
    lags: &mut Vec<i64>,
    busy: bool,
) -> anyhow::Result<bool> {
    let from = mirror.recorded_revision();
    // the oldest change alone first: deferring must cost next to nothing
    let Some(oldest) = store.history_since(from, 1)?.pop() else {
        return Ok(false);
    };
    if busy && now_ms() - oldest.by.time_ms < MAX_DEFER_MS {
        return Ok(false);
    }
    let mut window = None;
    let (changes, more) = store.history_while(from, MAX_PER_OPERATION, |c| {
        let w = c.by.time_ms.div_euclid(WINDOW_MS);
        *window.get_or_insert(w) == w
    })?;
    let (Some(window), Some(_)) = (window, changes.first()) else {
        return Ok(false);
    };
    let n = changes.len();
    let closed = more || now_ms() > (window + 1) * WINDOW_MS + IDLE_CLOSE_MS;
    if !closed {
        return Ok(false);
    }
    let slice: Vec<reddwarf_history::Change> = changes.iter().map(to_mirror).collect();
    mirror.record(&slice)?;
    // lag: from the newest change's time to its being in the mirror
    let lag = (now_ms() - changes[n - 1].by.time_ms).max(0);
    if changes[n - 1].kind != ChangeKind::Base {
        lags.push(lag);
        if lags.len() > 10_000 {
            lags.drain(..5_000);
        }
    }
    Ok(true)
}

/// A recorded change as a file of the mirror's tree:
/// `<group>/<version>/<resource>/<namespace>/<name>.yaml` (`core` for the legacy group,
/// `_cluster` for cluster-scoped objects), managedFields left out.
fn to_mirror(c: &Change) -> reddwarf_history::Change {
    let key = ObjectKey::from_string(c.key.clone());
    let group = match key.group() {
        "" => "core",
        g => g,
    };
    let (resource, namespace, name) = (key.resource(), key.namespace(), key.name());
    let mut v: Value = serde_json::from_slice(&c.object).unwrap_or(Value::Null);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    let version = v["apiVersion"]
        .as_str()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .filter(|a| !a.is_empty())
        .unwrap_or("v1")
        .to_string();
    let ns = if namespace.is_empty() {
        "_cluster"
    } else {
        namespace
    };
    let path = format!("{group}/{version}/{resource}/{ns}/{name}.yaml");
    let content = (c.kind != ChangeKind::Deleted)
        .then(|| serde_yaml::to_string(&v).unwrap_or_default().into_bytes());
    let verb = if c.kind == ChangeKind::Base {
        "existing"
    } else {
        c.by.verb.as_str()
    };
    let who = if c.by.user.is_empty() {
        String::new()
    } else {
        format!(" by {}", c.by.user)
    };
    let agent = if c.by.user_agent.is_empty() {
        String::new()
    } else {
        format!(" ({})", c.by.user_agent)
    };
    let obj = if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    };
    reddwarf_history::Change {
        revision: c.revision,
        path,
        content,
        summary: format!("{} {verb} {resource} {obj}{who}{agent}", c.revision),
        time_ms: c.by.time_ms,
    }
}

fn prune(store: &Store, retention: Retention, mirrored: Option<u64>) -> anyhow::Result<()> {
    let Some(start) = store.history_start()? else {
        return Ok(());
    };
    let target = match retention {
        Retention::Forever => return Ok(()),
        Retention::Revisions(n) => store.revision().saturating_sub(n),
        Retention::Age(age) => {
            let cutoff = now_ms() - age.as_millis() as i64;
            store
                .history_revision_at_time(cutoff)?
                .unwrap_or_else(|| store.revision())
        }
    };
    let target = mirrored.map_or(target, |m| target.min(m));
    let mut at = start;
    while at < target {
        at = (at + PRUNE_STEP).min(target);
        store.prune_history(at)?;
    }
    Ok(())
}
