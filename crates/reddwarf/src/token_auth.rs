//! Static bearer tokens from upstream's `--token-auth-file` CSV format:
//! `token,user,uid,"group1,group2"` (groups optional; lines starting with `#` ignored).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use reddwarf_apiserver::User;

#[derive(Default, Clone)]
pub struct TokenAuth {
    tokens: HashMap<String, User>,
}

/// Splits one CSV line, honouring double quotes (with `""` as an escaped quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|f| f.trim().to_string()).collect()
}

impl TokenAuth {
    pub fn load(path: &Path) -> anyhow::Result<TokenAuth> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        TokenAuth::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<TokenAuth> {
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f = csv_fields(line);
            if f.len() < 3 || f[0].is_empty() || f[1].is_empty() {
                bail!(
                    "line {}: expected token,user,uid[,\"group1,group2\"]",
                    n + 1
                );
            }
            let mut groups: Vec<String> = f
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            tokens.insert(
                f[0].clone(),
                User {
                    name: f[1].clone(),
                    groups,
                },
            );
        }
        Ok(TokenAuth { tokens })
    }

    /// Adds (or replaces) one token.
    pub fn insert(&mut self, token: &str, user: User) {
        self.tokens.insert(token.to_string(), user);
    }

    /// The user `token` names, if known.
    pub fn user(&self, token: &str) -> Option<User> {
        self.tokens.get(token.trim()).cloned()
    }

    /// The user a request's `Authorization: Bearer <token>` header names, if the token is known.
    #[cfg(test)]
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Option<User> {
        self.user(bearer(headers)?)
    }
}

/// The token of a request's `Authorization: Bearer <token>` header.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl reddwarf_apiserver::TokenAuthenticator for TokenAuth {
    fn authenticate_token(&self, token: &str) -> Option<User> {
        self.user(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_csv() {
        let t = TokenAuth::parse("# comment\nt1,alice,1,\"dev,ops\"\nt2,bob,2\n").unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "Bearer t1".parse().unwrap());
        let u = t.authenticate(&h).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev", "ops", "system:authenticated"]);
        h.insert(http::header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(t.authenticate(&h).is_none());
        assert!(TokenAuth::parse("onlytoken\n").is_err());
    }
}
