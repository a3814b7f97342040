//! `picloud:sdk/users`: the end users of an app — accounts, sessions, email
//! verification, password reset, invitations and roles. [`Users`] holds the rules; the
//! SDK service ([`UsersService`]) and the admin API (`api/users.rs`) both go through it.
//!
//! - **Passwords**: 8–256 characters, not one of the most common ones; hashed with
//!   argon2id, m = 19,456 KiB, t = 2, p = 1 (OWASP's minimum), as a PHC string that
//!   carries its parameters: a hash made with weaker ones is replaced at the next
//!   successful login. Hashing is CPU-heavy, so it runs on the blocking pool behind
//!   [`Passwords`]: at most one hash per app at a time and, over all apps, one per core
//!   but one — a tenant hashing in a loop never takes every core, and apps take turns.
//!   An invocation hashes at most [`MAX_HASHES_PER_INVOCATION`] times. Passwords are
//!   never logged, returned, or put in a change event.
//! - **Login** answers the same `denied` for an unknown email and a wrong password, after
//!   the same work (an unknown email is checked against a dummy hash). After
//!   [`FREE_FAILURES`] failures in a row an account is locked for 1 s, then 2, 4, … at
//!   most [`MAX_LOCK`] (answering `limit` with the time to wait); a success clears the
//!   count. An app with more than [`APP_FAILURES_PER_MINUTE`] failed logins in a minute
//!   answers `limit` to every login until the minute ends.
//! - **Sessions**: 256-bit random tokens, stored as their sha256, valid for
//!   [`SESSION_TTL`] from login (fixed, not sliding: `verify` is one read, no write). A
//!   password change or reset ends every session of the user; at most
//!   [`crate::storage::users::MAX_SESSIONS_PER_USER`] per user (a login beyond ends the oldest).
//! - **Email tokens** (verification 24 h, reset 1 h, invitation 7 days): single-use,
//!   stored hashed, sent through the app's `email` with a link built from the app's
//!   template (`picloud users settings APP --link-url 'https://…?token={token}'`;
//!   `{action}` becomes `verify-email`, `reset-password` or `accept-invite`).
//!   `request-password-reset` answers the same whether or not the email is known (the
//!   email leaves in the background).
//! - **Emails** are normalised (trimmed, Unicode NFC, lowercase) and unique per app.

use super::common::{guest_error, page, page_limit};
use super::email::EmailService;
use crate::storage::users::UserRow;
use crate::storage::{Db, StorageError, new_id, now_ms};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use picloud_runtime::email::Host as _;
use picloud_runtime::users::{self, Host};
use picloud_runtime::{Answer, GuestError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::instrument;
use unicode_normalization::UnicodeNormalization;

/// argon2id memory, KiB.
pub const ARGON2_M_KIB: u32 = 19_456;
/// argon2id passes.
pub const ARGON2_T: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P: u32 = 1;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Password hashes (create, login, password change, reset, accepting an invitation)
/// one invocation may do; more answer `limit`.
pub const MAX_HASHES_PER_INVOCATION: u32 = 8;
/// How long a session lasts from login.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Failed logins in a row an account takes before it is locked.
pub const FREE_FAILURES: i64 = 5;
/// The longest an account is locked after failed logins.
pub const MAX_LOCK: Duration = Duration::from_secs(60);
/// Failed logins per app per minute beyond which the app's logins answer `limit`.
pub const APP_FAILURES_PER_MINUTE: i64 = 300;
/// Roles one user has at most.
pub const MAX_ROLES: usize = 32;
/// Largest `data` of a user, in bytes of JSON.
pub const MAX_DATA_BYTES: usize = 16 * 1024;
/// Longest email address, in bytes.
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest link template, in bytes.
pub const MAX_LINK_TEMPLATE_BYTES: usize = 2048;

const VERIFY_TTL: Duration = Duration::from_secs(86_400);
const RESET_TTL: Duration = Duration::from_secs(3_600);
const INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);
const LOGIN_FAILED: &str = "invalid email or password";
const BAD_TOKEN: &str = "invalid or expired token";

/// The most common passwords (of public breach-corpus top lists) of 8 or more
/// characters, lowercase; a password equal to one of them, in any case, is refused.
const COMMON_PASSWORDS: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "password",
    "password1",
    "password12",
    "password123",
    "password!",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "iloveyou",
    "iloveyou1",
    "11111111",
    "111111111",
    "00000000",
    "88888888",
    "87654321",
    "abcd1234",
    "abc12345",
    "abcdefgh",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "superman",
    "trustno1",
    "letmein1",
    "letmein123",
    "starwars",
    "whatever",
    "computer",
    "michelle",
    "jennifer",
    "1234qwer",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "asdfghjkl",
    "asdf1234",
    "zxcvbnm1",
    "zxcvbnmm",
    "changeme",
    "changeme1",
    "admin123",
    "administrator",
    "internet",
    "dragon12",
    "monkey12",
    "master12",
    "shadow12",
    "mustang1",
    "football1",
    "liverpool",
    "chocolate",
    "passport",
    "secret123",
    "summer2024",
    "winter2024",
    "123123123",
    "123qweasd",
    "qweasdzxc",
    "987654321",
    "a1b2c3d4",
    "aa123456",
    "access14",
    "987654321a",
    "picloud1",
    "picloud123",
];

/// The process's password hashing: argon2id on the blocking pool, one hash per app at a
/// time and at most one per core but one over all apps (see the module docs).
pub struct Passwords {
    argon: Argon2<'static>,
    cores: Arc<Semaphore>,
    apps: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

/// The process's [`Passwords`].
static PASSWORDS: LazyLock<Arc<Passwords>> = LazyLock::new(|| Arc::new(Passwords::new()));

/// A hash of a password nobody has, checked for unknown emails so that a login takes
/// the same work either way.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    PASSWORDS
        .hash_now("a password nobody has")
        .unwrap_or_default()
});

/// What checking a password found.
struct Checked {
    matches: bool,
    /// A new hash with today's parameters, when the stored one was weaker and matched.
    rehashed: Option<String>,
}

impl Passwords {
    fn new() -> Self {
        let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
            .expect("the argon2id parameters are valid");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            cores: Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))),
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// The process's password hashing.
    pub fn shared() -> Arc<Passwords> {
        PASSWORDS.clone()
    }

    fn hash_now(&self, password: &str) -> Result<String, GuestError> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| GuestError::Internal(format!("password salt: {e}")))?;
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| GuestError::Internal(format!("password hashing failed: {e}")))
    }

    fn check_now(&self, password: &str, stored: &str) -> Checked {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Checked {
                matches: false,
                rehashed: None,
            };
        };
        let matches = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() >= ARGON2_M_KIB && p.t_cost() >= ARGON2_T && p.p_cost() >= ARGON2_P
            });
        let rehashed = (matches && !current)
            .then(|| self.hash_now(password).ok())
            .flatten();
        Checked { matches, rehashed }
    }

    /// Runs `work` on the blocking pool once app `app` has no other hash running and a
    /// core is free. The permits go with the work: a caller that stops waiting (its
    /// invocation timed out) does not free them before the hash ends.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        app: &Arc<str>,
        work: impl FnOnce(&Passwords) -> T + Send + 'static,
    ) -> Result<T, GuestError> {
        let app_gate = {
            let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
            apps.retain(|_, gate| Arc::strong_count(gate) > 1);
            apps.entry(app.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        let closed = |_| GuestError::Internal("password hashing is shut down".into());
        let app_permit = app_gate.acquire_owned().await.map_err(closed)?;
        // The permit keeps the app's gate alive (and in the map) until the work ends.
        let core_permit = self.cores.clone().acquire_owned().await.map_err(closed)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let out = work(&this);
            drop((core_permit, app_permit));
            out
        })
        .await
        .map_err(|e| GuestError::Internal(format!("password hashing failed: {e}")))
    }

    /// The PHC string of `password`'s hash.
    pub async fn hash(
        self: &Arc<Self>,
        app: &Arc<str>,
        password: &str,
    ) -> Result<String, GuestError> {
        let password = password.to_owned();
        self.run(app, move |p| p.hash_now(&password)).await?
    }

    async fn check(
        self: &Arc<Self>,
        app: &Arc<str>,
        password: &str,
        stored: Option<String>,
    ) -> Result<Checked, GuestError> {
        let password = password.to_owned();
        self.run(app, move |p| match stored {
            Some(stored) => p.check_now(&password, &stored),
            None => {
                p.check_now(&password, &DUMMY_HASH);
                Checked {
                    matches: false,
                    rehashed: None,
                }
            }
        })
        .await
    }
}

/// Checks a new password (length, common passwords).
pub fn check_password(password: &str) -> Result<(), GuestError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(GuestError::Invalid(format!(
            "a password has {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters, got {chars}"
        )));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(GuestError::Invalid(
            "this password is one of the most common ones; choose another".into(),
        ));
    }
    Ok(())
}

/// `email` normalised (trimmed, Unicode NFC, lowercase), or why it is not an address.
pub fn normalise_email(email: &str) -> Result<String, GuestError> {
    let normal: String = email.trim().nfc().collect::<String>().to_lowercase();
    let invalid = || GuestError::Invalid(format!("{email:?} is not a valid email address"));
    if normal.is_empty() || normal.len() > MAX_EMAIL_BYTES {
        return Err(invalid());
    }
    normal.parse::<lettre::Address>().map_err(|_| invalid())?;
    Ok(normal)
}

fn check_roles(roles: &[String]) -> Result<Vec<String>, GuestError> {
    if roles.len() > MAX_ROLES {
        return Err(GuestError::Invalid(format!(
            "a user has at most {MAX_ROLES} roles, got {}",
            roles.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        super::common::check_name("role", role).map_err(GuestError::Invalid)?;
        if !out.contains(role) {
            out.push(role.clone());
        }
    }
    Ok(out)
}

fn check_data(data: Option<&str>) -> Result<String, GuestError> {
    let Some(data) = data else {
        return Ok("{}".into());
    };
    if data.len() > MAX_DATA_BYTES {
        return Err(GuestError::Invalid(format!(
            "a user's data is at most {MAX_DATA_BYTES} bytes of JSON, got {}",
            data.len()
        )));
    }
    match serde_json::from_str::<serde_json::Value>(data) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value.to_string()),
        Ok(_) => Err(GuestError::Invalid("a user's data is a JSON object".into())),
        Err(e) => Err(GuestError::Invalid(format!(
            "a user's data is not valid JSON: {e}"
        ))),
    }
}

/// Checks a link template: an http(s) URL with `{token}` in it.
pub fn check_link_template(template: &str) -> Result<(), String> {
    if template.len() > MAX_LINK_TEMPLATE_BYTES {
        return Err(format!(
            "a link template is at most {MAX_LINK_TEMPLATE_BYTES} bytes"
        ));
    }
    if !template.contains("{token}") {
        return Err("a link template contains {token} (and may contain {action})".into());
    }
    let sample = template
        .replace("{token}", "t")
        .replace("{action}", "verify-email");
    match url::Url::parse(&sample) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(format!("{template:?} is not an http(s) URL")),
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token(prefix: &str) -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!("{prefix}{}", hex::encode(raw))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn denied(message: &str) -> GuestError {
    GuestError::Denied(message.into())
}

fn taken(e: StorageError) -> GuestError {
    match e {
        StorageError::Conflict => {
            GuestError::Invalid("a user with this email already exists".into())
        }
        e => guest_error(e),
    }
}

/// A user as the SDK shows it.
pub fn wit_user(row: &UserRow) -> users::User {
    users::User {
        id: row.id.clone(),
        email: row.email.clone(),
        email_verified: row.email_verified,
        roles: row.roles.clone(),
        data: row.data.clone(),
        created: u64::try_from(row.created_at).unwrap_or(0),
    }
}

/// What a single-use email token is for.
#[derive(Clone, Copy)]
enum Purpose {
    Verify,
    Reset,
    Invite,
}

impl Purpose {
    fn kind(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
            Self::Invite => "invite",
        }
    }
    fn action(self) -> &'static str {
        match self {
            Self::Verify => "verify-email",
            Self::Reset => "reset-password",
            Self::Invite => "accept-invite",
        }
    }
    fn ttl(self) -> Duration {
        match self {
            Self::Verify => VERIFY_TTL,
            Self::Reset => RESET_TTL,
            Self::Invite => INVITE_TTL,
        }
    }
    fn message(self, link: &str) -> (&'static str, String) {
        match self {
            Self::Verify => (
                "Verify your email address",
                format!(
                    "Open this link to verify your email address (valid for 24 hours):\n\n{link}\n\n\
                     If you did not sign up, ignore this email.\n"
                ),
            ),
            Self::Reset => (
                "Reset your password",
                format!(
                    "Open this link to choose a new password (valid for 1 hour):\n\n{link}\n\n\
                     If you did not ask for this, ignore this email: your password stays as it is.\n"
                ),
            ),
            Self::Invite => (
                "You are invited",
                format!(
                    "You are invited to create an account. Open this link to choose your \
                     password (valid for 7 days):\n\n{link}\n"
                ),
            ),
        }
    }
}

/// The end users of one app.
#[derive(Clone)]
pub struct Users {
    db: Db,
    app_id: Arc<str>,
    passwords: Arc<Passwords>,
    /// How verification, reset and invitation emails leave; `None`: they answer
    /// `unavailable`.
    email: Option<EmailService>,
}

impl Users {
    /// The users of app `app_id` in `db`, emails sent through `email`.
    pub fn new(db: Db, app_id: Arc<str>, email: Option<EmailService>) -> Self {
        Self {
            db,
            app_id,
            passwords: Passwords::shared(),
            email,
        }
    }

    async fn row(&self, id: &str) -> Result<Option<UserRow>, GuestError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        self.db
            .user_get(&self.app_id, id)
            .await
            .map_err(guest_error)
    }

    async fn existing(&self, id: &str) -> Result<UserRow, GuestError> {
        self.row(id).await?.ok_or(GuestError::NotFound)
    }

    async fn write(&self, row: &UserRow, end_sessions: bool) -> Result<(), GuestError> {
        match self.db.user_update(&self.app_id, row, end_sessions).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(GuestError::NotFound),
            Err(e) => Err(taken(e)),
        }
    }

    /// Creates a user (one hash).
    pub async fn create(&self, new: users::NewUser) -> Result<UserRow, GuestError> {
        self.create_row(new, false).await
    }

    async fn create_row(&self, new: users::NewUser, verified: bool) -> Result<UserRow, GuestError> {
        let email = normalise_email(&new.email)?;
        check_password(&new.password)?;
        let roles = check_roles(&new.roles)?;
        let data = check_data(new.data.as_deref())?;
        let password_hash = self.passwords.hash(&self.app_id, &new.password).await?;
        let row = UserRow {
            id: new_id(),
            email,
            password_hash,
            email_verified: verified,
            roles,
            data,
            created_at: now_ms(),
            failed_logins: 0,
            locked_until: 0,
        };
        self.db
            .user_insert(&self.app_id, &row)
            .await
            .map_err(taken)?;
        Ok(row)
    }

    /// The user `id`.
    pub async fn get(&self, id: &str) -> Result<Option<UserRow>, GuestError> {
        self.row(id).await
    }

    /// The user with `email` (any case or Unicode form).
    pub async fn find_by_email(&self, email: &str) -> Result<Option<UserRow>, GuestError> {
        let Ok(email) = normalise_email(email) else {
            return Ok(None);
        };
        self.db
            .user_by_email(&self.app_id, &email)
            .await
            .map_err(guest_error)
    }

    /// Changes what `update` names; a new password (one hash) ends every session, a new
    /// email is unverified.
    pub async fn update(&self, id: &str, update: users::UserUpdate) -> Result<UserRow, GuestError> {
        let mut row = self.existing(id).await?;
        if let Some(email) = &update.email {
            let email = normalise_email(email)?;
            if email != row.email {
                row.email = email;
                row.email_verified = false;
            }
        }
        if let Some(roles) = &update.roles {
            row.roles = check_roles(roles)?;
        }
        if update.data.is_some() {
            row.data = check_data(update.data.as_deref())?;
        }
        let new_password = update.password.is_some();
        if let Some(password) = &update.password {
            check_password(password)?;
            row.password_hash = self.passwords.hash(&self.app_id, password).await?;
        }
        self.write(&row, new_password).await?;
        Ok(row)
    }

    /// Deletes user `id` (and its sessions); answers whether it existed.
    pub async fn delete(&self, id: &str) -> Result<bool, GuestError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(false);
        }
        self.db
            .user_delete(&self.app_id, id)
            .await
            .map_err(guest_error)
    }

    /// A page of users in creation order after `cursor`.
    pub async fn list(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(Vec<UserRow>, Option<String>), GuestError> {
        let limit = page_limit(limit).map_err(GuestError::Invalid)?;
        let rows = self
            .db
            .user_list(&self.app_id, cursor.unwrap_or(""), limit + 1)
            .await
            .map_err(guest_error)?;
        Ok(page(rows, limit, |u| u.id.clone()))
    }

    /// Logs in (one hash): a new session, or `denied` (unknown email or wrong password
    /// alike), or `limit` while the account or the app backs off.
    pub async fn login(&self, email: &str, password: &str) -> Result<users::Session, GuestError> {
        let now = now_ms();
        let window = now - now.rem_euclid(60_000);
        let app_failures = self
            .db
            .user_app_login_failures(&self.app_id, window)
            .await
            .map_err(guest_error)?;
        if app_failures >= APP_FAILURES_PER_MINUTE {
            let wait = (window + 60_000 - now + 999) / 1000;
            return Err(GuestError::Limit(format!(
                "too many failed logins in this app; retry in {wait} s"
            )));
        }
        let user = match normalise_email(email) {
            Ok(email) if password.len() <= 4 * MAX_PASSWORD_CHARS => self
                .db
                .user_by_email(&self.app_id, &email)
                .await
                .map_err(guest_error)?,
            _ => None,
        };
        if let Some(user) = &user
            && user.locked_until > now
        {
            let wait = (user.locked_until - now + 999) / 1000;
            return Err(GuestError::Limit(format!(
                "too many failed logins for this account; retry in {wait} s"
            )));
        }
        let password = if password.len() <= 4 * MAX_PASSWORD_CHARS {
            password
        } else {
            ""
        };
        let checked = self
            .passwords
            .check(
                &self.app_id,
                password,
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        match user {
            Some(user) if checked.matches => {
                let token = new_token(crate::events::realtime::SESSION_TOKEN_PREFIX);
                let expires = now_ms() + ms(SESSION_TTL);
                self.db
                    .user_login_succeeded(
                        &self.app_id,
                        &user.id,
                        checked.rehashed.as_deref(),
                        &token_hash(&token),
                        expires,
                    )
                    .await
                    .map_err(guest_error)?;
                Ok(users::Session {
                    token,
                    user: wit_user(&user),
                    expires: u64::try_from(expires).unwrap_or(0),
                })
            }
            user => {
                self.db
                    .user_app_login_failed(&self.app_id, window)
                    .await
                    .map_err(guest_error)?;
                if let Some(user) = user {
                    let failures = self
                        .db
                        .user_login_failed(&self.app_id, &user.id)
                        .await
                        .map_err(guest_error)?;
                    if failures >= FREE_FAILURES {
                        let exponent = u32::try_from(failures - FREE_FAILURES)
                            .unwrap_or(u32::MAX)
                            .min(16);
                        let lock = (1000_i64 << exponent).min(ms(MAX_LOCK));
                        self.db
                            .user_lock(&self.app_id, &user.id, now_ms() + lock)
                            .await
                            .map_err(guest_error)?;
                    }
                }
                Err(denied(LOGIN_FAILED))
            }
        }
    }

    /// The user of the live session `token`, or `denied`.
    pub async fn verify(&self, token: &str) -> Result<UserRow, GuestError> {
        Ok(self.verify_session(token).await?.0)
    }

    /// The user of the live session `token` and when the session expires (ms since
    /// the Unix epoch), or `denied`.
    pub async fn verify_session(&self, token: &str) -> Result<(UserRow, i64), GuestError> {
        if token.is_empty() || token.len() > 128 {
            return Err(denied("invalid or expired session"));
        }
        self.db
            .user_of_session(&self.app_id, &token_hash(token))
            .await
            .map_err(guest_error)?
            .ok_or_else(|| denied("invalid or expired session"))
    }

    /// Ends session `token` (an unknown one is already ended).
    pub async fn logout(&self, token: &str) -> Result<(), GuestError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(());
        }
        self.db
            .user_session_end(&self.app_id, &token_hash(token))
            .await
            .map_err(guest_error)?;
        Ok(())
    }

    /// The mailer and the link template, or why emails cannot be sent.
    async fn mail_ready(&self) -> Result<(EmailService, String), GuestError> {
        let email = self
            .email
            .clone()
            .ok_or_else(|| GuestError::Unavailable(super::email::NOT_CONFIGURED.into()))?;
        let template = self
            .db
            .user_link_template(&self.app_id)
            .await
            .map_err(guest_error)?
            .ok_or_else(|| {
                GuestError::Unavailable(
                    "the app has no link URL for user emails: picloud users settings APP \
                     --link-url 'https://example.com/auth?action={action}&token={token}'"
                        .into(),
                )
            })?;
        Ok((email, template))
    }

    /// Stores a new token for `purpose` and answers the email carrying its link.
    async fn token_message(
        &self,
        purpose: Purpose,
        template: &str,
        user_id: Option<&str>,
        email: &str,
        roles: &[String],
    ) -> Result<picloud_runtime::email::Message, GuestError> {
        let token = new_token("");
        self.db
            .user_token_insert(
                &self.app_id,
                &token_hash(&token),
                purpose.kind(),
                user_id,
                email,
                roles,
                now_ms() + ms(purpose.ttl()),
            )
            .await
            .map_err(guest_error)?;
        let link = template
            .replace("{action}", purpose.action())
            .replace("{token}", &token);
        let (subject, text) = purpose.message(&link);
        Ok(picloud_runtime::email::Message {
            to: vec![email.to_owned()],
            cc: vec![],
            bcc: vec![],
            subject: subject.into(),
            text,
            html: None,
            reply_to: None,
        })
    }

    /// Emails a reset link when `email` is a user's; answers the same either way.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), GuestError> {
        let email = normalise_email(email)?;
        let (mut mailer, template) = self.mail_ready().await?;
        let Some(user) = self
            .db
            .user_by_email(&self.app_id, &email)
            .await
            .map_err(guest_error)?
        else {
            return Ok(());
        };
        let message = self
            .token_message(Purpose::Reset, &template, Some(&user.id), &user.email, &[])
            .await?;
        // The send happens after the answer, so its time does not tell the caller
        // whether the email is known.
        tokio::spawn(async move {
            match mailer.send(message).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = ?e, "a password reset email failed"),
                Err(e) => tracing::warn!(error = %e, "a password reset email failed"),
            }
        });
        Ok(())
    }

    /// Takes the reset `token` and sets `new_password` (one hash), ending every session.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), GuestError> {
        check_password(new_password)?;
        let taken = self.take(token, Purpose::Reset).await?;
        let mut row = self.token_user(&taken).await?;
        row.password_hash = self.passwords.hash(&self.app_id, new_password).await?;
        // The link reached the address: it is verified too.
        row.email_verified = true;
        self.write(&row, true).await
    }

    /// Emails user `id` a verification link.
    pub async fn request_verification(&self, id: &str) -> Result<(), GuestError> {
        let row = self.existing(id).await?;
        if row.email_verified {
            return Err(GuestError::Invalid(
                "the email of this user is already verified".into(),
            ));
        }
        let (mut mailer, template) = self.mail_ready().await?;
        let message = self
            .token_message(Purpose::Verify, &template, Some(&row.id), &row.email, &[])
            .await?;
        mailer
            .send(message)
            .await
            .map_err(|e| GuestError::Internal(e.to_string()))??;
        Ok(())
    }

    /// Takes the verification `token`: the user's email is verified.
    pub async fn verify_email(&self, token: &str) -> Result<UserRow, GuestError> {
        let taken = self.take(token, Purpose::Verify).await?;
        let mut row = self.token_user(&taken).await?;
        row.email_verified = true;
        self.write(&row, false).await?;
        Ok(row)
    }

    /// Emails `email` an invitation to an account with `roles`.
    pub async fn invite(&self, email: &str, roles: &[String]) -> Result<(), GuestError> {
        let email = normalise_email(email)?;
        let roles = check_roles(roles)?;
        if self
            .db
            .user_by_email(&self.app_id, &email)
            .await
            .map_err(guest_error)?
            .is_some()
        {
            return Err(GuestError::Invalid(
                "a user with this email already exists".into(),
            ));
        }
        let (mut mailer, template) = self.mail_ready().await?;
        let message = self
            .token_message(Purpose::Invite, &template, None, &email, &roles)
            .await?;
        mailer
            .send(message)
            .await
            .map_err(|e| GuestError::Internal(e.to_string()))??;
        Ok(())
    }

    /// Takes the invitation `token`: a verified account with its roles and `password`
    /// (one hash).
    pub async fn accept_invite(&self, token: &str, password: &str) -> Result<UserRow, GuestError> {
        check_password(password)?;
        let taken = self.take(token, Purpose::Invite).await?;
        let new = users::NewUser {
            email: taken.email,
            password: password.to_owned(),
            roles: taken.roles,
            data: None,
        };
        self.create_row(new, true).await
    }

    /// Adds `role` to user `id`.
    pub async fn add_role(&self, id: &str, role: &str) -> Result<UserRow, GuestError> {
        let mut row = self.existing(id).await?;
        let mut roles = row.roles.clone();
        roles.push(role.to_owned());
        row.roles = check_roles(&roles)?;
        self.write(&row, false).await?;
        Ok(row)
    }

    /// Removes `role` from user `id`.
    pub async fn remove_role(&self, id: &str, role: &str) -> Result<UserRow, GuestError> {
        let mut row = self.existing(id).await?;
        row.roles.retain(|r| r != role);
        self.write(&row, false).await?;
        Ok(row)
    }

    async fn take(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<crate::storage::users::TokenRow, GuestError> {
        if token.is_empty() || token.len() > 128 {
            return Err(denied(BAD_TOKEN));
        }
        self.db
            .user_token_take(&self.app_id, &token_hash(token), purpose.kind())
            .await
            .map_err(guest_error)?
            .ok_or_else(|| denied(BAD_TOKEN))
    }

    /// The user a verify or reset token was sent to, if its email is still the one the
    /// token went to.
    async fn token_user(
        &self,
        taken: &crate::storage::users::TokenRow,
    ) -> Result<UserRow, GuestError> {
        let id = taken.user_id.as_deref().unwrap_or_default();
        match self.row(id).await? {
            Some(row) if row.email == taken.email => Ok(row),
            _ => Err(denied(BAD_TOKEN)),
        }
    }
}

/// The users service of one invocation.
pub struct UsersService {
    users: Users,
    hashes: u32,
}

impl UsersService {
    /// The service of an invocation of app `app_id`.
    pub fn new(users: Users) -> Self {
        Self { users, hashes: 0 }
    }

    /// These users with emails sent through `email`.
    pub fn with_email(mut self, email: EmailService) -> Self {
        self.users.email = Some(email);
        self
    }

    fn count_hash(&mut self) -> Result<(), GuestError> {
        if self.hashes >= MAX_HASHES_PER_INVOCATION {
            return Err(GuestError::Limit(format!(
                "an invocation hashes at most {MAX_HASHES_PER_INVOCATION} passwords \
                 (create, login, password change, reset, accepting an invitation)"
            )));
        }
        self.hashes += 1;
        Ok(())
    }
}

fn user_of(answer: Result<UserRow, GuestError>) -> Result<users::User, GuestError> {
    answer.map(|row| wit_user(&row))
}

impl Host for UsersService {
    #[instrument(name = "picloud.users.create", skip_all)]
    async fn create(&mut self, user: users::NewUser) -> Answer<users::User> {
        if let Err(e) = self.count_hash() {
            return Ok(Err(e));
        }
        Ok(user_of(self.users.create(user).await))
    }

    #[instrument(name = "picloud.users.get", skip_all)]
    async fn get(&mut self, id: String) -> Answer<Option<users::User>> {
        Ok(self.users.get(&id).await.map(|u| u.as_ref().map(wit_user)))
    }

    #[instrument(name = "picloud.users.find_by_email", skip_all)]
    async fn find_by_email(&mut self, email: String) -> Answer<Option<users::User>> {
        Ok(self
            .users
            .find_by_email(&email)
            .await
            .map(|u| u.as_ref().map(wit_user)))
    }

    #[instrument(name = "picloud.users.update", skip_all)]
    async fn update(&mut self, id: String, update: users::UserUpdate) -> Answer<users::User> {
        if update.password.is_some()
            && let Err(e) = self.count_hash()
        {
            return Ok(Err(e));
        }
        Ok(user_of(self.users.update(&id, update).await))
    }

    #[instrument(name = "picloud.users.delete", skip_all)]
    async fn delete(&mut self, id: String) -> Answer<bool> {
        Ok(self.users.delete(&id).await)
    }

    #[instrument(name = "picloud.users.list", skip_all)]
    async fn list(
        &mut self,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Answer<users::UserPage> {
        Ok(self
            .users
            .list(cursor.as_deref(), limit)
            .await
            .map(|(rows, cursor)| users::UserPage {
                users: rows.iter().map(wit_user).collect(),
                cursor,
            }))
    }

    #[instrument(name = "picloud.users.login", skip_all)]
    async fn login(&mut self, email: String, password: String) -> Answer<users::Session> {
        if let Err(e) = self.count_hash() {
            return Ok(Err(e));
        }
        Ok(self.users.login(&email, &password).await)
    }

    #[instrument(name = "picloud.users.verify", skip_all)]
    async fn verify(&mut self, token: String) -> Answer<users::User> {
        Ok(user_of(self.users.verify(&token).await))
    }

    #[instrument(name = "picloud.users.logout", skip_all)]
    async fn logout(&mut self, token: String) -> Answer<()> {
        Ok(self.users.logout(&token).await)
    }

    #[instrument(name = "picloud.users.request_password_reset", skip_all)]
    async fn request_password_reset(&mut self, email: String) -> Answer<()> {
        Ok(self.users.request_password_reset(&email).await)
    }

    #[instrument(name = "picloud.users.reset_password", skip_all)]
    async fn reset_password(&mut self, token: String, new_password: String) -> Answer<()> {
        if let Err(e) = self.count_hash() {
            return Ok(Err(e));
        }
        Ok(self.users.reset_password(&token, &new_password).await)
    }

    #[instrument(name = "picloud.users.request_verification", skip_all)]
    async fn request_verification(&mut self, id: String) -> Answer<()> {
        Ok(self.users.request_verification(&id).await)
    }

    #[instrument(name = "picloud.users.verify_email", skip_all)]
    async fn verify_email(&mut self, token: String) -> Answer<users::User> {
        Ok(user_of(self.users.verify_email(&token).await))
    }

    #[instrument(name = "picloud.users.invite", skip_all)]
    async fn invite(&mut self, email: String, roles: Vec<String>) -> Answer<()> {
        Ok(self.users.invite(&email, &roles).await)
    }

    #[instrument(name = "picloud.users.accept_invite", skip_all)]
    async fn accept_invite(&mut self, token: String, password: String) -> Answer<users::User> {
        if let Err(e) = self.count_hash() {
            return Ok(Err(e));
        }
        Ok(user_of(self.users.accept_invite(&token, &password).await))
    }

    #[instrument(name = "picloud.users.add_role", skip_all)]
    async fn add_role(&mut self, id: String, role: String) -> Answer<users::User> {
        Ok(user_of(self.users.add_role(&id, &role).await))
    }

    #[instrument(name = "picloud.users.remove_role", skip_all)]
    async fn remove_role(&mut self, id: String, role: String) -> Answer<users::User> {
        Ok(user_of(self.users.remove_role(&id, &role).await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_for_length_and_commonness() {
        assert!(check_password("correct horse").is_ok());
        assert!(check_password("short").is_err());
        assert!(check_password(&"x".repeat(257)).is_err());
        assert!(check_password("PassWord123").is_err());
        assert!(check_password("ünïcödé").is_err(), "7 characters, 14 bytes");
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalise_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        // "é" composed and decomposed are one address.
        assert_eq!(
            normalise_email("re\u{301}my@example.com").unwrap(),
            normalise_email("r\u{e9}my@example.com").unwrap()
        );
        assert!(normalise_email("not an address").is_err());
        assert!(normalise_email("").is_err());
        assert!(normalise_email("a@b\r\nBcc: x@y.z").is_err());
    }

    #[test]
    fn link_templates_are_http_urls_with_a_token() {
        assert!(check_link_template("https://app.example/auth?a={action}&t={token}").is_ok());
        assert!(check_link_template("https://app.example/auth").is_err());
        assert!(check_link_template("javascript:alert({token})").is_err());
    }

    #[test]
    fn a_weaker_hash_matches_and_is_replaced() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let stored = weak
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let checked = Passwords::shared().check_now("correct horse", &stored);
        assert!(checked.matches);
        let rehashed = checked.rehashed.expect("a weaker hash is replaced");
        assert!(
            rehashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{rehashed}"
        );
        let wrong = Passwords::shared().check_now("wrong horse", &stored);
        assert!(!wrong.matches && wrong.rehashed.is_none());
        let current = Passwords::shared().check_now("correct horse", &rehashed);
        assert!(current.matches && current.rehashed.is_none());
    }
}
