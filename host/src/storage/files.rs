//! Files: metadata rows in SQL, content as immutable blobs.
//!
//! A put writes a new blob under a fresh id and then, in one transaction, points the
//! path's row at it (and records the change event). A reader only ever follows a
//! committed row to a complete blob, so a partially written file is never visible:
//! - on disk (`BlobStore::Disk`, the single-node default) the blob is written to
//!   `tmp/`, fsynced, renamed into `{app_id}/{blob_id}` and the directory fsynced before
//!   the transaction starts; the blob it replaced is removed after the commit;
//! - in the database (`BlobStore::Database`, the default with PostgreSQL so several
//!   nodes share files) the blob row is inserted in the same transaction.
//!
//! Blob names are ids, never paths, so no path a guest writes can reach outside its
//! app's directory. A crash between the rename and the commit leaves an unreferenced
//! blob, which [`Db::sweep_orphan_blobs`] removes later, with old temp files.

use super::changes::{self, Change, Source};
use super::kv::prefix_upper_bound;
use super::{Db, Dialect, StorageError, StorageResult, new_id, now_ms};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use unicode_normalization::UnicodeNormalization;

/// Longest file path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest path segment, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest path given, before normalisation (which drops `.` and empty segments and
/// may shorten it): past this it is refused before the host copies it.
pub const MAX_RAW_PATH_BYTES: usize = 4 * MAX_PATH_BYTES;
/// Default cap of one file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Default cap of all files of one app.
pub const DEFAULT_MAX_APP_BYTES: u64 = 1024 * 1024 * 1024;

/// Where file content lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStore {
    /// Blobs in a directory (local, or shared by several nodes).
    Disk(PathBuf),
    /// Blobs in the `file_blobs` table.
    Database,
}

/// The file store's configuration, part of [`Db`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// Where content lives.
    pub blobs: BlobStore,
    /// Largest file.
    pub max_file_bytes: u64,
    /// Largest total of one app's files.
    pub max_app_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            blobs: BlobStore::Database,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_app_bytes: DEFAULT_MAX_APP_BYTES,
        }
    }
}

/// A file's metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileStat {
    /// The normalised path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The content type given at the put.
    pub content_type: String,
    /// Hex sha256 of the content.
    pub sha256: String,
    /// Milliseconds since the Unix epoch.
    pub modified: i64,
}

/// Why a files call failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The file is larger than the per-file cap.
    #[error("the file is {size} bytes; the limit per file is {max} bytes")]
    FileTooLarge {
        /// The file's size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// The app's files would exceed the per-app cap.
    #[error("the app's files would exceed their limit of {max} bytes")]
    AppFull {
        /// The cap.
        max: u64,
    },
    /// The database or the disk failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for FilesError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// The normal form of a file path, or why it is refused: NFC; `.` segments and empty
/// segments (`a//b`, a trailing `/`) dropped; absolute paths, `..`, backslashes and
/// control characters refused.
pub fn normalize_path(path: &str) -> Result<String, String> {
    if path.len() > MAX_RAW_PATH_BYTES {
        return Err(format!(
            "file path is {} bytes; the limit is {MAX_PATH_BYTES}",
            path.len()
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "file path {path:?} is absolute; paths are relative to the app's files"
        ));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!(
            "file path {path:?} contains a control character or a backslash"
        ));
    }
    let nfc: String = path.nfc().collect();
    let mut segments = Vec::new();
    for segment in nfc.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(format!("file path {path:?} contains '..'")),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err(format!(
                    "file path {path:?} has a segment longer than {MAX_SEGMENT_BYTES} bytes"
                ));
            }
            s => segments.push(s),
        }
    }
    let normal = segments.join("/");
    if normal.is_empty() {
        return Err("file path is empty".into());
    }
    if normal.len() > MAX_PATH_BYTES {
        return Err(format!(
            "file path is {} bytes; the limit is {MAX_PATH_BYTES}",
            normal.len()
        ));
    }
    Ok(normal)
}

fn stat_of(row: &sqlx::any::AnyRow) -> Result<FileStat, sqlx::Error> {
    let size: i64 = row.try_get("size")?;
    Ok(FileStat {
        path: row.try_get("path")?,
        size: u64::try_from(size).unwrap_or(0),
        content_type: row.try_get("content_type")?,
        sha256: row.try_get("sha256")?,
        modified: row.try_get("modified")?,
    })
}

/// Creates `dir` (and its parents) readable by the server's user only (unix: 0700).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `content` durably as blob `blob_id` of `app_id` under `root`; directories and
/// blobs are readable by the server's user only (unix: 0700 and 0600).
fn write_blob(root: &Path, app_id: &str, blob_id: &str, content: &[u8]) -> std::io::Result<()> {
    let tmp_dir = root.join("tmp");
    let app_dir = root.join(app_id);
    create_private_dir(&tmp_dir)?;
    create_private_dir(&app_dir)?;
    let tmp = tmp_dir.join(format!("{blob_id}.tmp"));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&tmp, app_dir.join(blob_id))?;
        std::fs::File::open(&app_dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn blob_path(root: &Path, app_id: &str, blob_id: &str) -> PathBuf {
    root.join(app_id).join(blob_id)
}

async fn remove_blob(root: PathBuf, app_id: String, blob_id: String) {
    let path = blob_path(&root, &app_id, &blob_id);
    if let Err(e) = tokio::fs::remove_file(&path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "removing a replaced blob failed; the sweeper will retry");
    }
}

impl Db {
    /// Uses `config` for files (the blob store and the caps).
    pub fn with_files(mut self, config: FilesConfig) -> Self {
        self.files = Arc::new(config);
        self
    }

    /// The file store's configuration.
    pub fn files_config(&self) -> &FilesConfig {
        &self.files
    }

    /// Stores `content` at `path` (normalised by the caller), replacing any file there.
    pub async fn files_put(
        &self,
        app_id: &str,
        path: &str,
        content: &[u8],
        content_type: &str,
    ) -> Result<FileStat, FilesError> {
        let config = Arc::clone(&self.files);
        let size = content.len() as u64;
        if size > config.max_file_bytes {
            return Err(FilesError::FileTooLarge {
                size,
                max: config.max_file_bytes,
            });
        }
        let stat = FileStat {
            path: path.to_owned(),
            size,
            content_type: content_type.to_owned(),
            sha256: hex::encode(Sha256::digest(content)),
            modified: now_ms(),
        };
        let blob_id = new_id();
        if let BlobStore::Disk(root) = &config.blobs {
            let (root, app, blob, bytes) = (
                root.clone(),
                app_id.to_owned(),
                blob_id.clone(),
                content.to_vec(),
            );
            tokio::task::spawn_blocking(move || write_blob(&root, &app, &blob, &bytes))
                .await
                .map_err(|e| StorageError::Io(std::io::Error::other(e)))?
                .map_err(StorageError::Io)?;
        }
        let committed = self.files_put_row(app_id, &stat, &blob_id, content).await;
        match (&config.blobs, committed) {
            (BlobStore::Disk(root), Ok(replaced)) => {
                if let Some(old) = replaced {
                    remove_blob(root.clone(), app_id.to_owned(), old).await;
                }
                Ok(stat)
            }
            (BlobStore::Disk(root), Err(e)) => {
                remove_blob(root.clone(), app_id.to_owned(), blob_id).await;
                Err(e)
            }
            (BlobStore::Database, result) => result.map(|_| stat),
        }
    }

    /// The transaction of a put: replaces the row, checks the app's cap, records the
    /// event. Returns the id of the blob it replaced.
    async fn files_put_row(
        &self,
        app_id: &str,
        stat: &FileStat,
        blob_id: &str,
        content: &[u8],
    ) -> Result<Option<String>, FilesError> {
        let max_app = self.files.max_app_bytes;
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        if self.dialect == Dialect::Postgres {
            // Serialises puts of one app, so two of them cannot both pass the cap check.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
                .bind(app_id)
                .execute(&mut tx)
                .await?;
        }
        let old =
            sqlx::query("DELETE FROM files WHERE app_id = $1 AND path = $2 RETURNING blob_id")
                .bind(app_id)
                .bind(&stat.path)
                .fetch_optional(&mut tx)
                .await?;
        let old: Option<String> = old.map(|r| r.try_get("blob_id")).transpose()?;
        let inserted = sqlx::query(
            "INSERT INTO files (app_id, path, size, content_type, sha256, blob_id, modified) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE (SELECT COALESCE(SUM(size), 0) FROM files WHERE app_id = $1) + $3 <= $8",
        )
        .bind(app_id)
        .bind(&stat.path)
        .bind(stat.size as i64)
        .bind(&stat.content_type)
        .bind(&stat.sha256)
        .bind(blob_id)
        .bind(stat.modified)
        .bind(i64::try_from(max_app).unwrap_or(i64::MAX))
        .execute(&mut tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(FilesError::AppFull { max: max_app });
        }
        if self.files.blobs == BlobStore::Database {
            sqlx::query("INSERT INTO file_blobs (blob_id, app_id, content) VALUES ($1, $2, $3)")
                .bind(blob_id)
                .bind(app_id)
                .bind(content)
                .execute(&mut tx)
                .await?;
        }
        if let Some(old) = &old {
            sqlx::query("DELETE FROM file_blobs WHERE blob_id = $1")
                .bind(old)
                .execute(&mut tx)
                .await?;
        }
        let value = serde_json::to_string(stat).unwrap_or_default();
        let change = Change {
            source: Source::Files,
            op: "put",
            collection: "",
            key: &stat.path,
            value: Some(&value),
        };
        changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        Ok(old)
    }

    /// The metadata of `path`.
    pub async fn files_head(&self, app_id: &str, path: &str) -> StorageResult<Option<FileStat>> {
        let row = sqlx::query(
            "SELECT path, size, content_type, sha256, modified FROM files \
             WHERE app_id = $1 AND path = $2",
        )
        .bind(app_id)
        .bind(path)
        .fetch_optional(&mut self.acquire().await?)
        .await?;
        Ok(row.as_ref().map(stat_of).transpose()?)
    }

    /// The metadata and content of `path`.
    pub async fn files_get(
        &self,
        app_id: &str,
        path: &str,
    ) -> StorageResult<Option<(FileStat, Vec<u8>)>> {
        // A put may replace the row (and remove its blob) between reading the row and
        // reading a blob on disk; reading the row again then finds the new blob.
        let mut conn = self.acquire().await?;
        for _ in 0..8 {
            let row = sqlx::query(
                "SELECT f.path, f.size, f.content_type, f.sha256, f.modified, f.blob_id, b.content \
                 FROM files f LEFT JOIN file_blobs b ON b.blob_id = f.blob_id \
                 WHERE f.app_id = $1 AND f.path = $2",
            )
            .bind(app_id)
            .bind(path)
            .fetch_optional(&mut conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let stat = stat_of(&row)?;
            if let Some(content) = row.try_get::<Option<Vec<u8>>, _>("content")? {
                return Ok(Some((stat, content)));
            }
            let BlobStore::Disk(root) = &self.files.blobs else {
                return Err(StorageError::Corrupt(format!(
                    "the content of file {path:?} is not in the database and no file directory is configured"
                )));
            };
            let blob_id: String = row.try_get("blob_id")?;
            match tokio::fs::read(blob_path(root, app_id, &blob_id)).await {
                Ok(content) => return Ok(Some((stat, content))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::Io(e)),
            }
        }
        Err(StorageError::Contention("files get"))
    }

    /// Removes `path`; true when it existed.
    pub async fn files_delete(&self, app_id: &str, path: &str) -> StorageResult<bool> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let row =
            sqlx::query("DELETE FROM files WHERE app_id = $1 AND path = $2 RETURNING blob_id")
                .bind(app_id)
                .bind(path)
                .fetch_optional(&mut tx)
                .await?;
        let Some(row) = row else { return Ok(false) };
        let blob_id: String = row.try_get("blob_id")?;
        sqlx::query("DELETE FROM file_blobs WHERE blob_id = $1")
            .bind(&blob_id)
            .execute(&mut tx)
            .await?;
        let change = Change {
            source: Source::Files,
            op: "delete",
            collection: "",
            key: path,
            value: None,
        };
        changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        if let BlobStore::Disk(root) = &self.files.blobs {
            remove_blob(root.clone(), app_id.to_owned(), blob_id).await;
        }
        Ok(true)
    }

    /// Up to `limit` files whose path starts with `prefix` and sorts after `after`, in
    /// byte order.
    pub async fn files_list(
        &self,
        app_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StorageResult<Vec<FileStat>> {
        let (lower, lower_op) = match after {
            Some(after) if after >= prefix => (after, ">"),
            _ => (prefix, ">="),
        };
        let upper = prefix_upper_bound(prefix);
        let upper_clause = if upper.is_some() {
            " AND path < $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT path, size, content_type, sha256, modified FROM files \
             WHERE app_id = $1 AND path {lower_op} $2{upper_clause} ORDER BY path LIMIT $3"
        );
        let mut query = sqlx::query(&sql)
            .bind(app_id)
            .bind(lower)
            .bind(i64::from(limit));
        if let Some(upper) = &upper {
            query = query.bind(upper);
        }
        let rows = query.fetch_all(&mut self.acquire().await?).await?;
        Ok(rows.iter().map(stat_of).collect::<Result<_, _>>()?)
    }

    /// Total bytes of `app_id`'s files.
    pub async fn files_usage(&self, app_id: &str) -> StorageResult<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS n FROM files WHERE app_id = $1",
        )
        .bind(app_id)
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Removes, from a blob directory, temp files and unreferenced blobs older than
    /// `grace` (younger ones may belong to a put still in flight), and the directories
    /// of apps that no longer exist. Returns how many files it removed.
    pub async fn sweep_orphan_blobs(&self, grace: Duration) -> StorageResult<u64> {
        let BlobStore::Disk(root) = &self.files.blobs else {
            return Ok(0);
        };
        let root = root.clone();
        let mut removed = 0;
        let old_enough = |meta: &std::fs::Metadata| {
            meta.modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= grace)
        };
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Ok(0);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let mut app_gone = false;
            let referenced: Option<std::collections::HashSet<String>> = if name == "tmp" {
                None
            } else {
                app_gone = sqlx::query("SELECT 1 AS one FROM apps WHERE id = $1")
                    .bind(&name)
                    .fetch_optional(&self.pool)
                    .await?
                    .is_none();
                if app_gone {
                    Some(Default::default())
                } else {
                    let rows = sqlx::query("SELECT blob_id FROM files WHERE app_id = $1")
                        .bind(&name)
                        .fetch_all(&self.pool)
                        .await?;
                    Some(
                        rows.iter()
                            .map(|r| r.try_get("blob_id"))
                            .collect::<Result<_, _>>()?,
                    )
                }
            };
            for file in std::fs::read_dir(&dir)?.flatten() {
                let blob = file.file_name().to_string_lossy().into_owned();
                let Ok(meta) = file.metadata() else { continue };
                let orphan = referenced.as_ref().is_none_or(|set| !set.contains(&blob));
                if orphan && old_enough(&meta) && std::fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
            }
            if app_gone {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        Ok(removed)
    }
}
