//! The `api.Dex` admin service over a real loopback socket, driven by the generated tonic client
//! (and, in one test, by a Python client generated with grpc_tools from the same proto).
//!
//! Every test starts its own server on 127.0.0.1:0 over its own memory storage, wrapped in the
//! static overlay with one static client, one static password and one static connector.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use oxidex_core::discovery::ProviderMetadata;
use oxidex_core::grpc::admin::AdminService;
use oxidex_core::storage::memory::MemoryStorage;
use oxidex_core::storage::static_overlay::StaticOverlay;
use oxidex_core::storage::{
    Client, Connector, DurableStorage, OfflineSessions, Password, RefreshToken, RefreshTokenRef, StorageError,
};
use oxidex_core::token::subject::encode_subject;
use oxidex_proto::api;
use oxidex_proto::api::dex_client::DexClient;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};

const VERSION: &str = "v0.0.0-test";
const ISSUER: &str = "http://127.0.0.1:5556/dex";
/// bcrypt (cost 10) of "password": the static user's hash, from Dex's example config.
const STATIC_HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
/// bcrypt (cost 10) of "rust-password-1".
const HASH_1: &str = "$2b$10$YXvWlkx6Qb6EFoVXM596r.cDtmZahHVKEx3niZvRSlMBqv0QGBHdS";
/// bcrypt (cost 10) of "rust-password-2".
const HASH_2: &str = "$2b$10$ekPIhQIC1R8kFzYZ9T5.2OgJUio.mHvH9tU3xDKq4WNdC/17GhtBu";
/// A well-formed bcrypt hash of cost 4 (below Dex's minimum).
const HASH_COST_4: &str = "$2b$04$xjIPGZ.qN1RqxJv2eG6MtOmiEL4o2Dcr0F/wkPpQRfq2LtegSPUcm";

fn metadata() -> ProviderMetadata {
    let url = |p: &str| format!("{ISSUER}{p}");
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    ProviderMetadata {
        issuer: ISSUER.into(),
        authorization_endpoint: url("/auth"),
        token_endpoint: url("/token"),
        jwks_uri: url("/keys"),
        userinfo_endpoint: url("/userinfo"),
        device_authorization_endpoint: url("/device/code"),
        introspection_endpoint: url("/token/introspect"),
        revocation_endpoint: url("/token/revoke"),
        grant_types_supported: strings(&["authorization_code", "refresh_token"]),
        response_types_supported: strings(&["code"]),
        subject_types_supported: strings(&["public"]),
        id_token_signing_alg_values_supported: strings(&["RS256"]),
        code_challenge_methods_supported: strings(&["S256", "plain"]),
        scopes_supported: strings(&["openid", "email", "groups", "profile", "offline_access"]),
        token_endpoint_auth_methods_supported: strings(&["client_secret_basic", "client_secret_post"]),
        claims_supported: strings(&["iss", "sub", "aud"]),
        authorization_response_iss_parameter_supported: true,
    }
}

struct TestServer {
    addr: SocketAddr,
    /// The storage below the overlay, to seed and inspect.
    memory: Arc<MemoryStorage>,
    client: DexClient<Channel>,
}

async fn start() -> TestServer {
    let memory = Arc::new(MemoryStorage::new());
    let overlay = StaticOverlay::new(
        memory.clone(),
        vec![Client {
            id: "static-app".into(),
            secret: "static-secret".into(),
            redirect_uris: vec!["https://static.example.com/cb".into()],
            name: "Static App".into(),
            ..Client::default()
        }],
        vec![Password {
            email: "admin@example.com".into(),
            hash: STATIC_HASH.as_bytes().to_vec(),
            username: "admin".into(),
            user_id: "08a8684b-db88-4b73-90a9-3cd1661f5466".into(),
            ..Password::default()
        }],
        vec![Connector {
            id: "static-ldap".into(),
            r#type: "ldap".into(),
            name: "Static LDAP".into(),
            config: br#"{"host":"ldap.example.com:636"}"#.to_vec(),
            ..Connector::default()
        }],
    );
    let service = AdminService::new(Arc::new(overlay), Arc::new(metadata()), VERSION);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(
        Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let client = DexClient::connect(format!("http://{addr}")).await.expect("connect to the admin API");
    TestServer { addr, memory, client }
}

fn status_of<T>(r: Result<tonic::Response<T>, tonic::Status>) -> tonic::Status {
    match r {
        Ok(_) => panic!("the call succeeded; an error was expected"),
        Err(s) => s,
    }
}

#[tokio::test]
async fn clients_crud() {
    let TestServer { mut client, memory, .. } = start().await;

    let created = client
        .create_client(api::CreateClientReq {
            client: Some(api::Client {
                id: "app".into(),
                redirect_uris: vec!["https://app.example.com/cb".into()],
                name: "App".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!created.already_exists);
    let secret = created.client.as_ref().map(|c| c.secret.clone()).unwrap_or_default();
    assert_eq!(secret.len(), 50, "secret = two NewIDs");
    assert_eq!(memory.get_client("app").await.unwrap().secret, secret);

    let dup = client
        .create_client(api::CreateClientReq {
            client: Some(api::Client { id: "app".into(), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(dup.already_exists);

    let got =
        client.get_client(api::GetClientReq { id: "app".into() }).await.unwrap().into_inner().client.unwrap();
    assert_eq!((got.id.as_str(), got.secret.as_str(), got.name.as_str()), ("app", secret.as_str(), "App"));
    assert_eq!(got.redirect_uris, vec!["https://app.example.com/cb".to_owned()]);

    let stat = client.get_client(api::GetClientReq { id: "static-app".into() }).await.unwrap().into_inner();
    assert_eq!(stat.client.map(|c| c.name), Some("Static App".into()));

    let ids: Vec<String> = client
        .list_clients(api::ListClientReq {})
        .await
        .unwrap()
        .into_inner()
        .clients
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["app".to_owned(), "static-app".to_owned()]);

    let upd = client
        .update_client(api::UpdateClientReq {
            id: "app".into(),
            name: "Renamed".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!upd.not_found);
    let got = memory.get_client("app").await.unwrap();
    assert_eq!(got.name, "Renamed");
    assert_eq!(got.redirect_uris, vec!["https://app.example.com/cb".to_owned()], "empty list = unchanged");
    let upd = client
        .update_client(api::UpdateClientReq { id: "missing".into(), name: "x".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(upd.not_found);

    let bad = status_of(
        client
            .create_client(api::CreateClientReq {
                client: Some(api::Client {
                    id: "bad".into(),
                    redirect_uris: vec!["not a uri".into()],
                    ..Default::default()
                }),
            })
            .await,
    );
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("redirect URI"), "{}", bad.message());

    assert!(
        !client
            .delete_client(api::DeleteClientReq { id: "app".into() })
            .await
            .unwrap()
            .into_inner()
            .not_found
    );
    assert!(
        client.delete_client(api::DeleteClientReq { id: "app".into() }).await.unwrap().into_inner().not_found
    );
    let gone = status_of(client.get_client(api::GetClientReq { id: "app".into() }).await);
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn writes_to_static_objects_fail_with_failed_precondition() {
    let TestServer { mut client, memory, .. } = start().await;

    let upd = status_of(
        client
            .update_client(api::UpdateClientReq {
                id: "static-app".into(),
                name: "x".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(upd.code(), Code::FailedPrecondition);
    assert!(upd.message().contains("static-app"), "{}", upd.message());
    let del = status_of(client.delete_client(api::DeleteClientReq { id: "static-app".into() }).await);
    assert_eq!(del.code(), Code::FailedPrecondition);
    assert!(del.message().contains("static-app"), "{}", del.message());
    let create = status_of(
        client
            .create_client(api::CreateClientReq {
                client: Some(api::Client { id: "static-app".into(), ..Default::default() }),
            })
            .await,
    );
    assert_eq!(create.code(), Code::FailedPrecondition);
    assert!(
        matches!(memory.get_client("static-app").await, Err(StorageError::NotFound)),
        "nothing written below the overlay"
    );

    let pw = status_of(
        client
            .update_password(api::UpdatePasswordReq {
                email: "ADMIN@example.com".into(),
                new_username: "x".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(pw.code(), Code::FailedPrecondition);
    assert!(pw.message().contains("admin@example.com"), "{}", pw.message());
    let pw =
        status_of(client.delete_password(api::DeletePasswordReq { email: "admin@example.com".into() }).await);
    assert_eq!(pw.code(), Code::FailedPrecondition);

    let conn = status_of(
        client
            .update_connector(api::UpdateConnectorReq {
                id: "static-ldap".into(),
                new_name: "x".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(conn.code(), Code::FailedPrecondition);
    assert!(conn.message().contains("static-ldap"), "{}", conn.message());
    let conn = status_of(client.delete_connector(api::DeleteConnectorReq { id: "static-ldap".into() }).await);
    assert_eq!(conn.code(), Code::FailedPrecondition);
}

fn password_req(email: &str, hash: &str, user_id: &str) -> api::CreatePasswordReq {
    api::CreatePasswordReq {
        password: Some(api::Password {
            email: email.into(),
            hash: hash.as_bytes().to_vec(),
            username: "jane".into(),
            user_id: user_id.into(),
        }),
    }
}

#[tokio::test]
async fn passwords_crud_and_verify() {
    let TestServer { mut client, .. } = start().await;

    let r = client
        .create_password(password_req("Jane@Example.com", HASH_1, "u-jane"))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.already_exists);
    let r = client
        .create_password(password_req("jane@example.com", HASH_1, "u-jane"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.already_exists, "emails are case-insensitive");

    let listed = client.list_passwords(api::ListPasswordReq {}).await.unwrap().into_inner().passwords;
    let emails: Vec<&str> = listed.iter().map(|p| p.email.as_str()).collect();
    assert_eq!(emails, vec!["admin@example.com", "jane@example.com"]);
    assert!(listed.iter().all(|p| p.hash.is_empty()), "hashes are never listed");
    assert_eq!(listed.get(1).map(|p| p.user_id.as_str()), Some("u-jane"));

    let verify = |email: &str, password: &str| api::VerifyPasswordReq {
        email: email.into(),
        password: password.into(),
    };
    let v = client.verify_password(verify("JANE@example.com", "rust-password-1")).await.unwrap().into_inner();
    assert!(v.verified && !v.not_found);
    let v = client.verify_password(verify("jane@example.com", "rust-password-2")).await.unwrap().into_inner();
    assert!(!v.verified && !v.not_found);
    let v = client.verify_password(verify("nobody@example.com", "x")).await.unwrap().into_inner();
    assert!(!v.verified && v.not_found);
    let v = client.verify_password(verify("admin@example.com", "password")).await.unwrap().into_inner();
    assert!(v.verified, "static passwords verify too");
    let e = status_of(client.verify_password(verify("", "x")).await);
    assert_eq!(e.code(), Code::InvalidArgument);

    let cost4 = status_of(client.create_password(password_req("cheap@example.com", HASH_COST_4, "u")).await);
    assert_eq!(cost4.code(), Code::InvalidArgument);
    assert!(cost4.message().contains("between 10 and 16"), "{}", cost4.message());
    let cost17 = HASH_1.replace("$10$", "$17$");
    let e = status_of(client.create_password(password_req("dear@example.com", &cost17, "u")).await);
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("17"), "{}", e.message());
    let e = status_of(
        client
            .update_password(api::UpdatePasswordReq {
                email: "jane@example.com".into(),
                new_hash: cost17.into_bytes(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = status_of(client.create_password(password_req("x@example.com", "plaintext", "u")).await);
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = status_of(client.create_password(password_req("x@example.com", HASH_1, "")).await);
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("user ID"), "{}", e.message());

    let r = client
        .update_password(api::UpdatePasswordReq {
            email: "Jane@example.com".into(),
            new_hash: HASH_2.as_bytes().to_vec(),
            new_username: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.not_found);
    let v = client.verify_password(verify("jane@example.com", "rust-password-2")).await.unwrap().into_inner();
    assert!(v.verified);
    let listed = client.list_passwords(api::ListPasswordReq {}).await.unwrap().into_inner().passwords;
    assert!(
        listed.iter().any(|p| p.email == "jane@example.com" && p.username == "jane"),
        "username unchanged"
    );
    let r = client
        .update_password(api::UpdatePasswordReq {
            email: "nobody@example.com".into(),
            new_username: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.not_found);

    let r =
        client.delete_password(api::DeletePasswordReq { email: "JANE@example.com".into() }).await.unwrap();
    assert!(!r.into_inner().not_found);
    let r =
        client.delete_password(api::DeletePasswordReq { email: "jane@example.com".into() }).await.unwrap();
    assert!(r.into_inner().not_found);
}

#[tokio::test]
async fn connectors_crud() {
    let TestServer { mut client, memory, .. } = start().await;
    let connector = |id: &str, config: &[u8]| api::CreateConnectorReq {
        connector: Some(api::Connector {
            id: id.into(),
            r#type: "oidc".into(),
            name: "Upstream".into(),
            config: config.to_vec(),
            grant_types: vec![],
        }),
    };
    let config = br#"{"issuer":"https://accounts.example.com","clientID":"x"}"#;
    let r = client.create_connector(connector("upstream", config)).await.unwrap().into_inner();
    assert!(!r.already_exists);
    let r = client.create_connector(connector("upstream", config)).await.unwrap().into_inner();
    assert!(r.already_exists);
    let version_1 = memory.get_connector("upstream").await.unwrap().resource_version;
    assert!(!version_1.is_empty());

    let e = status_of(client.create_connector(connector("broken", b"{not json")).await);
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("JSON"), "{}", e.message());
    let mut no_type = connector("notype", config);
    if let Some(c) = no_type.connector.as_mut() {
        c.r#type.clear();
    }
    assert_eq!(status_of(client.create_connector(no_type).await).code(), Code::InvalidArgument);
    let e = status_of(client.create_connector(connector("static-ldap", config)).await);
    assert_eq!(e.code(), Code::FailedPrecondition);

    let listed = client.list_connectors(api::ListConnectorReq {}).await.unwrap().into_inner().connectors;
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["static-ldap", "upstream"]);
    assert_eq!(listed.get(1).map(|c| c.config.as_slice()), Some(config.as_slice()));

    let r = client
        .update_connector(api::UpdateConnectorReq {
            id: "upstream".into(),
            new_name: "Renamed".into(),
            new_grant_types: Some(api::GrantTypes { grant_types: vec!["authorization_code".into()] }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.not_found);
    let stored = memory.get_connector("upstream").await.unwrap();
    assert_eq!(stored.name, "Renamed");
    assert_eq!(stored.r#type, "oidc");
    assert_eq!(stored.config, config.to_vec());
    assert_eq!(stored.grant_types, vec!["authorization_code".to_owned()]);
    assert_ne!(stored.resource_version, version_1, "resource_version bumped");
    // An empty GrantTypes message is present: it resets the restriction.
    let r = client
        .update_connector(api::UpdateConnectorReq {
            id: "upstream".into(),
            new_grant_types: Some(api::GrantTypes::default()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.not_found);
    assert!(memory.get_connector("upstream").await.unwrap().grant_types.is_empty());
    let e = status_of(
        client
            .update_connector(api::UpdateConnectorReq {
                id: "upstream".into(),
                new_config: b"[1,".to_vec(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(e.code(), Code::InvalidArgument);
    let r = client
        .update_connector(api::UpdateConnectorReq {
            id: "nope".into(),
            new_name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.not_found);

    assert!(
        !client
            .delete_connector(api::DeleteConnectorReq { id: "upstream".into() })
            .await
            .unwrap()
            .into_inner()
            .not_found
    );
    assert!(
        client
            .delete_connector(api::DeleteConnectorReq { id: "upstream".into() })
            .await
            .unwrap()
            .into_inner()
            .not_found
    );
}

#[tokio::test]
async fn version_and_discovery() {
    let TestServer { mut client, .. } = start().await;
    let v = client.get_version(api::VersionReq {}).await.unwrap().into_inner();
    assert_eq!(v.server, VERSION);
    assert_eq!(v.api, 3, "the API version of Dex v2.45.1");
    let d = client.get_discovery(api::DiscoveryReq {}).await.unwrap().into_inner();
    let m = metadata();
    assert_eq!(d.issuer, m.issuer);
    assert_eq!(d.authorization_endpoint, m.authorization_endpoint);
    assert_eq!(d.token_endpoint, m.token_endpoint);
    assert_eq!(d.jwks_uri, m.jwks_uri);
    assert_eq!(d.userinfo_endpoint, m.userinfo_endpoint);
    assert_eq!(d.device_authorization_endpoint, m.device_authorization_endpoint);
    assert_eq!(d.introspection_endpoint, m.introspection_endpoint);
    assert_eq!(d.grant_types_supported, m.grant_types_supported);
    assert_eq!(d.response_types_supported, m.response_types_supported);
    assert_eq!(d.subject_types_supported, m.subject_types_supported);
    assert_eq!(d.id_token_signing_alg_values_supported, m.id_token_signing_alg_values_supported);
    assert_eq!(d.code_challenge_methods_supported, m.code_challenge_methods_supported);
    assert_eq!(d.scopes_supported, m.scopes_supported);
    assert_eq!(d.token_endpoint_auth_methods_supported, m.token_endpoint_auth_methods_supported);
    assert_eq!(d.claims_supported, m.claims_supported);
}

#[tokio::test]
async fn list_and_revoke_refresh_tokens() {
    let TestServer { mut client, memory, .. } = start().await;
    let created = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let used = Utc.timestamp_opt(1_700_000_600, 0).unwrap();
    let mut refs = BTreeMap::new();
    // Two devices of the same client, and one other client.
    for (id, client_id) in [("rt-1", "app"), ("rt-2", "app"), ("rt-3", "other")] {
        memory
            .create_refresh(RefreshToken {
                id: id.into(),
                token: "hash".into(),
                created_at: created,
                last_used: used,
                client_id: client_id.into(),
                connector_id: "github".into(),
                ..RefreshToken::default()
            })
            .await
            .unwrap();
        refs.insert(
            id.to_owned(),
            RefreshTokenRef {
                id: id.into(),
                client_id: client_id.into(),
                created_at: created,
                last_used: used,
            },
        );
    }
    memory
        .create_offline_sessions(OfflineSessions {
            user_id: "2342744".into(),
            conn_id: "github".into(),
            refresh: refs,
            connector_data: vec![],
        })
        .await
        .unwrap();
    let sub = encode_subject("2342744", "github");
    assert_eq!(sub, "CgcyMzQyNzQ0EgZnaXRodWI");

    let listed =
        client.list_refresh(api::ListRefreshReq { user_id: sub.clone() }).await.unwrap().into_inner();
    let mut got: Vec<(String, String, i64, i64)> =
        listed.refresh_tokens.into_iter().map(|r| (r.id, r.client_id, r.created_at, r.last_used)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("rt-1".into(), "app".into(), 1_700_000_000, 1_700_000_600),
            ("rt-2".into(), "app".into(), 1_700_000_000, 1_700_000_600),
            ("rt-3".into(), "other".into(), 1_700_000_000, 1_700_000_600),
        ]
    );
    let none = client.list_refresh(api::ListRefreshReq { user_id: encode_subject("x", "y") }).await.unwrap();
    assert!(none.into_inner().refresh_tokens.is_empty(), "unknown user: empty list, not an error");
    let e = status_of(client.list_refresh(api::ListRefreshReq { user_id: "2342744".into() }).await);
    assert_eq!(e.code(), Code::InvalidArgument, "a raw user id is not an encoded sub");

    let r = client
        .revoke_refresh(api::RevokeRefreshReq { user_id: sub.clone(), client_id: "app".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.not_found);
    assert!(memory.get_refresh("rt-1").await.is_err());
    assert!(memory.get_refresh("rt-2").await.is_err());
    assert!(memory.get_refresh("rt-3").await.is_ok());
    let left = client.list_refresh(api::ListRefreshReq { user_id: sub.clone() }).await.unwrap().into_inner();
    let ids: Vec<String> = left.refresh_tokens.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec!["rt-3".to_owned()]);

    let r = client
        .revoke_refresh(api::RevokeRefreshReq { user_id: sub.clone(), client_id: "app".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(r.not_found, "nothing left for that client");
    let r = client
        .revoke_refresh(api::RevokeRefreshReq { user_id: encode_subject("x", "y"), client_id: "app".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(r.not_found, "no offline session at all");
}

/// The Python client generated by grpc_tools from the same proto must pass all its checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_generated_by_grpc_tools() {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("python3 is required for this test and could not be run: {e}"));
    assert!(
        probe.status.success(),
        "python3 cannot import grpc and grpc_tools (install them with `pip install grpcio-tools`): {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let server = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/grpc_python/client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(server.addr.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "the Python client failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(stdout.lines().filter(|l| l.starts_with("ok ")).count() > 40, "{stdout}");
}
