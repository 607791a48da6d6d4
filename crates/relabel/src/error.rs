//! Why a relabel config is rejected. Messages match Prometheus's, so users can search them.

use crate::Action;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    #[error("unknown relabel action {0:?}; use one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase")]
    UnknownAction(String),
    #[error("invalid relabel regex {regex:?}: {reason}")]
    BadRegex { regex: String, reason: String },
    #[error("{0:?} is not a valid label name in source_labels")]
    InvalidSourceLabel(String),
    #[error("relabel configuration for hashmod requires non-zero modulus")]
    ZeroModulus,
    #[error("relabel configuration for {0} action requires 'target_label' value")]
    MissingTargetLabel(Action),
    #[error("{target:?} is invalid 'target_label' for {action} action")]
    InvalidTargetLabel { target: String, action: Action },
    #[error("'replacement' can not be set for {0} action")]
    ReplacementNotAllowed(Action),
    #[error("{replacement:?} is invalid 'replacement' for {action} action")]
    InvalidReplacement { replacement: String, action: Action },
    #[error("{0} action requires only 'source_labels' and `target_label`, and no other fields")]
    OnlySourceAndTarget(Action),
    #[error("{0} action requires only 'regex', and no other fields")]
    OnlyRegex(Action),
}
