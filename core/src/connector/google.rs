//! `google`: login with Google accounts (Dex's `connector/google`).
//!
//! Google is an OpenID provider: its discovery document (`{issuer}/.well-known/openid-configuration`,
//! read once on first use) gives the authorization, token and JWKS endpoints. The connector asks
//! for `openid` plus `scopes` (default `profile email`), sends `hd` for `hostedDomains` and a
//! nonce (kept with the pending login), and with `offline_access` also `access_type=offline`
//! and `prompt` (`promptType`, default `consent`). The ID token of the token response is verified
//! here (signature against the JWKS, refetched once for an unknown key; `iss`; `aud` contains the
//! client id; `exp`; the nonce), then:
//!
//! - `hostedDomains`: the `hd` claim must be one of them, else the login is refused;
//! - groups (when the client asks for them and `domainToAdminEmail` is set): the Admin SDK
//!   Directory API `groups.list?userKey=EMAIL`, following `nextPageToken`, and recursively for
//!   each group with `fetchTransitiveGroupMembership`. The service account of
//!   `serviceAccountFilePath` (or `$GOOGLE_APPLICATION_CREDENTIALS`) signs a JWT assertion
//!   (RS256) for the admin of the user's domain (`domainToAdminEmail`, `*` for any other
//!   domain; the deprecated `adminEmail` is `*`) and exchanges it at the account's `token_uri`;
//!   the access token is cached until shortly before it expires. With `groups`, a user in none
//!   of them is refused and the claim is reduced to them.
//!
//! The Google refresh token is kept as the connector data (raw, Dex's format); a refresh
//! redeems it, verifies the new ID token and reads the groups again.
//!
//! Oxidex-only keys, for tests against fakes and for private deployments: `issuer` (default
//! `https://accounts.google.com`) and `directoryAPIURL` (default `https://admin.googleapis.com`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ConnectorConfig;
use super::oauth2::{self, AuthStyle, LoginState, OAuth2Client, Secret, TokenResponse, invalid, require};
use super::{
    CallbackConnector, CallbackParams, ConnectorError, ConnectorImpl, ConnectorScopes, Identity,
    LoginRedirect, OpenContext, RefreshConnector,
};
use crate::clock::SharedClock;
use crate::token::verify::{VerifyError, verify_token};

const DEFAULT_ISSUER: &str = "https://accounts.google.com";
/// Google's ID tokens may carry the issuer without its scheme.
const GOOGLE_BARE_ISSUER: &str = "accounts.google.com";
const DEFAULT_DIRECTORY_API_URL: &str = "https://admin.googleapis.com";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const DIRECTORY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const WILDCARD_DOMAIN: &str = "*";
/// The most directory requests one login may make (transitive lookups of deep hierarchies).
const MAX_DIRECTORY_REQUESTS: usize = 1000;
/// How soon after a JWKS fetch an unknown key may trigger another one.
const JWKS_REFETCH_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// The `google` settings (Dex's keys plus `issuer` and `directoryAPIURL`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GoogleConfig {
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "clientSecret")]
    client_secret: Secret,
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
    scopes: Vec<String>,
    #[serde(rename = "hostedDomains")]
    hosted_domains: Vec<String>,
    groups: Vec<String>,
    #[serde(rename = "serviceAccountFilePath")]
    service_account_file_path: String,
    #[serde(rename = "domainToAdminEmail")]
    domain_to_admin_email: BTreeMap<String, String>,
    /// Deprecated: `domainToAdminEmail: {"*": ...}`.
    #[serde(rename = "adminEmail")]
    admin_email: String,
    #[serde(rename = "fetchTransitiveGroupMembership")]
    fetch_transitive_group_membership: bool,
    /// The `prompt` sent with `offline_access`; `consent` when absent.
    #[serde(rename = "promptType")]
    prompt_type: Option<String>,
    /// Oxidex: the OpenID issuer (discovery base).
    issuer: String,
    /// Oxidex: the base URL of the Admin SDK Directory API.
    #[serde(rename = "directoryAPIURL")]
    directory_api_url: String,
}

impl ConnectorConfig for GoogleConfig {
    fn open(self, id: &str, ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        Ok(Arc::new(GoogleConnector::open(id, self, ctx.clock.clone())?))
    }
}

/// The parts of a service account key file that are used.
#[derive(Deserialize)]
struct ServiceAccountFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default)]
    token_uri: String,
}

/// A service account, ready to sign assertions.
struct ServiceAccount {
    client_email: String,
    key_id: String,
    key: EncodingKey,
    token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// What discovery said.
#[derive(Debug)]
struct Provider {
    oauth: OAuth2Client,
    jwks_uri: String,
}

#[derive(Debug, Default)]
struct Jwks {
    keys: Vec<Value>,
    fetched: Option<Instant>,
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    expires: DateTime<Utc>,
}

/// The directory (groups) side.
#[derive(Debug)]
struct Directory {
    account: ServiceAccount,
    domain_to_admin_email: BTreeMap<String, String>,
    transitive: bool,
    api_url: String,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

/// The `google` connector.
#[derive(Debug)]
pub(crate) struct GoogleConnector {
    id: String,
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    issuer: String,
    scopes: Vec<String>,
    hosted_domains: Vec<String>,
    groups: Vec<String>,
    prompt_type: String,
    directory: Option<Directory>,
    http: reqwest::Client,
    provider: tokio::sync::OnceCell<Provider>,
    jwks: tokio::sync::Mutex<Jwks>,
    clock: SharedClock,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken").field("expires", &self.expires).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    authorization_endpoint: String,
    #[serde(default)]
    token_endpoint: String,
    #[serde(default)]
    jwks_uri: String,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GroupsPage {
    groups: Vec<DirectoryGroup>,
    #[serde(rename = "nextPageToken")]
    next_page_token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DirectoryGroup {
    email: String,
}

impl GoogleConnector {
    fn open(id: &str, c: GoogleConfig, clock: SharedClock) -> Result<Self, ConnectorError> {
        require(id, "clientID", &c.client_id)?;
        if c.client_secret.is_empty() {
            return Err(invalid(id, "clientSecret", "required; it is empty or missing"));
        }
        let issuer = if c.issuer.is_empty() {
            DEFAULT_ISSUER.to_owned()
        } else {
            oauth2::require_url(id, "issuer", &c.issuer)?
        };
        let directory_api_url = if c.directory_api_url.is_empty() {
            DEFAULT_DIRECTORY_API_URL.to_owned()
        } else {
            oauth2::require_url(id, "directoryAPIURL", &c.directory_api_url)?
        };
        let mut domain_to_admin_email = c.domain_to_admin_email;
        if !c.admin_email.is_empty() {
            tracing::warn!(connector_id = %id, "google: \"adminEmail\" is deprecated; use \"domainToAdminEmail\" with the key \"*\"");
            domain_to_admin_email.insert(WILDCARD_DOMAIN.to_owned(), c.admin_email);
        }
        if domain_to_admin_email.is_empty() && !c.service_account_file_path.is_empty() {
            return Err(invalid(
                id,
                "domainToAdminEmail",
                "required with serviceAccountFilePath: the admin of each domain that the service account acts for",
            ));
        }
        let directory = if domain_to_admin_email.is_empty() {
            None
        } else {
            let (key, path) = if c.service_account_file_path.is_empty() {
                match std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
                    Ok(p) if !p.is_empty() => ("serviceAccountFilePath", p),
                    _ => {
                        return Err(invalid(
                            id,
                            "serviceAccountFilePath",
                            "required with domainToAdminEmail (or set GOOGLE_APPLICATION_CREDENTIALS); \
                             credentials from the metadata server are not supported",
                        ));
                    }
                }
            } else {
                ("serviceAccountFilePath", c.service_account_file_path.clone())
            };
            Some(Directory {
                account: read_service_account(id, key, &path)?,
                domain_to_admin_email,
                transitive: c.fetch_transitive_group_membership,
                api_url: directory_api_url,
                tokens: Mutex::new(HashMap::new()),
            })
        };
        let scopes =
            if c.scopes.is_empty() { vec!["profile".to_owned(), "email".to_owned()] } else { c.scopes };
        Ok(Self {
            id: id.to_owned(),
            client_id: c.client_id,
            client_secret: c.client_secret,
            redirect_uri: c.redirect_uri,
            issuer,
            scopes,
            hosted_domains: c.hosted_domains,
            groups: c.groups,
            prompt_type: c.prompt_type.unwrap_or_else(|| "consent".to_owned()),
            directory,
            http: oauth2::http_client(id, &[], false)?,
            provider: tokio::sync::OnceCell::new(),
            jwks: tokio::sync::Mutex::new(Jwks::default()),
            clock,
        })
    }

    fn upstream(&self, what: &str, why: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Upstream(format!("connector {:?}: {what}: {why}", self.id))
    }

    /// The discovered endpoints (read once; a failed discovery is tried again next time).
    async fn provider(&self) -> Result<&Provider, ConnectorError> {
        self.provider
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let answer = oauth2::send(&self.id, "discovery", self.http.get(url)).await?;
                if !answer.status.is_success() {
                    return Err(answer.error(&self.id, "discovery"));
                }
                let d: Discovery = answer.json(&self.id, "discovery")?;
                if d.issuer.trim_end_matches('/') != self.issuer {
                    return Err(
                        self.upstream("discovery", format!("the document is for the issuer {:?}", d.issuer))
                    );
                }
                for (name, value) in [
                    ("authorization_endpoint", &d.authorization_endpoint),
                    ("token_endpoint", &d.token_endpoint),
                    ("jwks_uri", &d.jwks_uri),
                ] {
                    if url::Url::parse(value).is_err() {
                        return Err(self.upstream("discovery", format!("{name} is missing or not a URL")));
                    }
                }
                let oauth = OAuth2Client::new(
                    &self.id,
                    &self.client_id,
                    &self.client_secret,
                    &d.authorization_endpoint,
                    &d.token_endpoint,
                    AuthStyle::Auto,
                    self.http.clone(),
                );
                Ok(Provider { oauth, jwks_uri: d.jwks_uri })
            })
            .await
    }

    async fn fetch_jwks(&self, provider: &Provider, jwks: &mut Jwks) -> Result<(), ConnectorError> {
        let answer = oauth2::send(&self.id, "get JWKS", self.http.get(&provider.jwks_uri)).await?;
        if !answer.status.is_success() {
            return Err(answer.error(&self.id, "get JWKS"));
        }
        let set: Value = answer.json(&self.id, "get JWKS")?;
        jwks.keys = set.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
        jwks.fetched = Some(Instant::now());
        Ok(())
    }

    /// Verifies an ID token and returns its claims. `nonce` is checked when not empty.
    async fn verify_id_token(
        &self,
        raw: &str,
        nonce: &str,
    ) -> Result<serde_json::Map<String, Value>, ConnectorError> {
        let provider = self.provider().await?;
        let now = self.clock.now().timestamp();
        let mut jwks = self.jwks.lock().await;
        if jwks.fetched.is_none() {
            self.fetch_jwks(provider, &mut jwks).await?;
        }
        let verify = |keys: &[Value]| {
            let outcome = verify_token(raw, keys, &self.issuer, now);
            match outcome {
                Err(VerifyError::WrongIssuer) if self.issuer == DEFAULT_ISSUER => {
                    verify_token(raw, keys, GOOGLE_BARE_ISSUER, now)
                }
                other => other,
            }
        };
        let mut outcome = verify(&jwks.keys);
        if outcome == Err(VerifyError::UnknownKey)
            && jwks.fetched.is_none_or(|t| t.elapsed() >= JWKS_REFETCH_AFTER)
        {
            // Google rotates its keys: an unknown key id may be a new key.
            self.fetch_jwks(provider, &mut jwks).await?;
            outcome = verify(&jwks.keys);
        }
        drop(jwks);
        let claims = outcome.map_err(|e| self.upstream("verify ID token", e))?;
        let Value::Object(claims) = claims else {
            return Err(self.upstream("verify ID token", "the claims are not an object"));
        };
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.client_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&self.client_id)),
            _ => false,
        };
        if !audience_ok {
            return Err(self.upstream("verify ID token", "the token is not for this client (aud)"));
        }
        if !nonce.is_empty() && claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(ConnectorError::InvalidCallback(
                "the ID token's nonce does not match this login".into(),
            ));
        }
        Ok(claims)
    }

    async fn create_identity(
        &self,
        scopes: &ConnectorScopes,
        token: &TokenResponse,
        nonce: &str,
    ) -> Result<Identity, ConnectorError> {
        if token.id_token.is_empty() {
            return Err(self.upstream("token endpoint", "no id_token in the token response"));
        }
        let claims = self.verify_id_token(&token.id_token, nonce).await?;
        let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (sub, name, email, hd) = (text("sub"), text("name"), text("email"), text("hd"));
        if sub.is_empty() {
            return Err(self.upstream("verify ID token", "the token has no sub"));
        }
        if !self.hosted_domains.is_empty() && !self.hosted_domains.contains(&hd) {
            let shown = if hd.is_empty() {
                "no hosted domain (a consumer account)".to_owned()
            } else {
                format!("the hosted domain {hd:?}")
            };
            return Err(ConnectorError::Refused(format!(
                "the Google account has {shown}, which is not allowed here"
            )));
        }
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let mut groups = Vec::new();
        if scopes.groups
            && let Some(directory) = &self.directory
        {
            let mut seen = HashSet::new();
            let mut budget = MAX_DIRECTORY_REQUESTS;
            groups = self.directory_groups(directory, &email, &mut seen, &mut budget).await?;
            if !self.groups.is_empty() {
                groups = oauth2::filter_groups(&groups, &self.groups);
                if groups.is_empty() {
                    return Err(ConnectorError::Refused(format!(
                        "the Google user {name:?} is not in any of the required groups"
                    )));
                }
            }
        }
        Ok(Identity {
            user_id: sub,
            username: name,
            preferred_username: String::new(),
            email,
            email_verified,
            groups,
            connector_data: token.refresh_token.clone().into_bytes(),
        })
    }

    /// The groups of `key` (a user's or a group's email), with `nextPageToken` paging and,
    /// when transitive, the groups of each group (each group once).
    async fn directory_groups(
        &self,
        directory: &Directory,
        key: &str,
        seen: &mut HashSet<String>,
        budget: &mut usize,
    ) -> Result<Vec<String>, ConnectorError> {
        let domain = key.rsplit_once('@').map_or(WILDCARD_DOMAIN, |(_, d)| d);
        let admin = directory
            .domain_to_admin_email
            .get(domain)
            .or_else(|| directory.domain_to_admin_email.get(WILDCARD_DOMAIN))
            .ok_or_else(|| {
                self.upstream(
                    "list groups",
                    format!("domainToAdminEmail has no entry for {domain:?} and no \"*\" entry"),
                )
            })?
            .clone();
        let token = self.directory_token(directory, &admin).await?;
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            if *budget == 0 {
                return Err(
                    self.upstream("list groups", format!("more than {MAX_DIRECTORY_REQUESTS} requests"))
                );
            }
            *budget -= 1;
            let mut url = url::Url::parse(&format!("{}/admin/directory/v1/groups", directory.api_url))
                .map_err(|e| self.upstream("list groups", e))?;
            url.query_pairs_mut().append_pair("userKey", key);
            if !page_token.is_empty() {
                url.query_pairs_mut().append_pair("pageToken", &page_token);
            }
            let answer =
                oauth2::send(&self.id, "list groups", self.http.get(url).bearer_auth(&token)).await?;
            if !answer.status.is_success() {
                // A 401 here is the service account's token, not the user's: not a refusal.
                return Err(self.upstream(
                    "list groups",
                    format!(
                        "HTTP {}: {}",
                        answer.status,
                        oauth2::sanitize(&String::from_utf8_lossy(&answer.body), 200)
                    ),
                ));
            }
            let page: GroupsPage = answer.json(&self.id, "list groups")?;
            for group in page.groups {
                if group.email.is_empty() || !seen.insert(group.email.clone()) {
                    continue;
                }
                out.push(group.email.clone());
                if directory.transitive {
                    let nested =
                        Box::pin(self.directory_groups(directory, &group.email, seen, budget)).await?;
                    out.extend(nested);
                }
            }
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// A Directory API access token acting as `admin` (JWT bearer grant, RFC 7523), cached.
    async fn directory_token(&self, directory: &Directory, admin: &str) -> Result<String, ConnectorError> {
        let now = self.clock.now();
        if let Ok(cache) = directory.tokens.lock()
            && let Some(t) = cache.get(admin)
            && t.expires > now + chrono::Duration::seconds(60)
        {
            return Ok(t.token.clone());
        }
        let account = &directory.account;
        let iat = now.timestamp();
        let claims = Assertion {
            iss: &account.client_email,
            scope: DIRECTORY_SCOPE,
            aud: &account.token_uri,
            sub: admin,
            iat,
            exp: iat + 3600,
        };
        let mut header = Header::new(Algorithm::RS256);
        if !account.key_id.is_empty() {
            header.kid = Some(account.key_id.clone());
        }
        let assertion = jsonwebtoken::encode(&header, &claims, &account.key).map_err(|e| {
            ConnectorError::Internal(format!("connector {:?}: signing the assertion: {e}", self.id))
        })?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let request = self.http.post(&account.token_uri).form(&form);
        let answer = oauth2::send(&self.id, "service account token", request).await?;
        if !answer.status.is_success() {
            return Err(self.upstream(
                "service account token",
                format!(
                    "HTTP {}: {}",
                    answer.status,
                    oauth2::sanitize(&String::from_utf8_lossy(&answer.body), 200)
                ),
            ));
        }
        let body: Value = answer.json(&self.id, "service account token")?;
        let token = body.get("access_token").and_then(Value::as_str).unwrap_or_default().to_owned();
        if token.is_empty() {
            return Err(self.upstream("service account token", "the answer has no access_token"));
        }
        let expires_in = body.get("expires_in").and_then(Value::as_i64).unwrap_or(3600);
        if let Ok(mut cache) = directory.tokens.lock() {
            cache.insert(
                admin.to_owned(),
                CachedToken { token: token.clone(), expires: now + chrono::Duration::seconds(expires_in) },
            );
        }
        Ok(token)
    }
}

fn read_service_account(id: &str, key: &str, path: &str) -> Result<ServiceAccount, ConnectorError> {
    let bytes =
        std::fs::read(path).map_err(|e| invalid(id, key, format!("cannot read the file {path:?}: {e}")))?;
    let file: ServiceAccountFile = serde_json::from_slice(&bytes)
        .map_err(|_| invalid(id, key, format!("{path:?} is not a service account key file (JSON)")))?;
    if !file.kind.is_empty() && file.kind != "service_account" {
        return Err(invalid(
            id,
            key,
            format!("{path:?} holds {:?} credentials, not a service account", file.kind),
        ));
    }
    if file.client_email.is_empty() {
        return Err(invalid(id, key, format!("{path:?} has no client_email")));
    }
    let key_pair = EncodingKey::from_rsa_pem(file.private_key.as_bytes())
        .map_err(|_| invalid(id, key, format!("the private_key of {path:?} is not an RSA key in PEM")))?;
    let token_uri = if file.token_uri.is_empty() { DEFAULT_TOKEN_URI.to_owned() } else { file.token_uri };
    if url::Url::parse(&token_uri).is_err() {
        return Err(invalid(id, key, format!("the token_uri of {path:?} is not a URL")));
    }
    Ok(ServiceAccount {
        client_email: file.client_email,
        key_id: file.private_key_id,
        key: key_pair,
        token_uri,
    })
}

#[async_trait]
impl CallbackConnector for GoogleConnector {
    async fn login_url(
        &self,
        scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let redirect_uri = oauth2::redirect_uri(&self.id, &self.redirect_uri, callback_url);
        let provider = self.provider().await?;
        let nonce = crate::clock::new_id();
        let hd = match self.hosted_domains.as_slice() {
            [] => "",
            [one] => one.as_str(),
            _ => "*",
        };
        let mut extra = vec![("hd", hd), ("nonce", nonce.as_str())];
        if scopes.offline_access {
            extra.push(("access_type", "offline"));
            extra.push(("prompt", self.prompt_type.as_str()));
        }
        let mut all_scopes = vec!["openid".to_owned()];
        all_scopes.extend(self.scopes.iter().cloned());
        let url = provider.oauth.authorization_url(&redirect_uri, &all_scopes, state, &extra)?;
        Ok(LoginRedirect { url, state_data: LoginState { redirect_uri, nonce }.encode() })
    }

    async fn handle_callback(
        &self,
        scopes: &ConnectorScopes,
        params: &CallbackParams,
        state_data: &[u8],
    ) -> Result<Identity, ConnectorError> {
        let code = oauth2::authorization_code(params)?;
        let state = LoginState::decode(state_data, &self.redirect_uri);
        let provider = self.provider().await?;
        let token = provider.oauth.exchange_code(code, &state.redirect_uri).await?;
        self.create_identity(scopes, &token, &state.nonce).await
    }
}

#[async_trait]
impl RefreshConnector for GoogleConnector {
    async fn refresh(
        &self,
        scopes: &ConnectorScopes,
        identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        let refresh_token = String::from_utf8(identity.connector_data).unwrap_or_default();
        if refresh_token.is_empty() {
            return Err(ConnectorError::Refused("no Google refresh token was kept for this login".into()));
        }
        let provider = self.provider().await?;
        let token = provider.oauth.refresh(&refresh_token).await?;
        let fresh = self.create_identity(scopes, &token, "").await?;
        // The grant stays bound to the user it was issued for.
        if fresh.user_id != identity.user_id {
            return Err(ConnectorError::Refused("the refreshed Google ID token is for another user".into()));
        }
        Ok(fresh)
    }
}

impl ConnectorImpl for GoogleConnector {
    fn as_callback(&self) -> Option<&dyn CallbackConnector> {
        Some(self)
    }
    fn as_refresh(&self) -> Option<&dyn RefreshConnector> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::SystemClock;

    fn open(config: Value) -> Result<GoogleConnector, ConnectorError> {
        GoogleConnector::open("google", serde_json::from_value(config).unwrap(), Arc::new(SystemClock))
    }

    #[test]
    fn directory_settings_are_checked() {
        let e = open(json!({"clientID": "c", "clientSecret": "s", "serviceAccountFilePath": "/x.json"}))
            .unwrap_err();
        assert!(e.to_string().contains("key \"domainToAdminEmail\""), "{e}");
        let e =
            open(json!({"clientID": "c", "clientSecret": "s", "serviceAccountFilePath": "/nonexistent.json",
            "adminEmail": "admin@example.com"}))
            .unwrap_err();
        assert!(e.to_string().contains("key \"serviceAccountFilePath\""), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.json");
        std::fs::write(
            &path,
            r#"{"type": "service_account", "client_email": "sa@p.iam", "private_key": "nope"}"#,
        )
        .unwrap();
        let e = open(json!({"clientID": "c", "clientSecret": "s", "serviceAccountFilePath": path,
            "domainToAdminEmail": {"*": "admin@example.com"}}))
        .unwrap_err();
        assert!(e.to_string().contains("not an RSA key"), "{e}");
        let c = open(json!({"clientID": "c", "clientSecret": "s"})).unwrap();
        assert!(c.directory.is_none());
        assert_eq!(c.prompt_type, "consent");
        assert_eq!(c.scopes, vec!["profile", "email"]);
    }
}
