//! Everything the API server sends to a node rides that node agent's tunnel (DESIGN.md §8):
//! agents dial in to `/reddwarf/v1/tunnel` (a WebSocket, authenticated by the node's client
//! certificate), and `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward`, `pods/proxy`
//! and `nodes/proxy` become HTTP/1.1 requests sent over a fresh tunnel stream to the agent,
//! which serves them like the kubelet's API. Upgrades (exec, attach, port-forward) are answered
//! by the agent itself, so after its `101` the server only copies bytes both ways: every
//! protocol variant kubectl speaks (SPDY, WebSocket) passes through unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use hyper_util::rt::TokioIo;
use reddwarf_tunnel::{Config, Role, Session, TunnelStream};
use serde_json::Value;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

use crate::path::ResourcePath;
use crate::query::Query;
use crate::status::ApiError;
use crate::{ApiServer, User};

/// The OPEN header of a stream carrying one HTTP/1.1 exchange to the agent's node API.
pub const HTTP_STREAM: &[u8] = b"http/1.1";
/// Group every node client certificate carries.
pub const NODES_GROUP: &str = "system:nodes";
/// Prefix of a node's user name; the rest is the node name.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The tunnels of connected agents, by node name.
#[derive(Default)]
pub struct NodeTunnels {
    sessions: Mutex<HashMap<String, (u64, Session)>>,
    generation: AtomicU64,
}

impl NodeTunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Session)>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Nodes with a live tunnel.
    pub fn connected(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, (_, s))| !s.is_closed())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// A reconnecting agent replaces its old tunnel (whose streams fail with a clear error).
    fn register(&self, node: &str, session: Session) -> u64 {
        let gen = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some((_, old)) = self.lock().insert(node.to_string(), (gen, session)) {
            old.close();
        }
        gen
    }

    fn unregister(&self, node: &str, gen: u64) {
        let mut m = self.lock();
        if m.get(node).is_some_and(|(g, _)| *g == gen) {
            m.remove(node);
        }
    }

    /// A new stream to `node`'s agent.
    pub async fn dial(&self, node: &str) -> Result<TunnelStream, ApiError> {
        let session = self.lock().get(node).map(|(_, s)| s.clone());
        let session = session.filter(|s| !s.is_closed()).ok_or_else(|| {
            ApiError::internal(format!(
                "no agent is connected for node {node:?}: the node's agent has not dialled in (or its tunnel dropped)"
            ))
        })?;
        tokio::time::timeout(
            Duration::from_secs(10),
            session.open(Bytes::from_static(HTTP_STREAM)),
        )
        .await
        .map_err(|_| ApiError::internal(format!("opening a stream to node {node:?}: timed out")))?
        .map_err(|e| ApiError::internal(format!("opening a stream to node {node:?}: {e}")))
    }
}

/// The node a tunnel request comes from: only a node's own certificate may open its tunnel.
fn node_of(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

/// `GET /reddwarf/v1/tunnel` with a WebSocket upgrade: accepts an agent's tunnel.
pub fn accept_tunnel(api: &Arc<ApiServer>, parts: http::request::Parts, user: &User) -> Response {
    let Some(node) = node_of(user).map(str::to_string) else {
        return ApiError::new(
            403,
            "Forbidden",
            format!(
                "User {:?} cannot open a node tunnel: only a node's client certificate (CN={NODE_USER_PREFIX}<node>, O={NODES_GROUP}) can",
                user.name
            ),
        )
        .into_response();
    };
    let h = &parts.headers;
    let has = |name: header::HeaderName, want: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(want)))
        })
    };
    let key = h.get(header::SEC_WEBSOCKET_KEY).cloned();
    let (Some(key), true, true, Method::GET) = (
        key,
        has(header::UPGRADE, "websocket"),
        has(header::CONNECTION, "upgrade"),
        parts.method.clone(),
    ) else {
        return ApiError::bad_request(
            "the node tunnel is a WebSocket: send GET with Connection: Upgrade, Upgrade: websocket and Sec-WebSocket-Key",
        )
        .into_response();
    };
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return ApiError::bad_request("the node tunnel needs Sec-WebSocket-Version: 13")
            .into_response();
    }
    let mut req = http::Request::from_parts(parts, ());
    let upgrade = hyper::upgrade::on(&mut req);
    let api = api.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("node {node}: tunnel upgrade failed: {e}");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, None).await;
        let (session, mut incoming) = Session::new(
            reddwarf_tunnel::websocket(ws),
            Role::Listener,
            Config::default(),
        );
        let gen = api.tunnels.register(&node, session);
        tracing::info!("node {node}: agent tunnel connected");
        // Agents open no streams towards the server today; refusing them keeps the seam
        // visible. The loop ends when the tunnel does.
        while let Some((_, s)) = incoming.accept().await {
            s.reset(1, "the server accepts no streams from agents");
        }
        api.tunnels.unregister(&node, gen);
        tracing::info!("node {node}: agent tunnel closed");
    });
    let accept = derive_accept_key(key.as_bytes());
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| ApiError::internal("building the 101 response").into_response())
}

/// Whether this request is served by a node (and must keep its body and upgrade unread).
pub fn is_node_request(rp: &ResourcePath) -> bool {
    if !rp.group.is_empty() || rp.name.is_none() {
        return false;
    }
    matches!(
        (rp.resource.as_str(), rp.subresource.as_deref()),
        (
            "pods",
            Some("log" | "exec" | "attach" | "portforward" | "proxy")
        ) | ("nodes" | "services", Some("proxy"))
    )
}

/// services/proxy: a ready endpoint of the Service's port (upstream's `ResourceLocation`:
/// `name`, `name:port` or `scheme:name:port`, the port by name or number), reached through
/// the node of the pod behind it.
fn service_target(
    api: &ApiServer,
    ns: &str,
    name: &str,
) -> Result<(String, String, String), ApiError> {
    let parts: Vec<&str> = name.split(':').collect();
    let (svc, port) = match parts.as_slice() {
        [n] => (*n, ""),
        [n, p] => (*n, *p),
        [_scheme, n, p] => (*n, *p),
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid service request {name:?}"
            )))
        }
    };
    let view = api.store.read().map_err(ApiError::internal)?;
    let get = |resource: &str| -> Result<Value, ApiError> {
        let key = reddwarf_store::ObjectKey::new("", resource, ns, svc);
        let (_, bytes) = view
            .get(key.as_str())
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("", resource, svc))?;
        crate::registry::parse_stored(&bytes)
    };
    let service = get("services")?;
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let chosen = ports.iter().find(|p| {
        port.is_empty() && ports.len() == 1
            || p["name"].as_str() == Some(port)
            || p["port"].as_i64().map(|n| n.to_string()).as_deref() == Some(port)
    });
    let Some(chosen) = chosen else {
        return Err(ApiError::unavailable(format!(
            "no endpoints available for service \"{svc}\" (port {port:?} is not one of its ports)"
        )));
    };
    let port_name = chosen["name"].as_str().unwrap_or("");
    let endpoints = get("endpoints").map_err(|_| {
        ApiError::unavailable(format!("no endpoints available for service \"{svc}\""))
    })?;
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let Some(target_port) = subset["ports"].as_array().and_then(|ps| {
            ps.iter()
                .find(|p| p["name"].as_str().unwrap_or("") == port_name)
                .and_then(|p| p["port"].as_i64())
        }) else {
            continue;
        };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            let node = a["nodeName"].as_str().unwrap_or("");
            let pod = a["targetRef"]["name"].as_str().unwrap_or("");
            if !node.is_empty() && !pod.is_empty() && a["targetRef"]["kind"] == "Pod" {
                return Ok((node.to_string(), pod.to_string(), target_port.to_string()));
            }
        }
    }
    Err(ApiError::unavailable(format!(
        "no endpoints available for service \"{svc}\""
    )))
}

fn pod(api: &ApiServer, ns: &str, name: &str) -> Result<Value, ApiError> {
    let view = api.store.read().map_err(ApiError::internal)?;
    let key = reddwarf_store::ObjectKey::new("", "pods", ns, name);
    let (_, bytes) = view
        .get(key.as_str())
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    crate::registry::parse_stored(&bytes)
}

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The container a log/exec/attach request means, as upstream's `LogLocation`/`ExecLocation`
/// choose it: the named one (any of containers, initContainers, ephemeralContainers), or the
/// only container, or an error listing the choices.
fn container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let containers = names(pod, "containers");
    let inits = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            if containers
                .iter()
                .chain(&inits)
                .chain(&ephemeral)
                .any(|x| x == c)
            {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            if !ephemeral.is_empty() {
                msg.push_str(&format!(
                    " or one of the ephemeral containers: [{}]",
                    ephemeral.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// Upstream's PodLogOptions validation (422 on kind PodLogOptions), so a bad flag is answered
/// here rather than by the agent.
fn validate_log_query(q: &Query, name: &str) -> Result<(), ApiError> {
    use crate::status::Cause;
    let mut causes = Vec::new();
    for (k, min, detail) in [
        ("tailLines", 0, "must be greater than or equal to 0"),
        ("limitBytes", 1, "must be greater than 0"),
        ("sinceSeconds", 1, "must be greater than 0"),
    ] {
        if let Some(v) = q.get(k) {
            match v.parse::<i64>() {
                Ok(n) if n >= min => {}
                Ok(_) => causes.push(Cause::invalid(k, v, detail)),
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid value {v:?} for {k}: not an integer"
                    )))
                }
            }
        }
    }
    if q.get("sinceSeconds").is_some() && q.get("sinceTime").is_some() {
        causes.push(Cause::forbidden(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("", "PodLogOptions", name, causes))
    }
}

/// The query string without `container` (which moves into the path), re-encoded as sent.
fn query_without(raw: Option<&str>, drop: &str) -> String {
    let kept: Vec<&str> = raw
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(drop))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// Serves a node-bound request: finds the node, then proxies over its tunnel.
pub async fn serve(
    api: &Arc<ApiServer>,
    parts: http::request::Parts,
    body: Body,
    rp: &ResourcePath,
    query: &Query,
) -> Result<Response, ApiError> {
    let name = rp.name.clone().unwrap_or_default();
    let sub = rp.subresource.as_deref().unwrap_or("");
    let raw_query = parts.uri.query().map(str::to_string);
    let (node, path) = if rp.resource == "services" {
        let (node, pod, port) = service_target(api, &rp.namespace, &name)?;
        let q = raw_query.map(|q| format!("?{q}")).unwrap_or_default();
        (
            node,
            format!("/podProxy/{}/{pod}/{port}/{}{q}", rp.namespace, rp.rest),
        )
    } else if rp.resource == "nodes" {
        // `nodes/<name>:<port>/proxy` names the kubelet port, which is the tunnel here.
        let node = name.split(':').next().unwrap_or("").to_string();
        let q = raw_query.map(|q| format!("?{q}")).unwrap_or_default();
        (node, format!("/{}{q}", rp.rest))
    } else {
        let (pod_name, port) = match (sub, name.split_once(':')) {
            ("proxy", Some((n, p))) => (n.to_string(), p.to_string()),
            _ => (name.clone(), String::new()),
        };
        let p = pod(api, &rp.namespace, &pod_name)?;
        let node = p
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if node.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {pod_name} does not have a host assigned"
            )));
        }
        let ns = &rp.namespace;
        let phase = p
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let path = match sub {
            "log" => {
                validate_log_query(query, &pod_name)?;
                let c = container(&p, &pod_name, query.get("container"))?;
                format!(
                    "/containerLogs/{ns}/{pod_name}/{c}{}",
                    query_without(raw_query.as_deref(), "container")
                )
            }
            "exec" | "attach" => {
                if matches!(phase, "Succeeded" | "Failed") {
                    return Err(ApiError::bad_request(format!(
                        "cannot {sub} into a container in a completed pod; current phase is {phase}"
                    )));
                }
                let c = container(&p, &pod_name, query.get("container"))?;
                format!(
                    "/{sub}/{ns}/{pod_name}/{c}{}",
                    query_without(raw_query.as_deref(), "container")
                )
            }
            "portforward" => format!(
                "/portForward/{ns}/{pod_name}{}",
                raw_query.map(|q| format!("?{q}")).unwrap_or_default()
            ),
            _ => {
                // pods/proxy: the agent connects to the pod's IP on its node.
                let port = if port.is_empty() {
                    "80".to_string()
                } else {
                    port
                };
                format!(
                    "/podProxy/{ns}/{pod_name}/{port}/{}{}",
                    rp.rest,
                    raw_query.map(|q| format!("?{q}")).unwrap_or_default()
                )
            }
        };
        (node, path)
    };
    proxy(api, &node, parts, body, &path).await
}

/// Sends the request to `node`'s agent as `path` and streams the answer back; a `101` from the
/// agent joins the client's connection to the stream.
async fn proxy(
    api: &ApiServer,
    node: &str,
    parts: http::request::Parts,
    body: Body,
    path: &str,
) -> Result<Response, ApiError> {
    let stream = api.tunnels.dial(node).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ApiError::internal(format!("talking to node {node:?}: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut incoming = http::Request::from_parts(parts, body);
    let wants_upgrade = incoming.headers().contains_key(header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut incoming));
    let (parts, body) = incoming.into_parts();
    let mut out = http::Request::builder()
        .method(parts.method.clone())
        .uri(path)
        .version(http::Version::HTTP_11);
    for (k, v) in parts.headers.iter() {
        // Credentials stay here; hop-by-hop headers are rebuilt below for HTTP/1.1.
        if matches!(
            k.as_str(),
            "authorization"
                | "host"
                | "connection"
                | "upgrade"
                | "te"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
        ) {
            continue;
        }
        out = out.header(k, v);
    }
    out = out.header(header::HOST, HeaderValue::from_static("node"));
    if wants_upgrade {
        out = out.header(header::CONNECTION, "Upgrade");
        if let Some(u) = parts.headers.get(header::UPGRADE) {
            out = out.header(header::UPGRADE, u);
        }
    }
    let req = out
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("forwarding the request: {e}")))?;
    let mut resp = sender
        .send_request(req)
        .await
        .map_err(|e| ApiError::internal(format!("talking to node {node:?}: {e}")))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::internal(format!(
                "node {node:?} switched protocols on a request that asked for no upgrade"
            )));
        };
        let node_upgrade = hyper::upgrade::on(&mut resp);
        let node_name = node.to_string();
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, node_upgrade) {
                Ok((c, n)) => {
                    let mut c = TokioIo::new(c);
                    let mut n = TokioIo::new(n);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut n).await {
                        tracing::debug!("stream to node {node_name}: {e}");
                    }
                }
                Err(e) => tracing::debug!("upgrade to node {node_name}: {e}"),
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    Ok(resp.map(Body::new))
}
