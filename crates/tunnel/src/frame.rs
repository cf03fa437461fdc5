//! The wire format: one frame per transport message.
//!
//! ```text
//! +----------------+---------+-------------------+
//! | stream id u32  | type u8 | payload (rest)    |
//! +----------------+---------+-------------------+
//! ```
//! All integers are big-endian. Stream id 0 is the session itself (PING/PONG).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest message the [`crate::framed`] adapter accepts; a DATA frame is kept well below it.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Header length: stream id (4) + type (1).
pub const HEADER_LEN: usize = 5;

/// Frame type of [`Frame::Open`].
pub const OPEN: u8 = 1;
/// Frame type of [`Frame::Data`].
pub const DATA: u8 = 2;
/// Frame type of [`Frame::Window`].
pub const WINDOW: u8 = 3;
/// Frame type of [`Frame::Fin`].
pub const FIN: u8 = 4;
/// Frame type of [`Frame::Reset`].
pub const RESET: u8 = 5;
/// Frame type of [`Frame::Ping`].
pub const PING: u8 = 6;
/// Frame type of [`Frame::Pong`].
pub const PONG: u8 = 7;

/// RESET codes the crate itself uses; applications may use any other value (>= 0x100 by
/// convention) through [`crate::TunnelStream::reset`].
pub mod code {
    /// The stream handle was dropped while the peer could still send.
    pub const CANCEL: u32 = 1;
    /// The peer broke the protocol on this stream (unknown stream, data after FIN, bad frame).
    pub const PROTOCOL: u32 = 2;
    /// The stream was not accepted (backlog full, too many streams, nobody accepting).
    pub const REFUSED: u32 = 3;
    /// The peer sent more than the credit it was granted.
    pub const FLOW_CONTROL: u32 = 4;
}

/// One decoded tunnel frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens stream `id`; the header is opaque to the tunnel (the opener says what it wants).
    Open {
        /// The new stream's id.
        id: u32,
        /// What the opener asks for; the tunnel does not read it.
        header: Bytes,
    },
    /// Stream bytes, within the credit the receiver granted.
    Data {
        /// The stream the bytes belong to.
        id: u32,
        /// The bytes.
        data: Bytes,
    },
    /// Grants the receiver of this frame `credit` more bytes of DATA on `id`.
    Window {
        /// The stream the credit is for.
        id: u32,
        /// Additional bytes the receiver may send.
        credit: u32,
    },
    /// Half-close: the sender of this frame sends no more DATA on `id`.
    Fin {
        /// The stream being half-closed.
        id: u32,
    },
    /// Aborts `id` on both ends.
    Reset {
        /// The stream aborted.
        id: u32,
        /// Why: a [`code`] value or an application's own (>= 0x100).
        code: u32,
        /// Human-readable detail for logs.
        message: String,
    },
    /// Keepalive probe on the session (stream 0); the peer answers with a Pong.
    Ping {
        /// Opaque bytes the Pong echoes.
        payload: Bytes,
    },
    /// The answer to a Ping.
    Pong {
        /// The Ping's payload, echoed.
        payload: Bytes,
    },
}

/// Why bytes could not be decoded as a [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the 5-byte header; the count received.
    #[error("frame too short: {0} bytes")]
    Short(usize),
    /// A frame type this version does not know.
    #[error("unknown frame type {ty} on stream {id}")]
    UnknownType {
        /// The stream the frame named.
        id: u32,
        /// The unknown type byte.
        ty: u8,
    },
    /// A known frame type whose payload does not fit it.
    #[error("malformed {what} frame on stream {id}")]
    Malformed {
        /// The stream the frame named.
        id: u32,
        /// The frame type, by name.
        what: &'static str,
    },
}

impl DecodeError {
    /// The stream the bad frame named, if the header was readable and it is not the session.
    pub fn stream_id(&self) -> Option<u32> {
        match self {
            DecodeError::Short(_) => None,
            DecodeError::UnknownType { id, .. } | DecodeError::Malformed { id, .. } => {
                (*id != 0).then_some(*id)
            }
        }
    }
}

impl Frame {
    /// The stream the frame belongs to (0 for Ping and Pong, which belong to the session).
    pub fn stream_id(&self) -> u32 {
        match self {
            Frame::Open { id, .. }
            | Frame::Data { id, .. }
            | Frame::Window { id, .. }
            | Frame::Fin { id }
            | Frame::Reset { id, .. } => *id,
            Frame::Ping { .. } | Frame::Pong { .. } => 0,
        }
    }

    /// The frame in wire form: header and payload.
    pub fn encode(&self) -> Bytes {
        let (ty, extra) = match self {
            Frame::Open { header, .. } => (OPEN, header.len()),
            Frame::Data { data, .. } => (DATA, data.len()),
            Frame::Window { .. } => (WINDOW, 4),
            Frame::Fin { .. } => (FIN, 0),
            Frame::Reset { message, .. } => (RESET, 4 + message.len()),
            Frame::Ping { payload } => (PING, payload.len()),
            Frame::Pong { payload } => (PONG, payload.len()),
        };
        let mut b = BytesMut::with_capacity(HEADER_LEN + extra);
        b.put_u32(self.stream_id());
        b.put_u8(ty);
        match self {
            Frame::Open { header: p, .. }
            | Frame::Data { data: p, .. }
            | Frame::Ping { payload: p }
            | Frame::Pong { payload: p } => b.put_slice(p),
            Frame::Window { credit, .. } => b.put_u32(*credit),
            Frame::Fin { .. } => {}
            Frame::Reset { code, message, .. } => {
                b.put_u32(*code);
                b.put_slice(message.as_bytes());
            }
        }
        b.freeze()
    }

    /// Decodes one message. Never panics; every malformed input is an error.
    pub fn decode(mut msg: Bytes) -> Result<Frame, DecodeError> {
        if msg.len() < HEADER_LEN {
            return Err(DecodeError::Short(msg.len()));
        }
        let id = msg.get_u32();
        let ty = msg.get_u8();
        let malformed = |what| DecodeError::Malformed { id, what };
        Ok(match ty {
            OPEN => Frame::Open { id, header: msg },
            DATA => Frame::Data { id, data: msg },
            WINDOW => {
                if msg.len() != 4 {
                    return Err(malformed("WINDOW"));
                }
                Frame::Window {
                    id,
                    credit: msg.get_u32(),
                }
            }
            FIN => Frame::Fin { id },
            RESET => {
                if msg.len() < 4 {
                    return Err(malformed("RESET"));
                }
                let code = msg.get_u32();
                // Lossy: a garbled message must not turn a RESET into a protocol error.
                let message = String::from_utf8_lossy(&msg).into_owned();
                Frame::Reset { id, code, message }
            }
            PING => Frame::Ping { payload: msg },
            PONG => Frame::Pong { payload: msg },
            ty => return Err(DecodeError::UnknownType { id, ty }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn round_trip() {
        let frames = [
            Frame::Open {
                id: 1,
                header: Bytes::from_static(b"pod/x"),
            },
            Frame::Data {
                id: 2,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Window { id: 3, credit: 77 },
            Frame::Fin { id: 4 },
            Frame::Reset {
                id: 5,
                code: 9,
                message: "boom".into(),
            },
            Frame::Ping {
                payload: Bytes::from_static(b"p"),
            },
            Frame::Pong {
                payload: Bytes::new(),
            },
        ];
        for f in frames {
            assert_eq!(Frame::decode(f.encode()), Ok(f));
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            Frame::decode(Bytes::from_static(b"\0\0")),
            Err(DecodeError::Short(2))
        );
        assert_eq!(
            Frame::decode(Bytes::from_static(b"\0\0\0\x01\x63")),
            Err(DecodeError::UnknownType { id: 1, ty: 0x63 })
        );
        assert!(Frame::decode(Bytes::from_static(b"\0\0\0\x01\x03\0\0")).is_err());
        assert!(Frame::decode(Bytes::from_static(b"\0\0\0\x01\x05\0")).is_err());
    }

    /// Random bytes (and random mutations of valid frames) never panic the decoder, and what
    /// decodes re-encodes to a frame that decodes the same.
    #[test]
    fn fuzz_decoder() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..200_000 {
            let len = (rng.next() % 40) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 2 == 0 && buf.len() >= HEADER_LEN {
                buf[4] = (rng.next() % 9) as u8; // mostly valid types
            }
            if let Ok(f) = Frame::decode(Bytes::from(buf)) {
                assert_eq!(Frame::decode(f.encode()), Ok(f));
            }
        }
    }
}
