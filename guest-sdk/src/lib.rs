//! Write PiCloud functions in Rust.
//!
//! Scope: the `picloud:sdk/function` world — a handler entry point, typed request and
//! response helpers, and one module per SDK capability ([`kv`], [`docs`], [`files`],
//! [`http`], [`email`], [`secrets`], [`users`], [`log`], [`runtime`]; the raw bindings of every
//! other interface are in [`wit`]).
//!
//! Lifecycle: PiCloud instantiates your component fresh for every invocation and calls
//! your handler once; nothing survives between invocations except what you store.
//!
//! ```no_run
//! use picloud_sdk::{Request, Response};
//!
//! picloud_sdk::handler!(handle);
//!
//! fn handle(request: Request) -> picloud_sdk::Result<Response> {
//!     let name = request.query_param("name").unwrap_or_else(|| "world".into());
//!     Ok(Response::text(format!("Hello, {name}!")))
//! }
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` and deploy the `.wasm` with
//! `picloud deploy`.

#![warn(missing_docs)]

#[doc(hidden)]
#[allow(missing_docs, unsafe_code)]
pub mod wit {
    wit_bindgen::generate!({
        world: "picloud:sdk/function",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "picloud_sdk::wit",
        generate_all,
    });
}

mod request;
pub use request::{Request, Response};

pub mod docs;
pub mod email;
pub mod files;
pub mod http;
pub mod kv;
pub mod log;
pub mod runtime;
pub mod secrets;
pub mod users;

/// The SDK's error: the guest-visible `error` variant of the WIT contract.
pub use wit::picloud::sdk::types::Error;

impl Error {
    /// The error as one line of text, `kind: message` (`not found` for
    /// [`Error::NotFound`]), e.g. `invalid: secret name "a/b" …`.
    pub fn text(&self) -> String {
        match self {
            Error::NotFound => "not found".into(),
            Error::Invalid(m) => format!("invalid: {m}"),
            Error::Denied(m) => format!("denied: {m}"),
            Error::Limit(m) => format!("limit: {m}"),
            Error::Unavailable(m) => format!("unavailable: {m}"),
            Error::Internal(m) => format!("internal: {m}"),
        }
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Turns a JSON (de)serialisation failure into an [`Error::Invalid`].
pub(crate) fn invalid_json(e: serde_json::Error) -> Error {
    Error::Invalid(format!("invalid JSON: {e}"))
}

/// Declares the function's entry point: a `fn(Request) -> Result<Response>`.
///
/// ```no_run
/// picloud_sdk::handler!(handle);
///
/// fn handle(_request: picloud_sdk::Request) -> picloud_sdk::Result<picloud_sdk::Response> {
///     Ok(picloud_sdk::Response::text("ok"))
/// }
/// ```
#[macro_export]
macro_rules! handler {
    ($handle:path) => {
        #[doc(hidden)]
        pub struct __PicloudHandler;

        impl $crate::wit::exports::picloud::sdk::handler::Guest for __PicloudHandler {
            fn handle(request: $crate::Request) -> ::core::result::Result<$crate::Response, $crate::Error> {
                $handle(request)
            }
        }

        $crate::wit::export!(__PicloudHandler with_types_in $crate::wit);
    };
}
