//! Property tests of the SPDY/3.1 frame reader: kubectl's exec, attach and port-forward
//! connections send these frames, so any byte stream must give frames or an error, never a
//! panic, a hang or an unbounded allocation; and header blocks must survive compression.
//!
//! Case counts are bounded (PROPTEST_CASES overrides) so a debug `cargo test` stays quick.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use flate2::{Compress, Compression, FlushCompress};
use proptest::prelude::*;

use super::frame::{read_frame, Frame, HeaderDecoder, HeaderEncoder, Headers, TYPE_SYN_STREAM};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Reads every frame of `wire` with one decoder, as a session does, on a thread with a
/// deadline: a reader that spins (or allocates without end) fails the test instead of
/// hanging it.
fn read_all(wire: Vec<u8>) -> Vec<std::io::Result<Frame>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let out = rt.block_on(async {
            let mut dec = HeaderDecoder::new();
            let mut r = &wire[..];
            let mut out = Vec::new();
            loop {
                match read_frame(&mut r, &mut dec).await {
                    Ok(Some(f)) => out.push(Ok(f)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        break;
                    }
                }
            }
            out
        });
        let _ = tx.send(out);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("reading the frames did not finish in 10 s")
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::collection::vec(("[a-z:-]{1,12}", "[ -~]{0,20}"), 0..5)
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (1u32..100, 0u8..8, 0u8..2, headers()).prop_map(|(id, p, f, h)| Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: p,
            flags: f,
            headers: h,
        }),
        (1u32..100, headers()).prop_map(|(id, h)| Frame::SynReply {
            stream_id: id,
            flags: 0,
            headers: h,
        }),
        (1u32..100, headers()).prop_map(|(id, h)| Frame::Headers {
            stream_id: id,
            flags: 0,
            headers: h,
        }),
        (1u32..100, any::<u32>()).prop_map(|(id, s)| Frame::RstStream {
            stream_id: id,
            status: s,
        }),
        any::<u32>().prop_map(Frame::Ping),
        (1u32..100, 1u32..1000).prop_map(|(id, d)| Frame::WindowUpdate {
            stream_id: id,
            delta: d,
        }),
        (1u32..100, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(id, d)| Frame::Data {
            stream_id: id,
            flags: 0,
            data: d.into(),
        }),
    ]
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut enc = HeaderEncoder::new();
    let mut out = BytesMut::new();
    for f in frames {
        enc.encode(f, &mut out).unwrap();
    }
    out.to_vec()
}

proptest! {
    #![proptest_config(config())]

    /// Frames written with one compression context read back the same with one
    /// decompression context.
    #[test]
    fn frames_round_trip(frames in prop::collection::vec(frame(), 0..6)) {
        let got: Vec<Frame> = read_all(encode(&frames)).into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(got, frames);
    }

    /// Damaged streams (a byte changed, cut short, or bytes of any kind) give frames and then
    /// perhaps an error: never a panic, a hang or a runaway allocation.
    #[test]
    fn damaged_streams(
        frames in prop::collection::vec(frame(), 1..4),
        at in any::<prop::sample::Index>(),
        byte: u8,
        cut in any::<prop::sample::Index>(),
        junk in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let wire = encode(&frames);
        let mut changed = wire.clone();
        let i = at.index(changed.len());
        changed[i] = byte;
        read_all(changed);
        read_all(wire[..cut.index(wire.len())].to_vec());
        // a header block whose zlib stream ends, then anything
        let mut ended = syn_stream_with_ended_block(&junk);
        ended.extend_from_slice(&wire);
        read_all(ended);
        read_all(junk);
    }
}

/// A SYN_STREAM whose header block is a zlib stream (with the SPDY dictionary) that `finish`es,
/// followed by `trailing` bytes.
fn syn_stream_with_ended_block(trailing: &[u8]) -> Vec<u8> {
    const DICTIONARY: &[u8] = include_bytes!("dictionary.bin");
    let mut raw = Vec::new();
    raw.put_u32(1);
    raw.put_u32(4);
    raw.extend_from_slice(b"port");
    raw.put_u32(2);
    raw.extend_from_slice(b"80");
    let mut z = Compress::new(Compression::default(), true);
    z.set_dictionary(DICTIONARY).unwrap();
    let mut block = Vec::with_capacity(256);
    z.compress_vec(&raw, &mut block, FlushCompress::Finish)
        .unwrap();
    block.extend_from_slice(trailing);
    let mut out = BytesMut::new();
    out.put_u16(0x8003);
    out.put_u16(TYPE_SYN_STREAM);
    out.put_u32(10 + block.len() as u32);
    out.put_u32(1);
    out.put_u32(0);
    out.put_u16(0);
    out.extend_from_slice(&block);
    out.to_vec()
}

/// Found reading the decoder for these properties (random damage rarely ends a zlib stream,
/// so `damaged_streams` now builds such blocks itself): a header block holding bytes after
/// the end of its zlib stream made the decompression loop spin, doubling its buffer until an
/// allocation failed and the process aborted. Now the frame is refused.
#[test]
fn bytes_after_the_end_of_the_zlib_stream_are_refused() {
    let got = read_all(syn_stream_with_ended_block(b"xyz"));
    assert_eq!(got.len(), 1, "{got:?}");
    let e = got[0].as_ref().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    // the same block without trailing bytes is a frame; the next block on the connection
    // finds the stream ended, and is refused
    let mut wire = syn_stream_with_ended_block(b"");
    wire.extend(encode(&[Frame::Headers {
        stream_id: 1,
        flags: 0,
        headers: vec![("a".into(), "b".into())],
    }]));
    let got = read_all(wire);
    assert!(
        matches!(&got[0], Ok(Frame::SynStream { headers, .. }) if headers == &[("port".to_string(), "80".to_string())]),
        "{got:?}"
    );
    assert!(got[1].is_err(), "{got:?}");
}
