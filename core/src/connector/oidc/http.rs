//! The upstream HTTP client: timeouts, no redirects, bounded JSON bodies, and the rule that an
//! upstream is reached over HTTPS (plain HTTP only on loopback, for tests and sidecars).

use std::time::Duration;

use serde_json::Value;

/// The largest upstream response body read.
const MAX_BODY: usize = 1024 * 1024;

/// Errors of an upstream request; messages never include request secrets.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum HttpError {
    /// The request could not be sent or the response not read.
    #[error("{0}")]
    Transport(String),
    /// A non-success status, with the body parsed as JSON when it is JSON.
    #[error("HTTP {status}")]
    Status { status: u16, body: Option<Value> },
    /// The body is not a JSON object, or too large.
    #[error("{0}")]
    Body(String),
}

/// Whether `url` may be used for an upstream: HTTPS, or HTTP to a loopback host.
pub(crate) fn check_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err("must use https (plain http is accepted only for loopback hosts)".into())
            }
        }
        _ => Err("must be an https URL".into()),
    }
}

/// A configured HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

impl Http {
    /// A client trusting the system roots plus `extra_roots` (PEM bundles); `insecure` turns
    /// certificate verification off (Dex's `insecureSkipVerify`).
    pub(crate) fn new(extra_roots: &[Vec<u8>], insecure: bool) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(insecure)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("oxidex/", env!("CARGO_PKG_VERSION")));
        for pem in extra_roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| "a rootCAs file is not a PEM certificate bundle".to_owned())?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| format!("the HTTP client cannot be built: {e}"))?;
        Ok(Self { client })
    }

    /// GET a JSON object, with an optional bearer token.
    pub(crate) async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, HttpError> {
        let mut request = self.client.get(url).header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        read_json(request.send().await).await
    }

    /// POST a form, with optional HTTP Basic client credentials (already form-encoded as
    /// RFC 6749 §2.3.1 requires), and read the JSON answer.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Value, HttpError> {
        let mut request =
            self.client.post(url).header(reqwest::header::ACCEPT, "application/json").form(form);
        if let Some((user, password)) = basic {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(user), Some(enc(password)));
        }
        read_json(request.send().await).await
    }
}

async fn read_json(sent: reqwest::Result<reqwest::Response>) -> Result<Value, HttpError> {
    let mut response = sent.map_err(|e| HttpError::Transport(describe(&e)))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| HttpError::Transport(describe(&e)))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpError::Body("the upstream's response is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    if !status.is_success() {
        return Err(HttpError::Status { status: status.as_u16(), body: parsed });
    }
    match parsed {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(HttpError::Body("the upstream's response is not a JSON object".into())),
    }
}

/// A transport error without the URL's query (which may hold a code).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match e.url() {
        Some(u) => format!("{kind}: {}", &u[..url::Position::AfterPath]),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_but_loopback() {
        assert!(check_url("https://idp.example/").is_ok());
        assert!(check_url("http://127.0.0.1:5556/dex").is_ok());
        assert!(check_url("http://[::1]:80/").is_ok());
        assert!(check_url("http://localhost/").is_ok());
        assert!(check_url("http://idp.example/").is_err());
        assert!(check_url("http://10.0.0.1/").is_err());
        assert!(check_url("ftp://idp.example/").is_err());
        assert!(check_url("not a url").is_err());
    }
}
