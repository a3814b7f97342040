//! Leases of background jobs that one node of a cluster runs at a time (see
//! [`crate::jobs`]): one row per job, taken by one statement that both backends run alike.

use super::{Db, StorageResult};

impl Db {
    /// Takes or renews the lease of job `name` for node `holder` until `now_ms + ttl_ms`:
    /// answers whether `holder` holds it now. A lease held by another node is taken only
    /// once it has expired.
    pub async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> StorageResult<bool> {
        let claimed = sqlx::query(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,
                 expires_at = EXCLUDED.expires_at
             WHERE job_leases.holder = EXCLUDED.holder OR job_leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now_ms.saturating_add(ttl_ms))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Gives up `holder`'s lease of job `name` (at shutdown), so another node takes it
    /// at its next run instead of after the lease expires.
    pub async fn release_lease(&self, name: &str, holder: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM job_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
