//! Log lines of this invocation, shown by `picloud logs` and the dashboard.
//!
//! ```no_run
//! picloud_sdk::log::info("order placed");
//! picloud_sdk::log::with_fields(picloud_sdk::log::Level::Warn, "slow", &serde_json::json!({"ms": 812}));
//! ```

use crate::wit::picloud::sdk::log as raw;
pub use raw::Level;
use serde::Serialize;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    raw::log(level, message, None);
}

/// Logs `message` at `level` with structured `fields` (serialised as JSON).
pub fn with_fields<T: Serialize + ?Sized>(level: Level, message: &str, fields: &T) {
    let fields = serde_json::to_string(fields).ok();
    raw::log(level, message, fields.as_deref());
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
