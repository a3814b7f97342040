//! The control plane: what an operator changes — apps and their limits, deploys and
//! rollbacks, routes — in one place with domain errors, used by the admin API, the
//! dashboard and (through the API) the CLI. Every change ends with one [`Changed`]
//! notification; the invoker subscribes to it to drop what it cached (in-process, and
//! synchronously, so the request after a deploy runs the new version).

use crate::invoke::{AppEntry, Failure, Invoker};
use crate::routing::{DISPATCH_ASYNC, DISPATCH_SYNC, RouteTable, check_route};
use crate::services::script::{KIND_RHAI, KIND_RHAI_MODULE};
use crate::storage::{AppRecord, Db, FunctionRecord, RouteRecord, StorageError, VersionRecord};
use picloud_runtime::LimitOverrides;
use std::sync::{Arc, Mutex};

/// Largest artifact accepted by deploy. Components are a few MiB; this leaves room for
/// big ones while keeping a mistaken upload from filling the database.
pub const MAX_ARTIFACT_BYTES: usize = 32 * 1024 * 1024;

/// What changed about an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Its code: a function was deployed, rolled back or deleted, or the app was created.
    Code {
        /// App name.
        app: String,
    },
    /// Its settings: routes, limits, outbound hosts.
    Settings {
        /// App name.
        app: String,
    },
    /// It was deleted.
    Removed {
        /// App name.
        app: String,
        /// Its id.
        id: String,
    },
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The input is not acceptable; the message says why, in words.
    #[error("{0}")]
    Invalid(String),
    /// What the change is about does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Storage(StorageError),
    /// The app could not be loaded.
    #[error("{}", .0.message)]
    Failure(Failure),
}

impl From<StorageError> for ControlError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

impl From<Failure> for ControlError {
    fn from(e: Failure) -> Self {
        Self::Failure(e)
    }
}

/// Result of a control-plane operation.
pub type ControlResult<T> = Result<T, ControlError>;

type Listener = Box<dyn Fn(&Changed) + Send + Sync>;

/// The control plane of one node.
pub struct Control {
    db: Db,
    invoker: Arc<Invoker>,
    listeners: Mutex<Vec<Listener>>,
}

/// A new version, as deploy answers it.
#[derive(Debug, serde::Serialize)]
pub struct Deployed {
    /// App name.
    pub app: String,
    /// Function name.
    pub name: String,
    /// The version recorded (and active now).
    #[serde(flatten)]
    pub version: VersionRecord,
}

/// A route to bind.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoute {
    /// `GET`, `POST`, …, or `*`.
    pub method: String,
    /// `/orders/:id`.
    pub path: String,
    /// The function it calls.
    pub function: String,
    /// `sync` (default) or `async`: answer 202 at once and run the function from the
    /// queue.
    pub dispatch: Option<String>,
}

impl Control {
    /// The control plane over `db`; `invoker` is told of every change.
    pub fn new(db: Db, invoker: Arc<Invoker>) -> Self {
        let control = Self {
            db,
            invoker: invoker.clone(),
            listeners: Mutex::new(Vec::new()),
        };
        control.subscribe(move |changed| invoker.changed(changed));
        control
    }

    /// Calls `listener` with every change from now on.
    pub fn subscribe(&self, listener: impl Fn(&Changed) + Send + Sync + 'static) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(listener));
    }

    fn notify(&self, changed: Changed) {
        for listener in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            listener(&changed);
        }
    }

    /// The app called `name`.
    pub async fn app(&self, name: &str) -> ControlResult<Arc<AppEntry>> {
        self.invoker
            .app(name)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no app called {name:?}")))
    }

    /// Creates app `name` with `limits`.
    pub async fn create_app(
        &self,
        name: &str,
        limits: &LimitOverrides,
    ) -> ControlResult<AppRecord> {
        check_app_name(name)?;
        check_limits(limits)?;
        let app = self
            .db
            .create_app(name, limits)
            .await
            .map_err(|e| match e {
                StorageError::Conflict => {
                    ControlError::Conflict(format!("an app called {name:?} exists already"))
                }
                other => other.into(),
            })?;
        self.notify(Changed::Code {
            app: app.name.clone(),
        });
        Ok(app)
    }

    /// Deletes app `name` and everything it holds.
    pub async fn delete_app(&self, name: &str) -> ControlResult<()> {
        let record = self.db.get_app(name).await?;
        if !self.db.delete_app(name).await? {
            return Err(ControlError::NotFound(format!("no app called {name:?}")));
        }
        if let Some(record) = record {
            self.notify(Changed::Removed {
                app: name.to_owned(),
                id: record.id,
            });
        }
        self.collect_garbage().await;
        Ok(())
    }

    /// Replaces app `name`'s limit overrides.
    pub async fn set_limits(&self, name: &str, limits: &LimitOverrides) -> ControlResult<()> {
        check_limits(limits)?;
        if !self.db.set_app_limits(name, limits).await? {
            return Err(ControlError::NotFound(format!("no app called {name:?}")));
        }
        self.notify(Changed::Settings {
            app: name.to_owned(),
        });
        Ok(())
    }

    /// Replaces app `name`'s outbound allow-list (already normalised).
    pub async fn set_outbound_hosts(
        &self,
        app: &AppEntry,
        hosts: Option<&[String]>,
    ) -> ControlResult<()> {
        self.db.set_app_outbound_hosts(&app.id, hosts).await?;
        self.notify(Changed::Settings {
            app: app.name.clone(),
        });
        Ok(())
    }

    /// Records `bytes` as the next version of function `name` of `app` and activates it.
    /// `kind` is `component` (default), `rhai` or `module`. A Rhai script that does not
    /// compile and a component that does not load are refused with the reason (Rhai's
    /// names the line and column).
    pub async fn deploy(
        &self,
        app: &AppEntry,
        name: &str,
        kind: Option<&str>,
        bytes: Vec<u8>,
    ) -> ControlResult<Deployed> {
        check_function_name(name)?;
        if bytes.len() > MAX_ARTIFACT_BYTES {
            return Err(ControlError::Invalid(format!(
                "the artifact is {} bytes; at most {MAX_ARTIFACT_BYTES}",
                bytes.len()
            )));
        }
        let kind = match kind {
            None | Some("component") => "component",
            Some("rhai") => KIND_RHAI,
            Some("module") => KIND_RHAI_MODULE,
            Some(other) => {
                return Err(ControlError::Invalid(format!(
                    "kind must be component, rhai or module, not {other:?}"
                )));
            }
        };
        if kind != "component" {
            let source = std::str::from_utf8(&bytes)
                .map_err(|_| ControlError::Invalid("a Rhai script must be UTF-8 text".into()))?;
            crate::rhai::check_script(source).map_err(ControlError::Invalid)?;
        }
        let sha256 = picloud_runtime::sha256_hex(&bytes);
        // What is compiled stays out of the garbage collection until its version is recorded.
        let _deploying = self.invoker.deploying().await;
        let prepared = if kind == KIND_RHAI_MODULE {
            None
        } else {
            let prepared = self.invoker.prepare(kind, bytes.clone()).await;
            Some(prepared.map_err(|e| ControlError::Invalid(e.to_string()))?)
        };
        let version = self
            .db
            .deploy_function(&app.id, name, kind, &sha256, &bytes)
            .await?;
        self.notify(Changed::Code {
            app: app.name.clone(),
        });
        if let Some(prepared) = prepared {
            // The first request finds the new version ready instead of loading it again.
            self.invoker
                .install(&app.name, name, kind, version.version, prepared);
        }
        tracing::info!(app = %app.name, function = %name, kind, version = version.version, sha256 = %version.sha256, "deployed");
        Ok(Deployed {
            app: app.name.clone(),
            name: name.to_owned(),
            version,
        })
    }

    /// Function `name` of `app`.
    pub async fn function(&self, app: &AppEntry, name: &str) -> ControlResult<FunctionRecord> {
        self.db.get_function(&app.id, name).await?.ok_or_else(|| {
            ControlError::NotFound(format!(
                "app {:?} has no function called {name:?}",
                app.name
            ))
        })
    }

    /// Makes `version` (default: the one before the active one) the active version of
    /// function `name`; answers the function as it is now.
    pub async fn rollback(
        &self,
        app: &AppEntry,
        name: &str,
        version: Option<i64>,
    ) -> ControlResult<FunctionRecord> {
        let function = self.function(app, name).await?;
        let target = version.unwrap_or(function.active_version - 1);
        if !self.db.activate_version(&function.id, target).await? {
            return Err(ControlError::NotFound(format!(
                "function {name:?} has no version {target}"
            )));
        }
        self.notify(Changed::Code {
            app: app.name.clone(),
        });
        tracing::info!(app = %app.name, function = %name, version = target, "rolled back");
        self.function(app, name).await
    }

    /// Deletes function `name` of `app` with its versions and routes.
    pub async fn delete_function(&self, app: &AppEntry, name: &str) -> ControlResult<()> {
        if !self.db.delete_function(&app.id, name).await? {
            return Err(ControlError::NotFound(format!(
                "app {:?} has no function called {name:?}",
                app.name
            )));
        }
        self.notify(Changed::Code {
            app: app.name.clone(),
        });
        self.collect_garbage().await;
        Ok(())
    }

    /// Binds `new` in `app`: the path must be valid and fit the app's route table
    /// without an ambiguous overlap.
    pub async fn create_route(&self, app: &AppEntry, new: &NewRoute) -> ControlResult<RouteRecord> {
        let method = new.method.to_ascii_uppercase();
        check_route(&method, &new.path).map_err(ControlError::Invalid)?;
        let dispatch = new.dispatch.as_deref().unwrap_or(DISPATCH_SYNC);
        if dispatch != DISPATCH_SYNC && dispatch != DISPATCH_ASYNC {
            return Err(ControlError::Invalid(format!(
                "dispatch {dispatch:?} is not one of sync, async"
            )));
        }
        let function = self.callable(app, &new.function, "routes").await?;
        let mut table = RouteTable::build(&self.db.list_routes(&app.id).await?);
        table
            .insert_with(
                &method,
                &new.path,
                &function.name,
                dispatch == DISPATCH_ASYNC,
            )
            .map_err(ControlError::Conflict)?;
        let route = self
            .db
            .create_route(
                &app.id,
                &method,
                &new.path,
                &function.id,
                &function.name,
                dispatch,
            )
            .await
            .map_err(|e| match e {
                StorageError::Conflict => ControlError::Conflict(format!(
                    "app {:?} already has a route {method} {}",
                    app.name, new.path
                )),
                other => other.into(),
            })?;
        self.notify(Changed::Settings {
            app: app.name.clone(),
        });
        Ok(route)
    }

    /// Function `name` of `app` for a route or trigger (`what`) to call: it must exist
    /// and not be a Rhai module.
    pub async fn callable(
        &self,
        app: &AppEntry,
        name: &str,
        what: &str,
    ) -> ControlResult<FunctionRecord> {
        let function = self.db.get_function(&app.id, name).await?.ok_or_else(|| {
            ControlError::NotFound(format!(
                "app {:?} has no function called {name:?}; deploy it first",
                app.name
            ))
        })?;
        if function.kind == KIND_RHAI_MODULE {
            return Err(ControlError::Invalid(format!(
                "{:?} is a Rhai module: scripts import it, {what} cannot call it",
                function.name
            )));
        }
        Ok(function)
    }

    /// Deletes route `id` of `app`.
    pub async fn delete_route(&self, app: &AppEntry, id: &str) -> ControlResult<()> {
        if !self.db.delete_route(&app.id, id).await? {
            return Err(ControlError::NotFound(format!(
                "app {:?} has no route {id:?}",
                app.name
            )));
        }
        self.notify(Changed::Settings {
            app: app.name.clone(),
        });
        Ok(())
    }

    /// Removes compiled code that deleted functions left behind. A failure only leaves
    /// files on disk (the next collection retries), so it is logged rather than answered.
    async fn collect_garbage(&self) {
        if let Err(e) = self.invoker.collect_garbage().await {
            tracing::warn!(error = %e, "collecting unused compiled code failed");
        }
    }
}

/// App names are DNS labels, since apps are also reachable as `{app}.{base-domain}`.
pub fn check_app_name(name: &str) -> ControlResult<()> {
    let b = name.as_bytes();
    let valid = (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if valid {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "app name {name:?} must be 1-63 of a-z 0-9 '-', not starting or ending with '-'"
        )))
    }
}

/// Function names: letters, digits, `-` and `_`, starting with a letter or digit.
pub fn check_function_name(name: &str) -> ControlResult<()> {
    let b = name.as_bytes();
    let valid = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "function name {name:?} must be 1-64 of A-Z a-z 0-9 '-' '_', starting with a letter or digit"
        )))
    }
}

/// Limit overrides must be positive, memory at most 1 GiB.
pub fn check_limits(limits: &LimitOverrides) -> ControlResult<()> {
    for (name, value) in [
        ("fuel", limits.fuel),
        ("timeout_ms", limits.timeout_ms),
        ("memory_bytes", limits.memory_bytes),
        ("daily_fuel", limits.daily_fuel),
    ] {
        if value == Some(0) {
            return Err(ControlError::Invalid(format!(
                "limit {name} must be greater than 0"
            )));
        }
    }
    if limits.memory_bytes.is_some_and(|m| m > 1 << 30) {
        return Err(ControlError::Invalid(
            "memory_bytes may be at most 1 GiB (1073741824)".into(),
        ));
    }
    Ok(())
}
