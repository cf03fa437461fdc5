//! The ServiceAccount controller: every namespace that is not being deleted has a `default`
//! ServiceAccount; deleting it brings it back, as upstream's controller does.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::{retry_after_error, Error};

const NAME: &str = "default";

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        // A deleted default account wakes its namespace up.
        .watches(
            accounts,
            watcher::Config::default().fields(&format!("metadata.name={NAME}")),
            |sa| sa.namespace().map(|ns| ObjectRef::new(&ns)),
        )
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("serviceaccount controller: {e}");
                retry_after_error()
            },
            Arc::new(client),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced((*client).clone(), &ns.name_any());
    if api.get_opt(NAME).await?.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(NAME.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            // Already there (a concurrent create), or the namespace started terminating.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}
