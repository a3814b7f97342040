//! PiCloud host tests: storage on both backends, the real server over HTTP, the real CLI.

mod cli;
mod conformance;
mod data;
mod email;
mod events;
mod hostile;
mod outbound;
mod pubsub;
mod rhai;
mod rhai_shared;
mod secrets;
mod server;
mod storage;
mod support;
mod tenancy;
