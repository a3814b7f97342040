//! `time`: the clock and date formatting, in milliseconds since the Unix epoch (UTC).
//!
//! ```rhai
//! let now = time::now();                            // e.g. 1767225600000
//! time::format(0)                                   // "1970-01-01T00:00:00.000Z" (RFC 3339)
//! time::format(0, "%Y-%m-%d %H:%M")                 // "1970-01-01 00:00" (strftime)
//! time::parse("2026-01-01T00:00:00Z")               // 1767225600000 (RFC 3339, any offset)
//! time::parse("01/02/2026 10:30", "%m/%d/%Y %H:%M") // as UTC; a date alone is midnight
//! ```

use crate::host::Host;
use crate::sdk::RhaiResultOf;
use crate::sdk::{add_fn, error, int_of};
use chrono::format::StrftimeItems;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rhai::{Dynamic, INT, Module};
use std::rc::Rc;

pub(super) fn module(host: &Rc<dyn Host>) -> Module {
    let mut module = Module::new();
    let h = host.clone();
    add_fn(&mut module, "now", move || -> RhaiResultOf<Dynamic> {
        Ok(int_of(h.now_ms()))
    });
    add_fn(&mut module, "format", |ms: INT| {
        Ok(datetime("time::format", ms)?.to_rfc3339_opts(SecondsFormat::Millis, true))
    });
    add_fn(&mut module, "format", |ms: INT, format: &str| {
        let items = StrftimeItems::new(format)
            .parse()
            .map_err(|_| error(format!("time::format: invalid format `{format}`")))?;
        Ok(datetime("time::format", ms)?
            .format_with_items(items.iter())
            .to_string())
    });
    add_fn(&mut module, "parse", |text: &str| -> RhaiResultOf<INT> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                error(format!(
                    "time::parse: `{text}` is not an RFC 3339 time: {e}"
                ))
            })
    });
    add_fn(
        &mut module,
        "parse",
        |text: &str, format: &str| -> RhaiResultOf<INT> {
            if let Ok(t) = DateTime::parse_from_str(text, format) {
                return Ok(t.timestamp_millis());
            }
            if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(t.and_utc().timestamp_millis());
            }
            NaiveDate::parse_from_str(text, format)
                .map(|d| {
                    d.and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_millis()
                })
                .map_err(|e| {
                    error(format!(
                        "time::parse: `{text}` does not match `{format}`: {e}"
                    ))
                })
        },
    );
    module
}

fn datetime(function: &str, ms: INT) -> RhaiResultOf<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| error(format!("{function}: {ms} is out of the supported range")))
}
