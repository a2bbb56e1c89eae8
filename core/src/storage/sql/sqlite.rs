//! Opening a SQLite database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::error::db_error;
use super::{SqliteStorage, StorageError};
use crate::storage::Result;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for concurrent reads (WAL lets readers proceed while one writer writes).
const READERS: u32 = 4;

impl SqliteStorage {
    /// Opens the SQLite database `file`, creating it when missing, in WAL mode with foreign keys
    /// on, and brings its schema up to date. `:memory:` opens a private in-memory database.
    ///
    /// Several processes may open the same file (SQLite serialises their writes), but migrations
    /// are not coordinated between processes: start one first.
    pub async fn open(file: &str) -> Result<Self> {
        let in_memory = file == ":memory:";
        let options = if in_memory {
            SqliteConnectOptions::from_str(file).map_err(db_error)?
        } else {
            SqliteConnectOptions::new().filename(file)
        }
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT);

        // A single writer connection: SQLite admits one writer at a time, so writers queue in the
        // pool instead of spinning on SQLITE_BUSY. An in-memory database lives only as long as a
        // connection to it, so that connection is kept forever and also serves reads.
        //
        // No ping before handing a connection out: a SQLite connection is a thread of this
        // process, not a socket that can break, and the ping is a round trip to that thread on
        // every statement (sqlx still pings once when a connection goes back to the pool).
        let mut writer = SqlitePoolOptions::new().max_connections(1).test_before_acquire(false);
        if in_memory {
            writer = writer.min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        let write = writer.connect_with(options.clone()).await.map_err(db_error)?;
        if let Err(e) = MIGRATOR.run(&write).await {
            write.close().await;
            return Err(StorageError::backend(e));
        }
        let read = if in_memory {
            write.clone()
        } else {
            let readers = SqlitePoolOptions::new().max_connections(READERS).test_before_acquire(false);
            match readers.connect_with(options).await {
                Ok(read) => read,
                Err(e) => {
                    write.close().await;
                    return Err(db_error(e));
                }
            }
        };
        Ok(Self::new(write, read).with_group_commit())
    }
}
