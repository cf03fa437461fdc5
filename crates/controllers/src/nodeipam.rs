//! Node IPAM, as kube-controller-manager's range allocator: every Node gets `spec.podCIDR(s)`,
//! the lowest free subnet of the cluster CIDR (`--cluster-cidr`, default 10.42.0.0/16, a /24
//! per node by `--node-cidr-mask-size`). The agent gives its pods addresses from it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};

use crate::{error_action, Error};

/// The cluster CIDR and the size of each node's slice of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterCidr {
    /// The network address (host bits cleared).
    pub base: Ipv4Addr,
    /// The cluster CIDR's prefix length.
    pub prefix: u8,
    /// The prefix length of each node's subnet (`--node-cidr-mask-size`).
    pub node_prefix: u8,
}

impl ClusterCidr {
    /// Parses `--cluster-cidr` (IPv4 `address/prefix`) with the node subnet size, which must
    /// lie between the cluster prefix and /30; the error names the offending flag.
    pub fn parse(cidr: &str, node_prefix: u8) -> Result<ClusterCidr, String> {
        let (ip, len) = cidr
            .split_once('/')
            .ok_or_else(|| format!("--cluster-cidr {cidr:?} is not address/prefix"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("--cluster-cidr {cidr:?}: only IPv4 is supported"))?;
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("--cluster-cidr {cidr:?}: bad prefix length"))?;
        if node_prefix < prefix || node_prefix > 30 {
            return Err(format!(
                "--node-cidr-mask-size {node_prefix} must be between the cluster prefix /{prefix} and /30"
            ));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(ClusterCidr {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
            node_prefix,
        })
    }

    fn subnets(&self) -> u64 {
        1u64 << (self.node_prefix - self.prefix)
    }

    fn subnet(&self, i: u64) -> String {
        let step = 1u64 << (32 - self.node_prefix);
        let ip = Ipv4Addr::from((u32::from(self.base) as u64 + i * step) as u32);
        format!("{ip}/{}", self.node_prefix)
    }

    fn index_of(&self, cidr: &str) -> Option<u64> {
        let (ip, len) = cidr.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        if len.parse::<u8>().ok()? != self.node_prefix {
            return None;
        }
        let off = u32::from(ip).checked_sub(u32::from(self.base))? as u64;
        let i = off >> (32 - self.node_prefix);
        (i < self.subnets()).then_some(i)
    }
}

struct NodeIpamController {
    client: Client,
    cidr: ClusterCidr,
    nodes: Store<Node>,
    /// Subnets handed out (by node) that the cache may not show yet, so two nodes never get
    /// the same one; dropped once the cache shows the node's podCIDR.
    pending: Mutex<HashMap<String, u64>>,
}

/// Runs the allocator until the process ends, giving each Node a subnet of `cidr`.
pub async fn run(client: Client, cidr: ClusterCidr) {
    let api: Api<Node> = Api::all(client.clone());
    let (nodes, writer) = reflector::store();
    // The cache keeps slim Nodes: the name and spec are all this reads.
    let feed = watcher(api, watcher::Config::default())
        .map_ok(|e| e.modify(|n| *n = crate::node_slim::slim(std::mem::take(n))))
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(feed, nodes.clone())
        .run(
            reconcile,
            |_, e, _| error_action("nodeipam", e),
            Arc::new(NodeIpamController {
                client,
                cidr,
                nodes,
                pending: Mutex::new(HashMap::new()),
            }),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(node: Arc<Node>, ctx: Arc<NodeIpamController>) -> Result<Action, Error> {
    let has = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some_and(|c| !c.is_empty());
    if has || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let index = {
        let mut pending = ctx.pending.lock().unwrap_or_else(|e| e.into_inner());
        let cached = ctx.nodes.state();
        // One pass over the cache, borrowing: this runs once per node without a CIDR, so a
        // scan of every node per pending node made registering 5 000 nodes quadratic (most of
        // the server's CPU, in string copies).
        let mut with_cidr: HashSet<&str> = HashSet::with_capacity(cached.len());
        let mut used: BTreeSet<u64> = BTreeSet::new();
        for n in &cached {
            let Some(c) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()) else {
                continue;
            };
            if c.is_empty() {
                continue;
            }
            with_cidr.insert(n.metadata.name.as_deref().unwrap_or_default());
            used.extend(ctx.cidr.index_of(c));
        }
        pending.retain(|name, _| !with_cidr.contains(name.as_str()));
        used.extend(pending.values().copied());
        let Some(free) = (0..ctx.cidr.subnets()).find(|i| !used.contains(i)) else {
            tracing::warn!(
                "nodeipam: no free /{} left in the cluster CIDR for node {}",
                ctx.cidr.node_prefix,
                node.name_any()
            );
            return Ok(Action::requeue(std::time::Duration::from_secs(30)));
        };
        pending.insert(node.name_any(), free);
        free
    };
    let cidr = ctx.cidr.subnet(index);
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    let result = api
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    if result.is_err() {
        ctx.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&node.name_any());
    }
    result?;
    tracing::info!("nodeipam: node {} gets {cidr}", node.name_any());
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_of_the_cluster_cidr() {
        let c = ClusterCidr::parse("10.42.0.0/16", 24).unwrap();
        assert_eq!(c.subnets(), 256);
        assert_eq!(c.subnet(0), "10.42.0.0/24");
        assert_eq!(c.subnet(5), "10.42.5.0/24");
        assert_eq!(c.index_of("10.42.5.0/24"), Some(5));
        assert_eq!(c.index_of("10.43.0.0/24"), None);
        assert_eq!(c.index_of("10.42.5.0/25"), None);
        assert!(ClusterCidr::parse("10.42.0.0/16", 8).is_err());
        assert!(ClusterCidr::parse("fd00::/64", 80).is_err());
        assert_eq!(
            ClusterCidr::parse("10.42.1.7/16", 24).unwrap().base,
            Ipv4Addr::new(10, 42, 0, 0)
        );
    }
}
