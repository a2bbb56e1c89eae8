//! The `oidc` connector and token exchange, black-box against `oxidex serve`.
//!
//! The upstream is the certified npm `oidc-provider` (`tests/upstream-oidc/provider.mjs`,
//! installed from its lockfile by `cargo xtask test`), on loopback, with one account and a
//! groups claim; it requires PKCE and rotates refresh tokens. The test drives real logins
//! through it: Oxidex `/auth` -> the upstream's login and consent forms -> Oxidex `/callback`
//! -> consent -> `/token`.
//!
//! Misbehaviour the certified provider will not produce (a wrong `iss`, `aud` or `nonce`, an
//! expired token, a key it does not publish, `alg: none`) comes from a small fake upstream
//! written here: discovery, JWKS and a token endpoint that returns whatever ID token the test
//! crafted, signed with a test key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::browser::{Browser, Stop, absolute, form, location, query_param};
use common::{Ports, Server, config, sqlite_storage};
use oxidex_core::storage::SigningAlg;
use oxidex_core::token::keys::{Signer, generate};
use oxidex_core::token::pkce::s256_challenge;
use oxidex_core::token::subject::encode_subject;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const UP_CLIENT: &str = "oxidex";
const UP_SECRET: &str = "upstream-client-secret";
const UP_LOGIN: &str = "jane";
const UP_PASSWORD: &str = "upstream-password";
const RP: &str = "rp";
const RP_SECRET: &str = "rp-secret";
const RP_CB: &str = "https://rp.test/cb";
const RESTRICTED: &str = "restricted";
const RESTRICTED_SECRET: &str = "restricted-secret";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

// ---------------------------------------------------------------------------------------------
// The npm oidc-provider upstream.

fn upstream_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream-oidc")
}

/// A running `node provider.mjs`, killed when dropped.
struct Upstream {
    _child: tokio::process::Child,
    issuer: String,
}

impl Upstream {
    async fn start(redirect_uri: &str) -> Self {
        let dir = upstream_dir();
        assert!(
            dir.join("node_modules/oidc-provider/package.json").is_file(),
            "{} is missing: run `cargo xtask test` (it runs `npm ci` there), or `npm ci` in tests/upstream-oidc",
            dir.join("node_modules").display()
        );
        let port = common::free_port();
        let mut child = tokio::process::Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("UPSTREAM_PORT", port.to_string())
            .env("UPSTREAM_CLIENT_ID", UP_CLIENT)
            .env("UPSTREAM_CLIENT_SECRET", UP_SECRET)
            .env("UPSTREAM_REDIRECT_URI", redirect_uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run `node` (Node.js 20 or later is needed): {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(issuer) = line.strip_prefix("READY ") {
                    return issuer.to_owned();
                }
            }
            panic!("provider.mjs exited before it was ready");
        })
        .await
        .expect("provider.mjs did not start within 60 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { _child: child, issuer: ready }
    }

    async fn stats(&self) -> Value {
        reqwest::get(format!("{}/test/stats", self.issuer)).await.unwrap().json().await.unwrap()
    }

    async fn post(&self, path: &str) {
        let r = reqwest::Client::new().post(format!("{}{path}", self.issuer)).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
}

/// Logs in at the upstream from `start` (its authorization URL): fills its login form, allows
/// its consent page, and returns the first redirect that leaves the upstream (to the callback).
async fn upstream_login(browser: &Browser, start: &str, login: &str, password: &str) -> url::Url {
    let parsed = url::Url::parse(start).unwrap();
    let origin = parsed[..url::Position::BeforePath].to_owned();
    let mut post: Option<Vec<(String, String)>> = None;
    let mut url = start.to_owned();
    for _ in 0..20 {
        let response = match post.take() {
            Some(fields) => browser.post(&url, &fields).await,
            None => browser.get(&url).await,
        };
        let status = response.status();
        if status.is_redirection() {
            let next = absolute(&origin, &location(response.headers()).unwrap());
            if !next.starts_with(&origin) {
                return url::Url::parse(&next).unwrap();
            }
            url = next;
            continue;
        }
        let html = response.text().await.unwrap();
        assert_eq!(status, 200, "the upstream stopped at {url}:\n{html}");
        let (action, hidden) = form(&html);
        url = absolute(&origin, &action);
        if html.contains("name=\"password\"") {
            post = Some(vec![("login".into(), login.into()), ("password".into(), password.into())]);
        } else if html.contains("name=\"confirm\"") {
            post = Some(hidden);
        } else {
            panic!("unexpected upstream page at {url}:\n{html}");
        }
    }
    panic!("the upstream login did not finish");
}

// ---------------------------------------------------------------------------------------------
// Oxidex.

fn clients() -> String {
    format!(
        "staticClients:\n\
         - id: {RP}\n  name: Relying Party\n  secret: {RP_SECRET}\n  redirectURIs: ['{RP_CB}']\n\
         - id: {RESTRICTED}\n  name: Restricted\n  secret: {RESTRICTED_SECRET}\n  redirectURIs: ['{RP_CB}']\n  \
           allowedConnectors: [other]\n\
         - id: peer\n  name: Peer\n  secret: peer-secret\n  trustedPeers: [{RP}]\n"
    )
}

/// The `oidc` connector pointing at `issuer`, with Dex's claim settings exercised.
fn upstream_connector(issuer: &str, callback: &str) -> String {
    format!(
        "- type: oidc\n  id: upstream\n  name: Upstream\n  config:\n    \
         issuer: {issuer}\n    clientID: {UP_CLIENT}\n    clientSecret: {UP_SECRET}\n    \
         redirectURI: {callback}\n    \
         scopes: [openid, profile, email, groups, offline_access]\n    \
         insecureEnableGroups: true\n    userIDKey: employee_id\n    userNameKey: nickname\n    \
         claimMapping:\n      preferred_username: nickname\n    \
         claimModifications:\n      \
           filterGroupClaims:\n        groupsFilter: '^(admins|developers)$'\n      \
           modifyGroupNames:\n        prefix: 'up:'\n      \
           newGroupFromClaims:\n      - claims: [org, department]\n        delimiter: ':'\n        prefix: org\n"
    )
}

/// A second `oidc` connector on the same upstream client that reads claims from userinfo
/// (`getUserInfo`), so it can also verify upstream access tokens.
fn userinfo_connector(issuer: &str, callback: &str) -> String {
    format!(
        "- type: oidc\n  id: upstream-ui\n  name: Upstream (userinfo)\n  config:\n    \
         issuer: {issuer}\n    clientID: {UP_CLIENT}\n    clientSecret: {UP_SECRET}\n    \
         redirectURI: {callback}\n    scopes: [openid, profile, email, groups]\n    \
         getUserInfo: true\n    insecureEnableGroups: true\n    userIDKey: employee_id\n"
    )
}

/// An HS256 JWT, keyed with `key`.
fn hs256(claims: &Value, key: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Refresh settings of every server here: parallel refreshes within 10 s share one successor.
const REFRESH_POLICY: &str = "expiry:\n  refreshTokens:\n    reuseInterval: 10s\n";

fn start_oxidex(ports: Ports, connectors: &str, extra: &str) -> Server {
    start_oxidex_on(ports, None, connectors, extra)
}

/// Like [`start_oxidex`], on the given storage block (SQLite in the server's directory when
/// `None`).
fn start_oxidex_on(ports: Ports, storage: Option<String>, connectors: &str, extra: &str) -> Server {
    let extra = format!("{REFRESH_POLICY}{extra}");
    let body = format!(
        "{}connectors:\n{connectors}- type: mockCallback\n  id: other\n  name: Other\n{extra}",
        clients()
    );
    Server::start(ports, move |dir, ports| {
        config(ports, &storage.unwrap_or_else(|| sqlite_storage(dir)), &body)
    })
}

fn callback_of(ports: &Ports) -> String {
    format!("http://127.0.0.1:{}/dex/callback", ports.web)
}

fn auth_url(server: &Server, connector: &str, scope: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", RP)
        .append_pair("redirect_uri", RP_CB)
        .append_pair("response_type", "code")
        .append_pair("scope", scope)
        .append_pair("state", "rp-state")
        .append_pair("nonce", "rp-nonce")
        .append_pair("connector_id", connector);
    url.into()
}

/// The claims of a JWT, unverified (Oxidex's signatures are checked by other suites).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {token}"));
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn token(server: &Server, client: (&str, &str), params: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/token", server.issuer))
        .basic_auth(client.0, Some(client.1))
        .form(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON ({status}): {body}")))
}

async fn refresh(server: &Server, refresh_token: &str) -> (u16, Value) {
    token(server, (RP, RP_SECRET), &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

/// A whole login through the `upstream` connector; returns Oxidex's token response.
async fn login_through_upstream(server: &Server, connector: &str, scope: &str) -> Value {
    let browser = Browser::new(&server.issuer);
    let upstream_auth = browser.open(&auth_url(server, connector, scope)).await.left();
    // promptType (default consent) goes with offline_access, which the upstream requires for
    // issuing a refresh token.
    let prompt = query_param(&upstream_auth, "prompt");
    assert_eq!(prompt.as_deref(), scope.contains("offline_access").then_some("consent"), "{upstream_auth}");
    // State, nonce and PKCE go upstream; the state is Oxidex's request, not the RP's.
    assert!(query_param(&upstream_auth, "nonce").is_some_and(|n| n.len() >= 32), "{upstream_auth}");
    assert_eq!(query_param(&upstream_auth, "code_challenge_method").as_deref(), Some("S256"));
    assert_ne!(query_param(&upstream_auth, "state").as_deref(), Some("rp-state"));
    let back = upstream_login(&browser, upstream_auth.as_str(), UP_LOGIN, UP_PASSWORD).await;
    assert!(back.as_str().starts_with(&format!("{}/callback", server.issuer)), "{back}");
    let client_redirect = browser.authorize(back.as_str(), None).await;
    assert!(client_redirect.as_str().starts_with(RP_CB), "{client_redirect}");
    let code = query_param(&client_redirect, "code").expect("a code");
    let (status, body) = token(
        server,
        (RP, RP_SECRET),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP_CB)],
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", server.log_text());
    body
}

// ---------------------------------------------------------------------------------------------
// Tests against oidc-provider.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_oidc_provider_maps_claims_and_groups() {
    let ports = Ports::new();
    let upstream = Upstream::start(&callback_of(&ports)).await;
    let connector = upstream_connector(&upstream.issuer, &callback_of(&ports))
        + &userinfo_connector(&upstream.issuer, &callback_of(&ports));
    let server = start_oxidex(ports, &connector, "");

    let tokens = login_through_upstream(&server, "upstream", "openid profile email groups").await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    // userIDKey: employee_id; the sub is Dex's encoding of (user id, connector id).
    assert_eq!(id["sub"], encode_subject("4711", "upstream"), "{id}");
    assert_eq!(id["name"], "jd", "userNameKey: nickname; {id}");
    assert_eq!(id["preferred_username"], "jd", "claimMapping.preferred_username; {id}");
    assert_eq!(id["email"], "jane@upstream.test");
    assert_eq!(id["email_verified"], true);
    // filterGroupClaims drops ops, modifyGroupNames adds the prefix, newGroupFromClaims appends.
    assert_eq!(id["groups"], json!(["up:admins", "up:developers", "org:acme:R&D"]), "{id}");
    assert_eq!(id["aud"], RP);
    assert_eq!(id["nonce"], "rp-nonce");
    assert!(tokens.get("refresh_token").is_none(), "no offline_access, no refresh token: {tokens}");
    assert_eq!(upstream.stats().await["codeGrants"], 1);

    // With getUserInfo the claims come from the upstream's userinfo too; no group rules here.
    let tokens = login_through_upstream(&server, "upstream-ui", "openid profile email groups").await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], encode_subject("4711", "upstream-ui"), "{id}");
    assert_eq!(id["name"], "Jane Doe", "{id}");
    assert_eq!(id["groups"], json!(["admins", "developers", "ops"]), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rereads_the_upstream_once_per_burst_and_fails_when_the_grant_is_revoked() {
    upstream_refresh(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refresh_on_postgres() {
    let Some(url) = common::postgres::url_or_skip("upstream_refresh_on_postgres") else { return };
    let db = common::postgres::fresh_database(&url, "oidc_refresh").await;
    upstream_refresh(Some(db.storage_yaml())).await;
    db.drop().await;
}

/// Upstream refresh through Oxidex refresh: fresh claims, one upstream call per burst of
/// parallel refreshes, the rotated upstream token kept, invalid_grant once the upstream revokes.
async fn upstream_refresh(storage: Option<String>) {
    let ports = Ports::new();
    let upstream = Upstream::start(&callback_of(&ports)).await;
    let connector = upstream_connector(&upstream.issuer, &callback_of(&ports));
    let server = start_oxidex_on(ports, storage, &connector, "");

    let tokens =
        login_through_upstream(&server, "upstream", "openid profile email groups offline_access").await;
    let mut refresh_token = tokens["refresh_token"].as_str().expect("a refresh token").to_owned();

    // The upstream changes the user's groups: a refresh reads them again.
    upstream.post("/test/groups?set=developers,ops").await;
    let (status, body) = refresh(&server, &refresh_token).await;
    assert_eq!(status, 200, "{body}\n{}", server.log_text());
    let id = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["groups"], json!(["up:developers", "org:acme:R&D"]), "{id}");
    assert_eq!(id["sub"], encode_subject("4711", "upstream"));
    assert_eq!(upstream.stats().await["refreshGrants"], 1);
    refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // A burst of parallel refreshes of one Oxidex refresh token reaches the upstream once (it
    // rotates refresh tokens and revokes the grant on reuse, so more calls would fail), and
    // every caller gets the same successor.
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let (issuer, rt) = (server.issuer.clone(), refresh_token.clone());
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(format!("{issuer}/token"))
                    .basic_auth(RP, Some(RP_SECRET))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())])
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut successors = Vec::new();
    for task in burst {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}\n{}", server.log_text());
        successors.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "{successors:?}");
    assert_eq!(upstream.stats().await["refreshGrants"], 2, "the burst called the upstream once");

    // The rotated upstream refresh token was kept: the next refresh works too.
    let (status, body) = refresh(&server, &successors[0]).await;
    assert_eq!(status, 200, "{body}\n{}", server.log_text());
    assert_eq!(upstream.stats().await["refreshGrants"], 3);
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // The upstream revokes the grant: the refresh fails with invalid_grant, not a server error.
    upstream.post("/test/revoke").await;
    let (status, body) = refresh(&server, &refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // And the Oxidex refresh token is gone with it.
    let (status, body) = refresh(&server, &refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}

/// Logs in at the upstream as its client `oxidex` directly (not through Oxidex) and returns its
/// token response: an ID token whose audience is the connector's client id.
async fn upstream_tokens(upstream: &Upstream, callback: &str) -> Value {
    let browser = Browser::new(&upstream.issuer);
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let mut url = url::Url::parse(&format!("{}/auth", upstream.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", UP_CLIENT)
        .append_pair("redirect_uri", callback)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email groups")
        .append_pair("state", "direct")
        .append_pair("nonce", "direct-nonce")
        .append_pair("code_challenge", &s256_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let back = upstream_login(&browser, url.as_str(), UP_LOGIN, UP_PASSWORD).await;
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let r = reqwest::Client::new()
        .post(format!("{}/token", upstream.issuer))
        .basic_auth(UP_CLIENT, Some(UP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", callback),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "upstream token: {}", r.status());
    r.json().await.unwrap()
}

fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    let seed = format!("{:?}{:?}", std::time::SystemTime::now(), std::thread::current().id());
    for (i, b) in seed.bytes().enumerate() {
        out[i % 32] ^= b;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_of_the_upstream_id_token() {
    let ports = Ports::new();
    let callback = callback_of(&ports);
    let upstream = Upstream::start(&callback).await;
    let connector =
        upstream_connector(&upstream.issuer, &callback) + &userinfo_connector(&upstream.issuer, &callback);
    let server = start_oxidex(ports, &connector, "");
    let fake = FakeUpstream::start().await;

    // Discovery advertises the grant, since it works.
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", server.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(discovery["grant_types_supported"].as_array().unwrap().contains(&json!(TOKEN_EXCHANGE)));

    let up = upstream_tokens(&upstream, &callback).await;
    let id_token = up["id_token"].as_str().unwrap();
    let exchange = |client: (&'static str, &'static str), extra: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let mut params: Vec<(&str, String)> = vec![("grant_type", TOKEN_EXCHANGE.to_owned())];
            params.extend(extra);
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(server, client, &borrowed).await
        }
    };
    let base = |token: &str| {
        vec![
            ("connector_id", "upstream".to_owned()),
            ("subject_token", token.to_owned()),
            ("subject_token_type", ID_TOKEN_TYPE.to_owned()),
            ("scope", "openid email groups profile".to_owned()),
        ]
    };

    // An access token (the default) for the upstream user.
    let (status, body) = exchange((RP, RP_SECRET), base(id_token)).await;
    assert_eq!(status, 200, "{body}\n{}", server.log_text());
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["token_type"], "bearer");
    assert!(body.get("refresh_token").is_none());
    let at = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["sub"], encode_subject("4711", "upstream"), "{at}");
    assert_eq!(at["iss"], server.issuer.as_str());
    assert_eq!(at["groups"], json!(["up:admins", "up:developers", "org:acme:R&D"]), "{at}");
    // It works at Oxidex's userinfo.
    let info = reqwest::Client::new()
        .get(format!("{}/userinfo", server.issuer))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);

    // An ID token when asked for one.
    let mut params = base(id_token);
    params.push(("requested_token_type", ID_TOKEN_TYPE.to_owned()));
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ID_TOKEN_TYPE);
    let issued = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(issued["aud"], RP);
    assert_eq!(issued["email"], "jane@upstream.test");

    // The client may not use this connector (allowedConnectors, Dex GHSA-7qjx).
    let (status, body) = exchange((RESTRICTED, RESTRICTED_SECRET), base(id_token)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")), "{body}");

    // A token from another issuer, and a tampered token, do not verify.
    let foreign = fake.sign(&json!({
        "iss": fake.issuer, "sub": "jane-0001", "aud": UP_CLIENT, "exp": now() + 300, "iat": now(),
        "employee_id": "4711", "email": "jane@upstream.test", "email_verified": true,
    }));
    let (status, body) = exchange((RP, RP_SECRET), base(&foreign)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    let mut claims = jwt_claims(id_token);
    claims["employee_id"] = json!("1");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let (status, body) = exchange((RP, RP_SECRET), base(&parts.join("."))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    // A connector with getUserInfo verifies an upstream access token at the upstream's userinfo.
    let mut params = base(up["access_token"].as_str().unwrap());
    params[0].1 = "upstream-ui".to_owned();
    params[2].1 = ACCESS_TOKEN_TYPE.to_owned();
    let (status, body) = exchange((RP, RP_SECRET), params.clone()).await;
    assert_eq!(status, 200, "{body}\n{}", server.log_text());
    let at = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["sub"], encode_subject("4711", "upstream-ui"), "{at}");
    assert_eq!(at["email"], "jane@upstream.test", "{at}");
    params[1].1 = "not-an-upstream-access-token".to_owned();
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    // Without getUserInfo an access token cannot be verified; unknown types and connectors are
    // refused.
    let mut params = base(up["access_token"].as_str().unwrap());
    params[2].1 = ACCESS_TOKEN_TYPE.to_owned();
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let mut params = base(id_token);
    params[2].1 = "urn:ietf:params:oauth:token-type:saml2".to_owned();
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let mut params = base(id_token);
    params[0].1 = "nope".to_owned();
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let params: Vec<_> = base(id_token).into_iter().filter(|(k, _)| *k != "connector_id").collect();
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    // The mock connector has no token-identity capability.
    let mut params = base(id_token);
    params[0].1 = "other".to_owned();
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    // An audience that trusts this client joins the token's audience.
    let mut params = base(id_token);
    params.push(("audience", "peer".to_owned()));
    params.push(("requested_token_type", ID_TOKEN_TYPE.to_owned()));
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!(status, 200, "{body}");
    let issued = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(issued["aud"], json!(["peer", RP]), "{issued}");
    assert_eq!(issued["azp"], RP, "{issued}");
    // An audience that does not trust this client.
    let mut params = base(id_token);
    params.push(("audience", RESTRICTED.to_owned()));
    let (status, body) = exchange((RP, RP_SECRET), params).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_is_refused_when_the_grant_type_is_not_enabled() {
    let ports = Ports::new();
    let callback = callback_of(&ports);
    let connector = upstream_connector("http://127.0.0.1:9", &callback);
    let server =
        start_oxidex(ports, &connector, "oauth2:\n  grantTypes: [authorization_code, refresh_token]\n");
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", server.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!discovery["grant_types_supported"].as_array().unwrap().contains(&json!(TOKEN_EXCHANGE)));
    let (status, body) = token(
        &server,
        (RP, RP_SECRET),
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("connector_id", "upstream"),
            ("subject_token", "x"),
            ("subject_token_type", ID_TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")), "{body}");

    // The connector's upstream does not answer: the login shows "unavailable", not a 500.
    let page = Browser::new(&server.issuer).open(&auth_url(&server, "upstream", "openid")).await.page();
    assert_eq!(page.status, 503, "{}", page.html);
    assert!(
        server.log_text().contains("discovery at http://127.0.0.1:9/.well-known/openid-configuration failed")
    );
}

// ---------------------------------------------------------------------------------------------
// A fake upstream for what the certified provider never does.

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[derive(Clone)]
struct FakeUpstream {
    issuer: String,
    /// The signing key and its public JWK (the only key published).
    key: Arc<Mutex<(Arc<Signer>, Value)>>,
    /// The ID token the token endpoint answers with next.
    next_id_token: Arc<Mutex<String>>,
    /// The form the token endpoint received last.
    last_form: Arc<Mutex<HashMap<String, String>>>,
}

impl FakeUpstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let key = generate(SigningAlg::RS256).unwrap();
        let fake = FakeUpstream {
            issuer,
            key: Arc::new(Mutex::new((Arc::new(Signer::new(&key).unwrap()), key.public_jwk.clone()))),
            next_id_token: Arc::default(),
            last_form: Arc::default(),
        };
        let state = fake.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get({
                    let s = state.clone();
                    move || async move {
                        axum::Json(json!({
                            "issuer": s.issuer,
                            "authorization_endpoint": format!("{}/auth", s.issuer),
                            "token_endpoint": format!("{}/token", s.issuer),
                            "jwks_uri": format!("{}/jwks", s.issuer),
                            "response_types_supported": ["code"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["RS256"],
                        }))
                    }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get({
                    let s = state.clone();
                    move || async move {
                        let jwk = s.key.lock().unwrap().1.clone();
                        axum::Json(json!({ "keys": [jwk] }))
                    }
                }),
            )
            .route(
                "/token",
                axum::routing::post({
                    let s = state.clone();
                    move |axum::Form(form): axum::Form<HashMap<String, String>>| async move {
                        *s.last_form.lock().unwrap() = form;
                        let id_token = s.next_id_token.lock().unwrap().clone();
                        axum::Json(json!({
                            "access_token": "fake-access-token", "token_type": "Bearer",
                            "expires_in": 300, "id_token": id_token,
                        }))
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn sign(&self, claims: &Value) -> String {
        let signer = self.key.lock().unwrap().0.clone();
        signer.sign(claims).unwrap()
    }

    /// Replaces the signing key (and the published one) with a new key.
    fn rotate(&self) {
        let key = generate(SigningAlg::RS256).unwrap();
        *self.key.lock().unwrap() = (Arc::new(Signer::new(&key).unwrap()), key.public_jwk.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_iss_aud_or_nonce_from_the_upstream_fails_the_login() {
    let fake = FakeUpstream::start().await;
    let ports = Ports::new();
    let callback = callback_of(&ports);
    let connector = format!(
        "- type: oidc\n  id: fake\n  name: Fake\n  config:\n    issuer: {}\n    clientID: fake-client\n    \
         clientSecret: fake-secret\n    redirectURI: {callback}\n    scopes: [openid, email]\n",
        fake.issuer
    );
    let server = start_oxidex(ports, &connector, "");
    let other_key = Signer::new(&generate(SigningAlg::RS256).unwrap()).unwrap();

    type Craft = Box<dyn Fn(&FakeUpstream, &str) -> String>;
    let good = |nonce: &str| {
        json!({
            "iss": "", "sub": "fake-user", "aud": "fake-client", "exp": now() + 300, "iat": now(),
            "nonce": nonce, "name": "Fake User", "email": "fake@upstream.test", "email_verified": true,
        })
    };
    let with = move |change: fn(&mut Value, &FakeUpstream)| -> Craft {
        Box::new(move |fake: &FakeUpstream, nonce: &str| {
            let mut c = good(nonce);
            c["iss"] = json!(fake.issuer);
            change(&mut c, fake);
            fake.sign(&c)
        })
    };
    let cases: Vec<(&str, Craft, Option<&str>)> = vec![
        ("a good token", with(|_, _| {}), None),
        ("a wrong iss", with(|c, _| c["iss"] = json!("http://127.0.0.1:1/evil")), Some("another issuer")),
        ("a wrong aud", with(|c, _| c["aud"] = json!("someone-else")), Some("not meant for this client")),
        (
            "several audiences and another azp",
            with(|c, _| {
                c["aud"] = json!(["fake-client", "other"]);
                c["azp"] = json!("other");
            }),
            Some("another party"),
        ),
        ("a wrong nonce", with(|c, _| c["nonce"] = json!("not-the-nonce")), Some("nonce")),
        (
            "no nonce",
            with(|c, _| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
            Some("nonce"),
        ),
        ("an expired token", with(|c, _| c["exp"] = json!(now() - 10)), Some("expired")),
        (
            "a missing email_verified",
            with(|c, _| {
                c.as_object_mut().unwrap().remove("email_verified");
            }),
            Some("email_verified"),
        ),
        (
            "a key the upstream does not publish",
            Box::new(move |fake: &FakeUpstream, nonce: &str| {
                let mut c = good(nonce);
                c["iss"] = json!(fake.issuer);
                other_key.sign(&c).unwrap()
            }),
            Some("does not publish"),
        ),
        (
            "alg none",
            Box::new(move |fake: &FakeUpstream, nonce: &str| {
                let mut c = good(nonce);
                c["iss"] = json!(fake.issuer);
                let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
                format!("{header}.{}.", URL_SAFE_NO_PAD.encode(c.to_string()))
            }),
            Some("alg none is never accepted"),
        ),
        (
            "an HMAC token keyed with the client secret",
            Box::new(move |fake: &FakeUpstream, nonce: &str| {
                let mut c = good(nonce);
                c["iss"] = json!(fake.issuer);
                hs256(&c, b"fake-secret")
            }),
            Some("HS256, which is not allowed"),
        ),
    ];

    for (what, craft, reason) in cases {
        fake_login(&server, &fake, &callback, what, &*craft, reason).await;
    }

    // The upstream rotates its key: a token signed by the new key makes Oxidex fetch the JWKS
    // again (no more often than every 5 s).
    tokio::time::sleep(Duration::from_millis(5200)).await;
    fake.rotate();
    fake_login(&server, &fake, &callback, "a token signed by a rotated key", &*with(|_, _| {}), None).await;

    // An authorization response from another issuer (RFC 9207 `iss`) is refused.
    let browser = Browser::new(&server.issuer);
    let upstream_auth = browser.open(&auth_url(&server, "fake", "openid email")).await.left();
    let state = query_param(&upstream_auth, "state").unwrap();
    let mut back = url::Url::parse(&callback).unwrap();
    back.query_pairs_mut()
        .append_pair("code", "fake-code")
        .append_pair("state", &state)
        .append_pair("iss", "http://127.0.0.1:1/evil");
    let page = browser.open(back.as_str()).await.page();
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(server.log_text().contains("the authorization response comes from another issuer"));

    a_callback_without_a_pending_login_is_refused(&server, &callback).await;
}

/// One login through the fake upstream whose token endpoint answers with `craft`'s ID token;
/// `reason` is what the log must say when the login must fail (`None`: it must succeed).
async fn fake_login(
    server: &Server,
    fake: &FakeUpstream,
    callback: &str,
    what: &str,
    craft: &dyn Fn(&FakeUpstream, &str) -> String,
    reason: Option<&str>,
) {
    {
        let browser = Browser::new(&server.issuer);
        let upstream_auth = browser.open(&auth_url(server, "fake", "openid email")).await.left();
        assert!(upstream_auth.as_str().starts_with(&format!("{}/auth", fake.issuer)), "{upstream_auth}");
        let nonce = query_param(&upstream_auth, "nonce").unwrap();
        let state = query_param(&upstream_auth, "state").unwrap();
        let challenge = query_param(&upstream_auth, "code_challenge").unwrap();
        *fake.next_id_token.lock().unwrap() = craft(fake, &nonce);
        let log_before = server.log_text().len();
        let mut back = url::Url::parse(callback).unwrap();
        back.query_pairs_mut().append_pair("code", "fake-code").append_pair("state", &state);
        let stop = browser.open(back.as_str()).await;
        let form = fake.last_form.lock().unwrap().clone();
        assert_eq!(form.get("code").map(String::as_str), Some("fake-code"), "{what}");
        assert_eq!(form.get("redirect_uri").map(String::as_str), Some(callback), "{what}");
        let verifier = form.get("code_verifier").unwrap_or_else(|| panic!("{what}: no code_verifier"));
        assert_eq!(s256_challenge(verifier), challenge, "{what}: the PKCE verifier answers the challenge");
        match (reason, stop) {
            (None, Stop::Page(page)) => {
                assert!(page.is_approval(), "{what}: {}\n{}", page.html, server.log_text());
            }
            (Some(reason), Stop::Page(page)) => {
                assert_eq!(page.status, 400, "{what}: {}", page.html);
                assert!(page.html.contains("Login failed"), "{what}: {}", page.html);
                let log = server.log_text()[log_before..].to_owned();
                assert!(log.contains(reason), "{what}: the log does not say {reason:?}:\n{log}");
            }
            (_, Stop::Left(url)) => panic!("{what}: the login went through to {url}"),
        }
    }
}

async fn a_callback_without_a_pending_login_is_refused(server: &Server, callback: &str) {
    // An upstream error is refused, and another browser cannot finish a pending login.
    let browser = Browser::new(&server.issuer);
    let upstream_auth = browser.open(&auth_url(server, "fake", "openid email")).await.left();
    let state = query_param(&upstream_auth, "state").unwrap();
    let mut back = url::Url::parse(callback).unwrap();
    back.query_pairs_mut().append_pair("error", "access_denied").append_pair("state", &state);
    let page = browser.open(back.as_str()).await.page();
    assert_eq!(page.status, 400, "{}", page.html);
    // Another browser cannot finish this login.
    let mut back = url::Url::parse(callback).unwrap();
    back.query_pairs_mut().append_pair("code", "fake-code").append_pair("state", &state);
    let page = Browser::new(&server.issuer).open(back.as_str()).await.page();
    assert_ne!(page.status, 200, "{}", page.html);
}

// ---------------------------------------------------------------------------------------------
// allowedConnectors on every grant (Dex GHSA-7qjx, #4889).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_connectors_changed_after_login_stop_code_and_refresh_grants() {
    use oxidex_proto::api;
    use oxidex_proto::api::dex_client::DexClient;

    let ports = Ports::new();
    let server = start_oxidex(ports, "", "");
    let mut admin = DexClient::new(server.grpc_channel().await);
    admin
        .create_client(api::CreateClientReq {
            client: Some(api::Client {
                id: "dyn".into(),
                secret: "dyn-secret".into(),
                name: "Dynamic".into(),
                redirect_uris: vec![RP_CB.into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let auth = || {
        let mut url = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", "dyn")
            .append_pair("redirect_uri", RP_CB)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid offline_access")
            .append_pair("connector_id", "other");
        url.to_string()
    };
    let redeem = |code: String| {
        let server = &server;
        async move {
            token(
                server,
                ("dyn", "dyn-secret"),
                &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP_CB)],
            )
            .await
        }
    };
    let (status, tokens) = redeem(Browser::new(&server.issuer).code(&auth(), None).await).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let pending_code = Browser::new(&server.issuer).code(&auth(), None).await;

    // The client may now use another connector only.
    admin
        .update_client(api::UpdateClientReq {
            id: "dyn".into(),
            allowed_connectors: vec!["local".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let (status, body) = redeem(pending_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = token(
        &server,
        ("dyn", "dyn-secret"),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // And /auth no longer offers the connector.
    let page = Browser::new(&server.issuer).open(&auth()).await;
    assert!(
        !matches!(&page, Stop::Left(u) if u.as_str().starts_with(RP_CB) && query_param(u, "code").is_some())
    );
}
