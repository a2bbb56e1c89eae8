//! Token introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Unlike Dex, introspection requires client authentication (RFC 7662 §2.1), and a client only
//! learns about tokens that concern it: an access or ID token whose audience (or `azp`) names
//! the caller, or a refresh token issued to the caller. Everything else is `{"active": false}`,
//! the same answer as for an unknown token, so introspection is no oracle for other clients'
//! tokens. The response members are Dex's.
//!
//! Revocation accepts refresh tokens (the whole rotation chain ends) and the JWT access and ID
//! tokens (their `jti` is remembered until they expire, and userinfo and introspection refuse
//! them). As RFC 7009 §2.2 requires, an unknown, expired or foreign token is answered with
//! success and changes nothing.

use oxidex_proto::oxidex::v1 as pb;
use serde_json::{Map, Value, json};
use tonic::Status;

use super::oauth_error;
use crate::flow::Provider;
use crate::storage::{Client, RefreshToken, StorageError};
use crate::token::claims::Audience;
use crate::token::refresh::{decode, secret_matches};
use crate::token::subject::encode_subject;

/// Whether `client` may see or revoke a JWT with these claims.
fn concerns(client: &Client, claims: &Value) -> bool {
    let aud: Audience =
        claims.get("aud").and_then(|a| serde_json::from_value(a.clone()).ok()).unwrap_or_default();
    aud.contains(&client.id) || claims.get("azp").and_then(Value::as_str) == Some(client.id.as_str())
}

fn inactive() -> String {
    json!({ "active": false }).to_string()
}

impl Provider {
    /// The refresh token a presented string names, when its secret is the current one (or, with
    /// `allow_previous`, the one before).
    async fn presented_refresh(
        &self,
        presented: &str,
        allow_previous: bool,
    ) -> Result<Option<RefreshToken>, Status> {
        let Some((id, secret)) = decode(presented) else { return Ok(None) };
        let token = match self.durable.get_refresh(&id).await {
            Ok(t) => t,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let matches = secret_matches(&token.token, &secret)
            || (allow_previous && secret_matches(&token.obsolete_token, &secret));
        Ok(matches.then_some(token))
    }

    /// `/token/introspect`.
    pub async fn introspect(&self, req: pb::IntrospectRequest) -> Result<pb::IntrospectResult, Status> {
        let error = |e| Ok(pb::IntrospectResult { result: Some(pb::introspect_result::Result::Error(e)) });
        let auth = req.client.clone().unwrap_or_default();
        let client = match self.authenticate(&auth).await? {
            Ok(c) => c,
            Err(e) => return error(e),
        };
        if req.token.is_empty() {
            return error(oauth_error("invalid_request", "The token parameter is required.", 400));
        }
        let body = match self.verify_bearer(&req.token).await? {
            Some(claims) if concerns(&client, &claims) => access_token_response(&claims),
            Some(_) => inactive(),
            None => match self.presented_refresh(&req.token, false).await? {
                Some(t) if t.client_id == client.id && !self.refresh_expired(&t) => {
                    self.refresh_token_response(&t)
                }
                _ => inactive(),
            },
        };
        Ok(pb::IntrospectResult { result: Some(pb::introspect_result::Result::ResponseJson(body)) })
    }

    fn refresh_token_response(&self, t: &RefreshToken) -> String {
        let mut ext = Map::new();
        let c = &t.claims;
        for (k, v) in
            [("email", &c.email), ("name", &c.username), ("preferred_username", &c.preferred_username)]
        {
            if !v.is_empty() {
                ext.insert(k.into(), Value::String(v.clone()));
            }
        }
        if !c.email.is_empty() {
            ext.insert("email_verified".into(), Value::Bool(c.email_verified));
        }
        if !c.groups.is_empty() {
            ext.insert("groups".into(), json!(c.groups));
        }
        let mut m = Map::new();
        m.insert("active".into(), Value::Bool(true));
        m.insert("client_id".into(), Value::String(t.client_id.clone()));
        m.insert("sub".into(), Value::String(encode_subject(&c.user_id, &t.connector_id)));
        m.insert("iat".into(), json!(t.created_at.timestamp()));
        m.insert("nbf".into(), json!(t.created_at.timestamp()));
        if let Some(d) = self.settings.refresh.absolute_lifetime {
            let exp = t.created_at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            m.insert("exp".into(), json!(exp.timestamp()));
        }
        if !c.preferred_username.is_empty() {
            m.insert("username".into(), Value::String(c.preferred_username.clone()));
        }
        m.insert("aud".into(), Value::String(t.client_id.clone()));
        m.insert("iss".into(), Value::String(self.issuer.clone()));
        m.insert("scope".into(), Value::String(t.scopes.join(" ")));
        m.insert("token_type".into(), Value::String("Bearer".into()));
        m.insert("token_use".into(), Value::String("refresh_token".into()));
        if !ext.is_empty() {
            m.insert("ext".into(), Value::Object(ext));
        }
        Value::Object(m).to_string()
    }

    /// `/token/revoke`.
    pub async fn revoke(&self, req: pb::RevokeRequest) -> Result<pb::RevokeResult, Status> {
        let auth = req.client.clone().unwrap_or_default();
        let client = match self.authenticate(&auth).await? {
            Ok(c) => c,
            Err(e) => return Ok(pb::RevokeResult { error: Some(e) }),
        };
        if req.token.is_empty() {
            return Ok(pb::RevokeResult {
                error: Some(oauth_error("invalid_request", "The token parameter is required.", 400)),
            });
        }
        if let Some(token) = self.presented_refresh(&req.token, true).await? {
            if token.client_id == client.id {
                self.revoke_refresh(&token).await?;
                tracing::info!(client_id = %client.id, "refresh token revoked");
            } else {
                tracing::warn!(client_id = %client.id, "refused to revoke another client's refresh token");
            }
        } else if let Some(claims) = self.verify_bearer(&req.token).await? {
            let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default();
            let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or_default();
            let expiry = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_else(|| self.now());
            if !concerns(&client, &claims) {
                tracing::warn!(client_id = %client.id, "refused to revoke another client's token");
            } else if jti.is_empty() {
                tracing::warn!(client_id = %client.id, "cannot revoke a token without jti");
            } else {
                self.revoke_jtis(&[jti.to_owned()], expiry).await?;
                tracing::info!(client_id = %client.id, "access token revoked");
            }
        }
        Ok(pb::RevokeResult { error: None })
    }
}

/// Dex's introspection response for a JWT.
fn access_token_response(claims: &Value) -> String {
    let get = |k: &str| claims.get(k).cloned();
    let aud: Audience = get("aud").and_then(|a| serde_json::from_value(a).ok()).unwrap_or_default();
    let azp = claims.get("azp").and_then(Value::as_str);
    let mut m = Map::new();
    m.insert("active".into(), Value::Bool(true));
    if let Some(client_id) = aud.client_id(azp) {
        m.insert("client_id".into(), Value::String(client_id.to_owned()));
    }
    for k in ["sub", "exp", "iat", "aud", "iss", "jti"] {
        if let Some(v) = get(k) {
            m.insert(k.into(), v);
        }
    }
    if let Some(iat) = get("iat") {
        m.insert("nbf".into(), iat);
    }
    if let Some(u) = get("preferred_username") {
        m.insert("username".into(), u);
    }
    m.insert("token_type".into(), Value::String("Bearer".into()));
    m.insert("token_use".into(), Value::String("access_token".into()));
    let mut ext = Map::new();
    for k in
        ["azp", "sid", "email", "email_verified", "groups", "name", "preferred_username", "federated_claims"]
    {
        if let Some(v) = get(k) {
            ext.insert(k.into(), v);
        }
    }
    if !ext.is_empty() {
        m.insert("ext".into(), Value::Object(ext));
    }
    Value::Object(m).to_string()
}
