//! Pre-initialised components: run a component's `wizer-initialize` export once
//! (wasmtime-wizer) and keep the initialised memory as the component's starting state.
//! The Rhai shim uses this so every instance starts with the Rhai engine built; one such
//! snapshot, compiled once, serves every Rhai function.

use crate::invoke::State;
use crate::{CompileError, Compiled, Invocation, Limits, Runtime, Sdk};
use std::sync::atomic::Ordering;
use wasmtime::Store;
use wasmtime::component::{Instance, Lift, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// The export wizer calls (the Rhai shim's `wizer-initialize`).
pub const INIT_EXPORT: &str = "wizer-initialize";

impl<S: Sdk> Runtime<S> {
    /// The snapshot of `base` after its `wizer-initialize` ran with `sdk` serving its
    /// imports, under `limits`, compiled and linked. It is kept in memory and, with a
    /// cache directory, as compiled code on disk under `key` (which must identify `base`
    /// and everything `sdk` tells it), so a restart neither initialises nor compiles
    /// again. The snapshot's own bytes are not kept.
    pub async fn compile_snapshot(
        &self,
        base: &[u8],
        key: &str,
        sdk: S,
        limits: Limits,
    ) -> Result<Compiled<S>, CompileError> {
        if let Some(hit) = self
            .linked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }
        let component = match self.load_cached(key) {
            Some(component) => component,
            None => {
                let snapshot = self.snapshot(base, sdk, limits).await?;
                self.compile_fresh(key, &snapshot)?
            }
        };
        let compiled = self.link(key.to_owned(), &component)?;
        self.linked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), compiled.clone());
        Ok(compiled)
    }

    /// The bytes of `base` snapshotted after its `wizer-initialize` ran.
    async fn snapshot(&self, base: &[u8], sdk: S, limits: Limits) -> Result<Vec<u8>, CompileError> {
        let mut wizer = Wizer::new();
        // The component still lifts the init export, so the core export must stay.
        wizer.keep_init_func(true);
        let (context, instrumented) = wizer.instrument_component(base).map_err(|e| {
            CompileError::Invalid(format!("cannot instrument the component: {e:#}"))
        })?;
        // Run once and dropped: compiled in memory only, never into the disk cache.
        let component = wasmtime::component::Component::new(&self.engine, &instrumented)
            .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        let invocation = Invocation {
            trigger: "deploy".into(),
            ..Invocation::default()
        };
        let (mut store, output) = self
            .store(sdk, invocation, &limits)
            .map_err(|e| CompileError::Internal(format!("store setup: {e}")))?;
        let instance = self
            .linker
            .instantiate_async(&mut store, &component)
            .await
            .map_err(|e| {
                CompileError::Invalid(format!("cannot instantiate for initialisation: {e:#}"))
            })?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
            .map_err(|e| {
                CompileError::Unsupported(format!(
                    "the component has no `{INIT_EXPORT}` export: {e:#}"
                ))
            })?;
        if let Err(e) = init.call_async(&mut store, ()).await {
            let printed = output.stderr_text();
            return Err(CompileError::Invalid(format!(
                "initialisation failed: {e:#}{}{}",
                if printed.is_empty() { "" } else { ": " },
                printed.trim()
            )));
        }
        wizer
            .snapshot_component(
                &context,
                &mut Snapshotting {
                    store: &mut store,
                    instance,
                },
            )
            .await
            .map_err(|e| CompileError::Internal(format!("snapshot failed: {e:#}")))
    }
}

/// Lets wizer read the initialised instance's state through its accessor exports.
struct Snapshotting<'a, S: 'static> {
    store: &'a mut Store<State<S>>,
    instance: Instance,
}

impl<S: Send + 'static> Snapshotting<'_, S> {
    async fn call<R: Lift + Send + Sync + 'static, O>(
        &mut self,
        instance: &str,
        func: &str,
        then: impl FnOnce(&Store<State<S>>, R) -> O,
    ) -> O {
        let (_, outer) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's accessor instance is exported");
        let (_, inner) = self
            .instance
            .get_export(&mut *self.store, Some(&outer), func)
            .expect("wizer's accessor is exported");
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, inner)
            .expect("wizer's accessor has the expected type");
        let (value,) = func
            .call_async(&mut *self.store, ())
            .await
            .expect("wizer's accessors do not trap");
        then(self.store, value)
    }
}

impl<S: Send + 'static> ComponentInstanceState for Snapshotting<'_, S> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(store))
        })
        .await
    }
    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, v| v).await
    }
    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, v| v).await
    }
    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, v: f32| v.to_bits()).await
    }
    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, v: f64| v.to_bits()).await
    }
}
