//! The browser side of OpenID Connect: authorization requests, connector login, consent, and
//! the authorization response.
//!
//! ```text
//!  Authorize ──> (chooser) ──SelectConnector──> password form ──PasswordLogin──┐
//!      │                            └──> upstream ──Callback─────────────────────┤
//!      └──────────── (one connector, no chooser) ────────────────────────────────┤
//!                                                                                 v
//!                                        (consent) GetApproval / Approve ──> redirect to client
//!                                                                            with code, state, iss
//! ```
//!
//! Every step after `Authorize` presents the browser secret whose hash the authorization request
//! stores, so a request id learned by someone else is useless in another browser; the consent
//! step also needs the per-request HMAC (Dex's fix for GHSA-vh7g-p26c-j2cw).
//!
//! Architecture invariant: an error is only ever redirected to a redirect URI that was checked
//! against the client's registration; before that, errors are error pages.

mod authorize;
mod device;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use oxidex_proto::oxidex::v1 as pb;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tonic::Status;

use crate::clock::SharedClock;
use crate::config::{Config, RefreshTokenPolicy};
use crate::connector::ConnectorSet;
use crate::connector::throttle::LoginThrottle;
use crate::storage::{AuthRequest, Client, DurableStorage, FlowStorage, StorageError};
use crate::token::rotation::KeyManager;
use crate::token::scopes::Scopes;

/// The path, under the issuer, where a device login ends.
pub const DEVICE_CALLBACK_PATH: &str = "/device/callback";

/// The out-of-band redirect URI: the code is shown to the user instead of redirected.
pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Protocol settings derived from the config.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderSettings {
    /// Enabled `response_type` combinations, each as its sorted words joined by a space.
    pub response_types: Vec<String>,
    /// Enabled grant types.
    pub grant_types: Vec<String>,
    /// `oauth2.skipApprovalScreen`.
    pub skip_approval: bool,
    /// `oauth2.alwaysShowLoginScreen`.
    pub always_show_login: bool,
    /// `oauth2.pkce.enforce`: every client must send a code challenge (public clients always must).
    pub pkce_enforce: bool,
    /// `oauth2.pkce.codeChallengeMethodsSupported`.
    pub challenge_methods: Vec<String>,
    /// `oauth2.passwordConnector`.
    pub password_connector: Option<String>,
    /// ID and access token lifetime.
    pub id_token_ttl: Duration,
    /// Authorization request lifetime.
    pub auth_request_ttl: Duration,
    /// Device code lifetime (`expiry.deviceRequests`).
    pub device_request_ttl: Duration,
    /// Authorization code lifetime (Oxidex: 2 minutes; Dex: 30 minutes).
    pub code_ttl: Duration,
    /// Refresh token policy.
    pub refresh: RefreshTokenPolicy,
}

/// Sorts the words of a response type so that `id_token code` equals `code id_token`.
pub(crate) fn normalize_response_type(rt: &str) -> String {
    let mut words: Vec<&str> = rt.split_whitespace().collect();
    words.sort_unstable();
    words.dedup();
    words.join(" ")
}

impl ProviderSettings {
    /// The settings of a validated config.
    pub fn from_config(config: &Config) -> Self {
        Self {
            response_types: config.oauth2.response_types.iter().map(|r| normalize_response_type(r)).collect(),
            grant_types: config.oauth2.grant_types.clone(),
            skip_approval: config.oauth2.skip_approval_screen,
            always_show_login: config.oauth2.always_show_login_screen,
            pkce_enforce: config.oauth2.pkce_enforce,
            challenge_methods: config.oauth2.code_challenge_methods.clone(),
            password_connector: config.oauth2.password_connector.clone(),
            id_token_ttl: config.expiry.id_tokens,
            auth_request_ttl: config.expiry.auth_requests,
            device_request_ttl: config.expiry.device_requests,
            code_ttl: Duration::from_secs(120),
            refresh: config.expiry.refresh_tokens.clone(),
        }
    }
}

/// Everything the flows and grants share: storage, keys, connectors, clock and settings.
#[derive(Debug)]
pub struct Provider {
    /// The issuer URL, exactly as configured.
    pub issuer: String,
    /// Durable storage (with the config file's static overlay).
    pub durable: Arc<dyn DurableStorage>,
    /// Flow state.
    pub flow: Arc<dyn FlowStorage>,
    /// Signing keys.
    pub keys: Arc<KeyManager>,
    /// Connectors.
    pub connectors: Arc<ConnectorSet>,
    /// Login throttling.
    pub throttle: LoginThrottle,
    /// The clock.
    pub clock: SharedClock,
    /// Protocol settings.
    pub settings: ProviderSettings,
    /// Upstream refreshes in flight (one upstream call per burst of parallel refreshes).
    pub refreshes: crate::grant::RefreshFlights,
}

impl Provider {
    /// The URL of an endpoint under the issuer (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn expires_in(&self, ttl: Duration) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
    }
}

impl Provider {
    /// Checks the cross-client scopes: every `audience:server:client_id:<peer>` must name a client
    /// that lists `client` in its `trustedPeers` (a client always trusts itself). Returns the
    /// description of an `invalid_scope` error, or `None` when every peer trusts the client.
    pub(crate) async fn untrusted_peers(
        &self,
        client: &Client,
        scopes: &Scopes,
    ) -> Result<Option<String>, Status> {
        for peer in scopes.cross_client_peers() {
            let trusted = match self.durable.get_client(peer).await {
                Ok(p) => p.id == client.id || p.trusted_peers.iter().any(|t| t == &client.id),
                Err(StorageError::NotFound) => peer == &client.id,
                Err(e) => return Err(e.into()),
            };
            if !trusted {
                return Ok(Some(format!("Client {peer:?} does not trust this client.")));
            }
        }
        Ok(None)
    }
}

/// Checks a PKCE `code_challenge` and its method (RFC 7636 §4.2, §4.3): the method must be one
/// the server supports (`plain` is the default when a challenge comes without one, as the RFC
/// says, so it is refused unless configured). Returns the method to store (empty without a
/// challenge) or a client-safe description of what is wrong.
pub(crate) fn validate_challenge(
    settings: &ProviderSettings,
    challenge: &str,
    method: &str,
) -> Result<String, String> {
    if challenge.is_empty() {
        return Ok(String::new());
    }
    let method = if method.is_empty() { "plain" } else { method };
    if !settings.challenge_methods.iter().any(|m| m == method) {
        return Err(format!("Unsupported code_challenge_method {method:?}; use S256."));
    }
    if !(43..=128).contains(&challenge.len())
        || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err("Malformed code_challenge.".to_owned());
    }
    Ok(method.to_owned())
}

/// Whether `client` may use the connector (an empty `allowedConnectors` allows every one).
pub(crate) fn connector_allowed(client: &Client, connector_id: &str) -> bool {
    client.allowed_connectors.is_empty() || client.allowed_connectors.iter().any(|c| c == connector_id)
}

/// SHA-256 (hex) of a browser secret, as stored on the authorization request.
pub(crate) fn browser_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `secret` is the one the request was started with, compared in constant time.
pub(crate) fn same_browser(request: &AuthRequest, secret: &str) -> bool {
    !secret.is_empty()
        && !request.browser_hash.is_empty()
        && bool::from(browser_hash(secret).as_bytes().ct_eq(request.browser_hash.as_bytes()))
}

/// The approval HMAC: HMAC-SHA256 over the request id with the request's own key.
pub(crate) fn approval_hmac(request: &AuthRequest) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &request.hmac_key);
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, request.id.as_bytes()).as_ref())
}

/// Checks an approval HMAC in constant time.
pub(crate) fn approval_hmac_ok(request: &AuthRequest, presented: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(presented) else { return false };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &request.hmac_key);
    hmac::verify(&key, request.id.as_bytes(), &tag).is_ok()
}

/// An error page step. `code` is the stable identifier a UI translates (see `ErrorPage.code`);
/// `title` and `message` are the English text shown by a UI that does not know the code.
pub(crate) fn error_page(status: i32, code: &str, title: &str, message: impl Into<String>) -> pb::FlowStep {
    pb::FlowStep {
        step: Some(pb::flow_step::Step::Error(pb::ErrorPage {
            title: title.to_owned(),
            message: message.into(),
            http_status: status,
            code: code.to_owned(),
        })),
    }
}

/// A redirect step.
pub(crate) fn redirect(url: impl Into<String>) -> pb::FlowStep {
    pb::FlowStep { step: Some(pb::flow_step::Step::Redirect(pb::Redirect { url: url.into() })) }
}

/// What a consent page shows of a client.
pub(crate) fn client_info(client: &Client) -> pb::ClientInfo {
    pb::ClientInfo {
        id: client.id.clone(),
        name: if client.name.is_empty() { client.id.clone() } else { client.name.clone() },
        logo_url: client.logo_url.clone(),
    }
}

/// The page shown when a flow step comes from another browser or an unknown/expired request.
pub(crate) fn stale_request() -> pb::FlowStep {
    error_page(
        400,
        "stale_request",
        "Login session expired",
        "This login request is unknown, has expired, or was started in another browser. \
         Go back to the application and sign in again.",
    )
}

/// Explains a scope to the user on the consent page.
pub(crate) fn describe_scope(scope: &str) -> Option<String> {
    let text = match scope {
        "openid" => return None,
        "email" => "View your email address".to_owned(),
        "profile" => "View basic profile information".to_owned(),
        "groups" => "View your groups".to_owned(),
        "offline_access" => "Have offline access".to_owned(),
        "federated:id" => "View the account you signed in with upstream".to_owned(),
        other => match other.strip_prefix("audience:server:client_id:") {
            Some(peer) => format!("Access tokens for the application \"{peer}\""),
            None => return None,
        },
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_types_compare_as_sets() {
        assert_eq!(normalize_response_type("id_token code"), "code id_token");
        assert_eq!(normalize_response_type(" code  "), "code");
    }

    #[test]
    fn approval_hmac_is_bound_to_the_request() {
        let a = AuthRequest { id: "a".into(), hmac_key: vec![1; 32], ..Default::default() };
        let b = AuthRequest { id: "b".into(), hmac_key: vec![1; 32], ..Default::default() };
        let tag = approval_hmac(&a);
        assert!(approval_hmac_ok(&a, &tag));
        assert!(!approval_hmac_ok(&b, &tag));
        assert!(!approval_hmac_ok(&a, "not base64 !"));
        assert!(!approval_hmac_ok(&a, ""));
    }

    #[test]
    fn browser_binding_needs_the_same_secret() {
        let r = AuthRequest { browser_hash: browser_hash("s3cret"), ..Default::default() };
        assert!(same_browser(&r, "s3cret"));
        assert!(!same_browser(&r, "other"));
        assert!(!same_browser(&r, ""));
        assert!(!same_browser(&AuthRequest::default(), ""));
    }
}
