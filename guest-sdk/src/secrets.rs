//! Encrypted secrets of the app (API keys, tokens): string values of at most 64 KiB,
//! stored encrypted by the host and visible to this app's functions only. Values never
//! appear in logs, invocation records or the admin API's listing.
//!
//! ```no_run
//! let key = picloud_sdk::secrets::get("stripe_key")?
//!     .ok_or_else(|| picloud_sdk::Error::Invalid("stripe_key is not set".into()))?;
//! picloud_sdk::secrets::set("webhook_token", "t0k3n")?;
//! let names: Vec<String> = picloud_sdk::secrets::list()?;
//! # let _ = (key, names);
//! # Ok::<(), picloud_sdk::Error>(())
//! ```

use crate::Result;
use crate::wit::picloud::sdk::secrets as raw;

/// The value of secret `name`, `None` when it is not set.
pub fn get(name: &str) -> Result<Option<String>> {
    raw::get(name)
}

/// Sets secret `name` to `value` (at most 64 KiB), replacing any earlier value.
pub fn set(name: &str, value: &str) -> Result<()> {
    raw::set(name, value)
}

/// Removes secret `name`; `true` when it existed.
pub fn delete(name: &str) -> Result<bool> {
    raw::delete(name)
}

/// The names of the app's secrets, in name order (never their values).
pub fn list() -> Result<Vec<String>> {
    raw::list()
}
