//! Reading and cleaning the cgroups libcontainer creates: `<parent>/<id>` in every v1
//! hierarchy (cgroupfs driver, no systemd), or in the unified v2 tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, Result, Stats};

/// A mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`.
    pub mount_point: PathBuf,
    /// v1 controllers (and `name=` options) of this hierarchy; empty for v2.
    pub controllers: Vec<String>,
    /// The unified (cgroup2) hierarchy.
    pub v2: bool,
}

/// All cgroup hierarchies mounted in this mount namespace.
pub fn hierarchies() -> io::Result<Vec<Hierarchy>> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in info.lines() {
        // mountinfo: id parent maj:min root mount_point opts [optional...] - fstype source super_opts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or("");
        let _source = right.next();
        let super_opts = right.next().unwrap_or("");
        let mount_point = left.split(' ').nth(4).unwrap_or("");
        let v2 = match fstype {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            super_opts
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains("relatime"))
                .map(str::to_string)
                .collect()
        };
        out.push(Hierarchy {
            mount_point: PathBuf::from(unescape_mountinfo(mount_point)),
            controllers,
            v2,
        });
    }
    Ok(out)
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
}

/// True when the host is cgroup v2 only (`/sys/fs/cgroup` itself is the unified tree).
pub fn is_unified() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

fn relative(cgroup_path: &str) -> &str {
    cgroup_path.trim_start_matches('/')
}

/// The directory of `cgroup_path` in the hierarchy holding `controller` (v1), or in the
/// unified tree on a v2-only host.
pub fn controller_dir(controller: &str, cgroup_path: &str) -> Option<PathBuf> {
    let hs = hierarchies().ok()?;
    if is_unified() {
        let h = hs.iter().find(|h| h.v2)?;
        return Some(h.mount_point.join(relative(cgroup_path)));
    }
    let h = hs
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))?;
    Some(h.mount_point.join(relative(cgroup_path)))
}

fn read_u64(path: &Path) -> Result<u64> {
    let s = fs::read_to_string(path).map_err(|e| Error::other(path.display(), e))?;
    s.trim()
        .parse()
        .map_err(|e| Error::other(format!("parse {}", path.display()), e))
}

fn stat_field(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// CPU and memory of one cgroup.
pub fn stats(cgroup_path: &str) -> Result<Stats> {
    let not_found = || Error::NotFound(cgroup_path.to_string());
    let mut st = Stats {
        timestamp: Some(chrono::Utc::now()),
        ..Default::default()
    };
    if is_unified() {
        let dir = controller_dir("", cgroup_path).ok_or_else(not_found)?;
        let cpu = fs::read_to_string(dir.join("cpu.stat"))
            .map_err(|e| Error::other(dir.join("cpu.stat").display(), e))?;
        st.cpu_usage_ns = stat_field(&cpu, "usage_usec").unwrap_or(0) * 1000;
        st.memory_usage_bytes = read_u64(&dir.join("memory.current"))?;
        let mem = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        let inactive = stat_field(&mem, "inactive_file").unwrap_or(0);
        st.memory_working_set_bytes = st.memory_usage_bytes.saturating_sub(inactive);
        return Ok(st);
    }
    let cpu = controller_dir("cpuacct", cgroup_path).ok_or_else(not_found)?;
    if !cpu.exists() {
        return Err(not_found());
    }
    st.cpu_usage_ns = read_u64(&cpu.join("cpuacct.usage"))?;
    let mem = controller_dir("memory", cgroup_path).ok_or_else(not_found)?;
    st.memory_usage_bytes = read_u64(&mem.join("memory.usage_in_bytes"))?;
    let stat = fs::read_to_string(mem.join("memory.stat")).unwrap_or_default();
    let inactive = stat_field(&stat, "total_inactive_file").unwrap_or(0);
    st.memory_working_set_bytes = st.memory_usage_bytes.saturating_sub(inactive);
    Ok(st)
}

/// How many processes of this cgroup the kernel's OOM killer has killed (0 if unknown).
pub fn oom_kill_count(cgroup_path: &str) -> u64 {
    let Some(dir) = controller_dir("memory", cgroup_path) else {
        return 0;
    };
    let (file, key) = if is_unified() {
        ("memory.events", "oom_kill")
    } else {
        ("memory.oom_control", "oom_kill")
    };
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|c| stat_field(&c, key))
        .unwrap_or(0)
}

/// Every directory named by `cgroup_path` across the mounted hierarchies that exists.
pub fn existing_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    hierarchies()
        .unwrap_or_default()
        .iter()
        .map(|h| h.mount_point.join(relative(cgroup_path)))
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes `cgroup_path` (a pod-level parent such as `/reddwarf/pod<uid>`) and everything
/// below it from every hierarchy, deepest first. Fails if a cgroup still has processes.
/// Idempotent. The parent's own parents (`/reddwarf`) are left alone.
pub fn remove_cgroup_parent(cgroup_path: &str) -> Result<()> {
    let rel = relative(cgroup_path);
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == ".") {
        return Err(Error::InvalidSpec(format!(
            "refusing to remove cgroup {cgroup_path:?}"
        )));
    }
    let mut errors = Vec::new();
    for dir in existing_dirs(cgroup_path) {
        if let Err(e) = remove_tree(&dir) {
            errors.push(format!("{}: {e}", dir.display()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "remove cgroup {cgroup_path}: {}",
            errors.join("; ")
        )))
    }
}

/// Removes a cgroup directory and its children. Cgroup dirs hold only kernel files, which
/// rmdir ignores, so rmdir bottom-up is the whole job; EBUSY means live processes.
fn remove_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    // A cgroup whose last task just exited can stay busy for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hierarchies() {
        let hs = hierarchies().unwrap();
        if !is_unified() {
            assert!(hs
                .iter()
                .any(|h| h.controllers.iter().any(|c| c == "memory")));
            assert!(controller_dir("memory", "/a/b")
                .unwrap()
                .ends_with("memory/a/b"));
        }
    }

    #[test]
    fn refuses_root_and_dotdot() {
        assert!(remove_cgroup_parent("/").is_err());
        assert!(remove_cgroup_parent("/a/../..").is_err());
        // Missing parents are fine.
        remove_cgroup_parent("/reddwarf-test-missing/none").unwrap();
    }
}
