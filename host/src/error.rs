//! The one error type of the HTTP surface (admin API and data plane):
//! `{"error": {"code": "…", "message": "…", "invocation_id": "…"}}` with a stable code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use picloud_runtime::RunError;
use serde_json::json;

use crate::storage::StorageError;

/// Seconds a client should wait before retrying a 429 or 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An error answer with a stable code.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The invocation this error belongs to, on the data plane.
    pub invocation_id: Option<String>,
    /// Seconds for `Retry-After` on a 429 or 503, when not [`RETRY_AFTER_SECS`].
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            invocation_id: None,
            retry_after: None,
        }
    }
    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 404 `no_route` (data plane).
    pub fn no_route(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "no_route", message)
    }
    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }
    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }
    /// 429 `quota_exceeded`.
    pub fn quota_exceeded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
    }
    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// 500 `internal`: the detail goes to the server log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The data-plane answer for a failed invocation (SPEC §3 table).
    pub fn from_run(error: &RunError, invocation_id: &str) -> Self {
        let status = match error {
            RunError::FuelExhausted { .. } | RunError::MemoryExhausted { .. } => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            RunError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            RunError::Failed(_) => StatusCode::BAD_GATEWAY,
            RunError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match error {
            RunError::Internal(detail) => {
                tracing::error!(invocation_id, error = %detail, "invocation failed inside PiCloud");
                "internal error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        Self {
            status,
            code: error.code(),
            message,
            invocation_id: Some(invocation_id.to_owned()),
            retry_after: None,
        }
    }

    /// This error with `Retry-After: secs` (on a 429 or 503).
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// This error tagged with an invocation id.
    #[must_use]
    pub fn with_invocation(mut self, id: &str) -> Self {
        self.invocation_id = Some(id.to_owned());
        self
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict => ApiError::conflict("it exists already"),
            StorageError::Deadline => ApiError::unavailable("the database did not answer in time"),
            StorageError::Quota(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            StorageError::Contention(what) => {
                ApiError::unavailable(format!("too much contention on {what}; retry"))
            }
            StorageError::Database(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::unavailable("the database is unavailable")
            }
            StorageError::Io(e) => {
                tracing::error!(error = %e, "file store error");
                ApiError::unavailable("the file store is unavailable")
            }
            StorageError::Corrupt(what) => ApiError::internal(what),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(id) = &self.invocation_id {
            error["invocation_id"] = json!(id);
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            let secs = self.retry_after.unwrap_or(u64::from(RETRY_AFTER_SECS));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Result of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
