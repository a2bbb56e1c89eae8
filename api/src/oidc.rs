//! The OpenID Connect routes under the issuer path: discovery and JWKS here, the browser flow in
//! [`crate::flow`] (and for the login UI over gRPC-web in [`crate::grpc_web`]), the token
//! endpoints in [`crate::token`].

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};
use oxidex_proto::oxidex::v1 as pb;
use pb::discovery_client::DiscoveryClient;
use serde_json::{Value, json};

use crate::assets::{self, Assets};
use crate::error::GatewayError;
use crate::{CoreChannel, GatewaySettings, Metrics, cors, flow, grpc_web, token};

#[derive(Clone)]
struct AppState {
    core: CoreChannel,
}

pub(crate) fn router(core: CoreChannel, settings: &GatewaySettings, metrics: Metrics) -> axum::Router {
    let public_json = cors::apply(
        axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/keys", get(keys)),
        settings,
    );
    let assets = Assets::new(&settings.frontend);
    let static_files =
        axum::Router::new().route("/static/{name}", get(assets::serve)).with_state(assets.clone());
    let routes = axum::Router::new()
        .merge(public_json)
        .with_state(AppState { core: core.clone() })
        .merge(static_files)
        .merge(flow::router(core.clone(), settings, assets))
        .merge(grpc_web::router(core.clone(), settings))
        .merge(token::router(core, settings));
    let mounted = if settings.issuer_path.is_empty() {
        routes
    } else {
        axum::Router::new().nest(&settings.issuer_path, routes)
    };
    let extra: Vec<(http::HeaderName, HeaderValue)> = settings
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((http::HeaderName::try_from(k.as_str()).ok()?, HeaderValue::try_from(v).ok()?))
        })
        .collect();
    let with_headers = mounted.layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| {
        let extra = extra.clone();
        async move {
            let mut response = next.run(req).await;
            for (k, v) in extra {
                response.headers_mut().insert(k, v);
            }
            response
        }
    }));
    metrics.apply(with_headers)
}

async fn discovery(State(state): State<AppState>) -> Result<Response, GatewayError> {
    let d = DiscoveryClient::new(state.core).get_discovery(pb::GetDiscoveryRequest {}).await?.into_inner();
    let mut body = json!({
        "issuer": d.issuer,
        "authorization_endpoint": d.authorization_endpoint,
        "token_endpoint": d.token_endpoint,
        "jwks_uri": d.jwks_uri,
        "userinfo_endpoint": d.userinfo_endpoint,
        "device_authorization_endpoint": d.device_authorization_endpoint,
        "introspection_endpoint": d.introspection_endpoint,
        "revocation_endpoint": d.revocation_endpoint,
        "grant_types_supported": d.grant_types_supported,
        "response_types_supported": d.response_types_supported,
        "subject_types_supported": d.subject_types_supported,
        "id_token_signing_alg_values_supported": d.id_token_signing_alg_values_supported,
        "code_challenge_methods_supported": d.code_challenge_methods_supported,
        "scopes_supported": d.scopes_supported,
        "token_endpoint_auth_methods_supported": d.token_endpoint_auth_methods_supported,
        "claims_supported": d.claims_supported,
        "authorization_response_iss_parameter_supported": d.authorization_response_iss_parameter_supported,
    });
    // Core leaves it empty when the device grant is not enabled: then it is not advertised.
    if d.device_authorization_endpoint.is_empty()
        && let Some(m) = body.as_object_mut()
    {
        m.remove("device_authorization_endpoint");
    }
    Ok(Json(body).into_response())
}

fn jwk_json(k: &pb::Jwk) -> Value {
    let mut m = serde_json::Map::new();
    for (name, value) in [
        ("kty", &k.kty),
        ("kid", &k.kid),
        ("alg", &k.alg),
        ("use", &k.r#use),
        ("n", &k.n),
        ("e", &k.e),
        ("crv", &k.crv),
        ("x", &k.x),
        ("y", &k.y),
    ] {
        if !value.is_empty() {
            m.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
    Value::Object(m)
}

async fn keys(State(state): State<AppState>) -> Result<Response, GatewayError> {
    let jwks = DiscoveryClient::new(state.core).get_jwks(pb::GetJwksRequest {}).await?.into_inner();
    let keys: Vec<Value> = jwks.keys.iter().map(jwk_json).collect();
    let mut response = Json(json!({ "keys": keys })).into_response();
    let cache = format!("max-age={}, must-revalidate", jwks.max_age_seconds.max(0));
    if let Ok(v) = HeaderValue::try_from(cache) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    Ok(response)
}
