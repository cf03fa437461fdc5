//! Image references with Docker's normalisation (`busybox` is `docker.io/library/busybox:latest`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
use crate::error::{Error, Result};

pub(crate) const DOCKER_HUB: &str = "docker.io";

/// An image reference (`busybox`, `registry:5000/team/app:1.0@sha256:…`), normalized as Docker does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// `docker.io`, `registry.example.com:5000`, `localhost`, `[::1]:5000`.
    pub registry: String,
    /// `library/busybox`, `team/app`.
    pub repository: String,
    /// `None` only when pulled by digest alone.
    pub tag: Option<String>,
    /// `sha256:<hex>`; when set it decides what is pulled (the tag is informational).
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes a reference: `docker.io` and its `library/` prefix when no
    /// registry or namespace is given, and the tag `latest` unless a tag or digest is.
    pub fn parse(s: &str) -> Result<Reference> {
        let invalid = |why: &str| Error::Invalid(format!("invalid reference {s:?}: {why}"));
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                sha256_hex(d).map_err(|_| invalid("bad digest (want sha256:<64 hex>)"))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(invalid("bad tag"));
            }
        }
        let (mut registry, mut repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            registry = DOCKER_HUB.to_string();
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !valid_registry(&registry) {
            return Err(invalid("bad registry host"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(invalid(
                "repository must be lowercase letters, digits and separators (. _ __ -)",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the name repo tags and repo digests are built on.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub(crate) fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn valid_registry(r: &str) -> bool {
    !r.is_empty()
        && r.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The host part of `host:port` / `[v6]:port`, without brackets.
pub(crate) fn registry_host(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn docker_normalisation() {
        assert_eq!(
            Reference::parse("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(p("busybox:1.36").2.as_deref(), Some("1.36"));
        assert_eq!(p("team/app").1, "team/app");
        assert_eq!(p("team/app").0, "docker.io");
        assert_eq!(p("index.docker.io/busybox").1, "library/busybox");
        assert_eq!(p("localhost/app").0, "localhost");
        assert_eq!(
            p("localhost:5000/a/b:v1"),
            (
                "localhost:5000".into(),
                "a/b".into(),
                Some("v1".into()),
                None
            )
        );
        assert_eq!(p("127.0.0.1:5000/app").0, "127.0.0.1:5000");
        assert_eq!(p("registry.k8s.io/pause:3.9").0, "registry.k8s.io");
        assert_eq!(p("[::1]:5000/app").0, "[::1]:5000");
        let (_, _, tag, digest) = p(&format!("busybox@{D}"));
        assert_eq!((tag, digest.as_deref()), (None, Some(D)));
        let r = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(r.object(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{D}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "busybox:",
            "busybox@sha256:abc",
            "a/b:-x",
            "-a/b",
            "a__-b/c",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(registry_host("[::1]:5000"), "::1");
        assert_eq!(registry_host("docker.io"), "docker.io");
    }
}
