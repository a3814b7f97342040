//! PiCloud's host: the `picloud` server (admin API, data plane, SDK services, storage)
//! and the CLI that talks to it.
//!
//! Scope: everything outside the sandbox. The sandbox itself is `picloud-runtime`.
//! Lifecycle: [`server::Server::start`] opens storage and the runtime and binds;
//! [`server::Server::serve`] runs until shutdown; [`cli::run`] is the binary's entry.

#![warn(missing_docs)]

pub mod admission;
pub mod api;
pub mod auth;
pub mod cli;
pub mod control;
pub mod dashboard;
pub mod dataplane;
pub mod error;
pub mod events;
pub mod fair;
pub mod invoke;
pub mod jobs;
pub mod mailer;
pub mod outbound;
pub mod quota;
pub mod recorder;
pub mod rhai;
pub mod routing;
pub mod server;
pub mod services;
pub mod storage;
pub mod vault;
