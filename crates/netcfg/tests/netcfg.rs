//! Real network namespaces, veths, a bridge and iptables rules: run as root.
//! Each test has its own bridge (`rdwt<6 hex>`), podCIDR (10.244.<n>.0/24), state and netns
//! dirs, and a guard that purges everything even when the test fails.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reddwarf_netcfg::{
    purge, resources, HostPort, NetworkConfig, PodNet, PodNetwork, Protocol, Resources,
};

/// Owns a test's config and dirs; purges the network on drop (from a thread with its own
/// runtime, since the test's runtime may be the one being dropped or blocked).
struct Fixture {
    cfg: NetworkConfig,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(subnet: u8) -> Self {
        Self::with_cidr(&format!("10.244.{subnet}.0/24"))
    }

    fn with_cidr(pod_cidr: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bridge = format!("rdwt{:06x}", rand::random::<u32>() & 0xff_ffff);
        let cfg = NetworkConfig {
            bridge,
            pod_cidr: pod_cidr.into(),
            cluster_cidr: Some("10.244.0.0/16".into()),
            state_dir: dir.path().join("state"),
            netns_dir: dir.path().join("netns"),
            masquerade: true,
        };
        Self { cfg, _dir: dir }
    }

    async fn open(&self) -> PodNetwork {
        PodNetwork::new(self.cfg.clone()).await.unwrap()
    }

    fn resources(&self) -> Resources {
        resources(&self.cfg)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let cfg = self.cfg.clone();
        let res = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(purge(&cfg))
        })
        .join();
        if let Ok(Err(e)) = res {
            eprintln!("purge of {} failed: {e}", self.cfg.bridge);
        }
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// One ICMP echo from inside a netns.
fn ping_from(netns: &Path, target: Ipv4Addr) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["/bin/busybox", "ping", "-c1", "-W2", &target.to_string()])
        .output()
        .unwrap()
        .status
        .success()
}

fn in_netns(netns: &Path, cmd: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn mounted(path: &Path) -> bool {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// A TCP server inside a netns: answers each of `conns` connections with `greeting`, then
/// exits. Returns once it listens. Gives up after 20 s so a failing test cannot hang.
fn serve_in_netns(
    netns: &Path,
    port: u16,
    conns: usize,
    greeting: &'static str,
) -> std::thread::JoinHandle<()> {
    serve_in_netns_with(netns, port, conns, move |_| greeting.to_string())
}

/// As [`serve_in_netns`], replying with `reply(peer address)`.
fn serve_in_netns_with(
    netns: &Path,
    port: u16,
    conns: usize,
    reply: impl Fn(SocketAddr) -> String + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let ns = std::fs::File::open(netns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        // SAFETY: this thread only serves the test and exits afterwards.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while served < conns && Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, peer)) => {
                    s.set_nonblocking(false).unwrap();
                    s.write_all(reply(peer).as_bytes()).unwrap();
                    served += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    h
}

/// A UDP socket inside a netns that echoes one datagram (or gives up after 10 s).
fn udp_echo_in_netns(netns: &Path, port: u16) -> std::thread::JoinHandle<()> {
    let ns = std::fs::File::open(netns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        // SAFETY: this thread only serves the test and exits afterwards.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, peer)) = s.recv_from(&mut buf) {
            s.send_to(&buf[..n], peer).unwrap();
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    h
}

/// Connects from inside a netns (on a thread that enters it).
fn fetch_from(netns: &Path, addr: SocketAddr) -> std::io::Result<String> {
    let ns = std::fs::File::open(netns).unwrap();
    std::thread::spawn(move || {
        // SAFETY: this thread only makes the one connection and exits.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        fetch(addr)
    })
    .join()
    .unwrap()
}

fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf)
}

#[tokio::test]
async fn two_pods_reach_each_other_and_the_gateway() {
    let fx = Fixture::new(11);
    let net = fx.open().await;
    let a = net.setup("ns/a").await.unwrap();
    let b = net.setup("ns/b").await.unwrap();
    assert_eq!((a.ip, b.ip), (ip(10, 244, 11, 2), ip(10, 244, 11, 3)));
    assert_eq!(a.gateway, ip(10, 244, 11, 1));
    assert_eq!(a.prefix, 24);
    assert!(a.host_veth.len() <= 15 && a.host_veth != b.host_veth);

    let link = in_netns(&a.netns, &["ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1500") && link.contains("UP"), "{link}");
    let addr = in_netns(&a.netns, &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains("10.244.11.2/24"), "{addr}");
    let lo = in_netns(&a.netns, &["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let routes = in_netns(&a.netns, &["ip", "route"]);
    assert!(
        routes.contains("default via 10.244.11.1 dev eth0"),
        "{routes}"
    );

    assert!(ping_from(&a.netns, b.ip), "a -> b");
    assert!(ping_from(&b.netns, a.ip), "b -> a");
    assert!(ping_from(&a.netns, a.gateway), "a -> gateway");
    // And TCP between pods.
    let server = serve_in_netns(&b.netns, 7000, 1, "from b");
    let got = fetch_from(&a.netns, SocketAddr::from((b.ip, 7000))).unwrap();
    assert_eq!(got, "from b");
    server.join().unwrap();

    let r = fx.resources();
    assert_eq!(
        (r.veths, r.netns_files, r.netns_mounts, r.allocations),
        (2, 2, 2, 2)
    );
    assert!(r.base_rules > 0 && r.bridge);
    net.destroy().await.unwrap();
    assert_eq!(fx.resources(), Resources::default());
}

#[tokio::test]
async fn setup_is_idempotent_and_survives_a_restart() {
    let fx = Fixture::new(12);
    let net = fx.open().await;
    let a = net.setup("a").await.unwrap();
    let b = net.setup("b").await.unwrap();
    assert_eq!(net.setup("a").await.unwrap(), a);
    assert_eq!(fx.resources().veths, 2);

    // "Restart": a fresh PodNetwork (and bridge/rules adoption) over the same dirs.
    drop(net);
    let net = fx.open().await;
    let base = fx.resources().base_rules;
    let net2 = fx.open().await; // idempotent new(): no duplicate rules
    assert_eq!(fx.resources().base_rules, base);
    drop(net2);
    let mut listed = net.list();
    listed.sort_by(|x, y| x.pod_id.cmp(&y.pod_id));
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    assert_eq!(net.setup("a").await.unwrap(), a);
    assert_eq!(net.setup("b").await.unwrap(), b);
    assert!(ping_from(&a.netns, b.ip));

    // Half-gone (veth deleted behind our back): setup rebuilds it with the same address,
    // in the same netns (containers in it keep it).
    let ns_inode = std::fs::metadata(&a.netns).unwrap().ino();
    assert!(Command::new("ip")
        .args(["link", "del", &a.host_veth])
        .status()
        .unwrap()
        .success());
    assert_eq!(net.setup("a").await.unwrap(), a);
    assert_eq!(std::fs::metadata(&a.netns).unwrap().ino(), ns_inode);
    assert!(ping_from(&a.netns, b.ip));
    assert_eq!(fx.resources().veths, 2);
    net.destroy().await.unwrap();
    assert!(fx.resources().is_empty());
}

#[tokio::test]
async fn teardown_leaves_nothing_and_the_ip_is_reused() {
    let fx = Fixture::new(13);
    let net = fx.open().await;
    let a = net.setup("a").await.unwrap();
    let b = net.setup("b").await.unwrap();
    assert!(mounted(&a.netns) && link_exists(&a.host_veth));

    net.teardown("a").await.unwrap();
    assert!(!link_exists(&a.host_veth), "veth left");
    assert!(!a.netns.exists(), "netns file left");
    assert!(!mounted(&a.netns), "netns mount left");
    assert_eq!(net.list(), vec![b.clone()]);
    net.teardown("a").await.unwrap(); // idempotent
    net.teardown("never-set-up").await.unwrap();

    let c = net.setup("c").await.unwrap();
    assert_eq!(c.ip, a.ip, "lowest free address is reused");
    assert!(ping_from(&c.netns, b.ip));
    net.teardown("b").await.unwrap();
    net.teardown("c").await.unwrap();
    let r = fx.resources();
    assert!(r.no_pods(), "{r:?}");
    net.destroy().await.unwrap();
    assert!(fx.resources().is_empty());
}

#[tokio::test]
async fn host_port_reaches_a_pod_from_localhost_and_the_gateway() {
    let fx = Fixture::new(14);
    let net = fx.open().await;
    let pod = net.setup("web").await.unwrap();
    let other = net.setup("client").await.unwrap();
    // Unlikely to be in use, below the ephemeral range; the DNAT wins over host listeners
    // anyway, since it happens before local delivery.
    let host_port = 20000 + (rand::random::<u16>() % 10000);
    let tcp = HostPort {
        host_port,
        container_port: 8080,
        protocol: Protocol::Tcp,
        host_ip: None,
    };
    let udp = HostPort {
        protocol: Protocol::Udp,
        ..tcp.clone()
    };
    net.add_host_ports("web", &[tcp.clone(), udp])
        .await
        .unwrap();
    assert_eq!(fx.resources().hostport_rules, 2);
    // UDP: one datagram echoed from the pod, sent to 127.0.0.1:hostPort.
    let echo = udp_echo_in_netns(&pod.netns, 8080);
    let reply = tokio::task::spawn_blocking(move || {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.send_to(b"ping", (Ipv4Addr::LOCALHOST, host_port))
            .unwrap();
        let mut buf = [0u8; 16];
        c.recv(&mut buf).map(|n| buf[..n].to_vec())
    })
    .await
    .unwrap();
    assert_eq!(reply.unwrap(), b"ping", "UDP via 127.0.0.1");
    echo.join().unwrap();
    // Replacing, not accumulating.
    net.add_host_ports("web", std::slice::from_ref(&tcp))
        .await
        .unwrap();
    assert_eq!(fx.resources().hostport_rules, 1);

    let server = serve_in_netns(&pod.netns, 8080, 3, "hello from web");
    let got = tokio::task::spawn_blocking(move || {
        (
            fetch(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port))),
            fetch(SocketAddr::from((ip(10, 244, 14, 1), host_port))),
        )
    })
    .await
    .unwrap();
    assert_eq!(got.0.unwrap(), "hello from web", "via 127.0.0.1");
    assert_eq!(got.1.unwrap(), "hello from web", "via the gateway");
    // From another pod, through the gateway address.
    let via_pod = fetch_from(
        &other.netns,
        SocketAddr::from((ip(10, 244, 14, 1), host_port)),
    );
    assert_eq!(via_pod.unwrap(), "hello from web", "from another pod");
    server.join().unwrap();

    net.remove_host_ports("web").await.unwrap();
    assert_eq!(fx.resources().hostport_rules, 0);
    net.remove_host_ports("web").await.unwrap();

    // Bound to one host address: the gateway answers, 127.0.0.1 is not forwarded.
    let gw_only = HostPort {
        host_ip: Some(pod.gateway),
        ..tcp.clone()
    };
    net.add_host_ports("web", &[gw_only]).await.unwrap();
    let server = serve_in_netns(&pod.netns, 8080, 1, "hello from web");
    let got = tokio::task::spawn_blocking(move || {
        (
            fetch(SocketAddr::from((ip(10, 244, 14, 1), host_port))),
            fetch(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port))),
        )
    })
    .await
    .unwrap();
    assert_eq!(got.0.unwrap(), "hello from web", "via the bound address");
    assert!(
        got.1.is_err() || got.1.as_deref().unwrap() != "hello from web",
        "127.0.0.1 must not reach the pod"
    );
    server.join().unwrap();
    net.remove_host_ports("web").await.unwrap();

    // Teardown takes a pod's hostPorts with it.
    net.add_host_ports("web", &[tcp]).await.unwrap();
    assert_eq!(fx.resources().hostport_rules, 1);
    net.teardown("web").await.unwrap();
    assert_eq!(fx.resources().hostport_rules, 0);
    assert!(
        net.add_host_ports("web", &[]).await.is_err(),
        "no network, no hostPorts"
    );
    net.destroy().await.unwrap();
    assert!(fx.resources().is_empty());
}

/// Three networks on this host stand in for "elsewhere": traffic to a podCIDR inside
/// cluster_cidr keeps the pod's address, traffic to one outside it leaves masqueraded.
#[tokio::test]
async fn egress_is_masqueraded_except_to_the_cluster() {
    let (fa, fin, fout) = (
        Fixture::new(18),
        Fixture::new(19),
        Fixture::with_cidr("10.245.18.0/24"),
    );
    let (na, nin, nout) = (fa.open().await, fin.open().await, fout.open().await);
    let a = na.setup("a").await.unwrap();
    let inside = nin.setup("in").await.unwrap();
    let outside = nout.setup("out").await.unwrap();
    let s1 = serve_in_netns_with(&inside.netns, 7001, 1, |p| p.ip().to_string());
    let s2 = serve_in_netns_with(&outside.netns, 7001, 1, |p| p.ip().to_string());
    let seen_inside = fetch_from(&a.netns, SocketAddr::from((inside.ip, 7001))).unwrap();
    let seen_outside = fetch_from(&a.netns, SocketAddr::from((outside.ip, 7001))).unwrap();
    s1.join().unwrap();
    s2.join().unwrap();
    assert_eq!(
        seen_inside,
        a.ip.to_string(),
        "no SNAT within the cluster CIDR"
    );
    assert_eq!(
        seen_outside,
        outside.gateway.to_string(),
        "SNAT to the egress address"
    );
    for n in [na, nin, nout] {
        n.destroy().await.unwrap();
    }
    for f in [&fa, &fin, &fout] {
        assert!(f.resources().is_empty());
    }
}

#[tokio::test]
async fn fifty_pods_set_up_and_torn_down_leave_nothing() {
    let fx = Fixture::new(15);
    let t = Instant::now();
    let net = fx.open().await;
    let new_time = t.elapsed();
    let ids: Vec<String> = (0..50).map(|i| format!("default/pod-{i}")).collect();
    let mut setup = Vec::new();
    let mut pods: Vec<PodNet> = Vec::new();
    for id in &ids {
        let t = Instant::now();
        pods.push(net.setup(id).await.unwrap());
        setup.push(t.elapsed());
    }
    let mut ips: Vec<Ipv4Addr> = pods.iter().map(|p| p.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50);
    let r = fx.resources();
    assert_eq!(
        (r.veths, r.netns_files, r.netns_mounts, r.allocations),
        (50, 50, 50, 50)
    );
    assert!(ping_from(&pods[0].netns, pods[49].ip));

    let mut teardown = Vec::new();
    for id in &ids {
        let t = Instant::now();
        net.teardown(id).await.unwrap();
        teardown.push(t.elapsed());
    }
    let r = fx.resources();
    assert!(r.no_pods(), "{r:?}");
    let t = Instant::now();
    net.destroy().await.unwrap();
    let destroy_time = t.elapsed();
    assert!(fx.resources().is_empty(), "{:?}", fx.resources());
    eprintln!("PodNetwork::new {new_time:?}, destroy (no pods left) {destroy_time:?}");
    eprintln!(
        "50 pods: setup median {:?} max {:?} total {:?}; teardown median {:?} max {:?} total {:?}",
        median(&mut setup),
        setup.iter().max().unwrap(),
        setup.iter().sum::<Duration>(),
        median(&mut teardown),
        teardown.iter().max().unwrap(),
        teardown.iter().sum::<Duration>(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_setups_get_distinct_addresses() {
    let fx = Fixture::new(16);
    let net = std::sync::Arc::new(fx.open().await);
    let t = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let net = net.clone();
            // Every pod asked for twice at once: the per-pod lock makes the second a no-op.
            tokio::spawn(async move { net.setup(&format!("p{}", i % 10)).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let elapsed = t.elapsed();
    let mut ips: Vec<Ipv4Addr> = got.iter().map(|p| p.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10);
    assert_eq!(ips[0], ip(10, 244, 16, 2));
    assert_eq!(ips[9], ip(10, 244, 16, 11));
    assert_eq!(fx.resources().veths, 10);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let net = net.clone();
            tokio::spawn(async move { net.teardown(&format!("p{i}")).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(fx.resources().no_pods());
    eprintln!("10 pods set up concurrently in {elapsed:?}");
    let net = std::sync::Arc::into_inner(net).unwrap();
    net.destroy().await.unwrap();
    assert!(fx.resources().is_empty());
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
