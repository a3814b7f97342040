//! Outbound http settings of apps: the allow-list of hosts an operator may set.

use super::{Db, StorageError, StorageResult, now_ms};
use sqlx::Row;

impl Db {
    /// The allow-list of hosts of app `app_id`; `None` when it has none.
    pub async fn app_outbound_hosts(&self, app_id: &str) -> StorageResult<Option<Vec<String>>> {
        let row = sqlx::query("SELECT allow_hosts FROM app_outbound WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let hosts: String = row.try_get("allow_hosts")?;
        serde_json::from_str(&hosts)
            .map(Some)
            .map_err(|_| StorageError::Corrupt("an app's outbound allow-list".into()))
    }

    /// Sets (`Some`) or removes (`None`) the allow-list of hosts of app `app_id`.
    pub async fn set_app_outbound_hosts(
        &self,
        app_id: &str,
        hosts: Option<&[String]>,
    ) -> StorageResult<()> {
        match hosts {
            Some(hosts) => {
                sqlx::query(
                    "INSERT INTO app_outbound (app_id, allow_hosts, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (app_id) DO UPDATE SET allow_hosts = EXCLUDED.allow_hosts,
                     updated_at = EXCLUDED.updated_at",
                )
                .bind(app_id)
                .bind(serde_json::to_string(hosts).expect("strings serialise"))
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM app_outbound WHERE app_id = $1")
                    .bind(app_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}
