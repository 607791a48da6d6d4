//! Foreign wire protocols, decoded into (and encoded from) the model's types. This is the only
//! crate that knows these formats; it does no I/O and never panics on input: every decoder
//! returns an error that says what is wrong and where, and is fuzzed (see `fuzz/`).

pub mod exposition;
pub mod otlp;
pub mod remote_write;
