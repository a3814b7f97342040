//! Typed failures: why an artifact was refused, and why an invocation ended early.

use thiserror::Error;

/// Why an invocation did not produce a response. One variant per stable error code of
/// SPEC §3; the HTTP layer maps them to status codes in one table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RunError {
    /// The fuel budget ran out (`fuel_exhausted`).
    #[error("the function used all of its fuel ({budget} units)")]
    FuelExhausted {
        /// The budget that ran out.
        budget: u64,
    },
    /// The wall-clock budget ran out (`timeout`).
    #[error("the function ran past its time limit of {limit_ms} ms")]
    Timeout {
        /// The limit in milliseconds.
        limit_ms: u64,
    },
    /// The instance asked for more linear memory than allowed (`memory_exhausted`).
    #[error("the function asked for more than its memory limit of {limit_bytes} bytes")]
    MemoryExhausted {
        /// The limit in bytes.
        limit_bytes: u64,
    },
    /// The guest trapped, panicked or returned an error (`function_failed`).
    #[error("{0}")]
    Failed(String),
    /// PiCloud itself failed (`internal`); the detail is for the server log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// The stable error code of SPEC §3.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::FuelExhausted { .. } => "fuel_exhausted",
            RunError::Timeout { .. } => "timeout",
            RunError::MemoryExhausted { .. } => "memory_exhausted",
            RunError::Failed(_) => "function_failed",
            RunError::Internal(_) => "internal",
        }
    }
}

/// Why an uploaded artifact cannot be deployed. The message names what was found.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file: {0}")]
    NotWasm(String),
    /// WebAssembly of a kind PiCloud does not run (yet), e.g. a core module.
    #[error("unsupported artifact: {0}")]
    Unsupported(String),
    /// A component that fails validation or imports/exports the wrong things.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The compile cache or the engine failed.
    #[error("internal error while compiling: {0}")]
    Internal(String),
}
