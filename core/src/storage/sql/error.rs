//! The one place where sqlx errors become backend-neutral [`StorageError`]s.

use sqlx::postgres::PgDatabaseError;

use crate::storage::StorageError;

/// Postgres SQLSTATEs that mean "try the transaction again": `serialization_failure` and
/// `deadlock_detected`.
const PG_TRANSIENT: &[&str] = &["40001", "40P01"];

/// SQLite extended result codes that mean "try again": `SQLITE_BUSY` (5) and its variants
/// `_RECOVERY` (261), `_SNAPSHOT` (517), `_TIMEOUT` (773); `SQLITE_LOCKED` (6) and
/// `_SHAREDCACHE` (262).
const SQLITE_TRANSIENT: &[&str] = &["5", "261", "517", "773", "6", "262"];

/// Why one attempt of an operation failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// A conflict with a concurrent transaction; running the operation again may succeed.
    Transient(sqlx::Error),
    /// Anything else: retrying would not help.
    Fatal(StorageError),
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Self::Fatal(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        let db = match &e {
            sqlx::Error::RowNotFound => return Self::Fatal(StorageError::NotFound),
            sqlx::Error::Database(db) => db,
            _ => return Self::Fatal(StorageError::backend(e)),
        };
        if db.is_unique_violation() {
            return Self::Fatal(StorageError::AlreadyExists);
        }
        let transient_codes =
            if db.try_downcast_ref::<PgDatabaseError>().is_some() { PG_TRANSIENT } else { SQLITE_TRANSIENT };
        let transient = db.code().is_some_and(|code| transient_codes.contains(&code.as_ref()));
        if transient { Self::Transient(e) } else { Self::Fatal(StorageError::backend(e)) }
    }
}

impl From<Failure> for StorageError {
    /// A transient failure that is not retried (any more) is reported as a conflict.
    fn from(f: Failure) -> Self {
        match f {
            Failure::Transient(_) => StorageError::Conflict,
            Failure::Fatal(e) => e,
        }
    }
}

/// Maps a sqlx error outside the retry loop.
pub(super) fn db_error(e: sqlx::Error) -> StorageError {
    Failure::from(e).into()
}

/// A stored value that cannot be decoded (corrupt or written by an incompatible version).
pub(super) fn corrupt(what: &str) -> StorageError {
    StorageError::Backend(format!("corrupt stored value: {what}").into())
}
