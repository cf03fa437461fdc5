//! Turns a request path into what it addresses, following upstream's RequestInfo rules.

/// What a path addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Version,
    Metrics,
    Health(String),
    /// `/api` (legacy group versions).
    Api,
    /// `/apis`.
    Apis,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3 {
        path: String,
    },
    Resource(ResourcePath),
    /// The node agents' tunnel endpoint (a WebSocket upgrade).
    NodeTunnel,
    /// `/.well-known/openid-configuration` (service-account issuer discovery).
    OpenIdConfiguration,
    /// `/openid/v1/jwks` (the service-account token keys).
    OpenIdKeys,
    /// `/reddwarf/v1/snapshot`: a consistent dump of the store (online backup).
    Snapshot,
    /// `/reddwarf/v1/cluster` (status) and `/reddwarf/v1/cluster/members/<id>` (removal).
    Cluster(Option<String>),
    /// `/apis/history.reddwarf.io/v1/<what>`: the change history (log, object, list, status).
    History(String),
    NotFound,
}

/// A REST resource path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    /// Empty for cluster-scoped resources and for lists across all namespaces.
    pub namespace: String,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// What follows a `proxy` subresource (`pods/p/proxy/a/b` → `a/b`), percent-encoded as sent.
    pub rest: String,
}

pub fn parse(path: &str) -> Target {
    let mut target = parse_trimmed(path);
    // A trailing slash is part of what a proxied backend is asked for.
    if let Target::Resource(rp) = &mut target {
        if rp.subresource.as_deref() == Some("proxy") && !rp.rest.is_empty() && path.ends_with('/')
        {
            rp.rest.push('/');
        }
    }
    target
}

fn parse_trimmed(path: &str) -> Target {
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => Target::Version,
        ["metrics"] => Target::Metrics,
        [h, rest @ ..] if matches!(*h, "healthz" | "livez" | "readyz") => Target::Health(
            std::iter::once(*h)
                .chain(rest.iter().copied())
                .collect::<Vec<_>>()
                .join("/"),
        ),
        ["openapi", "v2"] => Target::OpenApiV2,
        ["openapi", "v3"] => Target::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Target::OpenApiV3 {
            path: rest.join("/"),
        },
        ["api"] => Target::Api,
        ["apis"] => Target::Apis,
        ["apis", g] => Target::Group(g.to_string()),
        ["api", v] => Target::GroupVersion {
            group: String::new(),
            version: v.to_string(),
        },
        ["apis", g, v] => Target::GroupVersion {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["apis", "history.reddwarf.io", "v1", what] => Target::History(what.to_string()),
        ["reddwarf", "v1", "tunnel"] => Target::NodeTunnel,
        [".well-known", "openid-configuration"] => Target::OpenIdConfiguration,
        ["openid", "v1", "jwks"] => Target::OpenIdKeys,
        ["reddwarf", "v1", "snapshot"] => Target::Snapshot,
        ["reddwarf", "v1", "cluster"] => Target::Cluster(None),
        ["reddwarf", "v1", "cluster", "members", id] => Target::Cluster(Some(id.to_string())),
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => Target::NotFound,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Target {
    let mut rp = ResourcePath {
        group: group.into(),
        version: version.into(),
        ..Default::default()
    };
    let mut parts = rest;
    // `/namespaces/<ns>/<resource>...` unless the third part is a namespace subresource.
    if parts.first() == Some(&"namespaces")
        && parts.len() > 2
        && !matches!(parts[2], "status" | "finalize")
    {
        rp.namespace = parts[1].to_string();
        parts = &parts[2..];
    }
    match parts {
        [r] => rp.resource = r.to_string(),
        [r, n] => {
            rp.resource = r.to_string();
            rp.name = Some(n.to_string());
        }
        [r, n, s] => {
            rp.resource = r.to_string();
            rp.name = Some(n.to_string());
            rp.subresource = Some(s.to_string());
        }
        [r, n, "proxy", rest @ ..] => {
            rp.resource = r.to_string();
            rp.name = Some(n.to_string());
            rp.subresource = Some("proxy".into());
            rp.rest = rest.join("/");
        }
        _ => return Target::NotFound,
    }
    Target::Resource(rp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(t: Target) -> ResourcePath {
        match t {
            Target::Resource(r) => r,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn proxy_keeps_the_rest_of_the_path() {
        let r = rp(parse("/api/v1/nodes/n1/proxy/stats/summary"));
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("nodes", Some("n1"), Some("proxy"))
        );
        assert_eq!(r.rest, "stats/summary");
        let r = rp(parse("/api/v1/namespaces/d/pods/web:8080/proxy/a/b/"));
        assert_eq!(
            (r.namespace.as_str(), r.name.as_deref()),
            ("d", Some("web:8080"))
        );
        assert_eq!(r.rest, "a/b/");
        let r = rp(parse("/api/v1/namespaces/d/pods/web/proxy"));
        assert_eq!(
            (r.subresource.as_deref(), r.rest.as_str()),
            (Some("proxy"), "")
        );
        assert_eq!(parse("/reddwarf/v1/tunnel"), Target::NodeTunnel);
        // Only proxy takes a tail.
        assert_eq!(
            parse("/api/v1/namespaces/d/pods/web/log/x"),
            Target::NotFound
        );
    }

    #[test]
    fn parses_resource_paths_like_upstream() {
        let r = rp(parse("/api/v1/namespaces/default/configmaps/c1"));
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name.as_deref()),
            ("default", "configmaps", Some("c1"))
        );
        let r = rp(parse("/api/v1/namespaces/foo"));
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name.as_deref()),
            ("", "namespaces", Some("foo"))
        );
        let r = rp(parse("/api/v1/namespaces/foo/status"));
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("foo"), Some("status"))
        );
        let r = rp(parse("/api/v1/namespaces/foo/finalize"));
        assert_eq!(r.subresource.as_deref(), Some("finalize"));
        let r = rp(parse("/apis/apps/v1/namespaces/d/deployments/web/scale"));
        assert_eq!(
            (r.group.as_str(), r.subresource.as_deref()),
            ("apps", Some("scale"))
        );
        let r = rp(parse("/api/v1/pods"));
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name),
            ("", "pods", None)
        );
        assert_eq!(
            parse("/apis/apps/v1"),
            Target::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(parse("/readyz/ping"), Target::Health("readyz/ping".into()));
        assert_eq!(parse("/foo"), Target::NotFound);
    }
}
