//! Pod status as the kubelet reports it: phase, conditions, container statuses, IPs, QoS.

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::worker::{CState, Waiting};

/// A timestamp as Kubernetes writes one: RFC 3339, seconds, UTC.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// upstream's `GetPodQOS`.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.as_ref();
        let limits = r.and_then(|r| r.limits.as_ref());
        let requests = r.and_then(|r| r.requests.as_ref());
        for res in ["cpu", "memory"] {
            let l = limits.and_then(|l| l.get(res));
            let q = requests.and_then(|q| q.get(res)).or(l);
            if l.is_some() || q.is_some() {
                any = true;
            }
            match (l, q) {
                (Some(l), Some(q)) if l == q => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// One container's status object.
pub fn container_status(c: &Container, s: &CState, image_fallback: &str) -> Value {
    let state = if let Some(r) = &s.running {
        json!({"running": {"startedAt": rfc3339(r.started_at)}})
    } else if let Some(w) = &s.waiting {
        waiting(w)
    } else if let Some(t) = &s.terminated {
        t.to_json()
    } else {
        json!({"waiting": {"reason": "ContainerCreating"}})
    };
    let mut v = json!({
        "name": c.name,
        "state": state,
        "lastState": s.last_terminated.as_ref().map(|t| t.to_json()).unwrap_or(json!({})),
        "ready": s.running.is_some() && s.ready,
        "restartCount": s.restart_count,
        "image": c.image.clone().unwrap_or_else(|| image_fallback.to_string()),
        "imageID": s.image_id.clone().unwrap_or_default(),
        "started": s.running.is_some() && s.started,
    });
    if let Some(id) = s
        .running
        .as_ref()
        .map(|r| r.id.clone())
        .or_else(|| s.terminated.as_ref().map(|t| t.id.clone()))
    {
        v["containerID"] = json!(format!("reddwarf://{id}"));
    }
    v
}

fn waiting(w: &Waiting) -> Value {
    let mut v = json!({"reason": w.reason});
    if !w.message.is_empty() {
        v["message"] = json!(w.message);
    }
    json!({ "waiting": v })
}

/// A pod condition of `type_`; its lastTransitionTime stays the previous one (from `previous`, the last status) unless the status changed; `reason` only when not ok.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    previous: &Value,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let prev = previous["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    let transition = match prev {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null,
        "lastTransitionTime": transition});
    if let Some(r) = reason.filter(|_| !ok) {
        c["reason"] = json!(r);
    }
    c
}
