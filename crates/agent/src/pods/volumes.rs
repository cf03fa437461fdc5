//! Pod volumes on the node: emptyDir (disk or memory), hostPath, configMap, secret,
//! downwardAPI, projected, and persistentVolumeClaim bound to a hostPath/local PV. ConfigMap,
//! Secret and downward API contents are written the kubelet's way (a timestamped directory
//! behind a `..data` symlink swapped atomically), so updates reach running pods whole.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{KeyToPath, Pod, Volume};
use reddwarf_runtime::{MountKind, MountSpec};

use super::spec::{field_ref, ConfigError, Sources};

/// Where a volume's content is, once prepared.
#[derive(Clone, Debug)]
pub enum Prepared {
    /// A host directory to bind-mount.
    Dir(PathBuf),
    /// A tmpfs (memory-backed emptyDir), with its size limit.
    Tmpfs(Option<u64>),
}

/// Files of one atomic-writer volume: relative path → (content, mode).
type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    what: &str,
    optional: bool,
) -> Result<Files, ConfigError> {
    let mut out = Files::new();
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(
                            it.path.clone(),
                            (v.clone(), it.mode.map(|m| m as u32).unwrap_or(mode)),
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(ConfigError(format!(
                            "configmap/secret references non-existent key {} in {what}",
                            it.key
                        )))
                    }
                }
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), mode));
            }
        }
    }
    Ok(out)
}

fn cm_bytes(m: BTreeMap<String, String>) -> BTreeMap<String, Vec<u8>> {
    m.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()
}

/// Writes `files` into `dir` atomically: `..<stamp>/` holds them, `..data` points at it, and
/// each top-level name is a symlink through `..data`. Unchanged content is not rewritten.
pub fn atomic_write(dir: &Path, files: &Files) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let current = dir.join("..data");
    if let Ok(target) = std::fs::read_link(&current) {
        let old = dir.join(&target);
        let same = files
            .iter()
            .all(|(p, (data, _))| std::fs::read(old.join(p)).ok().as_ref() == Some(data))
            && count_files(&old) == files.len();
        if same {
            return Ok(false);
        }
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let new = dir.join(&stamp);
    std::fs::create_dir_all(&new)?;
    for (p, (data, mode)) in files {
        let rel = Path::new(p);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            continue;
        }
        let f = new.join(rel);
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&f, data)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &current)?;
    // Top-level names point through ..data; names no longer present go away.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for t in &tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(t), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("..") {
            if name != "..data" && name != stamp {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        } else if !tops.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(true)
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => n += count_files(&e.path()),
                Ok(_) => n += 1,
                Err(_) => {}
            }
        }
    }
    n
}

/// What a persistentVolumeClaim volume resolves to (looked up by the worker).
pub type ClaimPaths = HashMap<String, Result<PathBuf, String>>;

/// Prepares (or refreshes) every volume of the pod under `dir`.
pub fn prepare(
    pod: &Pod,
    dir: &Path,
    src: &dyn Sources,
    claims: &ClaimPaths,
    pod_ip: &str,
    host_ip: &str,
) -> Result<HashMap<String, Prepared>, ConfigError> {
    let mut out = HashMap::new();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let vdir = dir.join(&v.name);
        let io = |e: std::io::Error| ConfigError(format!("volume {}: {e}", v.name));
        let p = prepare_one(pod, v, &vdir, src, claims, pod_ip, host_ip, &ns).map_err(|e| {
            ConfigError(format!(
                "MountVolume.SetUp failed for volume \"{}\" : {}",
                v.name, e.0
            ))
        })?;
        if let Prepared::Dir(d) = &p {
            if !d.exists() {
                std::fs::create_dir_all(d).map_err(io)?;
            }
        }
        out.insert(v.name.clone(), p);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn prepare_one(
    pod: &Pod,
    v: &Volume,
    vdir: &Path,
    src: &dyn Sources,
    claims: &ClaimPaths,
    pod_ip: &str,
    host_ip: &str,
    ns: &str,
) -> Result<Prepared, ConfigError> {
    let io = |e: std::io::Error| ConfigError(e.to_string());
    if let Some(e) = &v.empty_dir {
        if e.medium.as_deref() == Some("Memory") {
            let size = e
                .size_limit
                .as_ref()
                .and_then(|q| super::spec::quantity(q, false))
                .map(|b| b as u64);
            return Ok(Prepared::Tmpfs(size));
        }
        std::fs::create_dir_all(vdir).map_err(io)?;
        std::fs::set_permissions(vdir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok(Prepared::Dir(vdir.to_path_buf()));
    }
    if let Some(h) = &v.host_path {
        let p = PathBuf::from(&h.path);
        match h.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => {
                std::fs::create_dir_all(&p).map_err(io)?;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            }
            "FileOrCreate" if !p.exists() => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                std::fs::write(&p, b"").map_err(io)?;
            }
            "Directory" if !p.is_dir() => {
                return Err(ConfigError(format!(
                    "hostPath type check failed: {} is not a directory",
                    h.path
                )))
            }
            "File" if !p.is_file() => {
                return Err(ConfigError(format!(
                    "hostPath type check failed: {} is not a file",
                    h.path
                )))
            }
            _ => {}
        }
        return Ok(Prepared::Dir(p));
    }
    if let Some(c) = &v.config_map {
        let mode = c.default_mode.unwrap_or(0o644) as u32;
        let optional = c.optional == Some(true);
        let data = match src.config_map(&c.name) {
            Some(d) => cm_bytes(d),
            None if optional => BTreeMap::new(),
            None => return Err(ConfigError(format!("configmap \"{}\" not found", c.name))),
        };
        let files = key_files(&data, c.items.as_ref(), mode, &c.name, optional)?;
        atomic_write(vdir, &files).map_err(io)?;
        return Ok(Prepared::Dir(vdir.to_path_buf()));
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let mode = s.default_mode.unwrap_or(0o644) as u32;
        let optional = s.optional == Some(true);
        let data = match src.secret(&name) {
            Some(d) => d,
            None if optional => BTreeMap::new(),
            None => return Err(ConfigError(format!("secret \"{name}\" not found"))),
        };
        let files = key_files(&data, s.items.as_ref(), mode, &name, optional)?;
        atomic_write(vdir, &files).map_err(io)?;
        return Ok(Prepared::Dir(vdir.to_path_buf()));
    }
    if let Some(d) = &v.downward_api {
        let mode = d.default_mode.unwrap_or(0o644) as u32;
        let mut files = Files::new();
        for it in d.items.iter().flatten() {
            if let Some(f) = &it.field_ref {
                let value = field_ref(pod, &f.field_path, pod_ip, host_ip).unwrap_or_default();
                files.insert(
                    it.path.clone(),
                    (
                        value.into_bytes(),
                        it.mode.map(|m| m as u32).unwrap_or(mode),
                    ),
                );
            }
        }
        atomic_write(vdir, &files).map_err(io)?;
        return Ok(Prepared::Dir(vdir.to_path_buf()));
    }
    if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(0o644) as u32;
        let mut files = Files::new();
        for s in p.sources.iter().flatten() {
            if let Some(c) = &s.config_map {
                let optional = c.optional == Some(true);
                match src.config_map(&c.name) {
                    Some(d) => files.extend(key_files(
                        &cm_bytes(d),
                        c.items.as_ref(),
                        mode,
                        &c.name,
                        optional,
                    )?),
                    None if optional => {}
                    None => return Err(ConfigError(format!("configmap \"{}\" not found", c.name))),
                }
            }
            if let Some(sec) = &s.secret {
                let optional = sec.optional == Some(true);
                match src.secret(&sec.name) {
                    Some(d) => files.extend(key_files(
                        &d,
                        sec.items.as_ref(),
                        mode,
                        &sec.name,
                        optional,
                    )?),
                    None if optional => {}
                    None => return Err(ConfigError(format!("secret \"{}\" not found", sec.name))),
                }
            }
            if let Some(d) = &s.downward_api {
                for it in d.items.iter().flatten() {
                    if let Some(f) = &it.field_ref {
                        let value =
                            field_ref(pod, &f.field_path, pod_ip, host_ip).unwrap_or_default();
                        files.insert(
                            it.path.clone(),
                            (
                                value.into_bytes(),
                                it.mode.map(|m| m as u32).unwrap_or(mode),
                            ),
                        );
                    }
                }
            }
            if let Some(t) = &s.service_account_token {
                let audience = t.audience.as_deref().unwrap_or("");
                match src.token(audience, t.expiration_seconds.unwrap_or(3600)) {
                    Ok(token) => {
                        files.insert(t.path.clone(), (token, mode));
                    }
                    Err(e) => {
                        return Err(ConfigError(format!(
                            "failed to fetch token for service account of pod {ns}: {e}"
                        )))
                    }
                }
            }
        }
        atomic_write(vdir, &files).map_err(io)?;
        return Ok(Prepared::Dir(vdir.to_path_buf()));
    }
    if let Some(pvc) = &v.persistent_volume_claim {
        return match claims.get(&pvc.claim_name) {
            Some(Ok(p)) => Ok(Prepared::Dir(p.clone())),
            Some(Err(e)) => Err(ConfigError(e.clone())),
            None => Err(ConfigError(format!(
                "persistentvolumeclaim \"{}\" is not resolved yet",
                pvc.claim_name
            ))),
        };
    }
    Err(ConfigError(format!(
        "volume {}: this volume type is not supported on this node",
        v.name
    )))
}

/// The runtime mounts of one container's volumeMounts.
pub fn mounts(
    c: &k8s_openapi::api::core::v1::Container,
    prepared: &HashMap<String, Prepared>,
) -> Result<Vec<MountSpec>, ConfigError> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(p) = prepared.get(&m.name) else {
            return Err(ConfigError(format!(
                "container {} mounts volume {} which the pod does not declare",
                c.name, m.name
            )));
        };
        let readonly = m.read_only.unwrap_or(false);
        let kind = match p {
            Prepared::Tmpfs(size) => MountKind::Tmpfs { size_bytes: *size },
            Prepared::Dir(d) => {
                let mut source = d.clone();
                if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    let rel = Path::new(sub);
                    if rel.is_absolute()
                        || rel
                            .components()
                            .any(|c| matches!(c, std::path::Component::ParentDir))
                    {
                        return Err(ConfigError(format!(
                            "subPath {sub:?} must be a relative path inside the volume"
                        )));
                    }
                    source = d.join(rel);
                    if !source.exists() {
                        std::fs::create_dir_all(&source).map_err(|e| ConfigError(e.to_string()))?;
                    }
                }
                MountKind::Bind { source, readonly }
            }
        };
        out.push(MountSpec {
            destination: m.mount_path.clone(),
            kind,
        });
    }
    Ok(out)
}

/// Names of the ConfigMaps and Secrets a pod refers to (env and volumes).
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return (cms, secrets);
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &f.secret_ref {
                secrets.push(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                if let Some(r) = &vf.config_map_key_ref {
                    cms.push(r.name.clone());
                }
                if let Some(r) = &vf.secret_key_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            cms.push(c.name.clone());
        }
        if let Some(s) = &v.secret {
            secrets.extend(s.secret_name.clone());
        }
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &s.config_map {
                cms.push(c.name.clone());
            }
            if let Some(c) = &s.secret {
                secrets.push(c.name.clone());
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        secrets.push(s.name.clone());
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_swaps_whole_contents() {
        let d = tempfile::tempdir().unwrap();
        let mut files = Files::new();
        files.insert("a".into(), (b"1".to_vec(), 0o644));
        files.insert("sub/b".into(), (b"2".to_vec(), 0o600));
        assert!(atomic_write(d.path(), &files).unwrap());
        assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(d.path().join("sub/b")).unwrap(), b"2");
        assert!(
            !atomic_write(d.path(), &files).unwrap(),
            "unchanged is not rewritten"
        );
        files.remove("a");
        files.insert("c".into(), (b"3".to_vec(), 0o644));
        assert!(atomic_write(d.path(), &files).unwrap());
        assert!(std::fs::symlink_metadata(d.path().join("a")).is_err());
        assert_eq!(std::fs::read(d.path().join("c")).unwrap(), b"3");
        let dirs: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("..") && e.file_name() != "..data"
            })
            .collect();
        assert_eq!(dirs.len(), 1, "old generations are removed");
    }
}
