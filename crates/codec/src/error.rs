//! The one error type of the codec crate.

/// Why some bytes could not be decoded. Positions are byte offsets into the decoded input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unexpected end of data at byte {0}")]
    UnexpectedEof(usize),
    #[error("varint at byte {0} is longer than 10 bytes")]
    VarintOverflow(usize),
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
    #[error("corrupt chunk: {0}")]
    Corrupt(&'static str),
}
