/// Where an object lives in the objects table: `<group>/<resource>/<namespace>/<name>`, with
/// `core` for the legacy group and an empty namespace segment for cluster-scoped objects.
/// Keys sort so that one resource, and one namespace of it, is a contiguous range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key of object `name` of `resource` in `group` (`""` is the legacy core group) and `namespace` (`""` when cluster-scoped).
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey(format!(
            "{}/{}/{}/{}",
            Self::group_seg(group),
            resource,
            namespace,
            name
        ))
    }

    fn group_seg(group: &str) -> &str {
        if group.is_empty() {
            "core"
        } else {
            group
        }
    }

    /// The key prefix of every object of a resource (all namespaces).
    pub fn resource_prefix(group: &str, resource: &str) -> String {
        format!("{}/{}/", Self::group_seg(group), resource)
    }

    /// The key prefix of a resource's objects in one namespace (or cluster-scoped when "").
    pub fn namespace_prefix(group: &str, resource: &str, namespace: &str) -> String {
        format!("{}/{}/{}/", Self::group_seg(group), resource, namespace)
    }

    /// Wraps a string that already has the key's shape (e.g. read back from the table).
    pub fn from_string(s: String) -> ObjectKey {
        ObjectKey(s)
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parts(&self) -> [&str; 4] {
        let mut it = self.0.splitn(4, '/');
        let mut out = [""; 4];
        for slot in out.iter_mut() {
            *slot = it.next().unwrap_or("");
        }
        out
    }

    /// The API group (empty for the legacy core group, stored as `core`).
    pub fn group(&self) -> &str {
        match self.parts()[0] {
            "core" => "",
            g => g,
        }
    }

    /// The namespace segment (empty for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        self.parts()[2]
    }

    /// The object's name segment.
    pub fn name(&self) -> &str {
        self.parts()[3]
    }

    /// The resource segment (plural, e.g. `pods`).
    pub fn resource(&self) -> &str {
        self.parts()[1]
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_by_resource_and_namespace() {
        let k = ObjectKey::new("", "configmaps", "default", "a");
        assert_eq!(k.as_str(), "core/configmaps/default/a");
        assert!(k
            .as_str()
            .starts_with(&ObjectKey::namespace_prefix("", "configmaps", "default")));
        assert_eq!(k.namespace(), "default");
        assert_eq!(k.name(), "a");
        let ns = ObjectKey::new("", "namespaces", "", "kube-system");
        assert_eq!(ns.namespace(), "");
        assert_eq!(ns.name(), "kube-system");
        assert_eq!(ns.resource(), "namespaces");
    }
}
