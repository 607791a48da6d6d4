//! LEB128 unsigned varints and zigzag signed varints, byte-compatible with Go's
//! `binary.PutUvarint`/`binary.PutVarint` (and so with Prometheus's on-disk formats).

use crate::CodecError;

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads an unsigned varint at `*pos`, advancing `*pos` past it.
pub fn get_uvarint(buf: &[u8], pos: &mut usize) -> Result<u64, CodecError> {
    let start = *pos;
    let mut result = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or(CodecError::UnexpectedEof(*pos))?;
        *pos += 1;
        if i == 9 && b > 1 {
            return Err(CodecError::VarintOverflow(start));
        }
        result |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(result);
        }
    }
    Err(CodecError::VarintOverflow(start))
}

/// Maps signed to unsigned so that small magnitudes stay small: 0,-1,1,-2 -> 0,1,2,3.
pub fn zigzag_encode(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn zigzag_decode(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as a zigzag varint.
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag_encode(v));
}

/// Reads a zigzag varint at `*pos`, advancing `*pos` past it.
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Result<i64, CodecError> {
    get_uvarint(buf, pos).map(zigzag_decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut b = Vec::new();
        put_uvarint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        b.clear();
        put_varint(&mut b, -1);
        assert_eq!(b, [0x01]);
        assert_eq!(get_uvarint(&[0x80], &mut 0), Err(CodecError::UnexpectedEof(1)));
        assert_eq!(get_uvarint(&[0xff; 11], &mut 0), Err(CodecError::VarintOverflow(0)));
    }

    proptest! {
        #[test]
        fn uvarint_round_trips(v: u64) {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            let mut pos = 0;
            prop_assert_eq!(get_uvarint(&b, &mut pos), Ok(v));
            prop_assert_eq!(pos, b.len());
        }

        #[test]
        fn varint_round_trips(v: i64) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            prop_assert_eq!(get_varint(&b, &mut 0), Ok(v));
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let mut pos = 0;
            while pos < bytes.len() && get_uvarint(&bytes, &mut pos).is_ok() {}
        }
    }
}
