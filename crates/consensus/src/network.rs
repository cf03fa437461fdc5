//! Peer transport: raft RPCs, forwarded writes, read-index requests and membership changes
//! between members, as HTTP/2 POSTs to `/reddwarf/raft/<rpc>` on the members' API port over
//! mutual TLS (member certificates from the cluster CA). Bodies are postcard. One HTTP/2
//! connection per peer carries every request to it concurrently, so appends pipeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::TypeConfig;

/// The path prefix every peer RPC is served under.
pub const PEER_PATH: &str = "/reddwarf/raft/";

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made (refused, timed out, TLS failure).
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// The peer's address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The peer answered, but not with a result.
    #[error("peer {addr}: {reason}")]
    Failed {
        /// The peer's address.
        addr: String,
        /// What failed.
        reason: String,
    },
}

/// A boxed peer-call future.
pub type PeerCall =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, PeerError>> + Send>>;

/// Another way to carry peer RPCs than HTTP/2 over TLS: in-process members with injected
/// faults (drops, delays, duplicates, partitions) in the randomized consistency tests.
pub trait Transport: Send + Sync + 'static {
    /// Delivers `body` to `rpc` of the member at `addr` and returns its answer.
    fn call(&self, addr: &str, rpc: &str, body: Vec<u8>, timeout: Duration) -> PeerCall;
}

/// A [`Transport`] in the consensus settings (which are `Debug`).
#[derive(Clone)]
pub struct PeerTransport(pub Arc<dyn Transport>);

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTransport")
    }
}

/// Connections to the other members, shared by raft's replication streams and the forwarders.
pub struct Peers {
    tls: Option<Arc<rustls::ClientConfig>>,
    conns: Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
    transport: Option<Arc<dyn Transport>>,
}

impl Peers {
    /// Peers reached with `tls` (the member certificate as client identity, the cluster CA as
    /// the only root); `None` is a member that cannot reach any peer (tests of one member).
    pub fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        transport: Option<PeerTransport>,
    ) -> Arc<Peers> {
        let tls = tls.map(|c| {
            let mut c = (*c).clone();
            c.alpn_protocols = vec![b"h2".to_vec()];
            Arc::new(c)
        });
        Arc::new(Peers {
            tls,
            conns: Mutex::new(HashMap::new()),
            transport: transport.map(|t| t.0),
        })
    }

    async fn connect(&self, addr: &str) -> Result<SendRequest<Full<Bytes>>, PeerError> {
        if let Some(c) = self.conns.lock().expect("peer map").get(addr) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let unreachable = |reason: String| PeerError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let Some(tls) = &self.tls else {
            return Err(unreachable("this member has no peer transport".into()));
        };
        let tcp =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| unreachable("connect timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']))
            .unwrap_or(addr);
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| unreachable(format!("bad peer address: {e}")))?;
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| unreachable("TLS handshake timed out".into()))?
        .map_err(|e| unreachable(format!("TLS: {e}")))?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(format!("HTTP/2: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.conns
            .lock()
            .expect("peer map")
            .insert(addr.to_string(), send.clone());
        Ok(send)
    }

    fn forget(&self, addr: &str) {
        self.conns.lock().expect("peer map").remove(addr);
    }

    /// POSTs `body` to `rpc` on the member at `addr`; the answer's body on 200.
    pub async fn call_raw(
        &self,
        addr: &str,
        rpc: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        if let Some(t) = &self.transport {
            return t.call(addr, rpc, body, timeout).await;
        }
        let failed = |reason: String| PeerError::Failed {
            addr: addr.to_string(),
            reason,
        };
        let mut send = self.connect(addr).await?;
        let req = http::Request::post(format!("https://{addr}{PEER_PATH}{rpc}"))
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| failed(e.to_string()))?;
        let exchange = async {
            let resp = send.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        let (status, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(failed(format!("{rpc} timed out after {timeout:?}"))),
            Ok(Err(e)) => {
                self.forget(addr);
                return Err(PeerError::Unreachable {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(r)) => r,
        };
        if status != http::StatusCode::OK {
            return Err(failed(format!(
                "{rpc}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        Ok(body)
    }

    /// Calls `rpc` with a postcard-encoded request and decodes the postcard answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        rpc: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let body = postcard::to_stdvec(req).map_err(|e| PeerError::Failed {
            addr: addr.to_string(),
            reason: format!("encoding {rpc}: {e}"),
        })?;
        let bytes = self.call_raw(addr, rpc, body, timeout).await?;
        postcard::from_bytes(&bytes).map_err(|e| PeerError::Failed {
            addr: addr.to_string(),
            reason: format!("decoding the answer to {rpc}: {e}"),
        })
    }
}

/// openraft's network factory over [`Peers`].
pub struct Network {
    pub(crate) peers: Arc<Peers>,
}

/// One raft replication stream's client.
pub struct PeerClient {
    target: u64,
    addr: String,
    peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

impl PeerClient {
    async fn rpc<Req, Resp, E>(
        &self,
        rpc: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<u64, E>> = self
            .peers
            .call(&self.addr, rpc, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                PeerError::Failed { .. } => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.rpc("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc("vote", &rpc, &option).await
    }
}
