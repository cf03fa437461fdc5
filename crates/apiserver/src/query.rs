//! Query-string parsing (percent-decoding included) without pulling in a URL crate.

use std::collections::HashMap;

#[derive(Default, Debug, Clone)]
pub struct Query(HashMap<String, String>);

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                // Two hex digits exactly (from_str_radix alone would take a sign: `%+1`).
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        if let Some(q) = q {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                m.insert(decode(k), decode(v));
            }
        }
        Query(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A boolean parameter as apimachinery converts it: absent is `None`; present is true
    /// unless its value is `0` or `false` in any case (so `watch`, `watch=` and `watch=True`
    /// are all true).
    pub fn bool_param(&self, k: &str) -> Option<bool> {
        self.0
            .get(k)
            .map(|v| !(v == "0" || v.eq_ignore_ascii_case("false")))
    }

    /// A boolean parameter that defaults to false.
    pub fn flag(&self, k: &str) -> bool {
        self.bool_param(k).unwrap_or(false)
    }

    pub fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
}

#[cfg(test)]
mod tests {
    use super::Query;

    #[test]
    fn decodes_selectors() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&limit=5&x",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert!(!q.flag("limit2"));
        assert_eq!(q.get("limit"), Some("5"));
        assert!(q.has("x"));
        assert_eq!(Query::parse(Some("a=%zz%2")).get("a"), Some("%zz%2"));
        // Not an escape: a sign is not a hex digit.
        assert_eq!(Query::parse(Some("a=%+1")).get("a"), Some("% 1"));
    }

    #[test]
    fn booleans_convert_as_apimachinery() {
        let q = Query::parse(Some("a=True&b=&c&d=FALSE&e=0&f=yes&g=1&h=false"));
        for (k, want) in [
            ("a", Some(true)),
            ("b", Some(true)),
            ("c", Some(true)),
            ("d", Some(false)),
            ("e", Some(false)),
            ("f", Some(true)),
            ("g", Some(true)),
            ("h", Some(false)),
            ("missing", None),
        ] {
            assert_eq!(q.bool_param(k), want, "{k}");
        }
        assert!(!q.flag("missing"));
        assert!(q.flag("a"));
    }
}
