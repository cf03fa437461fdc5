//! REST semantics of the generic registry and the kinds' strategies, below the binary:
//! requests through the API server's router (no socket, no TLS, no kubectl) over a store in
//! a temporary directory. Every test runs twice, behind the same `Proposer` trait: over a
//! real one-member raft `Consensus`, and over the `DirectProposer` that applies each
//! proposal at once — the two must not differ in anything a client sees.

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use reddwarf_apiserver::{AdmissionConfig, ApiServer, ServiceNetwork, User};
use reddwarf_consensus::{Consensus, ConsensusConfig, DirectProposer};
use reddwarf_store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Api {
    api: Arc<ApiServer>,
    consensus: Option<Consensus>,
    _dir: tempfile::TempDir,
}

/// Which write path the API server proposes through.
#[derive(Clone, Copy)]
enum Path {
    Raft,
    Direct,
}

struct Answer {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

impl Api {
    async fn start(path: Path) -> Api {
        Api::start_with(path, &AdmissionConfig::default()).await
    }

    async fn start_with(path: Path, admission: &AdmissionConfig) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let (api, consensus) = match path {
            Path::Raft => {
                let cfg = ConsensusConfig {
                    snapshot_dir: dir.path().join("snapshots"),
                    ..Default::default()
                };
                let consensus = Consensus::start(store, cfg).await.unwrap();
                let api =
                    ApiServer::with_config(consensus.clone(), ServiceNetwork::default(), admission);
                (api, Some(consensus))
            }
            Path::Direct => {
                let direct = DirectProposer::new(store);
                let api = ApiServer::with_config(direct, ServiceNetwork::default(), admission);
                (api, None)
            }
        };
        api.start_background().await.unwrap();
        Api {
            api,
            consensus,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, ct: &str, body: Option<Value>) -> Answer {
        self.call_as(User::system("tester"), method, path, ct, body)
            .await
    }

    async fn call_as(
        &self,
        user: User,
        method: &str,
        path: &str,
        ct: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ct)
            .header("accept", "application/json")
            .body(match body {
                Some(v) => Body::from(serde_json::to_vec(&v).unwrap()),
                None => Body::empty(),
            })
            .unwrap();
        req.extensions_mut().insert(user);
        let resp = self.api.router().oneshot(req).await.unwrap();
        let code = resp.status().as_u16();
        let warnings = resp
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            code,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            warnings,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, "application/json", None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, "application/json", Some(body))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.call("PUT", path, "application/json", Some(body)).await
    }

    async fn merge_patch(&self, path: &str, body: Value) -> Answer {
        self.call("PATCH", path, "application/merge-patch+json", Some(body))
            .await
    }

    async fn delete(&self, path: &str, body: Option<Value>) -> Answer {
        self.call("DELETE", path, "application/json", body).await
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        // The raft tasks stop with the runtime; asking first lets them end cleanly.
        if let (Some(c), Ok(h)) = (
            self.consensus.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            h.spawn(async move { c.shutdown().await });
        }
    }
}

/// Each named scenario (`async fn name(path: Path)`) as two tests: `raft::name` and
/// `direct::name`.
macro_rules! over_both_paths {
    ($($name:ident),* $(,)?) => {
        mod raft {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Path::Raft).await
                }
            )*
        }
        mod direct {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Path::Direct).await
                }
            )*
        }
    };
}

over_both_paths!(
    create_update_and_no_op_writes,
    status_and_spec_are_written_through_their_own_endpoints,
    daemonsets_count_template_changes,
    graceful_deletion_follows_the_kind,
    namespaces_finalize_and_the_immortal_ones,
    claims_binding_and_requesters,
    admission_is_configured_not_global,
);

fn rv(v: &Value) -> &str {
    v["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

async fn create_update_and_no_op_writes(path: Path) {
    let api = Api::start(path).await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let made = api
        .post(
            cms,
            json!({"metadata": {"generateName": "c-"}, "data": {"a": "1"}}),
        )
        .await;
    assert_eq!(made.code, 201, "{}", made.body);
    let name = made.body["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("c-") && name.len() > 2);
    // A create naming a resourceVersion is refused.
    let bad = api
        .post(
            cms,
            json!({"metadata": {"name": "x", "resourceVersion": "5"}}),
        )
        .await;
    assert_eq!(bad.code, 400);
    // The same object again: no new revision (no-op).
    let path = format!("{cms}/{name}");
    let same = api.put(&path, made.body.clone()).await;
    assert_eq!(same.code, 200, "{}", same.body);
    assert_eq!(rv(&same.body), rv(&made.body));
    // A change with the read version: a new revision.
    let mut changed = made.body.clone();
    changed["data"]["a"] = json!("2");
    let up = api.put(&path, changed.clone()).await;
    assert_eq!(up.code, 200, "{}", up.body);
    assert_ne!(rv(&up.body), rv(&made.body));
    // The stale version again: 409 Conflict.
    changed["data"]["a"] = json!("3");
    let stale = api.put(&path, changed).await;
    assert_eq!(stale.code, 409, "{}", stale.body);
    assert_eq!(stale.body["reason"], "Conflict");
    // A dry run stores nothing.
    let dry = api
        .call(
            "POST",
            &format!("{cms}?dryRun=All"),
            "application/json",
            Some(json!({"metadata": {"name": "dry"}})),
        )
        .await;
    assert_eq!(dry.code, 201);
    assert_eq!(api.get(&format!("{cms}/dry")).await.code, 404);
    // Options are checked once, before anything is done.
    let opts = api
        .call(
            "POST",
            &format!("{cms}?fieldValidation=Loose"),
            "application/json",
            Some(json!({"metadata": {"name": "o"}})),
        )
        .await;
    assert_eq!(opts.code, 400);
    let list = api.get(&format!("{cms}?resourceVersionMatch=Exact")).await;
    assert_eq!(list.code, 422, "{}", list.body);
}

async fn status_and_spec_are_written_through_their_own_endpoints(path: Path) {
    let api = Api::start(path).await;
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let made = api.post(deps, d).await;
    assert_eq!(made.code, 201, "{}", made.body);
    assert_eq!(made.body["metadata"]["generation"], 1);
    // A status write changes status (and, for Deployments, annotations) only.
    let st = api
        .merge_patch(
            &format!("{deps}/web/status"),
            json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}},
                "spec": {"replicas": 9}, "status": {"replicas": 1}}),
        )
        .await;
    assert_eq!(st.code, 200, "{}", st.body);
    assert_eq!(st.body["status"]["replicas"], 1);
    assert_eq!(st.body["spec"]["replicas"], 1);
    assert_eq!(
        st.body["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(st.body["metadata"]["generation"], 1);
    // A spec write keeps status and bumps generation.
    let sp = api
        .merge_patch(
            &format!("{deps}/web"),
            json!({"spec": {"replicas": 3}, "status": {"replicas": 7}}),
        )
        .await;
    assert_eq!(sp.code, 200, "{}", sp.body);
    assert_eq!(sp.body["status"]["replicas"], 1);
    assert_eq!(sp.body["metadata"]["generation"], 2);
    // /scale goes through the same update.
    let sc = api
        .merge_patch(
            &format!("{deps}/web/scale"),
            json!({"spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(sc.code, 200, "{}", sc.body);
    assert_eq!(sc.body["kind"], "Scale");
    assert_eq!(sc.body["spec"]["replicas"], 5);
    assert_eq!(sc.body["status"]["selector"], "app=web");
    let now = api.get(&format!("{deps}/web")).await;
    assert_eq!(now.body["spec"]["replicas"], 5);
    assert_eq!(now.body["metadata"]["generation"], 3);
    // A replication controller's scale reports its selector as a label set.
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 1, "selector": {"b": "2", "a": "1"},
        "template": {"metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    assert_eq!(api.post(rcs, rc).await.code, 201);
    let rs = api.get(&format!("{rcs}/rc/scale")).await;
    assert_eq!(rs.body["status"]["selector"], "a=1,b=2");
}

async fn daemonsets_count_template_changes(path: Path) {
    let api = Api::start(path).await;
    let dss = "/apis/apps/v1/namespaces/default/daemonsets";
    let ds = json!({"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}});
    let made = api.post(dss, ds).await;
    assert_eq!(made.code, 201, "{}", made.body);
    let tg = |v: &Value| {
        v["metadata"]["annotations"]["deprecated.daemonset.template.generation"].clone()
    };
    assert_eq!(tg(&made.body), "1");
    let p = api
        .merge_patch(
            &format!("{dss}/agent"),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}}),
        )
        .await;
    assert_eq!(p.code, 200, "{}", p.body);
    assert_eq!(tg(&p.body), "2");
    // A change outside the template keeps it.
    let l = api
        .merge_patch(
            &format!("{dss}/agent"),
            json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await;
    assert_eq!(tg(&l.body), "2");
}

async fn graceful_deletion_follows_the_kind(path: Path) {
    let api = Api::start(path).await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1",
        "terminationGracePeriodSeconds": 20,
        "containers": [{"name": "c", "image": "busybox"}]}});
    assert_eq!(api.post(pods, pod).await.code, 201);
    // A bound pod gets its grace period: it stays, terminating.
    let d = api.delete(&format!("{pods}/p"), None).await;
    assert_eq!(d.code, 200, "{}", d.body);
    assert_eq!(d.body["metadata"]["deletionGracePeriodSeconds"], 20);
    assert_eq!(api.get(&format!("{pods}/p")).await.code, 200);
    // The final delete with grace 0 removes it.
    let gone = api
        .delete(&format!("{pods}/p"), Some(json!({"gracePeriodSeconds": 0})))
        .await;
    assert_eq!(gone.code, 200, "{}", gone.body);
    assert_eq!(api.get(&format!("{pods}/p")).await.code, 404);
    // A Job deleted without a policy keeps its pods (orphan) and says so.
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
    assert_eq!(api.post(jobs, job).await.code, 201, "job");
    let dj = api.delete(&format!("{jobs}/j"), None).await;
    assert_eq!(dj.code, 200, "{}", dj.body);
    assert!(
        dj.warnings
            .iter()
            .any(|w| w.contains("child pods are preserved")),
        "{:?}",
        dj.warnings
    );
    let j = api.get(&format!("{jobs}/j")).await;
    assert_eq!(j.body["metadata"]["finalizers"], json!(["orphan"]));
    // Preconditions are checked.
    let cms = "/api/v1/namespaces/default/configmaps";
    assert_eq!(
        api.post(cms, json!({"metadata": {"name": "c"}})).await.code,
        201
    );
    let pre = api
        .delete(
            &format!("{cms}/c"),
            Some(json!({"preconditions": {"uid": "not-the-uid"}})),
        )
        .await;
    assert_eq!(pre.code, 409, "{}", pre.body);
}

async fn namespaces_finalize_and_the_immortal_ones(path: Path) {
    let api = Api::start(path).await;
    let d = api.delete("/api/v1/namespaces/kube-system", None).await;
    assert_eq!(d.code, 403, "{}", d.body);
    assert!(d.body["message"]
        .as_str()
        .unwrap()
        .contains("this namespace may not be deleted"));
    assert_eq!(
        api.post("/api/v1/namespaces", json!({"metadata": {"name": "t"}}))
            .await
            .code,
        201
    );
    // /finalize writes spec.finalizers only.
    let mut ns = api.get("/api/v1/namespaces/t").await.body;
    ns["spec"]["finalizers"] = json!(["example.com/x"]);
    ns["metadata"]["labels"] = json!({"ignored": "yes"});
    let f = api.put("/api/v1/namespaces/t/finalize", ns).await;
    assert_eq!(f.code, 200, "{}", f.body);
    assert_eq!(f.body["spec"]["finalizers"], json!(["example.com/x"]));
    assert!(f.body["metadata"]["labels"].get("ignored").is_none());
    // Only update is served on /finalize.
    let g = api.get("/api/v1/namespaces/t/finalize").await;
    assert_eq!(g.code, 405);
}

async fn claims_binding_and_requesters(path: Path) {
    let api = Api::start(path).await;
    let svcs = "/api/v1/namespaces/default/services";
    let svc = |name: &str| json!({"metadata": {"name": name}, "spec": {"clusterIP": "10.43.7.7", "ports": [{"port": 80}]}});
    assert_eq!(api.post(svcs, svc("a")).await.code, 201);
    let taken = api.post(svcs, svc("b")).await;
    assert_eq!(taken.code, 422, "{}", taken.body);
    // The bindings resource assigns a pod.
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    assert_eq!(api.post(pods, pod).await.code, 201);
    let b = api
        .post(
            "/api/v1/namespaces/default/bindings",
            json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}}),
        )
        .await;
    assert_eq!(b.code, 201, "{}", b.body);
    let p = api.get(&format!("{pods}/p")).await;
    assert_eq!(p.body["spec"]["nodeName"], "n1");
    let again = api
        .post(
            &format!("{pods}/p/binding"),
            json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n2"}}),
        )
        .await;
    assert_eq!(again.code, 409, "{}", again.body);
    // A CSR's requester is who sent it.
    let csr = json!({"metadata": {"name": "c"}, "spec": {"request": "aGVsbG8=",
        "signerName": "example.com/s", "usages": ["digital signature"], "username": "someone-else"}});
    let who = User {
        name: "alice".into(),
        groups: vec!["devs".into(), "system:authenticated".into()],
    };
    // RBAC: alice may create CSRs.
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    let role = api
        .post(
            &format!("{rbac}/clusterroles"),
            json!({"metadata": {"name": "csr"}, "rules": [{"apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests"], "verbs": ["create"]}]}),
        )
        .await;
    assert_eq!(role.code, 201, "{}", role.body);
    let binding = api
        .post(
            &format!("{rbac}/clusterrolebindings"),
            json!({"metadata": {"name": "csr"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole", "name": "csr"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
        )
        .await;
    assert_eq!(binding.code, 201, "{}", binding.body);
    let made = api
        .call_as(
            who,
            "POST",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            "application/json",
            Some(csr),
        )
        .await;
    assert_eq!(made.code, 201, "{}", made.body);
    assert_eq!(made.body["spec"]["username"], "alice");
    assert_eq!(
        made.body["spec"]["groups"],
        json!(["devs", "system:authenticated"])
    );
}

async fn admission_is_configured_not_global(path: Path) {
    let api = Api::start_with(
        path,
        &AdmissionConfig {
            not_ready_toleration_seconds: 7,
            unreachable_toleration_seconds: 9,
        },
    )
    .await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let made = api.post(pods, pod).await;
    assert_eq!(made.code, 201, "{}", made.body);
    let secs: Vec<i64> = made.body["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["tolerationSeconds"].as_i64())
        .collect();
    assert_eq!(secs, [7, 9]);
    // Priority: a pod may not state a priority its class does not give.
    let bad = json!({"metadata": {"name": "q"}, "spec": {"priority": 5,
        "containers": [{"name": "c", "image": "busybox"}]}});
    let refused = api.post(pods, bad).await;
    assert_eq!(refused.code, 403, "{}", refused.body);
}
