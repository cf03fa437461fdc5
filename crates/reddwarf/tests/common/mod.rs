//! Test harness: starts the real `reddwarf` binary on a free port in a temporary data dir
//! and drives it with the real kubectl binaries found beside `kubectl` on PATH.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub url: String,
    /// Extra `reddwarf server` flags, kept across restarts.
    pub extra_args: Vec<String>,
    /// Run the embedded node agent (off unless asked: most tests want no real node).
    pub embedded_agent: bool,
}

impl Server {
    /// Starts a server in a fresh data dir and waits until `/readyz` answers 200.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra flags; `{dir}` in a flag is replaced by the data dir.
    pub fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let mut s = Server {
            dir,
            child: None,
            url: String::new(),
            extra_args: args.iter().map(|a| a.replace("{dir}", &d)).collect(),
            embedded_agent: false,
        };
        s.spawn();
        s
    }

    /// A server running its embedded agent (a real node on this host); its flags should
    /// name the node and bridge (`--node-name`, `--bridge`) and a `--cluster-cidr`.
    pub fn start_with_agent(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let mut s = Server {
            dir,
            child: None,
            url: String::new(),
            extra_args: args.iter().map(|a| a.replace("{dir}", &d)).collect(),
            embedded_agent: true,
        };
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// (Re)starts the binary on the same data dir.
    pub fn spawn(&mut self) {
        let kubeconfig = self.kubeconfig();
        let _ = std::fs::remove_file(&kubeconfig);
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
            .arg("server")
            .args(
                (!self.extra_args.iter().any(|a| a == "--listen"))
                    .then_some(["--listen", "127.0.0.1:0"])
                    .into_iter()
                    .flatten(),
            )
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .args((!self.embedded_agent).then_some("--disable-agent"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start reddwarf");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&kubeconfig) {
                if let Some(url) = text.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("server: ")
                        .map(|s| s.trim().trim_matches('"').to_string())
                }) {
                    if self.curl_status(&format!("{url}/readyz"), false) == 200 {
                        self.url = url;
                        self.wait_for_controllers();
                        return;
                    }
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("server exited early ({status}):\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not ready in 30s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the controllers have given every bootstrap namespace its `default`
    /// ServiceAccount and `kube-root-ca.crt` ConfigMap, so tests start from a settled cluster.
    fn wait_for_controllers(&self) {
        let count = |path: &str| -> usize {
            let (code, body) = self.curl("GET", path, None, None);
            if code != 200 {
                return 0;
            }
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["items"].as_array().map(|a| a.len()))
                .unwrap_or(0)
        };
        eventually("controllers to settle", Duration::from_secs(30), || {
            (count("/api/v1/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt") >= 4
                && count("/api/v1/serviceaccounts?fieldSelector=metadata.name%3Ddefault") >= 4)
                .then_some(())
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let c = self.child.take().expect("running");
        let pid = c.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        wait_with_deadline(c, Duration::from_secs(20))
    }

    /// HTTP status of a GET with curl (with or without the admin client certificate).
    pub fn curl_status(&self, url: &str, authenticated: bool) -> u16 {
        let pki = self.dir.path().join("pki");
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(pki.join("ca.crt"));
        if authenticated {
            cmd.arg("--cert")
                .arg(pki.join("admin.crt"))
                .arg("--key")
                .arg(pki.join("admin.key"));
        }
        let out = cmd.arg(url).output().expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// A curl request with the admin certificate; returns (status, body).
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        let mut cmd = self.curl_cmd();
        cmd.args(["-w", "\n%{http_code}", "--max-time", "10", "-X", method]);
        if let Some(ct) = content_type {
            cmd.args(["-H", &format!("content-type: {ct}")]);
        }
        if body.is_some() {
            cmd.args(["--data-binary", "@-"]);
        }
        cmd.arg(format!("{}{}", self.url, path));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("curl");
        if let Some(b) = body {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b).expect("write body");
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("curl output");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Runs `kubectl.<version>` against this server with a private cache dir.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        self.kubectl_cmd(version, args)
            .output()
            .expect("run kubectl")
    }

    pub fn kubectl_cmd(&self, version: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_path(version));
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join(format!("kube-cache-{version}")))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub fn kubectl_ok(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            out.status.success(),
            "kubectl {version} {args:?} failed:\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 20)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if self.embedded_agent {
            // The embedded agent's containers, mounts, network and cgroups outlive the
            // process; remove them while its state (in the data dir) is still there.
            let flag = |name: &str| {
                self.extra_args
                    .iter()
                    .position(|a| a == name)
                    .and_then(|i| self.extra_args.get(i + 1).cloned())
            };
            let node = flag("--node-name").unwrap_or_default();
            let bridge = flag("--bridge").unwrap_or_else(|| "rdw0".into());
            let _ = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
                .args([
                    "agent",
                    "--cleanup",
                    "--node-name",
                    &node,
                    "--bridge",
                    &bridge,
                ])
                .arg("--data-dir")
                .arg(self.dir.path().join("agent"))
                .output();
        }
    }
}

fn wait_with_deadline(mut c: Child, d: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + d;
    loop {
        if let Ok(Some(s)) = c.try_wait() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("process did not exit within {d:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Where the versioned kubectl binaries live: beside the file `kubectl` resolves to.
pub fn kubectl_dir() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .expect("locate kubectl");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.parent()
        .expect("kubectl has a parent dir")
        .to_path_buf()
}

pub fn kubectl_path(version: &str) -> PathBuf {
    let p = kubectl_dir().join(format!("kubectl.{version}"));
    assert!(
        p.exists(),
        "{} not found: the kubectl {version} binary is required",
        p.display()
    );
    p
}

/// Every kubectl version the machine carries.
pub const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"];

/// Polls `f` until it returns Some or the deadline passes.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Server {
    /// A counter or gauge from `/metrics`.
    pub fn metric(&self, name: &str) -> Option<u64> {
        let (code, body) = self.curl("GET", "/metrics", None, None);
        if code != 200 {
            return None;
        }
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Simulated nodes (`reddwarf sim-nodes`): Node objects whose Leases are renewed and whose
/// bound pods are marked Running/Ready, as upstream integration tests stand in for kubelets.
/// Dropping (or [`SimNodes::stop`]) stops the process, so the Leases stop being renewed.
pub struct SimNodes {
    child: Option<Child>,
    pub names: Vec<String>,
}

impl SimNodes {
    /// Starts `count` nodes named `<prefix>-0..` with extra `reddwarf sim-nodes` flags
    /// (`--taint k=v:NoSchedule`, `--label k=v`, `--cpu 2`, …) and waits until all are Ready.
    pub fn start(server: &Server, prefix: &str, count: usize, extra: &[&str]) -> SimNodes {
        let log = std::fs::File::create(server.data_dir().join(format!("sim-{prefix}.log")))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
            .args(["sim-nodes", "--renew-interval", "1s", "--kubeconfig"])
            .arg(server.kubeconfig())
            .args(["--prefix", prefix, "--count", &count.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start reddwarf sim-nodes");
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        let nodes = SimNodes {
            child: Some(child),
            names,
        };
        for n in &nodes.names {
            eventually(&format!("node {n} Ready"), Duration::from_secs(30), || {
                let (code, body) = server.curl("GET", &format!("/api/v1/nodes/{n}"), None, None);
                (code == 200 && body.contains("\"KubeletReady\"")).then_some(())
            });
        }
        nodes
    }

    /// Kills the simulated kubelets: their Leases stop being renewed.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for SimNodes {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    /// GET as JSON; panics unless 200.
    pub fn api_get(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.curl("GET", path, None, None);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// The resource names (subresources included) a legacy discovery document lists.
    pub fn resource_names(&self, group_version_path: &str) -> Vec<String> {
        self.api_get(group_version_path)["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str().map(String::from))
            .collect()
    }

    /// kubectl 1.33 with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd("1.33", args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl")
    }

    /// `kubectl apply -f -` with `manifest` on stdin (kubectl 1.33); returns stdout.
    pub fn apply(&self, manifest: &str) -> String {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], manifest);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{manifest}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Server {
    /// curl with `-s`, the cluster CA and the admin client certificate, ready for more flags
    /// and a URL: for requests [`Server::curl`] cannot make (streams, extra headers, `-i`).
    pub fn curl_cmd(&self) -> Command {
        let pki = self.dir.path().join("pki");
        let mut cmd = Command::new("curl");
        cmd.arg("-s")
            .arg("--cacert")
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join("admin.crt"))
            .arg("--key")
            .arg(pki.join("admin.key"));
        cmd
    }

    /// GET as JSON; None unless the answer is 200.
    pub fn get_opt(&self, path: &str) -> Option<serde_json::Value> {
        let (code, body) = self.curl("GET", path, None, None);
        (code == 200).then(|| serde_json::from_str(&body).expect("JSON"))
    }

    /// The pod `name` in the default namespace; panics unless it exists.
    pub fn default_pod(&self, name: &str) -> serde_json::Value {
        self.api_get(&format!("/api/v1/namespaces/default/pods/{name}"))
    }

    /// The pods in `ns` matching the label `selector` (`k=v`); none if the list has no items.
    pub fn pods_matching(&self, ns: &str, selector: &str) -> Vec<serde_json::Value> {
        self.api_get(&format!(
            "/api/v1/namespaces/{ns}/pods?labelSelector={}",
            selector.replace('=', "%3D")
        ))["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A request with a JSON body; returns (status, body).
    pub fn send_json(&self, method: &str, path: &str, body: &serde_json::Value) -> (u16, String) {
        self.curl(
            method,
            path,
            Some("application/json"),
            Some(body.to_string().as_bytes()),
        )
    }

    /// POSTs `body` (owned or borrowed), asserts 201 Created and returns the created object.
    pub fn create(
        &self,
        path: &str,
        body: impl std::borrow::Borrow<serde_json::Value>,
    ) -> serde_json::Value {
        let (code, text) = self.send_json("POST", path, body.borrow());
        assert_eq!(code, 201, "POST {path}: {text}");
        parse(&text)
    }

    /// Runs a watch request that ends by its own timeoutSeconds (curl gives up after 20 s)
    /// and returns its events, one JSON object per line; `accept` sets the Accept header.
    pub fn watch_events(
        &self,
        path_and_query: &str,
        accept: Option<&str>,
    ) -> Vec<serde_json::Value> {
        let mut cmd = self.curl_cmd();
        cmd.args(["-N", "--max-time", "20"]);
        if let Some(a) = accept {
            cmd.args(["-H", &format!("accept: {a}")]);
        }
        let out = cmd
            .arg(format!("{}{}", self.url, path_and_query))
            .stdout(Stdio::piped())
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("watch line {l:?}: {e}")))
            .collect()
    }

    /// Writes `text` to the file `name` in the data dir and returns its path (for `-f`).
    pub fn write_file(&self, name: &str, text: &str) -> String {
        let p = self.data_dir().join(name);
        std::fs::write(&p, text).expect("write file");
        p.to_string_lossy().into_owned()
    }

    /// `kubectl.<version> get <what> -o jsonpath=<path>`: the printed value.
    pub fn jsonpath(&self, version: &str, what: &str, path: &str) -> String {
        self.kubectl_ok(version, &["get", what, "-o", &format!("jsonpath={path}")])
    }
}

/// Parses `text` as JSON; panics with the text when it is not JSON.
pub fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(p: &serde_json::Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The `metadata.name`s of `objects`, as a set.
pub fn name_set(objects: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    objects
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// A bridge name no other test uses at the same time.
pub fn unique_bridge() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("rdwt{:06x}", h.finish() & 0xff_ffff)
}

/// A real `reddwarf agent` process joined to a [`Server`] with its node token. Dropping it
/// kills the process and removes every container, mount, network and cgroup it made
/// (`reddwarf agent --cleanup`).
pub struct Agent {
    child: Option<Child>,
    pub name: String,
    pub bridge: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    server_url: String,
    extra: Vec<String>,
    /// Runs the agent under this command (e.g. `nsenter --net=...`).
    wrapper: Vec<String>,
}

impl Agent {
    /// Starts an agent for node `name` (data dir and log inside the server's temp dir) and
    /// waits until its Node is Ready.
    pub fn start(server: &Server, name: &str, extra: &[&str]) -> Agent {
        Agent::start_with(server, name, extra, &[], &server.url)
    }

    /// An agent run under `wrapper` (e.g. `nsenter --net=<netns>`) dialling `server_url`.
    pub fn start_with(
        server: &Server,
        name: &str,
        extra: &[&str],
        wrapper: &[&str],
        server_url: &str,
    ) -> Agent {
        let mut a = Agent {
            child: None,
            name: name.to_string(),
            bridge: unique_bridge(),
            data_dir: server.data_dir().join(format!("agent-{name}")),
            log: server.data_dir().join(format!("agent-{name}.log")),
            server_url: server_url.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
        };
        let token = std::fs::read_to_string(server.data_dir().join("node-token"))
            .expect("the server writes DIR/node-token");
        a.spawn(Some(token.trim()));
        a.wait_ready(server);
        a
    }

    /// (Re)starts the process; `token` may be left out once the agent holds its certificate.
    pub fn spawn(&mut self, token: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = self.command();
        cmd.args([
            "agent",
            "--server",
            &self.server_url,
            "--node-name",
            &self.name,
        ])
        .args(["--bridge", &self.bridge])
        .arg("--data-dir")
        .arg(&self.data_dir)
        .args(&self.extra);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        self.child = Some(
            cmd.stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start reddwarf agent"),
        );
    }

    pub fn wait_ready(&mut self, server: &Server) {
        let n = self.name.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = server.curl("GET", &format!("/api/v1/nodes/{n}"), None, None);
            if code == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let ready = v["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if ready {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("agent {n} exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "node {n} not Ready in 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The binary, under the wrapper if there is one.
    fn command(&self) -> Command {
        match self.wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(env!("CARGO_BIN_EXE_reddwarf"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_reddwarf")),
        }
    }

    /// SIGKILL, as a crashed or unplugged node.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let c = self.child.take().expect("running");
        let pid = c.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        wait_with_deadline(c, Duration::from_secs(30))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        let out = self
            .command()
            .args([
                "agent",
                "--cleanup",
                "--node-name",
                &self.name,
                "--bridge",
                &self.bridge,
            ])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "agent cleanup failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// A cluster CIDR (a /16 under 10.0.0.0/8) no other test on this machine holds at the same
/// time, so concurrent tests' pod bridges never share a subnet. Released on drop.
pub struct TestNet {
    pub octet: u8,
    lock: PathBuf,
}

impl TestNet {
    pub fn reserve() -> TestNet {
        let root = std::env::temp_dir().join("reddwarf-test-nets");
        std::fs::create_dir_all(&root).expect("lock dir");
        for octet in 100u8..250 {
            let lock = root.join(octet.to_string());
            if std::fs::create_dir(&lock).is_ok() {
                std::fs::write(lock.join("pid"), std::process::id().to_string()).ok();
                return TestNet { octet, lock };
            }
            // A holder that died without releasing: take it over.
            let pid = std::fs::read_to_string(lock.join("pid")).unwrap_or_default();
            if !pid.is_empty() && !Path::new(&format!("/proc/{}", pid.trim())).exists() {
                std::fs::write(lock.join("pid"), std::process::id().to_string()).ok();
                return TestNet { octet, lock };
            }
        }
        panic!("no free test network");
    }

    pub fn cluster_cidr(&self) -> String {
        format!("10.{}.0.0/16", self.octet)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.lock);
    }
}

/// The busybox test image as an OCI archive named `docker.io/library/busybox:1.36` in `dir`
/// (for `--images-dir`), and its OCI layout (to push to a registry).
pub fn busybox_image(dir: &Path) -> (PathBuf, PathBuf) {
    let layout = dir.join("busybox-layout");
    reddwarf_images::testsupport::build_busybox_oci_layout(&layout, "1.36")
        .expect("busybox layout");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let archive = images.join("busybox.tar");
    reddwarf_images::testsupport::skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:1.36", layout.display()),
        &format!(
            "oci-archive:{}:docker.io/library/busybox:1.36",
            archive.display()
        ),
    ])
    .expect("skopeo oci-archive");
    (images, layout)
}

/// A kubeconfig for `token` (no client certificate), written into the server's data dir as
/// `<name>.kubeconfig`.
pub fn token_kubeconfig(s: &Server, name: &str, token: &str) -> String {
    let ca = s.data_dir().join("pki/ca.crt");
    s.write_file(
        &format!("{name}.kubeconfig"),
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            s.url,
            ca.display()
        ),
    )
}

/// Runs `kubectl.<version>` with another kubeconfig (a cache dir of its own per kubeconfig).
pub fn kubectl_with(s: &Server, version: &str, kubeconfig: &str, args: &[&str]) -> Output {
    let file = Path::new(kubeconfig)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Command::new(kubectl_path(version))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(s.data_dir().join(format!("cache-{version}-{file}")))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("kubectl")
}

/// Asserts kubectl succeeded; returns its stdout.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Drives `s` with `reddwarf bench create` (16 clients, ConfigMaps with a `size`-byte payload),
/// SIGKILLs the server once its store passed `revision`, and returns the names of the creates
/// acknowledged before that (at least 100). The server is left stopped.
pub fn kill9_during_create_storm(s: &mut Server, size: usize, revision: u64) -> Vec<String> {
    let acked_path = s.data_dir().join("acked.txt");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_reddwarf"))
        .args([
            "bench",
            "create",
            "--concurrency",
            "16",
            "--count",
            "10000000",
            "--size",
        ])
        .arg(size.to_string())
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .arg("--acked-log")
        .arg(&acked_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bench");
    // Let some creates commit, then pull the plug mid-storm.
    eventually("creates under way", Duration::from_secs(60), || {
        s.metric("reddwarf_store_revision")
            .filter(|r| *r > revision)
    });
    s.kill9();
    let status = bench.wait().expect("bench exits once the server is gone");
    assert!(status.success(), "bench failed: {status}");
    let acked: Vec<String> = std::fs::read_to_string(&acked_path)
        .expect("acked log")
        .lines()
        .map(String::from)
        .collect();
    assert!(
        acked.len() > 100,
        "only {} creates were acknowledged",
        acked.len()
    );
    acked
}
