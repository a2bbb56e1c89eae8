//! `client_credentials` (RFC 6749 §4.4), as Dex master has it: a confidential client obtains
//! tokens for itself. The subject is the client (`sub` encodes the client id with the empty
//! connector id, which no real connector can have); `profile` gives `name` and
//! `preferred_username` the client's name, `groups` the client's `clientCredentialsClaims.groups`.
//! No refresh token: `offline_access` and `federated:id` are refused. The ID token is issued
//! only when `openid` is asked for.

use std::collections::HashMap;

use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{Grant, oauth_error};
use crate::flow::Provider;
use crate::storage::{Claims, Client};
use crate::token::scopes::Scopes;

impl Provider {
    pub(super) async fn client_credentials_grant(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        if client.public {
            return Ok(Err(oauth_error(
                "unauthorized_client",
                "Public clients cannot use the client_credentials grant.",
                400,
            )));
        }
        let scope = params.get("scope").map(String::as_str).unwrap_or_default();
        let scopes = match Scopes::parse(scope) {
            Ok(s) => s,
            Err(e) => return Ok(Err(oauth_error("invalid_scope", &e.to_string(), 400))),
        };
        if scopes.offline_access() {
            return Ok(Err(oauth_error(
                "invalid_scope",
                "The client_credentials grant does not support the offline_access scope.",
                400,
            )));
        }
        if scopes.federated_id() {
            return Ok(Err(oauth_error(
                "invalid_scope",
                "The client_credentials grant does not support the federated:id scope.",
                400,
            )));
        }
        if let Some(why) = self.untrusted_peers(client, &scopes).await? {
            return Ok(Err(oauth_error("invalid_scope", &why, 400)));
        }
        let mut claims = Claims { user_id: client.id.clone(), ..Default::default() };
        if scopes.profile() {
            claims.username.clone_from(&client.name);
            claims.preferred_username.clone_from(&client.name);
        }
        if scopes.groups() {
            claims.groups.clone_from(&client.client_credentials_groups);
        }
        let minted = self
            .mint_grant(&Grant {
                client_id: &client.id,
                scopes: &scopes,
                claims: &claims,
                connector_id: "",
                nonce: params.get("nonce").map(String::as_str).unwrap_or_default(),
                code: None,
                access_token: true,
                id_token: scopes.openid(),
            })
            .await?;
        tracing::info!(client_id = %client.id, "client_credentials grant");
        Ok(Ok(minted.response(String::new())))
    }
}
