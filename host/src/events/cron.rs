//! Cron schedules of triggers: standard 5-field expressions (minute, hour, day of month,
//! month, day of week; names like `MON` and `JAN`, ranges, lists and steps), in UTC, by
//! the `croner` crate.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Longest schedule text accepted, in bytes.
pub const MAX_SCHEDULE_BYTES: usize = 200;

/// `schedule` parsed, or why it is not a 5-field cron expression.
pub fn parse(schedule: &str) -> Result<Cron, String> {
    if schedule.len() > MAX_SCHEDULE_BYTES {
        return Err(format!("a schedule is at most {MAX_SCHEDULE_BYTES} bytes"));
    }
    let fields = schedule.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "schedule {schedule:?} has {fields} fields; a cron schedule has 5: minute hour day-of-month month day-of-week (UTC)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| format!("schedule {schedule:?} is not a cron expression: {e}"))
}

/// The first tick of `cron` after `after_ms` (ms since the Unix epoch), if any.
pub fn next_tick(cron: &Cron, after_ms: i64) -> Option<i64> {
    let after = DateTime::<Utc>::from_timestamp_millis(after_ms)?;
    cron.find_next_occurrence(&after, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_five_fields_and_ticks_are_utc() {
        let every_5 = parse("*/5 * * * *").unwrap();
        // 2026-12-07 02:41:10 UTC → 02:45:00.
        let at = 1_796_611_270_000;
        assert_eq!(next_tick(&every_5, at), Some(1_796_611_500_000));
        // Exactly on a tick: the next one.
        assert_eq!(
            next_tick(&every_5, 1_796_611_500_000),
            Some(1_796_611_800_000)
        );
        let mondays = parse("30 9 * * MON").unwrap();
        let next = next_tick(&mondays, at).unwrap();
        let next = DateTime::<Utc>::from_timestamp_millis(next).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-12-07T09:30:00+00:00");
        for bad in ["* * * *", "0 * * * * *", "61 * * * *", "* * * * FOO", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
