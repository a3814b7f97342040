//! Realtime: browsers subscribe to an app's external topics over Server-Sent Events
//! (`GET /rt/{app}/{topic}`) and receive what its functions publish
//! (`pubsub::publish`, `pubsub::publish_durable`).
//!
//! - **Auth**: a subscriber token a function minted (`pubsub::subscriber_token(topics,
//!   ttl)`): `rt1.<claims>.<HMAC-SHA256>` with the app, its topics and an expiry, signed
//!   with a key derived from the server's master key and the app's id (so every node
//!   verifies it, and an app's token never verifies for another). Sent as
//!   `Authorization: Bearer …` or `?token=…` (`EventSource` cannot set headers). A
//!   missing, malformed, forged, expired or other-topic token is the same 401. A topic
//!   declared with `sessions` also takes an end user's session token (`users::login`,
//!   `ses_…`) of the app: the stream ends when the session expires, and the session is
//!   re-checked at every heartbeat, so a logout or password reset ends it too.
//! - **404** for an unknown app, a topic not declared, or one declared internal: the
//!   answer does not tell which, so internal topics cannot be probed.
//! - **Delivery**: an in-process broadcast channel per (app, topic). Each subscriber has
//!   a buffer of [`RealtimeConfig::buffer`] messages; one that falls further behind is
//!   disconnected (its client reconnects, resuming durable topics with
//!   `Last-Event-ID`) rather than slowing publishers or growing without bound.
//! - **Resume**: durable messages carry their outbox id as the SSE `id`; a subscriber
//!   sending `Last-Event-ID` first gets the topic's durable messages after it, as far
//!   back as change-event retention keeps them. Ephemeral messages (`publish`) have no
//!   id and are not replayed.
//! - **Heartbeat**: a comment line every [`RealtimeConfig::heartbeat`] (30 s) keeps
//!   proxies from closing an idle stream. The stream ends when the token expires and at
//!   server shutdown.
//! - **Several nodes** (PostgreSQL): a node relays each message its functions publish
//!   to the others with `NOTIFY` on [`RELAY_CHANNEL`]; every node listens and hands what
//!   other nodes published to its own subscribers. A durable message too large for a
//!   notification (8,000 bytes) travels as its id and is read from the outbox; an
//!   ephemeral one that large reaches the publishing node's subscribers only.

use crate::error::ApiError;
use crate::server::AppState;
use crate::services::common::check_name;
use crate::vault::Keys;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Default interval of the heartbeat comment (SPEC §6).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// Default buffer of one subscriber, in messages.
pub const DEFAULT_BUFFER: usize = 256;
/// Default most subscribers of one app at once on one node.
pub const DEFAULT_MAX_SUBSCRIBERS_PER_APP: usize = 10_000;
/// Default most subscribers of all apps at once on one node (each holds a connection).
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 50_000;
/// Shortest and longest lifetime of a subscriber token, in seconds; a function asking
/// for less or more gets these.
pub const TOKEN_TTL_SECS: (u32, u32) = (10, 86_400);
/// Most topics one token may name.
pub const MAX_TOKEN_TOPICS: usize = 32;
/// Longest token the server reads, in bytes (32 topic names of 64 bytes fit).
const MAX_TOKEN_BYTES: usize = 4096;
/// Durable messages replayed per database read while a subscriber resumes.
const REPLAY_PAGE: u32 = 256;
/// The PostgreSQL notification channel messages travel between nodes on.
pub const RELAY_CHANNEL: &str = "picloud_realtime";
/// How an end user's session token starts (`users::login`); any other token is a
/// subscriber token a function minted.
pub const SESSION_TOKEN_PREFIX: &str = "ses_";

/// Largest notification payload sent (PostgreSQL takes up to 8,000 bytes).
const MAX_RELAY_PAYLOAD: usize = 7_900;
/// The purpose of the derived signing keys.
const KEY_PURPOSE: &str = "realtime-subscriber-token";

/// How realtime works on this node.
#[derive(Debug, Clone, Copy)]
pub struct RealtimeConfig {
    /// Interval of the heartbeat comment.
    pub heartbeat: Duration,
    /// Messages a subscriber may fall behind before it is disconnected.
    pub buffer: usize,
    /// Most subscribers of one app at once (more are answered 429).
    pub max_subscribers_per_app: usize,
    /// Most subscribers of all apps at once (more are answered 503).
    pub max_subscribers: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat: DEFAULT_HEARTBEAT,
            buffer: DEFAULT_BUFFER,
            max_subscribers_per_app: DEFAULT_MAX_SUBSCRIBERS_PER_APP,
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
        }
    }
}

/// One message as subscribers get it.
#[derive(Debug)]
pub struct Published {
    /// The outbox id of a durable message (the SSE `id`); none for an ephemeral one.
    pub id: Option<i64>,
    /// The message, compact JSON text (one line: the SSE `data`).
    pub data: String,
}

type Channels = HashMap<String, HashMap<String, broadcast::Sender<Arc<Published>>>>;

/// This node's realtime subscribers, by app and topic.
pub struct Realtime {
    config: RealtimeConfig,
    /// App id → topic → the channel of its subscribers (present while it has any).
    channels: Mutex<Channels>,
    /// Subscribers connected, by app id and in all.
    counts: Mutex<Counts>,
    /// Set at shutdown: every stream ends.
    closed: watch::Sender<bool>,
    /// This node's id, once it relays messages to other nodes (PostgreSQL).
    relay_node: std::sync::OnceLock<String>,
}

/// A message as relayed between nodes.
#[derive(serde::Serialize, serde::Deserialize)]
struct Relayed {
    /// The node that published it (which delivered it to its own subscribers).
    node: String,
    app: String,
    topic: String,
    id: Option<i64>,
    /// Left out when too large: the receiver reads the durable message by its id.
    data: Option<String>,
}

/// See [`Realtime::counts`].
#[derive(Default)]
struct Counts {
    by_app: HashMap<String, usize>,
    total: usize,
}

/// Why [`Realtime::subscribe`] refused a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The app has [`RealtimeConfig::max_subscribers_per_app`].
    App,
    /// The node has [`RealtimeConfig::max_subscribers`].
    Node,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Realtime {
    /// No subscribers yet.
    pub fn new(config: RealtimeConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            channels: Mutex::new(HashMap::new()),
            counts: Mutex::default(),
            closed: watch::channel(false).0,
            relay_node: std::sync::OnceLock::new(),
        })
    }

    /// Relays what functions publish on this node, node `node` of several sharing one
    /// PostgreSQL database, to the others (see [`relay_listener`]).
    pub fn relay_as(&self, node: &str) {
        let _ = self.relay_node.set(node.to_owned());
    }

    /// The notification that tells the other nodes of `message`, published on this
    /// node; `None` when this node does not relay, or an ephemeral message is too large.
    pub fn relay_payload(&self, app_id: &str, topic: &str, message: &Published) -> Option<String> {
        let node = self.relay_node.get()?;
        let mut relayed = Relayed {
            node: node.clone(),
            app: app_id.to_owned(),
            topic: topic.to_owned(),
            id: message.id,
            data: Some(message.data.clone()),
        };
        let payload = serde_json::to_string(&relayed).ok()?;
        if payload.len() <= MAX_RELAY_PAYLOAD {
            return Some(payload);
        }
        message.id?;
        relayed.data = None;
        serde_json::to_string(&relayed).ok()
    }

    /// How realtime works here.
    pub fn config(&self) -> RealtimeConfig {
        self.config
    }

    /// Hands `message` to the subscribers of `topic` of app `app_id` connected to this
    /// node; answers how many there were. Never waits: a subscriber too far behind
    /// loses its place (and its connection), not the publisher its time.
    pub fn publish(&self, app_id: &str, topic: &str, message: Published) -> usize {
        let sender = lock(&self.channels)
            .get(app_id)
            .and_then(|topics| topics.get(topic))
            .cloned();
        sender.map_or(0, |sender| sender.send(Arc::new(message)).unwrap_or(0))
    }

    /// A new subscriber of `topic` of app `app_id`, unless the app or the node has its
    /// most.
    pub fn subscribe(self: &Arc<Self>, app_id: &str, topic: &str) -> Result<Subscription, Full> {
        {
            let mut counts = lock(&self.counts);
            if counts.total >= self.config.max_subscribers {
                return Err(Full::Node);
            }
            let count = counts.by_app.entry(app_id.to_owned()).or_default();
            if *count >= self.config.max_subscribers_per_app {
                if *count == 0 {
                    counts.by_app.remove(app_id);
                }
                return Err(Full::App);
            }
            *count += 1;
            counts.total += 1;
        }
        let receiver = lock(&self.channels)
            .entry(app_id.to_owned())
            .or_default()
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(self.config.buffer.max(1)).0)
            .subscribe();
        Ok(Subscription {
            receiver: Some(receiver),
            realtime: self.clone(),
            app_id: app_id.to_owned(),
            topic: topic.to_owned(),
        })
    }

    /// Subscribers connected to this node, in all.
    pub fn subscribers(&self) -> usize {
        lock(&self.counts).total
    }

    /// Turns true when the server closes: other long streams (the dashboard's live
    /// tail) end with it.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Ends every stream (server shutdown: open streams would keep it waiting).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Mints a token for app `app_id` that subscribes to `topics` until `expires_at`
    /// (seconds since the Unix epoch).
    pub fn mint_token(keys: &Keys, app_id: &str, topics: &[String], expires_at: u64) -> String {
        let claims = serde_json::json!({ "app": app_id, "topics": topics, "exp": expires_at });
        let payload = B64URL.encode(claims.to_string());
        let key = keys
            .derived(KEY_PURPOSE, app_id)
            .into_iter()
            .next()
            .expect("there is always a current key");
        let signature = B64URL.encode(sign(&key, &payload).finalize().into_bytes());
        format!("rt1.{payload}.{signature}")
    }

    /// When `token` lets a subscriber of app `app_id` receive `topic`, its expiry
    /// (seconds since the Unix epoch); otherwise `None`, whatever the reason.
    pub fn verify_token(
        keys: &Keys,
        app_id: &str,
        topic: &str,
        token: &str,
        now_secs: u64,
    ) -> Option<u64> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let rest = token.strip_prefix("rt1.")?;
        let (payload, signature) = rest.split_once('.')?;
        let signature = B64URL.decode(signature).ok()?;
        let signed = keys
            .derived(KEY_PURPOSE, app_id)
            .iter()
            .any(|key| sign(key, payload).verify_slice(&signature).is_ok());
        if !signed {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Claims {
            app: String,
            topics: Vec<String>,
            exp: u64,
        }
        let claims: Claims = serde_json::from_slice(&B64URL.decode(payload).ok()?).ok()?;
        (claims.app == app_id && claims.exp > now_secs && claims.topics.iter().any(|t| t == topic))
            .then_some(claims.exp)
    }
}

/// Listens on [`RELAY_CHANNEL`] of the PostgreSQL database at `url` and hands what
/// other nodes published to this node's subscribers; runs until dropped (reconnecting
/// after a lost connection: messages relayed meanwhile are lost to this node's realtime
/// subscribers, durable ones stay readable with `Last-Event-ID`).
pub async fn relay_listener(url: String, db: crate::storage::Db, realtime: Arc<Realtime>) {
    let Some(node) = realtime.relay_node.get().cloned() else {
        return;
    };
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(RELAY_CHANNEL).await {
                Ok(()) => loop {
                    match listener.recv().await {
                        Ok(notification) => {
                            relay_in(&db, &realtime, &node, notification.payload()).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the realtime relay lost its connection");
                            break;
                        }
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "listening for relayed realtime messages failed")
                }
            },
            Err(e) => tracing::warn!(error = %e, "connecting the realtime relay failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Hands one relayed message to this node's subscribers (not one this node sent).
async fn relay_in(db: &crate::storage::Db, realtime: &Realtime, node: &str, payload: &str) {
    let Ok(relayed) = serde_json::from_str::<Relayed>(payload) else {
        tracing::warn!("an unreadable realtime relay message was ignored");
        return;
    };
    if relayed.node == node {
        return;
    }
    let data = match (relayed.data, relayed.id) {
        (Some(data), _) => data,
        (None, Some(id)) => {
            match db
                .messages_since(&relayed.app, &relayed.topic, id - 1, 1)
                .await
            {
                Ok(mut found) if found.first().is_some_and(|m| m.seq == id) => {
                    found.remove(0).message
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a relayed durable message failed");
                    return;
                }
            }
        }
        (None, None) => return,
    };
    realtime.publish(
        &relayed.app,
        &relayed.topic,
        Published {
            id: relayed.id,
            data,
        },
    );
}

fn sign(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(b"rt1.");
    mac.update(payload.as_bytes());
    mac
}

/// One subscriber's place in a topic's channel; leaving removes the channel once it has
/// no subscribers.
pub struct Subscription {
    receiver: Option<broadcast::Receiver<Arc<Published>>>,
    realtime: Arc<Realtime>,
    app_id: String,
    topic: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        {
            let mut channels = lock(&self.realtime.channels);
            if let Some(topics) = channels.get_mut(&self.app_id) {
                if topics
                    .get(&self.topic)
                    .is_some_and(|sender| sender.receiver_count() == 0)
                {
                    topics.remove(&self.topic);
                }
                if topics.is_empty() {
                    channels.remove(&self.app_id);
                }
            }
        }
        let mut counts = lock(&self.realtime.counts);
        if let Some(count) = counts.by_app.get_mut(&self.app_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.by_app.remove(&self.app_id);
            }
            counts.total = counts.total.saturating_sub(1);
        }
    }
}

/// A topic name as functions and operators give it (see [`check_name`]).
pub fn check_topic(name: &str) -> Result<(), String> {
    check_name("topic name", name)
}

/// The realtime endpoint.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/rt/{app}/{topic}", get(subscribe))
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The one answer to a subscriber without a valid token.
fn unauthorized() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid subscriber token is required",
    )
}

fn no_topic() -> ApiError {
    ApiError::not_found("no such topic")
}

/// Where a subscriber's stream is.
struct Streaming {
    subscription: Subscription,
    /// Durable messages to replay before live ones (resume), a page at a time.
    replay: VecDeque<Event>,
    /// Reading further pages of the replay from here, until one comes back short.
    resume: Option<(AppState, String, String, i64)>,
    /// The highest durable id replayed (or the client's `Last-Event-ID`): live copies
    /// up to it were sent already. Live messages are never skipped otherwise — from
    /// several nodes they may arrive out of id order.
    replayed_up_to: i64,
    expires: tokio::time::Instant,
    closed: watch::Receiver<bool>,
    /// A subscriber by end-user session: the session, re-checked every `recheck_every`
    /// (the heartbeat), so a logout or password reset ends the stream.
    session: Option<SessionCheck>,
}

struct SessionCheck {
    users: crate::services::users::Users,
    token: String,
    next: tokio::time::Instant,
    every: Duration,
}

/// What woke a streaming subscriber.
enum Woke {
    Message(Arc<Published>),
    Recheck,
}

async fn subscribe(
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let mut response = open(state, &app, &topic, query, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    // Pages of any origin may subscribe: the token, not a cookie, is the credential.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

async fn open(
    state: AppState,
    app: &str,
    topic: &str,
    query: TokenQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if check_topic(topic).is_err() {
        return Err(no_topic());
    }
    let app = state.invoker.app(app).await?.ok_or_else(no_topic)?;
    let Some(declared) = state
        .db
        .get_topic(&app.id, topic)
        .await?
        .filter(|t| t.external)
    else {
        return Err(no_topic());
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = bearer.or(query.token.as_deref()).ok_or_else(unauthorized)?;
    let now = state.invoker.clock().now_ms();
    let now_secs = u64::try_from(now / 1000).unwrap_or(0);
    let heartbeat = state.invoker.realtime().config().heartbeat;
    let (expires_at, session) = if token.starts_with(SESSION_TOKEN_PREFIX) {
        // An end user's session, on a topic that takes them.
        if !declared.sessions {
            return Err(unauthorized());
        }
        let users =
            crate::services::users::Users::new(state.db.clone(), app.id.as_str().into(), None);
        let (_, expires_ms) = users.verify_session(token).await.map_err(|e| match e {
            picloud_runtime::GuestError::Denied(_) => unauthorized(),
            e => ApiError::unavailable(format!("checking the session failed: {e:?}")),
        })?;
        let session = SessionCheck {
            users,
            token: token.to_owned(),
            next: tokio::time::Instant::now() + heartbeat,
            every: heartbeat,
        };
        (u64::try_from(expires_ms / 1000).unwrap_or(0), Some(session))
    } else {
        let keys = state
            .db
            .secret_keys()
            .ok_or_else(|| ApiError::unavailable("realtime needs the secrets master key"))?;
        let expires_at = Realtime::verify_token(keys, &app.id, topic, token, now_secs)
            .ok_or_else(unauthorized)?;
        (expires_at, None)
    };
    let realtime = state.invoker.realtime().clone();
    let subscription = realtime
        .subscribe(&app.id, topic)
        .map_err(|full| match full {
            Full::App => ApiError::quota_exceeded(format!(
                "app {} has its most realtime subscribers ({})",
                app.name,
                realtime.config().max_subscribers_per_app
            )),
            Full::Node => ApiError::unavailable("this server has its most realtime subscribers"),
        })
        .map_err(|e| e.with_retry_after(5))?;
    // Subscribed first, then the replay read: a message published in between is in
    // both, and the live copy is skipped by its id.
    let resume_from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let left = Duration::from_secs(expires_at.saturating_sub(now_secs));
    let mut streaming = Streaming {
        subscription,
        replay: VecDeque::new(),
        resume: None,
        replayed_up_to: 0,
        expires: tokio::time::Instant::now() + left,
        closed: realtime.closed.subscribe(),
        session,
    };
    if let Some(after) = resume_from {
        streaming.replayed_up_to = after;
        streaming.resume = Some((state.clone(), app.id.clone(), topic.to_owned(), after));
        streaming.read_replay().await?;
    }
    let stream = futures_util::stream::unfold(streaming, |mut s| async move {
        let event = s.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), s))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response())
}

impl Streaming {
    /// Reads the next page of the replay; the resume ends with a short page.
    async fn read_replay(&mut self) -> Result<(), ApiError> {
        let Some((state, app_id, topic, after)) = self.resume.take() else {
            return Ok(());
        };
        let page = state
            .db
            .messages_since(&app_id, &topic, after, REPLAY_PAGE)
            .await?;
        let full = page.len() == REPLAY_PAGE as usize;
        let mut last = after;
        for message in page {
            last = message.seq;
            self.replay.push_back(
                Event::default()
                    .id(message.seq.to_string())
                    .data(message.message),
            );
        }
        self.replayed_up_to = self.replayed_up_to.max(last);
        if full {
            self.resume = Some((state, app_id, topic, last));
        }
        Ok(())
    }

    /// The next event, or `None` when the stream ends: token expired, server closing,
    /// subscriber too far behind.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.replay.pop_front() {
                return Some(event);
            }
            if self.resume.is_some() {
                if let Err(e) = self.read_replay().await {
                    tracing::warn!(error = ?e.message, "reading durable messages to replay failed");
                    return None;
                }
                continue;
            }
            let receiver = self.subscription.receiver.as_mut()?;
            let recheck = self.session.as_ref().map(|s| s.next);
            let woke = tokio::select! {
                received = receiver.recv() => match received {
                    Ok(message) => Woke::Message(message),
                    // Too far behind: disconnected, rather than slowing publishers.
                    Err(broadcast::error::RecvError::Lagged(_))
                    | Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(self.expires) => return None,
                _ = self.closed.wait_for(|closed| *closed) => return None,
                () = tokio::time::sleep_until(recheck.unwrap_or(self.expires)), if recheck.is_some() => Woke::Recheck,
            };
            let message = match woke {
                Woke::Message(message) => message,
                Woke::Recheck => {
                    let session = self.session.as_mut()?;
                    if session.users.verify(&session.token).await.is_err() {
                        // Logged out, reset, deleted — or the check failed: the client
                        // reconnects and is checked again.
                        return None;
                    }
                    session.next = tokio::time::Instant::now() + session.every;
                    continue;
                }
            };
            let event = Event::default().data(&message.data);
            match message.id {
                Some(id) if id <= self.replayed_up_to => continue,
                Some(id) => return Some(event.id(id.to_string())),
                None => return Some(event),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::MasterKey;

    fn keys() -> Keys {
        Keys::new(MasterKey::generate().0, None)
    }

    #[test]
    fn a_token_subscribes_to_its_topics_of_its_app_until_it_expires() {
        let keys = keys();
        let token = Realtime::mint_token(&keys, "app-a", &["news".into(), "prices".into()], 1_000);
        assert_eq!(
            Realtime::verify_token(&keys, "app-a", "news", &token, 999),
            Some(1_000)
        );
        assert!(Realtime::verify_token(&keys, "app-a", "prices", &token, 999).is_some());
        assert!(Realtime::verify_token(&keys, "app-a", "other", &token, 999).is_none());
        assert!(Realtime::verify_token(&keys, "app-b", "news", &token, 999).is_none());
        assert!(Realtime::verify_token(&keys, "app-a", "news", &token, 1_000).is_none());
        // Another server's master key signs differently.
        assert!(Realtime::verify_token(&self::keys(), "app-a", "news", &token, 999).is_none());
    }

    #[test]
    fn a_forged_or_mangled_token_verifies_nothing() {
        let keys = keys();
        let token = Realtime::mint_token(&keys, "app-a", &["news".into()], 1_000);
        let (head, signature) = token.rsplit_once('.').unwrap();
        // Claims widened (another topic, a later expiry) under the old signature.
        let forged_claims =
            B64URL.encode(r#"{"app":"app-a","topics":["news","secret"],"exp":99999}"#);
        let forged = format!("rt1.{forged_claims}.{signature}");
        assert!(Realtime::verify_token(&keys, "app-a", "secret", &forged, 999).is_none());
        for bad in [
            String::new(),
            "rt1.".into(),
            format!("{head}."),
            format!("{head}.{signature}x"),
            format!("rt2{}", &token[3..]),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(
                Realtime::verify_token(&keys, "app-a", "news", &bad, 999).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tokens_signed_before_a_key_rotation_verify_during_it() {
        let (old, old_text) = MasterKey::generate();
        let before = Keys::new(old, None);
        let token = Realtime::mint_token(&before, "app-a", &["news".into()], 1_000);
        let during = Keys::new(
            MasterKey::generate().0,
            Some(MasterKey::from_base64(&old_text).unwrap()),
        );
        assert!(Realtime::verify_token(&during, "app-a", "news", &token, 999).is_some());
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_dropped_and_publishers_never_wait() {
        let realtime = Realtime::new(RealtimeConfig {
            buffer: 4,
            ..RealtimeConfig::default()
        });
        let mut slow = realtime.subscribe("a", "t").unwrap();
        let mut fast = realtime.subscribe("a", "t").unwrap();
        for i in 0..10 {
            let data = i.to_string();
            assert_eq!(realtime.publish("a", "t", Published { id: None, data }), 2);
            let got = fast.receiver.as_mut().unwrap().recv().await.unwrap();
            assert_eq!(got.data, i.to_string());
        }
        assert!(matches!(
            slow.receiver.as_mut().unwrap().recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }

    #[test]
    fn a_relayed_message_names_its_node_and_leaves_out_what_does_not_fit() {
        let realtime = Realtime::new(RealtimeConfig::default());
        let small = Published {
            id: None,
            data: "1".into(),
        };
        assert_eq!(
            realtime.relay_payload("a", "t", &small),
            None,
            "not relaying"
        );
        realtime.relay_as("node-1");
        let payload = realtime.relay_payload("a", "t", &small).unwrap();
        let relayed: Relayed = serde_json::from_str(&payload).unwrap();
        assert_eq!(
            (
                relayed.node.as_str(),
                relayed.app.as_str(),
                relayed.topic.as_str()
            ),
            ("node-1", "a", "t")
        );
        assert_eq!(relayed.data.as_deref(), Some("1"));
        let big = "x".repeat(MAX_RELAY_PAYLOAD);
        let durable = Published {
            id: Some(7),
            data: big.clone(),
        };
        let relayed: Relayed =
            serde_json::from_str(&realtime.relay_payload("a", "t", &durable).unwrap()).unwrap();
        assert_eq!((relayed.id, relayed.data), (Some(7), None));
        let ephemeral = Published {
            id: None,
            data: big,
        };
        assert_eq!(realtime.relay_payload("a", "t", &ephemeral), None);
    }

    #[test]
    fn subscribers_are_capped_per_app_and_per_node_and_channels_go_with_their_last_subscriber() {
        let realtime = Realtime::new(RealtimeConfig {
            max_subscribers_per_app: 2,
            max_subscribers: 4,
            ..RealtimeConfig::default()
        });
        let a1 = realtime.subscribe("a", "t").unwrap();
        let a2 = realtime.subscribe("a", "u").unwrap();
        assert_eq!(
            realtime.subscribe("a", "t").err(),
            Some(Full::App),
            "app a is at its cap"
        );
        let b = realtime.subscribe("b", "t").unwrap();
        assert_eq!(realtime.subscribers(), 3);
        let c = realtime.subscribe("c", "t").unwrap();
        assert_eq!(
            realtime.subscribe("d", "t").err(),
            Some(Full::Node),
            "the node is at its cap, whichever app asks"
        );
        drop(c);
        let d = realtime.subscribe("d", "t").unwrap();
        drop((a1, a2, b, d));
        assert_eq!(realtime.subscribers(), 0);
        assert!(lock(&realtime.channels).is_empty());
        assert_eq!(
            realtime.publish(
                "a",
                "t",
                Published {
                    id: None,
                    data: "1".into()
                }
            ),
            0
        );
    }
}
