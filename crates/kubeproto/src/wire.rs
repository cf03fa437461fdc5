//! Minimal protobuf wire-format reader and writer.

use crate::Error;

pub(crate) const WT_VARINT: u8 = 0;
pub(crate) const WT_I64: u8 = 1;
pub(crate) const WT_LEN: u8 = 2;
pub(crate) const WT_SGROUP: u8 = 3;
pub(crate) const WT_EGROUP: u8 = 4;
pub(crate) const WT_I32: u8 = 5;

/// Reads a byte slice that sits at absolute offset `base` of the body (for error messages).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn err(&self, at: usize, msg: impl Into<String>) -> Error {
        Error::malformed(at, msg)
    }

    pub fn varint(&mut self) -> Result<u64, Error> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(start, "truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err(start, "varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err(start, "varint longer than 10 bytes"))
    }

    /// Returns (field number, wire type).
    pub fn tag(&mut self) -> Result<(u32, u8), Error> {
        let at = self.offset();
        let t = self.varint()?;
        let num = t >> 3;
        if num == 0 || num > 0x1fff_ffff {
            return Err(self.err(at, format!("invalid field number {num}")));
        }
        Ok((num as u32, (t & 7) as u8))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(
                self.offset(),
                format!(
                    "truncated {what}: needs {n} bytes, {} left",
                    self.buf.len() - self.pos
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn fixed64(&mut self) -> Result<u64, Error> {
        let s = self.take(8, "fixed64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-delimited value: (bytes, absolute offset of its first byte).
    pub fn bytes(&mut self) -> Result<(&'a [u8], usize), Error> {
        let at = self.offset();
        let len = self.varint()?;
        let left = self.buf.len() - self.pos;
        if len > left as u64 {
            return Err(self.err(
                at,
                format!("length {len} runs past the end ({left} bytes left)"),
            ));
        }
        let off = self.offset();
        let s = self.take(len as usize, "bytes")?;
        Ok((s, off))
    }

    /// Skip a value of an unknown field (forward compatibility).
    pub fn skip(&mut self, num: u32, wt: u8, depth: usize) -> Result<(), Error> {
        match wt {
            WT_VARINT => {
                self.varint()?;
            }
            WT_I64 => {
                self.take(8, "fixed64")?;
            }
            WT_LEN => {
                self.bytes()?;
            }
            WT_I32 => {
                self.take(4, "fixed32")?;
            }
            WT_SGROUP => {
                if depth >= crate::MAX_DEPTH {
                    return Err(Error::TooDeep(crate::MAX_DEPTH));
                }
                loop {
                    let at = self.offset();
                    if self.at_end() {
                        return Err(self.err(at, format!("unterminated group {num}")));
                    }
                    let (n, w) = self.tag()?;
                    if w == WT_EGROUP {
                        if n != num {
                            return Err(self.err(at, format!("group {num} closed by {n}")));
                        }
                        break;
                    }
                    self.skip(n, w, depth + 1)?;
                }
            }
            _ => {
                return Err(self.err(
                    self.offset(),
                    format!("field {num}: invalid wire type {wt}"),
                ))
            }
        }
        Ok(())
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_tag(out: &mut Vec<u8>, num: u32, wt: u8) {
    put_varint(out, (u64::from(num) << 3) | u64::from(wt));
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, num: u32, b: &[u8]) {
    put_tag(out, num, WT_LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Scan a message for the last occurrence of a length-delimited field.
pub(crate) fn find_len_field(
    buf: &[u8],
    base: usize,
    want: u32,
    depth: usize,
) -> Result<Option<(&[u8], usize)>, Error> {
    let mut r = Reader::new(buf, base);
    let mut found = None;
    while !r.at_end() {
        let at = r.offset();
        let (num, wt) = r.tag()?;
        if num == want {
            if wt != WT_LEN {
                return Err(r.err(
                    at,
                    format!("field {num}: wire type {wt}, expected {WT_LEN}"),
                ));
            }
            found = Some(r.bytes()?);
        } else {
            r.skip(num, wt, depth)?;
        }
    }
    Ok(found)
}
