//! SPDY/3.1 framing: the frames Kubernetes' spdystream speaks, and the zlib-compressed
//! name/value header blocks (one compression context per direction for the whole connection,
//! primed with the SPDY/3 dictionary).

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1), 1423 bytes.
const DICTIONARY: &[u8] = include_bytes!("dictionary.bin");

const VERSION: u16 = 3;
/// Control frames larger than this are refused: headers here are a handful of short names.
const MAX_CONTROL_LEN: usize = 1 << 20;
/// The 24-bit length field's limit for a DATA frame.
pub const MAX_DATA_LEN: usize = (1 << 24) - 1;

pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
#[cfg(test)]
pub const RST_CANCEL: u32 = 5;

/// Header names are lower case on the wire (Go's framer rejects others); values keep their case.
pub type Headers = Vec<(String, String)>;

/// Looks a header up by name, ignoring case as Go's `http.Header.Get` does after canonicalising.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// The entries are ignored: spdystream neither sends nor honours settings.
    Settings,
    Ping(u32),
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type SPDY/3.1 does not define; skipped.
    Unknown(u16),
}

/// The sending side's header compression context.
pub struct HeaderEncoder {
    z: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(DICTIONARY)
            .expect("setting the dictionary on a fresh deflate stream cannot fail");
        HeaderEncoder { z }
    }

    fn compress(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(4 + headers.len() * 32);
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            raw.put_u32(value.len() as u32);
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start) as usize;
            self.z
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("spdy header compression: {e}")))?;
            // Done once every byte is in and the sync flush left room to spare.
            if (self.z.total_in() - start) as usize == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> io::Result<()> {
        match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                debug_assert!(data.len() <= MAX_DATA_LEN);
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let block = self.compress(headers)?;
                control_header(out, TYPE_SYN_STREAM, *flags, 10 + block.len());
                out.put_u32(*stream_id);
                out.put_u32(*associated_to);
                out.put_u8(priority << 5);
                out.put_u8(0); // slot
                out.extend_from_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let block = self.compress(headers)?;
                control_header(out, TYPE_SYN_REPLY, *flags, 4 + block.len());
                out.put_u32(*stream_id);
                out.extend_from_slice(&block);
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let block = self.compress(headers)?;
                control_header(out, TYPE_HEADERS, *flags, 4 + block.len());
                out.put_u32(*stream_id);
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8);
                out.put_u32(*stream_id);
                out.put_u32(*status);
            }
            Frame::Settings => {
                control_header(out, TYPE_SETTINGS, 0, 4);
                out.put_u32(0);
            }
            Frame::Ping(id) => {
                control_header(out, TYPE_PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8);
                out.put_u32(*last_good_stream_id);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.put_u32(*stream_id);
                out.put_u32(*delta);
            }
            Frame::Unknown(t) => {
                return Err(io::Error::other(format!("cannot encode frame type {t}")));
            }
        }
        Ok(())
    }
}

fn control_header(out: &mut BytesMut, frame_type: u16, flags: u8, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    out.put_u32((u32::from(flags) << 24) | len as u32);
}

/// The receiving side's header decompression context.
pub struct HeaderDecoder {
    z: Decompress,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecoder {
    pub fn new() -> Self {
        HeaderDecoder {
            z: Decompress::new(true),
        }
    }

    fn decompress(&mut self, block: &[u8]) -> io::Result<Headers> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let start = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start) as usize;
            let (in_before, out_before) = (self.z.total_in(), out.len());
            match self
                .z
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(DICTIONARY).map_err(invalid)?;
                    continue;
                }
                Err(e) => return Err(invalid(e)),
            }
            if (self.z.total_in() - start) as usize == block.len() && out.len() < out.capacity() {
                break;
            }
            // Input left, room to write, and nothing taken or made: the zlib stream has ended
            // (a peer may end it), so more room would never help; growing the buffer forever
            // would end in a failed allocation that aborts the process.
            if self.z.total_in() == in_before
                && out.len() == out_before
                && out.len() < out.capacity()
            {
                return Err(invalid(
                    "header block continues past the end of its zlib stream",
                ));
            }
            if out.len() > MAX_CONTROL_LEN * 4 {
                return Err(invalid("header block too large"));
            }
            out.reserve(out.capacity().max(256));
        }
        parse_block(&out)
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("spdy: {e}"))
}

fn parse_block(mut b: &[u8]) -> io::Result<Headers> {
    fn take_u32(b: &mut &[u8]) -> io::Result<u32> {
        if b.len() < 4 {
            return Err(invalid("truncated header block"));
        }
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        *b = &b[4..];
        Ok(v)
    }
    fn take_str(b: &mut &[u8]) -> io::Result<String> {
        let len = take_u32(b)? as usize;
        if b.len() < len {
            return Err(invalid("truncated header block"));
        }
        let s = String::from_utf8_lossy(&b[..len]).into_owned();
        *b = &b[len..];
        Ok(s)
    }
    let n = take_u32(&mut b)?;
    let mut headers = Vec::with_capacity(n.min(64) as usize);
    for _ in 0..n {
        let name = take_str(&mut b)?.to_ascii_lowercase();
        let value = take_str(&mut b)?;
        // Several values of one name are joined by NUL on the wire.
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_string()));
        }
    }
    Ok(headers)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    dec: &mut HeaderDecoder,
) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if first & 0x8000_0000 == 0 {
        let mut data = vec![0u8; len];
        r.read_exact(&mut data).await?;
        return Ok(Some(Frame::Data {
            stream_id: first & 0x7fff_ffff,
            flags,
            data: data.into(),
        }));
    }
    let frame_type = (first & 0xffff) as u16;
    if len > MAX_CONTROL_LEN {
        return Err(invalid(format!("control frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let u32_at = |i: usize| -> io::Result<u32> {
        body.get(i..i + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| invalid(format!("short control frame of type {frame_type}")))
    };
    let frame = match frame_type {
        TYPE_SYN_STREAM => {
            if body.len() < 10 {
                return Err(invalid("short SYN_STREAM"));
            }
            Frame::SynStream {
                stream_id: u32_at(0)? & 0x7fff_ffff,
                associated_to: u32_at(4)? & 0x7fff_ffff,
                priority: body[8] >> 5,
                flags,
                headers: dec.decompress(&body[10..])?,
            }
        }
        TYPE_SYN_REPLY => Frame::SynReply {
            stream_id: u32_at(0)? & 0x7fff_ffff,
            flags,
            headers: dec.decompress(&body[4..])?,
        },
        TYPE_HEADERS => Frame::Headers {
            stream_id: u32_at(0)? & 0x7fff_ffff,
            flags,
            headers: dec.decompress(&body[4..])?,
        },
        TYPE_RST_STREAM => Frame::RstStream {
            stream_id: u32_at(0)? & 0x7fff_ffff,
            status: u32_at(4)?,
        },
        TYPE_SETTINGS => Frame::Settings,
        TYPE_PING => Frame::Ping(u32_at(0)?),
        TYPE_GOAWAY => Frame::GoAway {
            last_good_stream_id: u32_at(0)? & 0x7fff_ffff,
            status: u32_at(4).unwrap_or(0),
        },
        TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
            stream_id: u32_at(0)? & 0x7fff_ffff,
            delta: u32_at(4)? & 0x7fff_ffff,
        },
        other => Frame::Unknown(other),
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options"));
    }

    #[tokio::test]
    async fn frames_round_trip_with_one_context_per_direction() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: vec![
                    ("streamtype".into(), "error".into()),
                    ("port".into(), "8080".into()),
                ],
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 2,
                flags: FLAG_FIN,
                headers: vec![("streamtype".into(), "data".into())],
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
            Frame::Ping(7),
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1000,
            },
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut r = &wire[..];
        for f in &frames {
            assert_eq!(
                read_frame(&mut r, &mut dec).await.unwrap().as_ref(),
                Some(f)
            );
        }
        assert_eq!(read_frame(&mut r, &mut dec).await.unwrap(), None);
    }

    #[test]
    fn header_values_split_on_nul_and_names_fold_case() {
        let mut raw = Vec::new();
        raw.put_u32(1);
        raw.put_u32(4);
        raw.extend_from_slice(b"Port");
        raw.put_u32(6);
        raw.extend_from_slice(b"80\x00443");
        let h = parse_block(&raw).unwrap();
        assert_eq!(
            h,
            vec![("port".into(), "80".into()), ("port".into(), "443".into())]
        );
        assert_eq!(header(&h, "PORT"), Some("80"));
    }

    /// The decoder faces the network: garbage and mangled frames must give errors, never
    /// panics or unbounded allocation. A seeded generator keeps failures reproducible.
    #[tokio::test]
    async fn decoder_survives_random_and_mutated_input() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut valid = BytesMut::new();
        let mut enc = HeaderEncoder::new();
        for id in [1u32, 3, 5] {
            enc.encode(
                &Frame::SynStream {
                    stream_id: id,
                    associated_to: 0,
                    priority: 0,
                    flags: 0,
                    headers: vec![("streamtype".into(), "stdout".into())],
                },
                &mut valid,
            )
            .unwrap();
            enc.encode(
                &Frame::Data {
                    stream_id: id,
                    flags: FLAG_FIN,
                    data: Bytes::from_static(b"xyz"),
                },
                &mut valid,
            )
            .unwrap();
        }
        for round in 0..4000 {
            let mut input = if round % 2 == 0 {
                let len = (next() % 300) as usize;
                let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Make most of them look like SPDY/3 control frames.
                if v.len() >= 8 && round % 4 == 0 {
                    v[0] = 0x80;
                    v[1] = 3;
                    v[2] = 0;
                    v[3] = (next() % 10) as u8;
                    v[5] = 0;
                }
                v
            } else {
                valid.to_vec()
            };
            for _ in 0..(next() % 4) {
                if !input.is_empty() {
                    let i = (next() as usize) % input.len();
                    input[i] = next() as u8;
                }
            }
            let mut dec = HeaderDecoder::new();
            let mut r = &input[..];
            for _ in 0..16 {
                match read_frame(&mut r, &mut dec).await {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
