//! The relying parties' JSON endpoints: `/token`, `/device/code`, `/token/introspect`,
//! `/token/revoke` and `/userinfo`, each one `oxidex.v1.Token` call.
//!
//! The gateway only parses: the form (strictly: a malformed body, a repeated parameter or a wrong
//! content type is `invalid_request`), the client's credentials (RFC 6749 §2.3.1: a Basic header
//! whose parts are form-url-decoded, or `client_id`/`client_secret` in the body, never both) and
//! the bearer token (RFC 6750: header or form body, never the query string). Core decides the
//! rest. Every answer carries `Cache-Control: no-store` and `Pragma: no-cache`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use oxidex_proto::oxidex::v1 as pb;
use pb::token_client::TokenClient;
use serde_json::{Map, Value};

use crate::cookies::ClientIp;
use crate::error::GatewayError;
use crate::form::{self, Malformed};
use crate::{CoreChannel, GatewaySettings, cors};

/// The largest request body the token endpoints read.
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct TokenState {
    core: CoreChannel,
}

impl TokenState {
    fn client(&self) -> TokenClient<CoreChannel> {
        TokenClient::new(self.core.clone())
    }
}

/// The token routes, relative to the issuer path, with CORS as configured.
pub(crate) fn router(core: CoreChannel, settings: &GatewaySettings) -> axum::Router {
    let routes = axum::Router::new()
        .route("/token", post(token).fallback(post_only))
        .route("/device/code", post(device_code).fallback(post_only))
        .route("/token/introspect", post(introspect).fallback(post_only))
        .route("/token/revoke", post(revoke).fallback(post_only))
        .route("/userinfo", get(userinfo_get).post(userinfo_post))
        .with_state(TokenState { core })
        // No token request needs more than a few kilobytes.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| async move {
                let mut response = next.run(req).await;
                if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    // The body limit's own answer is plain text; relying parties expect OAuth JSON.
                    response = error_response(
                        &oauth_error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "invalid_request",
                            "The request body is too large.",
                        ),
                        StatusCode::PAYLOAD_TOO_LARGE,
                    );
                }
                let h = response.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
                response
            },
        ));
    cors::apply(routes, settings)
}

/// An OAuth error built by the gateway itself.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> pb::OAuthError {
    pb::OAuthError {
        error: error.to_owned(),
        description: description.to_owned(),
        http_status: i32::from(status.as_u16()),
        ..Default::default()
    }
}

fn invalid_request(description: &str) -> pb::OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Renders core's `OAuthError` (RFC 6749 §5.2): its status (else `default`), JSON body,
/// `WWW-Authenticate` and `Retry-After` when set.
fn error_response(e: &pb::OAuthError, default: StatusCode) -> Response {
    let status = u16::try_from(e.http_status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(default);
    let mut body = Map::new();
    let error = if e.error.is_empty() { "server_error" } else { e.error.as_str() };
    body.insert("error".to_owned(), Value::String(error.to_owned()));
    if !e.description.is_empty() {
        body.insert("error_description".to_owned(), Value::String(e.description.clone()));
    }
    let mut response = (status, Json(Value::Object(body))).into_response();
    let h = response.headers_mut();
    if !e.www_authenticate.is_empty()
        && let Ok(v) = HeaderValue::try_from(e.www_authenticate.as_str())
    {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    if e.retry_after_seconds > 0
        && let Ok(v) = HeaderValue::try_from(e.retry_after_seconds.to_string())
    {
        h.insert(header::RETRY_AFTER, v);
    }
    response
}

/// A JSON body passed through from core.
fn raw_json(body: String) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], Body::from(body)).into_response()
}

/// Dex answers any method but POST on its token endpoints with 400 invalid_request.
async fn post_only() -> Response {
    error_response(&invalid_request("the request must be a POST"), StatusCode::BAD_REQUEST)
}

/// The form parameters of a POST: parameters without a value count as absent (RFC 6749 §3.1),
/// a repeated parameter is malformed (RFC 6749 §3.2).
fn parse_params(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, pb::OAuthError> {
    let mut pairs = form::parse_body(headers, body).map_err(|Malformed(m)| invalid_request(m))?;
    pairs.retain(|(_, v)| !v.is_empty());
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(other, _)| other == k) {
            return Err(invalid_request(&format!("the parameter {k:?} is repeated")));
        }
    }
    Ok(pairs)
}

fn take(pairs: &mut Vec<(String, String)>, name: &str) -> String {
    match pairs.iter().position(|(k, _)| k == name) {
        Some(i) => pairs.remove(i).1,
        None => String::new(),
    }
}

const BASIC_CHALLENGE: &str = "Basic realm=\"oxidex\"";

/// Client credentials the Basic header carries, or `None` without a Basic header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, pb::OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Some((scheme, rest)) = value.to_str().ok().and_then(|v| v.trim().split_once(' ')) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || pb::OAuthError {
        error: "invalid_client".to_owned(),
        description: "malformed Basic credentials".to_owned(),
        http_status: 401,
        www_authenticate: BASIC_CHALLENGE.to_owned(),
        retry_after_seconds: 0,
    };
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let id = form::decode_component(id).map_err(|_| bad())?;
    let secret = form::decode_component(secret).map_err(|_| bad())?;
    Ok(Some((id, secret)))
}

/// How the client authenticated, taking `client_id` and `client_secret` out of `pairs`.
fn client_auth(
    headers: &HeaderMap,
    pairs: &mut Vec<(String, String)>,
) -> Result<pb::ClientAuth, pb::OAuthError> {
    let form_id = take(pairs, "client_id");
    let form_secret = take(pairs, "client_secret");
    match basic_credentials(headers)? {
        Some((client_id, client_secret)) => {
            if !form_secret.is_empty() {
                return Err(invalid_request("the client must use only one authentication method"));
            }
            if !form_id.is_empty() && form_id != client_id {
                return Err(invalid_request("client_id does not match the Basic credentials"));
            }
            Ok(pb::ClientAuth { client_id, client_secret, method: "client_secret_basic".to_owned() })
        }
        None if !form_secret.is_empty() => Ok(pb::ClientAuth {
            client_id: form_id,
            client_secret: form_secret,
            method: "client_secret_post".to_owned(),
        }),
        None => {
            Ok(pb::ClientAuth { client_id: form_id, client_secret: String::new(), method: "none".to_owned() })
        }
    }
}

/// The parameters and client authentication of a POST to a client-authenticated endpoint.
fn client_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Vec<(String, String)>, pb::ClientAuth), pb::OAuthError> {
    let mut pairs = parse_params(headers, body)?;
    let client = client_auth(headers, &mut pairs)?;
    Ok((pairs, client))
}

fn insert_str(m: &mut Map<String, Value>, name: &str, value: String) {
    if !value.is_empty() {
        m.insert(name.to_owned(), Value::String(value));
    }
}

fn insert_int(m: &mut Map<String, Value>, name: &str, value: i64) {
    if value != 0 {
        m.insert(name.to_owned(), Value::from(value));
    }
}

#[tracing::instrument(skip_all, fields(grant_type, client_id))]
async fn token(
    State(state): State<TokenState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let (pairs, client) = match client_request(&headers, &body) {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&e, StatusCode::BAD_REQUEST)),
    };
    let grant_type = form::first(&pairs, "grant_type").to_owned();
    tracing::Span::current().record("grant_type", grant_type.as_str());
    tracing::Span::current().record("client_id", client.client_id.as_str());
    let req =
        pb::TokenRequest { grant_type, params: pairs.into_iter().collect(), client: Some(client), client_ip };
    let result = state.client().token(req).await?.into_inner();
    Ok(match result.result {
        Some(pb::token_result::Result::Token(t)) => {
            let mut m = Map::new();
            insert_str(&mut m, "access_token", t.access_token);
            insert_str(&mut m, "token_type", t.token_type);
            insert_int(&mut m, "expires_in", t.expires_in);
            insert_str(&mut m, "refresh_token", t.refresh_token);
            insert_str(&mut m, "id_token", t.id_token);
            insert_str(&mut m, "issued_token_type", t.issued_token_type);
            insert_str(&mut m, "scope", t.scope);
            Json(Value::Object(m)).into_response()
        }
        Some(pb::token_result::Result::Error(e)) => error_response(&e, StatusCode::BAD_REQUEST),
        None => no_result(),
    })
}

fn no_result() -> Response {
    tracing::error!("core answered without a result");
    error_response(
        &oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", ""),
        StatusCode::BAD_REQUEST,
    )
}

#[tracing::instrument(skip_all, fields(client_id))]
async fn device_code(
    State(state): State<TokenState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let (pairs, client) = match client_request(&headers, &body) {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&e, StatusCode::BAD_REQUEST)),
    };
    tracing::Span::current().record("client_id", client.client_id.as_str());
    let req = pb::DeviceAuthorizationRequest {
        client: Some(client),
        scope: form::first(&pairs, "scope").to_owned(),
        code_challenge: form::first(&pairs, "code_challenge").to_owned(),
        code_challenge_method: form::first(&pairs, "code_challenge_method").to_owned(),
    };
    let result = state.client().device_authorization(req).await?.into_inner();
    Ok(match result.result {
        Some(pb::device_authorization_result::Result::Response(d)) => {
            let mut m = Map::new();
            insert_str(&mut m, "device_code", d.device_code);
            insert_str(&mut m, "user_code", d.user_code);
            insert_str(&mut m, "verification_uri", d.verification_uri);
            insert_str(&mut m, "verification_uri_complete", d.verification_uri_complete);
            insert_int(&mut m, "expires_in", d.expires_in);
            insert_int(&mut m, "interval", d.interval);
            Json(Value::Object(m)).into_response()
        }
        Some(pb::device_authorization_result::Result::Error(e)) => {
            error_response(&e, StatusCode::BAD_REQUEST)
        }
        None => no_result(),
    })
}

#[tracing::instrument(skip_all, fields(client_id))]
async fn introspect(
    State(state): State<TokenState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let (pairs, client) = match client_request(&headers, &body) {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&e, StatusCode::BAD_REQUEST)),
    };
    tracing::Span::current().record("client_id", client.client_id.as_str());
    let req = pb::IntrospectRequest {
        token: form::first(&pairs, "token").to_owned(),
        token_type_hint: form::first(&pairs, "token_type_hint").to_owned(),
        client: Some(client),
    };
    let result = state.client().introspect(req).await?.into_inner();
    Ok(match result.result {
        Some(pb::introspect_result::Result::ResponseJson(json)) => raw_json(json),
        Some(pb::introspect_result::Result::Error(e)) => error_response(&e, StatusCode::BAD_REQUEST),
        None => no_result(),
    })
}

#[tracing::instrument(skip_all, fields(client_id))]
async fn revoke(
    State(state): State<TokenState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let (pairs, client) = match client_request(&headers, &body) {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&e, StatusCode::BAD_REQUEST)),
    };
    tracing::Span::current().record("client_id", client.client_id.as_str());
    let req = pb::RevokeRequest {
        token: form::first(&pairs, "token").to_owned(),
        token_type_hint: form::first(&pairs, "token_type_hint").to_owned(),
        client: Some(client),
    };
    let result = state.client().revoke(req).await?.into_inner();
    Ok(match result.error {
        Some(e) => error_response(&e, StatusCode::BAD_REQUEST),
        None => StatusCode::OK.into_response(),
    })
}

/// The bearer token of the `Authorization` header, if it has one.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// 401 for a request without a token (RFC 6750 §3.1: no error code).
fn no_token() -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))])
        .into_response()
}

async fn userinfo(state: TokenState, access_token: String) -> Result<Response, GatewayError> {
    let result = state.client().userinfo(pb::UserinfoRequest { access_token }).await?.into_inner();
    Ok(match result.result {
        Some(pb::userinfo_result::Result::ClaimsJson(json)) => raw_json(json),
        Some(pb::userinfo_result::Result::Error(mut e)) => {
            if e.www_authenticate.is_empty() {
                let code =
                    if !e.error.is_empty() && e.error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                        e.error.as_str()
                    } else {
                        "invalid_token"
                    };
                e.www_authenticate = format!("Bearer error=\"{code}\"");
            }
            error_response(&e, StatusCode::UNAUTHORIZED)
        }
        None => no_result(),
    })
}

/// `GET /userinfo`: the token only from the header; `?access_token=` is ignored (RFC 9700 §2.2.2
/// forbids tokens in URLs).
#[tracing::instrument(skip_all)]
async fn userinfo_get(State(state): State<TokenState>, headers: HeaderMap) -> Result<Response, GatewayError> {
    match bearer(&headers) {
        Some(token) => userinfo(state, token).await,
        None => Ok(no_token()),
    }
}

/// `POST /userinfo`: the token from the header or a form body's `access_token` (RFC 6750 §2.2),
/// not both.
#[tracing::instrument(skip_all)]
async fn userinfo_post(
    State(state): State<TokenState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let from_body = if form::is_form(&headers) {
        match parse_params(&headers, &body) {
            Ok(pairs) => Some(form::first(&pairs, "access_token").to_owned()).filter(|t| !t.is_empty()),
            Err(e) => return Ok(error_response(&e, StatusCode::BAD_REQUEST)),
        }
    } else {
        None
    };
    match (bearer(&headers), from_body) {
        (Some(_), Some(_)) => Ok(error_response(
            &invalid_request("the request must carry the access token only once"),
            StatusCode::BAD_REQUEST,
        )),
        (Some(token), None) | (None, Some(token)) => userinfo(state, token).await,
        (None, None) => Ok(no_token()),
    }
}
