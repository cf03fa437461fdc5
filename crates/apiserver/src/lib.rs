//! reddwarf's API server: HTTP routing, codecs, discovery, OpenAPI, REST verbs and watch over
//! the consensus write path and the store's read views. Every change goes through
//! [`reddwarf_consensus::Proposer`] (raft's `Consensus` in a server); reads use consistent store views.

// `ApiError` carries a whole Status (message, details, causes); it is built only on the way
// out to the client, so its size costs nothing on successful requests.
#![allow(clippy::result_large_err)]

pub mod admission;
mod aggregation;
mod auth;
mod backup;
mod client;
mod codec;
mod componentstatus;
mod crd;
mod discovery;
mod field_manager;
mod handler;
mod health;
mod history;
mod list_stream;
mod merge_schema;
mod meta;
mod metrics;
mod namespace_controller;
mod node_authz;
pub mod node_proxy;
mod openapi;
mod openapi_schema;
mod openapi_v2;
mod pagination;
mod patch;
mod path;
mod pod_subresources;
#[cfg(test)]
mod proptests;
mod query;
pub mod rbac;
mod registry;
mod request;
mod rest;
mod reviews;
pub mod sa_token;
mod scale;
mod selector;
mod service_alloc;
mod slim;
mod status;
mod table;
mod watch;
pub use slim::OMIT_MANAGED_FIELDS;

pub use admission::AdmissionConfig;
pub use auth::{
    Attributes, Authorizer, Decision, Rules, TokenAuthenticator, User, BOOTSTRAPPERS_GROUP,
    MASTERS_GROUP,
};
pub use client::InProcessClient;
pub use service_alloc::ServiceNetwork;
pub use status::{ApiError, Cause};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reddwarf_consensus::Proposer;
use reddwarf_resources::Catalogue;
use reddwarf_store::Store;

/// Shared state of the API server.
pub struct ApiServer {
    pub(crate) consensus: Arc<dyn Proposer>,
    pub(crate) store: Store,
    /// The served kinds: built-ins plus established custom resources, swapped whole when a
    /// CustomResourceDefinition changes.
    pub(crate) catalogue_cell: Arc<crd::CatalogueCell>,
    pub(crate) snapshots: pagination::Snapshots,
    pub(crate) authorizer: auth::Chain,
    /// The token sources TokenReview checks (set by the server binary).
    pub(crate) tokens: std::sync::RwLock<Option<Arc<dyn TokenAuthenticator>>>,
    /// The service-account token key (an ephemeral one until the binary sets the cluster's).
    signer: sa_token::SignerCell,
    ready: AtomicBool,
    /// host:port clients use to reach this server (discovery's serverAddressByClientCIDRs).
    pub(crate) advertise: std::sync::RwLock<String>,
    pub(crate) service_network: ServiceNetwork,
    pub(crate) admission: admission::Admission,
    pub(crate) metrics: metrics::Metrics,
    /// Connected node agents' tunnels.
    pub tunnels: node_proxy::NodeTunnels,
    /// Whether this member leads its cluster: the controllers upstream runs in the
    /// (leader-elected) controller manager — namespace deletion, ClusterRole aggregation —
    /// work only while it does. Always true without raft or with one member.
    leading: tokio::sync::watch::Sender<bool>,
    /// How far the history's jj mirror has got (shown by the history status).
    pub(crate) history_mirror: std::sync::RwLock<serde_json::Value>,
}

impl ApiServer {
    /// An API server over `consensus`'s store, with the default service network
    /// (`10.43.0.0/16`, node ports 30000-32767) and default admission settings.
    pub fn new(consensus: impl Proposer) -> Arc<ApiServer> {
        ApiServer::with_network(consensus, ServiceNetwork::default())
    }

    /// An API server allocating Service cluster IPs and node ports from `service_network`.
    pub fn with_network(
        consensus: impl Proposer,
        service_network: ServiceNetwork,
    ) -> Arc<ApiServer> {
        ApiServer::with_config(consensus, service_network, &AdmissionConfig::default())
    }

    /// An API server with its service network and the settings of its admission plugins.
    pub fn with_config(
        consensus: impl Proposer,
        service_network: ServiceNetwork,
        admission: &AdmissionConfig,
    ) -> Arc<ApiServer> {
        let consensus: Arc<dyn Proposer> = Arc::new(consensus);
        let store = consensus.store().clone();
        let catalogue_cell = Arc::new(crd::CatalogueCell::new(Catalogue::builtin()));
        catalogue_cell.follow(&store);
        let rbac = rbac::Rbac::follow(&store);
        let signer: sa_token::SignerCell = Arc::new(std::sync::RwLock::new(Arc::new(
            sa_token::Signer::ephemeral(),
        )));
        let authorizer = auth::Chain {
            rbac: rbac.clone(),
            node: node_authz::NodeAuthorizer::new(store.clone()),
        };
        Arc::new(ApiServer {
            leading: tokio::sync::watch::Sender::new(true),
            history_mirror: std::sync::RwLock::new(serde_json::Value::Null),
            store,
            catalogue_cell,
            snapshots: pagination::Snapshots::default(),
            authorizer,
            tokens: std::sync::RwLock::new(None),
            signer: signer.clone(),
            ready: AtomicBool::new(false),
            advertise: std::sync::RwLock::new(String::new()),
            service_network,
            admission: admission::Admission::new(admission, rbac, signer.clone()),
            metrics: metrics::Metrics::new(consensus.stats()),
            tunnels: Default::default(),
            consensus,
        })
    }

    /// The served kinds now: built-ins and the custom resources of established definitions.
    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue_cell.refresh_if_stale(&self.store);
        self.catalogue_cell.load()
    }

    /// Publishes another component's metrics on `/metrics`.
    pub fn register_metrics(&self, f: impl FnOnce(&mut prometheus_client::registry::Registry)) {
        self.metrics.register(f)
    }

    /// The token sources TokenReview answers from (the ones the transport authenticates with).
    pub fn set_token_authenticator(&self, tokens: Arc<dyn TokenAuthenticator>) {
        if let Ok(mut t) = self.tokens.write() {
            *t = Some(tokens);
        }
    }

    /// The cluster's service-account key (PKCS#8 DER of a P-256 key) and the tokens' issuer.
    pub fn set_service_account_key(&self, pkcs8: &[u8], issuer: &str) -> anyhow::Result<()> {
        let signer = sa_token::Signer::from_pkcs8(pkcs8, issuer).map_err(anyhow::Error::msg)?;
        if let Ok(mut s) = self.signer.write() {
            *s = Arc::new(signer);
        }
        Ok(())
    }

    pub(crate) fn signer(&self) -> Arc<sa_token::Signer> {
        sa_token::current(&self.signer)
    }

    /// The user a bearer token names: a static or node token, a bootstrap token, else a
    /// service-account token
    /// this cluster issued for the API audience whose account (and pod) still exist.
    pub fn authenticate_bearer(&self, token: &str) -> Option<User> {
        let tokens = self.tokens.read().ok().and_then(|t| t.clone());
        if let Some(u) = tokens.and_then(|t| t.authenticate_token(token)) {
            return Some(u);
        }
        if let Some(u) = sa_token::authenticate_bootstrap(&self.store, token) {
            return Some(u);
        }
        sa_token::authenticate(&self.signer(), &self.store, token, &[]).map(|(u, _)| u)
    }

    /// Sets the `host:port` clients reach this server at: reported in discovery, and the
    /// address and port the `kubernetes` Service's endpoints point to.
    pub fn set_advertise(&self, addr: String) {
        if let Ok(mut a) = self.advertise.write() {
            *a = addr;
        }
    }

    /// The axum router serving the whole API. Requests must carry a [`User`] extension when
    /// authenticated (the TLS layer adds it from the client certificate).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        handler::router(self.clone())
    }

    /// Creates the bootstrap namespaces and starts the controllers that belong to the API
    /// server (namespace lifecycle). Marks the server ready when done.
    pub async fn start_background(self: &Arc<Self>) -> anyhow::Result<()> {
        let client = InProcessClient::new(self.router());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let (code, text) = client
                .request("POST", "/api/v1/namespaces", Some(&body))
                .await?;
            if code != 201 && code != 409 {
                anyhow::bail!("creating namespace {ns}: {code} {text}");
            }
        }
        // Upstream's bootstrap policy, then who may join: holders of the node token ask for
        // node certificates, as kubeadm's kubelet-bootstrap binding allows.
        rbac::aggregation::reconcile_bootstrap(&client).await?;
        let join = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": {"name": "reddwarf:node-bootstrapper"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": BOOTSTRAPPERS_GROUP}]});
        // One controller keeps both Endpoints and EndpointSlices here (upstream runs two, each
        // with its own role): its account holds the slice controller's role as well.
        let slices = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": {"name": "reddwarf:endpoint-controller:endpointslices"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:controller:endpointslice-controller"},
            "subjects": [{"kind": "ServiceAccount", "name": "endpoint-controller", "namespace": "kube-system"}]});
        // Controllers read single objects live where upstream's read informer caches: the
        // manager identity their reads go as, which may list and watch everything, may also
        // get everything.
        let reads = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole", "metadata": {"name": "reddwarf:controller-manager:reads"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}]});
        let (code, text) = client
            .request(
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                Some(&reads),
            )
            .await?;
        if code != 201 && code != 409 {
            anyhow::bail!("creating role {}: {code} {text}", reads["metadata"]["name"]);
        }
        let manager_reads = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": {"name": "reddwarf:controller-manager:reads"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reddwarf:controller-manager:reads"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:kube-controller-manager"}]});
        for binding in [join, slices, manager_reads] {
            let (code, text) = client
                .request(
                    "POST",
                    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                    Some(&binding),
                )
                .await?;
            if code != 201 && code != 409 {
                anyhow::bail!(
                    "creating binding {}: {code} {text}",
                    binding["metadata"]["name"]
                );
            }
        }
        // Upstream's `kubernetes` Service: the first address of the service network, pointing
        // at this server's HTTPS port.
        let port: u16 = self
            .advertise
            .read()
            .ok()
            .and_then(|a| a.rsplit(':').next().and_then(|p| p.parse().ok()))
            .unwrap_or(6443);
        let svc = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": self.service_network.first_ip(), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
        });
        let (code, text) = client
            .request("POST", "/api/v1/namespaces/default/services", Some(&svc))
            .await?;
        if code != 201 && code != 409 {
            anyhow::bail!("creating the kubernetes service: {code} {text}");
        }
        self.write_master_endpoints(&client, port).await?;
        // Upstream's built-in priority classes (the scheduling post-start hook).
        for (name, value, description) in [
            ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
            ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
        ] {
            let pc = serde_json::json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description});
            let (code, text) = client
                .request("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", Some(&pc))
                .await?;
            if code != 201 && code != 409 {
                anyhow::bail!("creating priority class {name}: {code} {text}");
            }
        }
        // Upstream's autoregistration: a Local APIService per served group version. Off the
        // start-up path (readiness does not wait for them), and only those not there yet, so
        // a restart proposes nothing.
        let missing = aggregation::local_api_services(self)
            .into_iter()
            .filter(|svc| !aggregation::api_service_exists(self, svc))
            .collect::<Vec<_>>();
        if !missing.is_empty() {
            let client = client.clone();
            tokio::spawn(async move {
                let created = futures::future::join_all(missing.iter().map(|svc| {
                    client.request(
                        "POST",
                        "/apis/apiregistration.k8s.io/v1/apiservices",
                        Some(svc),
                    )
                }))
                .await;
                for (svc, r) in missing.iter().zip(created) {
                    match r {
                        Ok((201 | 409, _)) => {}
                        Ok((code, text)) => tracing::warn!(
                            "creating APIService {}: {code} {text}",
                            svc["metadata"]["name"]
                        ),
                        Err(e) => {
                            tracing::warn!("creating APIService {}: {e}", svc["metadata"]["name"])
                        }
                    }
                }
            });
        }
        tokio::spawn(rbac::aggregation::run(
            self.clone(),
            self.authorizer.rbac.clone(),
            client.as_user(User::service_account(
                "kube-system",
                "clusterrole-aggregation-controller",
            )),
        ));
        tokio::spawn(crd::controller::run(self.clone(), client.clone()));
        tokio::spawn(namespace_controller::run(
            self.clone(),
            client.as_user(User::service_account("kube-system", "namespace-controller")),
        ));
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Upstream's endpoint reconciler: the `kubernetes` Service has no selector, so the API
    /// server itself keeps its Endpoints and EndpointSlice pointing at this server.
    async fn write_master_endpoints(
        &self,
        client: &InProcessClient,
        port: u16,
    ) -> anyhow::Result<()> {
        let advertise = self.advertise.read().map(|a| a.clone()).unwrap_or_default();
        let host = |addr: &str| {
            addr.rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                .filter(|h| !h.is_empty())
        };
        let ip = host(&advertise).unwrap_or_else(|| "127.0.0.1".into());
        // Every control-plane member serving on this port (all of them, when they share the
        // port, as members on separate machines do), this one first.
        let mut ips = vec![ip.clone()];
        if let Ok(Some(status)) = self.consensus.cluster_status().await {
            for m in &status.members {
                let same_port = m
                    .address
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    == Some(port);
                if let Some(h) = host(&m.address).filter(|h| same_port && !ips.contains(h)) {
                    ips.push(h);
                }
            }
        }
        let address_type = if ip.contains(':') { "IPv6" } else { "IPv4" };
        ips.retain(|i| i.contains(':') == ip.contains(':'));
        let addresses: Vec<serde_json::Value> =
            ips.iter().map(|i| serde_json::json!({"ip": i})).collect();
        let endpoints = serde_json::json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        });
        let slice_endpoints: Vec<serde_json::Value> = ips
            .iter()
            .map(|i| serde_json::json!({"addresses": [i], "conditions": {"ready": true}}))
            .collect();
        let slice = serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": address_type,
            "endpoints": slice_endpoints,
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        for (collection, mut body) in [
            ("/api/v1/namespaces/default/endpoints", endpoints),
            (
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                slice,
            ),
        ] {
            let path = format!("{collection}/kubernetes");
            let (code, text) = client.request("GET", &path, None).await?;
            let (code, text) = if code == 404 {
                client.request("POST", collection, Some(&body)).await?
            } else {
                // The port changes when the server restarts on another one.
                let existing: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                body["metadata"]["resourceVersion"] =
                    existing["metadata"]["resourceVersion"].clone();
                client.request("PUT", &path, Some(&body)).await?
            };
            if !(200..300).contains(&code) {
                anyhow::bail!("writing {path}: {code} {text}");
            }
        }
        Ok(())
    }

    /// Records how far the history's jj mirror has got (operation id, revision, lag).
    pub fn set_history_mirror(&self, status: serde_json::Value) {
        if let Ok(mut m) = self.history_mirror.write() {
            *m = status;
        }
    }

    /// Tells the API server whether this member leads its cluster (the server binary follows
    /// raft leadership).
    pub fn set_leading(&self, leading: bool) {
        self.leading
            .send_if_modified(|l| std::mem::replace(l, leading) != leading);
    }

    /// Waits until this member leads.
    pub(crate) async fn until_leading(&self) {
        let mut rx = self.leading.subscribe();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Resolves when this member starts leading (after not leading).
    pub(crate) async fn starts_leading(&self) {
        let mut rx = self.leading.subscribe();
        let _ = rx.wait_for(|l| !*l).await;
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Whether [`Self::start_background`] has finished (the bootstrap namespaces exist);
    /// `/readyz` and the component statuses report it.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
