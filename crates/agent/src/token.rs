//! The node token (`DIR/node-token` on the server): `K10<sha256 of the CA PEM>::server:<secret>`,
//! as k3s spells it. The hash lets an agent pin the cluster CA before it trusts the server; the
//! whole token is the bearer credential of its first contact (asking for a certificate).

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// A parsed node token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeToken {
    /// Lower-case hex SHA-256 of the cluster CA certificate's PEM.
    pub ca_hash: String,
    /// The credential part after `::server:`.
    pub secret: String,
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
        let Some(secret) = cred.strip_prefix("server:") else {
            bail!("not a node token: the credential after '::' must be server:<secret>");
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("not a node token: the CA hash must be 64 hex digits");
        }
        if secret.len() < 16 {
            bail!("not a node token: the secret is too short");
        }
        Ok(NodeToken {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }

    /// What the server writes and the agent's `--token` takes; also the bearer credential.
    pub fn encode(&self) -> String {
        format!("K10{}::server:{}", self.ca_hash, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t = NodeToken::generate("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");
        assert_eq!(NodeToken::parse(&t.encode()).unwrap(), t);
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
