//! ContainerSpec → OCI runtime `config.json`, with the defaults containerd's CRI plugin uses.

use serde_json::{json, Value};

use crate::{ContainerSpec, Error, MountKind, Result};

/// Docker's (and containerd CRI's) default capability set.
pub(crate) const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability up to Linux 5.9 (what `privileged` grants).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn normalize_cap(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The effective capability list: default set, minus drops, plus adds.
pub(crate) fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Vec<String> {
    if privileged {
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    let drop: Vec<String> = drop.iter().map(|c| normalize_cap(c)).collect();
    let add: Vec<String> = add.iter().map(|c| normalize_cap(c)).collect();
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "CAP_ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|c| c == "CAP_ALL") {
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    for c in add {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    caps
}

fn check_abs(what: &str, p: &str) -> Result<()> {
    if p.starts_with('/') && !p.split('/').any(|c| c == "..") {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "{what} {p:?} must be an absolute path without .."
        )))
    }
}

/// Builds the bundle's `config.json`.
pub(crate) fn config(spec: &ContainerSpec) -> Result<Value> {
    crate::validate_id(&spec.id)?;
    if spec.args.is_empty() {
        return Err(Error::InvalidSpec("args must not be empty".into()));
    }
    check_abs("cwd", &spec.cwd)?;
    check_abs("cgroup_parent", &spec.cgroup_parent)?;
    if !spec.rootfs.is_absolute() {
        return Err(Error::InvalidSpec("rootfs must be an absolute path".into()));
    }
    let sec = &spec.security;
    let privileged = sec.privileged;
    let host_net = spec.network_ns.is_none();

    let mut mounts: Vec<Value> = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
    ];
    let ro = if privileged { "rw" } else { "ro" };
    if host_net {
        // sysfs can only be mounted from a network namespace the mounter owns; in the host's
        // one, bind the host's /sys (as runc falls back to).
        mounts.push(
            json!({"destination": "/sys", "type": "bind", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", ro]}),
        );
    } else {
        mounts.push(
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                           "options": ["nosuid", "noexec", "nodev", ro]}),
        );
    }
    mounts.push(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime", ro]}),
    );

    for m in &spec.mounts {
        check_abs("mount destination", &m.destination)?;
        let v = match &m.kind {
            MountKind::Bind { source, readonly } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *readonly {
                    opts.push("ro");
                }
                json!({"destination": m.destination, "type": "bind",
                       "source": source, "options": opts})
            }
            MountKind::Tmpfs { size_bytes } => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                if let Some(sz) = size_bytes {
                    opts.push(format!("size={sz}"));
                }
                json!({"destination": m.destination, "type": "tmpfs",
                       "source": "tmpfs", "options": opts})
            }
        };
        // A caller's mount replaces a standard one at the same place (e.g. a pod's /dev/shm).
        mounts.retain(|d| d["destination"] != m.destination.as_str());
        mounts.push(v);
    }

    let caps = capabilities(privileged, &sec.capabilities_add, &sec.capabilities_drop);
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if let Some(ns) = &spec.network_ns {
        namespaces.push(json!({"type": "network", "path": ns}));
    }

    let r = &spec.resources;
    let mut resources = json!({});
    resources["devices"] = if privileged {
        json!([{"allow": true, "access": "rwm"}])
    } else {
        json!([{"allow": false, "access": "rwm"}])
    };
    if let Some(m) = r.memory_limit_bytes {
        resources["memory"] = json!({"limit": m});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = r.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = r.cpu_quota_us {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = r.cpu_period_us {
        cpu.insert("period".into(), json!(p));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = r.pids_limit {
        resources["pids"] = json!({"limit": p});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("{}/{}", spec.cgroup_parent.trim_end_matches('/'), spec.id),
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if sec.seccomp_default {
        tracing::warn!(
            id = %spec.id,
            "seccomp requested but this runtime is built without seccomp; running unconfined"
        );
    }

    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.tty,
            "user": {
                "uid": spec.user.uid,
                "gid": spec.user.gid,
                "additionalGids": spec.user.additional_gids,
            },
            "args": spec.args,
            "env": env,
            "cwd": spec.cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                // Ambient stays empty: non-root processes get file capabilities only, as in Docker.
            },
            "noNewPrivileges": sec.no_new_privileges,
        },
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_arithmetic() {
        let c = capabilities(false, &["net_admin".into()], &["CAP_KILL".into()]);
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()));
        assert_eq!(c.len(), DEFAULT_CAPS.len());
        let c = capabilities(false, &["CHOWN".into()], &["ALL".into()]);
        assert_eq!(c, vec!["CAP_CHOWN".to_string()]);
        assert_eq!(capabilities(true, &[], &[]).len(), ALL_CAPS.len());
    }
}
