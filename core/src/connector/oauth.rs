//! `oauth`: any OAuth2 provider with a userinfo endpoint that answers JSON (Dex's
//! `connector/oauth`).
//!
//! The code is exchanged at `tokenURL`; `userInfoURL` is read with the access token and its
//! JSON object mapped to an identity through `userIDKey` (default `id`, a string or a number)
//! and `claimMapping` (defaults `user_name`, `preferred_username`, `groups`, `email`,
//! `email_verified`). A key names a member of the object; when no member has that exact name, a
//! dotted key (`profile.email`) is looked up in nested objects (an Oxidex extension). Groups are
//! a list of strings or of objects with a `name`, read from userinfo and, as in Dex, from the
//! access token's claims when it is a JWT (it came straight from the token endpoint). As in Dex
//! the connector cannot refresh: no refresh tokens are issued for its logins.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ConnectorConfig;
use super::oauth2::{self, AuthStyle, LoginState, OAuth2Client, RootCa, Secret, lookup, require};
use super::{
    CallbackConnector, CallbackParams, ConnectorError, ConnectorImpl, ConnectorScopes, Identity,
    LoginRedirect, OpenContext,
};

/// `claimMapping`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ClaimMapping {
    #[serde(rename = "userNameKey")]
    user_name_key: String,
    #[serde(rename = "preferredUsernameKey")]
    preferred_username_key: String,
    #[serde(rename = "groupsKey")]
    groups_key: String,
    #[serde(rename = "emailKey")]
    email_key: String,
    #[serde(rename = "emailVerifiedKey")]
    email_verified_key: String,
}

/// The `oauth` settings (Dex's keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OAuthConfig {
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "clientSecret")]
    client_secret: Secret,
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
    #[serde(rename = "tokenURL")]
    token_url: String,
    #[serde(rename = "authorizationURL")]
    authorization_url: String,
    #[serde(rename = "userInfoURL")]
    user_info_url: String,
    scopes: Vec<String>,
    /// PEM files of extra root certificates.
    #[serde(rename = "rootCAs")]
    root_cas: Vec<String>,
    #[serde(rename = "insecureSkipVerify")]
    insecure_skip_verify: bool,
    #[serde(rename = "userIDKey")]
    user_id_key: String,
    #[serde(rename = "claimMapping")]
    claim_mapping: ClaimMapping,
}

impl ConnectorConfig for OAuthConfig {
    fn open(self, id: &str, _ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        Ok(Arc::new(OAuthConnector::open(id, self)?))
    }
}

/// The `oauth` connector.
#[derive(Debug)]
pub(crate) struct OAuthConnector {
    id: String,
    redirect_uri: String,
    user_info_url: String,
    scopes: Vec<String>,
    user_id_key: String,
    user_name_key: String,
    preferred_username_key: String,
    groups_key: String,
    email_key: String,
    email_verified_key: String,
    oauth: OAuth2Client,
}

/// Dex keeps the access token under a capitalised key (its struct has no JSON tag).
#[derive(Serialize)]
struct ConnectorData<'a> {
    #[serde(rename = "AccessToken")]
    access_token: &'a str,
}

fn or_default(value: String, default: &str) -> String {
    if value.is_empty() { default.to_owned() } else { value }
}

impl OAuthConnector {
    fn open(id: &str, c: OAuthConfig) -> Result<Self, ConnectorError> {
        require(id, "clientID", &c.client_id)?;
        let token_url = oauth2::require_url(id, "tokenURL", &c.token_url)?;
        let authorization_url = oauth2::require_url(id, "authorizationURL", &c.authorization_url)?;
        let user_info_url = oauth2::require_url(id, "userInfoURL", &c.user_info_url)?;
        let roots: Vec<RootCa> = c.root_cas.iter().map(|p| RootCa::File("rootCAs", p.clone())).collect();
        let http = oauth2::http_client(id, &roots, c.insecure_skip_verify)?;
        let oauth = OAuth2Client::new(
            id,
            &c.client_id,
            &c.client_secret,
            &authorization_url,
            &token_url,
            AuthStyle::Auto,
            http,
        );
        let m = c.claim_mapping;
        Ok(Self {
            id: id.to_owned(),
            redirect_uri: c.redirect_uri,
            user_info_url,
            scopes: c.scopes,
            user_id_key: or_default(c.user_id_key, "id"),
            user_name_key: or_default(m.user_name_key, "user_name"),
            preferred_username_key: or_default(m.preferred_username_key, "preferred_username"),
            groups_key: or_default(m.groups_key, "groups"),
            email_key: or_default(m.email_key, "email"),
            email_verified_key: or_default(m.email_verified_key, "email_verified"),
            oauth,
        })
    }

    /// Maps a userinfo object (and the access token's claims, for groups) to an identity.
    fn map(
        &self,
        scopes: &ConnectorScopes,
        info: &serde_json::Map<String, Value>,
        access_token: &str,
    ) -> Result<Identity, ConnectorError> {
        let user_id = match lookup(info, &self.user_id_key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => {
                n.as_f64().map(oauth2::go_float_string).unwrap_or_else(|| n.to_string())
            }
            Some(_) => {
                return Err(ConnectorError::Upstream(format!(
                    "connector {:?}: userinfo {:?} is neither a string nor a number",
                    self.id, self.user_id_key
                )));
            }
            None => {
                return Err(ConnectorError::Upstream(format!(
                    "connector {:?}: userinfo has no {:?}",
                    self.id, self.user_id_key
                )));
            }
        };
        let text = |key: &str| lookup(info, key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut identity = Identity {
            user_id,
            username: text(&self.user_name_key),
            preferred_username: text(&self.preferred_username_key),
            email: text(&self.email_key),
            email_verified: lookup(info, &self.email_verified_key).and_then(Value::as_bool).unwrap_or(false),
            ..Default::default()
        };
        if scopes.groups {
            let mut groups = Vec::new();
            add_groups(&mut groups, lookup(info, &self.groups_key));
            if let Some(claims) = jwt_claims(access_token) {
                add_groups(&mut groups, lookup(&claims, &self.groups_key));
            }
            identity.groups = groups;
        }
        if scopes.offline_access {
            identity.connector_data = serde_json::to_vec(&ConnectorData { access_token }).unwrap_or_default();
        }
        Ok(identity)
    }
}

/// Adds the group names of a claim (strings, or objects with a `name`) without duplicates.
fn add_groups(groups: &mut Vec<String>, claim: Option<&Value>) {
    let Some(Value::Array(items)) = claim else { return };
    for item in items {
        let name = match item {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("name").and_then(Value::as_str),
            _ => None,
        };
        if let Some(name) = name
            && !groups.iter().any(|g| g == name)
        {
            groups.push(name.to_owned());
        }
    }
}

/// The claims of a JWT's payload, unverified (the token came from the token endpoint itself).
fn jwt_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[async_trait]
impl CallbackConnector for OAuthConnector {
    async fn login_url(
        &self,
        _scopes: &ConnectorScopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let redirect_uri = oauth2::redirect_uri(&self.id, &self.redirect_uri, callback_url);
        let url = self.oauth.authorization_url(&redirect_uri, &self.scopes, state, &[])?;
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
        let request = self.oauth.http().get(&self.user_info_url).bearer_auth(&token.access_token);
        let answer = oauth2::send(&self.id, "get userinfo", request).await?;
        if !answer.status.is_success() {
            return Err(answer.error(&self.id, "get userinfo"));
        }
        let info: serde_json::Map<String, Value> = answer.json(&self.id, "get userinfo")?;
        self.map(scopes, &info, &token.access_token)
    }
}

impl ConnectorImpl for OAuthConnector {
    fn as_callback(&self) -> Option<&dyn CallbackConnector> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn open(extra: Value) -> OAuthConnector {
        let mut c = json!({
            "clientID": "id", "clientSecret": "s",
            "tokenURL": "https://idp.example/token",
            "authorizationURL": "https://idp.example/authorize",
            "userInfoURL": "https://idp.example/userinfo",
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        OAuthConnector::open("oa", serde_json::from_value(c).unwrap()).unwrap()
    }

    fn info(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn default_claims_are_mapped() {
        let c = open(json!({}));
        let s = ConnectorScopes { groups: true, offline_access: true };
        let id = c
            .map(
                &s,
                &info(json!({"id": "u1", "user_name": "Jane", "preferred_username": "jane",
                    "email": "j@example.com", "email_verified": true,
                    "groups": ["a", {"name": "b"}, 3, "a"]})),
                "opaque-token",
            )
            .unwrap();
        assert_eq!(
            (id.user_id.as_str(), id.username.as_str(), id.preferred_username.as_str(), id.email.as_str()),
            ("u1", "Jane", "jane", "j@example.com")
        );
        assert!(id.email_verified);
        assert_eq!(id.groups, vec!["a", "b"]);
        assert_eq!(id.connector_data, br#"{"AccessToken":"opaque-token"}"#);
    }

    #[test]
    fn custom_and_nested_keys_and_numeric_ids() {
        let c = open(json!({"userIDKey": "uid", "claimMapping": {"userNameKey": "profile.name",
            "emailKey": "mail", "groupsKey": "teams", "emailVerifiedKey": "verified"}}));
        let s = ConnectorScopes { groups: true, offline_access: false };
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"teams":["from-token","x"]}"#);
        let token = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        let id = c
            .map(
                &s,
                &info(json!({"uid": 12345678, "profile": {"name": "Jane"}, "mail": "j@x", "verified": true,
                    "teams": ["x"]})),
                &token,
            )
            .unwrap();
        assert_eq!(id.user_id, "1.2345678e+07");
        assert_eq!(id.username, "Jane");
        assert_eq!(id.email, "j@x");
        assert!(id.email_verified);
        assert_eq!(id.groups, vec!["x", "from-token"]);
        assert!(id.connector_data.is_empty());
    }

    #[test]
    fn a_missing_or_odd_user_id_is_an_error() {
        let c = open(json!({}));
        let s = ConnectorScopes::default();
        assert!(c.map(&s, &info(json!({"email": "x"})), "t").is_err());
        assert!(c.map(&s, &info(json!({"id": [1]})), "t").is_err());
        assert!(c.map(&s, &info(json!({"id": 42})), "t").is_ok_and(|i| i.user_id == "42"));
    }

    #[test]
    fn urls_are_required() {
        let e = OAuthConnector::open(
            "oa",
            serde_json::from_value(
                json!({"clientID": "id", "tokenURL": "https://x/t", "authorizationURL": "https://x/a"}),
            )
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("key \"userInfoURL\""), "{e}");
    }
}
