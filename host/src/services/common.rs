//! What every service shares: the mapping of storage failures to guest errors, the
//! checks of names, keys and lengths a guest sends, paging, and the log of outbound
//! calls. The admin API uses the
//! same checks and paging (its errors wrap the same messages).

use crate::storage::StorageError;
use picloud_runtime::{GuestError, LogLine};
use std::sync::{Arc, Mutex};

/// Where an invocation's outbound calls (http, email) leave their log lines; the invoker
/// adds them to the invocation's log when it ends.
pub type CallLog = Arc<Mutex<Vec<LogLine>>>;

/// Default page size of every `list`/`find` (SDK and admin API).
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest page size of every `list`/`find`.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Longest collection or secret name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest key, in bytes: long enough for composite keys, short enough to index well.
pub const MAX_KEY_BYTES: usize = 512;

/// The one place where storage failures become guest-visible errors.
pub fn guest_error(e: StorageError) -> GuestError {
    match e {
        StorageError::Conflict => GuestError::Invalid("conflicting write".into()),
        StorageError::Deadline | StorageError::Quota(_) => GuestError::Limit(e.to_string()),
        StorageError::Contention(what) => {
            GuestError::Unavailable(format!("too much contention on {what}, retry"))
        }
        StorageError::Database(e) => {
            tracing::error!(error = %e, "storage failed");
            GuestError::Unavailable("storage is unavailable".into())
        }
        StorageError::Io(e) => {
            tracing::error!(error = %e, "file store failed");
            GuestError::Unavailable("the file store is unavailable".into())
        }
        StorageError::Corrupt(what) => {
            tracing::error!(%what, "stored data is corrupt");
            GuestError::Internal("stored data is corrupt".into())
        }
    }
}

/// A name (`what`: "collection name", "secret name") of 1–[`MAX_NAME_BYTES`] characters
/// of `A-Z a-z 0-9 _ - .`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} must be 1-{MAX_NAME_BYTES} characters of A-Z a-z 0-9 _ - ."
        ))
    }
}

/// A collection name (see [`check_name`]), as a guest error.
pub fn check_collection(collection: &str) -> Result<(), GuestError> {
    check_name("collection name", collection).map_err(GuestError::Invalid)
}

/// Refuses a guest string longer than `max` bytes before the host works with it
/// (`what` names it in the error).
pub fn check_len(what: &str, value: &str, max: usize) -> Result<(), GuestError> {
    if value.len() > max {
        return Err(GuestError::Invalid(format!(
            "{what} is at most {max} bytes, got {}",
            value.len()
        )));
    }
    Ok(())
}

/// A kv or docs key: 1–[`MAX_KEY_BYTES`] bytes without NUL.
pub fn check_key(key: &str) -> Result<(), GuestError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(GuestError::Invalid(format!(
            "key must be 1-{MAX_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(GuestError::Invalid(
            "key must not contain NUL characters".into(),
        ));
    }
    Ok(())
}

/// The page size asked for (default [`DEFAULT_PAGE_LIMIT`]), or why it is refused.
pub fn page_limit(limit: Option<u32>) -> Result<u32, String> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if (1..=MAX_PAGE_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(format!("limit must be 1-{MAX_PAGE_LIMIT}, got {limit}"))
    }
}

/// Rows read with `limit + 1` cut to one page of `limit`, and the cursor of the next
/// page (the last row's key, `cursor_of`) when there is one.
pub fn page<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    (rows, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_follow() {
        let (rows, cursor) = page(vec![1, 2, 3], 2, |n: &i32| n.to_string());
        assert_eq!((rows, cursor), (vec![1, 2], Some("2".to_owned())));
        let (rows, cursor) = page(vec![1, 2], 2, |n: &i32| n.to_string());
        assert_eq!((rows, cursor), (vec![1, 2], None));
    }

    #[test]
    fn limits_and_names_are_checked() {
        assert_eq!(page_limit(None), Ok(DEFAULT_PAGE_LIMIT));
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(MAX_PAGE_LIMIT + 1)).is_err());
        assert!(check_name("secret name", "stripe_key.v2-live").is_ok());
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(MAX_NAME_BYTES + 1)] {
            assert!(check_name("secret name", bad).is_err(), "{bad:?}");
        }
    }
}
