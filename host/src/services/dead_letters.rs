//! `picloud:sdk/dead-letters`: a function settles its app's dead letters — `replay`
//! queues one again with fresh attempts, `resolve` marks it settled. Only the app's own
//! dead letters: another app's id answers `not-found`, as an unknown one does.

use super::common::guest_error;
use crate::storage::{Db, now_ms};
use picloud_runtime::dead_letters::Host;
use picloud_runtime::{Answer, GuestError};
use std::sync::Arc;
use tracing::instrument;

/// The dead letters of one app.
pub struct DeadLettersService {
    db: Db,
    app_id: Arc<str>,
}

impl DeadLettersService {
    /// The dead letters of app `app_id`.
    pub fn new(db: Db, app_id: Arc<str>) -> Self {
        Self { db, app_id }
    }
}

/// A dead letter's id as the guest gives it (the decimal id the API and `ctx.event`
/// show): at most 20 digits.
fn parse_id(id: &str) -> Result<i64, GuestError> {
    if id.is_empty() || id.len() > 20 {
        return Err(GuestError::Invalid(
            "a dead letter id is 1-20 digits".into(),
        ));
    }
    id.parse()
        .map_err(|_| GuestError::Invalid(format!("{id:?} is not a dead letter id")))
}

impl Host for DeadLettersService {
    #[instrument(name = "picloud.dead_letters.replay", skip_all)]
    async fn replay(&mut self, id: String) -> Answer<()> {
        Ok(async {
            let id = parse_id(&id)?;
            if self
                .db
                .replay_dead_letter(&self.app_id, id, now_ms())
                .await
                .map_err(guest_error)?
            {
                self.db.events_written().notify_one();
                Ok(())
            } else {
                Err(GuestError::NotFound)
            }
        }
        .await)
    }

    #[instrument(name = "picloud.dead_letters.resolve", skip_all)]
    async fn resolve(&mut self, id: String) -> Answer<()> {
        Ok(async {
            let id = parse_id(&id)?;
            if self
                .db
                .resolve_dead_letter(&self.app_id, id, now_ms())
                .await
                .map_err(guest_error)?
            {
                Ok(())
            } else {
                Err(GuestError::NotFound)
            }
        }
        .await)
    }
}
