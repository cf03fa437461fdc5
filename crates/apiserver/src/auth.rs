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
}
