//! `/apps/{app}/email`: an app's outbound email as an operator sees it — its From
//! address (set here; none: the server's `--email-from`), today's count of sent
//! messages and the daily cap.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::storage::usage::utc_day;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/apps/{app}/email", get(show).put(set))
}

/// An app's email settings and today's count.
#[derive(serde::Serialize)]
struct EmailSettings {
    /// Whether the server has SMTP (`--smtp-url`); without, every send answers
    /// `unavailable`.
    configured: bool,
    /// The app's own From address, or null.
    from: Option<String>,
    /// The From address its messages carry: its own, else the server's.
    sends_from: Option<String>,
    /// Messages per UTC day.
    daily_limit: Option<u64>,
    /// Messages sent today (UTC).
    sent_today: u64,
}

/// The From address to set; null goes back to the server's.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFrom {
    from: Option<String>,
}

async fn settings(state: &AppState, app_id: &str) -> ApiResult<EmailSettings> {
    use crate::storage::email::EmailStore;
    let from = state.db.email_from(app_id).await?;
    let mailer = state.invoker.mailer();
    let today = utc_day(state.invoker.clock().now_ms());
    Ok(EmailSettings {
        configured: mailer.is_some(),
        sends_from: mailer.map(|m| from.clone().unwrap_or_else(|| m.default_from().to_string())),
        from,
        daily_limit: mailer.map(|m| m.daily_limit()),
        sent_today: state.db.email_sent(app_id, &today).await?,
    })
}

async fn show(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<EmailSettings>> {
    let app = existing_app(&state, &app).await?;
    Ok(Json(settings(&state, &app.id).await?))
}

async fn set(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<SetFrom>,
) -> ApiResult<Json<EmailSettings>> {
    let app = existing_app(&state, &app).await?;
    let from = body
        .from
        .map(|from| {
            crate::mailer::parse_from(&from)
                .map(|mailbox| mailbox.to_string())
                .map_err(ApiError::bad_request)
        })
        .transpose()?;
    state.db.set_email_from(&app.id, from.as_deref()).await?;
    Ok(Json(settings(&state, &app.id).await?))
}
