//! The docs table: JSON objects by (app, collection, id), queried in the database.
//!
//! SQLite keeps the body as JSON text and queries it with JSON1; PostgreSQL keeps it as
//! jsonb. Queries are compiled by [`super::docs_query`]. Declared indexes are partial
//! expression indexes over one app's collection, so an app's indexes cost nothing to
//! other apps' writes; queries name the app and collection as literals so the planner
//! can match those partial indexes (both are validated identifiers, quoted anyway).
//!
//! Every write records its change event in its own transaction.

use super::changes::{self, Change, Source};
use super::docs_query::{self, FieldPath, Param, QueryError};
use super::{Db, Dialect, StorageError, StorageResult, conflict_or, now_ms};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// Most indexes one app may declare, over all its collections.
pub const MAX_INDEXES_PER_APP: i64 = 32;
/// How often `patch` retries after losing a race before giving up.
const MAX_CAS_ATTEMPTS: usize = 64;

/// Why a docs call failed.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// The query, sort or patch is not acceptable.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Too many declared indexes.
    #[error("an app may declare at most {MAX_INDEXES_PER_APP} indexes")]
    TooManyIndexes,
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for DocsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// A declared index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocIndex {
    /// The collection.
    pub collection: String,
    /// The indexed field's dotted path.
    pub field: String,
    /// When it was declared (ms since the Unix epoch).
    pub created_at: i64,
}

/// The outcome of a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patched {
    /// The merged document, stored.
    Done(String),
    /// No such document.
    Missing,
    /// Nothing stored: the merged document would have this many bytes.
    TooLarge(usize),
}

/// What `find` returns per document: id and body (JSON text).
pub type DocRow = (String, String);

/// `'text'` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn bind_all<'q>(
    mut query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    params: &'q [Param],
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    for param in params {
        query = match param {
            Param::Text(s) => query.bind(s.as_str()),
            Param::Int(i) => query.bind(*i),
            Param::Float(f) => query.bind(*f),
        };
    }
    query
}

impl Db {
    /// `$n` as a body parameter: jsonb on PostgreSQL.
    fn body_param(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("${n}"),
            Dialect::Postgres => format!("${n}::jsonb"),
        }
    }

    /// The body column as JSON text.
    fn body_column(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "body",
            Dialect::Postgres => "body::text AS body",
        }
    }

    /// Stores a new document; [`StorageError::Conflict`] when the id is taken.
    pub async fn docs_insert(
        &self,
        app_id: &str,
        collection: &str,
        id: &str,
        body: &str,
    ) -> StorageResult<()> {
        let now = now_ms();
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let sql = format!(
            "INSERT INTO docs (app_id, collection, id, body, version, created_at, updated_at) \
             VALUES ($1, $2, $3, {}, 1, $5, $5)",
            self.body_param(4)
        );
        sqlx::query(&sql)
            .bind(app_id)
            .bind(collection)
            .bind(id)
            .bind(body)
            .bind(now)
            .execute(&mut tx)
            .await
            .map_err(conflict_or)?;
        let change = Change {
            source: Source::Docs,
            op: "insert",
            collection,
            key: id,
            value: Some(body),
        };
        changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts many documents (id, JSON object text) in one transaction, with their
    /// change events: all or nothing. For bulk loads; ids must be new.
    pub async fn docs_import(
        &self,
        app_id: &str,
        collection: &str,
        docs: &[(String, String)],
    ) -> StorageResult<()> {
        const CHUNK: usize = 200;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in docs.chunks(CHUNK) {
            let mut docs_sql = String::from(
                "INSERT INTO docs (app_id, collection, id, body, version, created_at, updated_at) VALUES ",
            );
            let mut events_sql = String::from(
                "INSERT INTO change_events (app_id, source, op, collection, key, value, created_at) VALUES ",
            );
            for i in 0..chunk.len() {
                let (id, body) = (i * 2 + 4, i * 2 + 5);
                let sep = if i == 0 { "" } else { ", " };
                docs_sql.push_str(&format!(
                    "{sep}($1, $2, ${id}, {}, 1, $3, $3)",
                    self.body_param(body)
                ));
                events_sql.push_str(&format!(
                    "{sep}($1, 'docs', 'insert', $2, ${id}, ${body}, $3)"
                ));
            }
            for sql in [&docs_sql, &events_sql] {
                let mut query = sqlx::query(sql).bind(app_id).bind(collection).bind(now);
                for (id, body) in chunk {
                    query = query.bind(id.as_str()).bind(body.as_str());
                }
                query.execute(&mut *tx).await.map_err(conflict_or)?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The document `id` as JSON text.
    pub async fn docs_get(
        &self,
        app_id: &str,
        collection: &str,
        id: &str,
    ) -> StorageResult<Option<String>> {
        let sql = format!(
            "SELECT {} FROM docs WHERE app_id = $1 AND collection = $2 AND id = $3",
            self.body_column()
        );
        let row = sqlx::query(&sql)
            .bind(app_id)
            .bind(collection)
            .bind(id)
            .fetch_optional(&mut self.acquire().await?)
            .await?;
        Ok(row.map(|r| r.try_get("body")).transpose()?)
    }

    /// Replaces the body of `id`; false when there is no such document.
    pub async fn docs_replace(
        &self,
        app_id: &str,
        collection: &str,
        id: &str,
        body: &str,
    ) -> StorageResult<bool> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let sql = format!(
            "UPDATE docs SET body = {}, version = version + 1, updated_at = $2 \
             WHERE app_id = $3 AND collection = $4 AND id = $5",
            self.body_param(1)
        );
        let done = sqlx::query(&sql)
            .bind(body)
            .bind(now_ms())
            .bind(app_id)
            .bind(collection)
            .bind(id)
            .execute(&mut tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let change = Change {
            source: Source::Docs,
            op: "replace",
            collection,
            key: id,
            value: Some(body),
        };
        changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Applies `merge` (a JSON merge patch, RFC 7396) to `id` unless the result would
    /// exceed `max_bytes`. Concurrent patches both apply: each is a compare-and-swap on
    /// the row's version.
    pub async fn docs_patch(
        &self,
        app_id: &str,
        collection: &str,
        id: &str,
        merge: &Value,
        max_bytes: usize,
    ) -> StorageResult<Patched> {
        let mut conn = self.acquire().await?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let sql = format!(
                "SELECT {}, version FROM docs WHERE app_id = $1 AND collection = $2 AND id = $3",
                self.body_column()
            );
            let row = sqlx::query(&sql)
                .bind(app_id)
                .bind(collection)
                .bind(id)
                .fetch_optional(&mut conn)
                .await?;
            let Some(row) = row else {
                return Ok(Patched::Missing);
            };
            let body: String = row.try_get("body")?;
            let version: i64 = row.try_get("version")?;
            let mut doc: Value = serde_json::from_str(&body)
                .map_err(|e| StorageError::Corrupt(format!("document {id}: {e}")))?;
            json_patch::merge(&mut doc, merge);
            let merged = doc.to_string();
            if merged.len() > max_bytes {
                return Ok(Patched::TooLarge(merged.len()));
            }

            conn.begin().await?;
            let sql = format!(
                "UPDATE docs SET body = {}, version = version + 1, updated_at = $2 \
                 WHERE app_id = $3 AND collection = $4 AND id = $5 AND version = $6",
                self.body_param(1)
            );
            let done = sqlx::query(&sql)
                .bind(&merged)
                .bind(now_ms())
                .bind(app_id)
                .bind(collection)
                .bind(id)
                .bind(version)
                .execute(&mut conn)
                .await?;
            if done.rows_affected() == 1 {
                let change = Change {
                    source: Source::Docs,
                    op: "patch",
                    collection,
                    key: id,
                    value: Some(&merged),
                };
                changes::record(&mut conn, app_id, change).await?;
                conn.commit().await?;
                return Ok(Patched::Done(merged));
            }
            conn.commit().await?;
        }
        Err(StorageError::Contention("docs patch"))
    }

    /// Removes `id`; true when it existed.
    pub async fn docs_delete(
        &self,
        app_id: &str,
        collection: &str,
        id: &str,
    ) -> StorageResult<bool> {
        let mut tx = self.acquire().await?;
        tx.begin().await?;
        let done =
            sqlx::query("DELETE FROM docs WHERE app_id = $1 AND collection = $2 AND id = $3")
                .bind(app_id)
                .bind(collection)
                .bind(id)
                .execute(&mut tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let change = Change {
            source: Source::Docs,
            op: "delete",
            collection,
            key: id,
            value: None,
        };
        changes::record(&mut tx, app_id, change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The `WHERE` clause of a query on one app's collection and its parameters.
    fn docs_where(
        &self,
        app_id: &str,
        collection: &str,
        query: &Value,
    ) -> Result<(String, Vec<Param>), QueryError> {
        let filter = docs_query::compile_filter(self.dialect, query, 1)?;
        let sql = format!(
            "app_id = {} AND collection = {} AND {}",
            literal(app_id),
            literal(collection),
            filter.sql
        );
        Ok((sql, filter.params))
    }

    /// Documents of `collection` matching `query`, ordered by `sort` then id.
    pub async fn docs_find(
        &self,
        app_id: &str,
        collection: &str,
        query: &Value,
        sort: &[String],
        limit: u32,
        skip: u32,
    ) -> Result<Vec<DocRow>, DocsError> {
        let (filter, params) = self.docs_where(app_id, collection, query)?;
        let order = docs_query::compile_sort(self.dialect, sort)?;
        let sql = format!(
            "SELECT id, {} FROM docs WHERE {filter} ORDER BY {order} LIMIT {limit} OFFSET {skip}",
            self.body_column()
        );
        let rows = bind_all(sqlx::query(&sql), &params)
            .fetch_all(&mut self.acquire().await?)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("body")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// How many documents of `collection` match `query`.
    pub async fn docs_count(
        &self,
        app_id: &str,
        collection: &str,
        query: &Value,
    ) -> Result<u64, DocsError> {
        let (filter, params) = self.docs_where(app_id, collection, query)?;
        let sql = format!("SELECT COUNT(*) AS n FROM docs WHERE {filter}");
        let row = bind_all(sqlx::query(&sql), &params)
            .fetch_one(&mut self.acquire().await?)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The database's plan for `find(query)` on `collection`, one line per step (SQLite
    /// `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN`): shows whether an index is used.
    pub async fn docs_explain(
        &self,
        app_id: &str,
        collection: &str,
        query: &Value,
        sort: &[String],
    ) -> Result<Vec<String>, DocsError> {
        let (filter, params) = self.docs_where(app_id, collection, query)?;
        let order = docs_query::compile_sort(self.dialect, sort)?;
        let select = format!("SELECT id FROM docs WHERE {filter} ORDER BY {order} LIMIT 100");
        Ok(match self.dialect {
            Dialect::Sqlite => {
                // An EXPLAIN reads no table, so SQLite neither re-plans a cached EXPLAIN
                // nor reloads a schema (the declared indexes) another connection changed:
                // read the schema first on the same connection, and do not cache.
                let mut conn = self.pool.acquire().await?;
                sqlx::query("SELECT COUNT(*) AS n FROM sqlite_master")
                    .fetch_one(&mut *conn)
                    .await?;
                let sql = format!("EXPLAIN QUERY PLAN {select}");
                let rows = bind_all(sqlx::query(&sql).persistent(false), &params)
                    .fetch_all(&mut *conn)
                    .await?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>("detail"))
                    .collect::<Result<_, _>>()?
            }
            Dialect::Postgres => {
                // The values are bound, as in `find` (an EXPLAIN of a statement with
                // parameters plans it for those values); never inlined into the SQL.
                let sql = format!("EXPLAIN {select}");
                let rows = bind_all(sqlx::query(&sql).persistent(false), &params)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<Result<_, _>>()?
            }
        })
    }

    /// Declares an index on `field` of one app's `collection` (idempotent) and refreshes
    /// the planner's statistics.
    pub async fn docs_create_index(
        &self,
        app_id: &str,
        collection: &str,
        field: &str,
    ) -> Result<bool, DocsError> {
        let path = FieldPath::parse(field)?;
        let name = index_name(app_id, collection, &path.dotted());
        let existing = sqlx::query(
            "SELECT COUNT(*) AS n FROM doc_indexes WHERE app_id = $1 \
             UNION ALL SELECT COUNT(*) AS n FROM doc_indexes WHERE index_name = $2",
        )
        .bind(app_id)
        .bind(&name)
        .fetch_all(&self.pool)
        .await?;
        let count: i64 = existing[0].try_get("n")?;
        let exists: i64 = existing[1].try_get("n")?;
        if exists > 0 {
            return Ok(false);
        }
        if count >= MAX_INDEXES_PER_APP {
            return Err(DocsError::TooManyIndexes);
        }
        let ddl = format!(
            "CREATE INDEX IF NOT EXISTS {name} ON docs ({}) WHERE app_id = {} AND collection = {}",
            path.value_expr(self.dialect),
            literal(app_id),
            literal(collection)
        );
        sqlx::query(&ddl).execute(&self.pool).await?;
        sqlx::query(
            "INSERT INTO doc_indexes (app_id, collection, field, index_name, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(app_id)
        .bind(collection)
        .bind(path.dotted())
        .bind(&name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if self.dialect == Dialect::Postgres {
            // Without statistics on the expression the planner guesses 0.5 % of rows
            // match an equality and often walks the primary key instead of the index.
            // Statistics objects are per table, so one per field path serves every app.
            let ddl = format!(
                "CREATE STATISTICS IF NOT EXISTS {} ON ({}) FROM docs",
                statistics_name(&path.dotted()),
                path.value_expr(self.dialect)
            );
            sqlx::query(&ddl).execute(&self.pool).await?;
        }
        sqlx::query("ANALYZE docs").execute(&self.pool).await?;
        Ok(true)
    }

    /// PostgreSQL: drops the statistics of `field` once no declared index needs them.
    async fn drop_unused_statistics(&self, field: &str) -> StorageResult<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM doc_indexes WHERE field = $1")
            .bind(field)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        if users == 0 {
            sqlx::query(&format!(
                "DROP STATISTICS IF EXISTS {}",
                statistics_name(field)
            ))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Drops a declared index; false when there was none.
    pub async fn docs_drop_index(
        &self,
        app_id: &str,
        collection: &str,
        field: &str,
    ) -> Result<bool, DocsError> {
        let path = FieldPath::parse(field)?;
        let name = index_name(app_id, collection, &path.dotted());
        let done = sqlx::query("DELETE FROM doc_indexes WHERE index_name = $1")
            .bind(&name)
            .execute(&self.pool)
            .await?;
        sqlx::query(&format!("DROP INDEX IF EXISTS {name}"))
            .execute(&self.pool)
            .await?;
        self.drop_unused_statistics(&path.dotted()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// The indexes `app_id` declared.
    pub async fn docs_indexes(&self, app_id: &str) -> StorageResult<Vec<DocIndex>> {
        let rows = sqlx::query(
            "SELECT collection, field, created_at FROM doc_indexes WHERE app_id = $1 \
             ORDER BY collection, field",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(DocIndex {
                    collection: r.try_get("collection")?,
                    field: r.try_get("field")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Drops the declared indexes of an app that is being deleted, and the statistics
    /// no other app's index needs.
    pub async fn docs_drop_app_indexes(&self, app_id: &str) -> StorageResult<()> {
        let rows =
            sqlx::query("DELETE FROM doc_indexes WHERE app_id = $1 RETURNING index_name, field")
                .bind(app_id)
                .fetch_all(&self.pool)
                .await?;
        for row in rows {
            let name: String = row.try_get("index_name")?;
            sqlx::query(&format!("DROP INDEX IF EXISTS {name}"))
                .execute(&self.pool)
                .await?;
            let field: String = row.try_get("field")?;
            self.drop_unused_statistics(&field).await?;
        }
        Ok(())
    }
}

/// The name of PostgreSQL's statistics on the expression of `field`.
fn statistics_name(field: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("docs_st_{}", &hex::encode(Sha256::digest(field))[..24])
}

/// The physical name of the index on `field` of one app's collection: a hash, so it is
/// a plain identifier whatever the names are.
fn index_name(app_id: &str, collection: &str, field: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{app_id}\0{collection}\0{field}"));
    format!("docs_ix_{}", &hex::encode(digest)[..24])
}
