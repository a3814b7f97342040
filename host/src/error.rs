//! The one error type of the HTTP surface (admin API and data plane):
//! `{"error": {"code": "…", "message": "…", "invocation_id": "…"}}` with a stable code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::invoke::Failure;
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
    /// Human-readable message, the one the answer's body carries.
    pub message: String,
    /// What went wrong in full, when `message` is kept generic: for the invocation
    /// record, the server log and the admin API, never for a public answer.
    pub detail: Option<String>,
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
            detail: None,
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
    /// 408 `request_timeout`: the request body did not arrive in time.
    pub fn request_timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
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

    /// This error with `Retry-After: secs` (on a 429 or 503).
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// This error with `detail` kept for the record and the admin API.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// This error as a public answer (the data plane, SPEC §3): the generic message of
    /// its code, for the codes that have one. What it said stays in `detail`.
    #[must_use]
    pub fn public(mut self) -> Self {
        if let Some(generic) = generic_message(self.code) {
            let said = std::mem::replace(&mut self.message, generic.to_owned());
            self.detail.get_or_insert(said);
        }
        self
    }

    /// This error for the operator (the admin API's invoke): the detail as the message.
    #[must_use]
    pub fn detailed(mut self) -> Self {
        if let Some(detail) = self.detail.take() {
            self.message = detail;
        }
        self
    }

    /// This error tagged with an invocation id.
    #[must_use]
    pub fn with_invocation(mut self, id: &str) -> Self {
        self.invocation_id = Some(id.to_owned());
        self
    }
}

/// The public message of an error code whose messages may tell more than a client of
/// the data plane should learn: a function's failure (its trap, its error, a host call's
/// error chain), PiCloud's internals, which apps and routes exist. `None` for codes whose
/// messages are PiCloud's own words about the client's request or the app's limits
/// (`bad_request`, `payload_too_large`, `request_timeout`, `quota_exceeded`,
/// `unavailable`): those stay, as they tell the client what to do.
fn generic_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "no_route" => "no function answers this request",
        "function_failed" => "the function failed; its invocation log has the details",
        "timeout" => "the function did not finish in time",
        "fuel_exhausted" => "the function ran out of fuel",
        "memory_exhausted" => "the function ran out of memory",
        "internal" => "internal error; see the server log",
        _ => return None,
    })
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        let status = StatusCode::from_u16(failure.code.status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            code: failure.code.as_str(),
            message: failure.message,
            detail: failure.detail,
            invocation_id: failure.invocation_id,
            retry_after: failure.retry_after,
        }
    }
}

impl From<crate::control::ControlError> for ApiError {
    fn from(e: crate::control::ControlError) -> Self {
        use crate::control::ControlError;
        match e {
            ControlError::Invalid(m) => ApiError::bad_request(m),
            ControlError::NotFound(m) => ApiError::not_found(m),
            ControlError::Conflict(m) => ApiError::conflict(m),
            ControlError::Storage(e) => e.into(),
            ControlError::Failure(f) => f.into(),
        }
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
