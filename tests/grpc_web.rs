//! The login UI's gRPC-web endpoint against the real `oxidex serve`:
//! `{issuer}/grpc-web/oxidex.v1.Flow/<Method>`, called as a browser's `fetch` calls it (HTTP/1.1,
//! `application/grpc-web+proto`, the cookie and `Origin` headers).
//!
//! - A whole login (wrong password, right password, consent) over gRPC-web with the browser
//!   cookie ends at the client with a code that redeems at `/token`.
//! - The binding is the cookie's, never the message's: a `browser_secret` put into a message is
//!   overwritten (another browser's secret gets nowhere; without a cookie the call is refused
//!   with `FailedPrecondition`).
//! - Another `Origin` is refused with `PermissionDenied`; nothing here answers CORS.
//! - Only `oxidex.v1.Flow` is there: `api.Dex` is on no path of the web listener (gRPC-web or
//!   native gRPC), and `oxidex.v1.Token` is not reachable over gRPC-web (native gRPC for apps
//!   stays).
//! - Login throttling per client IP sees the connection's address (calls from 127.0.0.2 and
//!   127.0.0.3 are counted apart).
//! - Bad input is a status or a 4xx, never a crash.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;

use base64::Engine as _;
use common::browser::{absolute, form, location, query_param};
use common::grpc_web::{self, Answer, FAILED_PRECONDITION, PERMISSION_DENIED, UNIMPLEMENTED};
use common::rp::{CLIENT_ID, CLIENT_SECRET, EMAIL, PASSWORD, REDIRECT, static_setup};
use common::{Ports, Server, config, sqlite_storage};
use oxidex_proto::oxidex::v1 as pb;
use pb::flow_step::Step;

const VERIFIER: &str = "grpc-web-test-verifier-0123456789-abcdefghijklmnop";

fn s256(verifier: &str) -> String {
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13().unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(suite.common.hash_provider.hash(verifier.as_bytes()).as_ref())
}

async fn start() -> Server {
    tokio::task::spawn_blocking(|| {
        Server::start(Ports::new(), |dir, ports| config(ports, &sqlite_storage(dir), &static_setup()))
    })
    .await
    .unwrap()
}

/// A client that never follows redirects, its connections from `local` (a loopback address).
fn client_from(local: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local)
        .build()
        .unwrap()
}

/// A browser of the test: its cookie header, kept by hand so that tests can swap cookies.
struct Tab {
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Tab {
    fn new() -> Self {
        Self { http: client_from(None), cookie: None }
    }

    /// The cookie's value (the browser secret).
    fn secret(&self) -> String {
        self.cookie.as_deref().unwrap().strip_prefix("oxidex_browser=").unwrap().to_owned()
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let mut req = self.http.get(url);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(pair) = v.split(';').next().filter(|p| p.starts_with("oxidex_browser=")) {
                self.cookie = Some(pair.to_owned());
            }
        }
        r
    }

    /// Starts a login at `/auth` and follows the redirects to the password form; returns its
    /// request id.
    async fn start_login(&mut self, server: &Server) -> String {
        let mut url = format!(
            "{}/auth?client_id={CLIENT_ID}&redirect_uri={}&response_type=code&scope=openid+email&state=st\
             &code_challenge={}&code_challenge_method=S256",
            server.issuer,
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
            s256(VERIFIER)
        );
        for _ in 0..5 {
            let r = self.get(&url).await;
            if r.status().is_redirection() {
                url = absolute(&server.web, &location(r.headers()).unwrap());
                continue;
            }
            let html = r.text().await.unwrap();
            assert!(html.contains("name=\"password\""), "no password form at {url}:\n{html}");
            let (_, fields) = form(&html);
            return fields.into_iter().find(|(k, _)| k == "req").unwrap().1;
        }
        panic!("too many redirects from /auth");
    }

    /// A `PasswordLogin` over gRPC-web as [`Tab::call`], through a proxy that forwards
    /// `forwarded` in `X-Forwarded-For`.
    async fn call_forwarded(
        &self,
        server: &Server,
        forwarded: &str,
        message: &impl prost::Message,
    ) -> Answer {
        let req = self
            .http
            .post(format!("{}/grpc-web/oxidex.v1.Flow/PasswordLogin", server.issuer))
            .header("origin", &server.web)
            .header("x-forwarded-for", forwarded)
            .header("cookie", self.cookie.as_deref().unwrap_or_default());
        grpc_web::call(req, message).await
    }

    /// A gRPC-web call of `method` with this tab's cookie and the issuer's origin.
    async fn call(&self, server: &Server, method: &str, message: &impl prost::Message) -> Answer {
        let mut req = self
            .http
            .post(format!("{}/grpc-web/oxidex.v1.Flow/{method}", server.issuer))
            .header("origin", &server.web);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        grpc_web::call(req, message).await
    }
}

fn login(request_id: &str, username: &str, password: &str, browser_secret: &str) -> pb::PasswordLoginRequest {
    pb::PasswordLoginRequest {
        request_id: request_id.into(),
        connector_id: "local".into(),
        username: username.into(),
        password: password.into(),
        client_ip: "203.0.113.9".into(),
        browser_secret: browser_secret.into(),
    }
}

fn step(a: &Answer) -> Step {
    a.ok::<pb::FlowStep>().step.unwrap_or_else(|| panic!("a step without a step: {a:?}"))
}

fn redirect(a: &Answer) -> url::Url {
    match step(a) {
        Step::Redirect(r) => {
            url::Url::parse(&r.url).or_else(|_| url::Url::parse(&format!("http://h{}", r.url))).unwrap()
        }
        other => panic!("expected a redirect, got {other:?}"),
    }
}

/// Logs in over gRPC-web and returns the consent's request id and HMAC.
async fn log_in(tab: &Tab, server: &Server, request_id: &str) -> (String, String) {
    let a = tab.call(server, "PasswordLogin", &login(request_id, EMAIL, PASSWORD, "")).await;
    let to = redirect(&a);
    assert!(to.path().ends_with("/dex/approval"), "{to}");
    (query_param(&to, "req").unwrap(), query_param(&to, "hmac").unwrap())
}

/// Asks for the consent page's data over gRPC-web.
async fn get_approval(tab: &Tab, server: &Server, req: &str, hmac: &str, browser_secret: &str) -> Answer {
    let message = pb::ApprovalRequest {
        request_id: req.to_owned(),
        hmac: hmac.to_owned(),
        browser_secret: browser_secret.to_owned(),
    };
    tab.call(server, "GetApproval", &message).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_login_over_grpc_web_with_the_browser_cookie() {
    let server = start().await;
    let mut tab = Tab::new();
    let request_id = tab.start_login(&server).await;

    // A wrong password: the form again, with the error and the username kept.
    let a = tab.call(&server, "PasswordLogin", &login(&request_id, EMAIL, "wrong", "")).await;
    assert_eq!(a.http, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some(grpc_web::CONTENT_TYPE), "{a:?}");
    assert!(a.header("cache-control").is_some_and(|c| c.contains("no-store")), "{a:?}");
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{a:?}");
    assert!(a.header("access-control-allow-origin").is_none(), "no CORS: {a:?}");
    let Step::PasswordForm(f) = step(&a) else { panic!("{a:?}") };
    assert!(f.invalid && f.retry_after_seconds == 0, "{f:?}");
    assert_eq!((f.username.as_str(), f.request_id.as_str()), (EMAIL, request_id.as_str()));

    // The right one, then the consent page's data and the approval.
    let (req, hmac) = log_in(&tab, &server, &request_id).await;
    let a = get_approval(&tab, &server, &req, &hmac, "").await;
    let Step::Approval(approval) = step(&a) else { panic!("{a:?}") };
    assert_eq!(approval.client.unwrap().id, CLIENT_ID);
    let a = tab
        .call(
            &server,
            "Approve",
            &pb::ApproveRequest { request_id: req, hmac, approve: true, browser_secret: String::new() },
        )
        .await;
    let back = redirect(&a);
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("st"));
    let code = query_param(&back, "code").unwrap();

    // The code is a real one.
    let token = common::http::form_post(
        &common::http::http(),
        &format!("{}/token", server.issuer),
        common::http::Auth::Basic(CLIENT_ID, CLIENT_SECRET),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    token.assert_ok("the code of a gRPC-web login");
    assert!(!token.field("id_token").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_binds_the_call_never_the_message() {
    let server = start().await;
    let mut victim = Tab::new();
    let request_id = victim.start_login(&server).await;
    let victim_secret = victim.secret();

    // No cookie at all: refused, even with the victim's secret in the message.
    let mut attacker = Tab::new();
    let a =
        attacker.call(&server, "PasswordLogin", &login(&request_id, EMAIL, PASSWORD, &victim_secret)).await;
    a.assert_status(FAILED_PRECONDITION);
    assert_eq!(a.message, "browser binding cookie missing; reload the page");

    // The attacker's own cookie (any flow page sets one) plus the victim's secret in the
    // message: the cookie wins, so the victim's request is not this browser's.
    attacker.get(&format!("{}/device", server.issuer)).await;
    assert_ne!(attacker.secret(), victim_secret);
    let a =
        attacker.call(&server, "PasswordLogin", &login(&request_id, EMAIL, PASSWORD, &victim_secret)).await;
    let Step::Error(e) = step(&a) else { panic!("another browser's request accepted a login: {a:?}") };
    assert_eq!(e.code, "stale_request", "{e:?}");

    // The consent likewise (Dex GHSA-vh7g: bound to the browser and the request's HMAC).
    let (req, hmac) = log_in(&victim, &server, &request_id).await;
    let approve = pb::ApproveRequest {
        request_id: req.clone(),
        hmac: hmac.clone(),
        approve: true,
        browser_secret: victim_secret.clone(),
    };
    let a = attacker.call(&server, "Approve", &approve).await;
    assert!(!matches!(step(&a), Step::Redirect(_)), "another browser approved the consent: {a:?}");
    let no_cookie = Tab::new().call(&server, "Approve", &approve).await;
    no_cookie.assert_status(FAILED_PRECONDITION);
    let a = get_approval(&attacker, &server, &req, &hmac, &victim_secret).await;
    assert!(matches!(step(&a), Step::Error(_)), "another browser sees the consent page: {a:?}");

    // None of that consumed the victim's request: the victim approves (a wrong secret in the
    // message changes nothing either).
    let a = victim
        .call(&server, "Approve", &pb::ApproveRequest { browser_secret: "wrong".into(), ..approve })
        .await;
    assert!(redirect(&a).as_str().starts_with(REDIRECT), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_is_refused_and_nothing_answers_cors() {
    let server = start().await;
    let mut tab = Tab::new();
    let request_id = tab.start_login(&server).await;
    let url = format!("{}/grpc-web/oxidex.v1.Flow/PasswordLogin", server.issuer);
    let message = login(&request_id, EMAIL, "wrong", "");
    for origin in
        ["http://evil.example", "null", "http://127.0.0.1:1", &server.web.replace("http:", "https:")]
    {
        let req =
            tab.http.post(&url).header("origin", origin).header("cookie", tab.cookie.as_deref().unwrap());
        let a = grpc_web::call(req, &message).await;
        a.assert_status(PERMISSION_DENIED);
        assert!(a.header("access-control-allow-origin").is_none(), "{origin}: {a:?}");
    }
    // The issuer's origin (what the login page sends) and no Origin at all (not a browser) pass.
    let a = tab.call(&server, "PasswordLogin", &message).await;
    assert!(matches!(step(&a), Step::PasswordForm(_)), "{a:?}");
    let req = tab.http.post(&url).header("cookie", tab.cookie.as_deref().unwrap());
    assert!(matches!(step(&grpc_web::call(req, &message).await), Step::PasswordForm(_)));

    // A CORS preflight gets no permission.
    let r = tab
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .send()
        .await
        .unwrap();
    assert!(!r.status().is_success(), "{r:?}");
    assert!(r.headers().get("access-control-allow-origin").is_none(), "{r:?}");
    assert!(r.headers().get("access-control-allow-methods").is_none(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_flow_is_on_the_web_listener_over_grpc_web_and_never_the_admin_api() {
    let server = start().await;
    let mut tab = Tab::new();
    tab.get(&format!("{}/device", server.issuer)).await;
    let cookie = tab.cookie.clone().unwrap();
    let web_call = |path: String, message: &dyn Fn() -> Vec<u8>| {
        let req = tab
            .http
            .post(path)
            .header("origin", &server.web)
            .header("cookie", &cookie)
            .header("content-type", grpc_web::CONTENT_TYPE)
            .header("x-grpc-web", "1")
            .body(message());
        async move {
            let r = req.send().await.unwrap();
            let (status, headers) = (r.status().as_u16(), r.headers().clone());
            grpc_web::parse(status, headers, &r.bytes().await.unwrap())
        }
    };
    let list_clients = || grpc_web::frame(&oxidex_proto::api::ListClientReq {});
    let token = || {
        grpc_web::frame(&pb::TokenRequest {
            grant_type: "client_credentials".into(),
            client: Some(pb::ClientAuth {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    };

    // Under the issuer's gRPC-web endpoint only Flow's methods exist.
    for (path, body) in [
        ("api.Dex/ListClients", &list_clients as &dyn Fn() -> Vec<u8>),
        ("oxidex.v1.Token/Token", &token),
        ("oxidex.v1.Discovery/GetJwks", &list_clients),
        ("oxidex.v1.Flow/NoSuchMethod", &list_clients),
    ] {
        let a = web_call(format!("{}/grpc-web/{path}", server.issuer), body).await;
        a.assert_status(UNIMPLEMENTED);
    }
    // At the listener's root, gRPC-web reaches nothing: no api.Dex route, and the public
    // native-gRPC services refuse gRPC-web before decoding it.
    let a = web_call(format!("{}/api.Dex/ListClients", server.web), &list_clients).await;
    assert_eq!((a.http, a.status), (404, None), "{a:?}");
    for path in ["oxidex.v1.Token/Token", "oxidex.v1.Flow/PasswordLogin"] {
        let a = web_call(format!("{}/{path}", server.web), &token).await;
        assert_eq!((a.http, a.status), (415, None), "{path}: {a:?}");
    }

    // Native gRPC (HTTP/2) on the web listener: api.Dex is not there; the admin listener has it.
    let web = tonic::transport::Channel::from_shared(server.web.clone()).unwrap().connect().await.unwrap();
    let e = oxidex_proto::api::dex_client::DexClient::new(web.clone())
        .list_clients(oxidex_proto::api::ListClientReq {})
        .await
        .unwrap_err();
    assert!(matches!(e.code(), tonic::Code::Unimplemented | tonic::Code::NotFound), "{e:?}");
    let admin = oxidex_proto::api::dex_client::DexClient::new(server.grpc_channel().await)
        .list_clients(oxidex_proto::api::ListClientReq {})
        .await
        .unwrap()
        .into_inner();
    assert!(admin.clients.iter().any(|c| c.id == CLIENT_ID), "{admin:?}");
    // ... while apps keep native gRPC to the public services there.
    let jwks = pb::discovery_client::DiscoveryClient::new(web).get_jwks(pb::GetJwksRequest {}).await.unwrap();
    assert!(!jwks.into_inner().keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttling_counts_each_client_address_apart() {
    let server = start().await;
    let mut tab = Tab::new();
    let request_id = tab.start_login(&server).await;
    let cookie = tab.cookie.clone().unwrap();
    let from = |ip: [u8; 4]| Tab { http: client_from(Some(IpAddr::from(ip))), cookie: Some(cookie.clone()) };
    let (noisy, quiet) = (from([127, 0, 0, 2]), from([127, 0, 0, 3]));

    // Failures for ever new accounts from one address (so no account limit is reached): after
    // the per-IP limit that address must wait. The message's client_ip is ignored.
    let mut throttled = None;
    for i in 0..40 {
        let a = noisy
            .call(&server, "PasswordLogin", &login(&request_id, &format!("u{i}@example.com"), "x", ""))
            .await;
        let Step::PasswordForm(f) = step(&a) else { panic!("{a:?}") };
        if f.retry_after_seconds > 0 {
            throttled = Some(i);
            break;
        }
        assert!(f.invalid, "{f:?}");
    }
    let after = throttled.expect("repeated failures from one address were never throttled");
    assert!(after >= 5, "throttled after only {after} failures");

    // Another address is not held back by them.
    let a = quiet.call(&server, "PasswordLogin", &login(&request_id, "fresh@example.com", "x", "")).await;
    let Step::PasswordForm(f) = step(&a) else { panic!("{a:?}") };
    assert_eq!((f.invalid, f.retry_after_seconds), (true, 0), "the other address is throttled too: {f:?}");
    // Nor is it on the HTML form route, which reads the address the same way.
    let status = form_login(&quiet.http, &server, &cookie, &request_id, "fresh2@example.com", "").await;
    assert_eq!(status, 401, "a wrong password from a quiet address");
    let status = form_login(&noisy.http, &server, &cookie, &request_id, "fresh3@example.com", "").await;
    assert_eq!(status, 429, "the noisy address is throttled on the form route too");
}

/// A wrong password for `login` on the HTML form route, with `X-Forwarded-For: forwarded` when
/// not empty; the answer's status.
async fn form_login(
    http: &reqwest::Client,
    server: &Server,
    cookie: &str,
    request_id: &str,
    login: &str,
    forwarded: &str,
) -> u16 {
    let mut req = http.post(format!("{}/auth/local/login", server.issuer)).header("cookie", cookie).form(&[
        ("req", request_id),
        ("login", login),
        ("password", "x"),
    ]);
    if !forwarded.is_empty() {
        req = req.header("x-forwarded-for", forwarded);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Calls `attempt(i)` (a wrong password, answering 401 or 429) until it answers 429, at most
/// 40 times; whether it did.
async fn fails_until_throttled<F, Fut>(mut attempt: F) -> bool
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    for i in 0..40 {
        match attempt(i).await {
            401 => {}
            429 => return true,
            other => panic!("a wrong password answered {other}"),
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_status_never_a_crash() {
    let server = start().await;
    let mut tab = Tab::new();
    let request_id = tab.start_login(&server).await;
    let url = format!("{}/grpc-web/oxidex.v1.Flow/PasswordLogin", server.issuer);
    let cookie = tab.cookie.clone().unwrap();
    let raw = |body: Vec<u8>, content_type: &str| {
        tab.http
            .post(&url)
            .header("cookie", &cookie)
            .header("origin", &server.web)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // Not protobuf, a truncated frame, a frame claiming 4 GB, an empty body.
    for body in [
        vec![0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
        vec![0, 0, 0, 1, 0, 1, 2],
        vec![0, 0xff, 0xff, 0xff, 0xff],
        vec![],
    ] {
        let r = raw(body.clone(), grpc_web::CONTENT_TYPE).await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let a = grpc_web::parse(status, headers, &r.bytes().await.unwrap());
        assert!(a.status.is_some_and(|s| s != 0), "{body:?} was accepted: {a:?}");
    }
    // Not gRPC-web at all (a cross-site HTML form could send these): 415, nothing decoded.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/grpc"] {
        let r = raw(grpc_web::frame(&login(&request_id, EMAIL, PASSWORD, "")), content_type).await.unwrap();
        assert_eq!(r.status(), 415, "{content_type}");
    }
    // Unknown request ids and connectors are steps, not failures.
    let a = tab.call(&server, "PasswordLogin", &login("no-such-request", EMAIL, PASSWORD, "")).await;
    assert!(matches!(step(&a), Step::Error(_)), "{a:?}");
    let a = tab
        .call(
            &server,
            "SelectConnector",
            &pb::SelectConnectorRequest {
                request_id: request_id.clone(),
                connector_id: "nope\u{0}".into(),
                browser_secret: String::new(),
            },
        )
        .await;
    assert!(a.status.is_some(), "{a:?}");
    // Still serving.
    let a = tab.call(&server, "PasswordLogin", &login(&request_id, EMAIL, "wrong", "")).await;
    assert!(matches!(step(&a), Step::PasswordForm(_)), "{a:?}");
}

/// `web.clientRemoteIP`: behind a trusted proxy the forwarded client is what throttling counts
/// (one client's failures do not lock out everyone behind the proxy), and the header is
/// ignored from anyone else (a client cannot dodge throttling by forging it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_throttling_counts_the_forwarded_client() {
    let server = tokio::task::spawn_blocking(|| {
        Server::start(Ports::new(), |dir, ports| {
            config(ports, &sqlite_storage(dir), &static_setup()).replace(
                "web:\n",
                "web:\n  clientRemoteIP:\n    header: X-Forwarded-For\n    trustedProxies: [127.0.0.2/32]\n",
            )
        })
    })
    .await
    .unwrap();
    let mut tab = Tab::new();
    let request_id = tab.start_login(&server).await;
    let cookie = tab.cookie.clone().unwrap();
    let (proxy, direct) =
        (client_from(Some(IpAddr::from([127, 0, 0, 2]))), client_from(Some(IpAddr::from([127, 0, 0, 3]))));
    let attempt = |http: &reqwest::Client, login: String, forwarded: String| {
        let (http, server, cookie, request_id) = (http.clone(), &server, &cookie, &request_id);
        async move { form_login(&http, server, cookie, request_id, &login, &forwarded).await }
    };

    // One client behind the proxy fails until it is throttled (new accounts each time, so only
    // the per-address limit applies). What it wrote itself into the header (left) is ignored.
    let throttled = fails_until_throttled(|i| {
        attempt(&proxy, format!("p{i}@example.com"), "6.6.6.6, 198.51.100.7".into())
    })
    .await;
    assert!(throttled, "repeated failures of one forwarded client were never throttled");
    let status = attempt(&proxy, "again@example.com".into(), "198.51.100.7".into()).await;
    assert_eq!(status, 429, "the same client, header without its own part");
    // Another client behind the same proxy is not held back by it.
    let status = attempt(&proxy, "other@example.com".into(), "198.51.100.8".into()).await;
    assert_eq!(status, 401, "another client behind the proxy is throttled too");
    // Nor is the proxy's own traffic without a header.
    assert_eq!(attempt(&proxy, "own@example.com".into(), String::new()).await, 401);
    // The gRPC-web endpoint reads the address the same way.
    let through_proxy = Tab { http: proxy.clone(), cookie: Some(cookie.clone()) };
    let grpc_login = login(&request_id, "grpc@example.com", "x", "");
    let via = |forwarded: &'static str| through_proxy.call_forwarded(&server, forwarded, &grpc_login);
    let Step::PasswordForm(f) = step(&via("198.51.100.7").await) else { panic!() };
    assert!(f.retry_after_seconds > 0, "gRPC-web did not see the forwarded client: {f:?}");
    let Step::PasswordForm(f) = step(&via("198.51.100.9").await) else { panic!() };
    assert_eq!(f.retry_after_seconds, 0, "{f:?}");

    // A client that is not a trusted proxy cannot pick its address with the header: its
    // failures count against its own address, whatever it forwards.
    let throttled =
        fails_until_throttled(|i| attempt(&direct, format!("d{i}@example.com"), format!("203.0.113.{i}")))
            .await;
    assert!(throttled, "forging X-Forwarded-For dodged the throttling");
}
