//! The `picloud:sdk/rhai-shim` component: [`WitHost`] serves [`Host`] with the WIT
//! imports, `wizer-initialize` builds the engine (so the one wizer snapshot all Rhai
//! functions share starts with it built), and `handler.handle` compiles the function's
//! script on the instance's first request and runs it.
//!
//! An instance serves one function version only (the host keeps warm instances per
//! version), so the script and its limits, read once, stay right for its life.

use crate::engine::Limits;
use crate::host::{
    Document, EmailMessage, FilePage, FileStat, FindOptions, Host, HttpRequest, HttpResponse,
    KvPage, LogLevel, NewUser, RuntimeInfo, SdkError, SdkResult, Session, User, UserPage,
    UserUpdate,
};
use crate::script::{Failure, run_classified};
use crate::{AST, Engine, Request, RunCache, build_engine, compile};
use std::cell::RefCell;
use std::rc::Rc;

/// Generated bindings of the `rhai-shim` world, quarantined here.
#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "picloud:sdk/rhai-shim",
        path: "../wit",
        generate_all,
    });

    use super::Shim;
    export!(Shim with_types_in self);
}

use bindings::exports::picloud::sdk::handler;
use bindings::picloud::sdk::{
    dead_letters, docs, email, files, http, kv, log, pubsub, rhai_script, runtime, secrets, types,
    users,
};

/// The engine and the compiled main script, kept for the life of the instance, and what
/// runs of the script learnt about its function calls.
struct Loaded {
    engine: Engine,
    ast: AST,
    cache: RefCell<RunCache>,
}

/// What the instance holds: the engine alone (in the snapshot, before the first
/// request), or the engine with the function's script.
enum Held {
    Ready(Engine),
    Loaded(Rc<Loaded>),
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// The loaded script: on the instance's first request, the engine (from the snapshot,
/// or built now when `wizer-initialize` never ran) gets the function's limits and
/// compiles its script.
fn loaded() -> Result<Rc<Loaded>, String> {
    HELD.with(|cell| {
        let mut held = cell.borrow_mut();
        if let Some(Held::Loaded(loaded)) = &*held {
            return Ok(loaded.clone());
        }
        let mut engine = match held.take() {
            Some(Held::Ready(engine)) => engine,
            _ => build_engine(Rc::new(WitHost)),
        };
        let limits = rhai_script::limits();
        let as_size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Limits {
            max_operations: limits.max_operations.max(1),
            max_string_size: as_size(limits.max_string_size),
            max_array_size: as_size(limits.max_array_size),
            max_map_size: as_size(limits.max_map_size),
            ..Limits::default()
        }
        .apply(&mut engine);
        let compiled = compile(&engine, &rhai_script::main_source());
        let ast = match compiled {
            Ok(ast) => ast,
            Err(e) => {
                *held = Some(Held::Ready(engine));
                return Err(e);
            }
        };
        let loaded = Rc::new(Loaded {
            engine,
            ast,
            cache: RefCell::default(),
        });
        *held = Some(Held::Loaded(loaded.clone()));
        Ok(loaded)
    })
}

struct Shim;

impl bindings::Guest for Shim {
    fn wizer_initialize() {
        HELD.with(|cell| *cell.borrow_mut() = Some(Held::Ready(build_engine(Rc::new(WitHost)))));
    }
}

impl handler::Guest for Shim {
    fn handle(request: types::Request) -> Result<types::Response, types::Error> {
        let loaded = loaded()
            .map_err(|e| types::Error::Invalid(format!("the script does not compile: {e}")))?;
        let info = runtime::info();
        let request = Request {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            params: request.params,
            body: request.body,
            event: request.event,
            app: info.app,
            invocation_id: info.invocation_id,
        };
        run_classified(
            &loaded.engine,
            &loaded.ast,
            &mut loaded.cache.borrow_mut(),
            &request,
        )
        .map(|r| types::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
        // The script's own failure, with its message for the author: `limit` when it
        // broke one of Rhai's limits, `invalid` otherwise (never `internal`, which
        // would blame PiCloud).
        .map_err(|(error, failure)| match failure {
            Failure::Limit => types::Error::Limit(error.message),
            Failure::Script => types::Error::Invalid(error.message),
        })
    }
}

/// [`Host`] over the WIT imports of the component.
struct WitHost;

fn from_wit(e: types::Error) -> SdkError {
    match e {
        types::Error::NotFound => SdkError::NotFound,
        types::Error::Invalid(m) => SdkError::Invalid(m),
        types::Error::Denied(m) => SdkError::Denied(m),
        types::Error::Limit(m) => SdkError::Limit(m),
        types::Error::Unavailable(m) => SdkError::Unavailable(m),
        types::Error::Internal(m) => SdkError::Internal(m),
    }
}

fn stat(s: files::Stat) -> FileStat {
    FileStat {
        path: s.path,
        size: s.size,
        content_type: s.content_type,
        sha256: s.sha256,
        modified: s.modified,
    }
}

fn user(u: users::User) -> User {
    User {
        id: u.id,
        email: u.email,
        email_verified: u.email_verified,
        roles: u.roles,
        data: u.data,
        created: u.created,
    }
}

impl Host for WitHost {
    fn kv_get(&self, collection: &str, key: &str) -> SdkResult<Option<String>> {
        kv::get(collection, key).map_err(from_wit)
    }
    fn kv_set(
        &self,
        collection: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> SdkResult<()> {
        kv::set(collection, key, value, ttl_ms).map_err(from_wit)
    }
    fn kv_delete(&self, collection: &str, key: &str) -> SdkResult<bool> {
        kv::delete(collection, key).map_err(from_wit)
    }
    fn kv_list(
        &self,
        collection: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> SdkResult<KvPage> {
        kv::list(collection, prefix, cursor, limit)
            .map(|p| KvPage {
                entries: p.entries,
                cursor: p.cursor,
            })
            .map_err(from_wit)
    }
    fn kv_increment(&self, collection: &str, key: &str, by: i64) -> SdkResult<i64> {
        kv::increment(collection, key, by).map_err(from_wit)
    }

    fn docs_insert(&self, collection: &str, id: Option<&str>, body: &str) -> SdkResult<String> {
        docs::insert(collection, id, body).map_err(from_wit)
    }
    fn docs_get(&self, collection: &str, id: &str) -> SdkResult<Option<String>> {
        docs::get(collection, id).map_err(from_wit)
    }
    fn docs_replace(&self, collection: &str, id: &str, body: &str) -> SdkResult<()> {
        docs::replace(collection, id, body).map_err(from_wit)
    }
    fn docs_patch(&self, collection: &str, id: &str, patch: &str) -> SdkResult<String> {
        docs::patch(collection, id, patch).map_err(from_wit)
    }
    fn docs_delete(&self, collection: &str, id: &str) -> SdkResult<bool> {
        docs::delete(collection, id).map_err(from_wit)
    }
    fn docs_find(
        &self,
        collection: &str,
        query: &str,
        options: &FindOptions,
    ) -> SdkResult<Vec<Document>> {
        let options = docs::FindOptions {
            sort: options.sort.clone(),
            limit: options.limit,
            skip: options.skip,
        };
        docs::find(collection, query, &options)
            .map(|found| {
                found
                    .into_iter()
                    .map(|d| Document {
                        id: d.id,
                        body: d.body,
                    })
                    .collect()
            })
            .map_err(from_wit)
    }
    fn docs_count(&self, collection: &str, query: &str) -> SdkResult<u64> {
        docs::count(collection, query).map_err(from_wit)
    }

    fn files_put(&self, path: &str, content: &[u8], content_type: &str) -> SdkResult<FileStat> {
        files::put(path, content, content_type)
            .map(stat)
            .map_err(from_wit)
    }
    fn files_get(&self, path: &str) -> SdkResult<Option<(FileStat, Vec<u8>)>> {
        files::get(path)
            .map(|found| found.map(|(s, content)| (stat(s), content)))
            .map_err(from_wit)
    }
    fn files_head(&self, path: &str) -> SdkResult<Option<FileStat>> {
        files::head(path).map(|s| s.map(stat)).map_err(from_wit)
    }
    fn files_delete(&self, path: &str) -> SdkResult<bool> {
        files::delete(path).map_err(from_wit)
    }
    fn files_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> SdkResult<FilePage> {
        files::list(prefix, cursor, limit)
            .map(|p| FilePage {
                files: p.files.into_iter().map(stat).collect(),
                cursor: p.cursor,
            })
            .map_err(from_wit)
    }

    fn http_fetch(&self, request: &HttpRequest) -> SdkResult<HttpResponse> {
        let request = http::OutgoingRequest {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            timeout_ms: request.timeout_ms,
        };
        http::fetch(&request)
            .map(|r| HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(from_wit)
    }

    fn email_send(&self, message: &EmailMessage) -> SdkResult<String> {
        let message = email::Message {
            to: message.to.clone(),
            cc: message.cc.clone(),
            bcc: message.bcc.clone(),
            subject: message.subject.clone(),
            text: message.text.clone(),
            html: message.html.clone(),
            reply_to: message.reply_to.clone(),
        };
        email::send(&message).map_err(from_wit)
    }

    fn secrets_get(&self, name: &str) -> SdkResult<Option<String>> {
        secrets::get(name).map_err(from_wit)
    }
    fn secrets_set(&self, name: &str, value: &str) -> SdkResult<()> {
        secrets::set(name, value).map_err(from_wit)
    }
    fn secrets_delete(&self, name: &str) -> SdkResult<bool> {
        secrets::delete(name).map_err(from_wit)
    }
    fn secrets_list(&self) -> SdkResult<Vec<String>> {
        secrets::list().map_err(from_wit)
    }

    fn users_create(&self, new_user: &NewUser) -> SdkResult<User> {
        let new_user = users::NewUser {
            email: new_user.email.clone(),
            password: new_user.password.clone(),
            roles: new_user.roles.clone(),
            data: new_user.data.clone(),
        };
        users::create(&new_user).map(user).map_err(from_wit)
    }
    fn users_get(&self, id: &str) -> SdkResult<Option<User>> {
        users::get(id).map(|u| u.map(user)).map_err(from_wit)
    }
    fn users_find_by_email(&self, email: &str) -> SdkResult<Option<User>> {
        users::find_by_email(email)
            .map(|u| u.map(user))
            .map_err(from_wit)
    }
    fn users_update(&self, id: &str, update: &UserUpdate) -> SdkResult<User> {
        let update = users::UserUpdate {
            email: update.email.clone(),
            password: update.password.clone(),
            roles: update.roles.clone(),
            data: update.data.clone(),
        };
        users::update(id, &update).map(user).map_err(from_wit)
    }
    fn users_delete(&self, id: &str) -> SdkResult<bool> {
        users::delete(id).map_err(from_wit)
    }
    fn users_list(&self, cursor: Option<&str>, limit: Option<u32>) -> SdkResult<UserPage> {
        users::list(cursor, limit)
            .map(|p| UserPage {
                users: p.users.into_iter().map(user).collect(),
                cursor: p.cursor,
            })
            .map_err(from_wit)
    }
    fn users_login(&self, email: &str, password: &str) -> SdkResult<Session> {
        users::login(email, password)
            .map(|s| Session {
                token: s.token,
                user: user(s.user),
                expires: s.expires,
            })
            .map_err(from_wit)
    }
    fn users_verify(&self, token: &str) -> SdkResult<User> {
        users::verify(token).map(user).map_err(from_wit)
    }
    fn users_logout(&self, token: &str) -> SdkResult<()> {
        users::logout(token).map_err(from_wit)
    }
    fn users_request_password_reset(&self, email: &str) -> SdkResult<()> {
        users::request_password_reset(email).map_err(from_wit)
    }
    fn users_reset_password(&self, token: &str, new_password: &str) -> SdkResult<()> {
        users::reset_password(token, new_password).map_err(from_wit)
    }
    fn users_request_verification(&self, id: &str) -> SdkResult<()> {
        users::request_verification(id).map_err(from_wit)
    }
    fn users_verify_email(&self, token: &str) -> SdkResult<User> {
        users::verify_email(token).map(user).map_err(from_wit)
    }
    fn users_invite(&self, email: &str, roles: &[String]) -> SdkResult<()> {
        users::invite(email, roles).map_err(from_wit)
    }
    fn users_accept_invite(&self, token: &str, password: &str) -> SdkResult<User> {
        users::accept_invite(token, password)
            .map(user)
            .map_err(from_wit)
    }
    fn users_add_role(&self, id: &str, role: &str) -> SdkResult<User> {
        users::add_role(id, role).map(user).map_err(from_wit)
    }
    fn users_remove_role(&self, id: &str, role: &str) -> SdkResult<User> {
        users::remove_role(id, role).map(user).map_err(from_wit)
    }

    fn pubsub_publish(&self, topic: &str, message: &str) -> SdkResult<()> {
        pubsub::publish(topic, message).map_err(from_wit)
    }
    fn pubsub_publish_durable(&self, topic: &str, message: &str) -> SdkResult<()> {
        pubsub::publish_durable(topic, message).map_err(from_wit)
    }
    fn pubsub_subscriber_token(&self, topics: &[String], ttl_secs: u32) -> SdkResult<String> {
        pubsub::subscriber_token(topics, ttl_secs).map_err(from_wit)
    }

    fn dead_letters_replay(&self, id: &str) -> SdkResult<()> {
        dead_letters::replay(id).map_err(from_wit)
    }
    fn dead_letters_resolve(&self, id: &str) -> SdkResult<()> {
        dead_letters::resolve(id).map_err(from_wit)
    }

    fn log(&self, level: LogLevel, message: &str, fields: Option<&str>) {
        let level = match level {
            LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        log::log(level, message, fields);
    }
    fn runtime_info(&self) -> RuntimeInfo {
        let info = runtime::info();
        RuntimeInfo {
            app: info.app,
            function: info.function,
            version: info.version,
            invocation_id: info.invocation_id,
            trigger: info.trigger,
        }
    }
    fn remaining_fuel(&self) -> u64 {
        runtime::remaining_fuel()
    }
    fn now_ms(&self) -> u64 {
        runtime::now()
    }
    fn module_source(&self, name: &str) -> Option<String> {
        rhai_script::module_source(name)
    }
}
