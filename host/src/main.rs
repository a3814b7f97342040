//! The `picloud` binary: server and CLI in one.

fn main() -> std::process::ExitCode {
    picloud::cli::main()
}
