//! The CRI container log format, as the kubelet reads it (`pkg/kubelet/kuberuntime/logs`):
//! one record per line, `<RFC3339Nano UTC> <stdout|stderr> <F|P> <text>\n`.
//!
//! `F` ends a line; `P` is a piece of a longer one, continued by the next record of the same
//! stream. Lines longer than [`MAX_LINE`] are split into `P` pieces (containerd's 16 KiB
//! buffer). A piece of output that stays unterminated (at EOF, or when nothing more arrives
//! for [`PARTIAL_FLUSH`]) is written as `P` without a newline, as CRI-O's conmon does, so
//! `kubectl logs` shows exactly the bytes the process wrote (containerd tags the last
//! unterminated line `F`, which adds a newline).

use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Longest text in one record.
pub const MAX_LINE: usize = 16 * 1024;
/// How long an unterminated line is held back waiting for its end.
pub const PARTIAL_FLUSH: Duration = Duration::from_millis(100);

/// Which output stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream as a CRI log record names it (`stdout`, `stderr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Encodes one record; `text` must not contain `\n`.
pub fn encode(ts: DateTime<Utc>, stream: Stream, partial: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(ts.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Splits one stream's output into records. Feed it what the stream produced with
/// [`LineSplitter::push`]; call [`LineSplitter::flush_partial`] at EOF or after a pause.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream`'s output, with nothing held back.
    pub fn new(stream: Stream) -> Self {
        LineSplitter {
            stream,
            pending: Vec::new(),
        }
    }

    /// Whether an unterminated line is held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Appends `data`; returns the encoded records that are complete.
    pub fn push(&mut self, data: &[u8], now: DateTime<Utc>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) if self.pending.len() + i <= MAX_LINE => {
                    self.pending.extend_from_slice(&rest[..i]);
                    out.extend(encode(now, self.stream, false, &self.pending));
                    self.pending.clear();
                    rest = &rest[i + 1..];
                }
                _ => {
                    // No newline within reach: fill up to MAX_LINE and emit a piece.
                    let room = MAX_LINE - self.pending.len();
                    let take = room.min(rest.len());
                    self.pending.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.pending.len() == MAX_LINE && (rest.first() != Some(&b'\n')) {
                        out.extend(encode(now, self.stream, true, &self.pending));
                        self.pending.clear();
                    }
                }
            }
        }
        out
    }

    /// Encodes what is buffered as a `P` record (nothing if empty).
    pub fn flush_partial(&mut self, now: DateTime<Utc>) -> Vec<u8> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let out = encode(now, self.stream, true, &self.pending);
        self.pending.clear();
        out
    }
}

/// Writes whole records with one `write` each, so two streams appending to the same
/// `O_APPEND` file never interleave inside a record.
pub fn write_records(w: &mut impl Write, records: &[u8]) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    w.write_all(records)
}

/// One parsed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// When the text was read from the container.
    pub timestamp: DateTime<Utc>,
    /// Which stream it came from.
    pub stream: Stream,
    /// Tagged `P` (one piece of a longer line) rather than `F` (the end of a line).
    pub partial: bool,
    /// The text without the record's trailing newline.
    pub content: &'a [u8],
}

/// A record that is not `<RFC 3339 time> <stream> <P|F> <text>`; says which part is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed CRI log line: {0}")]
pub struct ParseError(pub &'static str);

/// Parses one record (with or without its trailing `\n`), as the kubelet's `parseCRILog`:
/// the tag field may carry further `:`-separated tags after `F`/`P`.
pub fn parse_line(line: &[u8]) -> Result<LogLine<'_>, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (ts, rest) = split_space(line).ok_or(ParseError("missing timestamp"))?;
    let ts = std::str::from_utf8(ts).map_err(|_| ParseError("timestamp is not UTF-8"))?;
    let timestamp = DateTime::parse_from_rfc3339(ts)
        .map_err(|_| ParseError("timestamp is not RFC3339"))?
        .with_timezone(&Utc);
    let (stream, rest) = split_space(rest).ok_or(ParseError("missing stream"))?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(ParseError("unknown stream")),
    };
    // The kubelet tolerates a record that ends right after the tag (empty content).
    let (tags, content) = split_space(rest).unwrap_or((rest, &[][..]));
    let partial = match tags.split(|&b| b == b':').next() {
        Some(b"F") => false,
        Some(b"P") => true,
        _ => return Err(ParseError("unknown tag")),
    };
    Ok(LogLine {
        timestamp,
        stream,
        partial,
        content,
    })
}

fn split_space(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == b' ')?;
    Some((&s[..i], &s[i + 1..]))
}

/// What `kubectl logs` asks for (the kubelet's `LogOptions`, minus follow).
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only the last N lines (a line being a run of `P` records ended by an `F`).
    pub tail: Option<usize>,
    /// Prefix each line with its RFC3339Nano timestamp.
    pub timestamps: bool,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<usize>,
}

/// Renders a whole log file's content the way `kubectl logs` prints it. Malformed records
/// are skipped (the kubelet logs and skips them too).
pub fn render(file: &[u8], opts: &LogOptions) -> Vec<u8> {
    let records: Vec<LogLine<'_>> = file
        .split_inclusive(|&b| b == b'\n')
        .filter_map(|l| parse_line(l).ok())
        .filter(|l| opts.since.is_none_or(|s| l.timestamp >= s))
        .collect();
    let start = match opts.tail {
        None => 0,
        Some(n) => {
            // Walk back over n complete lines; a trailing run of P records counts as one.
            let mut seen = 0;
            let mut i = records.len();
            while i > 0 {
                let full = !records[i - 1].partial;
                if full || i == records.len() {
                    if seen == n {
                        break;
                    }
                    seen += 1;
                }
                i -= 1;
                while i > 0 && records[i - 1].partial {
                    i -= 1;
                }
            }
            i
        }
    };
    let mut out = Vec::new();
    let mut line_start = true;
    for r in &records[start..] {
        if opts.timestamps && line_start {
            out.extend_from_slice(
                r.timestamp
                    .to_rfc3339_opts(SecondsFormat::Nanos, true)
                    .as_bytes(),
            );
            out.push(b' ');
        }
        out.extend_from_slice(r.content);
        if !r.partial {
            out.push(b'\n');
        }
        line_start = !r.partial;
        if let Some(limit) = opts.limit_bytes {
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-06T07:08:09.000000123Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn encodes_full_and_partial_records() {
        let mut s = LineSplitter::new(Stream::Stdout);
        let out = s.push(b"hello\nwor", ts());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-05-06T07:08:09.000000123Z stdout F hello\n"
        );
        assert!(s.has_pending());
        let out = s.push(b"ld\n", ts());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-05-06T07:08:09.000000123Z stdout F world\n"
        );
        s.push(b"no newline", ts());
        let out = s.flush_partial(ts());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-05-06T07:08:09.000000123Z stdout P no newline\n"
        );
        assert!(s.flush_partial(ts()).is_empty());
    }

    #[test]
    fn splits_long_lines_at_16k() {
        let mut s = LineSplitter::new(Stream::Stderr);
        let mut data = vec![b'a'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        let out = s.push(&data, ts());
        let recs: Vec<_> = out
            .split_inclusive(|&b| b == b'\n')
            .map(|l| parse_line(l).unwrap())
            .collect();
        assert_eq!(recs.len(), 3);
        assert!(recs[0].partial && recs[1].partial && !recs[2].partial);
        assert_eq!(recs[0].content.len(), MAX_LINE);
        assert_eq!(recs[2].content.len(), 10);
        assert!(recs.iter().all(|r| r.stream == Stream::Stderr));
        // Exactly MAX_LINE followed by a newline is one full record.
        let mut exact = vec![b'b'; MAX_LINE];
        exact.push(b'\n');
        let out = s.push(&exact, ts());
        let rec = parse_line(&out).unwrap();
        assert!(!rec.partial);
        assert_eq!(rec.content.len(), MAX_LINE);
    }

    #[test]
    fn parses_upstream_examples() {
        let l = parse_line(b"2016-10-06T00:17:09.669794202Z stdout F log content 1\n").unwrap();
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.content, b"log content 1");
        assert_eq!(l.timestamp.timestamp_subsec_nanos(), 669794202);
        let l = parse_line(b"2016-10-06T00:17:09.669794203Z stderr P log content 2").unwrap();
        assert!(l.partial);
        assert_eq!(l.stream, Stream::Stderr);
        // Short fractions and extra tags are accepted; empty content too.
        let l = parse_line(b"2016-10-06T00:17:09.5Z stdout F:x ").unwrap();
        assert_eq!(l.content, b"");
        let l = parse_line(b"2016-10-06T00:17:09Z stdout F").unwrap();
        assert_eq!(l.content, b"");
        assert!(parse_line(b"garbage").is_err());
        assert!(parse_line(b"2016-10-06T00:17:09Z stdin F x").is_err());
        assert!(parse_line(b"2016-10-06T00:17:09Z stdout X x").is_err());
    }

    #[test]
    fn renders_tail_since_timestamps() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut file = Vec::new();
        file.extend(encode(
            t("2024-01-01T00:00:01Z"),
            Stream::Stdout,
            false,
            b"one",
        ));
        file.extend(encode(
            t("2024-01-01T00:00:02Z"),
            Stream::Stderr,
            true,
            b"tw",
        ));
        file.extend(encode(
            t("2024-01-01T00:00:02Z"),
            Stream::Stderr,
            false,
            b"o",
        ));
        file.extend(encode(
            t("2024-01-01T00:00:03Z"),
            Stream::Stdout,
            false,
            b"three",
        ));
        file.extend(encode(
            t("2024-01-01T00:00:04Z"),
            Stream::Stdout,
            true,
            b"four",
        ));
        let all = render(&file, &LogOptions::default());
        assert_eq!(all, b"one\ntwo\nthree\nfour");
        let tail = render(
            &file,
            &LogOptions {
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(tail, b"three\nfour");
        let tail = render(
            &file,
            &LogOptions {
                tail: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(tail, b"two\nthree\nfour");
        let since = render(
            &file,
            &LogOptions {
                since: Some(t("2024-01-01T00:00:03Z")),
                timestamps: true,
                ..Default::default()
            },
        );
        assert_eq!(
            String::from_utf8(since).unwrap(),
            "2024-01-01T00:00:03.000000000Z three\n2024-01-01T00:00:04.000000000Z four"
        );
        let limited = render(
            &file,
            &LogOptions {
                limit_bytes: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(limited, b"one\nt");
    }
}
