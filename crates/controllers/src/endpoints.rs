//! The Endpoints and EndpointSlice controllers (upstream `pkg/controller/endpoint` and
//! `pkg/controller/endpointslice`): every Service with a selector gets an Endpoints object
//! of its name and EndpointSlices listing the addresses of the pods it selects, kept up to
//! date as pods come, go and change readiness. Services without a selector are left to
//! whoever writes their endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Node, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};

use crate::ownership::{controller_ref, is_controlled_by};
use crate::pod_state::is_pod_ready;
use crate::{retry_after_error, Error};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Upstream `--max-endpoints-per-slice` default.
const MAX_PER_SLICE: usize = 100;

struct EndpointsController {
    client: Client,
    /// Only the nodes' zone labels are read: their metadata is enough (a decoded Node is
    /// kilobytes, and there may be thousands).
    nodes: Store<PartialObjectMeta<Node>>,
}

/// Runs both controllers and the cleanup of deleted Services' endpoints.
pub async fn run(client: Client) {
    let (nodes, writer) = reflector::store::<PartialObjectMeta<Node>>();
    let node_feed =
        reflector::reflector(writer, crate::node_slim::names_and_labels(client.clone()))
            .default_backoff()
            .for_each(|_| async {});
    let ctx = Arc::new(EndpointsController {
        client: client.clone(),
        nodes,
    });
    tokio::join!(
        node_feed,
        run_endpoints(ctx.clone()),
        run_slices(ctx.clone()),
        cleanup_deleted(client),
    );
}

/// A pod's change concerns the Services with a selector in its namespace (whether they
/// select it now or did before a label change).
fn services_in_namespace(
    services: &Store<Service>,
    pod: &PartialObjectMeta<Pod>,
) -> Vec<ObjectRef<Service>> {
    let ns = pod.metadata.namespace.clone();
    services
        .state()
        .iter()
        .filter(|s| s.namespace() == ns && selector(s).is_some())
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

async fn run_endpoints(ctx: Arc<EndpointsController>) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    controller
        .watches(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default(),
            move |pod| services_in_namespace(&services, &pod),
        )
        // Endpoints edited or deleted by someone else are put back.
        .watches(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
            |ep| {
                ep.namespace()
                    .map(|ns| ObjectRef::<Service>::new(&ep.name_any()).within(&ns))
            },
        )
        .run(
            reconcile_endpoints,
            |_, e, _| {
                tracing::warn!("endpoint controller: {e}");
                retry_after_error()
            },
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

async fn run_slices(ctx: Arc<EndpointsController>) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    controller
        // Slices edited or deleted by someone else are put back (by the service-name label,
        // so slices that lost their owner reference are found too).
        .watches(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
            |slice| {
                let ns = slice.namespace()?;
                slice
                    .labels()
                    .get(SERVICE_NAME_LABEL)
                    .map(|svc| ObjectRef::<Service>::new(svc).within(&ns))
            },
        )
        .watches(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default(),
            move |pod| services_in_namespace(&services, &pod),
        )
        .run(
            reconcile_slices,
            |_, e, _| {
                tracing::warn!("endpointslice controller: {e}");
                retry_after_error()
            },
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// A deleted Service takes its Endpoints and EndpointSlices along (upstream's controllers
/// delete them when the Service is gone).
async fn cleanup_deleted(client: Client) {
    watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .for_each(|event| {
        let client = client.clone();
        async move {
            let Ok(watcher::Event::Delete(svc)) = event else {
                return;
            };
            if selector(&svc).is_none() {
                return;
            }
            let ns = svc.namespace().unwrap_or_default();
            let name = svc.name_any();
            let eps: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
            if let Err(e) = eps.delete(&name, &DeleteParams::default()).await {
                tracing::debug!("endpoints {ns}/{name}: {e}");
            }
            let slices: Api<EndpointSlice> = Api::namespaced(client, &ns);
            let lp = ListParams::default().labels(&format!(
                "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
            ));
            if let Ok(list) = slices.list(&lp).await {
                for s in list.items {
                    let _ = slices.delete(&s.name_any(), &DeleteParams::default()).await;
                }
            }
        }
    })
    .await;
}

fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref()
}

fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The pods a Service selects.
async fn selected_pods(ctx: &EndpointsController, svc: &Service) -> Result<Vec<Pod>, Error> {
    let Some(sel) = selector(svc) else {
        return Ok(Vec::new());
    };
    let query = sel
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut pods = Api::<Pod>::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default())
        .list(&ListParams::default().labels(&query))
        .await?
        .items;
    pods.sort_by_key(|p| p.name_any());
    Ok(pods)
}

fn pod_ip(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.clone())
        .chain(status.pod_ip.clone())
        .find(|ip| !ip.is_empty() && !ip.contains(':'))
}

/// Upstream `ShouldPodBeInEndpoints`.
fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || pod_ip(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Upstream `podutil.FindPort`: a numeric target port as is, a named one looked up among
/// the pod's container ports with the same protocol.
fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let protocol = sp.protocol.as_deref().unwrap_or("TCP");
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .chain(
                    spec.init_containers
                        .iter()
                        .flatten()
                        .filter(|c| c.restart_policy.as_deref() == Some("Always")),
                )
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

/// Upstream `ShouldSetHostname`: a pod naming this Service as its subdomain is addressable
/// by its hostname.
fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.clone().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then_some(host)
}

fn service_ports(svc: &Service) -> Vec<ServicePort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
}

/// The labels endpoints objects carry: the Service's, and the headless marker.
fn endpoint_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// A set of ports, as (name, port, protocol), sorted: the key addresses are grouped by.
type PortKey = Vec<(String, i32, String)>;
/// A subset being built: its ports, ready and not-ready addresses.
type SubsetParts = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// Upstream `syncService` + `RepackSubsets`: addresses grouped by the ports they serve.
fn desired_subsets(svc: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let tolerate_unready = publish_not_ready(svc);
    let ports = service_ports(svc);
    // Port set (sorted) -> (ready, not ready) addresses.
    let mut groups: BTreeMap<PortKey, SubsetParts> = BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let addr = EndpointAddress {
            ip,
            hostname: hostname(pod, svc),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(pod_ref(pod)),
        };
        let mut eps: Vec<EndpointPort> = Vec::new();
        for sp in &ports {
            if let Some(port) = find_port(pod, sp) {
                eps.push(EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()).filter(|n| !n.is_empty()),
                    port,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                });
            }
        }
        if !ports.is_empty() && eps.is_empty() {
            // No port resolves on this pod: it serves nothing of this Service.
            continue;
        }
        eps.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = eps
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        let group = groups
            .entry(key)
            .or_insert_with(|| (eps, Vec::new(), Vec::new()));
        if tolerate_unready || is_pod_ready(pod) {
            group.1.push(addr);
        } else {
            group.2.push(addr);
        }
    }
    let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
        (&a.ip, a.target_ref.as_ref().and_then(|r| r.uid.as_ref()))
            .cmp(&(&b.ip, b.target_ref.as_ref().and_then(|r| r.uid.as_ref())))
    };
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

async fn reconcile_endpoints(
    svc: Arc<Service>,
    ctx: Arc<EndpointsController>,
) -> Result<Action, Error> {
    if selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let pods = selected_pods(&ctx, &svc).await?;
    let subsets = desired_subsets(&svc, &pods);
    let labels = endpoint_labels(&svc);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = api.get_opt(&name).await?;
    let have_subsets = existing
        .as_ref()
        .map(|e| e.subsets.clone().unwrap_or_default());
    if let Some(e) = &existing {
        if have_subsets.as_ref() == Some(&subsets) && e.labels() == &labels {
            return Ok(Action::await_change());
        }
    }
    let mut annotations = existing
        .as_ref()
        .and_then(|e| e.metadata.annotations.clone())
        .unwrap_or_default();
    annotations.remove("endpoints.kubernetes.io/over-capacity");
    annotations.insert(TRIGGER_TIME.into(), Timestamp::now().to_string());
    let ep = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns),
            labels: Some(labels),
            annotations: Some(annotations),
            resource_version: existing.as_ref().and_then(|e| e.resource_version()),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    let res = if existing.is_some() {
        api.replace(&name, &PostParams::default(), &ep).await
    } else {
        api.create(&PostParams::default(), &ep).await
    };
    match res {
        Ok(_) => {}
        // Someone wrote meanwhile: the watch brings us back.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// One pod as a slice endpoint (upstream `podToEndpoint`).
fn slice_endpoint(ctx: &EndpointsController, svc: &Service, pod: &Pod, ip: String) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready(svc) || (serving && !terminating);
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node_name.as_ref().and_then(|n| {
        ctx.nodes
            .get(&ObjectRef::new(n))
            .and_then(|node| node.labels().get(ZONE_LABEL).cloned())
            .filter(|z| !z.is_empty())
    });
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(pod, svc),
        node_name,
        target_ref: Some(pod_ref(pod)),
        zone,
        ..Default::default()
    }
}

fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = endpoint_labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

/// Endpoints grouped by the ports they serve, each group cut into slices.
fn desired_slices(
    ctx: &EndpointsController,
    svc: &Service,
    pods: &[Pod],
) -> Vec<(Vec<SlicePort>, Vec<Endpoint>)> {
    let ports = service_ports(svc);
    let mut groups: BTreeMap<PortKey, (Vec<SlicePort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let sps: Vec<SlicePort> = ports
            .iter()
            .filter_map(|sp| {
                find_port(pod, sp).map(|port| SlicePort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(port),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        let key = sps
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port.unwrap_or(0),
                    p.protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        groups
            .entry(key)
            .or_insert_with(|| (sps, Vec::new()))
            .1
            .push(slice_endpoint(ctx, svc, pod, ip));
    }
    let mut out = Vec::new();
    for (_, (ports, mut eps)) in groups {
        eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        for chunk in eps.chunks(MAX_PER_SLICE) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    if out.is_empty() {
        // Upstream keeps one placeholder slice for a Service without endpoints.
        out.push((Vec::new(), Vec::new()));
    }
    out
}

async fn reconcile_slices(
    svc: Arc<Service>,
    ctx: Arc<EndpointsController>,
) -> Result<Action, Error> {
    if selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let uid = svc.uid().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = api
        .list(&ListParams::default().labels(&format!(
            "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        )))
        .await?
        .items;
    let (mut ours, stale): (Vec<EndpointSlice>, Vec<EndpointSlice>) = existing
        .into_iter()
        .partition(|s| is_controlled_by(&s.metadata, &uid) && s.address_type == "IPv4");
    ours.sort_by_key(|s| s.name_any());
    let pods = selected_pods(&ctx, &svc).await?;
    let labels = slice_labels(&svc);
    // Reuse slices serving the same ports, in name order.
    let mut by_ports: HashMap<String, Vec<EndpointSlice>> = HashMap::new();
    for s in ours {
        let key = serde_json::to_string(&s.ports.clone().unwrap_or_default()).unwrap_or_default();
        by_ports.entry(key).or_default().push(s);
    }
    for (ports, endpoints) in desired_slices(&ctx, &svc, &pods) {
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let reuse = by_ports
            .get_mut(&key)
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)));
        let ports = (!ports.is_empty()).then_some(ports);
        match reuse {
            Some(s) if s.endpoints == endpoints && s.ports == ports && s.labels() == &labels => {}
            Some(mut s) => {
                s.endpoints = endpoints;
                s.ports = ports;
                s.metadata.labels = Some(labels.clone());
                s.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(TRIGGER_TIME.into(), Timestamp::now().to_string());
                match api.replace(&s.name_any(), &PostParams::default(), &s).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(slice_prefix(&name)),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        annotations: Some(BTreeMap::from([(
                            TRIGGER_TIME.to_string(),
                            Timestamp::now().to_string(),
                        )])),
                        owner_references: Some(vec![controller_ref(&*svc)]),
                        ..Default::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints,
                    ports,
                };
                api.create(&PostParams::default(), &slice).await?;
            }
        }
    }
    for s in by_ports.into_values().flatten().chain(stale) {
        match api.delete(&s.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

/// Upstream `getEndpointSlicePrefix`: `<service>-` (Service names are DNS labels, so the
/// prefix is always a valid generateName).
fn slice_prefix(service: &str) -> String {
    format!("{service}-")
}
