//! One worker per pod, reconciling what the API object wants with what the runtime runs:
//! sandbox (network, volumes), init containers in order, sidecars, containers with their
//! restart policy and back-off, probes, graceful termination, and the status patched only when
//! it changes.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use reddwarf_runtime::{ContainerSpec, ExecSpec, Exit, MountKind, MountSpec};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::spec::{self, ConfigError};
use super::status;
use super::volumes::{self, Prepared};
use super::Shared;

/// Container label: the pod's uid.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Container label: the pod's name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Container label: the pod's namespace.
pub const LABEL_POD_NS: &str = "io.kubernetes.pod.namespace";
/// Container label: the container's name in the pod spec.
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
/// Container label: the restart count the container was started as.
pub const LABEL_RESTART: &str = "io.kubernetes.container.restartCount";
/// The image id the container runs (image garbage collection keeps it).
pub const LABEL_IMAGE: &str = "io.reddwarf.image.id";

const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long without failing has its back-off forgotten.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
const VOLUME_RESYNC: Duration = Duration::from_secs(5);

/// A container waiting to (re)start, as in `state.waiting`.
#[derive(Clone, Debug)]
pub struct Waiting {
    /// `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, …
    pub reason: String,
    /// Detail for the status ("" for none).
    pub message: String,
}

/// A running container, as in `state.running`.
#[derive(Clone, Debug)]
pub struct Running {
    /// The runtime's container id.
    pub id: String,
    /// When it started (for the status).
    pub started_at: DateTime<Utc>,
    /// When it started (monotonic, for probes and back-off).
    pub since: Instant,
}

/// A container that ended, as in `state.terminated`.
#[derive(Clone, Debug)]
pub struct Terminated {
    /// The runtime's container id.
    pub id: String,
    /// How it ended.
    pub exit: Exit,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

impl Terminated {
    /// `OOMKilled`, `Completed` (exit 0) or `Error`.
    pub fn reason(&self) -> &'static str {
        if self.exit.oom_killed {
            "OOMKilled"
        } else if self.exit.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    /// The `{"terminated": …}` container state.
    pub fn to_json(&self) -> Value {
        let mut t = json!({
            "exitCode": self.exit.exit_code,
            "reason": self.reason(),
            "startedAt": status::rfc3339(self.started_at),
            "finishedAt": status::rfc3339(self.exit.finished_at),
            "containerID": format!("reddwarf://{}", self.id),
        });
        if let Some(s) = self.exit.signal {
            t["signal"] = json!(s);
        }
        json!({ "terminated": t })
    }
}

/// What the worker knows of one container.
#[derive(Clone, Debug, Default)]
pub struct CState {
    /// Restarts so far.
    pub restart_count: u32,
    /// Set while the container runs.
    pub running: Option<Running>,
    /// Set once it ended (until restarted).
    pub terminated: Option<Terminated>,
    /// The previous run's end (`lastState`).
    pub last_terminated: Option<Terminated>,
    /// Set while it waits to (re)start.
    pub waiting: Option<Waiting>,
    /// The image id it runs.
    pub image_id: Option<String>,
    /// The readiness probe passes (or there is none).
    pub ready: bool,
    /// Started: the startup probe passed (or there is none).
    pub started: bool,
    backoff: Duration,
    backoff_until: Option<Instant>,
    probes: ProbeState,
}

#[derive(Clone, Debug, Default)]
struct ProbeState {
    next: HashMap<&'static str, Instant>,
    failures: HashMap<&'static str, i32>,
    successes: HashMap<&'static str, i32>,
}

/// Container exits, from the waiter tasks.
pub struct ExitEvent {
    /// The container's name in the pod spec.
    pub name: String,
    /// The runtime's container id.
    pub id: String,
    /// How it ended.
    pub exit: Exit,
}

/// Runs one pod: creates its sandbox, volumes and containers, restarts them by policy, runs probes and reports the status.
pub struct Worker {
    /// What every worker shares.
    pub shared: Arc<Shared>,
    /// The pod's uid.
    pub uid: String,
    /// The pod as the API last showed it; `None` once gone.
    pub rx: watch::Receiver<Option<Arc<Pod>>>,
    exits_tx: mpsc::Sender<ExitEvent>,
    exits_rx: mpsc::Receiver<ExitEvent>,
    containers: BTreeMap<String, CState>,
    net: Option<(PathBuf, Ipv4Addr)>,
    sandbox_error: Option<String>,
    volumes: Option<HashMap<String, Prepared>>,
    volumes_synced: Option<Instant>,
    /// Init containers all done (or sidecars started).
    initialized: bool,
    start_time: Option<DateTime<Utc>>,
    last_status: Value,
    /// Rootfs directories of this pod's containers, by container id.
    rootfs: HashMap<String, PathBuf>,
}

fn now_rfc() -> String {
    status::rfc3339(Utc::now())
}

fn pod_dir(shared: &Shared, uid: &str) -> PathBuf {
    shared.root.join("pods").join(uid)
}

/// `[a-z0-9-]` ids the runtime accepts: pod uid prefix, container name, restart count.
fn container_id(uid: &str, name: &str, restart: u32) -> String {
    let u: String = uid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(16)
        .collect();
    let n: String = name.chars().take(36).collect();
    format!("{u}-{n}-{restart}").to_ascii_lowercase()
}

impl Worker {
    /// A worker for pod `uid`, fed by `rx`.
    pub fn new(shared: Arc<Shared>, uid: String, rx: watch::Receiver<Option<Arc<Pod>>>) -> Worker {
        let (exits_tx, exits_rx) = mpsc::channel(64);
        Worker {
            shared,
            uid,
            rx,
            exits_tx,
            exits_rx,
            containers: BTreeMap::new(),
            net: None,
            sandbox_error: None,
            volumes: None,
            volumes_synced: None,
            initialized: false,
            start_time: None,
            last_status: Value::Null,
            rootfs: HashMap::new(),
        }
    }

    /// The latest object (shared: the loop reads it every tick, a clone of the Pod with its
    /// managedFields was most of an idle agent's CPU).
    fn pod(&self) -> Option<Arc<Pod>> {
        self.rx.borrow().clone()
    }

    fn log_dir(&self, pod: &Pod) -> PathBuf {
        super::log_dir(&self.shared.root, pod)
    }

    /// Adopts containers a previous agent started (found by their labels).
    async fn adopt(&mut self) {
        let Ok(records) = self.shared.runtime.list().await else {
            return;
        };
        for r in records
            .into_iter()
            .filter(|r| r.labels.get(LABEL_POD_UID) == Some(&self.uid))
        {
            let Some(name) = r.labels.get(LABEL_CONTAINER).cloned() else {
                continue;
            };
            let restart: u32 = r
                .labels
                .get(LABEL_RESTART)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let st = self.containers.entry(name.clone()).or_default();
            match r.status {
                reddwarf_runtime::ContainerStatus::Running => {
                    // The newest attempt wins; older ones are leftovers to remove.
                    if st.running.as_ref().is_some_and(|x| x.id > r.id) {
                        continue;
                    }
                    st.restart_count = st.restart_count.max(restart);
                    st.running = Some(Running {
                        id: r.id.clone(),
                        started_at: r.started_at.unwrap_or_else(Utc::now),
                        since: Instant::now(),
                    });
                    st.started = true;
                    self.spawn_waiter(name, r.id);
                }
                reddwarf_runtime::ContainerStatus::Exited(exit) => {
                    if restart >= st.restart_count {
                        st.restart_count = restart;
                        st.terminated = Some(Terminated {
                            id: r.id.clone(),
                            exit,
                            started_at: r.started_at.unwrap_or_else(Utc::now),
                        });
                    }
                }
                reddwarf_runtime::ContainerStatus::Created => {
                    let _ = self.shared.runtime.remove(&r.id).await;
                }
            }
        }
        if !self.containers.is_empty() {
            tracing::info!(
                "pod {}: adopted {} container(s)",
                self.uid,
                self.containers.len()
            );
        }
    }

    fn spawn_waiter(&self, name: String, id: String) {
        let rt = self.shared.runtime.clone();
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            match rt.wait(&id).await {
                Ok(exit) => {
                    let _ = tx.send(ExitEvent { name, id, exit }).await;
                }
                Err(e) => tracing::warn!("waiting for container {id}: {e}"),
            }
        });
    }

    /// Syncs the pod on every change, container exit and one-second tick until it is deleted
    /// (containers stopped, sandbox cleaned up) or the manager drops the worker (the agent
    /// stops; containers keep running).
    pub async fn run(mut self) {
        self.adopt().await;
        // Probes and back-off timers have second granularity.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let Some(pod) = self.pod() else {
                // Gone from the API (force-deleted): stop everything now.
                self.stop_all(0).await;
                self.cleanup().await;
                return;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .max(0);
                self.stop_all(grace).await;
                self.report(&pod).await;
                self.cleanup().await;
                self.finalize(&pod).await;
                return;
            }
            self.sync(&pod).await;
            self.report(&pod).await;
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        // The manager dropped us: the agent is stopping; pods keep running.
                        return;
                    }
                }
                Some(ev) = self.exits_rx.recv() => self.on_exit(ev),
                _ = tick.tick() => {}
            }
        }
    }

    fn on_exit(&mut self, ev: ExitEvent) {
        let Some(st) = self.containers.get_mut(&ev.name) else {
            return;
        };
        let Some(r) = st.running.take().filter(|r| r.id == ev.id) else {
            return;
        };
        if r.since.elapsed() > BACKOFF_RESET {
            st.backoff = Duration::ZERO;
        }
        st.ready = false;
        st.started = false;
        st.probes = ProbeState::default();
        st.terminated = Some(Terminated {
            id: ev.id,
            exit: ev.exit,
            started_at: r.started_at,
        });
    }

    /// Everything short of deletion: sandbox, volumes, containers, probes.
    async fn sync(&mut self, pod: &Pod) {
        let Some(spec) = pod.spec.clone() else {
            return;
        };
        if self.start_time.is_none() {
            self.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .and_then(|t| DateTime::parse_from_rfc3339(&t.0.to_string()).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(Utc::now),
            );
        }
        let host_network = spec.host_network == Some(true);
        if self.net.is_none() && !host_network {
            match self.shared.net.setup(&self.uid).await {
                Ok(n) => {
                    self.net = Some(n);
                    self.sandbox_error = None;
                    let ports: Vec<(u16, u16, String, Option<Ipv4Addr>)> = spec
                        .containers
                        .iter()
                        .chain(spec.init_containers.iter().flatten())
                        .flat_map(|c| c.ports.iter().flatten())
                        .filter_map(|p| {
                            let hp = p.host_port.filter(|h| *h > 0)?;
                            Some((
                                hp as u16,
                                p.container_port as u16,
                                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                                p.host_ip.as_deref().and_then(|i| i.parse().ok()),
                            ))
                        })
                        .collect();
                    if !ports.is_empty() {
                        if let Err(e) = self.shared.net.host_ports(&self.uid, ports).await {
                            self.sandbox_error = Some(format!("{e:#}"));
                        }
                    }
                }
                Err(e) => {
                    self.sandbox_error = Some(format!("{e:#}"));
                    return;
                }
            }
        }
        // Volumes: prepared once, contents refreshed every few seconds.
        if self
            .volumes_synced
            .is_none_or(|t| t.elapsed() > VOLUME_RESYNC)
        {
            self.volumes_synced = Some(Instant::now());
            let sources = self.shared.sources(pod).await;
            let claims = self.shared.claims(pod).await;
            let dir = pod_dir(&self.shared, &self.uid).join("volumes");
            match volumes::prepare(
                pod,
                &dir,
                &sources,
                &claims,
                &self.pod_ip(),
                &self.shared.host_ip,
            ) {
                Ok(v) => self.volumes = Some(v),
                Err(e) => {
                    self.sandbox_error = Some(e.0);
                    return;
                }
            }
            self.sandbox_error = None;
        }
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        // Init containers in order; a sidecar (restartPolicy Always) only has to be running.
        if !self.initialized {
            let inits = spec.init_containers.clone().unwrap_or_default();
            let mut all_done = true;
            for c in &inits {
                let sidecar = c.restart_policy.as_deref() == Some("Always");
                let st = self.containers.entry(c.name.clone()).or_default().clone();
                let done = if sidecar {
                    st.running.is_some()
                } else {
                    st.terminated
                        .as_ref()
                        .is_some_and(|t| t.exit.exit_code == 0)
                        && st.running.is_none()
                };
                if done {
                    continue;
                }
                all_done = false;
                if st.running.is_some() {
                    break;
                }
                let failed = st
                    .terminated
                    .as_ref()
                    .is_some_and(|t| t.exit.exit_code != 0);
                if failed && policy == "Never" && !sidecar {
                    // The pod has failed; nothing more starts.
                    break;
                }
                self.maybe_start(pod, c, failed).await;
                break;
            }
            if !all_done {
                self.restart_sidecars(pod).await;
                return;
            }
            self.initialized = true;
        }
        self.restart_sidecars(pod).await;
        for c in &spec.containers {
            let st = self.containers.entry(c.name.clone()).or_default().clone();
            if st.running.is_some() {
                continue;
            }
            let should = match &st.terminated {
                None => true,
                Some(t) => match policy.as_str() {
                    "Always" => true,
                    "OnFailure" => t.exit.exit_code != 0,
                    _ => false,
                },
            };
            if should {
                let restart = st.terminated.is_some();
                self.maybe_start(pod, c, restart).await;
            }
        }
        self.probe_all(pod).await;
    }

    async fn restart_sidecars(&mut self, pod: &Pod) {
        let inits = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.clone())
            .unwrap_or_default();
        for c in inits
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        {
            let st = self.containers.entry(c.name.clone()).or_default().clone();
            if st.running.is_none() && st.terminated.is_some() {
                self.maybe_start(pod, c, true).await;
            }
        }
    }

    /// Starts the container unless it is backing off.
    async fn maybe_start(&mut self, pod: &Pod, c: &Container, restart: bool) {
        let name = c.name.clone();
        {
            let st = self.containers.entry(name.clone()).or_default();
            if let Some(until) = st.backoff_until {
                if Instant::now() < until {
                    return;
                }
                st.backoff_until = None;
            }
        }
        if restart {
            let st = self.containers.get_mut(&name).expect("entry");
            // Back-off between restarts: 10 s doubling to 5 min, as the kubelet.
            if st.backoff_until.is_none()
                && st
                    .waiting
                    .as_ref()
                    .is_none_or(|w| w.reason != "CrashLoopBackOff")
            {
                st.backoff = if st.backoff.is_zero() {
                    BACKOFF_START
                } else {
                    (st.backoff * 2).min(BACKOFF_MAX)
                };
                st.backoff_until = Some(Instant::now() + st.backoff);
                st.waiting = Some(Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        st.backoff.as_secs(),
                        name,
                        pod.metadata.name.as_deref().unwrap_or(""),
                        pod.metadata.namespace.as_deref().unwrap_or(""),
                        self.uid
                    ),
                });
                self.shared
                    .event(
                        pod,
                        Some(&name),
                        "Warning",
                        "BackOff",
                        &format!(
                            "Back-off restarting failed container {name} in pod {}",
                            pod.metadata.name.as_deref().unwrap_or("")
                        ),
                    )
                    .await;
                return;
            }
        }
        match self.start(pod, c).await {
            Ok(()) => {}
            Err((reason, message)) => {
                let st = self.containers.entry(name).or_default();
                let backoff_reason = match reason.as_str() {
                    "ErrImagePull" | "ImagePullBackOff" => "ImagePullBackOff",
                    r => r,
                }
                .to_string();
                let again = st
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.reason == reason || w.reason == backoff_reason);
                st.backoff = if st.backoff.is_zero() {
                    BACKOFF_START
                } else {
                    (st.backoff * 2).min(BACKOFF_MAX)
                };
                st.backoff_until = Some(Instant::now() + st.backoff);
                st.waiting = Some(Waiting {
                    reason: if again && reason == "ErrImagePull" {
                        backoff_reason
                    } else {
                        reason
                    },
                    message,
                });
            }
        }
    }

    fn pod_ip(&self) -> String {
        match &self.net {
            Some((_, ip)) => ip.to_string(),
            None => self.shared.host_ip.clone(),
        }
    }

    /// Pulls the image, builds the spec, creates and starts the container.
    async fn start(&mut self, pod: &Pod, c: &Container) -> Result<(), (String, String)> {
        let image = self.shared.ensure_image(pod, c).await?;
        let sources = self.shared.sources(pod).await;
        let cfg_err = |e: ConfigError| ("CreateContainerConfigError".to_string(), e.0);
        let env = spec::environment(
            pod,
            c,
            &image.config,
            &self.pod_ip(),
            &self.shared.host_ip,
            &sources,
        )
        .map_err(cfg_err)?;
        let args = spec::argv(c, &image.config, &env);
        if args.is_empty() {
            return Err((
                "CreateContainerConfigError".into(),
                "no command specified".into(),
            ));
        }
        let prepared = self.volumes.clone().unwrap_or_default();
        let mut mounts = volumes::mounts(c, &prepared).map_err(cfg_err)?;
        let pdir = pod_dir(&self.shared, &self.uid);
        let etc = self
            .shared
            .etc_files(pod, &pdir, &self.pod_ip())
            .map_err(|e| {
                (
                    "CreateContainerConfigError".to_string(),
                    format!("writing /etc files: {e}"),
                )
            })?;
        for (dest, src) in etc {
            if !mounts.iter().any(|m| m.destination == dest) {
                mounts.push(MountSpec {
                    destination: dest,
                    kind: MountKind::Bind {
                        source: src,
                        readonly: false,
                    },
                });
            }
        }
        let st = self.containers.entry(c.name.clone()).or_default();
        let restart = if st.terminated.is_some() || st.last_terminated.is_some() {
            st.restart_count + 1
        } else {
            st.restart_count
        };
        let id = container_id(&self.uid, &c.name, restart);
        let cdir = pdir.join("containers").join(&id);
        let _ = std::fs::remove_dir_all(&cdir);
        let rootfs = self
            .shared
            .images
            .prepare_rootfs(&image, &cdir)
            .map_err(|e| {
                (
                    "CreateContainerError".to_string(),
                    format!("preparing the root filesystem: {e}"),
                )
            })?;
        let log_path = self
            .log_dir(pod)
            .join(&c.name)
            .join(format!("{restart}.log"));
        let labels = BTreeMap::from([
            (LABEL_POD_UID.to_string(), self.uid.clone()),
            (
                LABEL_POD_NAME.to_string(),
                pod.metadata.name.clone().unwrap_or_default(),
            ),
            (
                LABEL_POD_NS.to_string(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            (LABEL_CONTAINER.to_string(), c.name.clone()),
            (LABEL_RESTART.to_string(), restart.to_string()),
            (LABEL_IMAGE.to_string(), image.id.clone()),
        ]);
        let cs = ContainerSpec {
            id: id.clone(),
            rootfs: rootfs.path.clone(),
            readonly_rootfs: spec::readonly_rootfs(c),
            args,
            env,
            cwd: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or_else(|| Some(image.config.working_dir.clone()).filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".into()),
            user: spec::user(pod, c, &image.config),
            hostname: spec::hostname(pod),
            mounts,
            network_ns: self.net.as_ref().map(|(p, _)| p.clone()),
            resources: spec::resources(c),
            cgroup_parent: self.shared.cgroup_parent(&self.uid),
            security: spec::security(c),
            tty: c.tty == Some(true),
            stdin: c.stdin == Some(true),
            log_path,
            log_max_bytes: self.shared.log_max.0,
            log_max_files: self.shared.log_max.1,
            labels,
        };
        self.rootfs.insert(id.clone(), cdir);
        let started = self
            .shared
            .runtime
            .create_and_start(cs)
            .await
            .map_err(|e| ("RunContainerError".to_string(), e.to_string()))?;
        let st = self.containers.entry(c.name.clone()).or_default();
        if let Some(t) = st.terminated.take() {
            st.last_terminated = Some(t);
        }
        st.restart_count = restart;
        st.waiting = None;
        st.image_id = Some(
            image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone()),
        );
        st.running = Some(Running {
            id: id.clone(),
            started_at: started.started_at,
            since: Instant::now(),
        });
        st.started = c.startup_probe.is_none();
        st.ready = c.readiness_probe.is_none();
        st.probes = ProbeState::default();
        self.spawn_waiter(c.name.clone(), id);
        self.remove_older(&c.name, restart).await;
        for what in ["Created", "Started"] {
            let msg = format!("{what} container {}", c.name);
            self.shared
                .event(pod, Some(&c.name), "Normal", what, &msg)
                .await;
        }
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            if let Some(e) = &h.exec {
                let cmd = e.command.clone().unwrap_or_default();
                if let Some(r) = &self.containers[&c.name].running {
                    let _ = self.exec_probe(&r.id.clone(), cmd, 30).await;
                }
            }
        }
        Ok(())
    }

    /// Keeps the current and the previous attempt of a container (for `logs --previous`), as
    /// the kubelet keeps one dead container; older ones go with their root filesystems.
    async fn remove_older(&mut self, name: &str, restart: u32) {
        let Ok(records) = self.shared.runtime.list().await else {
            return;
        };
        for r in records {
            let mine = r.labels.get(LABEL_POD_UID) == Some(&self.uid)
                && r.labels.get(LABEL_CONTAINER).map(String::as_str) == Some(name);
            let n: u32 = r
                .labels
                .get(LABEL_RESTART)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if mine && n + 1 < restart {
                let _ = self.shared.runtime.remove(&r.id).await;
                if let Some(dir) = self.rootfs.remove(&r.id) {
                    let _ = reddwarf_images::remove_rootfs(&dir);
                } else {
                    let dir = pod_dir(&self.shared, &self.uid)
                        .join("containers")
                        .join(&r.id);
                    let _ = reddwarf_images::remove_rootfs(&dir);
                }
                let _ = std::fs::remove_file(&r.log_path);
            }
        }
    }

    /// Runs due probes of running containers.
    async fn probe_all(&mut self, pod: &Pod) {
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let all: Vec<Container> = spec
            .containers
            .iter()
            .cloned()
            .chain(
                spec.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                    .cloned(),
            )
            .collect();
        for c in all {
            let Some(st) = self.containers.get(&c.name).cloned() else {
                continue;
            };
            let Some(run) = st.running.clone() else {
                continue;
            };
            let kinds: Vec<(&'static str, Probe)> = [
                ("startup", c.startup_probe.clone()),
                ("liveness", c.liveness_probe.clone()),
                ("readiness", c.readiness_probe.clone()),
            ]
            .into_iter()
            .filter_map(|(k, p)| p.map(|p| (k, p)))
            .collect();
            for (kind, p) in kinds {
                if kind != "startup" && !st.started {
                    continue;
                }
                if kind == "startup" && st.started {
                    continue;
                }
                let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
                let initial =
                    Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
                let due = {
                    let s = self.containers.get_mut(&c.name).expect("state");
                    let next = *s.probes.next.entry(kind).or_insert(run.since + initial);
                    if Instant::now() < next {
                        false
                    } else {
                        s.probes.next.insert(kind, Instant::now() + period);
                        true
                    }
                };
                if !due {
                    continue;
                }
                let ok = self.run_probe(&run.id, &p, c.ports.as_deref()).await;
                let s = self.containers.get_mut(&c.name).expect("state");
                let (fail, succ) = (s.probes.failures.entry(kind).or_insert(0), 0);
                let _ = succ;
                if ok {
                    *fail = 0;
                    let n = s.probes.successes.entry(kind).or_insert(0);
                    *n += 1;
                    if *n >= p.success_threshold.unwrap_or(1).max(1) {
                        match kind {
                            "startup" => s.started = true,
                            "readiness" => s.ready = true,
                            _ => {}
                        }
                    }
                } else {
                    *fail += 1;
                    s.probes.successes.insert(kind, 0);
                    let failed = *fail >= p.failure_threshold.unwrap_or(3).max(1);
                    if kind == "readiness" {
                        if failed {
                            s.ready = false;
                        }
                    } else if failed {
                        // Liveness or startup failed: the container is killed and restarted
                        // by its restart policy.
                        s.probes = ProbeState::default();
                        let id = run.id.clone();
                        let what = if kind == "startup" {
                            "Startup"
                        } else {
                            "Liveness"
                        };
                        self.shared
                            .event(
                                pod,
                                Some(&c.name),
                                "Normal",
                                "Killing",
                                &format!(
                                    "Container {} failed {} probe, will be restarted",
                                    c.name,
                                    what.to_lowercase()
                                ),
                            )
                            .await;
                        let grace = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .unwrap_or(30);
                        self.kill_container(
                            &id,
                            grace.min(p.termination_grace_period_seconds.unwrap_or(grace)),
                        )
                        .await;
                    }
                }
            }
        }
    }

    async fn run_probe(
        &self,
        id: &str,
        p: &Probe,
        _ports: Option<&[k8s_openapi::api::core::v1::ContainerPort]>,
    ) -> bool {
        let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
        let ip = self.pod_ip();
        let port_of =
            |port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString| -> Option<u16> {
                match port {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => {
                        Some(*n as u16)
                    }
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
                        _ports?
                            .iter()
                            .find(|cp| cp.name.as_deref() == Some(name))
                            .map(|cp| cp.container_port as u16)
                    }
                }
            };
        if let Some(e) = &p.exec {
            return self
                .exec_probe(
                    id,
                    e.command.clone().unwrap_or_default(),
                    timeout.as_secs() as i64,
                )
                .await
                == Some(0);
        }
        if let Some(t) = &p.tcp_socket {
            let Some(port) = port_of(&t.port) else {
                return false;
            };
            let host = t.host.clone().unwrap_or(ip);
            return matches!(
                tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect((host.as_str(), port))
                )
                .await,
                Ok(Ok(_))
            );
        }
        if let Some(h) = &p.http_get {
            let Some(port) = port_of(&h.port) else {
                return false;
            };
            let host = h.host.clone().unwrap_or(ip);
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            return tokio::time::timeout(timeout, http_get(&host, port, &path))
                .await
                .ok()
                .flatten()
                .is_some_and(|code| (200..400).contains(&code));
        }
        if let Some(g) = &p.grpc {
            // gRPC health needs HTTP/2 framing of the health protocol; a TCP connect is the
            // closest honest check until it is implemented.
            return matches!(
                tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect((ip.as_str(), g.port as u16))
                )
                .await,
                Ok(Ok(_))
            );
        }
        true
    }

    /// Exec `cmd` in container `id`; its exit code, or None if it could not run in time.
    async fn exec_probe(&self, id: &str, cmd: Vec<String>, timeout_s: i64) -> Option<i32> {
        let proc = self
            .shared
            .runtime
            .exec(
                id,
                ExecSpec {
                    args: cmd,
                    env: vec![],
                    tty: false,
                    stdin: false,
                },
            )
            .await
            .ok()?;
        let mut out = proc.stdout;
        let drain = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
        });
        let code = tokio::time::timeout(Duration::from_secs(timeout_s.max(1) as u64), proc.wait)
            .await
            .ok()?
            .ok();
        drain.abort();
        code
    }

    /// SIGTERM, then SIGKILL after `grace` seconds; the waiter reports the exit.
    async fn kill_container(&self, id: &str, grace: i64) {
        let rt = self.shared.runtime.clone();
        let id = id.to_string();
        let _ = rt.kill(&id, libc::SIGTERM).await;
        let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
        tokio::spawn(async move {
            loop {
                if Instant::now() >= deadline {
                    let _ = rt.kill(&id, libc::SIGKILL).await;
                    return;
                }
                match rt.list().await {
                    Ok(l)
                        if l.iter().any(|r| {
                            r.id == id
                                && matches!(r.status, reddwarf_runtime::ContainerStatus::Running)
                        }) => {}
                    _ => return,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// Graceful stop of every running container: preStop hooks, SIGTERM, SIGKILL at the end
    /// of the grace period.
    async fn stop_all(&mut self, grace: i64) {
        let pod = self.pod();
        let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
        let running: Vec<(String, String)> = self
            .containers
            .iter()
            .filter_map(|(n, s)| s.running.as_ref().map(|r| (n.clone(), r.id.clone())))
            .collect();
        if running.is_empty() {
            return;
        }
        if let Some(pod) = &pod {
            for (name, id) in &running {
                let c = pod.spec.as_ref().and_then(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                        .find(|c| &c.name == name)
                        .cloned()
                });
                if let Some(cmd) = c.and_then(|c| c.lifecycle?.pre_stop?.exec?.command) {
                    let left = deadline.saturating_duration_since(Instant::now()).as_secs() as i64;
                    let _ = self.exec_probe(id, cmd, left.max(1)).await;
                }
                self.shared
                    .event(
                        pod,
                        Some(name),
                        "Normal",
                        "Killing",
                        &format!("Stopping container {name}"),
                    )
                    .await;
            }
        }
        for (_, id) in &running {
            let _ = self.shared.runtime.kill(id, libc::SIGTERM).await;
        }
        let mut left: Vec<(String, String)> = running;
        while !left.is_empty() {
            let timeout = deadline.saturating_duration_since(Instant::now());
            if timeout.is_zero() {
                for (_, id) in &left {
                    let _ = self.shared.runtime.kill(id, libc::SIGKILL).await;
                }
            }
            match tokio::time::timeout(
                timeout.max(Duration::from_millis(100)),
                self.exits_rx.recv(),
            )
            .await
            {
                Ok(Some(ev)) => {
                    left.retain(|(_, id)| *id != ev.id);
                    self.on_exit(ev);
                }
                Ok(None) => return,
                Err(_) if timeout.is_zero() => {
                    // Killed but not reported yet: give the waiters a moment more.
                    if let Ok(Some(ev)) =
                        tokio::time::timeout(Duration::from_secs(5), self.exits_rx.recv()).await
                    {
                        left.retain(|(_, id)| *id != ev.id);
                        self.on_exit(ev);
                    } else {
                        return;
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// Removes containers, rootfs mounts, the network and the pod's directories.
    async fn cleanup(&mut self) {
        if let Ok(records) = self.shared.runtime.list().await {
            for r in records
                .iter()
                .filter(|r| r.labels.get(LABEL_POD_UID) == Some(&self.uid))
            {
                if let Err(e) = self.shared.runtime.remove(&r.id).await {
                    tracing::warn!("removing container {}: {e}", r.id);
                }
            }
        }
        let pdir = pod_dir(&self.shared, &self.uid);
        if let Ok(rd) = std::fs::read_dir(pdir.join("containers")) {
            for e in rd.flatten() {
                if let Err(err) = reddwarf_images::remove_rootfs(&e.path()) {
                    tracing::warn!("removing rootfs {}: {err}", e.path().display());
                }
            }
        }
        if let Err(e) = self.shared.net.teardown(&self.uid).await {
            tracing::warn!("pod {}: network teardown: {e:#}", self.uid);
        }
        // Memory-backed volumes are tmpfs mounts inside containers only; nothing to unmount.
        let _ = reddwarf_runtime::remove_cgroup_parent(&self.shared.cgroup_parent(&self.uid));
        let _ = std::fs::remove_dir_all(&pdir);
        self.net = None;
    }

    /// The kubelet's last word on a deleted pod: a delete with grace 0, for this uid only.
    async fn finalize(&self, pod: &Pod) {
        let api: Api<Pod> = Api::namespaced(
            self.shared.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        if let Some(n) = &pod.metadata.name {
            match api.delete(n, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!("pod {n}: final delete: {e}"),
            }
        }
        let _ = std::fs::remove_dir_all(self.log_dir(pod));
        self.shared.forget_tokens(&self.uid);
    }

    /// Patches the pod's status when it differs from what was last reported.
    async fn report(&mut self, pod: &Pod) {
        let status = self.status(pod);
        if status == self.last_status {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            self.shared.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => self.last_status = status,
            Err(kube::Error::Api(e)) if e.code == 404 => self.last_status = status,
            Err(e) => tracing::warn!("pod {name}: status: {e}"),
        }
    }

    fn status(&self, pod: &Pod) -> Value {
        let spec = pod.spec.clone().unwrap_or_default();
        let prev =
            serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or(json!({}));
        let now = now_rfc();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let default = CState::default();
        let get = |n: &str| self.containers.get(n).unwrap_or(&default);
        let mut statuses: Vec<Value> = spec
            .containers
            .iter()
            .map(|c| {
                let mut s = get(&c.name).clone();
                if s.running.is_none() && s.waiting.is_none() && s.terminated.is_none() {
                    s.waiting = Some(Waiting {
                        reason: if self.initialized {
                            "ContainerCreating"
                        } else {
                            "PodInitializing"
                        }
                        .into(),
                        message: self.sandbox_error.clone().unwrap_or_default(),
                    });
                }
                status::container_status(c, &s, "")
            })
            .collect();
        statuses.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let inits: Vec<Value> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                let mut s = get(&c.name).clone();
                if s.running.is_none() && s.waiting.is_none() && s.terminated.is_none() {
                    s.waiting = Some(Waiting {
                        reason: "PodInitializing".into(),
                        message: String::new(),
                    });
                }
                status::container_status(c, &s, "")
            })
            .collect();
        let regular: Vec<&CState> = spec.containers.iter().map(|c| get(&c.name)).collect();
        let init_failed = !self.initialized
            && policy == "Never"
            && spec.init_containers.iter().flatten().any(|c| {
                c.restart_policy.as_deref() != Some("Always")
                    && get(&c.name)
                        .terminated
                        .as_ref()
                        .is_some_and(|t| t.exit.exit_code != 0)
            });
        let all_terminated = !regular.is_empty()
            && regular
                .iter()
                .all(|s| s.running.is_none() && s.terminated.is_some());
        let phase = if init_failed {
            "Failed"
        } else if !self.initialized {
            "Pending"
        } else if all_terminated && policy != "Always" {
            let ok = regular
                .iter()
                .all(|s| s.terminated.as_ref().is_some_and(|t| t.exit.exit_code == 0));
            if ok {
                "Succeeded"
            } else if policy == "Never" {
                "Failed"
            } else {
                "Running"
            }
        } else if regular
            .iter()
            .any(|s| s.running.is_some() || s.terminated.is_some() || s.last_terminated.is_some())
        {
            "Running"
        } else {
            "Pending"
        };
        let containers_ready = regular.iter().all(|s| s.running.is_some() && s.ready);
        let sandbox_ready = self.net.is_some() || spec.host_network == Some(true);
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let mut conditions = vec![
            status::condition(
                "PodReadyToStartContainers",
                sandbox_ready && !terminal,
                None,
                &prev,
                &now,
            ),
            status::condition(
                "Initialized",
                self.initialized,
                Some("ContainersNotInitialized"),
                &prev,
                &now,
            ),
            status::condition(
                "Ready",
                containers_ready && !terminal,
                Some(if terminal {
                    "PodCompleted"
                } else {
                    "ContainersNotReady"
                }),
                &prev,
                &now,
            ),
            status::condition(
                "ContainersReady",
                containers_ready && !terminal,
                Some(if terminal {
                    "PodCompleted"
                } else {
                    "ContainersNotReady"
                }),
                &prev,
                &now,
            ),
        ];
        if let Some(sched) = prev["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        {
            conditions.push(sched.clone());
        } else {
            conditions.push(status::condition("PodScheduled", true, None, &prev, &now));
        }
        // Carry conditions others own (readiness gates, DisruptionTarget).
        for c in prev["conditions"].as_array().into_iter().flatten() {
            let t = c["type"].as_str().unwrap_or("");
            if !conditions.iter().any(|x| x["type"] == t) {
                conditions.push(c.clone());
            }
        }
        let ip = self.pod_ip();
        let mut st = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.shared.host_ip,
            "hostIPs": [{"ip": self.shared.host_ip}],
            "startTime": self.start_time.map(status::rfc3339),
            "containerStatuses": statuses,
            "qosClass": pod.status.as_ref().and_then(|s| s.qos_class.clone()).unwrap_or_else(|| status::qos_class(pod).to_string()),
        });
        if sandbox_ready {
            st["podIP"] = json!(ip);
            st["podIPs"] = json!([{"ip": ip}]);
        }
        if !inits.is_empty() {
            st["initContainerStatuses"] = json!(inits);
        }
        // Keep only transition times stable between reports: the comparison is on content.
        st
    }
}

/// The gRPC health protocol's `Check` over HTTP/2 without TLS, as the kubelet's gRPC probe:
/// `Some(true)` when the answer is SERVING with grpc-status 0.
pub async fn grpc_health(host: &str, port: u16, service: &str) -> Option<bool> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .ok()?;
    tokio::spawn(conn);
    // HealthCheckRequest { string service = 1 }, in a gRPC length-prefixed message.
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let req = http::Request::post(format!("http://{host}:{port}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .ok()?;
    let resp = send.send_request(req).await.ok()?;
    if resp.status() != http::StatusCode::OK {
        return Some(false);
    }
    let head_status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let collected = resp.into_body().collect().await.ok()?;
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(head_status);
    if status.as_deref() != Some("0") {
        return Some(false);
    }
    // HealthCheckResponse { ServingStatus status = 1 }: SERVING is 1.
    let data = collected.to_bytes();
    let msg = data.get(5..)?;
    Some(msg.windows(2).any(|w| w == [0x08, 0x01]))
}

/// A bare HTTP/1.1 GET for probes; the status code.
async fn http_get(host: &str, port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 64];
    let n = s.read(&mut buf).await.ok()?;
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::grpc_health;
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    /// A gRPC health server answering `status` for every Check.
    async fn health_server(serving: u8) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let svc = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| async move {
                        assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                        let _ = req.into_body().collect().await;
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let frames = vec![
                            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![
                                0, 0, 0, 0, 2, 0x08, serving,
                            ]))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let body = StreamBody::new(futures::stream::iter(frames));
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap(),
                        )
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn grpc_probe_speaks_the_health_protocol() {
        let serving = health_server(1).await;
        assert_eq!(grpc_health("127.0.0.1", serving, "").await, Some(true));
        assert_eq!(
            grpc_health("127.0.0.1", serving, "my.Service").await,
            Some(true)
        );
        let not_serving = health_server(2).await;
        assert_eq!(grpc_health("127.0.0.1", not_serving, "").await, Some(false));
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(grpc_health("127.0.0.1", closed, "").await, None);
    }
}
