//! Service-account tokens, as upstream's: ES256 JWTs signed by the cluster's key, issued by the
//! TokenRequest API (`serviceaccounts/<name>/token`, `kubectl create token`) with audiences,
//! expiry and an optional binding to a pod, secret or node; checked on every use against the
//! objects they name (a token dies with its service account or pod); published for other
//! verifiers through OIDC discovery (`/.well-known/openid-configuration`, `/openid/v1/jwks`).
//! Legacy tokens in `kubernetes.io/service-account-token` Secrets use the same key.

use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http::StatusCode;
use reddwarf_store::{ObjectKey, Store};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{json, Value};

use crate::auth::User;
use crate::request::Scope;
use crate::status::{ApiError, ApiResult, Cause};

/// The issuer (and default API audience) when none is configured, as k3s and kubeadm set it.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of legacy Secret-held tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// The cluster's token key: signs new tokens and checks presented ones.
pub struct Signer {
    key: EcdsaKeyPair,
    kid: String,
    issuer: String,
}

impl Signer {
    /// A new P-256 private key, PKCS#8 DER (the server stores it once per cluster).
    pub fn generate_pkcs8() -> Vec<u8> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// A signer over a P-256 PKCS#8 key, issuing as `issuer`.
    pub fn from_pkcs8(der: &[u8], issuer: &str) -> Result<Signer, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("the service-account key is not a P-256 PKCS#8 key: {e}"))?;
        // Upstream's key id: the SHA-256 of the public key's DER (SubjectPublicKeyInfo).
        let spki = [SPKI_P256_PREFIX, key.public_key().as_ref()].concat();
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        Ok(Signer {
            kid: B64.encode(digest.as_ref()),
            key,
            issuer: issuer.to_string(),
        })
    }

    /// A signer over a fresh key (servers without a stored key: tests).
    pub fn ephemeral() -> Signer {
        Signer::from_pkcs8(&Signer::generate_pkcs8(), DEFAULT_ISSUER)
            .expect("a freshly generated key parses")
    }

    /// The issuer tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A compact JWS of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map(|s| B64.encode(s.as_ref()))
            .unwrap_or_default();
        format!("{signing_input}.{sig}")
    }

    /// The claims of a token this key signed, or `None` (not a JWT, another key, bad
    /// signature). Times and audiences are the caller's to check.
    pub fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        if header["alg"] != "ES256" {
            return None;
        }
        let sig = B64.decode(s).ok()?;
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public.verify(format!("{h}.{c}").as_bytes(), &sig).ok()?;
        serde_json::from_slice(&B64.decode(c).ok()?).ok()
    }

    /// The JSON Web Key Set of the public key (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }]})
    }

    /// The OIDC discovery document (`/.well-known/openid-configuration`).
    pub fn discovery(&self, jwks_uri: &str) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }
}

/// DER of a P-256 SubjectPublicKeyInfo before its 65-byte uncompressed point.
const SPKI_P256_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn stored(store: &Store, resource: &str, namespace: &str, name: &str) -> Option<Value> {
    let key = ObjectKey::new("", resource, namespace, name);
    let (_, bytes) = store.read().ok()?.get(key.as_str()).ok()??;
    serde_json::from_slice(&bytes).ok()
}

fn uid(v: &Value) -> &str {
    v["metadata"]["uid"].as_str().unwrap_or("")
}

/// The user a service-account token names, if it is one this cluster issued, good for one of
/// `audiences` (the API audience when empty) and its service account (and pod or secret)
/// still exist; with the audiences it is good for.
pub fn authenticate(
    signer: &Signer,
    store: &Store,
    token: &str,
    audiences: &[&str],
) -> Option<(User, Vec<String>)> {
    let claims = signer.verify(token)?;
    let api = [signer.issuer()];
    let wanted: &[&str] = if audiences.is_empty() {
        &api
    } else {
        audiences
    };
    match claims["iss"].as_str()? {
        LEGACY_ISSUER => {
            let ns = claims["kubernetes.io/serviceaccount/namespace"].as_str()?;
            let sa = claims["kubernetes.io/serviceaccount/service-account.name"].as_str()?;
            let sa_uid = claims["kubernetes.io/serviceaccount/service-account.uid"].as_str()?;
            let secret = claims["kubernetes.io/serviceaccount/secret.name"].as_str()?;
            let account = stored(store, "serviceaccounts", ns, sa)?;
            if uid(&account) != sa_uid {
                return None;
            }
            // A legacy token lives as long as its Secret holds it.
            let s = stored(store, "secrets", ns, secret)?;
            let held = s["data"]["token"]
                .as_str()
                .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
            if held.as_deref() != Some(token.as_bytes()) {
                return None;
            }
            // Legacy tokens carry no audience: they are good for the API only.
            if !wanted.contains(&signer.issuer()) {
                return None;
            }
            Some((
                User::service_account(ns, sa),
                vec![signer.issuer().to_string()],
            ))
        }
        iss if iss == signer.issuer() => {
            let t = now();
            // Upstream allows a minute of clock skew.
            if claims["exp"].as_i64()? + 60 < t || claims["nbf"].as_i64().unwrap_or(0) > t + 60 {
                return None;
            }
            let token_aud: Vec<&str> = match &claims["aud"] {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let good: Vec<String> = wanted
                .iter()
                .filter(|a| token_aud.contains(a))
                .map(|a| a.to_string())
                .collect();
            if good.is_empty() {
                return None;
            }
            let k = &claims["kubernetes.io"];
            let ns = k["namespace"].as_str()?;
            let sa = k["serviceaccount"]["name"].as_str()?;
            let account = stored(store, "serviceaccounts", ns, sa)?;
            if uid(&account) != k["serviceaccount"]["uid"].as_str()? {
                return None;
            }
            for (field, resource) in [("pod", "pods"), ("secret", "secrets")] {
                if let Some(name) = k[field]["name"].as_str() {
                    let obj = stored(store, resource, ns, name)?;
                    if uid(&obj) != k[field]["uid"].as_str().unwrap_or("") {
                        return None;
                    }
                    // A pod past its grace period no longer speaks for its account.
                    if let Some(del) = obj["metadata"]["deletionTimestamp"].as_str() {
                        let gone = chrono::DateTime::parse_from_rfc3339(del)
                            .map(|d| d.timestamp() <= t)
                            .unwrap_or(true);
                        if gone {
                            return None;
                        }
                    }
                }
            }
            if let Some(name) = k["node"]["name"].as_str() {
                let node = stored(store, "nodes", "", name)?;
                if uid(&node) != k["node"]["uid"].as_str().unwrap_or("") {
                    return None;
                }
            }
            Some((User::service_account(ns, sa), good))
        }
        _ => None,
    }
}

/// The user a bootstrap token (`<id>.<secret>`, upstream's `kubeadm token` format) names: the
/// `kube-system` Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` holds
/// the secret, allows authentication and has not expired. The user is
/// `system:bootstrap:<id>` in `system:bootstrappers` and the Secret's `auth-extra-groups`.
pub fn authenticate_bootstrap(store: &Store, token: &str) -> Option<User> {
    use base64::engine::general_purpose::STANDARD;
    let (id, secret) = token.split_once('.')?;
    let lower_alnum = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !lower_alnum(id, 6) || !lower_alnum(secret, 16) {
        return None;
    }
    let stored = stored(
        store,
        "secrets",
        "kube-system",
        &format!("bootstrap-token-{id}"),
    )?;
    if stored["type"] != "bootstrap.kubernetes.io/token" {
        return None;
    }
    let field = |k: &str| {
        stored["data"][k]
            .as_str()
            .and_then(|v| STANDARD.decode(v).ok())
            .and_then(|v| String::from_utf8(v).ok())
            .or_else(|| stored["stringData"][k].as_str().map(String::from))
    };
    if field("token-id").as_deref() != Some(id)
        || field("token-secret").as_deref() != Some(secret)
        || field("usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return None;
    }
    if let Some(exp) = field("expiration") {
        let expired = chrono::DateTime::parse_from_rfc3339(&exp)
            .map(|t| t.timestamp() <= now())
            .unwrap_or(true);
        if expired {
            return None;
        }
    }
    let mut groups = vec![crate::BOOTSTRAPPERS_GROUP.to_string()];
    for g in field("auth-extra-groups").unwrap_or_default().split(',') {
        let g = g.trim();
        // Upstream allows only groups under system:bootstrappers: here.
        if g.starts_with("system:bootstrappers:") && !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    groups.push("system:authenticated".into());
    Some(User {
        name: format!("system:bootstrap:{id}"),
        groups,
    })
}

/// A legacy token for the Secret `secret` of service account `account` (the token
/// controller fills `kubernetes.io/service-account-token` Secrets with these).
pub fn legacy_token(signer: &Signer, account: &Value, secret: &str) -> String {
    signer.sign(&json!({
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": account["metadata"]["namespace"],
        "kubernetes.io/serviceaccount/secret.name": secret,
        "kubernetes.io/serviceaccount/service-account.name": account["metadata"]["name"],
        "kubernetes.io/serviceaccount/service-account.uid": account["metadata"]["uid"],
        "sub": format!("system:serviceaccount:{}:{}",
            account["metadata"]["namespace"].as_str().unwrap_or(""),
            account["metadata"]["name"].as_str().unwrap_or("")),
    }))
}

/// The signer shared by the API server and the admission plugin that fills legacy token
/// Secrets (the binary replaces the ephemeral key with the cluster's at start).
pub type SignerCell = std::sync::Arc<std::sync::RwLock<std::sync::Arc<Signer>>>;

/// Reads the current signer out of its cell.
pub fn current(cell: &SignerCell) -> std::sync::Arc<Signer> {
    cell.read()
        .map(|s| s.clone())
        .unwrap_or_else(|e| e.into_inner().clone())
}

/// The token controller's work, done as the Secret is created: a
/// `kubernetes.io/service-account-token` Secret naming an existing service account gets the
/// account's uid annotation and `token`, `namespace` and `ca.crt` data.
pub struct LegacyTokens(pub SignerCell);

impl crate::admission::Plugin for LegacyTokens {
    fn name(&self) -> &'static str {
        "ServiceAccountTokens"
    }

    fn mutate(
        &self,
        a: &crate::admission::Attributes,
        secret: &mut Value,
        store: &Store,
    ) -> ApiResult<()> {
        use base64::engine::general_purpose::STANDARD;
        if !a.kind.group.is_empty()
            || a.kind.plural != "secrets"
            || a.operation != crate::admission::Operation::Create
            || secret["type"] != "kubernetes.io/service-account-token"
            || secret["data"].get("token").is_some()
        {
            return Ok(());
        }
        let Some(sa) = secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
            .as_str()
            .map(String::from)
        else {
            return Ok(());
        };
        let Some(account) = stored(store, "serviceaccounts", a.namespace, &sa) else {
            return Ok(());
        };
        let token = legacy_token(&current(&self.0), &account, a.name);
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] =
            json!(uid(&account));
        secret["data"]["token"] = json!(STANDARD.encode(token));
        secret["data"]["namespace"] = json!(STANDARD.encode(a.namespace));
        let key = ObjectKey::new("", "configmaps", a.namespace, "kube-root-ca.crt");
        let ca = store
            .read()
            .ok()
            .and_then(|v| v.get(key.as_str()).ok().flatten())
            .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|cm| cm["data"]["ca.crt"].as_str().map(String::from));
        if let Some(ca) = ca {
            secret["data"]["ca.crt"] = json!(STANDARD.encode(ca));
        }
        Ok(())
    }
}

fn invalid(field: &str, value: &str, detail: &str) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        "",
        vec![Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {detail}"),
            field: field.into(),
        }],
    )
}

/// `POST .../serviceaccounts/<name>/token`: a TokenRequest answered with a signed token.
pub fn token_request(scope: &Scope<'_>, name: &str, body: &[u8]) -> ApiResult<Response> {
    let mut req = scope.decode_body(body)?;
    if !req.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let ns = scope.rp.namespace.as_str();
    let store = &scope.api.store;
    let account = stored(store, "serviceaccounts", ns, name)
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let signer = scope.api.signer();
    let spec = req.get("spec").cloned().unwrap_or(json!({}));
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => 3600,
        v => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    if expiration < 600 {
        return Err(invalid(
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        return Err(invalid(
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        _ => vec![signer.issuer().to_string()],
    };
    let t = now();
    let mut k8s = json!({
        "namespace": ns,
        "serviceaccount": {"name": name, "uid": uid(&account)},
    });
    let bound = &spec["boundObjectRef"];
    if let Some(kind) = bound["kind"].as_str() {
        let bound_name = bound["name"].as_str().unwrap_or("");
        let (resource, field) = match kind {
            "Pod" => ("pods", "pod"),
            "Secret" => ("secrets", "secret"),
            "Node" => ("nodes", "node"),
            other => {
                return Err(invalid(
                    "spec.boundObjectRef.kind",
                    &format!("{other:?}"),
                    "supported values: \"Pod\", \"Secret\", \"Node\"",
                ))
            }
        };
        let obj_ns = if kind == "Node" { "" } else { ns };
        let obj = stored(store, resource, obj_ns, bound_name)
            .ok_or_else(|| ApiError::not_found("", resource, bound_name))?;
        if let Some(u) = bound["uid"].as_str().filter(|u| !u.is_empty()) {
            if u != uid(&obj) {
                return Err(ApiError::new(409, "Conflict", format!(
                    "the UID in the bound object reference ({u}) does not match the UID in record. The object might have been deleted and then recreated"
                )));
            }
        }
        if kind == "Pod" {
            let pod_sa = obj["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            if pod_sa != name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                )));
            }
            // Upstream names the pod's node in pod-bound tokens.
            if let Some(node) = obj["spec"]["nodeName"].as_str() {
                if let Some(n) = stored(store, "nodes", "", node) {
                    k8s["node"] = json!({"name": node, "uid": uid(&n)});
                }
            }
        }
        k8s[field] = json!({"name": bound_name, "uid": uid(&obj)});
    }
    let claims = json!({
        "aud": audiences,
        "exp": t + expiration,
        "iat": t,
        "iss": signer.issuer(),
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": k8s,
        "nbf": t,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
    });
    let token = signer.sign(&claims);
    let expires = chrono::DateTime::from_timestamp(t + expiration, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut spec = spec;
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(expiration);
    if spec.get("boundObjectRef").is_none() {
        spec["boundObjectRef"] = Value::Null;
    }
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!("TokenRequest");
    req["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
    req["spec"] = spec;
    req["status"] = json!({"token": token, "expirationTimestamp": expires});
    let bytes = serde_json::to_vec(&req).map_err(ApiError::internal)?;
    scope.respond(StatusCode::CREATED, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_under_their_key() {
        let a = Signer::ephemeral();
        let b = Signer::ephemeral();
        let token = a.sign(&json!({"sub": "x"}));
        assert_eq!(a.verify(&token).unwrap()["sub"], "x");
        assert!(b.verify(&token).is_none());
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'A');
        assert!(a.verify(&tampered).is_none());
        let jwks = a.jwks();
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        assert_eq!(
            B64.decode(jwks["keys"][0]["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }
}
