//! `mockCallback`: Dex's test connector that logs everybody in as the same user without asking
//! anything. Its login URL is the callback URL itself (with `state` added), so a test can drive
//! a whole login by following plain redirects.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::config::ConnectorConfig;
use super::{
    CallbackConnector, CallbackParams, ConnectorError, ConnectorImpl, ConnectorScopes, Identity,
    LoginRedirect, OpenContext, RefreshConnector,
};

/// `mockCallback` has no settings (unknown keys are ignored with a warning).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MockCallbackConfig {}

impl ConnectorConfig for MockCallbackConfig {
    fn open(self, _id: &str, _ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        Ok(Arc::new(MockCallbackConnector::new()))
    }
}

/// Dex's fixed test user, as the mock connectors report it.
pub fn kilgore_trout() -> Identity {
    Identity {
        user_id: "0-385-28089-0".into(),
        username: "Kilgore Trout".into(),
        preferred_username: String::new(),
        email: "kilgore@kilgore.trout".into(),
        email_verified: true,
        groups: vec!["authors".into()],
        // Dex's mock sets this so that tests see connector data travel with grants.
        connector_data: b"foobar".to_vec(),
    }
}

/// The `mockCallback` connector.
#[derive(Debug, Clone)]
pub struct MockCallbackConnector {
    identity: Identity,
}

impl MockCallbackConnector {
    /// A connector that reports [`kilgore_trout`].
    pub fn new() -> Self {
        Self { identity: kilgore_trout() }
    }
}

impl Default for MockCallbackConnector {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl CallbackConnector for MockCallbackConnector {
    async fn login_url(
        &self,
        _scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let mut url = url::Url::parse(callback_url)
            .map_err(|e| ConnectorError::Internal(format!("the callback URL is not a URL: {e}")))?;
        // Like Go's `Values.Set`: `state` replaces any `state` already present.
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "state")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept).append_pair("state", state);
        Ok(LoginRedirect::to(url))
    }

    async fn handle_callback(
        &self,
        _scopes: &ConnectorScopes,
        _params: &CallbackParams,
        _state_data: &[u8],
    ) -> Result<Identity, ConnectorError> {
        Ok(self.identity.clone())
    }
}

#[async_trait]
impl RefreshConnector for MockCallbackConnector {
    async fn refresh(
        &self,
        _scopes: &ConnectorScopes,
        _identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        Ok(self.identity.clone())
    }
}

impl ConnectorImpl for MockCallbackConnector {
    fn as_callback(&self) -> Option<&dyn CallbackConnector> {
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
    async fn login_url_is_the_callback_with_state_set() {
        let c = MockCallbackConnector::new();
        let s = ConnectorScopes::default();
        let r = c.login_url(&s, "https://idp.example/dex/callback", "st 1").await.unwrap();
        assert_eq!(r.url, "https://idp.example/dex/callback?state=st+1");
        assert!(r.state_data.is_empty());
        let r = c.login_url(&s, "https://idp.example/cb?a=1&state=old", "new").await.unwrap();
        assert_eq!(r.url, "https://idp.example/cb?a=1&state=new");
        assert!(matches!(c.login_url(&s, "not a url", "x").await, Err(ConnectorError::Internal(_))));
    }

    #[tokio::test]
    async fn callback_and_refresh_give_kilgore_trout() {
        let c = MockCallbackConnector::new();
        let s = ConnectorScopes::default();
        let id = c.handle_callback(&s, &CallbackParams::new(), &[]).await.unwrap();
        assert_eq!(id, kilgore_trout());
        assert_eq!(c.refresh(&s, Identity::default()).await.unwrap(), kilgore_trout());
    }
}
