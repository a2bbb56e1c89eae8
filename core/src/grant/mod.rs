//! The token endpoint, one handler per grant type, plus userinfo.
//!
//! OAuth failures are values (`pb::OAuthError` with an RFC 6749 code and a client-safe
//! description); only failures of Oxidex itself become gRPC errors.
//!
//! Refresh tokens (`refresh.rs`): the token string is Dex's (`base64url(protobuf{id, secret})`);
//! storage keeps the secret's hash and a per-token rotation key. Each rotation derives the next
//! secret as an HMAC of the previous one under that key, so every caller that presents the
//! previous secret within `reuseInterval` receives the same successor (no forked chains), while
//! a rotated secret replayed after the interval revokes the whole token (RFC 9700 §4.14.2).

mod client_credentials;
mod code;
pub(crate) mod device;
mod introspect;
mod password;
mod refresh;
mod token_exchange;

pub use refresh::RefreshFlights;

use oxidex_proto::oxidex::v1 as pb;
use subtle::ConstantTimeEq as _;
use tonic::Status;

use crate::flow::Provider;
use crate::storage::{Claims, Client, StorageError, Tombstone};
use crate::token::claims::{ClaimsInput, access_token_claims, id_token_claims, left_half_hash, new_jti};
use crate::token::scopes::Scopes;

/// The device-code grant type of RFC 8628.
pub(crate) const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An OAuth error value.
pub(crate) fn oauth_error(error: &str, description: &str, status: i32) -> pb::OAuthError {
    pb::OAuthError {
        error: error.to_owned(),
        description: description.to_owned(),
        http_status: status,
        ..Default::default()
    }
}

pub(crate) fn invalid_grant(description: &str) -> pb::OAuthError {
    oauth_error("invalid_grant", description, 400)
}

pub(crate) fn invalid_client(auth: &pb::ClientAuth) -> pb::OAuthError {
    let mut e = oauth_error("invalid_client", "Client authentication failed.", 401);
    if auth.method == "client_secret_basic" {
        e.www_authenticate = "Basic realm=\"oxidex\"".into();
    }
    e
}

/// Tokens minted for one grant.
pub(crate) struct Minted {
    pub access_token: String,
    /// Empty when no ID token was asked for (`client_credentials` without `openid`).
    pub id_token: String,
    pub expires_in: i64,
    /// The `jti` of the access token and of the ID token (both are bearer tokens at userinfo).
    pub jtis: Vec<String>,
    /// When both expire.
    pub expiry: chrono::DateTime<chrono::Utc>,
}

impl Minted {
    /// The token response for these tokens (and a refresh token, possibly empty).
    pub(crate) fn response(self, refresh_token: String) -> pb::TokenResponse {
        pb::TokenResponse {
            access_token: self.access_token,
            token_type: "bearer".into(),
            expires_in: self.expires_in,
            refresh_token,
            id_token: self.id_token,
            ..Default::default()
        }
    }
}

/// What a token is minted for.
pub(crate) struct Grant<'a> {
    pub client_id: &'a str,
    pub scopes: &'a Scopes,
    pub claims: &'a Claims,
    pub connector_id: &'a str,
    pub nonce: &'a str,
    /// The authorization code issued alongside (hybrid flow), for `c_hash`.
    pub code: Option<&'a str>,
    /// Whether to sign an access token (false only for `code id_token` at the authorization
    /// endpoint).
    pub access_token: bool,
    /// Whether to sign an ID token.
    pub id_token: bool,
}

impl Provider {
    /// `/token`: dispatches on `grant_type`.
    pub async fn token(&self, req: pb::TokenRequest) -> Result<pb::TokenResult, Status> {
        let result = self.token_inner(&req).await?;
        Ok(pb::TokenResult {
            result: Some(match result {
                Ok(t) => pb::token_result::Result::Token(t),
                Err(e) => pb::token_result::Result::Error(e),
            }),
        })
    }

    async fn token_inner(
        &self,
        req: &pb::TokenRequest,
    ) -> Result<Result<pb::TokenResponse, pb::OAuthError>, Status> {
        if req.grant_type.is_empty() {
            return Ok(Err(oauth_error("invalid_request", "Missing grant_type.", 400)));
        }
        if !self.settings.grant_types.contains(&req.grant_type) {
            return Ok(Err(oauth_error("unsupported_grant_type", "This grant type is not enabled.", 400)));
        }
        let auth = req.client.clone().unwrap_or_default();
        if req.grant_type == GRANT_DEVICE_CODE {
            // The device code names its client; the grant authenticates that client.
            return self.device_code_grant(&auth, &req.params).await;
        }
        let client = match self.authenticate(&auth).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        tracing::debug!(client_id = %client.id, grant_type = %req.grant_type, "token request");
        match req.grant_type.as_str() {
            "authorization_code" => self.authorization_code_grant(&client, &req.params).await,
            "refresh_token" => self.refresh_token_grant(&client, &req.params).await,
            "password" => self.password_grant(&client, &req.params, &req.client_ip).await,
            "client_credentials" => self.client_credentials_grant(&client, &req.params).await,
            token_exchange::GRANT_TOKEN_EXCHANGE => self.token_exchange_grant(&client, &req.params).await,
            _ => Ok(Err(oauth_error("unsupported_grant_type", "This grant type is not supported yet.", 400))),
        }
    }

    /// Client authentication (RFC 6749 §2.3): constant-time secret comparison; public clients
    /// send no secret.
    pub(crate) async fn authenticate(
        &self,
        auth: &pb::ClientAuth,
    ) -> Result<Result<Client, pb::OAuthError>, Status> {
        if auth.client_id.is_empty() {
            return Ok(Err(invalid_client(auth)));
        }
        let client = match self.durable.get_client(&auth.client_id).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Ok(Err(invalid_client(auth))),
            Err(e) => return Err(e.into()),
        };
        if client.public {
            // A public client has no secret; one that presents a secret is not who it claims.
            if !auth.client_secret.is_empty() {
                tracing::info!(client_id = %client.id, "a public client presented a secret");
                return Ok(Err(invalid_client(auth)));
            }
            return Ok(Ok(client));
        }
        let ok = !client.secret.is_empty()
            && client.secret.len() == auth.client_secret.len()
            && bool::from(client.secret.as_bytes().ct_eq(auth.client_secret.as_bytes()));
        if !ok {
            tracing::info!(client_id = %client.id, "client authentication failed");
            return Ok(Err(invalid_client(auth)));
        }
        Ok(Ok(client))
    }

    /// Signs an access token and an ID token for the user.
    pub(crate) async fn mint(
        &self,
        client_id: &str,
        scopes: &Scopes,
        claims: &Claims,
        connector_id: &str,
        nonce: &str,
    ) -> Result<Minted, Status> {
        let grant = Grant {
            client_id,
            scopes,
            claims,
            connector_id,
            nonce,
            code: None,
            access_token: true,
            id_token: true,
        };
        self.mint_grant(&grant).await
    }

    /// Signs the access token and (when asked for) the ID token of a grant. The claims are built
    /// here; the signatures, the CPU-heavy part, run on [`crate::cpu`]'s threads.
    pub(crate) async fn mint_grant(&self, grant: &Grant<'_>) -> Result<Minted, Status> {
        let snapshot = self.keys.snapshot().map_err(|e| {
            tracing::error!(error = %e, "no signing key");
            Status::unavailable("signing keys are not loaded yet; retry shortly")
        })?;
        let now = self.now();
        let expiry = self.expires_in(self.settings.id_token_ttl);
        let alg = snapshot.signer.alg();
        let (jti, id_jti) = (new_jti(), new_jti());
        let input = ClaimsInput {
            issuer: &self.issuer,
            client_id: grant.client_id,
            scopes: grant.scopes,
            claims: grant.claims,
            connector_id: grant.connector_id,
            nonce: grant.nonce,
            issued_at: now,
            expiry,
            access_token: None,
            code: None,
            alg,
            jti: &jti,
            auth_time: None,
            session_id: None,
        };
        let access = grant.access_token.then(|| access_token_claims(&input, &crate::clock::new_id()));
        // `at_hash` is filled in once the access token is signed.
        let id =
            grant.id_token.then(|| id_token_claims(&ClaimsInput { code: grant.code, jti: &id_jti, ..input }));
        let mut jtis = Vec::with_capacity(2);
        if access.is_some() {
            jtis.push(jti);
        }
        if id.is_some() {
            jtis.push(id_jti);
        }

        let signer = snapshot.signer.clone();
        let signed = crate::cpu::run(move || {
            let access_token = access.map(|c| signer.sign(&c)).transpose()?.unwrap_or_default();
            let id_token = match id {
                Some(mut c) => {
                    if !access_token.is_empty() {
                        c.at_hash = Some(left_half_hash(alg, &access_token));
                    }
                    signer.sign(&c)?
                }
                None => String::new(),
            };
            Ok::<_, crate::token::keys::KeyError>((access_token, id_token))
        })
        .await
        .map_err(|_| Status::internal("signing failed"))?;
        let (access_token, id_token) = signed.map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            Status::internal("signing failed")
        })?;
        Ok(Minted { access_token, id_token, expires_in: (expiry - now).num_seconds(), jtis, expiry })
    }

    /// Marks access and ID tokens as revoked until they expire: userinfo and introspection refuse
    /// them from then on.
    pub(crate) async fn revoke_jtis(
        &self,
        jtis: &[String],
        expiry: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Status> {
        for jti in jtis {
            let tombstone = Tombstone { id: format!("jti:{jti}"), data: String::new(), expiry };
            match self.flow.create_tombstone(tombstone).await {
                Ok(()) | Err(StorageError::AlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Verifies a bearer token (signature, issuer, expiry) and that it was not revoked; returns
    /// its claims, or `None` for any token that is not (or no longer) valid.
    pub(crate) async fn verify_bearer(&self, token: &str) -> Result<Option<serde_json::Value>, Status> {
        if token.is_empty() {
            return Ok(None);
        }
        let snapshot =
            self.keys.snapshot().map_err(|_| Status::unavailable("signing keys are not loaded yet"))?;
        let claims = match crate::token::verify::verify_token(
            token,
            &snapshot.jwks,
            &self.issuer,
            self.now().timestamp(),
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "invalid bearer token");
                return Ok(None);
            }
        };
        if let Some(jti) = claims.get("jti").and_then(serde_json::Value::as_str) {
            match self.flow.get_tombstone(&format!("jti:{jti}")).await {
                Ok(_) => return Ok(None),
                Err(StorageError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(claims))
    }

    /// `/userinfo`: the verified access token's claims (Dex echoes the JWT's claims).
    pub async fn userinfo(&self, req: pb::UserinfoRequest) -> Result<pb::UserinfoResult, Status> {
        let result = match self.verify_bearer(&req.access_token).await? {
            Some(claims) => pb::userinfo_result::Result::ClaimsJson(claims.to_string()),
            None => pb::userinfo_result::Result::Error(pb::OAuthError {
                error: "invalid_token".into(),
                description: "The access token is invalid or expired.".into(),
                http_status: 401,
                www_authenticate: "Bearer error=\"invalid_token\"".into(),
                ..Default::default()
            }),
        };
        Ok(pb::UserinfoResult { result: Some(result) })
    }
}
