//! `/apps/{app}/triggers`: run a function on a schedule, when data changes, when a
//! message is published durably or when an event dies — create,
//! list, delete; `/apps/{app}/dead-letters`: events that exhausted their attempts — list,
//! show, replay, resolve; `/apps/{app}/executions/{id}`: an async route's request — its
//! status and answer.

use super::existing_app;
use crate::error::{ApiError, ApiResult};
use crate::events::{DEFAULT_BACKOFF_MS, DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS, MAX_BACKOFF_MS, cron};
use crate::server::AppState;
use crate::storage::triggers::{DeliveryView, Execution, TriggerRecord};
use crate::storage::{StorageError, now_ms};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

/// Triggers one app may have.
pub const MAX_TRIGGERS_PER_APP: usize = 100;
/// Longest collection (or path prefix) a trigger may name, in bytes.
const MAX_COLLECTION_BYTES: usize = 256;

/// Routes of these resources.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/triggers", get(list).post(create))
        .route("/apps/{app}/triggers/{name}", delete(remove))
        .route("/apps/{app}/dead-letters", get(dead_letters))
        .route("/apps/{app}/dead-letters/{id}", get(dead_letter))
        .route("/apps/{app}/dead-letters/{id}/replay", post(replay))
        .route("/apps/{app}/dead-letters/{id}/resolve", post(resolve))
        .route("/apps/{app}/executions/{id}", get(execution))
}

/// A trigger as created: see `TriggerRecord`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTrigger {
    name: String,
    kind: String,
    function: String,
    source: Option<String>,
    collection: Option<String>,
    ops: Option<Vec<String>>,
    schedule: Option<String>,
    /// `pubsub`: the topic (stored as the collection, with source `pubsub`).
    topic: Option<String>,
    max_attempts: Option<i64>,
    backoff_ms: Option<i64>,
}

/// The operations each source records (see `storage::changes::Change`).
fn ops_of(source: &str) -> Option<&'static [&'static str]> {
    Some(match source {
        "kv" => &["set", "increment", "delete", "expire"],
        "docs" => &["insert", "replace", "patch", "delete"],
        "files" => &["put", "delete"],
        "email" => &["receive"],
        "users" => &["create", "update", "delete"],
        _ => return None,
    })
}

fn check_trigger_name(name: &str) -> ApiResult<()> {
    let b = name.as_bytes();
    let valid = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "trigger name {name:?} must be 1-64 of A-Z a-z 0-9 '-' '_', starting with a letter or digit"
        )))
    }
}

/// Checks `new` and fills in the defaults; a cron trigger's first tick is the first
/// after `now`.
fn checked(mut new: NewTrigger, now: i64) -> ApiResult<TriggerRecord> {
    check_trigger_name(&new.name)?;
    if new.kind != "pubsub" && new.topic.is_some() {
        return Err(ApiError::bad_request("only a pubsub trigger takes a topic"));
    }
    if new.kind == "pubsub" {
        if new.source.is_some() || new.collection.is_some() || new.ops.is_some() {
            return Err(ApiError::bad_request(
                "a pubsub trigger takes a topic, no source, collection or ops",
            ));
        }
        let Some(topic) = new.topic.take() else {
            return Err(ApiError::bad_request(
                "a pubsub trigger needs the topic it runs for",
            ));
        };
        crate::events::realtime::check_topic(&topic).map_err(ApiError::bad_request)?;
        new.source = Some("pubsub".into());
        new.collection = Some(topic);
    }
    let source_ops = match new.source.as_deref() {
        None => None,
        Some("pubsub") if new.kind != "change" => None,
        Some(source) => Some(ops_of(source).ok_or_else(|| {
            ApiError::bad_request(format!(
                "source {source:?} is not one of kv, docs, files, email, users"
            ))
        })?),
    };
    if new.kind != "cron" && new.schedule.is_some() {
        return Err(ApiError::bad_request(
            "only a cron trigger takes a schedule",
        ));
    }
    let mut next_tick = None;
    match new.kind.as_str() {
        "cron" => {
            if new.source.is_some() || new.collection.is_some() || new.ops.is_some() {
                return Err(ApiError::bad_request(
                    "a cron trigger takes a schedule, no source, collection or ops",
                ));
            }
            let Some(schedule) = &new.schedule else {
                return Err(ApiError::bad_request(
                    "a cron trigger needs a schedule, like \"*/5 * * * *\" (UTC)",
                ));
            };
            let parsed = cron::parse(schedule).map_err(ApiError::bad_request)?;
            next_tick = Some(cron::next_tick(&parsed, now).ok_or_else(|| {
                ApiError::bad_request(format!("schedule {schedule:?} never fires"))
            })?);
        }
        "change" => {
            let Some(valid) = source_ops else {
                return Err(ApiError::bad_request(
                    "a change trigger needs a source: kv, docs, files or email",
                ));
            };
            if let Some(ops) = &new.ops {
                if ops.is_empty() {
                    return Err(ApiError::bad_request(
                        "ops must name at least one operation (or be left out: all)",
                    ));
                }
                if let Some(bad) = ops.iter().find(|op| !valid.contains(&op.as_str())) {
                    return Err(ApiError::bad_request(format!(
                        "{:?} writes do not include {bad:?}; their operations are {}",
                        new.source.as_deref().unwrap_or_default(),
                        valid.join(", ")
                    )));
                }
            }
            if new
                .collection
                .as_ref()
                .is_some_and(|c| c.is_empty() || c.len() > MAX_COLLECTION_BYTES)
            {
                return Err(ApiError::bad_request(format!(
                    "collection must be 1-{MAX_COLLECTION_BYTES} bytes (or be left out: all)"
                )));
            }
        }
        // Checked above.
        "pubsub" => {}
        "dead-letter" => {
            if new.collection.is_some() || new.ops.is_some() {
                return Err(ApiError::bad_request(
                    "a dead-letter trigger takes no collection or ops (only a source, optionally)",
                ));
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "kind {other:?} is not one of change, pubsub, cron, dead-letter"
            )));
        }
    }
    let max_attempts = new.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
        return Err(ApiError::bad_request(format!(
            "max_attempts must be 1-{MAX_ATTEMPTS}"
        )));
    }
    let backoff_ms = new.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS);
    if !(1..=MAX_BACKOFF_MS).contains(&backoff_ms) {
        return Err(ApiError::bad_request(format!(
            "backoff_ms must be 1-{MAX_BACKOFF_MS}"
        )));
    }
    let mut ops = new.ops;
    if let Some(ops) = &mut ops {
        ops.sort();
        ops.dedup();
    }
    Ok(TriggerRecord {
        name: new.name,
        kind: new.kind,
        function: new.function,
        source: new.source,
        collection: new.collection,
        ops,
        schedule: new.schedule,
        next_tick,
        max_attempts,
        backoff_ms,
        created_at: now_ms(),
    })
}

async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(new): Json<NewTrigger>,
) -> ApiResult<(StatusCode, Json<TriggerRecord>)> {
    let app = existing_app(&state, &app).await?;
    let trigger = checked(new, state.invoker.clock().now_ms())?;
    // The function must exist and be callable (not a Rhai module).
    state
        .control
        .callable(&app, &trigger.function, "triggers")
        .await?;
    if state.db.list_triggers(&app.id).await?.len() >= MAX_TRIGGERS_PER_APP {
        return Err(ApiError::conflict(format!(
            "app {:?} has {MAX_TRIGGERS_PER_APP} triggers, the most it may have",
            app.name
        )));
    }
    state
        .db
        .create_trigger(&app.id, &trigger)
        .await
        .map_err(|e| match e {
            StorageError::Conflict => ApiError::conflict(format!(
                "app {:?} already has a trigger called {:?}",
                app.name, trigger.name
            )),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(trigger)))
}

async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<TriggerRecord>>> {
    let app = existing_app(&state, &app).await?;
    Ok(Json(state.db.list_triggers(&app.id).await?))
}

async fn remove(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    if state.db.delete_trigger(&app.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "app {:?} has no trigger called {name:?}",
            app.name
        )))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    /// Only dead letters older than this one (the last id of the previous page).
    before: Option<i64>,
    limit: Option<u32>,
}

/// Dead letters per page, at most.
const MAX_PAGE: u32 = 200;

async fn dead_letters(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let app = existing_app(&state, &app).await?;
    let limit = page.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    Ok(Json(
        state
            .db
            .deliveries(&app.id, "dead", page.before, limit)
            .await?,
    ))
}

async fn dead_letter(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, i64)>,
) -> ApiResult<Json<DeliveryView>> {
    let app = existing_app(&state, &app).await?;
    state
        .db
        .delivery(&app.id, id)
        .await?
        .filter(|d| matches!(d.status.as_str(), "dead" | "resolved"))
        .map(Json)
        .ok_or_else(|| no_dead_letter(&app.name, id))
}

fn no_dead_letter(app: &str, id: i64) -> ApiError {
    ApiError::not_found(format!("app {app:?} has no dead letter {id}"))
}

async fn replay(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    if state.db.replay_dead_letter(&app.id, id, now_ms()).await? {
        state.db.events_written().notify_one();
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(no_dead_letter(&app.name, id))
    }
}

async fn resolve(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let app = existing_app(&state, &app).await?;
    if state.db.resolve_dead_letter(&app.id, id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_dead_letter(&app.name, id))
    }
}

async fn execution(
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<Execution>> {
    let app = existing_app(&state, &app).await?;
    let unknown = || ApiError::not_found(format!("app {:?} has no execution {id:?}", app.name));
    let number: i64 = id.parse().map_err(|_| unknown())?;
    state
        .db
        .execution(&app.id, number)
        .await?
        .map(Json)
        .ok_or_else(unknown)
}
