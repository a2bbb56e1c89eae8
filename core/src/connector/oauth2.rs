//! What the OAuth2-based connectors (`github`, `gitlab`, `google`, `microsoft`, `oauth`) share:
//! one HTTP client per connector (custom root CAs, timeouts), the authorization URL, the code
//! exchange and the refresh at the token endpoint (`client_secret_basic` or `_post`, or Go's
//! auto-detection: basic first, then post), the callback's `code`/`error` parameters, the
//! per-login state kept between `login_url` and `handle_callback`, bounded reads of upstream
//! answers, and the mapping of upstream failures to [`ConnectorError`]s:
//!
//! | upstream answer                                   | error                             |
//! |---------------------------------------------------|-----------------------------------|
//! | `error` parameter on the callback, missing `code`  | [`ConnectorError::InvalidCallback`] |
//! | code rejected at the token endpoint (4xx, `error`) | [`ConnectorError::InvalidCallback`] |
//! | refresh token rejected (4xx, `error`)              | [`ConnectorError::Refused`]        |
//! | API call answered 401 (token revoked)              | [`ConnectorError::Refused`]        |
//! | 5xx, timeout, connection failure, malformed answer | [`ConnectorError::Upstream`]       |
//!
//! Every request has a timeout ([`REQUEST_TIMEOUT`], [`CONNECT_TIMEOUT`]). Tokens, codes and
//! secrets are never logged and never shown by `Debug`.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CallbackParams, ConnectorError};

/// The longest an upstream request may take, connection included (Dex's HTTP clients use 30 s).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest establishing a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest upstream answer read (token responses, user records, group pages).
const MAX_BODY: usize = 4 << 20;
/// The most pages followed for one paginated listing.
pub(crate) const MAX_PAGES: usize = 1000;

/// A secret from a connector config: read from a JSON string, never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<redacted>" })
    }
}

/// Shorthand for a config error naming the key.
pub(crate) fn invalid(id: &str, key: &str, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidConfig { id: id.to_owned(), key: Some(key.to_owned()), reason: reason.into() }
}

/// Checks that a required string setting is present.
pub(crate) fn require(id: &str, key: &str, value: &str) -> Result<(), ConnectorError> {
    if value.trim().is_empty() {
        return Err(invalid(id, key, "required; it is empty or missing"));
    }
    Ok(())
}

/// Checks that a setting is an absolute http(s) URL (and returns it without a trailing slash).
pub(crate) fn require_url(id: &str, key: &str, value: &str) -> Result<String, ConnectorError> {
    require(id, key, value)?;
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(invalid(id, key, "must be an absolute http or https URL")),
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone)]
pub(crate) enum RootCa {
    /// A PEM file (Dex's `rootCA`, `rootCAs`): the key and the path.
    File(&'static str, String),
    /// PEM bytes given in the config (Dex's `rootCAData`).
    Pem(&'static str, Vec<u8>),
}

/// The HTTP client of one connector: the system's roots plus `roots`, certificate checks off
/// only with `insecure_skip_verify`, and the standard timeouts.
pub(crate) fn http_client(
    id: &str,
    roots: &[RootCa],
    insecure_skip_verify: bool,
) -> Result<reqwest::Client, ConnectorError> {
    http_client_with_timeout(id, roots, insecure_skip_verify, REQUEST_TIMEOUT)
}

/// [`http_client`] with another request timeout (tests).
pub(crate) fn http_client_with_timeout(
    id: &str,
    roots: &[RootCa],
    insecure_skip_verify: bool,
    timeout: Duration,
) -> Result<reqwest::Client, ConnectorError> {
    let mut certs = Vec::new();
    for root in roots {
        let (key, pem) = match root {
            RootCa::File(key, path) => match std::fs::read(path) {
                Ok(pem) => (*key, pem),
                Err(e) => return Err(invalid(id, key, format!("cannot read the file {path:?}: {e}"))),
            },
            RootCa::Pem(key, pem) => (*key, pem.clone()),
        };
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(found) if !found.is_empty() => certs.extend(found),
            _ => return Err(invalid(id, key, "contains no PEM certificate")),
        }
    }
    if insecure_skip_verify {
        tracing::warn!(connector_id = %id, "insecureSkipVerify: TLS certificates of the upstream are not checked");
    }
    reqwest::Client::builder()
        .user_agent(concat!("oxidex/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(certs)
        .danger_accept_invalid_certs(insecure_skip_verify)
        .build()
        .map_err(|e| ConnectorError::InvalidConfig {
            id: id.to_owned(),
            key: None,
            reason: format!("cannot build the HTTP client: {e}"),
        })
}

/// Decodes Dex's `rootCAData` (a Go `[]byte`, so base64 in JSON); PEM text is accepted as is.
pub(crate) fn root_ca_data(id: &str, key: &str, value: &str) -> Result<Vec<u8>, ConnectorError> {
    let trimmed = value.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| invalid(id, key, "must be base64-encoded PEM certificates"))
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthStyle {
    /// `client_secret_basic`: an `Authorization: Basic` header of the form-encoded id and secret.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
    /// Go's `AuthStyleAutoDetect`: basic first; if the endpoint rejects it, post (remembered).
    Auto,
}

const DETECT_UNKNOWN: u8 = 0;
const DETECT_BASIC: u8 = 1;
const DETECT_POST: u8 = 2;

/// An OAuth2 client of one upstream.
pub(crate) struct OAuth2Client {
    connector_id: String,
    client_id: String,
    client_secret: Secret,
    auth_url: String,
    token_url: String,
    style: AuthStyle,
    detected: AtomicU8,
    http: reqwest::Client,
}

impl fmt::Debug for OAuth2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Client")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .field("style", &self.style)
            .finish()
    }
}

/// What the token endpoint answered. `Debug` hides the tokens.
#[derive(Clone, Default)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub refresh_token: String,
    /// Seconds until the access token expires, when the endpoint said.
    pub expires_in: Option<i64>,
    /// The OIDC ID token, when the endpoint sent one.
    pub id_token: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("refresh_token", &!self.refresh_token.is_empty())
            .field("expires_in", &self.expires_in)
            .field("id_token", &!self.id_token.is_empty())
            .finish_non_exhaustive()
    }
}

impl TokenResponse {
    /// When the access token expires, if known.
    pub(crate) fn expiry(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        self.expires_in.filter(|s| *s > 0).map(|s| now + chrono::Duration::seconds(s))
    }
}

/// Why the token endpoint did not issue tokens.
enum TokenFailure {
    /// The endpoint refused the grant (its `error` code): the code or refresh token is bad.
    Rejected(String),
    /// The endpoint failed or could not be reached.
    Upstream(String),
}

impl OAuth2Client {
    pub(crate) fn new(
        connector_id: &str,
        client_id: &str,
        client_secret: &Secret,
        auth_url: &str,
        token_url: &str,
        style: AuthStyle,
        http: reqwest::Client,
    ) -> Self {
        Self {
            connector_id: connector_id.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.clone(),
            auth_url: auth_url.to_owned(),
            token_url: token_url.to_owned(),
            style,
            detected: AtomicU8::new(DETECT_UNKNOWN),
            http,
        }
    }

    /// The connector's HTTP client.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The authorization URL (RFC 6749 §4.1.1) with `state`, the scopes and `extra` parameters
    /// (`prompt`, `hd`, ...; empty values are left out).
    pub(crate) fn authorization_url(
        &self,
        redirect_uri: &str,
        scopes: &[String],
        state: &str,
        extra: &[(&str, &str)],
    ) -> Result<String, ConnectorError> {
        let mut url = url::Url::parse(&self.auth_url).map_err(|_| {
            ConnectorError::Internal(format!(
                "connector {:?}: the authorization URL is not a URL",
                self.connector_id
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id);
            if !redirect_uri.is_empty() {
                q.append_pair("redirect_uri", redirect_uri);
            }
            q.append_pair("response_type", "code");
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
            q.append_pair("state", state);
            for (k, v) in extra {
                if !v.is_empty() {
                    q.append_pair(k, v);
                }
            }
        }
        Ok(url.into())
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3). A rejected code is
    /// [`ConnectorError::InvalidCallback`].
    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ConnectorError> {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        if !redirect_uri.is_empty() {
            form.push(("redirect_uri", redirect_uri));
        }
        self.token_request(&form).await.map_err(|f| match f {
            TokenFailure::Rejected(code) => ConnectorError::InvalidCallback(format!(
                "the login provider did not accept the authorization code ({code})"
            )),
            TokenFailure::Upstream(why) => self.upstream(&why),
        })
    }

    /// Uses a refresh token (RFC 6749 §6). A rejected refresh token (revoked, expired) is
    /// [`ConnectorError::Refused`]. When the answer carries no new refresh token, the old one
    /// is kept (as Go's `oauth2` does).
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ConnectorError> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        let mut token = self.token_request(&form).await.map_err(|f| match f {
            TokenFailure::Rejected(code) => {
                ConnectorError::Refused(format!("the upstream refused the refresh token ({code})"))
            }
            TokenFailure::Upstream(why) => self.upstream(&why),
        })?;
        if token.refresh_token.is_empty() {
            refresh_token.clone_into(&mut token.refresh_token);
        }
        Ok(token)
    }

    fn upstream(&self, why: &str) -> ConnectorError {
        ConnectorError::Upstream(format!("connector {:?}: token endpoint: {why}", self.connector_id))
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse, TokenFailure> {
        let style = match (self.style, self.detected.load(Ordering::Relaxed)) {
            (AuthStyle::Auto, DETECT_POST) => AuthStyle::Post,
            (AuthStyle::Auto, DETECT_BASIC) => AuthStyle::Basic,
            (style, _) => style,
        };
        if style != AuthStyle::Auto {
            return self.token_request_with(form, style).await;
        }
        match self.token_request_with(form, AuthStyle::Basic).await {
            Ok(t) => {
                self.detected.store(DETECT_BASIC, Ordering::Relaxed);
                Ok(t)
            }
            Err(TokenFailure::Rejected(_)) => {
                let outcome = self.token_request_with(form, AuthStyle::Post).await;
                if outcome.is_ok() {
                    self.detected.store(DETECT_POST, Ordering::Relaxed);
                }
                outcome
            }
            Err(e) => Err(e),
        }
    }

    async fn token_request_with(
        &self,
        form: &[(&str, &str)],
        style: AuthStyle,
    ) -> Result<TokenResponse, TokenFailure> {
        let mut body: Vec<(&str, &str)> = form.to_vec();
        let mut request = self.http.post(&self.token_url).header(ACCEPT, "application/json");
        if style == AuthStyle::Basic {
            // RFC 6749 §2.3.1: the id and secret are form-encoded before the Basic encoding.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&self.client_id), enc(self.client_secret.expose()));
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header(AUTHORIZATION, format!("Basic {basic}"));
        } else {
            body.push(("client_id", &self.client_id));
            if !self.client_secret.is_empty() {
                body.push(("client_secret", self.client_secret.expose()));
            }
        }
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(body).finish();
        let request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(encoded);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(TokenFailure::Upstream(describe_transport(&e))),
        };
        let status = response.status();
        let is_json = content_type(response.headers()).contains("json");
        let bytes = read_limited(response).await.map_err(TokenFailure::Upstream)?;
        let fields: serde_json::Map<String, Value> = if is_json || bytes.first() == Some(&b'{') {
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => map,
                _ if status.is_server_error() => {
                    return Err(TokenFailure::Upstream(format!("HTTP {status}")));
                }
                _ => return Err(TokenFailure::Upstream(format!("HTTP {status} with a malformed JSON body"))),
            }
        } else {
            url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into())))
                .collect()
        };
        if status.is_server_error() {
            return Err(TokenFailure::Upstream(format!("HTTP {status}")));
        }
        let text = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let error = text("error");
        if !error.is_empty() || status.is_client_error() {
            let code = if error.is_empty() { format!("HTTP {status}") } else { sanitize(&error, 64) };
            return Err(TokenFailure::Rejected(code));
        }
        if !status.is_success() {
            return Err(TokenFailure::Upstream(format!("HTTP {status}")));
        }
        let token = TokenResponse {
            access_token: text("access_token"),
            token_type: text("token_type"),
            refresh_token: text("refresh_token"),
            expires_in: fields.get("expires_in").and_then(|v| {
                v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).or_else(|| v.as_str()?.parse().ok())
            }),
            id_token: text("id_token"),
        };
        if token.access_token.is_empty() {
            return Err(TokenFailure::Upstream("the answer has no access_token".into()));
        }
        Ok(token)
    }
}

/// The upstream tokens a login kept in its connector data (each connector's own JSON shape),
/// for a refresh: none kept, or unreadable, refuses the refresh (`invalid_grant` for the client).
pub(crate) fn kept_tokens<T: serde::de::DeserializeOwned>(
    connector_data: &[u8],
) -> Result<T, ConnectorError> {
    if connector_data.is_empty() {
        return Err(ConnectorError::Refused("no upstream token was kept for this login".into()));
    }
    serde_json::from_slice(connector_data)
        .map_err(|_| ConnectorError::Refused("the kept upstream token is unreadable".into()))
}

/// The authorization code of a callback, or the login error the upstream reported.
pub(crate) fn authorization_code(params: &CallbackParams) -> Result<&str, ConnectorError> {
    if let Some(error) = params.get("error").filter(|e| !e.is_empty()) {
        let description = params.get("error_description").unwrap_or_default();
        let mut why = format!("the login provider answered {}", sanitize(error, 64));
        if !description.is_empty() {
            why.push_str(": ");
            why.push_str(&sanitize(description, 200));
        }
        return Err(ConnectorError::InvalidCallback(why));
    }
    match params.get("code") {
        Some(code) if !code.is_empty() => Ok(code),
        _ => Err(ConnectorError::InvalidCallback("the login provider sent no authorization code".into())),
    }
}

/// Upstream text fit for a log line or an error page: control characters dropped, length
/// bounded.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// What a connector remembers between `login_url` and `handle_callback` (the pending
/// request's `state_data`): the redirect URI sent upstream (it must be sent again with the
/// code) and, for OIDC upstreams, the nonce.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoginState {
    #[serde(rename = "redirectURI", default)]
    pub redirect_uri: String,
    #[serde(rename = "nonce", default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
}

impl LoginState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The state of a pending login; `configured_redirect` stands in for a missing one.
    pub(crate) fn decode(state_data: &[u8], configured_redirect: &str) -> Self {
        let mut state: Self = serde_json::from_slice(state_data).unwrap_or_default();
        if state.redirect_uri.is_empty() {
            configured_redirect.clone_into(&mut state.redirect_uri);
        }
        state
    }
}

/// The redirect URI to send upstream: the configured `redirectURI` as is (Dex's behaviour: a
/// reverse proxy may map it onto this server's callback), else the callback itself.
pub(crate) fn redirect_uri(id: &str, configured: &str, callback_url: &str) -> String {
    if configured.is_empty() {
        return callback_url.to_owned();
    }
    if configured != callback_url {
        tracing::debug!(
            connector_id = %id,
            redirect_uri = %configured,
            callback = %callback_url,
            "redirectURI differs from this server's callback URL; sending it upstream as configured"
        );
    }
    configured.to_owned()
}

/// A read upstream answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON of type `T`; a body that does not parse is an upstream failure.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        connector_id: &str,
        what: &str,
    ) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::Upstream(format!(
                "connector {connector_id:?}: {what}: unexpected answer (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// An error for an answer that is not a success: 401 means the upstream no longer accepts
    /// the access token ([`ConnectorError::Refused`]); anything else is an upstream failure.
    pub(crate) fn error(&self, connector_id: &str, what: &str) -> ConnectorError {
        if self.status == StatusCode::UNAUTHORIZED {
            return ConnectorError::Refused(format!(
                "{what}: the upstream no longer accepts the access token"
            ));
        }
        let detail = String::from_utf8_lossy(&self.body);
        ConnectorError::Upstream(format!(
            "connector {connector_id:?}: {what}: HTTP {}: {}",
            self.status,
            sanitize(detail.trim(), 200)
        ))
    }
}

/// Sends a request and reads the whole answer (bounded). Transport failures and timeouts are
/// [`ConnectorError::Upstream`].
pub(crate) async fn send(
    connector_id: &str,
    what: &str,
    request: RequestBuilder,
) -> Result<Answer, ConnectorError> {
    let response = request.header(ACCEPT, "application/json").send().await.map_err(|e| {
        ConnectorError::Upstream(format!("connector {connector_id:?}: {what}: {}", describe_transport(&e)))
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_limited(response)
        .await
        .map_err(|why| ConnectorError::Upstream(format!("connector {connector_id:?}: {what}: {why}")))?;
    Ok(Answer { status, headers, body })
}

/// Whether `next` (a pagination link the upstream sent) stays on the origin of `base`, so that
/// following it cannot send the access token elsewhere.
pub(crate) fn same_origin(base: &str, next: &str) -> bool {
    match (url::Url::parse(base), url::Url::parse(next)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase()
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(format!("the answer is larger than {MAX_BODY} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(describe_transport(&e)),
        }
    }
}

/// A transport error without its URL (which may carry a code or token in its query).
fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind} ({})", sanitize(&detail, 200)) }
}

/// Go's `fmt.Sprintf("%v", x)` of a JSON number decoded into `float64` (how Dex turns numeric
/// user ids into strings, so the same ids, and the same `sub`, come out): the shortest digits,
/// in exponent form when the decimal exponent is below -4 or at least 6, so that 1234567
/// becomes `1.234567e+06`.
pub(crate) fn go_float_string(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}"); // shortest digits: "1.234567e6", "-5e-7"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A JSON value at `key` of `object`: the key itself, or else a dotted path into nested
/// objects (`"profile.name"`), an Oxidex extension for userinfo claim mapping.
pub(crate) fn lookup<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = object.get(key) {
        return Some(v);
    }
    if !key.contains('.') {
        return None;
    }
    let mut parts = key.split('.');
    let mut current = object.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Dex's `groups.Filter`: the groups of `given` that `required` lists, in `given`'s order.
pub(crate) fn filter_groups(given: &[String], required: &[String]) -> Vec<String> {
    given.iter().filter(|g| required.contains(g)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let s: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }

    #[test]
    fn go_formats_numeric_ids_like_dex() {
        assert_eq!(go_float_string(12345678.0), "1.2345678e+07");
        assert_eq!(go_float_string(123456.0), "123456");
        assert_eq!(go_float_string(1234567.0), "1.234567e+06");
        assert_eq!(go_float_string(42.0), "42");
        assert_eq!(go_float_string(0.0001), "0.0001");
        assert_eq!(go_float_string(0.00001), "1e-05");
        assert_eq!(go_float_string(-2.5), "-2.5");
        assert_eq!(go_float_string(1e21), "1e+21");
    }

    #[test]
    fn callback_errors_and_missing_codes_are_login_errors() {
        let p: CallbackParams =
            [("error", "access_denied"), ("error_description", "The user said no\n")].into_iter().collect();
        let e = authorization_code(&p).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::InvalidCallback(m) if m == "the login provider answered access_denied: The user said no"),
            "{e:?}"
        );
        let p: CallbackParams = [("state", "s")].into_iter().collect();
        assert!(matches!(authorization_code(&p), Err(ConnectorError::InvalidCallback(_))));
        let p: CallbackParams = [("code", "")].into_iter().collect();
        assert!(matches!(authorization_code(&p), Err(ConnectorError::InvalidCallback(_))));
        let p: CallbackParams = [("code", "c1")].into_iter().collect();
        assert_eq!(authorization_code(&p).unwrap(), "c1");
    }

    #[test]
    fn redirect_uri_defaults_to_the_callback_and_is_sent_as_configured() {
        let cb = "https://id.example/dex/callback";
        assert_eq!(redirect_uri("gh", "", cb), cb);
        assert_eq!(redirect_uri("gh", cb, cb), cb);
        assert_eq!(redirect_uri("gh", "https://proxy.example/cb", cb), "https://proxy.example/cb");
    }

    #[test]
    fn login_state_round_trips_and_falls_back_to_the_configured_uri() {
        let s = LoginState { redirect_uri: "https://a/cb".into(), nonce: "n".into() };
        assert_eq!(LoginState::decode(&s.encode(), "https://b/cb"), s);
        assert_eq!(LoginState::decode(b"", "https://b/cb").redirect_uri, "https://b/cb");
    }

    #[test]
    fn lookups_take_the_key_then_a_dotted_path() {
        let v: Value = serde_json::json!({"a.b": 1, "a": {"b": 2, "c": {"d": "x"}}});
        let o = v.as_object().unwrap();
        assert_eq!(lookup(o, "a.b"), Some(&Value::from(1)));
        assert_eq!(lookup(o, "a.c.d"), Some(&Value::from("x")));
        assert_eq!(lookup(o, "a.z"), None);
        assert_eq!(lookup(o, "missing"), None);
    }

    #[test]
    fn root_ca_data_is_base64_or_pem() {
        assert_eq!(root_ca_data("g", "rootCAData", "LS0tLS1CRUdJTg==").unwrap(), b"-----BEGIN");
        assert_eq!(root_ca_data("g", "rootCAData", "-----BEGIN X").unwrap(), b"-----BEGIN X");
        assert!(root_ca_data("g", "rootCAData", "not base64!").is_err());
        let e = http_client("g", &[RootCa::Pem("rootCAData", b"garbage".to_vec())], false).unwrap_err();
        assert!(e.to_string().contains("key \"rootCAData\""), "{e}");
        let e = http_client("g", &[RootCa::File("rootCA", "/nonexistent/ca.pem".into())], false).unwrap_err();
        assert!(e.to_string().contains("key \"rootCA\""), "{e}");
    }

    #[test]
    fn filter_keeps_the_given_order() {
        let given = vec!["b".to_owned(), "a".to_owned(), "c".to_owned()];
        assert_eq!(filter_groups(&given, &["c".to_owned(), "b".to_owned()]), vec!["b", "c"]);
    }

    #[test]
    fn origins_are_compared_for_pagination_links() {
        assert!(same_origin("https://api.github.com/user/teams", "https://api.github.com/user/teams?page=2"));
        assert!(!same_origin("https://api.github.com/user/teams", "https://evil.example/user/teams?page=2"));
        assert!(!same_origin("http://127.0.0.1:1/x", "http://127.0.0.1:2/x"));
    }
}
