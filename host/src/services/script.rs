//! `picloud:sdk/rhai-script`: the script of a Rhai function and the `module` scripts of
//! its app, for the Rhai shim.

use crate::storage::Db;
use picloud_runtime::rhai_script::{Host, ScriptLimits};
use picloud_runtime::{Limits, TrapError, TrapResult};
use std::sync::Arc;

fn trap(message: impl std::fmt::Display) -> TrapError {
    TrapError::msg(message.to_string())
}

/// Kind of a deployed Rhai function script.
pub const KIND_RHAI: &str = "rhai";
/// Kind of a deployed Rhai module (imported by scripts, never invoked).
pub const KIND_RHAI_MODULE: &str = "rhai-module";

/// The script of a Rhai function as one invocation serves it to the Rhai shim: its
/// source and the app's limits, from which Rhai's own limits follow.
#[derive(Clone)]
pub struct Script {
    /// The function's source.
    pub source: Arc<str>,
    /// The app's limits for the invocation.
    pub limits: Limits,
}

/// The script service of one invocation (or of the shim's initialisation, which has no
/// script).
pub struct ScriptService {
    db: Db,
    app_id: std::sync::Arc<str>,
    script: Option<Script>,
}

impl ScriptService {
    /// Modules of app `app_id`; `script` is the function's own script when the shim may
    /// ask for it (Rhai functions).
    pub fn new(db: Db, app_id: std::sync::Arc<str>, script: Option<Script>) -> Self {
        Self { db, app_id, script }
    }

    fn script(&self) -> TrapResult<&Script> {
        self.script
            .as_ref()
            .ok_or_else(|| trap("this invocation has no Rhai script"))
    }
}

impl Host for ScriptService {
    #[tracing::instrument(name = "picloud.script.main_source", skip_all)]
    async fn main_source(&mut self) -> TrapResult<String> {
        Ok(self.script()?.source.to_string())
    }

    #[tracing::instrument(name = "picloud.script.limits", skip_all)]
    async fn limits(&mut self) -> TrapResult<ScriptLimits> {
        let limits = self.script()?.limits;
        let rhai = picloud_rhai_shim::Limits::for_sandbox(limits.fuel, limits.memory_bytes);
        Ok(ScriptLimits {
            max_operations: rhai.max_operations,
            max_string_size: rhai.max_string_size as u64,
            max_array_size: rhai.max_array_size as u64,
            max_map_size: rhai.max_map_size as u64,
        })
    }

    #[tracing::instrument(name = "picloud.script.module_source", skip_all)]
    async fn module_source(&mut self, name: String) -> TrapResult<Option<String>> {
        let function = match self.db.get_function(&self.app_id, &name).await {
            Ok(Some(f)) if f.kind == KIND_RHAI_MODULE => f,
            Ok(_) => return Ok(None),
            Err(e) => return Err(trap(format!("loading module {name:?}: {e}"))),
        };
        match self.db.artifact(&function.sha256).await {
            Ok(Some(bytes)) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(trap(format!("loading module {name:?}: {e}"))),
        }
    }
}
