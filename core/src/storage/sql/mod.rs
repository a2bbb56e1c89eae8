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
mod group;
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
    /// SQLite: the group commit of single-statement writes (see [`group`]). Postgres commits
    /// concurrent transactions together by itself.
    group: Option<group::Queue<D>>,
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
        Self { write, read, group: None }
    }

    /// With group commit of single-statement writes (SQLite). Outside a Tokio runtime (where
    /// the writing task could not run) writes stay one commit each.
    fn with_group_commit(mut self) -> Self {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.group = Some(group::Queue::start(self.write.clone()));
        }
        self
    }

    /// Runs one single-statement write: through the group commit where there is one, else on a
    /// write connection of its own.
    async fn write_one(&self, sql: &str, args: &[Val], fetch: bool) -> Result<group::Out<D>, Failure> {
        let write = group::Write { sql: sql.to_owned(), args: args.to_vec(), fetch };
        if let Some(group) = &self.group
            && let Some(outcome) = group.run(write).await
        {
            return Ok(outcome?);
        }
        let mut conn = self.write.acquire().await?;
        Ok(if fetch {
            group::Out::Rows(D::fetch_all(&mut conn, sql, args.to_vec()).await?)
        } else {
            group::Out::Changed(D::execute(&mut conn, sql, args.to_vec()).await?)
        })
    }

    /// A write that returns rows (`RETURNING`), decoded: the first, if any.
    async fn write_returning<R: Record>(&self, sql: &str, args: &[Val]) -> Result<Option<R>, Failure> {
        match self.write_one(sql, args, true).await? {
            group::Out::Rows(rows) => Ok(first::<D, R>(&rows)?),
            group::Out::Changed(_) => Ok(None),
        }
    }

    /// A write that returns the number of rows it changed.
    async fn write_counting(&self, sql: &str, args: &[Val]) -> Result<u64, Failure> {
        match self.write_one(sql, args, false).await? {
            group::Out::Changed(n) => Ok(n),
            group::Out::Rows(rows) => Ok(rows.len() as u64),
        }
    }

    async fn insert<R: Record>(&self, record: R) -> Result<()> {
        let sql = sql_text::insert::<R>();
        let args = record.into_values()?;
        retry(|| async {
            self.write_counting(&sql, &args).await?;
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
    /// `seen`, and returns the stored row. `None` when it does not (changed or deleted
    /// meanwhile) or when the updater refused `seen`: its verdict counts only on the current
    /// row, which the caller then reads under lock.
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
        retry(|| self.write_returning::<R>(&sql, &args)).await
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
        let deleted = retry(|| self.write_counting(&sql, &key)).await?;
        if deleted == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    /// Deletes the row and returns it, in one statement.
    async fn take<R: Record>(&self, key: Vec<Val>) -> Result<R> {
        let sql = sql_text::take::<R>();
        retry(|| async { Ok(self.write_returning::<R>(&sql, &key).await?.ok_or(StorageError::NotFound)?) })
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

    use std::sync::Arc;
    use std::sync::atomic::Ordering;

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

    /// Creates the clients `ids` at once while the only write connection is held, so that every
    /// write queues behind it; returns each one's outcome.
    async fn create_queued(s: &Arc<SqliteStorage>, ids: Vec<String>) -> Vec<(String, Result<()>)> {
        let queued = || s.group.as_ref().unwrap().stats().queued.load(Ordering::SeqCst);
        let before = queued();
        let held = s.write.acquire().await.unwrap();
        let writes: Vec<_> = ids
            .iter()
            .map(|id| {
                let (s, id) = (s.clone(), id.clone());
                tokio::spawn(async move { (id.clone(), s.create_client(fixture::client(&id)).await) })
            })
            .collect();
        while queued() < before + ids.len() as u64 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut outcomes = Vec::new();
        for write in writes {
            outcomes.push(write.await.unwrap());
        }
        outcomes
    }

    /// Writes queued while the write connection is busy are committed in one transaction; when
    /// one of a batch fails, each caller still gets its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_commits_queued_writes_together_and_each_gets_its_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oxidex.db");
        let s = Arc::new(SqliteStorage::open(file.to_str().unwrap()).await.unwrap());
        let batches = || s.group.as_ref().unwrap().stats().batches.load(Ordering::SeqCst);

        let outcomes = create_queued(&s, (0..20).map(|i| format!("a{i:02}")).collect()).await;
        for (id, outcome) in outcomes {
            outcome.unwrap_or_else(|e| panic!("{id}: {e}"));
        }
        assert!(batches() >= 1, "no writes were committed together");

        // Every fifth is a duplicate of a stored client: those fail, the others are stored.
        let ids = (0..20).map(|i| if i % 5 == 0 { "a00".to_owned() } else { format!("b{i:02}") }).collect();
        for (id, outcome) in create_queued(&s, ids).await {
            if id == "a00" {
                assert!(matches!(outcome, Err(StorageError::AlreadyExists)), "{id}: {outcome:?}");
            } else {
                outcome.unwrap_or_else(|e| panic!("{id}: {e}"));
            }
        }
        let mut ids: Vec<_> = s.list_clients().await.unwrap().into_iter().map(|c| c.id).collect();
        ids.sort();
        let mut want: Vec<_> = (0..20).map(|i| format!("a{i:02}")).collect();
        want.extend((0..20).filter(|i| i % 5 != 0).map(|i| format!("b{i:02}")));
        assert_eq!(ids, want);
        s.close().await;
    }

    /// Committed together means committed: the writes are there after reopening the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writes_committed_together_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oxidex.db").to_str().unwrap().to_owned();
        let s = Arc::new(SqliteStorage::open(&file).await.unwrap());
        let held = s.write.acquire().await.unwrap();
        let writes: Vec<_> = (0..10)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.create_refresh(fixture::refresh_token(&format!("r{i}"))).await })
            })
            .collect();
        while s.group.as_ref().unwrap().stats().queued.load(Ordering::SeqCst) < 10 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for write in writes {
            write.await.unwrap().unwrap();
        }
        s.close().await;
        let reopened = SqliteStorage::open(&file).await.unwrap();
        assert_eq!(reopened.list_refresh_tokens().await.unwrap().len(), 10);
        reopened.close().await;
    }

    #[tokio::test]
    async fn sqlite_records_take_the_one_statement_path() {
        let s = SqliteStorage::open(":memory:").await.unwrap();
        every_record_takes_the_one_statement_path(&s).await;
        s.close().await;
    }

    /// Runs `test` on a Postgres database of its own (dropped afterwards, also when the test
    /// panics); `test` gets the storage, the database name and the server's admin URL. Skips
    /// without a server.
    async fn on_postgres<F, Fut>(test: F)
    where
        F: FnOnce(PostgresStorage, String, String) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Ok(url) = std::env::var("OXIDEX_TEST_POSTGRES_URL") else {
            println!("skipped: OXIDEX_TEST_POSTGRES_URL is not set, so there is no Postgres server");
            return;
        };
        let name = format!("oxidex_sql_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&url).await.unwrap();
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
        let mut db_url = url::Url::parse(&url).unwrap();
        db_url.set_path(&name);
        let s = PostgresStorage::connect_url(db_url.as_str()).await.unwrap();
        let outcome = tokio::spawn(test(s, name.clone(), url)).await;
        admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    #[tokio::test]
    async fn postgres_records_take_the_one_statement_path() {
        on_postgres(|s, _, _| async move {
            every_record_takes_the_one_statement_path(&s).await;
            s.close().await;
        })
        .await;
    }

    /// The pool does not ping before every statement, but a connection that sat idle while the
    /// server dropped it (a Postgres restart) is found out before it is used: the next call
    /// succeeds on a new connection instead of failing.
    #[tokio::test]
    async fn postgres_replaces_connections_dropped_while_idle() {
        on_postgres(|s, name, admin_url| async move {
            s.create_client(fixture::client("app")).await.unwrap();
            let mut admin = PgConnection::connect(&admin_url).await.unwrap();
            let dropped: Vec<(bool,)> = sqlx::query_as(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&name)
            .fetch_all(&mut admin)
            .await
            .unwrap();
            assert!(!dropped.is_empty(), "the pool held no connection to drop");
            tokio::time::sleep(postgres::PING_AFTER_IDLE + std::time::Duration::from_millis(200)).await;
            for _ in 0..3 {
                let client = s.get_client("app").await.expect("a dropped idle connection was handed out");
                assert_eq!(client.id, "app");
            }
            s.close().await;
        })
        .await;
    }
}
