//! Rhai scripts: the embedded Rhai shim component and the deploy-time syntax check.
//!
//! `build.rs` builds `rhai-shim/` for wasm32-wasip2; its bytes are part of this binary,
//! so a fresh clone serves Rhai scripts with no extra step.

use picloud_rhai_shim::{Host, LogLevel, RuntimeInfo};
use std::rc::Rc;
use std::sync::OnceLock;

/// The Rhai shim component (`rhai-shim/`, built by `build.rs`).
pub const RHAI_SHIM: &[u8] = include_bytes!(env!("PICLOUD_RHAI_SHIM"));

/// The key the one compiled snapshot of the shim, shared by every Rhai function, is
/// cached under (see `picloud_runtime::Runtime::compile_snapshot`): derived from the
/// sha256 of [`RHAI_SHIM`], so a new shim never reuses the snapshot of an old one.
pub fn shim_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let shim = picloud_runtime::sha256_hex(RHAI_SHIM);
        picloud_runtime::sha256_hex(format!("rhai-engine:{shim}").as_bytes())
    })
}

/// Compiles `source` with the shim's own engine configuration; the error names the
/// line and column.
pub fn check_script(source: &str) -> Result<(), String> {
    let engine = picloud_rhai_shim::build_engine(Rc::new(CompileOnly));
    picloud_rhai_shim::compile(&engine, source)
        .map(drop)
        .map_err(|e| format!("the script does not compile: {e}"))
}

/// A host for compiling only: nothing runs, so no service is ever called.
struct CompileOnly;

impl Host for CompileOnly {
    fn log(&self, _: LogLevel, _: &str, _: Option<&str>) {}
    fn runtime_info(&self) -> RuntimeInfo {
        RuntimeInfo::default()
    }
    fn remaining_fuel(&self) -> u64 {
        0
    }
    fn now_ms(&self) -> u64 {
        0
    }
    fn module_source(&self, _: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::check_script;

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        assert_eq!(check_script("let x = 1;\nx + 1"), Ok(()));
        let error = check_script("let x = 1;\nlet = 2;").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }
}
