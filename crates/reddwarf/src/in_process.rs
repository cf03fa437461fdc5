//! A `kube::Client` whose transport is the API server's own router: no socket, no TLS. The
//! controllers use it, so their requests pass authorization, admission, validation and raft
//! like any client's, each as its own upstream identity.

use reddwarf_apiserver::User;
use tower::ServiceExt;

/// The user controller `name` acts as: its upstream service account (or
/// `system:kube-scheduler`), held to its bootstrap role; the control plane itself for
/// reddwarf's own components.
pub fn controller_user(name: &str) -> User {
    match reddwarf_controllers::identity(name) {
        Some(user) if user.starts_with("system:") => User::named(user),
        Some(account) => User::service_account("kube-system", account),
        None => User::system("system:kube-controller-manager"),
    }
}

/// A client of `router` acting as `user`. As upstream's controller manager with
/// `--use-service-account-credentials`, reads go as the manager itself
/// (`system:kube-controller-manager`: upstream's informers list and watch everything with it,
/// and its controllers read from those caches; ours also read single objects live, which the
/// `reddwarf:controller-manager:reads` binding allows it) and every write as the
/// controller's own account, held to its bootstrap role.
pub fn kube_client(router: axum::Router, user: User) -> kube::Client {
    let informer = if user.name.starts_with("system:serviceaccount:kube-system:") {
        User::named("system:kube-controller-manager")
    } else {
        user.clone()
    };
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let router = router.clone();
        let user = if req.method() == http::Method::GET {
            informer.clone()
        } else {
            user.clone()
        };
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
            req.extensions_mut().insert(user);
            router.oneshot(req).await
        }
    });
    kube::Client::new(service, "default")
}
