//! Bit-granular streams, most significant bit first, as Gorilla-style chunks need.

use crate::CodecError;

/// Appends bits to a byte vector. The last byte may be partly used.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    buf: Vec<u8>,
    /// Unused low bits in the last byte of `buf` (0 when `buf` is empty or the byte is full).
    free: u32,
}

impl BitWriter {
    pub fn new() -> BitWriter {
        BitWriter::default()
    }

    /// Starts after existing bytes, all of whose bits count as used.
    pub fn from_bytes(buf: Vec<u8>) -> BitWriter {
        BitWriter { buf, free: 0 }
    }

    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` bits of `v` (`n <= 64`), most significant first: tops up the
    /// partly used last byte, then whole bytes, then a partial one.
    pub fn write_bits(&mut self, v: u64, mut n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        if n <= self.free {
            // Fits in the partly used last byte: the common case for control bits.
            if let Some(last) = self.buf.last_mut() {
                *last |= (v as u8) << (self.free - n);
            }
            self.free -= n;
            return;
        }
        // Grow by a quarter rather than doubling: open head chunks live long and a doubled
        // buffer wastes up to half of it (measured: ~450 bytes per series at 120 samples).
        if self.buf.capacity() - self.buf.len() < 9 {
            self.buf.reserve_exact((self.buf.capacity() / 4).max(16));
        }
        if self.free > 0 {
            let take = n.min(self.free);
            let bits = (v >> (n - take)) as u8 & ((1u16 << take) - 1) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= bits << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
        while n >= 8 {
            n -= 8;
            self.buf.push((v >> n) as u8);
        }
        if n > 0 {
            self.buf.push((v << (8 - n)) as u8);
            self.free = 8 - n;
        }
    }

    /// Writes whole bytes (byte-aligned or not).
    pub fn write_byte(&mut self, b: u8) {
        self.write_bits(u64::from(b), 8);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Number of bits written, including any bytes the writer started from.
    pub fn bit_len(&self) -> usize {
        self.buf.len() * 8 - self.free as usize
    }
}

/// Reads bits from a byte slice; reading past the end is an error, never a panic.
///
/// Reads go a machine word at a time: the eight bytes holding the next bit are loaded big
/// endian and shifted, so a field of up to 57 bits costs one load instead of a loop over its
/// bytes (decoding chunks is most of the work of a query over recent data).
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    buf: &'a [u8],
    /// Next bit to read, counted from the start of `buf`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(buf: &'a [u8]) -> BitReader<'a> {
        BitReader { buf, pos: 0 }
    }

    /// The next 64 bits, the next unread bit first; bits past the end read as 0.
    #[inline]
    fn peek_word(&self) -> u64 {
        let byte = self.pos / 8;
        let word = match self.buf.get(byte..byte + 8) {
            Some(b) => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                let mut tail = [0u8; 8];
                let rest = self.buf.get(byte..).unwrap_or_default();
                tail[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(tail)
            }
        };
        // Up to 7 bits of the word precede `pos`; the bits shifted in are zeros, which is why
        // one peek serves fields of at most 57 bits.
        word << (self.pos % 8)
    }

    /// Moves past `n` bits, failing if fewer are left.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        self.consume(n)
    }

    #[inline]
    fn consume(&mut self, n: usize) -> Result<(), CodecError> {
        if self.pos + n > self.buf.len() * 8 {
            return Err(CodecError::UnexpectedEof(self.buf.len()));
        }
        self.pos += n;
        Ok(())
    }

    #[inline]
    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let bit = self.peek_word() >> 63 == 1;
        self.consume(1)?;
        Ok(bit)
    }

    /// Reads `n <= 64` bits as the low bits of the result.
    #[inline]
    pub fn read_bits(&mut self, n: u32) -> Result<u64, CodecError> {
        debug_assert!(n <= 64);
        if n > 57 {
            return self.read_wide_bits(n);
        }
        // Two shifts, so that n == 0 yields 0 rather than shifting by 64.
        let v = (self.peek_word() >> 1) >> (63 - n);
        self.consume(n as usize)?;
        Ok(v)
    }

    /// Fields wider than one peek (whole floats), out of line to keep `read_bits` small.
    #[inline(never)]
    fn read_wide_bits(&mut self, n: u32) -> Result<u64, CodecError> {
        let high = self.read_bits(n - 32)?;
        Ok(high << 32 | self.read_bits(32)?)
    }

    /// Reads up to `max <= 8` one bits, stopping after the first zero bit (which is consumed
    /// too): the length prefix of a delta-of-delta bucket.
    #[inline]
    pub fn read_ones(&mut self, max: u32) -> Result<u32, CodecError> {
        debug_assert!(max <= 8);
        let ones = self.peek_word().leading_ones().min(max);
        self.consume(if ones < max { ones as usize + 1 } else { ones as usize })?;
        Ok(ones)
    }

    /// Bits left to read.
    pub fn remaining_bits(&self) -> usize {
        (self.buf.len() * 8).saturating_sub(self.pos)
    }

    pub fn read_byte(&mut self) -> Result<u8, CodecError> {
        self.read_bits(8).map(|b| b as u8)
    }

    /// Reads an unsigned varint written byte by byte into the bit stream.
    pub fn read_uvarint(&mut self) -> Result<u64, CodecError> {
        let mut result = 0u64;
        for i in 0..10 {
            let b = self.read_byte()?;
            if i == 9 && b > 1 {
                return Err(CodecError::VarintOverflow(self.pos / 8));
            }
            result |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(result);
            }
        }
        Err(CodecError::VarintOverflow(self.pos / 8))
    }
}

impl BitWriter {
    /// Writes an unsigned varint byte by byte into the bit stream.
    pub fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.write_byte(v as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items {
                w.write_bits(v, n);
            }
            let total: u32 = items.iter().map(|i| i.1).sum();
            prop_assert_eq!(w.bit_len(), total as usize);
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n).unwrap(), v & mask);
            }
        }
    }

    proptest! {
        #[test]
        fn ones_prefixes_round_trip(prefixes in proptest::collection::vec((0u32..=4, any::<u8>()), 0..100)) {
            let mut w = BitWriter::new();
            for &(ones, filler) in &prefixes {
                w.write_bits((1u64 << ones) - 1, ones);
                if ones < 4 {
                    w.write_bit(false);
                }
                w.write_bits(u64::from(filler), 3);
            }
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes);
            for &(ones, filler) in &prefixes {
                prop_assert_eq!(r.read_ones(4).unwrap(), ones);
                prop_assert_eq!(r.read_bits(3).unwrap(), u64::from(filler & 7));
            }
        }
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(7), Ok(0x7f));
        assert_eq!(r.read_bit(), Ok(true));
        assert!(r.read_bit().is_err());
        assert!(BitReader::new(&[0x80]).read_uvarint().is_err());
        // A prefix running into the end: its terminating zero is padding, not data.
        assert!(BitReader::new(&[0xff]).read_ones(8).is_ok());
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(5), Ok(0x1f));
        assert!(r.read_ones(4).is_err());
        let mut r = BitReader::new(&[0xff; 9]);
        assert_eq!(r.read_bits(3), Ok(7));
        assert_eq!(r.read_bits(64), Ok(u64::MAX));
        assert!(r.read_bits(6).is_err());
    }
}
