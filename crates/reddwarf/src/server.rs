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
    let state_path = args.data_dir.join("state.redb");
    let member = match crate::member::load(&args.data_dir)? {
        Some(m) => {
            if args.join.is_some() && m.joined {
                tracing::info!("member {} of its cluster already: --join is ignored", m.id);
            }
            m
        }
        None => match &args.join {
            Some(url) => {
                anyhow::ensure!(
                    args.restore.is_none(),
                    "--join and --restore exclude each other: a joining member receives the cluster's data"
                );
                anyhow::ensure!(
                    !state_path.exists(),
                    "{} already holds a cluster: a joining member needs an empty --data-dir",
                    args.data_dir.display()
                );
                let token = args.token.as_deref().context(
                    "--join needs --token: the server token (DIR/server-token of any member)",
                )?;
                let (seed_host, _) = crate::member::host_port(url)?;
                let seed_loopback = seed_host == "localhost"
                    || seed_host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                let own = match &args.advertise_address {
                    Some(a) => a.clone(),
                    None => advertise_ip(
                        tokio::net::lookup_host(&args.listen)
                            .await?
                            .next()
                            .context("--listen names no address")?,
                    ),
                };
                let own_loopback = own
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
                anyhow::ensure!(
                    seed_loopback || !own_loopback,
                    "this member would advertise {own}, which members on other machines cannot reach: give --advertise-address (or --listen with this machine's address)"
                );
                let m = crate::member::fetch_bundle(&args.data_dir, url, token).await?;
                tracing::info!("joining through {url} as member {}", m.id);
                m
            }
            None => {
                // The founding member (or a data dir from before membership was recorded).
                let m = crate::member::Member {
                    id: 1,
                    seed: None,
                    joined: true,
                };
                crate::member::save(&args.data_dir, &m)?;
                m
            }
        },
    };
    let listen: SocketAddr = tokio::net::lookup_host(&args.listen)
        .await
        .with_context(|| format!("resolving --listen {}", args.listen))?
        .next()
        .with_context(|| format!("--listen {} names no address", args.listen))?;
    // Peers dial the advertised address: the serving certificate must name it.
    let mut sans = args.tls_san.clone();
    let advertise_host = match &args.advertise_address {
        Some(a) => a.clone(),
        None => advertise_ip(listen),
    };
    sans.push(advertise_host.clone());
    let pki = pki::load_or_create(&args.data_dir.join("pki"), &sans).context("certificates")?;
    let (member_cert, member_key) = pki::member_cert(&args.data_dir.join("pki"), &pki, member.id)
        .context("member certificate")?;
    let peer_tls = tls::client_config(&pki.ca_cert_pem, Some((&member_cert, &member_key)))?;
    let server_tls = tls::server_config(&pki)?;
    let mut tokens = match &args.token_auth_file {
        Some(p) => TokenAuth::load(p)?,
        None => TokenAuth::default(),
    };
    // Agents join with the node token: it pins the CA and lets them ask for a certificate.
    let node_token = cluster_token(&args.data_dir, "node-token", &pki.ca_cert_pem)?;
    // Members join with the server token, checked by POST /reddwarf/raft/join.
    let server_token = cluster_token(&args.data_dir, "server-token", &pki.ca_cert_pem)?;
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

    let restore = match (&args.restore, args.force_new_cluster) {
        (Some(_), true) => {
            anyhow::bail!("--restore and --force-new-cluster exclude each other")
        }
        (Some(file), false) => {
            anyhow::ensure!(
                !state_path.exists(),
                "{} already holds a cluster: restore into a new --data-dir",
                args.data_dir.display()
            );
            Some(file.clone())
        }
        (None, true) => Some(force_new_cluster(&args.data_dir, &state_path, &member)?),
        (None, false) => None,
    };
    let store = Store::open_with(
        &state_path,
        reddwarf_store::StoreOptions {
            history: args.history,
            cache_bytes: args.storage_cache_mib << 20,
            ..Default::default()
        },
    )
    .context("opening the store")?;
    if let Some(file) = &restore {
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
    let advertise = if advertise_host.contains(':') {
        format!("[{advertise_host}]:{}", local.port())
    } else {
        format!("{advertise_host}:{}", local.port())
    };
    let history_store = store.clone();
    let consensus = Consensus::start(
        store,
        ConsensusConfig {
            node_id: member.id,
            advertise: advertise.clone(),
            snapshot_dir: args.data_dir.join("snapshots"),
            snapshot_every: args.raft_snapshot_entries.max(10),
            peer_tls: Some(peer_tls),
            join: !member.joined,
            ..Default::default()
        },
    )
    .await
    .context("starting consensus")?;
    let sa_key =
        pki::service_account_key(&args.data_dir.join("pki")).context("service-account key")?;
    let peer_service = Arc::new(PeerService {
        consensus: consensus.clone(),
        loopback: advertise_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        server_token: server_token.clone(),
        bundle: crate::member::JoinBundle {
            id: 0,
            ca_cert: pki.ca_cert_pem.clone(),
            ca_key: pki.ca_key_pem.clone(),
            service_account_key: std::fs::read_to_string(
                args.data_dir.join("pki").join(pki::SERVICE_ACCOUNT_KEY),
            )
            .unwrap_or_default(),
            node_token: node_token.clone(),
            server_token: server_token.clone(),
        },
    });

    let admission = reddwarf_apiserver::AdmissionConfig {
        not_ready_toleration_seconds: args.default_not_ready_toleration_seconds,
        unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
    };
    let api = ApiServer::with_config(consensus.clone(), network, &admission);
    api.set_advertise(advertise.clone());
    api.set_token_authenticator(tokens.clone());
    api.set_service_account_key(&sa_key, &args.service_account_issuer)?;
    let router = api.router();
    let _history = args.history.then(|| {
        crate::history_recorder::start(
            history_store.clone(),
            args.data_dir.join("history"),
            args.history_retention,
            api.clone(),
        )
    });
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
                let peer_service = peer_service.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let shared = Shared {
                        router,
                        api,
                        revocations,
                        ca_pem,
                        peer: peer_service,
                    };
                    if let Err(e) = serve_connection(acceptor, shared, tcp, watcher).await {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                });
            }
        }
    };
    let serve = tokio::spawn(serve);
    if !member.joined {
        join_cluster(&consensus, &args.data_dir, &member, &advertise).await;
    }
    // A member restarted on another address (or given --advertise-address at last) has the
    // cluster record the new one, so peers and followers reach it.
    {
        let consensus = consensus.clone();
        let advertise = advertise.clone();
        tokio::spawn(async move {
            loop {
                match consensus.recorded_address() {
                    Some(a) if a == advertise => return,
                    Some(a) => match consensus.add_member(consensus.id(), &advertise).await {
                        Ok(()) => {
                            tracing::info!(
                                "the cluster now reaches this member at {advertise} (was {a})"
                            );
                            return;
                        }
                        Err(e) => tracing::debug!("recording this member's address: {e}"),
                    },
                    None => {}
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    // Followers leave the controller manager's work to the leader from the first moment.
    api.set_leading(consensus.raft().metrics().borrow().current_leader == Some(consensus.id()));
    // The bootstrap writes go through the leader: on a member of several they wait for one
    // (and for this member to have caught up), so a restart while the majority is away
    // still serves what it has.
    {
        let mut attempt = 0u32;
        loop {
            let caught_up = consensus.linearize().await;
            let done = match caught_up {
                Ok(()) => api.start_background().await.context("bootstrap"),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            match done {
                Ok(()) => break,
                Err(e) => {
                    attempt += 1;
                    if attempt == 1 || attempt % 30 == 0 {
                        tracing::warn!("bootstrap waits for the cluster: {e:#}");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown_signal() => {
                            serve.abort();
                            consensus.shutdown().await;
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
    let scheduler_metrics = reddwarf_controllers::scheduler::Metrics::default();
    api.register_metrics(|r| scheduler_metrics.register(r));
    api.register_metrics(|r| {
        r.register(
            "reddwarf_heap_bytes",
            "Bytes the server has allocated and not freed (its data; RSS also counts the free memory the allocator keeps)",
            crate::heap::HeapGauge,
        )
    });
    // The scheduler and controllers run on the raft leader only: started when this member
    // becomes leader, stopped when it stops being one (one member is always the leader).
    let leadership = {
        let mut raft_metrics = consensus.raft().metrics();
        let api_for_leadership = api.clone();
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
                api_for_leadership.set_leading(leader);
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

/// Disaster recovery when a majority of members is lost for good: this member's applied
/// state becomes a new one-member cluster (same objects and resourceVersions, this member's
/// id). The old store is kept beside it; the dump is what the restore path reads.
fn force_new_cluster(
    dir: &std::path::Path,
    state_path: &std::path::Path,
    member: &crate::member::Member,
) -> anyhow::Result<std::path::PathBuf> {
    anyhow::ensure!(
        state_path.exists(),
        "--force-new-cluster starts from a member's data: {} holds none",
        dir.display()
    );
    let dump = dir.join("force-new-cluster.dump");
    {
        let old = Store::open(state_path).context("opening the store")?;
        let tail = reddwarf_consensus::apply_log_tail(&old)
            .context("applying the rest of this member's raft log")?;
        if tail > 0 {
            tracing::warn!("applied the last {tail} raft log entries this member holds");
        }
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&dump).with_context(|| format!("creating {}", dump.display()))?,
        );
        old.dump_to(&mut out)
            .context("reading this member's state")?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = state_path.with_extension(format!("redb.before-force-new-cluster-{secs}"));
    std::fs::rename(state_path, &aside)?;
    crate::member::save(
        dir,
        &crate::member::Member {
            id: member.id,
            seed: None,
            joined: true,
        },
    )?;
    tracing::warn!(
        "forcing a new one-member cluster from this member's state (the old store is kept as {})",
        aside.display()
    );
    Ok(dump)
}

/// A token in `DIR/<name>` (`node-token` for agents, `server-token` for members), created on
/// first start and kept while the CA stays.
fn cluster_token(dir: &std::path::Path, name: &str, ca_pem: &str) -> anyhow::Result<String> {
    use reddwarf_agent::token::NodeToken;
    let path = dir.join(name);
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

/// What every connection's requests are served with.
struct Shared {
    router: axum::Router,
    api: Arc<ApiServer>,
    revocations: Arc<pki::revocation::Revocations>,
    ca_pem: Arc<String>,
    peer: Arc<PeerService>,
}

/// The peer side of the listen port: `/reddwarf/raft/join` for joining members (server
/// token), every other `/reddwarf/raft/<rpc>` for members (member certificates) only.
struct PeerService {
    consensus: Consensus,
    /// Whether this member advertises a loopback address (reachable from this machine only).
    loopback: bool,
    server_token: String,
    bundle: crate::member::JoinBundle,
}

/// Largest peer request body (a snapshot chunk or a forwarded batch of big objects).
const MAX_PEER_BODY: usize = 1 << 30;

impl PeerService {
    async fn serve(
        &self,
        req: http::Request<hyper::body::Incoming>,
        member: bool,
        remote: SocketAddr,
    ) -> http::Response<axum::body::Body> {
        use http::StatusCode;
        use http_body_util::BodyExt;
        let text = |code: StatusCode, msg: String| {
            http::Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(axum::body::Body::from(msg))
                .expect("static response")
        };
        if req.method() != http::Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "peer RPCs are POSTs\n".into(),
            );
        }
        let rpc = req
            .uri()
            .path()
            .strip_prefix(reddwarf_consensus::PEER_PATH)
            .unwrap_or("")
            .to_string();
        if rpc == "join" {
            let ok = crate::token_auth::bearer(req.headers())
                .is_some_and(|t| crate::member::same_secret(t.trim(), self.server_token.trim()));
            if !ok {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "joining needs the cluster's server token (DIR/server-token of a member)\n"
                        .into(),
                );
            }
            if self.loopback && !remote.ip().is_loopback() {
                return text(
                    StatusCode::CONFLICT,
                    "this member advertises a loopback address, which a member on another machine cannot reach: restart it with --advertise-address\n".into(),
                );
            }
            return match self.consensus.allocate_member_id().await {
                Ok(id) => {
                    let b = &self.bundle;
                    let bundle = crate::member::JoinBundle {
                        id,
                        ca_cert: b.ca_cert.clone(),
                        ca_key: b.ca_key.clone(),
                        service_account_key: b.service_account_key.clone(),
                        node_token: b.node_token.clone(),
                        server_token: b.server_token.clone(),
                    };
                    http::Response::builder()
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(axum::body::Body::from(
                            serde_json::to_vec(&bundle).unwrap_or_default(),
                        ))
                        .expect("static response")
                }
                Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            };
        }
        if !member {
            // Read (a little of) what was sent before refusing: an answer that races the
            // request body resets the HTTP/2 stream, and clients report that instead of 403.
            let _ = http_body_util::Limited::new(req.into_body(), 64 << 10)
                .collect()
                .await;
            return text(
                StatusCode::FORBIDDEN,
                "peer RPCs need a control-plane member certificate\n".into(),
            );
        }
        let body = match http_body_util::Limited::new(req.into_body(), MAX_PEER_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
        };
        match self.consensus.serve_peer(&rpc, &body).await {
            Ok(answer) => http::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .body(axum::body::Body::from(answer))
                .expect("static response"),
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }
}

/// Asks the cluster to add this member (through the member it joined through, which
/// forwards to the leader) until it has, then records it.
async fn join_cluster(
    consensus: &Consensus,
    dir: &std::path::Path,
    member: &crate::member::Member,
    advertise: &str,
) {
    let Some(seed) = member.seed.clone() else {
        return;
    };
    let mut attempt = 0u32;
    loop {
        if consensus.is_member() {
            break;
        }
        match consensus.join_via(&seed, advertise).await {
            Ok(()) => break,
            Err(e) => {
                attempt += 1;
                if attempt == 1 || attempt % 15 == 0 {
                    tracing::warn!("joining through {seed}: {e} (retrying)");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    let joined = crate::member::Member {
        joined: true,
        ..member.clone()
    };
    if let Err(e) = crate::member::save(dir, &joined) {
        tracing::error!("recording the membership: {e:#}");
    }
    tracing::info!("member {} joined the cluster", member.id);
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    shared: Shared,
    tcp: tokio::net::TcpStream,
    watcher: hyper_util::server::graceful::Watcher,
) -> anyhow::Result<()> {
    let Shared {
        router,
        api,
        revocations,
        ca_pem,
        peer,
    } = shared;
    let remote = tcp.peer_addr()?;
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
    let member = user
        .as_ref()
        .is_some_and(|u| u.groups.iter().any(|g| g == pki::MEMBERS_GROUP));
    type Answer = std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<http::Response<axum::body::Body>, std::convert::Infallible>,
                > + Send,
        >,
    >;
    let svc = tower::service_fn(
        move |mut req: http::Request<hyper::body::Incoming>| -> Answer {
            // The CA is public: a joining agent downloads it and checks it against its token's hash.
            if req.uri().path() == "/cacerts" && req.method() == http::Method::GET {
                let resp = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "application/x-pem-file")
                    .body(axum::body::Body::from(ca_pem.to_string()))
                    .expect("static response");
                return Box::pin(std::future::ready(Ok(resp)));
            }
            // Peer traffic never reaches the API router.
            if req.uri().path().starts_with(reddwarf_consensus::PEER_PATH) {
                let peer = peer.clone();
                return Box::pin(async move { Ok(peer.serve(req, member, remote).await) });
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
            Box::pin(router.clone().oneshot(req.map(axum::body::Body::new)))
        },
    );
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
