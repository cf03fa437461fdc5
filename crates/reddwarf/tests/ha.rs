//! High availability with three real `reddwarf server` processes on 127.0.0.1: members join
//! with the server token, writes through any member are read from every other, the leader's
//! loss costs seconds and no acknowledged write, a lost majority answers 503 and recovers.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{eventually, parse, Agent, Server};

/// A port free now: members keep theirs across restarts (the cluster records the address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Cluster {
    members: Vec<Server>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// `n` members, each started with `extra` flags too.
    fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra);
        let first = Server::start_with(&args);
        let token = std::fs::read_to_string(first.data_dir().join("server-token"))
            .expect("server-token")
            .trim()
            .to_string();
        let join = first.url.clone();
        let mut members = vec![first];
        for _ in 1..n {
            let listen = format!("127.0.0.1:{}", free_port());
            let mut args = vec![
                "--listen",
                listen.as_str(),
                "--join",
                &join,
                "--token",
                &token,
            ];
            args.extend_from_slice(extra);
            members.push(Server::start_with(&args));
        }
        let c = Cluster { members };
        c.wait_voters(n);
        c
    }

    /// `reddwarf cluster ARGS --kubeconfig <member via's>`; its stdout, asserting success.
    fn cli(&self, via: usize, args: &[&str]) -> String {
        cli(&self.members[via], args)
    }

    fn status(&self, via: usize) -> serde_json::Value {
        parse(&self.cli(via, &["status", "-o", "json"]))
    }

    fn remove(&self, via: usize, id: u64) {
        self.cli(via, &["remove", &id.to_string()]);
    }

    fn wait_voters(&self, n: usize) {
        eventually(
            "every member to be a voter",
            Duration::from_secs(60),
            || {
                let s = self.status(0);
                let voters = s["members"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["role"] == "voter")
                    .count();
                (voters == n).then_some(())
            },
        );
    }

    /// Index (into `members`) of the leader, as a running member reports it.
    fn leader(&self) -> usize {
        let via = (0..self.members.len())
            .find(|i| self.members[*i].child.is_some())
            .expect("a running member");
        let s = eventually("a leader", Duration::from_secs(30), || {
            let s = self.status(via);
            s["leader"].as_u64().map(|_| s)
        });
        let id = s["leader"].as_u64().expect("leader id");
        let addr = s["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["id"].as_u64() == Some(id))
            .and_then(|m| m["address"].as_str())
            .expect("leader address")
            .to_string();
        self.members
            .iter()
            .position(|m| m.url.ends_with(&addr))
            .expect("leader among the members")
    }
}

fn cli(s: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .arg("cluster")
        .args(args)
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .output()
        .expect("reddwarf cluster");
    assert!(
        out.status.success(),
        "reddwarf cluster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn configmap(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"v": name}})
}

/// Name → resourceVersion of the configmaps in `default`, read through `s`.
fn configmaps(s: &Server) -> Option<BTreeMap<String, String>> {
    let v = s.get_opt("/api/v1/namespaces/default/configmaps")?;
    Some(
        v["items"]
            .as_array()?
            .iter()
            .map(|i| {
                (
                    i["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    i["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect(),
    )
}

#[test]
fn writes_through_any_member_are_read_at_once_from_every_other() {
    let c = Cluster::start(3);
    for (i, m) in c.members.iter().enumerate() {
        let name = format!("through-{i}");
        let created = m.create("/api/v1/namespaces/default/configmaps", configmap(&name));
        let rv = created["metadata"]["resourceVersion"].clone();
        // Linearizable reads: no waiting, every member already answers with the same object.
        for other in &c.members {
            let got = other.api_get(&format!("/api/v1/namespaces/default/configmaps/{name}"));
            assert_eq!(
                got["metadata"]["resourceVersion"], rv,
                "{name} via {}",
                other.url
            );
        }
    }
    // kubectl on each member's own kubeconfig sees the same objects and resourceVersions.
    let views: Vec<String> = c
        .members
        .iter()
        .map(|m| {
            m.kubectl_ok(
                "1.33",
                &[
                    "get",
                    "configmaps",
                    "-o",
                    "custom-columns=NAME:.metadata.name,RV:.metadata.resourceVersion",
                ],
            )
        })
        .collect();
    assert!(views[0].contains("through-2"), "{}", views[0]);
    assert_eq!(views[0], views[1]);
    assert_eq!(views[0], views[2]);

    // A watch on a follower delivers the same events, in order, with the leader's
    // resourceVersions.
    let from = c.members[0].api_get("/api/v1/namespaces/default/configmaps")["metadata"]
        ["resourceVersion"]
        .as_str()
        .expect("list revision")
        .to_string();
    let written: Vec<String> = (0..3)
        .map(|i| {
            let o = c.members[0].create(
                "/api/v1/namespaces/default/configmaps",
                configmap(&format!("watched-{i}")),
            );
            o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for m in &c.members[1..] {
        let events = m.watch_events(
            &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}&timeoutSeconds=2"),
            None,
        );
        let seen: Vec<String> = events
            .iter()
            .filter(|e| e["type"] == "ADDED")
            .filter_map(|e| {
                e["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(seen, written, "{events:?}");
    }
    // Peer RPCs need a member certificate: the admin's is refused, so is no certificate.
    let m = &c.members[0];
    let (code, body) = m.curl("POST", "/reddwarf/raft/vote", None, Some(b"x"));
    assert_eq!(code, 403, "{body}");
    let (code, _) = m.curl("POST", "/reddwarf/raft/join", None, None);
    assert_eq!(code, 401);
    // Only cluster admins see the membership.
    let status = c.status(1);
    assert_eq!(status["members"].as_array().map(|a| a.len()), Some(3));
}

#[test]
fn leader_kill_during_a_write_storm_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let writers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let acknowledged = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    let killed_at = Mutex::new(None::<Instant>);
    let resumed_after = Mutex::new(None::<Duration>);
    let mut leader_process = c.members[leader].child.take().expect("leader running");
    std::thread::scope(|scope| {
        for (w, &i) in writers.iter().enumerate() {
            let m = &c.members[i];
            let (acknowledged, stop, killed_at, resumed_after) =
                (&acknowledged, &stop, &killed_at, &resumed_after);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("storm-{w}-{n}");
                    n += 1;
                    let (code, _) = m.send_json(
                        "POST",
                        "/api/v1/namespaces/default/configmaps",
                        &configmap(&name),
                    );
                    if code == 201 {
                        acknowledged.lock().unwrap().push(name);
                        if let Some(t) = *killed_at.lock().unwrap() {
                            let mut r = resumed_after.lock().unwrap();
                            if r.is_none() {
                                *r = Some(t.elapsed());
                            }
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        *killed_at.lock().unwrap() = Some(Instant::now());
        let _ = leader_process.kill();
        let _ = leader_process.wait();
        eventually("writes to resume", Duration::from_secs(30), || {
            resumed_after.lock().unwrap().map(|_| ())
        });
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    });
    let resumed = resumed_after.lock().unwrap().expect("resumed");
    assert!(
        resumed < Duration::from_secs(5),
        "writes resumed {resumed:?} after the leader was killed"
    );
    // The killed member restarts with its data, catches up, and all three agree.
    c.members[leader].spawn();
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() > 10, "{acknowledged:?}");
    let views = eventually("the members to converge", Duration::from_secs(60), || {
        let views: Vec<_> = c.members.iter().map(configmaps).collect::<Option<_>>()?;
        let views: Vec<BTreeMap<String, String>> = views;
        (views[0] == views[1] && views[1] == views[2]).then_some(views)
    });
    for name in &acknowledged {
        assert!(views[0].contains_key(name), "acknowledged {name} is lost");
    }
}

#[test]
fn a_lost_majority_answers_503_and_recovers_when_a_member_returns() {
    let mut c = Cluster::start(3);
    let survivor = 2;
    c.members[0].create("/api/v1/namespaces/default/configmaps", configmap("before"));
    // A consistent read through the survivor: it has applied the write before the others go.
    c.members[survivor].api_get("/api/v1/namespaces/default/configmaps/before");
    c.members[0].kill9();
    c.members[1].kill9();
    let s = &c.members[survivor];
    let started = Instant::now();
    let (code, body) = s.send_json(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &configmap("during"),
    );
    assert_eq!(code, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let status = parse(&body);
    assert_eq!(status["reason"], "ServiceUnavailable", "{body}");
    // A consistent read cannot be served; this member's own state still can.
    let (code, _) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps/before",
        None,
        None,
    );
    assert_eq!(code, 503);
    let (code, body) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?resourceVersion=0",
        None,
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"before\""), "{body}");
    // One member back: a majority again, writes resume.
    c.members[1].spawn();
    let s = &c.members[survivor];
    eventually("writes to resume", Duration::from_secs(30), || {
        let (code, _) = s.send_json(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &configmap("after"),
        );
        (code == 201 || code == 409).then_some(())
    });
    assert!(configmaps(&c.members[1]).is_some_and(|v| v.contains_key("after")));
}

#[test]
fn members_are_removed_and_the_rest_go_on() {
    let c = Cluster::start(3);
    c.remove(1, 3);
    let s = c.status(0);
    let ids: Vec<u64> = s["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 2, "{s}");
    assert!(!ids.contains(&3), "{s}");
    let table = c.cli(0, &["status"]);
    assert!(table.contains("voter") && table.contains("LAG"), "{table}");
    // Two voters remain: a majority of two, so writes go on.
    c.members[0].create(
        "/api/v1/namespaces/default/configmaps",
        configmap("after-removal"),
    );
}

#[test]
fn a_survivor_of_a_lost_majority_forces_a_new_cluster_with_everything_committed() {
    let mut c = Cluster::start(3);
    let created = c.members[0].create("/api/v1/namespaces/default/configmaps", configmap("kept"));
    // Every member holds the write in its log (applied or not: the survivor applies the rest
    // of its log when it forces the new cluster).
    eventually(
        "every member to hold the log",
        Duration::from_secs(30),
        || {
            let s = c.status(0);
            s["members"]
                .as_array()?
                .iter()
                .all(|m| m["lag"].as_u64() == Some(0))
                .then_some(())
        },
    );
    c.members[0].kill9();
    c.members[1].kill9();
    let survivor = &mut c.members[2];
    survivor.kill9();
    survivor.extra_args.push("--force-new-cluster".into());
    survivor.spawn();
    survivor.extra_args.pop();
    let kept = survivor.api_get("/api/v1/namespaces/default/configmaps/kept");
    assert_eq!(
        kept["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    survivor.create(
        "/api/v1/namespaces/default/configmaps",
        configmap("after-recovery"),
    );
    let s = parse(&cli(survivor, &["status", "-o", "json"]));
    assert_eq!(s["members"].as_array().map(|m| m.len()), Some(1), "{s}");
    // A restart without the flag stays the new one-member cluster.
    survivor.kill9();
    survivor.spawn();
    survivor.api_get("/api/v1/namespaces/default/configmaps/after-recovery");
}

/// The Ready condition's status and the Lease's renewTime of node `name`, read through `s`.
fn node_ready_and_renewed(s: &Server, name: &str) -> Option<(String, String)> {
    let node = s.get_opt(&format!("/api/v1/nodes/{name}"))?;
    let ready = node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["status"]
        .as_str()?
        .to_string();
    let lease = s.get_opt(&format!(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
    ))?;
    Some((ready, lease["spec"]["renewTime"].as_str()?.to_string()))
}

#[test]
fn an_agent_moves_to_another_member_without_its_node_going_not_ready() {
    // A short grace period: a node whose heartbeats stopped would go Unknown while watched.
    let mut c = Cluster::start_with(3, &["--node-monitor-grace-period", "15s"]);
    let urls: Vec<String> = c.members.iter().map(|m| m.url.clone()).collect();
    let mut agent = Agent::start_with(&c.members[1], "ha-node", &[], &[], &urls.join(","));
    // Every member holds a tunnel to the node: the node API answers through each.
    for m in &c.members {
        eventually(
            "the node API through every member",
            Duration::from_secs(30),
            || {
                let (code, body) = m.curl("GET", "/api/v1/nodes/ha-node/proxy/healthz", None, None);
                (code == 200 && body.trim() == "ok").then_some(())
            },
        );
    }
    // The agent's member (the first in its list) goes away for good.
    c.members[0].kill9();
    let observer = &c.members[2];
    // (Reads wait out the election when the lost member led.)
    let (_, renewed_before) = eventually(
        "the node through another member",
        Duration::from_secs(30),
        || node_ready_and_renewed(observer, "ha-node"),
    );
    let until = Instant::now() + Duration::from_secs(25);
    let mut renewed = false;
    while Instant::now() < until {
        if let Some((ready, renew)) = node_ready_and_renewed(observer, "ha-node") {
            assert_eq!(ready, "True", "the node went {ready}:\n{}", agent.log());
            renewed |= renew != renewed_before;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        renewed,
        "the lease was not renewed after the member was lost:\n{}",
        agent.log()
    );
    assert!(agent.log().contains("moved to"), "{}", agent.log());
    let (code, _) = observer.curl("GET", "/api/v1/nodes/ha-node/proxy/healthz", None, None);
    assert_eq!(code, 200);
    agent.kill9();
}

#[test]
fn a_deployment_keeps_its_replica_count_through_three_leader_changes() {
    let mut c = Cluster::start(3);
    let deploy = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "steady"},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "steady"}},
            "template": {"metadata": {"labels": {"app": "steady"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    c.members[0].create("/apis/apps/v1/namespaces/default/deployments", &deploy);
    let pods = |s: &Server| -> Option<Vec<String>> {
        let v = s.get_opt("/api/v1/namespaces/default/pods?labelSelector=app%3Dsteady")?;
        Some(
            v["items"]
                .as_array()?
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
                .collect(),
        )
    };
    let first = eventually("five pods", Duration::from_secs(30), || {
        pods(&c.members[0]).filter(|p| p.len() == 5)
    });
    let mut seen: std::collections::BTreeSet<String> = first.into_iter().collect();
    for round in 0..3 {
        let leader = c.leader();
        c.members[leader].kill9();
        let observer = (leader + 1) % 3;
        // Through the election and a while after it, every list has exactly the five pods.
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            if let Some(p) = pods(&c.members[observer]) {
                assert_eq!(p.len(), 5, "round {round}: {p:?}");
                seen.extend(p);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        c.members[leader].spawn();
        // A leader again (it waits for one) before the next round.
        c.leader();
    }
    // No pod was ever created beyond the five (none made and deleted again either).
    assert_eq!(seen.len(), 5, "{seen:?}");
    let d = c.members[1].api_get("/apis/apps/v1/namespaces/default/deployments/steady");
    assert_eq!(d["status"]["replicas"], 5, "{d}");
}

#[test]
fn a_fourth_member_joins_through_a_snapshot_and_a_member_is_removed() {
    // Snapshots every 50 entries: the log the new member would need is purged by then.
    let mut c = Cluster::start_with(3, &["--raft-snapshot-entries", "50"]);
    let mut items = Vec::new();
    for i in 0..400 {
        items.push(configmap(&format!("bulk-{i}")));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = c.members[0].write_file("bulk.json", &list.to_string());
    c.members[0].kubectl_ok("1.33", &["create", "-f", &file, "-o", "name"]);
    let token = std::fs::read_to_string(c.members[0].data_dir().join("server-token"))
        .expect("server-token");
    let listen = format!("127.0.0.1:{}", free_port());
    let join = c.members[1].url.clone();
    let fourth = Server::start_with(&[
        "--listen",
        &listen,
        "--join",
        &join,
        "--token",
        token.trim(),
        "--raft-snapshot-entries",
        "50",
    ]);
    assert!(
        fourth.log().contains("installed a snapshot"),
        "{}",
        common::tail(&fourth.log(), 30)
    );
    c.members.push(fourth);
    c.wait_voters(4);
    let expected = configmaps(&c.members[0]).expect("list");
    assert!(expected.len() >= 400);
    assert_eq!(configmaps(&c.members[3]).as_ref(), Some(&expected));
    // Removing the fourth again leaves three voters that go on writing.
    c.remove(0, 4);
    c.members[3].kill9();
    c.wait_voters(3);
    c.members[2].create("/api/v1/namespaces/default/configmaps", configmap("after"));
}

#[test]
fn a_member_restarted_on_another_port_is_reached_there() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let moved = (leader + 1) % 3;
    let m = &mut c.members[moved];
    m.kill9();
    let i = m
        .extra_args
        .iter()
        .position(|a| a == "--listen")
        .expect("--listen");
    let new = format!("127.0.0.1:{}", free_port());
    m.extra_args[i + 1] = new.clone();
    m.spawn();
    eventually(
        "the cluster to record the new address",
        Duration::from_secs(30),
        || {
            let s = c.status(leader);
            s["members"]
                .as_array()?
                .iter()
                .any(|m| m["address"] == new.as_str() && m["role"] == "voter")
                .then_some(())
        },
    );
    // Writes through it (forwarded to the leader) and to it (replicated) both work.
    c.members[moved].create(
        "/api/v1/namespaces/default/configmaps",
        configmap("from-moved"),
    );
    c.members[leader].create(
        "/api/v1/namespaces/default/configmaps",
        configmap("to-moved"),
    );
    c.members[moved].api_get("/api/v1/namespaces/default/configmaps/to-moved");
}

#[test]
fn a_namespace_deletion_finishes_across_a_leader_change() {
    let mut c = Cluster::start(3);
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}});
    c.members[0].create("/api/v1/namespaces", &ns);
    for i in 0..20 {
        c.members[0].create(
            "/api/v1/namespaces/doomed/configmaps",
            configmap(&format!("c{i}")),
        );
    }
    let leader = c.leader();
    let other = (leader + 1) % 3;
    // Deleted through a follower; the leader that started the cleanup is killed at once.
    let (code, body) = c.members[other].curl("DELETE", "/api/v1/namespaces/doomed", None, None);
    assert!(code == 200 || code == 202, "{code} {body}");
    c.members[leader].kill9();
    eventually("the namespace to be gone", Duration::from_secs(60), || {
        let (code, _) = c.members[other].curl("GET", "/api/v1/namespaces/doomed", None, None);
        (code == 404).then_some(())
    });
}

#[test]
fn members_at_separate_addresses_are_the_kubernetes_service_endpoints() {
    // As on three machines: one port, three addresses (loopback ones, on this host).
    let port = free_port();
    let first = Server::start_with(&["--listen", &format!("127.0.0.1:{port}")]);
    let token = std::fs::read_to_string(first.data_dir().join("server-token")).unwrap();
    let mut members = vec![first];
    for host in ["127.0.0.2", "127.0.0.3"] {
        let join = members[0].url.clone();
        members.push(Server::start_with(&[
            "--listen",
            &format!("{host}:{port}"),
            "--join",
            &join,
            "--token",
            token.trim(),
        ]));
    }
    let c = Cluster { members };
    c.wait_voters(3);
    let ips = |path: &str, pointer: &str| -> Vec<String> {
        let v = c.members[1].api_get(path);
        let mut ips: Vec<String> = v
            .pointer(pointer)
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str().or_else(|| a["addresses"][0].as_str()))
            .map(str::to_string)
            .collect();
        ips.sort();
        ips
    };
    let want = vec!["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    assert_eq!(
        ips(
            "/api/v1/namespaces/default/endpoints/kubernetes",
            "/subsets/0/addresses"
        ),
        want
    );
    assert_eq!(
        ips(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
            "/endpoints"
        ),
        want
    );
    // Every member's own kubeconfig names its own address.
    assert!(
        c.members[2].url.contains("127.0.0.3"),
        "{}",
        c.members[2].url
    );
}

/// The history mirror's head (operation id, revision) on one member.
fn mirror_head(s: &Server) -> Option<(String, u64)> {
    let v = s.get_opt("/apis/history.reddwarf.io/v1/status")?;
    let op = v["mirror"]["operation"].as_str()?.to_string();
    let rev = v["mirror"]["revision"].as_str()?.parse().ok()?;
    Some((op, rev))
}

#[test]
fn every_member_builds_the_same_history_operations() {
    let c = Cluster::start(3);
    for (i, m) in c.members.iter().enumerate() {
        for j in 0..5 {
            let (code, body) = m.send_json(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                &configmap(&format!("h-{i}-{j}")),
            );
            assert_eq!(code, 201, "{body}");
        }
    }
    // once every member's mirror has reached the same revision, the operation ids agree
    let heads = eventually(
        "every member's mirror at one revision",
        Duration::from_secs(60),
        || {
            let heads: Vec<(String, u64)> =
                c.members.iter().map(mirror_head).collect::<Option<_>>()?;
            let last = heads[0].1;
            (last > 0 && heads.iter().all(|h| h.1 == last)).then_some(heads)
        },
    );
    assert!(
        heads.iter().all(|h| h.0 == heads[0].0),
        "members differ at revision {}: {heads:?}",
        heads[0].1
    );
    // and every member's history lists the same changes
    let logs: Vec<serde_json::Value> = c
        .members
        .iter()
        .map(|m| {
            let v = m
                .get_opt("/apis/history.reddwarf.io/v1/log?resource=configmaps&namespace=default&limit=0")
                .expect("history log");
            v["items"].clone()
        })
        .collect();
    assert!(
        logs.iter().all(|l| *l == logs[0]),
        "history logs differ between members"
    );
}
