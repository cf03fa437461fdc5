//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7396) and strategic merge patch
//! (built-in kinds), through the merge crate with the kinds' upstream merge metadata. Apply
//! patches are server-side apply (`field_manager`).

use reddwarf_resources::ResourceKind;
use serde_json::Value;

use crate::codec;
use crate::merge_schema;
use crate::status::{ApiError, ApiResult};

pub fn check_content_type(ct: &str, kind: &ResourceKind) -> ApiResult<()> {
    match ct {
        "application/json-patch+json" | "application/merge-patch+json" | "application/apply-patch+yaml" => Ok(()),
        "application/strategic-merge-patch+json" => {
            // As upstream: strategic merge needs the Go types, so custom resources refuse it.
            if merge_schema::root(&kind.api_version(), kind.kind).is_none() {
                return Err(ApiError::unsupported_media_type(ct));
            }
            Ok(())
        }
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"),
        )),
    }
}

/// A merge error as the Status upstream answers with.
pub fn merge_error(e: reddwarf_merge::MergeError) -> ApiError {
    let msg = if e.path.is_empty() {
        e.message
    } else {
        format!("{}: {}", e.path, e.message)
    };
    match e.kind {
        reddwarf_merge::ErrorKind::BadRequest => ApiError::bad_request(msg),
        reddwarf_merge::ErrorKind::Unprocessable => ApiError::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {msg}"),
        ),
    }
}

/// Applies a JSON patch, merge patch or strategic merge patch to `current`.
pub fn apply(ct: &str, current: &Value, body: &[u8]) -> ApiResult<Value> {
    match ct {
        "application/json-patch+json" => {
            let ops = codec::decode_json(body)?;
            if !ops.is_array() {
                return Err(ApiError::bad_request(
                    "a JSON patch must be a JSON array of operations",
                ));
            }
            reddwarf_merge::json_patch(current, &ops).map_err(merge_error)
        }
        "application/merge-patch+json" => {
            let p = codec::decode_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            Ok(reddwarf_merge::merge_patch(current, &p))
        }
        "application/strategic-merge-patch+json" => {
            let p = codec::decode_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            let av = current
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = current.get("kind").and_then(Value::as_str).unwrap_or("");
            let root = merge_schema::root(av, kind);
            reddwarf_merge::strategic_merge(current, &p, merge_schema::schema(), root.as_ref())
                .map_err(merge_error)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}
