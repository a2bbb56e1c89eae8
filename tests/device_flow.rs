//! The OAuth 2.0 Device Authorization Grant (RFC 8628), tested black-box against `oxidex serve`
//! (rows F1 to F3 of the security checklist, and the device part of "every grant has a test"):
//!
//! 1. the happy path: `/device/code` and its response members, `authorization_pending`
//!    before approval, `slow_down` with the interval growing by 5 s per early poll, user-code
//!    entry on `/device` (typed sloppily), login, a consent page naming the client, tokens at the
//!    next poll (ID token verified against `/keys` for the client, access token, refresh token
//!    with `offline_access`, `Cache-Control: no-store`); the same on Postgres;
//! 2. single use of the device code (also under parallel polls) and of the user code;
//! 3. expiry (`expiry.deviceRequests`): `expired_token` at the token endpoint, and the user-code
//!    page refusing the code;
//! 4. denial on the consent page: `access_denied`;
//! 5. unknown device codes (`invalid_grant`), unknown or malformed user codes (an error page,
//!    never a 5xx), and the per-IP throttle on wrong user codes (which also holds back a right
//!    code until it ends, and which valid codes between guesses do not reset);
//! 6. client binding: another client cannot collect a device code's tokens; a confidential
//!    client must authenticate at `/device/code` and when polling (RFC 8628 §3.1, §3.4); the
//!    client secret never reaches the browser (Dex #4928);
//! 7. PKCE on the device flow, with a public client;
//! 8. discovery, and the device grant switched off in `oauth2.grantTypes`;
//! 9. the device flow's refresh token refreshes (only for its client), one per device (Dex #981);
//! 10. consent: always shown for a device (even with `skipApprovalScreen`), and bound to the
//!     browser that entered the user code (CSRF).
//!
//! Requests are raw HTTP so that every status, header and OAuth error code is asserted on; the
//! browser is [`Browser`] (one cookie jar each) driven by hand, recording every URL, `Location`
//! and page it sees, and checking the security headers of every page (checklist A6, H3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::str::FromStr as _;
use std::time::Duration;

use common::browser::{Browser, Page, absolute, location};
use common::http::{Auth, Reply, form_post, http};
use common::postgres::{fresh_database, url_or_skip};
use common::rp::DEX_SUB;
use common::{PASSWORD_HASH, Ports, Server, config, sqlite_storage};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, PkceCodeChallenge};
use reqwest::header::HeaderMap;
use serde_json::Value;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

const RP: &str = "rp";
const RP_NAME: &str = "Relying Party";
const RP_SECRET: &str = "rp-secret-Zq81vT";
const RP2: &str = "rp2";
const RP2_SECRET: &str = "rp2-secret-Wm40xK";
/// A public client (a CLI on a device).
const NATIVE: &str = "native";

const USER: &str = "admin@example.com";
const PASSWORD: &str = "password";

/// The alphabet of user codes (Dex's: consonants only).
const USER_CODE_ALPHABET: &str = "BCDFGHJKLMNPQRSTVWXZ";

const SCOPE: &str = "openid profile email offline_access";

fn clients() -> String {
    format!(
        "staticClients:\n\
         - id: {RP}\n  name: {RP_NAME}\n  secret: {RP_SECRET}\n  redirectURIs: ['https://rp.test/cb']\n\
         - id: {RP2}\n  name: Second RP\n  secret: {RP2_SECRET}\n  redirectURIs: ['https://rp2.test/cb']\n\
         - id: {NATIVE}\n  name: Native CLI\n  public: true\n"
    )
}

const MOCK: &str = "connectors:\n- type: mockCallback\n  id: mock\n  name: Mock\n";

fn password_db() -> String {
    format!(
        "enablePasswordDB: true\n\
         staticPasswords:\n- email: {USER}\n  hash: \"{PASSWORD_HASH}\"\n  username: admin\n  \
         userID: 08a8684b-db88-4b73-90a9-3cd1661f5466\n"
    )
}

/// A server on SQLite with the three clients, `identity` (connectors, password DB) and `extra`.
fn start(identity: &str, extra: &str) -> Server {
    let body = format!("{}{identity}{extra}", clients());
    Server::start(Ports::new(), move |dir, ports| config(ports, &sqlite_storage(dir), &body))
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

/// A form POST to `path` under the issuer with client authentication.
async fn post_form(server: &Server, path: &str, auth: Auth<'_>, params: &[(&str, &str)]) -> Reply {
    form_post(&http(), &format!("{}{path}", server.issuer), auth, params).await
}

async fn get(url: &str) -> Reply {
    Reply::read(http().get(url).send().await.unwrap()).await
}

async fn discovery(server: &Server) -> Value {
    let r = get(&format!("{}/.well-known/openid-configuration", server.issuer)).await;
    r.assert_ok("discovery");
    r.json()
}

/// What `/device/code` handed out.
#[derive(Debug, Clone)]
struct Device {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: i64,
    interval: i64,
}

/// `POST /device/code`.
async fn device_authorization(server: &Server, auth: Auth<'_>, params: &[(&str, &str)]) -> Reply {
    post_form(server, "/device/code", auth, params).await
}

/// A device authorization that must succeed.
async fn start_device(server: &Server, auth: Auth<'_>, params: &[(&str, &str)]) -> Device {
    Device::from_reply(&device_authorization(server, auth, params).await)
}

impl Device {
    /// The members of a successful `/device/code` response.
    #[track_caller]
    fn from_reply(r: &Reply) -> Self {
        r.assert_ok("/device/code");
        Device {
            device_code: r.field("device_code"),
            user_code: r.field("user_code"),
            verification_uri: r.field("verification_uri"),
            verification_uri_complete: r.field("verification_uri_complete"),
            expires_in: r.int("expires_in"),
            interval: r.int("interval"),
        }
    }
}

/// One poll of the token endpoint with the device code (and `extra` parameters).
async fn poll(server: &Server, auth: Auth<'_>, device_code: &str, extra: &[(&str, &str)]) -> Reply {
    let mut params = vec![("grant_type", GRANT), ("device_code", device_code)];
    params.extend_from_slice(extra);
    post_form(server, "/token", auth, &params).await
}

async fn refresh(server: &Server, auth: Auth<'_>, refresh_token: &str) -> Reply {
    post_form(server, "/token", auth, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
        .await
}

// ---------------------------------------------------------------------------------------------
// The browser side: a `Browser` driven by hand, recording everything it is shown.

/// A browser on the device pages that records every URL it visits, every `Location` it is
/// sent to and every page body, so that a test can check what reached the browser.
struct DeviceBrowser {
    browser: Browser,
    seen: std::sync::Mutex<Vec<String>>,
}

impl DeviceBrowser {
    fn new(server: &Server) -> Self {
        Self { browser: Browser::new(&server.issuer), seen: std::sync::Mutex::new(Vec::new()) }
    }

    fn record(&self, s: impl Into<String>) {
        self.seen.lock().unwrap().push(s.into());
    }

    /// Everything this browser saw.
    fn seen(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    /// Follows the provider's redirects from `response` (fetched from `url`) to a page.
    async fn follow(&self, mut response: reqwest::Response, mut url: String) -> Page {
        for _ in 0..16 {
            let status = response.status();
            if status.is_redirection() {
                let loc = location(response.headers()).unwrap_or_else(|| panic!("{status} without Location"));
                self.record(format!("Location: {loc}"));
                let loc = absolute(&self.browser.origin, &loc);
                assert!(
                    loc.starts_with(&format!("{}/", self.browser.issuer)),
                    "the device flow left the provider for {loc}"
                );
                url = loc;
                self.record(format!("GET {url}"));
                response = self.browser.get(&url).await;
                continue;
            }
            let headers = response.headers().clone();
            let html = response.text().await.unwrap();
            assert_page_headers(&headers, &url);
            self.record(html.clone());
            return Page { status, headers, url, html };
        }
        panic!("more than 16 redirects inside the provider");
    }

    async fn open(&self, url: &str) -> Page {
        self.record(format!("GET {url}"));
        let response = self.browser.get(url).await;
        self.follow(response, url.to_owned()).await
    }

    async fn post(&self, url: &str, fields: &[(String, String)]) -> Page {
        self.record(format!("POST {url} {fields:?}"));
        let response = self.browser.post(url, fields).await;
        self.follow(response, url.to_owned()).await
    }

    /// Opens `/device` (the user-code form) and submits `typed` as the user code.
    async fn enter_code(&self, server: &Server, typed: &str) -> Page {
        let page = self.open(&format!("{}/device", server.issuer)).await;
        assert_eq!(page.status, 200, "the /device page: {}", page.html);
        let form = page.form(&self.browser.origin).with("user_code", typed);
        assert_eq!(form.action, format!("{}/device/auth/verify_code", server.issuer));
        self.post(&form.action, &form.fields).await
    }

    /// From an entered user code to the consent page, logging in at a password form.
    async fn until_approval(&self, mut page: Page) -> Page {
        for _ in 0..3 {
            assert_eq!(page.status, 200, "the device login stopped at {}:\n{}", page.url, page.html);
            if page.is_approval() {
                return page;
            }
            assert!(page.is_password_form(), "unexpected page at {}:\n{}", page.url, page.html);
            let form = page.form(&self.browser.origin).with("login", USER).with("password", PASSWORD);
            self.record(format!("POST {} {:?}", form.action, form.fields));
            let response = self.browser.post(&form.action, &form.fields).await;
            assert_eq!(response.status(), 303, "the login POST");
            page = self.follow(response, form.action.clone()).await;
        }
        panic!("no consent page");
    }

    /// Answers the consent page (`approve` or `rejected`) and returns the page that follows.
    async fn decide(&self, approval: &Page, decision: &str) -> Page {
        let form = approval.form(&self.browser.origin).with("approval", decision);
        self.post(&form.action, &form.fields).await
    }

    /// The whole browser side for a user code: enter, log in, approve; asserts the success page.
    async fn approve(&self, server: &Server, user_code: &str) {
        let entered = self.enter_code(server, user_code).await;
        let approval = self.until_approval(entered).await;
        let done = self.decide(&approval, "approve").await;
        assert_eq!(done.status, 200, "after approval: {}", done.html);
        assert!(done.url.starts_with(&format!("{}/device/callback?", server.issuer)), "{}", done.url);
        assert!(done.html.contains("Return to your device"), "no success page:\n{}", done.html);
    }
}

/// Asserts the headers every page of the flow carries (checklist A6, H3): no referrer, no
/// framing, no caching, no CORS.
#[track_caller]
fn assert_page_headers(headers: &HeaderMap, what: &str) {
    let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("referrer-policy").as_deref(), Some("no-referrer"), "{what}: Referrer-Policy");
    assert_eq!(h("x-frame-options").map(|v| v.to_ascii_uppercase()).as_deref(), Some("DENY"), "{what}");
    let csp = h("content-security-policy").unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: CSP without frame-ancestors 'none': {csp}");
    assert!(h("cache-control").is_some_and(|c| c.contains("no-store")), "{what}: Cache-Control");
    assert!(h("access-control-allow-origin").is_none(), "{what}: a browser page answers CORS");
}

/// A device code of `rp` (mock connector, [`SCOPE`]) that the user has approved.
async fn approved_device(server: &Server) -> Device {
    let device = start_device(server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    DeviceBrowser::new(server).approve(server, &device.user_code).await;
    device
}

// ---------------------------------------------------------------------------------------------
// Token helpers.

fn b64url_decode(s: &str) -> Vec<u8> {
    const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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

/// Verifies a JWT (ID token, or the JWT access token with the same claims) for `client_id`
/// against the server's `/keys` with the `openidconnect` crate (signature, `iss`, `aud`,
/// `exp`), and returns its claims.
async fn verified(server: &Server, client_id: &str, jwt: &str) -> Value {
    let keys = get(&format!("{}/keys", server.issuer)).await;
    keys.assert_ok("/keys");
    let jwks: CoreJsonWebKeySet = serde_json::from_str(&keys.body).unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_owned()),
        IssuerUrl::new(server.issuer.clone()).unwrap(),
        jwks,
    );
    let parsed = CoreIdToken::from_str(jwt).unwrap_or_else(|e| panic!("not a JWT: {e}"));
    if let Err(e) = parsed.claims(&verifier, |_: Option<&openidconnect::Nonce>| Ok(())) {
        panic!("the token does not verify for {client_id}: {e}\n{}", jwt_claims(jwt));
    }
    jwt_claims(jwt)
}

/// Asserts a successful token response of the device grant for `client_id`, with a refresh
/// token exactly when `offline` and returns it.
async fn assert_tokens(server: &Server, r: &Reply, client_id: &str, offline: bool) -> Value {
    r.assert_ok("the device token response");
    r.assert_no_store("the device token response");
    assert_eq!(r.field("token_type").to_ascii_lowercase(), "bearer", "{}", r.body);
    assert!(r.int("expires_in") > 0, "{}", r.body);
    assert_eq!(r.has("refresh_token"), offline, "refresh token with offline_access = {offline}: {}", r.body);
    let id = verified(server, client_id, &r.field("id_token")).await;
    let access = verified(server, client_id, &r.field("access_token")).await;
    assert_eq!(id["sub"], access["sub"], "ID and access token for different users");
    assert!(id.get("nonce").is_none(), "a device ID token with a nonce: {id}");
    id
}

// ---------------------------------------------------------------------------------------------
// 1. The happy path.

/// RFC 8628 §3.2 to §3.5 end to end, with the password connector: the response of
/// `/device/code`, `authorization_pending` before the user is done, `slow_down` for a poll
/// inside the interval (which grows by 5 s for every early poll, announced in `Retry-After`),
/// the user-code page, login and a consent page that names the client, then tokens for the
/// client at the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_polls_until_the_user_approves_then_issues_tokens() {
    let server = start(&password_db(), "");
    let r = device_authorization(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    r.assert_no_store("the device authorization response");
    let d = Device::from_reply(&r);

    // §3.2: the members, and Dex's formats.
    assert_eq!(d.verification_uri, format!("{}/device", server.issuer));
    assert_eq!(d.verification_uri_complete, format!("{}?user_code={}", d.verification_uri, d.user_code));
    assert_eq!(d.expires_in, 300, "expiry.deviceRequests defaults to 5m");
    assert_eq!(d.interval, 5);
    let (head, tail) = d.user_code.split_once('-').unwrap_or_else(|| panic!("user code {:?}", d.user_code));
    assert!(
        head.len() == 4
            && tail.len() == 4
            && (head.chars().chain(tail.chars())).all(|c| USER_CODE_ALPHABET.contains(c)),
        "user code {:?} is not XXXX-XXXX of {USER_CODE_ALPHABET}",
        d.user_code
    );
    // At least 128 bits: 22 characters of base64url, or 32 hex digits.
    assert!(d.device_code.len() >= 22, "device code {:?} is too short", d.device_code);
    let other = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    assert_ne!(other.device_code, d.device_code);
    assert_ne!(other.user_code, d.user_code);

    // Before the user acts. The interval counts from the device authorization, so the first
    // poll waits for it (§3.4: the client SHOULD wait `interval` seconds between requests).
    let auth = Auth::Basic(RP, RP_SECRET);
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let r = poll(&server, auth, &d.device_code, &[]).await;
    r.assert_error(400, "authorization_pending");
    r.assert_no_store("authorization_pending");
    // At once again: slow_down, and the interval is now 10 s (§3.5).
    let r = poll(&server, auth, &d.device_code, &[]).await;
    r.assert_error(400, "slow_down");
    assert_eq!(r.header("retry-after").as_deref(), Some("10"), "the grown interval");
    // 6 s later is inside the grown interval: slow_down again, the interval now 15 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = poll(&server, auth, &d.device_code, &[]).await;
    r.assert_error(400, "slow_down");
    assert_eq!(r.header("retry-after").as_deref(), Some("15"), "the interval grows by 5 s each time");

    // The user: the verification_uri_complete prefills the code, typed sloppily it works too.
    let browser = DeviceBrowser::new(&server);
    let prefilled = browser.open(&d.verification_uri_complete).await;
    assert_eq!(prefilled.status, 200, "{}", prefilled.html);
    assert!(prefilled.html.contains(&format!("value=\"{}\"", d.user_code)), "{}", prefilled.html);
    let typed = d.user_code.to_lowercase().replace('-', " ");
    let login = browser.enter_code(&server, &format!(" {typed} ")).await;
    assert!(login.is_password_form(), "no password form after the user code:\n{}", login.html);
    let approval = browser.until_approval(login).await;
    // §5.4: the consent page names the client, so the user sees which device they let in.
    assert!(approval.html.contains(RP_NAME), "the consent page does not name the client:\n{}", approval.html);
    // Still pending while the consent page is open (the interval is 15 s now: slow_down counts).
    let r = poll(&server, auth, &d.device_code, &[]).await;
    assert!(matches!(r.error().as_str(), "authorization_pending" | "slow_down"), "{}", r.body);
    let done = browser.decide(&approval, "approve").await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.html.contains(RP_NAME), "the success page does not name the client:\n{}", done.html);

    // The device collects the tokens at its next poll, whatever the interval.
    let r = poll(&server, auth, &d.device_code, &[]).await;
    let id = assert_tokens(&server, &r, RP, true).await;
    assert_eq!(id["sub"], DEX_SUB, "the password user's Dex sub");
    assert_eq!(id["email"], USER);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], "admin");
    // The access token is good at /userinfo.
    let u = Reply::read(
        http()
            .get(format!("{}/userinfo", server.issuer))
            .bearer_auth(r.field("access_token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    u.assert_ok("userinfo with the device access token");
    assert_eq!(u.json()["email"], USER);

    // The other device code was never approved.
    let r = poll(&server, auth, &other.device_code, &[]).await;
    assert!(matches!(r.error().as_str(), "authorization_pending" | "slow_down"), "{}", r.body);
}

/// The device flow on Postgres: the device token's state changes are compare-and-swap updates
/// there too (approve; ten parallel polls collect once, the rest `invalid_grant`, no 5xx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_on_postgres() {
    let Some(url) = url_or_skip("device_flow_on_postgres") else { return };
    let db = fresh_database(&url, "device").await;
    let storage = db.storage_yaml();
    let body = format!("{}{MOCK}", clients());
    let server = Server::start(Ports::new(), move |_, ports| config(ports, &storage, &body));
    let d = approved_device(&server).await;
    let polls = (0..10).map(|_| poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]));
    let replies = futures::future::join_all(polls).await;
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "{:?}", replies.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>());
    assert_tokens(&server, ok[0], RP, true).await;
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_error(400, "invalid_grant");
    }
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    r.assert_error(400, "invalid_grant");
    drop(server);
    db.drop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Single use.

/// F3: once the tokens were collected, the device code is spent (`invalid_grant`, RFC 6749
/// §5.2), however often it is polled; the user code cannot be entered again, and a second
/// tab's consent for the same user code is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_and_user_code_are_single_use() {
    let server = start(MOCK, "");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let browser = DeviceBrowser::new(&server);
    let first = browser.until_approval(browser.enter_code(&server, &d.user_code).await).await;
    let second = browser.until_approval(browser.enter_code(&server, &d.user_code).await).await;
    let done = browser.decide(&first, "approve").await;
    assert_eq!(done.status, 200, "{}", done.html);
    let late = browser.decide(&second, "approve").await;
    assert!((400..500).contains(&late.status.as_u16()), "the second tab: {}\n{}", late.status, late.html);
    assert!(!late.html.contains("Return to your device"), "{}", late.html);
    let auth = Auth::Basic(RP, RP_SECRET);
    let r = poll(&server, auth, &d.device_code, &[]).await;
    assert_tokens(&server, &r, RP, true).await;
    for _ in 0..2 {
        let r = poll(&server, auth, &d.device_code, &[]).await;
        r.assert_error(400, "invalid_grant");
    }
    let page = DeviceBrowser::new(&server).enter_code(&server, &d.user_code).await;
    assert_eq!(page.status, 400, "a used user code:\n{}", page.html);
    assert!(page.html.contains("Invalid or expired code"), "{}", page.html);
    assert!(!page.is_approval() && !page.is_password_form(), "{}", page.html);
}

/// Parallel polls of one approved device code: exactly one gets tokens, the others
/// `invalid_grant`, none a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_polls_collect_the_tokens_once() {
    let server = start(MOCK, "");
    let d = approved_device(&server).await;
    let polls = (0..10).map(|_| poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]));
    let replies = futures::future::join_all(polls).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "{:?}", replies.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>());
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_error(400, "invalid_grant");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Expiry.

/// F2: `expiry.deviceRequests` sets `expires_in`; past it the device gets `expired_token`
/// (RFC 8628 §3.5) and the user-code page refuses the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_device_codes_give_expired_token_and_the_page_refuses_the_user_code() {
    let server = start(MOCK, "expiry:\n  deviceRequests: 2s\n");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    assert_eq!(d.expires_in, 2);
    // An approved code expires too, if the device never collects it.
    let approved = approved_device(&server).await;
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    for code in [&d.device_code, &approved.device_code] {
        let r = poll(&server, Auth::Basic(RP, RP_SECRET), code, &[]).await;
        r.assert_error(400, "expired_token");
    }
    let page = DeviceBrowser::new(&server).enter_code(&server, &d.user_code).await;
    assert_eq!(page.status, 400, "an expired user code:\n{}", page.html);
    assert!(page.html.contains("Invalid or expired code"), "{}", page.html);
    assert!(!page.is_approval(), "{}", page.html);
}

/// A user who entered the code in time but approves after the device code expired gets an
/// error page (no 5xx), and the device gets `expired_token`, not tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_after_expiry_issues_nothing() {
    let server = start(MOCK, "expiry:\n  deviceRequests: 2s\n");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let browser = DeviceBrowser::new(&server);
    let entered = browser.enter_code(&server, &d.user_code).await;
    let approval = browser.until_approval(entered).await;
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let page = browser.decide(&approval, "approve").await;
    assert!(
        (400..500).contains(&page.status.as_u16()),
        "approval after expiry: {}\n{}",
        page.status,
        page.html
    );
    assert!(!page.html.contains("Return to your device"), "{}", page.html);
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    r.assert_error(400, "expired_token");
}

// ---------------------------------------------------------------------------------------------
// 4. Denial.

/// The user cancels on the consent page: the device gets `access_denied` (RFC 8628 §3.5),
/// at every further poll, and the user code is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_consent_gives_access_denied() {
    let server = start(MOCK, "");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let browser = DeviceBrowser::new(&server);
    let entered = browser.enter_code(&server, &d.user_code).await;
    let approval = browser.until_approval(entered).await;
    let page = browser.decide(&approval, "rejected").await;
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("denied"), "{}", page.html);
    for _ in 0..2 {
        let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
        r.assert_error(400, "access_denied");
    }
    let page = DeviceBrowser::new(&server).enter_code(&server, &d.user_code).await;
    assert_eq!(page.status, 400, "a denied user code:\n{}", page.html);
    assert!(!page.is_approval(), "{}", page.html);
}

// ---------------------------------------------------------------------------------------------
// 5. Unknown codes and the user-code throttle.

/// A device code the server never issued (or a mangled one) is `invalid_grant`; none at all
/// is `invalid_request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_device_codes_are_invalid_grant() {
    let server = start(MOCK, "");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let auth = Auth::Basic(RP, RP_SECRET);
    let mangled = format!("{}x", &d.device_code[..d.device_code.len() - 1]);
    for code in ["x", "0123456789abcdefghijklmnopqrstuv", mangled.as_str(), d.user_code.as_str()] {
        let r = poll(&server, auth, code, &[]).await;
        r.assert_error(400, "invalid_grant");
    }
    let r = post_form(&server, "/token", auth, &[("grant_type", GRANT)]).await;
    r.assert_error(400, "invalid_request");
    // The real code is untouched by all that.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    poll(&server, auth, &d.device_code, &[]).await.assert_error(400, "authorization_pending");
}

/// F1 / K2: wrong or malformed user codes re-render the form with an error (400, never a
/// 5xx); from the sixth wrong code on one IP the form is throttled (429 with `Retry-After`),
/// and during the lockout even the right code is refused; after it, the right code works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_user_codes_show_an_error_and_are_throttled_per_ip() {
    let server = start(MOCK, "");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let browser = DeviceBrowser::new(&server);
    // A well-formed code nobody was given (from the alphabet, not d's).
    let unknown = if d.user_code == "BCDF-GHJK" { "KJHG-FDCB" } else { "BCDF-GHJK" };
    let wrong = [unknown, "hello", "AEIO-UAEI", "", "BCDF-GHJK-LMNP", "<script>x</script>"];
    for typed in wrong {
        let page = browser.enter_code(&server, typed).await;
        assert_eq!(page.status, 400, "user code {typed:?}:\n{}", page.html);
        assert!(page.html.contains("Invalid or expired code"), "user code {typed:?}:\n{}", page.html);
        assert!(!page.html.contains("<script>x"), "the typed code is not escaped:\n{}", page.html);
        assert!(!page.is_approval() && !page.is_password_form(), "{}", page.html);
    }
    // The prefill of the entry page is escaped too.
    let page =
        browser.open(&format!("{}/device?user_code=%22%3E%3Cscript%3Ex%3C/script%3E", server.issuer)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(!page.html.contains("<script>x"), "the prefilled code is not escaped:\n{}", page.html);
    // Six failures: the sixth blocked the IP's user-code entry for a while.
    let page = browser.enter_code(&server, unknown).await;
    assert_eq!(page.status, 429, "the seventh wrong code:\n{}", page.html);
    let retry: u64 = page
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a 429 without Retry-After: {:?}", page.headers));
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(page.html.contains("Too many attempts"), "{}", page.html);
    // Another browser on the same IP is throttled as well, even with the right code.
    let page = DeviceBrowser::new(&server).enter_code(&server, &d.user_code).await;
    assert_eq!(page.status, 429, "the right code during the lockout:\n{}", page.html);
    assert!(!page.is_approval() && !page.is_password_form(), "{}", page.html);

    tokio::time::sleep(Duration::from_millis(retry * 1000 + 200)).await;
    let page = browser.enter_code(&server, &d.user_code).await;
    assert!(page.is_approval(), "the right code after the lockout:\n{}", page.html);
}

/// F1: a guesser cannot dodge the backoff by entering a valid code of their own between
/// guesses: that clears the per-IP backoff, but not the IP's budget of 20 failures per window,
/// after which every code from the IP is refused (429) for the rest of the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_codes_between_guesses_do_not_reset_the_ip_budget() {
    let server = start(MOCK, "");
    let own = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let victim = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let guesser = DeviceBrowser::new(&server);
    let mut wrong = ["BCDF-GHJK", "KJHG-FDCB", "LMNP-QRST", "TSRQ-PNML", "VWXZ-BCDF"].into_iter().cycle();
    for round in 0..4 {
        for _ in 0..5 {
            let guess = wrong.next().unwrap();
            let page = guesser.enter_code(&server, guess).await;
            assert_eq!(page.status, 400, "round {round}, guess {guess}:\n{}", page.html);
        }
        let page = guesser.enter_code(&server, &own.user_code).await;
        if round < 3 {
            assert!(page.is_approval(), "round {round}: the guesser's own code:\n{}", page.html);
        } else {
            assert_eq!(page.status, 429, "after 20 failures, the guesser's own code:\n{}", page.html);
        }
    }
    let page = DeviceBrowser::new(&server).enter_code(&server, &victim.user_code).await;
    assert_eq!(page.status, 429, "after 20 failures from the IP, the victim's code:\n{}", page.html);
    let retry: u64 = page.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 60, "the IP block ends with the window, not after a short backoff: {retry} s");
}

/// The device pages' other entry points with garbage: never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_callback_with_garbage_is_a_4xx_page() {
    let server = start(MOCK, "");
    let d = approved_device(&server).await;
    let b = DeviceBrowser::new(&server);
    for q in ["", "?code=x", &format!("?code=x&state={}", d.user_code), "?state=%ff%fe"] {
        let page = b.open(&format!("{}/device/callback{q}", server.issuer)).await;
        assert!(
            (400..500).contains(&page.status.as_u16()),
            "/device/callback{q}: {}\n{}",
            page.status,
            page.html
        );
    }
    // The device still collects its tokens.
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    assert_tokens(&server, &r, RP, true).await;
}

/// The login of one device request cannot complete another: the browser's callback for user
/// code A, with its `state` changed to user code B of the same client, completes neither (B
/// stays pending and gets none of A's scopes), and is a 4xx page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_login_completes_only_its_own_device_request() {
    let server = start(MOCK, "");
    let a = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let b = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", "openid")]).await;
    let browser = DeviceBrowser::new(&server);
    let entered = browser.enter_code(&server, &a.user_code).await;
    let approval = browser.until_approval(entered).await;
    let form = approval.form(&browser.browser.origin).with("approval", "approve");
    let r = browser.browser.post(&form.action, &form.fields).await;
    assert_eq!(r.status(), 303, "the approval POST");
    let callback = absolute(&browser.browser.origin, &location(r.headers()).unwrap());
    let mut swapped = url::Url::parse(&callback).unwrap();
    assert_eq!(swapped.path(), "/dex/device/callback", "{callback}");
    let pairs: Vec<(String, String)> = swapped
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "state" { (k, b.user_code.clone()) } else { (k, v) })
        .collect();
    assert!(pairs.iter().any(|(k, _)| k == "state"), "{callback}");
    swapped.query_pairs_mut().clear().extend_pairs(&pairs);
    let page = browser.open(swapped.as_str()).await;
    assert!(
        (400..500).contains(&page.status.as_u16()),
        "the swapped callback: {}\n{}",
        page.status,
        page.html
    );
    assert!(!page.html.contains("Return to your device"), "{}", page.html);

    tokio::time::sleep(Duration::from_millis(5_200)).await;
    for d in [&a, &b] {
        let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
        r.assert_error(400, "authorization_pending");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Client binding and client authentication.

/// A device code belongs to the client that asked for it: another client polling it, with its
/// own valid credentials or only its id, gets `invalid_grant` and no tokens, and the code still
/// works for its client afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_client_cannot_collect_the_tokens() {
    let server = start(MOCK, "");
    let d = approved_device(&server).await;
    for auth in [Auth::Basic(RP2, RP2_SECRET), Auth::Post(RP2, RP2_SECRET), Auth::Id(RP2), Auth::Id(NATIVE)] {
        let r = poll(&server, auth, &d.device_code, &[]).await;
        r.assert_error(400, "invalid_grant");
    }
    let r = poll(&server, Auth::Post(RP, RP_SECRET), &d.device_code, &[]).await;
    assert_tokens(&server, &r, RP, true).await;
}

/// RFC 8628 §3.1 and §3.4: a confidential client authenticates at `/device/code` and again
/// when polling (RFC 6749 §3.2.1); without the secret, or with a wrong one, it gets
/// `invalid_client` (401) and the code is not spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_client_authenticates_at_both_endpoints() {
    let server = start(MOCK, "");
    for auth in [Auth::Id(RP), Auth::Basic(RP, "wrong"), Auth::Post(RP, "wrong"), Auth::Anonymous] {
        let r = device_authorization(&server, auth, &[("scope", SCOPE)]).await;
        r.assert_error(401, "invalid_client");
        assert!(!r.has("device_code"), "{}", r.body);
    }
    let d = approved_device(&server).await;
    for auth in [Auth::Id(RP), Auth::Anonymous, Auth::Basic(RP, "wrong"), Auth::Post(RP, RP2_SECRET)] {
        let r = poll(&server, auth, &d.device_code, &[]).await;
        r.assert_error(401, "invalid_client");
    }
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    assert_tokens(&server, &r, RP, true).await;
}

/// Dex #4928: the client secret never travels through the browser: not in any URL, redirect
/// or page of the whole flow (entry, login, consent, callback, success), for either way of
/// authenticating at `/device/code`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_secret_never_reaches_the_browser() {
    let server = start(&format!("{}{MOCK}", password_db()), "");
    for auth in [Auth::Basic(RP, RP_SECRET), Auth::Post(RP, RP_SECRET)] {
        let d = start_device(&server, auth, &[("scope", SCOPE)]).await;
        let browser = DeviceBrowser::new(&server);
        let chooser = browser.enter_code(&server, &d.user_code).await;
        // Two connectors: the chooser; take the password one.
        let login_link = common::browser::links(&chooser.html)
            .into_iter()
            .find(|l| l.contains("/auth/local"))
            .unwrap_or_else(|| panic!("no link to the password connector:\n{}", chooser.html));
        let login = browser.open(&absolute(&browser.browser.origin, &login_link)).await;
        let approval = browser.until_approval(login).await;
        let done = browser.decide(&approval, "approve").await;
        assert_eq!(done.status, 200, "{}", done.html);
        let seen = browser.seen();
        assert!(seen.contains("/device/callback?"), "the trail misses the callback:\n{seen}");
        for needle in [RP_SECRET, &RP_SECRET.replace('-', "%2D"), "client_secret"] {
            assert!(!seen.contains(needle), "{needle:?} reached the browser:\n{seen}");
        }
        // The device code is the device's: it never reaches the browser either.
        assert!(!seen.contains(&d.device_code), "the device code reached the browser:\n{seen}");
        let r = poll(&server, auth, &d.device_code, &[]).await;
        assert_tokens(&server, &r, RP, true).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 7. PKCE.

/// PKCE on the device flow (Dex: challenge at `/device/code`, verifier at the poll), here with
/// a public client identified by its id: no verifier or a wrong one is `invalid_grant` and
/// does not spend the code; the right one gets the tokens. `plain` is refused unless
/// configured; a verifier without a challenge is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_binds_the_device_code_to_the_verifier() {
    let server = start(MOCK, "");
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let r = device_authorization(
        &server,
        Auth::Id(NATIVE),
        &[("scope", "openid"), ("code_challenge", challenge.as_str()), ("code_challenge_method", "plain")],
    )
    .await;
    r.assert_error(400, "invalid_request");

    let d = start_device(
        &server,
        Auth::Id(NATIVE),
        &[("scope", SCOPE), ("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")],
    )
    .await;
    DeviceBrowser::new(&server).approve(&server, &d.user_code).await;
    let (_, other) = PkceCodeChallenge::new_random_sha256();
    let r = poll(&server, Auth::Id(NATIVE), &d.device_code, &[]).await;
    r.assert_error(400, "invalid_grant");
    let r = poll(&server, Auth::Id(NATIVE), &d.device_code, &[("code_verifier", other.secret())]).await;
    r.assert_error(400, "invalid_grant");
    let r = poll(&server, Auth::Id(NATIVE), &d.device_code, &[("code_verifier", verifier.secret())]).await;
    assert_tokens(&server, &r, NATIVE, true).await;
    let r = poll(&server, Auth::Id(NATIVE), &d.device_code, &[("code_verifier", verifier.secret())]).await;
    r.assert_error(400, "invalid_grant");

    // A verifier for a device code that had no challenge.
    let d = approved_device(&server).await;
    let r =
        poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[("code_verifier", verifier.secret())])
            .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(matches!(r.error().as_str(), "invalid_grant" | "invalid_request"), "{}", r.body);
}

/// A public client may run the whole device flow with its id alone (no secret exists); it may
/// not present a secret, and gets no refresh token without `offline_access`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_runs_the_device_flow_without_a_secret() {
    let server = start(MOCK, "");
    let r = device_authorization(&server, Auth::Post(NATIVE, "made-up"), &[("scope", "openid")]).await;
    r.assert_error(401, "invalid_client");
    let d = start_device(&server, Auth::Id(NATIVE), &[("scope", "openid email")]).await;
    DeviceBrowser::new(&server).approve(&server, &d.user_code).await;
    let r = poll(&server, Auth::Post(NATIVE, "made-up"), &d.device_code, &[]).await;
    r.assert_error(401, "invalid_client");
    let r = poll(&server, Auth::Id(NATIVE), &d.device_code, &[]).await;
    let id = assert_tokens(&server, &r, NATIVE, false).await;
    assert!(id.get("email").is_some(), "{id}");
}

// ---------------------------------------------------------------------------------------------
// 8. Discovery and the grant switched off.

/// Discovery advertises the device authorization endpoint and the device grant (on by default,
/// as in Dex); `/device/code` rejects a scope set without `openid` or with unknown scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_advertises_the_device_flow() {
    let server = start(MOCK, "");
    let meta = discovery(&server).await;
    assert_eq!(meta["device_authorization_endpoint"], format!("{}/device/code", server.issuer));
    let grants = meta["grant_types_supported"].as_array().unwrap();
    assert!(grants.iter().any(|g| g == GRANT), "{grants:?}");
    for scope in ["email profile", "openid bogus"] {
        let r = device_authorization(&server, Auth::Basic(RP, RP_SECRET), &[("scope", scope)]).await;
        r.assert_error(400, "invalid_scope");
    }
    // Only POST.
    let r = get(&format!("{}/device/code", server.issuer)).await;
    assert!((400..500).contains(&r.status), "GET /device/code: {} {}", r.status, r.body);
}

/// With the device grant left out of `oauth2.grantTypes`, discovery lists neither it nor the
/// device authorization endpoint,
/// `/device/code` answers `unauthorized_client` (RFC 6749 §5.2: the client may not use this
/// grant) and the token endpoint `unsupported_grant_type`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_device_grant_is_refused_and_not_advertised() {
    let server = start(MOCK, "oauth2:\n  grantTypes: [authorization_code, refresh_token]\n");
    let meta = discovery(&server).await;
    let grants = meta["grant_types_supported"].as_array().unwrap();
    assert!(!grants.iter().any(|g| g == GRANT), "{grants:?}");
    assert!(meta.get("device_authorization_endpoint").is_none(), "the endpoint is still advertised: {meta}");
    let r = device_authorization(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    r.assert_error(400, "unauthorized_client");
    assert!(!r.has("device_code") && !r.has("user_code"), "{}", r.body);
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), "any-device-code", &[]).await;
    r.assert_error(400, "unsupported_grant_type");
}

// ---------------------------------------------------------------------------------------------
// 9. The refresh token.

/// The device flow's refresh token refreshes for its client (new tokens for the same user,
/// rotated refresh token), and not for another client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_refresh_token_refreshes() {
    let server = start(MOCK, "");
    let d = approved_device(&server).await;
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    let id = assert_tokens(&server, &r, RP, true).await;
    let rt = r.field("refresh_token");

    let r = refresh(&server, Auth::Basic(RP2, RP2_SECRET), &rt).await;
    r.assert_error(400, "invalid_grant");
    let r = refresh(&server, Auth::Basic(RP, RP_SECRET), &rt).await;
    let refreshed = assert_tokens(&server, &r, RP, true).await;
    assert_eq!(refreshed["sub"], id["sub"]);
    let next = r.field("refresh_token");
    assert_ne!(next, rt, "the refresh token was not rotated");
    let r = refresh(&server, Auth::Basic(RP, RP_SECRET), &next).await;
    assert_tokens(&server, &r, RP, true).await;
}

/// Dex #981: every device login gets a refresh token of its own; two devices of one user and
/// client refresh independently, and revoking one (RFC 7009) leaves the other alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_one_user_keep_separate_refresh_tokens() {
    let server = start(MOCK, "");
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let d = approved_device(&server).await;
        let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
        assert_tokens(&server, &r, RP, true).await;
        tokens.push(r.field("refresh_token"));
    }
    assert_ne!(tokens[0], tokens[1]);
    for rt in &mut tokens {
        let r = refresh(&server, Auth::Basic(RP, RP_SECRET), rt).await;
        assert_tokens(&server, &r, RP, true).await;
        *rt = r.field("refresh_token");
    }
    let r = post_form(&server, "/token/revoke", Auth::Basic(RP, RP_SECRET), &[("token", &tokens[0])]).await;
    r.assert_ok("revoking the first device's refresh token");
    refresh(&server, Auth::Basic(RP, RP_SECRET), &tokens[0]).await.assert_error(400, "invalid_grant");
    let r = refresh(&server, Auth::Basic(RP, RP_SECRET), &tokens[1]).await;
    assert_tokens(&server, &r, RP, true).await;
}

// ---------------------------------------------------------------------------------------------
// 10. Consent: always asked, and bound to the browser (CSRF).

/// Dex's per-connector `grantTypes`: a device login offers only the connectors that allow the
/// device grant (with one, the browser goes straight to it; a web login likewise to its own),
/// and a connector restricted to other grants cannot be forced for a device login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_logins_offer_only_connectors_allowing_the_device_grant() {
    let connectors = format!(
        "connectors:\n\
         - type: mockCallback\n  id: web\n  name: Web\n  grantTypes: [authorization_code, refresh_token]\n\
         - type: mockCallback\n  id: tv\n  name: TV\n  grantTypes: ['{GRANT}', refresh_token]\n"
    );
    let server = start(&connectors, "");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let browser = DeviceBrowser::new(&server);
    let page = browser.enter_code(&server, &d.user_code).await;
    assert!(page.is_approval(), "the device login did not go straight to `tv`:\n{}", page.html);
    let done = browser.decide(&page, "approve").await;
    assert_eq!(done.status, 200, "{}", done.html);
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    let id = assert_tokens(&server, &r, RP, true).await;
    // Dex's `sub` is protobuf {1: user id, 2: connector id}: the login went through `tv`.
    let sub = b64url_decode(id["sub"].as_str().unwrap());
    assert!(sub.ends_with(b"\x12\x02tv"), "the device login used another connector: {id}");
    refresh(&server, Auth::Basic(RP, RP_SECRET), &r.field("refresh_token"))
        .await
        .assert_ok("refresh via `tv`");

    // The web login goes straight to `web` (`tv` does not allow the code grant).
    let mut auth = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
    auth.query_pairs_mut().extend_pairs([
        ("client_id", RP),
        ("redirect_uri", "https://rp.test/cb"),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st-1"),
    ]);
    let back = Browser::new(&server.issuer).authorize(auth.as_str(), None).await;
    assert!(back.as_str().starts_with("https://rp.test/cb?"), "{back}");
    drop(server);

    // With a third connector for every grant, the device chooser lists `tv` and `any`, not
    // `web`; and `web` forced for the device login is refused.
    let server = start(&format!("{connectors}- type: mockCallback\n  id: any\n  name: Any\n"), "");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let browser = DeviceBrowser::new(&server);
    let chooser = browser.enter_code(&server, &d.user_code).await;
    let links = common::browser::links(&chooser.html);
    let to = |id: &str| links.iter().find(|l| l.contains(&format!("/auth/{id}?req="))).cloned();
    assert!(to("tv").is_some() && to("any").is_some(), "the device chooser:\n{}", chooser.html);
    assert!(to("web").is_none(), "the device chooser offers `web`:\n{}", chooser.html);
    let forced = to("tv").unwrap().replace("/auth/tv?", "/auth/web?");
    let page = browser.open(&absolute(&browser.browser.origin, &forced)).await;
    assert_eq!(page.status, 403, "`web` for a device login:\n{}", page.html);
}

/// RFC 8628 §5.4 (remote phishing): the device consent page is shown even with
/// `oauth2.skipApprovalScreen: true`, so the user always sees which client they let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_consent_is_shown_even_when_approval_is_skipped() {
    let server = start(MOCK, "oauth2:\n  skipApprovalScreen: true\n");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let browser = DeviceBrowser::new(&server);
    let entered = browser.enter_code(&server, &d.user_code).await;
    assert!(entered.is_approval(), "no consent page for the device:\n{}", entered.html);
    assert!(entered.html.contains(RP_NAME), "{}", entered.html);
    let done = browser.decide(&entered, "approve").await;
    assert_eq!(done.status, 200, "{}", done.html);
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    assert_tokens(&server, &r, RP, true).await;
}

/// F3 / GHSA-vh7g: the consent step of a device login is bound to the browser that entered the
/// user code: another cookie jar can neither see the consent page nor post its form (approve
/// or deny), and the device stays pending until the right browser approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_consent_is_bound_to_the_browser_that_entered_the_code() {
    let server = start(MOCK, "");
    let d = start_device(&server, Auth::Basic(RP, RP_SECRET), &[("scope", SCOPE)]).await;
    let victim = DeviceBrowser::new(&server);
    let entered = victim.enter_code(&server, &d.user_code).await;
    let approval = victim.until_approval(entered).await;
    let form = approval.form(&victim.browser.origin);
    assert!(form.fields.iter().any(|(k, _)| k == "hmac"), "no hmac in the consent form: {:?}", form.fields);

    let attacker = DeviceBrowser::new(&server);
    // The attacker's jar has a browser cookie of its own.
    attacker.open(&format!("{}/device", server.issuer)).await;
    let page = attacker.open(&approval.url).await;
    assert!(!page.is_approval(), "another browser sees the consent page:\n{}", page.html);
    for decision in ["approve", "rejected"] {
        let f = form.clone().with("approval", decision);
        let r = attacker.browser.post(&f.action, &f.fields).await;
        let status = r.status().as_u16();
        let loc = location(r.headers());
        let body = r.text().await.unwrap();
        assert!((400..500).contains(&status), "{decision} from another browser: {status} {loc:?}\n{body}");
        assert!(loc.is_none(), "{decision} from another browser redirected to {loc:?}");
        assert!(!body.contains("Return to your device") && !body.contains("denied the device"), "{body}");
    }
    // Nothing happened to the device request.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[])
        .await
        .assert_error(400, "authorization_pending");

    // The victim's own consent still works, once.
    let done = victim.decide(&approval, "approve").await;
    assert_eq!(done.status, 200, "{}", done.html);
    let r = poll(&server, Auth::Basic(RP, RP_SECRET), &d.device_code, &[]).await;
    assert_tokens(&server, &r, RP, true).await;
    let again = victim.decide(&approval, "approve").await;
    assert!(
        (400..500).contains(&again.status.as_u16()),
        "a second approval: {}\n{}",
        again.status,
        again.html
    );
}
