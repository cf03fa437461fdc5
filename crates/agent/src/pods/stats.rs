//! Resource usage as the kubelet reports it: `/stats/summary` (the Summary API that
//! `kubectl get --raw .../proxy/stats/summary` reads) and `/metrics/resource` (what
//! metrics-server scrapes for `kubectl top`).

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{json, Value};

use super::worker::{LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NS, LABEL_POD_UID};
use super::Shared;

/// Cumulative CPU time of the host, from /proc/stat (USER_HZ ticks → ns).
fn host_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, x)| x)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    busy * (1_000_000_000 / hz)
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

struct ContainerUsage {
    ns: String,
    pod: String,
    uid: String,
    container: String,
    started: Option<String>,
    cpu_ns: u64,
    working_set: u64,
    usage: u64,
}

async fn usage(shared: &Shared) -> Vec<ContainerUsage> {
    let mut out = Vec::new();
    for r in shared.runtime.list().await.unwrap_or_default() {
        if !matches!(r.status, reddwarf_runtime::ContainerStatus::Running) {
            continue;
        }
        let Ok(st) = shared.runtime.stats(&r.id).await else {
            continue;
        };
        let l = |k: &str| r.labels.get(k).cloned().unwrap_or_default();
        out.push(ContainerUsage {
            ns: l(LABEL_POD_NS),
            pod: l(LABEL_POD_NAME),
            uid: l(LABEL_POD_UID),
            container: l(LABEL_CONTAINER),
            started: r.started_at.map(super::status::rfc3339),
            cpu_ns: st.cpu_usage_ns,
            working_set: st.memory_working_set_bytes,
            usage: st.memory_usage_bytes,
        });
    }
    out
}

/// The Summary API document (`/stats/summary`): the node's and every pod's usage.
pub async fn summary(shared: &Shared) -> Value {
    let now = super::status::rfc3339(Utc::now());
    let total = meminfo("MemTotal:");
    let available = meminfo("MemAvailable:");
    let mut pods: BTreeMap<(String, String, String), Vec<ContainerUsage>> = BTreeMap::new();
    for c in usage(shared).await {
        pods.entry((c.ns.clone(), c.pod.clone(), c.uid.clone()))
            .or_default()
            .push(c);
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|((ns, name, uid), cs)| {
            let cpu: u64 = cs.iter().map(|c| c.cpu_ns).sum();
            let ws: u64 = cs.iter().map(|c| c.working_set).sum();
            let usage: u64 = cs.iter().map(|c| c.usage).sum();
            json!({
                "podRef": {"name": name, "namespace": ns, "uid": uid},
                "startTime": cs.iter().filter_map(|c| c.started.clone()).min(),
                "containers": cs.iter().map(|c| json!({
                    "name": c.container,
                    "startTime": c.started,
                    "cpu": {"time": now, "usageCoreNanoSeconds": c.cpu_ns},
                    "memory": {"time": now, "workingSetBytes": c.working_set, "usageBytes": c.usage},
                })).collect::<Vec<_>>(),
                "cpu": {"time": now, "usageCoreNanoSeconds": cpu},
                "memory": {"time": now, "workingSetBytes": ws, "usageBytes": usage},
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": shared.node,
            "startTime": now,
            "cpu": {"time": now, "usageCoreNanoSeconds": host_cpu_ns()},
            "memory": {"time": now, "availableBytes": available,
                       "usageBytes": total.saturating_sub(available),
                       "workingSetBytes": total.saturating_sub(available)},
        },
        "pods": pods,
    })
}

/// The kubelet's `/metrics/resource` in the Prometheus text format.
pub async fn resource_metrics(shared: &Shared) -> String {
    let ms = Utc::now().timestamp_millis();
    let total = meminfo("MemTotal:");
    let available = meminfo("MemAvailable:");
    let mut out = String::new();
    out.push_str("# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter\n");
    out.push_str(&format!(
        "node_cpu_usage_seconds_total {} {ms}\n",
        host_cpu_ns() as f64 / 1e9
    ));
    out.push_str("# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n# TYPE node_memory_working_set_bytes gauge\n");
    out.push_str(&format!(
        "node_memory_working_set_bytes {} {ms}\n",
        total.saturating_sub(available)
    ));
    let cs = usage(shared).await;
    out.push_str("# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n");
    for c in &cs {
        out.push_str(&format!(
            "container_cpu_usage_seconds_total{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {ms}\n",
            c.container, c.ns, c.pod, c.cpu_ns as f64 / 1e9
        ));
    }
    out.push_str("# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes\n# TYPE container_memory_working_set_bytes gauge\n");
    for c in &cs {
        out.push_str(&format!(
            "container_memory_working_set_bytes{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {} {ms}\n",
            c.container, c.ns, c.pod, c.working_set
        ));
    }
    out.push_str("# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0\n");
    out
}
