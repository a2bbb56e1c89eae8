//! The browser binding cookie and the request facts the flow routes pass to core.
//!
//! Every flow route reads the cookie `oxidex_browser`; when it is absent (or not a value this
//! gateway could have made) the gateway makes a fresh random 32-byte value and sets it on the
//! response. The value goes to core as `browser_secret` on every Flow call; core stores only its
//! hash on the authorization request and rejects a later step from another browser.

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::RngCore as _;

use crate::pages;

/// The cookie's name.
pub(crate) const COOKIE_NAME: &str = "oxidex_browser";

/// The length of a base64url encoded 32-byte value without padding.
const SECRET_LEN: usize = 43;

/// How the gateway sets the browser cookie.
#[derive(Clone, Debug)]
pub(crate) struct CookieSettings {
    /// The cookie's `Path`: the issuer path with a trailing slash, or `/`.
    pub(crate) path: String,
    /// Whether the cookie carries `Secure` (an https issuer).
    pub(crate) secure: bool,
}

impl CookieSettings {
    pub(crate) fn new(issuer_path: &str, secure: bool) -> Self {
        Self { path: format!("{issuer_path}/"), secure }
    }

    /// A `Set-Cookie` value for another session cookie of the pages (HttpOnly, SameSite=Lax,
    /// the issuer path); `expire` deletes it instead.
    pub(crate) fn cookie(&self, name: &str, value: &str, expire: bool) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        let max_age = if expire { "; Max-Age=0" } else { "" };
        format!("{name}={value}; Path={}; HttpOnly; SameSite=Lax{secure}{max_age}", self.path)
    }

    fn set_cookie(&self, value: &str) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::try_from(format!(
            "{COOKIE_NAME}={value}; Path={}; HttpOnly; SameSite=Lax{secure}",
            self.path
        ))
        .ok()
    }
}

/// The browser's secret, put into the request's extensions by [`bind_browser`].
#[derive(Clone)]
pub(crate) struct BrowserSecret(pub(crate) String);

impl std::fmt::Debug for BrowserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserSecret(<redacted>)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BrowserSecret {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<BrowserSecret>().cloned().ok_or_else(|| {
            tracing::error!("a flow route is mounted without the browser binding layer");
            pages::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "Please try again later.")
        })
    }
}

/// The client's IP address: the connection's, or behind trusted proxies the one their header
/// names (see [`crate::remote_ip`]); empty when the server did not record the connection's.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientIp(pub(crate) String);

impl ClientIp {
    pub(crate) fn of_request(extensions: &http::Extensions, headers: &HeaderMap) -> Self {
        Self(crate::remote_ip::of_request(extensions, headers))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of_request(&parts.extensions, &parts.headers))
    }
}

/// Middleware of the flow routes: binds the request to the browser's secret, creating and
/// setting the cookie when the browser has none.
pub(crate) async fn bind_browser(
    State(settings): State<CookieSettings>,
    mut req: Request,
    next: Next,
) -> Response {
    let (secret, fresh) = match read_cookie(req.headers()) {
        Some(s) => (s, false),
        None => (new_secret(), true),
    };
    let set_cookie = if fresh { settings.set_cookie(&secret) } else { None };
    req.extensions_mut().insert(BrowserSecret(secret));
    let mut response = next.run(req).await.into_response();
    if let Some(v) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The first well-formed `oxidex_browser` value of the request's `Cookie` headers.
pub(crate) fn read_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"'))
        .find(|value| {
            value.len() == SECRET_LEN
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_well_formed_values() {
        let good = new_secret();
        assert_eq!(good.len(), SECRET_LEN);
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=b; oxidex_browser=short"));
        h.append(header::COOKIE, HeaderValue::try_from(format!("x=1; {COOKIE_NAME}={good}")).unwrap());
        assert_eq!(read_cookie(&h), Some(good));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("oxidex_browser=<script>alert(1)</script>xxxxxxxxxxxxxxxxxx"),
        );
        assert_eq!(read_cookie(&h), None);
    }

    #[test]
    fn cookie_attributes() {
        let v = CookieSettings::new("/dex", true).set_cookie("abc").unwrap();
        assert_eq!(v.to_str().unwrap(), "oxidex_browser=abc; Path=/dex/; HttpOnly; SameSite=Lax; Secure");
        let v = CookieSettings::new("", false).set_cookie("abc").unwrap();
        assert_eq!(v.to_str().unwrap(), "oxidex_browser=abc; Path=/; HttpOnly; SameSite=Lax");
    }
}
