//! `picloud:sdk/pubsub`: a function publishes to its app's topics and mints tokens for
//! browser subscribers (see [`crate::events::realtime`]).
//!
//! - `publish(topic, message)`: to the realtime subscribers of the topic connected now
//!   (none: the message is gone).
//! - `publish-durable(topic, message)`: recorded in the outbox first (the app's pubsub
//!   triggers run for it, and resuming subscribers can read it), then handed to the
//!   realtime subscribers — only once it is committed, so no subscriber hears of a
//!   message that then did not happen.
//! - `subscriber-token(topics, ttl)`: topics declared external (an operator's choice,
//!   `picloud topics set APP NAME --external`); the TTL is clamped to 10 s – 24 h.
//!
//! Every value is checked at the boundary: topic names (1–64 of `A-Z a-z 0-9 _ - .`),
//! messages (valid JSON of at most [`MAX_MESSAGE_BYTES`]), at most
//! [`MAX_PUBLISHES_PER_INVOCATION`] publishes per invocation.

use super::common::guest_error;
use crate::events::realtime::{MAX_TOKEN_TOPICS, Published, Realtime, TOKEN_TTL_SECS, check_topic};
use crate::quota::Clock;
use crate::storage::Db;
use picloud_runtime::pubsub::Host;
use picloud_runtime::{Answer, GuestError};
use std::sync::Arc;
use tracing::instrument;

/// Largest message, in bytes of JSON.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most publishes (of both kinds) of one invocation; more answer `limit`.
pub const MAX_PUBLISHES_PER_INVOCATION: u32 = 1_000;

/// The pubsub service of one invocation.
pub struct PubsubService {
    db: Db,
    app_id: Arc<str>,
    /// `None` outside an invocation of a server (host-side callers): every call
    /// answers `unavailable`.
    realtime: Option<Arc<Realtime>>,
    clock: Clock,
    published: u32,
}

impl PubsubService {
    /// The service of an invocation of app `app_id`, publishing to `realtime`'s
    /// subscribers; tokens expire by `clock`.
    pub fn new(db: Db, app_id: Arc<str>, realtime: Arc<Realtime>, clock: Clock) -> Self {
        Self {
            db,
            app_id,
            realtime: Some(realtime),
            clock,
            published: 0,
        }
    }

    /// A service whose every call answers `unavailable` (no server's realtime).
    pub fn unavailable(db: Db, app_id: Arc<str>) -> Self {
        Self {
            db,
            app_id,
            realtime: None,
            clock: Clock::default(),
            published: 0,
        }
    }

    fn realtime(&self) -> Result<Arc<Realtime>, GuestError> {
        self.realtime
            .clone()
            .ok_or_else(|| GuestError::Unavailable("pubsub is not available here".into()))
    }

    /// Checks a publish of `message` on `topic` and counts it; answers the message as
    /// compact JSON.
    fn check_publish(&mut self, topic: &str, message: &str) -> Result<String, GuestError> {
        check_topic(topic).map_err(GuestError::Invalid)?;
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(GuestError::Limit(format!(
                "a message is at most {MAX_MESSAGE_BYTES} bytes, got {}",
                message.len()
            )));
        }
        if self.published >= MAX_PUBLISHES_PER_INVOCATION {
            return Err(GuestError::Limit(format!(
                "an invocation publishes at most {MAX_PUBLISHES_PER_INVOCATION} messages"
            )));
        }
        let value: serde_json::Value = serde_json::from_str(message)
            .map_err(|e| GuestError::Invalid(format!("the message is not valid JSON: {e}")))?;
        self.published += 1;
        Ok(value.to_string())
    }
}

impl PubsubService {
    /// Hands `message` to this node's subscribers of `topic`, and relays it to the
    /// other nodes' (PostgreSQL). A failed relay is logged: the message is published
    /// (a durable one is committed) either way.
    async fn deliver(&self, realtime: &Realtime, topic: &str, message: Published) {
        let relay = realtime.relay_payload(&self.app_id, topic, &message);
        realtime.publish(&self.app_id, topic, message);
        if let Some(payload) = relay
            && let Err(e) = self
                .db
                .notify(crate::events::realtime::RELAY_CHANNEL, &payload)
                .await
        {
            tracing::warn!(error = %e, "relaying a realtime message to other nodes failed");
        }
    }
}

impl Host for PubsubService {
    #[instrument(name = "picloud.pubsub.publish", skip_all)]
    async fn publish(&mut self, topic: String, message: String) -> Answer<()> {
        Ok(async {
            let realtime = self.realtime()?;
            let data = self.check_publish(&topic, &message)?;
            self.deliver(&realtime, &topic, Published { id: None, data })
                .await;
            Ok(())
        }
        .await)
    }

    #[instrument(name = "picloud.pubsub.publish_durable", skip_all)]
    async fn publish_durable(&mut self, topic: String, message: String) -> Answer<()> {
        Ok(async {
            let realtime = self.realtime()?;
            let data = self.check_publish(&topic, &message)?;
            let id = self
                .db
                .publish_durable(&self.app_id, &topic, &data)
                .await
                .map_err(guest_error)?;
            self.deliver(&realtime, &topic, Published { id: Some(id), data })
                .await;
            Ok(())
        }
        .await)
    }

    #[instrument(name = "picloud.pubsub.subscriber_token", skip_all)]
    async fn subscriber_token(&mut self, topics: Vec<String>, ttl_secs: u32) -> Answer<String> {
        Ok(async {
            self.realtime()?;
            if topics.is_empty() || topics.len() > MAX_TOKEN_TOPICS {
                return Err(GuestError::Invalid(format!(
                    "a token names 1-{MAX_TOKEN_TOPICS} topics, got {}",
                    topics.len()
                )));
            }
            for topic in &topics {
                check_topic(topic).map_err(GuestError::Invalid)?;
            }
            let declared = self
                .db
                .list_topics(&self.app_id)
                .await
                .map_err(guest_error)?;
            for topic in &topics {
                if !declared.iter().any(|t| t.external && t.name == *topic) {
                    return Err(GuestError::Invalid(format!(
                        "topic {topic:?} is not declared external; browsers subscribe only to \
                         external topics (picloud topics set APP {topic} --external)"
                    )));
                }
            }
            let keys = self.db.secret_keys().ok_or_else(|| {
                GuestError::Unavailable("realtime needs the secrets master key".into())
            })?;
            let ttl = ttl_secs.clamp(TOKEN_TTL_SECS.0, TOKEN_TTL_SECS.1);
            let now = u64::try_from(self.clock.now_ms() / 1000).unwrap_or(0);
            Ok(Realtime::mint_token(
                keys,
                &self.app_id,
                &topics,
                now + u64::from(ttl),
            ))
        }
        .await)
    }
}
