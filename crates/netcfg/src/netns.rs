//! Network namespaces kept alive by a bind mount onto a file (as `ip netns add` does), and
//! running code inside one. Namespace switches happen on a dedicated, short-lived OS thread:
//! `unshare`/`setns` change only the calling thread, and that thread must never go back to
//! serving tokio tasks from the wrong namespace.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `statfs` magic of nsfs: a netns file that is still a live bind mount.
const NSFS_MAGIC: i64 = 0x6e73_6673;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn io_err(op: impl Into<String>, source: io::Error) -> Error {
    Error::Io {
        op: op.into(),
        source,
    }
}

/// Runs `f` on a fresh OS thread and awaits its result without blocking the runtime.
pub(crate) async fn on_thread<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| io_err("spawn netns thread", e))?;
    rx.await.map_err(|_| {
        io_err(
            "netns thread",
            io::Error::other("thread ended without a result"),
        )
    })?
}

/// Creates a new network namespace and pins it at `path`. Fails if `path` exists.
pub(crate) async fn create(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    on_thread("rdw-netns-new", move || {
        // Mode 0 and O_EXCL as iproute2: the file is only a mount point.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_err(format!("create {}", path.display()), e))?;
        let res = (|| {
            // SAFETY: plain syscalls on this thread; it exits right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io_err("unshare(CLONE_NEWNET)", io::Error::last_os_error()));
            }
            let tid = unsafe { libc::gettid() };
            let src = cstr(&PathBuf::from(format!("/proc/self/task/{tid}/ns/net")))
                .map_err(|e| io_err("netns path", e))?;
            let dst = cstr(&path).map_err(|e| io_err("netns path", e))?;
            let rc = unsafe {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io_err(
                    format!("bind-mount netns onto {}", path.display()),
                    io::Error::last_os_error(),
                ));
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        res
    })
    .await
}

/// Whether `path` is a pinned netns (an nsfs bind mount).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Ok(c) = cstr(path) else { return false };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string, st a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    magic == NSFS_MAGIC
}

/// Unpins and deletes a netns file. Missing or already unmounted is fine.
pub(crate) fn remove(path: &Path) -> Result<()> {
    let c = cstr(path).map_err(|e| io_err("netns path", e))?;
    // Unmount every stacked mount (a crashed retry could have mounted twice).
    while is_mounted(path) {
        // SAFETY: valid C string. MNT_DETACH: processes still inside keep the netns alive
        // for themselves, but the name goes away now.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::ENOENT) => break,
                _ => return Err(io_err(format!("umount {}", path.display()), e)),
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("remove {}", path.display()), e)),
    }
}

/// Opens a pinned netns (for `IFLA_NET_NS_FD` or `setns`).
pub(crate) fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| io_err(format!("open netns {}", path.display()), e))
}

/// Runs `f` on a thread that has entered the netns at `path`.
pub(crate) async fn run_in<T, F>(path: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let ns = open(path)?;
    on_thread("rdw-netns-run", move || {
        // SAFETY: valid fd; affects only this thread, which exits when f returns.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io_err("setns(CLONE_NEWNET)", io::Error::last_os_error()));
        }
        drop(ns);
        f()
    })
    .await
}
