//! What the invocation core takes and gives, without HTTP: what started an invocation
//! ([`Trigger`]) and why it gave no answer ([`Failure`], with the stable codes of SPEC §3).
//! The data plane maps these to HTTP answers (`crate::error`), the event dispatcher to
//! retries and dead letters.

use crate::storage::StorageError;
use picloud_runtime::RunError;

/// What started an invocation; recorded with it (`trigger` of an invocation record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A request on the data plane (`/fn/{app}/…` or the app's host).
    Http,
    /// An operator's call through the admin API (`picloud invoke`).
    Manual,
    /// An async route's request, run from the outbox after its 202.
    Async,
    /// A cron schedule's tick.
    Cron,
    /// A write to kv, docs or files.
    Change,
    /// A durable publish on a topic.
    Pubsub,
    /// An event that exhausted its attempts.
    DeadLetter,
    /// An inbound email.
    Email,
}

impl Trigger {
    /// The name recorded and shown (`picloud logs`, the API).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Manual => "manual",
            Trigger::Async => "async",
            Trigger::Cron => "cron",
            Trigger::Change => "change",
            Trigger::Pubsub => "pubsub",
            Trigger::DeadLetter => "dead-letter",
            Trigger::Email => "email",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable code of a failed invocation (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The app is at its running cap or daily fuel quota (429).
    QuotaExceeded,
    /// The host cannot run it now: its instance pool is full (503).
    Unavailable,
    /// The guest trapped, returned an error, or answered what cannot be sent (502).
    FunctionFailed,
    /// The wall-clock limit passed (504).
    Timeout,
    /// The fuel limit was reached (507).
    FuelExhausted,
    /// The memory limit was reached (507).
    MemoryExhausted,
    /// PiCloud's own failure (500).
    Internal,
}

impl Code {
    /// The code's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::QuotaExceeded => "quota_exceeded",
            Code::Unavailable => "unavailable",
            Code::FunctionFailed => "function_failed",
            Code::Timeout => "timeout",
            Code::FuelExhausted => "fuel_exhausted",
            Code::MemoryExhausted => "memory_exhausted",
            Code::Internal => "internal",
        }
    }

    /// The HTTP status SPEC §3 gives the code: what an HTTP caller sees, and what the
    /// invocation record keeps for every trigger, so records compare across triggers.
    pub fn status(self) -> u16 {
        match self {
            Code::QuotaExceeded => 429,
            Code::Unavailable => 503,
            Code::FunctionFailed => 502,
            Code::Timeout => 504,
            Code::FuelExhausted | Code::MemoryExhausted => 507,
            Code::Internal => 500,
        }
    }

    /// Whether trying again later may succeed without a change to the function: the
    /// host or the app was busy. (A failing function is retried by the event system
    /// anyway: its failure may depend on data that changes.)
    pub fn is_transient(self) -> bool {
        matches!(self, Code::QuotaExceeded | Code::Unavailable)
    }
}

/// Why an invocation gave no answer.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The stable code.
    pub code: Code,
    /// PiCloud's words about it, fit for the operator (an HTTP answer of the data plane
    /// replaces a function's failure by the generic message of its code).
    pub message: String,
    /// What went wrong in full (a trap, the guest's error): for the record and the
    /// operator, never a public answer.
    pub detail: Option<String>,
    /// Seconds after which trying again may succeed, when it is not the default.
    pub retry_after: Option<u64>,
    /// The invocation this failure ended (none when it was refused before it started
    /// and so has no record).
    pub invocation_id: Option<String>,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            retry_after: None,
            invocation_id: None,
        }
    }

    /// The failure of a run (a trap, a limit, the guest's error) of `invocation_id`.
    pub fn from_run(error: &RunError, invocation_id: &str) -> Self {
        let code = match error {
            RunError::FuelExhausted { .. } => Code::FuelExhausted,
            RunError::MemoryExhausted { .. } => Code::MemoryExhausted,
            RunError::Timeout { .. } => Code::Timeout,
            RunError::Failed(_) => Code::FunctionFailed,
            RunError::Internal(_) => Code::Internal,
        };
        let detail = match error {
            // PiCloud's own failure: the server log only (SPEC §3).
            RunError::Internal(detail) => {
                tracing::error!(invocation_id, error = %detail, "invocation failed inside PiCloud");
                None
            }
            other => Some(other.to_string()),
        };
        Self {
            detail,
            invocation_id: Some(invocation_id.to_owned()),
            ..Self::new(code, "the invocation failed")
        }
    }

    /// The guest answered what its caller cannot be given (`reason`): `function_failed`.
    pub fn unsendable(reason: impl Into<String>) -> Self {
        Self::new(
            Code::FunctionFailed,
            "the function's response cannot be sent",
        )
        .with_detail(reason)
    }

    /// This failure with `detail`.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// This failure with a retry time.
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// This failure of invocation `id`.
    #[must_use]
    pub fn with_invocation(mut self, id: &str) -> Self {
        self.invocation_id = Some(id.to_owned());
        self
    }

    /// What the record keeps as the failure's message: the detail when there is one.
    pub fn recorded_message(&self) -> String {
        self.detail.clone().unwrap_or_else(|| self.message.clone())
    }
}

impl Failure {
    /// PiCloud's own failure: `detail` goes to the server log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(Code::Internal, "internal error; see the server log")
    }
}

/// Loading an app or function failed: the database is unavailable (the caller may retry),
/// or what is stored is not what it must be.
impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Database(_) | StorageError::Io(_) => {
                tracing::error!(%error, "loading an app or function failed");
                Self::new(Code::Unavailable, "the database is unavailable")
            }
            StorageError::Deadline | StorageError::Contention(_) => {
                Self::new(Code::Unavailable, "the database is busy; retry")
            }
            StorageError::Conflict | StorageError::Quota(_) | StorageError::Corrupt(_) => {
                Self::internal(error)
            }
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.recorded_message())
    }
}

/// An answer the core can record: its status (an HTTP status for every trigger, as the
/// guest's response carries one).
pub trait Answer {
    /// The status recorded.
    fn status(&self) -> u16;
}

impl Answer for picloud_runtime::Response {
    fn status(&self) -> u16 {
        self.status
    }
}
