//! Nodes as the controllers that keep all of them (the scheduler, node lifecycle, node IPAM)
//! hold them: the fields they read and no more. A decoded Node is kilobytes, most of it
//! managedFields (a tree of JSON values per manager) and status the kubelet reports for
//! people (images, nodeInfo, addresses); with three keepers, thousands of nodes cost tens of
//! MiB for fields nobody here looks at.

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Client};

/// Keeps metadata (without managedFields and annotations), the whole spec, and of the status
/// the conditions, capacity and allocatable. A keeper that needs more must read the Node
/// from the API or change this.
pub fn slim(mut n: Node) -> Node {
    n.metadata.managed_fields = None;
    n.metadata.annotations = None;
    if let Some(s) = n.status.take() {
        n.status = Some(NodeStatus {
            conditions: s.conditions,
            capacity: s.capacity,
            allocatable: s.allocatable,
            ..Default::default()
        });
    }
    n
}

/// A watch of every Node's metadata, for keepers that read only names and labels: without
/// managedFields and annotations, which are most of a Node's metadata.
pub fn names_and_labels(
    client: Client,
) -> impl Stream<Item = Result<watcher::Event<PartialObjectMeta<Node>>, watcher::Error>> {
    watcher(
        Api::<PartialObjectMeta<Node>>::all(client),
        watcher::Config::default(),
    )
    .map_ok(|e| {
        e.modify(|n| {
            n.metadata.managed_fields = None;
            n.metadata.annotations = None;
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerImage, NodeCondition, NodeSpec, Taint};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn slim_keeps_what_the_keepers_read() {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.metadata.uid = Some("u".into());
        n.metadata.labels = Some([("zone".to_string(), "a".to_string())].into());
        n.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        n.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        n.spec = Some(NodeSpec {
            pod_cidr: Some("10.42.0.0/24".into()),
            taints: Some(vec![Taint {
                key: "k".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            unschedulable: Some(true),
            ..Default::default()
        });
        let alloc = [("cpu".to_string(), Quantity("4".into()))].into();
        n.status = Some(NodeStatus {
            allocatable: Some(alloc),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            images: Some(vec![ContainerImage::default()]),
            ..Default::default()
        });
        let s = slim(n.clone());
        assert_eq!(s.metadata.name, n.metadata.name);
        assert_eq!(s.metadata.uid, n.metadata.uid);
        assert_eq!(s.metadata.labels, n.metadata.labels);
        assert_eq!(s.spec, n.spec);
        let (st, nt) = (s.status.unwrap(), n.status.unwrap());
        assert_eq!(st.allocatable, nt.allocatable);
        assert_eq!(st.conditions, nt.conditions);
        assert!(st.images.is_none());
        assert!(s.metadata.managed_fields.is_none());
        assert!(s.metadata.annotations.is_none());
    }
}
