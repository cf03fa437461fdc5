//! The state dir: one JSON file per pod holding its [`PodNet`], so IP allocations survive an
//! agent restart. Files are written to a temp name, synced and renamed (atomic on POSIX).
//! Allocation holds an `flock` on `<state_dir>/.lock` as well as the in-process mutex, so two
//! processes pointed at one state dir cannot hand out the same address either.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::cidr::Ipv4Cidr;
use crate::{Error, PodNet, Result};

pub(crate) struct Store {
    dir: PathBuf,
}

fn io_err(op: String, source: io::Error) -> Error {
    Error::Io { op, source }
}

/// An exclusive `flock`, released on drop (closing the fd).
pub(crate) struct DirLock(#[allow(dead_code)] File);

impl Store {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| io_err(format!("create state dir {}", self.dir.display()), e))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    pub(crate) fn lock(&self) -> Result<DirLock> {
        let p = self.dir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| io_err(format!("open {}", p.display()), e))?;
        // SAFETY: valid fd. Held for microseconds (a directory scan and one write).
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(
                format!("flock {}", p.display()),
                io::Error::last_os_error(),
            ));
        }
        Ok(DirLock(f))
    }

    pub(crate) fn load(&self, key: &str) -> Result<Option<PodNet>> {
        let p = self.path(key);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::State {
                    path: p,
                    msg: e.to_string(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("read {}", p.display()), e)),
        }
    }

    /// Every recorded pod; unreadable files are skipped with a warning (they hold no IP then,
    /// which is the safe direction only if nothing uses it, so we log loudly).
    pub(crate) fn list(&self) -> Vec<PodNet> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ent in rd.flatten() {
            let p = ent.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<PodNet>(&b).map_err(|e| e.to_string()))
            {
                Ok(pn) => out.push(pn),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "skipping unreadable pod network state")
                }
            }
        }
        out.sort_by_key(|p| p.ip);
        out
    }

    pub(crate) fn save(&self, key: &str, pn: &PodNet) -> Result<()> {
        let p = self.path(key);
        let tmp = self.dir.join(format!(".{key}.json.tmp"));
        let body = serde_json::to_vec_pretty(pn).map_err(|e| Error::State {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &p)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| io_err(format!("write {}", p.display()), e))
    }

    pub(crate) fn remove(&self, key: &str) -> Result<()> {
        let p = self.path(key);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("remove {}", p.display()), e)),
        }
    }

    /// Lowest address of `cidr` no recorded pod holds. Call with [`Store::lock`] held.
    pub(crate) fn lowest_free(&self, cidr: &Ipv4Cidr) -> Result<Ipv4Addr> {
        let taken: HashSet<Ipv4Addr> = self.list().into_iter().map(|p| p.ip).collect();
        cidr.pod_addresses()
            .find(|ip| !taken.contains(ip))
            .ok_or_else(|| Error::Exhausted(cidr.to_string()))
    }
}
