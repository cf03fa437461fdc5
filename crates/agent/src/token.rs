//! The node token (`DIR/node-token` on the server): `K10<sha256 of the CA PEM>::server:<secret>`,
//! as k3s spells it. The hash lets an agent pin the cluster CA before it trusts the server; the
//! whole token is the bearer credential of its first contact (asking for a certificate).
//! A bootstrap token (`<id>.<secret>`, a `bootstrap.kubernetes.io/token` Secret in
//! `kube-system`) joins the same way as `K10<CA hash>::<id>.<secret>`; its bearer credential
//! is `<id>.<secret>`.

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// A parsed node token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeToken {
    /// Lower-case hex SHA-256 of the cluster CA certificate's PEM.
    pub ca_hash: String,
    /// The credential part after `::server:`, or a bootstrap token's `<id>.<secret>`.
    pub secret: String,
    /// Whether the credential is a bootstrap token.
    pub bootstrap: bool,
}

/// Lower-case hex SHA-256 of a CA certificate's PEM: the hash a node token pins.
pub fn ca_hash(ca_pem: &str) -> String {
    hex(&Sha256::digest(ca_pem.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl NodeToken {
    /// A fresh token for a CA.
    pub fn generate(ca_pem: &str) -> NodeToken {
        let secret: [u8; 16] = rand::random();
        NodeToken {
            ca_hash: ca_hash(ca_pem),
            secret: hex(&secret),
            bootstrap: false,
        }
    }

    /// Parses `K10<CA hash>::server:<secret>` (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<NodeToken> {
        let s = s.trim();
        let Some(rest) = s.strip_prefix("K10") else {
            bail!("not a node token: it starts with K10<CA hash>:: (read it from the server's DIR/node-token)");
        };
        let Some((hash, cred)) = rest.split_once("::") else {
            bail!("not a node token: missing '::' after the CA hash");
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("not a node token: the CA hash must be 64 hex digits");
        }
        let is_bootstrap = cred.split_once('.').is_some_and(|(id, secret)| {
            let ok = |s: &str, n: usize| {
                s.len() == n
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            };
            ok(id, 6) && ok(secret, 16)
        });
        if is_bootstrap {
            return Ok(NodeToken {
                ca_hash: hash.to_ascii_lowercase(),
                secret: cred.to_string(),
                bootstrap: true,
            });
        }
        let Some(secret) = cred.strip_prefix("server:") else {
            bail!("not a node token: the credential after '::' must be server:<secret> or a bootstrap token <id>.<secret>");
        };
        if secret.len() < 16 {
            bail!("not a node token: the secret is too short");
        }
        Ok(NodeToken {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_string(),
            bootstrap: false,
        })
    }

    /// What the server writes and the agent's `--token` takes.
    pub fn encode(&self) -> String {
        if self.bootstrap {
            return format!("K10{}::{}", self.ca_hash, self.secret);
        }
        format!("K10{}::server:{}", self.ca_hash, self.secret)
    }

    /// The bearer credential of the first contact: the whole node token, or the bootstrap
    /// token itself.
    pub fn bearer(&self) -> String {
        if self.bootstrap {
            return self.secret.clone();
        }
        self.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t = NodeToken::generate("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");
        assert_eq!(NodeToken::parse(&t.encode()).unwrap(), t);
        assert_eq!(t.bearer(), t.encode());
        let b = NodeToken::parse(&format!("K10{}::abc123.0123456789abcdef", t.ca_hash)).unwrap();
        assert!(b.bootstrap);
        assert_eq!(b.bearer(), "abc123.0123456789abcdef");
        assert_eq!(NodeToken::parse(&b.encode()).unwrap(), b);
        assert_eq!(NodeToken::parse(&format!(" {}\n", t.encode())).unwrap(), t);
        for bad in [
            "",
            "abc",
            "K10abc::server:0123456789abcdef",
            &t.encode().replace("::", ":"),
        ] {
            assert!(NodeToken::parse(bad).is_err(), "{bad}");
        }
    }
}
