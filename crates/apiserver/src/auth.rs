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
