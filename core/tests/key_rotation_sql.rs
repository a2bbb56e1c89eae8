//! Signing-key rotation by several replicas at once on the SQL backends: exactly one rotation per
//! due time, and every replica ends up with the stored key set. Postgres runs when
//! `OXIDEX_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone as _;
use oxidex_core::clock::ManualClock;
use oxidex_core::storage::sql::{PostgresStorage, SqliteStorage};
use oxidex_core::storage::{DurableStorage, SigningAlg};
use oxidex_core::token::rotation::{KeyManager, RotationSettings};

async fn rotate_concurrently(replicas: Vec<Arc<dyn DurableStorage>>) {
    let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let settings = RotationSettings {
        algorithm: SigningAlg::ES256,
        period: Duration::from_secs(60),
        token_lifetime: Duration::from_secs(600),
    };
    let managers: Vec<KeyManager> = replicas
        .iter()
        .map(|s| KeyManager::new(s.clone(), Arc::new(clock.clone()), settings.clone()))
        .collect();
    for r in futures::future::join_all(managers.iter().map(KeyManager::refresh)).await {
        r.unwrap();
    }
    for round in 1..=5 {
        clock.advance(chrono::Duration::seconds(61));
        let before = replicas[0].get_keys().await.unwrap();
        for r in futures::future::join_all(managers.iter().map(KeyManager::refresh)).await {
            r.unwrap();
        }
        let after = replicas[0].get_keys().await.unwrap();
        assert_eq!(after.signing_key.kid, before.next_key.kid, "round {round}");
        assert_eq!(after.verification_keys.len(), round, "exactly one rotation in round {round}");
        for m in &managers {
            let s = m.snapshot().unwrap();
            assert_eq!(s.signer.kid(), after.signing_key.kid, "round {round}");
            let kids: Vec<&str> = s.jwks.iter().filter_map(|k| k["kid"].as_str()).collect();
            assert!(
                kids.contains(&after.next_key.kid.as_str()),
                "round {round}: {kids:?} lacks the next key"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_replicas_rotate_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.db").display().to_string();
    let mut replicas: Vec<Arc<dyn DurableStorage>> = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(SqliteStorage::open(&file).await.unwrap()));
    }
    rotate_concurrently(replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_rotate_once() {
    use sqlx::{Connection as _, Executor as _};
    let Ok(url) = std::env::var("OXIDEX_TEST_POSTGRES_URL") else {
        println!(
            "skipped: OXIDEX_TEST_POSTGRES_URL is not set, so there is no Postgres server to test against"
        );
        return;
    };
    let name = format!("oxidex_keys_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let mut db_url = url::Url::parse(&url).unwrap();
    db_url.set_path(&name);
    let mut replicas: Vec<Arc<dyn DurableStorage>> = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(PostgresStorage::connect_url(db_url.as_str()).await.unwrap()));
    }
    let outcome = tokio::spawn(rotate_concurrently(replicas)).await;
    admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
