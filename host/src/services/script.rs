//! `picloud:sdk/rhai-script`: the script of a Rhai function and the `module` scripts of
//! its app, for the Rhai shim.

use crate::storage::Db;
use picloud_runtime::rhai_script::Host;
use picloud_runtime::{TrapError, TrapResult};
use std::sync::Arc;

fn trap(message: impl std::fmt::Display) -> TrapError {
    TrapError::msg(message.to_string())
}

/// Kind of a deployed Rhai function script.
pub const KIND_RHAI: &str = "rhai";
/// Kind of a deployed Rhai module (imported by scripts, never invoked).
pub const KIND_RHAI_MODULE: &str = "rhai-module";

/// The script service of one invocation (or of the deploy-time initialisation).
pub struct ScriptService {
    db: Db,
    app_id: std::sync::Arc<str>,
    main: Option<Arc<str>>,
}

impl ScriptService {
    /// Modules of app `app_id`; `main` is the function's own source when the shim may
    /// ask for it (at deploy time, before the snapshot).
    pub fn new(db: Db, app_id: std::sync::Arc<str>, main: Option<Arc<str>>) -> Self {
        Self { db, app_id, main }
    }
}

impl Host for ScriptService {
    #[tracing::instrument(name = "picloud.script.main_source", skip_all)]
    async fn main_source(&mut self) -> TrapResult<String> {
        match &self.main {
            Some(main) => Ok(main.to_string()),
            None => Err(trap("the script was not loaded at deploy time")),
        }
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
