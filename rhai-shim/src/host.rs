//! What the shim needs from its surroundings: the [`Host`] trait, one method per SDK
//! operation of the `picloud:sdk` WIT contract, and the plain records those methods take
//! and return.
//!
//! In the wasm component the host is the WIT imports (`wasm::WitHost`); in native tests it
//! is an in-memory implementation. Values that WIT carries as JSON text are JSON text
//! here too.

use std::fmt;

/// The guest-visible SDK error: the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkError {
    /// The thing asked for does not exist.
    NotFound,
    /// The call was malformed: a bad name, a value too large, a bad query.
    Invalid(String),
    /// The app is not allowed to do this.
    Denied(String),
    /// A quota or size limit of the app was reached.
    Limit(String),
    /// The capability is not configured or temporarily unreachable.
    Unavailable(String),
    /// Something went wrong inside PiCloud.
    Internal(String),
}

impl SdkError {
    /// The error every operation of an interface the host does not provide answers:
    /// `unavailable("<interface> is not available yet")`, as the runtime's own stand-in does.
    pub fn unavailable(interface: &str) -> Self {
        Self::Unavailable(format!("{interface} is not available yet"))
    }
}

impl fmt::Display for SdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::Invalid(m) => write!(f, "invalid: {m}"),
            Self::Denied(m) => write!(f, "denied: {m}"),
            Self::Limit(m) => write!(f, "limit: {m}"),
            Self::Unavailable(m) => write!(f, "unavailable: {m}"),
            Self::Internal(m) => write!(f, "internal: {m}"),
        }
    }
}

impl std::error::Error for SdkError {}

/// The result of a fallible SDK operation.
pub type SdkResult<T> = Result<T, SdkError>;

/// One page of `kv` entries: keys with their JSON values, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvPage {
    /// Key and JSON value of each entry.
    pub entries: Vec<(String, String)>,
    /// Pass back to continue after the last entry; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// Options of a `docs` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindOptions {
    /// Fields to sort by; a leading `-` sorts descending.
    pub sort: Vec<String>,
    /// At most this many documents.
    pub limit: Option<u32>,
    /// Documents to skip first.
    pub skip: Option<u32>,
}

/// A stored JSON document and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The document's id.
    pub id: String,
    /// The document as JSON text.
    pub body: String,
}

/// What `files` knows about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// The file's path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The content type given when it was stored.
    pub content_type: String,
    /// Hex sha256 of the content.
    pub sha256: String,
    /// Milliseconds since the Unix epoch.
    pub modified: u64,
}

/// One page of a `files` listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePage {
    /// The files of this page.
    pub files: Vec<FileStat>,
    /// Pass back to continue; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// An outbound HTTP request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method in upper case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// Milliseconds; the host caps it.
    pub timeout_ms: Option<u32>,
}

/// The answer to an outbound HTTP request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
}

/// An email to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailMessage {
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// Blind-copy recipients.
    pub bcc: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body (sent as multipart/alternative with `text`).
    pub html: Option<String>,
    /// Reply-To address.
    pub reply_to: Option<String>,
}

/// An end user of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The user's email address.
    pub email: String,
    /// Whether the address was verified.
    pub email_verified: bool,
    /// Roles of the user.
    pub roles: Vec<String>,
    /// App-defined profile data, a JSON object as JSON text.
    pub data: String,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
}

/// A user to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    /// Email address.
    pub email: String,
    /// Password in clear; the host hashes it.
    pub password: String,
    /// Initial roles.
    pub roles: Vec<String>,
    /// Profile data (JSON text).
    pub data: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New email address.
    pub email: Option<String>,
    /// New password.
    pub password: Option<String>,
    /// New roles (replacing the old ones).
    pub roles: Option<Vec<String>>,
    /// New profile data (JSON text).
    pub data: Option<String>,
}

/// A session opened by a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The bearer token of the session.
    pub token: String,
    /// The user logged in.
    pub user: User,
    /// Milliseconds since the Unix epoch.
    pub expires: u64,
}

/// One page of users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPage {
    /// The users of this page.
    pub users: Vec<User>,
    /// Pass back to continue; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// Level of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// Something failed.
    Error,
}

/// The invocation the script runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The app.
    pub app: String,
    /// The function.
    pub function: String,
    /// The deployed version of the function.
    pub version: u32,
    /// The id of this invocation.
    pub invocation_id: String,
    /// What started the invocation (`http`, `cron`, `kv`, …).
    pub trigger: String,
}

/// The SDK as the shim sees it: one method per operation of the `picloud:sdk` WIT
/// interfaces, plus the source of module scripts.
///
/// Every service method has a default that answers
/// [`SdkError::unavailable`] for its interface, so an implementation only writes the
/// interfaces it provides. `log`, `runtime` and `module_source` are always provided.
pub trait Host {
    // --- kv ---

    /// `kv.get`: the JSON value at `key`, or `None`.
    fn kv_get(&self, _collection: &str, _key: &str) -> SdkResult<Option<String>> {
        Err(SdkError::unavailable("kv"))
    }
    /// `kv.set`: stores the JSON `value` at `key`, expiring after `ttl_ms` when given.
    fn kv_set(
        &self,
        _collection: &str,
        _key: &str,
        _value: &str,
        _ttl_ms: Option<u64>,
    ) -> SdkResult<()> {
        Err(SdkError::unavailable("kv"))
    }
    /// `kv.delete`: removes `key`; true when it existed.
    fn kv_delete(&self, _collection: &str, _key: &str) -> SdkResult<bool> {
        Err(SdkError::unavailable("kv"))
    }
    /// `kv.list`: entries whose key starts with `prefix`, in key order.
    fn kv_list(
        &self,
        _collection: &str,
        _prefix: &str,
        _cursor: Option<&str>,
        _limit: Option<u32>,
    ) -> SdkResult<KvPage> {
        Err(SdkError::unavailable("kv"))
    }
    /// `kv.increment`: adds `by` to the integer at `key` and returns the new value.
    fn kv_increment(&self, _collection: &str, _key: &str, _by: i64) -> SdkResult<i64> {
        Err(SdkError::unavailable("kv"))
    }

    // --- docs ---

    /// `docs.insert`: stores the JSON object `body`; returns its id.
    fn docs_insert(&self, _collection: &str, _id: Option<&str>, _body: &str) -> SdkResult<String> {
        Err(SdkError::unavailable("docs"))
    }
    /// `docs.get`: the document `id` as JSON text, or `None`.
    fn docs_get(&self, _collection: &str, _id: &str) -> SdkResult<Option<String>> {
        Err(SdkError::unavailable("docs"))
    }
    /// `docs.replace`: replaces the whole document.
    fn docs_replace(&self, _collection: &str, _id: &str, _body: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("docs"))
    }
    /// `docs.patch`: merges `patch` into the document; returns the result.
    fn docs_patch(&self, _collection: &str, _id: &str, _patch: &str) -> SdkResult<String> {
        Err(SdkError::unavailable("docs"))
    }
    /// `docs.delete`: removes the document; true when it existed.
    fn docs_delete(&self, _collection: &str, _id: &str) -> SdkResult<bool> {
        Err(SdkError::unavailable("docs"))
    }
    /// `docs.find`: the documents matching the JSON `query`.
    fn docs_find(
        &self,
        _collection: &str,
        _query: &str,
        _options: &FindOptions,
    ) -> SdkResult<Vec<Document>> {
        Err(SdkError::unavailable("docs"))
    }
    /// `docs.count`: how many documents match the JSON `query`.
    fn docs_count(&self, _collection: &str, _query: &str) -> SdkResult<u64> {
        Err(SdkError::unavailable("docs"))
    }

    // --- files ---

    /// `files.put`: stores `content` at `path`.
    fn files_put(&self, _path: &str, _content: &[u8], _content_type: &str) -> SdkResult<FileStat> {
        Err(SdkError::unavailable("files"))
    }
    /// `files.get`: the file at `path` and its content, or `None`.
    fn files_get(&self, _path: &str) -> SdkResult<Option<(FileStat, Vec<u8>)>> {
        Err(SdkError::unavailable("files"))
    }
    /// `files.head`: what is known about the file at `path`, or `None`.
    fn files_head(&self, _path: &str) -> SdkResult<Option<FileStat>> {
        Err(SdkError::unavailable("files"))
    }
    /// `files.delete`: removes the file; true when it existed.
    fn files_delete(&self, _path: &str) -> SdkResult<bool> {
        Err(SdkError::unavailable("files"))
    }
    /// `files.list`: files whose path starts with `prefix`.
    fn files_list(
        &self,
        _prefix: &str,
        _cursor: Option<&str>,
        _limit: Option<u32>,
    ) -> SdkResult<FilePage> {
        Err(SdkError::unavailable("files"))
    }

    // --- http ---

    /// `http.fetch`: sends `request` through the host's SSRF guard.
    fn http_fetch(&self, _request: &HttpRequest) -> SdkResult<HttpResponse> {
        Err(SdkError::unavailable("http"))
    }

    // --- email ---

    /// `email.send`: sends `message`; returns its message id.
    fn email_send(&self, _message: &EmailMessage) -> SdkResult<String> {
        Err(SdkError::unavailable("email"))
    }

    // --- secrets ---

    /// `secrets.get`: the secret `name`, or `None`.
    fn secrets_get(&self, _name: &str) -> SdkResult<Option<String>> {
        Err(SdkError::unavailable("secrets"))
    }
    /// `secrets.set`: stores the secret `name`.
    fn secrets_set(&self, _name: &str, _value: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("secrets"))
    }
    /// `secrets.delete`: removes the secret; true when it existed.
    fn secrets_delete(&self, _name: &str) -> SdkResult<bool> {
        Err(SdkError::unavailable("secrets"))
    }
    /// `secrets.list`: the names of the app's secrets.
    fn secrets_list(&self) -> SdkResult<Vec<String>> {
        Err(SdkError::unavailable("secrets"))
    }

    // --- users ---

    /// `users.create`.
    fn users_create(&self, _user: &NewUser) -> SdkResult<User> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.get`.
    fn users_get(&self, _id: &str) -> SdkResult<Option<User>> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.find-by-email`.
    fn users_find_by_email(&self, _email: &str) -> SdkResult<Option<User>> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.update`.
    fn users_update(&self, _id: &str, _update: &UserUpdate) -> SdkResult<User> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.delete`.
    fn users_delete(&self, _id: &str) -> SdkResult<bool> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.list`.
    fn users_list(&self, _cursor: Option<&str>, _limit: Option<u32>) -> SdkResult<UserPage> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.login`.
    fn users_login(&self, _email: &str, _password: &str) -> SdkResult<Session> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.verify`: the user of a session token.
    fn users_verify(&self, _token: &str) -> SdkResult<User> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.logout`.
    fn users_logout(&self, _token: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.request-password-reset`.
    fn users_request_password_reset(&self, _email: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.reset-password`.
    fn users_reset_password(&self, _token: &str, _new_password: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.request-verification`.
    fn users_request_verification(&self, _id: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.verify-email`.
    fn users_verify_email(&self, _token: &str) -> SdkResult<User> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.invite`.
    fn users_invite(&self, _email: &str, _roles: &[String]) -> SdkResult<()> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.accept-invite`.
    fn users_accept_invite(&self, _token: &str, _password: &str) -> SdkResult<User> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.add-role`.
    fn users_add_role(&self, _id: &str, _role: &str) -> SdkResult<User> {
        Err(SdkError::unavailable("users"))
    }
    /// `users.remove-role`.
    fn users_remove_role(&self, _id: &str, _role: &str) -> SdkResult<User> {
        Err(SdkError::unavailable("users"))
    }

    // --- pubsub ---

    /// `pubsub.publish`: delivers the JSON `message` to realtime subscribers.
    fn pubsub_publish(&self, _topic: &str, _message: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("pubsub"))
    }
    /// `pubsub.publish-durable`: also delivers to the app's pubsub triggers.
    fn pubsub_publish_durable(&self, _topic: &str, _message: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("pubsub"))
    }
    /// `pubsub.subscriber-token`: a token letting a browser subscribe to `topics`.
    fn pubsub_subscriber_token(&self, _topics: &[String], _ttl_secs: u32) -> SdkResult<String> {
        Err(SdkError::unavailable("pubsub"))
    }

    // --- dead-letters ---

    /// `dead-letters.replay`.
    fn dead_letters_replay(&self, _id: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("dead_letters"))
    }
    /// `dead-letters.resolve`.
    fn dead_letters_resolve(&self, _id: &str) -> SdkResult<()> {
        Err(SdkError::unavailable("dead_letters"))
    }

    // --- log, runtime, rhai-script (always provided) ---

    /// `log.log`: records one line; `fields` is a JSON object as JSON text.
    fn log(&self, level: LogLevel, message: &str, fields: Option<&str>);
    /// `runtime.info`: the invocation the script runs in.
    fn runtime_info(&self) -> RuntimeInfo;
    /// `runtime.remaining-fuel`.
    fn remaining_fuel(&self) -> u64;
    /// `runtime.now`: wall-clock time in milliseconds since the Unix epoch (UTC).
    fn now_ms(&self) -> u64;
    /// `rhai-script.module-source`: the source of the app's module script `name`.
    fn module_source(&self, name: &str) -> Option<String>;
}
