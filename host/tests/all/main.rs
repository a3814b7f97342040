//! PiCloud host tests: storage on both backends, the real server over HTTP, the real CLI.

/// `on_both_backends!(a, b)` in a module with `async fn a(backend: Backend)`: tests
/// `sqlite::a` and `postgres::a` (the module imports `Backend`).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

mod cli;
mod cli_project;
mod conformance;
mod dashboard;
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
mod tokens;
mod users;
