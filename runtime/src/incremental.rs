//! Cranelift's incremental compilation cache: compiled functions by content. A Rhai
//! script deploy compiles a snapshot of the Rhai shim whose code is the same for every
//! script, so nearly every function comes from here instead of being compiled again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

/// Entries in memory, and on disk (one file per entry) when the runtime has a cache
/// directory, so a restarted server keeps them.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    memory: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
    dir: Option<PathBuf>,
}

impl FunctionCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        let dir = dir.filter(|d| std::fs::create_dir_all(d).is_ok());
        Self {
            memory: RwLock::default(),
            dir,
        }
    }

    fn file(&self, key: &[u8]) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(crate::sha256_hex(key)))
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        if let Some(hit) = self
            .memory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Some(Cow::Owned(hit.clone()));
        }
        let value = std::fs::read(self.file(key)?).ok()?;
        self.memory
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_vec(), value.clone());
        Some(Cow::Owned(value))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        if let Some(path) = self.file(key) {
            // Best effort: a failed write only costs a recompile later.
            let _ = crate::write_atomically(&path, &value);
        }
        self.memory
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_vec(), value);
        true
    }
}
