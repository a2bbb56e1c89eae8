//! `oxidex.v1.Discovery`: the provider metadata and the public key set, for the gateway's
//! `/.well-known/openid-configuration` and `/keys`.

use std::sync::Arc;

use oxidex_proto::oxidex::v1 as pb;
use tonic::{Request, Response, Status};

use crate::discovery::ProviderMetadata;
use crate::token::rotation::KeyManager;

/// Serves discovery from the config and the JWKS from the key manager's cache.
#[derive(Debug, Clone)]
pub struct DiscoveryService {
    metadata: Arc<ProviderMetadata>,
    keys: Arc<KeyManager>,
}

impl DiscoveryService {
    /// A service over computed metadata and a running key manager.
    pub fn new(metadata: Arc<ProviderMetadata>, keys: Arc<KeyManager>) -> Self {
        Self { metadata, keys }
    }
}

fn jwk(value: &serde_json::Value) -> pb::Jwk {
    let s = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    pb::Jwk {
        kty: s("kty"),
        kid: s("kid"),
        alg: s("alg"),
        r#use: s("use"),
        n: s("n"),
        e: s("e"),
        crv: s("crv"),
        x: s("x"),
        y: s("y"),
    }
}

impl From<&ProviderMetadata> for pb::GetDiscoveryResponse {
    fn from(m: &ProviderMetadata) -> Self {
        Self {
            issuer: m.issuer.clone(),
            authorization_endpoint: m.authorization_endpoint.clone(),
            token_endpoint: m.token_endpoint.clone(),
            jwks_uri: m.jwks_uri.clone(),
            userinfo_endpoint: m.userinfo_endpoint.clone(),
            device_authorization_endpoint: m.device_authorization_endpoint.clone(),
            introspection_endpoint: m.introspection_endpoint.clone(),
            revocation_endpoint: m.revocation_endpoint.clone(),
            grant_types_supported: m.grant_types_supported.clone(),
            response_types_supported: m.response_types_supported.clone(),
            subject_types_supported: m.subject_types_supported.clone(),
            id_token_signing_alg_values_supported: m.id_token_signing_alg_values_supported.clone(),
            code_challenge_methods_supported: m.code_challenge_methods_supported.clone(),
            scopes_supported: m.scopes_supported.clone(),
            token_endpoint_auth_methods_supported: m.token_endpoint_auth_methods_supported.clone(),
            claims_supported: m.claims_supported.clone(),
            authorization_response_iss_parameter_supported: m.authorization_response_iss_parameter_supported,
        }
    }
}

#[tonic::async_trait]
impl pb::discovery_server::Discovery for DiscoveryService {
    async fn get_discovery(
        &self,
        _request: Request<pb::GetDiscoveryRequest>,
    ) -> Result<Response<pb::GetDiscoveryResponse>, Status> {
        Ok(Response::new(self.metadata.as_ref().into()))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let snapshot = self.keys.snapshot().map_err(|e| {
            tracing::warn!(error = %e, "JWKS requested before signing keys were loaded");
            Status::unavailable("signing keys are not loaded yet; retry shortly")
        })?;
        let max_age = self.keys.settings().jwks_max_age().as_secs();
        Ok(Response::new(pb::GetJwksResponse {
            keys: snapshot.jwks.iter().map(jwk).collect(),
            max_age_seconds: i64::try_from(max_age).unwrap_or(i64::MAX),
        }))
    }
}
