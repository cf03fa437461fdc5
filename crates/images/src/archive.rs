//! Importing `oci-archive` (OCI image layout in a tar, as skopeo writes) and `docker-archive`
//! (`docker save`) tarballs. The tar is indexed once, then members are read in place by
//! offset, so nothing is extracted twice.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::digest::{sha256_digest, sha256_hex};
use crate::error::{Error, Result};
use crate::oci::{self, Descriptor, ManifestKind};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{Image, ImageConfig, ImageStore, LayerSpec};

const MAX_JSON: u64 = 64 << 20;

enum Member {
    File { pos: u64, size: u64 },
    Link(String),
    Symlink(String),
}

struct Archive {
    path: PathBuf,
    members: HashMap<String, Member>,
}

fn norm(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?.to_string()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

impl Archive {
    fn index(path: &Path) -> Result<Archive> {
        let f = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let mut ar = tar::Archive::new(f);
        let mut members = HashMap::new();
        let bad = |e: io::Error| Error::io(format!("reading archive {}", path.display()), e);
        for entry in ar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let Some(name) = entry.path().ok().and_then(|p| norm(&p)) else {
                continue;
            };
            let m = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                    pos: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Link | tar::EntryType::Symlink => {
                    let Some(t) = entry.link_name().ok().flatten() else {
                        continue;
                    };
                    let t = t.to_string_lossy().to_string();
                    if entry.header().entry_type() == tar::EntryType::Link {
                        Member::Link(t)
                    } else {
                        Member::Symlink(t)
                    }
                }
                _ => continue,
            };
            members.insert(name, m);
        }
        Ok(Archive {
            path: path.to_path_buf(),
            members,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// A member's bytes, following links within the archive.
    fn open(&self, name: &str) -> Result<(io::Take<File>, u64)> {
        let mut name = norm(Path::new(name)).unwrap_or_default();
        for _ in 0..16 {
            match self.members.get(&name) {
                Some(Member::File { pos, size }) => {
                    let mut f = File::open(&self.path)
                        .map_err(|e| Error::io(format!("open {}", self.path.display()), e))?;
                    f.seek(SeekFrom::Start(*pos))
                        .map_err(|e| Error::io("seek in archive", e))?;
                    return Ok((f.take(*size), *size));
                }
                Some(Member::Link(t)) => name = norm(Path::new(t)).unwrap_or_default(),
                Some(Member::Symlink(t)) => {
                    let base = Path::new(&name).parent().unwrap_or(Path::new("")).join(t);
                    name = norm(&base).unwrap_or_default();
                }
                None => break,
            }
        }
        Err(Error::Invalid(format!(
            "archive {} has no member {name:?}",
            self.path.display()
        )))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let (r, size) = self.open(name)?;
        if size > MAX_JSON {
            return Err(Error::Invalid(format!(
                "archive member {name} is too large ({size} bytes)"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.take(MAX_JSON)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("reading archive", e))?;
        Ok(buf)
    }

    fn blob_name(digest: &str) -> Result<String> {
        Ok(format!("blobs/sha256/{}", sha256_hex(digest)?))
    }

    /// An OCI blob, verified against its digest.
    fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let data = self.read(&Self::blob_name(digest)?)?;
        let got = sha256_digest(&data);
        if got != digest {
            return Err(Error::Invalid(format!(
                "archive blob {digest} failed verification (content digest {got})"
            )));
        }
        Ok(data)
    }
}

pub(crate) fn import(store: &ImageStore, path: &Path) -> Result<Vec<Image>> {
    // A compressed archive (`docker save | gzip`) is expanded once so members can be read in place.
    let mut head = [0u8; 2];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let _expanded;
    let path = if n == 2 && head == [0x1f, 0x8b] {
        let tmp = store
            .root()
            .join("tmp")
            .join(format!("import-{}.tar", std::process::id()));
        let mut out =
            File::create(&tmp).map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
        let f = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        io::copy(&mut flate2::read::MultiGzDecoder::new(f), &mut out)
            .map_err(|e| Error::io(format!("decompress {}", path.display()), e))?;
        _expanded = TempFile(tmp.clone());
        tmp
    } else {
        path.to_path_buf()
    };
    let ar = Archive::index(&path)?;
    if ar.has("manifest.json") {
        import_docker(store, &ar)
    } else if ar.has("index.json") {
        import_oci(store, &ar)
    } else {
        Err(Error::Invalid(format!(
            "{} is neither an OCI archive (no index.json) nor a docker archive (no manifest.json)",
            path.display()
        )))
    }
}

struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The name an OCI index entry gives its image. `ref.name` may be a whole reference
/// (`localhost/app:v1`) or, per the layout spec, just a tag, which names no repository.
fn oci_name(d: &Descriptor) -> Option<Reference> {
    if let Some(n) = d.annotations.get(oci::ANNOTATION_CONTAINERD_NAME) {
        return Reference::parse(n).ok();
    }
    let r = d.annotations.get(oci::ANNOTATION_REF_NAME)?;
    if r.contains('/') || r.contains(':') || r.contains('@') {
        return Reference::parse(r).ok();
    }
    tracing::info!(ref_name = %r, "OCI archive entry is named by a tag only; imported by id");
    None
}

fn import_oci(store: &ImageStore, ar: &Archive) -> Result<Vec<Image>> {
    let index: oci::Index = serde_json::from_slice(&ar.read("index.json")?)
        .map_err(|e| Error::Invalid(format!("bad index.json: {e}")))?;
    let platform = Platform::host();
    let mut out: Vec<Image> = Vec::new();
    for top in &index.manifests {
        let name = oci_name(top);
        let top_bytes = ar.read_blob(&top.digest)?;
        let mut blobs = vec![store.put_blob(&top_bytes)?];
        let manifest = match oci::parse_manifest(&top.media_type, &top_bytes)? {
            ManifestKind::Image(m) => m,
            ManifestKind::Index(i) => {
                let d = i.select(&platform).ok_or_else(|| {
                    Error::NotFound(format!(
                        "no match for platform {platform} in archive index {} (it has: {})",
                        top.digest,
                        i.platforms()
                    ))
                })?;
                let b = ar.read_blob(&d.digest)?;
                blobs.push(store.put_blob(&b)?);
                match oci::parse_manifest(&d.media_type, &b)? {
                    ManifestKind::Image(m) => m,
                    ManifestKind::Index(_) => {
                        return Err(Error::Invalid(
                            "nested image indexes are not supported".into(),
                        ))
                    }
                }
            }
        };
        let config_bytes = ar.read_blob(&manifest.config.digest)?;
        blobs.push(store.put_blob(&config_bytes)?);
        let config = oci::parse_config(&config_bytes)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(Error::Invalid(format!(
                "image {}: manifest lists {} layers but the config {} diff ids",
                manifest.config.digest,
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let _pins = store.pin_layers(&config.rootfs.diff_ids);
        for (l, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if store.has_layer(diff_id) {
                continue;
            }
            let (reader, _) = ar.open(&Archive::blob_name(&l.digest)?)?;
            let spec = LayerSpec {
                diff_id: diff_id.clone(),
                blob_digest: Some(l.digest.clone()),
            };
            store.unpack_layer_from(&spec, io::BufReader::with_capacity(256 << 10, reader))?;
        }
        let (repo_tags, repo_digests) = match &name {
            Some(r) => (
                r.tag.iter().map(|t| format!("{}:{t}", r.name())).collect(),
                vec![format!("{}@{}", r.name(), top.digest)],
            ),
            None => (Vec::new(), Vec::new()),
        };
        let image = Image {
            id: manifest.config.digest.clone(),
            repo_digests,
            repo_tags,
            config: ImageConfig::from_oci(&config),
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            layers: config.rootfs.diff_ids.clone(),
        };
        let image = store.record(image, blobs)?;
        out.retain(|i| i.id != image.id);
        out.push(image);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn import_docker(store: &ImageStore, ar: &Archive) -> Result<Vec<Image>> {
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&ar.read("manifest.json")?)
        .map_err(|e| Error::Invalid(format!("bad manifest.json: {e}")))?;
    let mut out: Vec<Image> = Vec::new();
    for e in entries {
        let config_bytes = ar.read(&e.config)?;
        let id = store.put_blob(&config_bytes)?;
        let config = oci::parse_config(&config_bytes)?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(Error::Invalid(format!(
                "image {id}: manifest.json lists {} layers but the config {} diff ids",
                e.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let _pins = store.pin_layers(&config.rootfs.diff_ids);
        let mut size = config_bytes.len() as u64;
        for (layer, diff_id) in e.layers.iter().zip(&config.rootfs.diff_ids) {
            let (reader, len) = ar.open(layer)?;
            size += len;
            if store.has_layer(diff_id) {
                continue;
            }
            let spec = LayerSpec {
                diff_id: diff_id.clone(),
                blob_digest: None,
            };
            store.unpack_layer_from(&spec, io::BufReader::with_capacity(256 << 10, reader))?;
        }
        let mut repo_tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            match Reference::parse(&t) {
                Ok(r) => repo_tags.push(format!(
                    "{}:{}",
                    r.name(),
                    r.tag.as_deref().unwrap_or("latest")
                )),
                Err(err) => tracing::warn!(tag = %t, error = %err, "ignoring unparsable RepoTag"),
            }
        }
        let image = Image {
            id: id.clone(),
            repo_digests: Vec::new(),
            repo_tags,
            config: ImageConfig::from_oci(&config),
            size,
            layers: config.rootfs.diff_ids.clone(),
        };
        let image = store.record(image, vec![id])?;
        out.retain(|i| i.id != image.id);
        out.push(image);
    }
    Ok(out)
}
