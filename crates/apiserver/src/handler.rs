//! The single entry point: authenticate, parse the path, read the body, dispatch.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::Method;
use http_body_util::{BodyExt, Limited};

use crate::auth::Authorizer;
use crate::codec::{self, Wanted, MAX_BODY};
use crate::path::{self, ResourcePath, Target};
use crate::query::Query;
use crate::request::{Scope, WriteOptions};
use crate::status::ApiError;
use crate::{
    discovery, health, metrics, node_proxy, openapi, openapi_v2, pod_subresources, rest, scale,
    watch, ApiServer, User,
};
use reddwarf_resources::{Backend, SubresourceRole};

pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new().fallback(dispatch).with_state(api)
}

async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(MAX_BODY))
            } else {
                Err(ApiError::bad_request(format!(
                    "reading the request body: {e}"
                )))
            }
        }
    }
}

async fn dispatch(State(api): State<Arc<ApiServer>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let target = path::parse(parts.uri.path());
    let query = Query::parse(parts.uri.query());
    // Health and version answer anyone, as upstream's system:public-info-viewer allows.
    match &target {
        Target::Version => return health::version(),
        Target::Health(p) => return health::health(&api, p, &query),
        _ => {}
    }
    let Some(user) = parts.extensions.get::<User>().cloned() else {
        return ApiError::unauthorized().into_response();
    };
    let user = match crate::auth::impersonate(&api.authorizer, &parts.headers, user) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if !matches!(
        target,
        Target::Resource(_) | Target::NotFound | Target::NodeTunnel | Target::History(_)
    ) {
        let verb = parts.method.as_str().to_ascii_lowercase();
        let attrs = crate::auth::Attributes::path(&verb, parts.uri.path());
        let decision = api.authorizer.authorize(&user, &attrs);
        if !decision.allowed {
            return attrs.forbidden(&user, &decision.reason).into_response();
        }
    }
    if target == Target::OpenApiV2 {
        return openapi_v2::serve(&api, &parts.headers);
    }
    if target == Target::Snapshot {
        if parts.method != Method::GET {
            return ApiError::method_not_allowed().into_response();
        }
        return crate::backup::serve(&api);
    }
    if let Target::History(what) = &target {
        return crate::history::serve(&api, &parts.method, what, &query, &user).await;
    }
    if let Target::Cluster(member) = &target {
        return crate::backup::cluster(&api, &parts.method, member.as_deref()).await;
    }
    if target == Target::NodeTunnel {
        return node_proxy::accept_tunnel(&api, parts, &user);
    }
    // Node-bound requests keep their body and upgrade unread: they are streamed to the node.
    if let Target::Resource(rp) = &target {
        if node_proxy::is_node_request(rp) {
            let sub = rp.subresource.as_deref().unwrap_or("");
            // Exec, attach and port-forward are creates even over a WebSocket GET (upstream's
            // AuthorizePodWebsocketUpgradeCreatePermission).
            let verb = if parts.method == Method::GET
                && !matches!(sub, "exec" | "attach" | "portforward")
            {
                "get"
            } else {
                "create"
            };
            let attrs = crate::auth::Attributes::resource(
                verb,
                "",
                &rp.resource,
                sub,
                &rp.namespace,
                rp.name.as_deref().unwrap_or(""),
            );
            let decision = api.authorizer.authorize(&user, &attrs);
            if !decision.allowed {
                return attrs.forbidden(&user, &decision.reason).into_response();
            }
            let started = std::time::Instant::now();
            let (method, headers) = (parts.method.clone(), parts.headers.clone());
            let resp = match node_proxy::serve(&api, parts, body, rp, &query).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            let code = resp.status().as_u16();
            record(&api, &method, &headers, rp, &query, code, started.elapsed());
            return resp;
        }
    }
    let wanted = match codec::negotiate(&parts.headers) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let get_only = |f: &dyn Fn() -> Response| {
        if parts.method == Method::GET {
            f()
        } else {
            ApiError::method_not_allowed().into_response()
        }
    };
    match target {
        Target::Api => get_only(&|| discovery::api(&api, wanted)),
        Target::Apis => get_only(&|| discovery::apis(&api, wanted)),
        Target::Group(g) => get_only(&|| discovery::group(&api, &g)),
        Target::GroupVersion { group, version } => {
            get_only(&|| discovery::resources(&api, &group, &version))
        }
        Target::Metrics => get_only(&|| metrics::serve(&api)),
        Target::OpenIdConfiguration => get_only(&|| {
            let advertise = api.advertise.read().map(|a| a.clone()).unwrap_or_default();
            let doc = api
                .signer()
                .discovery(&format!("https://{advertise}/openid/v1/jwks"));
            json_response("application/json", &doc)
        }),
        Target::OpenIdKeys => {
            get_only(&|| json_response("application/jwk-set+json", &api.signer().jwks()))
        }
        Target::OpenApiV3Index => get_only(&|| openapi::index(&api)),
        Target::OpenApiV3 { path } => get_only(&|| openapi::document(&api, &path)),
        Target::Resource(rp) => {
            let started = std::time::Instant::now();
            let result = resource(
                &api,
                &parts.method,
                &parts.headers,
                &rp,
                &query,
                &user,
                wanted,
                body,
            )
            .await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            let code = resp.status().as_u16();
            record(
                &api,
                &parts.method,
                &parts.headers,
                &rp,
                &query,
                code,
                started.elapsed(),
            );
            resp
        }
        Target::NotFound
        | Target::Version
        | Target::Health(_)
        | Target::OpenApiV2
        | Target::Snapshot
        | Target::Cluster(_)
        | Target::History(_)
        | Target::NodeTunnel => ApiError::path_not_found().into_response(),
    }
}

fn json_response(content_type: &'static str, doc: &serde_json::Value) -> Response {
    (
        [(http::header::CONTENT_TYPE, content_type)],
        doc.to_string(),
    )
        .into_response()
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    api: &Arc<ApiServer>,
    method: &Method,
    headers: &http::HeaderMap,
    rp: &ResourcePath,
    query: &Query,
    user: &User,
    wanted: Wanted,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let catalogue = api.catalogue();
    let kind = catalogue
        .by_resource(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(|| {
            crate::aggregation::unavailable(api, &rp.group, &rp.version)
                .unwrap_or_else(ApiError::path_not_found)
        })?;
    if !rp.namespace.is_empty() && !kind.namespaced {
        return Err(ApiError::path_not_found());
    }
    // Kinds without Go types (custom resources) have no protobuf form, as upstream's.
    let wanted = if kind.strategy.openapi_schema().is_some() {
        if codec::content_type(headers) == "application/vnd.kubernetes.protobuf" {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/merge-patch+json, application/json-patch+json",
            ));
        }
        match wanted {
            Wanted::Protobuf => codec::negotiate_with(headers, false)?,
            w => w,
        }
    } else {
        wanted
    };
    let verb = match (method.as_str(), rp.name.is_some()) {
        ("GET", false) if query.flag("watch") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    let attrs = crate::auth::Attributes::resource(
        verb,
        kind.group,
        kind.plural,
        rp.subresource.as_deref().unwrap_or(""),
        &rp.namespace,
        rp.name.as_deref().unwrap_or(""),
    );
    let decision = api.authorizer.authorize(user, &attrs);
    if !decision.allowed {
        return Err(attrs.forbidden(user, &decision.reason));
    }
    let write = match verb {
        "create" | "update" | "patch" | "delete" | "deletecollection" => {
            WriteOptions::parse(query)?
        }
        _ => WriteOptions::default(),
    };
    let scope = Scope {
        warnings: Default::default(),
        verb,
        api,
        kind,
        rp,
        query,
        headers,
        user,
        wanted,
        slim: headers.contains_key(crate::slim::OMIT_MANAGED_FIELDS),
        write,
    };
    if let Some(why) = kind.strategy.unavailable() {
        return Err(ApiError::new(503, "ServiceUnavailable", why.to_string()));
    }
    if let (Some(why), "create") = (kind.strategy.create_refused(), verb) {
        return Err(ApiError::new(405, "MethodNotAllowed", why.to_string()));
    }
    if let Some(w) = kind.strategy.deprecation() {
        scope.warn(w.to_string());
    }
    let sub = rp.subresource.as_deref();
    match sub {
        None => {}
        Some("status") if kind.status => {}
        Some("scale") if kind.scale => {}
        Some(s) => match kind.extra_subresource(s) {
            Some(x) if x.role == SubresourceRole::Handler => {
                return pod_subresources::serve(&scope, s, method, &body).await;
            }
            // pods, nodes and services proxies are served by node_proxy before this point.
            Some(x) if x.role == SubresourceRole::Proxy => return Err(proxy_unavailable(kind, rp)),
            Some(x) if x.verbs.contains(&verb) => {}
            Some(_) => return Err(ApiError::method_not_allowed()),
            None => return Err(ApiError::path_not_found()),
        },
    }
    if sub.is_none() && !kind.serves(verb) {
        return Err(ApiError::method_not_allowed());
    }
    if rp.name.is_none()
        && kind.namespaced
        && rp.namespace.is_empty()
        && !matches!(verb, "list" | "watch")
    {
        return Err(ApiError::method_not_allowed());
    }
    let result = match (kind.backend, verb) {
        // The bindings resource is the older spelling of pods/binding: it assigns, it
        // stores nothing.
        (Backend::Binding, _) => pod_subresources::bind_resource(&scope, &body).await,
        (Backend::ComponentStatuses, _) => crate::componentstatus::serve(&scope, verb),
        (Backend::Review, _) => crate::reviews::serve(&scope, &body),
        _ if sub == Some("scale") => scale::serve(&scope, verb, &body).await,
        (_, "watch") => watch::serve(&scope).await,
        (_, "list") => rest::list(&scope).await,
        (_, "get") => match rest::consistent_get(&scope).await {
            Ok(()) => rest::get(&scope),
            Err(e) => Err(e),
        },
        (_, "create") if rp.name.is_none() => rest::create(&scope, &body).await,
        (_, "update") => rest::update(&scope, &body).await,
        (_, "patch") => rest::patch(&scope, &body).await,
        (_, "delete") if sub.is_none() => rest::delete(&scope, &body).await,
        (_, "deletecollection") => rest::delete_collection(&scope, &body).await,
        _ => Err(ApiError::method_not_allowed()),
    };
    let warnings = std::mem::take(&mut *scope.warnings.lock().unwrap_or_else(|e| e.into_inner()));
    result.map(|mut resp| {
        for w in warnings {
            // RFC 7234 warn-code 299 with agent "-", as upstream sends them.
            let text = format!("299 - {}", serde_json::Value::String(w));
            if let Ok(v) = http::HeaderValue::from_str(&text) {
                resp.headers_mut().append(http::header::WARNING, v);
            }
        }
        resp
    })
}

/// Proxying to a node, pod or service rides the node agents' tunnel, which this server does
/// not have yet: say so with upstream's 503 rather than pretend.
fn proxy_unavailable(kind: &reddwarf_resources::ResourceKind, rp: &ResourcePath) -> ApiError {
    let name = rp.name.as_deref().unwrap_or("");
    ApiError::new(
        503,
        "ServiceUnavailable",
        format!(
            "{}/proxy of {} {name:?}: proxying is served through the node agents' tunnel, which is not available on this server yet",
            kind.plural, kind.singular
        ),
    )
}

/// Counts a resource request the way upstream labels it (verb LIST/WATCH/APPLY/method; scope
/// resource/namespace/cluster).
fn record(
    api: &ApiServer,
    method: &Method,
    headers: &http::HeaderMap,
    rp: &ResourcePath,
    query: &Query,
    code: u16,
    took: std::time::Duration,
) {
    let verb = match (method.as_str(), rp.name.is_some()) {
        ("GET", false) if query.flag("watch") => "WATCH",
        ("GET", false) => "LIST",
        ("PATCH", _) if codec::content_type(headers) == "application/apply-patch+yaml" => "APPLY",
        (m, _) => m,
    };
    let scope = if rp.name.is_some() {
        "resource"
    } else if !rp.namespace.is_empty() {
        "namespace"
    } else {
        "cluster"
    };
    let labels = crate::metrics::DurationLabels {
        verb: verb.into(),
        group: rp.group.clone(),
        version: rp.version.clone(),
        resource: rp.resource.clone(),
        subresource: rp.subresource.clone().unwrap_or_default(),
        scope: scope.into(),
        component: "apiserver".into(),
    };
    api.metrics.request(labels, code, took);
}
