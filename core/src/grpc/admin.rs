//! Dex's administration API (`api.Dex`): clients, passwords, connectors, refresh tokens.
//!
//! Semantics follow Dex v2.45.1's `server/api.go`, so that tools written for Dex (dexctl,
//! Terraform providers, scripts using the generated Go or Python clients) keep working:
//! - the `already_exists` / `not_found` booleans are set exactly where Dex sets them;
//! - `CreateClient` generates the id, and the secret of a confidential client, when empty;
//! - `Update*` treat empty strings and empty lists as "unchanged";
//! - `ListRefresh` / `RevokeRefresh` take the encoded ID-token `sub` as `user_id`.
//!
//! Where Dex answers a plain error (gRPC `Unknown`), Oxidex answers a real code instead:
//! `InvalidArgument` for bad input, `FailedPrecondition` for writes to objects of the config
//! file, `NotFound` for `GetClient` of an unknown id, `Aborted` for exhausted update retries
//! and `Internal` for backend failures (whose cause is logged, never returned). Connector CRUD
//! is always enabled: Dex's `DEX_API_CONNECTORS_CRUD` flag is not needed.
//!
//! Each RPC runs in its own span named after the method, carrying only `client_id` or
//! `connector_id`; emails appear at debug level only; hashes, passwords and secrets never.

use std::sync::{Arc, Mutex, PoisonError};

use oxidex_proto::api;
use oxidex_proto::api::dex_server::{Dex, DexServer};
use tonic::{Request, Response, Status};
use tracing::Span;

use crate::clock::new_id;
use crate::discovery::ProviderMetadata;
use crate::password;
use crate::storage::{Client, Connector, DurableStorage, Password, RefreshTokenRef, StorageError};
use crate::token::subject::decode_subject;

/// The API version reported by `GetVersion`: the one Dex v2.45.1 reports (its `apiVersion`
/// constant). Dex master reports 4 because it added the session/identity/MFA RPCs, which Oxidex
/// does not serve yet.
pub const API_VERSION: i32 = 3;

/// The `api.Dex` service over durable storage (usually a [`crate::storage::static_overlay`]).
#[derive(Debug, Clone)]
pub struct AdminService {
    storage: Arc<dyn DurableStorage>,
    metadata: Arc<ProviderMetadata>,
    version: &'static str,
}

impl AdminService {
    /// A service over `storage`; `metadata` answers `GetDiscovery`, `version` is the server
    /// version `GetVersion` reports.
    pub fn new(
        storage: Arc<dyn DurableStorage>,
        metadata: Arc<ProviderMetadata>,
        version: &'static str,
    ) -> Self {
        Self { storage, metadata, version }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> DexServer<Self> {
        DexServer::new(self)
    }
}

/// An `InvalidArgument` status; the message is for the caller, and logged at debug level.
fn invalid(message: impl Into<String>) -> Status {
    let message = message.into();
    tracing::debug!(%message, "invalid admin API request");
    Status::invalid_argument(message)
}

/// Checks a redirect URI: an absolute URI without fragment (RFC 6749 §3.1.2), or Dex's relative
/// `/device/callback` used by device-flow clients.
fn check_redirect_uri(uri: &str) -> Result<(), Status> {
    if uri == "/device/callback" {
        return Ok(());
    }
    match url::Url::parse(uri) {
        Ok(parsed) if parsed.fragment().is_some() => {
            Err(invalid(format!("invalid redirect URI {uri:?}: it must not contain a fragment")))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(invalid(format!("invalid redirect URI {uri:?}: {e}"))),
    }
}

fn check_list(what: &str, items: &[String]) -> Result<(), Status> {
    if items.iter().any(|s| s.trim().is_empty()) {
        return Err(invalid(format!("{what} must not contain empty strings")));
    }
    Ok(())
}

fn check_hash(hash: &[u8]) -> Result<(), Status> {
    password::check_bcrypt_hash(hash).map_err(|e| invalid(format!("invalid password hash: {e}")))
}

/// Connector configurations are JSON objects (Dex requires valid JSON; every connector type
/// needs an object).
fn check_connector_config(config: &[u8]) -> Result<(), Status> {
    match serde_json::from_slice::<serde_json::Value>(config) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(invalid("invalid connector config: it must be a JSON object")),
        Err(e) => Err(invalid(format!("invalid connector config: not valid JSON ({e})"))),
    }
}

fn client_to_proto(c: Client) -> api::Client {
    api::Client {
        id: c.id,
        secret: c.secret,
        redirect_uris: c.redirect_uris,
        trusted_peers: c.trusted_peers,
        public: c.public,
        name: c.name,
        logo_url: c.logo_url,
        allowed_connectors: c.allowed_connectors,
    }
}

fn client_info(c: Client) -> api::ClientInfo {
    api::ClientInfo {
        id: c.id,
        redirect_uris: c.redirect_uris,
        trusted_peers: c.trusted_peers,
        public: c.public,
        name: c.name,
        logo_url: c.logo_url,
        allowed_connectors: c.allowed_connectors,
    }
}

fn connector_to_proto(c: Connector) -> api::Connector {
    api::Connector { id: c.id, r#type: c.r#type, name: c.name, config: c.config, grant_types: c.grant_types }
}

fn refresh_ref_to_proto(r: RefreshTokenRef) -> api::RefreshTokenRef {
    api::RefreshTokenRef {
        id: r.id,
        client_id: r.client_id,
        created_at: r.created_at.timestamp(),
        last_used: r.last_used.timestamp(),
    }
}

fn decode_sub(sub: &str) -> Result<(String, String), Status> {
    if sub.is_empty() {
        return Err(invalid("no user_id supplied (the encoded \"sub\" claim of the user's ID token)"));
    }
    decode_subject(sub)
        .ok_or_else(|| invalid("user_id is not an encoded ID token subject (the \"sub\" claim)"))
}

fn record(field: &str, value: &str) {
    Span::current().record(field, value);
}

#[tonic::async_trait]
impl Dex for AdminService {
    #[tracing::instrument(name = "api.Dex/GetClient", skip_all, fields(client_id))]
    async fn get_client(
        &self,
        request: Request<api::GetClientReq>,
    ) -> Result<Response<api::GetClientResp>, Status> {
        let id = request.into_inner().id;
        record("client_id", &id);
        if id.is_empty() {
            return Err(invalid("no client id supplied"));
        }
        match self.storage.get_client(&id).await {
            Ok(client) => Ok(Response::new(api::GetClientResp { client: Some(client_to_proto(client)) })),
            // Dex answers a plain error here; there is no `not_found` boolean.
            Err(StorageError::NotFound) => Err(Status::not_found(format!("client {id:?} not found"))),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/CreateClient", skip_all, fields(client_id))]
    async fn create_client(
        &self,
        request: Request<api::CreateClientReq>,
    ) -> Result<Response<api::CreateClientResp>, Status> {
        let Some(mut c) = request.into_inner().client else {
            return Err(invalid("no client supplied"));
        };
        for uri in &c.redirect_uris {
            check_redirect_uri(uri)?;
        }
        check_list("trusted_peers", &c.trusted_peers)?;
        check_list("allowed_connectors", &c.allowed_connectors)?;
        if c.id.is_empty() {
            c.id = new_id();
        }
        if c.secret.is_empty() && !c.public {
            c.secret = format!("{}{}", new_id(), new_id());
        }
        record("client_id", &c.id);
        let client = Client {
            id: c.id.clone(),
            secret: c.secret.clone(),
            redirect_uris: c.redirect_uris.clone(),
            trusted_peers: c.trusted_peers.clone(),
            public: c.public,
            name: c.name.clone(),
            logo_url: c.logo_url.clone(),
            allowed_connectors: c.allowed_connectors.clone(),
            client_credentials_groups: Vec::new(),
        };
        match self.storage.create_client(client).await {
            Ok(()) => {
                tracing::info!("client created");
                Ok(Response::new(api::CreateClientResp { already_exists: false, client: Some(c) }))
            }
            Err(StorageError::AlreadyExists) => {
                Ok(Response::new(api::CreateClientResp { already_exists: true, client: None }))
            }
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/UpdateClient", skip_all, fields(client_id))]
    async fn update_client(
        &self,
        request: Request<api::UpdateClientReq>,
    ) -> Result<Response<api::UpdateClientResp>, Status> {
        let req = request.into_inner();
        record("client_id", &req.id);
        if req.id.is_empty() {
            return Err(invalid("no client id supplied"));
        }
        for uri in &req.redirect_uris {
            check_redirect_uri(uri)?;
        }
        check_list("trusted_peers", &req.trusted_peers)?;
        check_list("allowed_connectors", &req.allowed_connectors)?;
        let updater = |mut old: Client| {
            if !req.redirect_uris.is_empty() {
                old.redirect_uris.clone_from(&req.redirect_uris);
            }
            if !req.trusted_peers.is_empty() {
                old.trusted_peers.clone_from(&req.trusted_peers);
            }
            if !req.name.is_empty() {
                old.name.clone_from(&req.name);
            }
            if !req.logo_url.is_empty() {
                old.logo_url.clone_from(&req.logo_url);
            }
            if !req.allowed_connectors.is_empty() {
                old.allowed_connectors.clone_from(&req.allowed_connectors);
            }
            Ok(old)
        };
        match self.storage.update_client(&req.id, &updater).await {
            Ok(_) => {
                tracing::info!("client updated");
                Ok(Response::new(api::UpdateClientResp { not_found: false }))
            }
            Err(StorageError::NotFound) => Ok(Response::new(api::UpdateClientResp { not_found: true })),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/DeleteClient", skip_all, fields(client_id))]
    async fn delete_client(
        &self,
        request: Request<api::DeleteClientReq>,
    ) -> Result<Response<api::DeleteClientResp>, Status> {
        let id = request.into_inner().id;
        record("client_id", &id);
        if id.is_empty() {
            return Err(invalid("no client id supplied"));
        }
        match self.storage.delete_client(&id).await {
            Ok(()) => {
                tracing::info!("client deleted");
                Ok(Response::new(api::DeleteClientResp { not_found: false }))
            }
            Err(StorageError::NotFound) => Ok(Response::new(api::DeleteClientResp { not_found: true })),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/ListClients", skip_all)]
    async fn list_clients(
        &self,
        _: Request<api::ListClientReq>,
    ) -> Result<Response<api::ListClientResp>, Status> {
        let mut clients = self.storage.list_clients().await?;
        clients.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Response::new(api::ListClientResp { clients: clients.into_iter().map(client_info).collect() }))
    }

    #[tracing::instrument(name = "api.Dex/CreatePassword", skip_all)]
    async fn create_password(
        &self,
        request: Request<api::CreatePasswordReq>,
    ) -> Result<Response<api::CreatePasswordResp>, Status> {
        let Some(p) = request.into_inner().password else {
            return Err(invalid("no password supplied"));
        };
        if p.email.is_empty() {
            return Err(invalid("no email supplied"));
        }
        if p.user_id.is_empty() {
            return Err(invalid("no user ID supplied"));
        }
        if p.hash.is_empty() {
            return Err(invalid("no hash of password supplied"));
        }
        check_hash(&p.hash)?;
        let email = p.email.to_lowercase();
        tracing::debug!(%email, "creating password");
        let password =
            Password { email, hash: p.hash, username: p.username, user_id: p.user_id, ..Password::default() };
        match self.storage.create_password(password).await {
            Ok(()) => {
                tracing::info!("password created");
                Ok(Response::new(api::CreatePasswordResp { already_exists: false }))
            }
            Err(StorageError::AlreadyExists) => {
                Ok(Response::new(api::CreatePasswordResp { already_exists: true }))
            }
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/UpdatePassword", skip_all)]
    async fn update_password(
        &self,
        request: Request<api::UpdatePasswordReq>,
    ) -> Result<Response<api::UpdatePasswordResp>, Status> {
        let req = request.into_inner();
        if req.email.is_empty() {
            return Err(invalid("no email supplied"));
        }
        if req.new_hash.is_empty() && req.new_username.is_empty() {
            return Err(invalid("nothing to update: supply new_hash or new_username"));
        }
        if !req.new_hash.is_empty() {
            check_hash(&req.new_hash)?;
        }
        let email = req.email.to_lowercase();
        tracing::debug!(%email, "updating password");
        let updater = |mut old: Password| {
            if !req.new_hash.is_empty() {
                old.hash.clone_from(&req.new_hash);
            }
            if !req.new_username.is_empty() {
                old.username.clone_from(&req.new_username);
            }
            Ok(old)
        };
        match self.storage.update_password(&email, &updater).await {
            Ok(_) => {
                tracing::info!("password updated");
                Ok(Response::new(api::UpdatePasswordResp { not_found: false }))
            }
            Err(StorageError::NotFound) => Ok(Response::new(api::UpdatePasswordResp { not_found: true })),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/DeletePassword", skip_all)]
    async fn delete_password(
        &self,
        request: Request<api::DeletePasswordReq>,
    ) -> Result<Response<api::DeletePasswordResp>, Status> {
        let email = request.into_inner().email.to_lowercase();
        if email.is_empty() {
            return Err(invalid("no email supplied"));
        }
        tracing::debug!(%email, "deleting password");
        match self.storage.delete_password(&email).await {
            Ok(()) => {
                tracing::info!("password deleted");
                Ok(Response::new(api::DeletePasswordResp { not_found: false }))
            }
            Err(StorageError::NotFound) => Ok(Response::new(api::DeletePasswordResp { not_found: true })),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/ListPasswords", skip_all)]
    async fn list_passwords(
        &self,
        _: Request<api::ListPasswordReq>,
    ) -> Result<Response<api::ListPasswordResp>, Status> {
        let mut passwords = self.storage.list_passwords().await?;
        passwords.sort_by(|a, b| a.email.cmp(&b.email));
        // Hashes are never returned.
        let passwords = passwords
            .into_iter()
            .map(|p| api::Password {
                email: p.email,
                hash: Vec::new(),
                username: p.username,
                user_id: p.user_id,
            })
            .collect();
        Ok(Response::new(api::ListPasswordResp { passwords }))
    }

    #[tracing::instrument(name = "api.Dex/CreateConnector", skip_all, fields(connector_id))]
    async fn create_connector(
        &self,
        request: Request<api::CreateConnectorReq>,
    ) -> Result<Response<api::CreateConnectorResp>, Status> {
        let Some(c) = request.into_inner().connector else {
            return Err(invalid("no connector supplied"));
        };
        record("connector_id", &c.id);
        if c.id.is_empty() {
            return Err(invalid("no connector id supplied"));
        }
        if c.r#type.is_empty() {
            return Err(invalid("no connector type supplied"));
        }
        if c.name.is_empty() {
            return Err(invalid("no connector name supplied"));
        }
        if c.config.is_empty() {
            return Err(invalid("no connector config supplied"));
        }
        check_connector_config(&c.config)?;
        check_list("grant_types", &c.grant_types)?;
        let connector = Connector {
            id: c.id,
            r#type: c.r#type,
            name: c.name,
            resource_version: new_id(),
            config: c.config,
            grant_types: c.grant_types,
        };
        match self.storage.create_connector(connector).await {
            Ok(()) => {
                tracing::info!("connector created");
                Ok(Response::new(api::CreateConnectorResp { already_exists: false }))
            }
            Err(StorageError::AlreadyExists) => {
                Ok(Response::new(api::CreateConnectorResp { already_exists: true }))
            }
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/UpdateConnector", skip_all, fields(connector_id))]
    async fn update_connector(
        &self,
        request: Request<api::UpdateConnectorReq>,
    ) -> Result<Response<api::UpdateConnectorResp>, Status> {
        let req = request.into_inner();
        record("connector_id", &req.id);
        if req.id.is_empty() {
            return Err(invalid("no connector id supplied"));
        }
        if req.new_type.is_empty()
            && req.new_name.is_empty()
            && req.new_config.is_empty()
            && req.new_grant_types.is_none()
        {
            return Err(invalid(
                "nothing to update: supply new_type, new_name, new_config or new_grant_types",
            ));
        }
        if !req.new_config.is_empty() {
            check_connector_config(&req.new_config)?;
        }
        if let Some(g) = &req.new_grant_types {
            check_list("new_grant_types", &g.grant_types)?;
        }
        let updater = |mut old: Connector| {
            if !req.new_type.is_empty() {
                old.r#type.clone_from(&req.new_type);
            }
            if !req.new_name.is_empty() {
                old.name.clone_from(&req.new_name);
            }
            if !req.new_config.is_empty() {
                old.config.clone_from(&req.new_config);
            }
            // Present (even empty: "every grant type") replaces; absent keeps.
            if let Some(g) = &req.new_grant_types {
                old.grant_types.clone_from(&g.grant_types);
            }
            // A new opaque version tells every replica to reopen the connector.
            old.resource_version = new_id();
            Ok(old)
        };
        match self.storage.update_connector(&req.id, &updater).await {
            Ok(_) => {
                tracing::info!("connector updated");
                Ok(Response::new(api::UpdateConnectorResp { not_found: false }))
            }
            Err(StorageError::NotFound) => Ok(Response::new(api::UpdateConnectorResp { not_found: true })),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/DeleteConnector", skip_all, fields(connector_id))]
    async fn delete_connector(
        &self,
        request: Request<api::DeleteConnectorReq>,
    ) -> Result<Response<api::DeleteConnectorResp>, Status> {
        let id = request.into_inner().id;
        record("connector_id", &id);
        if id.is_empty() {
            return Err(invalid("no connector id supplied"));
        }
        match self.storage.delete_connector(&id).await {
            Ok(()) => {
                tracing::info!("connector deleted");
                Ok(Response::new(api::DeleteConnectorResp { not_found: false }))
            }
            Err(StorageError::NotFound) => Ok(Response::new(api::DeleteConnectorResp { not_found: true })),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(name = "api.Dex/ListConnectors", skip_all)]
    async fn list_connectors(
        &self,
        _: Request<api::ListConnectorReq>,
    ) -> Result<Response<api::ListConnectorResp>, Status> {
        let mut connectors = self.storage.list_connectors().await?;
        connectors.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Response::new(api::ListConnectorResp {
            connectors: connectors.into_iter().map(connector_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "api.Dex/GetVersion", skip_all)]
    async fn get_version(&self, _: Request<api::VersionReq>) -> Result<Response<api::VersionResp>, Status> {
        Ok(Response::new(api::VersionResp { server: self.version.to_owned(), api: API_VERSION }))
    }

    #[tracing::instrument(name = "api.Dex/GetDiscovery", skip_all)]
    async fn get_discovery(
        &self,
        _: Request<api::DiscoveryReq>,
    ) -> Result<Response<api::DiscoveryResp>, Status> {
        let m = &*self.metadata;
        Ok(Response::new(api::DiscoveryResp {
            issuer: m.issuer.clone(),
            authorization_endpoint: m.authorization_endpoint.clone(),
            token_endpoint: m.token_endpoint.clone(),
            jwks_uri: m.jwks_uri.clone(),
            userinfo_endpoint: m.userinfo_endpoint.clone(),
            device_authorization_endpoint: m.device_authorization_endpoint.clone(),
            introspection_endpoint: m.introspection_endpoint.clone(),
            grant_types_supported: m.grant_types_supported.clone(),
            response_types_supported: m.response_types_supported.clone(),
            subject_types_supported: m.subject_types_supported.clone(),
            id_token_signing_alg_values_supported: m.id_token_signing_alg_values_supported.clone(),
            code_challenge_methods_supported: m.code_challenge_methods_supported.clone(),
            scopes_supported: m.scopes_supported.clone(),
            token_endpoint_auth_methods_supported: m.token_endpoint_auth_methods_supported.clone(),
            claims_supported: m.claims_supported.clone(),
        }))
    }

    #[tracing::instrument(name = "api.Dex/ListRefresh", skip_all, fields(connector_id))]
    async fn list_refresh(
        &self,
        request: Request<api::ListRefreshReq>,
    ) -> Result<Response<api::ListRefreshResp>, Status> {
        let (user_id, conn_id) = decode_sub(&request.into_inner().user_id)?;
        record("connector_id", &conn_id);
        let refs = match self.storage.get_offline_sessions(&user_id, &conn_id).await {
            Ok(sessions) => sessions.refresh.into_values().map(refresh_ref_to_proto).collect(),
            // The user has no refresh token yet: an empty list, as in Dex.
            Err(StorageError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Response::new(api::ListRefreshResp { refresh_tokens: refs }))
    }

    #[tracing::instrument(name = "api.Dex/RevokeRefresh", skip_all, fields(client_id, connector_id))]
    async fn revoke_refresh(
        &self,
        request: Request<api::RevokeRefreshReq>,
    ) -> Result<Response<api::RevokeRefreshResp>, Status> {
        let req = request.into_inner();
        let (user_id, conn_id) = decode_sub(&req.user_id)?;
        record("connector_id", &conn_id);
        record("client_id", &req.client_id);
        if req.client_id.is_empty() {
            return Err(invalid("no client_id supplied"));
        }
        // Oxidex may hold several refresh tokens per user and client (one per device): all of
        // them are revoked. The references leave the offline sessions in one atomic update; the
        // updater may run more than once, so it records the removed ids afresh each time.
        let removed: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let updater = |mut old: crate::storage::OfflineSessions| {
            let ids: Vec<String> =
                old.refresh.values().filter(|r| r.client_id == req.client_id).map(|r| r.id.clone()).collect();
            if ids.is_empty() {
                return Err(StorageError::NotFound);
            }
            old.refresh.retain(|_, r| r.client_id != req.client_id);
            *removed.lock().unwrap_or_else(PoisonError::into_inner) = ids;
            Ok(old)
        };
        match self.storage.update_offline_sessions(&user_id, &conn_id, &updater).await {
            Ok(_) => {}
            Err(StorageError::NotFound) => {
                return Ok(Response::new(api::RevokeRefreshResp { not_found: true }));
            }
            Err(e) => return Err(e.into()),
        }
        let ids = std::mem::take(&mut *removed.lock().unwrap_or_else(PoisonError::into_inner));
        // The tokens themselves go next. One already gone is fine; for any other failure every
        // token is still tried before the first error is reported (the references are already
        // gone, so a left-over token can no longer be listed or revoked here).
        let mut first_error = None;
        for id in &ids {
            match self.storage.delete_refresh(id).await {
                Ok(()) | Err(StorageError::NotFound) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        tracing::info!(revoked = ids.len(), "refresh tokens revoked");
        Ok(Response::new(api::RevokeRefreshResp { not_found: false }))
    }

    #[tracing::instrument(name = "api.Dex/VerifyPassword", skip_all)]
    async fn verify_password(
        &self,
        request: Request<api::VerifyPasswordReq>,
    ) -> Result<Response<api::VerifyPasswordResp>, Status> {
        let req = request.into_inner();
        if req.email.is_empty() {
            return Err(invalid("no email supplied"));
        }
        if req.password.is_empty() {
            return Err(invalid("no password to verify supplied"));
        }
        tracing::debug!(email = %req.email.to_lowercase(), "verifying password");
        let stored = match self.storage.get_password(&req.email).await {
            Ok(p) => p,
            Err(StorageError::NotFound) => {
                return Ok(Response::new(api::VerifyPasswordResp { verified: false, not_found: true }));
            }
            Err(e) => return Err(e.into()),
        };
        // bcrypt is deliberately slow: keep it off the async workers, on the pool for slow work.
        let verified = crate::cpu::run_slow(move || password::verify(&req.password, &stored.hash))
            .await
            .map_err(|_| {
                tracing::error!("password verification was not run");
                Status::internal("internal error")
            })?;
        if !verified {
            tracing::info!("password check failed");
        }
        Ok(Response::new(api::VerifyPasswordResp { verified, not_found: false }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use tonic::Code;

    use super::*;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::{OfflineSessions, RefreshToken};
    use crate::token::subject::encode_subject;

    const HASH: &[u8] = b"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

    fn metadata() -> Arc<ProviderMetadata> {
        Arc::new(ProviderMetadata {
            issuer: "https://id.example.com".into(),
            authorization_endpoint: "https://id.example.com/auth".into(),
            token_endpoint: "https://id.example.com/token".into(),
            jwks_uri: "https://id.example.com/keys".into(),
            userinfo_endpoint: "https://id.example.com/userinfo".into(),
            device_authorization_endpoint: "https://id.example.com/device/code".into(),
            introspection_endpoint: "https://id.example.com/token/introspect".into(),
            revocation_endpoint: "https://id.example.com/token/revoke".into(),
            grant_types_supported: vec!["authorization_code".into()],
            response_types_supported: vec!["code".into()],
            subject_types_supported: vec!["public".into()],
            id_token_signing_alg_values_supported: vec!["RS256".into()],
            code_challenge_methods_supported: vec!["S256".into()],
            scopes_supported: vec!["openid".into()],
            token_endpoint_auth_methods_supported: vec!["client_secret_basic".into()],
            claims_supported: vec!["sub".into()],
            authorization_response_iss_parameter_supported: true,
        })
    }

    fn service() -> (Arc<MemoryStorage>, AdminService) {
        let storage = Arc::new(MemoryStorage::new());
        (storage.clone(), AdminService::new(storage, metadata(), "v-test"))
    }

    fn code<T>(r: Result<Response<T>, Status>) -> Code {
        r.err().map_or(Code::Ok, |s| s.code())
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:5555/callback",
            "com.example.app:/oauth",
            "/device/callback",
            "urn:ietf:wg:oauth:2.0:oob",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/relative", "https://app.example.com/cb#frag", "not a uri"] {
            assert_eq!(check_redirect_uri(bad).err().map(|s| s.code()), Some(Code::InvalidArgument), "{bad}");
        }
    }

    #[tokio::test]
    async fn create_client_generates_id_and_secret() {
        let (storage, svc) = service();
        let resp = svc
            .create_client(Request::new(api::CreateClientReq {
                client: Some(api::Client { name: "n".into(), ..api::Client::default() }),
            }))
            .await
            .map(Response::into_inner)
            .ok()
            .and_then(|r| r.client)
            .unwrap_or_default();
        assert_eq!(resp.id.len(), 25);
        assert_eq!(resp.secret.len(), 50);
        assert_eq!(storage.get_client(&resp.id).await.map(|c| c.secret).ok(), Some(resp.secret));

        let public = svc
            .create_client(Request::new(api::CreateClientReq {
                client: Some(api::Client { public: true, ..api::Client::default() }),
            }))
            .await
            .map(Response::into_inner)
            .ok()
            .and_then(|r| r.client)
            .unwrap_or_default();
        assert!(public.secret.is_empty());
        assert!(!public.id.is_empty());

        let bad = svc
            .create_client(Request::new(api::CreateClientReq {
                client: Some(api::Client { redirect_uris: vec!["nope".into()], ..api::Client::default() }),
            }))
            .await;
        assert_eq!(code(bad), Code::InvalidArgument);
        assert_eq!(
            code(svc.create_client(Request::new(api::CreateClientReq { client: None })).await),
            Code::InvalidArgument
        );
    }

    #[tokio::test]
    async fn update_treats_empty_as_unchanged() {
        let (storage, svc) = service();
        let original = Client {
            id: "c".into(),
            secret: "s".into(),
            redirect_uris: vec!["https://a/cb".into()],
            trusted_peers: vec!["p".into()],
            name: "name".into(),
            logo_url: "https://a/logo".into(),
            ..Client::default()
        };
        assert!(storage.create_client(original.clone()).await.is_ok());
        let r = svc
            .update_client(Request::new(api::UpdateClientReq { id: "c".into(), ..Default::default() }))
            .await;
        assert_eq!(r.map(|r| r.into_inner().not_found).ok(), Some(false));
        assert_eq!(storage.get_client("c").await.ok(), Some(original.clone()));
        let r = svc
            .update_client(Request::new(api::UpdateClientReq {
                id: "c".into(),
                name: "new".into(),
                ..Default::default()
            }))
            .await;
        assert_eq!(r.map(|r| r.into_inner().not_found).ok(), Some(false));
        let updated = storage.get_client("c").await.unwrap_or_default();
        assert_eq!(updated.name, "new");
        assert_eq!(updated.redirect_uris, original.redirect_uris);
        let r = svc
            .update_client(Request::new(api::UpdateClientReq { id: "zz".into(), ..Default::default() }))
            .await;
        assert_eq!(r.map(|r| r.into_inner().not_found).ok(), Some(true));
    }

    #[tokio::test]
    async fn passwords_check_cost_and_lower_case_email() {
        let (storage, svc) = service();
        let create = |hash: &[u8], user_id: &str| api::CreatePasswordReq {
            password: Some(api::Password {
                email: "Jane@Example.com".into(),
                hash: hash.to_vec(),
                username: "jane".into(),
                user_id: user_id.into(),
            }),
        };
        let four = bcrypt::hash("pw", 4).unwrap_or_default();
        let err = svc.create_password(Request::new(create(four.as_bytes(), "u1"))).await.err();
        assert_eq!(err.as_ref().map(Status::code), Some(Code::InvalidArgument));
        assert!(err.map(|s| s.message().to_owned()).unwrap_or_default().contains("between 10 and 16"));
        assert_eq!(code(svc.create_password(Request::new(create(HASH, ""))).await), Code::InvalidArgument);
        let ok = svc.create_password(Request::new(create(HASH, "u1"))).await;
        assert_eq!(ok.map(|r| r.into_inner().already_exists).ok(), Some(false));
        assert_eq!(
            storage.get_password("jane@example.com").await.map(|p| p.email).ok(),
            Some("jane@example.com".into())
        );
        let again = svc.create_password(Request::new(create(HASH, "u1"))).await;
        assert_eq!(again.map(|r| r.into_inner().already_exists).ok(), Some(true));

        let nothing = svc
            .update_password(Request::new(api::UpdatePasswordReq {
                email: "jane@example.com".into(),
                ..Default::default()
            }))
            .await;
        assert_eq!(code(nothing), Code::InvalidArgument);
        let list =
            svc.list_passwords(Request::new(api::ListPasswordReq {})).await.map(|r| r.into_inner().passwords);
        let list = list.unwrap_or_default();
        assert_eq!(list.len(), 1);
        assert!(list.iter().all(|p| p.hash.is_empty()));

        let verify = |password: &str| api::VerifyPasswordReq {
            email: "JANE@example.com".into(),
            password: password.into(),
        };
        let r = svc.verify_password(Request::new(verify("password"))).await.map(Response::into_inner);
        assert_eq!(r.map(|r| (r.verified, r.not_found)).ok(), Some((true, false)));
        let r = svc.verify_password(Request::new(verify("wrong"))).await.map(Response::into_inner);
        assert_eq!(r.map(|r| (r.verified, r.not_found)).ok(), Some((false, false)));
        assert_eq!(code(svc.verify_password(Request::new(verify(""))).await), Code::InvalidArgument);
    }

    #[tokio::test]
    async fn connectors_validate_and_bump_resource_version() {
        let (storage, svc) = service();
        let create = |config: &[u8]| api::CreateConnectorReq {
            connector: Some(api::Connector {
                id: "ldap".into(),
                r#type: "ldap".into(),
                name: "LDAP".into(),
                config: config.to_vec(),
                grant_types: vec![],
            }),
        };
        assert_eq!(
            code(svc.create_connector(Request::new(create(b"{not json"))).await),
            Code::InvalidArgument
        );
        assert_eq!(code(svc.create_connector(Request::new(create(b""))).await), Code::InvalidArgument);
        assert_eq!(code(svc.create_connector(Request::new(create(br#"{"host":"h"}"#))).await), Code::Ok);
        let v1 = storage.get_connector("ldap").await.map(|c| c.resource_version).unwrap_or_default();
        assert!(!v1.is_empty());
        let update = api::UpdateConnectorReq {
            id: "ldap".into(),
            new_grant_types: Some(api::GrantTypes { grant_types: vec!["password".into()] }),
            ..Default::default()
        };
        assert_eq!(code(svc.update_connector(Request::new(update)).await), Code::Ok);
        let c = storage.get_connector("ldap").await.unwrap_or_default();
        assert_ne!(c.resource_version, v1);
        assert_eq!(c.grant_types, vec!["password".to_owned()]);
        assert_eq!(c.config, br#"{"host":"h"}"#.to_vec());
        let nothing = api::UpdateConnectorReq { id: "ldap".into(), ..Default::default() };
        assert_eq!(code(svc.update_connector(Request::new(nothing)).await), Code::InvalidArgument);
    }

    #[tokio::test]
    async fn revoke_refresh_removes_every_token_of_the_client() {
        let (storage, svc) = service();
        let at = Utc.timestamp_opt(1_700_000_000, 0).single().unwrap_or_default();
        let mut refs = BTreeMap::new();
        for (id, client) in [("r1", "app"), ("r2", "app"), ("r3", "other")] {
            let token = RefreshToken {
                id: id.into(),
                client_id: client.into(),
                created_at: at,
                last_used: at,
                ..Default::default()
            };
            assert!(storage.create_refresh(token).await.is_ok());
            refs.insert(
                id.to_owned(),
                RefreshTokenRef { id: id.into(), client_id: client.into(), created_at: at, last_used: at },
            );
        }
        let sessions = OfflineSessions {
            user_id: "u".into(),
            conn_id: "local".into(),
            refresh: refs,
            connector_data: vec![],
        };
        assert!(storage.create_offline_sessions(sessions).await.is_ok());
        let sub = encode_subject("u", "local");
        let listed = svc.list_refresh(Request::new(api::ListRefreshReq { user_id: sub.clone() })).await;
        let listed = listed.map(|r| r.into_inner().refresh_tokens).unwrap_or_default();
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().all(|r| r.created_at == 1_700_000_000));

        let revoke = |client: &str| api::RevokeRefreshReq { user_id: sub.clone(), client_id: client.into() };
        let r = svc.revoke_refresh(Request::new(revoke("app"))).await;
        assert_eq!(r.map(|r| r.into_inner().not_found).ok(), Some(false));
        assert!(matches!(storage.get_refresh("r1").await, Err(StorageError::NotFound)));
        assert!(matches!(storage.get_refresh("r2").await, Err(StorageError::NotFound)));
        assert!(storage.get_refresh("r3").await.is_ok());
        let left = storage
            .get_offline_sessions("u", "local")
            .await
            .map(|s| s.refresh.into_keys().collect::<Vec<_>>());
        assert_eq!(left.ok(), Some(vec!["r3".to_owned()]));
        let r = svc.revoke_refresh(Request::new(revoke("app"))).await;
        assert_eq!(r.map(|r| r.into_inner().not_found).ok(), Some(true));
        let bad = api::RevokeRefreshReq { user_id: "%%%".into(), client_id: "app".into() };
        assert_eq!(code(svc.revoke_refresh(Request::new(bad)).await), Code::InvalidArgument);
        let unknown =
            svc.list_refresh(Request::new(api::ListRefreshReq { user_id: encode_subject("x", "y") })).await;
        assert_eq!(unknown.map(|r| r.into_inner().refresh_tokens.len()).ok(), Some(0));
    }

    #[tokio::test]
    async fn version_and_discovery() {
        let (_, svc) = service();
        let v = svc.get_version(Request::new(api::VersionReq {})).await.map(Response::into_inner);
        assert_eq!(v.map(|v| (v.server, v.api)).ok(), Some(("v-test".to_owned(), 3)));
        let d = svc.get_discovery(Request::new(api::DiscoveryReq {})).await.map(Response::into_inner);
        let d = d.unwrap_or_default();
        assert_eq!(d.issuer, "https://id.example.com");
        assert_eq!(d.introspection_endpoint, "https://id.example.com/token/introspect");
        assert_eq!(d.claims_supported, vec!["sub".to_owned()]);
    }
}
