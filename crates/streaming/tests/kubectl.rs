//! Real kubectl (1.27 … 1.33, found next to the `kubectl` on PATH as `kubectl.1.NN`) against a
//! tiny plain-HTTP API server on 127.0.0.1 that answers the pod read and discovery and serves
//! the exec/attach/portforward upgrades with this crate: exec runs a real local process,
//! port-forward dials a local HTTP server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reddwarf_streaming::{
    accept_remotecommand, negotiate, serve_portforward, Kind, Negotiated, StreamOptions, Transport,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Extra environment for one kubectl run.
type Env = &'static [(&'static str, &'static str)];

const STEP: Duration = Duration::from_secs(60);

/// What the server negotiated, per subresource, in order.
type Log = Arc<Mutex<Vec<(String, Negotiated)>>>;

struct Tasks(Vec<JoinHandle<()>>);
impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn kubectl_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let kubectl = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())?;
    Some(std::fs::canonicalize(kubectl).ok()?.parent()?.to_path_buf())
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

const POD: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default","uid":"6f1c0a52-0000-4000-8000-000000000001","resourceVersion":"1","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"containers":[{"name":"c","image":"busybox"}]},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"c","ready":true,"started":true,"restartCount":0,"image":"busybox","imageID":"","state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}}}]}}"#;

const API_RESOURCES: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},{"name":"pods/attach","singularName":"","namespaced":true,"kind":"PodAttachOptions","verbs":["create","get"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#;

async fn handle(mut req: Request<Incoming>, log: Log) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let sub = path
        .strip_prefix("/api/v1/namespaces/default/pods/p/")
        .map(str::to_string);
    let kind = match sub.as_deref() {
        Some("exec") | Some("attach") => Some(Kind::RemoteCommand),
        Some("portforward") => Some(Kind::PortForward),
        _ => None,
    };
    let Some(kind) = kind else {
        let resp = match (req.method(), path.as_str()) {
            (&Method::GET, "/api/v1/namespaces/default/pods/p") => json(StatusCode::OK, POD.into()),
            (&Method::GET, "/api") => json(
                StatusCode::OK,
                r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}"#.into(),
            ),
            (&Method::GET, "/apis") => json(
                StatusCode::OK,
                r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#.into(),
            ),
            (&Method::GET, "/api/v1") => json(StatusCode::OK, API_RESOURCES.into()),
            (&Method::GET, "/version") => json(
                StatusCode::OK,
                r#"{"major":"1","minor":"33","gitVersion":"v1.33.0","platform":"linux/amd64"}"#
                    .into(),
            ),
            _ => json(
                StatusCode::NOT_FOUND,
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found","reason":"NotFound","code":404}"#.into(),
            ),
        };
        return Ok(resp);
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let (resp, n) = match negotiate(&parts, kind) {
        Ok(ok) => ok,
        Err(refusal) => {
            let (p, body) = refusal.into_parts();
            return Ok(Response::from_parts(p, Full::new(Bytes::from(body))));
        }
    };
    let sub = sub.unwrap_or_default();
    log.lock().unwrap().push((sub.clone(), n.clone()));
    let query = parts.uri.query().unwrap_or("").to_string();
    tokio::spawn(async move {
        let io = match on_upgrade.await {
            Ok(up) => TokioIo::new(up),
            Err(e) => return eprintln!("upgrade failed: {e}"),
        };
        let res = match sub.as_str() {
            "exec" => run_exec(io, n, StreamOptions::from_query(&query)).await,
            "attach" => run_attach(io, n, StreamOptions::from_query(&query)).await,
            _ => serve_portforward(io, n, |port| TcpStream::connect(("127.0.0.1", port))).await,
        };
        if let Err(e) = res {
            eprintln!("{sub} session: {e}");
        }
    });
    let (p, ()) = resp.into_parts();
    Ok(Response::from_parts(p, Full::new(Bytes::new())))
}

/// exec: the command runs as a local process.
async fn run_exec<IO>(io: IO, n: Negotiated, opts: StreamOptions) -> std::io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut rc = accept_remotecommand(io, n, opts.clone()).await?;
    let Some((prog, args)) = opts.command.split_first() else {
        return rc.finish(Err("no command".into())).await;
    };
    let mut child = match tokio::process::Command::new(prog)
        .args(args)
        .stdin(if rc.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return rc.finish(Err(e.to_string())).await,
    };
    // stdin may never end (the client keeps it open): it must not hold up the exit.
    let stdin_copy = match (rc.stdin.take(), child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        })),
        _ => None,
    };
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (stdout, stderr) = (rc.stdout.as_mut(), rc.stderr.as_mut());
    let copy_out = async {
        match stdout {
            Some(w) => tokio::io::copy(&mut out, w).await.map(drop),
            None => tokio::io::copy(&mut out, &mut tokio::io::sink())
                .await
                .map(drop),
        }
    };
    let copy_err = async {
        match stderr {
            Some(w) => tokio::io::copy(&mut err, w).await.map(drop),
            None => tokio::io::copy(&mut err, &mut tokio::io::sink())
                .await
                .map(drop),
        }
    };
    let _ = tokio::join!(copy_out, copy_err);
    let status = child.wait().await?;
    if let Some(t) = stdin_copy {
        t.abort();
    }
    let code = status.code().unwrap_or(128);
    rc.finish(Ok(code)).await
}

/// attach: the "container" prints a line and what it reads on stdin, then ends.
async fn run_attach<IO>(io: IO, n: Negotiated, opts: StreamOptions) -> std::io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut rc = accept_remotecommand(io, n, opts).await?;
    if let Some(out) = rc.stdout.as_mut() {
        match rc.stdin.take() {
            Some(mut stdin) => {
                // The line goes out once the client is sending, i.e. reading too: kubectl
                // may start reading its output streams only after the upgrade, and a busy
                // machine showed the line lost when it was written before that.
                let mut first = vec![0u8; 4096];
                let n = tokio::io::AsyncReadExt::read(&mut stdin, &mut first).await?;
                out.write_all(b"attached\n").await?;
                out.write_all(&first[..n]).await?;
                tokio::io::copy(&mut stdin, out).await?;
            }
            None => out.write_all(b"attached\n").await?,
        }
    }
    rc.finish(Ok(0)).await
}

async fn start_api(log: Log, tasks: &mut Tasks) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tasks.0.push(tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, log.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    }));
    addr
}

/// The port-forward target: answers every connection with one small HTTP response.
async fn start_http_target(tasks: &mut Tasks) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tasks.0.push(tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "hello through port-forward\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    }));
    port
}

fn kubectl(bin: &Path, home: &Path, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin);
    c.env_clear()
        .env("HOME", home)
        .env("KUBECONFIG", home.join("config"))
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    c
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(mut cmd: tokio::process::Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl starts");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input).await.unwrap();
        drop(w);
    }
    let out = tokio::time::timeout(STEP, child.wait_with_output())
        .await
        .expect("kubectl finished in time")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// GET / through the forwarded local port, on a fresh connection.
async fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(STEP, s.read_to_end(&mut resp))
        .await
        .expect("response in time")
        .unwrap();
    String::from_utf8_lossy(&resp).into_owned()
}

fn describe(n: &Negotiated) -> String {
    match &n.transport {
        Transport::Spdy => format!("SPDY/3.1 {}", n.protocol),
        Transport::WebSocket { .. } => format!("WebSocket {}", n.protocol),
        Transport::SpdyOverWebSocket => format!("WebSocket SPDY/3.1+{}", n.protocol),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_exec_attach_and_port_forward() {
    let Some(dir) = kubectl_dir() else {
        eprintln!("no kubectl on PATH: nothing to test against");
        return;
    };
    let mut versions: Vec<(String, PathBuf, Env)> = (27..=33)
        .map(|m| {
            let none: Env = &[];
            (format!("1.{m}"), dir.join(format!("kubectl.1.{m}")), none)
        })
        .filter(|(_, p, _)| p.is_file())
        .collect();
    assert!(!versions.is_empty(), "no kubectl.1.NN next to kubectl");
    // The newest kubectl with its WebSocket paths turned off: SPDY offering v5 first (as the
    // fallback after a refused WebSocket does), and plain SPDY port-forward.
    const NO_WS: Env = &[
        ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false"),
        ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
    ];
    if let Some((v, p, _)) = versions.last().cloned() {
        versions.push((format!("{v} (websockets off)"), p, NO_WS));
    }
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };

    let mut tasks = Tasks(Vec::new());
    let log: Log = Arc::default();
    let api = start_api(log.clone(), &mut tasks).await;
    let target = start_http_target(&mut tasks).await;

    let mut report = Vec::new();
    for (version, bin, env) in &versions {
        let env = *env;
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{api}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: x\nusers:\n- name: u\n  user: {{}}\n"
            ),
        )
        .unwrap();
        let first = log.lock().unwrap().len();

        // exec: both outputs, and the exit code.
        let mut c = kubectl(bin, home.path(), env);
        c.args([
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        let r = run(c, None).await;
        assert_eq!(
            r.code,
            Some(3),
            "{version} exec exit code; stderr: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "out\n", "{version} exec stdout");
        assert!(
            r.stderr.contains("err\n"),
            "{version} exec stderr: {}",
            r.stderr
        );

        // A large output arrives whole before the status (nothing cut off at the end).
        let mut c = kubectl(bin, home.path(), env);
        c.args([
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "head -c 8000000 /dev/zero | tr '\\0' x",
        ]);
        let r = run(c, None).await;
        assert_eq!(r.code, Some(0), "{version} exec big; stderr: {}", r.stderr);
        assert_eq!(
            r.stdout.len(),
            8_000_000,
            "{version} exec big output length"
        );
        assert!(r.stdout.bytes().all(|b| b == b'x'));

        // exec -i: stdin reaches the process and its end ends `cat`.
        let mut c = kubectl(bin, home.path(), env);
        c.args(["exec", "-i", "p", "--", "cat"]);
        let r = run(c, Some(b"hi\n")).await;
        assert_eq!(r.code, Some(0), "{version} exec -i; stderr: {}", r.stderr);
        assert_eq!(r.stdout, "hi\n", "{version} exec -i stdout");

        // attach -i.
        let mut c = kubectl(bin, home.path(), env);
        c.args(["attach", "-i", "p"]);
        let r = run(c, Some(b"typed\n")).await;
        assert_eq!(r.code, Some(0), "{version} attach; stderr: {}", r.stderr);
        assert!(
            r.stdout.contains("attached\n") && r.stdout.contains("typed\n"),
            "{version} attach stdout: {}",
            r.stdout
        );

        // port-forward pod/p :REMOTE, then two HTTP GETs through the local port.
        let mut c = kubectl(bin, home.path(), env);
        c.args(["port-forward", "pod/p", &format!(":{target}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut pf = c.spawn().unwrap();
        let mut lines = BufReader::new(pf.stdout.take().unwrap()).lines();
        let local: u16 = tokio::time::timeout(STEP, async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("kubectl says where it listens");
                // "Forwarding from 127.0.0.1:LOCAL -> REMOTE"
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    return rest.split(' ').next().unwrap().parse().unwrap();
                }
            }
        })
        .await
        .expect("port-forward ready in time");
        for _ in 0..2 {
            let resp = http_get(local).await;
            assert!(
                resp.starts_with("HTTP/1.1 200 OK")
                    && resp.ends_with("hello through port-forward\n"),
                "{version} port-forward response: {resp:?}"
            );
        }
        // Ended by its pid (kill_on_drop would do it too).
        pf.start_kill().unwrap();
        let _ = pf.wait().await;

        // port-forward to a port nothing listens on: kubectl shows the error stream's text.
        let mut c = kubectl(bin, home.path(), env);
        c.args(["port-forward", "pod/p", &format!(":{refused}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut pf = c.spawn().unwrap();
        let mut lines = BufReader::new(pf.stdout.take().unwrap()).lines();
        let local: u16 = tokio::time::timeout(STEP, async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("kubectl says where it listens");
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    return rest.split(' ').next().unwrap().parse().unwrap();
                }
            }
        })
        .await
        .expect("port-forward ready in time");
        assert_eq!(
            http_get(local).await,
            "",
            "{version}: nothing comes back from a refused port"
        );
        let mut stderr = pf.stderr.take().unwrap();
        let want = format!("error forwarding port {refused}");
        let mut text = String::new();
        let found = tokio::time::timeout(STEP, async {
            let mut buf = [0u8; 4096];
            while !text.contains(&want) {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            text.contains(&want)
        })
        .await
        .unwrap_or(false);
        assert!(found, "{version}: kubectl shows the dial error");
        pf.start_kill().unwrap();
        let _ = pf.wait().await;

        let seen: Vec<String> = log.lock().unwrap()[first..]
            .iter()
            .map(|(sub, n)| format!("{sub}: {}", describe(n)))
            .collect();
        report.push(format!("kubectl {version}: {}", seen.join(", ")));
    }
    eprintln!("{}", report.join("\n"));

    // The variants the versions are known to use (kubectl 1.30 made WebSocket v5 the default
    // for exec/attach, 1.31 the SPDY tunnel for port-forward).
    let log = log.lock().unwrap();
    let used = |check: &dyn Fn(&Negotiated) -> bool| log.iter().any(|(_, n)| check(n));
    assert!(used(&|n| n.transport == Transport::Spdy
        && n.kind == Kind::RemoteCommand
        && n.protocol == "v4.channel.k8s.io"));
    assert!(used(&|n| matches!(
        n.transport,
        Transport::WebSocket {
            close_signal: true,
            ..
        }
    )));
    assert!(used(
        &|n| n.transport == Transport::Spdy && n.kind == Kind::PortForward
    ));
    if versions.iter().any(|(v, _, _)| v == "1.33") {
        assert!(used(&|n| n.transport == Transport::SpdyOverWebSocket));
    }
}
