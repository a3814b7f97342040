//! About this invocation: app, function, invocation id, trigger, fuel left, time.

use crate::wit::picloud::sdk::runtime as raw;
pub use raw::InvocationInfo;

/// App, function, version, invocation id, trigger and trigger event.
pub fn info() -> InvocationInfo {
    raw::info()
}

/// Fuel left before the invocation is stopped with `fuel_exhausted`.
pub fn remaining_fuel() -> u64 {
    raw::remaining_fuel()
}

/// Milliseconds since the Unix epoch (UTC).
pub fn now_ms() -> u64 {
    raw::now()
}
