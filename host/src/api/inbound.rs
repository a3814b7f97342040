//! Inbound email:
//! - `/apps/{app}/email/triggers[/{name}]` (admin token): create an inbound email
//!   trigger — its HMAC key is answered once, on creation, and kept sealed by the vault
//!   —, list them (names only), delete one;
//! - `POST /email-inbound/{app}/{trigger}` (no token: the body's signature is the
//!   credential): a message a mail provider (or a relay) received, as JSON, signed with
//!   the trigger's key: `X-PiCloud-Signature: sha256=<hex of HMAC-SHA256(key, body)>`,
//!   the key being the trigger's secret as text. Answers 202 once the message is in the
//!   outbox (`/apps/{app}/changes`, source `email`, op `receive`), 401 for a missing or
//!   wrong signature, 404 for an unknown app or trigger, 422 for a body that is not a
//!   message.
//!
//! The message: `from` (one address), `to` (one or many, at least one), `cc` (one or
//! many), `subject`, `text`, `html` (optional), `message_id` (optional), `received_at`
//! (RFC 3339, optional: the time it arrived here otherwise) — nothing else.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::services::common::check_name;
use crate::storage::email::EmailTrigger;
use crate::vault::{Keys, Kind};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-picloud-signature";
/// Largest inbound message body: the text and html of a long newsletter, not
/// attachments (which providers keep).
pub const MAX_INBOUND_BYTES: usize = 2 * 1024 * 1024;
/// Most recipients (to and cc) of an inbound message.
pub const MAX_INBOUND_RECIPIENTS: usize = 100;
/// Longest subject, message id or address of an inbound message, in bytes.
const MAX_FIELD_BYTES: usize = 998;

/// Admin routes of inbound email triggers (behind the token).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/email/triggers", get(list).post(create))
        .route("/apps/{app}/email/triggers/{name}", delete(remove))
}

/// The webhook route (no token: signed bodies).
pub fn webhook() -> Router<AppState> {
    Router::new().route(
        "/email-inbound/{app}/{trigger}",
        post(receive).layer(DefaultBodyLimit::max(MAX_INBOUND_BYTES)),
    )
}

fn keys(state: &AppState) -> ApiResult<Arc<Keys>> {
    state
        .db
        .secret_keys()
        .cloned()
        .ok_or_else(|| ApiError::unavailable("secrets are not configured"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTrigger {
    name: String,
}

/// A created trigger: its key, shown this once, and where to send messages.
#[derive(serde::Serialize)]
struct CreatedTrigger {
    #[serde(flatten)]
    trigger: EmailTrigger,
    secret: String,
    url: String,
}

async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<NewTrigger>,
) -> ApiResult<(StatusCode, Json<CreatedTrigger>)> {
    let entry = existing_app(&state, &app).await?;
    check_name("trigger name", &body.name).map_err(ApiError::bad_request)?;
    let keys = keys(&state)?;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let secret = hex::encode(key);
    let sealed = keys.seal_as(
        Kind::InboundEmailKey,
        &entry.id,
        &body.name,
        secret.as_bytes(),
    );
    let trigger = state
        .db
        .create_email_trigger(&entry.id, &body.name, &sealed)
        .await
        .map_err(|e| match e {
            crate::storage::StorageError::Conflict => ApiError::conflict(format!(
                "app {app} has an inbound email trigger {:?}",
                body.name
            )),
            e => e.into(),
        })?;
    let url = format!("/api/v1/email-inbound/{app}/{}", body.name);
    Ok((
        StatusCode::CREATED,
        Json(CreatedTrigger {
            trigger,
            secret,
            url,
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<EmailTrigger>>> {
    let entry = existing_app(&state, &app).await?;
    Ok(Json(state.db.email_triggers(&entry.id).await?))
}

async fn remove(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let entry = existing_app(&state, &app).await?;
    if state.db.delete_email_trigger(&entry.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "app {app} has no inbound email trigger {name:?}"
        )))
    }
}

/// The one answer to a missing, malformed or wrong signature.
fn bad_signature() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid X-PiCloud-Signature is required",
    )
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", message)
}

/// One address, or many.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Addresses {
    One(String),
    Many(Vec<String>),
}

impl Addresses {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a],
            Self::Many(a) => a,
        }
    }
}

/// An inbound message as a webhook sends it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundMessage {
    from: String,
    to: Addresses,
    #[serde(default)]
    cc: Option<Addresses>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
}

/// Checks `address` of field `what`: one mailbox, at most [`MAX_FIELD_BYTES`].
fn check_address(what: &str, address: &str) -> ApiResult<()> {
    if address.len() > MAX_FIELD_BYTES {
        return Err(unprocessable(format!(
            "an address in {what} is at most {MAX_FIELD_BYTES} bytes"
        )));
    }
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|_| unprocessable(format!("{what}: {address:?} is not a valid email address")))
}

/// The stored event of `message`: the seed's shape (`from`, `to`, `cc`, `subject`,
/// `text`, `html`, `received_at`, `message_id`), addresses as lists.
fn event_of(message: InboundMessage, now_ms: i64) -> ApiResult<Value> {
    check_address("from", &message.from)?;
    let to = message.to.into_vec();
    let cc = message.cc.map(Addresses::into_vec).unwrap_or_default();
    if to.is_empty() {
        return Err(unprocessable("`to` needs at least one address"));
    }
    if to.len() + cc.len() > MAX_INBOUND_RECIPIENTS {
        return Err(unprocessable(format!(
            "a message has at most {MAX_INBOUND_RECIPIENTS} recipients (to and cc)"
        )));
    }
    for address in &to {
        check_address("to", address)?;
    }
    for address in &cc {
        check_address("cc", address)?;
    }
    for (what, value) in [
        ("subject", Some(&message.subject)),
        ("message_id", message.message_id.as_ref()),
    ] {
        if value.is_some_and(|v| v.len() > MAX_FIELD_BYTES) {
            return Err(unprocessable(format!(
                "{what} is at most {MAX_FIELD_BYTES} bytes"
            )));
        }
    }
    let received_at = match message.received_at {
        Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map_err(|_| unprocessable(format!("received_at {text:?} is not an RFC 3339 time")))?
            .with_timezone(&chrono::Utc),
        None => chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
    };
    Ok(json!({
        "from": message.from,
        "to": to,
        "cc": cc,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "received_at": received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "message_id": message.message_id,
    }))
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `key`,
/// compared in constant time.
fn signature_matches(key: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(signature) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|hex_text| hex::decode(hex_text).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

async fn receive(
    State(state): State<AppState>,
    Path((app, trigger)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let unknown = || ApiError::not_found(format!("no inbound email trigger {app}/{trigger}"));
    let entry = state.invoker.app(&app).await?.ok_or_else(unknown)?;
    let sealed = state
        .db
        .email_trigger_key(&entry.id, &trigger)
        .await?
        .ok_or_else(unknown)?;
    let key = keys(&state)?
        .open_as(Kind::InboundEmailKey, &entry.id, &trigger, &sealed)
        .map_err(|e| {
            // Fail closed: a key that does not open verifies nothing.
            tracing::error!(error = %e, app = %app, trigger = %trigger, "an inbound email key does not open");
            bad_signature()
        })?;
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !signature_matches(&key, signature, &body) {
        return Err(bad_signature());
    }
    let message: InboundMessage = serde_json::from_slice(&body)
        .map_err(|e| unprocessable(format!("the body is not an inbound message: {e}")))?;
    let now_ms = state.invoker.clock().now_ms();
    let event = event_of(message, now_ms)?;
    let message_id = event["message_id"].as_str().unwrap_or_default().to_owned();
    state
        .db
        .record_inbound_email(&entry.id, &trigger, &message_id, &event.to_string())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted_at": event["received_at"] })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hmac_of_the_body_under_the_key_matches() {
        let key = b"k3y";
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(b"body");
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_matches(key, Some(&good), b"body"));
        assert!(!signature_matches(key, Some(&good), b"body!"));
        assert!(!signature_matches(b"other", Some(&good), b"body"));
        assert!(!signature_matches(key, Some(&good[7..]), b"body"));
        assert!(!signature_matches(key, Some("sha256=zz"), b"body"));
        assert!(!signature_matches(key, None, b"body"));
    }
}
