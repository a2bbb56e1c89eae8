//! `github`: login with GitHub or GitHub Enterprise (Dex's `connector/github`).
//!
//! The browser goes to GitHub's `/login/oauth/authorize` with the scopes `user:email` (plus
//! `read:org` when orgs are configured or groups are requested); the code comes back and is
//! exchanged for an access token, with which the connector reads:
//!
//! ```text
//! GET /user                      id, login, name, public email
//! GET /user/emails   (paginated) when the public email is empty: the preferred-domain email,
//!                                else the primary verified one (GHE emails count as verified)
//! GET /orgs/{org}/members/{login}  204 = member (orgs filter)
//! GET /user/teams    (paginated) team names/slugs per org
//! GET /user/orgs     (paginated) with loadAllGroups
//! ```
//!
//! Pages are followed through `Link: <...>; rel="next"` (only on the API's own origin). Groups
//! are formed as Dex does: with `orgs`, `org:team` for the user's teams in each org they belong
//! to (all teams of orgs without a `teams` list, the listed ones otherwise), and the login is
//! refused when no org admits the user; with `loadAllGroups` (and no orgs), every org name and
//! its `org:team` entries; with the legacy `org`, the user's team names in that org. The access
//! token is kept (`{"accessToken": ...}`, Dex's format) so that a refresh re-reads the user and
//! their groups: a revoked token or a user who left the orgs is [`ConnectorError::Refused`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::ConnectorConfig;
use super::oauth2::{
    self, AuthStyle, LoginState, MAX_PAGES, OAuth2Client, RootCa, Secret, TokenResponse, invalid, require,
};
use super::{
    CallbackConnector, CallbackParams, ConnectorError, ConnectorImpl, ConnectorScopes, Identity,
    LoginRedirect, OpenContext, RefreshConnector,
};
use crate::clock::SharedClock;

const GITHUB_AUTH_URL: &str = "https://github.com/login/oauth/authorize";
const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
const GITHUB_API_URL: &str = "https://api.github.com";
/// The REST API version Dex asks for.
const API_VERSION: &str = "2022-11-28";
const SCOPE_EMAIL: &str = "user:email";
const SCOPE_ORGS: &str = "read:org";

/// One entry of `orgs`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct OrgConfig {
    /// The organization's login.
    name: String,
    /// Teams of the organization that may log in; empty means every member.
    teams: Vec<String>,
}

/// The `github` settings (Dex's keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GitHubConfig {
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "clientSecret")]
    client_secret: Secret,
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
    /// Deprecated: one org, groups are its team names.
    org: String,
    orgs: Vec<OrgConfig>,
    /// GitHub Enterprise host: the API is `https://HOST/api/v3`.
    #[serde(rename = "hostName")]
    host_name: String,
    /// A PEM file of root certificates for the Enterprise host.
    #[serde(rename = "rootCA")]
    root_ca: String,
    /// `name` (default), `slug` or `both`.
    #[serde(rename = "teamNameField")]
    team_name_field: String,
    #[serde(rename = "loadAllGroups")]
    load_all_groups: bool,
    #[serde(rename = "useLoginAsID")]
    use_login_as_id: bool,
    #[serde(rename = "preferredEmailDomain")]
    preferred_email_domain: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TeamNameField {
    Name,
    Slug,
    Both,
}

impl ConnectorConfig for GitHubConfig {
    fn open(self, id: &str, ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        Ok(Arc::new(GitHubConnector::open(id, self, ctx.clock.clone())?))
    }
}

/// The `github` connector.
#[derive(Debug)]
pub(crate) struct GitHubConnector {
    id: String,
    redirect_uri: String,
    org: String,
    orgs: Vec<OrgConfig>,
    enterprise: bool,
    api_url: String,
    team_name_field: TeamNameField,
    load_all_groups: bool,
    use_login_as_id: bool,
    preferred_email_domain: String,
    oauth: OAuth2Client,
    clock: SharedClock,
}

/// What is kept for refreshes (Dex's `connectorData`; GitHub App tokens also expire and come
/// with a refresh token).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConnectorData {
    #[serde(rename = "accessToken", default)]
    access_token: String,
    #[serde(rename = "refreshToken", default, skip_serializing_if = "String::is_empty")]
    refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiry: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    id: i64,
    login: String,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserEmail {
    email: String,
    verified: bool,
    primary: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Org {
    login: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Team {
    name: String,
    slug: String,
    organization: Org,
}

impl GitHubConnector {
    fn open(id: &str, c: GitHubConfig, clock: SharedClock) -> Result<Self, ConnectorError> {
        require(id, "clientID", &c.client_id)?;
        if c.client_secret.is_empty() {
            return Err(invalid(id, "clientSecret", "required; it is empty or missing"));
        }
        if !c.org.is_empty() {
            if !c.orgs.is_empty() {
                return Err(invalid(
                    id,
                    "org",
                    "cannot be used together with \"orgs\"; move it into \"orgs\"",
                ));
            }
            tracing::warn!(connector_id = %id, "github: the \"org\" key is deprecated; use \"orgs\"");
        }
        if let Some(i) = c.orgs.iter().position(|o| o.name.trim().is_empty()) {
            return Err(invalid(id, &format!("orgs[{i}].name"), "required; it is empty or missing"));
        }
        if c.host_name.contains('/') {
            return Err(invalid(
                id,
                "hostName",
                "must be a host name (with an optional port), not a URL or path",
            ));
        }
        if !c.root_ca.is_empty() && c.host_name.is_empty() {
            return Err(invalid(id, "rootCA", "needs \"hostName\" (it is for GitHub Enterprise hosts)"));
        }
        let team_name_field = match c.team_name_field.as_str() {
            "" | "name" => TeamNameField::Name,
            "slug" => TeamNameField::Slug,
            "both" => TeamNameField::Both,
            _ => return Err(invalid(id, "teamNameField", "must be \"name\", \"slug\" or \"both\"")),
        };
        if c.preferred_email_domain.ends_with('*') {
            return Err(invalid(id, "preferredEmailDomain", "a glob pattern cannot end with \"*\""));
        }
        let (auth_url, token_url, api_url) = if c.host_name.is_empty() {
            (GITHUB_AUTH_URL.to_owned(), GITHUB_TOKEN_URL.to_owned(), GITHUB_API_URL.to_owned())
        } else {
            let host = &c.host_name;
            (
                format!("https://{host}/login/oauth/authorize"),
                format!("https://{host}/login/oauth/access_token"),
                format!("https://{host}/api/v3"),
            )
        };
        let roots: Vec<RootCa> =
            if c.root_ca.is_empty() { Vec::new() } else { vec![RootCa::File("rootCA", c.root_ca.clone())] };
        let http = oauth2::http_client(id, &roots, false)?;
        let oauth = OAuth2Client::new(
            id,
            &c.client_id,
            &c.client_secret,
            &auth_url,
            &token_url,
            AuthStyle::Auto,
            http,
        );
        Ok(Self {
            id: id.to_owned(),
            redirect_uri: c.redirect_uri,
            org: c.org,
            orgs: c.orgs,
            enterprise: !c.host_name.is_empty(),
            api_url,
            team_name_field,
            load_all_groups: c.load_all_groups,
            use_login_as_id: c.use_login_as_id,
            preferred_email_domain: c.preferred_email_domain,
            oauth,
            clock,
        })
    }

    /// Whether groups must be read: orgs filter the login, or the client asked for groups.
    fn groups_required(&self, scopes: &ConnectorScopes) -> bool {
        !self.orgs.is_empty() || !self.org.is_empty() || scopes.groups
    }

    fn scopes(&self, scopes: &ConnectorScopes) -> Vec<String> {
        let mut out = vec![SCOPE_EMAIL.to_owned()];
        if self.groups_required(scopes) {
            out.push(SCOPE_ORGS.to_owned());
        }
        out
    }

    async fn get(&self, token: &str, url: &str, what: &str) -> Result<oauth2::Answer, ConnectorError> {
        let request =
            self.oauth.http().get(url).bearer_auth(token).header("X-GitHub-Api-Version", API_VERSION);
        oauth2::send(&self.id, what, request).await
    }

    /// Every item of a paginated listing, following `rel="next"` links.
    async fn get_all<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        what: &str,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut url = format!("{}{path}", self.api_url);
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.get(token, &url, what).await?;
            if !answer.status.is_success() {
                return Err(answer.error(&self.id, what));
            }
            let page: Vec<T> = answer.json(&self.id, what)?;
            items.extend(page);
            match next_page(&url, &answer.headers) {
                Some(next) if oauth2::same_origin(&self.api_url, &next) => url = next,
                Some(_) => {
                    return Err(ConnectorError::Upstream(format!(
                        "connector {:?}: {what}: a pagination link leaves the API host",
                        self.id
                    )));
                }
                None => return Ok(items),
            }
        }
        Err(ConnectorError::Upstream(format!("connector {:?}: {what}: more than {MAX_PAGES} pages", self.id)))
    }

    async fn user(&self, token: &str) -> Result<User, ConnectorError> {
        let url = format!("{}/user", self.api_url);
        let answer = self.get(token, &url, "get user").await?;
        if !answer.status.is_success() {
            return Err(answer.error(&self.id, "get user"));
        }
        let mut user: User = answer.json(&self.id, "get user")?;
        // Only a public email comes with /user; a private one must be read from /user/emails.
        if user.email.as_deref().unwrap_or_default().is_empty() {
            user.email = Some(self.user_email(token).await?);
        }
        Ok(user)
    }

    /// The first verified email in the preferred domain, else the primary verified email.
    async fn user_email(&self, token: &str) -> Result<String, ConnectorError> {
        let emails: Vec<UserEmail> = self.get_all(token, "/user/emails", "list emails").await?;
        let verified = |e: &UserEmail| e.verified || self.enterprise;
        if !self.preferred_email_domain.is_empty()
            && let Some(e) = emails.iter().find(|e| {
                verified(e)
                    && e.email
                        .rsplit_once('@')
                        .is_some_and(|(_, domain)| domain_matches(&self.preferred_email_domain, domain))
            })
        {
            return Ok(e.email.clone());
        }
        match emails.iter().find(|e| verified(e) && e.primary) {
            Some(e) => Ok(e.email.clone()),
            None => Err(ConnectorError::Refused(
                "the GitHub account has no verified primary email (or email in the preferred domain)".into(),
            )),
        }
    }

    fn team_names(&self, team: &Team) -> Vec<String> {
        match self.team_name_field {
            TeamNameField::Name => vec![team.name.clone()],
            TeamNameField::Slug => vec![team.slug.clone()],
            TeamNameField::Both => vec![team.name.clone(), team.slug.clone()],
        }
    }

    async fn user_in_org(&self, token: &str, login: &str, org: &str) -> Result<bool, ConnectorError> {
        let mut url = url::Url::parse(&self.api_url)
            .map_err(|e| ConnectorError::Internal(format!("connector {:?}: API URL: {e}", self.id)))?;
        url.path_segments_mut()
            .map_err(|()| ConnectorError::Internal(format!("connector {:?}: API URL has no path", self.id)))?
            .pop_if_empty()
            .extend(["orgs", org, "members", login]);
        let url = url.to_string();
        let answer = self.get(token, &url, "check org membership").await?;
        match answer.status.as_u16() {
            204 => Ok(true),
            // Not a member, or the app is not authorized to read the org's members.
            302 | 404 => {
                tracing::info!(connector_id = %self.id, org, "github: user not in org or org data not authorized");
                Ok(false)
            }
            _ => Err(answer.error(&self.id, "check org membership")),
        }
    }

    /// The groups, or [`ConnectorError::Refused`] when the orgs filter does not admit the user.
    async fn groups(
        &self,
        token: &str,
        scopes: &ConnectorScopes,
        login: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        if !self.orgs.is_empty() {
            let mut teams: Option<Vec<Team>> = None;
            let mut groups = Vec::new();
            let mut in_org_without_teams = false;
            for org in &self.orgs {
                if !self.user_in_org(token, login, &org.name).await? {
                    continue;
                }
                if teams.is_none() {
                    teams = Some(self.get_all(token, "/user/teams", "list teams").await?);
                }
                let names: Vec<String> = teams
                    .iter()
                    .flatten()
                    .filter(|t| t.organization.login == org.name)
                    .flat_map(|t| self.team_names(t))
                    .collect();
                let names = if org.teams.is_empty() {
                    in_org_without_teams = true;
                    names
                } else {
                    let allowed: Vec<String> = names.into_iter().filter(|n| org.teams.contains(n)).collect();
                    if allowed.is_empty() {
                        tracing::info!(connector_id = %self.id, org = %org.name, "github: user in org but in none of its allowed teams");
                    }
                    allowed
                };
                groups.extend(names.into_iter().map(|t| format!("{}:{t}", org.name)));
            }
            if in_org_without_teams || !groups.is_empty() {
                return Ok(groups);
            }
            return Err(ConnectorError::Refused(format!(
                "the GitHub user {login:?} is not a member of any allowed organization or team"
            )));
        }
        if !self.org.is_empty() {
            // The legacy `org`: the user must belong to it; groups are its team names.
            if !self.user_in_org(token, login, &self.org).await? {
                return Err(ConnectorError::Refused(format!(
                    "the GitHub user {login:?} is not a member of the organization {:?}",
                    self.org
                )));
            }
            let teams: Vec<Team> = self.get_all(token, "/user/teams", "list teams").await?;
            return Ok(teams
                .iter()
                .filter(|t| t.organization.login == self.org)
                .flat_map(|t| self.team_names(t))
                .collect());
        }
        if scopes.groups && self.load_all_groups {
            let orgs: Vec<Org> = self.get_all(token, "/user/orgs", "list orgs").await?;
            let teams: Vec<Team> = self.get_all(token, "/user/teams", "list teams").await?;
            let mut groups = Vec::new();
            for org in &orgs {
                groups.push(org.login.clone());
                for team in teams.iter().filter(|t| t.organization.login == org.login) {
                    groups.extend(self.team_names(team).into_iter().map(|n| format!("{}:{n}", org.login)));
                }
            }
            return Ok(groups);
        }
        Ok(Vec::new())
    }

    /// The identity behind an access token (everything but the user id's stability rules).
    async fn identity(
        &self,
        scopes: &ConnectorScopes,
        token: &str,
    ) -> Result<(User, Identity), ConnectorError> {
        let user = self.user(token).await?;
        let name = user.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| user.login.clone());
        let mut identity = Identity {
            user_id: if self.use_login_as_id { user.login.clone() } else { user.id.to_string() },
            username: name,
            preferred_username: user.login.clone(),
            email: user.email.clone().unwrap_or_default(),
            email_verified: true,
            ..Default::default()
        };
        if self.groups_required(scopes) {
            identity.groups = self.groups(token, scopes, &user.login).await?;
        }
        Ok((user, identity))
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

/// The `rel="next"` link of a `Link` header, unless the current page is the `rel="last"` one.
fn next_page(current: &str, headers: &reqwest::header::HeaderMap) -> Option<String> {
    let mut next = None;
    let mut last = None;
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts.next().map(str::trim) else { continue };
            let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else { continue };
            for param in parts {
                match param.trim().replace(' ', "").as_str() {
                    "rel=\"next\"" | "rel=next" => next = Some(target.to_owned()),
                    "rel=\"last\"" | "rel=last" => last = Some(target.to_owned()),
                    _ => {}
                }
            }
        }
    }
    if last.as_deref() == Some(current) || next.as_deref() == Some(current) {
        return None;
    }
    next
}

/// Whether an email domain matches `preferredEmailDomain`: equal, or label by label with `*`
/// standing for exactly one label (`*.example.com` matches `a.example.com`, not
/// `example.com` nor `a.b.example.com`).
fn domain_matches(pattern: &str, domain: &str) -> bool {
    if pattern.eq_ignore_ascii_case(domain) {
        return true;
    }
    let (p, d): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), domain.split('.').collect());
    p.len() == d.len() && p.iter().zip(&d).all(|(p, d)| *p == "*" || p.eq_ignore_ascii_case(d))
}

#[async_trait]
impl CallbackConnector for GitHubConnector {
    async fn login_url(
        &self,
        scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let redirect_uri = oauth2::redirect_uri(&self.id, &self.redirect_uri, callback_url);
        let url = self.oauth.authorization_url(&redirect_uri, &self.scopes(scopes), state, &[])?;
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
        let (_, mut identity) = self.identity(scopes, &token.access_token).await?;
        if scopes.offline_access {
            identity.connector_data = self.connector_data(&token);
        }
        Ok(identity)
    }
}

#[async_trait]
impl RefreshConnector for GitHubConnector {
    async fn refresh(
        &self,
        scopes: &ConnectorScopes,
        identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        let data: ConnectorData = oauth2::kept_tokens(&identity.connector_data)?;
        let expired = data.expiry.is_some_and(|e| e <= self.clock.now() + chrono::Duration::seconds(10));
        let (access_token, connector_data) = if !data.refresh_token.is_empty() && expired {
            let token = self.oauth.refresh(&data.refresh_token).await?;
            let kept = self.connector_data(&token);
            (token.access_token, kept)
        } else {
            (data.access_token, identity.connector_data.clone())
        };
        let (_, fresh) = self.identity(scopes, &access_token).await?;
        Ok(Identity {
            // The user id stays the one the grant was issued for.
            user_id: identity.user_id,
            connector_data,
            groups: if self.groups_required(scopes) { fresh.groups } else { identity.groups },
            ..fresh
        })
    }
}

impl ConnectorImpl for GitHubConnector {
    fn as_callback(&self) -> Option<&dyn CallbackConnector> {
        Some(self)
    }
    fn as_refresh(&self) -> Option<&dyn RefreshConnector> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    use super::*;
    use crate::clock::SystemClock;

    fn open(config: serde_json::Value) -> Result<GitHubConnector, ConnectorError> {
        let c: GitHubConfig = serde_json::from_value(config).unwrap();
        GitHubConnector::open("gh", c, Arc::new(SystemClock))
    }

    #[test]
    fn config_errors_name_the_key() {
        let base = serde_json::json!({"clientID": "id", "clientSecret": "s"});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base.clone();
            c[k] = v;
            open(c).unwrap_err().to_string()
        };
        assert!(with("hostName", "https://ghe.example".into()).contains("key \"hostName\""));
        assert!(with("rootCA", "/etc/ca.pem".into()).contains("key \"rootCA\""));
        assert!(with("teamNameField", "id".into()).contains("key \"teamNameField\""));
        assert!(with("preferredEmailDomain", "example.*".into()).contains("key \"preferredEmailDomain\""));
        let mut both = base.clone();
        both["org"] = "a".into();
        both["orgs"] = serde_json::json!([{"name": "b"}]);
        assert!(open(both).unwrap_err().to_string().contains("key \"org\""));
        let e = open(serde_json::json!({"clientSecret": "s"})).unwrap_err().to_string();
        assert!(e.contains("key \"clientID\""), "{e}");
        let shown = format!("{:?}", open(base).unwrap());
        assert!(!shown.contains("\"s\"") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn enterprise_hosts_use_api_v3() {
        let c =
            open(serde_json::json!({"clientID": "id", "clientSecret": "s", "hostName": "ghe.example:8443"}))
                .unwrap();
        assert_eq!(c.api_url, "https://ghe.example:8443/api/v3");
        assert!(c.enterprise);
    }

    #[tokio::test]
    async fn login_url_scopes_and_state() {
        let c = open(serde_json::json!({"clientID": "id", "clientSecret": "s"})).unwrap();
        let cb = "https://id.example/dex/callback";
        let r = c.login_url(&ConnectorScopes::default(), cb, "st").await.unwrap();
        let u = url::Url::parse(&r.url).unwrap();
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(u.as_str().split('?').next(), Some(GITHUB_AUTH_URL));
        assert_eq!(q["scope"], "user:email");
        assert_eq!(q["state"], "st");
        assert_eq!(q["redirect_uri"], cb);
        assert_eq!(LoginState::decode(&r.state_data, "").redirect_uri, cb);
        let r =
            c.login_url(&ConnectorScopes { groups: true, offline_access: false }, cb, "st").await.unwrap();
        assert!(r.url.contains("scope=user%3Aemail+read%3Aorg"), "{}", r.url);
    }

    #[test]
    fn next_links_stop_at_the_last_page() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(
                "<https://api.github.com/user/teams?page=2>; rel=\"next\", <https://api.github.com/user/teams?page=5>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_page("https://api.github.com/user/teams", &h).as_deref(),
            Some("https://api.github.com/user/teams?page=2")
        );
        assert_eq!(next_page("https://api.github.com/user/teams?page=5", &h), None);
        assert_eq!(next_page("https://api.github.com/user/teams", &HeaderMap::new()), None);
    }

    #[test]
    fn preferred_domains_match_label_by_label() {
        assert!(domain_matches("example.com", "example.com"));
        assert!(!domain_matches("example.com", "another.com"));
        assert!(domain_matches("*.example.com", "my.example.com"));
        assert!(!domain_matches("*.example.com", "my.domain.example.com"));
        assert!(!domain_matches("*.example.com", "example.com"));
        assert!(domain_matches("*.*.example.com", "sub.my.example.com"));
        assert!(!domain_matches("*.*.example.com", "a.my.google.com"));
    }

    #[tokio::test]
    async fn refresh_without_kept_token_is_refused() {
        let c = open(serde_json::json!({"clientID": "id", "clientSecret": "s"})).unwrap();
        let e = c.refresh(&ConnectorScopes::default(), Identity::default()).await.unwrap_err();
        assert!(matches!(e, ConnectorError::Refused(_)), "{e:?}");
    }
}
