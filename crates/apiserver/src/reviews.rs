//! The review APIs (authentication.k8s.io and authorization.k8s.io): a create that answers
//! who the caller is (`SelfSubjectReview`, `kubectl auth whoami`), whom a token names
//! (`TokenReview`), or whether a user may do something (`SubjectAccessReview` and its self and
//! local forms, `kubectl auth can-i`; `SelfSubjectRulesReview`, `can-i --list`). Nothing is
//! stored; the answer is the object with its status, 201 Created as upstream.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use crate::auth::{Attributes, Authorizer, User};
use crate::request::Scope;
use crate::status::{ApiError, ApiResult, Cause};

pub fn serve(scope: &Scope<'_>, body: &[u8]) -> ApiResult<Response> {
    let mut obj = scope.decode_body(body)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let kind = scope.kind;
    let api_version = kind.api_version();
    for (field, want) in [("apiVersion", api_version.as_str()), ("kind", kind.kind)] {
        match obj.get(field).and_then(Value::as_str) {
            None | Some("") => obj[field] = json!(want),
            Some(v) if v != want => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the body ({v}) does not match the expected {field} ({want})"
                )))
            }
            Some(_) => {}
        }
    }
    let mut meta = json!({"creationTimestamp": null});
    if !scope.rp.namespace.is_empty() {
        meta["namespace"] = json!(scope.rp.namespace);
    }
    obj["metadata"] = meta;
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let status = match kind.kind {
        "SelfSubjectReview" => json!({"userInfo": user_info(scope.user)}),
        "TokenReview" => token_review(scope, &spec)?,
        "SelfSubjectRulesReview" => {
            let ns = spec["namespace"].as_str().unwrap_or("");
            let rules = scope.api.authorizer.rules(scope.user, ns);
            json!({"resourceRules": rules.resource, "nonResourceRules": rules.non_resource,
                "incomplete": false})
        }
        "SelfSubjectAccessReview" => {
            check_attributes(scope, &spec)?;
            access(scope, scope.user, &spec)
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            check_attributes(scope, &spec)?;
            let user = subject(scope, &spec)?;
            access(scope, &user, &spec)
        }
        other => {
            return Err(ApiError::internal(format!(
                "{other} is not a review this server answers"
            )))
        }
    };
    obj["status"] = status;
    let bytes = serde_json::to_vec(&obj).map_err(ApiError::internal)?;
    scope.respond(StatusCode::CREATED, bytes)
}

fn user_info(user: &User) -> Value {
    json!({"username": user.name, "groups": user.groups})
}

fn invalid(scope: &Scope<'_>, field: &str, value: &str, detail: &str) -> ApiError {
    ApiError::invalid(
        scope.kind.group,
        scope.kind.kind,
        "",
        vec![Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {detail}"),
            field: field.into(),
        }],
    )
}

/// Upstream's SubjectAccessReviewSpec rules: exactly one kind of attributes; a local review's
/// namespace is its URL's.
fn check_attributes(scope: &Scope<'_>, spec: &Value) -> ApiResult<()> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (resource, non_resource) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                scope,
                "spec.nonResourceAttributes",
                "\"\"",
                "cannot be specified in combination with resourceAttributes",
            ))
        }
        (None, None) => {
            return Err(invalid(
                scope,
                "spec.resourceAttributes",
                "\"null\"",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ))
        }
        _ => {}
    }
    if scope.kind.kind == "LocalSubjectAccessReview" {
        if non_resource.is_some() {
            return Err(invalid(
                scope,
                "spec.nonResourceAttributes",
                "\"\"",
                "disallowed on this kind of request",
            ));
        }
        let ns = resource.and_then(|r| r["namespace"].as_str()).unwrap_or("");
        if ns != scope.rp.namespace {
            return Err(invalid(
                scope,
                "spec.resourceAttributes.namespace",
                &format!("{ns:?}"),
                "must match metadata.namespace",
            ));
        }
    }
    Ok(())
}

/// The user a SubjectAccessReview asks about.
fn subject(scope: &Scope<'_>, spec: &Value) -> ApiResult<User> {
    let name = spec["user"].as_str().unwrap_or("").to_string();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            scope,
            "spec.user",
            "\"\"",
            "at least one of user or group must be specified",
        ));
    }
    Ok(User { name, groups })
}

/// Whether `user` may do what the spec's attributes say.
fn access(scope: &Scope<'_>, user: &User, spec: &Value) -> Value {
    let decision = match spec.get("resourceAttributes").filter(|v| !v.is_null()) {
        Some(r) => {
            let s = |k: &str| r[k].as_str().unwrap_or("");
            let attrs = Attributes::resource(
                s("verb"),
                s("group"),
                s("resource"),
                s("subresource"),
                s("namespace"),
                s("name"),
            );
            scope.api.authorizer.authorize(user, &attrs)
        }
        None => {
            let n = &spec["nonResourceAttributes"];
            let attrs = Attributes::path(
                n["verb"].as_str().unwrap_or(""),
                n["path"].as_str().unwrap_or(""),
            );
            scope.api.authorizer.authorize(user, &attrs)
        }
    };
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    status
}

/// Whom a token names, by the server's own token sources; tokens are good for the API
/// server's audience.
fn token_review(scope: &Scope<'_>, spec: &Value) -> ApiResult<Value> {
    let token = spec["token"].as_str().unwrap_or("");
    let audiences: Vec<&str> = spec["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let tokens = scope
        .api
        .tokens
        .read()
        .map_err(|_| ApiError::internal("token sources unavailable"))?
        .clone();
    let api_audience = scope.api.signer().issuer().to_string();
    // Static and node tokens are good for the API audience only.
    if let Some(user) = tokens.and_then(|t| t.authenticate_token(token)) {
        if !audiences.is_empty() && !audiences.contains(&api_audience.as_str()) {
            return Ok(json!({"user": {},
                "error": "[invalid bearer token, token audiences is invalid for the target audiences]"}));
        }
        return Ok(
            json!({"authenticated": true, "user": user_info(&user), "audiences": [api_audience]}),
        );
    }
    if let Some(user) = crate::sa_token::authenticate_bootstrap(&scope.api.store, token) {
        if audiences.is_empty() || audiences.contains(&api_audience.as_str()) {
            return Ok(
                json!({"authenticated": true, "user": user_info(&user), "audiences": [api_audience]}),
            );
        }
    }
    let found =
        crate::sa_token::authenticate(&scope.api.signer(), &scope.api.store, token, &audiences);
    let Some((user, good)) = found else {
        return Ok(json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}));
    };
    Ok(json!({"authenticated": true, "user": user_info(&user), "audiences": good}))
}
