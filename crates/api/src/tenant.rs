//! The tenant of a request: `X-Scope-OrgID`, or the default tenant when none is given (while
//! authentication is off, every request without the header belongs to the default tenant).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use osprey_model::TenantId;

use crate::response::ApiError;

pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// Extracts the request's tenant.
pub struct RequestTenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for RequestTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(TENANT_HEADER) {
            None => Ok(RequestTenant(TenantId::default_tenant())),
            Some(v) => {
                let text =
                    v.to_str().map_err(|_| ApiError::bad_data(format!("{TENANT_HEADER} header is not valid text")))?;
                TenantId::new(text.trim())
                    .map(RequestTenant)
                    .map_err(|e| ApiError::bad_data(format!("invalid {TENANT_HEADER} header: {e}")))
            }
        }
    }
}
