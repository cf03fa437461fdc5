//! The root CA publisher: every namespace holds a `kube-root-ca.crt` ConfigMap with the
//! cluster CA (`ca.crt`), kept equal to it, as upstream's root-ca-cert-publisher does.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::{retry_after_error, Error};

const NAME: &str = "kube-root-ca.crt";

struct RootCaController {
    client: Client,
    pem: String,
}

pub async fn run(client: Client, pem: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let maps: Api<ConfigMap> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            maps,
            watcher::Config::default().fields(&format!("metadata.name={NAME}")),
            |cm| cm.namespace().map(|ns| ObjectRef::new(&ns)),
        )
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("root-ca-cert-publisher: {e}");
                retry_after_error()
            },
            Arc::new(RootCaController { client, pem }),
        )
        .for_each(|_| async {})
        .await;
}

fn wanted(pem: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("ca.crt".to_string(), pem.to_string())])
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<RootCaController>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    match api.get_opt(NAME).await? {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/description".to_string(),
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(wanted(&ctx.pem)),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(mut cm) if cm.data.as_ref() != Some(&wanted(&ctx.pem)) => {
            cm.data = Some(wanted(&ctx.pem));
            cm.binary_data = None;
            match api.replace(NAME, &PostParams::default(), &cm).await {
                Ok(_) => {}
                // Someone changed it meanwhile: the watch brings us back.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(_) => {}
    }
    Ok(Action::await_change())
}
