//! The query of an exec/attach/port-forward request, parsed once.

/// Which streams an exec or attach asked for (`?stdin=true&stdout=true&stderr=true&tty=true`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `stdin=true`: the client sends input.
    pub stdin: bool,
    /// `stdout=true`: the client wants standard output.
    pub stdout: bool,
    /// `stderr=true`: the client wants standard error.
    pub stderr: bool,
    /// `tty=true`: a terminal (stdout and stderr merged; resize messages may come).
    pub tty: bool,
    /// The `command` values, in order (exec; empty for attach).
    pub command: Vec<String>,
    /// The `container` value, if given.
    pub container: Option<String>,
}

impl StreamOptions {
    /// Parses the query string (without `?`). Booleans are read as Go's `strconv.ParseBool`
    /// reads them (`true`, `1`, `t`, …), so both the API server's `true` and the kubelet's `1`
    /// work. As the kubelet does, `tty` turns `stderr` off: a terminal has one output.
    pub fn from_query(query: &str) -> StreamOptions {
        let mut o = StreamOptions::default();
        for (k, v) in pairs(query) {
            match k.as_str() {
                "stdin" => o.stdin = parse_bool(&v),
                "stdout" => o.stdout = parse_bool(&v),
                "stderr" => o.stderr = parse_bool(&v),
                "tty" => o.tty = parse_bool(&v),
                "command" => o.command.push(v),
                "container" => o.container = Some(v),
                _ => {}
            }
        }
        if o.tty {
            o.stderr = false;
        }
        o
    }

    /// The kubelet refuses a session without any stream.
    pub fn validate(&self) -> Result<(), String> {
        if !self.stdin && !self.stdout && !self.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(())
    }
}

/// The repeated `command=` values of an exec query, in order.
pub fn commands_from_query(query: &str) -> Vec<String> {
    pairs(query)
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v)
        .collect()
}

/// The `container=` value of a query.
pub fn container_from_query(query: &str) -> Option<String> {
    pairs(query).find(|(k, _)| k == "container").map(|(_, v)| v)
}

/// The ports of a WebSocket port-forward (`?port=80&port=443` or `?port=80,443`).
pub fn ports_from_query(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in pairs(query) {
        if k != "port" {
            continue;
        }
        if v.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in v.split(',') {
            match p.parse::<u16>() {
                Ok(0) => return Err(format!("port {v:?} must be > 0")),
                Ok(n) => ports.push(n),
                Err(e) => return Err(format!("unable to parse {v:?} as a port: {e}")),
            }
        }
    }
    Ok(ports)
}

fn parse_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|s| !s.is_empty()).map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (decode(k), decode(v))
    })
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_query_as_kubectl_sends_it() {
        let q =
            "command=sh&command=-c&command=echo+out%3B+exit+3&container=c&stderr=true&stdout=true";
        let o = StreamOptions::from_query(q);
        assert_eq!(o.command, vec!["sh", "-c", "echo out; exit 3"]);
        assert_eq!(o.container.as_deref(), Some("c"));
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        assert_eq!(commands_from_query(q), o.command);
        assert_eq!(container_from_query(q).as_deref(), Some("c"));
        let t = StreamOptions::from_query("stdin=1&stdout=1&stderr=1&tty=1");
        assert!(t.tty && t.stdin && t.stdout && !t.stderr);
        assert!(StreamOptions::from_query("tty=true").validate().is_err());
    }

    #[test]
    fn decode_handles_odd_escapes() {
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%41%zz"), "A%zz");
        assert_eq!(decode("%"), "%");
    }

    #[test]
    fn ports() {
        assert_eq!(ports_from_query("port=1,2&port=3").unwrap(), vec![1, 2, 3]);
        assert!(ports_from_query("port=0").is_err());
        assert!(ports_from_query("port=").is_err());
        assert!(ports_from_query("port=x").is_err());
    }
}
