//! Randomized consistency test, the way etcd's robustness tests and Jepsen check etcd: three
//! raft members in this process, their peer RPCs carried by a transport that drops, delays,
//! duplicates and reorders messages and partitions members; clients write and read registers
//! through random members (writes forwarded to the leader, reads by read index); the recorded
//! history is checked for linearizability per key, and the members must end identical.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use reddwarf_consensus::linearizability::{check_register, Event, Op};
use reddwarf_consensus::{
    Consensus, ConsensusConfig, PeerCall, PeerError, PeerTransport, Transport,
};
use reddwarf_store::{Mutation, Outcome, Store};

const MEMBERS: usize = 3;
const KEYS: usize = 5;
const CLIENTS: usize = 16;
const OPERATIONS: usize = 10_000;

#[derive(Default)]
struct Faults {
    /// The member cut off from the others, if any.
    isolated: Option<String>,
    drop: f64,
    duplicate: f64,
    max_delay_ms: u64,
}

struct Net {
    members: RwLock<HashMap<String, Consensus>>,
    faults: RwLock<Faults>,
    rng: Mutex<rand::rngs::StdRng>,
    delivered: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
}

impl Net {
    fn cut(&self, a: &str, b: &str) -> bool {
        let f = self.faults.read().unwrap();
        f.isolated.as_deref().is_some_and(|i| (i == a) != (i == b))
    }
}

struct Link {
    from: String,
    net: Arc<Net>,
}

fn unreachable(addr: &str, why: &str) -> PeerError {
    PeerError::Unreachable {
        addr: addr.to_string(),
        reason: why.to_string(),
    }
}

impl Transport for Link {
    fn call(&self, addr: &str, rpc: &str, body: Vec<u8>, timeout: Duration) -> PeerCall {
        let net = self.net.clone();
        let from = self.from.clone();
        let (addr, rpc) = (addr.to_string(), rpc.to_string());
        Box::pin(async move {
            let (delay, back_delay, drop_request, drop_answer, duplicate) = {
                let f = net.faults.read().unwrap();
                let mut rng = net.rng.lock().unwrap();
                (
                    rng.random_range(0..=f.max_delay_ms),
                    rng.random_range(0..=f.max_delay_ms),
                    rng.random_bool(f.drop),
                    rng.random_bool(f.drop),
                    rng.random_bool(f.duplicate),
                )
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if net.cut(&from, &addr) {
                net.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(unreachable(&addr, "partitioned"));
            }
            // A lost message: the sender sees a failed call, not a peer that is down.
            if drop_request {
                net.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(PeerError::Failed {
                    addr,
                    reason: "request dropped".into(),
                });
            }
            let Some(target) = net.members.read().unwrap().get(&addr).cloned() else {
                return Err(unreachable(&addr, "no such member"));
            };
            // Raft's own messages may arrive twice; forwarded proposals are sent at most once
            // (a duplicate would be a second write, which no transport here makes).
            if duplicate && matches!(rpc.as_str(), "append" | "vote" | "snapshot") {
                net.duplicated.fetch_add(1, Ordering::Relaxed);
                let (t, rpc, body) = (target.clone(), rpc.clone(), body.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(back_delay)).await;
                    let _ = t.serve_peer(&rpc, &body).await;
                });
            }
            let answer = tokio::time::timeout(timeout, target.serve_peer(&rpc, &body)).await;
            tokio::time::sleep(Duration::from_millis(back_delay)).await;
            if net.cut(&from, &addr) || drop_answer {
                net.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(PeerError::Failed {
                    addr,
                    reason: "answer dropped".into(),
                });
            }
            net.delivered.fetch_add(1, Ordering::Relaxed);
            match answer {
                Ok(Ok(bytes)) => Ok(Bytes::from(bytes)),
                Ok(Err(e)) => Err(PeerError::Failed { addr, reason: e }),
                Err(_) => Err(PeerError::Failed {
                    addr,
                    reason: "timed out".into(),
                }),
            }
        })
    }
}

fn key(k: usize) -> String {
    format!("/registry/registers/default/k{k}")
}

fn object(k: usize, v: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"kind": "Register",
        "metadata": {"name": format!("k{k}"), "namespace": "default", "uid": format!("uid-{k}")},
        "value": v}))
    .unwrap()
}

fn value_of(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(bytes).ok()?["value"].as_u64()
}

async fn member(id: u64, net: &Arc<Net>, dir: &std::path::Path, join: bool) -> Consensus {
    let addr = format!("m{id}");
    let store = Store::open(&dir.join(format!("{addr}.redb"))).unwrap();
    let c = Consensus::start(
        store,
        ConsensusConfig {
            node_id: id,
            advertise: addr.clone(),
            snapshot_dir: dir.join(format!("{addr}-snapshots")),
            // Snapshots and log purges happen during the run too.
            snapshot_every: 500,
            join,
            transport: Some(PeerTransport(Arc::new(Link {
                from: addr.clone(),
                net: net.clone(),
            }))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    net.members.write().unwrap().insert(addr, c.clone());
    c
}

/// Three members behind one faulty network, registers k0..k4 created at value 0.
async fn cluster(seed: u64, dir: &std::path::Path) -> (Arc<Net>, Vec<Consensus>) {
    let net = Arc::new(Net {
        members: RwLock::new(HashMap::new()),
        faults: RwLock::new(Faults::default()),
        rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        delivered: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        duplicated: AtomicU64::new(0),
    });
    let first = member(1, &net, dir, false).await;
    let mut members = vec![first.clone()];
    for id in 2..=MEMBERS as u64 {
        members.push(member(id, &net, dir, true).await);
        first.add_member(id, &format!("m{id}")).await.unwrap();
    }
    for k in 0..KEYS {
        let out = first
            .propose(Mutation::Create {
                key: key(k),
                object: object(k, 0),
                namespace: None,
            })
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    }
    (net, members)
}

/// (revision, value) of every register as `m` holds it.
fn registers(m: &Consensus) -> Vec<(u64, Option<u64>)> {
    let view = m.store().read().unwrap();
    (0..KEYS)
        .map(|k| {
            view.get(&key(k))
                .unwrap()
                .map(|(r, b)| (r, value_of(&b)))
                .unwrap_or((0, None))
        })
        .collect()
}

async fn converge(members: &[Consensus]) -> Vec<(u64, Option<u64>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all: Vec<_> = members.iter().map(registers).collect();
        if all.windows(2).all(|w| w[0] == w[1]) {
            return all[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn update(k: usize, v: u64) -> Mutation {
    Mutation::Update {
        key: key(k),
        object: object(k, v),
        expect_revision: None,
        expect_uid: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_minority_stops_writing_while_the_majority_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (net, members) = cluster(1, dir.path()).await;
    let leader = members[0].raft().metrics().borrow().current_leader.unwrap();
    let old = members[(leader - 1) as usize].clone();
    let majority: Vec<Consensus> = members
        .iter()
        .filter(|m| m.id() != leader)
        .cloned()
        .collect();
    net.faults.write().unwrap().isolated = Some(format!("m{leader}"));

    // The cut-off leader cannot commit: its write fails (503-class) within the write timeout.
    let started = Instant::now();
    let lost = old.propose(update(0, 1)).await;
    assert!(lost.is_err(), "{lost:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(old.linearize().await.is_err());
    // Once it has heard from no majority for a while it refuses at once.
    let started = Instant::now();
    assert!(old.propose(update(0, 2)).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // The majority elects a leader of its own and goes on.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match majority[0].propose(update(1, 3)).await {
            Ok(Outcome::Applied { .. }) => break,
            other => assert!(
                Instant::now() < deadline,
                "the majority cannot write: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    majority[1].linearize().await.unwrap();

    // Healed: the old leader drops what it could not commit and takes the majority's state.
    net.faults.write().unwrap().isolated = None;
    let state = converge(&members).await;
    assert_eq!(state[1].1, Some(3), "{state:?}");
    assert_eq!(
        state[0].1,
        Some(0),
        "an uncommitted write survived: {state:?}"
    );
    for m in &members {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn histories_under_faults_are_linearizable_and_members_converge() {
    let seed: u64 = std::env::var("REDDWARF_CONSISTENCY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with REDDWARF_CONSISTENCY_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let (net, members) = cluster(seed, dir.path()).await;
    // Faults from here on: a partition now and then, drops, duplicates, delays.
    let nemesis = {
        let net = net.clone();
        tokio::spawn(async move {
            loop {
                let (pause, isolate) = {
                    let mut rng = net.rng.lock().unwrap();
                    let isolate = rng
                        .random_bool(0.4)
                        .then(|| format!("m{}", rng.random_range(1..=MEMBERS)));
                    (rng.random_range(300..1500), isolate)
                };
                {
                    let mut f = net.faults.write().unwrap();
                    f.isolated = isolate;
                    f.drop = 0.03;
                    f.duplicate = 0.03;
                    f.max_delay_ms = 4;
                }
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        })
    };

    let started = Instant::now();
    let now = move || started.elapsed().as_nanos() as u64;
    // Operations recorded (a read that could not be served records nothing).
    let recorded = Arc::new(AtomicUsize::new(0));
    let histories: Arc<Vec<Mutex<Vec<Event>>>> =
        Arc::new((0..KEYS).map(|_| Mutex::new(Vec::new())).collect());
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let members = members.clone();
        let (recorded, histories) = (recorded.clone(), histories.clone());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (client as u64 + 1));
        clients.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while recorded.load(Ordering::Relaxed) < OPERATIONS {
                let m = &members[rng.random_range(0..members.len())];
                let k = rng.random_range(0..KEYS);
                if rng.random_bool(0.5) {
                    seq += 1;
                    let v = (client as u64 + 1) * 1_000_000 + seq;
                    let call = now();
                    let out = m.propose(update(k, v)).await;
                    let ret = match out {
                        Ok(Outcome::Applied { .. }) => Some(now()),
                        Ok(other) => panic!("an unconditional update was refused: {other:?}"),
                        Err(_) => None,
                    };
                    histories[k].lock().unwrap().push(Event {
                        op: Op::Write(v),
                        call,
                        ret,
                    });
                    recorded.fetch_add(1, Ordering::Relaxed);
                } else {
                    let call = now();
                    if m.linearize().await.is_err() {
                        continue;
                    }
                    let read = m.store().read().unwrap().get(&key(k)).unwrap();
                    let ret = now();
                    histories[k].lock().unwrap().push(Event {
                        op: Op::Read(read.and_then(|(_, b)| value_of(&b))),
                        call,
                        ret: Some(ret),
                    });
                    recorded.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    nemesis.abort();
    *net.faults.write().unwrap() = Faults::default();

    let mut total = 0;
    let mut unknown = 0;
    for (k, h) in histories.iter().enumerate() {
        let h = h.lock().unwrap();
        total += h.len();
        unknown += h.iter().filter(|e| e.ret.is_none()).count();
        if let Err(e) = check_register(&h, Some(0)) {
            panic!("key k{k} (seed {seed}): {e}");
        }
    }
    eprintln!(
        "{total} operations ({unknown} with unknown outcome) in {:?}; messages delivered {}, dropped {}, duplicated {}",
        started.elapsed(),
        net.delivered.load(Ordering::Relaxed),
        net.dropped.load(Ordering::Relaxed),
        net.duplicated.load(Ordering::Relaxed)
    );
    assert!(total >= OPERATIONS, "only {total} operations recorded");
    assert!(
        net.dropped.load(Ordering::Relaxed) > 0 && net.duplicated.load(Ordering::Relaxed) > 0,
        "the faults were not exercised"
    );

    // Healed: every member converges on the same objects at the same revisions.
    converge(&members).await;
    for m in &members {
        m.shutdown().await;
    }
}
