//! `componentstatuses` (deprecated upstream, still served): the health of the scheduler,
//! the controller manager and the store. They are tasks of this process, so the answer is
//! this process's own, computed per request and never stored.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use crate::codec;
use crate::request::{Scope, Selectors};
use crate::status::{ApiError, ApiResult};

const COMPONENTS: &[&str] = &["controller-manager", "etcd-0", "scheduler"];

fn status(name: &str, healthy: bool) -> Value {
    let cond = if healthy {
        json!({"type": "Healthy", "status": "True", "message": "ok"})
    } else {
        json!({"type": "Healthy", "status": "False", "error": "the server is not ready"})
    };
    json!({"kind": "ComponentStatus", "apiVersion": "v1",
        "metadata": {"name": name}, "conditions": [cond]})
}

pub fn serve(scope: &Scope<'_>, verb: &str) -> ApiResult<Response> {
    scope.warn("v1 ComponentStatus is deprecated in v1.19+".into());
    let healthy = scope.api.is_ready();
    match verb {
        "get" => {
            let name = scope.rp.name.as_deref().unwrap_or("");
            if !COMPONENTS.contains(&name) {
                return Err(ApiError::not_found("", "componentstatuses", name));
            }
            scope.respond(
                StatusCode::OK,
                serde_json::to_vec(&status(name, healthy)).map_err(ApiError::internal)?,
            )
        }
        "list" => {
            let selectors = Selectors::parse(scope.query, scope.kind)?;
            let items: Vec<Value> = COMPONENTS
                .iter()
                .map(|n| status(n, healthy))
                .filter(|o| selectors.matches(o))
                .collect();
            if let codec::Wanted::Table { .. } = scope.wanted {
                let t = crate::table::table(scope.kind, &items, "", "", scope.query)?;
                return Ok(codec::json_value(StatusCode::OK, &t));
            }
            let list = json!({"kind": "ComponentStatusList", "apiVersion": "v1",
                "metadata": {}, "items": items});
            Ok(codec::respond_object(
                StatusCode::OK,
                scope.wanted,
                serde_json::to_vec(&list).map_err(ApiError::internal)?,
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
