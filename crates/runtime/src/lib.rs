//! Runs OCI containers for the reddwarf node agent.
//!
//! [`Runtime`] is the object-safe interface the agent holds (`Arc<dyn Runtime>`);
//! [`LibcontainerRuntime`] implements it with youki's `libcontainer`. Every container gets a
//! small shim process (the agent's own binary re-executed with a hidden argument, see
//! [`shim`]) that creates the container with libcontainer while single-threaded, stays its
//! parent, copies its output to the CRI log file ([`crilog`]) and records its exit status, so
//! containers, their logs and their exit codes survive an agent restart.
//!
//! [`conformance`] holds the behaviour every runtime implementation must show.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

pub mod cgroup;
pub mod conformance;
pub mod crilog;
mod libcontainer_rt;
mod oci;
mod pty;
pub mod shim;

pub use cgroup::remove_cgroup_parent;
pub use libcontainer_rt::LibcontainerRuntime;

/// Everything needed to create one container; the caller has resolved the image already.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique, `[a-z0-9-]{1,64}`; the runtime's container id.
    pub id: String,
    /// Prepared by the caller (an overlay mount or a plain directory).
    pub rootfs: PathBuf,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// Full argv, already resolved from the image's entrypoint and cmd.
    pub args: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// Absolute path inside the container.
    pub cwd: String,
    /// The user the process runs as.
    pub user: UserSpec,
    /// The container's hostname (UTS namespace).
    pub hostname: String,
    /// Added after the standard `/proc /dev /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup`
    /// mounts; a mount with the same destination as a standard one replaces it.
    pub mounts: Vec<MountSpec>,
    /// Join this network namespace (a bind-mounted nsfs file); `None` = host network.
    pub network_ns: Option<PathBuf>,
    /// cgroup limits.
    pub resources: Resources,
    /// Absolute cgroup path of the parent, e.g. `/reddwarf/pod<uid>`; the container's cgroup is
    /// `<parent>/<id>` in every hierarchy.
    pub cgroup_parent: String,
    /// Privileges, capabilities and seccomp.
    pub security: Security,
    /// Give the process a terminal (stdout and stderr merged into it).
    pub tty: bool,
    /// Keep stdin open (for attach): the container's stdin is the FIFO
    /// [`LibcontainerRuntime::stdin_path`], held open by the shim so it never sees EOF.
    pub stdin: bool,
    /// CRI-format log file the runtime writes stdout/stderr to (parent directory is created).
    pub log_path: PathBuf,
    /// The log file is rotated when it reaches this size (the kubelet's
    /// `containerLogMaxSize`, 10 MiB); 0 never rotates.
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// Files kept per container, the current one included (`containerLogMaxFiles`, 5).
    #[serde(default = "default_log_max_files")]
    pub log_max_files: usize,
    /// Persisted with the container and returned by [`Runtime::list`].
    pub labels: BTreeMap<String, String>,
}

/// The default of [`ContainerSpec::log_max_bytes`]: 10 MiB.
pub fn default_log_max_bytes() -> u64 {
    10 * 1024 * 1024
}

/// The default of [`ContainerSpec::log_max_files`]: 5.
pub fn default_log_max_files() -> usize {
    5
}

/// The numeric identity a container's process runs as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
}

/// A mount added to a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// The kinds of mount a container can get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A bind mount of a host path.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Size limit; `None` is the kernel's default (half of RAM).
        size_bytes: Option<u64>,
    },
}

/// cgroup limits of a container; `None` leaves a limit unset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit (OCI `memory.limit`).
    pub memory_limit_bytes: Option<i64>,
    /// CPU weight in cgroup v1 shares (OCI `cpu.shares`).
    pub cpu_shares: Option<u64>,
    /// CPU time allowed per period, in microseconds (OCI `cpu.quota`).
    pub cpu_quota_us: Option<i64>,
    /// The CPU quota's period, in microseconds (OCI `cpu.period`).
    pub cpu_period_us: Option<u64>,
    /// Most processes (OCI `pids.limit`).
    pub pids_limit: Option<i64>,
}

/// What a container may do beyond Docker's default confinement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// All capabilities, all devices allowed, no masked or read-only kernel paths.
    pub privileged: bool,
    /// Relative to Docker's default set; with or without the `CAP_` prefix.
    pub capabilities_add: Vec<String>,
    /// Relative to Docker's default set; `ALL` drops everything not added.
    pub capabilities_drop: Vec<String>,
    /// Set `no_new_privs`: setuid binaries gain nothing.
    pub no_new_privileges: bool,
    /// Ask for the runtime's default seccomp profile. [`LibcontainerRuntime`] is built without
    /// seccomp (the library is LGPL C) and, like containerd without seccomp support, runs the
    /// container unconfined with a warning; see [`Runtime::supports_seccomp`].
    pub seccomp_default: bool,
}

/// A container that was created and started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The container id.
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// When its init process started.
    pub started_at: DateTime<Utc>,
}

/// How a container's init process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit status, or 128+signal when killed by a signal (as Docker and the kubelet show it).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The container's cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// When the exit was recorded.
    pub finished_at: DateTime<Utc>,
}

/// A container's lifecycle state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerStatus {
    /// Being created: no init process has been reported yet.
    Created,
    /// Its init process runs.
    Running,
    /// Its init process ended.
    Exited(Exit),
}

/// What the runtime knows of one container (see [`Runtime::list`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The container id.
    pub id: String,
    /// The labels given in its [`ContainerSpec`].
    pub labels: BTreeMap<String, String>,
    /// Host pid of init, once started.
    pub pid: Option<i32>,
    /// When its init process started, once started.
    pub started_at: Option<DateTime<Utc>>,
    /// Created, running or exited.
    pub status: ContainerStatus,
    /// Its CRI log file.
    pub log_path: PathBuf,
}

/// A process to run inside a running container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Full argv.
    pub args: Vec<String>,
    /// Added to (and overriding) the container's environment.
    pub env: Vec<(String, String)>,
    /// Give the process a terminal.
    pub tty: bool,
    /// Give the process a stdin (see [`ExecProcess::stdin`]).
    pub stdin: bool,
}

/// A process started inside a running container.
pub struct ExecProcess {
    /// `Some` when [`ExecSpec::stdin`]; with a tty it writes to the pty master. Dropping it
    /// closes the process's stdin (without a tty).
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// With a tty: the pty master's output (stdout and stderr merged).
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// `None` with a tty.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Resize the terminal: (cols, rows). `Some` only with a tty.
    #[allow(clippy::type_complexity)]
    pub resize: Option<Box<dyn Fn(u16, u16) -> io::Result<()> + Send + Sync>>,
    /// Exit code (128+signal when killed).
    pub wait: BoxFuture<'static, Result<i32>>,
}

/// Resource usage of one container, from its cgroup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Cumulative CPU time of the container's cgroup.
    pub cpu_usage_ns: u64,
    /// Usage minus inactive file pages, as the kubelet computes it.
    pub memory_working_set_bytes: u64,
    /// Memory usage, page cache included.
    pub memory_usage_bytes: u64,
    /// When the numbers were read.
    pub timestamp: Option<DateTime<Utc>>,
}

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container has this id.
    #[error("container {0} not found")]
    NotFound(String),
    /// A container with this id exists already.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// The container's init process has exited.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The spec cannot be run (bad id, path or mount); the message says what.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// Everything else, with the context chain (libcontainer's own messages included).
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn other(context: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Error::Other(format!("{context}: {err}"))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Other(e.to_string())
    }
}

/// Results of runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A container runtime as the agent drives it. Object safe: hold it as `Arc<dyn Runtime>`.
pub trait Runtime: Send + Sync {
    /// (name, version) for `Node.status.nodeInfo.containerRuntimeVersion`.
    fn name_version(&self) -> (String, String);
    /// Whether [`Security::seccomp_default`] is enforced.
    fn supports_seccomp(&self) -> bool;
    /// Creates the container from `spec` and starts its init process.
    fn create_and_start(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Started>>;
    /// Resolves when the container's init exits; also for containers recovered after a restart.
    fn wait(&self, id: &str) -> BoxFuture<'_, Result<Exit>>;
    /// Signal the container's init. [`Error::NotRunning`] once it has exited.
    fn kill(&self, id: &str, signal: i32) -> BoxFuture<'_, Result<()>>;
    /// Stops the container if running (SIGKILL), deletes its state and cgroup. Idempotent.
    fn remove(&self, id: &str) -> BoxFuture<'_, Result<()>>;
    /// Every container in the state directory.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ContainerRecord>>>;
    /// Starts `spec` as a new process in the running container `id`.
    fn exec(&self, id: &str, spec: ExecSpec) -> BoxFuture<'_, Result<ExecProcess>>;
    /// Current resource usage of container `id`.
    fn stats(&self, id: &str) -> BoxFuture<'_, Result<Stats>>;
}

/// `[a-z0-9-]{1,64}`: safe as a path component, a cgroup name and a libcontainer id.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "container id {id:?} must match [a-z0-9-]{{1,64}}"
        )))
    }
}
