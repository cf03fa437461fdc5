//! The image store: content-addressed blobs, unpacked layers, image records.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::auth::Credentials;
use crate::digest::{sha256_digest, sha256_hex};
use crate::error::{Error, PullError, Result};
use crate::mount::{mount_overlay, Rootfs};
use crate::oci::{self, ConfigFile, ManifestKind};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{self, Client, Session};
use crate::unpack;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries (`host` or `host:port`) spoken to in plain HTTP, besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Which image of a multi-platform index to take.
    pub platform: Platform,
}

/// A stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<config digest>`.
    pub id: String,
    /// `registry/repository@sha256:<manifest digest>` (the index digest for multi-platform images).
    pub repo_digests: Vec<String>,
    /// `registry/repository:tag`; a tag names one image at a time.
    pub repo_tags: Vec<String>,
    /// The parts of the image config the runtime uses.
    pub config: ImageConfig,
    /// Compressed size of config and layers, as a registry reports it.
    pub size: u64,
    /// Diff ids (`sha256:` of each uncompressed layer), bottom first.
    pub layers: Vec<String>,
}

/// What the runtime needs from an image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The config's `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// The config's `Cmd`.
    pub cmd: Vec<String>,
    /// The config's `Env`, as `KEY=value` strings.
    pub env: Vec<String>,
    /// The config's `WorkingDir` ("" when unset).
    pub working_dir: String,
    /// The config's `User` ("" when unset).
    pub user: String,
    /// `80/tcp`, ...
    pub exposed_ports: Vec<String>,
}

impl ImageConfig {
    pub(crate) fn from_oci(c: &ConfigFile) -> ImageConfig {
        let cc = c.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: cc.entrypoint.unwrap_or_default(),
            cmd: cc.cmd.unwrap_or_default(),
            env: cc.env.unwrap_or_default(),
            working_dir: cc.working_dir.unwrap_or_default(),
            user: cc.user.unwrap_or_default(),
            exposed_ports: cc
                .exposed_ports
                .map(|m| m.into_keys().collect())
                .unwrap_or_default(),
        }
    }
}

/// On disk as `images/<id hex>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    image: Image,
    /// Unix milliseconds of the last pull or rootfs preparation; gc removes the oldest first.
    last_used: u64,
    /// Manifest/index/config blobs this image keeps.
    blobs: Vec<String>,
}

#[derive(Default)]
struct State {
    images: BTreeMap<String, Record>,
    /// Diff id hex -> bytes on disk.
    layer_sizes: HashMap<String, u64>,
    /// Layers an import or pull is working on: never collected under it.
    pins: HashMap<String, usize>,
}

struct Inner {
    root: PathBuf,
    state: Mutex<State>,
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    client: Client,
    blobs_fetched: AtomicU64,
    bytes_fetched: AtomicU64,
}

/// The node's image store. Cheap to clone; pulls may run concurrently (a layer wanted by
/// two pulls at once is downloaded and unpacked once).
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn io_err(ctx: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let ctx = ctx.into();
    move |e| Error::io(ctx, e)
}

fn unique_suffix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Write `data` to `path` via a temp file and rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        unique_suffix()
    ));
    fs::write(&tmp, data).map_err(io_err(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("rename to {}", path.display()), e)
    })
}

/// Releases a pin on drop (also when a pull is cancelled or fails).
struct Pins {
    inner: Arc<Inner>,
    layers: Vec<String>,
}

impl Drop for Pins {
    fn drop(&mut self) {
        let mut st = self.inner.state.lock().unwrap();
        for l in &self.layers {
            if let Some(n) = st.pins.get_mut(l) {
                *n -= 1;
                if *n == 0 {
                    st.pins.remove(l);
                }
            }
        }
    }
}

/// One layer to make present: where its bytes come from is the caller's business.
pub(crate) struct LayerSpec {
    pub diff_id: String,
    /// The blob digest, verified while unpacking when known.
    pub blob_digest: Option<String>,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, removing leftovers of interrupted downloads, unpacks and deletes.
    pub fn open(root: &Path) -> Result<ImageStore> {
        for d in ["blobs/sha256", "layers", "layermeta", "images", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("create {}", p.display())))?;
        }
        // Leftovers of an interrupted download, unpack or delete.
        for dir in [
            root.join("tmp"),
            root.join("layers"),
            root.join("blobs/sha256"),
            root.join("images"),
        ] {
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(".tmp-") || dir.ends_with("tmp")
                    {
                        let p = e.path();
                        let _ = if p.is_dir() {
                            fs::remove_dir_all(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                    }
                }
            }
        }
        let mut st = State::default();
        for e in fs::read_dir(root.join("images"))
            .map_err(io_err("read images"))?
            .flatten()
        {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => {
                    st.images.insert(r.image.id.clone(), r);
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "ignoring unreadable image record")
                }
            }
        }
        for e in fs::read_dir(root.join("layers"))
            .map_err(io_err("read layers"))?
            .flatten()
        {
            let hex = e.file_name().to_string_lossy().to_string();
            if !crate::digest::is_hex64(&hex) {
                continue;
            }
            let meta = root.join("layermeta").join(format!("{hex}.json"));
            let size = fs::read(&meta)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("size").and_then(|s| s.as_u64()))
                .unwrap_or_else(|| unpack::disk_size(&e.path()));
            st.layer_sizes.insert(hex, size);
        }
        Ok(ImageStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                state: Mutex::new(st),
                inflight: Mutex::new(HashMap::new()),
                client: Client::new(),
                blobs_fetched: AtomicU64::new(0),
                bytes_fetched: AtomicU64::new(0),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Blobs downloaded from registries by this store value and their bytes, since open
    /// (for metrics, and for tests that check a warm pull downloads nothing).
    pub fn fetch_stats(&self) -> (u64, u64) {
        (
            self.inner.blobs_fetched.load(Ordering::Relaxed),
            self.inner.bytes_fetched.load(Ordering::Relaxed),
        )
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(hex)
    }

    fn layer_path(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.inner.root.join("layers").join(sha256_hex(diff_id)?))
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        self.inner
            .root
            .join("tmp")
            .join(format!("{what}-{}", unique_suffix()))
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.inner.inflight.lock().unwrap();
        // Forget locks nobody holds any more, so the map stays small.
        m.retain(|_, l| Arc::strong_count(l) > 1);
        m.entry(key.to_string()).or_default().clone()
    }

    fn pin(&self, diff_ids: &[String]) -> Pins {
        let layers: Vec<String> = diff_ids
            .iter()
            .filter_map(|d| sha256_hex(d).ok().map(str::to_string))
            .collect();
        let mut st = self.inner.state.lock().unwrap();
        for l in &layers {
            *st.pins.entry(l.clone()).or_default() += 1;
        }
        Pins {
            inner: self.inner.clone(),
            layers,
        }
    }

    pub(crate) fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_path(diff_id).is_ok_and(|p| p.is_dir())
    }

    /// Store a small blob (manifest, config) under its digest.
    pub(crate) fn put_blob(&self, data: &[u8]) -> Result<String> {
        let digest = sha256_digest(data);
        let p = self.blob_path(sha256_hex(&digest)?);
        if !p.exists() {
            write_atomic(&p, data)?;
        }
        Ok(digest)
    }

    fn read_blob(&self, digest: &str) -> Option<Vec<u8>> {
        let data = fs::read(self.blob_path(sha256_hex(digest).ok()?)).ok()?;
        (sha256_digest(&data) == digest).then_some(data)
    }

    /// Unpack a layer from `reader` into `layers/<diff id>` unless present; verifies the diff
    /// id (and the blob digest when given) before the layer becomes visible.
    pub(crate) fn unpack_layer_from(&self, spec: &LayerSpec, reader: impl io::Read) -> Result<()> {
        let dest = self.layer_path(&spec.diff_id)?;
        if dest.is_dir() {
            return Ok(());
        }
        let tmp = self
            .inner
            .root
            .join("layers")
            .join(format!(".tmp-{}", unique_suffix()));
        fs::create_dir(&tmp).map_err(io_err(format!("mkdir {}", tmp.display())))?;
        let cleanup = |e: Error| {
            let _ = fs::remove_dir_all(&tmp);
            e
        };
        let got = unpack::unpack_layer(reader, &tmp).map_err(cleanup)?;
        if got.diff_id != spec.diff_id {
            return Err(cleanup(Error::Invalid(format!(
                "layer failed verification: its uncompressed content has digest {}, the image config says {}",
                got.diff_id, spec.diff_id
            ))));
        }
        if let Some(b) = &spec.blob_digest {
            if &got.blob_digest != b {
                return Err(cleanup(Error::Invalid(format!(
                    "layer blob {b} failed verification: content has digest {}",
                    got.blob_digest
                ))));
            }
        }
        let hex = sha256_hex(&spec.diff_id)?.to_string();
        let size = unpack::disk_size(&tmp);
        write_atomic(
            &self
                .inner
                .root
                .join("layermeta")
                .join(format!("{hex}.json")),
            serde_json::json!({ "size": size, "blob": spec.blob_digest })
                .to_string()
                .as_bytes(),
        )
        .map_err(cleanup)?;
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_dir_all(&tmp);
            if !dest.is_dir() {
                return Err(Error::io(format!("rename to {}", dest.display()), e));
            }
        }
        self.inner
            .state
            .lock()
            .unwrap()
            .layer_sizes
            .insert(hex, size);
        Ok(())
    }

    /// Add or update an image record; tags move from any image that had them.
    pub(crate) fn record(&self, mut image: Image, blobs: Vec<String>) -> Result<Image> {
        let mut st = self.inner.state.lock().unwrap();
        let mut touched = Vec::new();
        for (id, r) in st.images.iter_mut() {
            if *id == image.id {
                continue;
            }
            let before = r.image.repo_tags.len();
            r.image.repo_tags.retain(|t| !image.repo_tags.contains(t));
            if r.image.repo_tags.len() != before {
                touched.push(id.clone());
            }
        }
        if let Some(old) = st.images.get(&image.id) {
            for t in &old.image.repo_tags {
                if !image.repo_tags.contains(t) {
                    image.repo_tags.push(t.clone());
                }
            }
            for d in &old.image.repo_digests {
                if !image.repo_digests.contains(d) {
                    image.repo_digests.push(d.clone());
                }
            }
        }
        let mut all_blobs = st
            .images
            .get(&image.id)
            .map(|r| r.blobs.clone())
            .unwrap_or_default();
        for b in blobs {
            if !all_blobs.contains(&b) {
                all_blobs.push(b);
            }
        }
        let rec = Record {
            image: image.clone(),
            last_used: now_ms(),
            blobs: all_blobs,
        };
        touched.push(image.id.clone());
        st.images.insert(image.id.clone(), rec);
        for id in touched {
            self.persist(&st, &id)?;
        }
        Ok(image)
    }

    fn persist(&self, st: &State, id: &str) -> Result<()> {
        let Some(r) = st.images.get(id) else {
            return Ok(());
        };
        let p = self
            .inner
            .root
            .join("images")
            .join(format!("{}.json", sha256_hex(id)?));
        let data = serde_json::to_vec_pretty(r).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&p, &data)
    }

    fn touch(&self, id: &str) {
        let mut st = self.inner.state.lock().unwrap();
        if let Some(r) = st.images.get_mut(id) {
            r.last_used = now_ms();
            if let Err(e) = self.persist(&st, id) {
                tracing::warn!(error = %e, "could not record image use");
            }
        }
    }

    /// Pull `reference` from its registry (by digest if it has one, else by tag).
    pub async fn pull(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
        opts: &PullOptions,
    ) -> Result<Image, PullError> {
        let mut session = Session::new(
            self.inner.client.clone(),
            reference,
            creds,
            &opts.insecure_registries,
        );
        session.authenticate().await?;
        let (ct, top, top_digest) = session.manifest(reference.object()).await?;
        let mut blobs = vec![self.put_blob(&top)?];
        let manifest = match oci::parse_manifest(&ct, &top)? {
            ManifestKind::Image(m) => m,
            ManifestKind::Index(index) => {
                let desc = index.select(&opts.platform).ok_or_else(|| {
                    PullError::NotFound(format!(
                        "failed to pull {:?}: no match for platform {} in manifest {top_digest} (it has: {})",
                        reference.to_string(),
                        opts.platform,
                        index.platforms()
                    ))
                })?;
                registry::check_digest(&desc.digest)?;
                let (ct, body, _) = session.manifest(&desc.digest).await?;
                blobs.push(self.put_blob(&body)?);
                match oci::parse_manifest(&ct, &body)? {
                    ManifestKind::Image(m) => m,
                    ManifestKind::Index(_) => {
                        return Err(PullError::Invalid(format!(
                            "failed to pull {:?}: nested image indexes are not supported",
                            reference.to_string()
                        )))
                    }
                }
            }
        };
        let config_digest = manifest.config.digest.clone();
        registry::check_digest(&config_digest)?;
        let config_lock = self.lock_for(&config_digest);
        let config_held = config_lock.lock().await;
        let config_bytes = match self.read_blob(&config_digest) {
            Some(b) => b,
            None => {
                let b = session.blob_bytes(&config_digest).await?;
                self.inner.blobs_fetched.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .bytes_fetched
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                self.put_blob(&b)?;
                b.to_vec()
            }
        };
        drop(config_held);
        blobs.push(config_digest.clone());
        let config = oci::parse_config(&config_bytes)?;
        let platform_known = !config.os.is_empty() || !config.architecture.is_empty();
        if platform_known
            && !opts
                .platform
                .matches(&config.os, &config.architecture, config.variant.as_deref())
        {
            // containerd pulls these too; the container will fail with "exec format error".
            tracing::warn!(image = %reference, os = %config.os, arch = %config.architecture,
                "image is built for another platform than {}", opts.platform);
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(PullError::Invalid(format!(
                "failed to pull {:?}: manifest lists {} layers but the config {} diff ids",
                reference.to_string(),
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        for d in manifest
            .layers
            .iter()
            .map(|l| &l.digest)
            .chain(&config.rootfs.diff_ids)
        {
            registry::check_digest(d)?;
        }
        let _pins = self.pin(&config.rootfs.diff_ids);

        // Up to three layers at a time, as containerd does by default.
        let sem = Arc::new(tokio::sync::Semaphore::new(3));
        let mut tasks = tokio::task::JoinSet::new();
        for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let (store, session, sem) = (self.clone(), session.clone(), sem.clone());
            let (digest, size, diff_id) = (desc.digest.clone(), desc.size, diff_id.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                store.fetch_layer(&session, &digest, size, &diff_id).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(r) => r?,
                Err(e) => return Err(PullError::Invalid(format!("layer task failed: {e}"))),
            }
        }

        let name = reference.name();
        let image = Image {
            id: config_digest,
            repo_digests: vec![format!("{name}@{top_digest}")],
            repo_tags: reference
                .tag
                .iter()
                .map(|t| format!("{name}:{t}"))
                .collect(),
            config: ImageConfig::from_oci(&config),
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            layers: config.rootfs.diff_ids.clone(),
        };
        Ok(self.record(image, blobs)?)
    }

    async fn fetch_layer(
        &self,
        session: &Session,
        digest: &str,
        size: u64,
        diff_id: &str,
    ) -> Result<(), PullError> {
        let lock = self.lock_for(diff_id);
        let _held = lock.lock().await;
        if self.has_layer(diff_id) {
            return Ok(());
        }
        let hex = sha256_hex(digest)?.to_string();
        let blob = self.blob_path(&hex);
        if !blob.exists() {
            let tmp = self.tmp_path(&hex);
            let res = session.blob_to_file(digest, size, &tmp).await;
            match res {
                Ok(n) => {
                    self.inner.blobs_fetched.fetch_add(1, Ordering::Relaxed);
                    self.inner.bytes_fetched.fetch_add(n, Ordering::Relaxed);
                    fs::rename(&tmp, &blob).map_err(|e| {
                        let _ = fs::remove_file(&tmp);
                        PullError::Io {
                            context: format!("rename to {}", blob.display()),
                            source: e,
                        }
                    })?;
                }
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        let store = self.clone();
        let spec = LayerSpec {
            diff_id: diff_id.to_string(),
            blob_digest: Some(digest.to_string()),
        };
        let blob2 = blob.clone();
        tokio::task::spawn_blocking(move || {
            let f = fs::File::open(&blob2).map_err(io_err(format!("open {}", blob2.display())))?;
            store.unpack_layer_from(&spec, io::BufReader::with_capacity(256 << 10, f))
        })
        .await
        .map_err(|e| PullError::Invalid(format!("unpack task failed: {e}")))??;
        // The unpacked layer is what is kept; the compressed copy would double the disk use.
        let _ = fs::remove_file(&blob);
        Ok(())
    }

    /// The image `reference` names: by digest (repo digest or image id) or by tag.
    pub fn get(&self, reference: &Reference) -> Option<Image> {
        let st = self.inner.state.lock().unwrap();
        let name = reference.name();
        let found = match &reference.digest {
            Some(d) => {
                let rd = format!("{name}@{d}");
                st.images
                    .values()
                    .find(|r| r.image.repo_digests.contains(&rd))
                    .or_else(|| st.images.get(d))
            }
            None => {
                let tag = format!("{name}:{}", reference.tag.as_deref().unwrap_or("latest"));
                st.images
                    .values()
                    .find(|r| r.image.repo_tags.contains(&tag))
            }
        };
        found.map(|r| r.image.clone())
    }

    /// By image id: `sha256:<hex>`, `<hex>`, or an unambiguous hex prefix of 12+ characters.
    pub fn get_by_id(&self, id: &str) -> Option<Image> {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        if hex.len() < 12 {
            return None;
        }
        let st = self.inner.state.lock().unwrap();
        let mut hits = st
            .images
            .values()
            .filter(|r| r.image.id["sha256:".len()..].starts_with(hex));
        match (hits.next(), hits.next()) {
            (Some(r), None) => Some(r.image.clone()),
            _ => None,
        }
    }

    /// An image by id or by reference string, as the kubelet's `image` field may be either.
    pub fn resolve(&self, name_or_id: &str) -> Option<Image> {
        if let Some(i) = self.get_by_id(name_or_id) {
            return Some(i);
        }
        Reference::parse(name_or_id).ok().and_then(|r| self.get(&r))
    }

    /// Every image in the store.
    pub fn list(&self) -> Vec<Image> {
        let st = self.inner.state.lock().unwrap();
        st.images.values().map(|r| r.image.clone()).collect()
    }

    /// Import every image of an `oci-archive` or `docker-archive` tarball.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<Image>> {
        crate::archive::import(self, path)
    }

    pub(crate) fn pin_layers(&self, diff_ids: &[String]) -> impl Drop {
        self.pin(diff_ids)
    }

    /// Mount `image` at `dir/rootfs` (overlay: its layers below, `dir/upper` and `dir/work`).
    pub fn prepare_rootfs(&self, image: &Image, dir: &Path) -> Result<Rootfs> {
        let mut lowers = Vec::with_capacity(image.layers.len());
        for l in image.layers.iter().rev() {
            let p = self.layer_path(l)?;
            if !p.is_dir() {
                return Err(Error::NotFound(format!(
                    "layer {l} of image {} is not in the store (pull the image again)",
                    image.id
                )));
            }
            lowers.push(p);
        }
        let rootfs = mount_overlay(&lowers, dir)?;
        self.touch(&image.id);
        Ok(rootfs)
    }

    /// Remove an image (by id, with or without `sha256:`) and whatever only it used.
    pub fn remove(&self, image_id: &str) -> Result<()> {
        let id = if image_id.starts_with("sha256:") {
            image_id.to_string()
        } else {
            format!("sha256:{image_id}")
        };
        let mut st = self.inner.state.lock().unwrap();
        let rec = st
            .images
            .remove(&id)
            .ok_or_else(|| Error::NotFound(format!("image {id} not found")))?;
        let rec_path = self
            .inner
            .root
            .join("images")
            .join(format!("{}.json", sha256_hex(&id)?));
        if let Err(e) = fs::remove_file(&rec_path) {
            if e.kind() != io::ErrorKind::NotFound {
                st.images.insert(id.clone(), rec);
                return Err(Error::io(format!("remove {}", rec_path.display()), e));
            }
        }
        let used_layers: HashSet<&String> =
            st.images.values().flat_map(|r| &r.image.layers).collect();
        let used_blobs: HashSet<&String> = st.images.values().flat_map(|r| &r.blobs).collect();
        let mut freed_layers = Vec::new();
        for l in &rec.image.layers {
            let Ok(hex) = sha256_hex(l) else { continue };
            if used_layers.contains(l) || st.pins.contains_key(hex) {
                continue;
            }
            freed_layers.push(hex.to_string());
        }
        for b in &rec.blobs {
            if !used_blobs.contains(b) {
                if let Ok(hex) = sha256_hex(b) {
                    let _ = fs::remove_file(self.blob_path(hex));
                }
            }
        }
        for hex in freed_layers {
            st.layer_sizes.remove(&hex);
            let p = self.inner.root.join("layers").join(&hex);
            // Renamed away first: a half-deleted layer must never look like a whole one.
            let doomed = self
                .inner
                .root
                .join("layers")
                .join(format!(".tmp-del-{}", unique_suffix()));
            if fs::rename(&p, &doomed).is_ok() {
                let _ = fs::remove_dir_all(&doomed);
            }
            let _ = fs::remove_file(
                self.inner
                    .root
                    .join("layermeta")
                    .join(format!("{hex}.json")),
            );
        }
        Ok(())
    }

    /// Remove images not in `in_use` (ids, repo tags or repo digests), least recently used
    /// first, until the store holds at most `target_bytes`. Returns the bytes freed.
    pub fn gc(&self, in_use: &HashSet<String>, target_bytes: u64) -> Result<u64> {
        let start = self.disk_usage();
        let mut usage = start;
        let mut candidates: Vec<(u64, String)> = {
            let st = self.inner.state.lock().unwrap();
            st.images
                .values()
                .filter(|r| {
                    !in_use.contains(&r.image.id)
                        && !r.image.repo_tags.iter().any(|t| in_use.contains(t))
                        && !r.image.repo_digests.iter().any(|d| in_use.contains(d))
                })
                .map(|r| (r.last_used, r.image.id.clone()))
                .collect()
        };
        candidates.sort();
        for (_, id) in candidates {
            if usage <= target_bytes {
                break;
            }
            match self.remove(&id) {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            usage = self.disk_usage();
        }
        Ok(start.saturating_sub(usage))
    }

    /// Bytes the store takes on disk: blobs plus unpacked layers.
    pub fn disk_usage(&self) -> u64 {
        let layers: u64 = self.inner.state.lock().unwrap().layer_sizes.values().sum();
        let blobs: u64 = fs::read_dir(self.inner.root.join("blobs/sha256"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
                    .sum()
            })
            .unwrap_or(0);
        layers + blobs
    }
}
