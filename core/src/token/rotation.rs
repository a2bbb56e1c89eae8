//! Signing-key rotation, safe on any number of replicas.
//!
//! ```text
//!   rotation n                     rotation n+1
//!   |  signing: K1  next: K2       |  signing: K2  next: K3   retired: K1 (until its tokens expire)
//!   +------------------------------+------------------------------------------------->
//!      K2 is published in /keys a whole period before it signs anything.
//! ```
//!
//! Every replica runs [`KeyManager::run`]: each refresh interval it reads the key set from
//! storage, creates it if there is none (create is atomic: one replica wins), and rotates it when
//! `next_rotation` has passed. The rotation is a compare-and-swap on the key set whose updater
//! refuses to run when another replica already rotated, so N replicas rotating at once leave
//! exactly one new key. The expensive key generation happens before the CAS, outside it.
//!
//! Architecture invariants:
//! - A key signs only after it has been in the published key set for a whole rotation period
//!   (as `next_key`); every replica refreshes far more often than that.
//! - A retired key stays published until every token it may have signed has expired: the
//!   token lifetime plus one refresh interval (a replica may sign with the old key until its next
//!   refresh).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::keys::{self, KeyError, Signer};
use crate::clock::SharedClock;
use crate::storage::{DurableStorage, Keys, SigningAlg, SigningKey, StorageError, VerificationKey};

/// Errors of the key manager.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A key could not be generated or parsed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No key set has been loaded yet.
    #[error("signing keys are not loaded yet")]
    NotLoaded,
}

/// What a replica currently knows about the key set.
#[derive(Debug)]
pub struct KeySnapshot {
    /// Signs tokens now.
    pub signer: Arc<Signer>,
    /// Every public key to publish: signing, next, and retired keys not yet expired.
    pub jwks: Vec<serde_json::Value>,
    /// When the next rotation is due.
    pub next_rotation: DateTime<Utc>,
}

/// Settings of the key manager.
#[derive(Debug, Clone)]
pub struct RotationSettings {
    /// Algorithm of new keys.
    pub algorithm: SigningAlg,
    /// `keysRotationPeriod`.
    pub period: Duration,
    /// Lifetime of the tokens the keys sign (`expiry.idTokens`).
    pub token_lifetime: Duration,
}

impl RotationSettings {
    /// How often each replica re-reads the key set: a tenth of the period, between 100 ms and
    /// 30 s (Dex's fixed interval).
    pub fn refresh_interval(&self) -> Duration {
        (self.period / 10).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    /// How long a verifier may cache the JWKS: short enough that a verifier always sees the next
    /// key before it signs (half a period), at most Dex's 10 minutes.
    pub fn jwks_max_age(&self) -> Duration {
        (self.period / 2).min(Duration::from_secs(600))
    }
}

/// Loads, creates and rotates the signing keys, and caches them for signing and publishing.
#[derive(Debug)]
pub struct KeyManager {
    storage: Arc<dyn DurableStorage>,
    clock: SharedClock,
    settings: RotationSettings,
    current: RwLock<Option<Arc<KeySnapshot>>>,
    /// A key generated ahead of time, so that a due rotation needs no key generation: replicas
    /// that lose the rotation race then see the new key set at once instead of after generating
    /// a key for nothing.
    spare: Arc<std::sync::Mutex<Option<SigningKey>>>,
    /// Whether a spare key is being generated in the background.
    spare_pending: Arc<std::sync::atomic::AtomicBool>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl KeyManager {
    /// A manager with nothing loaded yet; call [`KeyManager::refresh`] or [`KeyManager::run`].
    pub fn new(storage: Arc<dyn DurableStorage>, clock: SharedClock, settings: RotationSettings) -> Self {
        Self {
            storage,
            clock,
            settings,
            current: RwLock::new(None),
            spare: Arc::default(),
            spare_pending: Arc::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RotationSettings {
        &self.settings
    }

    /// The current snapshot, if keys were loaded.
    pub fn snapshot(&self) -> Result<Arc<KeySnapshot>, RotationError> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(RotationError::NotLoaded)
    }

    /// Reads the key set, creating or rotating it when needed, and refreshes the cache.
    pub async fn refresh(&self) -> Result<(), RotationError> {
        let now = self.clock.now();
        let mut keys = match self.storage.get_keys().await {
            Ok(k) => k,
            Err(StorageError::NotFound) => self.create_initial(now).await?,
            Err(e) => return Err(e.into()),
        };
        if now >= keys.next_rotation {
            keys = self.rotate(keys.next_rotation).await?;
        }
        self.install(&keys)?;
        self.ensure_spare();
        Ok(())
    }

    /// Starts generating a spare key in the background unless one exists or is on its way. The
    /// refresh loop never waits for it.
    fn ensure_spare(&self) {
        use std::sync::atomic::Ordering;
        if lock(&self.spare).is_some() || self.spare_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let (spare, pending, alg) = (self.spare.clone(), self.spare_pending.clone(), self.settings.algorithm);
        tokio::task::spawn_blocking(move || {
            match keys::generate(alg) {
                Ok(key) => *lock(&spare) = Some(key),
                Err(e) => tracing::warn!(error = %e, "generating a spare signing key failed; will retry"),
            }
            pending.store(false, Ordering::SeqCst);
        });
    }

    async fn generate(&self) -> Result<SigningKey, RotationError> {
        let alg = self.settings.algorithm;
        Ok(tokio::task::spawn_blocking(move || keys::generate(alg))
            .await
            .map_err(|_| KeyError::Generate("key pair"))??)
    }

    async fn create_initial(&self, now: DateTime<Utc>) -> Result<Keys, RotationError> {
        let alg = self.settings.algorithm;
        let (signing_key, next_key) = tokio::task::spawn_blocking(move || {
            Ok::<_, KeyError>((keys::generate(alg)?, keys::generate(alg)?))
        })
        .await
        .map_err(|_| KeyError::Generate("key pair"))??;
        let fresh = Keys {
            signing_key,
            next_key,
            verification_keys: Vec::new(),
            next_rotation: now + chrono_duration(self.settings.period),
        };
        match self.storage.create_keys(fresh.clone()).await {
            Ok(()) => {
                tracing::info!(kid = %fresh.signing_key.kid, "created the first signing keys");
                Ok(fresh)
            }
            // Another replica created them first: use theirs.
            Err(StorageError::AlreadyExists) => Ok(self.storage.get_keys().await?),
            Err(e) => Err(e.into()),
        }
    }

    /// Rotates the key set whose rotation was due at `due`, unless another replica did already.
    async fn rotate(&self, due: DateTime<Utc>) -> Result<Keys, RotationError> {
        let spare = lock(&self.spare).take();
        let new_next = match spare {
            Some(k) => k,
            None => self.generate().await?,
        };
        let now = self.clock.now();
        let retain = chrono_duration(self.settings.token_lifetime + self.settings.refresh_interval());
        let period = chrono_duration(self.settings.period);
        let result = self
            .storage
            .update_keys(&|mut keys: Keys| {
                if keys.next_rotation != due {
                    return Err(StorageError::Rejected("already rotated by another replica".into()));
                }
                let retired = std::mem::replace(&mut keys.signing_key, keys.next_key.clone());
                keys.next_key = new_next.clone();
                keys.verification_keys.retain(|k| k.expiry > now);
                keys.verification_keys
                    .push(VerificationKey { public_jwk: retired.public_jwk, expiry: now + retain });
                keys.next_rotation = now + period;
                Ok(keys)
            })
            .await;
        match result {
            Ok(keys) => {
                tracing::info!(kid = %keys.signing_key.kid, next_kid = %keys.next_key.kid, "rotated signing keys");
                Ok(keys)
            }
            Err(e) => {
                // The key was not used: keep it for the next rotation.
                lock(&self.spare).get_or_insert(new_next);
                match e {
                    StorageError::Rejected(_) => Ok(self.storage.get_keys().await?),
                    e => Err(e.into()),
                }
            }
        }
    }

    fn install(&self, keys: &Keys) -> Result<(), RotationError> {
        let now = self.clock.now();
        let previous = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let signer = match previous {
            Some(p) if p.signer.kid() == keys.signing_key.kid => p.signer.clone(),
            _ => Arc::new(Signer::new(&keys.signing_key)?),
        };
        let mut jwks = vec![keys.signing_key.public_jwk.clone(), keys.next_key.public_jwk.clone()];
        jwks.extend(keys.verification_keys.iter().filter(|k| k.expiry > now).map(|k| k.public_jwk.clone()));
        let snapshot = Arc::new(KeySnapshot { signer, jwks, next_rotation: keys.next_rotation });
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(snapshot);
        Ok(())
    }

    /// Refreshes every refresh interval until `shutdown` turns true. Failures are logged and
    /// retried at the next tick; the last good key set stays in use meanwhile.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.refresh_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "refreshing signing keys failed; will retry");
                    }
                }
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::clock::ManualClock;
    use crate::storage::memory::MemoryStorage;

    fn manager(storage: Arc<dyn DurableStorage>, clock: &ManualClock) -> KeyManager {
        KeyManager::new(
            storage,
            Arc::new(clock.clone()),
            RotationSettings {
                algorithm: SigningAlg::ES256,
                period: Duration::from_secs(60),
                token_lifetime: Duration::from_secs(300),
            },
        )
    }

    fn kids(s: &KeySnapshot) -> Vec<String> {
        s.jwks.iter().map(|k| k["kid"].as_str().unwrap_or_default().to_owned()).collect()
    }

    #[tokio::test]
    async fn next_key_is_published_a_period_before_it_signs() {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        let storage: Arc<dyn DurableStorage> = Arc::new(MemoryStorage::new());
        let m = manager(storage.clone(), &clock);
        m.refresh().await.unwrap();
        let first = m.snapshot().unwrap();
        let next_kid = storage.get_keys().await.unwrap().next_key.kid;
        assert!(kids(&first).contains(&next_kid));
        assert_ne!(first.signer.kid(), next_kid);

        clock.advance(chrono::Duration::seconds(61));
        m.refresh().await.unwrap();
        let second = m.snapshot().unwrap();
        assert_eq!(second.signer.kid(), next_kid, "the published next key signs after the rotation");
        assert!(kids(&second).contains(&first.signer.kid().to_owned()), "the retired key stays published");

        // After the token lifetime (and later rotations) the retired key is dropped.
        for _ in 0..6 {
            clock.advance(chrono::Duration::seconds(61));
            m.refresh().await.unwrap();
        }
        assert!(!kids(&m.snapshot().unwrap()).contains(&first.signer.kid().to_owned()));
    }

    #[tokio::test]
    async fn replicas_rotating_at_once_make_one_key() {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        let storage: Arc<dyn DurableStorage> = Arc::new(MemoryStorage::new());
        let replicas: Vec<Arc<KeyManager>> =
            (0..5).map(|_| Arc::new(manager(storage.clone(), &clock))).collect();
        futures::future::join_all(replicas.iter().map(|m| m.refresh())).await;
        let before = storage.get_keys().await.unwrap();
        clock.advance(chrono::Duration::seconds(61));
        let results = futures::future::join_all(replicas.iter().map(|m| m.refresh())).await;
        assert!(results.iter().all(Result::is_ok));
        let after = storage.get_keys().await.unwrap();
        assert_eq!(after.signing_key.kid, before.next_key.kid);
        assert_eq!(after.verification_keys.len(), 1, "exactly one rotation happened");
        for m in &replicas {
            assert_eq!(m.snapshot().unwrap().signer.kid(), after.signing_key.kid);
        }
    }
}
