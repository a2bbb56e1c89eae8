//! `mockPassword`: Dex's test connector that accepts one configured username and password and
//! reports Dex's fixed test user for them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::config::ConnectorConfig;
use super::{
    ConnectorError, ConnectorImpl, ConnectorScopes, Identity, OpenContext, PasswordConnector,
    RefreshConnector,
};

/// `mockPassword` settings (Dex's `PasswordConfig`).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MockPasswordConfig {
    /// The one accepted username (required).
    pub username: String,
    /// The one accepted password (required).
    pub password: String,
}

impl fmt::Debug for MockPasswordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockPasswordConfig")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ConnectorConfig for MockPasswordConfig {
    fn open(self, id: &str, _ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        let missing = |key: &str, what: &str| ConnectorError::InvalidConfig {
            id: id.to_owned(),
            key: Some(key.to_owned()),
            reason: format!("required; the {what} the connector accepts"),
        };
        if self.username.is_empty() {
            return Err(missing("username", "username"));
        }
        if self.password.is_empty() {
            return Err(missing("password", "password"));
        }
        Ok(Arc::new(MockPasswordConnector { username: self.username, password: self.password }))
    }
}

/// The `mockPassword` connector.
#[derive(Clone)]
pub struct MockPasswordConnector {
    username: String,
    password: String,
}

impl fmt::Debug for MockPasswordConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockPasswordConnector")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The identity Dex's mock password connector reports (no groups, no connector data).
fn identity() -> Identity {
    Identity {
        user_id: "0-385-28089-0".into(),
        username: "Kilgore Trout".into(),
        email: "kilgore@kilgore.trout".into(),
        email_verified: true,
        ..Default::default()
    }
}

#[async_trait]
impl PasswordConnector for MockPasswordConnector {
    fn prompt(&self) -> &str {
        // Dex's mock has no prompt of its own: the frontend shows its default label.
        ""
    }

    async fn login(
        &self,
        _scopes: &ConnectorScopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        let password_ok: bool = password.as_bytes().ct_eq(self.password.as_bytes()).into();
        Ok((username == self.username && password_ok).then(identity))
    }
}

#[async_trait]
impl RefreshConnector for MockPasswordConnector {
    async fn refresh(
        &self,
        _scopes: &ConnectorScopes,
        identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        Ok(identity)
    }
}

impl ConnectorImpl for MockPasswordConnector {
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

    #[tokio::test]
    async fn accepts_only_the_configured_credentials_and_hides_the_password() {
        let c = MockPasswordConnector { username: "admin".into(), password: "s3cret-pw".into() };
        let s = ConnectorScopes::default();
        let id = c.login(&s, "admin", "s3cret-pw").await.unwrap().unwrap();
        assert_eq!(id.user_id, "0-385-28089-0");
        assert_eq!(id.username, "Kilgore Trout");
        assert!(id.groups.is_empty());
        assert_eq!(c.login(&s, "admin", "s3cret-pX").await.unwrap(), None);
        assert_eq!(c.login(&s, "Admin", "s3cret-pw").await.unwrap(), None);
        assert_eq!(c.login(&s, "admin", "").await.unwrap(), None);
        assert!(!format!("{c:?}").contains("s3cret"));
        let cfg = MockPasswordConfig { username: "a".into(), password: "s3cret-pw".into() };
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }
}
