//! The Rhai shim: runs PiCloud Rhai scripts, natively (tests, deploy-time compile checks)
//! and as the `picloud:sdk/rhai-shim` wasm component.
//!
//! Scope: the Rhai scripting model of SPEC §5 — `ctx` in, the script's value out, the SDK
//! modules under their Rhai-native names over a [`Host`], the helper modules, `import` of
//! module scripts, and Rhai limits. Lifecycle: [`build_engine`] once per instance (at
//! `wizer-initialize` in the component, so the one snapshot every Rhai function shares
//! starts with it built), [`compile`] once per script (in the component: on an
//! instance's first request), [`run`] once per request.
//!
//! 1. Implement [`Host`] (every SDK service method defaults to `unavailable`).
//! 2. Build an engine with [`build_engine`] and compile the script with [`compile`].
//! 3. Call [`run`] with a [`Request`]; it answers a [`Response`] or a [`ScriptError`].
//!
//! ```
//! use picloud_rhai_shim::{build_engine, compile, run, Host, LogLevel, Request, RuntimeInfo};
//! use std::rc::Rc;
//!
//! struct MyHost;
//! impl Host for MyHost {
//!     fn log(&self, _: LogLevel, message: &str, _: Option<&str>) { eprintln!("{message}") }
//!     fn runtime_info(&self) -> RuntimeInfo { RuntimeInfo::default() }
//!     fn remaining_fuel(&self) -> u64 { u64::MAX }
//!     fn now_ms(&self) -> u64 { 0 }
//!     fn module_source(&self, _name: &str) -> Option<String> { None }
//! }
//!
//! let engine = build_engine(Rc::new(MyHost));
//! let ast = compile(&engine, r#"#{ id: ctx.request.params.id, n: 1 + 1 }"#).unwrap();
//! let request = Request {
//!     method: "GET".into(),
//!     path: "/orders/7".into(),
//!     params: vec![("id".into(), "7".into())],
//!     ..Request::default()
//! };
//! let response = run(&engine, &ast, &request).unwrap();
//! assert_eq!(response.status, 200);
//! assert_eq!(response.body, br#"{"id":"7","n":2}"#);
//! ```

#![warn(missing_docs)]

pub mod convert;
mod engine;
mod helpers;
mod host;
mod resolver;
mod script;
mod sdk;
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[allow(unsafe_code)]
mod small_blocks;
#[cfg(target_arch = "wasm32")]
mod wasm;

/// In the sandbox the interpreter allocates for every value and call: small blocks come
/// from size-class free lists ([`small_blocks`]), the rest from Talc, which is faster than the
/// default wasm allocator (dlmalloc). Both measured on fib(20) in the shim.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: small_blocks::SmallBlocks<talc::wasm::WasmDynamicTalc> =
    small_blocks::SmallBlocks::new(talc::wasm::new_wasm_dynamic_allocator());

pub use engine::{
    DEFAULT_MAX_ARRAY_SIZE, DEFAULT_MAX_CALL_LEVELS, DEFAULT_MAX_EXPR_DEPTH,
    DEFAULT_MAX_FUNCTION_EXPR_DEPTH, DEFAULT_MAX_MAP_SIZE, DEFAULT_MAX_MODULES,
    DEFAULT_MAX_OPERATIONS, DEFAULT_MAX_STRING_SIZE, DEFAULT_MEMORY_BYTES, FUEL_PER_OPERATION,
    Limits, build_engine, build_engine_with_limits,
};
pub use host::{
    Document, EmailMessage, FilePage, FileStat, FindOptions, Host, HttpRequest, HttpResponse,
    KvPage, LogLevel, NewUser, RuntimeInfo, SdkError, SdkResult, Session, User, UserPage,
    UserUpdate,
};
pub use resolver::{MAX_IMPORT_DEPTH, RESERVED_MODULE_NAMES, validate_module_name};
pub use rhai::{AST, Engine};
pub use script::{Request, Response, RunCache, ScriptError, compile, run, run_cached};
