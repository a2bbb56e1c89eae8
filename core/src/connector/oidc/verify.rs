//! Verifying the upstream's ID tokens (OIDC Core §3.1.3.7) with its published keys.
//!
//! - the header's `alg` must be on the allow-list (the algorithms the upstream's discovery
//!   document says it signs ID tokens with, intersected with the asymmetric ones this build
//!   verifies; `RS256` when the document says nothing). `none` and HMAC are never accepted;
//! - the key is found by `kid` in the cached JWKS; an unknown `kid` refetches the JWKS (at most
//!   once per [`MIN_REFETCH`], concurrent refetches share one request), so an upstream key
//!   rotation is picked up without a restart and a flood of forged `kid`s cannot make Oxidex
//!   hammer the upstream;
//! - `iss` must equal the configured issuer, `aud` must contain the client id (and with several
//!   audiences `azp` must be the client id), `exp` must not have passed, `iat`/`nbf` may be at
//!   most [`CLOCK_SKEW`] in the future; the nonce is compared by the caller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::http::{Http, HttpError};

/// How long after a JWKS fetch an unknown `kid` may cause another fetch.
pub(crate) const MIN_REFETCH: Duration = Duration::from_secs(5);
/// The clock skew tolerated on `iat` and `nbf`.
pub(crate) const CLOCK_SKEW: i64 = 300;

/// The signing algorithms this build verifies (asymmetric only).
pub(crate) const SUPPORTED_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why an ID token was refused. Messages never include token contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// The token is not acceptable (the upstream's or the client's mistake).
    #[error("{0}")]
    Invalid(String),
    /// The upstream's keys could not be fetched.
    #[error("{0}")]
    Unavailable(String),
}

fn invalid(message: impl Into<String>) -> TokenError {
    TokenError::Invalid(message.into())
}

struct Cached {
    keys: Vec<(Option<String>, DecodingKey)>,
    fetched: Option<Instant>,
}

/// The upstream's JWKS, fetched on first use and refetched on an unknown `kid`.
pub(crate) struct KeyCache {
    jwks_url: String,
    http: Http,
    cached: Mutex<Cached>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("jwks_url", &self.jwks_url).finish_non_exhaustive()
    }
}

impl KeyCache {
    pub(crate) fn new(jwks_url: String, http: Http) -> Self {
        Self { jwks_url, http, cached: Mutex::new(Cached { keys: Vec::new(), fetched: None }) }
    }

    /// The keys that may have signed a token with `kid`, refetching the set when `kid` is
    /// unknown and the last fetch is old enough.
    async fn candidates(&self, kid: Option<&str>) -> Result<Vec<DecodingKey>, TokenError> {
        let mut cached = self.cached.lock().await;
        let pick = |c: &Cached| -> Vec<DecodingKey> {
            c.keys
                .iter()
                .filter(|(key_kid, _)| match (kid, key_kid) {
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) => false,
                    (None, _) => true,
                })
                .map(|(_, k)| k.clone())
                .collect()
        };
        let found = pick(&cached);
        if !found.is_empty() {
            return Ok(found);
        }
        if cached.fetched.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
            return Ok(found);
        }
        // The lock is held across the fetch: concurrent callers wait for this one fetch.
        let keys = self.fetch().await?;
        cached.keys = keys;
        cached.fetched = Some(Instant::now());
        Ok(pick(&cached))
    }

    async fn fetch(&self) -> Result<Vec<(Option<String>, DecodingKey)>, TokenError> {
        let body = self.http.get_json(&self.jwks_url, None).await.map_err(|e| match e {
            HttpError::Status { status, .. } => {
                TokenError::Unavailable(format!("the upstream's JWKS answered HTTP {status}"))
            }
            other => TokenError::Unavailable(format!("the upstream's JWKS could not be fetched: {other}")),
        })?;
        let Some(keys) = body.get("keys").and_then(Value::as_array) else {
            return Err(TokenError::Unavailable("the upstream's JWKS has no \"keys\" list".into()));
        };
        let mut out = Vec::new();
        for key in keys {
            // Encryption keys and key types this build does not know are skipped.
            if key.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(key.clone()) else { continue };
            let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
            out.push((jwk.common.key_id.clone(), decoding));
        }
        tracing::debug!(url = %self.jwks_url, keys = out.len(), "fetched the upstream's JWKS");
        Ok(out)
    }
}

/// What a verified token must satisfy.
pub(crate) struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub algs: &'a [Algorithm],
    /// Seconds since the epoch.
    pub now: i64,
}

fn numeric(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Verifies `token` and returns its claims.
pub(crate) async fn verify_id_token(
    keys: &Arc<KeyCache>,
    token: &str,
    expect: &Expect<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        invalid("the ID token is not a JWS with a known algorithm (alg none is never accepted)")
    })?;
    if !expect.algs.contains(&header.alg) {
        return Err(invalid(format!("the ID token is signed with {:?}, which is not allowed", header.alg)));
    }
    let candidates = keys.candidates(header.kid.as_deref()).await?;
    if candidates.is_empty() {
        return Err(invalid("the ID token is signed by a key the upstream does not publish"));
    }
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let mut claims = None;
    for key in &candidates {
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, key, &validation) {
            claims = Some(data.claims);
            break;
        }
    }
    let Some(Value::Object(claims)) = claims else {
        return Err(invalid("the ID token's signature does not verify"));
    };

    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(invalid("the ID token was issued by another issuer (\"iss\")"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(invalid("the ID token is not meant for this client (\"aud\")"));
    }
    if audiences.len() > 1
        && claims.get("azp").and_then(Value::as_str).is_some_and(|azp| azp != expect.client_id)
    {
        return Err(invalid("the ID token was issued to another party (\"azp\")"));
    }
    let exp = numeric(claims.get("exp")).ok_or_else(|| invalid("the ID token has no \"exp\""))?;
    if expect.now > exp {
        return Err(invalid("the ID token has expired"));
    }
    for name in ["iat", "nbf"] {
        if numeric(claims.get(name)).is_some_and(|t| t > expect.now + CLOCK_SKEW) {
            return Err(invalid(format!("the ID token's \"{name}\" is in the future")));
        }
    }
    Ok(claims)
}
