//! The in-process client: controllers call the API through the same router as external
//! clients (no socket, no TLS), so their writes are validated, versioned and watched alike.

use axum::body::Body;
use axum::Router;
use http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::User;

/// A client that sends requests straight into the API server's router, as the
/// `system:kube-controller-manager` user.
#[derive(Clone)]
pub struct InProcessClient {
    router: Router,
    user: User,
}

impl InProcessClient {
    /// A client of `router` (the API server's, from `ApiServer::router`).
    pub fn new(router: Router) -> InProcessClient {
        InProcessClient {
            router,
            user: User::system("system:kube-controller-manager"),
        }
    }

    /// The same client acting as `user` (held to what `user` may do).
    pub fn as_user(&self, user: User) -> InProcessClient {
        InProcessClient {
            router: self.router.clone(),
            user,
        }
    }

    /// One request; returns the status code and the body text.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, String)> {
        self.request_with(method, path, body, "application/json")
            .await
    }

    /// One request with a body of `content_type` (a patch type).
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> anyhow::Result<(u16, String)> {
        let body = match body {
            Some(v) => Body::from(serde_json::to_vec(v)?),
            None => Body::empty(),
        };
        let resp = self.send(method, path, body, Some(content_type)).await?;
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((code, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// One request whose answer is wanted only when it failed: a success's body is read and
    /// dropped piece by piece (a DELETE of a large collection answers with every object).
    pub async fn request_status(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let resp = self.send(method, path, Body::empty(), None).await?;
        let code = resp.status().as_u16();
        if code < 300 {
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                frame?;
            }
            return Ok((code, String::new()));
        }
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((code, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Sends one request into the router as this client's user, asking for JSON.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Body,
        content_type: Option<&str>,
    ) -> anyhow::Result<axum::response::Response> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("accept", "application/json");
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let mut req = req.body(body)?;
        req.extensions_mut().insert(self.user.clone());
        Ok(self.router.clone().oneshot(req).await?)
    }

    /// A GET; returns the status code and the body as JSON (`Null` when it is not JSON).
    pub async fn get_json(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let (code, text) = self.request("GET", path, None).await?;
        Ok((code, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Opens a watch and waits for its first event (or its end); used to sleep until
    /// something changes.
    pub async fn wait_for_change(&self, path: &str) -> anyhow::Result<()> {
        let resp = self.send("GET", path, Body::empty(), None).await?;
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if frame?.data_ref().is_some_and(|d| !d.is_empty()) {
                break;
            }
        }
        Ok(())
    }
}
