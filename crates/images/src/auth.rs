//! Registry credentials from image pull secrets, matched the way the kubelet's keyring does.

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

/// A registry username and password (or token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry user name.
    pub username: String,
    /// The password, or a token used as one.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret into logs.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Credentials for `registry` from a `kubernetes.io/dockerconfigjson` (`{"auths": {...}}`) or
/// legacy `.dockercfg` (the map alone) secret.
///
/// `registry` is the registry host (`docker.io`, `reg.example.com:5000`) or, to honour keys
/// scoped to a path (`reg.example.com/team`), the image name `registry/repository`. Keys may
/// carry a scheme and a `/v1/` or `/v2/` suffix, use `*` globs per host label, and the most
/// specific matching key wins; `docker.io` images also match `index.docker.io` (the key
/// `docker login` writes as `https://index.docker.io/v1/`).
pub fn credentials_from_dockerconfigjson(json: &[u8], registry: &str) -> Option<Credentials> {
    let doc: Value = serde_json::from_slice(json).ok()?;
    let auths = match doc.get("auths") {
        Some(Value::Object(m)) => m,
        _ => doc.as_object()?,
    };
    let mut entries: Vec<(String, Credentials)> = auths
        .iter()
        .filter_map(|(k, v)| Some((normalise_key(k), entry_credentials(v)?)))
        .collect();
    // Reverse lexical order, as the kubelet sorts its index: longer paths under one host first.
    entries.sort_by(|a, b| b.0.cmp(&a.0));
    let target = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    if let Some((_, c)) = entries.iter().find(|(k, _)| url_matches(k, target)) {
        return Some(c.clone());
    }
    if is_default_registry(target) {
        for (k, c) in &entries {
            if k == "index.docker.io" || k == "docker.io" {
                return Some(c.clone());
            }
        }
    }
    None
}

fn entry_credentials(v: &Value) -> Option<Credentials> {
    if let Some(auth) = v
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth.trim()))
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        return Some(Credentials {
            username: u.to_string(),
            password: p.trim_end_matches('\n').to_string(),
        });
    }
    let username = v.get("username")?.as_str()?.to_string();
    let password = v.get("password")?.as_str()?.to_string();
    Some(Credentials { username, password })
}

/// `https://host/v1/` -> `host`, `host/path` stays, as the kubelet's keyring stores keys.
fn normalise_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = match k.find('/') {
        Some(i) => (&k[..i], &k[i..]),
        None => (k, ""),
    };
    let path = if path.starts_with("/v1/") || path.starts_with("/v2/") {
        &path[3..]
    } else {
        path
    };
    let path = path.trim_end_matches('/');
    format!("{}{}", host.to_ascii_lowercase(), path)
}

fn split_host_path(s: &str) -> (&str, &str) {
    match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn split_port(host: &str) -> (&str, &str) {
    if host.starts_with('[') {
        return match host.rfind("]:") {
            Some(i) => (&host[..=i], &host[i + 2..]),
            None => (host, ""),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (host, ""),
    }
}

/// The kubelet's `URLsMatchStr`: same port, same number of host labels each matching as a
/// glob, and the key's path a prefix of the target's.
fn url_matches(key: &str, target: &str) -> bool {
    let (khost, kpath) = split_host_path(key);
    let (thost, tpath) = split_host_path(target);
    let (kname, kport) = split_port(khost);
    let (tname, tport) = split_port(thost);
    if kport != tport {
        return false;
    }
    let kl: Vec<&str> = kname.split('.').collect();
    let tl: Vec<&str> = tname.split('.').collect();
    if kl.len() != tl.len()
        || !kl
            .iter()
            .zip(&tl)
            .all(|(k, t)| glob(k.as_bytes(), t.to_ascii_lowercase().as_bytes()))
    {
        return false;
    }
    tpath.starts_with(kpath)
}

/// `*` and `?` globbing within one host label.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Our argument always names the registry explicitly (unlike the kubelet's image strings),
/// so only Docker Hub's own names mean the default registry.
fn is_default_registry(target: &str) -> bool {
    let first = target.split('/').next().unwrap_or("");
    first == "docker.io" || first == "index.docker.io" || first == "registry-1.docker.io"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn matches_like_the_kubelet() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{hub}"}},
                "reg.example.com:5000": {{"username": "u", "password": "p"}},
                "http://quay.io/team": {{"auth": "{team}"}},
                "quay.io": {{"auth": "{quay}"}},
                "*.corp.example": {{"auth": "{corp}"}}
            }}}}"#,
            hub = b64("hubuser:hub:pass"),
            team = b64("team:t"),
            quay = b64("quay:q"),
            corp = b64("corp:c"),
        );
        let get =
            |r: &str| credentials_from_dockerconfigjson(json.as_bytes(), r).map(|c| c.username);
        assert_eq!(get("docker.io").as_deref(), Some("hubuser"));
        let hub = credentials_from_dockerconfigjson(json.as_bytes(), "docker.io/library/busybox")
            .unwrap();
        assert_eq!(hub.password, "hub:pass");
        assert_eq!(get("reg.example.com:5000").as_deref(), Some("u"));
        assert_eq!(get("reg.example.com"), None);
        assert_eq!(get("quay.io/team/app").as_deref(), Some("team"));
        assert_eq!(get("quay.io/other/app").as_deref(), Some("quay"));
        assert_eq!(get("quay.io").as_deref(), Some("quay"));
        assert_eq!(get("r.corp.example").as_deref(), Some("corp"));
        assert_eq!(get("a.b.corp.example"), None);
        assert_eq!(get("ghcr.io"), None);
    }

    #[test]
    fn legacy_dockercfg() {
        let json = format!(
            r#"{{"docker.io": {{"auth": "{}", "email": "x@y"}}}}"#,
            b64("a:b")
        );
        let c = credentials_from_dockerconfigjson(json.as_bytes(), "docker.io").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a", "b"));
        assert!(credentials_from_dockerconfigjson(b"not json", "docker.io").is_none());
    }
}
