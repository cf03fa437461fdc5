//! rtnetlink operations: the node bridge, veth pairs, and the pod side of a veth.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::{Error, Result};

fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink { op, source }
}

/// The errno of a netlink NACK, positive (`libc::ENODEV`, ...).
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// What we need to know about an existing link.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: u32,
    pub mtu: u32,
    pub controller: Option<u32>,
    pub kind: Option<InfoKind>,
}

impl From<&LinkMessage> for Link {
    fn from(m: &LinkMessage) -> Self {
        let mut l = Link {
            index: m.header.index,
            mtu: 1500,
            controller: None,
            kind: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Controller(v) => l.controller = Some(*v),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(k.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

pub(crate) async fn by_name(h: &Handle, name: &str) -> Result<Option<Link>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(Link::from(&m))),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl(format!("get link {name}"))(e)),
    }
}

/// Deletes a link by name; a missing link is success.
pub(crate) async fn delete(h: &Handle, name: &str) -> Result<()> {
    let Some(l) = by_name(h, name).await? else {
        return Ok(());
    };
    match h.link().del(l.index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(nl(format!("delete link {name}"))(e)),
    }
}

/// Creates the bridge if missing, gives it `gateway/prefix`, and brings it up.
pub(crate) async fn ensure_bridge(
    h: &Handle,
    name: &str,
    mac: [u8; 6],
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<Link> {
    let link = match by_name(h, name).await? {
        Some(l) => l,
        None => {
            // A fixed MAC: otherwise the bridge takes its lowest port's address and changes it
            // as pods come and go, which makes pods' ARP entries for the gateway go stale.
            let msg = LinkBridge::new(name).address(mac.to_vec()).build();
            match h.link().add(msg).execute().await {
                Ok(()) => {}
                // Another process created it in between: fine, use theirs.
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl(format!("create bridge {name}"))(e)),
            }
            by_name(h, name)
                .await?
                .ok_or_else(|| Error::Config(format!("bridge {name} vanished")))?
        }
    };
    if link.kind != Some(InfoKind::Bridge) {
        return Err(Error::Config(format!(
            "{name} exists and is not a bridge ({:?})",
            link.kind
        )));
    }
    let want = IpAddr::V4(gateway);
    let mut addrs = h
        .address()
        .get()
        .set_link_index_filter(link.index)
        .execute();
    let mut present = false;
    while let Some(a) = addrs
        .try_next()
        .await
        .map_err(nl("list bridge addresses"))?
    {
        if a.header.prefix_len == prefix
            && a.attributes
                .iter()
                .any(|x| matches!(x, AddressAttribute::Local(ip) if *ip == want))
        {
            present = true;
        }
    }
    if !present {
        match h.address().add(link.index, want, prefix).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl(format!("add {gateway}/{prefix} to {name}"))(e)),
        }
    }
    h.link()
        .set(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(nl(format!("set {name} up")))?;
    Ok(link)
}

/// Creates a veth pair in one message: `host` up on the bridge, its peer already inside the
/// netns (`ns_fd`) named `eth0`, both with the bridge's MTU.
pub(crate) async fn create_veth(
    h: &Handle,
    host: &str,
    ns_fd: RawFd,
    mtu: u32,
    bridge_index: u32,
) -> Result<()> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name("eth0")
        .mtu(mtu)
        .setns_by_fd(ns_fd)
        .build();
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(host)
        .mtu(mtu)
        .controller(bridge_index)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(nl(format!("create veth {host}")))
}

/// Inside the pod netns: `lo` up, `eth0` addressed and up, default route via the gateway.
pub(crate) async fn configure_pod_side(
    h: &Handle,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    let lo = by_name(h, "lo")
        .await?
        .ok_or_else(|| Error::Config("no lo in pod netns".into()))?;
    h.link()
        .set(LinkUnspec::new_with_index(lo.index).up().build())
        .execute()
        .await
        .map_err(nl("set lo up"))?;
    let eth0 = by_name(h, "eth0")
        .await?
        .ok_or_else(|| Error::Config("no eth0 in pod netns".into()))?;
    match h
        .address()
        .add(eth0.index, IpAddr::V4(ip), prefix)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(libc::EEXIST) => {}
        Err(e) => return Err(nl(format!("add {ip}/{prefix} to eth0"))(e)),
    }
    h.link()
        .set(LinkUnspec::new_with_index(eth0.index).up().build())
        .execute()
        .await
        .map_err(nl("set eth0 up"))?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(eth0.index)
        .build();
    match h.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(nl(format!("default route via {gateway}"))(e)),
    }
}

/// Names of the bridge's ports, from sysfs (sync: used by [`crate::resources`]).
pub(crate) fn bridge_ports(bridge: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}
