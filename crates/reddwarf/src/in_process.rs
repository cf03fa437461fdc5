//! A `kube::Client` whose transport is the API server's own router: no socket, no TLS. The
//! controllers use it, so their requests pass authorization, admission, validation and raft
//! like any client's, as the controller manager.

use reddwarf_apiserver::User;
use tower::ServiceExt;

pub fn kube_client(router: axum::Router) -> kube::Client {
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let router = router.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            // managedFields name the controller manager, as upstream's do.
            parts.headers.insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static("kube-controller-manager/reddwarf"),
            );
            // Controllers never read field ownership: leave it out of what they cache.
            parts.headers.insert(
                reddwarf_apiserver::OMIT_MANAGED_FIELDS,
                http::HeaderValue::from_static("1"),
            );
            let mut req = http::Request::from_parts(parts, axum::body::Body::new(body));
            req.extensions_mut()
                .insert(User::system("system:kube-controller-manager"));
            router.oneshot(req).await
        }
    });
    kube::Client::new(service, "default")
}
