//! Opening a PostgreSQL database from Dex's `storage.config` keys.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use super::error::db_error;
use super::{PostgresStorage, StorageError};
use crate::storage::{PostgresConfig, Result};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Pool size when `maxOpenConns` is 0.
const DEFAULT_MAX_OPEN_CONNS: u32 = 5;

/// A pooled connection idle for longer than this is pinged before it is handed out.
pub(super) const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pool of at most `max` connections that pings a connection before handing it out only when
/// it sat idle for [`PING_AFTER_IDLE`] (long enough for the server to have restarted meanwhile),
/// not before every statement. sqlx's default pings on every acquire; with its ping on every
/// release that made each statement three round trips to Postgres. A connection in steady use
/// was just pinged when it was released, so the acquire ping found nothing new.
fn pool(max: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(max).test_before_acquire(false).before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for >= PING_AFTER_IDLE {
                sqlx::Connection::ping(conn).await?;
            }
            Ok(true)
        })
    })
}

impl PostgresStorage {
    /// Connects to the configured server and brings the schema up to date. Replicas may call this
    /// at the same time: migrations run under a Postgres advisory lock.
    pub async fn open(cfg: &PostgresConfig) -> Result<Self> {
        Self::connect(pool_options(cfg), connect_options(cfg)?).await
    }

    /// Connects with a libpq-style URL (`postgres://user:pass@host:port/db?sslmode=...`) and a
    /// default pool, then brings the schema up to date. Meant for tests and tools.
    pub async fn connect_url(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(db_error)?;
        Self::connect(pool(DEFAULT_MAX_OPEN_CONNS), options).await
    }

    async fn connect(pool: PgPoolOptions, options: PgConnectOptions) -> Result<Self> {
        let pool: PgPool = pool.connect_with(options).await.map_err(db_error)?;
        // On failure the migrator may return without releasing its advisory lock; closing the
        // pool closes the session, which releases it.
        if let Err(e) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(StorageError::backend(e));
        }
        Ok(Self::new(pool.clone(), pool))
    }
}

/// Pool settings. sqlx has no cap on idle connections, so `maxIdleConns` has no equivalent and
/// is ignored: idle connections are closed after sqlx's idle timeout (10 minutes) instead.
fn pool_options(cfg: &PostgresConfig) -> PgPoolOptions {
    let max_open = if cfg.max_open_conns == 0 { DEFAULT_MAX_OPEN_CONNS } else { cfg.max_open_conns };
    let mut pool = pool(max_open);
    if cfg.connection_timeout_secs > 0 {
        pool = pool.acquire_timeout(Duration::from_secs(cfg.connection_timeout_secs));
    }
    if cfg.conn_max_lifetime_secs > 0 {
        pool = pool.max_lifetime(Duration::from_secs(cfg.conn_max_lifetime_secs));
    } else {
        pool = pool.max_lifetime(None);
    }
    pool
}

/// Connection settings, as Dex builds its libpq data source: unset fields fall back to the
/// libpq environment (`PGHOST`, `PGUSER`, ...); a host starting with `/` is the directory of a
/// unix socket; `ssl.mode` defaults to `verify-full`.
fn connect_options(cfg: &PostgresConfig) -> Result<PgConnectOptions> {
    let mut o = PgConnectOptions::new();
    if cfg.host.starts_with('/') {
        o = o.socket(&cfg.host);
    } else if !cfg.host.is_empty() {
        o = o.host(&cfg.host);
    }
    if cfg.port != 0 {
        o = o.port(cfg.port);
    }
    if !cfg.database.is_empty() {
        o = o.database(&cfg.database);
    }
    if !cfg.user.is_empty() {
        o = o.username(&cfg.user);
    }
    if !cfg.password.is_empty() {
        o = o.password(&cfg.password);
    }
    o = o.ssl_mode(ssl_mode(&cfg.ssl_mode)?);
    if !cfg.ssl_ca_file.is_empty() {
        o = o.ssl_root_cert(&cfg.ssl_ca_file);
    }
    if !cfg.ssl_cert_file.is_empty() {
        o = o.ssl_client_cert(&cfg.ssl_cert_file);
    }
    if !cfg.ssl_key_file.is_empty() {
        o = o.ssl_client_key(&cfg.ssl_key_file);
    }
    Ok(o)
}

/// Dex's `ssl.mode`; empty means the strictest, `verify-full`.
fn ssl_mode(mode: &str) -> Result<PgSslMode> {
    if mode.is_empty() {
        return Ok(PgSslMode::VerifyFull);
    }
    PgSslMode::from_str(mode).map_err(|_| {
        StorageError::Backend(
            format!(
                "invalid postgres ssl.mode {mode:?}: expected disable, allow, prefer, require, \
                 verify-ca or verify-full"
            )
            .into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_mode_defaults_to_verify_full_and_rejects_unknown_modes() {
        assert!(matches!(ssl_mode(""), Ok(PgSslMode::VerifyFull)));
        assert!(matches!(ssl_mode("disable"), Ok(PgSslMode::Disable)));
        assert!(matches!(ssl_mode("verify-ca"), Ok(PgSslMode::VerifyCa)));
        assert!(matches!(ssl_mode("sometimes"), Err(StorageError::Backend(_))));
    }

    #[test]
    fn a_host_starting_with_a_slash_is_a_socket_directory() {
        let cfg = PostgresConfig { host: "/run/postgresql".into(), port: 5433, ..Default::default() };
        let o = connect_options(&cfg).ok();
        assert_eq!(
            o.as_ref().and_then(|o| o.get_socket()).map(|p| p.to_string_lossy().into_owned()),
            Some("/run/postgresql".into())
        );
        assert_eq!(o.map(|o| o.get_port()), Some(5433));
    }
}
