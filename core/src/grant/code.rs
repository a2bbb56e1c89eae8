//! `authorization_code` (RFC 6749 §4.1.3) with PKCE (RFC 7636) and downgrade protection.

use std::collections::HashMap;

use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{invalid_grant, oauth_error};
use crate::flow::{Provider, connector_allowed};
use crate::storage::{Client, StorageError, Tombstone};
use crate::token::pkce;
use crate::token::refresh::hash_code;
use crate::token::scopes::Scopes;

/// What a redeemed code issued, kept on its tombstone.
#[derive(serde::Serialize, serde::Deserialize)]
struct Issued {
    refresh_id: String,
    jtis: Vec<String>,
    expiry: chrono::DateTime<chrono::Utc>,
}

/// The id part of a refresh token string (empty when none was issued).
fn refresh_id(token: &str) -> String {
    crate::token::refresh::decode(token).map(|(id, _)| id).unwrap_or_default()
}

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
            Err(StorageError::NotFound) => {
                self.revoke_replayed_code(&id).await?;
                return Ok(Err(invalid_grant("Invalid or expired code.")));
            }
            Err(e) => return Err(e.into()),
        };
        if stored.client_id != client.id {
            return Ok(Err(invalid_grant("Invalid or expired code.")));
        }
        if stored.redirect_uri != redirect_uri {
            return Ok(Err(invalid_grant("redirect_uri does not match the authorization request.")));
        }
        // allowedConnectors may have changed since the login (Dex GHSA-7qjx, #4889).
        if !connector_allowed(client, &stored.connector_id) {
            return Ok(Err(invalid_grant("This client may no longer use the connector of this code.")));
        }
        // The single-use gate: of concurrent redemptions exactly one gets past this line.
        let code_row = match self.flow.take_auth_code(&id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => {
                self.revoke_replayed_code(&id).await?;
                return Ok(Err(invalid_grant("Invalid or expired code.")));
            }
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
            self.mint(&client.id, &scopes, &code_row.claims, &code_row.connector_id, &code_row.nonce).await?;
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
        // What remains of the code until it would have expired: a replay revokes all of this.
        let issued = Issued {
            refresh_id: refresh_id(&refresh_token),
            jtis: minted.jtis.clone(),
            expiry: minted.expiry,
        };
        let tombstone = Tombstone {
            id: format!("code:{id}"),
            data: serde_json::to_string(&issued).map_err(|_| Status::internal("encoding failed"))?,
            expiry: code_row.expiry,
        };
        match self.flow.create_tombstone(tombstone).await {
            Ok(()) | Err(StorageError::AlreadyExists) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(client_id = %client.id, connector_id = %code_row.connector_id, "authorization code redeemed");
        Ok(Ok(minted.response(refresh_token)))
    }

    /// A code that is gone was presented: when it was redeemed before (not merely unknown or
    /// expired), revoke the tokens that redemption issued (RFC 6749 §4.1.2, RFC 9700 §4.14).
    async fn revoke_replayed_code(&self, id: &str) -> Result<(), Status> {
        let tombstone = match self.flow.get_tombstone(&format!("code:{id}")).await {
            Ok(t) => t,
            Err(StorageError::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Ok(issued) = serde_json::from_str::<Issued>(&tombstone.data) else {
            tracing::error!("unreadable code tombstone");
            return Ok(());
        };
        tracing::warn!("authorization code replayed: revoking the tokens it issued");
        self.revoke_jtis(&issued.jtis, issued.expiry).await?;
        if !issued.refresh_id.is_empty() {
            match self.durable.get_refresh(&issued.refresh_id).await {
                Ok(token) => self.revoke_refresh(&token).await?,
                Err(StorageError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
