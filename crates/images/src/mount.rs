//! Overlay root filesystems: `dir/rootfs` = overlay(lower = layers, upper = `dir/upper`,
//! work = `dir/work`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A mounted container root filesystem.
#[derive(Debug)]
pub struct Rootfs {
    /// The overlay mount point, `dir/rootfs`.
    pub path: PathBuf,
}

impl Rootfs {
    /// Unmount the overlay; the upper and work directories stay (see [`remove_rootfs`]).
    pub fn unmount(self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        unmount_rootfs(&dir)
    }

    /// The container's writable layer, `dir/upper`.
    pub fn upper_dir(&self) -> PathBuf {
        self.path.with_file_name("upper")
    }
}

/// The kernel takes mount data up to one page.
const MAX_MOUNT_DATA: usize = 4000;

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("path with NUL: {p:?}")))
}

fn check_overlay_path(p: &Path) -> Result<()> {
    let b = p.as_os_str().as_bytes();
    if b.iter().any(|c| matches!(c, b',' | b':' | b'\\')) {
        return Err(Error::Invalid(format!(
            "path {} cannot be used in overlay options (contains ',' ':' or '\\')",
            p.display()
        )));
    }
    Ok(())
}

/// Whether `path` is a mount point, from /proc/self/mountinfo.
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.as_os_str().as_bytes();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp).as_slice() == want)
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Mount `lowers` (topmost first) under `dir`. An existing mount at `dir/rootfs` is kept
/// (the agent restarted): preparing is idempotent.
pub(crate) fn mount_overlay(lowers: &[PathBuf], dir: &Path) -> Result<Rootfs> {
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("current dir", e))?
            .join(dir)
    };
    let rootfs = dir.join("rootfs");
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [&rootfs, &upper, &work] {
        fs::create_dir_all(d).map_err(|e| Error::io(format!("mkdir {}", d.display()), e))?;
    }
    if is_mounted(&rootfs) {
        return Ok(Rootfs { path: rootfs });
    }
    let mut lowers = lowers.to_vec();
    if lowers.is_empty() {
        // overlay needs a lower layer; an image without layers gets an empty one.
        let empty = dir.join("empty");
        fs::create_dir_all(&empty)
            .map_err(|e| Error::io(format!("mkdir {}", empty.display()), e))?;
        lowers.push(empty);
    }
    for p in lowers.iter().chain([&upper, &work]) {
        check_overlay_path(p)?;
    }
    let join = |ls: &[String]| {
        format!(
            "lowerdir={},upperdir={},workdir={}",
            ls.join(":"),
            upper.display(),
            work.display()
        )
    };
    let direct: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let mut data = join(&direct);
    // Many layers overflow the page of mount data: name them by short /proc/self/fd paths
    // instead (the fds only need to live until mount returns).
    let mut _fds: Vec<OwnedFd> = Vec::new();
    if data.len() > MAX_MOUNT_DATA {
        let mut short = Vec::new();
        for p in &lowers {
            let f = fs::File::open(p).map_err(|e| Error::io(format!("open {}", p.display()), e))?;
            short.push(format!("/proc/self/fd/{}", f.as_raw_fd()));
            _fds.push(f.into());
        }
        data = join(&short);
        if data.len() > MAX_MOUNT_DATA {
            return Err(Error::Invalid(format!(
                "image has too many layers ({}) for one overlay mount",
                lowers.len()
            )));
        }
    }
    let target = cstr(&rootfs)?;
    let data_c = CString::new(data).map_err(|_| Error::Invalid("NUL in mount data".into()))?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            0,
            data_c.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("mount overlay at {}", rootfs.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(Rootfs { path: rootfs })
}

/// Unmount `dir/rootfs` if mounted; safe to call again, and after an agent restart.
pub fn unmount_rootfs(dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    let c = cstr(&rootfs)?;
    // Repeat: the same point may carry stacked mounts from a crash between mount and record.
    for _ in 0..16 {
        // SAFETY: valid C string.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::UMOUNT_NOFOLLOW) };
        if rc == 0 {
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOENT) => return Ok(()), // not (or no longer) mounted
            Some(libc::EBUSY) => {
                // A process still holds it; detach so it goes once they exit.
                // SAFETY: valid C string.
                let rc =
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
                if rc != 0 {
                    return Err(Error::io(
                        format!("unmount {}", rootfs.display()),
                        io::Error::last_os_error(),
                    ));
                }
            }
            _ => return Err(Error::io(format!("unmount {}", rootfs.display()), err)),
        }
    }
    Ok(())
}

/// Unmount and delete `dir` with the container's writable layer.
pub fn remove_rootfs(dir: &Path) -> Result<()> {
    unmount_rootfs(dir)?;
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", dir.display()), e)),
    }
}
