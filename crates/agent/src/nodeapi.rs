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

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = http::Response<Body>;

pub fn full(code: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).map_err(|e| match e {}).boxed())
        .unwrap_or_else(|_| {
            http::Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        })
}

pub fn text(code: u16, msg: impl Into<String>) -> Resp {
    full(code, "text/plain; charset=utf-8", msg.into())
}

/// What serves the pod-facing paths (the pod manager).
pub trait PodApi: Send + Sync {
    fn serve(&self, req: http::Request<Incoming>) -> BoxFuture<'static, Resp>;
}

pub struct NodeApi {
    pub node_name: String,
    pub pods: Arc<dyn PodApi>,
}

impl NodeApi {
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
            _ => self.pods.serve(req).await,
        }
    }
}
