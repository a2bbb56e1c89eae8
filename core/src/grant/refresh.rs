//! Refresh tokens: issuing them, and the `refresh_token` grant (RFC 6749 §6) with rotation,
//! reuse detection and lifetimes. See the module documentation of `grant` for the design.

use std::collections::HashMap;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oxidex_proto::oxidex::v1 as pb;
use tonic::Status;

use super::{invalid_grant, oauth_error};
use crate::clock::new_id;
use crate::connector::single_flight::SingleFlight;
use crate::connector::{ConnectorError, ConnectorScopes, Identity};
use crate::flow::{Provider, connector_allowed};
use crate::storage::{Claims, Client, OfflineSessions, RefreshToken, RefreshTokenRef, StorageError};
use crate::token::refresh::{decode, encode, hash_secret, new_secret, secret_matches};
use crate::token::scopes::{Scopes, narrowed};

/// How long the outcome of an upstream refresh is shared with the other callers of the same
/// rotation step (stragglers of a burst arrive after the first caller finished).
const SHARE_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// Why an upstream refresh gave no identity (cloneable, to share among a burst's callers).
#[derive(Debug, Clone)]
enum Flight {
    Refused(String),
    Failed(String),
}

/// The upstream refreshes in flight, keyed by refresh token id and successor secret hash: a
/// burst of parallel refreshes of one refresh token calls the upstream once.
pub struct RefreshFlights(SingleFlight<(String, String), Result<Identity, Flight>>);

impl Default for RefreshFlights {
    fn default() -> Self {
        Self(SingleFlight::new(SHARE_REFRESH))
    }
}

impl std::fmt::Debug for RefreshFlights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshFlights")
    }
}

/// The secret that follows `secret` in a token's rotation chain.
fn successor(rotation_key: &[u8], secret: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, rotation_key);
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, secret.as_bytes()).as_ref())
}

fn within(
    since: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    d: std::time::Duration,
) -> bool {
    !d.is_zero() && now - since <= chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Provider {
    /// Whether a refresh token has passed `absoluteLifetime` or `validIfNotUsedFor`.
    pub(super) fn refresh_expired(&self, token: &RefreshToken) -> bool {
        let (now, policy) = (self.now(), &self.settings.refresh);
        policy.absolute_lifetime.is_some_and(|d| !within(token.created_at, now, d))
            || policy.valid_if_not_used_for.is_some_and(|d| !within(token.last_used, now, d))
    }

    /// Issues a refresh token when the connector can refresh identities and the grant is
    /// enabled; returns the token string, or an empty string when none is issued.
    pub(super) async fn issue_refresh_token(
        &self,
        client: &Client,
        scopes: &Scopes,
        claims: &Claims,
        connector_id: &str,
        connector_data: &[u8],
        nonce: &str,
    ) -> Result<String, Status> {
        if !self.settings.grant_types.iter().any(|g| g == "refresh_token") {
            return Ok(String::new());
        }
        match self.connectors.get(connector_id).await {
            Ok(c) if c.refresh().is_some() && c.allows_grant_type("refresh_token") => {}
            Ok(_) => return Ok(String::new()),
            Err(e) => {
                tracing::warn!(connector_id, error = %e, "no refresh token: connector unavailable");
                return Ok(String::new());
            }
        }
        let (id, secret, now) = (new_id(), new_secret(), self.now());
        self.durable
            .create_refresh(RefreshToken {
                id: id.clone(),
                token: hash_secret(&secret),
                obsolete_token: String::new(),
                created_at: now,
                last_used: now,
                client_id: client.id.clone(),
                connector_id: connector_id.to_owned(),
                connector_data: connector_data.to_vec(),
                claims: claims.clone(),
                scopes: scopes.to_vec(),
                nonce: nonce.to_owned(),
                rotation_key: rand::random::<[u8; 32]>().to_vec(),
            })
            .await?;
        let reference =
            RefreshTokenRef { id: id.clone(), client_id: client.id.clone(), created_at: now, last_used: now };
        let add = |mut s: OfflineSessions| {
            s.refresh.insert(reference.id.clone(), reference.clone());
            s.connector_data = connector_data.to_vec();
            Ok(s)
        };
        for _ in 0..3 {
            match self.durable.update_offline_sessions(&claims.user_id, connector_id, &add).await {
                Ok(_) => break,
                Err(StorageError::NotFound) => {
                    let fresh = add(OfflineSessions {
                        user_id: claims.user_id.clone(),
                        conn_id: connector_id.to_owned(),
                        ..Default::default()
                    })?;
                    match self.durable.create_offline_sessions(fresh).await {
                        Ok(()) => break,
                        // Created concurrently by another login: update it instead.
                        Err(StorageError::AlreadyExists) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(encode(&id, &secret))
    }

    /// Deletes a refresh token and its reference: the whole rotation chain ends.
    pub(super) async fn revoke_refresh(&self, token: &RefreshToken) -> Result<(), Status> {
        match self.durable.delete_refresh(&token.id).await {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let id = token.id.clone();
        match self
            .durable
            .update_offline_sessions(&token.claims.user_id, &token.connector_id, &|mut s: OfflineSessions| {
                s.refresh.remove(&id);
                Ok(s)
            })
            .await
        {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn refresh_token_grant(
        &self,
        client: &Client,
        params: &HashMap<String, String>,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        let presented = params.get("refresh_token").map(String::as_str).unwrap_or_default();
        let Some((id, secret)) = decode(presented) else {
            return Ok(Err(invalid_grant("Invalid refresh token.")));
        };
        let token = match self.durable.get_refresh(&id).await {
            Ok(t) => t,
            Err(StorageError::NotFound) => return Ok(Err(invalid_grant("Invalid refresh token."))),
            Err(e) => return Err(e.into()),
        };
        if token.client_id != client.id {
            return Ok(Err(invalid_grant("Invalid refresh token.")));
        }
        // allowedConnectors may have changed since the login (Dex GHSA-7qjx, #4889).
        if !connector_allowed(client, &token.connector_id) {
            return Ok(Err(invalid_grant(
                "This client may no longer use the connector of this refresh token.",
            )));
        }
        // Looked up once: a stored connector is a storage read.
        let connector = self.connectors.get(&token.connector_id).await;
        if let Ok(connector) = &connector
            && !connector.allows_grant_type("refresh_token")
        {
            return Ok(Err(invalid_grant(
                "The connector of this refresh token no longer allows refreshing.",
            )));
        }
        let now = self.now();
        let policy = &self.settings.refresh;
        if self.refresh_expired(&token) {
            self.revoke_refresh(&token).await?;
            return Ok(Err(invalid_grant("The refresh token has expired.")));
        }
        let granted = Scopes::from_list_lenient(token.scopes.iter());
        let scopes = match params.get("scope").filter(|s| !s.is_empty()) {
            Some(requested) => match narrowed(requested, &granted) {
                Ok(s) => s,
                Err(e) => return Ok(Err(oauth_error("invalid_scope", &e.to_string(), 400))),
            },
            None => granted,
        };

        // Which secret is the client's, and which one does it get back? Nothing is written yet:
        // the rotation is stored only once the upstream agreed (below), so that an upstream
        // outage (a 503 to the client) leaves the presented secret current and the retry works.
        let current = secret_matches(&token.token, &secret);
        let (next_secret, rotation) = if current && policy.disable_rotation {
            (secret.clone(), None)
        } else if current {
            let next = successor(&token.rotation_key, &secret);
            let hashes = (hash_secret(&secret), hash_secret(&next));
            (next, Some(hashes))
        } else if secret_matches(&token.obsolete_token, &secret)
            && within(token.last_used, now, policy.reuse_interval)
            && secret_matches(&token.token, &successor(&token.rotation_key, &secret))
        {
            // The previous secret within the reuse interval (a lost response, parallel tabs).
            (successor(&token.rotation_key, &secret), None)
        } else {
            // A rotated (or forged) secret: someone else may hold the chain. End it.
            tracing::warn!(client_id = %client.id, "refresh token reused after rotation: revoking it");
            self.revoke_refresh(&token).await?;
            return Ok(Err(invalid_grant("The refresh token was already used; it has been revoked.")));
        };

        // Re-read the identity upstream where the connector can.
        let mut claims = token.claims.clone();
        let mut connector_data = token.connector_data.clone();
        match connector {
            Ok(connector) => {
                if let Some(refresher) = connector.refresh() {
                    let identity = Identity::from_claims(token.claims.clone(), token.connector_data.clone());
                    // Every caller of one rotation step (a burst of parallel refreshes of the
                    // same secret, all receiving the same successor) shares one upstream call.
                    let key = (token.id.clone(), hash_secret(&next_secret));
                    let scopes = ConnectorScopes::from_scopes(&token.scopes);
                    let outcome = self
                        .refreshes
                        .0
                        .run(
                            key,
                            |o| !matches!(o, Err(Flight::Failed(_))),
                            || async {
                                refresher.refresh(&scopes, identity).await.map_err(|e| match e {
                                    ConnectorError::Refused(reason) => Flight::Refused(reason),
                                    other => Flight::Failed(other.to_string()),
                                })
                            },
                        )
                        .await;
                    match outcome {
                        Ok(fresh) => {
                            claims = fresh.claims();
                            // The upstream may rotate its refresh token: keep the new one.
                            if !fresh.connector_data.is_empty() {
                                connector_data = fresh.connector_data;
                            }
                        }
                        Err(Flight::Refused(reason)) => {
                            tracing::info!(connector_id = %token.connector_id, %reason, "upstream refused refresh");
                            self.revoke_refresh(&token).await?;
                            return Ok(Err(invalid_grant("The user is no longer valid upstream.")));
                        }
                        Err(Flight::Failed(error)) => {
                            tracing::warn!(connector_id = %token.connector_id, %error, "upstream refresh failed");
                            let mut err = oauth_error(
                                "temporarily_unavailable",
                                "The login provider is unavailable; retry later.",
                                503,
                            );
                            err.retry_after_seconds = 5;
                            return Ok(Err(err));
                        }
                    }
                }
            }
            Err(ConnectorError::NotFound { .. }) => {
                self.revoke_refresh(&token).await?;
                return Ok(Err(invalid_grant("The connector of this refresh token no longer exists.")));
            }
            Err(e) => {
                tracing::warn!(connector_id = %token.connector_id, error = %e, "connector unavailable for refresh");
                return Ok(Err(oauth_error(
                    "temporarily_unavailable",
                    "The login provider is unavailable; retry later.",
                    503,
                )));
            }
        }

        // One compare-and-swap stores the rotation together with what the upstream said.
        let changed = claims != token.claims || connector_data != token.connector_data;
        if rotation.is_some() || changed {
            let (updated, data) = (claims.clone(), connector_data.clone());
            let written = self
                .durable
                .update_refresh_seen(&token, &|mut r: RefreshToken| {
                    if let Some((from, to)) = &rotation {
                        if r.token != *from {
                            return Err(StorageError::Rejected("rotated concurrently".into()));
                        }
                        r.obsolete_token.clone_from(from);
                        r.token.clone_from(to);
                        r.last_used = now;
                    }
                    if changed {
                        r.claims = updated.clone();
                        r.connector_data.clone_from(&data);
                    }
                    Ok(r)
                })
                .await;
            match written {
                Ok(_) => {}
                // A concurrent refresh with the same secret rotated first: the chain is the same,
                // so this caller gets the same successor.
                Err(StorageError::Rejected(_)) => match self.durable.get_refresh(&id).await {
                    Ok(r)
                        if rotation
                            .as_ref()
                            .is_some_and(|(from, to)| r.obsolete_token == *from && r.token == *to) => {}
                    Ok(r) => {
                        self.revoke_refresh(&r).await?;
                        return Ok(Err(invalid_grant("Invalid refresh token.")));
                    }
                    Err(StorageError::NotFound) => return Ok(Err(invalid_grant("Invalid refresh token."))),
                    Err(e) => return Err(e.into()),
                },
                Err(StorageError::NotFound) => return Ok(Err(invalid_grant("Invalid refresh token."))),
                Err(e) => return Err(e.into()),
            }
            if connector_data != token.connector_data {
                match self
                    .durable
                    .update_offline_sessions(
                        &token.claims.user_id,
                        &token.connector_id,
                        &|mut s: OfflineSessions| {
                            s.connector_data.clone_from(&data);
                            Ok(s)
                        },
                    )
                    .await
                {
                    Ok(_) | Err(StorageError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let minted = self.mint(&client.id, &scopes, &claims, &token.connector_id, &token.nonce).await?;
        Ok(Ok(pb::TokenResponse {
            access_token: minted.access_token,
            token_type: "bearer".into(),
            expires_in: minted.expires_in,
            refresh_token: encode(&id, &next_secret),
            id_token: minted.id_token,
            ..Default::default()
        }))
    }
}
