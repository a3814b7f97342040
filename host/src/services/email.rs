//! `picloud:sdk/email`: outbound email of one invocation, through the process's
//! [`Mailer`].
//!
//! A send is checked and built first (see [`crate::mailer`]), then counted against the
//! app's daily cap in the [`EmailStore`] (exactly, in the database), then handed to the
//! relay; a message the relay refused or never got is given back to the day's count.
//! Every send adds one line to the invocation's log: recipients, size, outcome and
//! duration — no address, subject or body.

use super::common::{CallLog, guest_error};
use crate::mailer::{Mailer, SendError};
use crate::quota::Clock;
use crate::storage::Db;
use crate::storage::email::EmailStore;
use crate::storage::usage::utc_day;
use picloud_runtime::email::{Host, Message};
use picloud_runtime::{Answer, GuestError, LogLine};
use std::sync::Arc;
use std::time::Instant;
use tracing::instrument;

/// The message of every send on a server without `--smtp-url`.
pub const NOT_CONFIGURED: &str = "email not configured";

/// The email service of one invocation.
#[derive(Clone)]
pub struct EmailService {
    /// `None` on servers without SMTP: every send answers `unavailable`.
    mailer: Option<Arc<Mailer>>,
    store: Db,
    app_id: Arc<str>,
    clock: Clock,
    deadline: Option<tokio::time::Instant>,
    log: CallLog,
}

impl EmailService {
    /// The service of an invocation of app `app_id` (its counter and From address in
    /// `store`, days by `clock`), ending at `deadline`; sends are logged into `log`.
    pub fn new(
        mailer: Arc<Mailer>,
        store: Db,
        app_id: Arc<str>,
        clock: Clock,
        deadline: Option<tokio::time::Instant>,
        log: CallLog,
    ) -> Self {
        Self {
            mailer: Some(mailer),
            store,
            app_id,
            clock,
            deadline,
            log,
        }
    }

    /// A service that answers every send `unavailable("email not configured")`.
    pub fn unconfigured(store: Db, app_id: Arc<str>) -> Self {
        Self {
            mailer: None,
            store,
            app_id,
            clock: Clock::default(),
            deadline: None,
            log: CallLog::default(),
        }
    }

    async fn send(&self, message: &Message, line: &mut SendLine) -> Result<String, GuestError> {
        let Some(mailer) = &self.mailer else {
            return Err(GuestError::Unavailable(NOT_CONFIGURED.into()));
        };
        let from = self
            .store
            .email_from(&self.app_id)
            .await
            .map_err(guest_error)?;
        let outgoing = mailer.build(message, from.as_deref())?;
        line.bytes = Some(outgoing.bytes());
        line.recipients = outgoing.recipients;
        let day = utc_day(self.clock.now_ms());
        let limit = mailer.daily_limit();
        if !self
            .store
            .email_reserve(&self.app_id, &day, limit)
            .await
            .map_err(guest_error)?
        {
            return Err(GuestError::Limit(format!(
                "the app sent its {limit} emails of the day; the count renews at midnight UTC"
            )));
        }
        match mailer.send(&outgoing, self.deadline).await {
            Ok(()) => Ok(outgoing.message_id),
            Err(e) => {
                if let SendError::Failed(_) = e {
                    // It did not leave: it does not count. (A timeout may have sent it.)
                    if let Err(e) = self.store.email_release(&self.app_id, &day).await {
                        tracing::warn!(error = %e, "could not give back an email's count");
                    }
                } else {
                    line.timed_out = true;
                }
                Err(e.guest_error())
            }
        }
    }
}

/// What the log line of one send says.
struct SendLine {
    started: Instant,
    recipients: usize,
    bytes: Option<usize>,
    timed_out: bool,
}

impl SendLine {
    fn line(&self, answer: &Result<String, GuestError>) -> LogLine {
        let outcome = match answer {
            Ok(_) => "ok",
            Err(_) if self.timed_out => "timeout",
            Err(GuestError::Invalid(_)) => "invalid",
            Err(GuestError::Limit(_)) => "limit",
            Err(GuestError::Unavailable(_)) => "unavailable",
            Err(_) => "failed",
        };
        let duration_ms = self.started.elapsed().as_millis();
        let size = self
            .bytes
            .map_or_else(String::new, |b| format!(", {b} bytes"));
        let fields = serde_json::json!({
            "recipients": self.recipients,
            "bytes": self.bytes,
            "outcome": outcome,
            "duration_ms": duration_ms,
            "message_id": answer.as_ref().ok(),
        });
        LogLine {
            level: if outcome == "ok" { "info" } else { "warn" }.into(),
            message: format!(
                "email to {} recipients{size} -> {outcome} in {duration_ms} ms",
                self.recipients
            ),
            fields: Some(fields.to_string()),
            at_ms: u64::try_from(crate::storage::now_ms()).unwrap_or(0),
        }
    }
}

impl Host for EmailService {
    #[instrument(name = "picloud.email.send", skip_all)]
    async fn send(&mut self, message: Message) -> Answer<String> {
        let mut line = SendLine {
            started: Instant::now(),
            recipients: message.to.len() + message.cc.len() + message.bcc.len(),
            bytes: None,
            timed_out: false,
        };
        let answer = EmailService::send(self, &message, &mut line).await;
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.line(&answer));
        Ok(answer)
    }
}
