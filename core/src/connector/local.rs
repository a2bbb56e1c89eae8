//! `local`: the password database (Dex's `passwordDB`), users stored as [`Password`] objects
//! (from the API or `staticPasswords`), enabled by `enablePasswordDB`.
//!
//! An unknown email costs as much time as a wrong password: the connector then checks the
//! password against a dummy hash ([`password::dummy_verify`]). bcrypt runs on a blocking thread.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::config::ConnectorConfig;
use super::{
    ConnectorError, ConnectorImpl, ConnectorScopes, Identity, OpenContext, PasswordConnector,
    RefreshConnector,
};
use crate::password;
use crate::storage::{DurableStorage, Password, StorageError};

/// The `local` connector has no settings (unknown keys are ignored with a warning).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LocalConfig {}

impl ConnectorConfig for LocalConfig {
    fn open(self, _id: &str, ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        Ok(Arc::new(LocalConnector::new(ctx.storage.clone())))
    }
}

/// The password-database connector.
#[derive(Debug, Clone)]
pub struct LocalConnector {
    storage: Arc<dyn DurableStorage>,
}

impl LocalConnector {
    /// A connector over the passwords of `storage`.
    pub fn new(storage: Arc<dyn DurableStorage>) -> Self {
        Self { storage }
    }
}

fn identity(p: Password) -> Identity {
    Identity {
        user_id: p.user_id,
        username: p.username,
        preferred_username: p.preferred_username,
        email: p.email,
        email_verified: p.email_verified.unwrap_or(true),
        groups: p.groups,
        connector_data: Vec::new(),
    }
}

/// Runs bcrypt on the pool for slow work (`crate::cpu::run_slow`): `Some(hash)` verifies
/// against it, `None` runs the dummy verification and reports false.
async fn verify_blocking(password: &str, hash: Option<Vec<u8>>) -> Result<bool, ConnectorError> {
    let password = password.to_owned();
    crate::cpu::run_slow(move || match hash {
        Some(hash) => password::verify(&password, &hash),
        None => {
            password::dummy_verify(&password);
            false
        }
    })
    .await
    .map_err(|_| ConnectorError::Internal("password verification was not run".into()))
}

#[async_trait]
impl PasswordConnector for LocalConnector {
    fn prompt(&self) -> &str {
        "Email Address"
    }

    async fn login(
        &self,
        _scopes: &ConnectorScopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        let entry = match self.storage.get_password(username).await {
            Ok(p) => match password::check_bcrypt_hash(&p.hash) {
                Ok(()) => Some(p),
                Err(e) => {
                    // Both the config file and the API refuse such hashes, so this is a
                    // database edited by hand. Behave as for an unknown user (no 500 that
                    // would tell this user apart), and tell the operator.
                    tracing::warn!(user_id = %p.user_id, error = %e, "stored password hash is not acceptable");
                    None
                }
            },
            Err(StorageError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        match entry {
            Some(p) => {
                let hash = p.hash.clone();
                Ok(verify_blocking(password, Some(hash)).await?.then(|| identity(p)))
            }
            None => {
                verify_blocking(password, None).await?;
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl RefreshConnector for LocalConnector {
    async fn refresh(&self, _scopes: &ConnectorScopes, old: Identity) -> Result<Identity, ConnectorError> {
        let p = match self.storage.get_password(&old.email).await {
            Ok(p) => p,
            Err(StorageError::NotFound) => return Err(ConnectorError::Refused("user not found".into())),
            Err(e) => return Err(e.into()),
        };
        // The user was deleted and another one created with the same email.
        if p.user_id != old.user_id {
            return Err(ConnectorError::Refused("user not found".into()));
        }
        // Changes to the entry (name, groups...) show in the refreshed tokens.
        Ok(Identity { connector_data: old.connector_data, ..identity(p) })
    }
}

impl ConnectorImpl for LocalConnector {
    fn as_password(&self) -> Option<&dyn PasswordConnector> {
        Some(self)
    }
    fn as_refresh(&self) -> Option<&dyn RefreshConnector> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    // "password" at cost 10 (Dex's example config).
    const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

    async fn connector() -> (Arc<MemoryStorage>, LocalConnector) {
        let storage = Arc::new(MemoryStorage::new());
        let p = Password {
            email: "jane@example.com".into(),
            hash: HASH.as_bytes().to_vec(),
            username: "jane".into(),
            user_id: "u-1".into(),
            email_verified: Some(false),
            ..Default::default()
        };
        storage.create_password(p).await.unwrap();
        (storage.clone(), LocalConnector::new(storage))
    }

    #[tokio::test]
    async fn hash_with_unacceptable_cost_never_logs_in() {
        let (storage, c) = connector().await;
        let cheap = HASH.replace("$10$", "$04$");
        storage
            .update_password("jane@example.com", &|mut p| {
                p.hash = cheap.as_bytes().to_vec();
                Ok(p)
            })
            .await
            .unwrap();
        let got = c.login(&ConnectorScopes::default(), "jane@example.com", "password").await.unwrap();
        assert_eq!(got, None);
    }

    #[tokio::test]
    async fn refresh_keeps_connector_data_and_reads_fresh_claims() {
        let (storage, c) = connector().await;
        let scopes = ConnectorScopes::default();
        let id = c.login(&scopes, "jane@example.com", "password").await.unwrap().unwrap();
        assert!(!id.email_verified, "email_verified comes from the entry");
        storage
            .update_password("jane@example.com", &|mut p| {
                p.groups = vec!["ops".into()];
                Ok(p)
            })
            .await
            .unwrap();
        let old = Identity { connector_data: b"x".to_vec(), ..id };
        let fresh = c.refresh(&scopes, old).await.unwrap();
        assert_eq!(fresh.groups, vec!["ops".to_owned()]);
        assert_eq!(fresh.connector_data, b"x");
    }

    #[tokio::test]
    async fn refresh_refuses_a_recreated_user() {
        let (storage, c) = connector().await;
        let scopes = ConnectorScopes::default();
        let id = c.login(&scopes, "jane@example.com", "password").await.unwrap().unwrap();
        storage
            .update_password("jane@example.com", &|mut p| {
                p.user_id = "u-2".into();
                Ok(p)
            })
            .await
            .unwrap();
        assert!(matches!(c.refresh(&scopes, id).await, Err(ConnectorError::Refused(_))));
    }
}
