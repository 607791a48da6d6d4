//! Tenant identifiers. Every stored item belongs to exactly one tenant.

use std::fmt;
use std::sync::Arc;

/// A validated tenant id, as sent in `X-Scope-OrgID`.
///
/// Rules follow Cortex/Mimir/Loki so that ids valid there are valid here: 1 to 150 bytes of
/// `[A-Za-z0-9!-_.*'()]`, and not `.` or `..` (ids become directory names).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("tenant id is empty: send a non-empty X-Scope-OrgID header")]
    Empty,
    #[error("tenant id is longer than 150 characters")]
    TooLong,
    #[error("tenant id {0:?} contains the character {1:?}; allowed are letters, digits and !-_.*'()")]
    BadChar(String, char),
    #[error("tenant id {0:?} is not allowed")]
    Reserved(String),
}

impl TenantId {
    /// The tenant that owns everything written while authentication is off and no
    /// `X-Scope-OrgID` is given (the name Mimir uses for the same purpose).
    pub const DEFAULT: &'static str = "anonymous";

    pub fn new(id: &str) -> Result<TenantId, TenantError> {
        if id.is_empty() {
            return Err(TenantError::Empty);
        }
        if id.len() > 150 {
            return Err(TenantError::TooLong);
        }
        if id == "." || id == ".." {
            return Err(TenantError::Reserved(id.to_string()));
        }
        if let Some(c) = id
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')))
        {
            return Err(TenantError::BadChar(id.to_string(), c));
        }
        Ok(TenantId(Arc::from(id)))
    }

    pub fn default_tenant() -> TenantId {
        TenantId(Arc::from(Self::DEFAULT))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({:?})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_mimir_compatible_ids_and_rejects_others() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        assert!(TenantId::new("(x)*'!").is_ok());
        assert_eq!(TenantId::new(""), Err(TenantError::Empty));
        assert_eq!(TenantId::new(".."), Err(TenantError::Reserved("..".into())));
        assert_eq!(TenantId::new("a/b"), Err(TenantError::BadChar("a/b".into(), '/')));
        assert_eq!(TenantId::new(&"x".repeat(151)), Err(TenantError::TooLong));
    }
}
