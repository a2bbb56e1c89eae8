//! `microsoft`: login with Microsoft Entra ID (Azure AD) or personal Microsoft accounts (Dex's
//! `connector/microsoft`).
//!
//! The browser goes to `{apiURL}/{tenant}/oauth2/v2.0/authorize`; the code is exchanged at
//! `…/token`, then Microsoft Graph is read with the access token:
//!
//! ```text
//! GET  {graphURL}/v1.0/me?$select=id,displayName,userPrincipalName,mailNickname,onPremisesSamAccountName
//! POST {graphURL}/v1.0/me/getMemberGroups          group ids (follows @odata.nextLink)
//! POST {graphURL}/v1.0/directoryObjects/getByIds   names, at most 1,000 ids a request
//! ```
//!
//! Groups are read only for an organisation's tenant (not `common`, `organizations` or
//! `consumers`) and only when `groups` is set or the client asks for them. Graph refuses more
//! than 1,000 ids in one `getByIds` call (Dex issue #2442, PR #4833): the ids are always sent in
//! batches, so users in thousands of groups can log in (`batchGroupLookups` is accepted and
//! changes nothing). With `groups`, a user in none of them is refused; with
//! `useGroupsAsWhitelist` the claim is reduced to them. The tokens are kept (`{"accessToken",
//! "refreshToken", "expiry"}`, Dex's format) and a refresh uses the Microsoft refresh token
//! once the access token has expired.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::ConnectorConfig;
use super::oauth2::{
    self, AuthStyle, LoginState, MAX_PAGES, OAuth2Client, Secret, TokenResponse, invalid, require,
};
use super::{
    CallbackConnector, CallbackParams, ConnectorError, ConnectorImpl, ConnectorScopes, Identity,
    LoginRedirect, OpenContext, RefreshConnector,
};
use crate::clock::SharedClock;

const DEFAULT_API_URL: &str = "https://login.microsoftonline.com";
const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
const SCOPE_USER: &str = "user.read";
/// Listing a user's groups and resolving their ids to names.
const SCOPE_GROUPS: &str = "directory.read.all";
const SCOPE_OFFLINE: &str = "offline_access";
/// Graph's limit of ids per `directoryObjects/getByIds` request.
const GET_BY_IDS_BATCH: usize = 1000;

/// The `microsoft` settings (Dex's keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MicrosoftConfig {
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "clientSecret")]
    client_secret: Secret,
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
    /// `common` (default), `organizations`, `consumers` or a tenant id or domain.
    tenant: String,
    #[serde(rename = "onlySecurityGroups")]
    only_security_groups: bool,
    groups: Vec<String>,
    /// `name` (default) or `id`.
    #[serde(rename = "groupNameFormat")]
    group_name_format: String,
    #[serde(rename = "useGroupsAsWhitelist")]
    use_groups_as_whitelist: bool,
    #[serde(rename = "emailToLowercase")]
    email_to_lowercase: bool,
    /// Dex master's opt-in batching; batching is always on here.
    #[serde(rename = "batchGroupLookups")]
    batch_group_lookups: bool,
    #[serde(rename = "apiURL")]
    api_url: String,
    #[serde(rename = "graphURL")]
    graph_url: String,
    #[serde(rename = "promptType")]
    prompt_type: String,
    #[serde(rename = "domainHint")]
    domain_hint: String,
    scopes: Vec<String>,
    /// `name`, `email`, `mailNickname` or `onPremisesSamAccountName`; empty: none.
    #[serde(rename = "preferredUsernameField")]
    preferred_username_field: String,
}

impl ConnectorConfig for MicrosoftConfig {
    fn open(self, id: &str, ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        Ok(Arc::new(MicrosoftConnector::open(id, self, ctx.clock.clone())?))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupNameFormat {
    Name,
    Id,
}

/// The `microsoft` connector.
#[derive(Debug)]
pub(crate) struct MicrosoftConnector {
    id: String,
    redirect_uri: String,
    tenant: String,
    graph_url: String,
    only_security_groups: bool,
    groups: Vec<String>,
    group_name_format: GroupNameFormat,
    use_groups_as_whitelist: bool,
    email_to_lowercase: bool,
    prompt_type: String,
    domain_hint: String,
    scopes: Vec<String>,
    preferred_username_field: String,
    oauth: OAuth2Client,
    clock: SharedClock,
}

/// What is kept for refreshes (Dex's `connectorData`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConnectorData {
    #[serde(rename = "accessToken", default)]
    access_token: String,
    #[serde(rename = "refreshToken", default)]
    refresh_token: String,
    #[serde(default)]
    expiry: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    id: String,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "userPrincipalName")]
    user_principal_name: Option<String>,
    #[serde(rename = "mailNickname")]
    mail_nickname: Option<String>,
    #[serde(rename = "onPremisesSamAccountName")]
    on_premises_sam_account_name: Option<String>,
}

/// A Graph collection page.
#[derive(Debug, Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Group {
    #[serde(rename = "displayName")]
    display_name: Option<String>,
}

impl MicrosoftConnector {
    fn open(id: &str, c: MicrosoftConfig, clock: SharedClock) -> Result<Self, ConnectorError> {
        require(id, "clientID", &c.client_id)?;
        if c.client_secret.is_empty() {
            return Err(invalid(id, "clientSecret", "required; it is empty or missing"));
        }
        let api_url = if c.api_url.is_empty() {
            DEFAULT_API_URL.to_owned()
        } else {
            oauth2::require_url(id, "apiURL", &c.api_url)?
        };
        let graph_url = if c.graph_url.is_empty() {
            DEFAULT_GRAPH_URL.to_owned()
        } else {
            oauth2::require_url(id, "graphURL", &c.graph_url)?
        };
        let tenant = if c.tenant.is_empty() { "common".to_owned() } else { c.tenant };
        if tenant.contains(['/', '?', '#']) {
            return Err(invalid(
                id,
                "tenant",
                "must be common, organizations, consumers or a tenant id or domain",
            ));
        }
        let group_name_format = match c.group_name_format.as_str() {
            "" | "name" => GroupNameFormat::Name,
            "id" => GroupNameFormat::Id,
            _ => return Err(invalid(id, "groupNameFormat", "must be \"name\" or \"id\"")),
        };
        if !matches!(
            c.preferred_username_field.as_str(),
            "" | "name" | "email" | "mailNickname" | "onPremisesSamAccountName"
        ) {
            tracing::warn!(connector_id = %id, "microsoft: unknown preferredUsernameField; preferred_username stays empty");
        }
        if c.batch_group_lookups {
            tracing::debug!(connector_id = %id, "microsoft: batchGroupLookups is always on in Oxidex");
        }
        let http = oauth2::http_client(id, &[], false)?;
        let oauth = OAuth2Client::new(
            id,
            &c.client_id,
            &c.client_secret,
            &format!("{api_url}/{tenant}/oauth2/v2.0/authorize"),
            &format!("{api_url}/{tenant}/oauth2/v2.0/token"),
            AuthStyle::Auto,
            http,
        );
        Ok(Self {
            id: id.to_owned(),
            redirect_uri: c.redirect_uri,
            tenant,
            graph_url,
            only_security_groups: c.only_security_groups,
            groups: c.groups,
            group_name_format,
            use_groups_as_whitelist: c.use_groups_as_whitelist,
            email_to_lowercase: c.email_to_lowercase,
            prompt_type: c.prompt_type,
            domain_hint: c.domain_hint,
            scopes: c.scopes,
            preferred_username_field: c.preferred_username_field,
            oauth,
            clock,
        })
    }

    fn is_org_tenant(&self) -> bool {
        !matches!(self.tenant.as_str(), "common" | "consumers" | "organizations")
    }

    fn groups_required(&self, scopes: &ConnectorScopes) -> bool {
        (!self.groups.is_empty() || scopes.groups) && self.is_org_tenant()
    }

    fn scopes(&self, scopes: &ConnectorScopes) -> Vec<String> {
        let mut out = if self.scopes.is_empty() { vec![SCOPE_USER.to_owned()] } else { self.scopes.clone() };
        if self.groups_required(scopes) {
            out.push(SCOPE_GROUPS.to_owned());
        }
        if scopes.offline_access {
            out.push(SCOPE_OFFLINE.to_owned());
        }
        out
    }

    fn graph_error(&self, answer: &oauth2::Answer, what: &str) -> ConnectorError {
        // Graph errors are {"error": {"code", "message"}}.
        let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
        let code = parsed.as_ref().and_then(|v| v["error"]["code"].as_str()).map(|c| oauth2::sanitize(c, 64));
        match code {
            Some(code) if answer.status != reqwest::StatusCode::UNAUTHORIZED => {
                let message =
                    parsed.as_ref().and_then(|v| v["error"]["message"].as_str()).unwrap_or_default();
                ConnectorError::Upstream(format!(
                    "connector {:?}: {what}: HTTP {}: {code}: {}",
                    self.id,
                    answer.status,
                    oauth2::sanitize(message, 200)
                ))
            }
            _ => answer.error(&self.id, what),
        }
    }

    async fn user(&self, token: &str) -> Result<User, ConnectorError> {
        let url = format!(
            "{}/v1.0/me?$select=id,displayName,userPrincipalName,mailNickname,onPremisesSamAccountName",
            self.graph_url
        );
        let answer =
            oauth2::send(&self.id, "get user", self.oauth.http().get(url).bearer_auth(token)).await?;
        if !answer.status.is_success() {
            return Err(self.graph_error(&answer, "get user"));
        }
        answer.json(&self.id, "get user")
    }

    /// POSTs `body` to `url` and then to every `@odata.nextLink`, collecting the values.
    async fn post_all<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        url: String,
        body: &Value,
        what: &str,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut url = url;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let request = self.oauth.http().post(&url).bearer_auth(token).json(body);
            let answer = oauth2::send(&self.id, what, request).await?;
            if !answer.status.is_success() {
                return Err(self.graph_error(&answer, what));
            }
            let page: Page<T> = answer.json(&self.id, what)?;
            out.extend(page.value);
            match page.next_link.filter(|n| !n.is_empty()) {
                Some(next) if oauth2::same_origin(&self.graph_url, &next) => url = next,
                Some(_) => {
                    return Err(ConnectorError::Upstream(format!(
                        "connector {:?}: {what}: a nextLink leaves the Graph host",
                        self.id
                    )));
                }
                None => return Ok(out),
            }
        }
        Err(ConnectorError::Upstream(format!("connector {:?}: {what}: more than {MAX_PAGES} pages", self.id)))
    }

    async fn group_names(&self, token: &str, ids: &[String]) -> Result<Vec<String>, ConnectorError> {
        let mut names = Vec::with_capacity(ids.len());
        for batch in ids.chunks(GET_BY_IDS_BATCH) {
            let body = json!({"ids": batch, "types": ["group"]});
            let url = format!("{}/v1.0/directoryObjects/getByIds", self.graph_url);
            let groups: Vec<Group> = self.post_all(token, url, &body, "resolve group names").await?;
            names.extend(groups.into_iter().filter_map(|g| g.display_name));
        }
        Ok(names)
    }

    async fn user_groups(&self, token: &str, user_id: &str) -> Result<Vec<String>, ConnectorError> {
        let body = json!({"securityEnabledOnly": self.only_security_groups});
        let url = format!("{}/v1.0/me/getMemberGroups", self.graph_url);
        let ids: Vec<String> = self.post_all(token, url, &body, "list group memberships").await?;
        let groups = match self.group_name_format {
            GroupNameFormat::Id => ids,
            GroupNameFormat::Name => self.group_names(token, &ids).await?,
        };
        // As Dex: `groups` admits users in at least one of them; `useGroupsAsWhitelist`
        // reduces the claim to them (to nothing when `groups` is empty).
        let filtered = oauth2::filter_groups(&groups, &self.groups);
        if !self.groups.is_empty() && filtered.is_empty() {
            return Err(ConnectorError::Refused(format!(
                "the Microsoft user {user_id:?} is not in any of the required groups"
            )));
        }
        Ok(if self.use_groups_as_whitelist { filtered } else { groups })
    }

    async fn identity(&self, scopes: &ConnectorScopes, token: &str) -> Result<Identity, ConnectorError> {
        let user = self.user(token).await?;
        let name = user.display_name.clone().unwrap_or_default();
        let mut email = user.user_principal_name.clone().unwrap_or_default();
        if self.email_to_lowercase {
            email = email.to_lowercase();
        }
        let preferred_username = match self.preferred_username_field.as_str() {
            "name" => name.clone(),
            "email" => email.clone(),
            "mailNickname" => user.mail_nickname.clone().unwrap_or_default(),
            "onPremisesSamAccountName" => user.on_premises_sam_account_name.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let mut identity = Identity {
            user_id: user.id.clone(),
            username: name,
            preferred_username,
            email,
            email_verified: true,
            ..Default::default()
        };
        if self.groups_required(scopes) {
            identity.groups = self.user_groups(token, &user.id).await?;
        }
        Ok(identity)
    }

    fn connector_data(&self, token: &TokenResponse) -> Vec<u8> {
        let data = ConnectorData {
            access_token: token.access_token.clone(),
            refresh_token: token.refresh_token.clone(),
            expiry: token.expiry(self.clock.now()),
        };
        serde_json::to_vec(&data).unwrap_or_default()
    }
}

#[async_trait]
impl CallbackConnector for MicrosoftConnector {
    async fn login_url(
        &self,
        scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let redirect_uri = oauth2::redirect_uri(&self.id, &self.redirect_uri, callback_url);
        let extra = [("prompt", self.prompt_type.as_str()), ("domain_hint", self.domain_hint.as_str())];
        let url = self.oauth.authorization_url(&redirect_uri, &self.scopes(scopes), state, &extra)?;
        Ok(LoginRedirect { url, state_data: LoginState { redirect_uri, nonce: String::new() }.encode() })
    }

    async fn handle_callback(
        &self,
        scopes: &ConnectorScopes,
        params: &CallbackParams,
        state_data: &[u8],
    ) -> Result<Identity, ConnectorError> {
        let code = oauth2::authorization_code(params)?;
        let state = LoginState::decode(state_data, &self.redirect_uri);
        let token = self.oauth.exchange_code(code, &state.redirect_uri).await?;
        let mut identity = self.identity(scopes, &token.access_token).await?;
        if scopes.offline_access {
            identity.connector_data = self.connector_data(&token);
        }
        Ok(identity)
    }
}

#[async_trait]
impl RefreshConnector for MicrosoftConnector {
    async fn refresh(
        &self,
        scopes: &ConnectorScopes,
        identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        let data: ConnectorData = oauth2::kept_tokens(&identity.connector_data)?;
        // Go's oauth2: a token is valid until ten seconds before its expiry; no expiry, forever.
        let valid = !data.access_token.is_empty()
            && data
                .expiry
                .is_none_or(|e| e.timestamp() <= 0 || e > self.clock.now() + chrono::Duration::seconds(10));
        let (access_token, connector_data) = if valid {
            (data.access_token, identity.connector_data.clone())
        } else if !data.refresh_token.is_empty() {
            let token = self.oauth.refresh(&data.refresh_token).await?;
            let kept = self.connector_data(&token);
            (token.access_token, kept)
        } else {
            return Err(ConnectorError::Refused(
                "the upstream access token expired and no refresh token was kept".into(),
            ));
        };
        let fresh = self.identity(scopes, &access_token).await?;
        Ok(Identity {
            user_id: identity.user_id,
            connector_data,
            groups: if self.groups_required(scopes) { fresh.groups } else { identity.groups },
            ..fresh
        })
    }
}

impl ConnectorImpl for MicrosoftConnector {
    fn as_callback(&self) -> Option<&dyn CallbackConnector> {
        Some(self)
    }
    fn as_refresh(&self) -> Option<&dyn RefreshConnector> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn open(config: Value) -> Result<MicrosoftConnector, ConnectorError> {
        MicrosoftConnector::open("ms", serde_json::from_value(config).unwrap(), Arc::new(SystemClock))
    }

    #[tokio::test]
    async fn login_url_like_dex() {
        let c = open(json!({"clientID": "cid", "clientSecret": "s", "tenant": "9b1c3439"})).unwrap();
        let r = c.login_url(&ConnectorScopes::default(), "https://id.example/cb", "st").await.unwrap();
        let u = url::Url::parse(&r.url).unwrap();
        assert_eq!(u.path(), "/9b1c3439/oauth2/v2.0/authorize");
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "user.read");
        assert_eq!(q["client_id"], "cid");
        assert!(!q.contains_key("prompt") && !q.contains_key("domain_hint"));
        let c = open(json!({"clientID": "cid", "clientSecret": "s", "tenant": "t1", "promptType": "consent",
            "domainHint": "example.com"}))
        .unwrap();
        let r = c
            .login_url(&ConnectorScopes { groups: true, offline_access: true }, "https://id.example/cb", "st")
            .await
            .unwrap();
        let q: std::collections::HashMap<_, _> =
            url::Url::parse(&r.url).unwrap().query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "user.read directory.read.all offline_access");
        assert_eq!((q["prompt"].as_str(), q["domain_hint"].as_str()), ("consent", "example.com"));
    }

    #[test]
    fn groups_only_for_organisation_tenants() {
        let groups = ConnectorScopes { groups: true, offline_access: false };
        for t in ["", "common", "organizations", "consumers"] {
            let c = open(json!({"clientID": "c", "clientSecret": "s", "tenant": t})).unwrap();
            assert!(!c.groups_required(&groups), "{t}");
        }
        let c =
            open(json!({"clientID": "c", "clientSecret": "s", "tenant": "contoso.onmicrosoft.com"})).unwrap();
        assert!(c.groups_required(&groups));
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = open(json!({"clientID": "c", "clientSecret": "s", "groupNameFormat": "mail"})).unwrap_err();
        assert!(e.to_string().contains("key \"groupNameFormat\""), "{e}");
        let e = open(json!({"clientID": "c", "clientSecret": "s", "graphURL": "graph"})).unwrap_err();
        assert!(e.to_string().contains("key \"graphURL\""), "{e}");
    }

    #[test]
    fn dex_connector_data_is_read() {
        let d: ConnectorData = serde_json::from_str(
            r#"{"accessToken":"a","refreshToken":"r","expiry":"2024-05-01T10:00:00.123456789+02:00"}"#,
        )
        .unwrap();
        assert_eq!(d.expiry.unwrap().timestamp(), 1714550400);
        let d: ConnectorData =
            serde_json::from_str(r#"{"accessToken":"a","refreshToken":"r","expiry":"0001-01-01T00:00:00Z"}"#)
                .unwrap();
        assert!(d.expiry.unwrap().timestamp() < 0);
    }
}
