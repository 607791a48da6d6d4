//! Prometheus `relabel_configs`: the rules that rewrite, keep or drop label sets, used for
//! scrape targets (`relabel_configs`) and scraped series (`metric_relabel_configs`).
//!
//! Semantics are Prometheus's `model/relabel` exactly: the same defaults (separator `;`,
//! regex `(.*)` anchored at both ends, replacement `$1`, action `replace`), the same
//! validation messages, `$1`/`${name}` expansion with Go's rules, and `hashmod` over the last
//! eight bytes of an MD5 sum, so hash-based sharding agrees with a Prometheus fleet.
//!
//! Invariants: a [`RelabelConfig`] obtained by deserialising has been validated; [`process`]
//! never panics, whatever the configs.
//!
//! Regexes are Go (RE2) syntax, as in Prometheus: the few places where the `regex` crate
//! reads a pattern differently (ASCII-only `\d\w\s\b`, `[` inside classes, `\Q...\E`) are
//! rewritten before compiling.
//!
//! Not done here: Prometheus 3's UTF-8 label names (names are checked with the legacy
//! `[a-zA-Z_][a-zA-Z0-9_]*` rule), and the regex literal-prefix optimisations.

mod builder;
mod config;
mod error;
mod go_regex;
mod process;

pub use config::{Action, RelabelConfig, RelabelRegex};
pub use error::RelabelError;
pub use process::process;
