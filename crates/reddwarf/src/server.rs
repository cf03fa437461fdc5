//! `reddwarf server`: opens the data dir, starts consensus and the API server, and serves
//! HTTPS with client-certificate authentication until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use reddwarf_apiserver::{ApiServer, User};
use reddwarf_consensus::{Consensus, ConsensusConfig};
use reddwarf_store::Store;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::token_auth::TokenAuth;
use crate::{pki, tls, ServerArgs};

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let network = reddwarf_apiserver::ServiceNetwork::parse(
        &args.service_cidr,
        &args.service_node_port_range,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let cluster_cidr = reddwarf_controllers::nodeipam::ClusterCidr::parse(
        &args.cluster_cidr,
        args.node_cidr_mask_size,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let pki =
        pki::load_or_create(&args.data_dir.join("pki"), &args.tls_san).context("certificates")?;
    let server_tls = tls::server_config(&pki)?;
    let mut tokens = match &args.token_auth_file {
        Some(p) => TokenAuth::load(p)?,
        None => TokenAuth::default(),
    };
    // Agents join with the node token: it pins the CA and lets them ask for a certificate.
    let node_token = node_token(&args.data_dir, &pki.ca_cert_pem)?;
    tokens.insert(
        &node_token,
        User {
            name: "system:bootstrap:node-token".into(),
            groups: vec![
                reddwarf_apiserver::BOOTSTRAPPERS_GROUP.into(),
                "system:authenticated".into(),
            ],
        },
    );
    let tokens = Arc::new(tokens);
    let ca_pem = Arc::new(pki.ca_cert_pem.clone());
    let revocations = Arc::new(pki::revocation::Revocations::new(
        &args.data_dir.join("pki"),
    ));

    let state_path = args.data_dir.join("state.redb");
    if args.restore.is_some() {
        anyhow::ensure!(
            !state_path.exists(),
            "{} already holds a cluster: restore into a new --data-dir",
            args.data_dir.display()
        );
    }
    let store = Store::open(&state_path).context("opening the store")?;
    if let Some(file) = &args.restore {
        let f = std::fs::File::open(file)
            .with_context(|| format!("opening the snapshot {}", file.display()))?;
        let restored = reddwarf_consensus::restore_new_cluster(
            &store,
            &mut std::io::BufReader::with_capacity(1 << 20, f),
        );
        if let Err(e) = restored {
            drop(store);
            // Leave no half-restored cluster behind: the next attempt starts clean.
            let _ = std::fs::remove_file(&state_path);
            return Err(e.context(format!("restoring {}", file.display())));
        }
        tracing::info!(
            "restored {} at revision {} into a new cluster",
            file.display(),
            store.revision()
        );
    }
    let _scheduled_snapshots = crate::snapshot::schedule(
        store.clone(),
        &args.data_dir,
        &args.snapshot_schedule,
        args.snapshot_retention,
    )?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let consensus = Consensus::start(
        store,
        ConsensusConfig {
            advertise: local.to_string(),
            snapshot_dir: args.data_dir.join("snapshots"),
            snapshot_every: args.raft_snapshot_entries.max(10),
            ..Default::default()
        },
    )
    .await
    .context("starting consensus")?;

    let admission = reddwarf_apiserver::AdmissionConfig {
        not_ready_toleration_seconds: args.default_not_ready_toleration_seconds,
        unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
    };
    let api = ApiServer::with_config(consensus.clone(), network, &admission);
    api.set_advertise(format!("{}:{}", advertise_ip(local), local.port()));
    api.set_token_authenticator(tokens.clone());
    let sa_key =
        pki::service_account_key(&args.data_dir.join("pki")).context("service-account key")?;
    api.set_service_account_key(&sa_key, &args.service_account_issuer)?;
    let router = api.router();
    let kubeconfig = args.data_dir.join("admin.kubeconfig");
    pki::write_admin_kubeconfig(&kubeconfig, &format!("https://{}", host_port(local)), &pki)?;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let acceptor = TlsAcceptor::from(server_tls);
    let serve = {
        let router = router.clone();
        let api = api.clone();
        async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let router = router.clone();
                let api = api.clone();
                let revocations = revocations.clone();
                let ca_pem = ca_pem.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    if let Err(e) =
                        serve_connection(acceptor, router, api, revocations, ca_pem, tcp, watcher)
                            .await
                    {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                });
            }
        }
    };
    let serve = tokio::spawn(serve);
    api.start_background().await.context("bootstrap")?;
    let scheduler_metrics = reddwarf_controllers::scheduler::Metrics::default();
    api.register_metrics(|r| scheduler_metrics.register(r));
    // The scheduler and controllers run on the raft leader only: started when this member
    // becomes leader, stopped when it stops being one (one member is always the leader).
    let leadership = {
        let mut raft_metrics = consensus.raft().metrics();
        let router = router.clone();
        let settings = reddwarf_controllers::Settings {
            root_ca_pem: pki.ca_cert_pem.clone(),
            ca_key_pem: pki.ca_key_pem.clone(),
            cluster_cidr,
            node_monitor_grace_period: args.node_monitor_grace_period.into(),
            terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
            local_storage_path: args.local_storage_path.clone(),
            scheduler_metrics,
            controllers: args.controllers.clone(),
        };
        tokio::spawn(async move {
            let mut running: Option<Vec<tokio::task::JoinHandle<()>>> = None;
            loop {
                let leader = {
                    let m = raft_metrics.borrow();
                    m.current_leader == Some(m.id)
                };
                match (leader, running.is_some()) {
                    (true, false) => {
                        tracing::info!("leading: starting the scheduler and controllers");
                        running = Some(reddwarf_controllers::start(
                            |name| {
                                crate::in_process::kube_client(
                                    router.clone(),
                                    crate::in_process::controller_user(name),
                                )
                            },
                            settings.clone(),
                        ));
                    }
                    (false, true) => {
                        tracing::info!("no longer leading: stopping the scheduler and controllers");
                        for h in running.take().into_iter().flatten() {
                            h.abort();
                        }
                    }
                    _ => {}
                }
                if raft_metrics.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    tracing::info!(
        "reddwarf serving on https://{local} (ready in {:?}); admin kubeconfig: {}",
        started.elapsed(),
        kubeconfig.display()
    );
    let (agent_stop, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = embedded_agent(&args, local, &node_token, agent_stopped);

    shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(a) = agent {
        let _ = agent_stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), a).await;
    }
    leadership.abort();
    serve.abort();
    // In-flight requests (and their proposals) get a moment to finish; watches are cut.
    tokio::time::sleep(Duration::from_millis(200)).await;
    consensus.shutdown().await;
    drop(api);
    drop(router);
    tracing::info!("stopped");
    Ok(())
}

/// The server's own node: the same agent `reddwarf agent` runs, dialling this server, with
/// its state in `DIR/agent`. Needs root (containers, network namespaces); without it the
/// server stays a pure control plane and says so.
fn embedded_agent(
    args: &ServerArgs,
    local: SocketAddr,
    token: &str,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Option<tokio::task::JoinHandle<()>> {
    if args.disable_agent {
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        tracing::warn!("not running as root: no embedded agent (this server runs no pods; use --disable-agent to silence this)");
        return None;
    }
    let mut cfg = match args.node.config(
        format!("https://{}", host_port(local)),
        Some(token.to_string()),
        args.data_dir.join("agent"),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("embedded agent: {e:#}");
            return None;
        }
    };
    cfg.labels.push((
        "node-role.kubernetes.io/control-plane".into(),
        "true".into(),
    ));
    let bridge = args.node.bridge.clone();
    Some(tokio::spawn(async move {
        let rt = match crate::agent::runtime(&cfg.data_dir) {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("embedded agent: the container runtime: {e:#}");
                return;
            }
        };
        let stdin_rt = rt.clone();
        let stdin_path: Box<dyn Fn(&str) -> std::path::PathBuf + Send + Sync> =
            Box::new(move |id: &str| stdin_rt.stdin_path(id));
        let stop = async {
            let _ = stop.await;
        };
        if let Err(e) = reddwarf_agent::run(cfg, rt, bridge, Some(stdin_path), stop).await {
            tracing::error!("embedded agent: {e:#}");
        }
    }))
}

/// The node token in `DIR/node-token`, created on first start and kept while the CA stays.
fn node_token(dir: &std::path::Path, ca_pem: &str) -> anyhow::Result<String> {
    use reddwarf_agent::token::NodeToken;
    let path = dir.join("node-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        match NodeToken::parse(&existing) {
            Ok(t) if t.ca_hash == reddwarf_agent::token::ca_hash(ca_pem) => return Ok(t.encode()),
            _ => tracing::warn!(
                "{} does not match the cluster CA: writing a new one",
                path.display()
            ),
        }
    }
    let token = NodeToken::generate(ca_pem).encode();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{token}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(token)
}

/// `ip:port` clients on this host use: loopback when listening on every address.
fn host_port(local: SocketAddr) -> String {
    let ip = advertise_ip(local);
    if ip.contains(':') {
        format!("[{ip}]:{}", local.port())
    } else {
        format!("{ip}:{}", local.port())
    }
}

fn advertise_ip(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        "127.0.0.1".into()
    } else {
        local.ip().to_string()
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    router: axum::Router,
    api: Arc<ApiServer>,
    revocations: Arc<pki::revocation::Revocations>,
    ca_pem: Arc<String>,
    tcp: tokio::net::TcpStream,
    watcher: hyper_util::server::graceful::Watcher,
) -> anyhow::Result<()> {
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await??;
    // A revoked certificate authenticates nothing: every request on the connection is a 401.
    let revoked = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .is_some_and(|der| revocations.is_revoked(der));
    let user = tls::peer_identity(tls.get_ref().1)
        .filter(|_| !revoked)
        .map(|id| {
            let mut groups = id.groups;
            groups.push("system:authenticated".into());
            User {
                name: id.user,
                groups,
            }
        });
    let svc = tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        // The CA is public: a joining agent downloads it and checks it against its token's hash.
        if req.uri().path() == "/cacerts" && req.method() == http::Method::GET {
            let resp = http::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/x-pem-file")
                .body(axum::body::Body::from(ca_pem.to_string()))
                .expect("static response");
            return futures::future::Either::Left(std::future::ready(Ok(resp)));
        }
        // A client certificate wins; otherwise a known bearer token authenticates; a request
        // with no credentials at all is anonymous (an unknown token is refused with 401).
        if let Some(u) = user.clone().or_else(|| {
            let token = crate::token_auth::bearer(req.headers())?;
            api.authenticate_bearer(token)
        }) {
            req.extensions_mut().insert(u);
        } else if !revoked && !req.headers().contains_key(http::header::AUTHORIZATION) {
            req.extensions_mut().insert(User::anonymous());
        }
        futures::future::Either::Right(router.clone().oneshot(req.map(axum::body::Body::new)))
    });
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
    watcher
        .watch(conn.into_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
