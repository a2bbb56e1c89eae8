//! `gitlab`: login with GitLab.com or a self-hosted GitLab (Dex's `connector/gitlab`).
//!
//! The browser goes to `{baseURL}/oauth/authorize` with the scopes `read_user openid`; the code
//! is exchanged at `{baseURL}/oauth/token`, then:
//!
//! ```text
//! GET {baseURL}/api/v4/user        id, username, name, email
//! GET {baseURL}/oauth/userinfo     groups (full paths) and, with getGroupsPermission, the
//!                                  owner/maintainer/developer claims that add "group:role"
//! ```
//!
//! With `groups`, only members of one of them may log in, and the groups claim is reduced to
//! them. The tokens are kept (`{"accessToken", "refreshToken"}`, Dex's format): a refresh uses
//! the GitLab refresh token (or, failing that, the access token) and re-reads the user. A GitLab
//! access token can also be exchanged for Oxidex tokens (RFC 8693, [`TokenIdentityConnector`]).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::config::ConnectorConfig;
use super::oauth2::{
    self, AuthStyle, LoginState, OAuth2Client, RootCa, Secret, TokenResponse, invalid, require,
};
use super::{
    CallbackConnector, CallbackParams, ConnectorError, ConnectorImpl, ConnectorScopes, Identity,
    LoginRedirect, OpenContext, RefreshConnector, TokenIdentityConnector,
};

const DEFAULT_BASE_URL: &str = "https://gitlab.com";
/// Read access to `/api/v4/user`.
const SCOPE_USER: &str = "read_user";
/// The userinfo endpoint (groups).
const SCOPE_OPENID: &str = "openid";

/// The `gitlab` settings (Dex's keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GitLabConfig {
    #[serde(rename = "baseURL")]
    base_url: String,
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "clientSecret")]
    client_secret: Secret,
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
    /// Only members of one of these groups may log in.
    groups: Vec<String>,
    #[serde(rename = "useLoginAsID")]
    use_login_as_id: bool,
    #[serde(rename = "getGroupsPermission")]
    get_groups_permission: bool,
    /// Base64 of PEM root certificates (a Go `[]byte`).
    #[serde(rename = "rootCAData")]
    root_ca_data: String,
}

impl ConnectorConfig for GitLabConfig {
    fn open(self, id: &str, _ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        Ok(Arc::new(GitLabConnector::open(id, self)?))
    }
}

/// The `gitlab` connector.
#[derive(Debug)]
pub(crate) struct GitLabConnector {
    id: String,
    base_url: String,
    redirect_uri: String,
    groups: Vec<String>,
    use_login_as_id: bool,
    get_groups_permission: bool,
    oauth: OAuth2Client,
}

/// What is kept for refreshes (Dex's `connectorData`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConnectorData {
    #[serde(rename = "accessToken", default)]
    access_token: String,
    #[serde(rename = "refreshToken", default)]
    refresh_token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    id: i64,
    name: String,
    username: String,
    email: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserInfo {
    groups: Vec<String>,
    #[serde(rename = "https://gitlab.org/claims/groups/owner")]
    owner: Vec<String>,
    #[serde(rename = "https://gitlab.org/claims/groups/maintainer")]
    maintainer: Vec<String>,
    #[serde(rename = "https://gitlab.org/claims/groups/developer")]
    developer: Vec<String>,
}

impl GitLabConnector {
    fn open(id: &str, c: GitLabConfig) -> Result<Self, ConnectorError> {
        let base_url = if c.base_url.is_empty() {
            DEFAULT_BASE_URL.to_owned()
        } else {
            oauth2::require_url(id, "baseURL", &c.base_url)?
        };
        require(id, "clientID", &c.client_id)?;
        if c.client_secret.is_empty() {
            return Err(invalid(id, "clientSecret", "required; it is empty or missing"));
        }
        let mut roots = Vec::new();
        if !c.root_ca_data.is_empty() {
            roots.push(RootCa::Pem("rootCAData", oauth2::root_ca_data(id, "rootCAData", &c.root_ca_data)?));
        }
        let http = oauth2::http_client(id, &roots, false)?;
        let oauth = OAuth2Client::new(
            id,
            &c.client_id,
            &c.client_secret,
            &format!("{base_url}/oauth/authorize"),
            &format!("{base_url}/oauth/token"),
            AuthStyle::Auto,
            http,
        );
        Ok(Self {
            id: id.to_owned(),
            base_url,
            redirect_uri: c.redirect_uri,
            groups: c.groups,
            use_login_as_id: c.use_login_as_id,
            get_groups_permission: c.get_groups_permission,
            oauth,
        })
    }

    fn groups_required(&self, scopes: &ConnectorScopes) -> bool {
        !self.groups.is_empty() || scopes.groups
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        what: &str,
    ) -> Result<T, ConnectorError> {
        let request = self.oauth.http().get(format!("{}{path}", self.base_url)).bearer_auth(token);
        let answer = oauth2::send(&self.id, what, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error(&self.id, what));
        }
        answer.json(&self.id, what)
    }

    /// The user's groups from userinfo, with `group:role` entries when asked, filtered by
    /// `groups` ([`ConnectorError::Refused`] when none is left).
    async fn user_groups(
        &self,
        token: &str,
        scopes: &ConnectorScopes,
        login: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        let info: UserInfo = self.get(token, "/oauth/userinfo", "get userinfo").await?;
        let mut groups = info.groups.clone();
        if self.get_groups_permission {
            for group in &info.groups {
                let role = [
                    ("owner", &info.owner),
                    ("maintainer", &info.maintainer),
                    ("developer", &info.developer),
                ]
                .into_iter()
                .find(|(_, paths)| paths.iter().any(|p| within(group, p)));
                if let Some((role, _)) = role {
                    groups.push(format!("{group}:{role}"));
                }
            }
        }
        if !self.groups.is_empty() {
            let filtered = oauth2::filter_groups(&groups, &self.groups);
            if filtered.is_empty() {
                return Err(ConnectorError::Refused(format!(
                    "the GitLab user {login:?} is not in any of the required groups"
                )));
            }
            return Ok(filtered);
        }
        Ok(if scopes.groups { groups } else { Vec::new() })
    }

    async fn identity(
        &self,
        scopes: &ConnectorScopes,
        token: &TokenResponse,
    ) -> Result<Identity, ConnectorError> {
        let user: User = self.get(&token.access_token, "/api/v4/user", "get user").await?;
        let mut identity = Identity {
            user_id: if self.use_login_as_id { user.username.clone() } else { user.id.to_string() },
            username: if user.name.is_empty() { user.email.clone() } else { user.name.clone() },
            preferred_username: user.username.clone(),
            email: user.email.clone(),
            email_verified: true,
            ..Default::default()
        };
        if self.groups_required(scopes) {
            identity.groups = self.user_groups(&token.access_token, scopes, &user.username).await?;
        }
        if scopes.offline_access {
            let data = ConnectorData {
                access_token: token.access_token.clone(),
                refresh_token: token.refresh_token.clone(),
            };
            identity.connector_data = serde_json::to_vec(&data).unwrap_or_default();
        }
        Ok(identity)
    }
}

/// Whether `group` is `path` or one of its subgroups (`a/b` is within `a`, `ab` is not).
fn within(group: &str, path: &str) -> bool {
    group == path || group.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
}

#[async_trait]
impl CallbackConnector for GitLabConnector {
    async fn login_url(
        &self,
        scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let redirect_uri = oauth2::redirect_uri(&self.id, &self.redirect_uri, callback_url);
        // As Dex: `openid` (for the userinfo groups) only when groups are needed.
        let scopes = if self.groups_required(scopes) {
            vec![SCOPE_USER.to_owned(), SCOPE_OPENID.to_owned()]
        } else {
            vec![SCOPE_USER.to_owned()]
        };
        let url = self.oauth.authorization_url(&redirect_uri, &scopes, state, &[])?;
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
        self.identity(scopes, &token).await
    }
}

#[async_trait]
impl RefreshConnector for GitLabConnector {
    async fn refresh(
        &self,
        scopes: &ConnectorScopes,
        identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        let data: ConnectorData = serde_json::from_slice(&identity.connector_data).map_err(|_| {
            ConnectorError::Refused("no readable upstream token was kept for this login".into())
        })?;
        let token = if !data.refresh_token.is_empty() {
            self.oauth.refresh(&data.refresh_token).await?
        } else if !data.access_token.is_empty() {
            TokenResponse { access_token: data.access_token, ..Default::default() }
        } else {
            return Err(ConnectorError::Refused("no upstream refresh or access token was kept".into()));
        };
        let mut fresh = self.identity(scopes, &token).await?;
        if fresh.connector_data.is_empty() {
            fresh.connector_data = identity.connector_data;
        }
        Ok(fresh)
    }
}

#[async_trait]
impl TokenIdentityConnector for GitLabConnector {
    /// Verifies a GitLab access token by reading the user with it. As in Dex, groups are
    /// always read (the token endpoint decides from the requested scopes whether they show).
    async fn token_identity(
        &self,
        _scopes: &ConnectorScopes,
        _subject_token_type: &str,
        subject_token: &str,
    ) -> Result<Identity, ConnectorError> {
        if subject_token.is_empty() {
            return Err(ConnectorError::Refused("the subject token is empty".into()));
        }
        let token = TokenResponse { access_token: subject_token.to_owned(), ..Default::default() };
        let scopes = ConnectorScopes { groups: true, offline_access: false };
        self.identity(&scopes, &token).await
    }
}

impl ConnectorImpl for GitLabConnector {
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

    fn open(config: serde_json::Value) -> Result<GitLabConnector, ConnectorError> {
        GitLabConnector::open("gl", serde_json::from_value(config).unwrap())
    }

    #[test]
    fn defaults_and_config_errors() {
        let c = open(serde_json::json!({"clientID": "id", "clientSecret": "s"})).unwrap();
        assert_eq!(c.base_url, "https://gitlab.com");
        let c = open(
            serde_json::json!({"clientID": "id", "clientSecret": "s", "baseURL": "https://git.example/"}),
        )
        .unwrap();
        assert_eq!(c.base_url, "https://git.example");
        let e = open(serde_json::json!({"clientID": "id", "clientSecret": "s", "baseURL": "git.example"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key \"baseURL\""), "{e}");
        let e = open(serde_json::json!({"clientID": "id", "clientSecret": "s", "rootCAData": "%%%"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key \"rootCAData\""), "{e}");
        let e = open(serde_json::json!({"clientID": "id"})).unwrap_err().to_string();
        assert!(e.contains("key \"clientSecret\""), "{e}");
    }

    #[test]
    fn subgroups_inherit_roles() {
        assert!(within("ops", "ops"));
        assert!(within("ops/infra", "ops"));
        assert!(!within("operations", "ops"));
        assert!(!within("ops", "ops/infra"));
    }

    #[tokio::test]
    async fn login_url_asks_for_read_user_and_openid_for_groups() {
        let c = open(serde_json::json!({"clientID": "id", "clientSecret": "s"})).unwrap();
        let r = c.login_url(&ConnectorScopes::default(), "https://id.example/cb", "st").await.unwrap();
        assert!(r.url.starts_with("https://gitlab.com/oauth/authorize?"), "{}", r.url);
        assert!(r.url.contains("scope=read_user&"), "{}", r.url);
        let groups = ConnectorScopes { groups: true, offline_access: false };
        let r = c.login_url(&groups, "https://id.example/cb", "st").await.unwrap();
        assert!(r.url.contains("scope=read_user+openid"), "{}", r.url);
    }

    /// A fake GitLab API on loopback: `/api/v4/user` and `/oauth/userinfo` for the token
    /// `good`, 401 for any other.
    async fn fake_gitlab() -> String {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        fn authorized(h: &HeaderMap) -> bool {
            h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer good")
        }
        let app = axum::Router::new()
            .route(
                "/api/v4/user",
                axum::routing::get(|h: HeaderMap| async move {
                    if !authorized(&h) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    axum::Json(
                        serde_json::json!({"id": 5, "username": "jane", "name": "", "email": "j@x.example"}),
                    )
                    .into_response()
                }),
            )
            .route(
                "/oauth/userinfo",
                axum::routing::get(|h: HeaderMap| async move {
                    if !authorized(&h) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    axum::Json(serde_json::json!({"sub": "5", "groups": ["ops", "dev/api"]})).into_response()
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn token_identity_reads_the_user_and_groups_of_a_gitlab_token() {
        let base = fake_gitlab().await;
        let c = open(serde_json::json!({"clientID": "id", "clientSecret": "s", "baseURL": base})).unwrap();
        let access = "urn:ietf:params:oauth:token-type:access_token";
        let id = c.token_identity(&ConnectorScopes::default(), access, "good").await.unwrap();
        // As Dex: groups are always read; an empty name falls back to the email.
        assert_eq!(
            (id.user_id.as_str(), id.username.as_str(), id.preferred_username.as_str(), id.email.as_str()),
            ("5", "j@x.example", "jane", "j@x.example")
        );
        assert_eq!(id.groups, vec!["ops", "dev/api"]);
        assert!(id.connector_data.is_empty());
        let e = c.token_identity(&ConnectorScopes::default(), access, "revoked").await.unwrap_err();
        assert!(matches!(e, ConnectorError::Refused(_)), "{e:?}");
        let e = c.token_identity(&ConnectorScopes::default(), access, "").await.unwrap_err();
        assert!(matches!(e, ConnectorError::Refused(_)), "{e:?}");
    }

    #[tokio::test]
    async fn refresh_without_tokens_is_refused() {
        let c = open(serde_json::json!({"clientID": "id", "clientSecret": "s"})).unwrap();
        let e = c.refresh(&ConnectorScopes::default(), Identity::default()).await.unwrap_err();
        assert!(matches!(e, ConnectorError::Refused(_)), "{e:?}");
        let id = Identity { connector_data: b"{}".to_vec(), ..Default::default() };
        let e = c.refresh(&ConnectorScopes::default(), id).await.unwrap_err();
        assert!(matches!(e, ConnectorError::Refused(_)), "{e:?}");
    }
}
