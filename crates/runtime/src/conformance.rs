//! Behaviour every [`Runtime`] implementation must show, as async functions over
//! `&dyn Runtime` and an [`Env`] (a busybox rootfs, a scratch directory and names no other
//! test uses). Each function cleans up the containers it creates; run each as its own test
//! (see this crate's `tests/libcontainer.rs`), and call [`Env::cleanup`] from a guard.
//! Needs root and `/bin/busybox` (Debian's busybox-static).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crilog::{self, Stream};
use crate::{
    ContainerSpec, ContainerStatus, ExecSpec, MountKind, MountSpec, Resources, Runtime, Security,
    UserSpec,
};

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "id", "hostname", "head", "tail", "dd", "touch", "pwd", "grep",
    "stty", "tty", "ls", "true", "false", "kill", "env", "mkdir", "rm", "wc", "printf", "yes",
];

/// Builds a minimal rootfs at `dir`: `bin/busybox` from the host plus applet symlinks.
pub fn busybox_rootfs(dir: &Path) -> io::Result<PathBuf> {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    for d in ["etc", "tmp", "proc", "dev", "sys", "root"] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::copy("/bin/busybox", bin.join("busybox"))?;
    for a in APPLETS {
        let link = bin.join(a);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link)?;
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n",
    )?;
    fs::write(dir.join("etc/group"), "root:x:0:\nuser:x:1000:\n")?;
    Ok(dir.to_path_buf())
}

/// What a conformance function works with. `prefix` and `cgroup_parent` must be unique to
/// the test so tests can run in parallel.
#[derive(Clone, Debug)]
pub struct Env {
    /// A busybox root filesystem the containers run in.
    pub rootfs: PathBuf,
    /// A directory for logs and test data.
    pub scratch: PathBuf,
    /// Prefix for the test's container ids.
    pub prefix: String,
    /// The test's cgroup parent.
    pub cgroup_parent: String,
}

impl Env {
    /// A container id for this test.
    pub fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// A spec running `args` in the busybox rootfs as root, host network, logging to
    /// `<scratch>/<name>.log`.
    pub fn spec(&self, name: &str, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            id: self.id(name),
            rootfs: self.rootfs.clone(),
            readonly_rootfs: false,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/bin".into())],
            cwd: "/".into(),
            user: UserSpec::default(),
            hostname: name.into(),
            mounts: Vec::new(),
            network_ns: None,
            resources: Resources::default(),
            cgroup_parent: self.cgroup_parent.clone(),
            security: Security::default(),
            tty: false,
            stdin: false,
            log_path: self.scratch.join(format!("{name}.log")),
            log_max_bytes: crate::default_log_max_bytes(),
            log_max_files: crate::default_log_max_files(),
            labels: BTreeMap::new(),
        }
    }

    /// Removes every container of this test and its cgroup parent.
    pub async fn cleanup(&self, rt: &dyn Runtime) -> Result<()> {
        for c in rt.list().await? {
            if c.id.starts_with(&format!("{}-", self.prefix)) {
                rt.remove(&c.id).await?;
            }
        }
        crate::remove_cgroup_parent(&self.cgroup_parent)?;
        Ok(())
    }
}

/// The parsed log of a container: (stream, partial, text) per record.
pub fn read_log(path: &Path) -> Result<Vec<(Stream, bool, String)>> {
    let data = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    data.split_inclusive(|&b| b == b'\n')
        .map(|l| {
            let r = crilog::parse_line(l)?;
            Ok((
                r.stream,
                r.partial,
                String::from_utf8_lossy(r.content).into_owned(),
            ))
        })
        .collect()
}

/// The stdout lines of a finished container.
fn stdout_lines(path: &Path) -> Result<Vec<String>> {
    Ok(read_log(path)?
        .into_iter()
        .filter(|(s, _, _)| *s == Stream::Stdout)
        .map(|(_, _, t)| t)
        .collect())
}

async fn run_to_exit(rt: &dyn Runtime, spec: ContainerSpec) -> Result<crate::Exit> {
    let id = spec.id.clone();
    rt.create_and_start(spec)
        .await
        .context("create_and_start")?;
    let exit = tokio::time::timeout(Duration::from_secs(60), rt.wait(&id))
        .await
        .context("container did not exit in time")??;
    Ok(exit)
}

/// stdout and stderr land in the CRI log with their tags; exit 0.
pub async fn echo_logs(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let spec = env.spec(
        "echo",
        &[
            "sh",
            "-c",
            "echo hello out; echo hello err >&2; printf tail",
        ],
    );
    let log = spec.log_path.clone();
    let exit = run_to_exit(rt, spec).await?;
    ensure!(
        exit.exit_code == 0 && exit.signal.is_none() && !exit.oom_killed,
        "{exit:?}"
    );
    let recs = read_log(&log)?;
    ensure!(
        recs.contains(&(Stream::Stdout, false, "hello out".into())),
        "{recs:?}"
    );
    ensure!(
        recs.contains(&(Stream::Stderr, false, "hello err".into())),
        "{recs:?}"
    );
    // An unterminated last line is a partial record.
    ensure!(
        recs.contains(&(Stream::Stdout, true, "tail".into())),
        "{recs:?}"
    );
    rt.remove(&env.id("echo")).await?;
    Ok(())
}

/// The exit status is reported.
pub async fn exit_code(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let exit = run_to_exit(rt, env.spec("exit", &["sh", "-c", "exit 3"])).await?;
    ensure!(exit.exit_code == 3 && exit.signal.is_none(), "{exit:?}");
    // A second wait returns the same record.
    let again = rt.wait(&env.id("exit")).await?;
    ensure!(again == exit, "{again:?} != {exit:?}");
    rt.remove(&env.id("exit")).await?;
    Ok(())
}

/// env, cwd, user and groups, hostname.
pub async fn process_settings(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let mut spec = env.spec(
        "proc",
        &["sh", "-c", "echo $FOO; pwd; id -u; id -g; id -G; hostname"],
    );
    spec.env.push(("FOO".into(), "bar baz".into()));
    spec.cwd = "/tmp".into();
    let log = spec.log_path.clone();
    spec.user = UserSpec {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![2000],
    };
    spec.hostname = "conformance-host".into();
    let exit = run_to_exit(rt, spec).await?;
    ensure!(exit.exit_code == 0, "{exit:?}: {:?}", read_log(&log));
    let lines = stdout_lines(&log)?;
    ensure!(
        lines
            == [
                "bar baz",
                "/tmp",
                "1000",
                "1000",
                "1000 2000",
                "conformance-host",
            ],
        "{lines:?}"
    );
    rt.remove(&env.id("proc")).await?;

    // No blocked or ignored standard signal leaks in from the runtime (Rust ignores SIGPIPE,
    // nohup SIGHUP). Signals 32 and 33 belong to libc and are left alone.
    let spec = env.spec(
        "signals",
        &["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
    );
    let log = spec.log_path.clone();
    run_to_exit(rt, spec).await?;
    for line in stdout_lines(&log)? {
        let (name, hex) = line.split_once(':').context("status line")?;
        let mask = u64::from_str_radix(hex.trim(), 16).context("signal mask")?;
        ensure!(mask & 0x7fff_ffff == 0, "inherited {name}: {hex}");
    }
    rt.remove(&env.id("signals")).await?;
    Ok(())
}

/// A read-only rootfs refuses writes.
pub async fn readonly_rootfs(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let mut spec = env.spec("ro", &["sh", "-c", "touch /newfile"]);
    spec.readonly_rootfs = true;
    let log = spec.log_path.clone();
    let exit = run_to_exit(rt, spec).await?;
    ensure!(exit.exit_code != 0, "write succeeded: {exit:?}");
    let recs = read_log(&log)?;
    ensure!(
        recs.iter()
            .any(|(s, _, t)| *s == Stream::Stderr && t.contains("Read-only file system")),
        "{recs:?}"
    );
    ensure!(!env.rootfs.join("newfile").exists());
    rt.remove(&env.id("ro")).await?;
    Ok(())
}

/// A read-only bind mount and a sized tmpfs.
pub async fn mounts(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let data = env.scratch.join("data");
    fs::create_dir_all(&data)?;
    fs::write(data.join("hello"), "from host\n")?;
    let mut spec = env.spec(
        "mounts",
        &[
            "sh",
            "-c",
            "cat /data/hello; echo x > /scratch/f && cat /scratch/f; \
             touch /data/new 2>/dev/null || echo bind-ro; \
             grep ' /scratch ' /proc/mounts | grep -o 'size=[0-9]*k'",
        ],
    );
    spec.mounts = vec![
        MountSpec {
            destination: "/data".into(),
            kind: MountKind::Bind {
                source: data.clone(),
                readonly: true,
            },
        },
        MountSpec {
            destination: "/scratch".into(),
            kind: MountKind::Tmpfs {
                size_bytes: Some(1024 * 1024),
            },
        },
    ];
    let log = spec.log_path.clone();
    let exit = run_to_exit(rt, spec).await?;
    ensure!(exit.exit_code == 0, "{exit:?}: {:?}", read_log(&log));
    let lines = stdout_lines(&log)?;
    ensure!(
        lines == ["from host", "x", "bind-ro", "size=1024k"],
        "{lines:?}"
    );
    ensure!(!data.join("new").exists());
    rt.remove(&env.id("mounts")).await?;
    Ok(())
}

const MIB64: i64 = 64 * 1024 * 1024;

/// The memory limit is visible in the container's cgroup.
pub async fn memory_limit(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let mut spec = env.spec(
        "memlimit",
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null \
             || cat /sys/fs/cgroup/memory.max",
        ],
    );
    spec.resources.memory_limit_bytes = Some(MIB64);
    let log = spec.log_path.clone();
    let exit = run_to_exit(rt, spec).await?;
    ensure!(exit.exit_code == 0, "{exit:?}: {:?}", read_log(&log));
    let lines = stdout_lines(&log)?;
    ensure!(lines == [MIB64.to_string()], "{lines:?}");
    rt.remove(&env.id("memlimit")).await?;
    Ok(())
}

/// Allocating past the limit gets the container OOM-killed, and the exit says so.
pub async fn oom_kill(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let mut spec = env.spec(
        "oom",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
    );
    spec.resources.memory_limit_bytes = Some(MIB64);
    let exit = run_to_exit(rt, spec).await?;
    ensure!(
        exit.oom_killed && exit.exit_code == 137 && exit.signal == Some(9),
        "{exit:?}"
    );
    rt.remove(&env.id("oom")).await?;
    Ok(())
}

async fn wait_for_log_line(path: &Path, line: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if path.exists() && stdout_lines(path)?.iter().any(|l| l == line) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{line:?} never appeared in {}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Signals reach init: SIGTERM runs its handler (a PID-1 process without one ignores it,
/// as in any container), SIGKILL is reported as the signal.
pub async fn kill_signals(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let spec = env.spec(
        "term",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 143' TERM; echo ready; sleep 1000 & wait",
        ],
    );
    let log = spec.log_path.clone();
    rt.create_and_start(spec).await?;
    wait_for_log_line(&log, "ready").await?;
    rt.kill(&env.id("term"), libc::SIGTERM).await?;
    let exit = tokio::time::timeout(Duration::from_secs(30), rt.wait(&env.id("term"))).await??;
    ensure!(exit.exit_code == 143 && exit.signal.is_none(), "{exit:?}");
    ensure!(stdout_lines(&log)?.contains(&"got-term".to_string()));
    match rt.kill(&env.id("term"), libc::SIGTERM).await {
        Err(crate::Error::NotRunning(_)) => {}
        other => bail!("kill of an exited container: {other:?}"),
    }

    rt.create_and_start(env.spec("killed", &["sleep", "1000"]))
        .await?;
    rt.kill(&env.id("killed"), libc::SIGKILL).await?;
    let exit = tokio::time::timeout(Duration::from_secs(30), rt.wait(&env.id("killed"))).await??;
    ensure!(
        exit.exit_code == 137 && exit.signal == Some(9) && !exit.oom_killed,
        "{exit:?}"
    );
    rt.remove(&env.id("term")).await?;
    rt.remove(&env.id("killed")).await?;
    Ok(())
}

async fn read_all(mut r: impl tokio::io::AsyncRead + Unpin) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut out))
        .await
        .context("read timed out")??;
    Ok(out)
}

/// exec with piped stdin/stdout/stderr, and its exit code.
pub async fn exec_pipes(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let mut spec = env.spec("exec", &["sleep", "1000"]);
    spec.env.push(("FROM_CONTAINER".into(), "yes".into()));
    rt.create_and_start(spec).await?;
    let id = env.id("exec");
    let mut p = rt
        .exec(
            &id,
            ExecSpec {
                args: vec!["cat".into()],
                env: vec![],
                tty: false,
                stdin: true,
            },
        )
        .await?;
    let mut stdin = p.stdin.take().context("no stdin")?;
    stdin.write_all(b"hello through cat\n").await?;
    stdin.shutdown().await?;
    drop(stdin);
    let out = read_all(p.stdout).await?;
    ensure!(
        out == b"hello through cat\n",
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    ensure!(p.wait.await? == 0);

    let p = rt
        .exec(
            &id,
            ExecSpec {
                args: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo $FROM_CONTAINER $EXTRA; echo oops >&2; exit 5".into(),
                ],
                env: vec![("EXTRA".into(), "extra".into())],
                tty: false,
                stdin: false,
            },
        )
        .await?;
    ensure!(p.stdin.is_none());
    let (out, err) = tokio::join!(read_all(p.stdout), read_all(p.stderr.context("stderr")?));
    ensure!(out? == b"yes extra\n");
    ensure!(err? == b"oops\n");
    ensure!(p.wait.await? == 5);

    // Exec into something that is not running fails cleanly.
    ensure!(rt.exec(&env.id("nope"), ExecSpec::default()).await.is_err());
    rt.remove(&id).await?;
    Ok(())
}

/// exec with a tty: a terminal, resizable, stdin through the pty.
pub async fn exec_tty(rt: &dyn Runtime, env: &Env) -> Result<()> {
    rt.create_and_start(env.spec("tty", &["sleep", "1000"]))
        .await?;
    let id = env.id("tty");
    let mut p = rt
        .exec(
            &id,
            ExecSpec {
                args: vec!["sh".into()],
                env: vec![],
                tty: true,
                stdin: true,
            },
        )
        .await?;
    ensure!(p.stderr.is_none());
    (p.resize.as_ref().context("no resize")?)(100, 40)?;
    let mut stdin = p.stdin.take().context("no stdin")?;
    stdin.write_all(b"tty; stty size; exit 7\n").await?;
    let out = read_all(p.stdout).await?;
    let text = String::from_utf8_lossy(&out);
    ensure!(text.contains("/dev/pts/"), "{text:?}");
    ensure!(text.contains("40 100"), "{text:?}");
    ensure!(p.wait.await? == 7);
    rt.remove(&id).await?;
    Ok(())
}

/// list() reports labels and state; remove() is idempotent and forgets the container.
pub async fn list_and_remove(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let mut spec = env.spec("listed", &["sleep", "1000"]);
    spec.labels.insert("pod-uid".into(), "1234".into());
    spec.labels.insert("container".into(), "app".into());
    let started = rt.create_and_start(spec).await?;
    ensure!(started.pid > 0);
    let id = env.id("listed");
    let all = rt.list().await?;
    let rec = all.iter().find(|r| r.id == id).context("not listed")?;
    ensure!(rec.status == ContainerStatus::Running, "{rec:?}");
    ensure!(rec.labels.get("pod-uid").map(String::as_str) == Some("1234"));
    ensure!(rec.pid == Some(started.pid));

    let st = rt.stats(&id).await?;
    ensure!(st.memory_usage_bytes > 0, "{st:?}");

    run_to_exit(rt, env.spec("done", &["true"])).await?;
    let done = rt.list().await?;
    let rec = done
        .iter()
        .find(|r| r.id == env.id("done"))
        .context("exited container not listed")?;
    ensure!(
        matches!(&rec.status, ContainerStatus::Exited(e) if e.exit_code == 0),
        "{rec:?}"
    );

    // Same id twice is refused while the first exists.
    ensure!(matches!(
        rt.create_and_start(env.spec("listed", &["true"])).await,
        Err(crate::Error::AlreadyExists(_))
    ));

    rt.remove(&id).await?;
    rt.remove(&id).await?;
    rt.remove(&env.id("done")).await?;
    ensure!(!rt
        .list()
        .await?
        .iter()
        .any(|r| r.id.starts_with(&env.prefix)));
    ensure!(matches!(rt.wait(&id).await, Err(crate::Error::NotFound(_))));
    Ok(())
}

/// Bad specs are refused before anything runs; a missing binary fails create with a reason.
pub async fn create_errors(rt: &dyn Runtime, env: &Env) -> Result<()> {
    let mut bad = env.spec("bad", &["true"]);
    bad.id = "Bad_ID".into();
    ensure!(matches!(
        rt.create_and_start(bad).await,
        Err(crate::Error::InvalidSpec(_))
    ));
    let missing = env.spec("missing", &["/no/such/binary"]);
    match rt.create_and_start(missing).await {
        Err(e) => {
            eprintln!("create of a missing binary failed with: {e}");
            ensure!(!e.to_string().is_empty());
        }
        Ok(_) => {
            // Runtimes that report exec failures as an exit are conformant too.
            let exit = rt.wait(&env.id("missing")).await?;
            ensure!(exit.exit_code != 0, "{exit:?}");
        }
    }
    rt.remove(&env.id("missing")).await?;
    ensure!(!rt.list().await?.iter().any(|r| r.id == env.id("missing")));
    Ok(())
}
