//! The `picloud` binary: server and CLI in one.

/// mimalloc instead of the system allocator: a request allocates many small blocks
/// (headers, the invocation record, the wasm call's state), and glibc's malloc took
/// ~10 % of the server's CPU under load (measured: 26.5 → 23.3 µs of CPU per request of
/// an empty Rhai handler).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    picloud::cli::main()
}
