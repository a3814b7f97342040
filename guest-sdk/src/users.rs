//! End users of the app: accounts with argon2id-hashed passwords, sessions, email
//! verification, password reset, invitations and roles. Users belong to this app only;
//! passwords are never returned, logged or put in change events.
//!
//! ```no_run
//! use picloud_sdk::users;
//!
//! let ada = users::create("ada@example.com", "correct horse battery", &["admin"], None)?;
//! let session = users::login("ada@example.com", "correct horse battery")?;
//! // Later, on each request: who is calling, and may they?
//! match users::verify(&session.token)? {
//!     Some(user) if user.roles.iter().any(|r| r == "admin") => { /* … */ }
//!     _ => { /* 401 */ }
//! }
//! users::logout(&session.token)?;
//! # let _ = ada;
//! # Ok::<(), picloud_sdk::Error>(())
//! ```
//!
//! `login` answers `Error::Denied` for an unknown email and a wrong password alike, and
//! `Error::Limit` (with the time to wait) after repeated failures. Verification, reset
//! and invitation emails carry a link built from the app's link URL (set by an
//! operator: `picloud users settings APP --link-url …`).

use crate::wit::picloud::sdk::users as raw;
use crate::{Error, Result};

pub use raw::{Session, User, UserPage, UserUpdate};

/// Creates a user with `password` (8–256 characters, not a common one), `roles` and
/// app-defined `data` (a JSON object).
pub fn create(
    email: &str,
    password: &str,
    roles: &[&str],
    data: Option<&serde_json::Value>,
) -> Result<User> {
    raw::create(&raw::NewUser {
        email: email.into(),
        password: password.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        data: data.map(ToString::to_string),
    })
}

/// The user `id`, `None` when there is none.
pub fn get(id: &str) -> Result<Option<User>> {
    raw::get(id)
}

/// The user with `email` (compared case-insensitively, Unicode-normalised).
pub fn find_by_email(email: &str) -> Result<Option<User>> {
    raw::find_by_email(email)
}

/// Changes what `update` names. A new password ends every session of the user; a new
/// email is unverified.
pub fn update(id: &str, update: &UserUpdate) -> Result<User> {
    raw::update(id, update)
}

/// Deletes user `id` and its sessions; `true` when it existed.
pub fn delete(id: &str) -> Result<bool> {
    raw::delete(id)
}

/// A page of users (oldest first) after `cursor`.
pub fn list(cursor: Option<&str>, limit: Option<u32>) -> Result<UserPage> {
    raw::list(cursor, limit)
}

/// Logs in: a session whose token the client keeps (valid 30 days).
pub fn login(email: &str, password: &str) -> Result<Session> {
    raw::login(email, password)
}

/// The user of session `token`, `None` when it is unknown, ended or expired.
pub fn verify(token: &str) -> Result<Option<User>> {
    match raw::verify(token) {
        Ok(user) => Ok(Some(user)),
        Err(Error::Denied(_) | Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ends session `token`.
pub fn logout(token: &str) -> Result<()> {
    raw::logout(token)
}

/// Emails a password reset link to `email` if it is a user's (answers the same either
/// way).
pub fn request_password_reset(email: &str) -> Result<()> {
    raw::request_password_reset(email)
}

/// Sets a new password with a reset token (single use, 1 hour); ends every session.
pub fn reset_password(token: &str, new_password: &str) -> Result<()> {
    raw::reset_password(token, new_password)
}

/// Emails user `id` a link to verify their email (single use, 24 hours).
pub fn request_verification(id: &str) -> Result<()> {
    raw::request_verification(id)
}

/// Marks the email of the token's user verified.
pub fn verify_email(token: &str) -> Result<User> {
    raw::verify_email(token)
}

/// Emails `email` an invitation (single use, 7 days) to an account with `roles`.
pub fn invite(email: &str, roles: &[&str]) -> Result<()> {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    raw::invite(email, &roles)
}

/// Creates the invited account with `password`; its email is verified.
pub fn accept_invite(token: &str, password: &str) -> Result<User> {
    raw::accept_invite(token, password)
}

/// Adds `role` to user `id`.
pub fn add_role(id: &str, role: &str) -> Result<User> {
    raw::add_role(id, role)
}

/// Removes `role` from user `id`.
pub fn remove_role(id: &str, role: &str) -> Result<User> {
    raw::remove_role(id, role)
}
