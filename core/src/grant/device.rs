//! The device authorization grant (RFC 8628): `/device/code` hands out a device code and a user
//! code; the user enters the user code in a browser and logs in (see `flow::device`); the device
//! polls `/token` with the device code until the login is done.
//!
//! ```text
//! /device/code ──> DeviceRequest (by user code) + DeviceToken (by device-code hash, pending)
//! browser: /device ─> VerifyUserCode ─> login ─> consent ─> /device/callback ─> DeviceToken complete
//! device:  /token (device_code) ─> authorization_pending | slow_down | expired_token
//!                                 ─> complete: tokens minted now, DeviceToken consumed (single use)
//! ```
//!
//! Unlike Dex, the tokens are not minted at the browser callback and parked in storage: the
//! device token holds only the login's identity, and the tokens (with a fresh refresh token)
//! are minted when the device collects them, once. The client secret of a confidential client is
//! checked at `/device/code` and at every poll, and never stored or sent through the browser
//! (Dex #4928; Dex stores it on the device request and checks it at `/device/callback`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use oxidex_proto::oxidex::v1 as pb;
use serde::{Deserialize, Serialize};
use tonic::Status;

use super::{GRANT_DEVICE_CODE, Grant, invalid_client, invalid_grant, oauth_error};
use crate::clock::new_long_id;
use crate::flow::{Provider, validate_challenge};
use crate::storage::{Claims, Client, DeviceRequest, DeviceToken, Pkce, StorageError};
use crate::token::pkce;
use crate::token::refresh::hash_code;
use crate::token::scopes::Scopes;

/// The alphabet of user codes (Dex's: consonants only, so no words can be spelt).
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// The polling interval handed out, and the step by which `slow_down` grows it (RFC 8628 §3.5).
pub(crate) const POLL_INTERVAL_SECONDS: i32 = 5;

/// Device token states.
pub(crate) const PENDING: &str = "authorization_pending";
pub(crate) const COMPLETE: &str = "complete";
pub(crate) const DENIED: &str = "access_denied";
pub(crate) const CONSUMED: &str = "consumed";

/// The outcome of a device login, kept on the device token until the device collects it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeviceGrant {
    pub scopes: Vec<String>,
    pub claims: Claims,
    pub connector_id: String,
    pub connector_data: Vec<u8>,
}

/// A new user code: eight letters of [`USER_CODE_ALPHABET`] as `XXXX-XXXX` (about 34.6 bits).
pub(crate) fn new_user_code() -> String {
    let mut out = String::with_capacity(9);
    while out.len() < 9 {
        if out.len() == 4 {
            out.push('-');
        }
        // Rejection sampling keeps every letter equally likely (240 = 12 * 20).
        let b: u8 = rand::random();
        if b < 240 {
            out.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
        }
    }
    out
}

/// The canonical form of a user code as a person typed it: upper case, separators and spaces
/// dropped, the dash put back; `None` when it cannot be a user code.
pub(crate) fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String =
        typed.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).map(|c| c.to_ascii_uppercase()).collect();
    if letters.len() != 8 || !letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)) {
        return None;
    }
    Some(format!("{}-{}", &letters[..4], &letters[4..]))
}

/// What one poll decided.
enum Poll {
    Pending,
    SlowDown,
    Collect,
    Denied,
    Gone,
}

impl Provider {
    /// `/device/code`: starts a device authorization.
    pub async fn device_authorization(
        &self,
        req: pb::DeviceAuthorizationRequest,
    ) -> Result<pb::DeviceAuthorizationResult, Status> {
        let result = match self.device_authorization_inner(req).await? {
            Ok(r) => pb::device_authorization_result::Result::Response(r),
            Err(e) => pb::device_authorization_result::Result::Error(e),
        };
        Ok(pb::DeviceAuthorizationResult { result: Some(result) })
    }

    async fn device_authorization_inner(
        &self,
        req: pb::DeviceAuthorizationRequest,
    ) -> Result<Result<pb::DeviceAuthorizationResponse, pb::OAuthError>, Status> {
        if !self.settings.grant_types.iter().any(|g| g == GRANT_DEVICE_CODE) {
            return Ok(Err(oauth_error(
                "unauthorized_client",
                "The device flow is not enabled on this server.",
                400,
            )));
        }
        let auth = req.client.clone().unwrap_or_default();
        let client = match self.authenticate(&auth).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let scope = if req.scope.trim().is_empty() { "openid" } else { req.scope.as_str() };
        let scopes = match Scopes::parse(scope) {
            Ok(s) => s,
            Err(e) => return Ok(Err(oauth_error("invalid_scope", &e.to_string(), 400))),
        };
        if !scopes.openid() {
            return Ok(Err(oauth_error("invalid_scope", "Missing required scope(s) [\"openid\"].", 400)));
        }
        if let Some(why) = self.untrusted_peers(&client, &scopes).await? {
            return Ok(Err(oauth_error("invalid_scope", &why, 400)));
        }
        let method = match validate_challenge(&self.settings, &req.code_challenge, &req.code_challenge_method)
        {
            Ok(m) => m,
            Err(why) => return Ok(Err(oauth_error("invalid_request", &why, 400))),
        };

        let ttl = self.settings.device_request_ttl;
        let (now, expiry) = (self.now(), self.expires_in(ttl));
        let device_code = new_long_id();
        let token = DeviceToken {
            device_code: hash_code(&device_code),
            client_id: client.id.clone(),
            status: PENDING.into(),
            token: String::new(),
            expiry,
            last_request_time: now,
            poll_interval_seconds: POLL_INTERVAL_SECONDS,
            pkce: Pkce { code_challenge: req.code_challenge.clone(), code_challenge_method: method },
        };
        self.flow.create_device_token(token).await?;
        // A user code is short: on the rare collision with a live one, draw another.
        let mut user_code = String::new();
        for _ in 0..5 {
            let candidate = new_user_code();
            let request = DeviceRequest {
                user_code: candidate.clone(),
                device_code: hash_code(&device_code),
                client_id: client.id.clone(),
                scopes: scopes.to_vec(),
                expiry,
            };
            match self.flow.create_device_request(request).await {
                Ok(()) => {
                    user_code = candidate;
                    break;
                }
                Err(StorageError::AlreadyExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if user_code.is_empty() {
            return Err(Status::unavailable("could not allocate a user code; retry"));
        }
        tracing::info!(client_id = %client.id, "device authorization started");
        let verification_uri = self.url("/device");
        Ok(Ok(pb::DeviceAuthorizationResponse {
            verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
            verification_uri,
            device_code,
            user_code,
            expires_in: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            interval: i64::from(POLL_INTERVAL_SECONDS),
        }))
    }

    /// `/token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code`.
    pub(super) async fn device_code_grant(
        &self,
        auth: &pb::ClientAuth,
        params: &HashMap<String, String>,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        let device_code = get("device_code");
        if device_code.is_empty() {
            return Ok(Err(oauth_error("invalid_request", "Missing device_code.", 400)));
        }
        let id = hash_code(device_code);
        let token = match self.flow.get_device_token(&id).await {
            Ok(t) => t,
            Err(StorageError::NotFound) => return Ok(Err(invalid_grant("Invalid device code."))),
            Err(e) => return Err(e.into()),
        };
        // The client: the one that asked for the code. A confidential client authenticates
        // here as at any token request (RFC 8628 §3.4, RFC 6749 §3.2.1); a public client has no
        // secret and may send its id alone (or, as with Dex, nothing but the device code).
        if !auth.client_id.is_empty() && auth.client_id != token.client_id {
            return Ok(Err(invalid_grant("Invalid device code.")));
        }
        let client = match self.durable.get_client(&token.client_id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Ok(Err(invalid_client(auth))),
            Err(e) => return Err(e.into()),
        };
        let client = if client.public && auth.client_secret.is_empty() {
            client
        } else {
            match self
                .authenticate(&pb::ClientAuth { client_id: token.client_id.clone(), ..auth.clone() })
                .await?
            {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            }
        };
        let now = self.now();
        if token.expiry < now {
            return Ok(Err(oauth_error("expired_token", "The device code has expired.", 400)));
        }
        if token.status == COMPLETE {
            // Check the PKCE verifier before the code is consumed: a wrong one burns nothing.
            let (challenge, verifier) = (&token.pkce.code_challenge, get("code_verifier"));
            if challenge.is_empty() && !verifier.is_empty() {
                return Ok(Err(invalid_grant(
                    "code_verifier sent, but the device request had no code_challenge.",
                )));
            }
            if !challenge.is_empty() && !pkce::verify(&token.pkce.code_challenge_method, challenge, verifier)
            {
                return Ok(Err(invalid_grant("code_verifier does not match the code_challenge.")));
            }
        }

        let outcome = Mutex::new(Poll::Gone);
        let set = |p: Poll| *outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = p;
        let updated = self
            .flow
            .update_device_token(&id, &|mut t: DeviceToken| {
                match t.status.as_str() {
                    PENDING => {
                        let wait = Duration::from_secs(u64::try_from(t.poll_interval_seconds).unwrap_or(0));
                        let early =
                            now < t.last_request_time + chrono::Duration::from_std(wait).unwrap_or_default();
                        if early {
                            t.poll_interval_seconds =
                                t.poll_interval_seconds.saturating_add(POLL_INTERVAL_SECONDS);
                            set(Poll::SlowDown);
                        } else {
                            set(Poll::Pending);
                        }
                        t.last_request_time = now;
                    }
                    COMPLETE => {
                        t.status = CONSUMED.into();
                        set(Poll::Collect);
                    }
                    DENIED => set(Poll::Denied),
                    _ => return Err(StorageError::Rejected("device code already used".into())),
                }
                Ok(t)
            })
            .await;
        let collected = match updated {
            Ok(t) => t,
            Err(StorageError::NotFound | StorageError::Rejected(_)) => {
                return Ok(Err(invalid_grant("The device code was already used.")));
            }
            Err(e) => return Err(e.into()),
        };
        let outcome = outcome.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        match outcome {
            Poll::Pending => Ok(Err(oauth_error(
                "authorization_pending",
                "The user has not finished logging in yet.",
                400,
            ))),
            Poll::SlowDown => {
                let mut e = oauth_error("slow_down", "Polling too fast; wait longer between requests.", 400);
                e.retry_after_seconds = i64::from(collected.poll_interval_seconds);
                Ok(Err(e))
            }
            Poll::Denied => Ok(Err(oauth_error("access_denied", "The user denied the request.", 400))),
            Poll::Gone => Ok(Err(invalid_grant("The device code was already used."))),
            Poll::Collect => {
                let Ok(grant) = serde_json::from_str::<DeviceGrant>(&token.token) else {
                    tracing::error!(client_id = %client.id, "unreadable device grant");
                    return Err(Status::internal("unreadable device grant"));
                };
                self.device_tokens(&client, &grant).await
            }
        }
    }

    async fn device_tokens(
        &self,
        client: &Client,
        grant: &DeviceGrant,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        if !crate::flow::connector_allowed(client, &grant.connector_id) {
            return Ok(Err(invalid_grant("This client may no longer use the connector of this login.")));
        }
        let scopes = Scopes::from_list_lenient(grant.scopes.iter());
        let minted = self
            .mint_grant(&Grant {
                client_id: &client.id,
                scopes: &scopes,
                claims: &grant.claims,
                connector_id: &grant.connector_id,
                nonce: "",
                code: None,
                access_token: true,
                id_token: true,
            })
            .await?;
        let refresh_token = if scopes.offline_access() {
            self.issue_refresh_token(
                client,
                &scopes,
                &grant.claims,
                &grant.connector_id,
                &grant.connector_data,
                "",
            )
            .await?
        } else {
            String::new()
        };
        tracing::info!(client_id = %client.id, connector_id = %grant.connector_id, "device tokens collected");
        Ok(Ok(minted.response(refresh_token)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_well_formed_and_unique_enough() {
        // 2,000 draws from 20^8 codes collide with probability below 1e-4.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2_000 {
            let c = new_user_code();
            assert_eq!(c.len(), 9, "{c}");
            assert_eq!(&c[4..5], "-");
            assert!(c.bytes().filter(|b| *b != b'-').all(|b| USER_CODE_ALPHABET.contains(&b)), "{c}");
            assert!(seen.insert(c), "duplicate user code in 2,000");
        }
    }

    #[test]
    fn typed_user_codes_are_normalized() {
        assert_eq!(normalize_user_code("bcdf-ghjk").as_deref(), Some("BCDF-GHJK"));
        assert_eq!(normalize_user_code(" BCDF GHJK ").as_deref(), Some("BCDF-GHJK"));
        assert_eq!(normalize_user_code("BCDFGHJK").as_deref(), Some("BCDF-GHJK"));
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(normalize_user_code("AEIO-UBCD"), None, "vowels are not in the alphabet");
        assert_eq!(normalize_user_code("BCDF-GHJK-L"), None);
        assert_eq!(normalize_user_code(""), None);
    }
}
