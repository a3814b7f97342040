//! Files of the app, by path: blobs with a content type.
//!
//! Paths are relative (`reports/2026/q3.csv`); `..` and absolute paths are refused, and
//! `a//b` or `./a` are normalised. A write replaces the file at once: readers see the old
//! content or the new, never a part.
//!
//! ```no_run
//! use picloud_sdk::files;
//!
//! let stat = files::put("notes/hello.txt", b"Hello!", "text/plain")?;
//! assert_eq!(stat.size, 6);
//! if let Some((stat, bytes)) = files::get("notes/hello.txt")? {
//!     assert_eq!(stat.content_type, "text/plain");
//!     assert_eq!(bytes, b"Hello!");
//! }
//! let page = files::list("notes/", None, None)?;
//! for file in page.files {
//!     println!("{} {} bytes", file.path, file.size);
//! }
//! files::delete("notes/hello.txt")?;
//! # Ok::<(), picloud_sdk::Error>(())
//! ```

use crate::Result;
use crate::wit::picloud::sdk::files as raw;

/// A file's metadata: path, size, content type, sha256 (hex) and modification time
/// (milliseconds since the Unix epoch).
pub use raw::Stat;

/// One page of [`list`]: files in path order and the cursor of the next page.
pub use raw::Page;

/// Stores `content` at `path`, replacing any file there; returns its metadata.
pub fn put(path: &str, content: &[u8], content_type: &str) -> Result<Stat> {
    raw::put(path, content, content_type)
}

/// The metadata and content of `path`.
pub fn get(path: &str) -> Result<Option<(Stat, Vec<u8>)>> {
    raw::get(path)
}

/// The metadata of `path`.
pub fn head(path: &str) -> Result<Option<Stat>> {
    raw::head(path)
}

/// Removes `path`; `true` when it existed.
pub fn delete(path: &str) -> Result<bool> {
    raw::delete(path)
}

/// Files whose path starts with `prefix`, in path order, `limit` at a time (default
/// 100, at most 1000), continuing after `cursor`.
pub fn list(prefix: &str, cursor: Option<&str>, limit: Option<u32>) -> Result<Page> {
    raw::list(prefix, cursor, limit)
}
