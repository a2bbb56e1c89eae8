//! SQL backends (SQLite and Postgres) over sqlx.
//!
//! One implementation, [`SqlStorage`], serves both databases; [`Dialect`] is the small seam where
//! they differ (how to open a write transaction, how to lock a row, how a driver binds and reads
//! values). Statements use `$n` placeholders, which both drivers accept, and are built from the
//! constant column lists in `records.rs`, so no SQL is ever rewritten per database.
//!
//! Architecture invariants:
//! - Updates are compare-and-swap. The fast path is optimistic: the row is read on the read pool,
//!   the updater runs, and one autocommit `UPDATE ... WHERE <key> AND <every column IS its value
//!   as read>` writes it, so the write lock is held for one statement. When that statement
//!   changes no row (a concurrent writer came first, or the row is gone), the update is done
//!   again in one write transaction that reads and locks the row (SQLite `BEGIN IMMEDIATE`,
//!   Postgres `SELECT ... FOR UPDATE`). Serialization failures, deadlocks and busy databases are
//!   retried [`MAX_ATTEMPTS`] times with jittered backoff, then reported as
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

    /// Compare-and-swap: reads the row, applies `updater`, writes the result if the row is still
    /// what was read. Returns the stored value.
    async fn update<R: Record>(&self, key: Vec<Val>, updater: Updater<'_, R>) -> Result<R> {
        let seen = self.get::<R>(key.clone()).await?;
        self.update_from(key, seen, updater).await
    }

    /// [`Self::update`] starting from `seen`, the row as the caller read it: first one statement
    /// conditional on the row still being `seen`, else the locking transaction.
    async fn update_from<R: Record>(&self, key: Vec<Val>, seen: R, updater: Updater<'_, R>) -> Result<R> {
        match self.swap(&key, seen, updater).await? {
            Some(stored) => Ok(stored),
            None => self.update_locked(key, updater).await,
        }
    }

    /// Writes `updater(seen)` in one statement if the row still holds exactly the values of
    /// `seen`, and returns the stored row. `None` when it does not (changed or deleted meanwhile) or when the updater refused
    /// `seen`: its verdict counts only on the current row, which the caller then reads under lock.
    async fn swap<R: Record>(&self, key: &[Val], seen: R, updater: Updater<'_, R>) -> Result<Option<R>> {
        let expected = seen.clone().into_values()?;
        let Ok(new) = updater(seen) else { return Ok(None) };
        let values = new.into_values()?;
        // The new non-key values, the key, then the non-key values as read.
        let args: Vec<Val> = values
            .into_iter()
            .skip(R::KEY_LEN)
            .chain(key.iter().cloned())
            .chain(expected.into_iter().skip(R::KEY_LEN))
            .collect();
        let sql = sql_text::swap::<R>(D::NULL_SAFE_EQ);
        retry(|| async {
            let mut conn = self.write.acquire().await?;
            let rows = D::fetch_all(&mut conn, &sql, args.clone()).await?;
            Ok(first::<D, R>(&rows)?)
        })
        .await
    }

    /// Compare-and-swap in one write transaction: reads and locks the row, applies `updater`,
    /// writes the result.
    async fn update_locked<R: Record>(&self, key: Vec<Val>, updater: Updater<'_, R>) -> Result<R> {
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
    async fn update_refresh_seen(
        &self,
        seen: &RefreshToken,
        updater: Updater<'_, RefreshToken>,
    ) -> Result<RefreshToken> {
        self.update_from(vec![text(&seen.id)], seen.clone(), updater).await
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sqlx::{Connection, Executor, PgConnection};

    use super::*;
    use crate::storage::conformance as fixture;

    /// An update writes in one statement only when a row read back encodes to exactly the
    /// values stored; otherwise every update would pay for a failed statement and then the
    /// transaction. This holds for every record type.
    async fn every_record_takes_the_one_statement_path<D: Dialect>(s: &SqlStorage<D>) {
        let t = Utc::now();
        check(s, fixture::client("app")).await;
        check(s, fixture::password("jane@example.com")).await;
        check(s, fixture::connector("ldap")).await;
        check(s, fixture::key_set()).await;
        check(s, fixture::refresh_token("r1")).await;
        check(s, fixture::sessions("jane", "ldap")).await;
        check(s, fixture::auth_request("a1", t)).await;
        check(s, fixture::device_token("d1", t)).await;
    }

    async fn check<D: Dialect, R: Record + PartialEq + fmt::Debug>(s: &SqlStorage<D>, record: R) {
        let key: Vec<Val> = record.clone().into_values().unwrap().into_iter().take(R::KEY_LEN).collect();
        s.insert(record).await.unwrap();
        let seen: R = s.get(key.clone()).await.unwrap();
        let written = s.swap(&key, seen.clone(), &Ok).await.unwrap();
        assert_eq!(
            written.as_ref(),
            Some(&seen),
            "{}: the one-statement update did not match the row",
            R::TABLE
        );
    }

    #[tokio::test]
    async fn sqlite_records_take_the_one_statement_path() {
        let s = SqliteStorage::open(":memory:").await.unwrap();
        every_record_takes_the_one_statement_path(&s).await;
        s.close().await;
    }

    #[tokio::test]
    async fn postgres_records_take_the_one_statement_path() {
        let Ok(url) = std::env::var("OXIDEX_TEST_POSTGRES_URL") else {
            println!("skipped: OXIDEX_TEST_POSTGRES_URL is not set, so there is no Postgres server");
            return;
        };
        let name = format!("oxidex_swap_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&url).await.unwrap();
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
        let mut db_url = url::Url::parse(&url).unwrap();
        db_url.set_path(&name);
        let s = PostgresStorage::connect_url(db_url.as_str()).await.unwrap();
        let outcome = tokio::spawn(async move {
            every_record_takes_the_one_statement_path(&s).await;
            s.close().await;
        })
        .await;
        admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
