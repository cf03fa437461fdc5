//! Real containers through LibcontainerRuntime (needs root, cgroups, /bin/busybox). Each
//! test has its own state dir, id prefix and cgroup parent, so they run in parallel.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reddwarf_runtime::conformance::{self, Env};
use reddwarf_runtime::{cgroup, ContainerStatus, LibcontainerRuntime, Runtime};

struct Harness {
    rt: LibcontainerRuntime,
    env: Env,
    state: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Harness {
    fn new(name: &str) -> Option<Harness> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping {name}: needs root");
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("rdrt-")
            .tempdir()
            .expect("tempdir");
        let rootfs = conformance::busybox_rootfs(&tmp.path().join("rootfs")).expect("rootfs");
        let scratch = tmp.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let state = tmp.path().join("state");
        let rt = runtime(&state);
        let prefix = format!("t{}-{name}", std::process::id());
        let env = Env {
            rootfs,
            scratch,
            cgroup_parent: format!("/reddwarf-test-{prefix}"),
            prefix,
        };
        Some(Harness {
            rt,
            env,
            state,
            _tmp: tmp,
        })
    }
}

/// The shim this crate builds; `REDDWARF_RUNTIME_SHIM` overrides it (e.g. a release build,
/// to measure).
fn runtime(state: &Path) -> LibcontainerRuntime {
    let shim = std::env::var_os("REDDWARF_RUNTIME_SHIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_reddwarf-runtime-shim")));
    LibcontainerRuntime::with_shim(state, &shim, &[]).expect("runtime")
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Cleanup must run even when the test panicked inside the tokio runtime: do it on a
        // fresh thread with its own runtime.
        let state = self.state.clone();
        let env = self.env.clone();
        let res = std::thread::spawn(move || {
            let rt = runtime(&state);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(env.cleanup(&rt))
        })
        .join();
        if let Ok(Err(e)) | Err(e) = res.map_err(|_| anyhow::anyhow!("cleanup panicked")) {
            eprintln!("cleanup: {e}");
        }
    }
}

macro_rules! conformance_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(h) = Harness::new(&stringify!($name).replace('_', "")) else {
                return;
            };
            conformance::$name(&h.rt, &h.env).await.unwrap();
        }
    };
}

conformance_test!(echo_logs);
conformance_test!(exit_code);
conformance_test!(process_settings);
conformance_test!(readonly_rootfs);
conformance_test!(mounts);
conformance_test!(memory_limit);
conformance_test!(oom_kill);
conformance_test!(kill_signals);
conformance_test!(exec_pipes);
conformance_test!(exec_tty);
conformance_test!(list_and_remove);
conformance_test!(create_errors);

/// A new runtime over the same state dir (an agent restart) finds a running container with
/// its labels and can still wait for and kill it; its log keeps flowing meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_restart() {
    let Some(h) = Harness::new("recover") else {
        return;
    };
    let mut spec = h.env.spec(
        "survivor",
        &[
            "sh",
            "-c",
            "echo before; read x </dev/null; sleep 0.3; echo after; sleep 1000",
        ],
    );
    spec.labels.insert("pod".into(), "p1".into());
    let log = spec.log_path.clone();
    let id = spec.id.clone();
    let started = h.rt.create_and_start(spec).await.unwrap();
    drop(h.rt.list().await.unwrap());

    let rt2 = runtime(&h.state);
    let recs = rt2.list().await.unwrap();
    let rec = recs.iter().find(|r| r.id == id).expect("recovered");
    assert_eq!(rec.status, ContainerStatus::Running);
    assert_eq!(rec.pid, Some(started.pid));
    assert_eq!(rec.labels.get("pod").map(String::as_str), Some("p1"));

    let waiter = {
        let id = id.clone();
        let state = h.state.clone();
        tokio::spawn(async move { runtime(&state).wait(&id).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !conformance::read_log(&log)
        .unwrap_or_default()
        .iter()
        .any(|(_, _, t)| t == "after")
    {
        assert!(Instant::now() < deadline, "log stopped flowing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rt2.kill(&id, libc::SIGKILL).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert_eq!(exit.exit_code, 137);
    rt2.remove(&id).await.unwrap();
}

/// remove() leaves no cgroup directory and no state; remove_cgroup_parent clears the pod
/// level; the memory limit is set on the host side of the cgroup too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_cleans_cgroups_and_state() {
    let Some(h) = Harness::new("cgclean") else {
        return;
    };
    let mut spec = h.env.spec("cg", &["sleep", "1000"]);
    spec.resources.memory_limit_bytes = Some(64 * 1024 * 1024);
    spec.resources.pids_limit = Some(50);
    spec.resources.cpu_shares = Some(512);
    let id = spec.id.clone();
    h.rt.create_and_start(spec).await.unwrap();
    let cg = format!("{}/{}", h.env.cgroup_parent, id);
    let dirs = cgroup::existing_dirs(&cg);
    assert!(!dirs.is_empty());
    if !cgroup::is_unified() {
        let mem = cgroup::controller_dir("memory", &cg).unwrap();
        let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), "67108864");
        let pids = cgroup::controller_dir("pids", &cg).unwrap();
        assert_eq!(
            std::fs::read_to_string(pids.join("pids.max"))
                .unwrap()
                .trim(),
            "50"
        );
        let cpu = cgroup::controller_dir("cpu", &cg).unwrap();
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.shares"))
                .unwrap()
                .trim(),
            "512"
        );
    }
    let st = h.rt.stats(&id).await.unwrap();
    assert!(st.memory_usage_bytes > 0);

    h.rt.remove(&id).await.unwrap();
    assert!(
        cgroup::existing_dirs(&cg).is_empty(),
        "{:?}",
        cgroup::existing_dirs(&cg)
    );
    assert!(!h.state.join("containers").join(&id).exists());
    assert!(!h.state.join("libcontainer").join(&id).exists());
    // The pod-level parent is the agent's to remove.
    reddwarf_runtime::remove_cgroup_parent(&h.env.cgroup_parent).unwrap();
    assert!(cgroup::existing_dirs(&h.env.cgroup_parent).is_empty());
    reddwarf_runtime::remove_cgroup_parent(&h.env.cgroup_parent).unwrap();
}

/// Container stdin as a FIFO: an attach-style writer reaches the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_fifo() {
    let Some(h) = Harness::new("stdin") else {
        return;
    };
    let mut spec = h
        .env
        .spec("cat", &["sh", "-c", "read line; echo got $line"]);
    spec.stdin = true;
    let log = spec.log_path.clone();
    let id = spec.id.clone();
    h.rt.create_and_start(spec).await.unwrap();
    std::fs::write(h.rt.stdin_path(&id), "hi\n").unwrap();
    let exit = h.rt.wait(&id).await.unwrap();
    assert_eq!(exit.exit_code, 0);
    let lines: Vec<String> = conformance::read_log(&log)
        .unwrap()
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(lines, ["got hi"]);
    h.rt.remove(&id).await.unwrap();
}

/// A tty container: output through the pty, all tagged stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_container() {
    let Some(h) = Harness::new("ttyctr") else {
        return;
    };
    let mut spec = h.env.spec("t", &["sh", "-c", "tty; echo err >&2"]);
    spec.tty = true;
    let log = spec.log_path.clone();
    let id = spec.id.clone();
    h.rt.create_and_start(spec).await.unwrap();
    assert_eq!(h.rt.wait(&id).await.unwrap().exit_code, 0);
    let recs = conformance::read_log(&log).unwrap();
    assert!(recs
        .iter()
        .all(|r| r.0 == reddwarf_runtime::crilog::Stream::Stdout));
    let text: String = recs.iter().map(|r| r.2.clone()).collect();
    assert!(
        text.contains("/dev/console") || text.contains("/dev/pts"),
        "{text:?}"
    );
    assert!(text.contains("err"), "{text:?}");
    h.rt.remove(&id).await.unwrap();
}

/// create→start latency (`true` containers, sequential); prints the median.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_start_latency() {
    let Some(h) = Harness::new("latency") else {
        return;
    };
    let mut samples = Vec::new();
    for i in 0..10 {
        let spec = h.env.spec(&format!("l{i}"), &["sleep", "1000"]);
        let id = spec.id.clone();
        let t = Instant::now();
        h.rt.create_and_start(spec).await.unwrap();
        samples.push(t.elapsed());
        if i == 0 {
            // The per-container cost of the shim design: the shim's resident memory.
            let st: serde_json::Value = serde_json::from_slice(
                &std::fs::read(h.state.join("containers").join(&id).join("shim.json")).unwrap(),
            )
            .unwrap();
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", st["shim_pid"])).unwrap();
            let rss = status
                .lines()
                .find(|l| l.starts_with("VmRSS"))
                .unwrap_or("");
            eprintln!("shim {rss}");
        }
        h.rt.remove(&id).await.unwrap();
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    eprintln!(
        "create_and_start: median {:?}, min {:?}, max {:?}",
        median,
        samples[0],
        samples[samples.len() - 1]
    );
    assert!(median < Duration::from_secs(5));
}

/// Joining a pod network namespace (a bind-mounted nsfs file): the container sees that
/// namespace's interfaces and gets its own sysfs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_network_namespace() {
    let Some(h) = Harness::new("netns") else {
        return;
    };
    let name = format!("rdrt-{}", std::process::id());
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping: ip netns add failed");
        return;
    }
    struct DelNs(String);
    impl Drop for DelNs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    let _del = DelNs(name.clone());
    let mut spec = h.env.spec(
        "net",
        &["sh", "-c", "ls /sys/class/net; grep -c . /proc/net/dev"],
    );
    spec.network_ns = Some(PathBuf::from(format!("/run/netns/{name}")));
    let log = spec.log_path.clone();
    let id = spec.id.clone();
    h.rt.create_and_start(spec).await.unwrap();
    let exit = h.rt.wait(&id).await.unwrap();
    let lines: Vec<String> = conformance::read_log(&log)
        .unwrap()
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(exit.exit_code, 0, "{lines:?}");
    // A fresh namespace has only loopback: /proc/net/dev is two header lines plus lo.
    assert_eq!(lines, ["lo", "3"]);
    h.rt.remove(&id).await.unwrap();
}
