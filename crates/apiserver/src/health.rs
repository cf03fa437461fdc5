//! `/healthz`, `/livez`, `/readyz` (with `?verbose` and per-check paths) and `/version`.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::json;

use crate::codec;
use crate::query::Query;
use crate::ApiServer;

pub const KUBE_VERSION_MINOR: &str = "33";

pub fn version() -> Response {
    codec::json_value(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": KUBE_VERSION_MINOR,
            "emulationMajor": "1",
            "emulationMinor": KUBE_VERSION_MINOR,
            "gitVersion": format!("v1.{KUBE_VERSION_MINOR}.0-reddwarf.{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": "none (rust)",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
        }),
    )
}

pub fn health(api: &ApiServer, path: &str, query: &Query) -> Response {
    let mut parts = path.splitn(2, '/');
    let endpoint = parts.next().unwrap_or("healthz");
    let only = parts.next();
    let mut checks = vec![
        ("ping", true),
        ("log", true),
        ("raft", api.consensus.raft_ready()),
        ("storage", true),
    ];
    if endpoint == "readyz" {
        checks.push(("bootstrap-namespaces", api.is_ready()));
    }
    if let Some(name) = only {
        return match checks.iter().find(|(n, _)| *n == name) {
            Some((_, true)) => text(StatusCode::OK, "ok".into()),
            Some((_, false)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {name} not finished\n"),
            ),
            None => text(StatusCode::NOT_FOUND, "404 page not found\n".into()),
        };
    }
    let ok = checks.iter().all(|(_, ok)| *ok);
    let verbose = query.has("verbose");
    if !verbose && ok {
        return text(StatusCode::OK, "ok".into());
    }
    let mut out = String::new();
    for (n, good) in &checks {
        if *good {
            out.push_str(&format!("[+]{n} ok\n"));
        } else {
            out.push_str(&format!("[-]{n} failed: reason withheld\n"));
        }
    }
    out.push_str(&format!(
        "{endpoint} check {}\n",
        if ok { "passed" } else { "failed" }
    ));
    text(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        },
        out,
    )
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
