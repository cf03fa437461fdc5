//! `bench watch`: many watchers on one resource while writes go on. Each object carries the
//! time its create was sent; each watcher measures when the event arrives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::{configmap, drive, fresh_namespace, progress, Common, Report};
use crate::client::Target;

#[derive(clap::Args, Clone, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Watchers, each on its own connection.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Objects created while they watch.
    #[arg(long, default_value_t = 1_000)]
    pub count: u64,
    /// Creates per second (0: as fast as the clients go, which measures saturation rather
    /// than latency).
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Sends `count` requests at `rate` per second from a pool of `clients` connections; returns
/// the error count and the time it took.
async fn paced<F>(
    target: &Target,
    clients: usize,
    count: u64,
    rate: u64,
    make: F,
) -> anyhow::Result<(u64, Duration)>
where
    F: Fn(u64) -> (String, String, Option<Vec<u8>>) + Send + Sync + 'static,
{
    let (tx, rx) = async_channel_pair(clients.max(1));
    let errors = Arc::new(AtomicU64::new(0));
    let mut pool = Vec::new();
    for _ in 0..clients.max(1) {
        let (target, rx, errors) = (target.clone(), rx.clone(), errors.clone());
        pool.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            while let Ok((method, path, body)) = rx.recv().await {
                match conn.request(&method, &path, body).await {
                    Ok((201, _)) => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..count {
        tick.tick().await;
        tx.send(make(i))
            .await
            .map_err(|_| anyhow::anyhow!("writers stopped"))?;
    }
    drop(tx);
    for p in pool {
        p.await??;
    }
    Ok((errors.load(Ordering::Relaxed), started.elapsed()))
}

type Req = (String, String, Option<Vec<u8>>);

/// A multi-consumer queue of requests: tokio's mpsc behind a shared lock.
fn async_channel_pair(cap: usize) -> (tokio::sync::mpsc::Sender<Req>, SharedRx) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap);
    (tx, SharedRx(Arc::new(tokio::sync::Mutex::new(rx))))
}

#[derive(Clone)]
struct SharedRx(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Req>>>);

impl SharedRx {
    async fn recv(&self) -> Result<Req, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

/// The number in `"extra":"<micros>"` of a watch event line.
fn find_extra(line: &[u8]) -> Option<u64> {
    let key = br#""extra":""#;
    let at = line.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

pub async fn run(a: WatchArgs) -> anyhow::Result<Report> {
    let target = Target::from_kubeconfig(&a.common.kubeconfig)?;
    // The watched objects live in their own namespace, so every event is one of ours.
    let ns = fresh_namespace(&target, "bench-watch").await?;
    let mut conn = target.connect().await?;
    let (code, text) = conn
        .request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps?limit=1"),
            None,
        )
        .await?;
    anyhow::ensure!(code == 200, "list answered {code}");
    let rv = serde_json::from_slice::<Value>(&text)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();

    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        a.watchers * a.count as usize,
    )));
    let delivered = Arc::new(AtomicU64::new(0));
    let pb = progress(a.watchers as u64 * a.count, "delivered");
    let mut watchers = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..a.watchers {
        let (target, ns, rv, latencies, delivered, pb) = (
            target.clone(),
            ns.clone(),
            rv.clone(),
            latencies.clone(),
            delivered.clone(),
            pb.clone(),
        );
        let expect = a.count;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(rx);
        watchers.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            let mut body = conn
                .stream(&format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=600"))
                .await?;
            let _ = tx.send(());
            let mut buf = Vec::new();
            let mut seen = 0u64;
            let mut mine = Vec::with_capacity(expect as usize);
            while seen < expect {
                let Some(frame) = body.frame().await else { break };
                let Ok(data) = frame?.into_data() else { continue };
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let arrived = now_micros();
                    // Only the send time matters here: find it without parsing the event,
                    // so the benchmark's own CPU does not become the queue it measures.
                    if line.starts_with(br#"{"type":"ADDED""#) {
                        let sent = find_extra(&line).unwrap_or(arrived);
                        mine.push(Duration::from_micros(arrived.saturating_sub(sent)));
                        seen += 1;
                        pb.inc(1);
                    }
                }
            }
            delivered.fetch_add(seen, Ordering::Relaxed);
            latencies.lock().expect("lock").extend(mine);
            anyhow::Ok(())
        }));
    }
    for r in ready {
        let _ = r.await;
    }
    let started = Instant::now();
    let (ns2, size) = (ns.clone(), a.common.size);
    let make = move |i: u64| {
        (
            "POST".to_string(),
            format!("/api/v1/namespaces/{ns2}/configmaps"),
            Some(configmap(
                &format!("w-{i}"),
                size,
                &now_micros().to_string(),
            )),
        )
    };
    let (errors, write_time) = if a.rate == 0 {
        let (_, errors, t) = drive(&target, a.common.concurrency, a.count, "", 201, make).await?;
        (errors, t)
    } else {
        paced(&target, a.common.concurrency, a.count, a.rate, make).await?
    };
    for w in watchers {
        tokio::time::timeout(Duration::from_secs(120), w).await???;
    }
    let elapsed = started.elapsed();
    pb.finish_and_clear();
    let total = delivered.load(Ordering::Relaxed);
    let lat = std::mem::take(&mut *latencies.lock().expect("lock"));
    let mut r = Report::new("watch", &a.common.output);
    r.add(
        "watchers",
        json!(a.watchers),
        format!(
            "{} watchers, {} objects created by {} clients in {:.2}s at {} ({errors} errors)",
            a.watchers,
            a.count,
            a.common.concurrency,
            write_time.as_secs_f64(),
            if a.rate == 0 {
                "full speed".to_string()
            } else {
                format!("{}/s", a.rate)
            }
        ),
    );
    r.add(
        "events_per_second",
        json!(total as f64 / elapsed.as_secs_f64()),
        format!(
            "{total} events delivered, {:.0}/s",
            total as f64 / elapsed.as_secs_f64()
        ),
    );
    let mut sorted = lat;
    sorted.sort();
    let p = |q| super::report::percentile(&sorted, q).as_secs_f64() * 1e3;
    r.add(
        "delivery_latency_ms",
        json!({"p50": p(0.5), "p90": p(0.9), "p99": p(0.99)}),
        format!(
            "p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms (from sending the create)",
            p(0.5),
            p(0.9),
            p(0.99)
        ),
    );
    Ok(r)
}
