//! Oxidex's HTTP gateway. It parses OIDC HTTP requests, calls core over gRPC, and renders the
//! HTTP answer (JSON, redirect, error). It holds no protocol rules and touches no database: when
//! core and gateway run in one process the gRPC calls go through an in-process channel, otherwise
//! over the network, and the gateway cannot tell the difference.
//!
//! Architecture invariant: this crate depends on `oxidex-proto` (wire types), never on
//! `oxidex-core`.

mod assets;
mod cookies;
mod core_channel;
mod cors;
mod error;
mod flow;
mod form;
mod grpc_web;
mod metrics;
mod oidc;
mod pages;
mod remote_ip;
mod telemetry;
mod token;

pub use assets::FrontendSettings;
pub use core_channel::CoreChannel;
pub use metrics::Metrics;
pub use remote_ip::RemoteIpPolicy;

use std::collections::BTreeMap;

/// What the gateway needs to know from the configuration.
#[derive(Debug, Clone, Default)]
pub struct GatewaySettings {
    /// The issuer URL. The login UI's gRPC-web endpoint accepts only requests whose `Origin`
    /// (when they name one) is the issuer's.
    pub issuer: String,
    /// The issuer URL's path without a trailing slash (`""` for a root issuer); every route is
    /// mounted under it.
    pub issuer_path: String,
    /// `web.headers`: extra headers on every response.
    pub headers: BTreeMap<String, String>,
    /// `web.allowedOrigins`: origins allowed by CORS on the public JSON endpoints.
    pub allowed_origins: Vec<String>,
    /// `web.allowedHeaders`: request headers allowed by CORS.
    pub allowed_headers: Vec<String>,
    /// Whether the browser binding cookie carries `Secure`: true when the issuer is https.
    pub secure_cookies: bool,
    /// The login pages' theme and language settings (`frontend:`).
    pub frontend: FrontendSettings,
    /// `web.clientRemoteIP`: how to find the client's address behind trusted proxies (for
    /// throttling per address).
    pub remote_ip: RemoteIpPolicy,
}

/// The public web listener's routes: discovery, JWKS, the browser flow (HTML forms, and
/// `oxidex.v1.Flow` over gRPC-web for the login UI) and the token endpoints.
pub fn web_router(core: CoreChannel, settings: &GatewaySettings, metrics: Metrics) -> axum::Router {
    oidc::router(core, settings, metrics)
        .layer(axum::Extension(std::sync::Arc::new(settings.remote_ip.clone())))
}

/// The telemetry listener's routes: `/healthz/live`, `/healthz/ready`, `/healthz`, `/metrics`.
pub fn telemetry_router(core: CoreChannel, metrics: Metrics) -> axum::Router {
    telemetry::router(core, metrics)
}
