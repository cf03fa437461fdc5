//! The pod-facing node API: `/containerLogs`, `/exec`, `/attach`, `/portForward`,
//! `/podProxy`. Streams (exec, attach, port-forward) answer the client's upgrade here, with
//! whichever protocol it asked for (`reddwarf-streaming`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use reddwarf_runtime::crilog;
use reddwarf_runtime::ExecSpec;
use reddwarf_streaming::{Kind, StreamOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::worker::{LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NS, LABEL_RESTART};
use super::Shared;
use crate::nodeapi::{full, text, PodApi, Resp};

/// The pod-facing node API: container logs, exec, attach, port-forward, pod proxy and stats.
pub struct PodsApi {
    /// The state shared with the pod workers.
    pub shared: Arc<Shared>,
}

impl PodApi for PodsApi {
    fn serve(&self, req: http::Request<Incoming>) -> BoxFuture<'static, Resp> {
        let shared = self.shared.clone();
        Box::pin(async move { route(shared, req).await })
    }
}

fn query_map(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| {
            b.get(j..j + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match hex(i + 1) {
                Some(v) => {
                    out.push(v);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(shared: Arc<Shared>, req: http::Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["containerLogs", ns, pod, container] => {
            logs(&shared, ns, pod, container, req.uri().query().unwrap_or("")).await
        }
        ["exec" | "attach", ns, pod, container] => {
            let attach = parts[0] == "attach";
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            stream(shared, req, &ns, &pod, &container, attach).await
        }
        ["portForward", ns, pod] => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            port_forward(shared, req, &ns, &pod).await
        }
        ["podProxy", ns, pod, port, ..] => {
            let rest = parts[4..].join("/");
            let (ns, pod, port) = (ns.to_string(), pod.to_string(), port.to_string());
            pod_proxy(shared, req, &ns, &pod, &port, &rest).await
        }
        ["stats", "summary"] => full(
            200,
            "application/json",
            super::stats::summary(&shared).await.to_string(),
        ),
        ["metrics", "resource"] | ["metrics", "cadvisor"] | ["metrics"] => full(
            200,
            "text/plain; version=0.0.4",
            super::stats::resource_metrics(&shared).await,
        ),
        _ => text(404, format!("{path}: not found")),
    }
}

/// The id of a container of pod ns/name: the current one, or with `previous` the one before.
async fn find_container(
    shared: &Shared,
    ns: &str,
    pod: &str,
    container: &str,
) -> Vec<reddwarf_runtime::ContainerRecord> {
    let mut v: Vec<_> = shared
        .runtime
        .list()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.labels.get(LABEL_POD_NS).map(String::as_str) == Some(ns)
                && r.labels.get(LABEL_POD_NAME).map(String::as_str) == Some(pod)
                && r.labels.get(LABEL_CONTAINER).map(String::as_str) == Some(container)
        })
        .collect();
    v.sort_by_key(|r| {
        r.labels
            .get(LABEL_RESTART)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    v
}

async fn logs(shared: &Arc<Shared>, ns: &str, pod: &str, container: &str, query: &str) -> Resp {
    let q = query_map(query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let flag = |k: &str| get(k).is_some_and(|v| v == "true" || v == "1");
    let records = find_container(shared, ns, pod, container).await;
    let previous = flag("previous");
    let record = if previous {
        if records.len() < 2 {
            return text(
                400,
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
            );
        }
        records[records.len() - 2].clone()
    } else {
        match records.last() {
            Some(r) => r.clone(),
            None => {
                return text(
                    400,
                    format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"),
                )
            }
        }
    };
    let since: Option<DateTime<Utc>> = get("sinceTime")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            get("sinceSeconds")
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| Utc::now() - chrono::Duration::seconds(s))
        });
    let opts = crilog::LogOptions {
        since,
        tail: get("tailLines").and_then(|t| t.parse().ok()),
        timestamps: flag("timestamps"),
        limit_bytes: get("limitBytes").and_then(|t| t.parse().ok()),
    };
    let follow = flag("follow") && !previous;
    let path = record.log_path.clone();
    let data = tokio::fs::read(&path).await.unwrap_or_default();
    let first = crilog::render(&data, &opts);
    if !follow {
        return full(200, "text/plain", first);
    }
    // Follow: what is there, then new complete records until the container ends.
    let id = record.id.clone();
    let shared = shared.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut sent = first.len();
        if !first.is_empty() && tx.send(Ok(Frame::data(Bytes::from(first)))).await.is_err() {
            return;
        }
        // The runtime writes whole records; anything after the last newline is read again.
        let mut offset = data
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|cut| cut as u64 + 1)
            .unwrap_or(0);
        let follow_opts = crilog::LogOptions {
            since: None,
            tail: None,
            ..opts
        };
        let mut idle_after_exit = 0;
        loop {
            let mut f = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(_) => return,
            };
            let _ = f.seek(std::io::SeekFrom::Start(offset)).await;
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf).await;
            if let Some(cut) = buf.iter().rposition(|&b| b == b'\n') {
                let chunk = &buf[..=cut];
                offset += chunk.len() as u64;
                let mut out = crilog::render(chunk, &follow_opts);
                if let Some(limit) = follow_opts.limit_bytes {
                    let room = limit.saturating_sub(sent);
                    out.truncate(room);
                }
                sent += out.len();
                if !out.is_empty() && tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err() {
                    return;
                }
                if follow_opts.limit_bytes.is_some_and(|l| sent >= l) {
                    return;
                }
                continue;
            }
            let running = shared
                .runtime
                .list()
                .await
                .map(|l| {
                    l.iter().any(|r| {
                        r.id == id && matches!(r.status, reddwarf_runtime::ContainerStatus::Running)
                    })
                })
                .unwrap_or(false);
            if !running {
                // The shim writes the last records as the container ends; read once more.
                idle_after_exit += 1;
                if idle_after_exit > 2 {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let body = StreamBody::new(tokio_stream_from(rx));
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(body.boxed())
        .unwrap_or_else(|_| text(500, "building the response"))
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// exec and attach: negotiate, answer 101, then run the session on the upgraded connection.
async fn stream(
    shared: Arc<Shared>,
    req: http::Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
    attach: bool,
) -> Resp {
    let records = find_container(&shared, ns, pod, container).await;
    let Some(record) = records
        .last()
        .filter(|r| matches!(r.status, reddwarf_runtime::ContainerStatus::Running))
        .cloned()
    else {
        return text(
            400,
            format!("unable to upgrade connection: container not found (\"{container}\")"),
        );
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let opts = StreamOptions::from_query(&query);
    if let Err(e) = opts.validate() {
        return text(400, e);
    }
    let (mut parts, _body) = req.into_parts();
    let (resp101, negotiated) = match reddwarf_streaming::negotiate(&parts, Kind::RemoteCommand) {
        Ok(ok) => ok,
        Err(refusal) => {
            let (p, b) = refusal.into_parts();
            let mut r = full(p.status.as_u16(), "text/plain", b);
            *r.headers_mut() = p.headers;
            return r;
        }
    };
    let upgrade = hyper::upgrade::on(parts_to_request(&mut parts));
    let command = reddwarf_streaming::commands_from_query(&query);
    let id = record.id.clone();
    let stdin_fifo: Option<PathBuf> = attach.then(|| shared.stdin_fifo(&id)).flatten();
    let log_path = record.log_path.clone();
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!("exec upgrade: {e}");
                return;
            }
        };
        let mut rc =
            match reddwarf_streaming::accept_remotecommand(io, negotiated, opts.clone()).await {
                Ok(rc) => rc,
                Err(e) => {
                    tracing::debug!("exec streams: {e}");
                    return;
                }
            };
        let result = if attach {
            attach_session(&mut rc, stdin_fifo, log_path).await
        } else {
            exec_session(&shared, &id, command, &mut rc, opts.tty).await
        };
        let _ = rc.finish(result).await;
    });
    let (p, _) = resp101.into_parts();
    let mut r = full(101, "text/plain", Bytes::new());
    *r.status_mut() = p.status;
    *r.headers_mut() = p.headers;
    r
}

/// `hyper::upgrade::on` wants the request; the parts carry its upgrade extension.
fn parts_to_request(parts: &mut http::request::Parts) -> http::Request<()> {
    let mut r = http::Request::new(());
    *r.extensions_mut() = std::mem::take(&mut parts.extensions);
    r
}

async fn exec_session(
    shared: &Shared,
    id: &str,
    command: Vec<String>,
    rc: &mut reddwarf_streaming::RemoteCommand,
    tty: bool,
) -> Result<i32, String> {
    let proc = shared
        .runtime
        .exec(
            id,
            ExecSpec {
                args: command.clone(),
                env: vec![],
                tty,
                stdin: rc.stdin.is_some(),
            },
        )
        .await
        .map_err(|e| format!("failed to exec in container: {e}"))?;
    let mut tasks = Vec::new();
    if let (Some(mut from), Some(mut to)) = (rc.stdin.take(), proc.stdin) {
        tasks.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.shutdown().await;
        }));
    }
    let mut out_task = None;
    if let Some(mut to) = rc.stdout.take() {
        let mut from = proc.stdout;
        out_task = Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.flush().await;
            to
        }));
    }
    let mut err_task = None;
    if let (Some(mut to), Some(mut from)) = (rc.stderr.take(), proc.stderr) {
        err_task = Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.flush().await;
            to
        }));
    }
    if let (Some(mut sizes), Some(resize)) = (rc.resize.take(), proc.resize) {
        tasks.push(tokio::spawn(async move {
            while let Some(s) = sizes.recv().await {
                let _ = resize(s.width, s.height);
            }
        }));
    }
    let code = proc.wait.await.map_err(|e| e.to_string());
    // Output written before the exit is delivered before the status.
    if let Some(t) = out_task {
        if let Ok(Ok(w)) = tokio::time::timeout(Duration::from_secs(5), t).await {
            rc.stdout = Some(w);
        }
    }
    if let Some(t) = err_task {
        if let Ok(Ok(w)) = tokio::time::timeout(Duration::from_secs(5), t).await {
            rc.stderr = Some(w);
        }
    }
    for t in tasks {
        t.abort();
    }
    code
}

/// attach: the container's output from now on (followed from its log) and, when it keeps
/// stdin open, the client's input into it.
async fn attach_session(
    rc: &mut reddwarf_streaming::RemoteCommand,
    stdin_fifo: Option<PathBuf>,
    log_path: PathBuf,
) -> Result<i32, String> {
    let mut tasks = Vec::new();
    if let (Some(mut from), Some(fifo)) = (rc.stdin.take(), stdin_fifo) {
        tasks.push(tokio::spawn(async move {
            if let Ok(mut to) = tokio::fs::OpenOptions::new().write(true).open(&fifo).await {
                let _ = tokio::io::copy(&mut from, &mut to).await;
            }
        }));
    }
    let mut offset = tokio::fs::metadata(&log_path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    loop {
        let Ok(mut f) = tokio::fs::File::open(&log_path).await else {
            break;
        };
        let _ = f.seek(std::io::SeekFrom::Start(offset)).await;
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf).await;
        if let Some(cut) = buf.iter().rposition(|&b| b == b'\n') {
            offset += cut as u64 + 1;
            for line in buf[..=cut].split_inclusive(|&b| b == b'\n') {
                if let Ok(l) = crilog::parse_line(line) {
                    let mut content = l.content.to_vec();
                    if !l.partial {
                        content.push(b'\n');
                    }
                    let w = match l.stream {
                        crilog::Stream::Stderr if rc.stderr.is_some() => rc.stderr.as_mut(),
                        _ => rc.stdout.as_mut(),
                    };
                    if let Some(w) = w {
                        if w.write_all(&content).await.is_err() {
                            return Ok(0);
                        }
                    }
                }
            }
            continue;
        }
        if tasks.iter().all(|t| t.is_finished()) && !tasks.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.abort();
    }
    Ok(0)
}

async fn port_forward(
    shared: Arc<Shared>,
    req: http::Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Resp {
    let Some(ip) = shared.pod_address(ns, pod) else {
        return text(404, format!("pod {ns}/{pod} is not running on this node"));
    };
    let (mut parts, _) = req.into_parts();
    let (resp101, negotiated) = match reddwarf_streaming::negotiate(&parts, Kind::PortForward) {
        Ok(ok) => ok,
        Err(refusal) => {
            let (p, b) = refusal.into_parts();
            let mut r = full(p.status.as_u16(), "text/plain", b);
            *r.headers_mut() = p.headers;
            return r;
        }
    };
    let upgrade = hyper::upgrade::on(parts_to_request(&mut parts));
    tokio::spawn(async move {
        let Ok(u) = upgrade.await else {
            return;
        };
        let dial = move |port: u16| {
            let ip = ip.clone();
            async move { tokio::net::TcpStream::connect((ip.as_str(), port)).await }
        };
        if let Err(e) =
            reddwarf_streaming::serve_portforward(TokioIo::new(u), negotiated, dial).await
        {
            tracing::debug!("port-forward: {e}");
        }
    });
    let (p, _) = resp101.into_parts();
    let mut r = full(101, "text/plain", Bytes::new());
    *r.status_mut() = p.status;
    *r.headers_mut() = p.headers;
    r
}

/// pods/proxy: the request goes on to the pod's IP and port, the answer comes back.
async fn pod_proxy(
    shared: Arc<Shared>,
    req: http::Request<Incoming>,
    ns: &str,
    pod: &str,
    port: &str,
    rest: &str,
) -> Resp {
    let Some(ip) = shared.pod_address(ns, pod) else {
        return text(404, format!("pod {ns}/{pod} is not running on this node"));
    };
    let Ok(port) = port.parse::<u16>() else {
        return text(
            400,
            format!("pods/proxy: port {port:?} must be a number on this node"),
        );
    };
    let tcp = match tokio::net::TcpStream::connect((ip.as_str(), port)).await {
        Ok(t) => t,
        Err(e) => {
            return text(
                503,
                format!("error trying to reach service: dial tcp {ip}:{port}: {e}"),
            )
        }
    };
    let (mut send, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(x) => x,
        Err(e) => return text(502, format!("proxying to {ip}:{port}: {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (parts, body) = req.into_parts();
    let q = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut out = http::Request::builder()
        .method(parts.method)
        .uri(format!("/{rest}{q}"));
    for (k, v) in parts.headers.iter() {
        if k != http::header::HOST {
            out = out.header(k, v);
        }
    }
    out = out.header(http::header::HOST, format!("{ip}:{port}"));
    let Ok(req) = out.body(body) else {
        return text(400, "bad request");
    };
    match send.send_request(req).await {
        Ok(resp) => resp.map(|b| b.map_err(std::io::Error::other).boxed()),
        Err(e) => text(502, format!("proxying to {ip}:{port}: {e}")),
    }
}

impl Shared {
    /// Where a pod on this node is reached: its IP, or loopback for host-network pods.
    pub fn pod_address(&self, ns: &str, pod: &str) -> Option<String> {
        let idx = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let e = idx.get(&(ns.to_string(), pod.to_string()))?;
        if e.host_network {
            return Some("127.0.0.1".into());
        }
        e.ip.clone()
    }

    /// The FIFO the runtime keeps as a stdin-open container's stdin (for attach).
    pub fn stdin_fifo(&self, id: &str) -> Option<PathBuf> {
        self.stdin_path.as_ref().map(|f| f(id))
    }
}
