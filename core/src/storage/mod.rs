//! Storage: one contract per aggregate, several backends, one conformance suite.
//!
//! Durable state (clients, passwords, connectors, signing keys, refresh tokens and offline
//! sessions) and short-lived flow state (authorization requests, codes, device requests and
//! device tokens) are separate contracts, [`DurableStorage`] and [`FlowStorage`], so that flow
//! state can move to another backend (Redis) when replicas scale out.
//!
//! Architecture invariants:
//! - Every update is an atomic compare-and-swap: the updater closure sees the current value and
//!   its result is written only if nothing changed in between. Updaters may run more than once.
//!   Backends retry serialization conflicts a bounded number of times, then report
//!   [`StorageError::Conflict`].
//! - [`FlowStorage::take_auth_code`] is the single-use gate for codes: of any number of
//!   concurrent callers exactly one gets the code.
//! - Times are UTC instants; a backend never depends on the server's or database's time zone.
//! - Codes, device codes and refresh-token secrets reach storage only as hashes.

pub mod memory;
pub mod sql;
pub mod static_overlay;
pub mod types;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use types::*;

/// Errors of every storage backend, in backend-neutral kinds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object does not exist.
    #[error("not found")]
    NotFound,
    /// An object with the same key exists already.
    #[error("already exists")]
    AlreadyExists,
    /// Concurrent updates kept conflicting after the bounded number of retries.
    #[error("conflicting concurrent update, retries exhausted")]
    Conflict,
    /// The object comes from the configuration file and cannot be changed through storage.
    #[error("{0} is defined in the configuration file and is read-only")]
    ReadOnly(String),
    /// An updater refused the change; the message is meant for the caller.
    #[error("{0}")]
    Rejected(String),
    /// The backend failed (connection, I/O, corrupt data...).
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StorageError {
    /// Wraps any backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// Result of a storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A compare-and-swap updater: receives the current value, returns the new one or an error that
/// aborts the update. It may be called more than once.
pub type Updater<'a, T> = &'a (dyn Fn(T) -> Result<T> + Send + Sync);

/// Durable state: lives as long as the installation.
#[async_trait]
pub trait DurableStorage: Send + Sync + Debug {
    /// Creates a client; `AlreadyExists` if the id is taken.
    async fn create_client(&self, client: Client) -> Result<()>;
    /// Gets a client by id.
    async fn get_client(&self, id: &str) -> Result<Client>;
    /// Lists every client.
    async fn list_clients(&self) -> Result<Vec<Client>>;
    /// Updates a client atomically.
    async fn update_client(&self, id: &str, updater: Updater<'_, Client>) -> Result<Client>;
    /// Deletes a client.
    async fn delete_client(&self, id: &str) -> Result<()>;

    /// Creates a password; the email is the case-insensitive key.
    async fn create_password(&self, password: Password) -> Result<()>;
    /// Gets a password by email, case-insensitively.
    async fn get_password(&self, email: &str) -> Result<Password>;
    /// Lists every password.
    async fn list_passwords(&self) -> Result<Vec<Password>>;
    /// Updates a password atomically. The email cannot change.
    async fn update_password(&self, email: &str, updater: Updater<'_, Password>) -> Result<Password>;
    /// Deletes a password.
    async fn delete_password(&self, email: &str) -> Result<()>;

    /// Creates a connector.
    async fn create_connector(&self, connector: Connector) -> Result<()>;
    /// Gets a connector by id.
    async fn get_connector(&self, id: &str) -> Result<Connector>;
    /// Lists every connector.
    async fn list_connectors(&self) -> Result<Vec<Connector>>;
    /// Updates a connector atomically.
    async fn update_connector(&self, id: &str, updater: Updater<'_, Connector>) -> Result<Connector>;
    /// Deletes a connector.
    async fn delete_connector(&self, id: &str) -> Result<()>;

    /// Gets the key set; `NotFound` before the first key was made.
    async fn get_keys(&self) -> Result<Keys>;
    /// Creates the key set; `AlreadyExists` if another replica was first.
    async fn create_keys(&self, keys: Keys) -> Result<()>;
    /// Updates the key set atomically (the rotation CAS).
    async fn update_keys(&self, updater: Updater<'_, Keys>) -> Result<Keys>;

    /// Creates a refresh token.
    async fn create_refresh(&self, token: RefreshToken) -> Result<()>;
    /// Gets a refresh token by id.
    async fn get_refresh(&self, id: &str) -> Result<RefreshToken>;
    /// Lists every refresh token.
    async fn list_refresh_tokens(&self) -> Result<Vec<RefreshToken>>;
    /// Updates a refresh token atomically.
    async fn update_refresh(&self, id: &str, updater: Updater<'_, RefreshToken>) -> Result<RefreshToken>;
    /// Updates a refresh token atomically, exactly as [`Self::update_refresh`] of `seen.id`, given
    /// `seen`: the token as the caller read it a moment ago. A backend may use it to skip reading
    /// the token again (SQL tries one statement conditional on the stored token still being
    /// `seen`); when the token changed meanwhile, the updater runs on the current one.
    async fn update_refresh_seen(
        &self,
        seen: &RefreshToken,
        updater: Updater<'_, RefreshToken>,
    ) -> Result<RefreshToken> {
        self.update_refresh(&seen.id, updater).await
    }
    /// Deletes a refresh token.
    async fn delete_refresh(&self, id: &str) -> Result<()>;

    /// Creates the offline sessions of a user of a connector.
    async fn create_offline_sessions(&self, sessions: OfflineSessions) -> Result<()>;
    /// Gets the offline sessions of a user of a connector.
    async fn get_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<OfflineSessions>;
    /// Updates offline sessions atomically.
    async fn update_offline_sessions(
        &self,
        user_id: &str,
        conn_id: &str,
        updater: Updater<'_, OfflineSessions>,
    ) -> Result<OfflineSessions>;
    /// Deletes offline sessions.
    async fn delete_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<()>;

    /// Checks that the backend answers (readiness).
    async fn health_check(&self) -> Result<()>;
    /// Closes connections cleanly; later calls fail.
    async fn close(&self);
}

/// Short-lived flow state: every object has an expiry and is garbage collected after it.
#[async_trait]
pub trait FlowStorage: Send + Sync + Debug {
    /// Creates an authorization request.
    async fn create_auth_request(&self, request: AuthRequest) -> Result<()>;
    /// Gets an authorization request (expired ones too, until collected).
    async fn get_auth_request(&self, id: &str) -> Result<AuthRequest>;
    /// Updates an authorization request atomically.
    async fn update_auth_request(&self, id: &str, updater: Updater<'_, AuthRequest>) -> Result<AuthRequest>;
    /// Deletes an authorization request.
    async fn delete_auth_request(&self, id: &str) -> Result<()>;

    /// Stores an authorization code (by hash).
    async fn create_auth_code(&self, code: AuthCode) -> Result<()>;
    /// Reads an authorization code without consuming it.
    async fn get_auth_code(&self, id: &str) -> Result<AuthCode>;
    /// Atomically deletes and returns a code: the single-use gate. Of concurrent callers exactly
    /// one receives the code; the others get `NotFound`.
    async fn take_auth_code(&self, id: &str) -> Result<AuthCode>;

    /// Creates a device request (keyed by user code).
    async fn create_device_request(&self, request: DeviceRequest) -> Result<()>;
    /// Gets a device request by user code.
    async fn get_device_request(&self, user_code: &str) -> Result<DeviceRequest>;
    /// Deletes a device request (a user code is single use).
    async fn delete_device_request(&self, user_code: &str) -> Result<()>;

    /// Creates a device token (keyed by device code hash).
    async fn create_device_token(&self, token: DeviceToken) -> Result<()>;
    /// Gets a device token.
    async fn get_device_token(&self, device_code: &str) -> Result<DeviceToken>;
    /// Updates a device token atomically.
    async fn update_device_token(
        &self,
        device_code: &str,
        updater: Updater<'_, DeviceToken>,
    ) -> Result<DeviceToken>;

    /// Creates a tombstone; `AlreadyExists` when one with its id exists.
    async fn create_tombstone(&self, tombstone: Tombstone) -> Result<()>;
    /// Gets a tombstone (expired ones too, until collected).
    async fn get_tombstone(&self, id: &str) -> Result<Tombstone>;

    /// Removes every object whose expiry is before `now`, however many there are.
    async fn garbage_collect(&self, now: DateTime<Utc>) -> Result<GcResult>;

    /// Checks that the backend answers (readiness).
    async fn health_check(&self) -> Result<()>;
}

/// Which backend to use and how to reach it (the `storage` section of the config).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageConfig {
    /// In-process memory: for tests and demos; nothing survives a restart or is shared.
    Memory,
    /// One SQLite file (Dex's `sqlite3`).
    Sqlite {
        /// Path of the database file; created when missing.
        file: String,
    },
    /// A PostgreSQL server.
    Postgres(PostgresConfig),
}

/// Dex's `storage.config` keys for `postgres`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PostgresConfig {
    /// Host name, IP, or a directory for a unix socket (starts with `/`).
    pub host: String,
    /// Port; 5432 when zero.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Seconds to wait for a connection (`connectionTimeout`); 0 means the default.
    pub connection_timeout_secs: u64,
    /// Pool size (`maxOpenConns`); 0 means 5.
    pub max_open_conns: u32,
    /// Idle connections kept (`maxIdleConns`); 0 means 5.
    pub max_idle_conns: u32,
    /// Seconds a connection may live (`connMaxLifetime`); 0 means unlimited.
    pub conn_max_lifetime_secs: u64,
    /// `ssl.mode`: `disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full` (default).
    pub ssl_mode: String,
    /// `ssl.caFile`.
    pub ssl_ca_file: String,
    /// `ssl.certFile`.
    pub ssl_cert_file: String,
    /// `ssl.keyFile`.
    pub ssl_key_file: String,
}

impl Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

/// An opened backend: both contracts, possibly served by the same object.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Durable state.
    pub durable: Arc<dyn DurableStorage>,
    /// Short-lived flow state.
    pub flow: Arc<dyn FlowStorage>,
}

impl Storage {
    /// Opens the configured backend, running migrations where it has them.
    pub async fn open(config: &StorageConfig) -> Result<Self> {
        match config {
            StorageConfig::Memory => {
                let m = Arc::new(memory::MemoryStorage::new());
                Ok(Self { durable: m.clone(), flow: m })
            }
            StorageConfig::Sqlite { file } => {
                let s = Arc::new(sql::SqliteStorage::open(file).await?);
                Ok(Self { durable: s.clone(), flow: s })
            }
            StorageConfig::Postgres(cfg) => {
                let s = Arc::new(sql::PostgresStorage::open(cfg).await?);
                Ok(Self { durable: s.clone(), flow: s })
            }
        }
    }
}
