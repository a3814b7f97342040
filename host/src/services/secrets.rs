//! `picloud:sdk/secrets`: the app's secrets, sealed at rest (see [`crate::vault`]).
//!
//! [`Vault`] is the encryption layer over a [`SecretStore`]: the store only ever sees
//! sealed values. The service and the admin API both go through it. Values never appear
//! in a log line, record, error message or listing.

use super::common::{check_name, guest_error};
use crate::storage::StorageError;
use crate::storage::secrets::{SecretName, SecretStore};
use crate::vault::Keys;
use picloud_runtime::secrets::Host;
use picloud_runtime::{Answer, GuestError};
use std::sync::Arc;
use tracing::instrument;

/// Largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Most secrets one app keeps.
pub const MAX_SECRETS_PER_APP: u64 = 1000;

/// Why a vault call failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Bad input: a name or value the vault refuses (the message never holds a value).
    #[error("{0}")]
    Invalid(String),
    /// The app keeps as many secrets as it may.
    #[error("an app keeps at most {MAX_SECRETS_PER_APP} secrets")]
    TooMany,
    /// A stored value does not open with this server's keys.
    #[error("secret {name:?} cannot be opened: {reason}")]
    Unreadable {
        /// The secret.
        name: String,
        /// Why (never the value).
        reason: crate::vault::OpenError,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The secrets of one app: sealing on the way in, opening on the way out.
pub struct Vault<S> {
    store: S,
    keys: Arc<Keys>,
    app_id: Arc<str>,
}

impl<S: SecretStore> Vault<S> {
    /// The secrets of app `app_id` in `store`, sealed with `keys`.
    pub fn new(store: S, keys: Arc<Keys>, app_id: Arc<str>) -> Self {
        Self {
            store,
            keys,
            app_id,
        }
    }

    /// The value of `name`.
    pub async fn get(&self, name: &str) -> Result<Option<String>, VaultError> {
        check_name("secret name", name).map_err(VaultError::Invalid)?;
        let Some(sealed) = self.store.secret_get(&self.app_id, name).await? else {
            return Ok(None);
        };
        let unreadable = |reason| VaultError::Unreadable {
            name: name.to_owned(),
            reason,
        };
        let value = self
            .keys
            .open(&self.app_id, name, &sealed)
            .map_err(unreadable)?;
        String::from_utf8(value)
            .map(Some)
            .map_err(|_| unreadable(crate::vault::OpenError::Tampered))
    }

    /// Sets `name` to `value`.
    pub async fn set(&self, name: &str, value: &str) -> Result<(), VaultError> {
        check_name("secret name", name).map_err(VaultError::Invalid)?;
        if value.len() > MAX_SECRET_BYTES {
            return Err(VaultError::Invalid(format!(
                "a secret value is at most {MAX_SECRET_BYTES} bytes, got {}",
                value.len()
            )));
        }
        if self.store.secret_get(&self.app_id, name).await?.is_none()
            && self.store.secret_count(&self.app_id).await? >= MAX_SECRETS_PER_APP
        {
            return Err(VaultError::TooMany);
        }
        let sealed = self.keys.seal(&self.app_id, name, value.as_bytes());
        self.store.secret_put(&self.app_id, name, &sealed).await?;
        Ok(())
    }

    /// Removes `name`; answers whether it existed.
    pub async fn delete(&self, name: &str) -> Result<bool, VaultError> {
        check_name("secret name", name).map_err(VaultError::Invalid)?;
        Ok(self.store.secret_delete(&self.app_id, name).await?)
    }

    /// The names of the app's secrets and when each was set.
    pub async fn list(&self) -> Result<Vec<SecretName>, VaultError> {
        Ok(self.store.secret_names(&self.app_id).await?)
    }
}

fn vault_error(e: VaultError) -> GuestError {
    match e {
        VaultError::Invalid(message) => GuestError::Invalid(message),
        VaultError::TooMany => GuestError::Limit(e.to_string()),
        VaultError::Unreadable { .. } => {
            tracing::error!(error = %e, "a stored secret does not open");
            GuestError::Internal("a stored secret cannot be opened".into())
        }
        VaultError::Storage(e) => guest_error(e),
    }
}

/// The secrets service of one invocation (`unavailable` when the server has no keys).
pub struct SecretsService {
    vault: Option<Vault<crate::storage::Db>>,
}

impl SecretsService {
    /// Secrets of app `app_id` in `db`, sealed with the keys `db` carries.
    pub fn new(db: crate::storage::Db, app_id: Arc<str>) -> Self {
        let vault = db
            .secret_keys()
            .cloned()
            .map(|keys| Vault::new(db, keys, app_id));
        Self { vault }
    }

    fn vault(&self) -> Result<&Vault<crate::storage::Db>, GuestError> {
        self.vault
            .as_ref()
            .ok_or_else(|| GuestError::Unavailable("secrets are not configured".into()))
    }
}

impl Host for SecretsService {
    #[instrument(name = "picloud.secrets.get", skip_all)]
    async fn get(&mut self, name: String) -> Answer<Option<String>> {
        Ok(async { self.vault()?.get(&name).await.map_err(vault_error) }.await)
    }

    #[instrument(name = "picloud.secrets.set", skip_all)]
    async fn set(&mut self, name: String, value: String) -> Answer<()> {
        Ok(async { self.vault()?.set(&name, &value).await.map_err(vault_error) }.await)
    }

    #[instrument(name = "picloud.secrets.delete", skip_all)]
    async fn delete(&mut self, name: String) -> Answer<bool> {
        Ok(async { self.vault()?.delete(&name).await.map_err(vault_error) }.await)
    }

    #[instrument(name = "picloud.secrets.list", skip_all)]
    async fn list(&mut self) -> Answer<Vec<String>> {
        Ok(async {
            let names = self.vault()?.list().await.map_err(vault_error)?;
            Ok(names.into_iter().map(|n| n.name).collect())
        }
        .await)
    }
}
