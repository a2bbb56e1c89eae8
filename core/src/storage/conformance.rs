//! The storage conformance suite, run against every backend.
//!
//! Every case is a `pub async fn(Storage)` that gets a fresh, empty [`Storage`] and panics when
//! the backend breaks the contract of [`DurableStorage`] / [`FlowStorage`]. A backend runs the
//! whole suite in a few lines, one test per case so that failures are readable:
//!
//! ```ignore
//! macro_rules! memory_tests {
//!     ($($case:ident),* $(,)?) => {$(
//!         #[tokio::test(flavor = "multi_thread")]
//!         async fn $case() {
//!             let s = Storage::open(&StorageConfig::Memory).await.unwrap();
//!             oxidex_core::storage::conformance::$case(s).await;
//!         }
//!     )*};
//! }
//! oxidex_core::storage_conformance_cases!(memory_tests);
//! ```
//!
//! or all cases in one test with [`run_all`]. Times in the fixtures have millisecond precision,
//! the least a backend must keep; `time_zones` checks sub-millisecond input separately.
//! The suite synchronises only with barriers and joins, never with sleeps.

// Test code: a failed expectation panics, which is how the harness reports it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, SubsecRound, TimeZone, Utc};
use futures::StreamExt;
use futures::future::join_all;
use tokio::sync::Barrier;

use super::*;

/// Calls `$callback! { case, case, ... }` with the name of every conformance case, so that a
/// harness can generate one test per case.
#[macro_export]
macro_rules! storage_conformance_cases {
    ($callback:ident) => {
        $callback! {
            clients,
            passwords,
            connectors,
            keys,
            refresh_tokens,
            offline_sessions,
            auth_requests,
            auth_codes,
            device_requests,
            device_tokens,
            tombstones,
            failed_updater_changes_nothing,
            concurrent_client_updates,
            concurrent_keys_updates,
            concurrent_refresh_updates,
            refresh_update_from_seen,
            concurrent_refresh_updates_from_seen,
            concurrent_offline_sessions_updates,
            auth_code_is_single_use,
            garbage_collection,
            time_zones,
            health_check,
        }
    };
}

/// One conformance case.
pub type Case = fn(Storage) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! case_table {
    ($($case:ident),* $(,)?) => {
        /// Every case with its name, in a stable order.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($case), |s| Box::pin($case(s)))),*];
    };
}
crate::storage_conformance_cases!(case_table);

/// Runs every case, each on a fresh storage made by `make`, and closes it afterwards.
pub async fn run_all<F, Fut>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Storage>,
{
    for (name, case) in CASES {
        let storage = make().await;
        eprintln!("storage conformance: {name}");
        case(storage.clone()).await;
        storage.durable.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Concurrent updaters in the compare-and-swap cases.
const CONCURRENCY: usize = 20;

/// A fixed instant with millisecond precision, plus `secs` seconds.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap() + Duration::milliseconds(678) + Duration::seconds(secs)
}

fn claims(user: &str) -> Claims {
    Claims {
        user_id: user.to_owned(),
        username: format!("{user} name"),
        preferred_username: user.to_owned(),
        email: format!("{user}@example.com"),
        email_verified: true,
        groups: vec!["admins".into(), "devs".into()],
    }
}

fn pkce() -> Pkce {
    Pkce {
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        code_challenge_method: "S256".into(),
    }
}

pub(crate) fn client(id: &str) -> Client {
    Client {
        id: id.to_owned(),
        secret: format!("{id}-secret"),
        redirect_uris: vec![format!("https://{id}.example/callback"), "http://127.0.0.1:5555/cb".into()],
        trusted_peers: vec!["peer".into()],
        public: false,
        name: format!("Client {id}"),
        logo_url: format!("https://{id}.example/logo.png"),
        allowed_connectors: vec!["ldap".into()],
        client_credentials_groups: vec!["machines".into()],
    }
}

pub(crate) fn password(email: &str) -> Password {
    Password {
        email: email.to_owned(),
        hash: b"$2a$10$33EMT0cVYVlPy6WAMCLsceLYjWhuHpbz5yuZxu/GAFj03J9Lytjuy".to_vec(),
        username: "jane".into(),
        name: "Jane Doe".into(),
        preferred_username: "jdoe".into(),
        email_verified: Some(false),
        user_id: "user-jane".into(),
        groups: vec!["admins".into()],
    }
}

pub(crate) fn connector(id: &str) -> Connector {
    Connector {
        id: id.to_owned(),
        r#type: "oidc".into(),
        name: format!("Connector {id}"),
        resource_version: "1".into(),
        config: br#"{"issuer":"https://idp.example","clientID":"x"}"#.to_vec(),
        grant_types: vec!["authorization_code".into()],
    }
}

fn signing_key(kid: &str) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        alg: SigningAlg::RS256,
        private_pkcs8: vec![0x30, 0x82, 0x04, 0xbe, 0x02, 0x01, 0x00, 0xff],
        public_jwk: serde_json::json!({ "kty": "RSA", "kid": kid, "alg": "RS256", "n": "sXch", "e": "AQAB" }),
    }
}

pub(crate) fn key_set() -> Keys {
    Keys {
        signing_key: signing_key("k1"),
        next_key: signing_key("k2"),
        verification_keys: vec![VerificationKey {
            public_jwk: serde_json::json!({ "kty": "RSA", "kid": "k0", "n": "old", "e": "AQAB" }),
            expiry: at(3600),
        }],
        next_rotation: at(6 * 3600),
    }
}

pub(crate) fn refresh_token(id: &str) -> RefreshToken {
    RefreshToken {
        id: id.to_owned(),
        token: format!("{id}-hash"),
        obsolete_token: String::new(),
        created_at: at(0),
        last_used: at(10),
        client_id: "app".into(),
        connector_id: "ldap".into(),
        connector_data: br#"{"upstream":"token"}"#.to_vec(),
        claims: claims("jane"),
        scopes: vec!["openid".into(), "offline_access".into()],
        nonce: "n-0S6_WzA2Mj".into(),
        rotation_key: vec![9; 32],
    }
}

fn token_ref(id: &str, client_id: &str) -> RefreshTokenRef {
    RefreshTokenRef {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        created_at: at(0),
        last_used: at(20),
    }
}

pub(crate) fn sessions(user: &str, conn: &str) -> OfflineSessions {
    let refresh =
        [token_ref("r1", "app"), token_ref("r2", "app"), token_ref("r3", "cli")].map(|r| (r.id.clone(), r));
    OfflineSessions {
        user_id: user.to_owned(),
        conn_id: conn.to_owned(),
        refresh: BTreeMap::from(refresh),
        connector_data: br#"{"refresh_token":"upstream"}"#.to_vec(),
    }
}

pub(crate) fn auth_request(id: &str, expiry: DateTime<Utc>) -> AuthRequest {
    AuthRequest {
        id: id.to_owned(),
        client_id: "app".into(),
        response_types: vec!["code".into()],
        scopes: vec!["openid".into(), "email".into()],
        redirect_uri: "https://app.example/callback".into(),
        nonce: "nonce".into(),
        state: "state".into(),
        force_approval_prompt: true,
        expiry,
        logged_in: false,
        claims: Claims::default(),
        connector_id: String::new(),
        connector_data: Vec::new(),
        pkce: pkce(),
        hmac_key: vec![7; 32],
        browser_hash: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8".into(),
    }
}

fn auth_code(id: &str, expiry: DateTime<Utc>) -> AuthCode {
    AuthCode {
        id: id.to_owned(),
        client_id: "app".into(),
        redirect_uri: "https://app.example/callback".into(),
        nonce: "nonce".into(),
        scopes: vec!["openid".into(), "groups".into()],
        connector_id: "ldap".into(),
        connector_data: b"opaque".to_vec(),
        claims: claims("jane"),
        expiry,
        pkce: pkce(),
    }
}

fn device_request(user_code: &str, expiry: DateTime<Utc>) -> DeviceRequest {
    DeviceRequest {
        user_code: user_code.to_owned(),
        device_code: format!("{user_code}-device-hash"),
        client_id: "tv".into(),
        scopes: vec!["openid".into()],
        expiry,
    }
}

pub(crate) fn device_token(device_code: &str, expiry: DateTime<Utc>) -> DeviceToken {
    DeviceToken {
        device_code: device_code.to_owned(),
        client_id: "example-app".into(),
        status: "authorization_pending".into(),
        token: String::new(),
        expiry,
        last_request_time: at(-5),
        poll_interval_seconds: 5,
        pkce: pkce(),
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(r: Result<T>, what: &str) {
    assert!(matches!(r, Err(StorageError::NotFound)), "{what}: expected NotFound, got {r:?}");
}

#[track_caller]
fn assert_already_exists<T: Debug>(r: Result<T>, what: &str) {
    assert!(matches!(r, Err(StorageError::AlreadyExists)), "{what}: expected AlreadyExists, got {r:?}");
}

#[track_caller]
fn assert_rejected<T: Debug>(r: Result<T>, what: &str) {
    assert!(
        matches!(&r, Err(StorageError::Rejected(m)) if m == "refused"),
        "{what}: expected the updater's error, got {r:?}"
    );
}

/// An updater that refuses the change.
fn refuse<T>(_: T) -> Result<T> {
    Err(StorageError::Rejected("refused".into()))
}

/// Runs `f(i)` for `i` in `0..CONCURRENCY` in spawned tasks that start together.
async fn concurrently<T, F, Fut>(f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(CONCURRENCY));
    let tasks = (0..CONCURRENCY).map(|i| {
        let barrier = barrier.clone();
        let task = f(i);
        tokio::spawn(async move {
            barrier.wait().await;
            task.await
        })
    });
    join_all(tasks.collect::<Vec<_>>()).await.into_iter().map(|r| r.expect("task panicked")).collect()
}

// ---------------------------------------------------------------------------------------------
// CRUD of every object type

/// Clients: create, duplicate, get, list, update, delete, and `NotFound` for a missing id.
pub async fn clients(s: Storage) {
    let d = &s.durable;
    assert_not_found(d.get_client("a").await, "get missing client");
    let a = client("a");
    let b = Client { public: true, secret: String::new(), trusted_peers: vec![], ..client("b") };
    d.create_client(a.clone()).await.unwrap();
    d.create_client(b.clone()).await.unwrap();
    assert_already_exists(d.create_client(client("a")).await, "create duplicate client");
    assert_eq!(d.get_client("a").await.unwrap(), a);
    assert_eq!(d.get_client("b").await.unwrap(), b);
    let mut listed = d.list_clients().await.unwrap();
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(listed, vec![a.clone(), b.clone()]);

    let expected = Client {
        name: "Renamed".into(),
        redirect_uris: vec!["https://a.example/new".into()],
        allowed_connectors: vec![],
        ..a.clone()
    };
    let update = |mut c: Client| {
        c.name = "Renamed".into();
        c.redirect_uris = vec!["https://a.example/new".into()];
        c.allowed_connectors.clear();
        Ok(c)
    };
    assert_eq!(d.update_client("a", &update).await.unwrap(), expected);
    assert_eq!(d.get_client("a").await.unwrap(), expected);
    assert_not_found(d.update_client("missing", &Ok).await, "update missing client");

    d.delete_client("a").await.unwrap();
    assert_not_found(d.get_client("a").await, "get deleted client");
    assert_not_found(d.delete_client("a").await, "delete missing client");
    assert_eq!(d.list_clients().await.unwrap(), vec![b]);
}

/// Passwords: the email is a case-insensitive key, stored lower-cased, that updates cannot change.
pub async fn passwords(s: Storage) {
    let d = &s.durable;
    assert_not_found(d.get_password("jane@example.com").await, "get missing password");
    d.create_password(password("Jane.Doe@Example.COM")).await.unwrap();
    let stored = password("jane.doe@example.com");
    for email in ["jane.doe@example.com", "JANE.DOE@EXAMPLE.COM", "Jane.Doe@Example.COM"] {
        assert_eq!(d.get_password(email).await.unwrap(), stored, "get password as {email}");
    }
    assert_already_exists(
        d.create_password(password("jane.doe@example.com")).await,
        "create password differing only in case",
    );
    let other = Password { email_verified: None, groups: vec![], ..password("bob@example.com") };
    d.create_password(other.clone()).await.unwrap();
    let mut listed = d.list_passwords().await.unwrap();
    listed.sort_by(|x, y| x.email.cmp(&y.email));
    assert_eq!(listed, vec![other.clone(), stored.clone()]);

    let update = |mut p: Password| {
        p.email = "someone.else@example.com".into();
        p.username = "janet".into();
        p.email_verified = Some(true);
        Ok(p)
    };
    let expected = Password { username: "janet".into(), email_verified: Some(true), ..stored.clone() };
    assert_eq!(d.update_password("JANE.doe@example.com", &update).await.unwrap(), expected);
    assert_eq!(d.get_password("jane.doe@example.com").await.unwrap(), expected);
    assert_not_found(d.get_password("someone.else@example.com").await, "the email of a password changed");
    assert_not_found(d.update_password("nobody@example.com", &Ok).await, "update missing password");

    d.delete_password("Jane.Doe@EXAMPLE.com").await.unwrap();
    assert_not_found(d.get_password("jane.doe@example.com").await, "get deleted password");
    assert_not_found(d.delete_password("jane.doe@example.com").await, "delete missing password");
    assert_eq!(d.list_passwords().await.unwrap(), vec![other]);
}

/// Connectors, whose configuration is opaque JSON bytes.
pub async fn connectors(s: Storage) {
    let d = &s.durable;
    assert_not_found(d.get_connector("ldap").await, "get missing connector");
    let a = connector("ldap");
    let b = Connector { grant_types: vec![], config: Vec::new(), ..connector("github") };
    d.create_connector(a.clone()).await.unwrap();
    d.create_connector(b.clone()).await.unwrap();
    assert_already_exists(d.create_connector(connector("ldap")).await, "create duplicate connector");
    assert_eq!(d.get_connector("ldap").await.unwrap(), a);
    let mut listed = d.list_connectors().await.unwrap();
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(listed, vec![b.clone(), a.clone()]);

    let config = br#"{"issuer":"https://other.example","scopes":["groups"]}"#.to_vec();
    let expected = Connector { resource_version: "2".into(), config: config.clone(), ..a.clone() };
    let update = move |mut c: Connector| {
        c.resource_version = "2".into();
        c.config.clone_from(&config);
        Ok(c)
    };
    assert_eq!(d.update_connector("ldap", &update).await.unwrap(), expected);
    assert_eq!(d.get_connector("ldap").await.unwrap(), expected);
    assert_not_found(d.update_connector("missing", &Ok).await, "update missing connector");

    d.delete_connector("ldap").await.unwrap();
    assert_not_found(d.get_connector("ldap").await, "get deleted connector");
    assert_not_found(d.delete_connector("ldap").await, "delete missing connector");
    assert_eq!(d.list_connectors().await.unwrap(), vec![b]);
}

/// The single key set: `NotFound` before creation, created once, then only updated.
pub async fn keys(s: Storage) {
    let d = &s.durable;
    assert_not_found(d.get_keys().await, "get keys before creation");
    assert_not_found(d.update_keys(&Ok).await, "update keys before creation");
    d.create_keys(key_set()).await.unwrap();
    assert_eq!(d.get_keys().await.unwrap(), key_set());
    let mut second = key_set();
    second.signing_key = signing_key("other");
    assert_already_exists(d.create_keys(second).await, "create keys twice");
    assert_eq!(d.get_keys().await.unwrap(), key_set(), "a failed create changed the keys");

    // A rotation: next becomes current, current is retired.
    let rotate = |mut k: Keys| {
        let retired = VerificationKey { public_jwk: k.signing_key.public_jwk.clone(), expiry: at(7200) };
        k.verification_keys.push(retired);
        k.signing_key = std::mem::replace(&mut k.next_key, signing_key("k3"));
        k.next_rotation = at(12 * 3600);
        Ok(k)
    };
    let rotated = rotate(key_set()).unwrap();
    assert_eq!(d.update_keys(&rotate).await.unwrap(), rotated);
    assert_eq!(d.get_keys().await.unwrap(), rotated);
}

/// Refresh tokens.
pub async fn refresh_tokens(s: Storage) {
    let d = &s.durable;
    assert_not_found(d.get_refresh("r1").await, "get missing refresh token");
    let a = refresh_token("r1");
    let b = RefreshToken { connector_data: Vec::new(), scopes: vec![], ..refresh_token("r2") };
    d.create_refresh(a.clone()).await.unwrap();
    d.create_refresh(b.clone()).await.unwrap();
    assert_already_exists(d.create_refresh(refresh_token("r1")).await, "create duplicate refresh token");
    assert_eq!(d.get_refresh("r1").await.unwrap(), a);
    let mut listed = d.list_refresh_tokens().await.unwrap();
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(listed, vec![a.clone(), b.clone()]);

    // A rotation: the current secret becomes the obsolete one.
    let rotate = |mut t: RefreshToken| {
        t.obsolete_token = std::mem::replace(&mut t.token, "r1-hash-2".into());
        t.last_used = at(3600);
        Ok(t)
    };
    let expected = rotate(a.clone()).unwrap();
    assert_eq!(d.update_refresh("r1", &rotate).await.unwrap(), expected);
    assert_eq!(d.get_refresh("r1").await.unwrap(), expected);
    assert_not_found(d.update_refresh("missing", &Ok).await, "update missing refresh token");

    d.delete_refresh("r1").await.unwrap();
    assert_not_found(d.get_refresh("r1").await, "get deleted refresh token");
    assert_not_found(d.delete_refresh("r1").await, "delete missing refresh token");
    assert_eq!(d.list_refresh_tokens().await.unwrap(), vec![b]);
}

/// Offline sessions, keyed by (user, connector), holding several refresh references.
pub async fn offline_sessions(s: Storage) {
    let d = &s.durable;
    assert_not_found(d.get_offline_sessions("jane", "ldap").await, "get missing offline sessions");
    let a = sessions("jane", "ldap");
    let b = OfflineSessions { refresh: BTreeMap::new(), ..sessions("jane", "github") };
    d.create_offline_sessions(a.clone()).await.unwrap();
    d.create_offline_sessions(b.clone()).await.unwrap();
    assert_already_exists(
        d.create_offline_sessions(sessions("jane", "ldap")).await,
        "create duplicate offline sessions",
    );
    assert_eq!(d.get_offline_sessions("jane", "ldap").await.unwrap(), a);
    assert_eq!(d.get_offline_sessions("jane", "github").await.unwrap(), b);
    assert_not_found(d.get_offline_sessions("ldap", "jane").await, "get offline sessions with swapped key");

    let update = |mut o: OfflineSessions| {
        o.refresh.remove("r2");
        o.refresh.insert("r4".into(), token_ref("r4", "app"));
        o.connector_data = b"new upstream".to_vec();
        Ok(o)
    };
    let expected = update(a.clone()).unwrap();
    assert_eq!(expected.refresh.len(), 3);
    assert_eq!(d.update_offline_sessions("jane", "ldap", &update).await.unwrap(), expected);
    assert_eq!(d.get_offline_sessions("jane", "ldap").await.unwrap(), expected);
    assert_not_found(d.update_offline_sessions("bob", "ldap", &Ok).await, "update missing offline sessions");

    d.delete_offline_sessions("jane", "ldap").await.unwrap();
    assert_not_found(d.get_offline_sessions("jane", "ldap").await, "get deleted offline sessions");
    assert_not_found(d.delete_offline_sessions("jane", "ldap").await, "delete missing offline sessions");
    assert_eq!(d.get_offline_sessions("jane", "github").await.unwrap(), b);
}

/// Authorization requests.
pub async fn auth_requests(s: Storage) {
    let f = &s.flow;
    assert_not_found(f.get_auth_request("req").await, "get missing auth request");
    let a = auth_request("req", at(600));
    f.create_auth_request(a.clone()).await.unwrap();
    assert_already_exists(
        f.create_auth_request(auth_request("req", at(1))).await,
        "create duplicate auth request",
    );
    assert_eq!(f.get_auth_request("req").await.unwrap(), a);

    // The login step: the user is authenticated, claims and upstream state are recorded.
    let login = |mut r: AuthRequest| {
        r.logged_in = true;
        r.claims = claims("jane");
        r.connector_id = "ldap".into();
        r.connector_data = b"upstream".to_vec();
        Ok(r)
    };
    let expected = login(a.clone()).unwrap();
    assert_eq!(f.update_auth_request("req", &login).await.unwrap(), expected);
    assert_eq!(f.get_auth_request("req").await.unwrap(), expected);
    assert_not_found(f.update_auth_request("missing", &Ok).await, "update missing auth request");

    f.delete_auth_request("req").await.unwrap();
    assert_not_found(f.get_auth_request("req").await, "get deleted auth request");
    assert_not_found(f.delete_auth_request("req").await, "delete missing auth request");
}

/// Authorization codes: read without consuming, then taken exactly once.
pub async fn auth_codes(s: Storage) {
    let f = &s.flow;
    assert_not_found(f.get_auth_code("code").await, "get missing auth code");
    assert_not_found(f.take_auth_code("code").await, "take missing auth code");
    let a = auth_code("code", at(60));
    f.create_auth_code(a.clone()).await.unwrap();
    assert_already_exists(f.create_auth_code(auth_code("code", at(1))).await, "create duplicate auth code");
    assert_eq!(f.get_auth_code("code").await.unwrap(), a);
    assert_eq!(f.get_auth_code("code").await.unwrap(), a, "reading a code consumed it");
    assert_eq!(f.take_auth_code("code").await.unwrap(), a);
    assert_not_found(f.get_auth_code("code").await, "get taken auth code");
    assert_not_found(f.take_auth_code("code").await, "take auth code twice");
}

/// Device requests, keyed by user code.
pub async fn device_requests(s: Storage) {
    let f = &s.flow;
    assert_not_found(f.get_device_request("ABCD-EFGH").await, "get missing device request");
    let a = device_request("ABCD-EFGH", at(300));
    f.create_device_request(a.clone()).await.unwrap();
    assert_already_exists(
        f.create_device_request(device_request("ABCD-EFGH", at(1))).await,
        "create duplicate device request",
    );
    assert_eq!(f.get_device_request("ABCD-EFGH").await.unwrap(), a);
    f.delete_device_request("ABCD-EFGH").await.unwrap();
    assert_not_found(f.get_device_request("ABCD-EFGH").await, "get deleted device request");
    assert_not_found(f.delete_device_request("ABCD-EFGH").await, "delete missing device request");
}

/// Device tokens, keyed by device code hash.
pub async fn device_tokens(s: Storage) {
    let f = &s.flow;
    assert_not_found(f.get_device_token("dc").await, "get missing device token");
    let a = device_token("dc", at(300));
    f.create_device_token(a.clone()).await.unwrap();
    assert_already_exists(
        f.create_device_token(device_token("dc", at(1))).await,
        "create duplicate device token",
    );
    assert_eq!(f.get_device_token("dc").await.unwrap(), a);

    let complete = |mut t: DeviceToken| {
        t.status = "complete".into();
        t.token = r#"{"access_token":"at","id_token":"it"}"#.into();
        t.last_request_time = at(30);
        t.poll_interval_seconds = 10;
        Ok(t)
    };
    let expected = complete(a.clone()).unwrap();
    assert_eq!(f.update_device_token("dc", &complete).await.unwrap(), expected);
    assert_eq!(f.get_device_token("dc").await.unwrap(), expected);
    assert_not_found(f.update_device_token("missing", &Ok).await, "update missing device token");
}

/// Tombstones: create, read back, no duplicates.
pub async fn tombstones(s: Storage) {
    let f = &s.flow;
    assert_not_found(f.get_tombstone("code:abc").await, "get missing tombstone");
    let t = Tombstone { id: "code:abc".into(), data: r#"{"refresh_id":"r1"}"#.into(), expiry: at(120) };
    f.create_tombstone(t.clone()).await.unwrap();
    assert_already_exists(
        f.create_tombstone(Tombstone { data: String::new(), ..t.clone() }).await,
        "create duplicate tombstone",
    );
    assert_eq!(f.get_tombstone("code:abc").await.unwrap(), t);
    let j = Tombstone { id: "jti:1".into(), data: String::new(), expiry: at(60) };
    f.create_tombstone(j.clone()).await.unwrap();
    assert_eq!(f.get_tombstone("jti:1").await.unwrap(), j);
}

// ---------------------------------------------------------------------------------------------
// Compare-and-swap

/// An updater's error aborts the update, reaches the caller unchanged, and stores nothing.
pub async fn failed_updater_changes_nothing(s: Storage) {
    let (d, f) = (&s.durable, &s.flow);

    d.create_client(client("a")).await.unwrap();
    let r = d
        .update_client("a", &|mut c: Client| {
            c.name = "changed".into();
            refuse(c)
        })
        .await;
    assert_rejected(r, "client");
    assert_eq!(d.get_client("a").await.unwrap(), client("a"));

    d.create_password(password("jane@example.com")).await.unwrap();
    assert_rejected(d.update_password("jane@example.com", &refuse).await, "password");
    assert_eq!(d.get_password("jane@example.com").await.unwrap(), password("jane@example.com"));

    d.create_connector(connector("ldap")).await.unwrap();
    assert_rejected(d.update_connector("ldap", &refuse).await, "connector");
    assert_eq!(d.get_connector("ldap").await.unwrap(), connector("ldap"));

    d.create_keys(key_set()).await.unwrap();
    let r = d
        .update_keys(&|mut k: Keys| {
            k.verification_keys.clear();
            refuse(k)
        })
        .await;
    assert_rejected(r, "keys");
    assert_eq!(d.get_keys().await.unwrap(), key_set());

    d.create_refresh(refresh_token("r1")).await.unwrap();
    let r = d
        .update_refresh("r1", &|mut t: RefreshToken| {
            t.token = "stolen".into();
            refuse(t)
        })
        .await;
    assert_rejected(r, "refresh token");
    assert_eq!(d.get_refresh("r1").await.unwrap(), refresh_token("r1"));

    d.create_offline_sessions(sessions("jane", "ldap")).await.unwrap();
    assert_rejected(d.update_offline_sessions("jane", "ldap", &refuse).await, "offline sessions");
    assert_eq!(d.get_offline_sessions("jane", "ldap").await.unwrap(), sessions("jane", "ldap"));

    f.create_auth_request(auth_request("req", at(600))).await.unwrap();
    assert_rejected(f.update_auth_request("req", &refuse).await, "auth request");
    assert_eq!(f.get_auth_request("req").await.unwrap(), auth_request("req", at(600)));

    f.create_device_token(device_token("dc", at(600))).await.unwrap();
    assert_rejected(f.update_device_token("dc", &refuse).await, "device token");
    assert_eq!(f.get_device_token("dc").await.unwrap(), device_token("dc", at(600)));
}

/// Twenty concurrent updaters of one client each add a redirect URI: none is lost.
pub async fn concurrent_client_updates(s: Storage) {
    s.durable.create_client(Client { redirect_uris: vec![], ..client("a") }).await.unwrap();
    let results = concurrently(|i| {
        let d = s.durable.clone();
        async move {
            let uri = format!("https://a.example/cb/{i}");
            d.update_client("a", &move |mut c: Client| {
                c.redirect_uris.push(uri.clone());
                Ok(c)
            })
            .await
        }
    })
    .await;
    for r in results {
        r.unwrap();
    }
    let mut got = s.durable.get_client("a").await.unwrap().redirect_uris;
    got.sort();
    let mut want: Vec<_> = (0..CONCURRENCY).map(|i| format!("https://a.example/cb/{i}")).collect();
    want.sort();
    assert_eq!(got, want, "lost updates");
}

/// Twenty concurrent key-set updates each retire one key: none is lost.
pub async fn concurrent_keys_updates(s: Storage) {
    s.durable.create_keys(Keys { verification_keys: vec![], ..key_set() }).await.unwrap();
    let results = concurrently(|i| {
        let d = s.durable.clone();
        async move {
            d.update_keys(&move |mut k: Keys| {
                let jwk = serde_json::json!({ "kty": "RSA", "kid": format!("retired-{i}") });
                k.verification_keys.push(VerificationKey { public_jwk: jwk, expiry: at(60) });
                Ok(k)
            })
            .await
        }
    })
    .await;
    for r in results {
        r.unwrap();
    }
    let got = s.durable.get_keys().await.unwrap();
    let mut kids: Vec<_> =
        got.verification_keys.iter().map(|v| v.public_jwk["kid"].as_str().unwrap().to_owned()).collect();
    kids.sort();
    let mut want: Vec<_> = (0..CONCURRENCY).map(|i| format!("retired-{i}")).collect();
    want.sort();
    assert_eq!(kids, want, "lost updates");
}

/// Twenty concurrent refresh-token updates each add a scope: none is lost.
pub async fn concurrent_refresh_updates(s: Storage) {
    s.durable.create_refresh(RefreshToken { scopes: vec![], ..refresh_token("r1") }).await.unwrap();
    let results = concurrently(|i| {
        let d = s.durable.clone();
        async move { d.update_refresh("r1", &move |t| add_scope(t, i)).await }
    })
    .await;
    assert_every_scope_added(&s, results).await;
}

/// The updater of the concurrent refresh cases: adds `scope-{i}`.
fn add_scope(mut t: RefreshToken, i: usize) -> Result<RefreshToken> {
    t.scopes.push(format!("scope-{i:02}"));
    Ok(t)
}

/// Every concurrent [`add_scope`] succeeded and none of them was lost.
async fn assert_every_scope_added(s: &Storage, results: Vec<Result<RefreshToken>>) {
    for r in results {
        r.unwrap();
    }
    let mut got = s.durable.get_refresh("r1").await.unwrap().scopes;
    got.sort();
    let want: Vec<_> = (0..CONCURRENCY).map(|i| format!("scope-{i:02}")).collect();
    assert_eq!(got, want, "lost updates");
}

/// `update_refresh_seen` runs the updater on the stored token, not on a stale `seen`, and
/// reports a deleted token as `NotFound`.
pub async fn refresh_update_from_seen(s: Storage) {
    s.durable.create_refresh(RefreshToken { scopes: vec![], ..refresh_token("r1") }).await.unwrap();
    let add = |scope: &'static str| {
        move |mut t: RefreshToken| {
            t.scopes.push(scope.into());
            Ok(t)
        }
    };

    // `seen` is current: the update applies to it.
    let seen = s.durable.get_refresh("r1").await.unwrap();
    let stored = s.durable.update_refresh_seen(&seen, &add("a")).await.unwrap();
    assert_eq!(stored.scopes, ["a"]);
    assert_eq!(s.durable.get_refresh("r1").await.unwrap(), stored);

    // `seen` is stale (someone wrote since): the updater sees the current token, nothing is lost.
    let stale = s.durable.get_refresh("r1").await.unwrap();
    s.durable.update_refresh("r1", &add("b")).await.unwrap();
    let stored = s.durable.update_refresh_seen(&stale, &add("c")).await.unwrap();
    assert_eq!(stored.scopes, ["a", "b", "c"]);
    assert_eq!(s.durable.get_refresh("r1").await.unwrap(), stored);

    // An updater that refuses the current token changes nothing.
    let seen = s.durable.get_refresh("r1").await.unwrap();
    assert_rejected(s.durable.update_refresh_seen(&seen, &refuse).await, "refused update");
    assert_eq!(s.durable.get_refresh("r1").await.unwrap(), seen);

    // A refusal of a stale `seen` is not final: the updater decides on the current token.
    let stale = s.durable.get_refresh("r1").await.unwrap();
    s.durable.update_refresh("r1", &add("d")).await.unwrap();
    let stored = s
        .durable
        .update_refresh_seen(&stale, &|t: RefreshToken| {
            if t.scopes.contains(&"d".to_owned()) { add("e")(t) } else { refuse(t) }
        })
        .await
        .unwrap();
    assert_eq!(stored.scopes, ["a", "b", "c", "d", "e"]);

    // Deleted since it was read.
    s.durable.delete_refresh("r1").await.unwrap();
    assert_not_found(s.durable.update_refresh_seen(&stored, &add("f")).await, "deleted refresh token");
    assert_not_found(s.durable.get_refresh("r1").await, "deleted refresh token");
}

/// Twenty concurrent updates all starting from the same `seen` each add a scope: none is lost.
pub async fn concurrent_refresh_updates_from_seen(s: Storage) {
    s.durable.create_refresh(RefreshToken { scopes: vec![], ..refresh_token("r1") }).await.unwrap();
    let seen = s.durable.get_refresh("r1").await.unwrap();
    let results = concurrently(|i| {
        let (d, seen) = (s.durable.clone(), seen.clone());
        async move { d.update_refresh_seen(&seen, &move |t| add_scope(t, i)).await }
    })
    .await;
    assert_every_scope_added(&s, results).await;
}

/// Twenty concurrent logins of one user each add a refresh reference: none is lost.
pub async fn concurrent_offline_sessions_updates(s: Storage) {
    let empty = OfflineSessions { refresh: BTreeMap::new(), ..sessions("jane", "ldap") };
    s.durable.create_offline_sessions(empty).await.unwrap();
    let results = concurrently(|i| {
        let d = s.durable.clone();
        async move {
            d.update_offline_sessions("jane", "ldap", &move |mut o: OfflineSessions| {
                let id = format!("r{i:02}");
                o.refresh.insert(id.clone(), token_ref(&id, "app"));
                Ok(o)
            })
            .await
        }
    })
    .await;
    for r in results {
        r.unwrap();
    }
    let got = s.durable.get_offline_sessions("jane", "ldap").await.unwrap();
    let want: Vec<_> = (0..CONCURRENCY).map(|i| format!("r{i:02}")).collect();
    assert_eq!(got.refresh.into_keys().collect::<Vec<_>>(), want, "lost updates");
}

/// Of twenty concurrent takers of one code exactly one gets it; the others get `NotFound`.
pub async fn auth_code_is_single_use(s: Storage) {
    s.flow.create_auth_code(auth_code("code", at(60))).await.unwrap();
    let results = concurrently(|_| {
        let f = s.flow.clone();
        async move { f.take_auth_code("code").await }
    })
    .await;
    let mut winners = 0;
    for r in results {
        match r {
            Ok(code) => {
                assert_eq!(code, auth_code("code", at(60)));
                winners += 1;
            }
            Err(e) => assert!(matches!(e, StorageError::NotFound), "a loser got {e:?}"),
        }
    }
    assert_eq!(winners, 1, "the code was redeemed {winners} times");
}

// ---------------------------------------------------------------------------------------------
// Garbage collection and time

/// One collection removes every expired flow object (2,000 here) and nothing else: not the
/// unexpired ones, not one expiring exactly now, and never durable state.
pub async fn garbage_collection(s: Storage) {
    const EXPIRED: usize = 500; // per kind: 2,500 in all
    const LIVE: usize = 10;
    let (d, f) = (&s.durable, &s.flow);
    let now = at(0);
    assert_eq!(f.garbage_collect(now).await.unwrap(), GcResult::default(), "collected an empty store");

    let expiry = |i: usize| {
        if i < EXPIRED {
            now - Duration::milliseconds(1 + i as i64)
        } else {
            now + Duration::seconds(i as i64)
        }
    };
    let total = EXPIRED + LIVE;
    // `i == total` expires exactly now, which is not before now: it survives.
    let creates = (0..=total).flat_map(|i| (0..5).map(move |kind| (i, kind))).map(|(i, kind)| {
        let t = if i == total { now } else { expiry(i) };
        create_expiring(f.clone(), kind, i, t)
    });
    let created: Vec<_> = futures::stream::iter(creates).buffer_unordered(16).collect().await;
    for r in created {
        r.unwrap();
    }
    d.create_refresh(RefreshToken { last_used: at(-1_000_000), ..refresh_token("old") }).await.unwrap();
    d.create_offline_sessions(sessions("jane", "ldap")).await.unwrap();

    let n = EXPIRED as u64;
    let want =
        GcResult { auth_requests: n, auth_codes: n, device_requests: n, device_tokens: n, tombstones: n };
    assert_eq!(f.garbage_collect(now).await.unwrap(), want);
    assert_eq!(f.garbage_collect(now).await.unwrap(), GcResult::default(), "a second run found more");

    for i in [0, EXPIRED / 2, EXPIRED - 1] {
        assert_not_found(f.get_auth_request(&format!("req-{i}")).await, "expired auth request");
        assert_not_found(f.get_auth_code(&format!("code-{i}")).await, "expired auth code");
        assert_not_found(f.get_device_request(&format!("UC-{i}")).await, "expired device request");
        assert_not_found(f.get_device_token(&format!("dc-{i}")).await, "expired device token");
        assert_not_found(f.get_tombstone(&format!("jti:{i}")).await, "expired tombstone");
    }
    for i in EXPIRED..=total {
        f.get_auth_request(&format!("req-{i}")).await.unwrap();
        f.get_auth_code(&format!("code-{i}")).await.unwrap();
        f.get_device_request(&format!("UC-{i}")).await.unwrap();
        f.get_device_token(&format!("dc-{i}")).await.unwrap();
        f.get_tombstone(&format!("jti:{i}")).await.unwrap();
    }
    d.get_refresh("old").await.unwrap();
    d.get_offline_sessions("jane", "ldap").await.unwrap();
}

/// Creates flow object number `i` of one `kind` (0 to 4), expiring at `t`.
fn create_expiring(
    f: Arc<dyn FlowStorage>,
    kind: usize,
    i: usize,
    t: DateTime<Utc>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
    Box::pin(async move {
        match kind {
            0 => f.create_auth_request(auth_request(&format!("req-{i}"), t)).await,
            1 => f.create_auth_code(auth_code(&format!("code-{i}"), t)).await,
            2 => f.create_device_request(device_request(&format!("UC-{i}"), t)).await,
            3 => f.create_device_token(device_token(&format!("dc-{i}"), t)).await,
            _ => {
                f.create_tombstone(Tombstone { id: format!("jti:{i}"), data: String::new(), expiry: t }).await
            }
        }
    })
}

/// Times are instants: one written from any time zone reads back as the same instant, and
/// collection compares instants, whatever the offsets involved.
pub async fn time_zones(s: Storage) {
    let (d, f) = (&s.durable, &s.flow);
    let east = FixedOffset::east_opt(14 * 3600).unwrap(); // UTC+14:00
    let west = FixedOffset::west_opt(9 * 3600 + 30 * 60).unwrap(); // UTC-09:30
    let local = east.with_ymd_and_hms(2031, 1, 1, 0, 30, 0).unwrap() + Duration::milliseconds(250);
    let expiry = local.with_timezone(&Utc);
    assert_eq!(expiry, Utc.with_ymd_and_hms(2030, 12, 31, 10, 30, 0).unwrap() + Duration::milliseconds(250));

    f.create_auth_request(auth_request("req", expiry)).await.unwrap();
    let got = f.get_auth_request("req").await.unwrap();
    assert_eq!(got.expiry, local, "instant changed");
    assert_eq!(got.expiry.timestamp_millis(), local.timestamp_millis());

    let used = west.with_ymd_and_hms(2030, 12, 31, 1, 0, 0).unwrap().with_timezone(&Utc);
    d.create_refresh(RefreshToken { created_at: used, last_used: used, ..refresh_token("r1") })
        .await
        .unwrap();
    let got = d.get_refresh("r1").await.unwrap();
    assert_eq!((got.created_at, got.last_used), (used, used));

    // Sub-millisecond input keeps at least its milliseconds.
    let precise = Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0).unwrap() + Duration::nanoseconds(123_456_789);
    f.create_device_token(device_token("dc", precise)).await.unwrap();
    let got = f.get_device_token("dc").await.unwrap().expiry;
    assert_eq!(got.trunc_subsecs(3), precise.trunc_subsecs(3));

    // Collection just before the instant (written with another offset) keeps the request;
    // just after removes it.
    let before = (local - Duration::milliseconds(1)).with_timezone(&west).with_timezone(&Utc);
    assert_eq!(f.garbage_collect(before).await.unwrap().auth_requests, 0);
    f.get_auth_request("req").await.unwrap();
    let after = (local + Duration::milliseconds(1)).with_timezone(&Utc);
    assert_eq!(f.garbage_collect(after).await.unwrap().auth_requests, 1);
    assert_not_found(f.get_auth_request("req").await, "collected auth request");
}

/// Both halves answer their health check.
pub async fn health_check(s: Storage) {
    s.durable.health_check().await.unwrap();
    s.flow.health_check().await.unwrap();
}
