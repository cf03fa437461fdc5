//! Who is calling, and whether they may.

/// An authenticated user, attached to requests as an extension by the transport layer.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub name: String,
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
    fn allowed(
        &self,
        user: &User,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
    ) -> bool;
}

/// Every authenticated user may do everything.
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn allowed(&self, _: &User, _: &str, _: &str, _: &str, _: &str) -> bool {
        true
    }
}
