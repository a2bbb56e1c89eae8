//! SQL backends (SQLite and Postgres) over sqlx.
//!
//! One implementation, [`SqlStorage`], serves both databases; [`Dialect`] is the small seam where
//! they differ (how to open a write transaction, how to lock a row, how a driver binds and reads
//! values). Statements use `$n` placeholders, which both drivers accept, and are built from the
//! constant column lists in `records.rs`, so no SQL is ever rewritten per database.
//!
//! Architecture invariants:
//! - Updates are compare-and-swap: the row is read and written in one write transaction (SQLite
//!   `BEGIN IMMEDIATE`, Postgres `SELECT ... FOR UPDATE`). Serialization failures, deadlocks and
//!   busy databases are retried [`MAX_ATTEMPTS`] times with jittered backoff, then reported as
//!   [`StorageError::Conflict`].
//! - Taking an authorization code is one `DELETE ... RETURNING`: exactly one caller gets the row.
//! - Times are stored as microseconds since the Unix epoch (`BIGINT`), so neither the server's
//!   nor the session's time zone can change them.
//! - The schema is owned by the migrations in `core/migrations/{sqlite,postgres}`, applied when a
//!   backend opens. On Postgres sqlx holds an advisory lock while migrating, so replicas starting
//!   together apply each migration once.

mod dialect;
mod error;
mod postgres;
mod records;
mod sqlite;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

pub use dialect::Dialect;
use dialect::Val;
use error::{Failure, db_error};
use records::{Cols, KEYS_ID, Record, sql_text};

use super::*;

/// Attempts of one write operation before it fails with [`StorageError::Conflict`].
pub const MAX_ATTEMPTS: u32 = 10;

/// Storage on SQLite: one database file, for single-replica installations.
pub type SqliteStorage = SqlStorage<sqlx::Sqlite>;

/// Storage on PostgreSQL, shareable by any number of replicas.
pub type PostgresStorage = SqlStorage<sqlx::Postgres>;

/// Both storage contracts over a SQL database. Open one with [`SqliteStorage::open`] or
/// [`PostgresStorage::open`].
pub struct SqlStorage<D: Dialect> {
    /// Connections for writes. On SQLite this pool has a single connection: SQLite admits one
    /// writer at a time anyway, and queueing writers in the pool avoids busy-waiting in SQLite.
    write: Pool<D>,
    /// Connections for reads (the same pool as `write` on Postgres).
    read: Pool<D>,
}

impl<D: Dialect> fmt::Debug for SqlStorage<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStorage").field("database", &<D as sqlx::Database>::NAME).finish_non_exhaustive()
    }
}

/// Runs `op` until it succeeds, fails for good, or has failed transiently [`MAX_ATTEMPTS`]
/// times, sleeping a short random while between attempts so that contenders spread out.
async fn retry<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(e)) if attempt < MAX_ATTEMPTS => {
                // 2, 4, 8 ... 64 ms, times a random factor in [0.5, 1].
                let cap = (1u64 << attempt.min(6)) * 1000;
                let micros = rand::random_range(cap / 2..=cap);
                tracing::debug!(attempt, error = %e, "storage conflict, retrying");
                tokio::time::sleep(Duration::from_micros(micros)).await;
                attempt += 1;
            }
            Err(f) => return Err(f.into()),
        }
    }
}

/// The first row of a result, decoded.
fn first<D: Dialect, R: Record>(rows: &[D::Row]) -> Result<Option<R>> {
    rows.first().map(|row| R::decode(&mut Cols::<D>::new(row))).transpose()
}

impl<D: Dialect> SqlStorage<D> {
    fn new(write: Pool<D>, read: Pool<D>) -> Self {
        Self { write, read }
    }

    async fn insert<R: Record>(&self, record: R) -> Result<()> {
        let sql = sql_text::insert::<R>();
        let args = record.into_values()?;
        retry(|| async {
            let mut conn = self.write.acquire().await?;
            D::execute(&mut conn, &sql, args.clone()).await?;
            Ok(())
        })
        .await
    }

    async fn get<R: Record>(&self, key: Vec<Val>) -> Result<R> {
        let mut conn = self.read.acquire().await.map_err(db_error)?;
        let rows = D::fetch_all(&mut conn, &sql_text::select_one::<R>(""), key).await.map_err(db_error)?;
        first::<D, R>(&rows)?.ok_or(StorageError::NotFound)
    }

    async fn list<R: Record>(&self) -> Result<Vec<R>> {
        let mut conn = self.read.acquire().await.map_err(db_error)?;
        let rows = D::fetch_all(&mut conn, &sql_text::select_all::<R>(), vec![]).await.map_err(db_error)?;
        rows.iter().map(|row| R::decode(&mut Cols::<D>::new(row))).collect()
    }

    /// Compare-and-swap: reads and locks the row, applies `updater`, writes the result, all in
    /// one transaction. Returns the stored value.
    async fn update<R: Record>(&self, key: Vec<Val>, updater: Updater<'_, R>) -> Result<R> {
        let (select, update) = (sql_text::select_one::<R>(D::LOCK_ROW), sql_text::update::<R>());
        retry(|| async {
            let mut tx = self.write.begin_with(D::BEGIN_WRITE).await?;
            let rows = D::fetch_all(&mut tx, &select, key.clone()).await?;
            let old = first::<D, R>(&rows)?.ok_or(StorageError::NotFound)?;
            // The new non-key values, then the key: the key itself never changes.
            let values = updater(old)?.into_values()?;
            let args = values.into_iter().skip(R::KEY_LEN).chain(key.iter().cloned()).collect();
            let rows = D::fetch_all(&mut tx, &update, args).await?;
            let stored = first::<D, R>(&rows)?.ok_or(StorageError::NotFound)?;
            tx.commit().await?;
            Ok(stored)
        })
        .await
    }

    async fn delete<R: Record>(&self, key: Vec<Val>) -> Result<()> {
        let sql = sql_text::delete::<R>();
        let deleted = retry(|| async {
            let mut conn = self.write.acquire().await?;
            Ok(D::execute(&mut conn, &sql, key.clone()).await?)
        })
        .await?;
        if deleted == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    /// Deletes the row and returns it, in one statement.
    async fn take<R: Record>(&self, key: Vec<Val>) -> Result<R> {
        let sql = sql_text::take::<R>();
        retry(|| async {
            let mut conn = self.write.acquire().await?;
            let rows = D::fetch_all(&mut conn, &sql, key.clone()).await?;
            Ok(first::<D, R>(&rows)?.ok_or(StorageError::NotFound)?)
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.read.acquire().await.map_err(db_error)?;
        D::fetch_all(&mut conn, "SELECT 1", vec![]).await.map_err(db_error)?;
        Ok(())
    }
}

fn text(s: &str) -> Val {
    Val::Text(s.to_owned())
}

#[async_trait]
impl<D: Dialect> DurableStorage for SqlStorage<D> {
    async fn create_client(&self, client: Client) -> Result<()> {
        self.insert(client).await
    }
    async fn get_client(&self, id: &str) -> Result<Client> {
        self.get(vec![text(id)]).await
    }
    async fn list_clients(&self) -> Result<Vec<Client>> {
        self.list().await
    }
    async fn update_client(&self, id: &str, updater: Updater<'_, Client>) -> Result<Client> {
        self.update(vec![text(id)], updater).await
    }
    async fn delete_client(&self, id: &str) -> Result<()> {
        self.delete::<Client>(vec![text(id)]).await
    }

    async fn create_password(&self, password: Password) -> Result<()> {
        // `Password::into_values` lower-cases the email.
        self.insert(password).await
    }
    async fn get_password(&self, email: &str) -> Result<Password> {
        self.get(vec![email.to_lowercase().into()]).await
    }
    async fn list_passwords(&self) -> Result<Vec<Password>> {
        self.list().await
    }
    async fn update_password(&self, email: &str, updater: Updater<'_, Password>) -> Result<Password> {
        // The key column is never updated, so the stored email stays the lower-cased key.
        self.update(vec![email.to_lowercase().into()], updater).await
    }
    async fn delete_password(&self, email: &str) -> Result<()> {
        self.delete::<Password>(vec![email.to_lowercase().into()]).await
    }

    async fn create_connector(&self, connector: Connector) -> Result<()> {
        self.insert(connector).await
    }
    async fn get_connector(&self, id: &str) -> Result<Connector> {
        self.get(vec![text(id)]).await
    }
    async fn list_connectors(&self) -> Result<Vec<Connector>> {
        self.list().await
    }
    async fn update_connector(&self, id: &str, updater: Updater<'_, Connector>) -> Result<Connector> {
        self.update(vec![text(id)], updater).await
    }
    async fn delete_connector(&self, id: &str) -> Result<()> {
        self.delete::<Connector>(vec![text(id)]).await
    }

    async fn get_keys(&self) -> Result<Keys> {
        self.get(vec![text(KEYS_ID)]).await
    }
    async fn create_keys(&self, keys: Keys) -> Result<()> {
        self.insert(keys).await
    }
    async fn update_keys(&self, updater: Updater<'_, Keys>) -> Result<Keys> {
        self.update(vec![text(KEYS_ID)], updater).await
    }

    async fn create_refresh(&self, token: RefreshToken) -> Result<()> {
        self.insert(token).await
    }
    async fn get_refresh(&self, id: &str) -> Result<RefreshToken> {
        self.get(vec![text(id)]).await
    }
    async fn list_refresh_tokens(&self) -> Result<Vec<RefreshToken>> {
        self.list().await
    }
    async fn update_refresh(&self, id: &str, updater: Updater<'_, RefreshToken>) -> Result<RefreshToken> {
        self.update(vec![text(id)], updater).await
    }
    async fn delete_refresh(&self, id: &str) -> Result<()> {
        self.delete::<RefreshToken>(vec![text(id)]).await
    }

    async fn create_offline_sessions(&self, sessions: OfflineSessions) -> Result<()> {
        self.insert(sessions).await
    }
    async fn get_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<OfflineSessions> {
        self.get(vec![text(user_id), text(conn_id)]).await
    }
    async fn update_offline_sessions(
        &self,
        user_id: &str,
        conn_id: &str,
        updater: Updater<'_, OfflineSessions>,
    ) -> Result<OfflineSessions> {
        self.update(vec![text(user_id), text(conn_id)], updater).await
    }
    async fn delete_offline_sessions(&self, user_id: &str, conn_id: &str) -> Result<()> {
        self.delete::<OfflineSessions>(vec![text(user_id), text(conn_id)]).await
    }

    async fn health_check(&self) -> Result<()> {
        self.ping().await
    }
    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[async_trait]
impl<D: Dialect> FlowStorage for SqlStorage<D> {
    async fn create_auth_request(&self, request: AuthRequest) -> Result<()> {
        self.insert(request).await
    }
    async fn get_auth_request(&self, id: &str) -> Result<AuthRequest> {
        self.get(vec![text(id)]).await
    }
    async fn update_auth_request(&self, id: &str, updater: Updater<'_, AuthRequest>) -> Result<AuthRequest> {
        self.update(vec![text(id)], updater).await
    }
    async fn delete_auth_request(&self, id: &str) -> Result<()> {
        self.delete::<AuthRequest>(vec![text(id)]).await
    }

    async fn create_auth_code(&self, code: AuthCode) -> Result<()> {
        self.insert(code).await
    }
    async fn get_auth_code(&self, id: &str) -> Result<AuthCode> {
        self.get(vec![text(id)]).await
    }
    async fn take_auth_code(&self, id: &str) -> Result<AuthCode> {
        self.take(vec![text(id)]).await
    }

    async fn create_device_request(&self, request: DeviceRequest) -> Result<()> {
        self.insert(request).await
    }
    async fn get_device_request(&self, user_code: &str) -> Result<DeviceRequest> {
        self.get(vec![text(user_code)]).await
    }
    async fn delete_device_request(&self, user_code: &str) -> Result<()> {
        self.delete::<DeviceRequest>(vec![text(user_code)]).await
    }

    async fn create_device_token(&self, token: DeviceToken) -> Result<()> {
        self.insert(token).await
    }
    async fn get_device_token(&self, device_code: &str) -> Result<DeviceToken> {
        self.get(vec![text(device_code)]).await
    }
    async fn update_device_token(
        &self,
        device_code: &str,
        updater: Updater<'_, DeviceToken>,
    ) -> Result<DeviceToken> {
        self.update(vec![text(device_code)], updater).await
    }

    async fn create_tombstone(&self, tombstone: Tombstone) -> Result<()> {
        self.insert(tombstone).await
    }
    async fn get_tombstone(&self, id: &str) -> Result<Tombstone> {
        self.get(vec![text(id)]).await
    }

    async fn garbage_collect(&self, now: DateTime<Utc>) -> Result<GcResult> {
        // One transaction, one unbounded DELETE per table: every expired row goes, however many.
        retry(|| async {
            let mut tx = self.write.begin_with(D::BEGIN_WRITE).await?;
            let mut counts = [0u64; 5];
            for (count, table) in counts.iter_mut().zip(GC_TABLES) {
                let sql = format!("DELETE FROM {table} WHERE expiry < $1");
                *count = D::execute(&mut tx, &sql, vec![now.into()]).await?;
            }
            tx.commit().await?;
            let [auth_requests, auth_codes, device_requests, device_tokens, tombstones] = counts;
            Ok(GcResult { auth_requests, auth_codes, device_requests, device_tokens, tombstones })
        })
        .await
    }

    async fn health_check(&self) -> Result<()> {
        self.ping().await
    }
}

/// The tables of expiring flow state, in [`GcResult`] field order.
const GC_TABLES: [&str; 5] = [
    <AuthRequest as Record>::TABLE,
    <AuthCode as Record>::TABLE,
    <DeviceRequest as Record>::TABLE,
    <DeviceToken as Record>::TABLE,
    <Tombstone as Record>::TABLE,
];
