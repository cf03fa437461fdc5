//! The node's pod network over `reddwarf-netcfg`: the bridge is set up on first use, once
//! node IPAM has given the Node its podCIDR.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use reddwarf_netcfg::{NetworkConfig, PodNetwork};

use super::PodNetworking;

/// Pod networking for the node: a [`PodNetwork`] built once the Node has a podCIDR.
pub struct NodeNetwork {
    /// API client, to read the Node's podCIDR.
    pub client: kube::Client,
    /// The node's name.
    pub node: String,
    /// The bridge's name.
    pub bridge: String,
    /// Where network state (allocations, netns files) is kept.
    pub data_dir: PathBuf,
    inner: tokio::sync::OnceCell<PodNetwork>,
}

impl NodeNetwork {
    /// Networking for `node`; nothing is set up until the first pod needs it.
    pub fn new(client: kube::Client, node: String, bridge: String, data_dir: PathBuf) -> Self {
        NodeNetwork {
            client,
            node,
            bridge,
            data_dir,
            inner: Default::default(),
        }
    }

    /// The netcfg configuration for a podCIDR (also what cleanup purges).
    pub fn config(bridge: &str, data_dir: &std::path::Path, pod_cidr: &str) -> NetworkConfig {
        NetworkConfig {
            bridge: bridge.to_string(),
            pod_cidr: pod_cidr.to_string(),
            cluster_cidr: None,
            state_dir: data_dir.join("net"),
            netns_dir: data_dir.join("netns"),
            masquerade: true,
        }
    }

    async fn network(&self) -> Result<&PodNetwork> {
        self.inner
            .get_or_try_init(|| async {
                let nodes: Api<Node> = Api::all(self.client.clone());
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                let cidr = loop {
                    let n = nodes.get(&self.node).await.context("reading the node")?;
                    if let Some(c) = n.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                        break c;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(anyhow!(
                            "node {} has no podCIDR yet (is the server's nodeipam controller running?)",
                            self.node
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                };
                PodNetwork::new(Self::config(&self.bridge, &self.data_dir, &cidr))
                    .await
                    .with_context(|| format!("setting up the pod network {} on bridge {}", cidr, self.bridge))
            })
            .await
    }
}

impl PodNetworking for NodeNetwork {
    fn host_ports<'a>(
        &'a self,
        pod_uid: &'a str,
        ports: Vec<(u16, u16, String, Option<Ipv4Addr>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let n = self.network().await?;
            let ports: Vec<reddwarf_netcfg::HostPort> = ports
                .into_iter()
                .map(
                    |(host_port, container_port, proto, host_ip)| reddwarf_netcfg::HostPort {
                        host_port,
                        container_port,
                        protocol: if proto.eq_ignore_ascii_case("UDP") {
                            reddwarf_netcfg::Protocol::Udp
                        } else {
                            reddwarf_netcfg::Protocol::Tcp
                        },
                        host_ip,
                    },
                )
                .collect();
            n.add_host_ports(pod_uid, &ports)
                .await
                .context("setting the pod's hostPorts")?;
            Ok(())
        })
    }

    fn setup<'a>(&'a self, pod_uid: &'a str) -> BoxFuture<'a, Result<(PathBuf, Ipv4Addr)>> {
        Box::pin(async move {
            let n = self.network().await?;
            let p = n
                .setup(pod_uid)
                .await
                .context("setting up the pod's network")?;
            Ok((p.netns, p.ip))
        })
    }

    fn teardown<'a>(&'a self, pod_uid: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match self.inner.get() {
                Some(n) => Ok(n.teardown(pod_uid).await?),
                // Not set up in this process: the network exists only if a pod used it;
                // set it up to find what to tear down.
                None => {
                    let n = self.network().await?;
                    Ok(n.teardown(pod_uid).await?)
                }
            }
        })
    }
}
