//! The SDK services behind the WIT imports, one module per interface.
//!
//! Lifecycle: [`HostSdk::with_deadline`] runs once per invocation with the app's identity
//! and the invocation's deadline; each service then answers the guest's calls for that
//! app only, its database work bounded by the deadline and the app's share of
//! connections (see [`Db::for_app`]). (`picloud_runtime::Unavailable` answers every
//! call of an interface `unavailable`, for hosts without a service.)
//!
//! What they share is in [`common`]: the mapping of storage failures to guest errors,
//! name/key/length checks and paging (the admin API uses the same checks and paging).
//!
//! ## Adding an interface
//! 1. `wit/services.wit`: the interface, imported by `world function` (the runtime's
//!    `bindgen!` then generates its `Host` trait; add an `Unavailable` impl in
//!    `runtime/src/sdk.rs` and the type and accessor to the `Sdk` trait there).
//! 2. `host/src/storage/<name>.rs`: a store trait for what the service keeps (like
//!    [`crate::storage::secrets::SecretStore`]), implemented by `Db` with one SQL for
//!    both backends, and a migration in `migrations/sqlite` and `migrations/postgres`.
//! 3. `host/src/services/<name>.rs`: the service, implementing the generated `Host`
//!    trait over the store, checking every guest value with [`common`]; add it to
//!    [`HostSdk`] below. A service that reaches outside (http, email) gets its
//!    process-wide part (a client, a transport) from the invoker through a
//!    `HostSdk::with_<name>`, and logs its calls into the invocation's [`common::CallLog`].
//! 4. `host/src/api/<name>.rs` and `host/src/cli/<name>.rs` if operators manage it.
//! 5. Rhai: a module in `rhai-shim/src/sdk/` calling the import through
//!    `rhai-shim/src/host.rs`.
//! 6. Tests: a module of `host/tests/all/` through the real server, both backends.

pub mod common;
pub mod dead_letters;
pub mod docs;
pub mod email;
pub mod files;
pub mod http;
pub mod kv;
pub mod pubsub;
pub mod script;
pub mod secrets;
pub mod users;

use crate::storage::Db;
use picloud_runtime::Sdk;

/// The services of one invocation.
pub struct HostSdk {
    kv: kv::KvService,
    docs: docs::DocsService,
    files: files::FilesService,
    http: http::HttpService,
    email: email::EmailService,
    secrets: secrets::SecretsService,
    script: script::ScriptService,
    dead_letters: dead_letters::DeadLettersService,
    pubsub: pubsub::PubsubService,
    users: users::UsersService,
}

impl HostSdk {
    /// Services for app `app_id` without a deadline (host-side callers and tests).
    pub fn new(db: &Db, app_id: &str) -> Self {
        Self::build(db, app_id, None, None)
    }

    /// Services for one invocation of app `app_id`: its kv, docs and files calls end at
    /// `deadline` (their SQL too).
    pub fn with_deadline(db: &Db, app_id: &str, deadline: tokio::time::Instant) -> Self {
        Self::build(db, app_id, Some(deadline), None)
    }

    /// Services for one invocation of a Rhai function of app `app_id`, which also hand
    /// the Rhai shim the function's `script` (and end at `deadline`, when given).
    pub fn with_script(
        db: &Db,
        app_id: &str,
        deadline: Option<tokio::time::Instant>,
        script: script::Script,
    ) -> Self {
        Self::build(db, app_id, deadline, Some(script))
    }

    /// These services with outbound HTTP served by `http` (without, every http call
    /// answers `unavailable`).
    pub fn with_http(mut self, http: http::HttpService) -> Self {
        self.http = http;
        self
    }

    /// These services with pubsub served by `pubsub` (without, every call answers
    /// `unavailable`).
    pub fn with_pubsub(mut self, pubsub: pubsub::PubsubService) -> Self {
        self.pubsub = pubsub;
        self
    }

    /// These services with outbound email served by `email` (without, every send
    /// answers `unavailable("email not configured")`).
    pub fn with_email(mut self, email: email::EmailService) -> Self {
        self.users = self.users.with_email(email.clone());
        self.email = email;
        self
    }

    fn build(
        db: &Db,
        app_id: &str,
        deadline: Option<tokio::time::Instant>,
        script: Option<script::Script>,
    ) -> Self {
        let scoped = db.for_app(app_id, deadline);
        let db = &scoped;
        let app_id: std::sync::Arc<str> = app_id.into();
        Self {
            kv: kv::KvService::new(db.clone(), app_id.clone()),
            docs: docs::DocsService::new(db.clone(), app_id.clone()),
            files: files::FilesService::new(db.clone(), app_id.clone()),
            http: http::HttpService::unavailable(),
            email: email::EmailService::unconfigured(db.clone(), app_id.clone()),
            secrets: secrets::SecretsService::new(db.clone(), app_id.clone()),
            dead_letters: dead_letters::DeadLettersService::new(db.clone(), app_id.clone()),
            pubsub: pubsub::PubsubService::unavailable(db.clone(), app_id.clone()),
            users: users::UsersService::new(users::Users::new(db.clone(), app_id.clone(), None)),
            script: script::ScriptService::new(db.clone(), app_id, script),
        }
    }
}

impl Sdk for HostSdk {
    type Kv = kv::KvService;
    type Docs = docs::DocsService;
    type Files = files::FilesService;
    type Http = http::HttpService;
    type Email = email::EmailService;
    type Secrets = secrets::SecretsService;
    type Users = users::UsersService;
    type Pubsub = pubsub::PubsubService;
    type DeadLetters = dead_letters::DeadLettersService;
    type Script = script::ScriptService;

    fn kv(&mut self) -> &mut kv::KvService {
        &mut self.kv
    }
    fn docs(&mut self) -> &mut docs::DocsService {
        &mut self.docs
    }
    fn files(&mut self) -> &mut files::FilesService {
        &mut self.files
    }
    fn http(&mut self) -> &mut http::HttpService {
        &mut self.http
    }
    fn email(&mut self) -> &mut email::EmailService {
        &mut self.email
    }
    fn secrets(&mut self) -> &mut secrets::SecretsService {
        &mut self.secrets
    }
    fn users(&mut self) -> &mut users::UsersService {
        &mut self.users
    }
    fn pubsub(&mut self) -> &mut pubsub::PubsubService {
        &mut self.pubsub
    }
    fn dead_letters(&mut self) -> &mut dead_letters::DeadLettersService {
        &mut self.dead_letters
    }
    fn script(&mut self) -> &mut script::ScriptService {
        &mut self.script
    }
}
