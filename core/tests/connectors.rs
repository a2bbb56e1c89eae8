//! Connectors through their public API over memory storage: the password database, the mock
//! connectors, the registry's errors and the connector set's caching.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxidex_core::clock::SystemClock;
use oxidex_core::connector::{
    CallbackParams, ConnectorError, ConnectorScopes, ConnectorSet, Identity, OpenContext, open,
};
use oxidex_core::storage::memory::MemoryStorage;
use oxidex_core::storage::{Connector, DurableStorage, Password};

/// "password" at cost 10 (Dex's example config).
const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

fn scopes() -> ConnectorScopes {
    ConnectorScopes::default()
}

async fn storage_with_jane() -> Arc<MemoryStorage> {
    let storage = Arc::new(MemoryStorage::new());
    let jane = Password {
        email: "jane@example.com".into(),
        hash: HASH.as_bytes().to_vec(),
        username: "Jane Doe".into(),
        name: "Jane".into(),
        preferred_username: "jane".into(),
        email_verified: None,
        user_id: "08a8684b-db88-4b73-90a9-3cd1661f5466".into(),
        groups: vec!["admins".into(), "dev".into()],
    };
    storage.create_password(jane).await.unwrap();
    storage
}

fn ctx(storage: &Arc<MemoryStorage>) -> OpenContext {
    OpenContext::new(storage.clone(), Arc::new(SystemClock))
}

fn connector(id: &str, r#type: &str, config: &str, version: &str) -> Connector {
    Connector {
        id: id.into(),
        r#type: r#type.into(),
        name: format!("{id} name"),
        resource_version: version.into(),
        config: config.as_bytes().to_vec(),
        grant_types: vec![],
    }
}

#[tokio::test]
async fn local_login_right_wrong_and_unknown() {
    let storage = storage_with_jane().await;
    let set = ConnectorSet::new(ctx(&storage), true);
    let local = set.get("local").await.unwrap();
    assert_eq!((local.id(), local.connector_type(), local.name()), ("local", "local", "Email"));
    assert!(local.callback().is_none() && local.refresh().is_some());
    let pw = local.password().unwrap();
    assert_eq!(pw.prompt(), "Email Address");

    // The email is looked up case-insensitively.
    let id = pw.login(&scopes(), "Jane@Example.COM", "password").await.unwrap().unwrap();
    assert_eq!(
        id,
        Identity {
            user_id: "08a8684b-db88-4b73-90a9-3cd1661f5466".into(),
            username: "Jane Doe".into(),
            preferred_username: "jane".into(),
            email: "jane@example.com".into(),
            email_verified: true,
            groups: vec!["admins".into(), "dev".into()],
            connector_data: vec![],
        }
    );
    assert_eq!(pw.login(&scopes(), "jane@example.com", "Password").await.unwrap(), None);
    assert_eq!(pw.login(&scopes(), "jane@example.com", "").await.unwrap(), None);
    assert_eq!(pw.login(&scopes(), "nobody@example.com", "password").await.unwrap(), None);
    let too_long = format!("password{}", "x".repeat(80));
    assert_eq!(pw.login(&scopes(), "jane@example.com", &too_long).await.unwrap(), None);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn unknown_user_costs_a_bcrypt_verification() {
    let storage = storage_with_jane().await;
    let set = ConnectorSet::new(ctx(&storage), true);
    let local = set.get("local").await.unwrap();
    let pw = local.password().unwrap();
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, so that a busy machine slows both series alike.
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(pw.login(&scopes(), "jane@example.com", "wrong").await.unwrap(), None);
        wrong.push(start.elapsed());
        let start = Instant::now();
        assert_eq!(pw.login(&scopes(), "nobody@example.com", "wrong").await.unwrap(), None);
        unknown.push(start.elapsed());
    }
    let (wrong, unknown) = (median(wrong), median(unknown));
    assert!(
        unknown.as_secs_f64() >= 0.5 * wrong.as_secs_f64(),
        "unknown user {unknown:?} vs wrong password {wrong:?}: the unknown path skips bcrypt"
    );
}

#[tokio::test]
async fn local_refresh_follows_the_password_entry() {
    let storage = storage_with_jane().await;
    let set = ConnectorSet::new(ctx(&storage), true);
    let local = set.get("local").await.unwrap();
    let id =
        local.password().unwrap().login(&scopes(), "jane@example.com", "password").await.unwrap().unwrap();
    let refresh = local.refresh().unwrap();
    storage
        .update_password("jane@example.com", &|mut p| {
            p.username = "Jane Roe".into();
            Ok(p)
        })
        .await
        .unwrap();
    let fresh = refresh.refresh(&scopes(), id.clone()).await.unwrap();
    assert_eq!(fresh.username, "Jane Roe");
    assert_eq!(fresh.user_id, id.user_id);

    storage.delete_password("jane@example.com").await.unwrap();
    let err = refresh.refresh(&scopes(), id).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Refused(_)), "{err:?}");
}

#[tokio::test]
async fn mock_callback_redirects_straight_back_with_the_state() {
    let storage = Arc::new(MemoryStorage::new());
    storage.create_connector(connector("mock", "mockCallback", "{}", "v1")).await.unwrap();
    let set = ConnectorSet::new(ctx(&storage), false);
    let mock = set.get("mock").await.unwrap();
    assert!(mock.password().is_none());
    let cb = mock.callback().unwrap();
    let login = cb.login_url(&scopes(), "http://127.0.0.1:5556/dex/callback", "req-123").await.unwrap();
    assert_eq!(login.url, "http://127.0.0.1:5556/dex/callback?state=req-123");

    let params: CallbackParams = [("state", "req-123")].into_iter().collect();
    let id = cb.handle_callback(&scopes(), &params, &login.state_data).await.unwrap();
    assert_eq!(id.user_id, "0-385-28089-0");
    assert_eq!(id.username, "Kilgore Trout");
    assert_eq!(id.email, "kilgore@kilgore.trout");
    assert!(id.email_verified);
    assert_eq!(id.groups, vec!["authors".to_owned()]);
    let refreshed = mock.refresh().unwrap().refresh(&scopes(), Identity::default()).await.unwrap();
    assert_eq!(refreshed, id);
}

#[tokio::test]
async fn registry_errors_name_the_connector_and_the_key() {
    let storage = Arc::new(MemoryStorage::new());
    let ctx = ctx(&storage);
    let msg = |c: Connector| open(&c, &ctx).err().map(|e| e.to_string()).unwrap_or_default();

    assert_eq!(
        msg(connector("corp", "x", "{}", "")),
        "connector \"corp\": connector type \"x\" is not supported (yet)"
    );
    assert_eq!(
        msg(connector("mp", "mockPassword", r#"{"username": "admin"}"#, "")),
        "connector \"mp\": invalid config key \"password\": required; the password the connector accepts"
    );
    let bad_type = msg(connector("mp", "mockPassword", r#"{"username": "a", "password": 31337}"#, ""));
    assert_eq!(
        bad_type,
        "connector \"mp\": invalid config key \"password\": found a number, expected a string"
    );
    assert!(!bad_type.contains("31337"));
    let not_json = msg(connector("mp", "mockPassword", "{", ""));
    assert!(not_json.starts_with("connector \"mp\": invalid config: not valid JSON"), "{not_json}");

    // Keys match Dex's case-insensitively, unknown ones are ignored.
    let ok = connector("mp", "mockPassword", r#"{"Username": "a", "PASSWORD": "b", "extra": true}"#, "");
    let mp = open(&ok, &ctx).unwrap();
    assert!(mp.password().unwrap().login(&scopes(), "a", "b").await.unwrap().is_some());
    assert!(oxidex_core::connector::supported_types().any(|t| t == "mockCallback"));
}

#[tokio::test]
async fn the_set_reopens_changed_connectors_and_forgets_deleted_ones() {
    let storage = Arc::new(MemoryStorage::new());
    storage
        .create_connector(connector("mp", "mockPassword", r#"{"username":"admin","password":"one"}"#, "v1"))
        .await
        .unwrap();
    let set = ConnectorSet::new(ctx(&storage), false);
    let first = set.get("mp").await.unwrap();
    assert_eq!(first.resource_version(), "v1");
    let login = |c: oxidex_core::connector::OpenConnector, pw: &'static str| async move {
        c.password().unwrap().login(&scopes(), "admin", pw).await.unwrap().is_some()
    };
    assert!(login(first.clone(), "one").await);

    storage
        .update_connector("mp", &|mut c| {
            c.config = br#"{"username":"admin","password":"two"}"#.to_vec();
            c.name = "Renamed".into();
            c.resource_version = "v2".into();
            Ok(c)
        })
        .await
        .unwrap();
    let second = set.get("mp").await.unwrap();
    assert_eq!(second.resource_version(), "v2");
    assert_eq!(second.name(), "Renamed");
    assert!(!login(second.clone(), "one").await);
    assert!(login(second, "two").await);
    assert_eq!(set.list().await.unwrap(), vec![("mp".into(), "mockPassword".into(), "Renamed".into())]);

    storage.delete_connector("mp").await.unwrap();
    assert!(matches!(set.get("mp").await, Err(ConnectorError::NotFound { id }) if id == "mp"));
    assert_eq!(set.list().await.unwrap(), vec![]);
}

#[tokio::test]
async fn one_bad_connector_does_not_stop_the_others() {
    let storage = Arc::new(MemoryStorage::new());
    storage.create_connector(connector("good", "mockCallback", "{}", "v1")).await.unwrap();
    storage.create_connector(connector("broken", "mockPassword", r#"{"username":"a"}"#, "v1")).await.unwrap();
    storage.create_connector(connector("future", "notYetAConnector", "{}", "v1")).await.unwrap();
    storage.create_connector(connector("corp", "ldap", r#"{"host":"ldap:636"}"#, "v1")).await.unwrap();
    let set = ConnectorSet::new(ctx(&storage), true);

    let listed = set.list().await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.first(), Some(&"local"), "local comes first");
    ids.sort();
    assert_eq!(ids, vec!["good", "local"]);

    let err = set.get("broken").await.unwrap_err();
    assert!(matches!(&err, ConnectorError::Unavailable { id, .. } if id == "broken"), "{err:?}");
    assert!(err.to_string().contains("\"password\""), "{err}");
    let err = set.get("future").await.unwrap_err().to_string();
    assert!(err.contains("connector type \"notYetAConnector\" is not supported (yet)"), "{err}");
    let err = set.get("corp").await.unwrap_err().to_string();
    assert!(err.contains("\"userSearch.baseDN\""), "{err}");
    assert!(set.get("good").await.unwrap().callback().is_some());
    assert!(set.get("local").await.unwrap().password().is_some());
    assert!(matches!(set.get("nope").await, Err(ConnectorError::NotFound { .. })));

    // Fixing the broken connector (with a new version) brings it back.
    storage
        .update_connector("broken", &|mut c| {
            c.config = br#"{"username":"a","password":"b"}"#.to_vec();
            c.resource_version = "v2".into();
            Ok(c)
        })
        .await
        .unwrap();
    assert!(set.get("broken").await.unwrap().password().is_some());
}

#[tokio::test]
async fn without_the_password_db_there_is_no_local_connector() {
    let storage = storage_with_jane().await;
    let set = ConnectorSet::new(ctx(&storage), false);
    assert!(matches!(set.get("local").await, Err(ConnectorError::NotFound { .. })));
    assert_eq!(set.list().await.unwrap(), vec![]);
}
