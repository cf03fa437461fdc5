//! The strategies of the built-in kinds that need more than defaults and validation
//! (upstream's `pkg/registry/<group>/<kind>/strategy.go`). The others use [`Basic`] in their
//! catalogue entry.

use serde_json::{json, Value};

use crate::strategy::{meta_mut, reset_for_update, Claims, DefaultGcPolicy, Requester, Strategy};
use crate::validation::{self, FieldError};
use crate::{defaults, label_set_string, ResourceKind};

/// A strategy's `defaults` and `validate`, delegated to the kind's functions.
macro_rules! defaults_and_validation {
    ($defaults:path, $validate:path) => {
        fn defaults(&self, obj: &mut Value) {
            $defaults(obj)
        }

        fn validate(&self, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
            $validate(obj, old, errs)
        }
    };
}

/// Pods: graceful deletion (a pod on a node gets its grace period, so its kubelet can stop
/// it and then delete it) and the rules of ephemeral containers.
pub(crate) struct PodStrategy;

impl Strategy for PodStrategy {
    defaults_and_validation!(defaults::pod, validation::pod);

    fn validate_part(&self, pointer: &str, obj: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        if pointer == "/spec/ephemeralContainers" {
            validation::pod_ephemeral_containers(obj, old, errs)
        }
    }

    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> i64 {
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        if !bound || finished {
            return 0;
        }
        requested
            .unwrap_or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            })
            .max(0)
    }
}

/// Replication controllers: their `/scale` reports the selector as a plain label set.
pub(crate) struct ReplicationControllerStrategy;

impl Strategy for ReplicationControllerStrategy {
    defaults_and_validation!(
        defaults::replication_controller,
        validation::replication_controller
    );

    fn scale_selector(&self, obj: &Value) -> String {
        obj.pointer("/spec/selector")
            .map(label_set_string)
            .unwrap_or_default()
    }
}

/// Services hold their cluster IPs and node ports exclusively.
pub(crate) struct ServiceStrategy;

impl Strategy for ServiceStrategy {
    defaults_and_validation!(defaults::service, validation::service);

    fn claims(&self) -> Claims {
        Claims::ServiceAddresses
    }
}

/// Namespaces: deletion waits for `spec.finalizers` (written through `/finalize`) and
/// shows the phase Terminating meanwhile.
pub(crate) struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    defaults_and_validation!(defaults::namespace, validation::namespace);

    fn prepare_for_update(
        &self,
        kind: &ResourceKind,
        new: Value,
        old: &Value,
        sub: Option<&str>,
    ) -> Value {
        if sub != Some("finalize") {
            return reset_for_update(kind, new, old, sub);
        }
        // Only spec.finalizers changes through /finalize; none written means none left.
        let mut merged = old.clone();
        let f = new
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(json!([]));
        if !merged.get("spec").is_some_and(Value::is_object) {
            merged["spec"] = json!({});
        }
        merged["spec"]["finalizers"] = f;
        merged
    }

    fn finalizing(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }

    fn begin_delete(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Terminating"});
    }
}

/// Deployments: upstream's status strategy resets only spec and labels, so the deployment
/// controller records the revision annotation through `/status`.
pub(crate) struct DeploymentStrategy;

impl Strategy for DeploymentStrategy {
    defaults_and_validation!(defaults::deployment, validation::deployment);

    fn prepare_for_update(
        &self,
        kind: &ResourceKind,
        new: Value,
        old: &Value,
        sub: Option<&str>,
    ) -> Value {
        let annotations = new.pointer("/metadata/annotations").cloned();
        let mut out = reset_for_update(kind, new, old, sub);
        if sub == Some("status") {
            match annotations {
                Some(a) => {
                    meta_mut(&mut out).insert("annotations".into(), a);
                }
                None => {
                    meta_mut(&mut out).remove("annotations");
                }
            }
        }
        out
    }
}

/// Where apps/v1 DaemonSets keep upstream's `spec.templateGeneration`.
const DS_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// DaemonSets count changes of their pod template (templateGeneration, starting at 1);
/// clients may not set it.
pub(crate) struct DaemonSetStrategy;

impl Strategy for DaemonSetStrategy {
    defaults_and_validation!(defaults::daemon_set, validation::daemon_set);

    fn prepare_for_create(&self, obj: &mut Value, _: &Requester<'_>) {
        let annotations = meta_mut(obj)
            .entry("annotations")
            .or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(DS_TEMPLATE_GENERATION.into(), json!("1"));
        }
    }

    fn prepare_for_update(
        &self,
        kind: &ResourceKind,
        new: Value,
        old: &Value,
        sub: Option<&str>,
    ) -> Value {
        let mut new = reset_for_update(kind, new, old, sub);
        if sub.is_some() {
            return new;
        }
        let mut tg = old
            .pointer(&format!(
                "/metadata/annotations/{}",
                DS_TEMPLATE_GENERATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if old.pointer("/spec/template") != new.pointer("/spec/template") {
            tg += 1;
        }
        let m = meta_mut(&mut new);
        if tg > 0 {
            let annotations = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(DS_TEMPLATE_GENERATION.into(), json!(tg.to_string()));
            }
        } else if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(DS_TEMPLATE_GENERATION);
        }
        new
    }
}

/// batch/v1 Jobs keep their pods when a DELETE names no policy (upstream's
/// `DefaultGarbageCollectionPolicy`, kept for compatibility; kubectl always sends one).
pub(crate) struct JobStrategy;

impl Strategy for JobStrategy {
    defaults_and_validation!(defaults::job, validation::job);

    fn default_gc_policy(&self) -> Option<DefaultGcPolicy> {
        Some(DefaultGcPolicy {
            policy: "Orphan",
            warning: "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning",
        })
    }
}

/// CertificateSigningRequests: the requester is who sent it, whatever the body says; the
/// conditions written through `/approval` and `/status` have rules of their own.
pub(crate) struct CsrStrategy;

impl Strategy for CsrStrategy {
    fn prepare_for_create(&self, obj: &mut Value, requester: &Requester<'_>) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("username".into(), json!(requester.name));
            spec.insert("groups".into(), json!(requester.groups));
            spec.remove("uid");
            spec.remove("extra");
        }
    }

    fn validate_part(&self, _: &str, obj: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        validation::csr_conditions(obj, old, errs)
    }
}
