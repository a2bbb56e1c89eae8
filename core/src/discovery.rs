//! The OpenID Provider metadata (OpenID Connect Discovery 1.0), computed once from the config.

use serde::Serialize;

use crate::config::Config;

/// The discovery document. Field names are the JSON member names of the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderMetadata {
    /// `issuer`.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `userinfo_endpoint`.
    pub userinfo_endpoint: String,
    /// `device_authorization_endpoint`; empty when the device grant is not enabled.
    pub device_authorization_endpoint: String,
    /// `introspection_endpoint`.
    pub introspection_endpoint: String,
    /// `revocation_endpoint` (RFC 7009; Dex has none).
    pub revocation_endpoint: String,
    /// `grant_types_supported`.
    pub grant_types_supported: Vec<String>,
    /// `response_types_supported`.
    pub response_types_supported: Vec<String>,
    /// `subject_types_supported`.
    pub subject_types_supported: Vec<String>,
    /// `id_token_signing_alg_values_supported`.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `code_challenge_methods_supported`.
    pub code_challenge_methods_supported: Vec<String>,
    /// `scopes_supported`.
    pub scopes_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `claims_supported`.
    pub claims_supported: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The device authorization grant (RFC 8628).
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl ProviderMetadata {
    /// The metadata for a validated config, as Dex computes it (plus the revocation endpoint and
    /// RFC 9207's `iss` flag).
    pub fn from_config(config: &Config) -> Self {
        let base = config.issuer.trim_end_matches('/');
        let url = |path: &str| format!("{base}{path}");
        let mut response_types = config.oauth2.response_types.clone();
        response_types.sort();
        Self {
            issuer: config.issuer.clone(),
            authorization_endpoint: url("/auth"),
            token_endpoint: url("/token"),
            jwks_uri: url("/keys"),
            userinfo_endpoint: url("/userinfo"),
            // Only when the device grant is enabled: an RP must not be sent to an endpoint
            // that refuses every request (Dex lists it always).
            device_authorization_endpoint: if config.oauth2.grant_types.iter().any(|g| g == DEVICE_GRANT) {
                url("/device/code")
            } else {
                String::new()
            },
            introspection_endpoint: url("/token/introspect"),
            revocation_endpoint: url("/token/revoke"),
            grant_types_supported: config.oauth2.grant_types.clone(),
            response_types_supported: response_types,
            subject_types_supported: strings(&["public"]),
            id_token_signing_alg_values_supported: vec![config.signer.algorithm.as_str().to_owned()],
            code_challenge_methods_supported: config.oauth2.code_challenge_methods.clone(),
            scopes_supported: strings(&["openid", "email", "groups", "profile", "offline_access"]),
            token_endpoint_auth_methods_supported: strings(&["client_secret_basic", "client_secret_post"]),
            claims_supported: strings(&[
                "iss",
                "sub",
                "aud",
                "iat",
                "exp",
                "email",
                "email_verified",
                "locale",
                "name",
                "preferred_username",
                "at_hash",
                "groups",
                "federated_claims",
            ]),
            authorization_response_iss_parameter_supported: true,
        }
    }
}
