//! Who is calling, and whether they may.

/// An authenticated user, attached to requests as an extension by the transport layer.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// The user name, from the client certificate or bearer token (`system:...` for the
    /// server's own components).
    pub name: String,
    /// The groups the user belongs to (`system:authenticated` among them).
    pub groups: Vec<String>,
}

impl User {
    /// A member of `system:masters`: allowed everything (the admin kubeconfig, tests).
    pub fn system(name: &str) -> User {
        User {
            name: name.into(),
            groups: vec![MASTERS_GROUP.into(), "system:authenticated".into()],
        }
    }

    /// An authenticated user with no groups of its own (a component acting as its upstream
    /// identity, held to what RBAC grants it).
    pub fn named(name: &str) -> User {
        User {
            name: name.into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    /// A service account's identity, with the groups upstream's token authenticator gives it.
    pub fn service_account(namespace: &str, name: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// A request without credentials, as upstream's anonymous authenticator names it.
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// Whether the user belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a request asks to do, as upstream's authorizer attributes: a resource request
/// (verb, API group, resource, subresource, namespace, name) or a non-resource one (verb, path).
#[derive(Clone, Copy, Debug, Default)]
pub struct Attributes<'a> {
    /// `get`, `list`, `create`, ... (`impersonate`, `bind`, `escalate` for the special verbs).
    pub verb: &'a str,
    /// The API group (empty for the core group).
    pub group: &'a str,
    /// The resource's plural name.
    pub resource: &'a str,
    /// The subresource (`status`, `exec`, ...), empty for the resource itself.
    pub subresource: &'a str,
    /// The namespace; empty for cluster-scoped requests.
    pub namespace: &'a str,
    /// The object's name; empty for lists and creates without one.
    pub name: &'a str,
    /// The URL path of a non-resource request (`/api`, `/healthz`); `None` for resources.
    pub path: Option<&'a str>,
}

impl<'a> Attributes<'a> {
    /// A resource request.
    pub fn resource(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        subresource: &'a str,
        namespace: &'a str,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
            path: None,
        }
    }

    /// A non-resource request.
    pub fn path(verb: &'a str, path: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            path: Some(path),
            ..Attributes::default()
        }
    }

    /// The 403 upstream answers when `user` may not do this, worded as kube-apiserver's
    /// (`pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the
    /// namespace "ns"`), with `reason` appended when an authorizer gave one.
    pub fn forbidden(&self, user: &User, reason: &str) -> crate::ApiError {
        let mut why = match self.path {
            Some(path) => format!("User {:?} cannot {} path {:?}", user.name, self.verb, path),
            None => {
                let resource = if self.subresource.is_empty() {
                    self.resource.to_string()
                } else {
                    format!("{}/{}", self.resource, self.subresource)
                };
                let scope = if self.namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {:?}", self.namespace)
                };
                format!(
                    "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                    user.name, self.verb, self.group
                )
            }
        };
        if !reason.is_empty() {
            why.push_str(": ");
            why.push_str(reason);
        }
        if self.path.is_some() || self.resource.is_empty() {
            return crate::ApiError::new(403, "Forbidden", format!("forbidden: {why}"))
                .with_details(serde_json::json!({}));
        }
        crate::ApiError::forbidden_named(self.group, self.resource, self.name, &why)
    }
}

/// An authorizer's answer: allowed or not, and why (SubjectAccessReview's `reason`, the 403's
/// suffix).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why; empty when there is nothing to say.
    pub reason: String,
}

impl Decision {
    /// Allowed, for `reason`.
    pub fn allow(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: true,
            reason: reason.into(),
        }
    }

    /// Not allowed, for `reason`.
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            reason: reason.into(),
        }
    }
}

/// Decides whether a user may do what a request asks.
pub trait Authorizer: Send + Sync {
    /// Whether `user` may do what `attrs` describe.
    fn authorize(&self, user: &User, attrs: &Attributes<'_>) -> Decision;

    /// Shorthand for `authorize(..).allowed`.
    fn allowed(&self, user: &User, attrs: &Attributes<'_>) -> bool {
        self.authorize(user, attrs).allowed
    }

    /// The rules `user` has in `namespace` (SelfSubjectRulesReview).
    fn rules(&self, user: &User, namespace: &str) -> Rules;
}

/// Resolves a bearer token to its user (the server's token sources: the token file, the node
/// token), for TokenReview.
pub trait TokenAuthenticator: Send + Sync {
    /// The user `token` authenticates, if any.
    fn authenticate_token(&self, token: &str) -> Option<User>;
}

/// What a user may do, as SelfSubjectRulesReview reports it: resource rules
/// (`verbs`, `apiGroups`, `resources`) and non-resource rules (`verbs`, `nonResourceURLs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    /// `{verbs, apiGroups, resources}` objects.
    pub resource: Vec<serde_json::Value>,
    /// `{verbs, nonResourceURLs}` objects.
    pub non_resource: Vec<serde_json::Value>,
}

/// Upstream's impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the
/// `Impersonate-User` and `Impersonate-Group` headers make the request act as another user,
/// when the requester may `impersonate` that user and each group. Without the headers the
/// requester is returned as is.
pub fn impersonate(
    authorizer: &dyn Authorizer,
    headers: &http::HeaderMap,
    requester: User,
) -> Result<User, crate::ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(String::from)
            .collect()
    };
    let user = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid");
    let Some(name) = user else {
        if !groups.is_empty() || !uid.is_empty() {
            return Err(crate::ApiError::bad_request(format!(
                "requested {} without impersonating a user",
                if groups.is_empty() { "a uid" } else { "groups" }
            )));
        }
        return Ok(requester);
    };
    let check = |group: &str, resource: &str, value: &str, namespace: &str| {
        let attrs = Attributes::resource("impersonate", group, resource, "", namespace, value);
        let decision = authorizer.authorize(&requester, &attrs);
        if decision.allowed {
            return Ok(());
        }
        Err(attrs.forbidden(&requester, &decision.reason))
    };
    let service_account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'));
    match service_account {
        Some((ns, sa)) => check("", "serviceaccounts", sa, ns)?,
        None => check("", "users", &name, "")?,
    }
    for g in &groups {
        check("", "groups", g, "")?;
    }
    for u in &uid {
        check("authentication.k8s.io", "uids", u, "")?;
    }
    let mut out_groups = groups;
    if let Some((ns, _)) = service_account {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ] {
            if !out_groups.contains(&g) {
                out_groups.push(g);
            }
        }
    }
    if name != "system:anonymous" && !out_groups.iter().any(|g| g == "system:authenticated") {
        out_groups.push("system:authenticated".into());
    }
    Ok(User {
        name,
        groups: out_groups,
    })
}

/// Group of agents that authenticated with the node token and have no certificate yet.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

/// The group whose members may do anything, before any other authorizer is asked (upstream's
/// privileged-group authorizer).
pub const MASTERS_GROUP: &str = "system:masters";

/// The server's authorizers in upstream's order (`--authorization-mode=Node,RBAC` behind the
/// privileged-group check): `system:masters` may do anything; an agent is judged by the Node
/// authorizer, which may allow or refuse; everyone else (and what the Node authorizer has
/// no opinion on) by RBAC.
pub struct Chain {
    /// The RBAC index.
    pub rbac: std::sync::Arc<crate::rbac::Rbac>,
    /// The Node authorizer.
    pub node: crate::node_authz::NodeAuthorizer,
}

impl Authorizer for Chain {
    fn authorize(&self, user: &User, attrs: &Attributes<'_>) -> Decision {
        if user.in_group(MASTERS_GROUP) {
            return Decision::allow("");
        }
        let node_reason = match self.node.authorize(user, attrs) {
            Some(d) if d.allowed => return d,
            Some(d) => d.reason,
            None => String::new(),
        };
        let d = self.rbac.authorize(user, attrs);
        if d.allowed || node_reason.is_empty() {
            return d;
        }
        Decision::deny(node_reason)
    }

    fn rules(&self, user: &User, namespace: &str) -> Rules {
        if user.in_group(MASTERS_GROUP) {
            use serde_json::json;
            return Rules {
                resource: vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
                non_resource: vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
            };
        }
        let mut out = Rules::default();
        for r in self.rbac.rules_for(user, namespace) {
            if r.non_resource_urls.is_empty() {
                out.resource.push(r.to_value());
            } else {
                out.non_resource.push(r.to_value());
            }
        }
        out
    }
}
