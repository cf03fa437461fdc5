//! Pod networking for the node agent.
//!
//! Each pod gets its own network namespace, pinned by a bind mount on a file in
//! [`NetworkConfig::netns_dir`], joined to a node bridge by a veth pair: the host end
//! (`rdw<10 hex>`) is a bridge port, the pod end is `eth0` inside the netns with an address
//! from the node's podCIDR and a default route via the bridge's address (the podCIDR's first
//! host). Allocations are files in [`NetworkConfig::state_dir`], so an agent restart finds them.
//! Egress is masqueraded (except to the cluster CIDR), and hostPorts are DNAT rules.
//!
//! Links, addresses and routes go through rtnetlink; NAT through the `iptables` binary
//! (see [`iptables`]). Everything created is named or tagged after the bridge, so
//! [`PodNetwork::destroy`] and [`resources`] see exactly this crate's objects.
//!
//! Seams for what comes next (not built yet): cross-node pod routes go in a `routes` module
//! beside `link` (one rtnetlink route per peer node's podCIDR, over the same connection);
//! Service rules go in a `services` module owning its own chains through
//! [`iptables::Iptables`], tagged like the rest. Neither changes the pod path here: pods already
//! route everything via the gateway, and `cluster_cidr` traffic is already exempt from SNAT.

pub mod cidr;
pub mod iptables;
mod link;
mod netns;
mod store;

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

pub use cidr::Ipv4Cidr;
use iptables::Iptables;
use store::Store;

/// Why setting up or tearing down pod networking failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable (bad CIDR, bridge name, …).
    #[error("network config: {0}")]
    Config(String),
    /// A file-system or process operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A netlink request (links, addresses, routes) failed.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// An iptables command failed.
    #[error("{cmd}: {msg}")]
    Iptables {
        /// The command line.
        cmd: String,
        /// Its stderr.
        msg: String,
    },
    /// Every host address of the podCIDR is allocated.
    #[error("podCIDR {0} has no free address")]
    Exhausted(String),
    /// A state file (a pod's allocation or hostPort marker) is unusable or could not be written.
    #[error("state file {}: {msg}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
}

/// Results of pod networking.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the node's pod network is laid out: bridge, podCIDR, state and netns directories, NAT.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Bridge name, e.g. `rdw0` (at most 15 characters).
    pub bridge: String,
    /// The node's podCIDR, e.g. `10.42.3.0/24`; the bridge gets its first host address.
    pub pod_cidr: String,
    /// Traffic to this CIDR is not masqueraded (pod-to-pod across nodes keeps its source).
    pub cluster_cidr: Option<String>,
    /// One file per pod with its allocation.
    pub state_dir: PathBuf,
    /// Where netns files are bind-mounted, e.g. `/run/reddwarf/netns`.
    pub netns_dir: PathBuf,
    /// SNAT pod traffic leaving the node (not to the podCIDR or `cluster_cidr`).
    pub masquerade: bool,
}

/// A pod's network, as set up (and as persisted in the state dir).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNet {
    /// The pod the network belongs to (the caller's key, e.g. the pod's uid).
    pub pod_id: String,
    /// The netns file; join it with `setns` (or give it to the OCI runtime as the netns path).
    pub netns: PathBuf,
    /// The pod's address (on its `eth0`).
    pub ip: Ipv4Addr,
    /// The podCIDR's prefix length, as configured on `eth0`.
    pub prefix: u8,
    /// The default route's next hop: the bridge's address.
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair (a bridge port).
    pub host_veth: String,
}

/// A hostPort's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A hostPort mapping: traffic to the node's `host_port` goes to the pod's `container_port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPort {
    /// The port on the node.
    pub host_port: u16,
    /// The port in the pod.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Only this host address; `None` = every local address (including 127.0.0.1).
    pub host_ip: Option<Ipv4Addr>,
}

/// What exists for one [`NetworkConfig`]: for leak tests and `--uninstall` checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Ports of the bridge (our veths).
    pub veths: usize,
    /// Files in `netns_dir`.
    pub netns_files: usize,
    /// Mounts under `netns_dir` (from /proc/self/mountinfo).
    pub netns_mounts: usize,
    /// Pod state files in `state_dir` (held IPs).
    pub allocations: usize,
    /// hostPort DNAT rules of this bridge's pods.
    pub hostport_rules: usize,
    /// Node-level iptables rules and chains tagged with this bridge (masquerade, hostPort
    /// jumps, forward accepts); these stay until [`PodNetwork::destroy`].
    pub base_rules: usize,
    /// Whether the bridge exists.
    pub bridge: bool,
}

impl Resources {
    /// Nothing per-pod is left (the node-level bridge and base rules may be).
    pub fn no_pods(&self) -> bool {
        self.veths == 0
            && self.netns_files == 0
            && self.netns_mounts == 0
            && self.allocations == 0
            && self.hostport_rules == 0
    }

    /// Nothing at all is left.
    pub fn is_empty(&self) -> bool {
        self.no_pods() && self.base_rules == 0 && !self.bridge
    }
}

/// Names of everything that belongs to one bridge.
struct Names {
    /// Comment on every base rule.
    tag: String,
    /// nat chain: masquerade decisions for pod egress.
    masq: String,
    /// nat chain: hostPort DNATs.
    hostports: String,
}

impl Names {
    fn new(bridge: &str) -> Self {
        Self {
            tag: format!("reddwarf:{bridge}"),
            masq: format!("RDW-MASQ-{bridge}"),
            hostports: format!("RDW-HP-{bridge}"),
        }
    }

    fn pod_tag(&self, key: &str) -> String {
        format!("{}:hp:{key}", self.tag)
    }

    fn is_pod_tag(&self, comment: &str) -> bool {
        comment
            .strip_prefix(&self.tag)
            .is_some_and(|r| r.starts_with(":hp:"))
    }

    fn chains(&self) -> [&str; 2] {
        [&self.masq, &self.hostports]
    }
}

fn validate_bridge(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "bridge name {name:?}: 1-15 characters of [A-Za-z0-9._-]"
        )))
    }
}

/// Stable per-(bridge, pod) key: names the host veth, the netns file and the state file.
fn pod_key(bridge: &str, pod_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(bridge.as_bytes());
    h.update([0]);
    h.update(pod_id.as_bytes());
    let d = h.finalize();
    d[..5].iter().map(|b| format!("{b:02x}")).collect()
}

fn bridge_mac(bridge: &str) -> [u8; 6] {
    let d = Sha256::digest(bridge.as_bytes());
    // Locally administered, unicast.
    [0x02, d[0], d[1], d[2], d[3], d[4]]
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| Error::Io {
        op: format!("write {path}"),
        source,
    })
}

fn io_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let op = op.into();
    move |source| Error::Io { op, source }
}

/// The parts of a network that need no bridge to exist: enough to tear down and purge.
struct Ctx {
    cfg: NetworkConfig,
    names: Names,
    store: Store,
    ipt: Iptables,
    handle: rtnetlink::Handle,
    conn: JoinHandle<()>,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Ctx {
    fn open(cfg: NetworkConfig) -> Result<Self> {
        validate_bridge(&cfg.bridge)?;
        let ipt = Iptables::detect()?;
        let (conn, handle, _) = rtnetlink::new_connection().map_err(io_err("netlink socket"))?;
        let conn = tokio::spawn(conn);
        Ok(Self {
            names: Names::new(&cfg.bridge),
            store: Store::new(&cfg.state_dir),
            cfg,
            ipt,
            handle,
            conn,
        })
    }

    fn key(&self, pod_id: &str) -> String {
        pod_key(&self.cfg.bridge, pod_id)
    }

    fn host_veth(key: &str) -> String {
        format!("rdw{key}")
    }

    fn netns_path(&self, key: &str) -> PathBuf {
        self.cfg.netns_dir.join(key)
    }

    fn ports_marker(&self, key: &str) -> PathBuf {
        self.cfg.state_dir.join(format!("{key}.ports"))
    }

    async fn remove_host_ports(&self, key: &str) -> Result<()> {
        let marker = self.ports_marker(key);
        if !marker.exists() {
            // Written before any rule is added, so no marker means no rules: saves an
            // iptables exec on every teardown of a pod without hostPorts.
            return Ok(());
        }
        let tag = self.names.pod_tag(key);
        self.ipt
            .delete_tagged("nat", Some(&self.names.hostports), |c| c == tag)
            .await?;
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err(format!("remove {}", marker.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes the veth and the netns (not the allocation).
    async fn unplumb(&self, key: &str) -> Result<()> {
        link::delete(&self.handle, &Self::host_veth(key)).await?;
        netns::remove(&self.netns_path(key))
    }

    async fn teardown_key(&self, key: &str) -> Result<()> {
        self.remove_host_ports(key).await?;
        self.unplumb(key).await?;
        // Released last: the address is free only once nothing uses it.
        self.store.remove(key)
    }

    async fn purge(&self) -> Result<()> {
        for pn in self.store.list() {
            self.teardown_key(&self.key(&pn.pod_id)).await?;
        }
        // Ports we made but lost track of (a crash between creating a veth and saving state
        // cannot happen, since state is saved first, but a deleted state dir can).
        for port in link::bridge_ports(&self.cfg.bridge) {
            if port.starts_with("rdw") {
                link::delete(&self.handle, &port).await?;
            }
        }
        link::delete(&self.handle, &self.cfg.bridge).await?;
        let names = &self.names;
        for table in ["nat", "filter"] {
            self.ipt
                .delete_tagged(table, None, |c| c == names.tag || names.is_pod_tag(c))
                .await?;
        }
        for chain in names.chains() {
            self.ipt.delete_chain("nat", chain).await?;
        }
        Ok(())
    }
}

/// Per-pod serialisation: setup/teardown/hostPort calls for one pod never interleave,
/// different pods proceed in parallel.
#[derive(Default)]
struct PodLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

struct PodGuard<'a> {
    locks: &'a PodLocks,
    key: String,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl PodLocks {
    async fn lock(&self, key: &str) -> PodGuard<'_> {
        let mutex = self
            .0
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .clone();
        let guard = mutex.clone().lock_owned().await;
        PodGuard {
            locks: self,
            key: key.to_string(),
            mutex,
            guard: Some(guard),
        }
    }
}

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.0.lock().unwrap();
        // Only the map and we hold it: nobody is waiting, so forget the entry.
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(&self.key);
        }
    }
}

/// The node's pod network: the bridge, address allocation, per-pod namespaces and veths, and the NAT and hostPort rules.
pub struct PodNetwork {
    ctx: Ctx,
    cidr: Ipv4Cidr,
    bridge_index: u32,
    mtu: u32,
    /// Around allocation (scan + write), with the state dir's flock inside it.
    alloc: tokio::sync::Mutex<()>,
    pods: PodLocks,
}

impl PodNetwork {
    /// Creates (or adopts) the bridge with the gateway address, turns on forwarding, and
    /// installs the node-level NAT/forward rules. Idempotent.
    pub async fn new(cfg: NetworkConfig) -> Result<PodNetwork> {
        let cidr: Ipv4Cidr = cfg.pod_cidr.parse()?;
        if cidr.prefix() > 30 {
            return Err(Error::Config(format!(
                "podCIDR {cidr} leaves no pod addresses"
            )));
        }
        let cluster = cfg
            .cluster_cidr
            .as_deref()
            .map(str::parse::<Ipv4Cidr>)
            .transpose()?;
        let ctx = Ctx::open(cfg)?;
        ctx.store.ensure_dir()?;
        std::fs::create_dir_all(&ctx.cfg.netns_dir)
            .map_err(io_err(format!("create {}", ctx.cfg.netns_dir.display())))?;
        let br = &ctx.cfg.bridge;
        let bridge = link::ensure_bridge(
            &ctx.handle,
            br,
            bridge_mac(br),
            cidr.gateway(),
            cidr.prefix(),
        )
        .await?;
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        // hostPorts reached via 127.0.0.1: DNATed packets keep a loopback source until
        // POSTROUTING masquerades them, and the kernel drops such "martians" on routing
        // unless route_localnet is on for the outgoing device (as the CNI portmap plugin does).
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1")?;
        let net = PodNetwork {
            cidr,
            bridge_index: bridge.index,
            mtu: bridge.mtu,
            ctx,
            alloc: tokio::sync::Mutex::new(()),
            pods: PodLocks::default(),
        };
        net.install_base_rules(cluster).await?;
        Ok(net)
    }

    async fn install_base_rules(&self, cluster: Option<Ipv4Cidr>) -> Result<()> {
        let ipt = &self.ctx.ipt;
        let n = &self.ctx.names;
        let br = self.ctx.cfg.bridge.as_str();
        let cidr = self.cidr.to_string();
        let rule = |parts: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            v.extend(["-m", "comment", "--comment", &n.tag].map(String::from));
            v
        };
        let with_target = |mut v: Vec<String>, target: &[&str]| -> Vec<String> {
            v.push("-j".into());
            v.extend(target.iter().map(|s| s.to_string()));
            v
        };

        // hostPorts: any packet for a local address, from outside or from the host itself.
        ipt.ensure_chain("nat", &n.hostports).await?;
        let local = rule(&["-m", "addrtype", "--dst-type", "LOCAL"]);
        for chain in ["PREROUTING", "OUTPUT"] {
            ipt.ensure_rule("nat", chain, &with_target(local.clone(), &[&n.hostports]))
                .await?;
        }
        // ...and the loopback-sourced ones need a real source to get replies.
        ipt.ensure_rule(
            "nat",
            "POSTROUTING",
            &with_target(rule(&["-s", "127.0.0.0/8", "-o", br]), &["MASQUERADE"]),
        )
        .await?;

        let jump_masq = with_target(rule(&["-s", &cidr]), &[&n.masq]);
        if self.ctx.cfg.masquerade {
            ipt.ensure_chain("nat", &n.masq).await?;
            // Rebuilt on every start so the RETURNs stay ahead of MASQUERADE even if
            // cluster_cidr changed; established flows keep their conntrack NAT meanwhile.
            ipt.run(&["-t", "nat", "-F", &n.masq]).await?;
            let mut keep = vec![cidr.clone()];
            keep.extend(cluster.map(|c| c.to_string()));
            keep.push("224.0.0.0/4".into());
            for dst in &keep {
                ipt.run_rule(
                    "nat",
                    &n.masq,
                    &with_target(rule(&["-d", dst]), &["RETURN"]),
                )
                .await?;
            }
            ipt.run_rule("nat", &n.masq, &with_target(rule(&[]), &["MASQUERADE"]))
                .await?;
            ipt.ensure_rule("nat", "POSTROUTING", &jump_masq).await?;
        } else {
            ipt.delete_rule("nat", "POSTROUTING", &jump_masq).await?;
            ipt.delete_chain("nat", &n.masq).await?;
        }

        // Hosts whose FORWARD policy is DROP (Docker's) would otherwise blackhole pods.
        for dir in ["-i", "-o"] {
            ipt.ensure_rule(
                "filter",
                "FORWARD",
                &with_target(rule(&[dir, br]), &["ACCEPT"]),
            )
            .await?;
        }
        Ok(())
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &NetworkConfig {
        &self.ctx.cfg
    }

    /// The gateway (bridge) address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.gateway()
    }

    /// The iptables binary in use, e.g. `iptables` (see [`iptables::backend`]).
    pub fn iptables_binary(&self) -> &'static str {
        self.ctx.ipt.binary()
    }

    /// Gives `pod_id` a netns on the bridge with an IP. If the pod already has one (also after
    /// an agent restart) that one is returned; a half-built one is rebuilt with the same IP.
    pub async fn setup(&self, pod_id: &str) -> Result<PodNet> {
        let key = self.ctx.key(pod_id);
        let _pod = self.pods.lock(&key).await;
        let (pn, fresh) = self.allocate(pod_id, &key).await?;
        if !fresh && self.is_plumbed(&pn).await? {
            return Ok(pn);
        }
        match self.plumb(&pn).await {
            Ok(()) => Ok(pn),
            Err(e) if fresh => {
                if let Err(c) = self.ctx.unplumb(&key).await {
                    tracing::warn!(pod = pod_id, error = %c, "cleanup after failed setup");
                }
                let _ = self.ctx.store.remove(&key);
                Err(e)
            }
            // A failed repair keeps the allocation (and the netns, which a running container
            // may be in): the next setup retries, teardown removes it all.
            Err(e) => Err(e),
        }
    }

    /// The recorded allocation for this pod, or a new one (saved before anything is built,
    /// so a crash mid-setup leaves a record that setup or teardown will find).
    async fn allocate(&self, pod_id: &str, key: &str) -> Result<(PodNet, bool)> {
        let store = &self.ctx.store;
        let _g = self.alloc.lock().await;
        let _flock = store.lock()?;
        if let Some(pn) = store.load(key)? {
            if pn.pod_id != pod_id {
                return Err(Error::State {
                    path: self.ctx.cfg.state_dir.join(format!("{key}.json")),
                    msg: format!("key collision: held by pod {:?}", pn.pod_id),
                });
            }
            if self.cidr.contains(pn.ip) && pn.prefix == self.cidr.prefix() {
                return Ok((pn, false));
            }
            // The node's podCIDR changed: the old address is meaningless now.
            tracing::warn!(pod = pod_id, ip = %pn.ip, cidr = %self.cidr, "re-addressing pod outside the podCIDR");
        }
        let pn = PodNet {
            pod_id: pod_id.to_string(),
            netns: self.ctx.netns_path(key),
            ip: store.lowest_free(&self.cidr)?,
            prefix: self.cidr.prefix(),
            gateway: self.cidr.gateway(),
            host_veth: Ctx::host_veth(key),
        };
        store.save(key, &pn)?;
        Ok((pn, true))
    }

    async fn is_plumbed(&self, pn: &PodNet) -> Result<bool> {
        if !netns::is_mounted(&pn.netns) {
            return Ok(false);
        }
        let veth = link::by_name(&self.ctx.handle, &pn.host_veth).await?;
        Ok(veth.is_some_and(|l| l.controller == Some(self.bridge_index)))
    }

    async fn plumb(&self, pn: &PodNet) -> Result<()> {
        // A veth left from an interrupted attempt (or on the wrong bridge) would make the
        // create below fail; deleting it also removes its peer, the pod's eth0.
        link::delete(&self.ctx.handle, &pn.host_veth).await?;
        // A live netns is kept: after a restart or a lost veth, the pod's containers may be
        // in it, and they get their eth0 back in place.
        if !netns::is_mounted(&pn.netns) {
            netns::remove(&pn.netns)?;
            netns::create(&pn.netns).await?;
        }
        let ns = netns::open(&pn.netns)?;
        link::create_veth(
            &self.ctx.handle,
            &pn.host_veth,
            std::os::fd::AsRawFd::as_raw_fd(&ns),
            self.mtu,
            self.bridge_index,
        )
        .await?;
        drop(ns);
        let (ip, prefix, gw) = (pn.ip, pn.prefix, pn.gateway);
        netns::run_in(&pn.netns, move || {
            // A socket opened on this thread lives in the pod netns; a small runtime of its
            // own drives it, so nothing of the caller's runtime runs in the wrong namespace.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(io_err("pod netns runtime"))?;
            rt.block_on(async move {
                let (conn, h, _) =
                    rtnetlink::new_connection().map_err(io_err("netlink socket in pod netns"))?;
                let conn = tokio::spawn(conn);
                let res = link::configure_pod_side(&h, ip, prefix, gw).await;
                conn.abort();
                res
            })
        })
        .await
    }

    /// Removes the pod's hostPorts, veth and netns, then releases its IP. Idempotent.
    pub async fn teardown(&self, pod_id: &str) -> Result<()> {
        let key = self.ctx.key(pod_id);
        let _pod = self.pods.lock(&key).await;
        self.ctx.teardown_key(&key).await
    }

    /// Every pod with an allocation, from the state dir (what survives an agent restart).
    pub fn list(&self) -> Vec<PodNet> {
        self.ctx.store.list()
    }

    /// Sets the pod's hostPorts (replacing any it had): DNAT `host_ip:host_port` (any local
    /// address when `host_ip` is `None`, 127.0.0.1 included) to `podIP:container_port`.
    pub async fn add_host_ports(&self, pod_id: &str, ports: &[HostPort]) -> Result<()> {
        let key = self.ctx.key(pod_id);
        let _pod = self.pods.lock(&key).await;
        let pn = self
            .ctx
            .store
            .load(&key)?
            .ok_or_else(|| Error::Config(format!("pod {pod_id:?} has no network")))?;
        for p in ports {
            if p.host_port == 0 || p.container_port == 0 {
                return Err(Error::Config(format!(
                    "hostPort {p:?}: ports must be non-zero"
                )));
            }
        }
        self.ctx.remove_host_ports(&key).await?;
        if ports.is_empty() {
            return Ok(());
        }
        let marker = self.ctx.ports_marker(&key);
        let body = serde_json::to_vec(ports).map_err(|e| Error::State {
            path: marker.clone(),
            msg: e.to_string(),
        })?;
        std::fs::write(&marker, body).map_err(io_err(format!("write {}", marker.display())))?;
        let tag = self.ctx.names.pod_tag(&key);
        for p in ports {
            let proto = p.protocol.as_str();
            let mut r: Vec<String> = vec!["-p".into(), proto.into()];
            if let Some(ip) = p.host_ip {
                r.extend(["-d".into(), format!("{ip}/32")]);
            }
            r.extend(
                [
                    "-m",
                    proto,
                    "--dport",
                    &p.host_port.to_string(),
                    "-m",
                    "comment",
                    "--comment",
                    &tag,
                    "-j",
                    "DNAT",
                    "--to-destination",
                    &format!("{}:{}", pn.ip, p.container_port),
                ]
                .map(String::from),
            );
            if let Err(e) = self
                .ctx
                .ipt
                .run_rule("nat", &self.ctx.names.hostports, &r)
                .await
            {
                let _ = self.ctx.remove_host_ports(&key).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes the pod's hostPort rules. Idempotent.
    pub async fn remove_host_ports(&self, pod_id: &str) -> Result<()> {
        let key = self.ctx.key(pod_id);
        let _pod = self.pods.lock(&key).await;
        self.ctx.remove_host_ports(&key).await
    }

    /// Tears down every pod, then removes the bridge and every rule and chain of this network.
    pub async fn destroy(self) -> Result<()> {
        self.ctx.purge().await
    }
}

/// Removes everything a [`PodNetwork`] with this config created, without one being open
/// (after a crash, from a test's drop guard, or `reddwarf agent --uninstall`).
pub async fn purge(cfg: &NetworkConfig) -> Result<()> {
    Ctx::open(cfg.clone())?.purge().await
}

/// Counts what exists for `cfg`. Blocking (reads sysfs, procfs, and runs `iptables -S`).
pub fn resources(cfg: &NetworkConfig) -> Resources {
    let names = Names::new(&cfg.bridge);
    let count_files = |dir: &Path, ext: Option<&str>| {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        !n.starts_with('.')
                            && ext
                                .is_none_or(|x| Path::new(&*n).extension().is_some_and(|e| e == x))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let netns_dir = std::fs::canonicalize(&cfg.netns_dir).unwrap_or(cfg.netns_dir.clone());
    let netns_mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| Path::new(mp).parent() == Some(netns_dir.as_path()))
        .count();
    let (mut hostport_rules, mut base_rules) = (0, 0);
    if let Ok(ipt) = Iptables::detect() {
        for table in ["nat", "filter"] {
            for line in ipt.list_sync(table) {
                if line.starts_with("-N ") && names.chains().iter().any(|c| line[3..] == **c) {
                    base_rules += 1;
                } else if let Some(c) = iptables::comment_of(&line) {
                    if c == names.tag {
                        base_rules += 1;
                    } else if names.is_pod_tag(c) {
                        hostport_rules += 1;
                    }
                }
            }
        }
    }
    Resources {
        veths: link::bridge_ports(&cfg.bridge).len(),
        netns_files: count_files(&cfg.netns_dir, None),
        netns_mounts,
        allocations: count_files(&cfg.state_dir, Some("json")),
        hostport_rules,
        base_rules,
        bridge: Path::new("/sys/class/net").join(&cfg.bridge).exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names_fit_kernel_limits() {
        let k = pod_key("rdw0", "default/web-0");
        assert_eq!(k.len(), 10);
        assert_eq!(Ctx::host_veth(&k).len(), 13);
        assert_ne!(k, pod_key("rdw1", "default/web-0"));
        assert_eq!(k, pod_key("rdw0", "default/web-0"));
        let n = Names::new("abcdefghijklmno");
        assert!(n.masq.len() <= 28 && n.hostports.len() <= 28);
        assert!(n.is_pod_tag(&n.pod_tag(&k)));
        assert!(!n.is_pod_tag(&n.tag));
        assert!(!Names::new("rdw").is_pod_tag(&Names::new("rdw1").pod_tag(&k)));
        assert!(validate_bridge("rdw0").is_ok());
        assert!(validate_bridge("this-is-too-long").is_err());
        assert!(validate_bridge("a b").is_err());
    }

    #[test]
    fn comment_parsing() {
        let l = r#"-A RDW-HP-x -p tcp -m comment --comment "reddwarf:x:hp:0123456789" -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80"#;
        assert_eq!(iptables::comment_of(l), Some("reddwarf:x:hp:0123456789"));
        assert_eq!(iptables::comment_of("-A FORWARD -j ACCEPT"), None);
    }
}
