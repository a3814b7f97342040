//! Per-invocation limits: host defaults and per-app overrides.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Fuel per invocation. Fuel is wasmtime's deterministic CPU meter (roughly one unit per
/// wasm instruction); a billion units is about a second of pure compute on this class of
/// machine, far beyond what a typical handler (a few million units) needs.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Wall-clock budget of one invocation (SPEC §3).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Linear memory per instance (SPEC §3).
pub const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;

/// The limits one invocation runs under. Every field is a hard limit: exceeding it ends
/// the invocation with the matching [`RunError`](crate::RunError).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel budget; running out ends the invocation with `fuel_exhausted`.
    pub fuel: u64,
    /// Wall-clock budget in milliseconds; past it the invocation ends with `timeout`.
    pub timeout_ms: u64,
    /// Bytes of linear memory the instance may hold; asking for more ends it with
    /// `memory_exhausted`.
    pub memory_bytes: u64,
    /// Fuel all invocations of the app may use per UTC day; `None`: unlimited (the
    /// default, SPEC §3). Enforced by the host before an invocation starts (once the
    /// day's fuel reaches it, new invocations are refused with `quota_exceeded`), not
    /// by the runtime.
    #[serde(default)]
    pub daily_fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: DEFAULT_FUEL,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            daily_fuel: None,
        }
    }
}

impl Limits {
    /// The wall-clock budget as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// These limits with the fields that `overrides` sets replaced.
    #[must_use]
    pub fn with(self, overrides: &LimitOverrides) -> Self {
        Self {
            fuel: overrides.fuel.unwrap_or(self.fuel),
            timeout_ms: overrides.timeout_ms.unwrap_or(self.timeout_ms),
            memory_bytes: overrides.memory_bytes.unwrap_or(self.memory_bytes),
            daily_fuel: overrides.daily_fuel.or(self.daily_fuel),
        }
    }
}

/// Per-app overrides of the host's [`Limits`]; `None` means "the host default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Fuel per invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock milliseconds per invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Linear-memory bytes per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Fuel per UTC day, all invocations together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_fuel: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let limits = Limits::default().with(&LimitOverrides {
            fuel: Some(5),
            ..Default::default()
        });
        assert_eq!(
            limits,
            Limits {
                fuel: 5,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn unknown_override_fields_are_refused() {
        let err = serde_json::from_str::<LimitOverrides>(r#"{"fuell": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `fuell`"), "{err}");
    }
}
