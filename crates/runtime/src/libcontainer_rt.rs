//! [`Runtime`] over youki's libcontainer, through one shim process per container
//! (see [`crate::shim`] for why and what the embedding binary must do).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt;
use libcontainer::container::{Container, ContainerStatus as LcStatus};
use libcontainer::signal::Signal;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWrite, Interest};

use crate::pty::{set_winsize, FdIo};
use crate::shim::{self, Paths, Reply, ShimState, SHIM_ARG};
use crate::{
    ContainerRecord, ContainerSpec, ContainerStatus, Error, ExecProcess, ExecSpec, Exit, Result,
    Runtime, Started, Stats,
};

/// How long a shim may take to create and start a container (or an exec) before we give up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `remove` waits for a killed container's shim to record the exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs containers with libcontainer. State lives in `state_dir`: `containers/<id>/` (the
/// spec, the shim's pid, the exit record) and `libcontainer/<id>/` (libcontainer's own).
/// Another instance over the same `state_dir` (after an agent restart) sees the same
/// containers.
pub struct LibcontainerRuntime {
    state_dir: PathBuf,
    shim_program: PathBuf,
    shim_args: Vec<OsString>,
}

impl LibcontainerRuntime {
    /// Shims are this very binary re-executed (`/proc/self/exe __reddwarf-runtime-shim ...`):
    /// `main` must call [`crate::shim::run_if_invoked`] before anything else.
    pub fn new(state_dir: &Path) -> Result<Self> {
        Self::with_shim(state_dir, Path::new("/proc/self/exe"), &[SHIM_ARG])
    }

    /// Shims are `program args... <mode> ...`, e.g. the `reddwarf-runtime-shim` binary with no
    /// args, or another binary with a hidden subcommand.
    pub fn with_shim(state_dir: &Path, program: &Path, args: &[&str]) -> Result<Self> {
        fs::create_dir_all(state_dir.join("containers"))
            .and_then(|()| fs::create_dir_all(state_dir.join("libcontainer")))
            .map_err(|e| Error::other(format!("create state dir {}", state_dir.display()), e))?;
        let state_dir = state_dir
            .canonicalize()
            .map_err(|e| Error::other(state_dir.display(), e))?;
        Ok(LibcontainerRuntime {
            state_dir,
            shim_program: program.to_path_buf(),
            shim_args: args.iter().map(OsString::from).collect(),
        })
    }

    /// The directory the runtime keeps container state in (given to [`LibcontainerRuntime::new`]).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The FIFO a container created with [`ContainerSpec::stdin`] reads: open it for writing
    /// to attach.
    pub fn stdin_path(&self, id: &str) -> PathBuf {
        self.paths(id).stdin()
    }

    fn paths(&self, id: &str) -> Paths {
        Paths::new(&self.state_dir, id)
    }

    /// Starts a shim with the control socket on its fd 3.
    fn spawn_shim(
        &self,
        mode: &str,
        id: &str,
        extra: &[String],
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> io::Result<(tokio::process::Child, OwnedFd)> {
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let theirs_raw = theirs.as_raw_fd();
        let mut cmd = tokio::process::Command::new(&self.shim_program);
        cmd.args(&self.shim_args)
            .arg(mode)
            .arg(&self.state_dir)
            .arg(id)
            .args(extra)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if theirs_raw == shim::CONTROL_FD {
                    if libc::fcntl(theirs_raw, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(theirs_raw, shim::CONTROL_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(theirs);
        Ok((child, ours))
    }

    fn read_spec(&self, id: &str) -> Result<ContainerSpec> {
        let p = self.paths(id).spec();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::other(p.display(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(id.into())),
            Err(e) => Err(Error::other(p.display(), e)),
        }
    }

    async fn create_inner(&self, spec: ContainerSpec) -> Result<Started> {
        // Validate here so a bad spec fails before anything is written.
        crate::oci::config(&spec)?;
        let id = spec.id.clone();
        let paths = self.paths(&id);
        if paths.lc_root.join(&id).exists() {
            return Err(Error::AlreadyExists(id));
        }
        match fs::create_dir(&paths.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id))
            }
            Err(e) => return Err(Error::other(paths.dir.display(), e)),
        }
        let result = async {
            shim::write_json_atomic(&paths.spec(), &spec)
                .map_err(|e| Error::other("write spec.json", e))?;
            let shim_log =
                File::create(paths.shim_log()).map_err(|e| Error::other("create shim.log", e))?;
            let (mut child, ctl) = self
                .spawn_shim(
                    "create",
                    &id,
                    &[],
                    Stdio::null(),
                    Stdio::null(),
                    Stdio::from(shim_log),
                )
                .map_err(|e| {
                    Error::other(format!("start shim {}", self.shim_program.display()), e)
                })?;
            // Reap the shim whenever it exits; it outlives this call by design.
            let reply = recv_reply(ctl).await;
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            let (reply, _) = reply?;
            match reply {
                Reply {
                    pid: Some(pid),
                    started_at,
                    error: None,
                } => Ok(Started {
                    id: id.clone(),
                    pid,
                    started_at: started_at.unwrap_or_else(Utc::now),
                }),
                Reply { error, .. } => Err(Error::Other(format!(
                    "create container {id}: {}",
                    error.unwrap_or_else(|| "shim gave no pid".into())
                ))),
            }
        }
        .await;
        if result.is_err() {
            // Leave nothing half-made behind; the error we return is the interesting one.
            if let Err(e) = self.remove_inner(&id).await {
                tracing::warn!(%id, "cleanup after failed create: {e}");
            }
        }
        result
    }

    async fn wait_inner(&self, id: &str) -> Result<Exit> {
        let paths = self.paths(id);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(exit) = read_exit(&paths)? {
                return Ok(exit);
            }
            if !paths.dir.exists() {
                return Err(Error::NotFound(id.into()));
            }
            match read_shim_state(&paths)? {
                Some(st) if shim_alive(&st) => {
                    wait_pid_exit(st.shim_pid)
                        .await
                        .map_err(|e| Error::other("wait for shim", e))?;
                    // Loop: exit.json was written before the shim exited.
                    if read_exit(&paths)?.is_none() && !shim_alive(&st) {
                        return lost_shim(&paths, &st).await;
                    }
                }
                Some(st) => return lost_shim(&paths, &st).await,
                None => {
                    // Still being created by its shim.
                    if Instant::now() > deadline {
                        return Err(Error::Other(format!("container {id} never started")));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    async fn kill_inner(&self, id: &str, signal: i32) -> Result<()> {
        let paths = self.paths(id);
        let id = id.to_string();
        blocking(move || {
            if read_exit(&paths)?.is_some() {
                return Err(Error::NotRunning(id));
            }
            let mut c = load(&paths, &id)?;
            match c.status() {
                LcStatus::Running | LcStatus::Created | LcStatus::Paused => {}
                _ => return Err(Error::NotRunning(id)),
            }
            let sig = Signal::try_from(signal)
                .map_err(|e| Error::InvalidSpec(format!("signal {signal}: {e}")))?;
            c.kill(sig, false)
                .map_err(|e| Error::other(format!("kill container {id}"), e))
        })
        .await
    }

    async fn remove_inner(&self, id: &str) -> Result<()> {
        crate::validate_id(id)?;
        let paths = self.paths(id);
        let spec = self.read_spec(id).ok();
        let lc_dir = paths.lc_root.join(id);
        if lc_dir.exists() {
            let (p, i) = (paths.clone(), id.to_string());
            let running = blocking(move || {
                let mut c = load(&p, &i)?;
                let running = matches!(
                    c.status(),
                    LcStatus::Running | LcStatus::Created | LcStatus::Paused
                );
                if running {
                    c.kill(Signal::try_from(libc::SIGKILL).expect("SIGKILL"), true)
                        .map_err(|e| Error::other(format!("kill container {i}"), e))?;
                }
                Ok(running)
            })
            .await?;
            // Let the shim reap init and record the exit before the cgroup goes away.
            if running {
                if let Some(st) = read_shim_state(&paths)? {
                    if shim_alive(&st) {
                        let _ =
                            tokio::time::timeout(STOP_TIMEOUT, wait_pid_exit(st.shim_pid)).await;
                    }
                }
            }
            let (p, i) = (paths.clone(), id.to_string());
            blocking(move || {
                load(&p, &i)?
                    .delete(true)
                    .map_err(|e| Error::other(format!("delete container {i}"), e))
            })
            .await?;
        }
        if let Some(spec) = spec {
            // libcontainer removes what it created; make sure no hierarchy keeps the dir.
            let cg = format!("{}/{}", spec.cgroup_parent.trim_end_matches('/'), spec.id);
            blocking(move || crate::cgroup::remove_cgroup_parent(&cg)).await?;
        }
        match fs::remove_dir_all(&paths.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::other(paths.dir.display(), e)),
        }
    }

    async fn list_inner(&self) -> Result<Vec<ContainerRecord>> {
        let dir = self.state_dir.join("containers");
        let mut out = Vec::new();
        let entries = fs::read_dir(&dir).map_err(|e| Error::other(dir.display(), e))?;
        for entry in entries {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // A directory without a spec is a create that has not got far; skip it.
            let Ok(spec) = self.read_spec(&id) else {
                continue;
            };
            let paths = self.paths(&id);
            let shim = read_shim_state(&paths)?;
            let status = match (read_exit(&paths)?, &shim) {
                (Some(exit), _) => ContainerStatus::Exited(exit),
                (None, Some(st)) if shim_alive(st) || pid_alive(st.pid) => ContainerStatus::Running,
                (None, Some(_)) => ContainerStatus::Exited(unknown_exit()),
                (None, None) => ContainerStatus::Created,
            };
            out.push(ContainerRecord {
                id,
                labels: spec.labels,
                pid: shim.as_ref().map(|s| s.pid),
                started_at: shim.as_ref().map(|s| s.started_at),
                status,
                log_path: spec.log_path,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn exec_inner(&self, id: &str, spec: ExecSpec) -> Result<ExecProcess> {
        let paths = self.paths(id);
        if !paths.dir.exists() {
            return Err(Error::NotFound(id.into()));
        }
        if read_exit(&paths)?.is_some() || read_shim_state(&paths)?.is_none() {
            return Err(Error::NotRunning(id.into()));
        }
        let json = serde_json::to_string(&spec).map_err(|e| Error::other("encode exec", e))?;
        let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let (mut child, ctl) = self
            .spawn_shim(
                "exec",
                id,
                &[json],
                piped(spec.stdin && !spec.tty),
                piped(!spec.tty),
                piped(!spec.tty),
            )
            .map_err(|e| Error::other("start exec shim", e))?;
        let (reply, master) = match recv_reply(ctl).await {
            Ok(r) => r,
            Err(e) => {
                let _ = child.kill().await;
                return Err(e);
            }
        };
        if reply.pid.is_none() {
            let _ = child.wait().await;
            return Err(Error::Other(format!(
                "exec in {id}: {}",
                reply.error.unwrap_or_else(|| "shim gave no pid".into())
            )));
        }
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let wait = async move {
            let st = child
                .wait()
                .await
                .map_err(|e| Error::other("wait for exec", e))?;
            Ok(st
                .code()
                .or_else(|| st.signal().map(|s| 128 + s))
                .unwrap_or(255))
        }
        .boxed();
        if spec.tty {
            let master = master.ok_or_else(|| Error::Other("exec shim sent no pty".into()))?;
            let resize_fd = Arc::new(
                master
                    .try_clone()
                    .map_err(|e| Error::other("dup pty master", e))?,
            );
            let io = FdIo::new(master).map_err(|e| Error::other("pty master", e))?;
            let stdin: Option<Box<dyn AsyncWrite + Send + Unpin>> = if spec.stdin {
                Some(Box::new(io.clone()))
            } else {
                None
            };
            Ok(ExecProcess {
                stdin,
                stdout: Box::new(io),
                stderr: None,
                resize: Some(Box::new(move |cols, rows| {
                    set_winsize(resize_fd.as_raw_fd(), cols, rows)
                })),
                wait,
            })
        } else {
            let missing = || Error::Other("exec shim without stdio pipes".into());
            let stdin: Option<Box<dyn AsyncWrite + Send + Unpin>> = match stdin {
                Some(s) => Some(Box::new(s)),
                None => None,
            };
            Ok(ExecProcess {
                stdin,
                stdout: Box::new(stdout.ok_or_else(missing)?),
                stderr: Some(Box::new(stderr.ok_or_else(missing)?)),
                resize: None,
                wait,
            })
        }
    }
}

/// Runs blocking work (libcontainer, cgroupfs) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::other("blocking task", e))?
}

async fn recv_reply(ctl: OwnedFd) -> Result<(Reply, Option<OwnedFd>)> {
    blocking(move || {
        socket::setsockopt(
            &ctl,
            socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(START_TIMEOUT.as_secs() as i64, 0),
        )
        .map_err(|e| Error::other("control socket", e))?;
        shim::recv_reply(&ctl).map_err(|e| Error::other("shim reply", e))
    })
    .await
}

fn load(paths: &Paths, id: &str) -> Result<Container> {
    let dir = paths.lc_root.join(id);
    if !dir.exists() {
        return Err(Error::NotFound(id.into()));
    }
    let mut c =
        Container::load(dir).map_err(|e| Error::other(format!("load container {id}"), e))?;
    c.refresh_status()
        .map_err(|e| Error::other(format!("container {id} status"), e))?;
    Ok(c)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::other(path.display(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::other(path.display(), e)),
    }
}

fn read_exit(paths: &Paths) -> Result<Option<Exit>> {
    read_json(&paths.exit())
}

fn read_shim_state(paths: &Paths) -> Result<Option<ShimState>> {
    read_json(&paths.shim_state())
}

fn shim_alive(st: &ShimState) -> bool {
    shim::start_ticks(st.shim_pid) == Some(st.shim_start_ticks)
}

/// Exists and is not a zombie.
fn pid_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        == Some(false)
}

fn unknown_exit() -> Exit {
    Exit {
        exit_code: 255,
        signal: None,
        oom_killed: false,
        finished_at: Utc::now(),
    }
}

/// The shim died without recording an exit (it was killed). The container's init, if it
/// still runs, now belongs to another reaper: wait for it to go, but its status is lost.
async fn lost_shim(paths: &Paths, st: &ShimState) -> Result<Exit> {
    if let Some(exit) = read_exit(paths)? {
        return Ok(exit);
    }
    tracing::warn!(pid = st.pid, "container shim is gone; exit status unknown");
    if pid_alive(st.pid) {
        wait_pid_exit(st.pid)
            .await
            .map_err(|e| Error::other("wait for init", e))?;
    }
    Ok(unknown_exit())
}

/// Resolves when `pid` exits; works for processes that are not our children (pidfd).
async fn wait_pid_exit(pid: i32) -> io::Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(e)
        };
    }
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: `fd` is owned by the AsyncFd for its whole life.
    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let _ready = afd.readable().await?;
    Ok(())
}

impl Runtime for LibcontainerRuntime {
    fn name_version(&self) -> (String, String) {
        ("libcontainer".into(), "0.7.0".into())
    }

    fn supports_seccomp(&self) -> bool {
        false
    }

    fn create_and_start(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Started>> {
        self.create_inner(spec).boxed()
    }

    fn wait(&self, id: &str) -> BoxFuture<'_, Result<Exit>> {
        let id = id.to_string();
        async move { self.wait_inner(&id).await }.boxed()
    }

    fn kill(&self, id: &str, signal: i32) -> BoxFuture<'_, Result<()>> {
        let id = id.to_string();
        async move { self.kill_inner(&id, signal).await }.boxed()
    }

    fn remove(&self, id: &str) -> BoxFuture<'_, Result<()>> {
        let id = id.to_string();
        async move { self.remove_inner(&id).await }.boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ContainerRecord>>> {
        self.list_inner().boxed()
    }

    fn exec(&self, id: &str, spec: ExecSpec) -> BoxFuture<'_, Result<ExecProcess>> {
        let id = id.to_string();
        async move { self.exec_inner(&id, spec).await }.boxed()
    }

    fn stats(&self, id: &str) -> BoxFuture<'_, Result<Stats>> {
        let id = id.to_string();
        async move {
            let spec = self.read_spec(&id)?;
            let cg = format!("{}/{}", spec.cgroup_parent.trim_end_matches('/'), spec.id);
            blocking(move || crate::cgroup::stats(&cg)).await
        }
        .boxed()
    }
}
