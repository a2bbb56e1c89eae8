//! Runs the storage conformance suite against every backend: memory, SQLite (a temporary file,
//! and `:memory:`) and Postgres.
//!
//! Postgres runs when `OXIDEX_TEST_POSTGRES_URL` names a server whose user may create databases
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`); otherwise its tests pass after printing why
//! they skipped. Every Postgres test creates its own database and drops it at the end, so tests
//! can run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

use futures::future::join_all;
use oxidex_core::storage::conformance::{self, Case};
use oxidex_core::storage::sql::PostgresStorage;
use oxidex_core::storage::{Client, DurableStorage, PostgresConfig, Storage, StorageConfig};
use sqlx::{Connection, Executor, PgConnection};

const POSTGRES_URL_VAR: &str = "OXIDEX_TEST_POSTGRES_URL";

/// One test per conformance case and backend.
macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {
        mod memory {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::with_memory(|s| Box::pin(super::conformance::$case(s))).await;
            }
        )*}
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::with_sqlite_file(|s| Box::pin(super::conformance::$case(s))).await;
            }
        )*}
        mod sqlite_in_memory {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::with_sqlite_in_memory(|s| Box::pin(super::conformance::$case(s))).await;
            }
        )*}
        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::with_postgres(|s| Box::pin(super::conformance::$case(s))).await;
            }
        )*}
    };
}
oxidex_core::storage_conformance_cases!(conformance_tests);

async fn run(storage: Storage, case: Case) {
    case(storage.clone()).await;
    storage.durable.close().await;
}

async fn with_memory(case: Case) {
    run(Storage::open(&StorageConfig::Memory).await.unwrap(), case).await;
}

async fn with_sqlite_file(case: Case) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oxidex.db").to_str().unwrap().to_owned();
    run(Storage::open(&StorageConfig::Sqlite { file }).await.unwrap(), case).await;
}

async fn with_sqlite_in_memory(case: Case) {
    run(Storage::open(&StorageConfig::Sqlite { file: ":memory:".into() }).await.unwrap(), case).await;
}

async fn with_postgres(case: Case) {
    with_postgres_database(|cfg| async move {
        run(Storage::open(&StorageConfig::Postgres(cfg)).await.unwrap(), case).await;
    })
    .await;
}

/// Creates a fresh database, runs `test` with its configuration, and drops the database
/// afterwards, even when the test panics. Skips (and passes) when no server is configured.
async fn with_postgres_database<F, Fut>(test: F)
where
    F: FnOnce(PostgresConfig) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
        println!("skipped: {POSTGRES_URL_VAR} is not set, so there is no Postgres server to test against");
        return;
    };
    let name = format!("oxidex_conf_{:016x}", rand::random::<u64>());
    let mut admin = PgConnection::connect(&url).await.expect("connect to the Postgres test server");
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();

    // The test runs in its own task so that a panic still lets us drop the database.
    let outcome = tokio::spawn(test(config_from_url(&url, &name))).await;

    admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The Dex-style configuration for database `database` on the server of `url`.
fn config_from_url(url: &str, database: &str) -> PostgresConfig {
    let url = url::Url::parse(url).expect("a postgres:// URL");
    let query = |key: &str| url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned());
    PostgresConfig {
        host: url.host_str().unwrap_or("localhost").to_owned(),
        port: url.port().unwrap_or(5432),
        database: database.to_owned(),
        user: url.username().to_owned(),
        password: url.password().unwrap_or_default().to_owned(),
        // Dex defaults to verify-full; a local test server usually has no TLS at all.
        ssl_mode: query("sslmode").unwrap_or_else(|| "prefer".into()),
        ..PostgresConfig::default()
    }
}

/// Three replicas starting at once on an empty database all come up: migrations run once,
/// under sqlx's advisory lock, and the others see them applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_migrate_concurrently() {
    with_postgres_database(|cfg| async move {
        let opened = join_all((0..3).map(|_| PostgresStorage::open(&cfg))).await;
        let replicas: Vec<PostgresStorage> = opened.into_iter().map(|r| r.unwrap()).collect();
        let client = Client { id: "shared".into(), ..Client::default() };
        replicas[0].create_client(client.clone()).await.unwrap();
        assert_eq!(replicas[2].get_client("shared").await.unwrap(), client);
        for r in &replicas {
            r.close().await;
        }
    })
    .await;
}

/// A SQLite database keeps its data across a close and reopen (and migrations are idempotent).
#[tokio::test]
async fn sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::Sqlite { file: dir.path().join("oxidex.db").to_str().unwrap().to_owned() };
    let client =
        Client { id: "kept".into(), redirect_uris: vec!["https://x/cb".into()], ..Client::default() };

    let s = Storage::open(&config).await.unwrap();
    s.durable.create_client(client.clone()).await.unwrap();
    s.durable.close().await;
    assert!(s.durable.get_client("kept").await.is_err(), "a closed storage still answered");

    let s = Storage::open(&config).await.unwrap();
    assert_eq!(s.durable.get_client("kept").await.unwrap(), client);
    s.durable.close().await;
}

/// `run_all` runs every case in one go (here on memory), for harnesses that prefer that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_runs_every_case() {
    conformance::run_all(|| async { Storage::open(&StorageConfig::Memory).await.unwrap() }).await;
}

/// On a server whose transactions default to SERIALIZABLE, concurrent updaters of one row fail
/// with serialization errors (SQLSTATE 40001) instead of queueing; the backend retries them and
/// still loses no update.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_serialization_failures_are_retried() {
    with_postgres_database(|cfg| async move {
        let url = std::env::var(POSTGRES_URL_VAR).unwrap();
        let mut admin = PgConnection::connect(&url).await.unwrap();
        let serializable =
            format!("ALTER DATABASE {} SET default_transaction_isolation = 'serializable'", cfg.database);
        admin.execute(sqlx::AssertSqlSafe(serializable)).await.unwrap();
        admin.close().await.unwrap();
        let storage = Storage::open(&StorageConfig::Postgres(cfg)).await.unwrap();
        run(storage, |s| Box::pin(conformance::concurrent_client_updates(s))).await;
    })
    .await;
}
