//! Custom resources driven by other people's clients over HTTPS: the official Python client's
//! `CustomObjectsApi` and kube-rs's `Api<DynamicObject>` create, list, patch, watch and
//! delete custom objects of a definition created at run time.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::Server;

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1, default: 1}
              color: {type: string}
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

fn with_widgets() -> Server {
    let s = Server::start();
    s.apply(WIDGETS);
    s.kubectl_ok(
        "1.33",
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=20s",
        ],
    );
    s
}

/// The official client, in the venv test.sh prepares (`REDDWARF_PYTHON`).
const PYTHON: &str = r#"
import sys
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
api = client.CustomObjectsApi()
g, v, p, ns = "example.com", "v1", "widgets", "default"
body = {"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "py"}, "spec": {"color": "red"}}
created = api.create_namespaced_custom_object(g, v, ns, p, body)
assert created["spec"]["size"] == 1, created
listed = api.list_namespaced_custom_object(g, v, ns, p)
assert [i["metadata"]["name"] for i in listed["items"]] == ["py"], listed
patched = api.patch_namespaced_custom_object(g, v, ns, p, "py", {"spec": {"color": "blue"}})
assert patched["spec"]["color"] == "blue", patched
status = api.patch_namespaced_custom_object_status(g, v, ns, p, "py", {"status": {"ready": True}})
assert status["status"]["ready"] is True, status
try:
    api.create_namespaced_custom_object(g, v, ns, p,
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": 0}})
    raise SystemExit("an invalid widget was accepted")
except ApiException as e:
    assert e.status == 422, e
    assert "spec.size in body should be greater than or equal to 1" in e.body, e.body
seen = []
w = watch.Watch()
for ev in w.stream(api.list_namespaced_custom_object, g, v, ns, p, timeout_seconds=2):
    seen.append((ev["type"], ev["object"]["metadata"]["name"]))
assert ("ADDED", "py") in seen, seen
gone = api.delete_namespaced_custom_object(g, v, ns, p, "py")
assert gone["status"] == "Success", gone
assert api.list_namespaced_custom_object(g, v, ns, p)["items"] == []
print("ok")
"#;

#[test]
fn the_python_client_drives_custom_objects() {
    let python = std::env::var("REDDWARF_PYTHON").expect(
        "REDDWARF_PYTHON names a python with the `kubernetes` package; ./test.sh sets it up",
    );
    let s = with_widgets();
    let script = s.write_file("custom_objects.py", PYTHON);
    let out = Command::new(python)
        .arg(&script)
        .arg(s.kubeconfig())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

/// A kube-rs client over HTTPS with the admin certificate (the test's own TLS transport:
/// the workspace builds kube without a TLS stack).
fn kube_client(s: &Server) -> kube::Client {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let pki = s.data_dir().join("pki");
    let read = |f: &str| std::fs::read(pki.join(f)).expect("pki file");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read("ca.crt")) {
        roots.add(c.expect("CA")).expect("trust anchor");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("admin.crt"))
        .collect::<Result<_, _>>()
        .expect("admin cert");
    let key = PrivateKeyDer::from_pem_slice(&read("admin.key")).expect("admin key");
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client auth"),
    );
    let kubeconfig = std::fs::read_to_string(s.kubeconfig()).expect("kubeconfig");
    let addr = kubeconfig
        .lines()
        .find_map(|l| {
            let v = l.trim().strip_prefix("server:")?.trim().trim_matches('"');
            v.strip_prefix("https://").map(String::from)
        })
        .expect("server address");
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (tls, addr) = (tls.clone(), addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let (mut parts, body) = req.into_parts();
            parts
                .headers
                .insert(http::header::HOST, http::HeaderValue::from_str(&addr)?);
            let resp = send
                .send_request(http::Request::from_parts(parts, body))
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(resp)
        }
    });
    kube::Client::new(service, "default")
}

#[test]
fn kube_rs_drives_custom_objects() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{
        Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
        PatchParams, PostParams, WatchEvent, WatchParams,
    };

    let s = with_widgets();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = kube_client(&s);
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("example.com", "v1", "Widget"),
            "widgets",
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
        let mut w = DynamicObject::new("rs", &ar);
        w.data = serde_json::json!({"spec": {"color": "green", "extra": true}});
        let created = api
            .create(&PostParams::default(), &w)
            .await
            .expect("create");
        assert_eq!(created.data["spec"]["size"], 1, "defaulted");
        assert!(created.data["spec"].get("extra").is_none(), "pruned");

        let mut events = api
            .watch(&WatchParams::default().timeout(3), "0")
            .await
            .expect("watch")
            .boxed();
        let first = events.try_next().await.expect("event").expect("one event");
        match first {
            WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("rs")),
            other => panic!("expected ADDED, got {other:?}"),
        }

        let patched = api
            .patch(
                "rs",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"size": 3}})),
            )
            .await
            .expect("merge patch");
        assert_eq!(patched.data["spec"]["size"], 3);
        let applied = api
            .patch(
                "rs",
                // The creator (no user agent: `unknown`) owns the color.
                &PatchParams::apply("kube-rs-test").force(),
                &Patch::Apply(serde_json::json!({"apiVersion": "example.com/v1",
                    "kind": "Widget", "spec": {"color": "teal"}})),
            )
            .await
            .expect("server-side apply");
        assert_eq!(applied.data["spec"]["color"], "teal");

        let list = api.list(&ListParams::default()).await.expect("list");
        assert_eq!(list.items.len(), 1);
        let err = api
            .create(&PostParams::default(), &{
                let mut bad = DynamicObject::new("bad", &ar);
                bad.data = serde_json::json!({"spec": {"size": 0}});
                bad
            })
            .await
            .expect_err("invalid");
        match err {
            kube::Error::Api(s) => assert_eq!(s.code, 422, "{s:?}"),
            other => panic!("expected a 422 Status, got {other:?}"),
        }
        api.delete("rs", &DeleteParams::default())
            .await
            .expect("delete");
        assert!(api
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty());
    });
}
