//! Layer unpacking into an overlay-ready directory.
//!
//! Every path is resolved component by component below the layer root with chroot semantics
//! (absolute symlink targets start at the root), and `..` that would climb out of it (in an
//! entry name, a hard-link target or through a symlink) is refused, so nothing is ever written
//! outside the layer directory. Whiteouts become what overlayfs reads in a lower layer:
//! `.wh.<name>` a 0:0 character device, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr.

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use crate::digest::Hasher;
use crate::error::{Error, Result};

/// What unpacking learnt about the layer.
#[derive(Debug, Clone)]
pub(crate) struct Unpacked {
    /// sha256 of the uncompressed tar (the diff id).
    pub diff_id: String,
    /// sha256 of the bytes read (the blob as stored or sent).
    pub blob_digest: String,
}

const MAX_SYMLINK_HOPS: usize = 40;

struct HashRef<'h, R> {
    inner: R,
    hasher: &'h mut Hasher,
}

impl<R: Read> Read for HashRef<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpack a layer blob (gzip-compressed or plain tar) into the existing empty directory `dest`.
pub(crate) fn unpack_layer<R: Read>(blob: R, dest: &Path) -> Result<Unpacked> {
    let mut blob_hasher = Hasher::default();
    let mut diff_hasher = Hasher::default();
    {
        let mut raw = BufReader::with_capacity(
            256 * 1024,
            HashRef {
                inner: blob,
                hasher: &mut blob_hasher,
            },
        );
        let head = raw.fill_buf().map_err(|e| Error::io("reading layer", e))?;
        let decompressed: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(Error::Invalid(
                "zstd-compressed layers are not supported by this node".into(),
            ));
        } else {
            Box::new(raw)
        };
        let mut tar_stream = HashRef {
            inner: decompressed,
            hasher: &mut diff_hasher,
        };
        let mut unpacker = Unpacker {
            root: dest,
            dirs: Vec::new(),
        };
        {
            let mut archive = tar::Archive::new(&mut tar_stream);
            let entries = archive
                .entries()
                .map_err(|e| Error::io("reading layer tar", e))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| Error::io("reading layer tar", e))?;
                unpacker.entry(&mut entry)?;
            }
        }
        // The diff id covers the whole stream, including the zero blocks after the last entry.
        io::copy(&mut tar_stream, &mut io::sink()).map_err(|e| Error::io("reading layer", e))?;
        unpacker.finish_dirs()?;
    }
    Ok(Unpacked {
        diff_id: diff_hasher.digest(),
        blob_digest: blob_hasher.digest(),
    })
}

/// Bytes a directory tree takes on disk (hard links counted once).
pub(crate) fn disk_size(dir: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) {
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            *total += m.blocks() * 512;
            if m.is_dir() {
                walk(&e.path(), seen, total);
            }
        }
    }
    let mut total = 0;
    walk(dir, &mut HashSet::new(), &mut total);
    total
}

struct Unpacker<'a> {
    root: &'a Path,
    /// Directory mtimes are set last: creating children would change them again.
    dirs: Vec<(PathBuf, u64)>,
}

fn invalid(path: &Path, why: &str) -> Error {
    Error::Invalid(format!(
        "refusing layer entry {:?}: {why}",
        path.to_string_lossy()
    ))
}

/// Entry names as components below the root; `..` and absolute names are refused.
fn clean(path: &Path) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid(path, "contains '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(path, "absolute path"))
            }
        }
    }
    Ok(out)
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("path with NUL byte: {p:?}")))
}

fn errno(what: &str, p: &Path) -> Error {
    Error::io(
        format!("{what} {}", p.display()),
        io::Error::last_os_error(),
    )
}

fn lchown(p: &Path, uid: u64, gid: u64) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(uid as u32), Some(gid as u32))
        .map_err(|e| Error::io(format!("chown {}", p.display()), e))
}

fn set_mtime(p: &Path, secs: u64) -> Result<()> {
    let c = cpath(p)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: c is a valid C string, times points to two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(errno("utimensat", p));
    }
    Ok(())
}

pub(crate) fn lsetxattr(p: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c = cpath(p)?;
    let n = CString::new(name).map_err(|_| Error::Invalid(format!("xattr name {name:?}")))?;
    // SAFETY: valid C strings and a value buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(errno(&format!("setxattr {name} on"), p));
    }
    Ok(())
}

fn mknod(p: &Path, kind: libc::mode_t, perm: u32, major: u32, minor: u32) -> Result<()> {
    let c = cpath(p)?;
    // SAFETY: valid C string; mknod has no memory effects.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            kind | (perm as libc::mode_t & 0o7777),
            libc::makedev(major, minor),
        )
    };
    if rc != 0 {
        return Err(errno("mknod", p));
    }
    Ok(())
}

impl Unpacker<'_> {
    /// The real directory for `comps` below the root, following symlinks inside the root and
    /// creating missing directories when `create`.
    fn resolve_dir(&self, entry: &Path, comps: &[OsString], create: bool) -> Result<PathBuf> {
        let mut real: Vec<OsString> = Vec::new();
        let mut todo: std::collections::VecDeque<OsString> = comps.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c == "." {
                continue;
            }
            if c == ".." {
                if real.pop().is_none() {
                    return Err(invalid(entry, "a symlink leads out of the layer"));
                }
                continue;
            }
            let mut p = self.root.to_path_buf();
            p.extend(&real);
            p.push(&c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => real.push(c),
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(invalid(entry, "too many levels of symlinks"));
                    }
                    let target = fs::read_link(&p)
                        .map_err(|e| Error::io(format!("readlink {}", p.display()), e))?;
                    if target.is_absolute() {
                        real.clear();
                    }
                    let mut expanded: Vec<OsString> = target
                        .components()
                        .filter_map(|tc| match tc {
                            Component::Normal(n) => Some(n.to_os_string()),
                            Component::ParentDir => Some(OsString::from("..")),
                            _ => None,
                        })
                        .collect();
                    expanded.extend(todo.drain(..));
                    todo = expanded.into();
                }
                Ok(_) => return Err(invalid(entry, "a parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&p)
                        .map_err(|e| Error::io(format!("mkdir {}", p.display()), e))?;
                    real.push(c);
                }
                Err(e) => return Err(Error::io(format!("stat {}", p.display()), e)),
            }
        }
        let mut p = self.root.to_path_buf();
        p.extend(&real);
        Ok(p)
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = e.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw_path = e
            .path()
            .map_err(|err| Error::io("reading layer entry name", err))?
            .into_owned();
        let comps = clean(&raw_path)?;
        let Some((name, parents)) = comps.split_last() else {
            return Ok(()); // the layer root itself: its metadata is the image's, not the layer's
        };
        let parent = self.resolve_dir(&raw_path, parents, true)?;
        let name_bytes = name.as_bytes();

        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            if hidden == b".wh..opq" {
                return lsetxattr(&parent, "trusted.overlay.opaque", b"y");
            }
            if hidden.starts_with(b".wh.") || hidden.is_empty() {
                return Ok(()); // aufs bookkeeping (.wh..wh.plnk etc.), meaningless to overlay
            }
            // `.wh..` and `.wh...` would name the directory itself or its parent, which the
            // removal below would delete, outside the layer for an entry at its top
            if hidden == b"." || hidden == b".." {
                return Err(invalid(&raw_path, "whiteout of '.' or '..'"));
            }
            let target = parent.join(OsStr::from_bytes(hidden));
            remove_existing(&target, false)?;
            return mknod(&target, libc::S_IFCHR, 0, 0, 0);
        }

        let target = parent.join(name);
        remove_existing(&target, kind == EntryType::Directory)?;

        let hdr = e.header().clone();
        let mut mode = hdr.mode().map_err(|err| Error::io("entry mode", err))? & 0o7777;
        let mut uid = hdr.uid().unwrap_or(0);
        let mut gid = hdr.gid().unwrap_or(0);
        let mut mtime = hdr.mtime().unwrap_or(0);
        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        if let Ok(Some(pax)) = e.pax_extensions() {
            for ext in pax.flatten() {
                let (Ok(k), v) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                let num = || {
                    std::str::from_utf8(v)
                        .ok()?
                        .split('.')
                        .next()?
                        .parse::<u64>()
                        .ok()
                };
                match k {
                    "uid" => uid = num().unwrap_or(uid),
                    "gid" => gid = num().unwrap_or(gid),
                    "mtime" => mtime = num().unwrap_or(mtime),
                    _ => {
                        if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((x.to_string(), v.to_vec()));
                        }
                    }
                }
            }
        }

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(|err| Error::io(format!("create {}", target.display()), err))?;
                io::copy(e, &mut f)
                    .map_err(|err| Error::io(format!("write {}", target.display()), err))?;
                write_meta(&f, &target, uid, gid, mode)?;
            }
            EntryType::Directory => {
                if !target.is_dir() {
                    fs::create_dir(&target)
                        .map_err(|err| Error::io(format!("mkdir {}", target.display()), err))?;
                }
                lchown(&target, uid, gid)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|err| Error::io(format!("chmod {}", target.display()), err))?;
                self.dirs.push((target.clone(), mtime));
            }
            EntryType::Symlink => {
                let link = e
                    .link_name()
                    .map_err(|err| Error::io("symlink target", err))?
                    .ok_or_else(|| invalid(&raw_path, "symlink without a target"))?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|err| Error::io(format!("symlink {}", target.display()), err))?;
                lchown(&target, uid, gid)?;
                mode = 0; // symlinks have no mode of their own
            }
            EntryType::Link => {
                let link = e
                    .link_name()
                    .map_err(|err| Error::io("hard link target", err))?
                    .ok_or_else(|| invalid(&raw_path, "hard link without a target"))?
                    .into_owned();
                let lcomps = clean(&link)?;
                let Some((lname, lparents)) = lcomps.split_last() else {
                    return Err(invalid(&raw_path, "hard link to the layer root"));
                };
                let source = self.resolve_dir(&link, lparents, false)?.join(lname);
                let m = fs::symlink_metadata(&source).map_err(|err| {
                    Error::io(
                        format!("hard link {} to {}", raw_path.display(), link.display()),
                        err,
                    )
                })?;
                if m.is_dir() {
                    return Err(invalid(&raw_path, "hard link to a directory"));
                }
                fs::hard_link(&source, &target)
                    .map_err(|err| Error::io(format!("link {}", target.display()), err))?;
                return Ok(()); // shares the source's inode and metadata
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                mknod(&target, ft, mode, major, minor)?;
                lchown(&target, uid, gid)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|err| Error::io(format!("chmod {}", target.display()), err))?;
            }
            other => {
                tracing::debug!(path = %raw_path.display(), ?other, "skipping unsupported layer entry type");
                return Ok(());
            }
        }
        let _ = mode;
        for (name, value) in xattrs {
            if let Err(err) = lsetxattr(&target, &name, &value) {
                // e.g. an xattr namespace this filesystem lacks; the file itself is still right
                tracing::warn!(%err, "layer xattr not applied");
            }
        }
        if kind != EntryType::Directory {
            set_mtime(&target, mtime)?;
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first, so setting a child's time does not disturb its parent's afterwards.
        self.dirs
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (p, t) in self.dirs.drain(..) {
            set_mtime(&p, t)?;
        }
        Ok(())
    }
}

fn write_meta(f: &File, p: &Path, uid: u64, gid: u64, mode: u32) -> Result<()> {
    // chown before chmod: chown clears setuid/setgid bits.
    std::os::unix::fs::fchown(f, Some(uid as u32), Some(gid as u32))
        .map_err(|e| Error::io(format!("chown {}", p.display()), e))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", p.display()), e))
}

/// A later entry replaces an earlier one of the same name, except directory over directory.
fn remove_existing(p: &Path, keep_dir: bool) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            if keep_dir {
                Ok(())
            } else {
                fs::remove_dir_all(p).map_err(|e| Error::io(format!("remove {}", p.display()), e))
            }
        }
        Ok(_) => fs::remove_file(p).map_err(|e| Error::io(format!("remove {}", p.display()), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("stat {}", p.display()), e)),
    }
}
