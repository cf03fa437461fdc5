//! The per-container shim: the process that calls libcontainer.
//!
//! libcontainer creates a container by `clone3`-ing the calling process and running Rust code
//! (allocation, `tracing`, `chdir`, serde) in the child without `exec`; it does not re-exec
//! itself. That is only sound in a single-threaded process: in the agent, a malloc or stdout
//! lock held by another tokio thread at clone time would deadlock the child, and
//! libcontainer also changes the process-wide cwd while it sets up a console socket. So
//! [`crate::LibcontainerRuntime`] never calls libcontainer's create or exec in-process; it
//! starts this shim (a fresh, single-threaded exec of a binary) instead:
//!
//! - `create`: `setsid`, become a child subreaper (so the container's init, whose parent
//!   libcontainer's intermediate process exits, stays our child), create and start the
//!   container, report its pid to the agent, then copy its stdout/stderr (or pty) to the CRI
//!   log, reap it and write `exit.json`. The shim outlives an agent restart, so a restarted
//!   agent neither kills containers (no broken pipes, no SIGPIPE: the shim holds the read
//!   ends) nor loses their logs or exit codes.
//! - `exec`: run one process in a running container with the shim's own stdio (pipes from
//!   the agent) or a pty whose master goes back to the agent, wait for it and exit with its
//!   exit code.
//!
//! **What the binary embedding this crate must do:** call [`run_if_invoked`] first thing in
//! `main`, before starting any threads or the tokio runtime. When the process was started as
//! a shim (`argv[1] == SHIM_ARG`) it runs the shim and exits; otherwise it returns at once.
//! [`crate::LibcontainerRuntime::new`] starts shims as `/proc/self/exe SHIM_ARG ...`. The
//! standalone binary `reddwarf-runtime-shim` of this crate does only this (tests use it via
//! [`crate::LibcontainerRuntime::with_shim`]). Run the agent under systemd with
//! `KillMode=process` (as containerd's unit does), or stopping the agent kills every shim in
//! its cgroup, and with them the containers' log copying.
//!
//! Control channel: fd 3 is a `SOCK_SEQPACKET` socket to the agent; the shim sends one
//! [`Reply`] (plus the pty master as `SCM_RIGHTS` for a tty exec) and closes it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::crilog::{self, LineSplitter, Stream};
use crate::{ContainerSpec, ExecSpec, Exit};

/// `argv[1]` that turns the agent's binary into a shim.
pub const SHIM_ARG: &str = "__reddwarf-runtime-shim";

/// The fd the control socket is passed on.
pub(crate) const CONTROL_FD: RawFd = 3;

/// Runs the shim and exits if this process was started as one; returns otherwise. Call it
/// first in `main`, before any thread exists.
pub fn run_if_invoked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(OsStr::new(SHIM_ARG)) {
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        std::process::exit(main(&rest));
    }
}

/// The shim's main, given the arguments after [`SHIM_ARG`]: `create <state_dir> <id>` or
/// `exec <state_dir> <id> <ExecSpec JSON>`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    // SAFETY: fd 3 was placed by the agent; we take ownership of it exactly once.
    let ctl = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
    if nix::fcntl::fcntl(CONTROL_FD, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        eprintln!("{SHIM_ARG}: no control socket on fd 3");
        std::mem::forget(ctl);
        return 125;
    }
    reset_signals();
    let capture = Capture::install();
    match args {
        [mode, state, id] if mode == "create" => {
            let paths = Paths::new(Path::new(state), id);
            create(&paths, id, ctl, &capture)
        }
        [mode, state, id, spec] if mode == "exec" => {
            let paths = Paths::new(Path::new(state), id);
            exec(&paths, id, spec, ctl, &capture)
        }
        _ => {
            let _ = send_reply(
                &ctl,
                &Reply::error(format!("bad shim arguments {args:?}")),
                None,
            );
            125
        }
    }
}

/// Containers inherit ignored signals through fork and exec, and libcontainer does not
/// reset them: undo Rust's SIG_IGN for SIGPIPE (and whatever the agent's own parent ignored).
/// glibc reserves 32 and 33 and refuses them. Our own writes to sockets use MSG_NOSIGNAL.
fn reset_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installs the default disposition; no handler code is involved.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
}

/// Where a container's files live under the state directory.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    /// `<state>/containers/<id>`: ours.
    pub dir: PathBuf,
    /// `<state>/libcontainer`: libcontainer's root (its own `<id>/state.json`).
    pub lc_root: PathBuf,
}

impl Paths {
    pub(crate) fn new(state: &Path, id: &str) -> Self {
        Paths {
            dir: state.join("containers").join(id),
            lc_root: state.join("libcontainer"),
        }
    }
    pub(crate) fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
    pub(crate) fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub(crate) fn shim_state(&self) -> PathBuf {
        self.dir.join("shim.json")
    }
    pub(crate) fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    pub(crate) fn stdin(&self) -> PathBuf {
        self.dir.join("stdin")
    }
    pub(crate) fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
}

/// Written once the container runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ShimState {
    pub shim_pid: i32,
    /// Field 22 of `/proc/<pid>/stat`, to tell our shim from a recycled pid.
    pub shim_start_ticks: u64,
    pub pid: i32,
    pub started_at: chrono::DateTime<Utc>,
}

/// The one message on the control channel.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub pid: Option<i32>,
    pub started_at: Option<chrono::DateTime<Utc>>,
    pub error: Option<String>,
}

impl Reply {
    fn error(e: String) -> Self {
        Reply {
            error: Some(e),
            ..Default::default()
        }
    }
}

pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut f = File::create(&tmp)?;
    f.write_all(&data)?;
    f.sync_all()?;
    fs::rename(tmp, path)
}

pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may hold spaces and parens; fields after the last ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); starttime is field 22.
    rest.split(' ').nth(22 - 3)?.parse().ok()
}

fn send_reply(ctl: &OwnedFd, reply: &Reply, fd: Option<RawFd>) -> io::Result<()> {
    let mut data = serde_json::to_vec(reply).map_err(io::Error::other)?;
    data.truncate(60 * 1024);
    let iov = [IoSlice::new(&data)];
    let fds;
    let cmsgs: Vec<ControlMessage<'_>> = match fd {
        Some(fd) => {
            fds = [fd];
            vec![ControlMessage::ScmRights(&fds)]
        }
        None => Vec::new(),
    };
    loop {
        match socket::sendmsg::<()>(ctl.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(drop).map_err(io::Error::from),
        }
    }
}

/// Receives one message into `buf` and the first fd it carried (any others are closed).
/// Blocking; a signal to this thread (the agent reaps children) interrupts the wait, which
/// then waits again.
fn recv_with_fd(sock: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = match socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.map_err(io::Error::from)?,
        };
        let mut fd = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just installed this fd for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    fd.get_or_insert(owned);
                }
            }
        }
        return Ok((msg.bytes, fd));
    }
}

/// Receives a reply (and an fd, if one was sent) from a shim's control socket. Blocking.
pub(crate) fn recv_reply(ctl: &OwnedFd) -> io::Result<(Reply, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fd) = recv_with_fd(ctl, &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "shim exited without a reply",
        ));
    }
    let reply = serde_json::from_slice(&buf[..n]).map_err(io::Error::other)?;
    Ok((reply, fd))
}

/// libcontainer reports the cause of a failure only through `tracing`: keep its recent
/// output (and copy it to stderr, which is `shim.log` for a container shim) so a failure
/// reply can carry it.
#[derive(Clone)]
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    to_stderr: Arc<std::sync::atomic::AtomicBool>,
}

impl Capture {
    fn install() -> Self {
        let cap = Capture {
            buf: Arc::new(Mutex::new(Vec::new())),
            to_stderr: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let writer = cap.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        cap
    }
    fn text(&self) -> String {
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&b).trim().to_string()
    }
    fn with_context(&self, err: String) -> String {
        let t = self.text();
        if t.is_empty() {
            err
        } else {
            format!("{err}; libcontainer: {t}")
        }
    }
}

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        {
            let mut b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            if b.len() < 16 * 1024 {
                b.extend_from_slice(data);
            }
        }
        if self.to_stderr.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = io::stderr().write_all(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn set_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ctx<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// The output side of a started container, for the supervisor.
enum Output {
    Pipes {
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Pty {
        master: OwnedFd,
        stdin: Option<File>,
    },
}

fn create(paths: &Paths, id: &str, ctl: OwnedFd, capture: &Capture) -> i32 {
    // Own session: a signal to the agent's process group (a ^C) must not reach us.
    let _ = nix::unistd::setsid();
    let started = set_subreaper()
        .map_err(ctx("set child subreaper"))
        .and_then(|()| start_container(paths, id));
    match started {
        Ok((spec, pid, started_at, output)) => {
            let reply = Reply {
                pid: Some(pid),
                started_at: Some(started_at),
                error: None,
            };
            if let Err(e) = send_reply(&ctl, &reply, None) {
                // The agent gave up waiting; the container runs on and `list` finds it.
                tracing::warn!("reply to agent: {e}");
            }
            drop(ctl);
            capture
                .to_stderr
                .store(true, std::sync::atomic::Ordering::Relaxed);
            supervise(paths, &spec, pid, output);
            0
        }
        Err(e) => {
            let _ = send_reply(&ctl, &Reply::error(capture.with_context(e)), None);
            1
        }
    }
}

type StartedContainer = (ContainerSpec, i32, chrono::DateTime<Utc>, Output);

fn start_container(paths: &Paths, id: &str) -> Result<StartedContainer, String> {
    let spec: ContainerSpec =
        serde_json::from_slice(&fs::read(paths.spec()).map_err(ctx(paths.spec().display()))?)
            .map_err(ctx("parse spec.json"))?;
    let config = crate::oci::config(&spec).map_err(|e| e.to_string())?;
    let bundle = paths.bundle();
    fs::create_dir_all(&bundle).map_err(ctx(bundle.display()))?;
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config).map_err(ctx("encode config.json"))?,
    )
    .map_err(ctx("write config.json"))?;
    fs::create_dir_all(&paths.lc_root).map_err(ctx(paths.lc_root.display()))?;

    let stdin_fifo = if spec.stdin {
        nix::unistd::mkfifo(
            &paths.stdin(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .map_err(ctx("mkfifo stdin"))?;
        // Read-write: opening does not block, and the container never sees EOF while we live.
        Some(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(paths.stdin())
                .map_err(ctx("open stdin fifo"))?,
        )
    } else {
        None
    };

    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(&paths.lc_root)
        .map_err(ctx("libcontainer root"))?;
    let console_path = paths.dir.join("console.sock");
    let mut console = None;
    let mut pipes = None;
    if spec.tty {
        let _ = fs::remove_file(&console_path);
        console = Some(UnixListener::bind(&console_path).map_err(ctx("bind console socket"))?);
        builder = builder.with_console_socket(Some(&console_path));
    } else {
        let (out_r, out_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ctx("stdout pipe"))?;
        let (err_r, err_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ctx("stderr pipe"))?;
        let stdin: OwnedFd = match &stdin_fifo {
            Some(f) => f.try_clone().map_err(ctx("dup stdin"))?.into(),
            None => File::open("/dev/null")
                .map_err(ctx("open /dev/null"))?
                .into(),
        };
        builder = builder
            .with_stdin(stdin)
            .with_stdout(out_w)
            .with_stderr(err_w);
        pipes = Some((out_r, err_r));
    }
    let mut container = builder
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(ctx("libcontainer create"))?;
    // The builder dropped the pipes' write ends: only the container holds them now.
    container.start().map_err(ctx("libcontainer start"))?;
    let started_at = Utc::now();
    let pid = container
        .pid()
        .ok_or("libcontainer reported no init pid")?
        .as_raw();
    let output = match (console, pipes) {
        (Some(listener), _) => {
            let master = receive_master(&listener)?;
            let _ = fs::remove_file(&console_path);
            Output::Pty {
                master,
                stdin: stdin_fifo,
            }
        }
        (None, Some((stdout, stderr))) => Output::Pipes { stdout, stderr },
        (None, None) => return Err("no output channel".into()),
    };
    let state = ShimState {
        shim_pid: std::process::id() as i32,
        shim_start_ticks: start_ticks(std::process::id() as i32).unwrap_or(0),
        pid,
        started_at,
    };
    write_json_atomic(&paths.shim_state(), &state).map_err(ctx("write shim.json"))?;
    Ok((spec, pid, started_at, output))
}

/// The container's init sent the pty master to the console socket before it reported ready.
fn receive_master(listener: &UnixListener) -> Result<OwnedFd, String> {
    listener
        .set_nonblocking(true)
        .map_err(ctx("console socket"))?;
    let (conn, _) = listener.accept().map_err(ctx("accept console socket"))?;
    conn.set_nonblocking(false).map_err(ctx("console socket"))?;
    let conn: OwnedFd = conn.into();
    let mut buf = [0u8; 64];
    recv_with_fd(&conn, &mut buf)
        .map_err(ctx("receive pty master"))?
        .1
        .ok_or_else(|| "console socket carried no pty master".into())
}

/// Copies output to the log, reaps init, records how it exited.
fn supervise(paths: &Paths, spec: &ContainerSpec, pid: i32, output: Output) {
    if let Some(dir) = spec.log_path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let log = RotatingLog::open(&spec.log_path, spec.log_max_bytes, spec.log_max_files);
    let log = match log {
        Ok(f) => Some(Arc::new(Mutex::new(f))),
        Err(e) => {
            tracing::error!("open log {}: {e}", spec.log_path.display());
            None
        }
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut pumps = 0;
    let mut spawn_pump = |fd: OwnedFd, stream: Stream| {
        let log = log.clone();
        let done = done_tx.clone();
        pumps += 1;
        std::thread::spawn(move || {
            pump(fd, stream, log.as_deref());
            let _ = done.send(());
        });
    };
    match output {
        Output::Pipes { stdout, stderr } => {
            spawn_pump(stdout, Stream::Stdout);
            spawn_pump(stderr, Stream::Stderr);
        }
        Output::Pty { master, stdin } => {
            if let Some(mut fifo) = stdin {
                match master.try_clone() {
                    Ok(m) => {
                        // Never joined: it blocks on the FIFO, which we hold open ourselves.
                        std::thread::spawn(move || {
                            let _ = io::copy(&mut fifo, &mut File::from(m));
                        });
                    }
                    Err(e) => tracing::error!("dup pty master: {e}"),
                }
            }
            spawn_pump(master, Stream::Stdout);
        }
    }
    drop(done_tx);

    let status = wait_for(Pid::from_raw(pid));
    // Init was PID 1 of its namespace: the kernel killed the rest, so the pipes close now.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            tracing::warn!("output still open after init exited; log may be cut short");
            break;
        }
    }
    let cgroup = format!("{}/{}", spec.cgroup_parent.trim_end_matches('/'), spec.id);
    let (exit_code, signal) = match status {
        Some(WaitStatus::Exited(_, code)) => (code, None),
        Some(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let exit = Exit {
        exit_code,
        signal,
        oom_killed: crate::cgroup::oom_kill_count(&cgroup) > 0,
        finished_at: Utc::now(),
    };
    if let Err(e) = write_json_atomic(&paths.exit(), &exit) {
        tracing::error!("write exit.json: {e}");
    }
    reap(Pid::from_raw(pid));
}

/// Waits until `pid` exits, reaping every other child meanwhile (we are a subreaper, so
/// orphans from the container land here). `pid` itself is left a zombie: its pid cannot be
/// recycled (and libcontainer sees it as stopped) until [`reap`] after `exit.json` exists,
/// so a `kill` can never hit an unrelated process.
fn wait_for(pid: Pid) -> Option<WaitStatus> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    loop {
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(st @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))) if p == pid => {
                return Some(st)
            }
            Ok(WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _)) => {
                let _ = waitpid(p, None);
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("waitid: {e}");
                return None;
            }
        }
    }
}

fn reap(pid: Pid) {
    let _ = waitpid(pid, None);
}

/// The container's log file, rotated by size as the kubelet rotates it: the full file is
/// renamed `<path>.<UTC timestamp>` and a new one started; the oldest rotated files go so at
/// most `max_files` remain. Records are whole lines, so no line is split across files.
struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: usize,
}

impl RotatingLog {
    fn open(path: &Path, max_bytes: u64, max_files: usize) -> io::Result<RotatingLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files: max_files.max(1),
        })
    }

    /// Writes whole records, rotating first whenever the next one would take the file past
    /// its size (a file holds at least one record), so the newest lines are always in the
    /// current file.
    fn write_records(&mut self, records: &[u8]) -> io::Result<()> {
        if self.max_bytes == 0 {
            crilog::write_records(&mut self.file, records)?;
            self.size += records.len() as u64;
            return Ok(());
        }
        let mut start = 0;
        while start < records.len() {
            // The longest run of whole records that fits in what is left of this file.
            let room = self.max_bytes.saturating_sub(self.size) as usize;
            let mut end = start;
            for (i, b) in records[start..].iter().enumerate() {
                if *b == b'\n' {
                    let e = start + i + 1;
                    if e - start > room && end > start {
                        break;
                    }
                    end = e;
                    if e - start > room {
                        break;
                    }
                }
            }
            if end == start {
                end = records.len();
            }
            if end - start > room && self.size > 0 {
                self.rotate()?;
                continue;
            }
            crilog::write_records(&mut self.file, &records[start..end])?;
            self.size += (end - start) as u64;
            start = end;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let stamp = Utc::now().format("%Y%m%d-%H%M%S%.6f");
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let rotated = self.path.with_file_name(format!("{name}.{stamp}"));
        fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = 0;
        // Keep max_files - 1 rotated files (the timestamps sort by age).
        if let Some(dir) = self.path.parent() {
            let prefix = format!("{name}.");
            let mut old: Vec<PathBuf> = fs::read_dir(dir)?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect();
            old.sort();
            let excess = old.len().saturating_sub(self.max_files - 1);
            for p in old.into_iter().take(excess) {
                let _ = fs::remove_file(p);
            }
        }
        Ok(())
    }
}

/// One stream into the log until EOF; unterminated output is flushed after a pause.
fn pump(fd: OwnedFd, stream: Stream, log: Option<&Mutex<RotatingLog>>) {
    let mut split = LineSplitter::new(stream);
    let mut buf = vec![0u8; 32 * 1024];
    let write = |records: Vec<u8>| {
        if let Some(log) = log {
            let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = f.write_records(&records) {
                tracing::error!("write log: {e}");
            }
        }
    };
    loop {
        if split.has_pending() {
            let mut fds = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = crilog::PARTIAL_FLUSH.as_millis() as u16;
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                Ok(0) => {
                    write(split.flush_partial(Utc::now()));
                    continue;
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    tracing::error!("poll {}: {e}", stream.as_str());
                    break;
                }
            }
        }
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => write(split.push(&buf[..n], Utc::now())),
            Err(nix::errno::Errno::EINTR) => continue,
            // EIO: a pty master whose slave is gone.
            Err(nix::errno::Errno::EIO) => break,
            Err(e) => {
                tracing::error!("read {}: {e}", stream.as_str());
                break;
            }
        }
    }
    write(split.flush_partial(Utc::now()));
}

fn exec(paths: &Paths, id: &str, spec_json: &str, ctl: OwnedFd, capture: &Capture) -> i32 {
    match start_exec(paths, id, spec_json) {
        Ok((pid, master)) => {
            let reply = Reply {
                pid: Some(pid),
                started_at: Some(Utc::now()),
                error: None,
            };
            let _ = send_reply(&ctl, &reply, master.as_ref().map(|m| m.as_raw_fd()));
            drop(master);
            drop(ctl);
            let status = wait_for(Pid::from_raw(pid));
            reap(Pid::from_raw(pid));
            match status {
                Some(WaitStatus::Exited(_, code)) => code,
                Some(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                _ => 255,
            }
        }
        Err(e) => {
            let _ = send_reply(&ctl, &Reply::error(capture.with_context(e)), None);
            126
        }
    }
}

fn start_exec(paths: &Paths, id: &str, spec_json: &str) -> Result<(i32, Option<OwnedFd>), String> {
    set_subreaper().map_err(ctx("set child subreaper"))?;
    let spec: ExecSpec = serde_json::from_str(spec_json).map_err(ctx("parse exec spec"))?;
    if spec.args.is_empty() {
        return Err("exec args must not be empty".into());
    }
    // The exec'd process is the container's process with other args, env and terminal:
    // same user, cwd, capabilities and no_new_privileges, as runc exec does.
    let config: serde_json::Value = serde_json::from_slice(
        &fs::read(paths.bundle().join("config.json")).map_err(ctx("read container config"))?,
    )
    .map_err(ctx("parse container config"))?;
    let mut process = config["process"].clone();
    let mut env: BTreeMap<String, String> = process["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.as_str()?
                .split_once('=')
                .map(|(k, v)| (k.into(), v.into()))
        })
        .collect();
    // Keep the container's order but let exec's entries win.
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.clone());
    }
    process["env"] = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    process["args"] = serde_json::json!(spec.args);
    process["terminal"] = serde_json::json!(spec.tty);
    let process_path = paths.dir.join(format!("exec-{}.json", std::process::id()));
    fs::write(
        &process_path,
        serde_json::to_vec(&process).map_err(ctx("encode process"))?,
    )
    .map_err(ctx("write process.json"))?;
    let _cleanup = RemoveOnDrop(process_path.clone());

    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(&paths.lc_root)
        .map_err(ctx("libcontainer root"))?;
    let console_path = paths.dir.join(format!("exec-{}.sock", std::process::id()));
    let mut console = None;
    if spec.tty {
        let _ = fs::remove_file(&console_path);
        console = Some(UnixListener::bind(&console_path).map_err(ctx("bind console socket"))?);
        builder = builder.with_console_socket(Some(&console_path));
    }
    let _cleanup_sock = RemoveOnDrop(console_path);
    let pid = builder
        .as_tenant()
        .with_process(Some(&process_path))
        .with_detach(spec.tty)
        .build()
        .map_err(ctx("libcontainer exec"))?
        .as_raw();
    let master = match console {
        Some(l) => Some(receive_master(&l)?),
        None => None,
    };
    Ok((pid, master))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
