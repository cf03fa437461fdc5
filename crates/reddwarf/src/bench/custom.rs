//! `bench custom`: creates of custom objects against a large schema with CEL rules, next to
//! ConfigMaps of about the same size in the same run; the server's CPU per create of each
//! (with `--server-pid`) and the validation cost per object measured in this process with the
//! same schema engine.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{drive, fresh_namespace, Common, Report};
use crate::client::Target;

#[derive(clap::Args, Clone, Debug)]
pub struct CustomArgs {
    #[command(flatten)]
    pub common: Common,
    /// Objects of each kind (custom objects, then as many ConfigMaps).
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// The server's process id: its CPU time per create is reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// The benchmark's definition: nested objects and list-maps, formats, patterns, bounds, and
/// CEL rules at several levels (a transition rule included).
fn definition() -> Value {
    let rules = |r: &[(&str, &str)]| -> Value {
        r.iter()
            .map(|(rule, message)| json!({"rule": rule, "message": message}))
            .collect()
    };
    let backend = json!({
        "type": "object",
        "required": ["name", "port"],
        "x-kubernetes-validations": rules(&[
            ("self.port != 22 || self.protocol == 'TCP'", "ssh backends speak TCP"),
            ("!has(self.weight) || self.weight <= 1000", "weight is at most 1000"),
        ]),
        "properties": {
            "name": {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "protocol": {"type": "string", "enum": ["TCP", "UDP", "SCTP"], "default": "TCP"},
            "weight": {"type": "integer", "minimum": 0, "default": 1},
            "address": {"type": "string", "format": "ipv4"},
        },
    });
    let route = json!({
        "type": "object",
        "required": ["path"],
        "x-kubernetes-validations": rules(&[
            ("self.path.startsWith('/')", "paths are absolute"),
            ("self.backends.all(b, b.weight >= 0)", "weights are not negative"),
            ("size(self.backends) == 0 || self.backends.exists(b, b.weight > 0)", "one backend takes traffic"),
        ]),
        "properties": {
            "path": {"type": "string", "maxLength": 1024},
            "methods": {"type": "array", "maxItems": 8, "x-kubernetes-list-type": "set",
                "items": {"type": "string", "enum": ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]}},
            "timeout": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"},
            "backends": {"type": "array", "maxItems": 16, "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"], "items": backend},
            "headers": {"type": "object", "maxProperties": 16,
                "additionalProperties": {"type": "string", "maxLength": 256}},
        },
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "fleets.bench.reddwarf.dev"},
        "spec": {
            "group": "bench.reddwarf.dev", "scope": "Namespaced",
            "names": {"plural": "fleets", "singular": "fleet", "kind": "Fleet"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["owner", "routes"],
                        "x-kubernetes-validations": rules(&[
                            ("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas"),
                            ("self.routes.all(r, r.backends.all(b, b.port > 0))", "every backend has a port"),
                            ("self.owner == oldSelf.owner", "the owner is immutable"),
                            ("!has(self.contact) || self.contact.contains('@')", "contact is an e-mail address"),
                        ]),
                        "properties": {
                            "owner": {"type": "string", "minLength": 1, "maxLength": 63},
                            "contact": {"type": "string", "maxLength": 254},
                            "minReplicas": {"type": "integer", "minimum": 0, "default": 1},
                            "maxReplicas": {"type": "integer", "maximum": 1000, "default": 10},
                            "region": {"type": "string", "enum": ["eu", "us", "ap"], "default": "eu"},
                            "created": {"type": "string", "format": "date-time"},
                            "labels": {"type": "object", "maxProperties": 32,
                                "additionalProperties": {"type": "string", "maxLength": 63}},
                            "routes": {"type": "array", "maxItems": 32, "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["path"], "items": route},
                        },
                    },
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                }}},
            }],
        },
    })
}

/// One custom object: four routes of three backends each (~2 KiB of JSON).
fn fleet(name: &str) -> Value {
    let routes: Vec<Value> = (0..4)
        .map(|r| {
            json!({
                "path": format!("/api/v{r}"),
                "methods": ["GET", "POST"],
                "timeout": "1.5s",
                "headers": {"x-route": format!("r{r}"), "x-team": "platform"},
                "backends": (0..3).map(|b| json!({
                    "name": format!("backend-{b}"), "port": 8080 + b,
                    "weight": 10 * (b + 1), "address": format!("10.0.{r}.{b}"),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "apiVersion": "bench.reddwarf.dev/v1", "kind": "Fleet",
        "metadata": {"name": name},
        "spec": {"owner": "team-a", "contact": "ops@example.com", "minReplicas": 2,
            "maxReplicas": 20, "region": "us", "created": "2026-01-01T00:00:00Z",
            "labels": {"tier": "edge", "cost-center": "42"}, "routes": routes},
    })
}

/// The server's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// The definition as the server serves it (accepted names, established), for in-process
/// validation with the same engine.
fn served_kind() -> anyhow::Result<reddwarf_resources::ResourceKind> {
    let mut crd = definition();
    crd["status"] = json!({"acceptedNames": crd["spec"]["names"].clone(),
        "conditions": [{"type": "Established", "status": "True"}]});
    reddwarf_resources::custom::kinds_from_crd(&crd)
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the benchmark definition does not compile"))
}

pub async fn run(a: CustomArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    let mut conn = target.connect().await?;
    let (code, text) = conn
        .request(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(serde_json::to_vec(&definition())?),
        )
        .await?;
    anyhow::ensure!(
        code == 201 || code == 409,
        "creating the definition: {code} {}",
        String::from_utf8_lossy(&text)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = conn
            .request("GET", "/apis/bench.reddwarf.dev/v1/fleets", None)
            .await?;
        if code == 200 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the definition was not established"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ns = fresh_namespace(&target, "bench-custom").await?;
    let sample = serde_json::to_vec(&fleet("sample"))?.len();

    let mut r = Report::new("custom", &a.common.output);
    r.add(
        "clients",
        json!(a.common.concurrency),
        format!(
            "{} clients, {} objects of each kind, {sample} B custom objects",
            a.common.concurrency, a.count
        ),
    );
    let mut rates = Vec::new();
    for what in ["custom", "configmap"] {
        let cpu_before = a.server_pid.and_then(cpu_time);
        let ns2 = ns.clone();
        let (done, errors, elapsed) = drive(
            &target,
            a.common.concurrency,
            a.count,
            what,
            201,
            move |i| {
                if what == "custom" {
                    (
                        "POST".into(),
                        format!("/apis/bench.reddwarf.dev/v1/namespaces/{ns2}/fleets"),
                        Some(serde_json::to_vec(&fleet(&format!("f-{i}"))).expect("encode")),
                    )
                } else {
                    (
                        "POST".into(),
                        format!("/api/v1/namespaces/{ns2}/configmaps"),
                        Some(super::configmap(&format!("c-{i}"), sample, "")),
                    )
                }
            },
        )
        .await?;
        let cpu = match (cpu_before, a.server_pid.and_then(cpu_time)) {
            (Some(b), Some(e)) if !done.is_empty() => {
                Some(e.saturating_sub(b).as_secs_f64() * 1e6 / done.len() as f64)
            }
            _ => None,
        };
        rates.push(done.len() as f64 / elapsed.as_secs_f64().max(1e-9));
        r.latencies(
            &format!("{what} created"),
            done.into_iter().map(|(_, d)| d).collect(),
            elapsed,
            errors,
        );
        if let Some(us) = cpu {
            r.add(
                &format!("{what} server CPU per create"),
                json!({"microseconds": us}),
                format!("{us:.0} µs"),
            );
        }
    }
    r.add(
        "custom vs configmap creates/s",
        json!(rates[0] / rates[1].max(1e-9)),
        format!("{:.2}×", rates[0] / rates[1].max(1e-9)),
    );

    // The schema work alone, in this process: prune, default, validate (CEL included).
    let kind = served_kind()?;
    let obj = fleet("inproc");
    let n = 2000u32;
    let started = Instant::now();
    for _ in 0..n {
        let mut o = obj.clone();
        let _ = kind.strategy.prune(&mut o);
        kind.apply_defaults(&mut o);
        let errs = reddwarf_resources::validation::validate(&kind, &o, None);
        anyhow::ensure!(
            errs.is_empty(),
            "the benchmark object is invalid: {:?}",
            errs[0].message
        );
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    r.add(
        "validation per object",
        json!({"microseconds": per}),
        format!("{per:.0} µs (prune + defaults + schema + 9 CEL rules over 4 routes × 3 backends, in-process)"),
    );
    Ok(r)
}
