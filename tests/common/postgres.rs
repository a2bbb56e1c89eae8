//! A database of its own for each Postgres test: `fresh_database` creates one on the server of
//! `OXIDEX_TEST_POSTGRES_URL`, `Db::storage_yaml` is the config's `storage` block for it, and
//! `Db::drop` removes it again. Tests without `OXIDEX_TEST_POSTGRES_URL` skip with a message
//! (`url_or_skip`); CI always sets it.

use oxidex_core::storage::PostgresConfig;

/// The environment variable naming the Postgres server the tests may create databases on.
pub const URL_VAR: &str = "OXIDEX_TEST_POSTGRES_URL";

/// `OXIDEX_TEST_POSTGRES_URL`, or `None` after printing that `test` skipped.
pub fn url_or_skip(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED: set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test) to run {test}");
            None
        }
    }
}

/// A database created for one test.
#[derive(Debug)]
pub struct Db {
    admin_url: String,
    pub name: String,
    pub cfg: PostgresConfig,
}

/// Creates an empty database named `oxidex_{label}_{random id}` on the server of `url`.
pub async fn fresh_database(url: &str, label: &str) -> Db {
    use sqlx::Connection as _;
    let parsed = url::Url::parse(url).expect("OXIDEX_TEST_POSTGRES_URL is a URL");
    let name = format!("oxidex_{label}_{}", oxidex_core::clock::new_id());
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect to OXIDEX_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
    let cfg = PostgresConfig {
        host: parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
        port: parsed.port().unwrap_or(5432),
        database: name.clone(),
        user: if parsed.username().is_empty() { "postgres".into() } else { parsed.username().to_owned() },
        password: parsed.password().unwrap_or_default().to_owned(),
        ssl_mode: "disable".into(),
        ..Default::default()
    };
    Db { admin_url: url.to_owned(), name, cfg }
}

impl Db {
    /// The config file's `storage:` block (indented by two spaces) for this database.
    pub fn storage_yaml(&self) -> String {
        format!(
            "  type: postgres\n  config:\n    host: {}\n    port: {}\n    database: {}\n    user: {}\n    password: '{}'\n    ssl:\n      mode: disable",
            self.cfg.host, self.cfg.port, self.cfg.database, self.cfg.user, self.cfg.password
        )
    }

    /// Drops the database, closing the connections still open to it.
    pub async fn drop(self) {
        use sqlx::Connection as _;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}
