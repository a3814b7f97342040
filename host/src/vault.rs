//! The secrets master key, and sealing secret values with it (AES-256-GCM).
//!
//! Every value is sealed with a fresh random 12-byte nonce, and with the app id and the
//! secret's name as associated data: a ciphertext copied to another app or name does
//! not open. A sealed value names the key that sealed it (a key id derived from the
//! key), so a server given the previous key too (`PICLOUD_SECRET_KEY_PREVIOUS`) reads
//! values of both while `picloud secrets rekey` rewrites the old ones.
//!
//! The key comes from `PICLOUD_SECRET_KEY` (base64 of 32 bytes). Without it, the
//! embedded default (SQLite) generates one into `{data-dir}/secret-key` (0600) on first
//! start; with PostgreSQL, where several nodes must share one key, it is required. A
//! check value sealed with the key is stored in the database, so a wrong key is refused
//! at start rather than at the first read.

use crate::storage::{Db, Dialect, StorageResult};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The master key's environment variable.
pub const KEY_ENV: &str = "PICLOUD_SECRET_KEY";
/// The previous master key's environment variable, during a rotation.
pub const PREVIOUS_KEY_ENV: &str = "PICLOUD_SECRET_KEY_PREVIOUS";
/// The generated key's file in the data directory (embedded default only).
pub const KEY_FILE: &str = "secret-key";
/// The `host_settings` row holding the check value.
const CHECK_SETTING: &str = "secret_key_check";
const CHECK_PLAINTEXT: &[u8] = b"picloud secret key check";
const NONCE_BYTES: usize = 12;

/// One master key.
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    /// Derives the keys of other purposes (never the key itself: a hash of it).
    derive: [u8; 32],
}

impl MasterKey {
    /// The key of `text`: the base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| "is not valid base64".to_owned())?;
        if bytes.len() != 32 {
            return Err(format!("must be 32 bytes, got {}", bytes.len()));
        }
        let id =
            hex::encode(&Sha256::digest([b"picloud-secret-key-id:", &bytes[..]].concat())[..8]);
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|e| e.to_string())?;
        let derive = Sha256::digest([b"picloud-derive-key:", &bytes[..]].concat()).into();
        Ok(Self { id, cipher, derive })
    }

    /// A new random key and its base64 text.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let text = BASE64.encode(bytes);
        (
            Self::from_base64(&text).expect("32 random bytes are a key"),
            text,
        )
    }

    /// The key's id: names it in sealed values, reveals nothing of it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, aad: &[u8], value: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value, aad })
            .expect("AES-GCM seals any value below 64 GiB");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        BASE64.encode(sealed)
    }

    fn open(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let bytes = BASE64.decode(sealed).ok()?;
        if bytes.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

/// A sealed value and the id of the key that sealed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the sealing key.
    pub key_id: String,
    /// base64 of nonce, ciphertext and tag.
    pub sealed: String,
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// It was sealed with a key this server does not have.
    #[error("sealed with a key this server does not have (key id {0})")]
    UnknownKey(String),
    /// It was altered, or moved to another app or name.
    #[error("does not open: altered, or moved to another app or name")]
    Tampered,
}

/// The keys a server seals and opens secrets with.
pub struct Keys {
    current: MasterKey,
    previous: Option<MasterKey>,
}

/// What a sealed value is. The kind is part of the associated data, so a value of one
/// kind never opens as another (an inbound email key copied into the secrets table, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A secret of an app (`picloud:sdk/secrets`), named by its name.
    Secret,
    /// The HMAC key of an inbound email trigger, named by the trigger.
    InboundEmailKey,
}

fn aad(kind: Kind, app_id: &str, name: &str) -> Vec<u8> {
    let kind: &[u8] = match kind {
        Kind::Secret => b"picloud-secret\0",
        Kind::InboundEmailKey => b"picloud-email-inbound-key\0",
    };
    [kind, app_id.as_bytes(), b"\0", name.as_bytes()].concat()
}

impl Keys {
    /// Keys sealing with `current` and also opening values of `previous`.
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// `value` of secret `name` of app `app_id`, sealed with the current key.
    pub fn seal(&self, app_id: &str, name: &str, value: &[u8]) -> Sealed {
        self.seal_as(Kind::Secret, app_id, name, value)
    }

    /// The value of secret `name` of app `app_id`.
    pub fn open(&self, app_id: &str, name: &str, sealed: &Sealed) -> Result<Vec<u8>, OpenError> {
        self.open_as(Kind::Secret, app_id, name, sealed)
    }

    /// `value`, a `kind` of value called `name` of app `app_id`, sealed with the current
    /// key.
    pub fn seal_as(&self, kind: Kind, app_id: &str, name: &str, value: &[u8]) -> Sealed {
        Sealed {
            key_id: self.current.id.clone(),
            sealed: self.current.seal(&aad(kind, app_id, name), value),
        }
    }

    /// The value of the `kind` of value called `name` of app `app_id`.
    pub fn open_as(
        &self,
        kind: Kind,
        app_id: &str,
        name: &str,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, OpenError> {
        self.key(&sealed.key_id)?
            .open(&aad(kind, app_id, name), &sealed.sealed)
            .ok_or(OpenError::Tampered)
    }

    /// The keys of `purpose` for app `app_id` derived from the master keys
    /// (HMAC-SHA256), the current key's first: a signature made with the first verifies
    /// with any, so tokens signed before a rotation stay valid during it. Every node
    /// sharing the master key derives the same keys, and an app's never verifies
    /// another's (its id is part of the derivation).
    pub fn derived(&self, purpose: &str, app_id: &str) -> Vec<[u8; 32]> {
        use hmac::{Hmac, Mac};
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|key| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.derive)
                    .expect("HMAC takes keys of any length");
                mac.update(purpose.as_bytes());
                mac.update(b"\0");
                mac.update(app_id.as_bytes());
                mac.finalize().into_bytes().into()
            })
            .collect()
    }

    fn key(&self, id: &str) -> Result<&MasterKey, OpenError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))
    }

    /// Loads the server's keys (see the module docs) and checks them against the check
    /// value stored in `db`, writing it on first start.
    pub async fn load(
        db: &Db,
        data_dir: &Path,
        key: Option<&str>,
        previous: Option<&str>,
    ) -> anyhow::Result<Self> {
        let current = match key {
            Some(text) => {
                MasterKey::from_base64(text).map_err(|e| anyhow::anyhow!("{KEY_ENV} {e}"))?
            }
            None if db.dialect() == Dialect::Postgres => anyhow::bail!(
                "{KEY_ENV} is required with PostgreSQL, so every node seals and opens secrets \
                 with the same key: set it to the base64 of 32 random bytes \
                 (e.g. `head -c 32 /dev/urandom | base64`)"
            ),
            None => key_file(data_dir)?,
        };
        let previous = previous
            .map(|text| {
                MasterKey::from_base64(text).map_err(|e| anyhow::anyhow!("{PREVIOUS_KEY_ENV} {e}"))
            })
            .transpose()?;
        let keys = Self::new(current, previous);
        keys.check(db).await?;
        Ok(keys)
    }

    /// Refuses keys that cannot open the stored check value; stores one on first start.
    async fn check(&self, db: &Db) -> anyhow::Result<()> {
        let aad = b"picloud-secret-key-check";
        let Some(stored) = db.host_setting(CHECK_SETTING).await? else {
            self.write_check(db).await?;
            return Ok(());
        };
        let (key_id, sealed) = stored.split_once(':').unwrap_or(("", &stored));
        let opened = match self.key(key_id) {
            Ok(key) => key.open(aad, sealed),
            Err(_) => None,
        };
        if opened.as_deref() != Some(CHECK_PLAINTEXT) {
            anyhow::bail!(
                "{KEY_ENV} is not the key this database's secrets were sealed with (key id \
                 {key_id}); to rotate keys, give the old one as {PREVIOUS_KEY_ENV} and run \
                 `picloud secrets rekey`"
            );
        }
        Ok(())
    }

    async fn write_check(&self, db: &Db) -> StorageResult<()> {
        let sealed = self
            .current
            .seal(b"picloud-secret-key-check", CHECK_PLAINTEXT);
        db.set_host_setting(CHECK_SETTING, &format!("{}:{sealed}", self.current.id))
            .await
    }

    /// Reseals every secret and inbound email key sealed with another key than the
    /// current one, in batches, then marks the database as sealed with the current key.
    /// Answers how many.
    pub async fn rekey(&self, db: &Db) -> anyhow::Result<u64> {
        let mut done = 0;
        loop {
            let batch = db
                .email_triggers_sealed_with_other_key(self.current_id(), 500)
                .await?;
            if batch.is_empty() {
                break;
            }
            for (app_id, name, sealed) in batch {
                let key = self
                    .open_as(Kind::InboundEmailKey, &app_id, &name, &sealed)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "the key of inbound email trigger {name:?} of app {app_id}: {e}; \
                             nothing more was rekeyed"
                        )
                    })?;
                let resealed = self.seal_as(Kind::InboundEmailKey, &app_id, &name, &key);
                db.email_trigger_reseal(&app_id, &name, &sealed, &resealed)
                    .await?;
                done += 1;
            }
        }
        loop {
            let batch = db
                .secrets_sealed_with_other_key(self.current_id(), 500)
                .await?;
            if batch.is_empty() {
                break;
            }
            for (app_id, name, sealed) in batch {
                let value = self.open(&app_id, &name, &sealed).map_err(|e| {
                    anyhow::anyhow!(
                        "secret {name:?} of app {app_id}: {e}; nothing more was rekeyed"
                    )
                })?;
                let resealed = self.seal(&app_id, &name, &value);
                db.secret_reseal(&app_id, &name, &sealed, &resealed).await?;
                done += 1;
            }
        }
        self.write_check(db).await?;
        Ok(done)
    }
}

/// The embedded default's key: read from `{data-dir}/secret-key`, or generated into it.
fn key_file(data_dir: &Path) -> anyhow::Result<MasterKey> {
    let path = data_dir.join(KEY_FILE);
    match crate::auth::read_private(&path) {
        Ok(text) => MasterKey::from_base64(&text)
            .map_err(|e| anyhow::anyhow!("the secret key in {} {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = MasterKey::generate();
            crate::auth::write_private(&path, &text)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "generated the secrets master key");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_app_and_name() {
        let keys = Keys::new(MasterKey::generate().0, None);
        let sealed = keys.seal("app-1", "stripe", b"sk_live_1");
        assert_eq!(keys.open("app-1", "stripe", &sealed).unwrap(), b"sk_live_1");
        assert_eq!(
            keys.open("app-2", "stripe", &sealed),
            Err(OpenError::Tampered)
        );
        assert_eq!(
            keys.open("app-1", "other", &sealed),
            Err(OpenError::Tampered)
        );
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(
            keys.seal("app-1", "stripe", b"sk_live_1").sealed,
            sealed.sealed
        );
    }

    #[test]
    fn a_value_of_one_kind_does_not_open_as_another() {
        let keys = Keys::new(MasterKey::generate().0, None);
        let sealed = keys.seal_as(Kind::InboundEmailKey, "app-1", "support", b"k");
        assert_eq!(
            keys.open_as(Kind::InboundEmailKey, "app-1", "support", &sealed)
                .unwrap(),
            b"k"
        );
        assert_eq!(
            keys.open("app-1", "support", &sealed),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn a_flipped_bit_is_detected() {
        let keys = Keys::new(MasterKey::generate().0, None);
        let sealed = keys.seal("a", "n", b"value");
        let mut bytes = BASE64.decode(&sealed.sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = Sealed {
            sealed: BASE64.encode(bytes),
            ..sealed
        };
        assert_eq!(keys.open("a", "n", &tampered), Err(OpenError::Tampered));
    }

    #[test]
    fn values_of_the_previous_key_open_and_unknown_keys_are_named() {
        let (old, old_text) = MasterKey::generate();
        let sealed = Keys::new(old, None).seal("a", "n", b"v");
        let rotating = Keys::new(
            MasterKey::generate().0,
            Some(MasterKey::from_base64(&old_text).unwrap()),
        );
        assert_eq!(rotating.open("a", "n", &sealed).unwrap(), b"v");
        let stranger = Keys::new(MasterKey::generate().0, None);
        assert!(matches!(
            stranger.open("a", "n", &sealed),
            Err(OpenError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&BASE64.encode([0u8; 16])).is_err());
        assert!(MasterKey::from_base64(&BASE64.encode([7u8; 32])).is_ok());
    }
}
