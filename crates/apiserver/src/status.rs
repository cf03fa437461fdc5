//! API errors rendered as `metav1.Status`, with upstream reasons, codes and messages.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::{json, Value};

/// One entry of `details.causes`.
#[derive(Clone, Debug)]
pub struct Cause {
    /// Upstream's cause type (`FieldValueInvalid`, `FieldValueRequired`, ...).
    pub reason: &'static str,
    /// The human-readable message (`Invalid value: "x": ...`).
    pub message: String,
    /// The path of the field at fault (`spec.containers[0].image`).
    pub field: String,
}

impl Cause {
    /// `field` holds `value`, which is wrong because of `detail`.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {}", json!(value), detail),
            field: field.into(),
        }
    }
    /// `field` is missing; `detail` may be empty.
    pub fn required(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            message: if detail.is_empty() {
                "Required value".into()
            } else {
                format!("Required value: {detail}")
            },
            field: field.into(),
        }
    }
    /// `field` may not be set (or changed) as it is, because of `detail`.
    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }
}

/// An error answered to a client as a `Status` object.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The HTTP status code (also the Status's `code`).
    pub code: u16,
    /// The Status's `reason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// The Status's `message`.
    pub message: String,
    /// The Status's `details` (name, group, kind, causes), if any.
    pub details: Option<Value>,
    /// Seconds the client should wait before retrying: sent as `Retry-After` and
    /// `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
    /// For 410 Expired on a continue token: a token to read the rest inconsistently.
    pub continue_token: Option<String>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
            continue_token: None,
        }
    }

    pub(crate) fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// `resource` is the qualified resource as upstream prints it: `configmaps`, `deployments.apps`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", qualified(group, resource), name),
        )
        .with_details(details(group, resource, name))
    }

    /// 404 for a URL that names no resource (rather than a missing object).
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 AlreadyExists: a create of a name that is taken.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", qualified(group, resource), name),
        )
        .with_details(details(group, resource, name))
    }

    /// 409 Conflict: a write based on a stale `resourceVersion`.
    pub fn conflict(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, resource),
                name
            ),
        )
        .with_details(details(group, resource, name))
    }

    /// 409 Conflict with a reason of its own in place of the stale-version message.
    pub fn conflict_message(group: &str, resource: &str, name: &str, msg: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                qualified(group, resource),
                name,
                msg
            ),
        )
        .with_details(details(group, resource, name))
    }

    /// 422 with one cause per field; `kind` is the object's Kind (as upstream words it).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut d = json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        });
        if group.is_empty() {
            d.as_object_mut().map(|m| m.remove("group"));
        }
        ApiError::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
        )
        .with_details(d)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 403 Forbidden on an object, saying `why`.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: {}",
                qualified(group, resource),
                name,
                why
            ),
        )
        .with_details(details(group, resource, name))
    }

    /// 403 as upstream's `NewForbidden`: the object's name is left out of the message and the
    /// details when the request names none (lists, creates).
    pub fn forbidden_named(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
        if !name.is_empty() {
            return ApiError::forbidden(group, resource, name, why);
        }
        let mut d = details(group, resource, name);
        d.as_object_mut().map(|m| m.remove("name"));
        ApiError::new(
            403,
            "Forbidden",
            format!("{} is forbidden: {why}", qualified(group, resource)),
        )
        .with_details(d)
    }

    /// 405: the resource does not serve this verb.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    /// 401: the request carries no accepted credentials.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 413: the request body exceeds `limit` bytes.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415: the body's content type `ct` is not one the server reads.
    pub fn unsupported_media_type(ct: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {ct:?})"),
        )
    }

    /// 406: none of the media types in `accept` can be produced.
    pub fn not_acceptable(accept: &str) -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (asked for {accept:?})"),
        )
    }

    /// 410 Expired: a resourceVersion or continue token older than the server keeps.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 410 Gone.
    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Gone", message)
    }

    /// 500 InternalError; `message` also goes into `details.causes`.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message.to_string()}]}))
    }

    /// 503 ServiceUnavailable, asking the client to retry after a second.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// 504 Timeout, asking the client to retry after a second.
    pub fn timeout(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(504, "Timeout", message);
        e.retry_after = Some(1);
        e
    }

    /// The error as a `v1` Status object (the response body).
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(t) = &self.continue_token {
            v["metadata"] = json!({"continue": t});
        }
        if let Some(mut d) = self.details.clone() {
            if let (Some(r), Some(m)) = (self.retry_after, d.as_object_mut()) {
                m.insert("retryAfterSeconds".into(), json!(r));
            }
            v["details"] = d;
        } else if let Some(r) = self.retry_after {
            v["details"] = json!({"retryAfterSeconds": r});
        }
        // Upstream's field order (…, reason, details, code).
        reddwarf_kubeproto::canonicalize(&mut v);
        v
    }
}

pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    let mut d = json!({"name": name, "group": group, "kind": resource});
    if group.is_empty() {
        d.as_object_mut().map(|m| m.remove("group"));
    }
    d
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        body.push(b'\n');
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(r) = self.retry_after {
            if let Ok(v) = http::HeaderValue::from_str(&r.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
