//! The token-exchange grant (RFC 8693) with Dex's parameters: the client presents a token an
//! upstream issued (`subject_token`, `subject_token_type`) and names the connector that can
//! verify it (`connector_id`, Dex's non-standard parameter); Oxidex answers with one token of
//! `requested_token_type` (an access token by default, or an ID token) for the identity the
//! connector vouches for. No refresh token is issued.
//!
//! Errors follow RFC 8693 §2.2.2: a missing or unsupported parameter and a subject token that
//! does not verify are `invalid_request`; an `audience` that does not trust the client, or a
//! `resource`, is `invalid_target`. The client's `allowedConnectors` and the connector's
//! `grantTypes` apply as on every other grant. Unlike Dex, `scope` is validated like everywhere else
//! (unknown scopes are `invalid_scope`; none means `openid`), and `audience` is honoured: it must
//! name this client or a client that trusts it (`trustedPeers`), which joins the token's `aud`
//! (as with Dex's cross-client scope).

use std::collections::HashMap;

use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{Grant, oauth_error};
use crate::connector::oidc::{TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN};
use crate::connector::{ConnectorError, ConnectorScopes};
use crate::flow::{Provider, connector_allowed};
use crate::storage::Client;
use crate::token::scopes::Scopes;

/// The grant type of RFC 8693.
pub(crate) const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

fn invalid_request(description: &str) -> pb::OAuthError {
    oauth_error("invalid_request", description, 400)
}

impl Provider {
    pub(super) async fn token_exchange_grant(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        let (subject_token, subject_token_type) = (get("subject_token"), get("subject_token_type"));
        if subject_token.is_empty() {
            return Ok(Err(invalid_request("Missing subject_token.")));
        }
        if subject_token_type.is_empty() {
            return Ok(Err(invalid_request("Missing subject_token_type.")));
        }
        if subject_token_type != TOKEN_TYPE_ID_TOKEN && subject_token_type != TOKEN_TYPE_ACCESS_TOKEN {
            return Ok(Err(invalid_request(
                "Unsupported subject_token_type: use urn:ietf:params:oauth:token-type:id_token or \
                 urn:ietf:params:oauth:token-type:access_token.",
            )));
        }
        if !get("actor_token").is_empty() || !get("actor_token_type").is_empty() {
            return Ok(Err(invalid_request("Delegation (actor_token) is not supported.")));
        }
        let requested = match get("requested_token_type") {
            "" | TOKEN_TYPE_ACCESS_TOKEN => TOKEN_TYPE_ACCESS_TOKEN,
            TOKEN_TYPE_ID_TOKEN => TOKEN_TYPE_ID_TOKEN,
            _ => {
                return Ok(Err(invalid_request(
                    "Unsupported requested_token_type: use urn:ietf:params:oauth:token-type:access_token \
                     or urn:ietf:params:oauth:token-type:id_token.",
                )));
            }
        };
        if !get("resource").is_empty() {
            return Ok(Err(oauth_error("invalid_target", "Resource indicators are not supported.", 400)));
        }
        let connector_id = get("connector_id");
        if connector_id.is_empty() {
            return Ok(Err(invalid_request("Missing connector_id.")));
        }

        let scope = get("scope");
        let mut scopes = match Scopes::parse(if scope.trim().is_empty() { "openid" } else { scope }) {
            Ok(s) => s,
            Err(e) => return Ok(Err(oauth_error("invalid_scope", &e.to_string(), 400))),
        };
        if let Some(why) = self.untrusted_peers(client, &scopes).await? {
            return Ok(Err(oauth_error("invalid_scope", &why, 400)));
        }
        // `audience` names the client the token is for: this one, or a peer that trusts it.
        let audience = get("audience");
        if !audience.is_empty() && audience != client.id {
            let mut list = scopes.to_vec();
            list.push(format!("audience:server:client_id:{audience}"));
            scopes = Scopes::from_list_lenient(list);
            if self.untrusted_peers(client, &scopes).await?.is_some() {
                return Ok(Err(oauth_error(
                    "invalid_target",
                    "The audience is not a client that trusts this client.",
                    400,
                )));
            }
        }

        if !connector_allowed(client, connector_id) {
            return Ok(Err(oauth_error(
                "unauthorized_client",
                "This client may not use this connector.",
                400,
            )));
        }
        let connector = match self.connectors.get(connector_id).await {
            Ok(c) => c,
            Err(ConnectorError::NotFound { .. }) => return Ok(Err(invalid_request("Unknown connector_id."))),
            Err(e) => {
                tracing::warn!(connector_id, error = %e, "connector unavailable for token exchange");
                return Ok(Err(oauth_error("temporarily_unavailable", "The connector is unavailable.", 503)));
            }
        };
        let Some(verifier) =
            connector.token_identity().filter(|_| connector.allows_grant_type(GRANT_TOKEN_EXCHANGE))
        else {
            return Ok(Err(invalid_request("This connector cannot be used for token exchange.")));
        };
        let identity = match verifier
            .token_identity(
                &ConnectorScopes::from_scopes(scopes.as_slice()),
                subject_token_type,
                subject_token,
            )
            .await
        {
            Ok(identity) => identity,
            Err(ConnectorError::Refused(reason)) => {
                tracing::info!(connector_id, client_id = %client.id, %reason, "token exchange: subject token refused");
                return Ok(Err(invalid_request("The subject token is not valid.")));
            }
            Err(e) => {
                tracing::warn!(connector_id, error = %e, "token exchange: connector failed");
                let mut err = oauth_error(
                    "temporarily_unavailable",
                    "The login provider is unavailable; retry later.",
                    503,
                );
                err.retry_after_seconds = 5;
                return Ok(Err(err));
            }
        };
        let claims = identity.claims();
        let want_id_token = requested == TOKEN_TYPE_ID_TOKEN;
        let minted = self
            .mint_grant(&Grant {
                client_id: &client.id,
                scopes: &scopes,
                claims: &claims,
                connector_id,
                nonce: "",
                code: None,
                access_token: !want_id_token,
                id_token: want_id_token,
            })
            .await?;
        tracing::info!(connector_id, client_id = %client.id, issued = requested, "token exchange");
        Ok(Ok(pb::TokenResponse {
            access_token: if want_id_token { minted.id_token } else { minted.access_token },
            token_type: "bearer".into(),
            expires_in: minted.expires_in,
            issued_token_type: requested.to_owned(),
            scope: scopes.as_slice().join(" "),
            ..Default::default()
        }))
    }
}
