//! How each stored object maps to a table row, and the statements built from that mapping.
//!
//! Column conventions (the migrations follow them):
//! - times are `BIGINT` microseconds since the Unix epoch, i.e. UTC instants that no server or
//!   session time zone can shift (Postgres `timestamptz` would do too, but SQLite has no time type
//!   and one representation keeps the implementation shared);
//! - lists, maps, claims and keys are JSON documents in `TEXT` columns;
//! - opaque bytes (connector data, configs, hashes, HMAC keys) are `BYTEA` / `BLOB`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dialect::{Dialect, Val};
use super::error::{corrupt, db_error};
use crate::storage::{
    AuthCode, AuthRequest, Claims, Client, Connector, DeviceRequest, DeviceToken, Keys, OfflineSessions,
    Password, Pkce, RefreshToken, Result, StorageError, Tombstone,
};

/// The key of the single row of the `keys` table.
pub(super) const KEYS_ID: &str = "keys";

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Text(s)
    }
}
impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Text(s.to_owned())
    }
}
impl From<bool> for Val {
    fn from(b: bool) -> Self {
        Val::Bool(b)
    }
}
impl From<Option<bool>> for Val {
    fn from(b: Option<bool>) -> Self {
        Val::OptBool(b)
    }
}
impl From<i32> for Val {
    fn from(n: i32) -> Self {
        Val::Int(n.into())
    }
}
impl From<Vec<u8>> for Val {
    fn from(b: Vec<u8>) -> Self {
        Val::Bytes(b)
    }
}
impl From<DateTime<Utc>> for Val {
    /// Microseconds since the epoch: chrono's whole range fits in an `i64`.
    fn from(t: DateTime<Utc>) -> Self {
        Val::Int(t.timestamp_micros())
    }
}

/// Encodes a value as a JSON `TEXT` column.
fn json(v: &impl Serialize) -> Result<Val> {
    serde_json::to_string(v).map(Val::Text).map_err(StorageError::backend)
}

/// Reads the columns of one row in order, as the `SELECT` listed them.
pub(super) struct Cols<'r, D: Dialect> {
    row: &'r D::Row,
    next: usize,
}

impl<'r, D: Dialect> Cols<'r, D> {
    pub(super) fn new(row: &'r D::Row) -> Self {
        Self { row, next: 0 }
    }
    fn index(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }
    fn skip(&mut self) {
        self.next += 1;
    }
    fn text(&mut self) -> Result<String> {
        D::text(self.row, self.index()).map_err(db_error)
    }
    fn int(&mut self) -> Result<i64> {
        D::int(self.row, self.index()).map_err(db_error)
    }
    fn int32(&mut self) -> Result<i32> {
        i32::try_from(self.int()?).map_err(|_| corrupt("32-bit integer out of range"))
    }
    fn boolean(&mut self) -> Result<bool> {
        D::boolean(self.row, self.index()).map_err(db_error)
    }
    fn opt_boolean(&mut self) -> Result<Option<bool>> {
        D::opt_boolean(self.row, self.index()).map_err(db_error)
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        D::bytes(self.row, self.index()).map_err(db_error)
    }
    fn time(&mut self) -> Result<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.int()?).ok_or_else(|| corrupt("time out of range"))
    }
    fn json<T: DeserializeOwned>(&mut self) -> Result<T> {
        serde_json::from_str(&self.text()?).map_err(StorageError::backend)
    }
    fn pkce(&mut self) -> Result<Pkce> {
        Ok(Pkce { code_challenge: self.text()?, code_challenge_method: self.text()? })
    }
}

/// An object stored as one row of one table.
pub(super) trait Record: Sized + Clone + Send + 'static {
    /// The table.
    const TABLE: &'static str;
    /// Every column, in the order of [`Record::into_values`] and [`Record::decode`]; the key
    /// columns come first.
    const COLUMNS: &'static [&'static str];
    /// How many leading columns form the primary key.
    const KEY_LEN: usize;

    /// The column values, in [`Record::COLUMNS`] order.
    fn into_values(self) -> Result<Vec<Val>>;
    /// Reads an object from a row that has [`Record::COLUMNS`] in order.
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self>;
}

/// Statement texts, built from the constant column lists only.
pub(super) mod sql_text {
    use super::Record;

    fn columns<R: Record>() -> String {
        R::COLUMNS.join(", ")
    }

    /// `k1 = $first AND k2 = $first+1 ...`
    fn key_match<R: Record>(first: usize) -> String {
        let keys = R::COLUMNS.iter().take(R::KEY_LEN).enumerate();
        keys.map(|(i, c)| format!("{c} = ${}", first + i)).collect::<Vec<_>>().join(" AND ")
    }

    pub(in crate::storage::sql) fn insert<R: Record>() -> String {
        let params = (1..=R::COLUMNS.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        format!("INSERT INTO {} ({}) VALUES ({params})", R::TABLE, columns::<R>())
    }

    /// Selects the row with the key in `$1..`, followed by `suffix` (a row lock or nothing).
    pub(in crate::storage::sql) fn select_one<R: Record>(suffix: &str) -> String {
        format!("SELECT {} FROM {} WHERE {}{suffix}", columns::<R>(), R::TABLE, key_match::<R>(1))
    }

    pub(in crate::storage::sql) fn select_all<R: Record>() -> String {
        let order = R::COLUMNS.iter().take(R::KEY_LEN).copied().collect::<Vec<_>>().join(", ");
        format!("SELECT {} FROM {} ORDER BY {order}", columns::<R>(), R::TABLE)
    }

    /// Sets every non-key column from `$1..` for the key that follows, returning the stored row.
    pub(in crate::storage::sql) fn update<R: Record>() -> String {
        let sets = R::COLUMNS.iter().skip(R::KEY_LEN).enumerate();
        let sets = sets.map(|(i, c)| format!("{c} = ${}", i + 1)).collect::<Vec<_>>().join(", ");
        let first_key = R::COLUMNS.len() - R::KEY_LEN + 1;
        format!(
            "UPDATE {} SET {sets} WHERE {} RETURNING {}",
            R::TABLE,
            key_match::<R>(first_key),
            columns::<R>()
        )
    }

    /// Sets every non-key column from `$1..` for the key that follows, if every non-key column
    /// still equals (null-safe, with `eq`) the values that follow the key: one statement that is
    /// a compare-and-swap that returns the stored row.
    pub(in crate::storage::sql) fn swap<R: Record>(eq: &str) -> String {
        let non_key = R::COLUMNS.len() - R::KEY_LEN;
        let sets = R::COLUMNS.iter().skip(R::KEY_LEN).enumerate();
        let sets = sets.map(|(i, c)| format!("{c} = ${}", i + 1)).collect::<Vec<_>>().join(", ");
        let first_old = non_key + R::KEY_LEN + 1;
        let olds = R::COLUMNS.iter().skip(R::KEY_LEN).enumerate();
        let olds = olds.map(|(i, c)| format!(" AND {c} {eq} ${}", first_old + i)).collect::<String>();
        format!(
            "UPDATE {} SET {sets} WHERE {}{olds} RETURNING {}",
            R::TABLE,
            key_match::<R>(non_key + 1),
            columns::<R>()
        )
    }

    pub(in crate::storage::sql) fn delete<R: Record>() -> String {
        format!("DELETE FROM {} WHERE {}", R::TABLE, key_match::<R>(1))
    }

    /// Deletes the row with the key and returns it: a single-use read.
    pub(in crate::storage::sql) fn take<R: Record>() -> String {
        format!("{} RETURNING {}", delete::<R>(), columns::<R>())
    }
}

impl Record for Client {
    const TABLE: &'static str = "clients";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "secret",
        "redirect_uris",
        "trusted_peers",
        "public",
        "name",
        "logo_url",
        "allowed_connectors",
        "client_credentials_groups",
    ];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.id.into(),
            self.secret.into(),
            json(&self.redirect_uris)?,
            json(&self.trusted_peers)?,
            self.public.into(),
            self.name.into(),
            self.logo_url.into(),
            json(&self.allowed_connectors)?,
            json(&self.client_credentials_groups)?,
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            id: c.text()?,
            secret: c.text()?,
            redirect_uris: c.json()?,
            trusted_peers: c.json()?,
            public: c.boolean()?,
            name: c.text()?,
            logo_url: c.text()?,
            allowed_connectors: c.json()?,
            client_credentials_groups: c.json()?,
        })
    }
}

impl Record for Password {
    const TABLE: &'static str = "passwords";
    const COLUMNS: &'static [&'static str] =
        &["email", "hash", "username", "name", "preferred_username", "email_verified", "user_id", "groups"];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.email.to_lowercase().into(),
            self.hash.into(),
            self.username.into(),
            self.name.into(),
            self.preferred_username.into(),
            self.email_verified.into(),
            self.user_id.into(),
            json(&self.groups)?,
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            email: c.text()?,
            hash: c.bytes()?,
            username: c.text()?,
            name: c.text()?,
            preferred_username: c.text()?,
            email_verified: c.opt_boolean()?,
            user_id: c.text()?,
            groups: c.json()?,
        })
    }
}

impl Record for Connector {
    const TABLE: &'static str = "connectors";
    const COLUMNS: &'static [&'static str] =
        &["id", "type", "name", "resource_version", "config", "grant_types"];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.id.into(),
            self.r#type.into(),
            self.name.into(),
            self.resource_version.into(),
            self.config.into(),
            json(&self.grant_types)?,
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            id: c.text()?,
            r#type: c.text()?,
            name: c.text()?,
            resource_version: c.text()?,
            config: c.bytes()?,
            grant_types: c.json()?,
        })
    }
}

impl Record for Keys {
    const TABLE: &'static str = "keys";
    const COLUMNS: &'static [&'static str] =
        &["id", "signing_key", "next_key", "verification_keys", "next_rotation"];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            KEYS_ID.into(),
            json(&self.signing_key)?,
            json(&self.next_key)?,
            json(&self.verification_keys)?,
            self.next_rotation.into(),
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        c.skip();
        Ok(Self {
            signing_key: c.json()?,
            next_key: c.json()?,
            verification_keys: c.json()?,
            next_rotation: c.time()?,
        })
    }
}

impl Record for RefreshToken {
    const TABLE: &'static str = "refresh_tokens";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "token",
        "obsolete_token",
        "created_at",
        "last_used",
        "client_id",
        "connector_id",
        "connector_data",
        "claims",
        "scopes",
        "nonce",
        "rotation_key",
    ];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.id.into(),
            self.token.into(),
            self.obsolete_token.into(),
            self.created_at.into(),
            self.last_used.into(),
            self.client_id.into(),
            self.connector_id.into(),
            self.connector_data.into(),
            json(&self.claims)?,
            json(&self.scopes)?,
            self.nonce.into(),
            self.rotation_key.into(),
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            id: c.text()?,
            token: c.text()?,
            obsolete_token: c.text()?,
            created_at: c.time()?,
            last_used: c.time()?,
            client_id: c.text()?,
            connector_id: c.text()?,
            connector_data: c.bytes()?,
            claims: c.json::<Claims>()?,
            scopes: c.json()?,
            nonce: c.text()?,
            rotation_key: c.bytes()?,
        })
    }
}

impl Record for OfflineSessions {
    const TABLE: &'static str = "offline_sessions";
    const COLUMNS: &'static [&'static str] = &["user_id", "conn_id", "refresh", "connector_data"];
    const KEY_LEN: usize = 2;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![self.user_id.into(), self.conn_id.into(), json(&self.refresh)?, self.connector_data.into()])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self { user_id: c.text()?, conn_id: c.text()?, refresh: c.json()?, connector_data: c.bytes()? })
    }
}

impl Record for AuthRequest {
    const TABLE: &'static str = "auth_requests";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "client_id",
        "response_types",
        "scopes",
        "redirect_uri",
        "nonce",
        "state",
        "force_approval_prompt",
        "expiry",
        "logged_in",
        "claims",
        "connector_id",
        "connector_data",
        "code_challenge",
        "code_challenge_method",
        "hmac_key",
        "browser_hash",
    ];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.id.into(),
            self.client_id.into(),
            json(&self.response_types)?,
            json(&self.scopes)?,
            self.redirect_uri.into(),
            self.nonce.into(),
            self.state.into(),
            self.force_approval_prompt.into(),
            self.expiry.into(),
            self.logged_in.into(),
            json(&self.claims)?,
            self.connector_id.into(),
            self.connector_data.into(),
            self.pkce.code_challenge.into(),
            self.pkce.code_challenge_method.into(),
            self.hmac_key.into(),
            self.browser_hash.into(),
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            id: c.text()?,
            client_id: c.text()?,
            response_types: c.json()?,
            scopes: c.json()?,
            redirect_uri: c.text()?,
            nonce: c.text()?,
            state: c.text()?,
            force_approval_prompt: c.boolean()?,
            expiry: c.time()?,
            logged_in: c.boolean()?,
            claims: c.json()?,
            connector_id: c.text()?,
            connector_data: c.bytes()?,
            pkce: c.pkce()?,
            hmac_key: c.bytes()?,
            browser_hash: c.text()?,
        })
    }
}

impl Record for AuthCode {
    const TABLE: &'static str = "auth_codes";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "client_id",
        "redirect_uri",
        "nonce",
        "scopes",
        "connector_id",
        "connector_data",
        "claims",
        "expiry",
        "code_challenge",
        "code_challenge_method",
    ];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.id.into(),
            self.client_id.into(),
            self.redirect_uri.into(),
            self.nonce.into(),
            json(&self.scopes)?,
            self.connector_id.into(),
            self.connector_data.into(),
            json(&self.claims)?,
            self.expiry.into(),
            self.pkce.code_challenge.into(),
            self.pkce.code_challenge_method.into(),
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            id: c.text()?,
            client_id: c.text()?,
            redirect_uri: c.text()?,
            nonce: c.text()?,
            scopes: c.json()?,
            connector_id: c.text()?,
            connector_data: c.bytes()?,
            claims: c.json()?,
            expiry: c.time()?,
            pkce: c.pkce()?,
        })
    }
}

impl Record for DeviceRequest {
    const TABLE: &'static str = "device_requests";
    const COLUMNS: &'static [&'static str] = &["user_code", "device_code", "client_id", "scopes", "expiry"];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.user_code.into(),
            self.device_code.into(),
            self.client_id.into(),
            json(&self.scopes)?,
            self.expiry.into(),
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            user_code: c.text()?,
            device_code: c.text()?,
            client_id: c.text()?,
            scopes: c.json()?,
            expiry: c.time()?,
        })
    }
}

impl Record for DeviceToken {
    const TABLE: &'static str = "device_tokens";
    const COLUMNS: &'static [&'static str] = &[
        "device_code",
        "client_id",
        "status",
        "token",
        "expiry",
        "last_request_time",
        "poll_interval_seconds",
        "code_challenge",
        "code_challenge_method",
    ];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![
            self.device_code.into(),
            self.client_id.into(),
            self.status.into(),
            self.token.into(),
            self.expiry.into(),
            self.last_request_time.into(),
            self.poll_interval_seconds.into(),
            self.pkce.code_challenge.into(),
            self.pkce.code_challenge_method.into(),
        ])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self {
            device_code: c.text()?,
            client_id: c.text()?,
            status: c.text()?,
            token: c.text()?,
            expiry: c.time()?,
            last_request_time: c.time()?,
            poll_interval_seconds: c.int32()?,
            pkce: c.pkce()?,
        })
    }
}

impl Record for Tombstone {
    const TABLE: &'static str = "tombstones";
    const COLUMNS: &'static [&'static str] = &["id", "data", "expiry"];
    const KEY_LEN: usize = 1;

    fn into_values(self) -> Result<Vec<Val>> {
        Ok(vec![self.id.into(), self.data.into(), self.expiry.into()])
    }
    fn decode<D: Dialect>(c: &mut Cols<'_, D>) -> Result<Self> {
        Ok(Self { id: c.text()?, data: c.text()?, expiry: c.time()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_built_from_the_column_lists() {
        assert_eq!(
            sql_text::insert::<DeviceRequest>(),
            "INSERT INTO device_requests (user_code, device_code, client_id, scopes, expiry) \
             VALUES ($1, $2, $3, $4, $5)"
        );
        assert_eq!(
            sql_text::update::<OfflineSessions>(),
            "UPDATE offline_sessions SET refresh = $1, connector_data = $2 \
             WHERE user_id = $3 AND conn_id = $4 RETURNING user_id, conn_id, refresh, connector_data"
        );
        assert_eq!(
            sql_text::select_one::<OfflineSessions>(" FOR UPDATE"),
            "SELECT user_id, conn_id, refresh, connector_data FROM offline_sessions \
             WHERE user_id = $1 AND conn_id = $2 FOR UPDATE"
        );
        assert_eq!(
            sql_text::take::<DeviceRequest>(),
            "DELETE FROM device_requests WHERE user_code = $1 \
             RETURNING user_code, device_code, client_id, scopes, expiry"
        );
    }

    #[test]
    fn every_record_has_as_many_values_as_columns() {
        fn check<R: Record + Default>() {
            assert_eq!(
                R::default().into_values().map(|v| v.len()).ok(),
                Some(R::COLUMNS.len()),
                "{}",
                R::TABLE
            );
        }
        check::<Client>();
        check::<Password>();
        check::<Connector>();
        check::<RefreshToken>();
        check::<OfflineSessions>();
        check::<AuthRequest>();
        check::<AuthCode>();
        check::<DeviceRequest>();
        check::<DeviceToken>();
        check::<Tombstone>();
    }
}
