//! Security properties of the browser flow and the token endpoint, tested black-box against
//! `oxidex serve` (rows of the security checklist: A redirect URIs, B codes, C PKCE, D8
//! userinfo, E refresh tokens, H browser headers/CSRF/CORS, I client authentication, K
//! passwords). Negative cases are raw HTTP requests, because RP libraries refuse to send them;
//! every assertion is on what a client or a user sees: status, `Location`, JSON error code,
//! headers, page text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::browser::{Browser, absolute, links, location, query_param};
use common::http::{Auth, Reply, form_post, http};
use common::{PASSWORD_HASH, Ports, Server, config, sqlite_storage};
use openidconnect::{PkceCodeChallenge, PkceCodeVerifier};
use reqwest::header::HeaderMap;
use serde_json::Value;

const RP: &str = "rp";
const RP_SECRET: &str = "rp-secret";
const RP_CB: &str = "https://rp.test/cb";
const RP_OTHER_CB: &str = "https://rp.test/other";
const RP2: &str = "rp2";
const RP2_SECRET: &str = "rp2-secret";
const RP2_CB: &str = "https://rp2.test/cb";
/// A public client without registered redirect URIs (a native app).
const NATIVE: &str = "native";
/// A public client with a registered redirect URI (a browser app).
const SPA: &str = "spa";
const SPA_CB: &str = "https://spa.test/cb";
const STATE: &str = "st-4d1c8e";
const USER: &str = "admin@example.com";
const PASSWORD: &str = "password";

const CLIENTS: &str = "staticClients:\n\
- id: rp\n  name: Relying Party\n  secret: rp-secret\n  \
  redirectURIs: ['https://rp.test/cb', 'https://rp.test/other']\n\
- id: rp2\n  name: Second RP\n  secret: rp2-secret\n  redirectURIs: ['https://rp2.test/cb']\n\
- id: native\n  name: Native App\n  public: true\n\
- id: spa\n  name: Browser App\n  public: true\n  redirectURIs: ['https://spa.test/cb']\n";

const FORM: &str = "application/x-www-form-urlencoded";

const MOCK: &str = "connectors:\n- type: mockCallback\n  id: mock\n  name: Mock\n";

fn password_db() -> String {
    format!(
        "enablePasswordDB: true\n\
         staticPasswords:\n- email: {USER}\n  hash: \"{PASSWORD_HASH}\"\n  username: admin\n  \
         userID: 08a8684b-db88-4b73-90a9-3cd1661f5466\n"
    )
}

/// A server with the four clients, `identity` (connectors / password DB) and `extra` config.
fn start(identity: &str, extra: &str) -> Server {
    start_with(identity, extra, "")
}

/// Like [`start`], with `web_extra` lines added to the `web:` block.
fn start_with(identity: &str, extra: &str, web_extra: &str) -> Server {
    let body = format!("{CLIENTS}{identity}{extra}");
    let web_extra = web_extra.to_owned();
    Server::start(Ports::new(), move |dir, ports| {
        let c = config(ports, &sqlite_storage(dir), &body);
        if web_extra.is_empty() { c } else { c.replacen("web:\n", &format!("web:\n{web_extra}"), 1) }
    })
}

/// Authorization request parameters, built up per test.
#[derive(Clone, Debug)]
struct Authz(Vec<(String, String)>);

impl Authz {
    /// A code request for `client_id` and `redirect_uri` with scope `openid offline_access`.
    fn code(client_id: &str, redirect_uri: &str) -> Self {
        Self(vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), client_id.into()),
            ("redirect_uri".into(), redirect_uri.into()),
            ("scope".into(), "openid offline_access".into()),
            ("state".into(), STATE.into()),
            ("nonce".into(), "n-0S6_WzA2Mj".into()),
        ])
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.into(), value.into()));
        self
    }

    fn pkce(self, challenge: &PkceCodeChallenge) -> Self {
        self.set("code_challenge", challenge.as_str()).set("code_challenge_method", "S256")
    }

    fn url(&self, server: &Server) -> String {
        let mut u = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
        u.query_pairs_mut().extend_pairs(&self.0);
        u.into()
    }
}

/// A POST to an endpoint under the issuer with a form body and client authentication.
async fn post_form(client: &reqwest::Client, url: &str, auth: Auth<'_>, params: &[(&str, &str)]) -> Reply {
    form_post(client, url, auth, params).await
}

async fn token(server: &Server, auth: Auth<'_>, params: &[(&str, &str)]) -> Reply {
    post_form(&http(), &format!("{}/token", server.issuer), auth, params).await
}

async fn redeem(server: &Server, auth: Auth<'_>, code: &str, redirect_uri: &str) -> Reply {
    token(
        server,
        auth,
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)],
    )
    .await
}

async fn refresh(server: &Server, auth: Auth<'_>, refresh_token: &str) -> Reply {
    token(server, auth, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

/// A code for `rp` at [`RP_CB`] through the mock connector (no PKCE: `rp` is confidential).
/// The redirect carries `state` and `iss` (RFC 9207) too.
async fn rp_code(server: &Server) -> String {
    let back = Browser::new(&server.issuer).authorize(&Authz::code(RP, RP_CB).url(server), None).await;
    assert_eq!(&back[..url::Position::AfterPath], RP_CB, "the code went elsewhere: {back}");
    let p = redirect_params(&back);
    assert_eq!(p.get("state").map(String::as_str), Some(STATE), "{back}");
    assert_eq!(p.get("iss"), Some(&server.issuer), "{back}");
    p.get("code").unwrap_or_else(|| panic!("no code in {back}")).clone()
}

/// Tokens for `rp` (with a refresh token) through the mock connector.
async fn rp_tokens(server: &Server) -> Reply {
    let code = rp_code(server).await;
    let r = redeem(server, Auth::Basic(RP, RP_SECRET), &code, RP_CB).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

async fn userinfo_get(server: &Server, access_token: &str) -> Reply {
    let r = http().get(format!("{}/userinfo", server.issuer)).bearer_auth(access_token).send().await.unwrap();
    Reply::read(r).await
}

/// The parameters of a redirect to the client, from the query and the fragment.
fn redirect_params(u: &url::Url) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = u.query_pairs().into_owned().collect();
    if let Some(f) = u.fragment() {
        m.extend(url::form_urlencoded::parse(f.as_bytes()).into_owned());
    }
    m
}

/// Asserts that a response is an error page: 4xx, no `Location`.
#[track_caller]
fn assert_no_redirect(r: &Reply, what: &str) {
    assert!((400..500).contains(&r.status), "{what}: expected a 4xx page, got {}: {}", r.status, r.body);
    assert!(r.header("location").is_none(), "{what}: redirected to {:?}", r.header("location"));
}

/// Asserts an OAuth error redirect to exactly `redirect_uri` with `state` and `iss`.
#[track_caller]
fn assert_error_redirect(r: &Reply, server: &Server, redirect_uri: &str, error: &str) {
    assert_eq!(r.status, 303, "expected an error redirect, got {}: {}", r.status, r.body);
    let u = url::Url::parse(&r.header("location").unwrap()).unwrap();
    assert_eq!(&u[..url::Position::AfterPath], redirect_uri, "redirected elsewhere: {u}");
    let p = redirect_params(&u);
    assert_eq!(p.get("error").map(String::as_str), Some(error), "{u}");
    assert_eq!(p.get("state").map(String::as_str), Some(STATE), "state lost: {u}");
    assert_eq!(p.get("iss"), Some(&server.issuer), "RFC 9207 iss missing: {u}");
    assert!(!p.contains_key("code"), "an error redirect carries a code: {u}");
}

/// Asserts that `/auth` accepted the request: a redirect into the provider (the login).
#[track_caller]
fn assert_login_started(r: &Reply, server: &Server, what: &str) {
    assert_eq!(r.status, 303, "{what}: {}", r.body);
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(&format!("{}/", server.issuer)), "{what}: not a login redirect: {loc}");
}

async fn get(url: &str) -> Reply {
    Reply::read(http().get(url).send().await.unwrap()).await
}

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

/// The claims of a JWS, unverified.
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWS: {jwt}"));
    serde_json::from_slice(&b64url_decode(payload)).unwrap()
}

/// The S256 challenge of any verifier (the RP library refuses to compute it for malformed
/// ones), with SHA-256 from rustls's aws-lc provider.
fn s256(verifier: &str) -> String {
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13().unwrap();
    b64url(suite.common.hash_provider.hash(verifier.as_bytes()).as_ref())
}

// ---------------------------------------------------------------------------------------------
// A. Redirect URIs.

/// A1/A2/A3: redirect URIs match by exact string only; an unknown client or URI is never
/// redirected to; errors after the URI is trusted go back with `state` and `iss`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_uri_is_matched_exactly_and_errors_never_open_redirect() {
    let server = start(MOCK, "");
    let ok = get(&Authz::code(RP, RP_CB).url(&server)).await;
    assert_login_started(&ok, &server, "the registered URI");

    for bad in [
        "https://rp.test/cb/../x",
        "https://rp.test/cb/extra",
        "https://rp.test/cb?x=1",
        "https://rp.test.evil/cb",
        "HTTPS://RP.TEST/cb",
        "https://rp.test/cb#f",
        "https://rp.test:443/cb",
        "https://a@rp.test/cb",
        "https://rp.test/cb%2F",
        "https://rp.test/cb/",
        "https://rp.test/c",
        "http://rp.test/cb",
        "",
    ] {
        let r = get(&Authz::code(RP, bad).url(&server)).await;
        assert_no_redirect(&r, &format!("redirect_uri {bad:?}"));
    }

    // An unknown client, or none: no redirect, even to a URI another client registered.
    let r = get(&Authz::code("nobody", RP_CB).url(&server)).await;
    assert_no_redirect(&r, "unknown client_id");
    let r = get(&Authz::code("", RP_CB).url(&server)).await;
    assert_no_redirect(&r, "missing client_id");
    let r = get(&Authz::code(RP, RP2_CB).url(&server)).await;
    assert_no_redirect(&r, "another client's redirect URI");

    // A bad scope with a registered URI goes back to it, with state and iss ...
    let bad_scope = Authz::code(RP, RP_CB).set("scope", "openid no-such-scope");
    let r = get(&bad_scope.url(&server)).await;
    assert_error_redirect(&r, &server, RP_CB, "invalid_scope");
    let r = get(&Authz::code(RP, RP_CB).set("scope", "email").url(&server)).await;
    assert_error_redirect(&r, &server, RP_CB, "invalid_scope");
    // ... but never to an unregistered one.
    let r = get(&bad_scope.set("redirect_uri", "https://evil.test/cb").url(&server)).await;
    assert_no_redirect(&r, "bad scope with an unregistered URI");
}

/// A1 (RFC 8252 §7.3): a public client without registered redirect URIs may use http loopback
/// on any port, nothing else; the flow then completes with PKCE and no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_client_without_redirect_uris_may_use_loopback_only() {
    let server = start(MOCK, "");
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    for uri in [
        "http://127.0.0.1:4711/cb",
        "http://127.0.0.1:59999/cb",
        "http://localhost:8123/x",
        "http://localhost/x",
        "http://[::1]:4711/cb",
    ] {
        let r = get(&Authz::code(NATIVE, uri).pkce(&challenge).url(&server)).await;
        assert_login_started(&r, &server, uri);
    }
    for bad in [
        "https://evil.test/",
        "http://evil.test/cb",
        "http://127.0.0.1.evil.test/cb",
        "http://localhost.evil.test/cb",
        "http://user@127.0.0.1:4711/cb",
        "javascript:alert(1)",
    ] {
        let r = get(&Authz::code(NATIVE, bad).pkce(&challenge).url(&server)).await;
        assert_no_redirect(&r, &format!("native client redirect_uri {bad:?}"));
    }

    let cb = "http://127.0.0.1:4711/cb";
    let back = Browser::new(&server.issuer)
        .authorize(&Authz::code(NATIVE, cb).pkce(&challenge).url(&server), None)
        .await;
    assert_eq!(&back[..url::Position::AfterPath], cb, "the code went elsewhere: {back}");
    let code = query_param(&back, "code").unwrap();
    let r = token(
        &server,
        Auth::Id(NATIVE),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", cb),
            ("code_verifier", verifier.secret()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

// ---------------------------------------------------------------------------------------------
// A5, A6, H3: the browser pages.

/// Asserts the headers every HTML page must carry (A6, H3).
#[track_caller]
fn assert_page_headers(headers: &HeaderMap, what: &str) {
    let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("referrer-policy").as_deref(), Some("no-referrer"), "{what}: Referrer-Policy");
    assert_eq!(h("x-frame-options").map(|v| v.to_ascii_uppercase()).as_deref(), Some("DENY"), "{what}");
    let csp = h("content-security-policy").unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: CSP without frame-ancestors 'none': {csp}");
    assert!(h("access-control-allow-origin").is_none(), "{what}: a browser page answers CORS");
}

/// A6: the page loads nothing from elsewhere: every script, stylesheet and icon it links is a
/// same-origin path (the login UI's hashed assets), and it has no inline script (the step's JSON
/// is data, `type="application/json"`).
#[track_caller]
fn assert_no_third_party(html: &str, what: &str) {
    for attr in ["src=\"", "href=\""] {
        for value in html.split(attr).skip(1).filter_map(|s| s.split('"').next()) {
            let same_origin = value.starts_with('/') && !value.starts_with("//");
            assert!(same_origin, "{what}: loads or links {value}, not a same-origin path");
        }
    }
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or("");
        assert!(
            tag.contains("src=\"/") || tag.contains("type=\"application/json\""),
            "{what}: has an inline script: <script{tag}>"
        );
    }
}

/// A5: the login POST answers 302/303, never 307. A6/H3: every HTML page (chooser, password
/// form, failed login, consent, error page, device page) sends `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY` and `frame-ancestors 'none'`, and no CORS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_post_redirects_with_303_and_pages_carry_security_headers() {
    let server = start(&format!("{MOCK}{}", password_db()), "");
    let browser = Browser::new(&server.issuer);
    let auth = Authz::code(RP, RP_CB).url(&server);

    // Two connectors: the chooser.
    let r = browser.http.get(&auth).header("origin", "https://app.test").send().await.unwrap();
    let chooser = browser.follow(r, auth.clone()).await.page();
    assert_eq!(chooser.status, 200, "{}", chooser.html);
    assert_page_headers(&chooser.headers, "connector chooser");
    assert_no_third_party(&chooser.html, "connector chooser");
    let local = links(&chooser.html)
        .into_iter()
        .find(|l| l.contains("/auth/local"))
        .unwrap_or_else(|| panic!("no password DB link in the chooser:\n{}", chooser.html));

    let login = browser.open(&absolute(&browser.origin, &local)).await.page();
    assert_eq!(login.status, 200, "{}", login.html);
    assert!(login.is_password_form(), "{}", login.html);
    assert_page_headers(&login.headers, "password form");
    assert_no_third_party(&login.html, "password form");

    let form = login.form(&browser.origin);
    let wrong =
        browser.post(&form.action, &form.clone().with("login", USER).with("password", "wrong").fields).await;
    assert_page_headers(wrong.headers(), "failed login page");
    assert!(wrong.status().is_client_error(), "a wrong password answered {}", wrong.status());

    let r =
        browser.post(&form.action, &form.clone().with("login", USER).with("password", PASSWORD).fields).await;
    let status = r.status().as_u16();
    assert!(matches!(status, 302 | 303), "the login POST answered {status} (A5: 302/303, never 307)");
    let approval_url = absolute(&browser.origin, &location(r.headers()).unwrap());
    let approval = browser.open(&approval_url).await.page();
    assert_eq!(approval.status, 200, "{}", approval.html);
    assert!(approval.is_approval(), "{}", approval.html);
    assert_page_headers(&approval.headers, "consent page");
    assert_no_third_party(&approval.html, "consent page");

    let error = get(&Authz::code("nobody", RP_CB).url(&server)).await;
    assert_no_redirect(&error, "error page");
    assert_page_headers(&error.headers, "error page");

    let device = get(&format!("{}/device", server.issuer)).await;
    assert_eq!(device.status, 200, "{}", device.body);
    assert_page_headers(&device.headers, "device page");
    assert_no_third_party(&device.body, "device page");
}

// ---------------------------------------------------------------------------------------------
// B. Authorization codes.

/// B1/B4: a code is single use, bound to its client (whose failed attempt does not burn it)
/// and to its redirect URI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_is_single_use_and_bound_to_client_and_redirect_uri() {
    let server = start(MOCK, "");
    let code = rp_code(&server).await;

    // Another client presenting the code: invalid_grant, and the code survives.
    redeem(&server, Auth::Basic(RP2, RP2_SECRET), &code, RP_CB).await.assert_error(400, "invalid_grant");
    redeem(&server, Auth::Basic(RP2, RP2_SECRET), &code, RP2_CB).await.assert_error(400, "invalid_grant");
    let first = redeem(&server, Auth::Basic(RP, RP_SECRET), &code, RP_CB).await;
    assert_eq!(
        first.status, 200,
        "the right client could not redeem after another client tried: {}",
        first.body
    );
    assert!(!first.field("access_token").is_empty());

    // Second redemption.
    redeem(&server, Auth::Basic(RP, RP_SECRET), &code, RP_CB).await.assert_error(400, "invalid_grant");

    // The redirect URI at /token must be the one of the authorization request.
    let code = rp_code(&server).await;
    redeem(&server, Auth::Basic(RP, RP_SECRET), &code, RP_OTHER_CB).await.assert_error(400, "invalid_grant");
    let code = rp_code(&server).await;
    token(&server, Auth::Basic(RP, RP_SECRET), &[("grant_type", "authorization_code"), ("code", &code)])
        .await
        .assert_error(400, "invalid_grant");

    // A code that never existed.
    redeem(&server, Auth::Basic(RP, RP_SECRET), "aaaaaaaaaaaaaaaaaaaaaaaaa", RP_CB)
        .await
        .assert_error(400, "invalid_grant");
}

/// B5: 20 parallel redemptions of one code: exactly one 200, the rest 400, no 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_redemptions_of_one_code_succeed_exactly_once() {
    let server = start(MOCK, "");
    let code = rp_code(&server).await;
    let client = http();
    let url = format!("{}/token", server.issuer);
    let params = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", RP_CB)];
    let replies = futures::future::join_all(
        (0..20).map(|_| post_form(&client, &url, Auth::Basic(RP, RP_SECRET), &params)),
    )
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "statuses: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 19, "statuses: {statuses:?}");
    for r in replies.iter().filter(|r| r.status == 400) {
        assert_eq!(r.error(), "invalid_grant", "{}", r.body);
    }
}

/// B2 (RFC 6749 §4.1.2): when a code is redeemed a second time, the tokens issued from the
/// first redemption are revoked: the refresh token gets invalid_grant, the access token 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_replay_revokes_the_tokens_of_the_first_redemption() {
    let server = start(MOCK, "");
    let code = rp_code(&server).await;
    let first = redeem(&server, Auth::Basic(RP, RP_SECRET), &code, RP_CB).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let (access, refresh_token) = (first.field("access_token"), first.field("refresh_token"));
    assert_eq!(userinfo_get(&server, &access).await.status, 200, "the fresh access token must work");

    redeem(&server, Auth::Basic(RP, RP_SECRET), &code, RP_CB).await.assert_error(400, "invalid_grant");

    let r = refresh(&server, Auth::Basic(RP, RP_SECRET), &refresh_token).await;
    r.assert_error(400, "invalid_grant");
    let r = userinfo_get(&server, &access).await;
    assert_eq!(r.status, 401, "the access token of a replayed code still works at /userinfo: {}", r.body);
}

// ---------------------------------------------------------------------------------------------
// C. PKCE.

/// C2: `plain` (explicit, or implied by a challenge without a method) is refused by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_plain_is_rejected_by_default() {
    let server = start(MOCK, "");
    let (_, verifier) = PkceCodeChallenge::new_random_sha256();
    let plain = Authz::code(RP, RP_CB).set("code_challenge", verifier.secret());
    let r = get(&plain.clone().set("code_challenge_method", "plain").url(&server)).await;
    assert_error_redirect(&r, &server, RP_CB, "invalid_request");
    let r = get(&plain.url(&server)).await;
    assert_error_redirect(&r, &server, RP_CB, "invalid_request");
    let r = get(&Authz::code(RP, RP_CB)
        .set("code_challenge", verifier.secret())
        .set("code_challenge_method", "S512")
        .url(&server))
    .await;
    assert_error_redirect(&r, &server, RP_CB, "invalid_request");
}

/// C3/C4: downgrade protection and verifier syntax at the token endpoint. Each case uses a
/// fresh code; a correct verifier then works (so the cases fail for the reason tested).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_downgrade_and_bad_verifiers_are_refused() {
    // The test's own S256 (RFC 7636 appendix B).
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let server = start(MOCK, "");
    let browser = Browser::new(&server.issuer);
    let basic = Auth::Basic(RP, RP_SECRET);
    let with_verifier = |code: &str, verifier: &str| -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), RP_CB.into()),
            ("code_verifier".into(), verifier.into()),
        ]
    };
    async fn send(server: &Server, auth: Auth<'_>, p: Vec<(String, String)>) -> Reply {
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        token(server, auth, &refs).await
    }

    // (a) No challenge at /auth, a verifier at /token.
    let (_, verifier) = PkceCodeChallenge::new_random_sha256();
    let code = browser.code(&Authz::code(RP, RP_CB).url(&server), None).await;
    send(&server, basic, with_verifier(&code, verifier.secret())).await.assert_error(400, "invalid_grant");

    // (b) A challenge, no verifier.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let with_pkce = Authz::code(RP, RP_CB).pkce(&challenge).url(&server);
    let code = browser.code(&with_pkce, None).await;
    redeem(&server, basic, &code, RP_CB).await.assert_error(400, "invalid_grant");

    // (c) A wrong verifier.
    let code = browser.code(&with_pkce, None).await;
    let (_, other) = PkceCodeChallenge::new_random_sha256();
    send(&server, basic, with_verifier(&code, other.secret())).await.assert_error(400, "invalid_grant");

    // C4: verifiers of 42 and 129 characters and with a character outside the unreserved set,
    // each with the matching S256 challenge, so that only the syntax is wrong.
    for bad in
        ["a".repeat(42), "b".repeat(129), format!("{}+/", "c".repeat(41)), format!("{} x", "d".repeat(41))]
    {
        let authz =
            Authz::code(RP, RP_CB).set("code_challenge", &s256(&bad)).set("code_challenge_method", "S256");
        let code = browser.code(&authz.url(&server), None).await;
        let r = send(&server, basic, with_verifier(&code, &bad)).await;
        assert_eq!(r.status, 400, "a {}-character verifier {bad:?} was accepted: {}", bad.len(), r.body);
        assert!(matches!(r.error().as_str(), "invalid_grant" | "invalid_request"), "{}", r.body);
    }

    // The right verifier (43 and 128 characters: the limits are inclusive).
    let code = browser.code(&with_pkce, None).await;
    let r = send(&server, basic, with_verifier(&code, verifier.secret())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let long = PkceCodeVerifier::new("e".repeat(128));
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&long);
    let code = browser.code(&Authz::code(RP, RP_CB).pkce(&challenge).url(&server), None).await;
    let r = send(&server, basic, with_verifier(&code, long.secret())).await;
    assert_eq!(r.status, 200, "a 128-character verifier was refused: {}", r.body);
}

/// C5: a public client must send a code challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_clients_must_use_pkce() {
    let server = start(MOCK, "");
    let r = get(&Authz::code(NATIVE, "http://127.0.0.1:4711/cb").url(&server)).await;
    assert_error_redirect(&r, &server, "http://127.0.0.1:4711/cb", "invalid_request");
    let r = get(&Authz::code(SPA, SPA_CB).url(&server)).await;
    assert_error_redirect(&r, &server, SPA_CB, "invalid_request");
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let r = get(&Authz::code(SPA, SPA_CB).pkce(&challenge).url(&server)).await;
    assert_login_started(&r, &server, "a public client with S256");
}

// ---------------------------------------------------------------------------------------------
// D8. Userinfo; H5 no-store.

/// D8: userinfo takes the bearer token from the header (GET and POST) or a POST body, never
/// from the query string; a tampered token is 401. H5: /token and /userinfo answers carry
/// `Cache-Control: no-store`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_accepts_header_and_body_tokens_only_and_nothing_is_cached() {
    let server = start(MOCK, "");
    let tokens = rp_tokens(&server).await;
    assert!(
        tokens.header("cache-control").is_some_and(|v| v.contains("no-store")),
        "/token 200 is cacheable"
    );
    let access = tokens.field("access_token");
    let url = format!("{}/userinfo", server.issuer);
    let c = http();

    let r = userinfo_get(&server, &access).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id_sub = jwt_claims(&tokens.field("id_token"))["sub"].clone();
    assert!(id_sub.is_string());
    assert_eq!(r.json()["sub"], id_sub, "userinfo and ID token disagree on sub: {}", r.body);
    assert!(r.header("cache-control").is_some_and(|v| v.contains("no-store")), "/userinfo 200 is cacheable");

    let r = Reply::read(c.post(&url).bearer_auth(&access).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "POST with the header: {}", r.body);
    let r = Reply::read(c.post(&url).form(&[("access_token", access.as_str())]).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "POST with the token in the body: {}", r.body);

    // Never from the query string.
    let r = Reply::read(c.get(format!("{url}?access_token={access}")).send().await.unwrap()).await;
    assert_eq!(r.status, 401, "GET ?access_token= was accepted: {}", r.body);
    assert!(r.header("cache-control").is_some_and(|v| v.contains("no-store")), "/userinfo 401 is cacheable");
    let r = Reply::read(c.post(format!("{url}?access_token={access}")).send().await.unwrap()).await;
    assert_eq!(r.status, 401, "POST ?access_token= was accepted: {}", r.body);

    // Tampered tokens: the signature, the payload, alg=none.
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3, "the access token is not a JWS");
    let flip = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        let i = b.len() / 2;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    for (what, bad) in [
        ("signature", format!("{}.{}.{}", parts[0], parts[1], flip(parts[2]))),
        ("payload", format!("{}.{}.{}", parts[0], flip(parts[1]), parts[2])),
        ("unsigned", format!("eyJhbGciOiJub25lIn0.{}.", parts[1])),
        ("garbage", "not-a-token".to_owned()),
    ] {
        let r = userinfo_get(&server, &bad).await;
        assert_eq!(r.status, 401, "a token with a tampered {what} was accepted: {}", r.body);
    }
    let r = Reply::read(c.get(&url).send().await.unwrap()).await;
    assert_eq!(r.status, 401, "no token: {}", r.body);

    // /token errors are not cached either.
    let r = redeem(&server, Auth::Basic(RP, RP_SECRET), "garbage", RP_CB).await;
    assert_eq!(r.status, 400);
    assert!(r.header("cache-control").is_some_and(|v| v.contains("no-store")), "/token 400 is cacheable");
}

// ---------------------------------------------------------------------------------------------
// E. Refresh tokens.

/// E1/E2: each refresh returns a new token; a rotated token replayed (no reuse window by
/// default) is refused and ends the whole chain, so the newest token is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_chain() {
    let server = start(MOCK, "");
    let basic = Auth::Basic(RP, RP_SECRET);
    let r1 = rp_tokens(&server).await.field("refresh_token");
    let a = refresh(&server, basic, &r1).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let r2 = a.field("refresh_token");
    let b = refresh(&server, basic, &r2).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let r3 = b.field("refresh_token");
    let all: HashSet<&String> = [&r1, &r2, &r3].into_iter().collect();
    assert_eq!(all.len(), 3, "refresh tokens were not rotated");

    refresh(&server, basic, &r1).await.assert_error(400, "invalid_grant");
    let r = refresh(&server, basic, &r3).await;
    r.assert_error(400, "invalid_grant");
}

/// E3: within `reuseInterval`, 20 parallel refreshes with one token give no 5xx, and every
/// caller gets the same successor (one chain), which then works. A token two generations
/// old is refused even inside the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_refreshes_within_the_reuse_interval_share_one_successor() {
    let server = start(MOCK, "expiry:\n  refreshTokens:\n    reuseInterval: 3s\n");
    let basic = Auth::Basic(RP, RP_SECRET);
    let r1 = rp_tokens(&server).await.field("refresh_token");
    let client = http();
    let url = format!("{}/token", server.issuer);
    let params = [("grant_type", "refresh_token"), ("refresh_token", r1.as_str())];
    let replies = futures::future::join_all((0..20).map(|_| post_form(&client, &url, basic, &params))).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|s| *s < 500), "server errors in a refresh burst: {statuses:?}");
    // Every caller presented the current token within the window: each gets the successor.
    assert!(statuses.iter().all(|s| *s == 200), "refreshes in the burst failed: {statuses:?}");
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let successors: HashSet<String> = ok.iter().map(|r| r.field("refresh_token")).collect();
    assert_eq!(successors.len(), 1, "the burst forked the chain into {} tokens", successors.len());
    let r2 = successors.into_iter().next().unwrap();
    assert_ne!(r2, r1);

    let next = refresh(&server, basic, &r2).await;
    assert_eq!(next.status, 200, "the successor does not work: {}", next.body);
    let r3 = next.field("refresh_token");
    assert_ne!(r3, r2);

    // r1 is now two generations old: refused although the window has not passed.
    refresh(&server, basic, &r1).await.assert_error(400, "invalid_grant");
}

/// E4: a refresh token is bound to its client, and scopes can only shrink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_is_bound_to_the_client_and_scopes_only_shrink() {
    let server = start(MOCK, "");
    let basic = Auth::Basic(RP, RP_SECRET);
    let r1 = rp_tokens(&server).await.field("refresh_token");

    refresh(&server, Auth::Basic(RP2, RP2_SECRET), &r1).await.assert_error(400, "invalid_grant");
    let wider = [
        ("grant_type", "refresh_token"),
        ("refresh_token", r1.as_str()),
        ("scope", "openid offline_access email"),
    ];
    token(&server, basic, &wider).await.assert_error(400, "invalid_scope");

    // The owner can still use it, with a narrower scope.
    let narrower = [("grant_type", "refresh_token"), ("refresh_token", r1.as_str()), ("scope", "openid")];
    let r = token(&server, basic, &narrower).await;
    assert_eq!(r.status, 200, "after another client's attempt and a wider scope: {}", r.body);
}

/// E4: `absoluteLifetime` ends a token counted from its creation, even while it is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_absolute_lifetime_is_enforced() {
    let server = start(MOCK, "expiry:\n  refreshTokens:\n    absoluteLifetime: 2s\n");
    let basic = Auth::Basic(RP, RP_SECRET);
    let r1 = rp_tokens(&server).await.field("refresh_token");
    let r = refresh(&server, basic, &r1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r2 = r.field("refresh_token");
    tokio::time::sleep(Duration::from_secs(3)).await;
    refresh(&server, basic, &r2).await.assert_error(400, "invalid_grant");
}

/// E4: `validIfNotUsedFor` ends a token that was idle too long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_idle_timeout_is_enforced() {
    let server = start(MOCK, "expiry:\n  refreshTokens:\n    validIfNotUsedFor: 2s\n");
    let basic = Auth::Basic(RP, RP_SECRET);
    let r1 = rp_tokens(&server).await.field("refresh_token");
    tokio::time::sleep(Duration::from_secs(3)).await;
    refresh(&server, basic, &r1).await.assert_error(400, "invalid_grant");
}

// ---------------------------------------------------------------------------------------------
// H. Consent CSRF and CORS.

/// H2: the consent URL is useless in another browser, and the consent POST needs the
/// request's HMAC; only the right browser with the right HMAC gets the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_needs_the_same_browser_and_the_request_hmac() {
    let server = start(MOCK, "");
    let victim = Browser::new(&server.issuer);
    let page = victim.until_approval(&Authz::code(RP, RP_CB).url(&server), None).await;
    let approval_url = page.url.clone();
    let form = page.form(&victim.origin);
    assert!(form.fields.iter().any(|(k, _)| k == "hmac"), "the consent form has no hmac: {:?}", form.fields);
    let approve = form.clone().with("approval", "approve");

    let attacker = Browser::new(&server.issuer);
    let r = Reply::read(attacker.get(&approval_url).await).await;
    assert_no_redirect(&r, "the consent URL in another browser");
    assert!(!r.body.contains("Grant access"), "another browser sees the consent page");
    let r = Reply::read(attacker.post(&approve.action, &approve.fields).await).await;
    assert_no_redirect(&r, "the consent POST from another browser");

    // The right browser with a wrong or missing HMAC.
    let hmac = approve.fields.iter().find(|(k, _)| k == "hmac").unwrap().1.clone();
    let mut wrong = hmac.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    for (what, f) in [
        ("a wrong hmac", approve.clone().with("hmac", &wrong)),
        ("no hmac", approve.clone().without("hmac")),
        ("an empty hmac", approve.clone().with("hmac", "")),
    ] {
        let r = Reply::read(victim.post(&f.action, &f.fields).await).await;
        assert_no_redirect(&r, &format!("the consent POST with {what}"));
    }
    let mut no_hmac = url::Url::parse(&approval_url).unwrap();
    let kept: Vec<(String, String)> =
        no_hmac.query_pairs().into_owned().filter(|(k, _)| k != "hmac").collect();
    no_hmac.query_pairs_mut().clear().extend_pairs(kept);
    let r = Reply::read(victim.get(no_hmac.as_str()).await).await;
    assert_no_redirect(&r, "the consent page without hmac");

    // The victim's own approval still works, and the attacker never saw a code.
    let back = victim.submit(&approve).await.left();
    assert_eq!(&back[..url::Position::AfterPath], RP_CB);
    assert!(query_param(&back, "code").is_some(), "{back}");
    let r = Reply::read(attacker.post(&approve.action, &approve.fields).await).await;
    assert_no_redirect(&r, "the consent POST from another browser after approval");
}

/// H4: CORS answers only configured origins, echoed exactly with `Vary: Origin`, on the JSON
/// endpoints; unlisted origins get no `Access-Control-Allow-Origin`; the browser pages none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_echoes_only_allowed_origins() {
    let server = start_with(MOCK, "", "  allowedOrigins: ['https://app.test']\n");
    let c = http();
    let preflight = |path: &str, origin: &str, method: &str| {
        c.request(reqwest::Method::OPTIONS, format!("{}{path}", server.issuer))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization")
            .send()
    };
    for (path, method) in [("/token", "POST"), ("/keys", "GET"), ("/userinfo", "GET")] {
        for evil in ["https://evil.test", "https://app.test.evil.test", "null", "https://APP.TEST"] {
            let r = Reply::read(preflight(path, evil, method).await.unwrap()).await;
            assert!(
                r.header("access-control-allow-origin").is_none(),
                "{path}: origin {evil} allowed: {:?}",
                r.headers
            );
        }
        let r = Reply::read(preflight(path, "https://app.test", method).await.unwrap()).await;
        assert!(r.status < 300, "{path}: preflight of an allowed origin answered {}", r.status);
        assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("https://app.test"), "{path}");
        let vary: Vec<String> =
            r.headers.get_all("vary").iter().map(|v| v.to_str().unwrap().to_ascii_lowercase()).collect();
        assert!(vary.iter().any(|v| v.contains("origin")), "{path}: no Vary: Origin: {vary:?}");
    }

    // Actual requests.
    let r = Reply::read(
        c.get(format!("{}/keys", server.issuer)).header("origin", "https://app.test").send().await.unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("https://app.test"));
    assert!(
        r.headers.get_all("vary").iter().any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
    );
    let r = Reply::read(
        c.get(format!("{}/keys", server.issuer)).header("origin", "https://evil.test").send().await.unwrap(),
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none(), "/keys echoed an unlisted origin");
    let r = Reply::read(
        c.post(format!("{}/token", server.issuer))
            .header("origin", "https://app.test")
            .basic_auth(RP, Some(RP_SECRET))
            .form(&[("grant_type", "authorization_code"), ("code", "garbage"), ("redirect_uri", RP_CB)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("https://app.test"), "/token POST");
    assert!(
        r.headers.get_all("vary").iter().any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
    );

    // The browser pages answer no CORS, even for an allowed origin.
    for url in [Authz::code(RP, RP_CB).url(&server), format!("{}/device", server.issuer)] {
        let r = Reply::read(c.get(&url).header("origin", "https://app.test").send().await.unwrap()).await;
        assert!(r.header("access-control-allow-origin").is_none(), "{url} answers CORS");
        let r = Reply::read(
            c.request(reqwest::Method::OPTIONS, &url)
                .header("origin", "https://app.test")
                .header("access-control-request-method", "POST")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(r.header("access-control-allow-origin").is_none(), "{url} answers a CORS preflight");
    }
}

/// H4 without `allowedOrigins`: no origin at all is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_without_allowed_origins() {
    let server = start(MOCK, "");
    for path in ["/token", "/keys", "/.well-known/openid-configuration", "/userinfo"] {
        let r = Reply::read(
            http()
                .request(reqwest::Method::OPTIONS, format!("{}{path}", server.issuer))
                .header("origin", "https://evil.test")
                .header("access-control-request-method", "POST")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(r.header("access-control-allow-origin").is_none(), "{path}: {:?}", r.headers);
        let r = Reply::read(
            http()
                .get(format!("{}{path}", server.issuer))
                .header("origin", "https://evil.test")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(r.header("access-control-allow-origin").is_none(), "{path}: {:?}", r.headers);
    }
}

// ---------------------------------------------------------------------------------------------
// I. Client authentication and disabled grants.

/// I2: `client_secret_basic` and `client_secret_post` both work; a wrong secret, an unknown
/// client or a confidential client without a secret get 401 `invalid_client`, with
/// `WWW-Authenticate` when Basic was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_and_post_work_and_wrong_secrets_get_401() {
    let server = start(MOCK, "");
    let code = rp_code(&server).await;
    let r = redeem(&server, Auth::Basic(RP, RP_SECRET), &code, RP_CB).await;
    assert_eq!(r.status, 200, "client_secret_basic: {}", r.body);
    let code = rp_code(&server).await;
    let r = redeem(&server, Auth::Post(RP, RP_SECRET), &code, RP_CB).await;
    assert_eq!(r.status, 200, "client_secret_post: {}", r.body);

    let code = rp_code(&server).await;
    for (what, auth) in [
        ("wrong Basic secret", Auth::Basic(RP, "wrong")),
        ("Basic secret with an extra byte", Auth::Basic(RP, "rp-secretx")),
        ("Basic secret prefix", Auth::Basic(RP, "rp-secre")),
        ("Basic with another client's secret", Auth::Basic(RP, RP2_SECRET)),
        ("unknown Basic client", Auth::Basic("nobody", RP_SECRET)),
    ] {
        let r = redeem(&server, auth, &code, RP_CB).await;
        r.assert_error(401, "invalid_client");
        let challenge = r.header("www-authenticate").unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
        assert!(challenge.to_ascii_lowercase().starts_with("basic"), "{what}: {challenge}");
        assert!(!r.body.contains("rp-secret"), "{what}: the error echoes a secret: {}", r.body);
    }
    for (what, auth) in [
        ("wrong post secret", Auth::Post(RP, "wrong")),
        ("unknown post client", Auth::Post("nobody", RP_SECRET)),
        ("confidential client without a secret", Auth::Id(RP)),
        ("no client at all", Auth::Anonymous),
    ] {
        let r = redeem(&server, auth, &code, RP_CB).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(r.error(), "invalid_client", "{what}: {}", r.body);
    }
    // The code survived the failed authentications.
    let r = redeem(&server, Auth::Basic(RP, RP_SECRET), &code, RP_CB).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// I2: a public client has no secret: presenting one (claiming to be confidential) is a
/// mismatch with its registered authentication method (`none`) and gets `invalid_client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_client_cannot_authenticate_as_confidential() {
    let server = start(MOCK, "");
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let cb = "http://127.0.0.1:4711/cb";
    let url = Authz::code(NATIVE, cb).pkce(&challenge).url(&server);
    let browser = Browser::new(&server.issuer);
    let params = |code: &str| -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), cb.into()),
            ("code_verifier".into(), verifier.secret().clone()),
        ]
    };
    let code = browser.code(&url, None).await;
    for (what, auth) in
        [("Basic", Auth::Basic(NATIVE, "made-up-secret")), ("post", Auth::Post(NATIVE, "made-up-secret"))]
    {
        let p = params(&code);
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = token(&server, auth, &refs).await;
        assert_eq!(r.status, 401, "a public client authenticated with a {what} secret: {}", r.body);
        assert_eq!(r.error(), "invalid_client", "{}", r.body);
    }
}

/// I2: a public client cannot use a grant reserved to confidential clients
/// (`client_credentials`, here enabled explicitly), with or without a made-up secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_client_cannot_use_a_confidential_grant() {
    let server =
        start(MOCK, "oauth2:\n  grantTypes: [authorization_code, refresh_token, client_credentials]\n");
    let params = [("grant_type", "client_credentials"), ("scope", "openid")];
    let r = token(&server, Auth::Basic(RP, RP_SECRET), &params).await;
    assert_eq!(r.status, 200, "client_credentials for a confidential client: {}", r.body);
    for (what, auth) in [
        ("no secret", Auth::Id(NATIVE)),
        ("a made-up Basic secret", Auth::Basic(NATIVE, "made-up-secret")),
        ("a made-up post secret", Auth::Post(SPA, "made-up-secret")),
    ] {
        let r = token(&server, auth, &params).await;
        assert!(
            (r.status == 400 && r.error() == "unauthorized_client")
                || (r.status == 401 && r.error() == "invalid_client"),
            "a public client with {what} used client_credentials: {} {}",
            r.status,
            r.body
        );
        assert!(r.json().get("access_token").is_none());
    }
}

/// I5: the implicit flow and the password grant are off by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_and_password_grants_are_off_by_default() {
    let server = start(&format!("{MOCK}{}", password_db()), "");
    for rt in ["token", "id_token token", "id_token", "code token", "code id_token"] {
        let r = get(&Authz::code(RP, RP_CB).set("response_type", rt).url(&server)).await;
        assert_error_redirect(&r, &server, RP_CB, "unsupported_response_type");
    }
    let r = get(&Authz::code(RP, RP_CB).set("response_type", "code bogus").url(&server)).await;
    assert_error_redirect(&r, &server, RP_CB, "unsupported_response_type");

    let r = token(
        &server,
        Auth::Basic(RP, RP_SECRET),
        &[("grant_type", "password"), ("username", USER), ("password", PASSWORD), ("scope", "openid")],
    )
    .await;
    r.assert_error(400, "unsupported_grant_type");
    assert!(r.json().get("access_token").is_none());
    for grant in ["client_credentials", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "bogus"] {
        let r =
            token(&server, Auth::Basic(RP, RP_SECRET), &[("grant_type", grant), ("scope", "openid")]).await;
        assert_eq!(r.status, 400, "grant_type={grant}: {}", r.body);
        assert!(
            matches!(r.error().as_str(), "unsupported_grant_type" | "unauthorized_client"),
            "grant_type={grant}: {}",
            r.body
        );
    }
}

// ---------------------------------------------------------------------------------------------
// K. Passwords.

/// K2: 20 wrong passwords for one account lead to the throttled form ("try again in N s",
/// 429 with `Retry-After`), which refuses even the right password; after N s the right
/// password works again (no permanent lock-out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_throttle_the_account() {
    let server = start(&password_db(), "");
    let browser = Browser::new(&server.issuer);
    let page = browser.open(&Authz::code(RP, RP_CB).url(&server)).await.page();
    assert!(page.is_password_form(), "{}", page.html);
    let form = page.form(&browser.origin).with("login", USER);

    let mut throttled = None;
    for attempt in 1..=20 {
        let r = Reply::read(browser.post(&form.action, &form.clone().with("password", "wrong").fields).await)
            .await;
        assert!(r.header("location").is_none(), "attempt {attempt}: a wrong password logged in");
        assert!((400..500).contains(&r.status), "attempt {attempt}: {}", r.status);
        if r.body.contains("try again in") {
            throttled = Some((attempt, r));
            break;
        }
    }
    let (attempt, r) = throttled.expect("20 wrong passwords were not throttled");
    assert_eq!(r.status, 429, "the throttled form after {attempt} attempts");
    let wait: u64 = r.header("retry-after").expect("no Retry-After").parse().unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    let shown = r.body.split("try again in ").nth(1).and_then(|s| s.split(' ').next()).unwrap().to_owned();
    assert_eq!(shown.parse::<u64>().unwrap(), wait, "the page and Retry-After disagree");

    // While throttled, the right password is not even checked.
    let r =
        Reply::read(browser.post(&form.action, &form.clone().with("password", PASSWORD).fields).await).await;
    assert_eq!(r.status, 429, "the right password got through the throttle: {}", r.body);
    assert!(r.header("location").is_none());

    // After the wait, the right password works.
    assert!(wait <= 5, "the first delay is {wait} s");
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(300)).await;
    let r = browser.post(&form.action, &form.clone().with("password", PASSWORD).fields).await;
    assert!(matches!(r.status().as_u16(), 302 | 303), "the right password after the delay: {}", r.status());
}

/// K3: an unknown user and a wrong password for a known user get the same status and page
/// (apart from the prefilled username).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_look_the_same() {
    let server = start(&password_db(), "");
    let browser = Browser::new(&server.issuer);
    let page = browser.open(&Authz::code(RP, RP_CB).url(&server)).await.page();
    let form = page.form(&browser.origin).with("password", "wrong-password");

    let known = Reply::read(browser.post(&form.action, &form.clone().with("login", USER).fields).await).await;
    let nobody = "nobody@example.com";
    let unknown =
        Reply::read(browser.post(&form.action, &form.clone().with("login", nobody).fields).await).await;
    assert_eq!(known.status, unknown.status, "different statuses");
    assert!((400..500).contains(&known.status), "a wrong password answered {}", known.status);
    assert!(known.body.contains(USER), "the username is not prefilled; the comparison below is moot");
    let a = known.body.replace(USER, "USER");
    let b = unknown.body.replace(nobody, "USER");
    assert_eq!(a, b, "an unknown user and a wrong password give different pages");
    for h in ["content-type", "retry-after", "set-cookie"] {
        assert_eq!(known.header(h), unknown.header(h), "header {h} differs");
    }
}

// ---------------------------------------------------------------------------------------------
// Client mistakes are never server errors.

/// Malformed token requests (wrong method or content type, repeated or missing parameters,
/// garbage and huge values, broken encodings and credentials) all get a 4xx JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_token_requests_get_4xx_json_errors() {
    let server = start(MOCK, "");
    let url = format!("{}/token", server.issuer);
    let c = http();
    let huge = "a".repeat(100_000);
    let huge_b64 = "QUFB".repeat(25_000);
    let cb = url::form_urlencoded::byte_serialize(RP_CB.as_bytes()).collect::<String>();
    let ac = "grant_type=authorization_code";
    let rt = "grant_type=refresh_token";
    // A request with client_secret_basic.
    let basic = |r: reqwest::RequestBuilder| r.basic_auth(RP, Some(RP_SECRET));
    // A form POST with client_secret_basic.
    let form = |body: String| basic(c.post(&url)).header("content-type", FORM).body(body);
    // A form POST with this Authorization header (none if empty).
    let with_auth = |authorization: &str, body: &str| {
        let r = c.post(&url).header("content-type", FORM).body(body.to_owned());
        if authorization.is_empty() { r } else { r.header("authorization", authorization) }
    };
    let multipart =
        "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nauthorization_code\r\n--x--\r\n";
    let many: Vec<String> = (0..5000).map(|i| format!("p{i}=v")).collect();
    let exchange = "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=x&\
                    subject_token_type=y&connector_id=mock";

    let mut cases: Vec<(String, reqwest::RequestBuilder)> = vec![
        ("GET".into(), basic(c.get(&url))),
        ("PUT".into(), basic(c.put(&url)).header("content-type", FORM).body(ac)),
        (
            "JSON body".into(),
            basic(c.post(&url)).json(&serde_json::json!({"grant_type": "authorization_code"})),
        ),
        (
            "text/plain".into(),
            basic(c.post(&url)).header("content-type", "text/plain").body(format!("{ac}&code=x")),
        ),
        (
            "multipart".into(),
            basic(c.post(&url)).header("content-type", "multipart/form-data; boundary=x").body(multipart),
        ),
        ("no content type".into(), basic(c.post(&url)).body(format!("{ac}&code=x"))),
        ("empty body".into(), basic(c.post(&url)).header("content-type", FORM)),
        ("no body, no auth".into(), c.post(&url)),
        ("missing grant_type".into(), form(format!("code=x&redirect_uri={cb}"))),
        ("empty grant_type".into(), form("grant_type=&code=x".into())),
        ("repeated grant_type".into(), form(format!("{ac}&grant_type=refresh_token&code=x"))),
        ("repeated code".into(), form(format!("{ac}&code=a&code=b&redirect_uri={cb}"))),
        (
            "repeated client_id".into(),
            with_auth("", &format!("{ac}&code=a&client_id=rp&client_id=rp2&client_secret=x")),
        ),
        ("Basic and post secret".into(), form(format!("{ac}&code=a&client_id=rp&client_secret=rp-secret"))),
        ("Basic and another client_id".into(), form(format!("{ac}&code=a&client_id=rp2"))),
        ("garbage code".into(), form(format!("{ac}&code=%00%01garbage&redirect_uri={cb}"))),
        ("huge code".into(), form(format!("{ac}&code={huge}&redirect_uri={cb}"))),
        ("huge redirect_uri".into(), form(format!("{ac}&code=x&redirect_uri={huge}"))),
        ("huge grant_type".into(), form(format!("grant_type={huge}"))),
        ("huge parameter name".into(), form(format!("{ac}&{huge}=1"))),
        ("many parameters".into(), form(many.join("&"))),
        ("missing code".into(), form(format!("{ac}&redirect_uri={cb}"))),
        ("garbage refresh token".into(), form(format!("{rt}&refresh_token=garbage"))),
        ("base64 refresh token".into(), form(format!("{rt}&refresh_token=CgNhYmMSA2RlZg"))),
        ("huge refresh token".into(), form(format!("{rt}&refresh_token={huge_b64}"))),
        ("missing refresh token".into(), form(rt.into())),
        ("refresh with a bad scope".into(), form(format!("{rt}&refresh_token=garbage&scope=%22%00"))),
        ("unknown grant".into(), form("grant_type=urn:x:bogus".into())),
        (
            "device_code garbage".into(),
            form("grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x".into()),
        ),
        ("token exchange garbage".into(), form(exchange.into())),
        ("invalid percent escape".into(), form(format!("{ac}&code=%zz"))),
        ("truncated percent escape".into(), form(format!("{ac}&code=%4"))),
        ("percent-encoded non-UTF-8".into(), form(format!("{ac}&code=%ff%fe"))),
        (
            "raw non-UTF-8 body".into(),
            basic(c.post(&url)).header("content-type", FORM).body(vec![b'g', b'=', 0xff, 0xfe, 0x00]),
        ),
        ("Basic not base64".into(), with_auth("Basic !!!", &format!("{ac}&code=x"))),
        ("Basic without colon".into(), with_auth("Basic bm9jb2xvbg==", &format!("{ac}&code=x"))),
        ("Basic with bad escapes".into(), with_auth("Basic JXp6OiV6eg==", &format!("{ac}&code=x"))),
        ("Basic empty".into(), with_auth("Basic", &format!("{ac}&code=x"))),
        ("Bearer instead of client auth".into(), with_auth("Bearer abc", &format!("{ac}&code=x"))),
        (
            "huge Basic header".into(),
            with_auth(&format!("Basic {}", "QUFB".repeat(2000)), &format!("{ac}&code=x")),
        ),
    ];
    for value in ["\u{0}", "\u{202e}", "' OR 1=1 --", "../../etc/passwd", "<script>"] {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", value)
            .append_pair("redirect_uri", value)
            .append_pair("code_verifier", value)
            .finish();
        cases.push((format!("code {value:?}"), basic(c.post(&url)).header("content-type", FORM).body(body)));
    }

    let mut failures = Vec::new();
    for (what, req) in cases {
        let r = Reply::read(req.send().await.unwrap()).await;
        let json: Option<Value> = serde_json::from_str(&r.body).ok();
        let error = json.as_ref().and_then(|j| j["error"].as_str()).map(str::to_owned);
        let is_json = r.header("content-type").is_some_and(|v| v.starts_with("application/json"));
        if !(400..500).contains(&r.status) || error.is_none() || !is_json {
            let shown: String = r.body.chars().take(200).collect();
            failures.push(format!("{what}: {} {:?} {shown}", r.status, r.header("content-type")));
        }
        if let Some(e) = &error {
            assert!(e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{what}: error code {e:?}");
        }
        assert!(!r.body.contains(RP_SECRET), "{what}: the answer echoes the client secret");
    }
    assert!(failures.is_empty(), "not a 4xx JSON OAuth error:\n{}", failures.join("\n"));
}

/// A token request over the body limit is refused with a 4xx JSON OAuth error too (RFC 6749
/// §5.2), not the HTTP stack's plain-text answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_token_request_gets_a_4xx_json_error() {
    let server = start(MOCK, "");
    let body = format!("grant_type=authorization_code&code={}", "a".repeat(3 << 20));
    let r = Reply::read(
        http()
            .post(format!("{}/token", server.issuer))
            .basic_auth(RP, Some(RP_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!((400..500).contains(&r.status), "a 3 MiB body answered {}", r.status);
    let is_json = r.header("content-type").is_some_and(|v| v.starts_with("application/json"));
    let shown: String = r.body.chars().take(200).collect();
    assert!(is_json, "a 3 MiB body: {} {:?} {shown}", r.status, r.header("content-type"));
    assert!(r.json()["error"].is_string(), "{shown}");
}
