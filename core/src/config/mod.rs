//! Configuration: one YAML file with Dex's keys and meanings.
//!
//! Two layers, as in ripgrep and Dex: the file is parsed into a raw, permissive layer (every key
//! optional, unknown keys collected), then validated into the typed [`Config`] below. Validation
//! never stops at the first mistake: it collects every [`Problem`] with its key path and what to
//! do, so `oxidex check-config` can list them all.
//!
//! Entry points: [`load_file`] and [`parse_str`] return a [`Loaded`] config with its warnings,
//! or [`ConfigErrors`] listing every problem. What a Dex user can rely on:
//!
//! - keys match case-insensitively, as with Go's `encoding/json` (`redirecturis` is
//!   `redirectURIs`); a number or boolean is accepted where a string is expected;
//! - `$VAR` / `${VAR}` are expanded (Go's `os.ExpandEnv` rules) only in the string values of
//!   `storage.config`, `connectors[].config` and `signer.config`, unless `DEX_EXPAND_ENV=false`;
//! - `idEnv`, `secretEnv` and `hashFromEnv` read the named variable;
//! - unknown keys are warnings naming their path (with the nearest known key), errors with
//!   [`LoadOptions::strict`], a top-level `strictConfig: true` or
//!   `DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=true`; keys inside `connectors[].config` belong to the
//!   connector and are not checked here;
//! - durations are Go duration strings ([`duration::parse`]).
//!
//! Problem messages never contain secrets, passwords or hashes.
//!
//! Code map: `raw` walks the YAML tree (key matching, scalar conversion, unknown keys);
//! `validate` builds [`Config`] section by section, with `storage` and `identity` (static
//! clients, connectors, passwords) in their own files; `load` holds the entry points.

use std::collections::BTreeMap;
use std::time::Duration;

pub mod duration;
pub mod expand;
mod identity;
mod load;
mod raw;
mod storage;
mod validate;
pub use validate::{FRONTEND_COLOR_KEYS, FRONTEND_LOCALES};

pub use load::{LoadOptions, Loaded, Overrides, load_file, parse_str};

use crate::storage::{Client, Connector, Password, SigningAlg, StorageConfig};

/// The validated configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The issuer URL, exactly as configured (no trailing-slash normalisation).
    pub issuer: String,
    /// The path of the issuer URL without a trailing slash (`""` for a root issuer); every HTTP
    /// route is mounted under it.
    pub issuer_path: String,
    /// Storage backend.
    pub storage: StorageConfig,
    /// Public HTTP listener.
    pub web: WebConfig,
    /// gRPC admin listener.
    pub grpc: GrpcConfig,
    /// Telemetry listener (health, metrics).
    pub telemetry: TelemetryConfig,
    /// Lifetimes.
    pub expiry: ExpiryConfig,
    /// Logging.
    pub logger: LoggerConfig,
    /// OAuth2 behaviour.
    pub oauth2: OAuth2Config,
    /// Login UI settings.
    pub frontend: FrontendConfig,
    /// Clients from the config file (a read-only overlay over storage).
    pub static_clients: Vec<Client>,
    /// Connectors from the config file (a read-only overlay over storage).
    pub connectors: Vec<Connector>,
    /// Whether the local password database (connector `local`) is enabled.
    pub enable_password_db: bool,
    /// Passwords from the config file (a read-only overlay over storage).
    pub static_passwords: Vec<Password>,
    /// Token signing.
    pub signer: SignerConfig,
}

/// `web`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WebConfig {
    /// `web.http`: plain HTTP listen address.
    pub http: Option<String>,
    /// `web.https`: HTTPS listen address.
    pub https: Option<String>,
    /// `web.tlsCert`.
    pub tls_cert: Option<String>,
    /// `web.tlsKey`.
    pub tls_key: Option<String>,
    /// `web.tlsMinVersion` (`1.2` default, or `1.3`).
    pub tls_min_version: Option<String>,
    /// `web.tlsMaxVersion`.
    pub tls_max_version: Option<String>,
    /// `web.headers`: extra response headers.
    pub headers: BTreeMap<String, String>,
    /// `web.allowedOrigins`: CORS origins (`*` allowed).
    pub allowed_origins: Vec<String>,
    /// `web.allowedHeaders`: CORS request headers, default `Authorization`.
    pub allowed_headers: Vec<String>,
    /// `web.clientRemoteIP.header`.
    pub client_remote_ip_header: Option<String>,
    /// `web.clientRemoteIP.trustedProxies` (CIDRs).
    pub trusted_proxies: Vec<String>,
}

/// `grpc`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GrpcConfig {
    /// `grpc.addr`; the admin API is off when absent.
    pub addr: Option<String>,
    /// `grpc.tlsCert`.
    pub tls_cert: Option<String>,
    /// `grpc.tlsKey`.
    pub tls_key: Option<String>,
    /// `grpc.tlsClientCA`: require client certificates signed by this CA (mTLS).
    pub tls_client_ca: Option<String>,
    /// `grpc.tlsMinVersion`.
    pub tls_min_version: Option<String>,
    /// `grpc.tlsMaxVersion`.
    pub tls_max_version: Option<String>,
    /// `grpc.reflection`: serve gRPC server reflection.
    pub reflection: bool,
    /// `grpc.allowUnauthenticated` (Oxidex): serve the admin API on a non-loopback address
    /// without mTLS. Off by default: the server refuses to start instead.
    pub allow_unauthenticated: bool,
}

/// `telemetry`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// `telemetry.http`: listen address of `/metrics` and `/healthz/*`.
    pub http: Option<String>,
    /// `telemetry.enableProfiling` (accepted for compatibility; no profiler is served).
    pub enable_profiling: bool,
}

/// `expiry`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExpiryConfig {
    /// `expiry.idTokens` (default 24h): ID and access token lifetime, and how long retired
    /// signing keys stay published.
    pub id_tokens: Duration,
    /// `expiry.authRequests` (default 24h).
    pub auth_requests: Duration,
    /// `expiry.deviceRequests` (default 5m).
    pub device_requests: Duration,
    /// `expiry.refreshTokens`.
    pub refresh_tokens: RefreshTokenPolicy,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self {
            id_tokens: Duration::from_secs(24 * 3600),
            auth_requests: Duration::from_secs(24 * 3600),
            device_requests: Duration::from_secs(5 * 60),
            refresh_tokens: RefreshTokenPolicy::default(),
        }
    }
}

/// `expiry.refreshTokens`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RefreshTokenPolicy {
    /// `disableRotation`.
    pub disable_rotation: bool,
    /// `reuseInterval`: how long the previous secret is still accepted.
    pub reuse_interval: Duration,
    /// `absoluteLifetime`; `None` means unlimited.
    pub absolute_lifetime: Option<Duration>,
    /// `validIfNotUsedFor`; `None` means unlimited.
    pub valid_if_not_used_for: Option<Duration>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `logger`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoggerConfig {
    /// `logger.level`: `debug`, `info` (default), `warn`, `error`.
    pub level: String,
    /// `logger.format`.
    pub format: LogFormat,
    /// `logger.excludeFields`: attribute keys never logged.
    pub exclude_fields: Vec<String>,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text, exclude_fields: Vec::new() }
    }
}

/// `oauth2`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OAuth2Config {
    /// `oauth2.grantTypes`: the resolved set of enabled grant types (sorted).
    pub grant_types: Vec<String>,
    /// `oauth2.responseTypes` (default `["code"]`).
    pub response_types: Vec<String>,
    /// `oauth2.skipApprovalScreen`.
    pub skip_approval_screen: bool,
    /// `oauth2.alwaysShowLoginScreen`.
    pub always_show_login_screen: bool,
    /// `oauth2.passwordConnector`: enables the password grant through this connector.
    pub password_connector: Option<String>,
    /// `oauth2.pkce.enforce`: every authorization request must carry a challenge.
    pub pkce_enforce: bool,
    /// `oauth2.pkce.codeChallengeMethodsSupported` (default `["S256"]`; `plain` only if listed).
    pub code_challenge_methods: Vec<String>,
}

/// `frontend`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FrontendConfig {
    /// `frontend.dir`.
    pub dir: Option<String>,
    /// `frontend.theme`: `light` (default), `dark` or `auto`.
    pub theme: String,
    /// `frontend.issuer`: display name.
    pub issuer: String,
    /// `frontend.logoURL`.
    pub logo_url: Option<String>,
    /// `frontend.extra`.
    pub extra: BTreeMap<String, String>,
    /// `frontend.defaultLocale` (`en` by default): the login pages' language when neither
    /// `ui_locales` nor `Accept-Language` names one with a catalog.
    pub default_locale: String,
    /// `frontend.colors`: brand colours (hex) by key, see `validate::FRONTEND_COLOR_KEYS`.
    pub colors: BTreeMap<String, String>,
    /// `frontend.customCSS`: a stylesheet file appended to the theme.
    pub custom_css: Option<String>,
    /// `frontend.favicon`: an .ico, .png or .svg file.
    pub favicon: Option<String>,
}

/// `signer` (and the deprecated `expiry.signingKeys`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignerConfig {
    /// `signer.config.algorithm`: `RS256` (default) or `ES256`.
    pub algorithm: SigningAlg,
    /// `signer.config.keysRotationPeriod` (default 6h).
    pub rotation_period: Duration,
}

impl Default for SignerConfig {
    fn default() -> Self {
        Self { algorithm: SigningAlg::RS256, rotation_period: Duration::from_secs(6 * 3600) }
    }
}

/// One finding of the validation, tied to a key path such as `staticClients[1].redirectURIs[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path in the file (`""` for the file as a whole).
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every error found in a config file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in the configuration", .0.len())]
pub struct ConfigErrors(pub Vec<Problem>);
