//! Bearer-token auth and cross-host blob redirects, through a small fake front end that
//! issues tokens and redirects blob downloads to a second "storage" address, in front of
//! the local docker-registry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reddwarf_images::testsupport::{
    build_busybox_oci_layout_image, push_oci_layout, LocalRegistry,
};
use reddwarf_images::{Credentials, ImageStore, PullError, PullOptions, Reference};
use tokio::net::TcpListener;

#[derive(Default)]
struct Seen {
    token_requests: AtomicUsize,
    redirected_blobs: AtomicUsize,
    scopes: Mutex<Vec<String>>,
    storage_saw_auth: AtomicUsize,
}

struct Front {
    registry: SocketAddr,
    front: SocketAddr,
    storage: SocketAddr,
    seen: Seen,
}

fn resp(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn forward(f: &Front, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!(
        "http://{}{}",
        f.registry,
        req.uri().path_and_query().unwrap()
    );
    let mut out = Request::get(uri);
    if let Some(a) = req.headers().get(header::ACCEPT) {
        out = out.header(header::ACCEPT, a);
    }
    let r = client
        .request(out.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let mut b = Response::builder().status(r.status());
    for h in [header::CONTENT_TYPE, header::LOCATION] {
        if let Some(v) = r.headers().get(&h) {
            b = b.header(h, v);
        }
    }
    if let Some(v) = r.headers().get("docker-content-digest") {
        b = b.header("docker-content-digest", v);
    }
    b.body(Full::new(r.into_body().collect().await.unwrap().to_bytes()))
        .unwrap()
}

fn query_param(q: &str, k: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (a, b) = kv.split_once('=')?;
        (a == k).then(|| b.replace("%3A", ":").replace("%2F", "/"))
    })
}

async fn handle_front(
    f: Arc<Front>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/token" {
        f.seen.token_requests.fetch_add(1, Ordering::SeqCst);
        let q = req.uri().query().unwrap_or("");
        let scope = query_param(q, "scope").unwrap_or_default();
        f.seen.scopes.lock().unwrap().push(scope.clone());
        if query_param(q, "service").as_deref() != Some("fake-registry") {
            return Ok(resp(StatusCode::BAD_REQUEST, "bad service"));
        }
        if scope.starts_with("repository:private/") {
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:pw")
            );
            if req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes())
                != Some(want.as_bytes())
            {
                return Ok(resp(
                    StatusCode::UNAUTHORIZED,
                    r#"{"details":"incorrect username or password"}"#,
                ));
            }
            return Ok(resp(StatusCode::OK, r#"{"token":"private-token"}"#));
        }
        return Ok(resp(StatusCode::OK, r#"{"access_token":"anon-token"}"#));
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let needed = if path.starts_with("/v2/private/") {
        "Bearer private-token"
    } else {
        "Bearer anon-token"
    };
    if auth != needed && !(path == "/v2/" && auth == "Bearer private-token") {
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="fake-registry""#,
            f.front
        );
        let mut r = resp(
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
        return Ok(r);
    }
    if path.contains("/blobs/") {
        f.seen.redirected_blobs.fetch_add(1, Ordering::SeqCst);
        let mut r = resp(StatusCode::TEMPORARY_REDIRECT, "");
        let loc = format!("http://{}{}?signature=x", f.storage, path);
        r.headers_mut()
            .insert(header::LOCATION, loc.parse().unwrap());
        return Ok(r);
    }
    Ok(forward(&f, &req).await)
}

async fn handle_storage(
    f: Arc<Front>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        f.seen.storage_saw_auth.fetch_add(1, Ordering::SeqCst);
        return Ok(resp(StatusCode::BAD_REQUEST, "credentials sent to storage"));
    }
    Ok(forward(&f, &req).await)
}

async fn serve(l: TcpListener, f: Arc<Front>, storage: bool) {
    loop {
        let Ok((s, _)) = l.accept().await else { return };
        let f = f.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let f = f.clone();
                async move {
                    if storage {
                        handle_storage(f, req).await
                    } else {
                        handle_front(f, req).await
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_and_blob_redirects() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::start(tmp.path()).unwrap();
    let layout = tmp.path().join("layout");
    let img = build_busybox_oci_layout_image(&layout, "v1").unwrap();
    push_oci_layout(&layout, "v1", &format!("{}/public/busybox:v1", reg.host())).unwrap();
    push_oci_layout(&layout, "v1", &format!("{}/private/busybox:v1", reg.host())).unwrap();

    let front_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let storage_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let f = Arc::new(Front {
        registry: reg.addr,
        front: front_l.local_addr().unwrap(),
        storage: storage_l.local_addr().unwrap(),
        seen: Seen::default(),
    });
    let t1 = tokio::spawn(serve(front_l, f.clone(), false));
    let t2 = tokio::spawn(serve(storage_l, f.clone(), true));
    let _abort = AbortOnDrop(vec![t1, t2]);

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let opts = PullOptions::default();
    let public = Reference::parse(&format!("{}/public/busybox:v1", f.front)).unwrap();
    let image = store.pull(&public, None, &opts).await.unwrap();
    assert_eq!(image.id, img.image_id);
    assert_eq!(
        f.seen.scopes.lock().unwrap().as_slice(),
        ["repository:public/busybox:pull"]
    );
    assert_eq!(
        f.seen.redirected_blobs.load(Ordering::SeqCst),
        2,
        "config and layer via redirect"
    );
    assert_eq!(f.seen.storage_saw_auth.load(Ordering::SeqCst), 0);

    let private = Reference::parse(&format!("{}/private/busybox:v1", f.front)).unwrap();
    match store.pull(&private, None, &opts).await {
        Err(PullError::Unauthorized(m)) => assert!(
            m.contains("failed to fetch anonymous token") && m.contains("401"),
            "{m}"
        ),
        other => panic!("want Unauthorized, got {other:?}"),
    }
    let wrong = Credentials {
        username: "alice".into(),
        password: "nope".into(),
    };
    match store.pull(&private, Some(&wrong), &opts).await {
        Err(PullError::Unauthorized(m)) => {
            assert!(m.contains("failed to fetch oauth token"), "{m}")
        }
        other => panic!("want Unauthorized, got {other:?}"),
    }
    let creds = Credentials {
        username: "alice".into(),
        password: "pw".into(),
    };
    let p = store.pull(&private, Some(&creds), &opts).await.unwrap();
    assert_eq!(p.id, img.image_id);
    assert_eq!(f.seen.storage_saw_auth.load(Ordering::SeqCst), 0);
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
