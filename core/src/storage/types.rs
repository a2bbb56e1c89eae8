//! The objects Oxidex stores. These are domain types, not wire types: the gRPC edge converts
//! from and to `oxidex_proto` messages and validates there.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An OAuth2 client (relying party).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// The client secret; empty for public clients.
    pub secret: String,
    /// Registered redirect URIs, compared by exact string match.
    pub redirect_uris: Vec<String>,
    /// Clients that may request tokens with this client as audience.
    pub trusted_peers: Vec<String>,
    /// A public client (native app, SPA) has no secret.
    pub public: bool,
    /// Display name, shown on the consent page.
    pub name: String,
    /// Logo shown on the consent page.
    pub logo_url: String,
    /// Connectors this client may use; empty means all.
    pub allowed_connectors: Vec<String>,
    /// `clientCredentialsClaims.groups`: the `groups` claim of tokens this client obtains with
    /// the `client_credentials` grant.
    #[serde(default)]
    pub client_credentials_groups: Vec<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("trusted_peers", &self.trusted_peers)
            .field("public", &self.public)
            .field("name", &self.name)
            .field("logo_url", &self.logo_url)
            .field("allowed_connectors", &self.allowed_connectors)
            .field("client_credentials_groups", &self.client_credentials_groups)
            .finish()
    }
}

/// A user of the local password database.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Password {
    /// The login; unique, compared case-insensitively (stored lower-cased).
    pub email: String,
    /// A bcrypt hash (Dex compatible).
    pub hash: Vec<u8>,
    /// The user name shown and put in `name`.
    pub username: String,
    /// Display name; falls back to `username`.
    pub name: String,
    /// `preferred_username` claim.
    pub preferred_username: String,
    /// `email_verified` claim; `None` means true, as in Dex.
    pub email_verified: Option<bool>,
    /// The stable user id (part of the encoded `sub`).
    pub user_id: String,
    /// Groups of the user.
    pub groups: Vec<String>,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Password")
            .field("email", &self.email)
            .field("hash", &"<redacted>")
            .field("username", &self.username)
            .field("user_id", &self.user_id)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// An upstream identity provider configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Connector {
    /// Unique id, used in URLs and in the encoded `sub`.
    pub id: String,
    /// The connector type (`ldap`, `github`, `oidc`, ...).
    pub r#type: String,
    /// Display name.
    pub name: String,
    /// Changes on every update so that replicas know to reopen the connector.
    pub resource_version: String,
    /// The connector's configuration as JSON.
    pub config: Vec<u8>,
    /// Grant types the connector may be used for; empty means all.
    pub grant_types: Vec<String>,
}

/// The user's claims as a connector reported them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Claims {
    /// Connector-local user id.
    pub user_id: String,
    /// `name`.
    pub username: String,
    /// `preferred_username`.
    pub preferred_username: String,
    /// `email`.
    pub email: String,
    /// `email_verified`.
    pub email_verified: bool,
    /// `groups`.
    pub groups: Vec<String>,
}

/// A PKCE challenge (RFC 7636).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pkce {
    /// The `code_challenge`; empty when the request had none.
    pub code_challenge: String,
    /// `S256` or `plain`; empty when the request had none.
    pub code_challenge_method: String,
}

/// A pending authorization request (short-lived flow state).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Random id; travels through the browser.
    pub id: String,
    /// The requesting client.
    pub client_id: String,
    /// Requested response types.
    pub response_types: Vec<String>,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// The validated redirect URI.
    pub redirect_uri: String,
    /// The `nonce` to echo in the ID token.
    pub nonce: String,
    /// The client's `state`.
    pub state: String,
    /// Show the consent screen even when it could be skipped.
    pub force_approval_prompt: bool,
    /// When the request may no longer be used.
    pub expiry: DateTime<Utc>,
    /// Whether a connector has authenticated the user.
    pub logged_in: bool,
    /// The authenticated user's claims.
    pub claims: Claims,
    /// The connector that authenticated the user.
    pub connector_id: String,
    /// Opaque connector state (upstream tokens) kept for refresh.
    pub connector_data: Vec<u8>,
    /// PKCE parameters of the request.
    pub pkce: Pkce,
    /// Per-request key for the HMAC that binds the approval step to this request.
    pub hmac_key: Vec<u8>,
    /// SHA-256 (hex) of the secret the browser that started the flow holds; every later step
    /// must present the same secret.
    pub browser_hash: String,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("expiry", &self.expiry)
            .field("logged_in", &self.logged_in)
            .field("connector_id", &self.connector_id)
            .finish_non_exhaustive()
    }
}

/// An issued authorization code. `id` is the SHA-256 (hex) of the code, never the code itself.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthCode {
    /// Hash of the code.
    pub id: String,
    /// The client the code was issued to.
    pub client_id: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// The `nonce` of the authorization request.
    pub nonce: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The connector that authenticated the user.
    pub connector_id: String,
    /// Opaque connector state.
    pub connector_data: Vec<u8>,
    /// The user's claims.
    pub claims: Claims,
    /// When the code may no longer be redeemed.
    pub expiry: DateTime<Utc>,
    /// PKCE parameters of the authorization request.
    pub pkce: Pkce,
}

impl std::fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCode")
            .field("client_id", &self.client_id)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// A refresh token. `token` and `obsolete_token` hold SHA-256 hashes of secrets, never secrets.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RefreshToken {
    /// Random id; the first part of the token string.
    pub id: String,
    /// Hash of the current secret.
    pub token: String,
    /// Hash of the previous secret, accepted within the reuse interval.
    pub obsolete_token: String,
    /// When the token family was created (absolute lifetime starts here).
    pub created_at: DateTime<Utc>,
    /// When the token was last used (idle lifetime starts here).
    pub last_used: DateTime<Utc>,
    /// The client the token was issued to.
    pub client_id: String,
    /// The connector that authenticated the user.
    pub connector_id: String,
    /// Opaque connector state.
    pub connector_data: Vec<u8>,
    /// The user's claims.
    pub claims: Claims,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The `nonce` of the original request.
    pub nonce: String,
    /// A random key, never shown to anyone, from which each rotation derives the next secret
    /// (HMAC of the previous secret): a client that presents the previous secret within the
    /// reuse interval gets the same successor as everyone else, while storage keeps only hashes.
    pub rotation_key: Vec<u8>,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("connector_id", &self.connector_id)
            .field("created_at", &self.created_at)
            .field("last_used", &self.last_used)
            .finish_non_exhaustive()
    }
}

/// A reference from an offline session to one of its refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RefreshTokenRef {
    /// The refresh token id.
    pub id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_used: DateTime<Utc>,
}

/// The refresh tokens of one user of one connector. Unlike Dex, one user may hold several
/// refresh tokens for the same client (one per device): `refresh` is keyed by token id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OfflineSessions {
    /// Connector-local user id.
    pub user_id: String,
    /// The connector id.
    pub conn_id: String,
    /// Refresh tokens by token id.
    pub refresh: BTreeMap<String, RefreshTokenRef>,
    /// Opaque connector state (upstream tokens) used to refresh the identity.
    pub connector_data: Vec<u8>,
}

/// Signature algorithm of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over an RSA-2048 key (Dex's default).
    #[default]
    RS256,
    /// ECDSA over P-256 with SHA-256.
    ES256,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }
}

/// A private signing key with its public half.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Key id (`kid`), 40 hex characters as in Dex.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// The private key, PKCS#8 DER.
    pub private_pkcs8: Vec<u8>,
    /// The public key as a JWK (JSON object).
    pub public_jwk: serde_json::Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// A retired public key kept to verify tokens signed before a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationKey {
    /// The public key as a JWK (JSON object, has `kid`).
    pub public_jwk: serde_json::Value,
    /// When the last token it signed expires; then it is dropped.
    pub expiry: DateTime<Utc>,
}

/// The key set: one row for the whole installation, updated only by compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// The key that signs tokens now.
    pub signing_key: SigningKey,
    /// The key that will sign after the next rotation; already published in the JWKS.
    pub next_key: SigningKey,
    /// Retired keys still published.
    pub verification_keys: Vec<VerificationKey>,
    /// When the next rotation is due.
    pub next_rotation: DateTime<Utc>,
}

/// A pending device authorization (RFC 8628), looked up by user code.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// The code the user types (`XXXX-XXXX`).
    pub user_code: String,
    /// Hash of the device code the client polls with.
    pub device_code: String,
    /// The requesting client.
    pub client_id: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// When the request expires.
    pub expiry: DateTime<Utc>,
}

/// The polling state of a device authorization, looked up by device code (hash).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceToken {
    /// Hash of the device code.
    pub device_code: String,
    /// The client that asked for the device code; only it may poll.
    pub client_id: String,
    /// `authorization_pending` or `complete`.
    pub status: String,
    /// The serialized token response once complete.
    pub token: String,
    /// When the device code expires.
    pub expiry: DateTime<Utc>,
    /// When the client last polled.
    pub last_request_time: DateTime<Utc>,
    /// The current polling interval.
    pub poll_interval_seconds: i32,
    /// PKCE parameters of the device request.
    pub pkce: Pkce,
}

/// What is left of a consumed or revoked object, kept until that object would have expired
/// anyway: a redeemed authorization code (so that its replay can revoke what it issued) or a
/// revoked access token (by `jti`, so that userinfo and introspection refuse it). Keyed by a
/// kind-prefixed id such as `code:<hash>` or `jti:<uuid>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tombstone {
    /// The kind-prefixed id.
    pub id: String,
    /// What the caller needs to act on the tombstone (for a code: the ids of what it issued);
    /// never a secret.
    pub data: String,
    /// When the tombstone may be collected.
    pub expiry: DateTime<Utc>,
}

/// How many objects one garbage-collection run removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcResult {
    /// Expired authorization requests.
    pub auth_requests: u64,
    /// Expired authorization codes.
    pub auth_codes: u64,
    /// Expired device requests.
    pub device_requests: u64,
    /// Expired device tokens.
    pub device_tokens: u64,
    /// Expired tombstones.
    pub tombstones: u64,
}

impl GcResult {
    /// The total number of objects removed.
    pub fn total(&self) -> u64 {
        self.auth_requests + self.auth_codes + self.device_requests + self.device_tokens + self.tombstones
    }
}
