//! Real pods: the real server, a real agent with the libcontainer runtime, images from a
//! registry on 127.0.0.1 or from `--images-dir`, and real kubectl 1.27 (SPDY) and 1.33
//! (WebSocket) for logs, exec, attach, port-forward and cp. Needs root (containers, netns).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{busybox_image, eventually, kubectl_path, Agent, Server, TestNet};
use serde_json::Value;

struct Cluster {
    // Drop order: agent (and its cleanup) before the server and the network reservation.
    agent: Agent,
    server: Server,
    _net: TestNet,
    images: std::path::PathBuf,
    layout: std::path::PathBuf,
}

fn cluster(node: &str) -> Cluster {
    let net = TestNet::reserve();
    let server = Server::start_with(&["--cluster-cidr", &net.cluster_cidr()]);
    let (images, layout) = busybox_image(server.data_dir());
    let agent = Agent::start(&server, node, &["--images-dir", images.to_str().unwrap()]);
    Cluster {
        agent,
        server,
        _net: net,
        images,
        layout,
    }
}

fn wait_running(s: &Server, name: &str) -> Value {
    eventually(
        &format!("pod {name} Running and Ready"),
        Duration::from_secs(60),
        || {
            let (code, body) = s.curl(
                "GET",
                &format!("/api/v1/namespaces/default/pods/{name}"),
                None,
                None,
            );
            let p: Value = serde_json::from_str(&body).ok()?;
            let ready = p["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (code == 200 && p["status"]["phase"] == "Running" && ready).then_some(p)
        },
    )
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let len: u32 = len.parse().unwrap();
    let a: std::net::Ipv4Addr = ip.parse().unwrap();
    let n: std::net::Ipv4Addr = net.parse().unwrap();
    let mask = u32::MAX << (32 - len);
    u32::from(a) & mask == u32::from(n) & mask
}

#[test]
fn a_deployment_from_a_local_registry_runs_with_pod_networking() {
    let c = cluster("w1");
    let s = &c.server;
    let registry = reddwarf_images::testsupport::LocalRegistry::start(s.data_dir()).unwrap();
    let image = format!("{}/test/busybox:1.0", registry.addr);
    reddwarf_images::testsupport::push_oci_layout(&c.layout, "1.36", &image).unwrap();
    s.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: httpd
        image: {image}
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"#
    ));
    let out = s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/web", "--timeout=120s"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    let cidr = s.api_get("/api/v1/nodes/w1")["spec"]["podCIDR"]
        .as_str()
        .unwrap()
        .to_string();
    let pods = s.api_get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let mut ips = Vec::new();
    for p in items {
        let ip = p["status"]["podIP"].as_str().unwrap().to_string();
        assert!(in_cidr(&ip, &cidr), "{ip} not in {cidr}");
        assert_eq!(p["status"]["hostIP"], "127.0.0.1");
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["ready"], true, "{cs}");
        assert!(cs["imageID"].as_str().unwrap().contains("@sha256:"), "{cs}");
        assert!(cs["containerID"]
            .as_str()
            .unwrap()
            .starts_with("reddwarf://"));
        ips.push((p["metadata"]["name"].as_str().unwrap().to_string(), ip));
    }
    // One pod reaches another by IP on the node bridge.
    let (from, _) = &ips[0];
    let (to_name, to_ip) = &ips[1];
    let got = s.kubectl_ok(
        "1.33",
        &[
            "exec",
            from,
            "--",
            "wget",
            "-qO-",
            &format!("http://{to_ip}:8080/"),
        ],
    );
    assert_eq!(got.trim(), to_name.as_str());
    // The node's resource usage, as the kubelet's Summary API and /metrics/resource.
    let summary: Value = serde_json::from_str(&s.kubectl_ok(
        "1.33",
        &["get", "--raw", "/api/v1/nodes/w1/proxy/stats/summary"],
    ))
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], "w1");
    assert!(
        summary["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let web_pods: Vec<&Value> = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["podRef"]["name"].as_str().unwrap().starts_with("web-"))
        .collect();
    assert_eq!(web_pods.len(), 3, "{summary}");
    assert!(web_pods[0]["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
    let metrics = s.kubectl_ok(
        "1.33",
        &["get", "--raw", "/api/v1/nodes/w1/proxy/metrics/resource"],
    );
    assert!(
        metrics.contains("container_memory_working_set_bytes{container=\"httpd\""),
        "{metrics}"
    );

    // pods/proxy reaches the pod through the node's tunnel.
    let got = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{to_name}:8080/proxy/"),
        ],
    );
    assert_eq!(got.trim(), to_name.as_str());

    // services/proxy reaches a ready endpoint through its pod's node.
    s.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n");
    let got = eventually("services/proxy", Duration::from_secs(30), || {
        let out = s.kubectl(
            "1.33",
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/default/services/web:http/proxy/",
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    assert!(
        ips.iter().any(|(n, _)| *n == got),
        "{got} is not one of {ips:?}"
    );

    // A hostPort reaches the pod from the host.
    let hp = free_port();
    s.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hp}}\nspec:\n  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, 'mkdir -p /w && echo via-hostport > /w/index.html && exec httpd -f -p 80 -h /w']\n    ports: [{{containerPort: 80, hostPort: {hp}}}]\n"
    ));
    wait_running(s, "hp");
    let body = http_body("the hostPort to answer", hp, 20);
    assert_eq!(body.trim(), "via-hostport");

    // An image from --images-dir runs without any registry.
    drop(registry);
    s.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: local}\nspec:\n  containers:\n  - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sh, -c, 'echo from-archive; sleep 3600']}\n",
    );
    wait_running(s, "local");
    let logs = s.kubectl_ok("1.33", &["logs", "local"]);
    assert_eq!(logs.trim(), "from-archive");
    // A missing image is an upstream-shaped pull error.
    s.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: missing}\nspec:\n  containers:\n  - {name: c, image: '127.0.0.1:1/nope/nothing:1'}\n",
    );
    eventually(
        "ErrImagePull/ImagePullBackOff",
        Duration::from_secs(30),
        || {
            let p = s.default_pod("missing");
            let r = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (r == "ErrImagePull" || r == "ImagePullBackOff").then_some(())
        },
    );
    let _ = &c.images;
}

fn kubectl_in(s: &Server, version: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut child = s
        .kubectl_cmd(version, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn kubectl_logs_exec_attach_port_forward_and_cp_with_1_27_and_1_33() {
    let c = cluster("w2");
    let s = &c.server;
    s.apply(
        r#"apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: [sh, -c, 'mkdir -p /www && echo pf-ok > /www/index.html && httpd -p 8080 -h /www; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done']
  - name: side
    image: busybox:1.36
    command: [sh, -c, 'echo side-up; exec sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'echo "run at $(date +%s%N)"; sleep 1; exit 1']
"#,
    );
    wait_running(s, "p");
    for v in ["1.27", "1.33"] {
        // logs with a container choice and --tail.
        let out = s.kubectl_ok(v, &["logs", "p", "-c", "main", "--tail=2"]);
        assert_eq!(out.lines().count(), 2, "{v}: {out}");
        assert!(out.lines().all(|l| l.starts_with("tick ")), "{v}: {out}");
        let out = s.kubectl_ok(v, &["logs", "p", "-c", "side"]);
        assert_eq!(out.trim(), "side-up");
        // kubectl picks the first container itself; the API asks for a choice.
        let out = s.kubectl(
            v,
            &["get", "--raw", "/api/v1/namespaces/default/pods/p/log"],
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(
                "a container name must be specified for pod p, choose one of: [main side]"
            ),
            "{v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // logs -f streams new lines.
        let mut f = s
            .kubectl_cmd(v, &["logs", "-f", "p", "-c", "main", "--tail=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = f.stdout.take().unwrap();
        let lines = std::thread::spawn(move || {
            use std::io::Read;
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while got.iter().filter(|b| **b == b'\n').count() < 4 {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8_lossy(&got).to_string()
        });
        eventually("logs -f to stream 4 lines", Duration::from_secs(20), || {
            lines.is_finished().then_some(())
        });
        let _ = f.kill();
        let _ = f.wait();
        let text = lines.join().unwrap();
        assert!(
            text.lines().count() >= 4 && text.contains("tick "),
            "{v}: {text}"
        );

        // exec: stdout and stderr, exit codes, stdin.
        let out = s.kubectl(
            v,
            &[
                "exec",
                "p",
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
        );
        assert_eq!(out.status.code(), Some(3), "{v}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "out");
        assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
        let out = kubectl_in(
            s,
            v,
            &["exec", "-i", "p", "-c", "main", "--", "cat"],
            "through stdin\n",
        );
        assert!(
            out.status.success(),
            "{v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

        // cp into and out of the pod (tar over exec).
        let local = s.data_dir().join(format!("cp-{v}.txt"));
        std::fs::write(&local, format!("copied with {v}\n")).unwrap();
        s.kubectl_ok(
            v,
            &["cp", local.to_str().unwrap(), "p:/tmp/in.txt", "-c", "main"],
        );
        let out = s.kubectl_ok(v, &["exec", "p", "-c", "main", "--", "cat", "/tmp/in.txt"]);
        assert_eq!(out, format!("copied with {v}\n"));
        let back = s.data_dir().join(format!("back-{v}.txt"));
        s.kubectl_ok(
            v,
            &["cp", "p:/tmp/in.txt", back.to_str().unwrap(), "-c", "main"],
        );
        assert_eq!(
            std::fs::read_to_string(&back).unwrap(),
            format!("copied with {v}\n")
        );

        // port-forward to the pod's HTTP server.
        let port = free_port();
        let mut pf = s
            .kubectl_cmd(v, &["port-forward", "pod/p", &format!("{port}:8080")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let body = http_body("port-forward to answer", port, 20);
        assert_eq!(body.trim(), "pf-ok", "{v}");
        let _ = pf.kill();
        let _ = pf.wait();

        // attach shows what the container prints from now on.
        let mut at = s
            .kubectl_cmd(v, &["attach", "p", "-c", "main"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = at.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 256];
            let n = out.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        eventually("attach output", Duration::from_secs(20), || {
            reader.is_finished().then_some(())
        });
        let _ = at.kill();
        let _ = at.wait();
        assert!(reader.join().unwrap().contains("tick "), "{v}");
    }
    // TTY exec (a pty inside; kubectl gives no terminal here, so the command sees one).
    let out = s.kubectl_ok(
        "1.33",
        &[
            "exec",
            "p",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "test -t 0 || echo no-tty",
        ],
    );
    assert_eq!(out.trim(), "no-tty");

    // A crashing container: restarts counted, and --previous shows the last run.
    eventually("crasher restarted", Duration::from_secs(60), || {
        (s.default_pod("crasher")["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1)
            .then_some(())
    });
    for v in ["1.27", "1.33"] {
        let prev = s.kubectl_ok(v, &["logs", "crasher", "--previous"]);
        assert!(prev.starts_with("run at "), "{v}: {prev}");
    }
    let st = &s.default_pod("crasher")["status"]["containerStatuses"][0];
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 1, "{st}");
    assert_eq!(st["lastState"]["terminated"]["reason"], "Error", "{st}");
}

/// The body of `http://127.0.0.1:<port>/` once it answers (within `secs`).
fn http_body(what: &str, port: u16, secs: u64) -> String {
    eventually(what, Duration::from_secs(secs), || {
        let out = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "2",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .output()
            .ok()?;
        let b = String::from_utf8_lossy(&out.stdout).to_string();
        (!b.is_empty()).then_some(b)
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn probes_jobs_memory_limits_and_config_map_updates() {
    let c = cluster("w3");
    let s = &c.server;
    s.apply(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {greeting: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'sleep 3600']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: mem}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'sleep 3600']
    resources: {limits: {memory: 32Mi}}
    volumeMounts: [{name: conf, mountPath: /etc/conf}]
  volumes: [{name: conf, configMap: {name: conf}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: job}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox:1.36, command: [sh, -c, 'echo job-done']}
"#,
    );
    // The Job completes.
    s.kubectl_ok(
        "1.33",
        &[
            "wait",
            "--for=condition=complete",
            "job/job",
            "--timeout=60s",
        ],
    );
    let logs = s.kubectl_ok("1.33", &["logs", "job/job"]);
    assert_eq!(logs.trim(), "job-done");

    // The memory limit is the container's cgroup limit; going past it is OOMKilled.
    wait_running(s, "mem");
    let limit = s.kubectl_ok(
        "1.33",
        &[
            "exec",
            "mem",
            "--",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ],
    );
    assert_eq!(limit.trim(), (32 * 1024 * 1024).to_string());
    // The configMap volume, then an update that reaches the running pod.
    let g = s.kubectl_ok("1.33", &["exec", "mem", "--", "cat", "/etc/conf/greeting"]);
    assert_eq!(g, "hello");
    s.kubectl_ok(
        "1.33",
        &[
            "patch",
            "configmap",
            "conf",
            "-p",
            r#"{"data":{"greeting":"updated"}}"#,
        ],
    );
    eventually(
        "the configMap update in the pod",
        Duration::from_secs(60),
        || {
            let g = s.kubectl_ok("1.33", &["exec", "mem", "--", "cat", "/etc/conf/greeting"]);
            (g == "updated").then_some(())
        },
    );
    let oom_pod = r#"apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'head -c 200000000 /dev/zero | tail']
    resources: {limits: {memory: 32Mi}}
"#;
    s.apply(oom_pod);
    let st = eventually("OOMKilled", Duration::from_secs(60), || {
        let p = s.default_pod("oom");
        let t = p["status"]["containerStatuses"][0]["state"]["terminated"].clone();
        t.is_object().then_some(p)
    });
    let t = &st["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{st}");
    assert_eq!(st["status"]["phase"], "Failed", "{st}");

    // A failing liveness probe restarts the container, with back-off.
    eventually("liveness restarts", Duration::from_secs(90), || {
        let p = s.default_pod("live");
        let cs = &p["status"]["containerStatuses"][0];
        (cs["restartCount"].as_i64().unwrap_or(0) >= 1).then_some(())
    });
    eventually("CrashLoopBackOff", Duration::from_secs(60), || {
        let p = s.default_pod("live");
        (p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff")
            .then_some(())
    });
    let events = s.kubectl_ok(
        "1.33",
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=live",
        ],
    );
    assert!(events.contains("failed liveness probe"), "{events}");
}

/// Mount points, netns files, bridge ports and cgroup directories the agent has.
fn host_resources(a: &Agent) -> (usize, usize, usize, usize) {
    let dir = a.data_dir.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir))
        .count();
    let netns = std::fs::read_dir(a.data_dir.join("netns"))
        .map(|d| d.count())
        .unwrap_or(0);
    let veths = std::fs::read_dir(format!("/sys/class/net/{}/brif", a.bridge))
        .map(|d| d.count())
        .unwrap_or(0);
    let cgroups = std::fs::read_dir(format!("/sys/fs/cgroup/memory/reddwarf/{}", a.name))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    (mounts, netns, veths, cgroups)
}

#[test]
fn deleting_fifty_pods_leaves_no_mounts_netns_veths_or_cgroups() {
    let c = cluster("w4");
    let s = &c.server;
    s.apply(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: 50
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 1; done']}
"#,
    );
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/many", "--timeout=300s"],
    );
    let (mounts, netns, veths, cgroups) = host_resources(&c.agent);
    assert!(mounts >= 50, "{mounts} mounts");
    assert_eq!(netns, 50);
    assert_eq!(veths, 50);
    assert_eq!(cgroups, 50);
    s.kubectl_ok("1.33", &["delete", "deployment", "many", "--wait=true"]);
    eventually("all pods gone", Duration::from_secs(180), || {
        let p = s.api_get("/api/v1/namespaces/default/pods");
        p["items"].as_array().unwrap().is_empty().then_some(())
    });
    eventually("nothing left on the host", Duration::from_secs(30), || {
        (host_resources(&c.agent) == (0, 0, 0, 0)).then_some(())
    });
    let _ = kubectl_path("1.33");
}

#[test]
fn the_server_runs_pods_on_its_own_host_with_its_embedded_agent() {
    let net = TestNet::reserve();
    let bridge = common::unique_bridge();
    let images = tempfile::tempdir().unwrap();
    let (images_dir, _) = busybox_image(images.path());
    let s = Server::start_with_agent(&[
        "--cluster-cidr",
        &net.cluster_cidr(),
        "--node-name",
        "cp-1",
        "--bridge",
        &bridge,
        "--images-dir",
        images_dir.to_str().unwrap(),
    ]);
    eventually("node cp-1 Ready", Duration::from_secs(60), || {
        let out = s.kubectl("1.33", &["get", "node", "cp-1", "--no-headers"]);
        String::from_utf8_lossy(&out.stdout)
            .contains(" Ready ")
            .then_some(())
    });
    let nodes = s.kubectl_ok("1.33", &["get", "nodes", "--no-headers"]);
    assert!(nodes.contains("control-plane"), "{nodes}");
    s.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: here}\nspec:\n  containers:\n  - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sh, -c, 'echo on-the-server; sleep 3600']}\n",
    );
    wait_running(&s, "here");
    assert_eq!(
        s.kubectl_ok("1.33", &["logs", "here"]).trim(),
        "on-the-server"
    );
    let out = s.kubectl_ok("1.33", &["exec", "here", "--", "hostname"]);
    assert_eq!(out.trim(), "here");

    // The pod's service-account credentials, projected by the agent: a token bound to the pod,
    // the cluster CA and the namespace.
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let token = s.kubectl_ok(
        "1.33",
        &["exec", "here", "--", "cat", &format!("{dir}/token")],
    );
    let ns = s.kubectl_ok(
        "1.33",
        &["exec", "here", "--", "cat", &format!("{dir}/namespace")],
    );
    assert_eq!(ns, "default");
    let ca = s.kubectl_ok(
        "1.33",
        &["exec", "here", "--", "cat", &format!("{dir}/ca.crt")],
    );
    assert_eq!(
        ca,
        std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).unwrap()
    );
    let review = |token: &str| {
        let (code, body) = s.send_json(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token}}),
        );
        assert_eq!(code, 201, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["status"].clone()
    };
    let status = review(token.trim());
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:default"
    );
    s.kubectl_ok(
        "1.33",
        &["delete", "pod", "here", "--grace-period=0", "--force"],
    );
    let status = review(token.trim());
    assert!(status.get("authenticated").is_none(), "{status}");
    drop(s);
}

#[test]
fn an_agent_restart_leaves_pods_running_and_adopts_them() {
    let mut c = cluster("w5");
    let s = &c.server;
    s.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: steady}\nspec:\n  containers:\n  - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo n$i; sleep 0.2; done']}\n",
    );
    let before = wait_running(s, "steady");
    let id = before["status"]["containerStatuses"][0]["containerID"].clone();
    assert!(c.agent.terminate().success(), "{}", c.agent.log());
    // The container kept running without its agent: its log grew meanwhile.
    let log_lines = |c: &Cluster| {
        let dir = c.agent.data_dir.join("logs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let f = e.path().join("c/0.log");
            n += std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .count();
        }
        n
    };
    let n1 = log_lines(&c);
    eventually(
        "the container to keep logging",
        Duration::from_secs(10),
        || (log_lines(&c) > n1 + 3).then_some(()),
    );
    c.agent.spawn(None);
    c.agent.wait_ready(s);
    let after = wait_running(s, "steady");
    let cs = &after["status"]["containerStatuses"][0];
    assert_eq!(
        cs["containerID"], id,
        "the same container was adopted: {cs}"
    );
    assert_eq!(cs["restartCount"], 0, "{cs}");
    // The node's Ready condition is still the old agent's: exec once the new tunnel is up.
    let out = eventually(
        "exec through the restarted agent",
        Duration::from_secs(30),
        || {
            let o = s.kubectl("1.33", &["exec", "steady", "--", "echo", "still-here"]);
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
        },
    );
    assert_eq!(out.trim(), "still-here");
    let logs = s.kubectl_ok("1.33", &["logs", "steady", "--tail=1"]);
    assert!(logs.starts_with('n'), "{logs}");
}

/// A network namespace joined to the host by a veth pair; removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// `host_ip`/30 on the host side, `ns_ip`/30 inside.
    fn create(host_ip: &str, ns_ip: &str) -> Netns {
        let tag = &common::unique_bridge()[4..];
        let n = Netns {
            name: format!("rdwt-ns-{tag}"),
            host_if: format!("rdwh{tag}"),
        };
        let peer = format!("rdwp{tag}");
        ip(&["netns", "add", &n.name]);
        ip(&[
            "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &n.name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &n.host_if]);
        ip(&["link", "set", &n.host_if, "up"]);
        ip(&[
            "-n",
            &n.name,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &n.name, "link", "set", &peer, "up"]);
        ip(&["-n", &n.name, "link", "set", "lo", "up"]);
        n
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
fn an_agent_behind_a_firewall_serves_logs_exec_and_port_forward_through_its_tunnel() {
    let net = TestNet::reserve();
    let (host_ip, ns_ip) = (
        format!("10.{}.250.1", net.octet),
        format!("10.{}.250.2", net.octet),
    );
    let ns = Netns::create(&host_ip, &ns_ip);
    let enter = format!("--net={}", ns.path());
    // Nothing may connect into the node's namespace: new inbound connections are dropped.
    let out = Command::new("nsenter")
        .args([
            &enter,
            "iptables",
            "-w",
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "DROP",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut listener = Command::new("nsenter")
        .args([&enter, "busybox", "nc", "-l", "-p", "19999"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let probe = Command::new("curl")
        .args(["-s", "--max-time", "2", &format!("http://{ns_ip}:19999/")])
        .output()
        .unwrap();
    let _ = listener.kill();
    let _ = listener.wait();
    assert_eq!(
        probe.status.code(),
        Some(28),
        "the server side could connect into the node's namespace"
    );

    let server = Server::start_with(&[
        "--listen",
        &format!("{host_ip}:0"),
        "--tls-san",
        &host_ip,
        "--cluster-cidr",
        &net.cluster_cidr(),
    ]);
    let s = &server;
    let (images, _) = busybox_image(s.data_dir());
    let _agent = Agent::start_with(
        s,
        "fw-1",
        &["--images-dir", images.to_str().unwrap()],
        &["nsenter", &enter],
        &s.url,
    );
    let node = s.api_get("/api/v1/nodes/fw-1");
    assert_eq!(
        node["status"]["addresses"][0]["address"],
        ns_ip.as_str(),
        "{node}"
    );
    s.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: shy}\nspec:\n  containers:\n  - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sh, -c, 'mkdir -p /w && echo behind-nat > /w/index.html && httpd -p 8080 -h /w; echo started; sleep 3600']}\n",
    );
    wait_running(s, "shy");
    for v in ["1.27", "1.33"] {
        assert_eq!(s.kubectl_ok(v, &["logs", "shy"]).trim(), "started");
        let out = s.kubectl(
            v,
            &["exec", "shy", "--", "sh", "-c", "cat /w/index.html; exit 4"],
        );
        assert_eq!(out.status.code(), Some(4), "{v}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "behind-nat");
        let port = free_port();
        let mut pf = s
            .kubectl_cmd(v, &["port-forward", "pod/shy", &format!("{port}:8080")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let body = http_body("port-forward through the tunnel", port, 20);
        let _ = pf.kill();
        let _ = pf.wait();
        assert_eq!(body.trim(), "behind-nat", "{v}");
    }
}

#[test]
fn pods_of_a_dead_node_move_to_the_live_one() {
    let net = TestNet::reserve();
    let server = Server::start_with(&[
        "--cluster-cidr",
        &net.cluster_cidr(),
        "--node-monitor-grace-period",
        "12s",
        "--default-unreachable-toleration-seconds",
        "1",
    ]);
    let s = &server;
    let (images, _) = busybox_image(s.data_dir());
    let img = ["--images-dir", images.to_str().unwrap()];
    let mut a = Agent::start(s, "m-a", &img);
    let _b = Agent::start(s, "m-b", &img);
    s.apply(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: mover}
spec:
  replicas: 4
  selector: {matchLabels: {app: mover}}
  template:
    metadata: {labels: {app: mover}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference: {matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [m-a]}]}
      containers:
      - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sleep, '3600']}
"#,
    );
    s.kubectl_ok(
        "1.33",
        &["rollout", "status", "deployment/mover", "--timeout=120s"],
    );
    let on = |node: &str| {
        s.api_get(&format!(
            "/api/v1/namespaces/default/pods?labelSelector=app%3Dmover&fieldSelector=spec.nodeName%3D{node}"
        ))["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running")
            .count()
    };
    assert!(on("m-a") >= 1, "the preferred node runs pods");
    a.kill9();
    eventually(
        "all 4 replicas Running on m-b",
        Duration::from_secs(120),
        || (on("m-b") == 4).then_some(()),
    );
    let n = s.api_get("/api/v1/nodes/m-a");
    let taints = n["spec"]["taints"].to_string();
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
}

#[test]
fn container_logs_rotate_by_size_and_keep_the_newest_files() {
    let net = TestNet::reserve();
    let server = Server::start_with(&["--cluster-cidr", &net.cluster_cidr()]);
    let s = &server;
    let (images, _) = busybox_image(s.data_dir());
    let agent = Agent::start(
        s,
        "logs-1",
        &[
            "--images-dir",
            images.to_str().unwrap(),
            "--container-log-max-size",
            "2Ki",
            "--container-log-max-files",
            "3",
        ],
    );
    s.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: chatty}\nspec:\n  containers:\n  - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sh, -c, 'for i in $(seq 1 400); do echo \"line $i of a chatty container\"; done; echo last-line; sleep 3600']}\n",
    );
    wait_running(s, "chatty");
    let dir = eventually("the log directory", Duration::from_secs(20), || {
        let logs = agent.data_dir.join("logs");
        let d = std::fs::read_dir(&logs)
            .ok()?
            .flatten()
            .next()?
            .path()
            .join("c");
        d.exists().then_some(d)
    });
    eventually("the last line logged", Duration::from_secs(20), || {
        let out = s.kubectl("1.33", &["logs", "chatty", "--tail=1"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "last-line").then_some(())
    });
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().any(|f| f == "0.log"), "{files:?}");
    for f in &files {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len < 4096, "{f} is {len} bytes");
    }
}
