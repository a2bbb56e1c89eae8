//! The setup of the relying-party tests: one static confidential client, the static password
//! user, and `oxidex serve` on the storage backend a test names (SQLite in its temp dir, or a
//! fresh Postgres database that is dropped afterwards, even when the test panics).

use std::future::Future;

use super::postgres::{fresh_database, url_or_skip};
use super::{PASSWORD_HASH, Ports, Server, config, sqlite_storage};

/// The static client's id, secret, name and only redirect URI.
pub const CLIENT_ID: &str = "rp";
pub const CLIENT_SECRET: &str = "rp-secret";
pub const CLIENT_NAME: &str = "Relying Party";
pub const REDIRECT: &str = "http://127.0.0.1:5555/callback";

/// The static password user: login (its email), password, and user id.
pub const EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "password";
pub const USER_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";

/// Dex's `sub` for user id 08a8684b-... of connector `local` (as Dex-issued tokens carry it).
pub const DEX_SUB: &str = "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs";

/// The config lines for the static client and the static password user.
pub fn static_setup() -> String {
    format!(
        "staticClients:\n- id: {CLIENT_ID}\n  name: {CLIENT_NAME}\n  secret: {CLIENT_SECRET}\n  redirectURIs: ['{REDIRECT}']\n\
         enablePasswordDB: true\n\
         staticPasswords:\n- email: {EMAIL}\n  hash: \"{PASSWORD_HASH}\"\n  username: admin\n  userID: {USER_ID}\n"
    )
}

/// A storage backend of `oxidex serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Starts `oxidex serve` with [`static_setup`] on `backend` and runs `test` with it. For Postgres
/// the database is created first and dropped after `test` ends or panics (the panic is then
/// resumed); without `OXIDEX_TEST_POSTGRES_URL` the Postgres run prints that `name` skipped and
/// returns.
pub async fn with_server<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(Server) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    match backend {
        Backend::Sqlite => {
            let server = start(|dir, ports| config(ports, &sqlite_storage(dir), &static_setup())).await;
            test(server).await;
        }
        Backend::Postgres => {
            let Some(url) = url_or_skip(name) else { return };
            let db = fresh_database(&url, "rp").await;
            let storage = db.storage_yaml();
            let outcome = tokio::spawn(async move {
                let server = start(move |_, ports| config(ports, &storage, &static_setup())).await;
                test(server).await;
            })
            .await;
            db.drop().await;
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

/// `Server::start` off the async worker threads (it polls readiness with blocking sleeps).
async fn start(config: impl FnOnce(&std::path::Path, &Ports) -> String + Send + 'static) -> Server {
    tokio::task::spawn_blocking(move || Server::start(Ports::new(), config))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
