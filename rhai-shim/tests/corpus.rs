//! The script corpus: every `tests/corpus/*.rhai` runs natively through `run` against an
//! in-memory host, and its response must be the one its header states.
//!
//! # Header format
//!
//! A script starts with `// key: value` comment lines (the first other line ends the
//! header):
//!
//! | line | meaning |
//! |---|---|
//! | `// request: GET /orders/7?x=1` | method, path and query of the request (default `GET /`) |
//! | `// header: content-type: application/json` | a request header (repeatable) |
//! | `// param: id=7` | a route parameter (repeatable) |
//! | `// body: {"a":1}` | the request body (the rest of the line) |
//! | `// event: {"op":"set"}` | the trigger event (JSON); the method becomes `EVENT` unless given |
//! | `// unavailable: kv` | the in-memory host answers `unavailable` for that interface |
//! | `// expect: 200 {"id":"7"}` | the exact status and body (the body may be empty) |
//! | `// expect-header: content-type: application/json` | a response header (repeatable) |
//! | `// expect-error: text` | compiling or running fails with a message containing `text` |
//! | `// effect: log info hello` | what the host recorded, in order; when any `effect` line is present the recorded effects must be exactly these |
//!
//! Module scripts served by `Host::module_source` live in `tests/corpus/modules/NAME.rhai`.
//! Every script must have exactly one of `expect` and `expect-error`.
//!
//! # The in-memory host
//!
//! kv, docs (equality queries, one sort field, limit/skip), files, secrets, a few users
//! operations, email (with the server's refusal of line breaks in header values and of
//! addresses without `@`), pubsub, dead letters and log are modelled; http answers
//! `https://echo.test/…` with the request echoed as JSON and `https://status.test/CODE`
//! with that status; the clock stands at 2026-01-01T00:00:00Z. Anything not modelled
//! answers `unavailable`, as the runtime's stand-in does.

use picloud_rhai_shim::{
    Document, EmailMessage, FilePage, FileStat, FindOptions, Host, HttpRequest, HttpResponse,
    KvPage, LogLevel, NewUser, Request, RuntimeInfo, SdkError, SdkResult, Session, User, UserPage,
    UserUpdate, build_engine, compile, run, run_cached,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// 2026-01-01T00:00:00Z in milliseconds.
const NOW_MS: u64 = 1_767_225_600_000;

#[derive(Default)]
struct MemoryHost {
    unavailable: BTreeSet<String>,
    modules: RefCell<BTreeMap<String, String>>,
    effects: RefCell<Vec<String>>,
    counter: Cell<u64>,
    kv: RefCell<BTreeMap<(String, String), String>>,
    docs: RefCell<BTreeMap<(String, String), Value>>,
    files: RefCell<BTreeMap<String, (FileStat, Vec<u8>)>>,
    secrets: RefCell<BTreeMap<String, String>>,
    users: RefCell<BTreeMap<String, (User, String)>>,
    sessions: RefCell<BTreeMap<String, String>>,
}

impl MemoryHost {
    fn check(&self, interface: &str) -> SdkResult<()> {
        if self.unavailable.contains(interface) {
            Err(SdkError::unavailable(interface))
        } else {
            Ok(())
        }
    }

    fn effect(&self, text: String) {
        self.effects.borrow_mut().push(text);
    }

    fn next_id(&self, prefix: &str) -> String {
        self.counter.set(self.counter.get() + 1);
        format!("{prefix}-{}", self.counter.get())
    }

    fn parse(json: &str) -> SdkResult<Value> {
        serde_json::from_str(json).map_err(|e| SdkError::Invalid(format!("bad JSON: {e}")))
    }

    fn matches(doc: &Value, query: &Value) -> bool {
        query
            .as_object()
            .is_some_and(|q| q.iter().all(|(k, v)| doc.get(k) == Some(v)))
    }
}

fn page<T: Clone>(
    items: Vec<T>,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> (Vec<T>, Option<String>) {
    let start: usize = cursor.map_or(0, |c| c.parse().unwrap_or(0));
    let limit = limit.unwrap_or(100) as usize;
    let end = (start + limit).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    (items[start.min(end)..end].to_vec(), next)
}

impl Host for MemoryHost {
    fn kv_get(&self, collection: &str, key: &str) -> SdkResult<Option<String>> {
        self.check("kv")?;
        Ok(self
            .kv
            .borrow()
            .get(&(collection.into(), key.into()))
            .cloned())
    }
    fn kv_set(
        &self,
        collection: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> SdkResult<()> {
        self.check("kv")?;
        if let Some(ttl) = ttl_ms {
            self.effect(format!("kv set {collection}/{key} ttl {ttl}"));
        }
        self.kv
            .borrow_mut()
            .insert((collection.into(), key.into()), value.into());
        Ok(())
    }
    fn kv_delete(&self, collection: &str, key: &str) -> SdkResult<bool> {
        self.check("kv")?;
        Ok(self
            .kv
            .borrow_mut()
            .remove(&(collection.into(), key.into()))
            .is_some())
    }
    fn kv_list(
        &self,
        collection: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> SdkResult<KvPage> {
        self.check("kv")?;
        let all: Vec<(String, String)> = self
            .kv
            .borrow()
            .iter()
            .filter(|((c, k), _)| c == collection && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        let (entries, cursor) = page(all, cursor, limit);
        Ok(KvPage { entries, cursor })
    }
    fn kv_increment(&self, collection: &str, key: &str, by: i64) -> SdkResult<i64> {
        self.check("kv")?;
        let mut kv = self.kv.borrow_mut();
        let slot = kv
            .entry((collection.into(), key.into()))
            .or_insert_with(|| "0".into());
        let n: i64 = slot
            .parse()
            .map_err(|_| SdkError::Invalid("not an integer".into()))?;
        *slot = (n + by).to_string();
        Ok(n + by)
    }

    fn docs_insert(&self, collection: &str, id: Option<&str>, body: &str) -> SdkResult<String> {
        self.check("docs")?;
        let body = Self::parse(body)?;
        if !body.is_object() {
            return Err(SdkError::Invalid("a document must be a JSON object".into()));
        }
        let id = id.map_or_else(|| self.next_id("doc"), str::to_string);
        self.docs
            .borrow_mut()
            .insert((collection.into(), id.clone()), body);
        Ok(id)
    }
    fn docs_get(&self, collection: &str, id: &str) -> SdkResult<Option<String>> {
        self.check("docs")?;
        Ok(self
            .docs
            .borrow()
            .get(&(collection.into(), id.into()))
            .map(Value::to_string))
    }
    fn docs_replace(&self, collection: &str, id: &str, body: &str) -> SdkResult<()> {
        self.check("docs")?;
        let body = Self::parse(body)?;
        match self
            .docs
            .borrow_mut()
            .get_mut(&(collection.into(), id.into()))
        {
            Some(doc) => {
                *doc = body;
                Ok(())
            }
            None => Err(SdkError::NotFound),
        }
    }
    fn docs_patch(&self, collection: &str, id: &str, patch: &str) -> SdkResult<String> {
        self.check("docs")?;
        let patch = Self::parse(patch)?;
        let mut docs = self.docs.borrow_mut();
        let doc = docs
            .get_mut(&(collection.into(), id.into()))
            .ok_or(SdkError::NotFound)?;
        if let (Some(doc), Some(patch)) = (doc.as_object_mut(), patch.as_object()) {
            for (k, v) in patch {
                if v.is_null() {
                    doc.remove(k);
                } else {
                    doc.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(doc.to_string())
    }
    fn docs_delete(&self, collection: &str, id: &str) -> SdkResult<bool> {
        self.check("docs")?;
        Ok(self
            .docs
            .borrow_mut()
            .remove(&(collection.into(), id.into()))
            .is_some())
    }
    fn docs_find(
        &self,
        collection: &str,
        query: &str,
        options: &FindOptions,
    ) -> SdkResult<Vec<Document>> {
        self.check("docs")?;
        let query = Self::parse(query)?;
        let mut found: Vec<(String, Value)> = self
            .docs
            .borrow()
            .iter()
            .filter(|((c, _), doc)| c == collection && Self::matches(doc, &query))
            .map(|((_, id), doc)| (id.clone(), doc.clone()))
            .collect();
        if let Some(sort) = options.sort.first() {
            let (field, descending) = match sort.strip_prefix('-') {
                Some(f) => (f, true),
                None => (sort.as_str(), false),
            };
            found.sort_by(|a, b| {
                let ord =
                    a.1.get(field)
                        .map(Value::to_string)
                        .cmp(&b.1.get(field).map(Value::to_string));
                if descending { ord.reverse() } else { ord }
            });
        }
        let skip = options.skip.unwrap_or(0) as usize;
        let limit = options.limit.unwrap_or(100) as usize;
        Ok(found
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(|(id, body)| Document {
                id,
                body: body.to_string(),
            })
            .collect())
    }
    fn docs_count(&self, collection: &str, query: &str) -> SdkResult<u64> {
        self.check("docs")?;
        let query = Self::parse(query)?;
        Ok(self
            .docs
            .borrow()
            .iter()
            .filter(|((c, _), doc)| c == collection && Self::matches(doc, &query))
            .count() as u64)
    }

    fn files_put(&self, path: &str, content: &[u8], content_type: &str) -> SdkResult<FileStat> {
        self.check("files")?;
        let stat = FileStat {
            path: path.into(),
            size: content.len() as u64,
            content_type: content_type.into(),
            sha256: hex::encode(Sha256::digest(content)),
            modified: NOW_MS,
        };
        self.files
            .borrow_mut()
            .insert(path.into(), (stat.clone(), content.to_vec()));
        Ok(stat)
    }
    fn files_get(&self, path: &str) -> SdkResult<Option<(FileStat, Vec<u8>)>> {
        self.check("files")?;
        Ok(self.files.borrow().get(path).cloned())
    }
    fn files_head(&self, path: &str) -> SdkResult<Option<FileStat>> {
        self.check("files")?;
        Ok(self.files.borrow().get(path).map(|(s, _)| s.clone()))
    }
    fn files_delete(&self, path: &str) -> SdkResult<bool> {
        self.check("files")?;
        Ok(self.files.borrow_mut().remove(path).is_some())
    }
    fn files_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> SdkResult<FilePage> {
        self.check("files")?;
        let all: Vec<FileStat> = self
            .files
            .borrow()
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, (s, _))| s.clone())
            .collect();
        let (files, cursor) = page(all, cursor, limit);
        Ok(FilePage { files, cursor })
    }

    fn http_fetch(&self, request: &HttpRequest) -> SdkResult<HttpResponse> {
        self.check("http")?;
        if let Some(code) = request.url.strip_prefix("https://status.test/") {
            return Ok(HttpResponse {
                status: code.parse().unwrap_or(500),
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: format!("status {code}").into_bytes(),
            });
        }
        if request.url.starts_with("https://echo.test/") {
            let headers: serde_json::Map<String, Value> = request
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let echo = serde_json::json!({
                "method": request.method,
                "url": request.url,
                "headers": headers,
                "body": String::from_utf8_lossy(&request.body),
                "timeout_ms": request.timeout_ms,
            });
            return Ok(HttpResponse {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("X-Echo".into(), "1".into()),
                ],
                body: echo.to_string().into_bytes(),
            });
        }
        Err(SdkError::Denied(format!(
            "{} is not an allowed address",
            request.url
        )))
    }

    fn email_send(&self, message: &EmailMessage) -> SdkResult<String> {
        self.check("email")?;
        // The server's checks, as far as scripts of the corpus reach them: a line break
        // in a header value, an address without `@`.
        let fields = [("subject", &message.subject)]
            .into_iter()
            .chain(message.to.iter().map(|a| ("to", a)))
            .chain(message.cc.iter().map(|a| ("cc", a)))
            .chain(message.bcc.iter().map(|a| ("bcc", a)))
            .chain(message.reply_to.iter().map(|a| ("reply_to", a)));
        for (field, value) in fields {
            if value.contains(['\r', '\n']) {
                return Err(SdkError::Invalid(format!(
                    "{field} must not contain line breaks (CR, LF) or other control characters"
                )));
            }
            if field != "subject" && !value.contains('@') {
                return Err(SdkError::Invalid(format!(
                    "{field}: {value:?} is not a valid email address"
                )));
            }
        }
        self.effect(format!(
            "email to={:?} cc={:?} bcc={:?} subject={:?} text={:?} html={:?} reply_to={:?}",
            message.to,
            message.cc,
            message.bcc,
            message.subject,
            message.text,
            message.html,
            message.reply_to
        ));
        Ok(self.next_id("msg"))
    }

    fn secrets_get(&self, name: &str) -> SdkResult<Option<String>> {
        self.check("secrets")?;
        Ok(self.secrets.borrow().get(name).cloned())
    }
    fn secrets_set(&self, name: &str, value: &str) -> SdkResult<()> {
        self.check("secrets")?;
        self.secrets.borrow_mut().insert(name.into(), value.into());
        Ok(())
    }
    fn secrets_delete(&self, name: &str) -> SdkResult<bool> {
        self.check("secrets")?;
        Ok(self.secrets.borrow_mut().remove(name).is_some())
    }
    fn secrets_list(&self) -> SdkResult<Vec<String>> {
        self.check("secrets")?;
        Ok(self.secrets.borrow().keys().cloned().collect())
    }

    fn users_create(&self, new_user: &NewUser) -> SdkResult<User> {
        self.check("users")?;
        if self
            .users
            .borrow()
            .values()
            .any(|(u, _)| u.email == new_user.email)
        {
            return Err(SdkError::Invalid(format!("{} is taken", new_user.email)));
        }
        let user = User {
            id: self.next_id("user"),
            email: new_user.email.clone(),
            email_verified: false,
            roles: new_user.roles.clone(),
            data: new_user.data.clone().unwrap_or_else(|| "{}".into()),
            created: NOW_MS,
        };
        self.users
            .borrow_mut()
            .insert(user.id.clone(), (user.clone(), new_user.password.clone()));
        Ok(user)
    }
    fn users_get(&self, id: &str) -> SdkResult<Option<User>> {
        self.check("users")?;
        Ok(self.users.borrow().get(id).map(|(u, _)| u.clone()))
    }
    fn users_find_by_email(&self, email: &str) -> SdkResult<Option<User>> {
        self.check("users")?;
        Ok(self
            .users
            .borrow()
            .values()
            .find(|(u, _)| u.email == email)
            .map(|(u, _)| u.clone()))
    }
    fn users_delete(&self, id: &str) -> SdkResult<bool> {
        self.check("users")?;
        Ok(self.users.borrow_mut().remove(id).is_some())
    }
    fn users_list(&self, cursor: Option<&str>, limit: Option<u32>) -> SdkResult<UserPage> {
        self.check("users")?;
        let all: Vec<User> = self
            .users
            .borrow()
            .values()
            .map(|(u, _)| u.clone())
            .collect();
        let (users, cursor) = page(all, cursor, limit);
        Ok(UserPage { users, cursor })
    }
    fn users_login(&self, email: &str, password: &str) -> SdkResult<Session> {
        self.check("users")?;
        let users = self.users.borrow();
        let (user, _) = users
            .values()
            .find(|(u, p)| u.email == email && p == password)
            .ok_or_else(|| SdkError::Denied("invalid email or password".into()))?;
        let token = self.next_id("session");
        self.sessions
            .borrow_mut()
            .insert(token.clone(), user.id.clone());
        Ok(Session {
            token,
            user: user.clone(),
            expires: NOW_MS + 3_600_000,
        })
    }
    fn users_verify(&self, token: &str) -> SdkResult<User> {
        self.check("users")?;
        let id = self
            .sessions
            .borrow()
            .get(token)
            .cloned()
            .ok_or(SdkError::NotFound)?;
        self.users
            .borrow()
            .get(&id)
            .map(|(u, _)| u.clone())
            .ok_or(SdkError::NotFound)
    }
    fn users_logout(&self, token: &str) -> SdkResult<()> {
        self.check("users")?;
        self.sessions.borrow_mut().remove(token);
        Ok(())
    }
    fn users_update(&self, id: &str, update: &UserUpdate) -> SdkResult<User> {
        self.check("users")?;
        let mut users = self.users.borrow_mut();
        let (user, password) = users.get_mut(id).ok_or(SdkError::NotFound)?;
        if let Some(email) = &update.email {
            user.email = email.clone();
        }
        if let Some(new_password) = &update.password {
            *password = new_password.clone();
        }
        if let Some(roles) = &update.roles {
            user.roles = roles.clone();
        }
        if let Some(data) = &update.data {
            user.data = data.clone();
        }
        Ok(user.clone())
    }
    fn users_add_role(&self, id: &str, role: &str) -> SdkResult<User> {
        self.check("users")?;
        let mut users = self.users.borrow_mut();
        let (user, _) = users.get_mut(id).ok_or(SdkError::NotFound)?;
        if !user.roles.iter().any(|r| r == role) {
            user.roles.push(role.into());
        }
        Ok(user.clone())
    }

    fn pubsub_publish(&self, topic: &str, message: &str) -> SdkResult<()> {
        self.check("pubsub")?;
        self.effect(format!("publish {topic} {message}"));
        Ok(())
    }
    fn pubsub_publish_durable(&self, topic: &str, message: &str) -> SdkResult<()> {
        self.check("pubsub")?;
        self.effect(format!("publish_durable {topic} {message}"));
        Ok(())
    }
    fn pubsub_subscriber_token(&self, topics: &[String], ttl_secs: u32) -> SdkResult<String> {
        self.check("pubsub")?;
        Ok(format!("token:{}:{ttl_secs}", topics.join(",")))
    }

    fn dead_letters_replay(&self, id: &str) -> SdkResult<()> {
        self.check("dead_letters")?;
        if id != "dl-1" {
            return Err(SdkError::NotFound);
        }
        self.effect(format!("dead_letter replay {id}"));
        Ok(())
    }
    fn dead_letters_resolve(&self, id: &str) -> SdkResult<()> {
        self.check("dead_letters")?;
        if id != "dl-1" {
            return Err(SdkError::NotFound);
        }
        self.effect(format!("dead_letter resolve {id}"));
        Ok(())
    }

    fn log(&self, level: LogLevel, message: &str, fields: Option<&str>) {
        let level = format!("{level:?}").to_lowercase();
        match fields {
            Some(fields) => self.effect(format!("log {level} {message} {fields}")),
            None => self.effect(format!("log {level} {message}")),
        }
    }
    fn runtime_info(&self) -> RuntimeInfo {
        RuntimeInfo {
            app: "shop".into(),
            function: "orders".into(),
            version: 3,
            invocation_id: "inv-1".into(),
            trigger: "http".into(),
        }
    }
    fn remaining_fuel(&self) -> u64 {
        1_000_000
    }
    fn now_ms(&self) -> u64 {
        NOW_MS
    }
    fn module_source(&self, name: &str) -> Option<String> {
        self.modules.borrow().get(name).cloned()
    }
}

/// What a corpus script's header says.
#[derive(Default)]
struct Case {
    request: Request,
    unavailable: BTreeSet<String>,
    expect: Option<(u16, String)>,
    expect_headers: Vec<(String, String)>,
    expect_error: Option<String>,
    effects: Option<Vec<String>>,
}

fn parse_header(source: &str) -> Result<Case, String> {
    let mut case = Case::default();
    case.request.method = "GET".into();
    case.request.path = "/".into();
    case.request.app = "shop".into();
    case.request.invocation_id = "inv-1".into();
    let mut method_given = false;
    for line in source.lines() {
        let Some(rest) = line.strip_prefix("// ") else {
            break;
        };
        let Some((key, value)) = rest.split_once(": ") else {
            return Err(format!("bad header line {line:?}"));
        };
        match key {
            "request" => {
                let (method, target) = value.split_once(' ').ok_or("request: METHOD PATH")?;
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                case.request.method = method.into();
                case.request.path = path.into();
                case.request.query = query.into();
                method_given = true;
            }
            "header" => {
                let (name, v) = value.split_once(": ").ok_or("header: NAME: VALUE")?;
                case.request.headers.push((name.into(), v.into()));
            }
            "param" => {
                let (name, v) = value.split_once('=').ok_or("param: NAME=VALUE")?;
                case.request.params.push((name.into(), v.into()));
            }
            "body" => case.request.body = value.as_bytes().to_vec(),
            "event" => {
                case.request.event = Some(value.into());
                if !method_given {
                    case.request.method = "EVENT".into();
                }
            }
            "unavailable" => {
                case.unavailable.insert(value.into());
            }
            "expect" => {
                let (status, body) = value.split_once(' ').unwrap_or((value, ""));
                let status = status
                    .parse()
                    .map_err(|_| format!("bad status {status:?}"))?;
                case.expect = Some((status, body.into()));
            }
            "expect-header" => {
                let (name, v) = value.split_once(": ").ok_or("expect-header: NAME: VALUE")?;
                case.expect_headers.push((name.into(), v.into()));
            }
            "expect-error" => case.expect_error = Some(value.into()),
            "effect" => case.effects.get_or_insert_with(Vec::new).push(value.into()),
            other => return Err(format!("unknown header key {other:?}")),
        }
    }
    if case.expect.is_some() == case.expect_error.is_some() {
        return Err("exactly one of `expect` and `expect-error` is required".into());
    }
    Ok(case)
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn modules() -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(corpus_dir().join("modules")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        modules.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    modules
}

/// Runs one corpus script; `Err` says how it differed from its header.
fn check(path: &Path, modules: &BTreeMap<String, String>) -> Result<(), String> {
    let source = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case = parse_header(&source)?;
    let host = Rc::new(MemoryHost {
        unavailable: case.unavailable.clone(),
        modules: RefCell::new(modules.clone()),
        ..MemoryHost::default()
    });
    let engine = build_engine(host.clone());
    // A compile error counts as the run's error, so a script can expect it.
    let outcome = compile(&engine, &source)
        .map_err(|message| picloud_rhai_shim::ScriptError { message })
        .and_then(|ast| run(&engine, &ast, &case.request));
    match (&case.expect, &case.expect_error, outcome) {
        (Some((status, body)), _, Ok(response)) => {
            let got_body = String::from_utf8_lossy(&response.body);
            if response.status != *status || got_body != *body {
                return Err(format!(
                    "expected {status} {body}\n     got {} {got_body}",
                    response.status
                ));
            }
            for (name, value) in &case.expect_headers {
                if response.header(name) != Some(value.as_str()) {
                    return Err(format!(
                        "expected header {name}: {value}, got {:?} (all: {:?})",
                        response.header(name),
                        response.headers
                    ));
                }
            }
        }
        (Some(_), _, Err(e)) => return Err(format!("expected a response, got the error: {e}")),
        (None, Some(expected), Err(e)) => {
            if !e.message.contains(expected.as_str()) {
                return Err(format!(
                    "expected an error containing {expected:?}, got: {e}"
                ));
            }
        }
        (None, _, Ok(response)) => {
            return Err(format!(
                "expected an error, got {} {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ));
        }
        (None, None, Err(_)) => unreachable!("parse_header requires an expectation"),
    }
    if let Some(effects) = &case.effects {
        let got = host.effects.borrow();
        if *got != *effects {
            return Err(format!("expected effects {effects:#?}\n got {got:#?}"));
        }
    }
    Ok(())
}

#[test]
fn every_corpus_script_answers_what_its_header_states() {
    let modules = modules();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    assert!(
        scripts.len() >= 60,
        "the corpus has {} scripts, expected at least 60",
        scripts.len()
    );
    let failures: Vec<String> = scripts
        .iter()
        .filter_map(|path| {
            check(path, &modules)
                .err()
                .map(|e| format!("{}: {e}", path.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} corpus scripts failed:\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n")
    );
    println!("{} corpus scripts passed", scripts.len());
}

#[test]
fn a_syntax_error_is_reported_with_line_and_column() {
    let engine = build_engine(Rc::new(MemoryHost::default()));
    let error = compile(&engine, "let a = 1;\nlet b = (a +;\n").unwrap_err();
    assert!(error.contains("(line 2, column"), "{error}");
}

#[test]
fn a_literal_import_of_a_reserved_name_is_refused_at_compile_time() {
    let engine = build_engine(Rc::new(MemoryHost::default()));
    let error = compile(&engine, "import \"kv\" as store;\n1").unwrap_err();
    assert!(error.contains("`kv` is reserved"), "{error}");
    assert!(error.contains("(line 1, column 1)"), "{error}");
}

#[test]
fn module_names_follow_the_spec() {
    use picloud_rhai_shim::validate_module_name;
    assert!(validate_module_name("_private").is_ok());
    assert!(validate_module_name(&"a".repeat(64)).is_ok());
    assert!(validate_module_name(&"a".repeat(65)).is_err());
    assert!(validate_module_name("with-dash").is_err());
    assert!(validate_module_name("").is_err());
    for reserved in picloud_rhai_shim::RESERVED_MODULE_NAMES {
        assert!(validate_module_name(reserved).is_err(), "{reserved}");
    }
}

#[test]
fn one_engine_runs_a_script_for_many_requests() {
    let host = Rc::new(MemoryHost::default());
    let engine = build_engine(host);
    let ast = compile(&engine, "kv::increment(\"stats\", \"hits\")").unwrap();
    let request = Request {
        method: "GET".into(),
        path: "/".into(),
        ..Request::default()
    };
    for expected in 1..=3 {
        let response = run(&engine, &ast, &request).unwrap();
        assert_eq!(response.body, expected.to_string().into_bytes());
    }
}

/// Runs the script at `path` three times on a fresh in-memory host: each time with fresh
/// caches, or all three with one [`RunCache`](picloud_rhai_shim::RunCache). Answers what
/// each run gave and what the host recorded.
fn three_runs(
    path: &Path,
    modules: &BTreeMap<String, String>,
    cached: bool,
) -> (
    Vec<Result<picloud_rhai_shim::Response, String>>,
    Vec<String>,
) {
    let source = std::fs::read_to_string(path).unwrap();
    let case = parse_header(&source).unwrap();
    let host = Rc::new(MemoryHost {
        unavailable: case.unavailable.clone(),
        modules: RefCell::new(modules.clone()),
        ..MemoryHost::default()
    });
    let engine = build_engine(host.clone());
    let Ok(ast) = compile(&engine, &source) else {
        return (Vec::new(), Vec::new());
    };
    let mut cache = picloud_rhai_shim::RunCache::default();
    let outcomes = (0..3)
        .map(|_| {
            let outcome = if cached {
                run_cached(&engine, &ast, &mut cache, &case.request)
            } else {
                run(&engine, &ast, &case.request)
            };
            outcome.map_err(|e| e.message)
        })
        .collect();
    let effects = host.effects.borrow().clone();
    (outcomes, effects)
}

#[test]
fn runs_that_reuse_a_run_cache_answer_exactly_as_fresh_runs() {
    let modules = modules();
    let mut compared = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        let fresh = three_runs(&path, &modules, false);
        let cached = three_runs(&path, &modules, true);
        assert_eq!(fresh, cached, "{}", path.display());
        compared += 1;
    }
    assert!(compared >= 60, "{compared} scripts compared");
}

#[test]
fn a_changed_module_takes_effect_on_the_next_cached_run() {
    let host = Rc::new(MemoryHost::default());
    host.modules.borrow_mut().insert(
        "greet".into(),
        r#"fn hello(name) { `hello ${name}` }"#.into(),
    );
    let engine = build_engine(host.clone());
    let ast = compile(
        &engine,
        r#"fn twice(s) { s + s } import "greet" as g; twice(g::hello("you"))"#,
    )
    .unwrap();
    let mut cache = picloud_rhai_shim::RunCache::default();
    let request = Request::default();
    let body = |cache: &mut picloud_rhai_shim::RunCache| {
        String::from_utf8(run_cached(&engine, &ast, cache, &request).unwrap().body).unwrap()
    };
    assert_eq!(body(&mut cache), "hello youhello you");
    host.modules
        .borrow_mut()
        .insert("greet".into(), r#"fn hello(name) { `bye ${name}` }"#.into());
    assert_eq!(body(&mut cache), "bye youbye you");
}
