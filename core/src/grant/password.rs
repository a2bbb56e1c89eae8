//! `password` (RFC 6749 §4.3, "resource owner password credentials"): only when
//! `oauth2.passwordConnector` names a password connector, as in Dex. The same login throttle as
//! the login form guards it, and the client's `allowedConnectors` is enforced.

use std::collections::HashMap;
use std::net::IpAddr;

use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{invalid_grant, oauth_error};
use crate::connector::{ConnectorError, ConnectorScopes};
use crate::flow::{Provider, connector_allowed};
use crate::storage::Client;
use crate::token::scopes::Scopes;

const GRANT: &str = "password";

impl Provider {
    pub(super) async fn password_grant(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
        client_ip: &str,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        let Some(connector_id) = self.settings.password_connector.as_deref() else {
            return Ok(Err(oauth_error("unsupported_grant_type", "The password grant is not enabled.", 400)));
        };
        let scopes = match Scopes::parse(get("scope")) {
            Ok(s) => s,
            Err(e) => return Ok(Err(oauth_error("invalid_scope", &e.to_string(), 400))),
        };
        if !scopes.openid() {
            return Ok(Err(oauth_error("invalid_scope", "Missing required scope(s) [\"openid\"].", 400)));
        }
        if let Some(why) = self.untrusted_peers(client, &scopes).await? {
            return Ok(Err(oauth_error("invalid_scope", &why, 400)));
        }
        let (username, password) = (get("username"), get("password"));
        if username.trim().is_empty() || password.is_empty() {
            return Ok(Err(oauth_error("invalid_request", "The username and password are required.", 400)));
        }
        if !connector_allowed(client, connector_id) {
            return Ok(Err(oauth_error(
                "unauthorized_client",
                "This client may not use the password connector.",
                400,
            )));
        }
        let connector = match self.connectors.get(connector_id).await {
            Ok(c) => c,
            Err(e @ ConnectorError::NotFound { .. }) => {
                tracing::error!(error = %e, "oauth2.passwordConnector names no connector");
                return Ok(Err(oauth_error("server_error", "The password connector is unavailable.", 503)));
            }
            Err(e) => {
                tracing::warn!(connector_id, error = %e, "password connector unavailable");
                return Ok(Err(oauth_error(
                    "temporarily_unavailable",
                    "The login provider is unavailable.",
                    503,
                )));
            }
        };
        let Some(checker) = connector.password().filter(|_| connector.allows_grant_type(GRANT)) else {
            return Ok(Err(oauth_error(
                "unsupported_grant_type",
                "The password connector cannot check passwords for this grant.",
                400,
            )));
        };

        let ip: IpAddr = client_ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let account = format!("{connector_id}\u{0}{}", username.to_lowercase());
        if let Err(wait) = self.throttle.check(&account, ip) {
            tracing::warn!(connector_id, client_id = %client.id, "password grant throttled");
            let mut e =
                invalid_grant(&format!("Too many failed attempts; try again in {} s.", wait.seconds()));
            e.http_status = 429;
            e.retry_after_seconds = i64::try_from(wait.seconds()).unwrap_or(i64::MAX);
            return Ok(Err(e));
        }
        let identity = match checker
            .login(&ConnectorScopes::from_scopes(scopes.as_slice()), username, password)
            .await
        {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                self.throttle.record_failure(&account, ip);
                tracing::info!(connector_id, client_id = %client.id, "password grant: invalid credentials");
                return Ok(Err(invalid_grant("Invalid username or password.")));
            }
            Err(e) => {
                tracing::warn!(connector_id, error = %e, "password connector failed");
                let mut err =
                    oauth_error("temporarily_unavailable", "The login provider is unavailable.", 503);
                err.retry_after_seconds = 5;
                return Ok(Err(err));
            }
        };
        self.throttle.record_success(&account, ip);
        let claims = identity.claims();
        let nonce = get("nonce");
        let minted = self.mint(&client.id, &scopes, &claims, connector_id, nonce).await?;
        let refresh_token = if scopes.offline_access() {
            self.issue_refresh_token(client, &scopes, &claims, connector_id, &identity.connector_data, nonce)
                .await?
        } else {
            String::new()
        };
        tracing::info!(connector_id, client_id = %client.id, "password grant: login successful");
        Ok(Ok(minted.response(refresh_token)))
    }
}
