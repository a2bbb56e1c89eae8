//! What the shared SQL implementation needs from a database driver, and nothing more.
//!
//! The shared code in [`super`] never names SQLite or Postgres: it builds statements from
//! constant fragments with `$n` placeholders (which both drivers accept), binds backend-neutral
//! [`Val`]ues, and reads columns through the typed accessors below. Each driver implements
//! [`Dialect`] in a few lines; the only SQL that differs is the row-lock suffix and the statement
//! that opens a write transaction.

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Postgres, Row, Sqlite, Type};

/// A value bound to a statement parameter. Every column of every table has one of these types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// `TEXT` (strings and JSON documents).
    Text(String),
    /// `BIGINT` / `INTEGER` (numbers and times in microseconds since the Unix epoch).
    Int(i64),
    /// `BOOLEAN` (an `INTEGER` 0/1 in SQLite).
    Bool(bool),
    /// A nullable `BOOLEAN`.
    OptBool(Option<bool>),
    /// `BYTEA` / `BLOB`.
    Bytes(Vec<u8>),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::Sqlite {}
    impl Sealed for sqlx::Postgres {}
}

/// A database the SQL backend runs on: SQLite or Postgres. Sealed; not meant to be implemented
/// outside this crate.
#[async_trait]
pub trait Dialect: Database<Row: Send> + sealed::Sealed {
    /// Opens a read-modify-write transaction. SQLite takes the write lock immediately
    /// (`BEGIN IMMEDIATE`) so that two writers can never both read and then both write.
    const BEGIN_WRITE: &'static str;
    /// Appended to a `SELECT` of one row inside a write transaction to lock that row until
    /// commit (Postgres `FOR UPDATE`; SQLite already holds the database write lock).
    const LOCK_ROW: &'static str;
    /// Null-safe equality (`NULL` equals `NULL`), for the values a compare-and-swap expects.
    const NULL_SAFE_EQ: &'static str;

    /// Runs a statement, returns the number of rows it changed.
    async fn execute(conn: &mut Self::Connection, sql: &str, args: Vec<Val>) -> sqlx::Result<u64>;
    /// Runs a query, returns every row.
    async fn fetch_all(
        conn: &mut Self::Connection,
        sql: &str,
        args: Vec<Val>,
    ) -> sqlx::Result<Vec<Self::Row>>;

    /// Reads a `TEXT` column.
    fn text(row: &Self::Row, i: usize) -> sqlx::Result<String>;
    /// Reads an integer column.
    fn int(row: &Self::Row, i: usize) -> sqlx::Result<i64>;
    /// Reads a boolean column.
    fn boolean(row: &Self::Row, i: usize) -> sqlx::Result<bool>;
    /// Reads a nullable boolean column.
    fn opt_boolean(row: &Self::Row, i: usize) -> sqlx::Result<Option<bool>>;
    /// Reads a binary column.
    fn bytes(row: &Self::Row, i: usize) -> sqlx::Result<Vec<u8>>;
}

/// Builds a query and binds its arguments, for any driver that can encode every [`Val`].
fn query<'a, DB>(sql: &str, args: Vec<Val>) -> Query<'a, DB, DB::Arguments>
where
    DB: Database,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    Option<bool>: for<'q> Encode<'q, DB> + Type<DB>,
    Vec<u8>: for<'q> Encode<'q, DB> + Type<DB>,
{
    // The statement text is assembled from constant fragments only (see `super::sql_text`), never
    // from input; input always travels as bound parameters.
    let mut q = sqlx::query::<DB>(AssertSqlSafe(sql.to_owned()));
    for v in args {
        q = match v {
            Val::Text(s) => q.bind(s),
            Val::Int(n) => q.bind(n),
            Val::Bool(b) => q.bind(b),
            Val::OptBool(b) => q.bind(b),
            Val::Bytes(b) => q.bind(b),
        };
    }
    q
}

/// Reads column `i` of a row, for any driver.
fn get<'r, R, T>(row: &'r R, i: usize) -> sqlx::Result<T>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(i)
}

#[async_trait]
impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_ROW: &'static str = "";
    const NULL_SAFE_EQ: &'static str = "IS";

    async fn execute(conn: &mut SqliteConnection, sql: &str, args: Vec<Val>) -> sqlx::Result<u64> {
        Ok(query::<Sqlite>(sql, args).execute(conn).await?.rows_affected())
    }
    async fn fetch_all(
        conn: &mut SqliteConnection,
        sql: &str,
        args: Vec<Val>,
    ) -> sqlx::Result<Vec<SqliteRow>> {
        query::<Sqlite>(sql, args).fetch_all(conn).await
    }
    fn text(row: &SqliteRow, i: usize) -> sqlx::Result<String> {
        get(row, i)
    }
    fn int(row: &SqliteRow, i: usize) -> sqlx::Result<i64> {
        get(row, i)
    }
    fn boolean(row: &SqliteRow, i: usize) -> sqlx::Result<bool> {
        get(row, i)
    }
    fn opt_boolean(row: &SqliteRow, i: usize) -> sqlx::Result<Option<bool>> {
        get(row, i)
    }
    fn bytes(row: &SqliteRow, i: usize) -> sqlx::Result<Vec<u8>> {
        get(row, i)
    }
}

#[async_trait]
impl Dialect for Postgres {
    // READ COMMITTED plus `FOR UPDATE` row locks: concurrent updaters of one row queue on the lock
    // instead of failing, so retries are only needed for deadlocks or a server configured with
    // `default_transaction_isolation = serializable`.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROW: &'static str = " FOR UPDATE";
    const NULL_SAFE_EQ: &'static str = "IS NOT DISTINCT FROM";

    async fn execute(conn: &mut PgConnection, sql: &str, args: Vec<Val>) -> sqlx::Result<u64> {
        Ok(query::<Postgres>(sql, args).execute(conn).await?.rows_affected())
    }
    async fn fetch_all(conn: &mut PgConnection, sql: &str, args: Vec<Val>) -> sqlx::Result<Vec<PgRow>> {
        query::<Postgres>(sql, args).fetch_all(conn).await
    }
    fn text(row: &PgRow, i: usize) -> sqlx::Result<String> {
        get(row, i)
    }
    fn int(row: &PgRow, i: usize) -> sqlx::Result<i64> {
        get(row, i)
    }
    fn boolean(row: &PgRow, i: usize) -> sqlx::Result<bool> {
        get(row, i)
    }
    fn opt_boolean(row: &PgRow, i: usize) -> sqlx::Result<Option<bool>> {
        get(row, i)
    }
    fn bytes(row: &PgRow, i: usize) -> sqlx::Result<Vec<u8>> {
        get(row, i)
    }
}
