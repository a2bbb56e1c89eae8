//! The grants and token endpoints beyond the plain code flow, tested black-box against
//! `oxidex serve`: `client_credentials`, `password`, introspection (RFC 7662), revocation
//! (RFC 7009), several refresh tokens per user and client (Dex issue #981) with the admin API's
//! `ListRefresh`/`RevokeRefresh`, the implicit and hybrid responses of `/auth`, and what
//! discovery says about them (rows D1, D2, D3, I2, I4, I5, J2 and K2 of the security checklist).
//!
//! Requests are raw HTTP, so every status, header and error code is asserted on; tokens are
//! decoded by hand, their signatures checked against `/keys` with the `openidconnect` crate, and
//! `sub`, `at_hash` and `c_hash` recomputed here from their definitions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::str::FromStr as _;

use common::browser::{Browser, fragment_params, query_param};
use common::http::{Auth, Reply, form_post, http};
use common::rp::DEX_SUB;
use common::{PASSWORD_HASH, Ports, Server, config, sqlite_storage};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, Nonce, PkceCodeChallenge};
use oxidex_proto::api;
use oxidex_proto::api::dex_client::DexClient;
use serde_json::{Value, json};

const RP: &str = "rp";
const RP_SECRET: &str = "rp-secret";
const RP_CB: &str = "https://rp.test/cb";
const RP2: &str = "rp2";
const RP2_SECRET: &str = "rp2-secret";
/// A confidential client for `client_credentials`, with `clientCredentialsClaims`.
const MACHINE: &str = "machine";
const MACHINE_SECRET: &str = "machine-secret";
const MACHINE_NAME: &str = "Machine Client";
/// A confidential client that may use the connector `other` only.
const RESTRICTED: &str = "restricted";
const RESTRICTED_SECRET: &str = "restricted-secret";
const STATE: &str = "st-7Qp2x";
const NONCE: &str = "n-0S6_WzA2Mj";

/// The static password user.
const USER: &str = "admin@example.com";
const PASSWORD: &str = "password";
const USER_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";
/// The mock connector's user.
const MOCK_USER_ID: &str = "0-385-28089-0";

const CLIENTS: &str = "staticClients:\n\
- id: rp\n  name: Relying Party\n  secret: rp-secret\n  redirectURIs: ['https://rp.test/cb']\n\
- id: rp2\n  name: Second RP\n  secret: rp2-secret\n  redirectURIs: ['https://rp2.test/cb']\n\
- id: machine\n  name: Machine Client\n  secret: machine-secret\n  \
  clientCredentialsClaims:\n    groups: [machines]\n\
- id: restricted\n  name: Restricted\n  secret: restricted-secret\n  allowedConnectors: [other]\n";

const MOCK: &str = "connectors:\n- type: mockCallback\n  id: mock\n  name: Mock\n";

/// The grant types with `client_credentials` added.
const CLIENT_CREDENTIALS: &str =
    "oauth2:\n  grantTypes: [authorization_code, refresh_token, client_credentials]\n";

/// The password grant through the password database.
const PASSWORD_GRANT: &str = "oauth2:\n  passwordConnector: local\n";

/// Every implicit and hybrid response type but `code token`.
const IMPLICIT: &str = "oauth2:\n  responseTypes: [code, token, id_token, \"id_token token\", \
                        \"code id_token\", \"code id_token token\"]\n";

fn password_db() -> String {
    format!(
        "enablePasswordDB: true\n\
         staticPasswords:\n- email: {USER}\n  hash: \"{PASSWORD_HASH}\"\n  username: admin\n  \
         userID: {USER_ID}\n"
    )
}

/// Three distinct free ports: the listeners are held open together while choosing
/// (`Ports::new` closes each before choosing the next, so it may pick one port twice).
/// A server with the four clients, `identity` (connectors, password DB) and `extra` config.
fn start(identity: &str, extra: &str) -> Server {
    let body = format!("{CLIENTS}{identity}{extra}");
    Server::start(Ports::new(), move |dir, ports| config(ports, &sqlite_storage(dir), &body))
}

/// The password DB plus a mock connector `other`, with the password grant enabled.
fn start_password_grant() -> Server {
    start(
        &format!("{}connectors:\n- type: mockCallback\n  id: other\n  name: Other\n", password_db()),
        PASSWORD_GRANT,
    )
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

/// How a request authenticates the client.
/// A form POST to `path` under the issuer with client authentication.
async fn post_form(server: &Server, path: &str, auth: Auth<'_>, params: &[(&str, &str)]) -> Reply {
    form_post(&http(), &format!("{}{path}", server.issuer), auth, params).await
}

async fn token(server: &Server, auth: Auth<'_>, params: &[(&str, &str)]) -> Reply {
    post_form(server, "/token", auth, params).await
}

async fn refresh(server: &Server, auth: Auth<'_>, refresh_token: &str) -> Reply {
    token(server, auth, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

async fn introspect(server: &Server, auth: Auth<'_>, token: &str) -> Reply {
    post_form(server, "/token/introspect", auth, &[("token", token)]).await
}

async fn revoke(server: &Server, auth: Auth<'_>, token: &str) -> Reply {
    post_form(server, "/token/revoke", auth, &[("token", token)]).await
}

async fn userinfo(server: &Server, access_token: &str) -> Reply {
    let r = http().get(format!("{}/userinfo", server.issuer)).bearer_auth(access_token).send().await.unwrap();
    Reply::read(r).await
}

async fn get(url: &str) -> Reply {
    Reply::read(http().get(url).send().await.unwrap()).await
}

async fn discovery(server: &Server) -> Value {
    let r = get(&format!("{}/.well-known/openid-configuration", server.issuer)).await;
    r.assert_ok("discovery");
    r.json()
}

/// An `/auth` URL for `rp` at [`RP_CB`] with these parameters on top of client, redirect URI
/// and state.
fn auth_url(server: &Server, params: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", RP)
        .append_pair("redirect_uri", RP_CB)
        .append_pair("state", STATE)
        .extend_pairs(params);
    u.into()
}

/// Tokens for `rp` through the mock connector and the code flow (with a refresh token).
async fn rp_tokens(server: &Server) -> Reply {
    let url = auth_url(
        server,
        &[("response_type", "code"), ("scope", "openid email offline_access"), ("nonce", NONCE)],
    );
    let code = Browser::new(&server.issuer).code(&url, None).await;
    let r = token(
        server,
        Auth::Basic(RP, RP_SECRET),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP_CB)],
    )
    .await;
    r.assert_ok("code redemption");
    assert!(r.has("refresh_token"), "no refresh token with offline_access: {}", r.body);
    r
}

// ---------------------------------------------------------------------------------------------
// Token helpers: base64url, SHA-256, Dex's `sub`, JWT claims and signatures.

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url.
fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(B64URL[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Decodes unpadded base64url.
fn b64url_decode(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        let v = B64URL.iter().position(|b| *b == c).unwrap_or_else(|| panic!("not base64url: {s}"));
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// SHA-256, from rustls's aws-lc provider.
fn sha256(data: &[u8]) -> Vec<u8> {
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13().unwrap();
    suite.common.hash_provider.hash(data).as_ref().to_vec()
}

/// OIDC Core §3.1.3.6 / §3.3.2.11 for RS256 and ES256: base64url of the left half of SHA-256.
fn left_half_hash(value: &str) -> String {
    let digest = sha256(value.as_bytes());
    b64url(&digest[..digest.len() / 2])
}

/// Dex's `sub`: base64url (unpadded) of protobuf `IDTokenSubject{1: user_id, 2: conn_id}`,
/// encoded here by hand (proto3 leaves empty strings out).
fn dex_sub(user_id: &str, conn_id: &str) -> String {
    let mut message = Vec::new();
    for (tag, value) in [(0x0a_u8, user_id), (0x12, conn_id)] {
        if value.is_empty() {
            continue;
        }
        message.push(tag);
        let mut len = value.len();
        while len >= 0x80 {
            message.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        message.push(len as u8);
        message.extend_from_slice(value.as_bytes());
    }
    b64url(&message)
}

/// The claims of a JWS, unverified.
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWS: {jwt}"));
    serde_json::from_slice(&b64url_decode(payload)).unwrap()
}

/// The JOSE header of a JWS.
fn jwt_header(jwt: &str) -> Value {
    serde_json::from_slice(&b64url_decode(jwt.split('.').next().unwrap())).unwrap()
}

/// Verifies a JWT (ID token, or Dex's JWT access token, which has the same claims) for
/// `client_id` against the server's `/keys`: signature with the `kid` of the header, `iss`,
/// `aud`, `exp`; the nonce must be `nonce` when given. Returns the claims.
async fn verified(server: &Server, client_id: &str, jwt: &str, nonce: Option<&str>) -> Value {
    let header = jwt_header(jwt);
    assert!(matches!(header["alg"].as_str(), Some("RS256" | "ES256")), "unexpected alg: {header}");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()), "no kid: {header}");
    verify(server, client_id, jwt, nonce)
        .await
        .unwrap_or_else(|e| panic!("the token does not verify against /keys: {e}\n{}", jwt_claims(jwt)));
    let claims = jwt_claims(jwt);
    assert!(claims["exp"].as_i64() > claims["iat"].as_i64(), "exp <= iat: {claims}");
    claims
}

/// The `openidconnect` crate's verdict on a JWT (see [`verified`]).
async fn verify(server: &Server, client_id: &str, jwt: &str, nonce: Option<&str>) -> Result<(), String> {
    let keys = get(&format!("{}/keys", server.issuer)).await;
    keys.assert_ok("/keys");
    let jwks: CoreJsonWebKeySet = serde_json::from_str(&keys.body).unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_owned()),
        IssuerUrl::new(server.issuer.clone()).unwrap(),
        jwks,
    );
    let parsed = CoreIdToken::from_str(jwt).map_err(|e| format!("not a JWT: {e}"))?;
    let result = match nonce {
        Some(n) => parsed.claims(&verifier, &Nonce::new(n.to_owned())).map(|_| ()),
        None => parsed.claims(&verifier, |_: Option<&Nonce>| Ok(())).map(|_| ()),
    };
    result.map_err(|e| e.to_string())
}

#[test]
fn dex_sub_matches_dex() {
    // Dex's own example and the `sub` Dex issues for the static password user.
    assert_eq!(dex_sub("2342744", "github"), "CgcyMzQyNzQ0EgZnaXRodWI");
    assert_eq!(dex_sub(USER_ID, "local"), DEX_SUB);
    assert_eq!(b64url_decode(&dex_sub("machine", "")), b"\x0a\x07machine");
}

#[test]
fn hashes_match_the_oidc_core_example() {
    // RFC 7636 appendix B, as a check of the SHA-256 and base64url used below.
    assert_eq!(
        b64url(&sha256(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    // OIDC Core's at_hash example (appendix A.3/A.4 access token, RS256).
    assert_eq!(left_half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
}

// ---------------------------------------------------------------------------------------------
// 1. client_credentials.

/// I5 and Dex: `client_credentials` and `password` are off by default (the password grant
/// even with the password database, as long as `oauth2.passwordConnector` is not set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_and_password_are_off_by_default() {
    let server = start(&password_db(), "");
    let r = token(
        &server,
        Auth::Basic(MACHINE, MACHINE_SECRET),
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    )
    .await;
    r.assert_error(400, "unsupported_grant_type");
    assert!(!r.has("access_token"), "{}", r.body);
    let r = token(
        &server,
        Auth::Basic(RP, RP_SECRET),
        &[("grant_type", "password"), ("username", USER), ("password", PASSWORD), ("scope", "openid")],
    )
    .await;
    r.assert_error(400, "unsupported_grant_type");
    assert!(!r.has("access_token"), "{}", r.body);
}

/// `client_credentials` (Dex master): the client gets tokens about itself: `sub` is Dex's
/// encoding of (client id, ""), `profile` gives the client's name, `groups` its
/// `clientCredentialsClaims.groups`, `aud` is the client; no refresh token; no ID token
/// without `openid`. Both tokens verify against `/keys`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_issues_tokens_about_the_client() {
    let server = start("", CLIENT_CREDENTIALS);
    let sub = dex_sub(MACHINE, "");
    for auth in [Auth::Basic(MACHINE, MACHINE_SECRET), Auth::Post(MACHINE, MACHINE_SECRET)] {
        let r =
            token(&server, auth, &[("grant_type", "client_credentials"), ("scope", "openid profile groups")])
                .await;
        r.assert_ok(&format!("client_credentials with {auth:?}"));
        r.assert_no_store("the client_credentials response");
        assert_eq!(r.field("token_type").to_ascii_lowercase(), "bearer", "{}", r.body);
        assert!(r.json()["expires_in"].as_i64().is_some_and(|e| e > 0), "{}", r.body);
        assert!(!r.has("refresh_token"), "client_credentials issued a refresh token: {}", r.body);

        let id = verified(&server, MACHINE, &r.field("id_token"), None).await;
        let access = verified(&server, MACHINE, &r.field("access_token"), None).await;
        // The verification can fail: a flipped signature byte, another audience.
        let jwt = r.field("id_token");
        let (signed, signature) = jwt.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{signed}.{flipped}{}", &signature[1..]);
        assert!(verify(&server, MACHINE, &tampered, None).await.is_err(), "a tampered signature verified");
        assert!(verify(&server, RP, &jwt, None).await.is_err(), "the token verified for another audience");
        for (what, claims) in [("ID token", &id), ("access token", &access)] {
            assert_eq!(claims["iss"], json!(server.issuer), "{what}: {claims}");
            assert_eq!(claims["sub"], json!(sub), "{what}: sub is not Dex's (client id, \"\"): {claims}");
            assert_eq!(claims["aud"], json!(MACHINE), "{what}: {claims}");
            assert_eq!(claims["name"], json!(MACHINE_NAME), "{what}: {claims}");
            assert_eq!(claims["preferred_username"], json!(MACHINE_NAME), "{what}: {claims}");
            assert_eq!(claims["groups"], json!(["machines"]), "{what}: {claims}");
            assert!(claims.get("email").is_none(), "{what}: {claims}");
        }
    }

    // Only the claims of the scopes asked for.
    let r = token(
        &server,
        Auth::Basic(MACHINE, MACHINE_SECRET),
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    )
    .await;
    r.assert_ok("client_credentials with scope openid");
    let id = jwt_claims(&r.field("id_token"));
    assert_eq!(id["sub"], json!(sub), "{id}");
    for claim in ["name", "preferred_username", "groups"] {
        assert!(id.get(claim).is_none(), "{claim} without its scope: {id}");
    }

    // Without openid: an access token, no ID token.
    let r = token(
        &server,
        Auth::Basic(MACHINE, MACHINE_SECRET),
        &[("grant_type", "client_credentials"), ("scope", "groups")],
    )
    .await;
    r.assert_ok("client_credentials without openid");
    assert!(!r.has("id_token"), "an ID token without openid: {}", r.body);
    assert!(!r.has("refresh_token"), "{}", r.body);
    let access = verified(&server, MACHINE, &r.field("access_token"), None).await;
    assert_eq!(access["sub"], json!(sub), "{access}");
    assert_eq!(access["groups"], json!(["machines"]), "{access}");

    // The client can introspect its token; another client cannot.
    let j = introspect(&server, Auth::Basic(MACHINE, MACHINE_SECRET), &r.field("access_token")).await.json();
    assert_eq!(j["active"], json!(true), "{j}");
    assert_eq!(j["client_id"], json!(MACHINE), "{j}");
    assert_eq!(j["sub"], json!(sub), "{j}");
    let j = introspect(&server, Auth::Basic(RP, RP_SECRET), &r.field("access_token")).await.json();
    assert_eq!(j, json!({"active": false}));
}

/// `client_credentials` refuses the scopes that need a user (`offline_access`, `federated:id`)
/// and wrong secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_refuses_user_scopes_and_wrong_secrets() {
    let server = start("", CLIENT_CREDENTIALS);
    let machine = Auth::Basic(MACHINE, MACHINE_SECRET);
    for scope in ["openid offline_access", "offline_access", "openid federated:id", "openid no-such-scope"] {
        let r = token(&server, machine, &[("grant_type", "client_credentials"), ("scope", scope)]).await;
        r.assert_error(400, "invalid_scope");
        assert!(!r.has("access_token"), "scope {scope:?}: {}", r.body);
    }
    for auth in [
        Auth::Basic(MACHINE, "wrong"),
        Auth::Basic(MACHINE, RP_SECRET),
        Auth::Post(MACHINE, "wrong"),
        Auth::Basic("nobody", MACHINE_SECRET),
        Auth::Anonymous,
    ] {
        let r = token(&server, auth, &[("grant_type", "client_credentials"), ("scope", "openid")]).await;
        r.assert_error(401, "invalid_client");
        assert!(!r.has("access_token"), "{auth:?}: {}", r.body);
        if matches!(auth, Auth::Basic(..)) {
            let challenge =
                r.header("www-authenticate").unwrap_or_else(|| panic!("{auth:?}: no WWW-Authenticate"));
            assert!(challenge.to_ascii_lowercase().starts_with("basic"), "{auth:?}: {challenge}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The password grant.

/// The password grant with `oauth2.passwordConnector: local`: an ID token for the user (Dex's
/// `sub` for (user id, `local`), the email, the nonce sent) and a refresh token that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_grant_issues_tokens_and_a_working_refresh_token() {
    let server = start_password_grant();
    let r = token(
        &server,
        Auth::Basic(RP, RP_SECRET),
        &[
            ("grant_type", "password"),
            ("username", USER),
            ("password", PASSWORD),
            ("scope", "openid email offline_access"),
            ("nonce", NONCE),
        ],
    )
    .await;
    r.assert_ok("the password grant");
    r.assert_no_store("the password grant response");
    assert_eq!(r.field("token_type").to_ascii_lowercase(), "bearer", "{}", r.body);
    let id = verified(&server, RP, &r.field("id_token"), Some(NONCE)).await;
    assert_eq!(id["sub"], json!(dex_sub(USER_ID, "local")), "{id}");
    assert_eq!(id["sub"], json!(DEX_SUB), "{id}");
    assert_eq!(id["email"], json!(USER), "{id}");
    assert_eq!(id["email_verified"], json!(true), "{id}");
    assert_eq!(id["aud"], json!(RP), "{id}");
    let access = verified(&server, RP, &r.field("access_token"), None).await;
    assert_eq!(access["sub"], json!(DEX_SUB), "{access}");
    let info = userinfo(&server, &r.field("access_token")).await;
    info.assert_ok("userinfo with the password grant's access token");
    assert_eq!(info.json()["sub"], json!(DEX_SUB), "{}", info.body);

    let first = r.field("refresh_token");
    let r = refresh(&server, Auth::Basic(RP, RP_SECRET), &first).await;
    r.assert_ok("refreshing the password grant's refresh token");
    let id = verified(&server, RP, &r.field("id_token"), None).await;
    assert_eq!(id["sub"], json!(DEX_SUB), "{id}");
    assert_eq!(id["email"], json!(USER), "{id}");
    let second = r.field("refresh_token");
    assert_ne!(second, first, "the refresh token was not rotated");
    refresh(&server, Auth::Basic(RP, RP_SECRET), &second).await.assert_ok("the rotated refresh token");

    // Without offline_access: no refresh token.
    let r = token(
        &server,
        Auth::Basic(RP, RP_SECRET),
        &[("grant_type", "password"), ("username", USER), ("password", PASSWORD), ("scope", "openid")],
    )
    .await;
    r.assert_ok("the password grant without offline_access");
    assert!(!r.has("refresh_token"), "{}", r.body);
}

/// Password grant failures: wrong password or unknown user `invalid_grant`, no `openid`
/// `invalid_scope`, and (I4) a client whose `allowedConnectors` excludes the password connector
/// `unauthorized_client`, even with the right password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_grant_refuses_bad_credentials_scopes_and_disallowed_clients() {
    let server = start_password_grant();
    let rp = Auth::Basic(RP, RP_SECRET);
    let grant = |user: &'static str, password: &'static str, scope: &'static str| {
        [("grant_type", "password"), ("username", user), ("password", password), ("scope", scope)]
    };

    let r = token(&server, rp, &grant(USER, "wrong", "openid")).await;
    r.assert_error(400, "invalid_grant");
    assert!(!r.has("access_token"), "{}", r.body);
    let r = token(&server, rp, &grant("nobody@example.com", PASSWORD, "openid")).await;
    r.assert_error(400, "invalid_grant");

    for scope in ["email", "email offline_access", "profile"] {
        let r = token(&server, rp, &grant(USER, PASSWORD, scope)).await;
        r.assert_error(400, "invalid_scope");
        assert!(!r.has("access_token"), "scope {scope:?}: {}", r.body);
    }

    for (what, params) in [
        ("no username", [("grant_type", "password"), ("password", PASSWORD), ("scope", "openid")]),
        ("no password", [("grant_type", "password"), ("username", USER), ("scope", "openid")]),
    ] {
        let r = token(&server, rp, &params).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(r.error(), "invalid_request", "{what}: {}", r.body);
    }

    let r =
        token(&server, Auth::Basic(RESTRICTED, RESTRICTED_SECRET), &grant(USER, PASSWORD, "openid")).await;
    r.assert_error(400, "unauthorized_client");
    assert!(!r.has("access_token"), "{}", r.body);

    let r = token(&server, Auth::Basic(RP, "wrong"), &grant(USER, PASSWORD, "openid")).await;
    r.assert_error(401, "invalid_client");

    // The failures above did not lock the user out.
    token(&server, rp, &grant(USER, PASSWORD, "openid")).await.assert_ok("the right password afterwards");
}

/// K2 for the password grant: repeated wrong passwords are throttled with 429 and `Retry-After`,
/// and while throttled even the right password is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_grant_is_throttled_with_retry_after() {
    let server = start_password_grant();
    let rp = Auth::Basic(RP, RP_SECRET);
    let grant = |password: &'static str| {
        [("grant_type", "password"), ("username", USER), ("password", password), ("scope", "openid")]
    };
    let mut throttled = None;
    for attempt in 1..=20 {
        let r = token(&server, rp, &grant("wrong")).await;
        assert!(!r.has("access_token"), "attempt {attempt}: a wrong password got tokens: {}", r.body);
        if r.status == 429 {
            throttled = Some((attempt, r));
            break;
        }
        r.assert_error(400, "invalid_grant");
    }
    let (attempt, r) = throttled.expect("20 wrong passwords were not throttled");
    assert!(attempt > 1, "the very first wrong password was throttled");
    assert!(r.json()["error"].is_string(), "the 429 is not an OAuth error: {}", r.body);
    let wait: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers))
        .parse()
        .unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    let r = token(&server, rp, &grant(PASSWORD)).await;
    assert_eq!(r.status, 429, "the right password got through the throttle: {}", r.body);
    assert!(!r.has("access_token"), "{}", r.body);
}

// ---------------------------------------------------------------------------------------------
// 3. Introspection.

/// RFC 7662: introspection needs client authentication; a client learns about its own access
/// and refresh tokens only; anything else is exactly `{"active": false}`; nothing is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_authenticated_and_answers_only_about_own_tokens() {
    let server = start(MOCK, "");
    let tokens = rp_tokens(&server).await;
    let (access, refresh_token) = (tokens.field("access_token"), tokens.field("refresh_token"));
    let id = verified(&server, RP, &tokens.field("id_token"), Some(NONCE)).await;
    let sub = dex_sub(MOCK_USER_ID, "mock");
    assert_eq!(id["sub"], json!(sub), "{id}");

    for auth in [Auth::Anonymous, Auth::Basic(RP, "wrong"), Auth::Post(RP, "wrong")] {
        let r = introspect(&server, auth, &access).await;
        r.assert_error(401, "invalid_client");
        assert!(!r.body.contains("active"), "{auth:?}: {}", r.body);
        r.assert_no_store("an introspection error");
    }

    let r = introspect(&server, Auth::Basic(RP, RP_SECRET), &access).await;
    r.assert_ok("introspecting the client's own access token");
    r.assert_no_store("introspection");
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    let j = r.json();
    let claims = jwt_claims(&access);
    assert_eq!(j["active"], json!(true), "{j}");
    assert_eq!(j["client_id"], json!(RP), "{j}");
    assert_eq!(j["sub"], json!(sub), "{j}");
    assert_eq!(j["iss"], json!(server.issuer), "{j}");
    assert_eq!(j["aud"], json!(RP), "{j}");
    assert_eq!(j["exp"], claims["exp"], "{j}");
    assert_eq!(j["iat"], claims["iat"], "{j}");
    assert!(j["exp"].as_i64() > j["iat"].as_i64(), "{j}");
    assert_eq!(j["token_use"], json!("access_token"), "{j}");

    // Post authentication works the same; a wrong token_type_hint does not hide the token
    // (RFC 7662 §2.1: the server extends its search).
    let r = introspect(&server, Auth::Post(RP, RP_SECRET), &access).await;
    assert_eq!(r.json()["active"], json!(true), "client_secret_post: {}", r.body);
    let hinted = [("token", access.as_str()), ("token_type_hint", "refresh_token")];
    let r = post_form(&server, "/token/introspect", Auth::Basic(RP, RP_SECRET), &hinted).await;
    assert_eq!(r.json()["token_use"], json!("access_token"), "with a wrong hint: {}", r.body);

    let r = introspect(&server, Auth::Basic(RP, RP_SECRET), &refresh_token).await;
    r.assert_ok("introspecting the client's own refresh token");
    let j = r.json();
    assert_eq!(j["active"], json!(true), "{j}");
    assert_eq!(j["token_use"], json!("refresh_token"), "{j}");
    assert_eq!(j["client_id"], json!(RP), "{j}");
    assert_eq!(j["sub"], json!(sub), "{j}");
    assert_eq!(j["iss"], json!(server.issuer), "{j}");

    // Another confidential client learns nothing, the same as for garbage.
    for (what, t) in [
        ("rp's access token", access.as_str()),
        ("rp's refresh token", refresh_token.as_str()),
        ("garbage", "garbage"),
        ("a garbage JWT", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
        ("a garbage refresh token", "CgNhYmMSA2RlZg"),
    ] {
        let r = introspect(&server, Auth::Basic(RP2, RP2_SECRET), t).await;
        r.assert_ok(&format!("rp2 introspecting {what}"));
        assert_eq!(r.json(), json!({"active": false}), "rp2 introspecting {what}: {}", r.body);
        r.assert_no_store("an inactive introspection");
    }
    let r = introspect(&server, Auth::Basic(RP, RP_SECRET), "garbage").await;
    r.assert_ok("garbage");
    assert_eq!(r.json(), json!({"active": false}), "{}", r.body);
    let r = introspect(&server, Auth::Basic(RP, RP_SECRET), "").await;
    r.assert_error(400, "invalid_request");

    // A rotated-out refresh token is no longer active; its successor is.
    let r = refresh(&server, Auth::Basic(RP, RP_SECRET), &refresh_token).await;
    r.assert_ok("refresh");
    let successor = r.field("refresh_token");
    let old = introspect(&server, Auth::Basic(RP, RP_SECRET), &refresh_token).await;
    assert_eq!(old.json(), json!({"active": false}), "a rotated-out refresh token: {}", old.body);
    let new = introspect(&server, Auth::Basic(RP, RP_SECRET), &successor).await;
    assert_eq!(new.json()["active"], json!(true), "the successor: {}", new.body);
}

/// Expired tokens introspect as inactive: access tokens past `exp` (`expiry.idTokens`) and
/// refresh tokens past `absoluteLifetime`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_of_expired_tokens_is_inactive() {
    let server = start(MOCK, "expiry:\n  idTokens: 1s\n  refreshTokens:\n    absoluteLifetime: 1s\n");
    let rp = Auth::Basic(RP, RP_SECRET);
    let tokens = rp_tokens(&server).await;
    let (access, refresh_token) = (tokens.field("access_token"), tokens.field("refresh_token"));
    let claims = jwt_claims(&access);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1, "{claims}");
    // Both are active now (or the checks below would prove nothing) ...
    assert_eq!(introspect(&server, rp, &access).await.json()["active"], json!(true));
    assert_eq!(introspect(&server, rp, &refresh_token).await.json()["active"], json!(true));
    // ... and inactive once their lifetime has passed (`exp` is valid through its second).
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = introspect(&server, rp, &access).await;
    assert_eq!(r.json(), json!({"active": false}), "an expired access token: {}", r.body);
    let r = introspect(&server, rp, &refresh_token).await;
    assert_eq!(r.json(), json!({"active": false}), "an expired refresh token: {}", r.body);
    assert_eq!(userinfo(&server, &access).await.status, 401, "an expired access token at /userinfo");
}

// ---------------------------------------------------------------------------------------------
// 4. Revocation.

/// RFC 7009: a client revokes its own refresh and access tokens (200, then they stop working);
/// unknown tokens and other clients' tokens get 200 and change nothing; without client
/// authentication, 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_ends_own_tokens_and_leaves_others_alone() {
    let server = start(MOCK, "");
    let rp = Auth::Basic(RP, RP_SECRET);
    let rp2 = Auth::Basic(RP2, RP2_SECRET);
    let tokens = rp_tokens(&server).await;
    let (access, mut refresh_token) = (tokens.field("access_token"), tokens.field("refresh_token"));

    for auth in [Auth::Anonymous, Auth::Basic(RP, "wrong")] {
        let r = revoke(&server, auth, &refresh_token).await;
        r.assert_error(401, "invalid_client");
    }
    for unknown in ["garbage", "CgNhYmMSA2RlZg", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        revoke(&server, rp, unknown).await.assert_ok(&format!("revoking an unknown token {unknown:?}"));
    }

    // Another client: 200, but nothing happens.
    revoke(&server, rp2, &refresh_token).await.assert_ok("rp2 revoking rp's refresh token");
    revoke(&server, rp2, &access).await.assert_ok("rp2 revoking rp's access token");
    let r = refresh(&server, rp, &refresh_token).await;
    r.assert_ok("rp's refresh token after rp2 tried to revoke it");
    refresh_token = r.field("refresh_token");
    userinfo(&server, &access).await.assert_ok("rp's access token after rp2 tried to revoke it");
    assert_eq!(introspect(&server, rp, &access).await.json()["active"], json!(true));

    // The owner: the refresh token ...
    assert_eq!(introspect(&server, rp, &refresh_token).await.json()["active"], json!(true));
    let hinted = [("token", refresh_token.as_str()), ("token_type_hint", "access_token")];
    post_form(&server, "/token/revoke", rp, &hinted).await.assert_ok("revoking the refresh token");
    refresh(&server, rp, &refresh_token).await.assert_error(400, "invalid_grant");
    assert_eq!(introspect(&server, rp, &refresh_token).await.json(), json!({"active": false}));
    // ... revoking it again is still 200 ...
    revoke(&server, rp, &refresh_token).await.assert_ok("revoking a revoked refresh token");
    // ... and the access token, with a wrong hint (RFC 7009 §2.1: the server extends its
    // search).
    let r = revoke(&server, rp, "").await;
    r.assert_error(400, "invalid_request");
    let hinted = [("token", access.as_str()), ("token_type_hint", "refresh_token")];
    post_form(&server, "/token/revoke", rp, &hinted).await.assert_ok("revoking the access token");
    let r = userinfo(&server, &access).await;
    assert_eq!(r.status, 401, "a revoked access token works at /userinfo: {}", r.body);
    assert_eq!(introspect(&server, rp, &access).await.json(), json!({"active": false}));
}

// ---------------------------------------------------------------------------------------------
// 5. Several refresh tokens per user and client.

/// Dex issue #981: a second login of the same user with the same client does not kill the
/// first login's refresh token; the admin API lists both and `RevokeRefresh` ends both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_refresh_tokens_per_user_and_client_are_listed_and_revoked_together() {
    let server = start(MOCK, "");
    let rp = Auth::Basic(RP, RP_SECRET);
    let first = rp_tokens(&server).await;
    let second = rp_tokens(&server).await;
    let sub = jwt_claims(&first.field("id_token"))["sub"].as_str().unwrap().to_owned();
    assert_eq!(sub, dex_sub(MOCK_USER_ID, "mock"));
    assert_eq!(jwt_claims(&second.field("id_token"))["sub"], json!(sub));
    let mut chains = [first.field("refresh_token"), second.field("refresh_token")];
    assert_ne!(chains[0], chains[1]);

    // Both keep working, interleaved, twice each.
    for round in 0..2 {
        for (i, chain) in chains.iter_mut().enumerate() {
            let r = refresh(&server, rp, chain).await;
            r.assert_ok(&format!("login {} refresh {}", i + 1, round + 1));
            *chain = r.field("refresh_token");
        }
    }

    let mut admin = DexClient::new(server.grpc_channel().await);
    let listed = admin
        .list_refresh(api::ListRefreshReq { user_id: sub.clone() })
        .await
        .unwrap()
        .into_inner()
        .refresh_tokens;
    let mine: Vec<&api::RefreshTokenRef> = listed.iter().filter(|t| t.client_id == RP).collect();
    assert_eq!(mine.len(), 2, "ListRefresh: {listed:?}");
    assert_ne!(mine[0].id, mine[1].id, "{listed:?}");
    for t in &mine {
        assert!(t.created_at > 0 && t.last_used >= t.created_at, "{t:?}");
    }

    // Revoking one of them (RFC 7009) leaves the other, and the listing follows.
    revoke(&server, rp, &chains[0]).await.assert_ok("revoking login 1's refresh token");
    refresh(&server, rp, &chains[0]).await.assert_error(400, "invalid_grant");
    let r = refresh(&server, rp, &chains[1]).await;
    r.assert_ok("login 2's refresh token after login 1's was revoked");
    chains[1] = r.field("refresh_token");
    let listed = admin.list_refresh(api::ListRefreshReq { user_id: sub.clone() }).await.unwrap().into_inner();
    let left: Vec<_> = listed.refresh_tokens.iter().filter(|t| t.client_id == RP).collect();
    assert_eq!(left.len(), 1, "after revoking one: {listed:?}");
    chains[0] = rp_tokens(&server).await.field("refresh_token");
    let listed = admin.list_refresh(api::ListRefreshReq { user_id: sub.clone() }).await.unwrap().into_inner();
    assert_eq!(listed.refresh_tokens.iter().filter(|t| t.client_id == RP).count(), 2, "{listed:?}");

    let r = admin
        .revoke_refresh(api::RevokeRefreshReq { user_id: sub.clone(), client_id: RP.into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.not_found, "RevokeRefresh found nothing");
    for (i, chain) in chains.iter().enumerate() {
        refresh(&server, rp, chain).await.assert_error(400, "invalid_grant");
        assert_eq!(introspect(&server, rp, chain).await.json(), json!({"active": false}), "login {}", i + 1);
    }
    let left = admin.list_refresh(api::ListRefreshReq { user_id: sub }).await.unwrap().into_inner();
    assert!(left.refresh_tokens.iter().all(|t| t.client_id != RP), "left after RevokeRefresh: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Implicit and hybrid responses.

/// Asserts that `back` is a redirect to [`RP_CB`] whose parameters are all in the fragment,
/// with `state` and `iss`; returns them.
#[track_caller]
fn fragment_response(back: &url::Url, server: &Server) -> HashMap<String, String> {
    assert_eq!(&back[..url::Position::AfterPath], RP_CB, "redirected elsewhere: {back}");
    assert!(back.query().is_none_or(str::is_empty), "the response uses the query string: {back}");
    let p = fragment_params(back);
    assert_eq!(p.get("state").map(String::as_str), Some(STATE), "state lost: {back}");
    assert_eq!(p.get("iss"), Some(&server.issuer), "RFC 9207 iss missing: {back}");
    p
}

/// Asserts an error redirect to [`RP_CB`] with `error` in the fragment (not the query).
#[track_caller]
fn assert_fragment_error(r: &Reply, server: &Server, error: &str, what: &str) {
    assert_eq!(r.status, 303, "{what}: expected an error redirect, got {}: {}", r.status, r.body);
    let back = url::Url::parse(&r.header("location").unwrap()).unwrap();
    assert!(
        back.as_str().starts_with(RP_CB),
        "{what}: the request was accepted, the login started at {back}"
    );
    assert!(query_param(&back, "error").is_none(), "{what}: the error is in the query: {back}");
    let p = fragment_response(&back, server);
    assert_eq!(p.get("error").map(String::as_str), Some(error), "{what}: {back}");
    for leaked in ["code", "access_token", "id_token"] {
        assert!(!p.contains_key(leaked), "{what}: an error response carries {leaked}: {back}");
    }
}

/// `id_token token` (D1, D2): the tokens travel in the fragment with `token_type`,
/// `expires_in`, `state` and `iss`; the ID token has the nonce and the `at_hash` of the access
/// token, which works at userinfo. `id_token` alone has no access token and no `at_hash`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_id_token_token_returns_tokens_in_the_fragment() {
    let server = start(MOCK, IMPLICIT);
    let url = auth_url(
        &server,
        &[("response_type", "id_token token"), ("scope", "openid email"), ("nonce", NONCE)],
    );
    let back = Browser::new(&server.issuer).authorize(&url, None).await;
    let p = fragment_response(&back, &server);
    assert!(!p.contains_key("code"), "{back}");
    let access = p.get("access_token").unwrap_or_else(|| panic!("no access_token: {back}"));
    assert_eq!(p.get("token_type").map(|t| t.to_ascii_lowercase()).as_deref(), Some("bearer"), "{back}");
    let expires: i64 =
        p.get("expires_in").unwrap_or_else(|| panic!("no expires_in: {back}")).parse().unwrap();
    assert!(expires > 0, "{back}");
    let id_token = p.get("id_token").unwrap_or_else(|| panic!("no id_token: {back}"));

    let id = verified(&server, RP, id_token, Some(NONCE)).await;
    assert_eq!(id["nonce"], json!(NONCE), "{id}");
    assert_eq!(id["sub"], json!(dex_sub(MOCK_USER_ID, "mock")), "{id}");
    assert_eq!(id["email"], json!("kilgore@kilgore.trout"), "{id}");
    assert_eq!(id["at_hash"], json!(left_half_hash(access)), "at_hash is not the access token's: {id}");
    assert!(id.get("c_hash").is_none(), "c_hash without a code: {id}");
    verified(&server, RP, access, None).await;
    let info = userinfo(&server, access).await;
    info.assert_ok("userinfo with the implicit access token");
    assert_eq!(info.json()["sub"], id["sub"], "{}", info.body);

    let url = auth_url(&server, &[("response_type", "id_token"), ("scope", "openid"), ("nonce", NONCE)]);
    let back = Browser::new(&server.issuer).authorize(&url, None).await;
    let p = fragment_response(&back, &server);
    for absent in ["code", "access_token"] {
        assert!(!p.contains_key(absent), "response_type=id_token returned {absent}: {back}");
    }
    let id = verified(&server, RP, p.get("id_token").expect("no id_token"), Some(NONCE)).await;
    assert!(id.get("at_hash").is_none(), "at_hash without an access token: {id}");
}

/// D1 and the response-type rules: a response without a code needs a nonce; `token` alone is
/// refused; a response type that is not enabled is `unsupported_response_type`. Errors of an
/// implicit request go back in the fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_requests_without_nonce_or_with_bad_response_types_fail() {
    let server = start(MOCK, IMPLICIT);
    for rt in ["id_token token", "id_token"] {
        let r = get(&auth_url(&server, &[("response_type", rt), ("scope", "openid")])).await;
        assert_fragment_error(&r, &server, "invalid_request", &format!("{rt} without a nonce"));
    }
    let r =
        get(&auth_url(&server, &[("response_type", "token"), ("scope", "openid"), ("nonce", NONCE)])).await;
    assert_fragment_error(&r, &server, "invalid_request", "response_type=token alone");

    // `code token` is not enabled on this server.
    let r =
        get(&auth_url(&server, &[("response_type", "code token"), ("scope", "openid"), ("nonce", NONCE)]))
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let back = url::Url::parse(&r.header("location").unwrap()).unwrap();
    assert_eq!(&back[..url::Position::AfterPath], RP_CB, "{back}");
    let error = fragment_params(&back).get("error").cloned().or_else(|| query_param(&back, "error"));
    assert_eq!(error.as_deref(), Some("unsupported_response_type"), "{back}");
    assert!(!back.as_str().contains("code="), "{back}");

    // On a default server no token-bearing response type is enabled.
    let default = start(MOCK, "");
    for rt in ["id_token token", "code id_token"] {
        let r =
            get(&auth_url(&default, &[("response_type", rt), ("scope", "openid"), ("nonce", NONCE)])).await;
        assert_eq!(r.status, 303, "{rt}: {}", r.body);
        let back = url::Url::parse(&r.header("location").unwrap()).unwrap();
        let error = fragment_params(&back).get("error").cloned().or_else(|| query_param(&back, "error"));
        assert_eq!(error.as_deref(), Some("unsupported_response_type"), "{rt} on a default server: {back}");
    }
}

/// D2 for the hybrid flow: `code id_token` returns a code and an ID token (with `c_hash` of the
/// code and the nonce) in the fragment; the code redeems at `/token` with its PKCE verifier.
/// `code id_token token` adds an access token, and the ID token has both hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_responses_carry_c_hash_and_the_code_redeems() {
    let server = start(MOCK, IMPLICIT);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = auth_url(
        &server,
        &[
            ("response_type", "code id_token"),
            ("scope", "openid offline_access"),
            ("nonce", NONCE),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    let back = Browser::new(&server.issuer).authorize(&url, None).await;
    let p = fragment_response(&back, &server);
    let code = p.get("code").unwrap_or_else(|| panic!("no code: {back}"));
    assert!(!p.contains_key("access_token"), "code id_token returned an access token: {back}");
    let id = verified(&server, RP, p.get("id_token").expect("no id_token"), Some(NONCE)).await;
    assert_eq!(id["c_hash"], json!(left_half_hash(code)), "c_hash is not the code's: {id}");
    assert!(id.get("at_hash").is_none(), "at_hash without an access token: {id}");

    let r = token(
        &server,
        Auth::Basic(RP, RP_SECRET),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", RP_CB),
            ("code_verifier", verifier.secret()),
        ],
    )
    .await;
    r.assert_ok("redeeming the hybrid code");
    let redeemed = verified(&server, RP, &r.field("id_token"), Some(NONCE)).await;
    assert_eq!(redeemed["sub"], id["sub"], "{redeemed}");
    assert!(r.has("refresh_token"), "{}", r.body);

    let url =
        auth_url(&server, &[("response_type", "code id_token token"), ("scope", "openid"), ("nonce", NONCE)]);
    let back = Browser::new(&server.issuer).authorize(&url, None).await;
    let p = fragment_response(&back, &server);
    let code = p.get("code").unwrap_or_else(|| panic!("no code: {back}"));
    let access = p.get("access_token").unwrap_or_else(|| panic!("no access_token: {back}"));
    assert_eq!(p.get("token_type").map(|t| t.to_ascii_lowercase()).as_deref(), Some("bearer"), "{back}");
    let id = verified(&server, RP, p.get("id_token").expect("no id_token"), Some(NONCE)).await;
    assert_eq!(id["c_hash"], json!(left_half_hash(code)), "{id}");
    assert_eq!(id["at_hash"], json!(left_half_hash(access)), "{id}");
    userinfo(&server, access).await.assert_ok("the hybrid access token at userinfo");
    let r = token(
        &server,
        Auth::Basic(RP, RP_SECRET),
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", RP_CB)],
    )
    .await;
    r.assert_ok("redeeming the code id_token token code");
}

/// D1 (OIDC Core §3.3.2.11): the hybrid flow, like the implicit one, needs a nonce; without it
/// the request fails with `invalid_request` in the fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_requests_without_nonce_fail() {
    let server = start(MOCK, IMPLICIT);
    for rt in ["code id_token", "code id_token token"] {
        let r = get(&auth_url(&server, &[("response_type", rt), ("scope", "openid")])).await;
        assert_fragment_error(&r, &server, "invalid_request", &format!("{rt} without a nonce"));
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Discovery.

/// Discovery advertises the revocation and introspection endpoints, and `grant_types_supported`
/// follows the config: `client_credentials` only when listed, `password` only with a password
/// connector, `implicit` only with a token-bearing response type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reflects_the_grant_config() {
    let grants = |d: &Value| -> Vec<String> {
        d["grant_types_supported"]
            .as_array()
            .unwrap_or_else(|| panic!("no grant_types_supported: {d}"))
            .iter()
            .map(|g| g.as_str().unwrap().to_owned())
            .collect()
    };

    let default = start(&password_db(), "");
    let d = discovery(&default).await;
    assert_eq!(d["revocation_endpoint"], json!(format!("{}/token/revoke", default.issuer)), "{d}");
    assert_eq!(d["introspection_endpoint"], json!(format!("{}/token/introspect", default.issuer)), "{d}");
    let g = grants(&d);
    for expected in ["authorization_code", "refresh_token"] {
        assert!(g.iter().any(|x| x == expected), "default: {g:?}");
    }
    for absent in ["client_credentials", "password", "implicit"] {
        assert!(!g.iter().any(|x| x == absent), "default lists {absent}: {g:?}");
    }
    assert_eq!(d["response_types_supported"], json!(["code"]), "{d}");
    drop(default);

    let cc = start("", CLIENT_CREDENTIALS);
    let d = discovery(&cc).await;
    assert_eq!(grants(&d), ["authorization_code", "client_credentials", "refresh_token"], "{d}");
    assert_eq!(d["revocation_endpoint"], json!(format!("{}/token/revoke", cc.issuer)), "{d}");
    drop(cc);

    let password = start_password_grant();
    let g = grants(&discovery(&password).await);
    assert!(g.iter().any(|x| x == "password"), "passwordConnector set: {g:?}");
    assert!(!g.iter().any(|x| x == "client_credentials"), "{g:?}");
    drop(password);

    let implicit = start(MOCK, IMPLICIT);
    let d = discovery(&implicit).await;
    let g = grants(&d);
    assert!(g.iter().any(|x| x == "implicit"), "token response types enabled: {g:?}");
    assert!(!g.iter().any(|x| x == "password" || x == "client_credentials"), "{g:?}");
    let mut rts: Vec<String> = d["response_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let listed = rts.clone();
    rts.sort();
    assert_eq!(listed, rts, "response_types_supported is not sorted");
    assert_eq!(rts, ["code", "code id_token", "code id_token token", "id_token", "id_token token", "token"]);
}
