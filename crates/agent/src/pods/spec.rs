//! From a pod's container to the runtime's [`ContainerSpec`]: command and args against the
//! image's entrypoint and cmd, the environment (image, `env` with `$(VAR)` expansion,
//! `envFrom`, `valueFrom`), working dir, user, resources and security context.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use reddwarf_images::ImageConfig;
use reddwarf_runtime::{Resources, Security, UserSpec};

/// The argv, as the kubelet's `kubecontainer.ExpandContainerCommandAndArgs` plus the image
/// defaults: `command` replaces the entrypoint (and drops the image's cmd), `args` replace cmd.
pub fn argv(c: &Container, image: &ImageConfig, env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |v: &Vec<String>| v.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    match (&c.command, &c.args) {
        (Some(cmd), args) if !cmd.is_empty() => {
            let mut v = expand_all(cmd);
            v.extend(args.as_ref().map(expand_all).unwrap_or_default());
            v
        }
        (_, Some(args)) if !args.is_empty() => {
            let mut v = image.entrypoint.clone();
            v.extend(expand_all(args));
            v
        }
        _ => {
            let mut v = image.entrypoint.clone();
            v.extend(image.cmd.iter().cloned());
            v
        }
    }
}

/// `$(VAR)` references to defined variables are replaced, `$$` escapes a `$`, anything else
/// stays as written (upstream's `expansion.Expand`).
pub fn expand(s: &str, vars: &HashMap<&str, &str>) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Looks up what env and volumes refer to: ConfigMaps and Secrets of the pod's namespace.
pub trait Sources {
    /// The ConfigMap `name`'s data (binaryData included), if it exists.
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>>;
    /// The Secret `name`'s data, if it exists.
    fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
    /// A service-account token of the pod for `audience` (empty: the API's), or why not.
    fn token(&self, _audience: &str, _expiration: i64) -> Result<Vec<u8>, String> {
        Err("service-account tokens are not available here".into())
    }
}

/// An error that keeps the container from starting (`CreateContainerConfigError`).
#[derive(Debug)]
pub struct ConfigError(pub String);

/// The container's environment: image env, then `envFrom` in order, then `env` (later wins,
/// `$(VAR)` expands against what is defined before it), as the kubelet builds it.
pub fn environment(
    pod: &Pod,
    c: &Container,
    image: &ImageConfig,
    pod_ip: &str,
    host_ip: &str,
    src: &dyn Sources,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(e) => e.1 = v,
        None => env.push((k, v)),
    };
    if !image.env.iter().any(|e| e.starts_with("PATH=")) {
        set(
            &mut env,
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for e in &image.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(&mut env, k.into(), v.into());
    }
    set(&mut env, "HOSTNAME".into(), hostname(pod));
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match src.config_map(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match src.secret(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            let vars: HashMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_ref(pod, &f.field_path, pod_ip, host_ip)
                    .ok_or_else(|| ConfigError(format!("unsupported fieldPath {}", f.field_path)))?
            } else if let Some(r) = &from.resource_field_ref {
                resource_field(
                    pod,
                    c,
                    r.container_name.as_deref(),
                    &r.resource,
                    r.divisor.as_ref(),
                )
            } else if let Some(r) = &from.config_map_key_ref {
                match src.config_map(&r.name).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {}/{}",
                            r.key,
                            pod.metadata.namespace.as_deref().unwrap_or(""),
                            r.name
                        )))
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                match src.secret(&r.name).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {}/{}",
                            r.key,
                            pod.metadata.namespace.as_deref().unwrap_or(""),
                            r.name
                        )))
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// The container hostname: `spec.hostname`, or the pod's name.
pub fn hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default()
        .chars()
        .take(63)
        .collect()
}

/// The downward API's `fieldRef` paths.
pub fn field_ref(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => pod_ip.to_string(),
        "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "metadata.labels" => map_lines(m.labels.as_ref()),
        "metadata.annotations" => map_lines(m.annotations.as_ref()),
        p => {
            let (which, key) = if let Some(k) = p.strip_prefix("metadata.labels['") {
                (m.labels.as_ref(), k)
            } else if let Some(k) = p.strip_prefix("metadata.annotations['") {
                (m.annotations.as_ref(), k)
            } else {
                return None;
            };
            let key = key.strip_suffix("']")?;
            which.and_then(|l| l.get(key).cloned()).unwrap_or_default()
        }
    })
}

/// `key="value"` lines, sorted, as the downward API writes label and annotation files.
fn map_lines(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// Quantity → milli-units (cpu) or bytes (everything else).
pub fn quantity(q: &Quantity, milli: bool) -> Option<i128> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with('e') || s.starts_with('E') => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    let v = n * mult * if milli { 1000.0 } else { 1.0 };
    Some(v.ceil() as i128)
}

fn limit_or_request(c: &Container, name: &str) -> (Option<Quantity>, Option<Quantity>) {
    let r = c.resources.as_ref();
    (
        r.and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name).cloned()),
        r.and_then(|r| r.requests.as_ref())
            .and_then(|l| l.get(name).cloned()),
    )
}

/// `resourceFieldRef`: limits default to the node's allocatable, requests to 0; divided by
/// the divisor and rounded up, as upstream.
fn resource_field(
    pod: &Pod,
    c: &Container,
    container: Option<&str>,
    resource: &str,
    divisor: Option<&Quantity>,
) -> String {
    let target = container
        .filter(|n| !n.is_empty())
        .and_then(|n| pod.spec.as_ref()?.containers.iter().find(|x| x.name == n))
        .unwrap_or(c);
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let cpu = name == "cpu";
    let (limit, request) = limit_or_request(target, name);
    let q = if kind == "limits" {
        limit.or(request)
    } else {
        request
    };
    let value = q.and_then(|q| quantity(&q, cpu)).unwrap_or_else(|| {
        if kind == "limits" {
            if cpu {
                std::thread::available_parallelism()
                    .map(|n| n.get() as i128 * 1000)
                    .unwrap_or(1000)
            } else {
                crate::node::HostInfo::memory_bytes() as i128
            }
        } else {
            0
        }
    });
    let div = divisor
        .and_then(|d| quantity(d, cpu))
        .filter(|d| *d > 0)
        .unwrap_or(if cpu { 1000 } else { 1 });
    ((value + div - 1) / div).to_string()
}

/// cgroup settings from the container's resources, as the kubelet maps them on cgroup v1.
pub fn resources(c: &Container) -> Resources {
    let (mem_limit, _) = limit_or_request(c, "memory");
    let (cpu_limit, cpu_request) = limit_or_request(c, "cpu");
    let period: u64 = 100_000;
    let cpu_request = cpu_request.or(cpu_limit.clone());
    Resources {
        memory_limit_bytes: mem_limit
            .and_then(|q| quantity(&q, false))
            .map(|v| v as i64),
        // 1024 shares per CPU, at least 2 (the kernel's minimum).
        cpu_shares: Some(
            cpu_request
                .and_then(|q| quantity(&q, true))
                .map(|m| ((m * 1024) / 1000).max(2) as u64)
                .unwrap_or(2),
        ),
        cpu_quota_us: cpu_limit
            .and_then(|q| quantity(&q, true))
            .map(|m| ((m * period as i128) / 1000).max(1000) as i64),
        cpu_period_us: Some(period),
        pids_limit: None,
    }
}

/// The user to run as: the container's then the pod's securityContext, else the image's
/// numeric `USER` (names would need the image's /etc/passwd; root is assumed then).
pub fn user(pod: &Pod, c: &Container, image: &ImageConfig) -> UserSpec {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let (img_uid, img_gid) = {
        let (u, g) = image.user.split_once(':').unwrap_or((&image.user, ""));
        (u.parse::<u32>().ok(), g.parse::<u32>().ok())
    };
    let uid = csc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|s| s.run_as_user))
        .map(|u| u as u32)
        .or(img_uid)
        .unwrap_or(0);
    let gid = csc
        .and_then(|s| s.run_as_group)
        .or(psc.and_then(|s| s.run_as_group))
        .map(|g| g as u32)
        .or(img_gid)
        .unwrap_or(0);
    let mut additional: Vec<u32> = psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    if let Some(fs) = psc.and_then(|s| s.fs_group) {
        additional.push(fs as u32);
    }
    UserSpec {
        uid,
        gid,
        additional_gids: additional,
    }
}

/// The runtime security settings from a container's securityContext.
pub fn security(c: &Container) -> Security {
    let sc = c.security_context.as_ref();
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    Security {
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        seccomp_default: sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .is_some_and(|p| p.type_ == "RuntimeDefault"),
    }
}

/// Whether the container's securityContext asks for a read-only root filesystem.
pub fn readonly_rootfs(c: &Container) -> bool {
    c.security_context
        .as_ref()
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_as_upstream() {
        let vars = HashMap::from([("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &vars), "1-two");
        assert_eq!(expand("$(C)", &vars), "$(C)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("a$", &vars), "a$");
        assert_eq!(expand("é$(A", &vars), "é$(A");
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity(&Quantity("64Mi".into()), false), Some(64 << 20));
        assert_eq!(quantity(&Quantity("500m".into()), true), Some(500));
        assert_eq!(quantity(&Quantity("2".into()), true), Some(2000));
        assert_eq!(quantity(&Quantity("1G".into()), false), Some(1_000_000_000));
        assert_eq!(quantity(&Quantity("1e3".into()), false), Some(1000));
        assert_eq!(quantity(&Quantity("x".into()), false), None);
    }

    #[test]
    fn command_and_args_against_the_image() {
        let img = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["c1".into()],
            ..Default::default()
        };
        let mut c = Container {
            name: "c".into(),
            ..Default::default()
        };
        assert_eq!(argv(&c, &img, &[]), ["/ep", "c1"]);
        c.args = Some(vec!["a $(X)".into()]);
        let env = vec![("X".to_string(), "y".to_string())];
        assert_eq!(argv(&c, &img, &env), ["/ep", "a y"]);
        c.command = Some(vec!["sh".into()]);
        assert_eq!(argv(&c, &img, &env), ["sh", "a y"]);
    }
}
