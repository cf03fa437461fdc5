//! The pod statuses a kubelet reports, shared by every kubelet this project has (the
//! simulated nodes now, the node agent later) so they report the same transitions.

use serde_json::{json, Value};

/// The `status` merge patch for a pod whose containers have all stopped with `exit_code`
/// (a pod that ran to completion, or whose containers were stopped because the pod is being
/// deleted): every container terminated and not ready, `Ready`/`ContainersReady` False, and
/// the terminal phase — `Succeeded` when the code is 0, else `Failed` — as kubelets since
/// 1.27 report before a deleted pod goes away.
pub fn stopped(pod: &Value, exit_code: i64, now: &str) -> Value {
    let reason = if exit_code == 0 { "Completed" } else { "Error" };
    let phase = if exit_code == 0 {
        "Succeeded"
    } else {
        "Failed"
    };
    let previous = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let before = previous.iter().find(|s| s["name"] == c["name"]);
            let started_at = before
                .and_then(|s| s.pointer("/state/running/startedAt"))
                .cloned()
                .unwrap_or(json!(now));
            let mut terminated = json!({"exitCode": exit_code, "reason": reason,
                "startedAt": started_at, "finishedAt": now});
            let mut status = json!({"name": c["name"], "image": c["image"],
                "ready": false, "started": false,
                "restartCount": before.map_or(json!(0), |s| s["restartCount"].clone())});
            if let Some(id) = before.and_then(|s| s.get("containerID")) {
                terminated["containerID"] = id.clone();
                status["containerID"] = id.clone();
            }
            if let Some(id) = before.and_then(|s| s.get("imageID")) {
                status["imageID"] = id.clone();
            }
            status["state"] = json!({"terminated": terminated});
            status
        })
        .collect();
    let not_ready = |t: &str| json!({"type": t, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now});
    json!({"status": {
        "phase": phase,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "reason": "PodCompleted", "lastTransitionTime": now},
            not_ready("Ready"),
            not_ready("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
    }})
}

/// Whether a kubelet has already reported the pod stopped (a terminal phase).
pub fn is_stopped(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_pods_are_not_ready_and_terminal() {
        let pod = json!({"spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "restartCount": 2,
                "containerID": "sim://x", "state": {"running": {"startedAt": "T0"}}}]}});
        let s = stopped(&pod, 0, "T1");
        assert_eq!(s["status"]["phase"], "Succeeded");
        let c = &s["status"]["containerStatuses"][0];
        assert_eq!(c["ready"], false);
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["state"]["terminated"]["startedAt"], "T0");
        assert_eq!(c["state"]["terminated"]["containerID"], "sim://x");
        let ready = s["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(stopped(&pod, 1, "T1")["status"]["phase"], "Failed");
        assert!(!is_stopped(&pod));
        assert!(is_stopped(&json!({"status": {"phase": "Failed"}})));
    }
}
