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
    /// The identity of the server's own controllers.
    pub fn system(name: &str) -> User {
        User {
            name: name.into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }
}

/// Decides whether a user may perform a verb on a resource. RBAC arrives later; the seam is here.
pub trait Authorizer: Send + Sync {
    /// Whether `user` may `verb` (`get`, `create`, ...) `resource` of `group` in `namespace`
    /// (empty for cluster-scoped requests).
    fn allowed(
        &self,
        user: &User,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
    ) -> bool;

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
        if authorizer.allowed(&requester, "impersonate", group, resource, namespace) {
            return Ok(());
        }
        Err(crate::ApiError::forbidden(
            group,
            resource,
            value,
            &format!(
                "User {:?} cannot impersonate resource {resource:?} in API group {group:?} {}",
                requester.name,
                if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {namespace:?}")
                }
            ),
        ))
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

/// Every authenticated user may do everything (RBAC arrives later), except bootstrapping
/// agents: holders of the node token may only ask for (and read) certificate signing requests,
/// as upstream's `system:node-bootstrapper` role allows.
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn allowed(&self, user: &User, verb: &str, group: &str, resource: &str, _: &str) -> bool {
        if user.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP) {
            return group == "certificates.k8s.io"
                && resource == "certificatesigningrequests"
                && matches!(verb, "create" | "get" | "list" | "watch");
        }
        true
    }

    fn rules(&self, user: &User, _: &str) -> Rules {
        use serde_json::json;
        if user.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP) {
            return Rules {
                resource: vec![json!({"verbs": ["create", "get", "list", "watch"],
                    "apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"]})],
                non_resource: Vec::new(),
            };
        }
        Rules {
            resource: vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            non_resource: vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        }
    }
}
