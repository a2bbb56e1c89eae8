//! Connectors: how Oxidex learns who the user is from an upstream identity provider.
//!
//! As in Dex, a connector is a small base plus capabilities, each a trait:
//!
//! - [`PasswordConnector`]: the user types a username and a password into Oxidex's form and the
//!   connector checks them (the local password database, LDAP, Keystone, ...);
//! - [`CallbackConnector`]: the browser is redirected to the upstream, which redirects back to
//!   Oxidex's callback with query parameters the connector turns into an identity (OIDC, GitHub,
//!   ...). The connector never sees an HTTP request: the gateway hands it a [`CallbackParams`];
//! - [`RefreshConnector`]: on a refresh-token grant the connector checks that the user still
//!   exists upstream and returns fresh claims, or refuses with [`ConnectorError::Refused`];
//! - [`TokenIdentityConnector`]: the connector verifies a token its upstream issued and returns
//!   the identity it proves (RFC 8693 token exchange).
//!
//! A connector type implements [`ConnectorImpl`], which says which capabilities it has. The
//! registry ([`open`]) maps a stored [`storage::Connector`]'s `type` to a factory that parses
//! its JSON `config` into the connector's typed configuration. A [`ConnectorSet`] keeps the
//! opened connectors of an installation, reopening one when its stored version changes.
//!
//! [`throttle`] holds the login throttle that the login flow puts in front of every
//! [`PasswordConnector::login`].
//!
//! ```text
//! storage::Connector ──open()──> OpenConnector { id, type, name, Arc<dyn ConnectorImpl> }
//!                                    │ password() ─> PasswordConnector::login(scopes, user, pw)
//!                                    │ callback() ─> CallbackConnector::login_url / handle_callback
//!                                    └ refresh()  ─> RefreshConnector::refresh(scopes, identity)
//! ```

mod config;
mod github;
mod gitlab;
mod google;
pub mod ldap;
pub mod local;
mod microsoft;
pub mod mock_callback;
pub mod mock_password;
mod oauth;
mod oauth2;
pub mod oidc;
mod registry;
mod set;
pub(crate) mod single_flight;
pub mod throttle;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::storage::{self, Claims, DurableStorage, StorageError};

pub use registry::{open, supported_types};
pub use set::ConnectorSet;

/// The id, type and display name of the built-in password-database connector.
pub const LOCAL_CONNECTOR_ID: &str = "local";
/// The type of the built-in password-database connector.
pub const LOCAL_CONNECTOR_TYPE: &str = "local";
/// The name Dex shows for the password database on the login page.
pub const LOCAL_CONNECTOR_NAME: &str = "Email";

/// Errors of connectors, of the registry and of the connector set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// No factory exists for the connector's type.
    #[error("connector {id:?}: connector type {connector_type:?} is not supported (yet)")]
    UnsupportedType {
        /// The connector id.
        id: String,
        /// The unsupported type.
        connector_type: String,
    },
    /// The connector's configuration could not be parsed or is not valid. The reason never
    /// repeats a configured value (it may be a secret).
    #[error("connector {id:?}: invalid config{}: {reason}", key.as_ref().map(|k| format!(" key {k:?}")).unwrap_or_default())]
    InvalidConfig {
        /// The connector id.
        id: String,
        /// The offending key, when one could be singled out.
        key: Option<String>,
        /// What is wrong, without the value.
        reason: String,
    },
    /// No connector has this id.
    #[error("no connector with id {id:?}")]
    NotFound {
        /// The requested id.
        id: String,
    },
    /// The connector exists but could not be opened (its configuration is broken).
    #[error("connector {id:?} is unavailable: {reason}")]
    Unavailable {
        /// The connector id.
        id: String,
        /// Why it could not be opened.
        reason: String,
    },
    /// The upstream no longer vouches for the user (deleted, disabled, grant revoked): a refresh
    /// grant must answer `invalid_grant`, not a server error.
    #[error("the identity is no longer valid: {0}")]
    Refused(String),
    /// The callback parameters are not acceptable (missing code, upstream error response...):
    /// the user sees a login error, not a server error.
    #[error("invalid callback: {0}")]
    InvalidCallback(String),
    /// The upstream identity provider failed or could not be reached.
    #[error("upstream identity provider error: {0}")]
    Upstream(String),
    /// Storage failed.
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    /// An internal failure (a blocking task panicked, a caller passed a malformed value).
    #[error("internal connector error: {0}")]
    Internal(String),
}

/// The scopes of the request that a connector may act on (Dex's `connector.Scopes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectorScopes {
    /// `offline_access` was requested: the connector should keep what it needs to refresh.
    pub offline_access: bool,
    /// `groups` was requested: the connector should look up group membership.
    pub groups: bool,
}

impl ConnectorScopes {
    /// The connector scopes of a list of OAuth scopes.
    pub fn from_scopes<S: AsRef<str>>(scopes: &[S]) -> Self {
        let has = |name: &str| scopes.iter().any(|s| s.as_ref() == name);
        Self { offline_access: has("offline_access"), groups: has("groups") }
    }
}

/// The user as a connector reports them (Dex's `connector.Identity`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// Connector-local, stable user id (part of the encoded `sub`).
    pub user_id: String,
    /// The user's name (`name` claim).
    pub username: String,
    /// `preferred_username` claim.
    pub preferred_username: String,
    /// `email` claim.
    pub email: String,
    /// `email_verified` claim.
    pub email_verified: bool,
    /// Group names.
    pub groups: Vec<String>,
    /// Opaque state the connector needs to refresh (upstream tokens); stored with the grant and
    /// handed back to [`RefreshConnector::refresh`]. Never logged.
    pub connector_data: Vec<u8>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("preferred_username", &self.preferred_username)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("groups", &self.groups)
            .field("connector_data", &format_args!("<{} bytes>", self.connector_data.len()))
            .finish()
    }
}

impl Identity {
    /// The claims to store with the grant (everything but `connector_data`).
    pub fn claims(&self) -> Claims {
        Claims {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            preferred_username: self.preferred_username.clone(),
            email: self.email.clone(),
            email_verified: self.email_verified,
            groups: self.groups.clone(),
        }
    }

    /// Rebuilds an identity from stored claims and connector data (for a refresh).
    pub fn from_claims(claims: Claims, connector_data: Vec<u8>) -> Self {
        Self {
            user_id: claims.user_id,
            username: claims.username,
            preferred_username: claims.preferred_username,
            email: claims.email,
            email_verified: claims.email_verified,
            groups: claims.groups,
            connector_data,
        }
    }
}

impl From<Identity> for Claims {
    fn from(identity: Identity) -> Self {
        Claims {
            user_id: identity.user_id,
            username: identity.username,
            preferred_username: identity.preferred_username,
            email: identity.email,
            email_verified: identity.email_verified,
            groups: identity.groups,
        }
    }
}

impl From<&Identity> for Claims {
    fn from(identity: &Identity) -> Self {
        identity.claims()
    }
}

/// The query parameters of an upstream's redirect to the callback, already decoded. Values
/// (codes, tokens) are never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CallbackParams(BTreeMap<String, String>);

impl CallbackParams {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of a parameter. A parameter given several times keeps its first value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets a parameter, replacing an earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The parameter names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for CallbackParams {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = BTreeMap::new();
        for (k, v) in iter {
            // The first occurrence wins, as with Go's `url.Values.Get`.
            map.entry(k.into()).or_insert_with(|| v.into());
        }
        Self(map)
    }
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A connector that checks a username and a password typed into Oxidex's login form.
#[async_trait]
pub trait PasswordConnector: Send + Sync {
    /// The label of the username field ("Email Address", "Username"); empty means the
    /// frontend's default.
    fn prompt(&self) -> &str;

    /// Checks the credentials: `Ok(None)` means they are wrong (or the user is unknown: the two
    /// are indistinguishable, in result and in time). Errors are failures, not wrong passwords.
    async fn login(
        &self,
        scopes: &ConnectorScopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError>;
}

/// Where to send the browser to log in upstream, and what the connector needs to remember until
/// the browser comes back (a PKCE verifier, a nonce). The flow keeps `state_data` on the pending
/// authorization request, bound to the browser, and hands it back to
/// [`CallbackConnector::handle_callback`]; it never reaches the browser.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LoginRedirect {
    /// The upstream's authorization URL (or, for the mock, the callback itself).
    pub url: String,
    /// Opaque per-login state; empty when the connector needs none. Never logged.
    pub state_data: Vec<u8>,
}

impl LoginRedirect {
    /// A redirect that needs no per-login state.
    pub fn to(url: impl Into<String>) -> Self {
        Self { url: url.into(), state_data: Vec::new() }
    }
}

impl fmt::Debug for LoginRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRedirect")
            .field("url", &self.url)
            .field("state_data", &format_args!("<{} bytes>", self.state_data.len()))
            .finish()
    }
}

/// A connector that sends the browser to the upstream and gets it back on the callback.
#[async_trait]
pub trait CallbackConnector: Send + Sync {
    /// Where to redirect the browser. `callback_url` is Oxidex's callback and `state` the value
    /// the upstream must return with it (the flow matches it to the pending request).
    async fn login_url(
        &self,
        scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError>;

    /// Turns the callback's query parameters into an identity. The caller has already matched
    /// `state` against the pending request; `state_data` is what [`Self::login_url`] returned
    /// for this login.
    async fn handle_callback(
        &self,
        scopes: &ConnectorScopes,
        params: &CallbackParams,
        state_data: &[u8],
    ) -> Result<Identity, ConnectorError>;
}

/// A connector that can verify a token its upstream issued (RFC 8693 token exchange): the
/// identity the token proves, or an error when it is not valid.
#[async_trait]
pub trait TokenIdentityConnector: Send + Sync {
    /// Verifies `subject_token` of `subject_token_type` (an RFC 8693 token type URN such as
    /// `urn:ietf:params:oauth:token-type:id_token`) and returns the identity it proves.
    /// [`ConnectorError::Refused`] means the token is not acceptable (the client's mistake).
    async fn token_identity(
        &self,
        scopes: &ConnectorScopes,
        subject_token_type: &str,
        subject_token: &str,
    ) -> Result<Identity, ConnectorError>;
}

/// A connector that can refresh an identity on a refresh-token grant.
#[async_trait]
pub trait RefreshConnector: Send + Sync {
    /// Returns the user's current identity, or [`ConnectorError::Refused`] when the upstream no
    /// longer vouches for them.
    async fn refresh(&self, scopes: &ConnectorScopes, identity: Identity)
    -> Result<Identity, ConnectorError>;
}

/// An opened connector implementation: says which capabilities it has. Implementations must
/// not show secrets in `Debug`.
pub trait ConnectorImpl: Send + Sync + fmt::Debug {
    /// The password capability, if any.
    fn as_password(&self) -> Option<&dyn PasswordConnector> {
        None
    }
    /// The callback capability, if any.
    fn as_callback(&self) -> Option<&dyn CallbackConnector> {
        None
    }
    /// The refresh capability, if any.
    fn as_refresh(&self) -> Option<&dyn RefreshConnector> {
        None
    }
    /// The token-identity capability (token exchange), if any.
    fn as_token_identity(&self) -> Option<&dyn TokenIdentityConnector> {
        None
    }
}

/// What factories may use to open a connector.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenContext {
    /// Durable storage (the password database for `local`, the connector list for the set).
    pub storage: Arc<dyn DurableStorage>,
    /// The injected clock.
    pub clock: SharedClock,
}

impl OpenContext {
    /// A context over `storage` and `clock`.
    pub fn new(storage: Arc<dyn DurableStorage>, clock: SharedClock) -> Self {
        Self { storage, clock }
    }
}

/// A connector ready to use, cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenConnector {
    id: String,
    connector_type: String,
    name: String,
    resource_version: String,
    grant_types: Vec<String>,
    inner: Arc<dyn ConnectorImpl>,
}

impl OpenConnector {
    /// Wraps an implementation opened for `connector`.
    pub fn new(connector: &storage::Connector, inner: Arc<dyn ConnectorImpl>) -> Self {
        Self {
            id: connector.id.clone(),
            connector_type: connector.r#type.clone(),
            name: connector.name.clone(),
            resource_version: connector.resource_version.clone(),
            grant_types: connector.grant_types.clone(),
            inner,
        }
    }

    /// The connector id (in URLs and in the encoded `sub`).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The connector type (`local`, `mockCallback`, ...).
    pub fn connector_type(&self) -> &str {
        &self.connector_type
    }
    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The stored version this instance was opened from.
    pub fn resource_version(&self) -> &str {
        &self.resource_version
    }
    /// The grant types the connector may be used for; empty means all.
    pub fn grant_types(&self) -> &[String] {
        &self.grant_types
    }
    /// Whether the connector may be used for `grant_type` (empty list: every grant type).
    pub fn allows_grant_type(&self, grant_type: &str) -> bool {
        self.grant_types.is_empty() || self.grant_types.iter().any(|g| g == grant_type)
    }
    /// The password capability, if the connector has it.
    pub fn password(&self) -> Option<&dyn PasswordConnector> {
        self.inner.as_password()
    }
    /// The callback capability, if the connector has it.
    pub fn callback(&self) -> Option<&dyn CallbackConnector> {
        self.inner.as_callback()
    }
    /// The refresh capability, if the connector has it.
    pub fn refresh(&self) -> Option<&dyn RefreshConnector> {
        self.inner.as_refresh()
    }
    /// The token-identity capability, if the connector has it.
    pub fn token_identity(&self) -> Option<&dyn TokenIdentityConnector> {
        self.inner.as_token_identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_converts_to_claims_and_hides_connector_data() {
        let identity = Identity {
            user_id: "u1".into(),
            username: "Jane".into(),
            preferred_username: "jane".into(),
            email: "jane@example.com".into(),
            email_verified: true,
            groups: vec!["admins".into()],
            connector_data: b"upstream-refresh-token".to_vec(),
        };
        let claims: Claims = (&identity).into();
        assert_eq!(claims.user_id, "u1");
        assert_eq!(claims.preferred_username, "jane");
        assert_eq!(claims.groups, vec!["admins".to_owned()]);
        assert_eq!(Identity::from_claims(claims.clone(), identity.connector_data.clone()), identity);
        assert_eq!(Claims::from(identity.clone()), claims);
        let shown = format!("{identity:?}");
        assert!(!shown.contains("upstream-refresh-token"), "{shown}");
        assert!(shown.contains("<22 bytes>"), "{shown}");
    }

    #[test]
    fn callback_params_keep_the_first_value_and_hide_values() {
        let params: CallbackParams =
            [("code", "secret-code"), ("state", "s1"), ("code", "second")].into_iter().collect();
        assert_eq!(params.get("code"), Some("secret-code"));
        assert_eq!(params.get("state"), Some("s1"));
        assert_eq!(params.get("missing"), None);
        let shown = format!("{params:?}");
        assert!(!shown.contains("secret-code") && shown.contains("code"), "{shown}");
    }

    #[test]
    fn scopes_from_oauth_scopes() {
        let s = ConnectorScopes::from_scopes(&["openid", "groups"]);
        assert_eq!(s, ConnectorScopes { offline_access: false, groups: true });
        let s = ConnectorScopes::from_scopes(&["offline_access".to_owned()]);
        assert!(s.offline_access && !s.groups);
    }

    #[test]
    fn error_messages_name_the_connector_and_key() {
        let e =
            ConnectorError::InvalidConfig { id: "ldap".into(), key: Some("host".into()), reason: "r".into() };
        assert_eq!(e.to_string(), "connector \"ldap\": invalid config key \"host\": r");
        let e = ConnectorError::InvalidConfig { id: "ldap".into(), key: None, reason: "r".into() };
        assert_eq!(e.to_string(), "connector \"ldap\": invalid config: r");
    }
}
