//! Helpers for tests in this and other crates (feature `test-support`): OCI image layouts
//! built in Rust (a busybox image from the host's static `/bin/busybox`), a local
//! `docker-registry` process, and `skopeo` pushes.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::digest::sha256_digest;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Applets linked to busybox in the test image.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "echo",
    "cat",
    "sleep",
    "ls",
    "wget",
    "httpd",
    "nc",
    "id",
    "hostname",
    "head",
    "tail",
    "dd",
    "true",
    "false",
    "env",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "touch",
    "ps",
    "kill",
    "grep",
    "sed",
    "awk",
    "wc",
    "test",
    "[",
    "printf",
    "pwd",
    "date",
    "uname",
    "whoami",
    "chmod",
    "chown",
    "ln",
    "mount",
    "umount",
    "stat",
    "sync",
    "tee",
    "which",
    "seq",
    "nslookup",
    "ping",
    "ip",
    "ifconfig",
    "netstat",
    "top",
    "vi",
    "find",
    "xargs",
    "tr",
    "cut",
    "sort",
    "uniq",
    "basename",
    "dirname",
    "readlink",
    "realpath",
    "yes",
    "timeout",
    "nohup",
    "du",
    "df",
    "free",
    "sha256sum",
    "md5sum",
    "base64",
    "tar",
    "gzip",
    "gunzip",
    "nproc",
    "expr",
];

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn io(ctx: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(ctx.to_string(), e)
}

/// Builds an uncompressed layer tar in memory.
pub struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer; entries get a fixed owner (root) and mtime, so the bytes are reproducible.
    pub fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        LayerBuilder { b }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    /// Adds a directory.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.b
            .append_data(&mut h, path, std::io::empty())
            .expect("tar dir");
        self
    }

    /// Adds a regular file with `data`.
    pub fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data).expect("tar file");
        self
    }

    /// Adds a symlink to `target`.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b
            .append_link(&mut h, path, target)
            .expect("tar symlink");
        self
    }

    /// Adds a hard link to the earlier entry `target`.
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.b
            .append_link(&mut h, path, target)
            .expect("tar hardlink");
        self
    }

    /// An entry with a raw name, bypassing the tar crate's own checks (for hostile layers).
    pub fn raw_file(mut self, name: &[u8], data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        self.b.append(&h, data).expect("tar raw");
        self
    }

    /// A symlink with a raw name and target.
    pub fn raw_symlink(mut self, name: &[u8], target: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname = [0; 100];
        gnu.linkname[..target.len()].copy_from_slice(target);
        h.set_cksum();
        self.b
            .append(&h, std::io::empty())
            .expect("tar raw symlink");
        self
    }

    /// The tar bytes.
    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("tar finish")
    }
}

/// A layer with `/bin/busybox` (copied from the host) and its applets as symlinks, `/tmp`,
/// and minimal `/etc/passwd` and `/etc/group`.
pub fn busybox_layer() -> Result<Vec<u8>> {
    let bb = fs::read("/bin/busybox").map_err(io("read /bin/busybox (install busybox-static)"))?;
    let mut l = LayerBuilder::new()
        .dir("bin/", 0o755)
        .file("bin/busybox", 0o755, &bb);
    for a in BUSYBOX_APPLETS {
        l = l.symlink(&format!("bin/{a}"), "busybox");
    }
    Ok(l.dir("etc/", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
        .dir("root/", 0o700)
        .dir("tmp/", 0o1777)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .finish())
}

/// Digests of one image written into a layout.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// `sha256:` of the manifest.
    pub manifest_digest: String,
    /// `sha256:` of the config: the image id.
    pub image_id: String,
    /// Diff ids, bottom first.
    pub diff_ids: Vec<String>,
}

fn write_blob(dir: &Path, data: &[u8]) -> Result<String> {
    let d = sha256_digest(data);
    let p = dir.join("blobs/sha256").join(&d["sha256:".len()..]);
    fs::create_dir_all(p.parent().expect("parent")).map_err(io("mkdir blobs"))?;
    fs::write(&p, data).map_err(io("write blob"))?;
    Ok(d)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Write an image (gzip-compressed `layers`, bottom first, given uncompressed) into the OCI
/// layout at `dir` without naming it. `config` is the image config's `config` section.
pub fn write_oci_image(
    dir: &Path,
    layers: &[Vec<u8>],
    config: serde_json::Value,
    platform: &Platform,
) -> Result<LayoutImage> {
    let mut diff_ids = Vec::new();
    let mut layer_descs = Vec::new();
    for l in layers {
        diff_ids.push(sha256_digest(l));
        let gz = gzip(l);
        let d = write_blob(dir, &gz)?;
        layer_descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
    }
    let mut cfg = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "reddwarf-images testsupport"}],
    });
    if let Some(v) = &platform.variant {
        cfg["variant"] = json!(v);
    }
    let cfg_bytes = serde_json::to_vec(&cfg).expect("json");
    let cfg_digest = write_blob(dir, &cfg_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_bytes.len()},
        "layers": layer_descs,
    });
    let m_bytes = serde_json::to_vec(&manifest).expect("json");
    let m_digest = write_blob(dir, &m_bytes)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io("write oci-layout"))?;
    Ok(LayoutImage {
        manifest_digest: m_digest,
        image_id: cfg_digest,
        diff_ids,
    })
}

/// Add `desc` to the layout's index.json under `tag` (replacing an entry with that tag).
pub fn add_to_index(dir: &Path, tag: &str, mut desc: serde_json::Value) -> Result<()> {
    let path = dir.join("index.json");
    let mut index = match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Invalid(e.to_string()))?,
        Err(_) => json!({"schemaVersion": 2, "manifests": []}),
    };
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let list = index["manifests"].as_array_mut().expect("manifests");
    list.retain(|d| d["annotations"]["org.opencontainers.image.ref.name"] != json!(tag));
    list.push(desc);
    fs::write(&path, serde_json::to_vec(&index).expect("json")).map_err(io("write index.json"))
}

fn manifest_desc(dir: &Path, digest: &str, media_type: &str) -> serde_json::Value {
    let size = fs::metadata(dir.join("blobs/sha256").join(&digest["sha256:".len()..]))
        .map(|m| m.len())
        .unwrap_or(0);
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// An image with `layers` written into the layout at `dir` and named `tag` there.
pub fn build_oci_layout(
    dir: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    config: serde_json::Value,
) -> Result<LayoutImage> {
    let img = write_oci_image(dir, layers, config, &Platform::host())?;
    add_to_index(
        dir,
        tag,
        manifest_desc(
            dir,
            &img.manifest_digest,
            "application/vnd.oci.image.manifest.v1+json",
        ),
    )?;
    Ok(img)
}

/// The busybox test image (Cmd `["sh"]`) as `tag` in the OCI layout at `dir`.
pub fn build_busybox_oci_layout(dir: &Path, tag: &str) -> Result<()> {
    build_busybox_oci_layout_image(dir, tag).map(|_| ())
}

/// As [`build_busybox_oci_layout`], returning the digests.
pub fn build_busybox_oci_layout_image(dir: &Path, tag: &str) -> Result<LayoutImage> {
    build_oci_layout(
        dir,
        tag,
        &[busybox_layer()?],
        json!({"Cmd": ["sh"], "Env": [PATH_ENV]}),
    )
}

/// A two-platform image as `tag`: an index with the busybox image for this host and a
/// one-file image for another architecture.
#[derive(Debug, Clone)]
pub struct MultiPlatformLayout {
    /// The digest of the image index.
    pub index_digest: String,
    /// The busybox image for this host's platform.
    pub host: LayoutImage,
    /// The one-file image (`cat /platform.txt`) for the other platform.
    pub other: LayoutImage,
    /// That other platform: `linux/arm64/v8`, or `linux/amd64` on an arm64 host.
    pub other_platform: Platform,
}

/// Writes [`MultiPlatformLayout`] into the OCI layout at `dir`, tagged `tag`; the index lists the foreign platform first.
pub fn build_multiplatform_oci_layout(dir: &Path, tag: &str) -> Result<MultiPlatformLayout> {
    let host_p = Platform::host();
    let other_p = if host_p.architecture == "arm64" {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    } else {
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }
    };
    let host = write_oci_image(
        dir,
        &[busybox_layer()?],
        json!({"Cmd": ["sh"], "Env": [PATH_ENV]}),
        &host_p,
    )?;
    let other_layer = LayerBuilder::new()
        .file("platform.txt", 0o644, other_p.to_string().as_bytes())
        .finish();
    let other = write_oci_image(
        dir,
        &[other_layer],
        json!({"Cmd": ["cat", "/platform.txt"]}),
        &other_p,
    )?;
    let plat = |p: &Platform| {
        let mut v = json!({"os": p.os, "architecture": p.architecture});
        if let Some(var) = &p.variant {
            v["variant"] = json!(var);
        }
        v
    };
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let mut d_other = manifest_desc(dir, &other.manifest_digest, mt);
    d_other["platform"] = plat(&other_p);
    let mut d_host = manifest_desc(dir, &host.manifest_digest, mt);
    d_host["platform"] = plat(&host_p);
    // The foreign platform first, so picking the first entry would be caught.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [d_other, d_host],
    });
    let index_digest = write_blob(dir, &serde_json::to_vec(&index).expect("json"))?;
    add_to_index(
        dir,
        tag,
        manifest_desc(
            dir,
            &index_digest,
            "application/vnd.oci.image.index.v1+json",
        ),
    )?;
    Ok(MultiPlatformLayout {
        index_digest,
        host,
        other,
        other_platform: other_p,
    })
}

/// Tar an OCI layout directory into an `oci-archive` at `out` (in Rust, no skopeo).
pub fn oci_layout_to_archive(dir: &Path, out: &Path) -> Result<()> {
    let f = fs::File::create(out).map_err(io("create archive"))?;
    let mut b = tar::Builder::new(f);
    b.append_dir_all(".", dir).map_err(io("tar layout"))?;
    b.into_inner()
        .map_err(io("finish archive"))?
        .sync_all()
        .map_err(io("sync archive"))
}

/// Run `skopeo` with `args`; errors carry its stderr.
pub fn skopeo(args: &[&str]) -> Result<()> {
    let out = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io("run skopeo (install skopeo)"))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "skopeo {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// `skopeo copy oci:<layout>:<tag> docker://<dest>` to a plain-HTTP registry
/// (`dest` = `127.0.0.1:PORT/repo:tag`).
pub fn push_oci_layout(layout: &Path, tag: &str, dest: &str) -> Result<()> {
    push(layout, tag, dest, false, None)
}

/// As [`push_oci_layout`] with `--all`, keeping a multi-platform index as a manifest list.
pub fn push_oci_layout_all(layout: &Path, tag: &str, dest: &str) -> Result<()> {
    push(layout, tag, dest, true, None)
}

/// As [`push_oci_layout`] with registry credentials `user:password`.
pub fn push_oci_layout_creds(layout: &Path, tag: &str, dest: &str, creds: &str) -> Result<()> {
    push(layout, tag, dest, false, Some(creds))
}

fn push(layout: &Path, tag: &str, dest: &str, all: bool, creds: Option<&str>) -> Result<()> {
    let src = format!("oci:{}:{tag}", layout.display());
    let dst = format!("docker://{dest}");
    let mut args = vec!["copy", "--insecure-policy", "--dest-tls-verify=false"];
    if all {
        args.push("--all");
    }
    if let Some(c) = creds {
        args.push("--dest-creds");
        args.push(c);
    }
    args.push(&src);
    args.push(&dst);
    skopeo(&args)
}

/// How [`LocalRegistry::start_with`] sets the registry up.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Address to listen on; 127.0.0.1 when unset.
    pub ip: Option<std::net::IpAddr>,
    /// `user:<bcrypt hash>` lines: require Basic auth.
    pub htpasswd: Option<String>,
    /// PEM certificate and key: serve HTTPS.
    pub tls_pem: Option<(String, String)>,
}

/// The first non-loopback IPv4 address of this machine, if it has one (for tests that need
/// a registry the store does not treat as loopback).
pub fn non_loopback_ipv4() -> Option<std::net::IpAddr> {
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Debian's `docker-registry` serving plain HTTP on 127.0.0.1 with filesystem storage;
/// killed (by its PID) and its files removed on drop.
pub struct LocalRegistry {
    /// Where the registry listens.
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
    tls: bool,
}

impl LocalRegistry {
    /// Start a registry keeping its state in a new directory under `tmpdir`.
    pub fn start(tmpdir: &Path) -> Result<LocalRegistry> {
        Self::start_with(tmpdir, &RegistryOptions::default())
    }

    /// Start a registry requiring Basic auth; `htpasswd` holds `user:<bcrypt hash>` lines.
    pub fn start_with_htpasswd(tmpdir: &Path, htpasswd: &str) -> Result<LocalRegistry> {
        Self::start_with(
            tmpdir,
            &RegistryOptions {
                htpasswd: Some(htpasswd.to_string()),
                ..Default::default()
            },
        )
    }

    /// Starts a registry with `opts` (address, Basic auth, TLS) under `tmpdir`, retrying if its port was taken meanwhile.
    pub fn start_with(tmpdir: &Path, opts: &RegistryOptions) -> Result<LocalRegistry> {
        let ip = opts.ip.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let mut last_err = None;
        // A free port found by binding may be taken before the registry binds it: retry.
        for attempt in 0..3 {
            let dir = tmpdir.join(format!(
                "registry-{}-{attempt}-{}",
                std::process::id(),
                crate::digest::hex(&rand_bytes())
            ));
            fs::create_dir_all(dir.join("data")).map_err(io("mkdir registry dir"))?;
            let port = TcpListener::bind((ip, 0))
                .and_then(|l| l.local_addr())
                .map_err(io("find a free port"))?
                .port();
            let addr = SocketAddr::new(ip, port);
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            );
            if let Some((cert, key)) = &opts.tls_pem {
                fs::write(dir.join("tls.crt"), cert).map_err(io("write tls cert"))?;
                fs::write(dir.join("tls.key"), key).map_err(io("write tls key"))?;
                cfg.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.join("tls.crt").display(),
                    dir.join("tls.key").display()
                ));
            }
            if let Some(h) = &opts.htpasswd {
                fs::write(dir.join("htpasswd"), h).map_err(io("write htpasswd"))?;
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    dir.join("htpasswd").display()
                ));
            }
            fs::write(dir.join("config.yml"), cfg).map_err(io("write registry config"))?;
            let log =
                fs::File::create(dir.join("registry.log")).map_err(io("create registry log"))?;
            let child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(dir.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(io("dup log"))?)
                .stderr(log)
                .spawn()
                .map_err(io(
                    "start /usr/bin/docker-registry (install docker-registry)",
                ))?;
            let mut reg = LocalRegistry {
                addr,
                child,
                dir,
                tls: opts.tls_pem.is_some(),
            };
            match reg.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return Ok(reg),
                Err(e) => last_err = Some(e), // reg dropped: killed and cleaned
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Invalid("registry did not start".into())))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "docker-registry exited ({status}): {log}"
                )));
            }
            if self.tls {
                if TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_ok() {
                    return Ok(());
                }
            } else if let Ok(mut s) =
                TcpStream::connect_timeout(&self.addr, Duration::from_millis(500))
            {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut resp = String::new();
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_to_string(&mut resp).is_ok()
                    && (resp.starts_with("HTTP/1.0 200")
                        || resp.starts_with("HTTP/1.1 200")
                        || resp.contains(" 401 "))
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Invalid(format!(
                    "docker-registry on {} did not answer /v2/ in time",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, the registry part of references to it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's own storage directory (for tests that tamper with blobs).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn rand_bytes() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() as u32).to_le_bytes()
}
