//! The registry: connector types and the factories that open them (Dex's `ConnectorsConfig`).

use std::sync::Arc;

use super::config::{self, ConnectorConfig};
use super::{
    ConnectorError, ConnectorImpl, OpenConnector, OpenContext, github, gitlab, google, ldap, local,
    microsoft, mock_callback, mock_password, oauth, oidc,
};
use crate::storage;

type Factory = fn(&storage::Connector, &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError>;

fn factory<C: ConnectorConfig>(
    connector: &storage::Connector,
    ctx: &OpenContext,
) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
    config::parse::<C>(connector)?.open(&connector.id, ctx)
}

/// Every supported type, by Dex's type name.
const REGISTRY: &[(&str, Factory)] = &[
    (super::LOCAL_CONNECTOR_TYPE, factory::<local::LocalConfig>),
    ("ldap", factory::<ldap::LdapConfig>),
    ("github", factory::<github::GitHubConfig>),
    ("gitlab", factory::<gitlab::GitLabConfig>),
    ("google", factory::<google::GoogleConfig>),
    ("microsoft", factory::<microsoft::MicrosoftConfig>),
    ("mockCallback", factory::<mock_callback::MockCallbackConfig>),
    ("mockPassword", factory::<mock_password::MockPasswordConfig>),
    ("oauth", factory::<oauth::OAuthConfig>),
    ("oidc", factory::<oidc::OidcConfig>),
];

/// The connector types this build can open.
pub fn supported_types() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|(t, _)| *t)
}

/// Opens a stored connector: finds the factory for its type and parses its config. Errors name
/// the connector id (and the bad key when there is one).
pub fn open(connector: &storage::Connector, ctx: &OpenContext) -> Result<OpenConnector, ConnectorError> {
    let Some((_, factory)) = REGISTRY.iter().find(|(t, _)| *t == connector.r#type) else {
        return Err(ConnectorError::UnsupportedType {
            id: connector.id.clone(),
            connector_type: connector.r#type.clone(),
        });
    };
    let inner = factory(connector, ctx)?;
    Ok(OpenConnector::new(connector, inner))
}
