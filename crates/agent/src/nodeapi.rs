//! The node API the server reaches through the tunnel: the kubelet's paths (`/healthz`,
//! `/configz`, `/containerLogs/…`, `/exec/…`, `/attach/…`, `/portForward/…`, `/stats/summary`)
//! plus `/podProxy/<ns>/<pod>/<port>/<path>` for pods/proxy.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;

/// A response body of the node API.
pub type Body = BoxBody<Bytes, std::io::Error>;
/// A response of the node API.
pub type Resp = http::Response<Body>;

/// A response with status `code`, a `Content-Type` and a whole body.
pub fn full(code: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).map_err(|e| match e {}).boxed())
        .unwrap_or_else(|_| {
            http::Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        })
}

/// A plain-text response.
pub fn text(code: u16, msg: impl Into<String>) -> Resp {
    full(code, "text/plain; charset=utf-8", msg.into())
}

/// What serves the pod-facing paths (the pod manager).
pub trait PodApi: Send + Sync {
    /// Answers one request for a pod-facing path.
    fn serve(&self, req: http::Request<Incoming>) -> BoxFuture<'static, Resp>;
}

/// The node API (what the kubelet serves on its HTTPS port, reached here through the tunnel).
pub struct NodeApi {
    /// The node's name.
    pub node_name: String,
    /// Serves the pod-facing paths.
    pub pods: Arc<dyn PodApi>,
}

impl NodeApi {
    /// Answers `/healthz`, `/configz` and `/logs/…` itself and hands every other path to `pods`.
    pub async fn serve(&self, req: http::Request<Incoming>) -> Resp {
        match req.uri().path() {
            "/healthz" => text(200, "ok"),
            "/configz" => full(
                200,
                "application/json",
                json!({"kubeletconfig": {
                    "kind": "KubeletConfiguration",
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "nodeStatusUpdateFrequency": "10s",
                    "nodeLeaseDurationSeconds": 40,
                    "nodeStatusReportFrequency": "5m0s",
                }})
                .to_string(),
            ),
            p if p == "/logs" || p.starts_with("/logs/") => node_logs(p),
            _ => self.pods.serve(req).await,
        }
    }
}

/// `/logs/`: the node's `/var/log`, as the kubelet serves it (a listing per directory, files
/// as they are); nothing outside `/var/log` is reachable.
fn node_logs(path: &str) -> Resp {
    let root = std::path::Path::new("/var/log");
    let rel = path.trim_start_matches("/logs").trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return text(400, "invalid path");
    }
    let target = root.join(rel);
    let Ok(real) = target.canonicalize() else {
        return text(404, format!("{path}: not found"));
    };
    if !real.starts_with(root.canonicalize().unwrap_or_else(|_| root.to_path_buf())) {
        return text(403, format!("{path}: outside /var/log"));
    }
    if real.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(&real)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        if e.path().is_dir() {
                            format!("{n}/")
                        } else {
                            n
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let items: String = names
            .iter()
            .map(|n| format!("<a href=\"{n}\">{n}</a>\n"))
            .collect();
        return full(
            200,
            "text/html; charset=utf-8",
            format!("<pre>\n{items}</pre>\n"),
        );
    }
    match std::fs::read(&real) {
        Ok(b) => full(200, "text/plain; charset=utf-8", b),
        Err(e) => text(404, format!("{path}: {e}")),
    }
}
