//! Connectors managed over `api.Dex` take effect on every replica without a restart: two
//! `oxidex serve` processes on one Postgres database; a connector created through replica A's
//! admin API logs users in through replica B, an update is seen by B, and after the delete B
//! refuses new logins through it. Runs when `OXIDEX_TEST_POSTGRES_URL` is set (CI sets it);
//! otherwise it says that it skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Stop, query_param};
use common::postgres::{fresh_database, url_or_skip};
use common::{Ports, Server, config};
use oxidex_proto::api;
use oxidex_proto::api::dex_client::DexClient;

const RP: &str = "rp";
const RP_SECRET: &str = "rp-secret";
const RP_CB: &str = "http://127.0.0.1:5555/callback";

fn replica(storage: &str) -> Server {
    let storage = storage.to_owned();
    Server::start(Ports::new(), move |_, ports| {
        config(
            ports,
            &storage,
            &format!(
                "oauth2:\n  skipApprovalScreen: true\n\
                 connectors:\n- type: mockCallback\n  id: static-mock\n  name: Static Mock\n\
                 staticClients:\n- id: {RP}\n  name: RP\n  secret: {RP_SECRET}\n  redirectURIs: ['{RP_CB}']\n"
            ),
        )
    })
}

fn auth_url(server: &Server, connector: &str) -> String {
    let mut u = url::Url::parse(&format!("{}/auth/{connector}", server.issuer)).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", RP)
        .append_pair("redirect_uri", RP_CB)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("state", "replica-state");
    u.into()
}

/// The chooser page of `server` (it lists the connectors; there are always two or more here).
async fn chooser(server: &Server) -> String {
    let mut u = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", RP)
        .append_pair("redirect_uri", RP_CB)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "replica-state");
    match Browser::new(&server.issuer).open(u.as_str()).await {
        Stop::Page(p) => p.html,
        Stop::Left(u) => format!("left to {u}"),
    }
}

/// Logs in through `connector` on `server` and redeems the code; the ID token's claims.
async fn login(server: &Server, connector: &str) -> Result<serde_json::Value, String> {
    let back = match Browser::new(&server.issuer).open(&auth_url(server, connector)).await {
        Stop::Left(u) => u,
        Stop::Page(p) => return Err(format!("{} at {}: {}", p.status, p.url, p.html)),
    };
    let code = query_param(&back, "code").ok_or_else(|| format!("no code in {back}"))?;
    let r = reqwest::Client::new()
        .post(format!("{}/token", server.issuer))
        .basic_auth(RP, Some(RP_SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP_CB)])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    let id_token = body["id_token"].as_str().unwrap();
    let payload = id_token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    Ok(serde_json::from_slice(&claims).unwrap())
}

/// Polls `check` every 100 ms for up to `limit`; returns how long it took to become true.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_created_over_grpc_logs_in_on_another_replica_and_stops_when_deleted() {
    let Some(url) = url_or_skip("the connector replica test") else { return };
    let db = fresh_database(&url, "connreplicas").await;
    let storage = db.storage_yaml();
    let (a, b) = std::thread::scope(|s| {
        let (sa, sb) = (storage.clone(), storage.clone());
        let ha = s.spawn(move || replica(&sa));
        let hb = s.spawn(move || replica(&sb));
        (ha.join().unwrap(), hb.join().unwrap())
    });

    // Before: B knows no such connector; the request is refused with a page, not a 500.
    let before = login(&b, "late").await.unwrap_err();
    assert!(before.starts_with("4"), "unknown connector must be a 4xx page: {before}");

    let mut admin = DexClient::new(a.grpc_channel().await);
    let created = admin
        .create_connector(api::CreateConnectorReq {
            connector: Some(api::Connector {
                id: "late".into(),
                r#type: "mockCallback".into(),
                name: "Late Arrival".into(),
                config: b"{}".to_vec(),
                grant_types: vec![],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!created.already_exists);

    // B logs users in through it within seconds, no restart.
    let took = within(Duration::from_secs(5), || async { login(&b, "late").await.is_ok() }).await;
    eprintln!("replica B used the new connector {took:?} after it was created on A");
    let claims = login(&b, "late").await.unwrap();
    assert_eq!(claims["aud"], RP);
    assert_eq!(claims["email"], "kilgore@kilgore.trout", "{claims}");

    // An update through A is seen by B's chooser.
    admin
        .update_connector(api::UpdateConnectorReq {
            id: "late".into(),
            new_name: "Renamed Arrival".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    within(Duration::from_secs(5), || async { chooser(&b).await.contains("Renamed Arrival") }).await;

    // Deleted through A: B refuses new logins through it (a 4xx page, never a 500).
    let deleted = admin.delete_connector(api::DeleteConnectorReq { id: "late".into() }).await.unwrap();
    assert!(!deleted.into_inner().not_found);
    within(Duration::from_secs(5), || async { login(&b, "late").await.is_err() }).await;
    let after = login(&b, "late").await.unwrap_err();
    assert!(after.starts_with("4"), "a deleted connector must be a 4xx page: {after}");
    assert!(login(&a, "late").await.is_err(), "A refuses it too");
    drop((a, b));
    db.drop().await;
}
