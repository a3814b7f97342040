//! Daily fuel quotas (SPEC §3): once an app's fuel of the current UTC day reaches its
//! `daily_fuel` limit, new invocations are refused with `quota_exceeded` until midnight
//! UTC.
//!
//! The count itself is the `usage_daily` table, kept exactly by the
//! [`Recorder`](crate::recorder::Recorder) with every batch of invocation records (the
//! usage of records dropped under load included), so it survives restarts and every node
//! of a cluster adds to the same rows. This module keeps, per app with a quota, the
//! day's fuel as this node knows it:
//! - *settled*: what the database held when last read (at most [`REFRESH`] ago, which is
//!   how other nodes' usage reaches this one), plus what this node's recorder stored
//!   since;
//! - *pending*: fuel of invocations that ended on this node and are not stored yet.
//!
//! An invocation is admitted while settled + pending is below the quota. Invocations
//! already running when the quota is reached finish (a quota bounds starting work), so
//! a day may end slightly above it: by at most what the invocations in flight at that
//! moment use.
//!
//! Apps without a quota cost nothing here: no lock, no lookup.

use crate::storage::Db;
use crate::storage::usage::{UsageByDay, utc_day};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How stale this node's view of an app's day may get before the next admission reads
/// the database again (how soon usage of other nodes counts here).
pub const REFRESH: Duration = Duration::from_secs(2);
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The host's clock for what is counted per day: the system clock, moved by an offset
/// that tests set to cross midnight without waiting for it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        crate::storage::now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(by, Ordering::Relaxed);
    }
}

/// Seconds from `now_ms` to the next midnight UTC (at least 1).
pub fn seconds_to_midnight(now_ms: i64) -> u64 {
    let left = u64::try_from(DAY_MS - now_ms.rem_euclid(DAY_MS)).unwrap_or(1);
    left.div_ceil(1000).max(1)
}

/// One app's day as this node knows it.
#[derive(Debug, Default)]
struct AppDay {
    day: String,
    settled: u64,
    pending: u64,
    /// When `settled` was last read from the database (clock ms); 0: never.
    read_at_ms: i64,
}

impl AppDay {
    /// This entry moved on to `day` when that is a later day (never back: an invocation
    /// that started before midnight and ended after it counts for its own day).
    fn roll(&mut self, day: &str) {
        if day > self.day.as_str() {
            *self = AppDay {
                day: day.to_owned(),
                ..AppDay::default()
            };
        }
    }
}

/// Refusal of an invocation: the day's quota is used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaReached {
    /// The quota.
    pub quota: u64,
    /// Seconds until midnight UTC, when the next day's quota starts.
    pub retry_after_secs: u64,
}

/// The daily fuel quotas of every app this node runs.
pub struct FuelQuotas {
    db: Db,
    clock: Clock,
    apps: Mutex<HashMap<String, AppDay>>,
}

fn lock(m: &Mutex<HashMap<String, AppDay>>) -> std::sync::MutexGuard<'_, HashMap<String, AppDay>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FuelQuotas {
    /// Quotas counted by `clock`, with the day's usage read from `db`.
    pub fn new(db: Db, clock: Clock) -> Self {
        Self {
            db,
            clock,
            apps: Mutex::default(),
        }
    }

    /// The clock days are counted by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Whether app `app_id`, whose quota is `quota`, may start an invocation now.
    pub async fn admit(&self, app_id: &str, quota: Option<u64>) -> Result<(), QuotaReached> {
        let Some(quota) = quota else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let day = utc_day(now);
        let stale = {
            let mut apps = lock(&self.apps);
            let entry = apps.entry(app_id.to_owned()).or_default();
            entry.roll(&day);
            now - entry.read_at_ms >= REFRESH.as_millis() as i64
        };
        if stale {
            match self.db.usage_daily(app_id, &day).await {
                Ok(rows) => {
                    let stored = rows
                        .iter()
                        .find(|r| r.day == day)
                        .map_or(0, |r| u64::try_from(r.fuel_used).unwrap_or(0));
                    let mut apps = lock(&self.apps);
                    let entry = apps.entry(app_id.to_owned()).or_default();
                    entry.roll(&day);
                    // The day's usage only grows: the larger of what the database
                    // held and what this node knows stored cannot overcount.
                    entry.settled = entry.settled.max(stored);
                    entry.read_at_ms = now;
                }
                Err(e) => {
                    // Admission goes on with what this node knows; the next one retries.
                    tracing::warn!(error = %e, app_id, "could not read the day's usage for the fuel quota");
                }
            }
        }
        let apps = lock(&self.apps);
        let used = apps
            .get(app_id)
            .map_or(0, |e| e.settled.saturating_add(e.pending));
        if used >= quota {
            return Err(QuotaReached {
                quota,
                retry_after_secs: seconds_to_midnight(now),
            });
        }
        Ok(())
    }

    /// An invocation of `app_id` that started at `started_ms` (clock ms) used `fuel`; its
    /// record is queued. Only apps with a quota are tracked.
    pub fn used(&self, app_id: &str, quota: Option<u64>, started_ms: i64, fuel: u64) {
        if quota.is_none() {
            return;
        }
        let day = utc_day(started_ms);
        let mut apps = lock(&self.apps);
        let entry = apps.entry(app_id.to_owned()).or_default();
        entry.roll(&day);
        if entry.day == day {
            entry.pending = entry.pending.saturating_add(fuel);
        }
    }

    /// The recorder stored `usage` (fuel by app and day): it moves from pending to
    /// settled.
    pub fn stored(&self, usage: &UsageByDay) {
        let mut apps = lock(&self.apps);
        if apps.is_empty() {
            return;
        }
        for ((app_id, day), delta) in usage {
            let Some(entry) = apps.get_mut(app_id) else {
                continue;
            };
            if &entry.day != day {
                continue;
            }
            let fuel = u64::try_from(delta.fuel_used).unwrap_or(0);
            entry.pending = entry.pending.saturating_sub(fuel);
            entry.settled = entry.settled.saturating_add(fuel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_counts_the_seconds_to_midnight_utc() {
        let midnight = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert_eq!(seconds_to_midnight(midnight), 86_400);
        assert_eq!(seconds_to_midnight(midnight + 1), 86_400);
        assert_eq!(seconds_to_midnight(midnight - 1), 1);
        assert_eq!(seconds_to_midnight(midnight - 90_000), 90);
    }

    #[test]
    fn a_clock_moved_forward_moves_every_clone() {
        let clock = Clock::default();
        let copy = clock.clone();
        let before = copy.now_ms();
        clock.advance(Duration::from_secs(86_400));
        assert!(copy.now_ms() - before >= 86_400_000);
    }
}
