//! The scripting model: a script's body is the handler, `ctx` describes the invocation,
//! and the script's value becomes the response.

use crate::convert;
use crate::resolver::{at, check_literal_imports};
use crate::sdk::{display, pairs_to_map};
use rhai::{AST, Blob, Caches, Dynamic, Engine, EvalAltResult, Map, Scope};
use std::fmt;

/// What a script is invoked with (the WIT `request` plus the invocation's identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// HTTP method in upper case; `EVENT` for non-HTTP triggers.
    pub method: String,
    /// The path below the app, starting with `/`.
    pub path: String,
    /// The raw query string without `?`, empty when there is none.
    pub query: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Route parameters by name.
    pub params: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// The trigger event (JSON text) for non-HTTP invocations.
    pub event: Option<String>,
    /// The app the function belongs to.
    pub app: String,
    /// The id of this invocation.
    pub invocation_id: String,
}

/// What a script answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a script run produced no response: it threw, broke a limit, or its value cannot
/// be a response. The host answers it as `function_failed` with [`ScriptError::message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// What went wrong, with the script position where Rhai knows it.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScriptError {}

/// Content type of text responses.
const TEXT: &str = "text/plain; charset=utf-8";
/// Content type of JSON responses.
const JSON: &str = "application/json";
/// Content type of blob responses.
const BYTES: &str = "application/octet-stream";

/// Compiles a script. The error names the problem with its line and column
/// (`Expecting ')' … (line 3, column 7)`); a literal `import` of an invalid or reserved
/// module name is refused here too.
///
/// ```
/// use picloud_rhai_shim::{compile, build_engine};
/// # struct NoHost;
/// # impl picloud_rhai_shim::Host for NoHost {
/// #     fn log(&self, _: picloud_rhai_shim::LogLevel, _: &str, _: Option<&str>) {}
/// #     fn runtime_info(&self) -> picloud_rhai_shim::RuntimeInfo { Default::default() }
/// #     fn remaining_fuel(&self) -> u64 { 0 }
/// #     fn now_ms(&self) -> u64 { 0 }
/// #     fn module_source(&self, _: &str) -> Option<String> { None }
/// # }
/// let engine = build_engine(std::rc::Rc::new(NoHost));
/// let error = compile(&engine, "let x = (1 +;").unwrap_err();
/// assert!(error.contains("(line 1, column"), "{error}");
/// ```
pub fn compile(engine: &Engine, source: &str) -> Result<AST, String> {
    let ast = engine.compile(source).map_err(|e| {
        let (message, pos) = (e.err_type().to_string(), e.position());
        format!("{message}{}", at(pos))
    })?;
    check_literal_imports(&ast)?;
    Ok(ast)
}

/// Runs a compiled script for one request.
///
/// `ctx` is in scope as a constant:
///
/// | field | value |
/// |---|---|
/// | `ctx.request.method`, `.path` | strings |
/// | `ctx.request.query` | map of the decoded query parameters (a repeated name keeps its last value) |
/// | `ctx.request.headers` | map with lower-case names (repeated headers joined with `", "`) |
/// | `ctx.request.params` | map of route parameters |
/// | `ctx.request.body` | the body as a string |
/// | `ctx.request.json` | the body parsed as JSON, or `()` |
/// | `ctx.event` | the trigger event (absent for HTTP) |
/// | `ctx.app`, `ctx.invocation_id` | strings |
///
/// Like every Rhai variable, `ctx` is not visible inside `fn` bodies: pass it (or the
/// part needed) as an argument.
///
/// The script's value becomes the response: a map whose keys are only `status`,
/// `headers` and `body` (with an integer `status`, default 200) is the response as
/// given; any other map or an array is `200` JSON; a string is `200 text/plain`; `()` is
/// `204`; another number or a bool is `200` JSON; a blob is `200
/// application/octet-stream`. A body given as a map or array is sent as JSON, and the
/// fitting `content-type` is added unless the script set one.
pub fn run(engine: &Engine, ast: &AST, request: &Request) -> Result<Response, ScriptError> {
    run_cached(engine, ast, &mut RunCache::default(), request)
}

/// What one run of a script learns that the next run of the same script may reuse:
/// which function each call resolves to (Rhai looks every call up by name and argument
/// types in the script, the engine's packages and modules, and caches a call only from
/// its second use within one run).
///
/// It holds no values of a run, only the resolution of function names, which depends on
/// the engine and the AST alone. A run that imported a module leaves it empty: an
/// imported module may change before the next run.
#[derive(Debug, Default)]
pub struct RunCache(Caches);

/// [`run`], reusing (and filling) `cache`, which must only ever be used with this
/// `engine` and `ast`.
pub fn run_cached(
    engine: &Engine,
    ast: &AST,
    cache: &mut RunCache,
    request: &Request,
) -> Result<Response, ScriptError> {
    run_classified(engine, ast, cache, request).map_err(|(error, _)| error)
}

/// What kind of failure a [`ScriptError`] is, for the WIT error the shim answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The script threw, failed at run time or answered a value that is no response.
    Script,
    /// The script broke one of Rhai's limits (operations, call depth, sizes, modules).
    Limit,
}

/// [`run_cached`], saying whether the run failed on a limit.
pub(crate) fn run_classified(
    engine: &Engine,
    ast: &AST,
    cache: &mut RunCache,
    request: &Request,
) -> Result<Response, (ScriptError, Failure)> {
    let mut scope = Scope::new();
    scope.push_constant("ctx", Dynamic::from_map(context(request)));
    // What `Engine::eval_ast_with_scope` does, with caches that outlive the run.
    let mut global = engine.new_global_runtime_state();
    global.source = ast.source().map(Into::into);
    global.lib.push(ast.shared_lib().clone());
    global.embedded_module_resolver = ast.resolver().cloned();
    #[allow(deprecated)] // rhai's only entry point taking the caches
    let value = engine.eval_statements_raw(&mut global, &mut cache.0, &mut scope, ast.statements());
    // A run that failed inside a function may leave that function's cache pushed.
    cache.0.rewind_fn_resolution_caches(1);
    if global.num_modules_loaded > 0 {
        cache.0 = Caches::new();
    }
    let value = value.map_err(|e| {
        let failure = if is_limit(&e) {
            Failure::Limit
        } else {
            Failure::Script
        };
        let message = describe(engine, &e);
        (ScriptError { message }, failure)
    })?;
    response_of(value).map_err(|message| (ScriptError { message }, Failure::Script))
}

/// Whether `error` (or the error it wraps) is a breach of one of Rhai's limits.
fn is_limit(error: &EvalAltResult) -> bool {
    match error {
        EvalAltResult::ErrorTooManyOperations(_)
        | EvalAltResult::ErrorStackOverflow(_)
        | EvalAltResult::ErrorDataTooLarge(..)
        | EvalAltResult::ErrorTooManyModules(_)
        | EvalAltResult::ErrorTooManyVariables(_) => true,
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => is_limit(inner),
        _ => false,
    }
}

/// The `ctx` map of a request.
fn context(request: &Request) -> Map {
    let body = String::from_utf8_lossy(&request.body).into_owned();
    let json = if body.trim().is_empty() {
        Dynamic::UNIT
    } else {
        convert::from_json_text(&body).unwrap_or(Dynamic::UNIT)
    };
    let mut req = Map::new();
    req.insert("method".into(), request.method.clone().into());
    req.insert("path".into(), request.path.clone().into());
    req.insert(
        "query".into(),
        Dynamic::from_map(crate::helpers::query_map(&request.query)),
    );
    req.insert(
        "headers".into(),
        Dynamic::from_map(pairs_to_map(&request.headers, true)),
    );
    req.insert(
        "params".into(),
        Dynamic::from_map(pairs_to_map(&request.params, false)),
    );
    req.insert("body".into(), body.into());
    req.insert("json".into(), json);

    let mut ctx = Map::new();
    ctx.insert("request".into(), Dynamic::from_map(req));
    if let Some(event) = &request.event {
        let event = convert::from_json_text(event).unwrap_or_else(|_| event.clone().into());
        ctx.insert("event".into(), event);
    }
    ctx.insert("app".into(), request.app.clone().into());
    ctx.insert("invocation_id".into(), request.invocation_id.clone().into());
    ctx
}

/// The response a script's value stands for.
fn response_of(value: Dynamic) -> Result<Response, String> {
    let value = value.flatten();
    if value.is_unit() {
        return Ok(Response {
            status: 204,
            ..Response::default()
        });
    }
    if let Some(map) = value.read_lock::<Map>()
        && is_response_map(&map)
    {
        return response_map(&map);
    }
    let (body, content_type) = body_of(&value)?;
    Ok(Response {
        status: 200,
        headers: content_type
            .map(|t| vec![("content-type".to_string(), t.to_string())])
            .unwrap_or_default(),
        body,
    })
}

/// A map meant as a response: only `status`, `headers` and `body` keys, an integer
/// `status` if any.
fn is_response_map(map: &Map) -> bool {
    !map.is_empty()
        && map
            .keys()
            .all(|k| matches!(k.as_str(), "status" | "headers" | "body"))
        && map.get("status").is_none_or(Dynamic::is_int)
}

fn response_map(map: &Map) -> Result<Response, String> {
    let status = match map.get("status") {
        Some(status) => status
            .as_int()
            .ok()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| {
                format!("the response status {status} is not an HTTP status (100 ..= 599)")
            })?,
        None => 200,
    };
    let mut headers = Vec::new();
    if let Some(given) = map.get("headers").map(Dynamic::flatten_clone)
        && !given.is_unit()
    {
        let given = given
            .try_cast::<Map>()
            .ok_or("the response `headers` must be an object map")?;
        headers.extend(given.iter().map(|(k, v)| (k.to_string(), display(v))));
    }
    let body = map.get("body").cloned().unwrap_or(Dynamic::UNIT);
    let (body, content_type) = body_of(&body.flatten())?;
    if let Some(content_type) = content_type
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), content_type.into()));
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The bytes of a response body and the content type that fits them.
fn body_of(value: &Dynamic) -> Result<(Vec<u8>, Option<&'static str>), String> {
    if value.is_unit() {
        return Ok((Vec::new(), None));
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Ok((s.as_bytes().to_vec(), Some(TEXT)));
    }
    if let Ok(c) = value.as_char() {
        return Ok((c.to_string().into_bytes(), Some(TEXT)));
    }
    if let Some(blob) = value.read_lock::<Blob>() {
        return Ok((blob.clone(), Some(BYTES)));
    }
    let json = convert::to_json_text(value)
        .map_err(|e| format!("the script's value cannot be a response body: {e}"))?;
    Ok((json.into_bytes(), Some(JSON)))
}

/// A one-line description of a failed run.
fn describe(engine: &Engine, error: &EvalAltResult) -> String {
    match error {
        EvalAltResult::ErrorRuntime(value, pos) => format!("{}{}", display(value), at(*pos)),
        EvalAltResult::ErrorTooManyOperations(pos) => format!(
            "the script exceeded its limit of {} operations{}",
            engine.max_operations(),
            at(*pos)
        ),
        EvalAltResult::ErrorStackOverflow(pos) => format!(
            "the script exceeded its limit of {} nested function calls{}",
            engine.max_call_levels(),
            at(*pos)
        ),
        EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) => {
            let call = if name.starts_with("anon$") {
                "in a closure called".to_string()
            } else {
                format!("in function `{name}` called")
            };
            format!("{}, {call}{}", describe(engine, inner), at(*pos))
        }
        EvalAltResult::ErrorInModule(name, inner, pos) => {
            format!(
                "{}, in module `{name}` imported{}",
                describe(engine, inner),
                at(*pos)
            )
        }
        other => {
            // rhai writes the position as " (line L, position C)"; say "column" like the rest.
            let text = other.to_string();
            let pos = other.position();
            let text = text.strip_suffix(&format!(" ({pos})")).unwrap_or(&text);
            format!("{}{}", text.replace('\n', " "), at(pos))
        }
    }
}
