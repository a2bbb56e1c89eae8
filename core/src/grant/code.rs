//! `authorization_code` (RFC 6749 §4.1.3) with PKCE (RFC 7636) and downgrade protection.

use std::collections::HashMap;

use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{invalid_grant, oauth_error};
use crate::flow::Provider;
use crate::storage::{Client, StorageError};
use crate::token::pkce;
use crate::token::refresh::hash_code;
use crate::token::scopes::Scopes;

impl Provider {
    pub(super) async fn authorization_code_grant(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        let (code, redirect_uri, verifier) = (get("code"), get("redirect_uri"), get("code_verifier"));
        if code.is_empty() {
            return Ok(Err(oauth_error("invalid_request", "Missing code.", 400)));
        }
        let id = hash_code(code);
        // Checks that cannot be the fault of the code's owner come first and do not burn the code
        // (another client presenting it, a wrong redirect URI).
        let stored = match self.flow.get_auth_code(&id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Ok(Err(invalid_grant("Invalid or expired code."))),
            Err(e) => return Err(e.into()),
        };
        if stored.client_id != client.id {
            return Ok(Err(invalid_grant("Invalid or expired code.")));
        }
        if stored.redirect_uri != redirect_uri {
            return Ok(Err(invalid_grant("redirect_uri does not match the authorization request.")));
        }
        // The single-use gate: of concurrent redemptions exactly one gets past this line.
        let code_row = match self.flow.take_auth_code(&id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Ok(Err(invalid_grant("Invalid or expired code."))),
            Err(e) => return Err(e.into()),
        };
        if code_row.expiry < self.now() {
            return Ok(Err(invalid_grant("Invalid or expired code.")));
        }
        let challenge = &code_row.pkce.code_challenge;
        if challenge.is_empty() {
            if !verifier.is_empty() {
                // Downgrade: a verifier for a request that had no challenge (RFC 9700 §4.8.2).
                return Ok(Err(invalid_grant(
                    "code_verifier sent, but the authorization request had no code_challenge.",
                )));
            }
        } else if verifier.is_empty() {
            return Ok(Err(invalid_grant("Missing code_verifier.")));
        } else if !pkce::is_valid_verifier(verifier)
            || !pkce::verify(&code_row.pkce.code_challenge_method, challenge, verifier)
        {
            return Ok(Err(invalid_grant("code_verifier does not match the code_challenge.")));
        }

        let scopes = Scopes::from_list_lenient(code_row.scopes.iter());
        let minted =
            self.mint(&client.id, &scopes, &code_row.claims, &code_row.connector_id, &code_row.nonce)?;
        let refresh_token = if scopes.offline_access() {
            self.issue_refresh_token(
                client,
                &scopes,
                &code_row.claims,
                &code_row.connector_id,
                &code_row.connector_data,
                &code_row.nonce,
            )
            .await?
        } else {
            String::new()
        };
        tracing::info!(client_id = %client.id, connector_id = %code_row.connector_id, "authorization code redeemed");
        Ok(Ok(pb::TokenResponse {
            access_token: minted.access_token,
            token_type: "bearer".into(),
            expires_in: minted.expires_in,
            refresh_token,
            id_token: minted.id_token,
            ..Default::default()
        }))
    }
}
