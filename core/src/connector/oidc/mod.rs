//! `oidc`: log in with any OpenID Connect provider (Dex's `connector/oidc`), with Dex's config
//! keys.
//!
//! ```text
//! login_url ──> discovery (cached; its `issuer` must equal the configured one)
//!           └─> authorization URL with state, a fresh nonce and a PKCE S256 challenge;
//!               nonce and verifier stay in the login's state_data (never in the browser)
//! handle_callback ──> `error`? `iss` (RFC 9207)? ──> code + verifier at the token endpoint
//!                 ──> ID token verified (alg allow-list, JWKS by kid, iss, aud/azp, exp, nonce)
//!                 ──> userinfo merged (getUserInfo) ──> claims.rs rules ──> Identity
//!                     connector_data = the upstream refresh token
//! refresh ──> single-flight per upstream refresh token ──> refresh_token grant upstream
//!         ──> invalid_grant upstream = Refused (Oxidex answers invalid_grant) ──> fresh claims
//! token_identity ──> an upstream ID token (verified as above, without a nonce) or an access
//!                    token (through userinfo, getUserInfo only)
//! ```
//!
//! Discovery happens on first use rather than at open, so a connector whose upstream is down
//! at start-up opens anyway and works once the upstream answers.
//!
//! Differences from Dex, all on the safe side: PKCE is on unless `pkceChallenge: false` (Dex:
//! off unless true); a nonce is always sent and checked; the upstream must be HTTPS except on
//! loopback; an `iss` on the callback (RFC 9207) must be the upstream's; userinfo's `sub` must
//! be the ID token's; a missing `name` claim is accepted unless `userNameKey` names it.

mod claims;
mod http;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::OnceCell;

use self::claims::{ClaimRules, NewGroup};
use self::http::{Http, HttpError, check_url};
use self::verify::{Expect, KeyCache, SUPPORTED_ALGS, TokenError, verify_id_token};
use super::config::{self, ConnectorConfig};
use super::single_flight::SingleFlight;
use super::{
    CallbackConnector, CallbackParams, ConnectorError, ConnectorImpl, ConnectorScopes, Identity,
    LoginRedirect, OpenContext, RefreshConnector, TokenIdentityConnector,
};
use crate::clock::SharedClock;

/// RFC 8693 token type of an ID token.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 token type of an access token.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// How long the outcome of an upstream refresh is shared with later refreshes of the same
/// upstream token.
const REFRESH_SHARE: Duration = Duration::from_secs(10);

/// `providerDiscoveryOverrides`: endpoints used instead of the discovered ones.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DiscoveryOverrides {
    #[serde(rename = "tokenURL")]
    token_url: String,
    #[serde(rename = "authURL")]
    auth_url: String,
    #[serde(rename = "jwksURL")]
    jwks_url: String,
    #[serde(rename = "userInfoURL")]
    user_info_url: String,
}

/// `claimMapping`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ClaimMapping {
    preferred_username: String,
    email: String,
    groups: String,
}

/// One `claimModifications.newGroupFromClaims` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NewGroupFromClaims {
    claims: Vec<String>,
    delimiter: String,
    clear_delimiter: bool,
    prefix: String,
}

/// `claimModifications.filterGroupClaims`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FilterGroupClaims {
    groups_filter: String,
}

/// `claimModifications.modifyGroupNames`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ModifyGroupNames {
    prefix: String,
    suffix: String,
}

/// `claimModifications`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClaimModifications {
    #[serde(deserialize_with = "config::nested_list")]
    new_group_from_claims: Vec<NewGroupFromClaims>,
    #[serde(deserialize_with = "config::nested")]
    filter_group_claims: FilterGroupClaims,
    #[serde(deserialize_with = "config::nested")]
    modify_group_names: ModifyGroupNames,
}

/// The `oidc` connector's settings (Dex's keys; matched case-insensitively).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OidcConfig {
    issuer: String,
    issuer_alias: String,
    #[serde(rename = "clientID")]
    client_id: String,
    client_secret: String,
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
    #[serde(deserialize_with = "config::nested")]
    provider_discovery_overrides: DiscoveryOverrides,
    basic_auth_unsupported: Option<bool>,
    scopes: Vec<String>,
    hosted_domains: Vec<String>,
    #[serde(rename = "rootCAs")]
    root_cas: Vec<String>,
    insecure_skip_email_verified: bool,
    insecure_enable_groups: bool,
    allowed_groups: Vec<String>,
    acr_values: Vec<String>,
    insecure_skip_verify: bool,
    get_user_info: bool,
    #[serde(rename = "userIDKey")]
    user_id_key: String,
    user_name_key: String,
    prompt_type: Option<String>,
    pkce_challenge: Option<bool>,
    override_claim_mapping: bool,
    #[serde(deserialize_with = "config::nested")]
    claim_mapping: ClaimMapping,
    #[serde(deserialize_with = "config::nested")]
    claim_modifications: ClaimModifications,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ConnectorConfig for OidcConfig {
    fn open(self, id: &str, ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        let bad = |key: &str, reason: &str| ConnectorError::InvalidConfig {
            id: id.to_owned(),
            key: Some(key.to_owned()),
            reason: reason.to_owned(),
        };
        if self.issuer.is_empty() {
            return Err(bad("issuer", "required: the upstream's issuer URL"));
        }
        check_url(&self.issuer).map_err(|r| bad("issuer", &r))?;
        if self.client_id.is_empty() {
            return Err(bad("clientID", "required"));
        }
        if self.client_secret.is_empty() {
            return Err(bad("clientSecret", "required"));
        }
        if !self.redirect_uri.is_empty() {
            url::Url::parse(&self.redirect_uri).map_err(|_| bad("redirectURI", "not a URL"))?;
        }
        if self.insecure_skip_verify {
            tracing::warn!(
                connector_id = %id,
                "insecureSkipVerify: the upstream's TLS certificate is NOT verified; configure rootCAs instead"
            );
        }
        let overrides = &self.provider_discovery_overrides;
        for (key, value) in [
            ("providerDiscoveryOverrides.tokenURL", &overrides.token_url),
            ("providerDiscoveryOverrides.authURL", &overrides.auth_url),
            ("providerDiscoveryOverrides.jwksURL", &overrides.jwks_url),
            ("providerDiscoveryOverrides.userInfoURL", &overrides.user_info_url),
        ] {
            if !value.is_empty() {
                check_url(value).map_err(|r| bad(key, &r))?;
            }
        }
        let mut roots = Vec::new();
        for path in &self.root_cas {
            roots.push(std::fs::read(path).map_err(|e| bad("rootCAs", &format!("cannot read a file: {e}")))?);
        }
        let http = Http::new(&roots, self.insecure_skip_verify).map_err(|r| bad("rootCAs", &r))?;
        let groups_filter = match self.claim_modifications.filter_group_claims.groups_filter.as_str() {
            "" => None,
            re => Some(regex::Regex::new(re).map_err(|_| {
                bad("claimModifications.filterGroupClaims.groupsFilter", "not a valid regular expression")
            })?),
        };

        let mut scopes = if self.scopes.is_empty() {
            vec!["profile".to_owned(), "email".to_owned()]
        } else {
            self.scopes.clone()
        };
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        let rules = ClaimRules {
            user_id_key: self.user_id_key.clone(),
            user_name_key: self.user_name_key.clone(),
            override_mapping: self.override_claim_mapping,
            preferred_username_key: self.claim_mapping.preferred_username.clone(),
            email_key: self.claim_mapping.email.clone(),
            groups_key: self.claim_mapping.groups.clone(),
            email_required: scopes.iter().any(|s| s == "email"),
            skip_email_verified: self.insecure_skip_email_verified,
            enable_groups: self.insecure_enable_groups,
            allowed_groups: self.allowed_groups.clone(),
            groups_filter,
            group_prefix: self.claim_modifications.modify_group_names.prefix.clone(),
            group_suffix: self.claim_modifications.modify_group_names.suffix.clone(),
            new_groups: self
                .claim_modifications
                .new_group_from_claims
                .iter()
                .map(|g| NewGroup {
                    claims: g.claims.clone(),
                    delimiter: g.delimiter.clone(),
                    clear_delimiter: g.clear_delimiter,
                    prefix: g.prefix.clone(),
                })
                .collect(),
            hosted_domains: self.hosted_domains.clone(),
        };
        let mut issuers = vec![self.issuer.clone()];
        if !self.issuer_alias.is_empty() {
            issuers.push(self.issuer_alias.clone());
        }
        Ok(Arc::new(OidcConnector {
            id: id.to_owned(),
            issuer: self.issuer.clone(),
            accepted_issuers: issuers,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_uri: self.redirect_uri.clone(),
            scopes,
            acr_values: self.acr_values.clone(),
            prompt_type: self.prompt_type.clone().unwrap_or_else(|| "consent".to_owned()),
            pkce: self.pkce_challenge.unwrap_or(true),
            get_user_info: self.get_user_info,
            basic_auth_unsupported: self.basic_auth_unsupported,
            overrides: self.provider_discovery_overrides.clone(),
            rules,
            http,
            clock: ctx.clock.clone(),
            upstream: OnceCell::new(),
            refreshes: SingleFlight::new(REFRESH_SHARE),
        }))
    }
}

/// What discovery found (with the overrides applied).
#[derive(Debug)]
struct Upstream {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    algs: Vec<Algorithm>,
    basic_auth: bool,
    iss_parameter: bool,
    keys: Arc<KeyCache>,
}

/// What a login keeps until the browser comes back (inside the pending request, never in the
/// browser).
#[derive(Serialize, Deserialize)]
struct LoginState {
    nonce: String,
    #[serde(default)]
    verifier: String,
    /// The redirect URI sent upstream, which the code redemption must repeat.
    redirect_uri: String,
}

/// What an identity keeps to refresh.
#[derive(Serialize, Deserialize, Default)]
struct RefreshData {
    #[serde(default, rename = "refreshToken")]
    refresh_token: String,
}

/// The outcome of an upstream refresh, shareable among the callers of a burst.
#[derive(Clone)]
enum RefreshOutcome {
    Fresh(Box<Identity>),
    Refused(String),
    Failed(String),
}

/// The `oidc` connector.
pub struct OidcConnector {
    id: String,
    issuer: String,
    accepted_issuers: Vec<String>,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    scopes: Vec<String>,
    acr_values: Vec<String>,
    prompt_type: String,
    pkce: bool,
    get_user_info: bool,
    basic_auth_unsupported: Option<bool>,
    overrides: DiscoveryOverrides,
    rules: ClaimRules,
    http: Http,
    clock: SharedClock,
    upstream: OnceCell<Arc<Upstream>>,
    refreshes: SingleFlight<[u8; 32], RefreshOutcome>,
}

impl std::fmt::Debug for OidcConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConnector")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn string_field(doc: &Value, name: &str) -> Option<String> {
    doc.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn alg_by_name(name: &str) -> Option<Algorithm> {
    SUPPORTED_ALGS.iter().copied().find(|a| format!("{a:?}") == name)
}

impl OidcConnector {
    fn upstream_err(&self, what: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Upstream(format!("connector {:?}: {what}", self.id))
    }

    /// Discovery, once (retried on the next use when it fails).
    async fn upstream(&self) -> Result<Arc<Upstream>, ConnectorError> {
        self.upstream.get_or_try_init(|| self.discover()).await.cloned()
    }

    async fn discover(&self) -> Result<Arc<Upstream>, ConnectorError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let doc = self
            .http
            .get_json(&url, None)
            .await
            .map_err(|e| self.upstream_err(format!("discovery at {url} failed: {e}")))?;
        let discovered = string_field(&doc, "issuer").unwrap_or_default();
        if discovered != self.issuer {
            return Err(self.upstream_err(format!(
                "the discovery document names issuer {discovered:?}, not the configured {:?}",
                self.issuer
            )));
        }
        let pick = |override_url: &str, field: &str| -> Result<Option<String>, ConnectorError> {
            let value = if override_url.is_empty() {
                string_field(&doc, field)
            } else {
                Some(override_url.to_owned())
            };
            match value {
                Some(v) => check_url(&v)
                    .map(|_| Some(v))
                    .map_err(|r| self.upstream_err(format!("the upstream's {field} {r}"))),
                None => Ok(None),
            }
        };
        let required = |v: Option<String>, field: &str| {
            v.ok_or_else(|| self.upstream_err(format!("the discovery document has no {field}")))
        };
        let authorization_endpoint =
            required(pick(&self.overrides.auth_url, "authorization_endpoint")?, "authorization_endpoint")?;
        let token_endpoint = required(pick(&self.overrides.token_url, "token_endpoint")?, "token_endpoint")?;
        let jwks_uri = required(pick(&self.overrides.jwks_url, "jwks_uri")?, "jwks_uri")?;
        let userinfo_endpoint = pick(&self.overrides.user_info_url, "userinfo_endpoint")?;
        if self.get_user_info && userinfo_endpoint.is_none() {
            return Err(self.upstream_err("getUserInfo is set but the upstream has no userinfo_endpoint"));
        }
        let algs: Vec<Algorithm> =
            match doc.get("id_token_signing_alg_values_supported").and_then(Value::as_array) {
                Some(list) => list.iter().filter_map(Value::as_str).filter_map(alg_by_name).collect(),
                None => vec![Algorithm::RS256],
            };
        if algs.is_empty() {
            return Err(self.upstream_err("the upstream signs ID tokens with no algorithm Oxidex accepts"));
        }
        let methods: Vec<&str> = doc
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let basic_auth = match self.basic_auth_unsupported {
            Some(unsupported) => !unsupported,
            // Like golang.org/x/oauth2's auto-detection: Basic unless only `post` is offered.
            None => methods.is_empty() || methods.contains(&"client_secret_basic"),
        };
        let iss_parameter =
            doc.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool) == Some(true);
        tracing::info!(connector_id = %self.id, issuer = %self.issuer, "upstream discovered");
        Ok(Arc::new(Upstream {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            algs,
            basic_auth,
            iss_parameter,
            keys: Arc::new(KeyCache::new(jwks_uri, self.http.clone())),
        }))
    }

    /// A grant at the upstream's token endpoint, authenticated as the client.
    async fn token_request(&self, upstream: &Upstream, form: &[(&str, &str)]) -> Result<Value, HttpError> {
        if upstream.basic_auth {
            self.http
                .post_form(&upstream.token_endpoint, form, Some((&self.client_id, &self.client_secret)))
                .await
        } else {
            let mut with_secret = form.to_vec();
            with_secret.push(("client_id", &self.client_id));
            with_secret.push(("client_secret", &self.client_secret));
            self.http.post_form(&upstream.token_endpoint, &with_secret, None).await
        }
    }

    async fn verify(&self, upstream: &Upstream, id_token: &str) -> Result<Map<String, Value>, TokenError> {
        let now = self.clock.now().timestamp();
        let mut last = None;
        for issuer in &self.accepted_issuers {
            let expect = Expect { issuer, client_id: &self.client_id, algs: &upstream.algs, now };
            match verify_id_token(&upstream.keys, id_token, &expect).await {
                Ok(claims) => return Ok(claims),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| TokenError::Invalid("no issuer configured".into())))
    }

    /// The userinfo claims for an access token; `Ok(None)` when the upstream refuses the token.
    async fn userinfo(
        &self,
        upstream: &Upstream,
        access_token: &str,
    ) -> Result<Option<Map<String, Value>>, ConnectorError> {
        let Some(url) = &upstream.userinfo_endpoint else {
            return Err(self.upstream_err("the upstream has no userinfo_endpoint"));
        };
        match self.http.get_json(url, Some(access_token)).await {
            Ok(Value::Object(claims)) => Ok(Some(claims)),
            Ok(_) => Err(self.upstream_err("userinfo is not a JSON object")),
            Err(HttpError::Status { status: 401 | 403, .. }) => Ok(None),
            Err(e) => Err(self.upstream_err(format!("userinfo failed: {e}"))),
        }
    }

    /// Adds the userinfo claims (getUserInfo) to verified ID-token claims; userinfo's `sub`
    /// must be the token's (OIDC Core §5.3.2).
    async fn merge_userinfo(
        &self,
        upstream: &Upstream,
        claims: &mut Map<String, Value>,
        access_token: &str,
    ) -> Result<(), ConnectorError> {
        if !self.get_user_info || access_token.is_empty() {
            return Ok(());
        }
        let Some(info) = self.userinfo(upstream, access_token).await? else {
            return Err(self.upstream_err("userinfo refused the access token the upstream just issued"));
        };
        if info.get("sub") != claims.get("sub") {
            return Err(ConnectorError::InvalidCallback("userinfo describes another user (\"sub\")".into()));
        }
        for (k, v) in info {
            claims.insert(k, v);
        }
        Ok(())
    }

    async fn refresh_upstream(&self, refresh_token: &str, previous: &Identity) -> RefreshOutcome {
        let upstream = match self.upstream().await {
            Ok(u) => u,
            Err(e) => return RefreshOutcome::Failed(e.to_string()),
        };
        let answer = match self
            .token_request(&upstream, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
            .await
        {
            Ok(a) => a,
            Err(HttpError::Status { status: 400 | 401, body: Some(body) })
                if body.get("error").and_then(Value::as_str) == Some("invalid_grant") =>
            {
                return RefreshOutcome::Refused(
                    "the upstream refused the refresh token (invalid_grant)".into(),
                );
            }
            Err(e) => return RefreshOutcome::Failed(format!("the upstream's refresh failed: {e}")),
        };
        let new_refresh = string_field(&answer, "refresh_token").unwrap_or_else(|| refresh_token.to_owned());
        let access_token = string_field(&answer, "access_token").unwrap_or_default();
        let claims = match string_field(&answer, "id_token") {
            Some(id_token) => match self.verify(&upstream, &id_token).await {
                Ok(mut claims) => {
                    if let Err(e) = self.merge_userinfo(&upstream, &mut claims, &access_token).await {
                        return RefreshOutcome::Failed(e.to_string());
                    }
                    Some(claims)
                }
                Err(TokenError::Invalid(reason)) => {
                    return RefreshOutcome::Refused(format!("the refreshed ID token is not valid: {reason}"));
                }
                Err(TokenError::Unavailable(reason)) => return RefreshOutcome::Failed(reason),
            },
            None if self.get_user_info && !access_token.is_empty() => {
                match self.userinfo(&upstream, &access_token).await {
                    Ok(Some(claims)) => Some(claims),
                    Ok(None) => {
                        return RefreshOutcome::Refused("userinfo refused the refreshed token".into());
                    }
                    Err(e) => return RefreshOutcome::Failed(e.to_string()),
                }
            }
            None => None,
        };
        let mut identity = match claims {
            Some(claims) => match self.rules.identity(&claims) {
                Ok(identity) => identity,
                Err(reason) => return RefreshOutcome::Refused(reason),
            },
            // Nothing new to read: the identity stays as it was.
            None => previous.clone(),
        };
        if identity.user_id != previous.user_id {
            return RefreshOutcome::Refused("the upstream now describes another user".into());
        }
        identity.connector_data =
            serde_json::to_vec(&RefreshData { refresh_token: new_refresh }).unwrap_or_default();
        RefreshOutcome::Fresh(Box::new(identity))
    }
}

#[async_trait]
impl CallbackConnector for OidcConnector {
    async fn login_url(
        &self,
        scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let upstream = self.upstream().await?;
        let redirect_uri = if self.redirect_uri.is_empty() { callback_url } else { &self.redirect_uri };
        let mut url = url::Url::parse(&upstream.authorization_endpoint)
            .map_err(|_| self.upstream_err("the authorization endpoint is not a URL"))?;
        let nonce = random_token();
        let verifier = if self.pkce { random_token() } else { String::new() };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("state", state)
                .append_pair("nonce", &nonce);
            if self.pkce {
                q.append_pair("code_challenge", &crate::token::pkce::s256_challenge(&verifier))
                    .append_pair("code_challenge_method", "S256");
            }
            if !self.acr_values.is_empty() {
                q.append_pair("acr_values", &self.acr_values.join(" "));
            }
            if scopes.offline_access && !self.prompt_type.is_empty() {
                q.append_pair("prompt", &self.prompt_type);
            }
        }
        let state_data =
            serde_json::to_vec(&LoginState { nonce, verifier, redirect_uri: redirect_uri.to_owned() })
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        Ok(LoginRedirect { url: url.into(), state_data })
    }

    async fn handle_callback(
        &self,
        _scopes: &ConnectorScopes,
        params: &CallbackParams,
        state_data: &[u8],
    ) -> Result<Identity, ConnectorError> {
        let bad = |m: &str| ConnectorError::InvalidCallback(m.to_owned());
        if let Some(error) = params.get("error") {
            let description = params.get("error_description").unwrap_or_default();
            return Err(ConnectorError::InvalidCallback(format!(
                "the upstream answered {error:?}: {description:?}"
            )));
        }
        let login: LoginState =
            serde_json::from_slice(state_data).map_err(|_| bad("no login is pending for this connector"))?;
        let upstream = self.upstream().await?;
        // RFC 9207: an upstream that announces `iss` must send its own.
        match params.get("iss") {
            Some(iss) if !self.accepted_issuers.iter().any(|i| i == iss) => {
                return Err(bad("the authorization response comes from another issuer (\"iss\")"));
            }
            None if upstream.iss_parameter => {
                return Err(bad("the authorization response lacks the \"iss\" the upstream announces"));
            }
            _ => {}
        }
        let code = params.get("code").filter(|c| !c.is_empty()).ok_or_else(|| bad("no code"))?;
        let mut form =
            vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &login.redirect_uri)];
        if !login.verifier.is_empty() {
            form.push(("code_verifier", &login.verifier));
        }
        let answer = self.token_request(&upstream, &form).await.map_err(|e| match e {
            HttpError::Status { status, body } if (400..500).contains(&status) => {
                let error = body.as_ref().and_then(|b| b.get("error")).and_then(Value::as_str).unwrap_or("");
                ConnectorError::InvalidCallback(format!("the upstream refused the code ({error})"))
            }
            other => self.upstream_err(format!("the token request failed: {other}")),
        })?;
        let id_token =
            string_field(&answer, "id_token").ok_or_else(|| bad("the upstream sent no ID token"))?;
        let mut claims = self.verify(&upstream, &id_token).await.map_err(|e| match e {
            TokenError::Invalid(reason) => ConnectorError::InvalidCallback(reason),
            TokenError::Unavailable(reason) => self.upstream_err(reason),
        })?;
        let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if nonce.len() != login.nonce.len() || !bool::from(nonce.as_bytes().ct_eq(login.nonce.as_bytes())) {
            return Err(bad("the ID token's nonce is not this login's"));
        }
        let access_token = string_field(&answer, "access_token").unwrap_or_default();
        self.merge_userinfo(&upstream, &mut claims, &access_token).await?;
        let mut identity = self.rules.identity(&claims).map_err(ConnectorError::InvalidCallback)?;
        if let Some(refresh_token) = string_field(&answer, "refresh_token") {
            identity.connector_data = serde_json::to_vec(&RefreshData { refresh_token })
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        }
        Ok(identity)
    }
}

#[async_trait]
impl RefreshConnector for OidcConnector {
    async fn refresh(
        &self,
        _scopes: &ConnectorScopes,
        identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        let data: RefreshData = serde_json::from_slice(&identity.connector_data).unwrap_or_default();
        if data.refresh_token.is_empty() {
            return Err(ConnectorError::Refused("the upstream gave no refresh token at login".into()));
        }
        let key: [u8; 32] = Sha256::digest(data.refresh_token.as_bytes()).into();
        let outcome = self
            .refreshes
            .run(
                key,
                |o| !matches!(o, RefreshOutcome::Failed(_)),
                || self.refresh_upstream(&data.refresh_token, &identity),
            )
            .await;
        match outcome {
            RefreshOutcome::Fresh(identity) => Ok(*identity),
            RefreshOutcome::Refused(reason) => Err(ConnectorError::Refused(reason)),
            RefreshOutcome::Failed(reason) => Err(self.upstream_err(reason)),
        }
    }
}

#[async_trait]
impl TokenIdentityConnector for OidcConnector {
    async fn token_identity(
        &self,
        _scopes: &ConnectorScopes,
        subject_token_type: &str,
        subject_token: &str,
    ) -> Result<Identity, ConnectorError> {
        let upstream = self.upstream().await?;
        let claims = match subject_token_type {
            TOKEN_TYPE_ID_TOKEN => self.verify(&upstream, subject_token).await.map_err(|e| match e {
                TokenError::Invalid(reason) => ConnectorError::Refused(reason),
                TokenError::Unavailable(reason) => self.upstream_err(reason),
            })?,
            TOKEN_TYPE_ACCESS_TOKEN if self.get_user_info => {
                self.userinfo(&upstream, subject_token).await?.ok_or_else(|| {
                    ConnectorError::Refused("the upstream does not accept the access token".into())
                })?
            }
            TOKEN_TYPE_ACCESS_TOKEN => {
                return Err(ConnectorError::Refused(
                    "this connector verifies access tokens only with getUserInfo".into(),
                ));
            }
            _ => return Err(ConnectorError::Refused("unsupported subject_token_type".into())),
        };
        self.rules.identity(&claims).map_err(ConnectorError::Refused)
    }
}

impl ConnectorImpl for OidcConnector {
    fn as_callback(&self) -> Option<&dyn CallbackConnector> {
        Some(self)
    }
    fn as_refresh(&self) -> Option<&dyn RefreshConnector> {
        Some(self)
    }
    fn as_token_identity(&self) -> Option<&dyn TokenIdentityConnector> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::storage::{self, memory::MemoryStorage};

    fn open(config: serde_json::Value) -> Result<crate::connector::OpenConnector, ConnectorError> {
        let connector = storage::Connector {
            id: "up".into(),
            r#type: "oidc".into(),
            name: "Upstream".into(),
            config: config.to_string().into_bytes(),
            ..Default::default()
        };
        let ctx = OpenContext::new(Arc::new(MemoryStorage::new()), Arc::new(SystemClock));
        crate::connector::open(&connector, &ctx)
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://idp.example", "clientID": "c", "clientSecret": "hunter2",
            "redirectURI": "https://oxidex.example/dex/callback",
        })
    }

    fn key_of(e: ConnectorError) -> Option<String> {
        match e {
            ConnectorError::InvalidConfig { key, reason, .. } => {
                assert!(!reason.contains("hunter2"), "{reason}");
                key
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn required_keys_and_https_are_checked_naming_the_key() {
        assert!(open(base()).is_ok());
        for (key, value) in [
            ("issuer", serde_json::json!("")),
            ("issuer", serde_json::json!("http://idp.example")),
            ("clientID", serde_json::json!("")),
            ("clientSecret", serde_json::json!("")),
            ("redirectURI", serde_json::json!("not a url")),
        ] {
            let mut c = base();
            c[key] = value;
            assert_eq!(key_of(open(c).err().unwrap()).as_deref(), Some(key));
        }
        let mut c = base();
        c["providerDiscoveryOverrides"] = serde_json::json!({"tokenURL": "http://idp.example/token"});
        assert_eq!(key_of(open(c).err().unwrap()).as_deref(), Some("providerDiscoveryOverrides.tokenURL"));
        let mut c = base();
        c["claimModifications"] = serde_json::json!({"filterGroupClaims": {"groupsFilter": "("}});
        assert_eq!(
            key_of(open(c).err().unwrap()).as_deref(),
            Some("claimModifications.filterGroupClaims.groupsFilter")
        );
    }

    #[test]
    fn nested_keys_match_case_insensitively_and_the_connector_has_every_capability() {
        let mut c = base();
        c["ClaimMapping"] = serde_json::json!({"Preferred_Username": "nick", "EMAIL": "mail"});
        c["claimModifications"] = serde_json::json!({
            "NewGroupFromClaims": [{"Claims": ["a"], "Delimiter": ":", "Prefix": "p"}],
            "modifyGroupNames": {"PREFIX": "x-"},
        });
        c["insecureSkipVerify"] = serde_json::json!(true);
        let parsed: OidcConfig = crate::connector::config::parse(&storage::Connector {
            id: "up".into(),
            config: c.to_string().into_bytes(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(parsed.claim_mapping.preferred_username, "nick");
        assert_eq!(parsed.claim_mapping.email, "mail");
        assert_eq!(parsed.claim_modifications.new_group_from_claims[0].prefix, "p");
        assert_eq!(parsed.claim_modifications.modify_group_names.prefix, "x-");
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let opened = open(c).unwrap();
        assert!(
            opened.callback().is_some() && opened.refresh().is_some() && opened.token_identity().is_some()
        );
        assert!(opened.password().is_none());
        assert!(!format!("{opened:?}").contains("hunter2"));
    }
}
